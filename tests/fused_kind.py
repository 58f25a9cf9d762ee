"""A block kind defined outside the engine's package, for the tests: Fused-MBConv (EfficientNetV2),
a kxk conv expanding the channels (stride, BN, activation) -> [squeeze-excite] -> 1x1 project
(BN), with a skip when stride is 1 and the width is kept.

It shares MBConv's choices and settings (``kernels``, ``expand_ratios``, ``se``, ``activation``),
so a stage may choose between the two (``blocks: [mbconv, test_fused]``), and it folds its
batchnorms into the convs when exported (its deploy step; its operator graph is of that form).
Importing this module registers it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from nas.blocks import BlockKind, register_block
from nas.blocks.mbconv import MBConv as MBConvKind
from nas.blocks.mbconv import MBConvLayer, squeeze_excite_nodes
from nas.blocks.nn.common import ConvBNAct, fold_bn
from nas.blocks.nn.mbconv import ElasticSqueezeExcite, SqueezeExcite
from nas.supernet.elastic import ElasticConvBNAct


@dataclass(frozen=True)
class FusedLayer(MBConvLayer):
    """The shapes of an MBConv layer (its ``mid_ch`` is the kxk conv's output)."""


class FusedConv(nn.Module):
    def __init__(self, layer: FusedLayer):
        super().__init__()
        self.residual = layer.residual
        self.expand = ConvBNAct(
            layer.in_ch, layer.mid_ch, layer.kernel, layer.stride, act=layer.activation
        )
        self.se = SqueezeExcite(layer.mid_ch, layer.se_ch) if layer.se else None
        self.project = ConvBNAct(layer.mid_ch, layer.out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        return out + x if self.residual else out


class ElasticFusedConv(nn.Module):
    forward = FusedConv.forward

    def __init__(self, largest: FusedLayer, spec=None):
        super().__init__()
        mid = largest.mid_ch
        self.expand = ElasticConvBNAct(
            largest.in_ch, mid, largest.kernel, largest.stride, largest.activation
        )
        self.se = ElasticSqueezeExcite(mid) if largest.se else None
        self.project = ElasticConvBNAct(mid, largest.out_ch, 1)
        self.residual = False

    def set_active(self, layer: FusedLayer) -> None:
        self.residual = layer.residual
        self.expand.configure(layer.in_ch, layer.mid_ch, layer.kernel)
        if self.se is not None:
            self.se.configure(layer.mid_ch, layer.se_ch)
        self.project.configure(layer.mid_ch, layer.out_ch)


def fold_batchnorms(module: FusedConv, layer: FusedLayer) -> FusedConv:
    """The block with each batchnorm folded into the conv before it."""
    if isinstance(module.expand.bn, nn.Identity):
        return module
    module = copy.deepcopy(module)
    for part in (module.expand, module.project):
        part.conv, part.bn = fold_bn(part.conv, part.bn), nn.Identity()
    return module


@register_block
class TestFused(BlockKind):
    name = "test_fused"
    layer_type = FusedLayer
    choices = MBConvKind.choices
    settings = MBConvKind.settings
    example = {
        "blocks": ["test_fused", "mbconv"],
        "per_layer": ["block", "kernel"],
        "depths": [1, 2],
        "widths": [8, 16],
        "kernels": [3, 5],
        "expand_ratios": [1, 2],
        "stride": 2,
        "se": True,
        "activation": "relu",
    }
    static = FusedConv
    elastic = ElasticFusedConv
    deploy = fold_batchnorms

    def layer(self, ctx) -> FusedLayer:
        values, spec = ctx.values, ctx.spec
        kernel, expand = int(values["kernel"]), values["expand_ratio"]
        return FusedLayer(
            ctx.slot,
            ctx.side,
            ctx.in_ch,
            ctx.out_ch,
            expand,
            kernel,
            ctx.stride,
            spec.se,
            spec.activation,
        )

    def graph(self, b, layer: FusedLayer, x: str) -> str:
        """As exported: each batchnorm folded into its conv."""
        hw, mid, act = layer.in_hw, layer.mid_ch, layer.activation
        node, hw = b.conv("expand", x, layer.in_ch, mid, layer.kernel, layer.stride, hw, bias=True)
        node = b.op("expand.act", act, [node], (mid, hw, hw), (mid, hw, hw))
        if layer.se:
            node = squeeze_excite_nodes(b, node, mid, layer.se_ch, hw)
        node, hw = b.conv("project", node, mid, layer.out_ch, 1, 1, hw, bias=True)
        if layer.residual:
            shape = (layer.out_ch, hw, hw)
            node = b.op("add", "add", [node, x], shape, shape)
        return node
