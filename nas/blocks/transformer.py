"""Transformer stages: one downsampling MBConv layer, then layers of pre-LayerNorm attention and
MLP, each residual, on the feature map as a token sequence.

A stage ``kind: transformer`` chooses ``attentions`` (registered attention kinds: softmax,
relu_linear; per layer with ``per_layer: [attention]``), ``heads`` (default width / head_dim),
``v_scales`` (value width per head, in head_dims) and ``mlp_ratios``; it sets ``head_dim``,
``activation``, ``downsample`` (the layer opening the stage: ``mbconv``, the default; ``conv``, a
kxk conv + BN, EfficientFormer's embedding; ``patch_merging``, EfficientViT's (Microsoft) patch
merging between residual depthwise-conv + FFN pairs; or ``none``, for a stride-1 stage keeping
the width), ``downsample_expand`` (or chooses it, ``downsample_expands``) and
``downsample_kernel``. Attention projects queries, keys and values, runs the attention kind's
core (one latency unit per kind), adds a 3x3 depthwise conv of the values, and projects back. Layers of other kinds built on it may be *plain* (standard
multi-head attention: no value conv and no activation before the projection). The torch half is
:mod:`nas.blocks.nn.transformer`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nas import grammar
from nas.blocks.mbconv import MBConvLayer, flag
from nas.blocks.registry import (
    BlockKind,
    ChoiceSpec,
    LayerContext,
    SettingSpec,
    attention_kind,
    attention_names,
    block_kind,
    register_block,
)
from nas.blocks.shapes import SameShape
from nas.blocks.tables import PIXEL4, PIXEL4_ACT
from nas.grammar import SpaceError


@dataclass(frozen=True)
class TransformerLayer(SameShape):
    """Pre-norm attention (with depthwise conv on V) + pre-norm MLP, both residual."""

    slot: str
    hw: int
    width: int
    heads: int
    head_dim: int
    v_scale: int
    mlp_ratio: int
    attention: str
    activation: str

    #: Standard multi-head attention: no depthwise conv of the values, no activation before
    #: the output projection (the transformer kind's own layers are not plain).
    plain = False
    #: Whether the layer adds its attention kind's learned position bias (if the kind has one).
    position_bias = True

    @property
    def qk_dim(self) -> int:
        """Key channels."""
        return self.heads * self.head_dim

    @property
    def q_dim(self) -> int:
        """Query channels: the attention kind's per head (head_dim unless it says otherwise)."""
        return self.heads * (attention_kind(self.attention).score_dim or self.head_dim)

    @property
    def uses_position_bias(self) -> bool:
        return self.position_bias and attention_kind(self.attention).position_bias

    @property
    def position_tables(self) -> int:
        """Learned position-bias tables: one per head."""
        return self.heads

    @property
    def v_dim(self) -> int:
        """Value channels per head."""
        return self.head_dim * self.v_scale

    @property
    def mlp_hidden(self) -> int:
        return self.width * self.mlp_ratio

    def attention_core(self) -> TransformerLayer:
        """The layer as its attention core sees it: one sequence of all ``hw * hw`` tokens."""
        return self


#: What may open a stage of a transformer kind (``downsample``), and the entry kind building it
#: (None: the downsampling MBConv, or no entry layer for ``none``).
ENTRY_KINDS = {"mbconv": None, "conv": "conv_bn", "patch_merging": "patch_merging", "none": None}
DOWNSAMPLES = tuple(ENTRY_KINDS)


#: Token mixers of efficientformer layers (``mixers``): pooling (Meta4D) or attention (Meta3D).
MIXERS = ("pool", "attention")


def _mixers(values: tuple[Any, ...], where: str) -> None:
    for value in values:
        grammar.one_of(value, MIXERS, where)


@dataclass(frozen=True)
class PlainTransformerLayer(TransformerLayer):
    """Standard pre-norm multi-head attention and MLP (MobileViT's transformer layer): no value
    conv, no activation before the projection, no position bias."""

    plain = True
    position_bias = False


def _attentions(values: tuple[Any, ...], where: str) -> None:
    for value in values:
        grammar.one_of(value, attention_names(), where)


