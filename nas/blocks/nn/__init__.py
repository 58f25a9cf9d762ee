"""The torch half of the block kinds: standalone models built from each layer's kind.

Each kind's static module, elastic twin and deploy step live in ``nas/blocks/nn/<kind>.py``; the
declarations in ``nas/blocks/<kind>.py`` name them, and the registry imports them on first use.
"""

from __future__ import annotations

from torch import nn

from nas.arch import Arch
from nas.blocks.nn.common import ConvBNAct, activation
from nas.blocks.nn.position_bias import freeze_position_biases, relative_position_index
from nas.blocks.registry import Layer, kind_of
from nas.layers import layers_of
from nas.space import SearchSpace


def build_block(layer: Layer) -> nn.Module:
    """The static module computing one layer."""
    return kind_of(layer).build_static(layer)


def build_model(space: SearchSpace, arch: Arch) -> nn.Sequential:
    """A freshly initialised standalone model of ``arch``."""
    return nn.Sequential(*(build_block(layer) for layer in layers_of(space, arch)))


def deployed(model: nn.Sequential, space: SearchSpace, arch: Arch) -> nn.Sequential:
    """``model`` (of ``arch``) in the form it is exported in: each block through its kind's
    deploy step (re-parameterisation; most kinds keep the block as trained), and the position
    bias of each attention kept as a tensor (:mod:`nas.blocks.nn.position_bias`). Deploying twice
    is deploying once; a model that is not a sequence of blocks is returned as it is."""
    if not isinstance(model, nn.Sequential):
        return model
    blocks = [
        kind_of(layer).deploy_module(block, layer)
        for block, layer in zip(model, layers_of(space, arch), strict=True)
    ]
    if all(new is old for new, old in zip(blocks, model, strict=True)):
        return freeze_position_biases(model)
    return freeze_position_biases(nn.Sequential(*blocks).train(model.training))


__all__ = [
    "ConvBNAct",
    "activation",
    "build_block",
    "build_model",
    "deployed",
    "freeze_position_biases",
    "relative_position_index",
]
