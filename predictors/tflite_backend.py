"""The ``tflite`` measuring backend: kernels and models converted by litert-torch to LiteRT
flatbuffers and timed through ai-edge-litert's interpreter, whose CPU path is XNNPACK -- the
kernels LiteRT runs on Android, here.

``prepare`` converts a module with :func:`nas.export.tflite.flatbuffer_bytes` (``torch.export``
and StableHLO, no TensorFlow; fixed shapes: the backend's batch), quantizing it first when the
precision is ``int8`` (PT2E with litert-torch's ``PT2EQuantizer``: symmetric, per-channel weights,
static activations calibrated on the inputs and a few random draws like them), and loads it in
an interpreter of ``threads`` threads with its inputs set; the runner invokes it once.
Conversions take seconds, so flatbuffers are cached per key across passes and ``convert_ahead``
converts many in worker processes before they are timed (``--jobs``), as for ``executorch``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.export.tflite import flatbuffer_bytes, quantization_config
from nas.runtimes import quiet, require, require_installed
from predictors.backends import (
    ConvertingBackend,
    Runner,
    pt2e_quantize,
)


def precision_flatbuffer(
    precision: str, module: nn.Module, inputs: tuple[torch.Tensor, ...]
) -> bytes:
    """``module`` converted at ``precision`` (fp32, or PT2E int8)."""
    module = module.eval()
    if precision != "int8":
        return flatbuffer_bytes(module, inputs)
    quantizer, config = quantization_config()
    quantizer.set_global(config)
    graph = pt2e_quantize(module, inputs, quantizer, fold_quantize=False)
    return flatbuffer_bytes(graph, inputs, quantizer)


def _convert(precision: str, build) -> tuple[bytes, tuple[torch.Tensor, ...]]:
    """The flatbuffer of the module ``build()`` makes, and its inputs (a worker can run it)."""
    module, inputs = build()
    inputs = tuple(inputs)
    return precision_flatbuffer(precision, module, inputs), inputs


def _argument(detail: dict) -> int:
    """Position of an interpreter input among the converted function's arguments (its name
    ends in ``args_<i>``)."""
    found = re.search(r"(\d+)$", detail["name"])
    return int(found.group(1)) if found else 0


class TfliteBackend(ConvertingBackend):
    """LiteRT's interpreter (XNNPACK), on this machine's CPU."""

    name, suffix = "tflite", ".tflite"
    convert = staticmethod(_convert)

    def __init__(self, threads: int = 1, batch: int = 1, precision: str = "fp32"):
        super().__init__(threads, batch, precision)
        require_installed("litert_torch")
        require_installed("ai_edge_litert")

    def runner(self, data: bytes | Path, inputs: Sequence[torch.Tensor]) -> Runner:
        with quiet():
            interpreter_module = require("ai_edge_litert.interpreter")
            source = {"model_content": data} if isinstance(data, bytes) else {"model_path": data}
            interpreter = interpreter_module.Interpreter(**source, num_threads=self.threads)
            interpreter.allocate_tensors()
        details = sorted(interpreter.get_input_details(), key=_argument)
        for detail, tensor in zip(details, inputs, strict=True):
            value = tensor.detach().numpy().astype(detail["dtype"], copy=False)
            interpreter.set_tensor(detail["index"], np.ascontiguousarray(value))
        invoke = interpreter.invoke

        def run() -> object:
            invoke()
            return interpreter

        return run

    def versions(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            "litert-torch": version("litert-torch"),
            "ai-edge-litert": version("ai-edge-litert"),
            "torch": torch.__version__,
            "delegate": "XNNPACK",
        }
