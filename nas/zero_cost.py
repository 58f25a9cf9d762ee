"""Zero-cost scores of randomly initialised subnets (no training, no data)."""

from __future__ import annotations

import math

import torch

from nas.arch import Arch
from nas.blocks import build_model
from nas.space import SearchSpace


def synflow(space: SearchSpace, arch: Arch, seed: int = 0) -> float:
    """log10 of SynFlow (Tanaka et al., 2020) for ``arch`` initialised with ``seed``.

    Every weight is replaced by its absolute value, BatchNorm keeps its initial statistics (an
    identity in eval mode), and the score is ``sum |theta * d(sum of outputs)/d theta|`` for an
    input of ones, computed in float64.
    """
    torch.manual_seed(seed)
    model = build_model(space, arch).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    side = arch.resolution
    x = torch.ones(1, space.in_channels, side, side, dtype=torch.float64)
    model.zero_grad()
    model(x).sum().backward()
    total = sum(float((p * p.grad).abs().sum()) for p in model.parameters() if p.grad is not None)
    return math.log10(total) if total > 0 else float("-inf")
