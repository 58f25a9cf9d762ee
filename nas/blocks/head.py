"""The classifier head: a 1x1 conv expanding the last width (BN, activation), global average
pool, a feature linear layer (activation), the classifier. Declared by the space's ``head``
mapping: ``feature_width``, one of ``expand_ratio`` or ``expand_width``, ``activation``. Pool,
feature layer and classifier are timed as one latency unit (``head``). The torch half is
:mod:`nas.blocks.nn.head`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas import grammar
from nas.blocks.registry import BlockKind, LayerContext, register_block
from nas.blocks.tables import NOTE10, PIXEL4, PIXEL4_ACT, hwc, num
from nas.grammar import SpaceError


@dataclass(frozen=True)
class HeadSpec:
    """1x1 conv to ``expand_ratio`` x the last width (or ``expand_width``), pool, feature layer."""

    feature_width: int
    expand_ratio: int | None = None
    expand_width: int | None = None
    activation: str = "hswish"

    def expand_channels(self, last_width: int) -> int:
        return self.expand_width if self.expand_width else last_width * (self.expand_ratio or 1)


@dataclass(frozen=True)
class HeadLayer:
    """1x1 conv expand -> global pool -> feature linear -> classifier."""

    slot: str
    in_hw: int
    in_ch: int
    expand_ch: int
    feature_ch: int
    num_classes: int
    activation: str

    @property
    def out_hw(self) -> int:
        return 1

    @property
    def out_ch(self) -> int:
        return self.num_classes


@register_block
class Head(BlockKind):
    name = "head"
    role = "head"
    layer_type = HeadLayer
    example = {"expand_ratio": 2, "feature_width": 16}
    static = "nas.blocks.nn.head:ClassifierHead"
    elastic = "nas.blocks.nn.head:ElasticHead"
    units = {"head": "nas.blocks.nn.head:head_kernel"}

    def parse(self, data: Any) -> HeadSpec:
        """The space's ``head`` mapping."""
        known = {"feature_width", "expand_ratio", "expand_width", "activation"}
        grammar.reject_unknown(data, known, "head")
        if "feature_width" not in data:
            raise SpaceError("head.feature_width is missing")
        if ("expand_ratio" in data) == ("expand_width" in data):
            raise SpaceError("head needs exactly one of expand_ratio or expand_width")
        return HeadSpec(
            feature_width=grammar.positive_int(data["feature_width"], "head.feature_width"),
            expand_ratio=data.get("expand_ratio"),
            expand_width=data.get("expand_width"),
            activation=grammar.activation(data.get("activation", "hswish"), "head.activation"),
        )

    def layer(self, ctx: LayerContext) -> HeadLayer:
        spec = ctx.spec
        return HeadLayer(
            ctx.slot,
            ctx.side,
            ctx.in_ch,
            spec.expand_channels(ctx.in_ch),
            spec.feature_width,
            ctx.out_ch,
            spec.activation,
        )

    def graph(self, b, layer: HeadLayer, x: str) -> str:
        node, hw = b.conv_bn_act(
            "expand", x, layer.in_ch, layer.expand_ch, 1, 1, layer.in_hw, layer.activation
        )
        features = {
            "c": layer.expand_ch,
            "hw": hw,
            "feature": layer.feature_ch,
            "classes": layer.num_classes,
            "act": layer.activation,
        }
        with b.unit("head", **features):
            node = b.op(
                "pool", "global_pool", [node], (layer.expand_ch, hw, hw), (layer.expand_ch,)
            )
            node = b.linear("feature", node, None, layer.expand_ch, layer.feature_ch, bias=False)
            node = b.op("act", layer.activation, [node], (layer.feature_ch,), (layer.feature_ch,))
            return b.linear("classifier", node, None, layer.feature_ch, layer.num_classes)

    def table_keys(self, table: str, layer: HeadLayer) -> list[str] | None:
        hw, cin, mid, feat = layer.in_hw, layer.in_ch, layer.expand_ch, layer.feature_ch
        if table == PIXEL4:
            return [f"mbpool_{hw}_{cin}_{feat}_{num(mid / cin)}_{PIXEL4_ACT[layer.activation]}"]
        if table == NOTE10:
            return [
                f"Conv_1-input:{hwc(hw, cin)}-output:{hwc(hw, mid)}",
                f"AvgPool2D-input:{hwc(hw, mid)}-output:{hwc(1, mid)}",
                f"Conv_2-input:{hwc(1, mid)}-output:{hwc(1, feat)}",
                f"Logits-input:{hwc(1, feat)}-output:{layer.num_classes}",
            ]
        return None
