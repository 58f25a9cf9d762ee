"""MBConv, the inverted residual of MobileNetV2/V3: [1x1 expand] -> kxk depthwise ->
[squeeze-excite] -> 1x1 project, with a skip when stride is 1 and the width is kept.

A stage ``kind: mbconv`` (or ``conv``) chooses ``kernels`` and ``expand_ratios`` and sets ``se``
and ``activation``. MBConv layers also follow the stem (expand ratio 1) and open transformer
stages. The torch half is :mod:`nas.blocks.nn.mbconv`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas import grammar
from nas.blocks.registry import BlockKind, ChoiceSpec, LayerContext, SettingSpec, register_block
from nas.blocks.shapes import conv_out_hw, make_divisible
from nas.blocks.tables import NOTE10, PIXEL4, PIXEL4_ACT, hwc, num


def expanded_channels(in_ch: int, expand_ratio: float) -> int:
    return in_ch if expand_ratio == 1 else make_divisible(round(in_ch * expand_ratio), 8)


def se_channels(mid_ch: int) -> int:
    return make_divisible(mid_ch // 4, 8)


@dataclass(frozen=True)
class MBConvLayer:
    """Inverted residual: [1x1 expand] -> kxk depthwise -> [squeeze-excite] -> 1x1 project.

    ``entry``: the layer opens a stage of another kind (the Pixel 4 table keys it apart).
    """

    slot: str
    in_hw: int
    in_ch: int
    out_ch: int
    expand_ratio: float
    kernel: int
    stride: int
    se: bool
    activation: str
    entry: bool = False

    @property
    def out_hw(self) -> int:
        return conv_out_hw(self.in_hw, self.stride)

    @property
    def mid_ch(self) -> int:
        return expanded_channels(self.in_ch, self.expand_ratio)

    @property
    def se_ch(self) -> int:
        return se_channels(self.mid_ch)

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_ch == self.out_ch


def squeeze_excite_nodes(b, x: str, channels: int, reduced: int, hw: int) -> str:
    """Squeeze-excite after node ``x`` (``channels`` x ``hw`` x ``hw``): one latency unit ``se``."""
    shape = (channels, hw, hw)
    with b.unit("se", c=channels, hw=hw, reduced=reduced):
        pooled = b.op("se.pool", "global_pool", [x], shape, (channels, 1, 1))
        squeezed, _ = b.conv("se.reduce", pooled, channels, reduced, 1, 1, 1, bias=True)
        squeezed = b.op("se.relu", "relu", [squeezed], (reduced, 1, 1), (reduced, 1, 1))
        gate, _ = b.conv("se.expand", squeezed, reduced, channels, 1, 1, 1, bias=True)
        gate = b.op("se.gate", "hsigmoid", [gate], (channels, 1, 1), (channels, 1, 1))
        return b.op("se.scale", "mul", [x, gate], shape, shape)


def conv_layer(layer_type: type, ctx: LayerContext, se: bool | None = None):
    """A layer of a kind taking MBConv's choices and settings (``layer_type`` has
    :class:`MBConvLayer`'s fields); ``se`` overrides the stage's setting."""
    return layer_type(
        ctx.slot,
        ctx.side,
        ctx.in_ch,
        ctx.out_ch,
        ctx.values["expand_ratio"],
        int(ctx.values["kernel"]),
        ctx.stride,
        ctx.spec.se if se is None else se,
        ctx.spec.activation,
    )


def flag(value, where: str) -> bool:
    return bool(value)


@register_block
class MBConv(BlockKind):
    name = "mbconv"
    aliases = ("conv",)
    layer_type = MBConvLayer
    choices = (
        ChoiceSpec("kernel", "kernels", "k", check=grammar.odd_kernels),
        ChoiceSpec("expand_ratio", "expand_ratios", "e", check=grammar.positive_ints),
    )
    settings = (
        SettingSpec("se", False, flag),
        SettingSpec("activation", "hswish", grammar.activation),
    )
    example = {
        "kind": "mbconv",
        "depths": [1, 2],
        "widths": [8, 16],
        "kernels": [3, 5],
        "expand_ratios": [1, 2],
        "per_layer": ["kernel"],
        "stride": 2,
        "se": True,
        "activation": "relu",
    }
    static = "nas.blocks.nn.mbconv:MBConv"
    elastic = "nas.blocks.nn.mbconv:ElasticMBConv"
    units = {"se": "nas.blocks.nn.mbconv:se_kernel"}

    def layer(self, ctx: LayerContext) -> MBConvLayer:
        return conv_layer(MBConvLayer, ctx)

    def graph(self, b, layer: MBConvLayer, x: str) -> str:
        hw, mid, act = layer.in_hw, layer.mid_ch, layer.activation
        node = x
        if layer.expand_ratio != 1:
            node, _ = b.conv_bn_act("expand", node, layer.in_ch, mid, 1, 1, hw, act)
        node, hw = b.conv_bn_act(
            "depthwise", node, mid, mid, layer.kernel, layer.stride, hw, act, depthwise=True
        )
        if layer.se:
            node = squeeze_excite_nodes(b, node, mid, layer.se_ch, hw)
        node, hw = b.conv_bn_act("project", node, mid, layer.out_ch, 1, 1, hw, None)
        if layer.residual:
            shape = (layer.out_ch, hw, hw)
            node = b.op("add", "add", [node, x], shape, shape)
        return node

    def table_keys(self, table: str, layer: MBConvLayer) -> list[str] | None:
        if table == PIXEL4 and layer.entry:
            return [
                f"transds_{layer.in_hw}_{layer.in_ch}_{layer.out_ch}_{layer.stride}"
                f"_{num(layer.expand_ratio)}"
            ]
        if table == PIXEL4:
            return [
                f"conv_{layer.in_hw}_{layer.in_ch}_{layer.out_ch}_{num(layer.expand_ratio)}"
                f"_{layer.stride}_{PIXEL4_ACT[layer.activation]}_{layer.kernel}"
                f"_{'se' if layer.se else 'nose'}"
            ]
        if table == NOTE10:
            return [
                f"expanded_conv-input:{hwc(layer.in_hw, layer.in_ch)}"
                f"-output:{hwc(layer.out_hw, layer.out_ch)}-expand:{layer.mid_ch}"
                f"-kernel:{layer.kernel}-stride:{layer.stride}-idskip:{int(layer.residual)}"
                f"-se:{int(layer.se)}-hs:{int(layer.activation == 'hswish')}"
            ]
        return None
