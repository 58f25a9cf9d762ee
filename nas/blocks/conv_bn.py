"""A plain kxk conv (stride) + BatchNorm, with an optional activation: EfficientFormer's
"Embedding" between stages. It opens stages of the transformer kinds that declare
``downsample: conv`` (in place of the downsampling MBConv), with the stage's
``downsample_kernel``. The torch half is
:mod:`nas.blocks.nn.conv_bn`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.blocks.registry import BlockKind, LayerContext, register_block
from nas.blocks.shapes import conv_out_hw


@dataclass(frozen=True)
class ConvBNLayer:
    """kxk conv (stride, same padding) -> BatchNorm -> [activation]."""

    slot: str
    in_hw: int
    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    activation: str | None = None

    @property
    def out_hw(self) -> int:
        return conv_out_hw(self.in_hw, self.stride)


@register_block
class ConvBN(BlockKind):
    name = "conv_bn"
    role = "entry"
    layer_type = ConvBNLayer
    example = {
        "kind": "efficientformer",
        "depths": [1, 2],
        "widths": [8, 16],
        "head_dim": 4,
        "mlp_ratios": [2],
        "stride": 2,
        "downsample": "conv",
        "downsample_kernel": 3,
        "activation": "gelu",
    }
    static = "nas.blocks.nn.conv_bn:conv_bn_module"
    elastic = "nas.blocks.nn.conv_bn:ElasticConvBN"

    def layer(self, ctx: LayerContext) -> ConvBNLayer:
        """The layer opening a stage (``ctx.spec`` is the stage's)."""
        kernel = ctx.spec.downsample_kernel
        return ConvBNLayer(ctx.slot, ctx.side, ctx.in_ch, ctx.out_ch, kernel, ctx.stride)

    def graph(self, b, layer: ConvBNLayer, x: str) -> str:
        node, _ = b.conv_bn_act(
            "conv",
            x,
            layer.in_ch,
            layer.out_ch,
            layer.kernel,
            layer.stride,
            layer.in_hw,
            layer.activation,
        )
        return node
