"""Fused-MBConv (EfficientNetV2): a kxk conv expanding the channels (stride, BN, activation) ->
[squeeze-excite] -> 1x1 project (BN), with a skip when stride is 1 and the width is kept; at
expand ratio 1, a single kxk conv (stride, BN, activation) -> [squeeze-excite].

It takes MBConv's choices and settings (``kernels``, ``expand_ratios``, ``se``, ``activation``),
so a stage may choose between the two (``blocks: [mbconv, fused_mbconv]``). The torch half is
:mod:`nas.blocks.nn.fused_mbconv`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.blocks.mbconv import (
    MBConv,
    MBConvLayer,
    conv_layer,
    se_channels,
    squeeze_excite_nodes,
)
from nas.blocks.registry import BlockKind, LayerContext, register_block


@dataclass(frozen=True)
class FusedMBConvLayer(MBConvLayer):
    """The shapes of an MBConv layer; ``mid_ch`` is the kxk conv's output (``out_ch`` at expand
    ratio 1, where there is no projection)."""

    @property
    def single(self) -> bool:
        """One kxk conv, no projection (expand ratio 1)."""
        return self.expand_ratio == 1

    @property
    def conv_ch(self) -> int:
        """Output channels of the kxk conv."""
        return self.out_ch if self.single else self.mid_ch

    @property
    def se_ch(self) -> int:
        return se_channels(self.conv_ch)


@register_block
class FusedMBConv(BlockKind):
    name = "fused_mbconv"
    layer_type = FusedMBConvLayer
    choices = MBConv.choices
    settings = MBConv.settings
    example = {
        "blocks": ["fused_mbconv", "mbconv"],
        "per_layer": ["block", "kernel", "expand_ratio"],
        "depths": [1, 2],
        "widths": [8, 16],
        "kernels": [3, 5],
        "expand_ratios": [1, 2],
        "stride": 2,
        "se": True,
        "activation": "silu",
    }
    static = "nas.blocks.nn.fused_mbconv:FusedMBConv"
    elastic = "nas.blocks.nn.fused_mbconv:ElasticFusedMBConv"

    def layer(self, ctx: LayerContext) -> FusedMBConvLayer:
        return conv_layer(self.layer_type, ctx)

    def graph(self, b, layer: FusedMBConvLayer, x: str) -> str:
        hw, ch, act = layer.in_hw, layer.conv_ch, layer.activation
        name = "conv" if layer.single else "expand"
        node, hw = b.conv_bn_act(name, x, layer.in_ch, ch, layer.kernel, layer.stride, hw, act)
        if layer.se:
            node = squeeze_excite_nodes(b, node, ch, layer.se_ch, hw)
        if not layer.single:
            node, hw = b.conv_bn_act("project", node, ch, layer.out_ch, 1, 1, hw, None)
        if layer.residual:
            shape = (layer.out_ch, hw, hw)
            node = b.op("add", "add", [node, x], shape, shape)
        return node
