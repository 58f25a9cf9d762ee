"""Torch half of the transformer kind (:mod:`nas.blocks.transformer`): the static block, its
elastic twin, and the attention core as a standalone latency unit. The attention core itself is
the attention kind's function (:mod:`nas.blocks.nn.softmax`, :mod:`nas.blocks.nn.relu_linear`),
so blocks, the supernet and latency kernels compute it alike."""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks.nn.common import activation
from nas.blocks.nn.position_bias import RelativePositionBias, relative_position_index
from nas.blocks.registry import attention_kind, attention_kinds
from nas.blocks.transformer import PlainTransformerLayer, TransformerLayer
from nas.supernet.elastic import ElasticConv2d, ElasticLayerNorm, ElasticLinear


class Attention(RelativePositionBias):
    """Multi-head attention over a square token grid, with the core of its attention kind.

    Values also pass through a 3x3 depthwise conv (local context, added to the attention output);
    attention kinds that use it add a learned relative-position bias.
    """

    def __init__(self, layer: TransformerLayer):
        super().__init__()
        kind = attention_kind(layer.attention)
        self.kind, self.core_fn, self.uses_bias = (
            kind.name,
            kind.core_function(),
            layer.uses_position_bias,
        )
        self.heads, self.head_dim, self.v_dim, self.side = (
            layer.heads,
            layer.head_dim,
            layer.v_dim,
            layer.hw,
        )
        width, inner_v = layer.width, layer.heads * layer.v_dim
        self.q = nn.Linear(width, layer.q_dim)
        self.k = nn.Linear(width, layer.qk_dim)
        self.v = nn.Linear(width, inner_v)
        plain = layer.plain
        self.v_local = None if plain else nn.Conv2d(inner_v, inner_v, 3, 1, 1, groups=inner_v)
        self.act = nn.Identity() if plain else activation(layer.activation)
        self.proj = nn.Linear(inner_v, width)
        if self.uses_bias:
            self.init_position_bias(layer.heads, layer.hw)
        else:
            self.pos_table = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        v = self.v(x)
        out = self.core(self.q(x), self.k(x), v)
        if self.v_local is not None:
            local = self.v_local(v.transpose(1, 2).reshape(batch, -1, self.side, self.side))
            out = out + local.flatten(2).transpose(1, 2)
        return self.proj(self.act(out))

    def core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Queries, keys, values (batch, tokens, channels) -> the heads' outputs, concatenated."""
        batch, tokens, _ = q.shape
        heads, dim, v_dim = self.heads, self.head_dim, self.v_dim
        q = q.view(batch, tokens, heads, -1).transpose(1, 2)
        k = k.view(batch, tokens, heads, dim).transpose(1, 2)
        v = v.view(batch, tokens, heads, v_dim).transpose(1, 2)
        out = self.core_fn(q, k, v, self.position_bias() if self.uses_bias else None)
        return out.transpose(1, 2).reshape(batch, tokens, heads * v_dim)


