"""RepViT: a MobileNetV3-like block re-thought from the ViT view, with a re-parameterised token
mixer. A layer that keeps the side and width mixes tokens with a kxk depthwise conv + BN, a 1x1
depthwise conv (with bias) and the identity, summed and batch-normalised (RepVGGDW); other layers
use a kxk depthwise conv (stride) + BN and a 1x1 conv + BN to the new width. Then optional
squeeze-excite (on every other token-mixing layer of a stage, from the first, never on a
downsampling one, as RepViT places it) and the
channel mixer, a residual 1x1 conv FFN (BN, activation, BN).

It takes MBConv's choices and settings, read as RepViT's: ``kernels`` (the token mixer's
depthwise kernel), ``expand_ratios`` (the FFN's hidden ratio; RepViT uses 2), ``se`` and
``activation`` (RepViT uses GELU), so a stage may choose among ``[mbconv, fused_mbconv, repvit]``.
When exported (the kind's deploy step) the three branches of the token mixer fold into one
depthwise conv with bias; the operator graph is of that form. The torch half is
:mod:`nas.blocks.nn.repvit`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from nas.blocks.mbconv import (
    MBConv,
    MBConvLayer,
    conv_layer,
    expanded_channels,
    se_channels,
    squeeze_excite_nodes,
)
from nas.blocks.registry import BlockKind, LayerContext, register_block


@dataclass(frozen=True)
class RepViTLayer(MBConvLayer):
    """Token mixer (RepVGGDW, or a strided depthwise conv and a 1x1 conv) -> [SE] -> FFN; the
    fields of an MBConv layer, ``expand_ratio`` being the FFN's."""

    @property
    def identity(self) -> bool:
        """The token mixer is RepVGGDW (side and width kept); else a downsampling mixer."""
        return self.stride == 1 and self.in_ch == self.out_ch

    @property
    def hidden(self) -> int:
        return expanded_channels(self.out_ch, self.expand_ratio)

    @property
    def se_ch(self) -> int:
        return se_channels(self.in_ch)


@register_block
class RepViT(BlockKind):
    name = "repvit"
    layer_type = RepViTLayer
    choices = MBConv.choices
    settings = MBConv.settings
    example = {
        "blocks": ["repvit", "mbconv"],
        "per_layer": ["block", "kernel"],
        "depths": [2, 3],
        "widths": [8, 16],
        "kernels": [3, 5],
        "expand_ratios": [1, 2],
        "stride": 2,
        "se": True,
        "activation": "gelu",
    }
    static = "nas.blocks.nn.repvit:RepViTBlock"
    elastic = "nas.blocks.nn.repvit:ElasticRepViTBlock"
    deploy = "nas.blocks.nn.repvit:fold_token_mixer"

    def layer(self, ctx: LayerContext) -> RepViTLayer:
        layer = conv_layer(RepViTLayer, ctx, se=False)
        # RepViT's placement: every other token-mixing layer from the stage's first, never on a
        # downsampling layer (in a strided stage, layer 0)
        position = ctx.index - (ctx.spec.stride != 1)
        se = bool(ctx.spec.se) and layer.identity and position % 2 == 0
        return replace(layer, se=se) if se else layer

    def graph(self, b, layer: RepViTLayer, x: str) -> str:
        """As exported: the RepVGGDW branches folded into one depthwise conv with bias."""
        hw, c, out, k = layer.in_hw, layer.in_ch, layer.out_ch, layer.kernel
        if layer.identity:
            node, hw = b.conv("mixer", x, c, c, k, 1, hw, groups=c, bias=True)
        else:
            node, hw = b.conv_bn_act("mixer", x, c, c, k, layer.stride, hw, None, depthwise=True)
        if layer.se:
            node = squeeze_excite_nodes(b, node, c, layer.se_ch, hw)
        if not layer.identity:
            node, hw = b.conv_bn_act("project", node, c, out, 1, 1, hw, None)
        mixed = node
        node, _ = b.conv_bn_act("ffn1", node, out, layer.hidden, 1, 1, hw, layer.activation)
        node, _ = b.conv_bn_act("ffn2", node, layer.hidden, out, 1, 1, hw, None)
        shape = (out, hw, hw)
        return b.op("ffn.add", "add", [node, mixed], shape, shape)
