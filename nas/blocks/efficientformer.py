"""EfficientFormer's Meta4D block: a pooling token mixer, ``x + s1 * (avgpool3x3(x) - x)``
(average over the valid neighbours), then a residual 1x1-conv MLP with BatchNorm,
``x + s2 * bn(conv(act(bn(conv(x)))))``, with learned per-channel layer scales ``s1``, ``s2``.

It takes the transformer kind's choices and settings and opens each stage with the same
downsampling MBConv layer, so a global stage may choose between attention and pooling layers
(``blocks: [transformer, efficientformer]``, per layer with ``per_layer: [block]``). Of the
choices it uses ``mlp_ratios``; ``attentions``, ``heads`` and ``v_scales`` do not change a
pooling layer. The pooling mixer is one latency unit (``pool-mixer``). When exported (the kind's
deploy step) ``s2`` folds into the MLP's last BatchNorm; the operator graph is of that form. The
torch half is :mod:`nas.blocks.nn.efficientformer`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.blocks.registry import LayerContext, register_block
from nas.blocks.shapes import SameShape
from nas.blocks.transformer import Transformer


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


@register_block
class EfficientFormer(Transformer):
    name = "efficientformer"
    layer_type = Meta4DLayer
    example = {
        "blocks": ["efficientformer", "transformer"],
        "per_layer": ["block", "mlp_ratio"],
        "depths": [1, 2],
        "widths": [8, 16],
        "attentions": ["softmax"],
        "head_dim": 4,
        "mlp_ratios": [2, 4],
        "stride": 2,
        "activation": "gelu",
    }
    static = "nas.blocks.nn.efficientformer:Meta4D"
    elastic = "nas.blocks.nn.efficientformer:ElasticMeta4D"
    deploy = "nas.blocks.nn.efficientformer:fold_layer_scale"
    units = {"pool-mixer": "nas.blocks.nn.efficientformer:pool_mixer_kernel"}

    def layer(self, ctx: LayerContext) -> Meta4DLayer:
        values = ctx.values
        return Meta4DLayer(
            ctx.slot, ctx.side, ctx.out_ch, int(values["mlp_ratio"]), ctx.spec.activation
        )

    def graph(self, b, layer: Meta4DLayer, x: str) -> str:
        """As exported: the MLP's layer scale folded into its last BatchNorm."""
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
