"""Training losses: label-smoothed cross-entropy, and distillation from a teacher's logits."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def kl_distillation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of the softmax distributions, averaged over the batch."""
    return F.kl_div(
        F.log_softmax(student, dim=-1),
        F.log_softmax(teacher, dim=-1),
        log_target=True,
        reduction="batchmean",
    )


def alpha_divergence(
    student: torch.Tensor, teacher: torch.Tensor, alpha: float, clip: float = 5.0
) -> torch.Tensor:
    """D_alpha(p || q) = sum_i q_i ((p_i / q_i)^alpha - 1) / (alpha (alpha - 1)), batch mean.

    p is the teacher's distribution, q the student's. Alpha 1 is KL(p || q), alpha 0 is
    KL(q || p). For other alphas the importance ratio (p/q)^alpha is clipped at ``clip``
    (AlphaNet's guard against exploding ratios); clipped entries pass no gradient.
    """
    log_q = F.log_softmax(student, dim=-1)
    log_p = F.log_softmax(teacher, dim=-1)
    q = log_q.exp()
    log_ratio = log_p - log_q
    if abs(alpha - 1.0) < 1e-3:
        per_class = log_p.exp() * log_ratio
    elif abs(alpha) < 1e-3:
        per_class = -q * log_ratio
    else:
        ratio = torch.exp(alpha * log_ratio).clamp(max=clip)
        per_class = q * (ratio - 1.0) / (alpha * (alpha - 1.0))
    return per_class.sum(dim=-1).mean()


def adaptive_alpha_divergence(
    student: torch.Tensor,
    teacher: torch.Tensor,
    alpha_min: float = -1.0,
    alpha_max: float = 1.0,
    clip: float = 5.0,
) -> torch.Tensor:
    """AlphaNet's loss: the larger of the alpha-divergences at ``alpha_min`` and ``alpha_max``."""
    low = alpha_divergence(student, teacher, alpha_min, clip)
    if math.isclose(alpha_min, alpha_max):
        return low
    return torch.maximum(low, alpha_divergence(student, teacher, alpha_max, clip))
