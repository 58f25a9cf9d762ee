"""Torch half of the EfficientFormer kind (:mod:`nas.blocks.efficientformer`): the Meta4D and
Meta3D blocks, their elastic twin, the deploy step folding the layer scales, and the
pooling-mixer unit."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from nas.blocks.efficientformer import Meta3DLayer, Meta4DLayer
from nas.blocks.nn.common import ConvBNAct
from nas.blocks.nn.transformer import ElasticTransformerBlock, TransformerBlock
from nas.supernet.elastic import ElasticConvBNAct, active_state_dict

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


class TokenScale(LayerScale):
    """Per-channel scale of a token sequence (batch, tokens, channels)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.active_scale()


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


class Meta3D(TransformerBlock):
    """``x + ls1(attn(norm1(x)))``, ``x + ls2(mlp(norm2(x)))`` on the tokens of an image-shaped
    tensor (the scales folded into ``attn.proj`` and ``mlp.fc2`` once deployed)."""

    def __init__(self, layer: Meta3DLayer):
        super().__init__(layer)
        self.ls1 = TokenScale(layer.width)
        self.ls2 = TokenScale(layer.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        out = self.attn(self.norm1(tokens))
        tokens = tokens + (out if self.ls1 is None else self.ls1(out))
        out = self.mlp(self.norm2(tokens))
        tokens = tokens + (out if self.ls2 is None else self.ls2(out))
        return tokens.transpose(1, 2).reshape(batch, channels, height, width)


def efficientformer_block(layer: Meta4DLayer | Meta3DLayer) -> nn.Module:
    """The static block of an efficientformer layer."""
    return Meta3D(layer) if isinstance(layer, Meta3DLayer) else Meta4D(layer)


def _scale_rows(linear: nn.Linear, scale: torch.Tensor) -> None:
    with torch.no_grad():
        linear.weight.mul_(scale[:, None])
        linear.bias.mul_(scale)


def fold_layer_scale(module: nn.Module, layer: Meta4DLayer | Meta3DLayer) -> nn.Module:
    """The block with its layer scales folded: Meta4D's ``ls2`` into ``fc2``'s BatchNorm,
    Meta3D's ``ls1`` into the attention's projection and ``ls2`` into the MLP's ``fc2``."""
    if module.ls2 is None:
        return module
    module = copy.deepcopy(module)
    if isinstance(layer, Meta3DLayer):
        _scale_rows(module.attn.proj, module.ls1.scale)
        _scale_rows(module.mlp.fc2, module.ls2.scale)
        module.ls1 = module.ls2 = None
        return module
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


class ElasticTokenScale(ElasticLayerScale):
    forward = TokenScale.forward


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


class ElasticMeta3D(ElasticTransformerBlock):
    forward = Meta3D.forward

    def __init__(self, largest: Meta3DLayer, spec=None):
        super().__init__(largest)
        self.ls1 = ElasticTokenScale(largest.width)
        self.ls2 = ElasticTokenScale(largest.width)

    def set_active(self, layer: Meta3DLayer) -> None:
        super().set_active(layer)
        self.ls1.set_active(layer.width)
        self.ls2.set_active(layer.width)


def _largest_meta3d(largest: Meta4DLayer | Meta3DLayer, spec) -> Meta3DLayer:
    """The largest Meta3D layer of a slot whose largest layer may be a Meta4D one."""
    if isinstance(largest, Meta3DLayer):
        return largest
    choices = spec.choices
    heads = max(choices["heads"]) if "heads" in choices else largest.width // spec.head_dim
    return Meta3DLayer(
        largest.slot,
        largest.hw,
        largest.width,
        heads,
        spec.head_dim,
        max(choices["v_scale"]),
        max(choices["mlp_ratio"]),
        choices["attention"][0],
        largest.activation,
    )


def _largest_meta4d(largest: Meta4DLayer | Meta3DLayer, spec) -> Meta4DLayer:
    if isinstance(largest, Meta4DLayer):
        return largest
    ratio = max(spec.choices["mlp_ratio"])
    return Meta4DLayer(largest.slot, largest.hw, largest.width, ratio, largest.activation)


class ElasticEfficientFormer(nn.Module):
    """The largest efficientformer block of a slot: a Meta4D twin, and a Meta3D twin when the
    stage may choose attention; ``forward`` runs the active one."""

    def __init__(self, largest: Meta4DLayer | Meta3DLayer, spec=None):
        super().__init__()
        mixers = spec.choices.get("mixer", ("pool",)) if spec is not None else ("pool",)
        self.meta4d = ElasticMeta4D(_largest_meta4d(largest, spec)) if "pool" in mixers else None
        self.meta3d = None
        if "attention" in mixers:
            largest_3d = _largest_meta3d(largest, spec)
            self.meta3d = ElasticMeta3D(largest_3d)
            self.meta3d.set_active(largest_3d)
        self.attention = self.meta4d is None

    @property
    def active(self) -> nn.Module:
        return self.meta3d if self.attention else self.meta4d

    def set_active(self, layer: Meta4DLayer | Meta3DLayer) -> None:
        self.attention = isinstance(layer, Meta3DLayer)
        self.active.set_active(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.active(x)

    def active_state(self) -> dict[str, torch.Tensor]:
        return active_state_dict(self.active)


def pool_mixer_kernel(spec, batch: int):
    """The pooling-mixer latency unit as a standalone module, and its input."""
    f = spec.feature_dict()
    return PoolMixer(f["c"]), (torch.randn(batch, f["c"], f["hw"], f["hw"]),)
