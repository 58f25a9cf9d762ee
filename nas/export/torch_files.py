"""PyTorch files: TorchScript (``torch.jit.trace``) and the engine's own ``.pt`` model file.

A ``.pt`` file holds the space declaration, the arch, the weights and the model card, and loads
with :func:`nas.extract.load_model` (``torch.load(weights_only=True)``, no pickle of code).
Both take any batch size and run on PyTorch here; neither has an int8 path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas.export.base import ExportError, Format


def _write_torchscript(
    model: nn.Module, example: torch.Tensor, path: str | Path, batch: int | None, meta=None
) -> Path:
    from nas.extract import write_torchscript

    return write_torchscript(model, example, path)


def _write_pt(
    model: nn.Module, example: torch.Tensor, path: str | Path, batch: int | None, meta=None
) -> Path:
    from nas.extract import save_model

    meta = meta or {}
    return save_model(model, meta["space"], meta["arch"], path, meta.get("card"))


class LoadedTorch:
    """A PyTorch module run in ``torch.inference_mode`` with ``threads`` intra-op threads."""

    batch = None

    def __init__(self, module: nn.Module, threads: int = 1):
        self.module, self.threads = module.eval(), threads

    def __call__(self, x: np.ndarray) -> np.ndarray:
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                return self.module(torch.from_numpy(np.ascontiguousarray(x))).numpy()
        finally:
            torch.set_num_threads(previous)


def _load_torchscript(path: str | Path, threads: int = 1) -> LoadedTorch:
    if not Path(path).is_file():
        raise ExportError(f"model file {path} does not exist")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # torch.jit raises RuntimeError and others
        raise ExportError(f"{path} is not a loadable TorchScript file ({err})") from None
    return LoadedTorch(module, threads)


def _load_pt(path: str | Path, threads: int = 1) -> LoadedTorch:
    from nas.extract import load_model

    return LoadedTorch(load_model(path)[0], threads)


def _versions() -> dict[str, str]:
    return {"torch": str(torch.__version__)}


TORCHSCRIPT = Format(
    name="torchscript",
    suffix=".ts",
    runtime="torch",
    dynamic_batch=True,
    write=_write_torchscript,
    load=_load_torchscript,
    versions=_versions,
)

PT = Format(
    name="pt",
    suffix=".pt",
    runtime="torch",
    dynamic_batch=True,
    write=_write_pt,
    load=_load_pt,
    versions=_versions,
)
