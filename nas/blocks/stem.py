"""The stem: a kxk conv (BN, activation) on the image -- or up to four, each of stride
``stride``, each doubling the width up to the stem's (``convs: 2``, as in EfficientFormer and
RepViT: width / 2, width; ``convs: 4``, as in EfficientViT (Microsoft): width / 8, / 4, / 2,
width) -- then optional depthwise-separable layers (MBConv layers of expand ratio 1, as in
ElasticViT). Declared by the
space's ``stem`` mapping: ``widths`` (a choice), ``stride``, ``kernel``, ``activation``,
``convs``, ``ds_depths`` (a choice), ``ds_kernel``, ``ds_activation``. The torch half is :mod:`nas.blocks.nn.stem`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas import grammar
from nas.blocks.mbconv import MBConvLayer
from nas.blocks.registry import BlockKind, LayerContext, register_block
from nas.blocks.shapes import conv_out_hw
from nas.blocks.tables import NOTE10, PIXEL4, hwc
from nas.grammar import SpaceError


@dataclass(frozen=True)
class StemSpec:
    """A ``kernel`` x ``kernel`` conv (BN, activation), then ``depth`` depthwise-separable layers."""

    widths: tuple[int, ...]
    stride: int = 2
    kernel: int = 3
    activation: str = "hswish"
    ds_depths: tuple[int, ...] = (0,)
    ds_kernel: int = 3
    ds_activation: str | None = None
    convs: int = 1

    @property
    def total_stride(self) -> int:
        """The stride of the stem's convs together."""
        return self.stride**self.convs


@dataclass(frozen=True)
class StemLayer:
    slot: str
    in_hw: int
    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    activation: str
    convs: int = 1

    @property
    def conv_widths(self) -> tuple[int, ...]:
        """Output width of each conv: doubling up to the stem's width."""
        return tuple(self.out_ch >> (self.convs - 1 - i) for i in range(self.convs))

    @property
    def out_hw(self) -> int:
        return conv_out_hw(self.in_hw, self.stride**self.convs)


@register_block
class Stem(BlockKind):
    name = "stem"
    role = "stem"
    layer_type = StemLayer
    example = {"widths": [4, 8], "stride": 1, "kernel": 3, "convs": 3, "ds_depths": [0, 1]}
    static = "nas.blocks.nn.stem:stem_module"
    elastic = "nas.blocks.nn.stem:elastic_stem"

    def parse(self, data: Any) -> StemSpec:
        """The space's ``stem`` mapping."""
        known = {"widths", "stride", "kernel", "activation", "ds_depths", "ds_kernel", "convs"}
        grammar.reject_unknown(data, {*known, "ds_activation"}, "stem")
        ds_activation = data.get("ds_activation")
        return StemSpec(
            widths=grammar.int_list(data.get("widths"), "stem.widths"),
            stride=grammar.positive_int(data.get("stride", 2), "stem.stride"),
            kernel=grammar.odd_kernel(data.get("kernel", 3), "stem.kernel"),
            activation=grammar.activation(data.get("activation", "hswish"), "stem.activation"),
            ds_depths=tuple(grammar.nonnegative_ints(data.get("ds_depths", [0]), "stem.ds_depths")),
            ds_kernel=grammar.odd_kernel(data.get("ds_kernel", 3), "stem.ds_kernel"),
            convs=_convs(data),
            ds_activation=(
                None
                if "ds_activation" not in data
                else grammar.activation(ds_activation, "stem.ds_activation")
            ),
        )

    def layer(self, ctx: LayerContext) -> StemLayer:
        spec = ctx.spec
        return StemLayer(
            ctx.slot,
            ctx.side,
            ctx.in_ch,
            ctx.out_ch,
            spec.kernel,
            spec.stride,
            spec.activation,
            spec.convs,
        )

    def ds_layer(self, ctx: LayerContext) -> MBConvLayer:
        """A depthwise-separable layer after the stem conv."""
        spec = ctx.spec
        act = spec.ds_activation or spec.activation
        return MBConvLayer(
            ctx.slot, ctx.side, ctx.in_ch, ctx.in_ch, 1, spec.ds_kernel, 1, False, act
        )

    def graph(self, b, layer: StemLayer, x: str) -> str:
        widths = [layer.in_ch, *layer.conv_widths]
        node, hw = x, layer.in_hw
        for i, (cin, cout) in enumerate(zip(widths, widths[1:], strict=False)):
            name = "stem" if i == 0 else f"stem{i + 1}"
            act = layer.activation
            node, hw = b.conv_bn_act(name, node, cin, cout, layer.kernel, layer.stride, hw, act)
        return node

    def table_keys(self, table: str, layer: StemLayer) -> list[str] | None:
        if layer.convs != 1:
            return None
        if table == PIXEL4:
            return [
                f"firstconv_{layer.in_hw}_{layer.in_ch}_{layer.out_ch}_{layer.stride}"
                f"_{layer.kernel}"
            ]
        if table == NOTE10:
            return [
                f"Conv-input:{hwc(layer.in_hw, layer.in_ch)}"
                f"-output:{hwc(layer.out_hw, layer.out_ch)}"
            ]
        return None


#: How many convs a stem may have.
STEM_CONVS = (1, 2, 3, 4)


def _convs(data: Any) -> int:
    """The stem's ``convs``; each width must halve ``convs - 1`` times into whole channels."""
    convs = grammar.one_of(data.get("convs", 1), STEM_CONVS, "stem.convs")
    step = 2 ** (convs - 1)
    bad = [w for w in data.get("widths", []) if isinstance(w, int) and w % step]
    if bad:
        raise SpaceError(
            f"stem.widths {bad} are not multiples of {step} (convs = {convs}: the first conv "
            f"has width / {step} channels)"
        )
    return convs
