"""LiteRT (TensorFlow Lite): a ``.tflite`` flatbuffer written by litert-torch, run by ai-edge-litert.

Conversion goes through ``torch.export`` and StableHLO, no TensorFlow. Inputs keep PyTorch's NCHW
layout (the converter inserts the transposes). Files have a fixed batch size (1 by default).
The runtime's CPU path is XNNPACK, as on Android. int8: PT2E with litert-torch's
``PT2EQuantizer`` (symmetric, per-channel weights, static activations).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.export.base import ExportError, Format
from nas.export.pt2e import Pt2eQuantizer
from nas.runs import replace_atomic
from nas.runtimes import quiet, require


def flatbuffer_bytes(module: nn.Module, inputs: tuple[torch.Tensor, ...], quantizer=None) -> bytes:
    """``module`` on fixed-shape ``inputs`` as a LiteRT flatbuffer; a PT2E-converted graph with
    the ``quantizer`` that annotated it gives an int8 flatbuffer."""
    inputs = tuple(t.clone(memory_format=torch.contiguous_format) for t in inputs)  # row-major
    error = None
    with quiet():  # the converter prints its progress
        require("litert_torch")
        import litert_torch

        quant_config = None
        if quantizer is not None:
            from litert_torch.quantize.quant_config import QuantConfig

            quant_config = QuantConfig(pt2e_quantizer=quantizer)
        try:
            return litert_torch.convert(module, inputs, quant_config=quant_config).model_content()
        except Exception as err:  # the converter raises many types
            error = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
    raise ExportError(f"litert-torch cannot convert this model: {error}")


def _convert(module: nn.Module, x: torch.Tensor, path: Path, quantizer=None) -> Path:
    data = flatbuffer_bytes(module, (x,), quantizer)
    return replace_atomic(path, lambda tmp: tmp.write_bytes(data))


def write(
    model: nn.Module, example: torch.Tensor, path: str | Path, batch: int | None, meta=None
) -> Path:
    x = example[:1].expand(batch or 1, *example.shape[1:]).contiguous()
    return _convert(model.eval(), x, Path(path))


class LoadedFlatbuffer:
    def __init__(self, path: str | Path, threads: int = 1):
        require("ai_edge_litert")
        from ai_edge_litert.interpreter import Interpreter

        if not Path(path).is_file():
            raise ExportError(f"model file {path} does not exist")
        try:
            with quiet():
                self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ExportError(f"{path} is not a loadable LiteRT model ({err})") from None
        (self._input,) = self.interpreter.get_input_details()
        self._output = self.interpreter.get_output_details()[0]
        self.batch = int(self._input["shape"][0])

    def integer_io(self) -> dict[str, dict[str, Any]]:
        """The file's integer input and output tensors (a fully int8 model), as card fields:
        dtype and the scale and zero point that map them to the float contract."""
        fields = {}
        for name, details, rule in (
            ("input", self._input, "q = clip(round(x / scale) + zero_point) of the float input"),
            ("output", self._output, "logits = (q - zero_point) * scale"),
        ):
            if details["dtype"] != np.float32:
                scale, zero = details["quantization"]
                fields[name] = {
                    "dtype": np.dtype(details["dtype"]).name,
                    "quantization": {"scale": float(scale), "zero_point": int(zero), "rule": rule},
                }
        return fields

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Float logits of float inputs; a file with integer input or output (a fully int8
        model) is fed and read through the tensors' scale and zero point."""
        x = np.ascontiguousarray(x, np.float32)
        dtype = self._input["dtype"]
        if dtype != np.float32:
            scale, zero = self._input["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)
        self.interpreter.set_tensor(self._input["index"], x)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"])
        if out.dtype != np.float32:
            scale, zero = self._output["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        return out


def quantization_config():
    """litert-torch's PT2E quantizer and its int8 scheme (symmetric, per-channel weights)."""
    with quiet():
        require("litert_torch")
        from litert_torch.quantize.pt2e_quantizer import (
            PT2EQuantizer,
            get_symmetric_quantization_config,
        )

    return PT2EQuantizer(), get_symmetric_quantization_config(is_per_channel=True)


def quantizer(model: nn.Module, example: torch.Tensor, calibration: torch.Tensor) -> Pt2eQuantizer:
    fresh, config = quantization_config()
    return Pt2eQuantizer(
        model,
        example,
        calibration,
        type(fresh),
        config,
        _convert,
        "PT2E static int8, litert-torch PT2EQuantizer (symmetric, per-channel weights)",
        fold_quantize=False,
    )


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {
        "litert-torch": version("litert-torch"),
        "ai-edge-litert": version("ai-edge-litert"),
        "torch": str(torch.__version__),
        "delegate": "XNNPACK",
    }


FORMAT = Format(
    name="tflite",
    suffix=".tflite",
    runtime="ai-edge-litert",
    dynamic_batch=False,
    write=write,
    load=LoadedFlatbuffer,
    versions=versions,
    quantizer=quantizer,
    notes="an int8 file may take and give int8 tensors: quantize the input and dequantize the "
    "logits with the scale and zero point of the file's input and output tensors",
)
