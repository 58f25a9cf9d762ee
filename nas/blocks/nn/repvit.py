"""Torch half of the RepViT kind (:mod:`nas.blocks.repvit`): the static block, its elastic twin
and the deploy step folding the token mixer's branches into one depthwise conv."""

from __future__ import annotations

import copy

import torch
from torch import nn

from nas.blocks.nn.common import ConvBNAct, fold_bn
from nas.blocks.nn.mbconv import ElasticSqueezeExcite, SqueezeExcite
from nas.blocks.repvit import RepViTLayer
from nas.supernet.elastic import ElasticBatchNorm2d, ElasticConv2d, ElasticConvBNAct


class RepViTBlock(nn.Module):
    """RepVGGDW (``dw`` + ``dw1`` + identity, then ``bn``; ``fused`` once deployed) or a
    downsampling mixer (``down``, ``project``) -> [SE] -> residual FFN (``ffn1``, ``ffn2``)."""

    def __init__(self, layer: RepViTLayer):
        super().__init__()
        c, out, k = layer.in_ch, layer.out_ch, layer.kernel
        self.identity = layer.identity
        self.fused = None
        if self.identity:
            self.dw = ConvBNAct(c, c, k, depthwise=True)
            self.dw1 = nn.Conv2d(c, c, 1, groups=c)
            self.bn = nn.BatchNorm2d(c)
        else:
            self.down = ConvBNAct(c, c, k, layer.stride, depthwise=True)
            self.project = ConvBNAct(c, out, 1)
        self.se = SqueezeExcite(c, layer.se_ch) if layer.se else None
        self.ffn1 = ConvBNAct(out, layer.hidden, 1, act=layer.activation)
        self.ffn2 = ConvBNAct(layer.hidden, out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            x = self.fused(x)
        elif self.identity:
            x = self.bn(self.dw(x) + self.dw1(x) + x)
        else:
            x = self.down(x)
        if self.se is not None:
            x = self.se(x)
        if not self.identity:
            x = self.project(x)
        return x + self.ffn2(self.ffn1(x))


def fold_token_mixer(module: RepViTBlock, layer: RepViTLayer) -> RepViTBlock:
    """The block with RepVGGDW folded into one kxk depthwise conv with bias (eval-mode BN):
    ``bn_out(bn(dw_k(x)) + dw_1(x) + x)`` -> ``conv_k(x)``. Other blocks are returned as they are."""
    if not layer.identity or module.fused is not None:
        return module
    module = copy.deepcopy(module)
    conv = fold_bn(module.dw.conv, module.dw.bn)
    centre = layer.kernel // 2
    with torch.no_grad():
        conv.weight[:, :, centre, centre] += module.dw1.weight[:, :, 0, 0] + 1.0
        conv.bias += module.dw1.bias
    module.fused = fold_bn(conv, module.bn)
    module.dw = module.dw1 = module.bn = None
    return module


class ElasticRepViTBlock(nn.Module):
    """The largest RepViT block of a slot: leading channels, centred kernels. A slot whose
    layer may keep or change the width (the first of a stride-1 stage) holds both mixers."""

    forward = RepViTBlock.forward

    def __init__(self, largest: RepViTLayer, spec=None):
        super().__init__()
        c, out, k = largest.in_ch, largest.out_ch, largest.kernel
        first = largest.slot.endswith(".layers.0")
        self.fused = self.dw = self.dw1 = self.bn = self.down = self.project = None
        if largest.stride == 1:
            self.dw = ElasticConvBNAct(c, c, k, depthwise=True)
            self.dw1 = ElasticConv2d(c, c, 1, depthwise=True, bias=True)
            self.bn = ElasticBatchNorm2d(c)
        if largest.stride != 1 or first:
            self.down = ElasticConvBNAct(c, c, k, largest.stride, depthwise=True)
            self.project = ElasticConvBNAct(c, out, 1)
        # the slot's layer may have SE (when it mixes tokens): see RepViT.layer
        may_se = largest.se
        if spec is not None and spec.se:
            may_se = (int(largest.slot.rsplit(".", 1)[1]) - (spec.stride != 1)) % 2 == 0
        self.se = ElasticSqueezeExcite(c) if may_se else None
        self.ffn1 = ElasticConvBNAct(out, largest.hidden, 1, act=largest.activation)
        self.ffn2 = ElasticConvBNAct(largest.hidden, out, 1)
        self.identity = largest.identity

    def set_active(self, layer: RepViTLayer) -> None:
        c, out = layer.in_ch, layer.out_ch
        self.identity = layer.identity
        if self.identity:
            self.dw.configure(c, c, layer.kernel)
            self.dw1.set_active(c, c, 1)
            self.bn.set_active(c)
        else:
            self.down.configure(c, c, layer.kernel)
            self.project.configure(c, out)
        if self.se is not None:
            self.se.configure(c, layer.se_ch)
        self.ffn1.configure(out, layer.hidden)
        self.ffn2.configure(layer.hidden, out)
