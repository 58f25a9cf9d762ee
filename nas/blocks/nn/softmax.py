"""Torch half of softmax attention (:mod:`nas.blocks.softmax`)."""

from __future__ import annotations

import torch


def softmax_core(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None):
    """softmax(q k^T / sqrt(d) [+ bias]) v on (batch, heads, tokens, dim) tensors."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if bias is not None:
        scores = scores + bias
    return scores.softmax(dim=-1) @ v
