"""MobileViT blocks (v1, and v2 below). v1: local 3x3 conv (BN, activation) and a 1x1 conv
(no bias) to the transformer width; unfold into 2x2 patches (1x1 when the side is odd) so that
each of the 4 positions in a patch is a sequence over the patches; L standard pre-norm
transformer layers over each sequence (multi-head attention of the layer's attention kind, with
no position bias and no value conv, and an MLP; weights shared by the positions), a final
LayerNorm; fold back; 1x1 conv to the block width (BN, activation); concat with the block's
input; 3x3 fusion conv (BN, activation).

It takes the transformer kind's choices and settings and opens each stage with the same
downsampling MBConv layer (MobileViT's MV2), so a global stage may choose among transformer,
MobileViT and EfficientFormer layers. The transformer width is ``heads * head_dim`` (the block
width unless ``heads`` is declared), its MLP ``mlp_ratio`` times that; ``transformer_depths``
chooses L (1 when not declared). The torch half is :mod:`nas.blocks.nn.mobilevit`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from nas.blocks.registry import LayerContext, register_block
from nas.blocks.transformer import PlainTransformerLayer, Transformer, TransformerLayer

PATCH = 2


@dataclass(frozen=True)
class PatchedTransformerLayer(PlainTransformerLayer):
    """MobileViT's transformer layer as it runs: on the whole ``hw`` x ``hw`` map unfolded into
    ``patch**2`` sequences (one per patch position) that go through every operator as one batch.
    Token-wise operators see all ``hw * hw`` tokens; attention sees each sequence apart, its
    ``(hw / patch)**2`` tokens with the sequences as extra heads (both are batch dimensions of
    the attention's matrix products)."""

    patch: int = 1

    def attention_core(self) -> TransformerLayer:
        side, p = self.hw // self.patch, self.patch
        return replace(self, hw=side, heads=self.heads * p * p, patch=1)


@dataclass(frozen=True)
class MobileViTLayer(TransformerLayer):
    """A MobileViT block of ``width`` channels with ``inner_depth`` transformer layers of
    ``heads * head_dim`` channels (its :meth:`inner` layer)."""

    inner_depth: int = 1

    @property
    def dim(self) -> int:
        """Transformer width."""
        return self.heads * self.head_dim

    @property
    def patch(self) -> int:
        """Patch side: 2, or 1 on an odd side."""
        return PATCH if self.hw % PATCH == 0 else 1

    def inner(self, hw: int | None = None) -> PlainTransformerLayer:
        """The transformer layer run on each patch position (on a side ``hw`` if given)."""
        fields = {k: v for k, v in vars(self).items() if k != "inner_depth"}
        return PlainTransformerLayer(
            **{**fields, "hw": hw or self.hw // self.patch, "width": self.dim}
        )

    def batched_inner(self) -> PatchedTransformerLayer:
        """The transformer layer over all patch positions at once, as the model runs it."""
        fields = {k: v for k, v in vars(self).items() if k != "inner_depth"}
        return PatchedTransformerLayer(**{**fields, "width": self.dim, "patch": self.patch})


@register_block
class MobileViT(Transformer):
    name = "mobilevit"
    layer_type = MobileViTLayer
    example = {
        "blocks": ["mobilevit", "transformer"],
        "per_layer": ["block", "attention"],
        "depths": [1, 2],
        "widths": [8, 16],
        "attentions": ["softmax", "relu_linear"],
        "heads": [1, 2],
        "head_dim": 4,
        "mlp_ratios": [2],
        "transformer_depths": [1, 2],
        "downsample_expands": [2, 4],
        "stride": 2,
        "activation": "silu",
    }
    static = "nas.blocks.nn.mobilevit:MobileViTBlock"
    elastic = "nas.blocks.nn.mobilevit:ElasticMobileViTBlock"

    def layer(self, ctx: LayerContext) -> MobileViTLayer:
        depth = int(ctx.values.get("transformer_depth", 1))
        return self.layer_type(**vars(super().layer(ctx)), inner_depth=depth)

    def patch_transformer(self, b, layer: MobileViTLayer, x: str) -> str:
        """unfold -> the transformer layers and the final LayerNorm over the patch positions as
        one batch (as the model runs them: one kernel per operator, not one per position) ->
        fold."""
        d, hw, inner = layer.dim, layer.hw, layer.batched_inner()
        tokens, image = (hw * hw, d), (d, hw, hw)
        node = b.op("unfold", "reshape", [x], image, tokens)
        for j in range(layer.inner_depth):
            with b.copy(f"layer{j}", shares_weights=False):
                node = super().graph(b, inner, node)
        node = b.op("to_tokens", "reshape", [node], image, tokens)
        node = b.op("norm", "layernorm", [node], tokens, tokens, params=2 * d)
        node = b.op("to_image", "reshape", [node], tokens, image)
        return b.op("fold", "reshape", [node], tokens, image)

    def graph(self, b, layer: MobileViTLayer, x: str) -> str:
        c, d, hw, act = layer.width, layer.dim, layer.hw, layer.activation
        node, _ = b.conv_bn_act("local", x, c, c, 3, 1, hw, act)
        node, _ = b.conv("proj_in", node, c, d, 1, 1, hw)
        node = self.patch_transformer(b, layer, node)
        node, _ = b.conv_bn_act("proj_out", node, d, c, 1, 1, hw, act)
        node = b.op("concat", "concat", [x, node], (c, hw, hw), (2 * c, hw, hw))
        node, _ = b.conv_bn_act("fusion", node, 2 * c, c, 3, 1, hw, act)
        return node

    def table_keys(self, table: str, layer: MobileViTLayer) -> list[str] | None:
        return None


@dataclass(frozen=True)
class MobileViTv2Layer(MobileViTLayer):
    """A MobileViTv2 block: MobileViT's frame with a depthwise local conv, a linear projection
    back and no fusion with the input."""


@register_block
class MobileViTv2(MobileViT):
    """MobileViTv2: 3x3 depthwise local conv (BN, activation), 1x1 conv to the transformer
    width, unfold, L transformer layers (MobileViTv2 uses ``attentions: [separable]``, one head
    of the transformer width) and a final norm (LayerNorm here; MobileViTv2's code normalises
    with GroupNorm of one group, the same parameters), fold, 1x1 conv back with BN and no
    activation; no concat fusion and no residual around the block."""

    name = "mobilevitv2"
    layer_type = MobileViTv2Layer
    example = {
        **MobileViT.example,
        "blocks": ["mobilevitv2", "mobilevit"],
        "attentions": ["separable", "softmax"],
    }
    static = "nas.blocks.nn.mobilevit:MobileViTv2Block"
    elastic = "nas.blocks.nn.mobilevit:ElasticMobileViTv2Block"

    def graph(self, b, layer: MobileViTv2Layer, x: str) -> str:
        c, d, hw, act = layer.width, layer.dim, layer.hw, layer.activation
        node, _ = b.conv_bn_act("local", x, c, c, 3, 1, hw, act, depthwise=True)
        node, _ = b.conv("proj_in", node, c, d, 1, 1, hw)
        node = self.patch_transformer(b, layer, node)
        node, _ = b.conv_bn_act("proj_out", node, d, c, 1, 1, hw, None)
        return node
