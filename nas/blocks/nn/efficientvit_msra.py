"""Torch half of the EfficientViT (Microsoft) kind (:mod:`nas.blocks.efficientvit_msra`): the
static sandwich block, its elastic twin and the cascaded head unit. Each head's attention is its
attention kind's core, with the transformer's position bias, so blocks, the supernet and latency
kernels compute it alike."""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks.efficientvit_msra import (
    DEPTHWISE_KERNEL,
    QUERY_KERNEL,
    EfficientViTMSRALayer,
    cascade_heads,
)
from nas.blocks.nn.common import ConvBNAct, activation
from nas.blocks.nn.position_bias import RelativePositionBias, relative_position_index
from nas.blocks.nn.transformer import ElasticAttention
from nas.blocks.nn.windows import window_merge, window_partition
from nas.blocks.registry import attention_kind
from nas.supernet.elastic import ElasticConvBNAct, ElasticSegmentConv2d


class CascadeHead(RelativePositionBias):
    """One head: 1x1 conv + BN to q, k, v; depthwise conv + BN on q; the attention kind's core.
    Input and output: (B, v_dim, H, W)."""

    def __init__(self, side: int, key_dim: int, v_dim: int, attention: str):
        super().__init__()
        kind = attention_kind(attention)
        self.core_fn, self.uses_bias = kind.core_function(), kind.position_bias
        self.key_dim, self.v_dim = key_dim, v_dim
        self.qkv = ConvBNAct(v_dim, 2 * key_dim + v_dim, 1)
        self.q_dw = ConvBNAct(key_dim, key_dim, QUERY_KERNEL, depthwise=True)
        if self.uses_bias:
            self.init_position_bias(1, side)
        else:
            self.pos_table = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        q, k, v = self.qkv(x).split([self.key_dim, self.key_dim, self.v_dim], dim=1)
        q = _tokens(self.q_dw(q))
        out = self.core_fn(
            q, _tokens(k), _tokens(v), self.position_bias() if self.uses_bias else None
        )
        return out.squeeze(1).transpose(1, 2).reshape(batch, -1, height, width)


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H * W, C): one head's tokens."""
    return x.flatten(2).transpose(1, 2).unsqueeze(1)


