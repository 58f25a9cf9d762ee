"""EfficientViT (MIT, Cai et al.): lightweight multi-scale attention, then an MBConv, each
residual. Attention: a 1x1 conv (no bias) to queries, keys and values of ``heads`` heads of
``head_dim`` channels each (laid out per head: q, k, v); multi-scale tokens from a 5x5 depthwise
conv and a 1x1 conv grouped per head and per q/k/v; ReLU linear attention (the ``relu_linear``
attention kind's core) over the ``2 * heads`` heads of both scales; concat; 1x1 projection with
BatchNorm. MBConv: 1x1 expand (bias, activation), 3x3 depthwise (bias, activation), 1x1 project
with BatchNorm.

It takes the transformer kind's choices and settings and opens each stage with the same
downsampling MBConv layer, so a global stage may choose it beside attention, MobileViT and
pooling layers. Of the choices it uses ``heads`` (default width / head_dim), ``mlp_ratios`` (the
MBConv's expand ratio; EfficientViT uses 4) and the stage's ``head_dim`` (16 in EfficientViT-B)
and ``activation`` (Hardswish); ``attentions`` and ``v_scales`` do not change it. The
aggregation and attention, from the q/k/v conv's output to the concat of both scales, are one
latency unit (``lite-mla``). The torch half is :mod:`nas.blocks.nn.efficientvit_mit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from nas.blocks.registry import LayerContext, attention_kind, register_block
from nas.blocks.shapes import SameShape
from nas.blocks.transformer import Transformer

#: Kernel of the depthwise conv aggregating multi-scale tokens (EfficientViT's ``scales=(5,)``).
AGGREGATION_KERNEL = 5
#: The attention kind computing each scale's attention.
ATTENTION = "relu_linear"


@dataclass(frozen=True)
class EfficientViTMITLayer(SameShape):
    """Multi-scale linear attention + MBConv, each residual, on a ``hw`` x ``hw`` map."""

    slot: str
    hw: int
    width: int
    heads: int
    head_dim: int
    expand_ratio: int
    activation: str

    @property
    def total_dim(self) -> int:
        """Channels of each of q, k and v at one scale."""
        return self.heads * self.head_dim

    @property
    def hidden(self) -> int:
        return self.width * self.expand_ratio


@register_block
class EfficientViTMIT(Transformer):
    name = "efficientvit_mit"
    layer_type = EfficientViTMITLayer
    example = {
        "blocks": ["efficientvit_mit", "transformer"],
        "per_layer": ["block", "mlp_ratio"],
        "depths": [1, 2],
        "widths": [8, 16],
        "attentions": ["softmax"],
        "head_dim": 4,
        "mlp_ratios": [2, 4],
        "stride": 2,
    }
    static = "nas.blocks.nn.efficientvit_mit:EfficientViTMITBlock"
    elastic = "nas.blocks.nn.efficientvit_mit:ElasticEfficientViTMITBlock"
    units = {"lite-mla": "nas.blocks.nn.efficientvit_mit:lite_mla_kernel"}

    def layer(self, ctx: LayerContext) -> EfficientViTMITLayer:
        t = super().layer(ctx)
        return EfficientViTMITLayer(
            ctx.slot, t.hw, t.width, t.heads, t.head_dim, t.mlp_ratio, t.activation
        )

    def graph(self, b, layer: EfficientViTMITLayer, x: str) -> str:
        c, hw, act = layer.width, layer.hw, layer.activation
        heads, d, total, hidden = layer.heads, layer.head_dim, layer.total_dim, layer.hidden
        shape, qkv_shape = (c, hw, hw), (3 * total, hw, hw)
        qkv, _ = b.conv("attn.qkv", x, c, 3 * total, 1, 1, hw)
        with b.unit("lite-mla", side=hw, heads=heads, head_dim=d):
            agg, _ = b.conv(
                "attn.aggregate.dw", qkv, 3 * total, 3 * total, AGGREGATION_KERNEL, 1, hw,
                groups=3 * total,
            )  # fmt: skip
            agg, _ = b.conv(
                "attn.aggregate.pw", agg, 3 * total, 3 * total, 1, 1, hw, groups=3 * heads
            )
            both = b.op("attn.concat", "concat", [qkv, agg], qkv_shape, (6 * total, hw, hw))
            n = hw * hw
            tokens = b.op(
                "attn.tokens", "reshape", [both], (6 * total, hw, hw), (2 * heads, n, 3 * d)
            )
            scales = SimpleNamespace(hw=hw, heads=2 * heads, head_dim=d, v_dim=d)
            out = attention_kind(ATTENTION).graph(b, scales, tokens, tokens, tokens)
            out = b.op("attn.image", "reshape", [out], (2 * heads, n, d), (2 * total, hw, hw))
        out, _ = b.conv_bn_act("attn.proj", out, 2 * total, c, 1, 1, hw, None)
        x = b.op("attn.residual", "add", [out, x], shape, shape)
        node, _ = b.conv("local.expand", x, c, hidden, 1, 1, hw, bias=True)
        node = b.op("local.expand.act", act, [node], (hidden, hw, hw), (hidden, hw, hw))
        node, _ = b.conv("local.depthwise", node, hidden, hidden, 3, 1, hw, hidden, bias=True)
        node = b.op("local.depthwise.act", act, [node], (hidden, hw, hw), (hidden, hw, hw))
        node, _ = b.conv_bn_act("local.project", node, hidden, c, 1, 1, hw, None)
        return b.op("local.residual", "add", [node, x], shape, shape)

    def table_keys(self, table: str, layer: EfficientViTMITLayer) -> list[str] | None:
        return None
