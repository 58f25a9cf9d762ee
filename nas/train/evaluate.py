"""Subnet evaluation: BatchNorm recalibration and top-1 accuracy, for any subnet of a supernet.

The running statistics a supernet accumulates during training mix every subnet it trained, so
each subnet's BatchNorm statistics are recomputed on a fixed set of training images before it is
scored. Evaluation works on a copy of the supernet and never changes the one being trained.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from nas.arch import Arch
from nas.supernet import Supernet
from nas.train.data import SPLIT_SEED, Split, eval_batches, resize
from nas.train.levels import Levels


@dataclass(frozen=True)
class Probe:
    """A fixed arch evaluated every epoch, with its level and complexity."""

    level: int
    arch: Arch
    value: float


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module, images: torch.Tensor, resolution: int, batch_size: int = 256
) -> None:
    """Recompute every BatchNorm's running statistics as the exact average over ``images``."""
    norms = batch_norms(model)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    was_training = model.training
    model.train()
    device = _device(model)
    try:
        for start in range(0, len(images), batch_size):
            model(resize(images[start : start + batch_size].to(device), resolution))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)


@torch.no_grad()
def correct_count(model: nn.Module, split: Split, resolution: int, batch_size: int = 256) -> int:
    """How many images of ``split`` ``model`` in eval mode classifies right (its top-1 class)."""
    was_training = model.training
    model.eval()
    device = _device(model)
    correct = 0
    for x, y in eval_batches(split, batch_size):
        logits = model(resize(x.to(device), resolution))
        correct += int((logits.argmax(dim=-1).cpu() == y).sum())
    model.train(was_training)
    return correct


def top1(model: nn.Module, split: Split, resolution: int, batch_size: int = 256) -> float:
    """Top-1 accuracy (0..1) of ``model`` in eval mode on ``split``."""
    return correct_count(model, split, resolution, batch_size) / max(1, len(split))


def calibration_images(train: Split, count: int) -> torch.Tensor:
    """A fixed subset of ``count`` training images (the same for every run and seed)."""
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    index = torch.randperm(len(train), generator=generator)[:count]
    return train.x[index]


def evaluation_copy(supernet: Supernet, state: dict[str, torch.Tensor] | None = None) -> Supernet:
    """A copy of ``supernet`` to evaluate (with ``state`` loaded, e.g. EMA weights)."""
    net = copy.deepcopy(supernet)
    if state is not None:
        net.load_state_dict(state)
    return net


def recalibrated(
    net: Supernet, archs: Sequence[Arch], calibration: torch.Tensor, batch_size: int = 256
) -> Iterator[Arch]:
    """Each arch in turn, made ``net``'s active arch with its BN statistics recalibrated on
    ``calibration``. ``net`` is modified: pass an :func:`evaluation_copy`."""
    for arch in archs:
        net.set_arch(arch)
        recalibrate_bn(net, calibration, arch.resolution, batch_size)
        yield arch


def evaluate_archs(
    net: Supernet,
    archs: Sequence[Arch],
    calibration: torch.Tensor,
    splits: Sequence[Split],
    batch_size: int = 256,
) -> list[list[float]]:
    """For each arch: recalibrate BN, then top-1 on each split. ``net`` is modified (its BN
    statistics and active arch): pass an :func:`evaluation_copy`."""
    return [
        [top1(net, split, arch.resolution, batch_size) for split in splits]
        for arch in recalibrated(net, archs, calibration, batch_size)
    ]


def make_probes(levels: Levels, per_level: int, seed: int) -> list[Probe]:
    """``per_level`` fixed archs per level, drawn from its pool (the same for every sampler)."""
    rng = random.Random(f"probes-{seed}")
    probes = []
    for level, (pool, values) in enumerate(zip(levels.pools, levels.values, strict=True)):
        # Past the level's smallest arch (which CAS trains explicitly) when the pool allows.
        choices = list(range(1, len(pool))) if len(pool) > per_level else list(range(len(pool)))
        for k in sorted(rng.sample(choices, min(per_level, len(choices)))):
            probes.append(Probe(level, pool[k], values[k]))
    return probes


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
