"""Standalone subnets: extraction from the supernet, export, and the model file.

An extracted model is an ``nn.Sequential`` of the static blocks in :mod:`nas.blocks`, made only of
standard torch layers. It computes what the supernet computes with the same arch set. Exported
files hold it after each block kind's deploy step (:func:`nas.blocks.nn.deployed`:
re-parameterisation where a kind has one, the model as trained otherwise).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.arch import Arch
from nas.blocks.nn import build_model, deployed
from nas.errors import InputError
from nas.export import format_names
from nas.runs import replace_atomic, save_torch
from nas.space import SearchSpace
from nas.supernet import Supernet
from nas.supernet.elastic import active_state_dict

MODEL_FORMAT = "nas-model"
MODEL_VERSION = 1
#: Every format :func:`export` writes (one module each in :mod:`nas.export`).
EXPORT_FORMATS = tuple(format_names())


class ModelFileError(InputError):
    """A model file is unreadable, corrupt or not a model of this engine."""


def extract(supernet: Supernet, arch: Arch) -> nn.Sequential:
    """The subnet ``arch`` as a standalone model holding copies of the supernet's weights.

    The supernet is left with ``arch`` set. The model is in the supernet's train/eval mode and on
    its device.
    """
    supernet.set_arch(arch)
    device = next(supernet.parameters()).device
    with torch.device("meta"):
        model = build_model(supernet.space, arch)
    with torch.no_grad():
        for block, elastic in zip(model, supernet.active_blocks, strict=True):
            sliced = active_state_dict(elastic)
            wanted = block.state_dict().keys()
            missing = set(wanted) - set(sliced)
            if missing:
                raise RuntimeError(f"{type(elastic).__name__} lacks tensors {sorted(missing)}")
            block.load_state_dict(
                {key: sliced[key].detach().clone() for key in wanted}, strict=True, assign=True
            )
    return model.to(device).train(supernet.training)


def example_input(space: SearchSpace, arch: Arch, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, space.in_channels, arch.resolution, arch.resolution)


def export_onnx(
    model: nn.Module, space: SearchSpace, arch: Arch, path: str | Path, batch: int | None = None
) -> Path:
    """Write an ONNX file (opset 17, input ``image``, output ``logits``) for inference in eval
    mode; the batch axis is dynamic unless ``batch`` fixes it."""
    return write_onnx(deployed(model, space, arch), example_input(space, arch), path, batch)


def write_onnx(
    model: nn.Module, example: torch.Tensor, path: str | Path, batch: int | None = None
) -> Path:
    """:func:`export_onnx` for a model whose input looks like ``example`` (its batch is ignored)."""
    model = model.eval()
    device = next(model.parameters()).device
    dummy = example[:1].expand(batch or 1, *example.shape[1:]).contiguous().to(device)
    dynamic = None if batch else {"image": {0: "batch"}, "logits": {0: "batch"}}

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # The TorchScript-based exporter handles these static graphs and is fast.
            torch.onnx.export(
                model,
                (dummy,),
                str(tmp),
                input_names=["image"],
                output_names=["logits"],
                opset_version=17,
                dynamic_axes=dynamic,
                dynamo=False,
            )

    return replace_atomic(path, write)


def export_torchscript(model: nn.Module, space: SearchSpace, arch: Arch, path: str | Path) -> Path:
    """Write a traced TorchScript file for inference in eval mode."""
    return write_torchscript(deployed(model, space, arch), example_input(space, arch), path)


def write_torchscript(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """:func:`export_torchscript` for a model whose input looks like ``example``."""
    model = model.eval()
    dummy = example[:1].to(next(model.parameters()).device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, dummy)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # torch.jit.save to a file object reports write errors
            torch.jit.save(traced, f)

    return replace_atomic(path, write)


def save_model(
    model: nn.Module,
    space: SearchSpace,
    arch: Arch,
    path: str | Path,
    card: dict[str, Any] | None = None,
) -> Path:
    """Write a model file: the space declaration, the arch and the weights (loads with
    ``torch.load(weights_only=True)``)."""
    model = deployed(model, space, arch)
    payload = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "space": space.to_dict(),
        "arch": arch.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "card": json.loads(json.dumps(card or {})),  # plain types: weights_only loads them
    }
    return save_torch(payload, path)


def _payload(path: str | Path) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelFileError(f"model file {path} does not exist") from None
    except Exception as err:  # torch raises several types for corrupt files
        raise ModelFileError(f"{path} is not a readable model file: {err}") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is not a {MODEL_FORMAT} file")
    if payload.get("version") != MODEL_VERSION:
        raise ModelFileError(f"{path}: version {payload.get('version')!r} is not supported")
    return payload


def load_model(path: str | Path) -> tuple[nn.Sequential, SearchSpace, Arch]:
    """Rebuild a model written by :func:`save_model` (``nas extract --format pt``): the model in
    eval mode, its space and its arch. Loads with ``torch.load(weights_only=True)``."""
    payload = _payload(path)
    space = SearchSpace.from_dict(payload["space"])
    arch = Arch.from_dict(payload["arch"])
    model = deployed(build_model(space, arch), space, arch)
    model.load_state_dict(payload["state_dict"])
    return model.eval(), space, arch


def model_card(path: str | Path) -> dict[str, Any]:
    """The card stored in a model file written by :func:`save_model` (empty if none)."""
    card = _payload(path).get("card")
    return card if isinstance(card, dict) else {}


def export(
    model: nn.Module,
    space: SearchSpace,
    arch: Arch,
    fmt: str,
    path: str | Path,
    batch: int | None = None,
) -> Path:
    """Export in one of :data:`EXPORT_FORMATS` (see :mod:`nas.export`); ``batch`` fixes the
    batch axis of formats that can leave it dynamic."""
    from nas.export import get_format

    return get_format(fmt).write(
        model, example_input(space, arch), path, batch, meta={"space": space, "arch": arch}
    )
