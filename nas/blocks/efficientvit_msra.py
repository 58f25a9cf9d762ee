"""EfficientViT (Microsoft, Liu et al.): the sandwich block. ``x + BN(dw3x3(x))``, ``x +
FFN(x)``, ``x + CGA(x)``, ``x + BN(dw3x3(x))``, ``x + FFN(x)``; FFN = 1x1 conv + BN, activation,
1x1 conv + BN.

Cascaded group attention (CGA): the input's channels are split into ``heads`` parts of ``v_dim =
width / heads`` channels; head i takes its part plus head i-1's output, projects it (1x1 conv +
BN) to queries and keys of ``head_dim`` channels and values of ``v_dim``, runs a 5x5 depthwise
conv + BN on its queries, and attends over all tokens; the heads' outputs are concatenated,
activated and projected back (1x1 conv + BN). Each head's attention is the layer's attention kind
(softmax, as EfficientViT, or ReLU-linear or separable: the per-layer heterogeneous choice), with
the transformer's learned relative-position bias where the kind adds one. Separable attention's
score is the sum of the head's ``head_dim`` query channels (its core sums them), so that every
attention kind of a head shares one query projection.

With the stage's ``window`` set (EfficientViT's 7), a map wider than the window is padded with
zeros at the bottom and right to a whole number of ``window`` x ``window`` windows and the
cascaded group attention (projections, query convs, attention, output projection) runs on each
window alone, as EfficientViT's local window attention, the windows stacked along the batch (one
kernel per operator for all windows); smaller maps attend globally. Without it (0, the default)
attention is global on every map. Cutting the map into windows and putting them back are latency
units (``window-partition``, ``window-merge``).

Cascaded group attention is not an attention kind of the registry: attention kinds compute a core
from queries, keys and values projected from the whole input, while each cascaded head projects
its own input, which depends on the previous head's output. It is this block's frame around an
attention kind instead.

It takes the transformer kind's choices and settings and opens each stage with the same entry
layer (EfficientViT's own is ``downsample: patch_merging``, :mod:`nas.blocks.patch_merging`). Of
the choices it uses ``heads`` (default width / head_dim), ``attentions`` and ``mlp_ratios`` (the
FFN's; EfficientViT uses 2), and the stage's ``head_dim`` (the key dim, 16 in EfficientViT),
``activation`` (ReLU in EfficientViT) and ``window``; ``v_scales`` does not change it. A heads
value that does not divide the width gives the most heads below it that do
(:func:`cascade_heads`), so the kind joins spaces whose head counts were chosen for other kinds
(``mobile-zoo``). Each head, from its input split to its output, is one latency unit
(``cga-head``). The torch half is :mod:`nas.blocks.nn.efficientvit_msra`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from nas.blocks.registry import LayerContext, attention_kind, register_block
from nas.blocks.shapes import SameShape
from nas.blocks.transformer import Transformer
from nas.grammar import SpaceError

#: Kernel of the depthwise conv on each head's queries (EfficientViT-M0's, every head).
QUERY_KERNEL = 5
#: Kernel of the depthwise convs opening and closing the sandwich.
DEPTHWISE_KERNEL = 3


@dataclass(frozen=True)
class EfficientViTMSRALayer(SameShape):
    """The sandwich block on a ``hw`` x ``hw`` map of ``width`` channels."""

    slot: str
    hw: int
    width: int
    heads: int
    key_dim: int
    mlp_ratio: int
    attention: str
    activation: str
    #: Side of the attention windows; 0: global attention over the whole map.
    window: int = 0

    @property
    def attention_side(self) -> int:
        """Side of the token grid each head attends over."""
        return self.window or self.hw

    @property
    def window_grid(self) -> int:
        """Windows along each side of the map (1: global attention)."""
        return math.ceil(self.hw / self.window) if self.window else 1

    @property
    def v_dim(self) -> int:
        """Channels of each head's input split and output."""
        return self.width // self.heads

    @property
    def hidden(self) -> int:
        return self.width * self.mlp_ratio

    @property
    def tiled_side(self) -> int:
        """Side of the map the windows tile (the map padded to whole windows), or of the map."""
        return self.window_grid * self.attention_side

    def head_view(self) -> SimpleNamespace:
        """One head as the attention kinds' graphs read a layer: the windows, which share the
        head's weights, as heads of one position-bias table."""
        return SimpleNamespace(
            hw=self.attention_side,
            heads=self.window_grid**2,
            position_tables=1,
            head_dim=self.key_dim,
            v_dim=self.v_dim,
            uses_position_bias=attention_kind(self.attention).position_bias,
        )


