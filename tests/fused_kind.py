"""A block kind registered from outside the engine's package, for the tests: it proves that a
kind can be added without touching ``nas/`` and checked by the conformance suite. It is the
built-in Fused-MBConv under another name, giving its torch half as classes (not references) and
folding its batchnorms into the convs when exported (a deploy step; its graph is of that form).
Importing this module registers it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import nn

from nas.blocks import register_block
from nas.blocks.fused_mbconv import FusedMBConv, FusedMBConvLayer
from nas.blocks.mbconv import squeeze_excite_nodes
from nas.blocks.nn.common import fold_bn
from nas.blocks.nn.fused_mbconv import ElasticFusedMBConv
from nas.blocks.nn.fused_mbconv import FusedMBConv as FusedModule


@dataclass(frozen=True)
class OutsideLayer(FusedMBConvLayer):
    """Its own layer record (each kind has one)."""


def fold_batchnorms(module: FusedModule, layer: OutsideLayer) -> FusedModule:
    """The block with each batchnorm folded into the conv before it."""
    if isinstance((module.single if layer.single else module.expand).bn, nn.Identity):
        return module
    module = copy.deepcopy(module)
    for part in [module.single] if layer.single else [module.expand, module.project]:
        part.conv, part.bn = fold_bn(part.conv, part.bn), nn.Identity()
    return module


@register_block
class TestFused(FusedMBConv):
    name = "test_fused"
    layer_type = OutsideLayer
    example = {**FusedMBConv.example, "blocks": ["test_fused", "mbconv"], "activation": "relu"}
    static = FusedModule
    elastic = ElasticFusedMBConv
    deploy = fold_batchnorms

    def graph(self, b, layer: OutsideLayer, x: str) -> str:
        """As exported: each batchnorm folded into its conv."""
        hw, ch, act = layer.in_hw, layer.conv_ch, layer.activation
        node, hw = b.conv("conv", x, layer.in_ch, ch, layer.kernel, layer.stride, hw, bias=True)
        node = b.op("conv.act", act, [node], (ch, hw, hw), (ch, hw, hw))
        if layer.se:
            node = squeeze_excite_nodes(b, node, ch, layer.se_ch, hw)
        if not layer.single:
            node, hw = b.conv("project", node, ch, layer.out_ch, 1, 1, hw, bias=True)
        if layer.residual:
            shape = (layer.out_ch, hw, hw)
            node = b.op("add", "add", [node, x], shape, shape)
        return node
