"""Torch half of the EfficientViT (MIT) kind (:mod:`nas.blocks.efficientvit_mit`): the static
block, its elastic twin and the multi-scale attention unit. Each scale's attention is the
``relu_linear`` attention kind's core, so blocks, the supernet and latency kernels compute it
alike."""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks.efficientvit_mit import AGGREGATION_KERNEL, ATTENTION, EfficientViTMITLayer
from nas.blocks.nn.common import ConvBNAct, activation
from nas.blocks.registry import attention_kind
from nas.supernet.elastic import (
    ElasticConv2d,
    ElasticConvBNAct,
    ElasticGroupedConv2d,
    ElasticSegmentConv2d,
)


def multi_scale_attention(qkv: torch.Tensor, aggregated: torch.Tensor, head_dim: int):
    """ReLU linear attention over the heads of both scales: (B, 3hd, H, W) twice -> (B, 2hd, H, W)."""
    batch, _, height, width = qkv.shape
    x = torch.cat([qkv, aggregated], dim=1)
    x = x.reshape(batch, -1, 3 * head_dim, height * width).transpose(-2, -1)  # (B, 2h, N, 3d)
    q, k, v = x[..., :head_dim], x[..., head_dim : 2 * head_dim], x[..., 2 * head_dim :]
    out = attention_kind(ATTENTION).core_function()(q, k, v, None)  # (B, 2h, N, d)
    return out.transpose(-2, -1).reshape(batch, -1, height, width)


class MultiScaleAttention(nn.Module):
    """The ``lite-mla`` unit: 5x5 depthwise + per-head grouped 1x1 aggregation of q/k/v, and the
    attention of both scales."""

    def __init__(self, heads: int, head_dim: int):
        super().__init__()
        channels = 3 * heads * head_dim
        self.head_dim = head_dim
        self.dw = nn.Conv2d(
            channels,
            channels,
            AGGREGATION_KERNEL,
            padding=AGGREGATION_KERNEL // 2,
            groups=channels,
            bias=False,
        )
        self.pw = nn.Conv2d(channels, channels, 1, groups=3 * heads, bias=False)

    def forward(self, qkv: torch.Tensor) -> torch.Tensor:
        return multi_scale_attention(qkv, self.pw(self.dw(qkv)), self.head_dim)


class LiteMLA(nn.Module):
    """1x1 q/k/v conv -> multi-scale attention -> 1x1 projection with BatchNorm."""

    def __init__(self, layer: EfficientViTMITLayer):
        super().__init__()
        total = layer.total_dim
        self.qkv = nn.Conv2d(layer.width, 3 * total, 1, bias=False)
        self.core = MultiScaleAttention(layer.heads, layer.head_dim)
        self.proj = ConvBNAct(2 * total, layer.width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.core(self.qkv(x)))


class LocalMBConv(nn.Module):
    """1x1 expand (bias, activation) -> 3x3 depthwise (bias, activation) -> 1x1 project + BN."""

    def __init__(self, width: int, hidden: int, act: str):
        super().__init__()
        self.expand = nn.Conv2d(width, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act = activation(act)
        self.project = ConvBNAct(hidden, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.act(self.depthwise(self.act(self.expand(x)))))


class EfficientViTMITBlock(nn.Module):
    """``x + attn(x)``, then ``x + local(x)``."""

    def __init__(self, layer: EfficientViTMITLayer):
        super().__init__()
        self.attn = LiteMLA(layer)
        self.local = LocalMBConv(layer.width, layer.hidden, layer.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.local(x)


# --------------------------------------------------------------------- elastic twin


class ElasticMultiScaleAttention(nn.Module):
    forward = MultiScaleAttention.forward

    def __init__(self, max_heads: int, head_dim: int):
        super().__init__()
        channels = 3 * max_heads * head_dim
        self.head_dim = head_dim
        self.dw = ElasticConv2d(channels, channels, AGGREGATION_KERNEL, depthwise=True)
        self.pw = ElasticGroupedConv2d(channels, head_dim)

    def configure(self, heads: int) -> None:
        channels = 3 * heads * self.head_dim
        self.dw.set_active(channels, channels)
        self.pw.set_active(channels, channels)


class ElasticLiteMLA(nn.Module):
    """Leading heads (q/k/v are laid out per head) and channels; the projection takes the
    leading heads of each scale."""

    forward = LiteMLA.forward

    def __init__(self, largest: EfficientViTMITLayer):
        super().__init__()
        c, total = largest.width, largest.total_dim
        self.qkv = ElasticConv2d(c, 3 * total, 1)
        self.core = ElasticMultiScaleAttention(largest.heads, largest.head_dim)
        self.proj = ElasticConvBNAct(2 * total, c, 1)
        self.proj.conv = ElasticSegmentConv2d(2 * total, c, 2)

    def set_active(self, layer: EfficientViTMITLayer) -> None:
        c, total = layer.width, layer.total_dim
        self.qkv.set_active(c, 3 * total)
        self.core.configure(layer.heads)
        self.proj.configure(2 * total, c)


class ElasticLocalMBConv(nn.Module):
    forward = LocalMBConv.forward

    def __init__(self, max_width: int, max_hidden: int, act: str):
        super().__init__()
        self.expand = ElasticConv2d(max_width, max_hidden, 1, bias=True)
        self.depthwise = ElasticConv2d(max_hidden, max_hidden, 3, depthwise=True, bias=True)
        self.act = activation(act)
        self.project = ElasticConvBNAct(max_hidden, max_width, 1)

    def configure(self, width: int, hidden: int) -> None:
        self.expand.set_active(width, hidden)
        self.depthwise.set_active(hidden, hidden)
        self.project.configure(hidden, width)


class ElasticEfficientViTMITBlock(nn.Module):
    forward = EfficientViTMITBlock.forward

    def __init__(self, largest: EfficientViTMITLayer, spec=None):
        super().__init__()
        self.attn = ElasticLiteMLA(largest)
        self.local = ElasticLocalMBConv(largest.width, largest.hidden, largest.activation)

    def set_active(self, layer: EfficientViTMITLayer) -> None:
        self.attn.set_active(layer)
        self.local.configure(layer.width, layer.hidden)


def lite_mla_kernel(spec, batch: int):
    """The multi-scale attention unit as a standalone module, and its input (the q/k/v map)."""
    f = spec.feature_dict()
    module = MultiScaleAttention(f["heads"], f["head_dim"])
    channels = 3 * f["heads"] * f["head_dim"]
    return module, (torch.randn(batch, channels, f["side"], f["side"]),)