class Mlp(nn.Module):
    """Linear -> activation -> linear."""

    def __init__(self, width: int, hidden: int, act: str):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = activation(act)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm attention and MLP, each with a residual, on an image-shaped tensor."""

    def __init__(self, layer: TransformerLayer):
        super().__init__()
        self.norm1 = nn.LayerNorm(layer.width)
        self.attn = Attention(layer)
        self.norm2 = nn.LayerNorm(layer.width)
        self.mlp = Mlp(layer.width, layer.mlp_hidden, layer.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.attn(self.norm1(tokens))
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.transpose(1, 2).reshape(batch, channels, height, width)


# --------------------------------------------------------------------- elastic twin


class ElasticAttention(nn.Module):
    """The largest attention of a slot: leading heads and channels, values head-major (head h
    keeps its first v_dim channels), the centre of the largest position-bias table. The table
    is held whatever attention kinds the stage allows, and used by those that add it."""

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
        plain: bool = False,
    ):
        super().__init__()
        self.max_heads, self.max_v_dim, self.max_side = max_heads, head_dim * max_v_scale, max_side
        max_inner_v = max_heads * self.max_v_dim
        self.q = ElasticLinear(max_width, max_heads * head_dim)
        self.k = ElasticLinear(max_width, max_heads * head_dim)
        self.v = ElasticLinear(max_width, max_inner_v)
        self.v_local = (
            None if plain else ElasticConv2d(max_inner_v, max_inner_v, 3, depthwise=True, bias=True)
        )
        self.act = nn.Identity() if plain else activation(act)
        self.proj = ElasticLinear(max_inner_v, max_width)
        self.pos_table = nn.Parameter(torch.zeros(max_heads, (2 * max_side - 1) ** 2))
        self._index_cache: dict[tuple, torch.Tensor] = {}

    def _cached(self, key: tuple, make) -> torch.Tensor:
        device = self.pos_table.device
        if (key, device) not in self._index_cache:
            self._index_cache[(key, device)] = make().to(device)
        return self._index_cache[(key, device)]

    def set_active(self, layer: TransformerLayer) -> None:
        kind = attention_kind(layer.attention)
        self.kind, self.core_fn, self.uses_bias = (
            kind.name,
            kind.core_function(),
            layer.uses_position_bias,
        )
        self.side = layer.hw
        self.heads, self.head_dim, self.v_dim = layer.heads, layer.head_dim, layer.v_dim
        inner_v = layer.heads * layer.v_dim
        v_index = None
        if layer.v_dim != self.max_v_dim:
            v_index = self._cached(
                ("v", layer.heads, layer.v_dim),
                lambda: (
                    torch.arange(layer.heads)[:, None] * self.max_v_dim + torch.arange(layer.v_dim)
                ).flatten(),
            )
        self.q.set_active(layer.width, layer.q_dim)
        self.k.set_active(layer.width, layer.qk_dim)
        self.v.set_active(layer.width, inner_v, out_index=v_index)
        if self.v_local is not None:
            self.v_local.set_active(inner_v, inner_v, 3, index=v_index)
        self.proj.set_active(inner_v, layer.width, in_index=v_index)
        self.pos_index = self._cached(
            ("pos", layer.hw), lambda: relative_position_index(layer.hw, self.max_side)
        )

    def position_bias(self) -> torch.Tensor:
        return self.pos_table[: self.heads][:, self.pos_index]

    def active_state(self) -> dict[str, torch.Tensor]:
        if not self.uses_bias:
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

    def __init__(self, largest: TransformerLayer, spec=None):
        super().__init__()
        width, act = largest.width, largest.activation
        self.norm1 = ElasticLayerNorm(width)
        self.attn = ElasticAttention(
            width, largest.heads, largest.head_dim, largest.v_scale, largest.hw, act, largest.plain
        )
        self.norm2 = ElasticLayerNorm(width)
        self.mlp = ElasticMlp(width, width * largest.mlp_ratio, act)

    def set_active(self, layer: TransformerLayer) -> None:
        self.norm1.set_active(layer.width)
        self.attn.set_active(layer)
        self.norm2.set_active(layer.width)
        self.mlp.configure(layer.width, layer.mlp_hidden)


# --------------------------------------------------------------------- latency unit


class AttentionCore(nn.Module):
    """Scores to context of :class:`Attention` (its :meth:`~Attention.core`, between the
    projections) for an attention kind's latency unit."""

    def __init__(self, spec):
        super().__init__()
        f = spec.feature_dict()
        (kind,) = [k for k in attention_kinds() if k.unit == spec.kind]
        unbiased = f.get("position_bias", True) is False
        layer = (PlainTransformerLayer if unbiased else TransformerLayer)(
            "kernel",
            f["side"],
            f["heads"] * f["head_dim"],
            f["heads"],
            f["head_dim"],
            max(1, f["v_dim"] // f["head_dim"]),
            1,
            kind.name,
            "hswish",
        )
        self.attn = Attention(layer)
        self.attn.v_dim = f["v_dim"]
        # Only the position bias of the block is used here; its projections are not.
        for name in ("q", "k", "v", "v_local", "proj"):
            setattr(self.attn, name, nn.Identity())

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.attn.core(q, k, v)


def attention_core_kernel(spec, batch: int):
    """An attention core unit (any attention kind) as a standalone module, and its inputs."""
    f = spec.feature_dict()
    module = AttentionCore(spec)
    n, qk = f["tokens"], f["heads"] * f["head_dim"]
    (kind,) = [k for k in attention_kinds() if k.unit == spec.kind]
    inputs = (
        torch.randn(batch, n, f["heads"] * (kind.score_dim or f["head_dim"])),
        torch.randn(batch, n, qk),
        torch.randn(batch, n, f["heads"] * f["v_dim"]),
    )
    return module, inputs
