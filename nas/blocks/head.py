"""The classifier head: an optional 1x1 conv expanding the last width (BN, activation), an
optional LayerNorm over the channels of every position, global average pool, an optional feature
linear layer (activation), an optional BatchNorm, the classifier and an optional distillation
classifier whose logits are averaged with the classifier's (DeiT-style, as EfficientFormer and
RepViT train).

Declared by the space's ``head`` mapping: ``expand_ratio`` or ``expand_width`` (neither: no
expand conv), ``feature_width`` (0: no feature layer), ``activation``, ``norm`` (``none``,
``layernorm`` before the pool, or ``batchnorm`` on the pooled features) and ``distillation``.
Norm, pool, feature layer and classifiers are timed as one latency unit (``head``). When exported
(the kind's deploy step) the BatchNorm folds into the classifiers; the operator graph is of that
form. The torch half is :mod:`nas.blocks.nn.head`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas import grammar
from nas.blocks.registry import BlockKind, LayerContext, register_block
from nas.blocks.tables import NOTE10, PIXEL4, PIXEL4_ACT, hwc, num
from nas.grammar import SpaceError

#: Norms a head may apply: none, LayerNorm before the pool, BatchNorm after it.
HEAD_NORMS = ("none", "layernorm", "batchnorm")


@dataclass(frozen=True)
class HeadSpec:
    """[1x1 conv to ``expand_ratio`` x the last width (or ``expand_width``)], [norm], pool,
    [feature layer], [norm], classifier [+ distillation classifier]."""

    feature_width: int
    expand_ratio: int | None = None
    expand_width: int | None = None
    activation: str = "hswish"
    norm: str = "none"
    distillation: bool = False

    @property
    def expand(self) -> bool:
        return bool(self.expand_width or self.expand_ratio)

    def expand_channels(self, last_width: int) -> int:
        return self.expand_width if self.expand_width else last_width * (self.expand_ratio or 1)


@dataclass(frozen=True)
class HeadLayer:
    """[1x1 conv expand] -> [LayerNorm] -> global pool -> [feature linear] -> [BatchNorm] ->
    classifier [+ distillation classifier, averaged]. ``expand_ch`` is ``in_ch`` without the
    expand conv; ``feature_ch`` 0 means no feature layer."""

    slot: str
    in_hw: int
    in_ch: int
    expand_ch: int
    feature_ch: int
    num_classes: int
    activation: str
    expand: bool = True
    norm: str = "none"
    distillation: bool = False

    @property
    def pooled_ch(self) -> int:
        """Width of the classifiers' input."""
        return self.feature_ch or self.expand_ch

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
    example = {"expand_ratio": 2, "feature_width": 16, "norm": "layernorm", "distillation": True}
    static = "nas.blocks.nn.head:ClassifierHead"
    elastic = "nas.blocks.nn.head:ElasticHead"
    deploy = "nas.blocks.nn.head:fold_norm"
    units = {"head": "nas.blocks.nn.head:head_kernel"}

    def parse(self, data: Any) -> HeadSpec:
        """The space's ``head`` mapping."""
        known = {"feature_width", "expand_ratio", "expand_width", "activation", "norm"}
        grammar.reject_unknown(data, {*known, "distillation"}, "head")
        if "feature_width" not in data:
            raise SpaceError("head.feature_width is missing (0: no feature layer)")
        if "expand_ratio" in data and "expand_width" in data:
            raise SpaceError("head takes one of expand_ratio or expand_width (neither: no expand)")
        feature = data["feature_width"]
        distillation = data.get("distillation", False)
        if not isinstance(distillation, bool):
            raise SpaceError(f"head.distillation = {distillation!r} must be true or false")
        return HeadSpec(
            feature_width=0
            if feature == 0
            else grammar.positive_int(feature, "head.feature_width"),
            expand_ratio=_optional_int(data, "expand_ratio"),
            expand_width=_optional_int(data, "expand_width"),
            activation=grammar.activation(data.get("activation", "hswish"), "head.activation"),
            norm=grammar.one_of(data.get("norm", "none"), HEAD_NORMS, "head.norm"),
            distillation=distillation,
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
            spec.expand,
            spec.norm,
            spec.distillation,
        )

    def graph(self, b, layer: HeadLayer, x: str) -> str:
        """As exported: the BatchNorm folded into the classifiers."""
        node, hw, c = x, layer.in_hw, layer.expand_ch
        if layer.expand:
            node, hw = b.conv_bn_act(
                "expand", x, layer.in_ch, c, 1, 1, layer.in_hw, layer.activation
            )
        features = {
            "c": c,
            "hw": hw,
            "feature": layer.feature_ch,
            "classes": layer.num_classes,
            "act": layer.activation,
        }
        features.update(head_options(layer))
        classes, pooled = layer.num_classes, layer.pooled_ch
        with b.unit("head", **features):
            if layer.norm == "layernorm":
                shape = (c, hw, hw)
                node = b.op("norm", "layernorm", [node], shape, shape, params=2 * c)
            node = b.op("pool", "global_pool", [node], (c, hw, hw), (c,))
            if layer.feature_ch:
                node = b.linear("feature", node, None, c, layer.feature_ch, bias=False)
                node = b.op("act", layer.activation, [node], (pooled,), (pooled,))
            logits = b.linear("classifier", node, None, pooled, classes)
            if not layer.distillation:
                return logits
            dist = b.linear("distillation", node, None, pooled, classes)
            both = b.op("heads.add", "add", [logits, dist], (classes,), (classes,))
            return b.op("heads.mean", "mul", [both], (classes,), (classes,))

    def table_keys(self, table: str, layer: HeadLayer) -> list[str] | None:
        if head_options(layer) or not layer.feature_ch:
            return None
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


def head_options(layer: HeadLayer) -> dict[str, Any]:
    """The head's options other than the classic expand/pool/feature/classifier (latency-unit
    features; empty for the classic head, so its kernels keep their keys)."""
    options: dict[str, Any] = {}
    if not layer.expand:
        options["expand"] = False
    if layer.norm != "none":
        options["norm"] = layer.norm
    if layer.distillation:
        options["distillation"] = True
    return options


def _optional_int(data: Any, key: str) -> int | None:
    return grammar.positive_int(data[key], f"head.{key}") if key in data else None