def cascade_heads(width: int, heads: int, key_dim: int, attention: str) -> int:
    """The cascaded heads of a layer that chose ``heads``: the most heads, at most ``heads``, that
    split ``width`` into equal parts (``heads`` itself where it divides the width, as in
    EfficientViT's own models), each part a multiple of ``key_dim`` under separable attention
    (whose score sums a head's query channels). 9 heads on 64 channels give 8 heads of 8."""
    separable = attention == "separable"
    return max(
        h
        for h in range(1, max(1, heads) + 1)
        if width % h == 0 and not (separable and (width // h) % key_dim)
    )


def residual_depthwise(b, name: str, c: int, hw: int, x: str) -> str:
    """``x + BN(dw3x3(x))`` on ``c`` x ``hw`` x ``hw`` node ``x``."""
    node, _ = b.conv_bn_act(name, x, c, c, DEPTHWISE_KERNEL, 1, hw, None, depthwise=True)
    return b.op(f"{name}.add", "add", [node, x], (c, hw, hw), (c, hw, hw))


def residual_ffn(b, name: str, c: int, hidden: int, hw: int, act: str, x: str) -> str:
    """``x + BN(1x1(act(BN(1x1(x)))))`` through ``hidden`` channels."""
    node, _ = b.conv_bn_act(f"{name}.fc1", x, c, hidden, 1, 1, hw, act)
    node, _ = b.conv_bn_act(f"{name}.fc2", node, hidden, c, 1, 1, hw, None)
    return b.op(f"{name}.add", "add", [node, x], (c, hw, hw), (c, hw, hw))


@register_block
class EfficientViTMSRA(Transformer):
    name = "efficientvit_msra"
    layer_type = EfficientViTMSRALayer
    example = {
        "blocks": ["efficientvit_msra", "transformer"],
        "per_layer": ["block", "attention"],
        "depths": [1, 2],
        "widths": [8, 16],
        "attentions": ["softmax", "relu_linear", "separable"],
        "head_dim": 4,
        "mlp_ratios": [2, 3],
        "stride": 2,
        "activation": "relu",
        "window": 4,  # windows (padded) on the 6x6 map at resolution 12, global on 4x4
    }
    static = "nas.blocks.nn.efficientvit_msra:EfficientViTMSRABlock"
    elastic = "nas.blocks.nn.efficientvit_msra:ElasticEfficientViTMSRABlock"
    units = {
        "cga-head": "nas.blocks.nn.efficientvit_msra:cga_head_kernel",
        "window-partition": "nas.blocks.nn.windows:partition_kernel",
        "window-merge": "nas.blocks.nn.windows:merge_kernel",
    }

    def check_stage(self, choices: Mapping[str, tuple], settings: Mapping[str, Any], where: str):
        super().check_stage(choices, settings, where)
        head_dim = settings["head_dim"]
        if "separable" in choices.get("attention", ()):
            bad = sorted(w for w in choices["width"] if w % head_dim)
            if bad:
                raise SpaceError(
                    f"{where}: separable attention needs each cascaded head's width to be a "
                    f"multiple of head_dim = {head_dim}, so the stage's widths too; not so for "
                    f"{bad}"
                )

    def layer(self, ctx: LayerContext) -> EfficientViTMSRALayer:
        t = super().layer(ctx)
        window = ctx.spec.window if 0 < ctx.spec.window < t.hw else 0
        return EfficientViTMSRALayer(
            ctx.slot,
            t.hw,
            t.width,
            cascade_heads(t.width, t.heads, t.head_dim, t.attention),
            t.head_dim,
            t.mlp_ratio,
            t.attention,
            t.activation,
            window,
        )

    def graph(self, b, layer: EfficientViTMSRALayer, x: str) -> str:
        c, hw, hidden, act = layer.width, layer.hw, layer.hidden, layer.activation
        x = residual_depthwise(b, "dw1", c, hw, x)
        x = residual_ffn(b, "ffn1", c, hidden, hw, act, x)
        x = self._attention(b, layer, x)
        x = residual_depthwise(b, "dw2", c, hw, x)
        return residual_ffn(b, "ffn2", c, hidden, hw, act, x)

    def _attention(self, b, layer: EfficientViTMSRALayer, x: str) -> str:
        c, hw = layer.width, layer.hw
        shape = (c, hw, hw)
        if not layer.window:
            out = self._cascade(b, layer, x)
        else:
            features = {"c": c, "hw": hw, "window": layer.window}
            tiled = (c, layer.tiled_side, layer.tiled_side)
            with b.unit("window-partition", **features):
                windows = b.op("attn.windows", "reshape", [x], shape, tiled)
            out = self._cascade(b, layer, windows)
            with b.unit("window-merge", **features):
                out = b.op("attn.merge", "reshape", [out], tiled, shape)
        return b.op("attn.add", "add", [out, x], shape, shape)

    def _cascade(self, b, layer: EfficientViTMSRALayer, x: str) -> str:
        """The cascaded heads, concat, activation and projection on node ``x``: the map, or its
        windows as one batch (as the model runs them: one kernel per operator, not one per
        window). The windows' nodes have the shape of the map they tile, which gives each
        operator its work; a head's attention core sees each window apart, the windows as extra
        heads."""
        c, side, kd, dv = layer.width, layer.attention_side, layer.key_dim, layer.v_dim
        windows, span = layer.window_grid**2, layer.tiled_side
        n, shape, head_shape = side * side, (c, span, span), (dv, span, span)
        kind = attention_kind(layer.attention)
        features = {"side": side, "key_dim": kd, "v_dim": dv, "attention": kind.name}
        if windows > 1:
            features["windows"] = windows
        outputs: list[str] = []
        for i in range(layer.heads):
            with (
                b.copy(f"head{i}", shares_weights=False),
                b.unit("cga-head", **features, cascade=int(i > 0)),
            ):
                feat = b.op("attn.split", "slice", [x], shape, head_shape)
                if outputs:
                    feat = b.op("attn.cascade", "add", [feat, outputs[-1]], head_shape, head_shape)
                qkv, _ = b.conv_bn_act("attn.qkv", feat, dv, 2 * kd + dv, 1, 1, span, None)
                q = b.op("attn.q", "slice", [qkv], (2 * kd + dv, span, span), (kd, span, span))
                q, _ = b.conv_bn_act("attn.q_dw", q, kd, kd, QUERY_KERNEL, 1, span, None, True)
                q = b.op("attn.q_tokens", "reshape", [q], (kd, span, span), (windows, n, kd))
                kv = b.op(
                    "attn.kv_tokens",
                    "reshape",
                    [qkv],
                    (2 * kd + dv, span, span),
                    (windows, n, kd + dv),
                )
                if kind.score_dim is not None and kind.score_dim != kd:  # summed query channels
                    q = b.op(
                        "attn.q_score",
                        "reduce_sum",
                        [q],
                        (windows, n, kd),
                        (windows, n, kind.score_dim),
                    )
                out = kind.graph(b, layer.head_view(), q, kv, kv)
                outputs.append(b.op("attn.image", "reshape", [out], (windows, n, dv), head_shape))
        node = outputs[0]
        if len(outputs) > 1:
            node = b.op("attn.concat", "concat", outputs, head_shape, shape)
        node = b.op("attn.act", layer.activation, [node], shape, shape)
        node, _ = b.conv_bn_act("attn.proj", node, c, c, 1, 1, span, None)
        return node

    def table_keys(self, table: str, layer: EfficientViTMSRALayer) -> list[str] | None:
        return None
