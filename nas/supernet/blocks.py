"""Elastic twins of the static blocks.

Each twin holds the weights of the largest block of its slot, is configured for one layer of
:mod:`nas.layers` by ``set_active(layer)``, and computes with the *same* ``forward`` as its static
block (borrowed from :mod:`nas.blocks`), so the two agree by construction.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks import (
    Attention,
    ClassifierHead,
    ConvBNAct,
    MBConv,
    Mlp,
    SqueezeExcite,
    TransformerBlock,
    activation,
    relative_position_index,
)
from nas.layers import (
    HeadLayer,
    MBConvLayer,
    StemLayer,
    TransformerLayer,
    expanded_channels,
    se_channels,
)
from nas.supernet.elastic import (
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticLayerNorm,
    ElasticLinear,
)


class ElasticConvBNAct(nn.Module):
    forward = ConvBNAct.forward

    def __init__(
        self,
        max_in: int,
        max_out: int,
        max_kernel: int,
        stride: int = 1,
        act: str | None = None,
        depthwise: bool = False,
    ):
        super().__init__()
        self.conv = ElasticConv2d(max_in, max_out, max_kernel, stride, depthwise)
        self.bn = ElasticBatchNorm2d(max_out)
        self.act = activation(act) if act else nn.Identity()

    def configure(self, in_ch: int, out_ch: int, kernel: int | None = None) -> None:
        self.conv.set_active(in_ch, out_ch, kernel)
        self.bn.set_active(out_ch)


class ElasticStem(ElasticConvBNAct):
    def set_active(self, layer: StemLayer) -> None:
        self.configure(layer.in_ch, layer.out_ch, layer.kernel)


class ElasticSqueezeExcite(nn.Module):
    forward = SqueezeExcite.forward

    def __init__(self, max_channels: int):
        super().__init__()
        max_reduced = se_channels(max_channels)
        self.reduce = ElasticConv2d(max_channels, max_reduced, 1, bias=True)
        self.expand = ElasticConv2d(max_reduced, max_channels, 1, bias=True)

    def configure(self, channels: int, reduced: int) -> None:
        self.reduce.set_active(channels, reduced)
        self.expand.set_active(reduced, channels)


class ElasticMBConv(nn.Module):
    forward = MBConv.forward

    def __init__(
        self,
        max_in: int,
        max_out: int,
        max_expand: float,
        max_kernel: int,
        stride: int,
        se: bool,
        act: str,
    ):
        super().__init__()
        max_mid = expanded_channels(max_in, max_expand)
        self.expand = ElasticConvBNAct(max_in, max_mid, 1, act=act) if max_expand != 1 else None
        self.depthwise = ElasticConvBNAct(max_mid, max_mid, max_kernel, stride, act, depthwise=True)
        self.se = ElasticSqueezeExcite(max_mid) if se else None
        self.project = ElasticConvBNAct(max_mid, max_out, 1)
        self.expands = self.residual = False

    def set_active(self, layer: MBConvLayer) -> None:
        mid = layer.mid_ch
        self.expands = layer.expand_ratio != 1
        self.residual = layer.residual
        if self.expands:
            self.expand.configure(layer.in_ch, mid)
        self.depthwise.configure(mid, mid, layer.kernel)
        if self.se is not None:
            self.se.configure(mid, layer.se_ch)
        self.project.configure(mid, layer.out_ch)


class ElasticAttention(nn.Module):
    forward = Attention.forward
    core = Attention.core

    def __init__(
        self,
        max_width: int,
        max_heads: int,
        head_dim: int,
        max_v_scale: int,
        max_side: int,
        act: str,
    ):
        super().__init__()
        self.max_heads, self.max_v_dim, self.max_side = max_heads, head_dim * max_v_scale, max_side
        max_inner_v = max_heads * self.max_v_dim
        self.q = ElasticLinear(max_width, max_heads * head_dim)
        self.k = ElasticLinear(max_width, max_heads * head_dim)
        self.v = ElasticLinear(max_width, max_inner_v)
        self.v_local = ElasticConv2d(max_inner_v, max_inner_v, 3, depthwise=True, bias=True)
        self.act = activation(act)
        self.proj = ElasticLinear(max_inner_v, max_width)
        self.pos_table = nn.Parameter(torch.zeros(max_heads, (2 * max_side - 1) ** 2))
        self._index_cache: dict[tuple, torch.Tensor] = {}

    def _cached(self, key: tuple, make) -> torch.Tensor:
        device = self.pos_table.device
        if (key, device) not in self._index_cache:
            self._index_cache[(key, device)] = make().to(device)
        return self._index_cache[(key, device)]

    def set_active(self, layer: TransformerLayer) -> None:
        self.kind, self.side = layer.attention, layer.hw
        self.heads, self.head_dim, self.v_dim = layer.heads, layer.head_dim, layer.v_dim
        inner_v = layer.heads * layer.v_dim
        # Values are laid out head-major: head h keeps its first v_dim channels.
        v_index = None
        if layer.v_dim != self.max_v_dim:
            v_index = self._cached(
                ("v", layer.heads, layer.v_dim),
                lambda: (
                    torch.arange(layer.heads)[:, None] * self.max_v_dim + torch.arange(layer.v_dim)
                ).flatten(),
            )
        self.q.set_active(layer.width, layer.qk_dim)
        self.k.set_active(layer.width, layer.qk_dim)
        self.v.set_active(layer.width, inner_v, out_index=v_index)
        self.v_local.set_active(inner_v, inner_v, 3, index=v_index)
        self.proj.set_active(inner_v, layer.width, in_index=v_index)
        self.pos_index = self._cached(
            ("pos", layer.hw), lambda: relative_position_index(layer.hw, self.max_side)
        )

    def position_bias(self) -> torch.Tensor:
        return self.pos_table[: self.heads][:, self.pos_index]

    def active_state(self) -> dict[str, torch.Tensor]:
        if self.kind != "softmax":
            return {}
        span = 2 * self.max_side - 1
        lo, hi = self.max_side - self.side, self.max_side + self.side - 1
        table = self.pos_table[: self.heads].view(self.heads, span, span)[:, lo:hi, lo:hi]
        return {"pos_table": table.reshape(self.heads, -1)}


class ElasticMlp(nn.Module):
    forward = Mlp.forward

    def __init__(self, max_width: int, max_hidden: int, act: str):
        super().__init__()
        self.fc1 = ElasticLinear(max_width, max_hidden)
        self.act = activation(act)
        self.fc2 = ElasticLinear(max_hidden, max_width)

    def configure(self, width: int, hidden: int) -> None:
        self.fc1.set_active(width, hidden)
        self.fc2.set_active(hidden, width)


class ElasticTransformerBlock(nn.Module):
    forward = TransformerBlock.forward

    def __init__(
        self,
        max_width: int,
        max_heads: int,
        head_dim: int,
        max_v_scale: int,
        max_mlp_ratio: int,
        max_side: int,
        act: str,
    ):
        super().__init__()
        self.norm1 = ElasticLayerNorm(max_width)
        self.attn = ElasticAttention(max_width, max_heads, head_dim, max_v_scale, max_side, act)
        self.norm2 = ElasticLayerNorm(max_width)
        self.mlp = ElasticMlp(max_width, max_width * max_mlp_ratio, act)

    def set_active(self, layer: TransformerLayer) -> None:
        self.norm1.set_active(layer.width)
        self.attn.set_active(layer)
        self.norm2.set_active(layer.width)
        self.mlp.configure(layer.width, layer.mlp_hidden)


class ElasticHead(nn.Module):
    forward = ClassifierHead.forward

    def __init__(self, max_in: int, max_expand: int, feature: int, num_classes: int, act: str):
        super().__init__()
        self.expand = ElasticConvBNAct(max_in, max_expand, 1, act=act)
        self.feature = ElasticLinear(max_expand, feature, bias=False)
        self.act = activation(act)
        self.classifier = nn.Linear(feature, num_classes)

    def set_active(self, layer: HeadLayer) -> None:
        self.expand.configure(layer.in_ch, layer.expand_ch)
        self.feature.set_active(layer.expand_ch, layer.feature_ch)
