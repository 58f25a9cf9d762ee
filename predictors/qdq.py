"""ONNX Runtime static int8 quantization in QDQ format: per-channel int8 weights, uint8
activations (u8s8), MinMax calibration, after ONNX Runtime's pre-processing (shape inference and
graph optimisation). Used by the ``onnxruntime`` backend at ``precision="int8"`` and by
``nas extract --format onnx --quantize int8``."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from nas.runtimes import quiet

SCHEME = "ONNX Runtime static QDQ: per-channel int8 weights, uint8 activations, MinMax calibration"


class _Reader:
    """Calibration feeds (input name -> array), one batch per call, as ONNX Runtime wants them."""

    def __init__(self, feeds: Iterable[Mapping[str, np.ndarray]]):
        self._feeds = iter(list(feeds))

    def get_next(self):
        return next(self._feeds, None)


def preprocess(source: Path, target: Path) -> Path:
    """ONNX Runtime's pre-processing of ``source`` into ``target`` (``source`` if it fails)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        with quiet():
            quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
        return target
    except Exception:  # an optimisation only: quantize the plain model
        return source


def quantize_qdq(
    model: Path,
    feeds: Iterable[Mapping[str, np.ndarray]],
    nodes: Sequence[str] | None = None,
) -> bytes:
    """The pre-processed ONNX file ``model`` quantized, calibrated on ``feeds``; only ``nodes``
    when given (an empty list quantizes nothing)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if nodes is not None and not nodes:
        return Path(model).read_bytes()
    with tempfile.TemporaryDirectory(prefix="nas-qdq-") as folder:
        out = Path(folder) / "int8.onnx"
        with quiet():  # per-channel LayerNorm weights fall back to per-tensor, with a warning
            quantize_static(
                str(model),
                str(out),
                _Reader(feeds),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_quantize=list(nodes) if nodes is not None else None,
                calibrate_method=CalibrationMethod.MinMax,
            )
        return out.read_bytes()


def quantize_bytes(data: bytes, feeds: Iterable[Mapping[str, np.ndarray]]) -> bytes:
    """An ONNX model (bytes) pre-processed and quantized, calibrated on ``feeds``."""
    with tempfile.TemporaryDirectory(prefix="nas-qdq-") as folder:
        source = Path(folder) / "fp32.onnx"
        source.write_bytes(data)
        return quantize_qdq(preprocess(source, Path(folder) / "pre.onnx"), feeds)


def quantize_kernel(data: bytes, feeds: Mapping[str, np.ndarray]) -> bytes:
    """A kernel's ONNX model (bytes) quantized, calibrated on its inputs ``feeds`` and
    :data:`~predictors.backends.CALIBRATION_DRAWS` standard-normal draws shaped like them."""
    from predictors.backends import CALIBRATION_DRAWS

    rng = np.random.default_rng(0)
    draws = [
        {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in feeds.items()}
        for _ in range(CALIBRATION_DRAWS)
    ]
    return quantize_bytes(data, [dict(feeds), *draws])
