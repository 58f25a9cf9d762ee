"""Torch half of the head kind (:mod:`nas.blocks.head`): the classifier head, its elastic twin
and its latency unit (pool, feature layer, classifier)."""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks.head import HeadLayer
from nas.blocks.nn.common import ConvBNAct, activation
from nas.supernet.elastic import ElasticConvBNAct, ElasticLinear


class ClassifierHead(nn.Module):
    """1x1 conv expand -> global average pool -> feature linear -> classifier."""

    def __init__(self, layer: HeadLayer):
        super().__init__()
        self.expand = ConvBNAct(layer.in_ch, layer.expand_ch, 1, act=layer.activation)
        self.feature = nn.Linear(layer.expand_ch, layer.feature_ch, bias=False)
        self.act = activation(layer.activation)
        self.classifier = nn.Linear(layer.feature_ch, layer.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.expand(x).mean((2, 3))
        return self.classifier(self.act(self.feature(pooled)))


class ElasticHead(nn.Module):
    forward = ClassifierHead.forward

    def __init__(self, largest: HeadLayer, spec=None):
        super().__init__()
        act = largest.activation
        self.expand = ElasticConvBNAct(largest.in_ch, largest.expand_ch, 1, act=act)
        self.feature = ElasticLinear(largest.expand_ch, largest.feature_ch, bias=False)
        self.act = activation(act)
        self.classifier = nn.Linear(largest.feature_ch, largest.num_classes)

    def set_active(self, layer: HeadLayer) -> None:
        self.expand.configure(layer.in_ch, layer.expand_ch)
        self.feature.set_active(layer.expand_ch, layer.feature_ch)


class HeadKernel(nn.Module):
    """Global pool -> feature linear -> activation -> classifier of :class:`ClassifierHead`."""

    def __init__(self, spec):
        super().__init__()
        f = spec.feature_dict()
        layer = HeadLayer("kernel", f["hw"], 8, f["c"], f["feature"], f["classes"], f["act"])
        head = ClassifierHead(layer)
        self.feature, self.act, self.classifier = head.feature, head.act, head.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.act(self.feature(x.mean((2, 3)))))


def head_kernel(spec, batch: int):
    """The head latency unit as a standalone module, and its input."""
    f = spec.feature_dict()
    return HeadKernel(spec), (torch.randn(batch, f["c"], f["hw"], f["hw"]),)
