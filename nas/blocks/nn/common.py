"""Torch layers shared by the static blocks: activations, conv-BN-activation."""

from __future__ import annotations

import torch
from torch import nn

#: Activation name (as in :data:`nas.grammar.ACTIVATIONS`) -> module class.
ACTIVATION_MODULES = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hswish": nn.Hardswish,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATION_MODULES[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choices: {', '.join(ACTIVATION_MODULES)}"
        ) from None


class ConvBNAct(nn.Module):
    """Conv2d (same padding) -> BatchNorm2d -> optional activation."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int = 1,
        act: str | None = None,
        depthwise: bool = False,
    ):
        super().__init__()
        groups = out_ch if depthwise else 1
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = activation(act) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv with bias computing ``bn(conv(x))`` in eval mode (deploy-time re-parameterisation):
    ``w * g / sqrt(var + eps)``, ``(b - mean) * g / sqrt(var + eps) + beta``."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    folded = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
    ).to(conv.weight.device)
    with torch.no_grad():
        folded.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        folded.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return folded
