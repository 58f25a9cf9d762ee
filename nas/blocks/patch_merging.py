"""EfficientViT's (Microsoft, Liu et al.) patch merging between stages, with the residual pairs
around it: ``x + BN(dw3x3(x))`` and ``x + FFN(x)`` at the input width, then 1x1 conv + BN
(expand to ``expand_ratio`` x the input width), activation, kxk depthwise conv + BN (the stage's
stride), activation, squeeze-excite (a quarter of the channels), 1x1 conv + BN to the stage
width, then the two residual parts again at the stage width. FFN = 1x1 conv + BN to
:data:`FFN_RATIO` x the width, activation, 1x1 conv + BN.

It opens stages of the transformer kinds that declare ``downsample: patch_merging`` (in place of
the downsampling MBConv), with the stage's ``downsample_expand`` (or its choice,
``downsample_expands``; EfficientViT's is 4), ``downsample_kernel`` (3) and ``activation``
(ReLU). The torch half is :mod:`nas.blocks.nn.patch_merging`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.blocks.efficientvit_msra import residual_depthwise, residual_ffn
from nas.blocks.mbconv import se_channels, squeeze_excite_nodes
from nas.blocks.registry import BlockKind, LayerContext, register_block
from nas.blocks.shapes import conv_out_hw

#: Hidden width of the FFNs of the residual pairs, in multiples of their width (EfficientViT's).
FFN_RATIO = 2


@dataclass(frozen=True)
class PatchMergingLayer:
    """Residual pair, 1x1 expand -> kxk depthwise (stride) -> squeeze-excite -> 1x1 project,
    residual pair."""

    slot: str
    in_hw: int
    in_ch: int
    out_ch: int
    expand_ratio: int
    kernel: int
    stride: int
    activation: str

    @property
    def out_hw(self) -> int:
        return conv_out_hw(self.in_hw, self.stride)

    @property
    def mid_ch(self) -> int:
        """Channels of the expanded map."""
        return self.in_ch * self.expand_ratio

    @property
    def se_ch(self) -> int:
        return se_channels(self.mid_ch)


@register_block
class PatchMerging(BlockKind):
    name = "patch_merging"
    role = "entry"
    layer_type = PatchMergingLayer
    example = {
        "kind": "efficientvit_msra",
        "depths": [1, 2],
        "widths": [8, 16],
        "head_dim": 4,
        "heads": [2],
        "mlp_ratios": [2],
        "stride": 2,
        "downsample": "patch_merging",
        "downsample_expands": [2, 4],
        "activation": "relu",
    }
    static = "nas.blocks.nn.patch_merging:PatchMerging"
    elastic = "nas.blocks.nn.patch_merging:ElasticPatchMerging"

    def layer(self, ctx: LayerContext) -> PatchMergingLayer:
        """The layer opening a stage (``ctx.spec`` is the stage's)."""
        spec = ctx.spec
        return PatchMergingLayer(
            ctx.slot,
            ctx.side,
            ctx.in_ch,
            ctx.out_ch,
            int(ctx.values.get("downsample_expand", spec.downsample_expand)),
            spec.downsample_kernel,
            ctx.stride,
            spec.activation,
        )

    def graph(self, b, layer: PatchMergingLayer, x: str) -> str:
        c, hw, act, mid = layer.in_ch, layer.in_hw, layer.activation, layer.mid_ch
        x = residual_depthwise(b, "pre.dw", c, hw, x)
        x = residual_ffn(b, "pre.ffn", c, c * FFN_RATIO, hw, act, x)
        x, _ = b.conv_bn_act("expand", x, c, mid, 1, 1, hw, act)
        x, hw = b.conv_bn_act(
            "depthwise", x, mid, mid, layer.kernel, layer.stride, hw, act, depthwise=True
        )
        x = squeeze_excite_nodes(b, x, mid, layer.se_ch, hw)
        c = layer.out_ch
        x, _ = b.conv_bn_act("project", x, mid, c, 1, 1, hw, None)
        x = residual_depthwise(b, "post.dw", c, hw, x)
        return residual_ffn(b, "post.ffn", c, c * FFN_RATIO, hw, act, x)
