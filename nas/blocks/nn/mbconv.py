"""Torch half of the MBConv kind (:mod:`nas.blocks.mbconv`): the static block, its elastic twin
and the squeeze-excite latency unit."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nas.blocks.mbconv import MBConvLayer, se_channels
from nas.blocks.nn.common import ConvBNAct
from nas.supernet.elastic import ElasticConv2d, ElasticConvBNAct


class SqueezeExcite(nn.Module):
    """Channel attention: pool -> 1x1 reduce -> ReLU -> 1x1 expand -> hard sigmoid -> scale."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.relu(self.reduce(x.mean((2, 3), keepdim=True)))
        return x * F.hardsigmoid(self.expand(scale))


class MBConv(nn.Module):
    """Inverted residual block: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 project (+ skip)."""

    def __init__(self, layer: MBConvLayer):
        super().__init__()
        mid = layer.mid_ch
        self.expands = layer.expand_ratio != 1
        self.residual = layer.residual
        self.expand = ConvBNAct(layer.in_ch, mid, 1, act=layer.activation) if self.expands else None
        self.depthwise = ConvBNAct(
            mid, mid, layer.kernel, layer.stride, act=layer.activation, depthwise=True
        )
        self.se = SqueezeExcite(mid, layer.se_ch) if layer.se else None
        self.project = ConvBNAct(mid, layer.out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expands else x
        out = self.depthwise(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        return out + x if self.residual else out


class ElasticSqueezeExcite(nn.Module):
    forward = SqueezeExcite.forward

    def __init__(self, max_channels: int):
        super().__init__()
        max_reduced = se_channels(max_channels)
        self.reduce = ElasticConv2d(max_channels, max_reduced, 1, bias=True)
        self.expand = ElasticConv2d(max_reduced, max_channels, 1, bias=True)

    def configure(self, channels: int, reduced: int) -> None:
        self.reduce.set_active(channels, reduced)
        self.expand.set_active(reduced, channels)


class ElasticMBConv(nn.Module):
    """The weights of the largest MBConv of a slot; ``set_active`` takes leading channels and
    the centre of the largest kernel."""

    forward = MBConv.forward

    def __init__(self, largest: MBConvLayer, spec=None):
        super().__init__()
        max_in, act = largest.in_ch, largest.activation
        max_mid = largest.mid_ch
        self.expand = (
            ElasticConvBNAct(max_in, max_mid, 1, act=act) if largest.expand_ratio != 1 else None
        )
        self.depthwise = ElasticConvBNAct(
            max_mid, max_mid, largest.kernel, largest.stride, act, depthwise=True
        )
        self.se = ElasticSqueezeExcite(max_mid) if largest.se else None
        self.project = ElasticConvBNAct(max_mid, largest.out_ch, 1)
        self.expands = self.residual = False

    def set_active(self, layer: MBConvLayer) -> None:
        mid = layer.mid_ch
        self.expands = layer.expand_ratio != 1
        self.residual = layer.residual
        if self.expands:
            self.expand.configure(layer.in_ch, mid)
        self.depthwise.configure(mid, mid, layer.kernel)
        if self.se is not None:
            self.se.configure(mid, layer.se_ch)
        self.project.configure(mid, layer.out_ch)


def se_kernel(spec, batch: int):
    """The squeeze-excite latency unit as a standalone module, and its input."""
    f = spec.feature_dict()
    return SqueezeExcite(f["c"], f["reduced"]), (torch.randn(batch, f["c"], f["hw"], f["hw"]),)
