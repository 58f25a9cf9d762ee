"""Torch half of separable self-attention (:mod:`nas.blocks.separable`)."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def separable_core(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias=None):
    """relu(v) * (softmax_tokens(sum(q)) k) on (batch, heads, tokens, dim) tensors."""
    scores = q.sum(dim=-1, keepdim=True).softmax(dim=2)  # (B, h, N, 1)
    context = scores.transpose(-2, -1) @ k  # (B, h, 1, d)
    repeats = v.shape[-1] // k.shape[-1]
    if repeats > 1:
        context = context.repeat(1, 1, 1, repeats)
    return F.relu(v) * context
