"""Torch half of the stem kind (:mod:`nas.blocks.stem`): a conv-BN-activation and its elastic
twin (the layers after it are MBConv blocks)."""

from __future__ import annotations

from nas.blocks.nn.common import ConvBNAct
from nas.blocks.stem import StemLayer
from nas.supernet.elastic import ElasticConvBNAct


def stem_module(layer: StemLayer) -> ConvBNAct:
    return ConvBNAct(layer.in_ch, layer.out_ch, layer.kernel, layer.stride, layer.activation)


class ElasticStem(ElasticConvBNAct):
    def __init__(self, largest: StemLayer, spec=None):
        super().__init__(
            largest.in_ch, largest.out_ch, largest.kernel, largest.stride, largest.activation
        )

    def set_active(self, layer: StemLayer) -> None:
        self.configure(layer.in_ch, layer.out_ch, layer.kernel)
