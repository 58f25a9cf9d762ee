"""Torch half of the patch-merging entry kind (:mod:`nas.blocks.patch_merging`): the static
module and its elastic twin."""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks.efficientvit_msra import DEPTHWISE_KERNEL
from nas.blocks.nn.common import ConvBNAct
from nas.blocks.nn.efficientvit_msra import ElasticFfn, Ffn
from nas.blocks.nn.mbconv import ElasticSqueezeExcite, SqueezeExcite
from nas.blocks.patch_merging import FFN_RATIO, PatchMergingLayer
from nas.supernet.elastic import ElasticConvBNAct


class PatchMerging(nn.Module):
    """``x + pre_dw(x)``, ``x + pre_ffn(x)``; expand, depthwise (stride), SE, project;
    ``x + post_dw(x)``, ``x + post_ffn(x)``."""

    def __init__(self, layer: PatchMergingLayer):
        super().__init__()
        cin, cout, mid, act = layer.in_ch, layer.out_ch, layer.mid_ch, layer.activation
        self.pre_dw = ConvBNAct(cin, cin, DEPTHWISE_KERNEL, depthwise=True)
        self.pre_ffn = Ffn(cin, cin * FFN_RATIO, act)
        self.expand = ConvBNAct(cin, mid, 1, act=act)
        self.depthwise = ConvBNAct(mid, mid, layer.kernel, layer.stride, act, depthwise=True)
        self.se = SqueezeExcite(mid, layer.se_ch)
        self.project = ConvBNAct(mid, cout, 1)
        self.post_dw = ConvBNAct(cout, cout, DEPTHWISE_KERNEL, depthwise=True)
        self.post_ffn = Ffn(cout, cout * FFN_RATIO, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pre_dw(x)
        x = x + self.pre_ffn(x)
        x = self.project(self.se(self.depthwise(self.expand(x))))
        x = x + self.post_dw(x)
        return x + self.post_ffn(x)


class ElasticPatchMerging(nn.Module):
    """The weights of the largest patch merging of a slot; ``set_active`` takes leading channels
    and the centre of the largest depthwise kernel."""

    forward = PatchMerging.forward

    def __init__(self, largest: PatchMergingLayer, spec=None):
        super().__init__()
        cin, cout, mid, act = largest.in_ch, largest.out_ch, largest.mid_ch, largest.activation
        self.pre_dw = ElasticConvBNAct(cin, cin, DEPTHWISE_KERNEL, depthwise=True)
        self.pre_ffn = ElasticFfn(cin, cin * FFN_RATIO, act)
        self.expand = ElasticConvBNAct(cin, mid, 1, act=act)
        self.depthwise = ElasticConvBNAct(
            mid, mid, largest.kernel, largest.stride, act, depthwise=True
        )
        self.se = ElasticSqueezeExcite(mid)
        self.project = ElasticConvBNAct(mid, cout, 1)
        self.post_dw = ElasticConvBNAct(cout, cout, DEPTHWISE_KERNEL, depthwise=True)
        self.post_ffn = ElasticFfn(cout, cout * FFN_RATIO, act)

    def set_active(self, layer: PatchMergingLayer) -> None:
        cin, cout, mid = layer.in_ch, layer.out_ch, layer.mid_ch
        self.pre_dw.configure(cin, cin)
        self.pre_ffn.configure(cin, cin * FFN_RATIO)
        self.expand.configure(cin, mid)
        self.depthwise.configure(mid, mid, layer.kernel)
        self.se.configure(mid, layer.se_ch)
        self.project.configure(mid, cout)
        self.post_dw.configure(cout, cout)
        self.post_ffn.configure(cout, cout * FFN_RATIO)
