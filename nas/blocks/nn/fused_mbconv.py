"""Torch half of the Fused-MBConv kind (:mod:`nas.blocks.fused_mbconv`): the static block and its
elastic twin. A slot whose stage allows expand ratio 1 and others holds both forms' weights."""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks.fused_mbconv import FusedMBConvLayer
from nas.blocks.nn.common import ConvBNAct
from nas.blocks.nn.mbconv import ElasticSqueezeExcite, SqueezeExcite
from nas.supernet.elastic import ElasticConvBNAct


class FusedMBConv(nn.Module):
    """kxk conv (expand) -> [SE] -> 1x1 project (+ skip); one kxk conv (``single``) at expand 1."""

    def __init__(self, layer: FusedMBConvLayer):
        super().__init__()
        self.residual, self.is_single = layer.residual, layer.single
        ch = layer.conv_ch
        conv = ConvBNAct(layer.in_ch, ch, layer.kernel, layer.stride, act=layer.activation)
        se = SqueezeExcite(ch, layer.se_ch) if layer.se else None
        if self.is_single:
            self.single, self.single_se = conv, se
        else:
            self.expand, self.se = conv, se
            self.project = ConvBNAct(ch, layer.out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_single:
            out = self.single(x)
            if self.single_se is not None:
                out = self.single_se(out)
        else:
            out = self.expand(x)
            if self.se is not None:
                out = self.se(out)
            out = self.project(out)
        return out + x if self.residual else out


class ElasticFusedMBConv(nn.Module):
    """The largest Fused-MBConv of a slot (leading channels, centred kernels); when the stage
    allows expand ratio 1 beside larger ones, also the largest single conv."""

    forward = FusedMBConv.forward

    def __init__(self, largest: FusedMBConvLayer, spec=None):
        super().__init__()
        ratios = spec.choices.get("expand_ratio", ()) if spec is not None else ()
        in_ch, out_ch, k, s, act = (
            largest.in_ch,
            largest.out_ch,
            largest.kernel,
            largest.stride,
            largest.activation,
        )
        self.expand = self.se = self.project = self.single = self.single_se = None
        if not largest.single:
            mid = largest.mid_ch
            self.expand = ElasticConvBNAct(in_ch, mid, k, s, act)
            self.se = ElasticSqueezeExcite(mid) if largest.se else None
            self.project = ElasticConvBNAct(mid, out_ch, 1)
        if largest.single or 1 in ratios:
            self.single = ElasticConvBNAct(in_ch, out_ch, k, s, act)
            self.single_se = ElasticSqueezeExcite(out_ch) if largest.se else None
        self.residual = self.is_single = False

    def set_active(self, layer: FusedMBConvLayer) -> None:
        self.residual, self.is_single = layer.residual, layer.single
        ch = layer.conv_ch
        conv, se = (self.single, self.single_se) if layer.single else (self.expand, self.se)
        conv.configure(layer.in_ch, ch, layer.kernel)
        if se is not None:
            se.configure(ch, layer.se_ch)
        if not layer.single:
            self.project.configure(ch, layer.out_ch)
