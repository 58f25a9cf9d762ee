"""ExecuTorch: an XNNPACK-delegated ``.pte`` program, the CPU path of ExecuTorch on Android and iOS.

``torch.export`` -> ``to_edge_transform_and_lower(partitioner=[XnnpackPartitioner()])`` ->
``to_executorch`` (:func:`predictors.executorch_backend.program_bytes`, shared with the
``executorch`` measuring backend). Operators XNNPACK does not take (LayerNorm, mean and a few
others) stay on ExecuTorch's portable fp32 kernels. Files have a fixed batch size (1 by
default). int8: PT2E with ``XNNPACKQuantizer`` (symmetric, per-channel weights, static
activations).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas.export.base import Format
from nas.export.pt2e import Pt2eQuantizer
from nas.runs import replace_atomic
from nas.runtimes import quiet, require


def _write_program(module: nn.Module, x: torch.Tensor, path: str | Path) -> Path:
    from predictors.executorch_backend import program_bytes

    data = program_bytes(module, (x,))
    return replace_atomic(path, lambda tmp: tmp.write_bytes(data))


def write(
    model: nn.Module, example: torch.Tensor, path: str | Path, batch: int | None, meta=None
) -> Path:
    x = example[:1].expand(batch or 1, *example.shape[1:]).contiguous()
    return _write_program(model.eval(), x, path)


def _lower_quantized(graph, x: torch.Tensor, path: Path, quantizer) -> Path:
    return _write_program(graph, x, path)


class LoadedProgram:
    def __init__(self, path: str | Path, threads: int = 1):
        from predictors.executorch_backend import Program

        self.program = Program(path, threads)
        self.batch = int(self.program.input_shapes[0][0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from predictors.executorch_backend import standard_layout

        return self.program([standard_layout(torch.from_numpy(x))])[0].numpy()


def quantizer(model: nn.Module, example: torch.Tensor, calibration: torch.Tensor) -> Pt2eQuantizer:
    with quiet():
        require("executorch")
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

    return Pt2eQuantizer(
        model,
        example,
        calibration,
        XNNPACKQuantizer,
        get_symmetric_quantization_config(is_per_channel=True),
        _lower_quantized,
        "PT2E static int8, XNNPACKQuantizer (symmetric, per-channel weights)",
    )


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {
        "executorch": version("executorch"),
        "torchao": version("torchao"),
        "torch": str(torch.__version__),
        "delegate": "XNNPACK",
    }


FORMAT = Format(
    name="executorch",
    suffix=".pte",
    runtime="executorch",
    dynamic_batch=False,
    write=write,
    load=LoadedProgram,
    versions=versions,
    quantizer=quantizer,
    notes="LayerNorm, mean and other operators XNNPACK lacks run on portable fp32 kernels",
)
