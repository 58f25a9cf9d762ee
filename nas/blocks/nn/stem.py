"""Torch half of the stem kind (:mod:`nas.blocks.stem`): one or two conv-BN-activations and
their elastic twins (the layers after them are MBConv blocks)."""

from __future__ import annotations

from torch import nn

from nas.blocks.nn.common import ConvBNAct
from nas.blocks.stem import StemLayer
from nas.supernet.elastic import ElasticConvBNAct


def stem_module(layer: StemLayer) -> nn.Module:
    if layer.convs == 1:
        return ConvBNAct(layer.in_ch, layer.out_ch, layer.kernel, layer.stride, layer.activation)
    k, s, act = layer.kernel, layer.stride, layer.activation
    return nn.Sequential(
        ConvBNAct(layer.in_ch, layer.mid_ch, k, s, act),
        ConvBNAct(layer.mid_ch, layer.out_ch, k, s, act),
    )


class ElasticStem(ElasticConvBNAct):
    def __init__(self, largest: StemLayer, spec=None):
        super().__init__(
            largest.in_ch, largest.out_ch, largest.kernel, largest.stride, largest.activation
        )

    def set_active(self, layer: StemLayer) -> None:
        self.configure(layer.in_ch, layer.out_ch, layer.kernel)


class ElasticTwoConvStem(nn.Sequential):
    """Two elastic convs; the first's width is half the second's."""

    def __init__(self, largest: StemLayer):
        k, s, act = largest.kernel, largest.stride, largest.activation
        super().__init__(
            ElasticConvBNAct(largest.in_ch, largest.mid_ch, k, s, act),
            ElasticConvBNAct(largest.mid_ch, largest.out_ch, k, s, act),
        )

    def set_active(self, layer: StemLayer) -> None:
        self[0].configure(layer.in_ch, layer.mid_ch, layer.kernel)
        self[1].configure(layer.mid_ch, layer.out_ch, layer.kernel)


def elastic_stem(largest: StemLayer, spec=None) -> nn.Module:
    """The elastic twin of the largest stem of a space."""
    return ElasticStem(largest) if largest.convs == 1 else ElasticTwoConvStem(largest)
