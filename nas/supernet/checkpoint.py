"""Supernet checkpoints: the space declaration and the weights, loadable with weights_only=True."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nas.errors import InputError
from nas.runs import save_torch
from nas.space import SearchSpace, SpaceError
from nas.supernet import Supernet

CHECKPOINT_FORMAT = "nas-supernet"
CHECKPOINT_VERSION = 1


class CheckpointError(InputError):
    """A checkpoint is missing, corrupt, or not a supernet checkpoint of this engine."""


def save_supernet(supernet: Supernet, path: str | Path, **extra: Any) -> Path:
    """Write the supernet (and any extra plain entries, e.g. optimizer state) atomically."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "space": supernet.space.to_dict(),
        "model": {k: v.detach().cpu() for k, v in supernet.state_dict().items()},
        **extra,
    }
    return save_torch(payload, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's payload, checked for format and version."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as err:  # torch raises several types for corrupt files
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({err.__class__.__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {payload.get('version')!r} is not supported; "
            f"supported: {CHECKPOINT_VERSION}"
        )
    return payload


def load_supernet(path: str | Path, space: SearchSpace | None = None) -> Supernet:
    """Rebuild a supernet from a checkpoint (its own space declaration unless one is given)."""
    payload = read_checkpoint(path)
    try:
        stored = SearchSpace.from_dict(payload["space"])
    except (KeyError, SpaceError) as err:
        raise CheckpointError(f"{path}: bad space declaration: {err}") from None
    if space is not None and space.name != stored.name:
        raise CheckpointError(
            f"{path} holds a supernet of space {stored.name!r}, not {space.name!r}"
        )
    supernet = Supernet(stored)
    try:
        supernet.load_state_dict(payload["model"])
    except (KeyError, RuntimeError) as err:
        raise CheckpointError(f"{path}: weights do not fit space {stored.name!r}: {err}") from None
    return supernet
