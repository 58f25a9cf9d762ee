"""PyTorch 2 export (PT2E) post-training quantization, shared by the ExecuTorch and LiteRT formats.

The model is captured once with ``torch.export`` (batch axis dynamic, so calibration and
evaluation take any batch); each :meth:`Pt2eQuantizer.quantize` call annotates a copy -- every
block, or only the named top-level blocks -- with the runtime's quantizer (static, symmetric,
per-channel weights), runs the calibration images through the observers and converts. The
converted graph computes the int8 model in PyTorch (quantize/dequantize pairs around the
quantized operators), which is what the sensitivity pass scores; the runtime file is lowered
from it.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from nas.export.base import calibration_batches
from nas.runtimes import quiet


def export_dynamic_batch(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """``model`` captured by ``torch.export`` with a dynamic batch axis."""
    batch = torch.export.Dim("batch", min=1, max=65536)
    sample = example[:1].expand(2, *example.shape[1:]).contiguous()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(model.eval(), (sample,), dynamic_shapes=({0: batch},))
    return program.module()


class Pt2eCandidate:
    """A converted PT2E model; ``write`` lowers it to the runtime's file."""

    def __init__(self, graph: torch.fx.GraphModule, quantizer, lower: Callable[..., Path]):
        self.graph, self.quantizer, self._lower = graph, quantizer, lower

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)

    def write(self, path: Path, example: torch.Tensor, batch: int | None = None) -> Path:
        x = example[:1].expand(batch or 1, *example.shape[1:]).contiguous()
        return self._lower(self.graph, x, path, self.quantizer)


class Pt2eQuantizer:
    """Quantizes one model with a PT2E quantizer (``make()`` returns a fresh one) and ``config``."""

    def __init__(
        self,
        model: nn.Module,
        example: torch.Tensor,
        calibration: torch.Tensor,
        make: Callable[[], object],
        config: object,
        lower: Callable[..., Path],
        scheme: str,
        fold_quantize: bool = True,
    ):
        self.graph = export_dynamic_batch(model, example)
        self.calibration = calibration
        self._make, self._config, self._lower = make, config, lower
        self.scheme = scheme
        self._fold = fold_quantize

    @torch.no_grad()
    def quantize(self, blocks: Sequence[str] | None) -> Pt2eCandidate:
        with quiet():
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        quantizer = self._make()
        if blocks is None:
            quantizer.set_global(self._config)
        else:
            for name in blocks:
                quantizer.set_module_name(name, self._config)
        with quiet():
            prepared = prepare_pt2e(copy.deepcopy(self.graph), quantizer)
            for batch in calibration_batches(self.calibration):
                prepared(batch)
            converted = convert_pt2e(prepared, fold_quantize=self._fold)
        return Pt2eCandidate(converted, quantizer, self._lower)
