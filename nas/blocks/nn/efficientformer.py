"""Torch half of the EfficientFormer kind (:mod:`nas.blocks.efficientformer`): the Meta4D block,
its elastic twin, the deploy step folding the MLP's layer scale, and the pooling-mixer unit."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from nas.blocks.efficientformer import Meta4DLayer
from nas.blocks.nn.common import ConvBNAct
from nas.supernet.elastic import ElasticConvBNAct

LAYER_SCALE_INIT = 1e-5


class LayerScale(nn.Module):
    """Per-channel scale of an image-shaped tensor (``scale``, initialised to 1e-5)."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.full((channels,), LAYER_SCALE_INIT))

    def active_scale(self) -> torch.Tensor:
        return self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.active_scale().view(1, -1, 1, 1)


class PoolMixer(LayerScale):
    """``x + scale * (avgpool3x3(x) - x)``, averaging only the valid neighbours."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        return x + (pooled - x) * self.active_scale().view(1, -1, 1, 1)


class Meta4D(nn.Module):
    """Pooling mixer, then ``x + ls2(fc2(fc1(x)))`` (``ls2`` folded into ``fc2`` once deployed)."""

    def __init__(self, layer: Meta4DLayer):
        super().__init__()
        c, hidden = layer.width, layer.mlp_hidden
        self.mixer = PoolMixer(c)
        self.fc1 = ConvBNAct(c, hidden, 1, act=layer.activation)
        self.fc2 = ConvBNAct(hidden, c, 1)
        self.ls2 = LayerScale(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mixer(x)
        out = self.fc2(self.fc1(x))
        if self.ls2 is not None:
            out = self.ls2(out)
        return x + out


def fold_layer_scale(module: Meta4D, layer: Meta4DLayer) -> Meta4D:
    """The block with ``ls2`` folded into ``fc2``'s BatchNorm (its weight and bias scaled)."""
    if module.ls2 is None:
        return module
    module = copy.deepcopy(module)
    scale = module.ls2.scale
    with torch.no_grad():
        module.fc2.bn.weight.mul_(scale)
        module.fc2.bn.bias.mul_(scale)
    module.ls2 = None
    return module


class ElasticLayerScale(LayerScale):
    """The leading ``channels`` of the largest scale."""

    def __init__(self, max_channels: int):
        super().__init__(max_channels)
        self.channels = max_channels

    def set_active(self, channels: int) -> None:
        self.channels = channels

    def active_scale(self) -> torch.Tensor:
        return self.scale[: self.channels]

    def active_state(self) -> dict[str, torch.Tensor]:
        return {"scale": self.active_scale()}


class ElasticPoolMixer(ElasticLayerScale):
    forward = PoolMixer.forward


class ElasticMeta4D(nn.Module):
    forward = Meta4D.forward

    def __init__(self, largest: Meta4DLayer, spec=None):
        super().__init__()
        c, hidden = largest.width, largest.mlp_hidden
        self.mixer = ElasticPoolMixer(c)
        self.fc1 = ElasticConvBNAct(c, hidden, 1, act=largest.activation)
        self.fc2 = ElasticConvBNAct(hidden, c, 1)
        self.ls2 = ElasticLayerScale(c)

    def set_active(self, layer: Meta4DLayer) -> None:
        c, hidden = layer.width, layer.mlp_hidden
        self.mixer.set_active(c)
        self.fc1.configure(c, hidden)
        self.fc2.configure(hidden, c)
        self.ls2.set_active(c)


def pool_mixer_kernel(spec, batch: int):
    """The pooling-mixer latency unit as a standalone module, and its input."""
    f = spec.feature_dict()
    return PoolMixer(f["c"]), (torch.randn(batch, f["c"], f["hw"], f["hw"]),)
