"""Torch half of the conv_bn kind (:mod:`nas.blocks.conv_bn`)."""

from __future__ import annotations

from nas.blocks.conv_bn import ConvBNLayer
from nas.blocks.nn.common import ConvBNAct
from nas.supernet.elastic import ElasticConvBNAct


def conv_bn_module(layer: ConvBNLayer) -> ConvBNAct:
    return ConvBNAct(layer.in_ch, layer.out_ch, layer.kernel, layer.stride, layer.activation)


class ElasticConvBN(ElasticConvBNAct):
    def __init__(self, largest: ConvBNLayer, spec=None):
        super().__init__(
            largest.in_ch, largest.out_ch, largest.kernel, largest.stride, largest.activation
        )

    def set_active(self, layer: ConvBNLayer) -> None:
        self.configure(layer.in_ch, layer.out_ch, layer.kernel)
