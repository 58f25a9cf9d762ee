"""The ``executorch`` measuring backend: kernels and models lowered to XNNPACK-delegated ExecuTorch
programs and timed through ExecuTorch's Python runtime -- the CPU kernels ExecuTorch runs on
Android and iOS, here.

``prepare`` exports a module with ``torch.export`` (fixed shapes: the backend's batch),
quantizes it when the precision is ``int8`` (PT2E, ``XNNPACKQuantizer``: symmetric, per-channel
weights, static activations calibrated on the inputs and a few random draws like them), lowers
it with ``to_edge_transform_and_lower(partitioner=[XnnpackPartitioner()])`` and loads the
program; the runner calls its ``forward`` once. Lowering takes seconds, so programs are cached
per key across passes (:class:`~predictors.backends.ConversionCache`), and ``convert_ahead``
lowers many in worker processes before they are timed (``--jobs`` of ``nas device measure`` and
``validate``). ``threads`` sizes ExecuTorch's thread pool, which XNNPACK runs on.

The same functions lower and load the ``.pte`` files of ``nas extract --format executorch``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.errors import InputError
from nas.runtimes import quiet, require, require_installed
from predictors.backends import (
    ConvertingBackend,
    Runner,
    pt2e_quantize,
)


class ProgramError(InputError):
    """A module cannot be lowered to ExecuTorch, or a file is not a loadable program."""


def standard_layout(t: torch.Tensor) -> torch.Tensor:
    """``t`` with row-major strides. Tensors with a size-1 axis can carry strides that also read
    as channels-last; ``torch.export`` would then record that dimension order in the program,
    and NCHW inputs would fail in XNNPACK."""
    return t.detach().clone(memory_format=torch.contiguous_format)


def program_bytes(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> bytes:
    """``module`` (in eval mode) on ``inputs`` (fixed shapes) as an XNNPACK-delegated program."""
    inputs = tuple(standard_layout(t) for t in inputs)
    with quiet():
        require("executorch")
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        try:
            program = torch.export.export(module, tuple(inputs))
            edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
            return edge.to_executorch().buffer
        except Exception as err:  # torch.export and lowering raise many types
            error = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
    raise ProgramError(f"ExecuTorch cannot lower this model: {error}")


def set_threads(threads: int) -> None:
    """Size of ExecuTorch's process-wide thread pool. Programs loaded before a change must not
    run after it (their XNNPACK delegates keep the old pool): set it before loading."""
    with quiet():
        require("executorch")
        from executorch.extension.pybindings import portable_lib

        if portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(threads)


class Program:
    """A loaded program's ``forward`` (the program object is kept alive with its method)."""

    def __init__(self, source: bytes | str | Path, threads: int = 1):
        if not isinstance(source, bytes) and not Path(source).is_file():
            raise ProgramError(f"model file {source} does not exist")
        set_threads(threads)
        error = None
        with quiet():
            from executorch.runtime import Runtime, Verification

            try:
                self._program = Runtime.get().load_program(
                    source if isinstance(source, bytes) else str(source),
                    verification=Verification.Minimal,
                )
                self.method = self._program.load_method("forward")
            except Exception as err:  # the runtime raises RuntimeError for corrupt programs
                error = str(err)
        if error is not None:
            where = "program" if isinstance(source, bytes) else str(source)
            raise ProgramError(f"{where} is not a loadable ExecuTorch program ({error})")
        self.input_shapes = [
            tuple(self.method.metadata.input_tensor_meta(i).sizes())
            for i in range(self.method.metadata.num_inputs())
        ]

    def __call__(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Outputs of ``forward`` on ``inputs`` (row-major tensors, see :func:`standard_layout`)."""
        return self.method.execute(list(inputs))


def quantize_module(
    module: nn.Module, inputs: tuple[torch.Tensor, ...], calibration: Sequence[tuple] = ()
) -> nn.Module:
    """``module`` with PT2E int8 (XNNPACKQuantizer) for fixed-shape ``inputs``, calibrated on
    ``calibration`` (tuples like ``inputs``), else on ``inputs`` and a few random draws like them."""
    with quiet():
        require("executorch")
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

        config = get_symmetric_quantization_config(is_per_channel=True)
        return pt2e_quantize(module, inputs, XNNPACKQuantizer().set_global(config), calibration)


def precision_program(precision: str, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> bytes:
    """``module`` lowered at ``precision`` (fp32, or int8 through :func:`quantize_module`)."""
    module = module.eval()
    if precision == "int8":
        module = quantize_module(module, inputs)
    return program_bytes(module, inputs)


def _convert(precision: str, build) -> tuple[bytes, tuple[torch.Tensor, ...]]:
    """The program of the module ``build()`` makes, and its inputs (a worker can run it)."""
    module, inputs = build()
    inputs = tuple(inputs)
    return precision_program(precision, module, inputs), inputs


class ExecuTorchBackend(ConvertingBackend):
    """ExecuTorch with the XNNPACK delegate, on this machine's CPU."""

    name, suffix = "executorch", ".pte"
    convert = staticmethod(_convert)

    def __init__(self, threads: int = 1, batch: int = 1, precision: str = "fp32"):
        super().__init__(threads, batch, precision)
        require_installed("executorch")

    def runner(self, data: bytes | Path, inputs: tuple[torch.Tensor, ...]) -> Runner:
        program = Program(data, self.threads)
        inputs = [standard_layout(t) for t in inputs]

        def run() -> object:
            return program(inputs)

        return run

    def versions(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            "executorch": version("executorch"),
            "torchao": version("torchao"),
            "torch": torch.__version__,
            "delegate": "XNNPACK",
        }
