"""ONNX: opset 17, input ``image`` and output ``logits``, run here by ONNX Runtime.

The batch axis is dynamic unless a batch size is fixed. int8: ONNX Runtime's static
quantization (``onnxruntime.quantization.quantize_static``) in QDQ format, per-channel int8
weights and uint8 activations (u8s8), MinMax calibration, after ONNX Runtime's pre-processing
(shape inference and graph optimisation).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas.export.base import ExportError, Format, calibration_batches
from nas.runs import replace_atomic

OPSET = 17
INPUT, OUTPUT = "image", "logits"


def write(
    model: nn.Module, example: torch.Tensor, path: str | Path, batch: int | None, meta=None
) -> Path:
    from nas.extract import write_onnx

    return write_onnx(model, example[:1], path, batch)


class LoadedOnnx:
    def __init__(self, path: str | Path | bytes, threads: int = 1):
        from predictors.backends import OnnxRuntimeBackend

        if not isinstance(path, bytes) and not Path(path).is_file():
            raise ExportError(f"model file {path} does not exist")
        try:
            self.session = OnnxRuntimeBackend(threads=threads).session(path)
        except Exception as err:  # onnxruntime raises its own exception types
            raise ExportError(f"{path} is not a loadable ONNX model ({err})") from None
        (inp,) = self.session.get_inputs()
        self._name = inp.name
        first = inp.shape[0]
        self.batch = first if isinstance(first, int) else None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._name: np.ascontiguousarray(x, np.float32)})[0]


class QdqCandidate:
    def __init__(self, data: bytes):
        self.data = data
        self._model = LoadedOnnx(data)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._model(x.numpy()))

    def write(self, path: Path, example: torch.Tensor, batch: int | None = None) -> Path:
        data = self.data if batch is None else fix_batch(self.data, batch)
        return replace_atomic(path, lambda tmp: tmp.write_bytes(data))


class QdqQuantizer:
    """ONNX Runtime static QDQ quantization of one model (:mod:`predictors.qdq`)."""

    def __init__(self, model: nn.Module, example: torch.Tensor, calibration: torch.Tensor):
        from predictors.qdq import SCHEME, preprocess

        self.scheme = SCHEME
        self._folder = tempfile.TemporaryDirectory(prefix="nas-qdq-")
        folder = Path(self._folder.name)
        write(model, example, folder / "fp32.onnx", None)
        self.base = preprocess(folder / "fp32.onnx", folder / "pre.onnx")
        self.calibration = calibration
        self._nodes = _nodes_by_block(self.base)

    def quantize(self, blocks: Sequence[str] | None) -> QdqCandidate:
        from predictors.qdq import quantize_qdq

        nodes = None if blocks is None else [n for b in blocks for n in self._nodes.get(b, [])]
        feeds = [{INPUT: b.numpy()} for b in calibration_batches(self.calibration)]
        return QdqCandidate(quantize_qdq(self.base, feeds, nodes))


def fix_batch(data: bytes, batch: int) -> bytes:
    """An ONNX model with its inputs' and outputs' first axis fixed to ``batch``."""
    import onnx

    model = onnx.load_from_string(data)
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_value = batch
    return model.SerializeToString()


def _nodes_by_block(path: Path) -> dict[str, list[str]]:
    """Node names per top-level block (the exporter names nodes ``/BLOCK/...``)."""
    import onnx

    out: dict[str, list[str]] = {}
    for node in onnx.load(str(path)).graph.node:
        parts = node.name.split("/")
        if len(parts) > 2 and parts[0] == "":
            out.setdefault(parts[1], []).append(node.name)
    return out


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {
        "opset": str(OPSET),
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "torch": str(torch.__version__),
    }


FORMAT = Format(
    name="onnx",
    suffix=".onnx",
    runtime="onnxruntime",
    dynamic_batch=True,
    write=write,
    load=LoadedOnnx,
    versions=versions,
    quantizer=QdqQuantizer,
)
