"""Torch half of ReLU linear attention (:mod:`nas.blocks.relu_linear`)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

LINEAR_ATTENTION_EPS = 1e-6


def relu_linear_core(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias=None):
    """relu(q) (relu(k)^T v) / (relu(q) sum(relu(k))) on (batch, heads, tokens, dim) tensors."""
    q, k = F.relu(q), F.relu(k)
    numerator = q @ (k.transpose(-2, -1) @ v)
    denominator = q @ k.sum(dim=2, keepdim=True).transpose(-2, -1)
    return numerator / (denominator + LINEAR_ATTENTION_EPS)
