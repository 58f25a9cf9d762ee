"""Torch half of the head kind (:mod:`nas.blocks.head`): the classifier head, its elastic twin,
the deploy step folding its BatchNorm into the classifiers, and its latency unit (norm, pool,
feature layer, classifiers)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from nas.blocks.head import HeadLayer
from nas.blocks.nn.common import ConvBNAct, activation
from nas.supernet.elastic import (
    ElasticBatchNorm2d,
    ElasticConvBNAct,
    ElasticLayerNorm,
    ElasticLinear,
)


class ClassifierHead(nn.Module):
    """[1x1 conv expand] -> [LayerNorm] -> global average pool -> [feature linear] ->
    [BatchNorm] -> classifier [+ distillation classifier, averaged]."""

    def __init__(self, layer: HeadLayer):
        super().__init__()
        c, pooled = layer.expand_ch, layer.pooled_ch
        self.expand = ConvBNAct(layer.in_ch, c, 1, act=layer.activation) if layer.expand else None
        self.norm = nn.LayerNorm(c) if layer.norm == "layernorm" else None
        self.feature = nn.Linear(c, layer.feature_ch, bias=False) if layer.feature_ch else None
        self.act = activation(layer.activation)
        self.bn = nn.BatchNorm1d(pooled) if layer.norm == "batchnorm" else None
        self.classifier = nn.Linear(pooled, layer.num_classes)
        self.distillation = nn.Linear(pooled, layer.num_classes) if layer.distillation else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.expand is not None:
            x = self.expand(x)
        if self.norm is not None:
            x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = x.mean((2, 3))
        if self.feature is not None:
            x = self.act(self.feature(x))
        if self.bn is not None:
            x = self.bn(x)
        logits = self.classifier(x)
        if self.distillation is None:
            return logits
        return (logits + self.distillation(x)) * 0.5


def _fold_bn1d(linear: nn.Linear, bn: nn.BatchNorm1d) -> nn.Linear:
    """A linear layer computing ``linear(bn(x))`` with eval-mode BatchNorm statistics."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    folded = nn.Linear(linear.in_features, linear.out_features).to(linear.weight.device)
    with torch.no_grad():
        folded.weight.copy_(linear.weight * scale)
        folded.bias.copy_(linear.weight @ shift + linear.bias)
    return folded


def fold_norm(module: ClassifierHead, layer: HeadLayer) -> ClassifierHead:
    """The head with its BatchNorm folded into the classifiers (others are returned as they
    are)."""
    if module.bn is None:
        return module
    module = copy.deepcopy(module)
    module.classifier = _fold_bn1d(module.classifier, module.bn)
    if module.distillation is not None:
        module.distillation = _fold_bn1d(module.distillation, module.bn)
    module.bn = None
    return module


class ElasticHead(nn.Module):
    forward = ClassifierHead.forward

    def __init__(self, largest: HeadLayer, spec=None):
        super().__init__()
        act, c, pooled = largest.activation, largest.expand_ch, largest.pooled_ch
        self.expand = ElasticConvBNAct(largest.in_ch, c, 1, act=act) if largest.expand else None
        self.norm = ElasticLayerNorm(c) if largest.norm == "layernorm" else None
        self.feature = (
            ElasticLinear(c, largest.feature_ch, bias=False) if largest.feature_ch else None
        )
        self.act = activation(act)
        self.bn = ElasticBatchNorm2d(pooled) if largest.norm == "batchnorm" else None
        classes = largest.num_classes
        self.classifier = ElasticLinear(pooled, classes)
        self.distillation = ElasticLinear(pooled, classes) if largest.distillation else None

    def set_active(self, layer: HeadLayer) -> None:
        c, pooled, classes = layer.expand_ch, layer.pooled_ch, layer.num_classes
        if self.expand is not None:
            self.expand.configure(layer.in_ch, c)
        if self.norm is not None:
            self.norm.set_active(c)
        if self.feature is not None:
            self.feature.set_active(c, layer.feature_ch)
        if self.bn is not None:
            self.bn.set_active(pooled)
        for classifier in (self.classifier, self.distillation):
            if classifier is not None:
                classifier.set_active(pooled, classes)


class HeadKernel(nn.Module):
    """The head of :class:`ClassifierHead` after its expand conv, as exported."""

    def __init__(self, spec):
        super().__init__()
        f = spec.feature_dict()
        layer = HeadLayer(
            "kernel",
            f["hw"],
            f["c"],
            f["c"],
            f["feature"],
            f["classes"],
            f["act"],
            False,
            f.get("norm", "none"),
            f.get("distillation", False),
        )
        self.head = fold_norm(ClassifierHead(layer).eval(), layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


def head_kernel(spec, batch: int):
    """The head latency unit as a standalone module, and its input."""
    f = spec.feature_dict()
    return HeadKernel(spec), (torch.randn(batch, f["c"], f["hw"], f["hw"]),)
