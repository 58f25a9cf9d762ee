"""Torch half of the stem kind (:mod:`nas.blocks.stem`): one to four conv-BN-activations and
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
    widths = (layer.in_ch, *layer.conv_widths)
    return nn.Sequential(
        *(ConvBNAct(a, b, k, s, act) for a, b in zip(widths, widths[1:], strict=False))
    )


class ElasticStem(ElasticConvBNAct):
    def __init__(self, largest: StemLayer, spec=None):
        super().__init__(
            largest.in_ch, largest.out_ch, largest.kernel, largest.stride, largest.activation
        )

    def set_active(self, layer: StemLayer) -> None:
        self.configure(layer.in_ch, layer.out_ch, layer.kernel)


class ElasticConvStem(nn.Sequential):
    """Several elastic convs, each doubling the width up to the stem's."""

    def __init__(self, largest: StemLayer):
        k, s, act = largest.kernel, largest.stride, largest.activation
        widths = (largest.in_ch, *largest.conv_widths)
        super().__init__(
            *(ElasticConvBNAct(a, b, k, s, act) for a, b in zip(widths, widths[1:], strict=False))
        )

    def set_active(self, layer: StemLayer) -> None:
        widths = (layer.in_ch, *layer.conv_widths)
        for conv, a, b in zip(self, widths, widths[1:], strict=False):
            conv.configure(a, b, layer.kernel)


def elastic_stem(largest: StemLayer, spec=None) -> nn.Module:
    """The elastic twin of the largest stem of a space."""
    return ElasticStem(largest) if largest.convs == 1 else ElasticConvStem(largest)
