"""Static blocks: the standard-layer modules an extracted subnet is made of.

Each block is built from one layer of :mod:`nas.layers`. The supernet's elastic twins reuse the
``forward`` methods defined here, so a subnet computes the same function in both places.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nas.arch import Arch
from nas.layers import HeadLayer, Layer, MBConvLayer, StemLayer, TransformerLayer, layers_of
from nas.space import SearchSpace

LINEAR_ATTENTION_EPS = 1e-6


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "hswish":
        return nn.Hardswish()
    raise ValueError(f"unknown activation {name!r}; choices: relu, hswish")


def relative_position_index(side: int, table_side: int | None = None) -> torch.Tensor:
    """(N, N) indices into a (2S-1)^2 table of offsets, for a ``side`` x ``side`` token grid."""
    table_side = table_side or side
    steps = torch.arange(side, device="cpu")  # also when models are built on the meta device
    ys, xs = torch.meshgrid(steps, steps, indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, N)
    offsets = coords[:, :, None] - coords[:, None, :] + (table_side - 1)
    return offsets[0] * (2 * table_side - 1) + offsets[1]


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


class SqueezeExcite(nn.Module):
    """Channel attention: pool -> 1x1 reduce -> ReLU -> 1x1 expand -> hard sigmoid -> scale."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.relu(self.reduce(x.mean((2, 3), keepdim=True)))
        return x * F.hardsigmoid(self.expand(scale))


class MBConv(nn.Module):
    """Inverted residual block: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 project (+ skip)."""

    def __init__(self, layer: MBConvLayer):
        super().__init__()
        mid = layer.mid_ch
        self.expands = layer.expand_ratio != 1
        self.residual = layer.residual
        self.expand = ConvBNAct(layer.in_ch, mid, 1, act=layer.activation) if self.expands else None
        self.depthwise = ConvBNAct(
            mid, mid, layer.kernel, layer.stride, act=layer.activation, depthwise=True
        )
        self.se = SqueezeExcite(mid, layer.se_ch) if layer.se else None
        self.project = ConvBNAct(mid, layer.out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expands else x
        out = self.depthwise(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        return out + x if self.residual else out


class Attention(nn.Module):
    """Multi-head attention over a square token grid, softmax or ReLU-linear.

    Values also pass through a 3x3 depthwise conv (local context, added to the attention output);
    softmax attention adds a learned relative-position bias.
    """

    def __init__(self, layer: TransformerLayer):
        super().__init__()
        self.kind = layer.attention
        self.heads, self.head_dim, self.v_dim, self.side = (
            layer.heads,
            layer.head_dim,
            layer.v_dim,
            layer.hw,
        )
        width, inner_v = layer.width, layer.heads * layer.v_dim
        self.q = nn.Linear(width, layer.qk_dim)
        self.k = nn.Linear(width, layer.qk_dim)
        self.v = nn.Linear(width, inner_v)
        self.v_local = nn.Conv2d(inner_v, inner_v, 3, 1, 1, groups=inner_v)
        self.act = activation(layer.activation)
        self.proj = nn.Linear(inner_v, width)
        if self.kind == "softmax":
            self.pos_table = nn.Parameter(torch.zeros(layer.heads, (2 * layer.hw - 1) ** 2))
            self.register_buffer("pos_index", relative_position_index(layer.hw), persistent=False)
        else:
            self.pos_table = None

    def position_bias(self) -> torch.Tensor:
        return self.pos_table[:, self.pos_index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        v = self.v(x)
        local = self.v_local(v.transpose(1, 2).reshape(batch, -1, self.side, self.side))
        out = self.core(self.q(x), self.k(x), v) + local.flatten(2).transpose(1, 2)
        return self.proj(self.act(out))

    def core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Queries, keys, values (batch, tokens, channels) -> the heads' outputs, concatenated:
        softmax with the position bias, or ReLU-linear."""
        batch, tokens, _ = q.shape
        heads, dim, v_dim = self.heads, self.head_dim, self.v_dim
        q = q.view(batch, tokens, heads, dim).transpose(1, 2)
        k = k.view(batch, tokens, heads, dim).transpose(1, 2)
        v = v.view(batch, tokens, heads, v_dim).transpose(1, 2)
        if self.kind == "softmax":
            scores = (q @ k.transpose(-2, -1)) * dim**-0.5 + self.position_bias()
            out = scores.softmax(dim=-1) @ v
        else:
            q, k = F.relu(q), F.relu(k)
            numerator = q @ (k.transpose(-2, -1) @ v)
            denominator = q @ k.sum(dim=2, keepdim=True).transpose(-2, -1)
            out = numerator / (denominator + LINEAR_ATTENTION_EPS)
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


class ClassifierHead(nn.Module):
    """1x1 conv expand -> global average pool -> feature linear -> classifier."""

    def __init__(self, layer: HeadLayer):
        super().__init__()
        self.expand = ConvBNAct(layer.in_ch, layer.expand_ch, 1, act=layer.activation)
        self.feature = nn.Linear(layer.expand_ch, layer.feature_ch, bias=False)
        self.act = activation(layer.activation)
        self.classifier = nn.Linear(layer.feature_ch, layer.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.expand(x).mean((2, 3))
        return self.classifier(self.act(self.feature(pooled)))


def build_block(layer: Layer) -> nn.Module:
    """The static module computing one layer."""
    if isinstance(layer, StemLayer):
        return ConvBNAct(layer.in_ch, layer.out_ch, layer.kernel, layer.stride, layer.activation)
    if isinstance(layer, MBConvLayer):
        return MBConv(layer)
    if isinstance(layer, TransformerLayer):
        return TransformerBlock(layer)
    if isinstance(layer, HeadLayer):
        return ClassifierHead(layer)
    raise TypeError(f"no block for layer {layer!r}")


def build_model(space: SearchSpace, arch: Arch) -> nn.Sequential:
    """A freshly initialised standalone model of ``arch``."""
    return nn.Sequential(*(build_block(layer) for layer in layers_of(space, arch)))
