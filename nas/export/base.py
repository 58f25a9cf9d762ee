"""What every deployment format provides: writing a file, running it here, quantizing to int8.

A format (one module each: :mod:`nas.export.onnx`, :mod:`nas.export.executorch`,
:mod:`nas.export.tflite`, :mod:`nas.export.torch_files`) is an object with

* ``name``, ``suffix``, ``runtime`` (the library that runs its files) and ``dynamic_batch``
  (whether its files may take any batch size);
* ``write(model, example, path, batch)``: the model (eval mode, fp32) as a file; ``batch`` None
  leaves the batch axis dynamic where the format allows it, an integer fixes it;
* ``load(path, threads)``: a :class:`LoadedModel` that runs the file with its runtime here;
* ``quantizer(model, example, calibration)``: an int8 :class:`Quantizer` (formats without one
  have ``quantizer = None``);
* ``versions()``: the versions of the libraries that write and run its files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from nas.errors import InputError

if TYPE_CHECKING:  # torch is imported by the formats that use it, not by `nas --help`
    import torch


class ExportError(InputError):
    """A model cannot be written, read or run in a format (the message says which part)."""


class LoadedModel(Protocol):
    #: The batch size the file was written for, or None when it takes any.
    batch: int | None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits of a float32 NCHW batch of ``batch`` images (any size when ``batch`` is None)."""


class Candidate(Protocol):
    """A model with some blocks quantized to int8, evaluated in PyTorch or its runtime."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def write(self, path: Path, example: torch.Tensor, batch: int | None = None) -> Path: ...


class Quantizer(Protocol):
    """Post-training static int8 quantization of one model, calibrated once on given images."""

    scheme: str  # how it quantizes, in words (for the card)

    def quantize(self, blocks: Sequence[str] | None) -> Candidate:
        """The model with the named top-level blocks in int8 (None: all of them)."""


@dataclass(frozen=True)
class Format:
    """A deployment format: see the module docstring."""

    name: str
    suffix: str
    runtime: str
    dynamic_batch: bool
    write: Callable[..., Path]
    load: Callable[..., LoadedModel]
    versions: Callable[[], dict[str, str]]
    quantizer: Callable[..., Quantizer] | None = None
    notes: str = ""

    def describe(self) -> dict[str, Any]:
        return {"format": self.name, "runtime": self.runtime, **self.versions()}


def run_batched(model: LoadedModel, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits of all images ``x`` (N, C, H, W), fed in the batch size the file takes (the last
    batch of a fixed-batch file padded by repeating its last image)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    size = model.batch or batch_size
    outputs = []
    for start in range(0, len(x), size):
        part = x[start : start + size]
        count = len(part)
        if model.batch is not None and count < size:
            part = np.concatenate([part, np.repeat(part[-1:], size - count, axis=0)])
        outputs.append(np.asarray(model(part))[:count])
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)


def calibration_batches(images: torch.Tensor, size: int = 32) -> list[torch.Tensor]:
    """``images`` cut into batches for observers to see."""
    return [images[start : start + size] for start in range(0, len(images), size)]
