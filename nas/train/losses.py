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

    p is the teacher's distribution, q the student's; alpha 1 is KL(p || q), alpha 0 is
    KL(q || p). Value and gradient are AlphaNet's (see :func:`_f_divergence`).
    """
    value, surrogate = _f_divergence(student, teacher, alpha, clip)
    return _with_gradient_of(value.mean(), surrogate.mean())


def adaptive_alpha_divergence(
    student: torch.Tensor,
    teacher: torch.Tensor,
    alpha_min: float = -1.0,
    alpha_max: float = 1.0,
    clip: float = 5.0,
) -> torch.Tensor:
    """AlphaNet's adaptive loss: per sample, the larger of the alpha-divergences at
    ``alpha_min`` and ``alpha_max``, with that divergence's clipped gradient; batch mean."""
    low, low_surrogate = _f_divergence(student, teacher, alpha_min, clip)
    if math.isclose(alpha_min, alpha_max):
        return _with_gradient_of(low.mean(), low_surrogate.mean())
    high, high_surrogate = _f_divergence(student, teacher, alpha_max, clip)
    pick_low = low > high
    value = torch.where(pick_low, low, high)
    surrogate = torch.where(pick_low, low_surrogate, high_surrogate)
    return _with_gradient_of(value.mean(), surrogate.mean())


def _f_divergence(
    student: torch.Tensor, teacher: torch.Tensor, alpha: float, clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: the alpha-divergence, and a surrogate whose gradient is AlphaNet's.

    With t = p / q the importance ratio, D = sum_i q_i f(t_i) and its exact gradient with
    respect to the student is -sum_i rho(t_i) dq_i, where rho(t) = t^alpha / alpha +
    1 / (alpha (alpha - 1)). AlphaNet clips t^alpha (t itself for alpha 0) at ``clip`` in both
    the value and rho, so a class the student has all but ruled out cannot blow the gradient up;
    the surrogate -sum_i q_i rho(t_i) log q_i (q and rho held constant) carries that gradient.
    """
    log_q = F.log_softmax(student, dim=-1)
    log_p = F.log_softmax(teacher.detach(), dim=-1)
    q = log_q.detach().exp()
    ratio = torch.exp(log_p - log_q.detach())
    if abs(alpha) < 1e-3:
        ratio = ratio.clamp(max=clip)
        f, base, rho = -ratio.log(), 0.0, ratio.log() - 1.0
    elif abs(alpha - 1.0) < 1e-3:
        f, base, rho = ratio * (log_p - log_q.detach()), 0.0, ratio
    else:
        weighted = ratio.pow(alpha).clamp(max=clip)
        base = 1.0 / (alpha * (alpha - 1.0))
        f, rho = weighted * base, weighted / alpha + base
    value = (q * (f - base)).sum(dim=-1)
    surrogate = -(q * rho * log_q).sum(dim=-1)
    return value, surrogate


def _with_gradient_of(value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward pass, ``surrogate``'s gradient in the backward pass."""
    return value.detach() + surrogate - surrogate.detach()