@register_block
class Transformer(BlockKind):
    name = "transformer"
    layer_type = TransformerLayer
    entry = "downsample"
    entry_choices = ("downsample_expand",)
    choices = (
        ChoiceSpec("attention", "attentions", "", default=("softmax",), check=_attentions),
        ChoiceSpec("heads", "heads", "h", optional=True, check=grammar.positive_ints),
        ChoiceSpec("v_scale", "v_scales", "v", default=(1,), check=grammar.positive_ints),
        ChoiceSpec("mlp_ratio", "mlp_ratios", "mlp", check=grammar.positive_ints),
        # read by efficientformer layers: pooling (Meta4D) or attention (Meta3D) token mixing
        ChoiceSpec("mixer", "mixers", "", optional=True, check=_mixers),
        # the expand ratio of the downsampling MBConv opening the stage (else the setting)
        ChoiceSpec(
            "downsample_expand",
            "downsample_expands",
            "de",
            optional=True,
            check=grammar.positive_ints,
        ),
        # read by mobilevit and mobilevitv2 layers: transformer layers inside one block
        ChoiceSpec(
            "transformer_depth",
            "transformer_depths",
            "L",
            optional=True,
            check=grammar.positive_ints,
        ),
    )
    settings = (
        SettingSpec("activation", "hswish", grammar.activation),
        SettingSpec("head_dim", 16, grammar.positive_int),
        SettingSpec("downsample", "mbconv", lambda v, w: grammar.one_of(v, DOWNSAMPLES, w)),
        SettingSpec("downsample_expand", 6, grammar.positive_int),
        SettingSpec("downsample_kernel", 3, grammar.odd_kernel),
        # accepted for space files that set it on every stage; transformer layers have no SE
        SettingSpec("se", False, flag),
        # read by efficientvit_msra layers: attention within windows of this side (0: global)
        SettingSpec("window", 0, grammar.nonnegative_int),
    )
    example = {
        "kind": "transformer",
        "depths": [1, 2],
        "widths": [16],
        "attentions": ["softmax", "relu_linear"],
        "heads": [1, 2],
        "head_dim": 4,
        "v_scales": [1, 2],
        "mlp_ratios": [2],
        "per_layer": ["attention"],
        "stride": 2,
    }
    static = "nas.blocks.nn.transformer:TransformerBlock"
    elastic = "nas.blocks.nn.transformer:ElasticTransformerBlock"

    def stage_entry(self, settings: Mapping[str, Any]) -> str | None:
        return None if settings["downsample"] == "none" else self.entry

    def check_stage(self, choices: Mapping[str, tuple], settings: Mapping[str, Any], where: str):
        if settings["downsample"] == "none" and settings.get("stride", 1) != 1:
            raise SpaceError(f"{where}: downsample = 'none' needs stride 1")
        if "heads" in choices:
            return
        head_dim = settings["head_dim"]
        bad = [w for w in choices["width"] if w % head_dim]
        if bad:
            raise SpaceError(
                f"{where}.widths {bad} are not multiples of head_dim = {head_dim} "
                "(heads = width / head_dim when heads are not declared)"
            )

    def entry_layer(self, ctx: LayerContext) -> Any:
        spec = ctx.spec
        entry_kind = ENTRY_KINDS[spec.downsample]
        if entry_kind is not None:
            return block_kind(entry_kind, role="entry").layer(ctx)
        return MBConvLayer(
            ctx.slot,
            ctx.side,
            ctx.in_ch,
            ctx.out_ch,
            ctx.values.get("downsample_expand", spec.downsample_expand),
            spec.downsample_kernel,
            ctx.stride,
            False,
            spec.activation,
            entry=True,
        )

    def layer(self, ctx: LayerContext) -> TransformerLayer:
        spec, values, width = ctx.spec, ctx.values, ctx.out_ch
        heads = values["heads"] if "heads" in values else width // spec.head_dim
        return TransformerLayer(
            ctx.slot,
            ctx.side,
            width,
            int(heads),
            spec.head_dim,
            int(values["v_scale"]),
            int(values["mlp_ratio"]),
            str(values["attention"]),
            spec.activation,
        )

    def graph(self, b, layer: TransformerLayer, x: str) -> str:
        n, c, d = layer.hw * layer.hw, layer.width, layer.head_dim
        inner_v, hidden = layer.heads * layer.v_dim, layer.mlp_hidden
        tokens, image = (n, c), (c, layer.hw, layer.hw)
        x = b.op("to_tokens", "reshape", [x], image, tokens)
        norm = b.op("norm1", "layernorm", [x], tokens, tokens, params=2 * c)
        q = b.linear("attn.q", norm, n, c, layer.q_dim)
        k = b.linear("attn.k", norm, n, c, layer.qk_dim)
        v = b.linear("attn.v", norm, n, c, inner_v)
        if not layer.plain:
            local, _ = b.conv(
                "attn.v_local", v, inner_v, inner_v, 3, 1, layer.hw, groups=inner_v, bias=True
            )
        attention = attention_kind(layer.attention)
        core = layer.attention_core()
        features = {"tokens": core.hw**2, "side": core.hw, "heads": core.heads, "head_dim": d}
        if attention.position_bias and not layer.position_bias:
            features["position_bias"] = False
        with b.unit(attention.unit, **features, v_dim=layer.v_dim):
            out = attention.graph(b, core, q, k, v)
        if not layer.plain:
            out = b.op("attn.add_local", "add", [out, local], (n, inner_v), (n, inner_v))
            out = b.op("attn.act", layer.activation, [out], (n, inner_v), (n, inner_v))
        out = b.linear("attn.proj", out, n, inner_v, c)
        x = b.op("attn.residual", "add", [out, x], tokens, tokens)
        norm = b.op("norm2", "layernorm", [x], tokens, tokens, params=2 * c)
        hid = b.linear("mlp.fc1", norm, n, c, hidden)
        hid = b.op("mlp.act", layer.activation, [hid], (n, hidden), (n, hidden))
        out = b.linear("mlp.fc2", hid, n, hidden, c)
        x = b.op("mlp.residual", "add", [out, x], tokens, tokens)
        return b.op("to_image", "reshape", [x], tokens, image)

    def table_keys(self, table: str, layer: TransformerLayer) -> list[str] | None:
        if table != PIXEL4:
            return None
        act = PIXEL4_ACT[layer.activation]
        return [
            f"transattn_{layer.hw}_{layer.width}_{act}_{layer.v_scale}_ln",
            f"transffn_{layer.hw}_{layer.width}_{layer.mlp_ratio}_{act}_ln",
        ]
