"""Deployment formats, one module each, and the registry that names them.

``get_format(name)`` returns a :class:`~nas.export.base.Format`: ``onnx`` (ONNX Runtime),
``executorch`` (XNNPACK-delegated ``.pte``), ``tflite`` (LiteRT), ``torchscript`` and ``pt`` (the
engine's model file). ``format_of_path`` tells a file's format by its suffix. The phone runtimes'
modules import their libraries only when used.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from nas.export.base import ExportError, Format

#: name -> (module, attribute) of each format, imported on first use.
_FORMATS = {
    "onnx": ("nas.export.onnx", "FORMAT"),
    "torchscript": ("nas.export.torch_files", "TORCHSCRIPT"),
    "pt": ("nas.export.torch_files", "PT"),
    "executorch": ("nas.export.executorch", "FORMAT"),
    "tflite": ("nas.export.tflite", "FORMAT"),
}
SUFFIXES = {
    ".onnx": "onnx",
    ".ts": "torchscript",
    ".pt": "pt",
    ".pte": "executorch",
    ".tflite": "tflite",
}


class UnknownFormatError(ExportError):
    """No format of that name or file suffix."""


def format_names() -> list[str]:
    return list(_FORMATS)


def get_format(name: str) -> Format:
    if name not in _FORMATS:
        raise UnknownFormatError(f"unknown format {name!r}; choices: {', '.join(_FORMATS)}")
    module, attribute = _FORMATS[name]
    return getattr(importlib.import_module(module), attribute)


def format_of_path(path: str | Path) -> Format:
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise UnknownFormatError(
            f"{path}: cannot tell the model format from the suffix {suffix or '(none)'!r}; "
            f"known: {', '.join(SUFFIXES)}"
        )
    return get_format(SUFFIXES[suffix])