class CascadedGroupAttention(nn.Module):
    """Head i attends over its split of the channels plus head i-1's output; concat, activation,
    1x1 projection + BN; on the whole map, or on each window of it."""

    def __init__(self, layer: EfficientViTMSRALayer):
        super().__init__()
        self.v_dim, self.window, self.side = layer.v_dim, layer.window, layer.hw
        self.heads = nn.ModuleList(
            CascadeHead(layer.attention_side, layer.key_dim, layer.v_dim, layer.attention)
            for _ in range(layer.heads)
        )
        self.act = activation(layer.activation)
        self.proj = ConvBNAct(layer.width, layer.width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.window:
            return window_merge(self.cascade(window_partition(x, self.window)), self.side)
        return self.cascade(x)

    def cascade(self, x: torch.Tensor) -> torch.Tensor:
        splits = x.split(self.v_dim, dim=1)
        outputs = []
        for i, head in enumerate(self.active_heads()):
            outputs.append(head(splits[i] + outputs[-1] if outputs else splits[i]))
        return self.proj(self.act(torch.cat(outputs, dim=1)))

    def active_heads(self) -> list[nn.Module]:
        return list(self.heads)


class Ffn(nn.Module):
    """1x1 conv + BN, activation, 1x1 conv + BN."""

    def __init__(self, width: int, hidden: int, act: str):
        super().__init__()
        self.fc1 = ConvBNAct(width, hidden, 1, act=act)
        self.fc2 = ConvBNAct(hidden, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class EfficientViTMSRABlock(nn.Module):
    """dw1, ffn1, attn, dw2, ffn2, each ``x + part(x)``."""

    def __init__(self, layer: EfficientViTMSRALayer):
        super().__init__()
        c, hidden, act = layer.width, layer.hidden, layer.activation
        self.dw1 = ConvBNAct(c, c, DEPTHWISE_KERNEL, depthwise=True)
        self.ffn1 = Ffn(c, hidden, act)
        self.attn = CascadedGroupAttention(layer)
        self.dw2 = ConvBNAct(c, c, DEPTHWISE_KERNEL, depthwise=True)
        self.ffn2 = Ffn(c, hidden, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for part in (self.dw1, self.ffn1, self.attn, self.dw2, self.ffn2):
            x = x + part(x)
        return x


# --------------------------------------------------------------------- elastic twin


class ElasticCascadeHead(nn.Module):
    """The largest head of its position: leading value channels, the centre of the largest
    position-bias table (held whatever attention kinds the stage allows)."""

    forward = CascadeHead.forward
    position_bias = ElasticAttention.position_bias
    active_state = ElasticAttention.active_state
    _cached = ElasticAttention._cached

    def __init__(self, max_side: int, key_dim: int, max_v_dim: int):
        super().__init__()
        self.key_dim, self.max_side, self.heads = key_dim, max_side, 1
        self.qkv = ElasticConvBNAct(max_v_dim, 2 * key_dim + max_v_dim, 1)
        self.q_dw = ElasticConvBNAct(key_dim, key_dim, QUERY_KERNEL, depthwise=True)
        self.pos_table = nn.Parameter(torch.zeros(1, (2 * max_side - 1) ** 2))
        self._index_cache: dict[tuple, torch.Tensor] = {}

    def set_active(self, layer: EfficientViTMSRALayer) -> None:
        kind = attention_kind(layer.attention)
        self.core_fn, self.uses_bias = kind.core_function(), kind.position_bias
        side = layer.attention_side
        self.side, self.v_dim = side, layer.v_dim
        self.qkv.configure(layer.v_dim, 2 * self.key_dim + layer.v_dim)
        self.pos_index = self._cached(
            ("pos", side), lambda: relative_position_index(side, self.max_side)
        )


class ElasticCascadedGroupAttention(nn.Module):
    """The largest number of heads, each holding the largest value width any (width, heads) of
    the stage gives; the projection takes the active heads' leading channels."""

    forward = CascadedGroupAttention.forward
    cascade = CascadedGroupAttention.cascade

    def __init__(self, largest: EfficientViTMSRALayer, spec=None):
        super().__init__()
        max_heads, max_v_dim = _largest_heads(largest, spec)
        side = largest.attention_side
        self.heads = nn.ModuleList(
            ElasticCascadeHead(side, largest.key_dim, max_v_dim) for _ in range(max_heads)
        )
        self.act = activation(largest.activation)
        self.proj = ElasticConvBNAct(max_heads * max_v_dim, largest.width, 1)
        self.proj.conv = ElasticSegmentConv2d(max_heads * max_v_dim, largest.width, max_heads)
        self.count = max_heads

    def set_active(self, layer: EfficientViTMSRALayer) -> None:
        self.v_dim, self.count = layer.v_dim, layer.heads
        self.window, self.side = layer.window, layer.hw
        for head in self.heads:  # all of them, so that every child has a valid active state
            head.set_active(layer)
        self.proj.conv.set_segments(layer.heads)
        self.proj.configure(layer.width, layer.width)

    def active_heads(self) -> list[nn.Module]:
        return list(self.heads[: self.count])


def _largest_heads(largest: EfficientViTMSRALayer, spec) -> tuple[int, int]:
    """(most heads, widest head) over the stage's widths, heads and attention kinds."""
    widths = spec.choices["width"] if spec is not None else (largest.width,)
    heads = spec.choices.get("heads") if spec is not None else None
    if not heads:  # heads = width / head_dim: every head is head_dim wide
        return largest.heads, largest.v_dim
    kinds = spec.choices.get("attention") or (largest.attention,)
    counts = [
        (cascade_heads(w, h, largest.key_dim, a), w) for w in widths for h in heads for a in kinds
    ]
    return max(n for n, _ in counts), max(w // n for n, w in counts)


class ElasticFfn(nn.Module):
    forward = Ffn.forward

    def __init__(self, max_width: int, max_hidden: int, act: str):
        super().__init__()
        self.fc1 = ElasticConvBNAct(max_width, max_hidden, 1, act=act)
        self.fc2 = ElasticConvBNAct(max_hidden, max_width, 1)

    def configure(self, width: int, hidden: int) -> None:
        self.fc1.configure(width, hidden)
        self.fc2.configure(hidden, width)


class ElasticEfficientViTMSRABlock(nn.Module):
    forward = EfficientViTMSRABlock.forward

    def __init__(self, largest: EfficientViTMSRALayer, spec=None):
        super().__init__()
        c, hidden, act = largest.width, largest.hidden, largest.activation
        self.dw1 = ElasticConvBNAct(c, c, DEPTHWISE_KERNEL, depthwise=True)
        self.ffn1 = ElasticFfn(c, hidden, act)
        self.attn = ElasticCascadedGroupAttention(largest, spec)
        self.dw2 = ElasticConvBNAct(c, c, DEPTHWISE_KERNEL, depthwise=True)
        self.ffn2 = ElasticFfn(c, hidden, act)

    def set_active(self, layer: EfficientViTMSRALayer) -> None:
        c = layer.width
        self.dw1.configure(c, c)
        self.ffn1.configure(c, layer.hidden)
        self.attn.set_active(layer)
        self.dw2.configure(c, c)
        self.ffn2.configure(c, layer.hidden)


# --------------------------------------------------------------------- latency unit


class CascadeHeadUnit(nn.Module):
    """The ``cga-head`` unit: [the previous head's output added to the split], then the head."""

    def __init__(self, head: CascadeHead):
        super().__init__()
        self.head = head

    def forward(self, split: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(split if previous is None else split + previous)


def cga_head_kernel(spec, batch: int):
    """A cascaded head as a standalone module, and its inputs (its split, and the previous
    head's output when it is not the first; of every window, stacked along the batch, where the
    head attends over ``windows`` windows)."""
    f = spec.feature_dict()
    head = CascadeHead(f["side"], f["key_dim"], f["v_dim"], f["attention"])
    shape = (batch * f.get("windows", 1), f["v_dim"], f["side"], f["side"])
    inputs = tuple(torch.randn(shape) for _ in range(1 + f["cascade"]))
    return CascadeHeadUnit(head), inputs
