"""EfficientFormer's blocks. Meta4D: a pooling token mixer, ``x + s1 * (avgpool3x3(x) - x)``
(average over the valid neighbours), then a residual 1x1-conv MLP with BatchNorm,
``x + s2 * bn(conv(act(bn(conv(x)))))``, with learned per-channel layer scales ``s1``, ``s2``.
Meta3D (EfficientFormer's last stage): on the tokens, ``x + s1 * attn(ln(x))`` with standard
multi-head attention of the layer's attention kind (softmax with the learned position bias, as
published; no value conv), then ``x + s2 * mlp(ln(x))``.

It takes the transformer kind's choices and settings and opens each stage with the same entry
layer (``downsample: conv`` is EfficientFormer's embedding, a 3x3 conv + BN), so a global stage
may choose between attention and pooling layers. ``mixers`` (per layer with ``per_layer:
[mixer]``) chooses Meta4D (``pool``, the default) or Meta3D (``attention``); Meta3D layers use
``attentions``, ``heads``, ``head_dim`` (the key width per head) and ``v_scales`` (the value
width per head, EfficientFormer's attention ratio), Meta4D layers only ``mlp_ratios``. The
pooling mixer is one latency unit (``pool-mixer``). When exported (the kind's deploy step) the
MLP's layer scale folds into the MLP's last BatchNorm (Meta4D) or linear layer, and the
attention's into its projection (Meta3D); the operator graph is of that form. The torch half is
:mod:`nas.blocks.nn.efficientformer`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.blocks.registry import LayerContext, register_block
from nas.blocks.shapes import SameShape
from nas.blocks.transformer import Transformer, TransformerLayer


@dataclass(frozen=True)
class Meta4DLayer(SameShape):
    """Pooling mixer + conv MLP, each residual, on a ``hw`` x ``hw`` map of ``width`` channels."""

    slot: str
    hw: int
    width: int
    mlp_ratio: int
    activation: str

    @property
    def mlp_hidden(self) -> int:
        return self.width * self.mlp_ratio


@dataclass(frozen=True)
class Meta3DLayer(TransformerLayer):
    """Pre-norm plain multi-head attention and MLP, each residual with a layer scale."""

    plain = True


@register_block
class EfficientFormer(Transformer):
    name = "efficientformer"
    layer_type = Meta4DLayer
    other_layer_types = (Meta3DLayer,)
    example = {
        "blocks": ["efficientformer", "transformer"],
        "per_layer": ["block", "mlp_ratio", "mixer"],
        "depths": [1, 2],
        "widths": [8, 16],
        "attentions": ["softmax", "relu_linear"],
        "mixers": ["pool", "attention"],
        "heads": [1, 2],
        "head_dim": 4,
        "v_scales": [1, 2],
        "mlp_ratios": [2, 4],
        "stride": 2,
        "activation": "gelu",
    }
    static = "nas.blocks.nn.efficientformer:efficientformer_block"
    elastic = "nas.blocks.nn.efficientformer:ElasticEfficientFormer"
    deploy = "nas.blocks.nn.efficientformer:fold_layer_scale"
    units = {"pool-mixer": "nas.blocks.nn.efficientformer:pool_mixer_kernel"}

    def layer(self, ctx: LayerContext) -> Meta4DLayer | Meta3DLayer:
        values = ctx.values
        if values.get("mixer") == "attention":
            return Meta3DLayer(**vars(super().layer(ctx)))
        return Meta4DLayer(
            ctx.slot, ctx.side, ctx.out_ch, int(values["mlp_ratio"]), ctx.spec.activation
        )

    def graph(self, b, layer: Meta4DLayer | Meta3DLayer, x: str) -> str:
        """As exported: the MLP's layer scale folded into its last BatchNorm (Meta4D), the layer
        scales into the attention's projection and the MLP's last linear layer (Meta3D)."""
        if isinstance(layer, Meta3DLayer):
            return super().graph(b, layer, x)
        c, hw, hidden = layer.width, layer.hw, layer.mlp_hidden
        shape = (c, hw, hw)
        with b.unit("pool-mixer", c=c, hw=hw):
            pooled = b.op("mixer.pool", "avgpool", [x], shape, shape, kernel=3)
            diff = b.op("mixer.sub", "sub", [pooled, x], shape, shape)
            scaled = b.op("mixer.scale", "mul", [diff], shape, shape, params=c)
            x = b.op("mixer.add", "add", [scaled, x], shape, shape)
        node, _ = b.conv_bn_act("fc1", x, c, hidden, 1, 1, hw, layer.activation)
        node, _ = b.conv_bn_act("fc2", node, hidden, c, 1, 1, hw, None)
        return b.op("mlp.add", "add", [node, x], shape, shape)

    def table_keys(self, table: str, layer: Meta4DLayer) -> list[str] | None:
        return None
