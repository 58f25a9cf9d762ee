"""Block kinds: one declaration module each, registered by name (see :mod:`nas.blocks.registry`).

Every part of the engine -- the space grammar, arch validation, layers, the static model, the
supernet, the operator graph, latency kernels and positions, published-table keys, extraction --
reads block kinds from the registry, so a kind is written once: its declaration here
(``nas/blocks/<kind>.py``, no torch) and its torch half (``nas/blocks/nn/<kind>.py``), imported
on first use. The lines below register the built-in kinds; a kind defined elsewhere registers
itself with :func:`register_block` when its module is imported.

The static modules (``build_model``, ``MBConv``, ``TransformerBlock``, ...) are importable from
here too; they live in :mod:`nas.blocks.nn` and are imported with torch on first access.
"""

from __future__ import annotations

import importlib

# The built-in kinds (importing a kind's module registers it).
from nas.blocks import (  # noqa: F401
    conv_bn,
    efficientformer,
    efficientvit_mit,
    efficientvit_msra,
    fused_mbconv,
    head,
    mbconv,
    mobilevit,
    patch_merging,
    relu_linear,
    repvit,
    separable,
    softmax,
    stem,
    transformer,
)
from nas.blocks.registry import (
    AttentionKind,
    BlockKind,
    ChoiceSpec,
    LayerContext,
    SettingSpec,
    attention_kind,
    attention_kinds,
    block_kind,
    block_kinds,
    kind_of,
    register_attention,
    register_block,
)

#: Torch-side names importable from here, and the module each lives in.
_TORCH_NAMES = {
    "build_block": "nas.blocks.nn",
    "build_model": "nas.blocks.nn",
    "deployed": "nas.blocks.nn",
    "activation": "nas.blocks.nn.common",
    "ConvBNAct": "nas.blocks.nn.common",
    "relative_position_index": "nas.blocks.nn.position_bias",
    "SqueezeExcite": "nas.blocks.nn.mbconv",
    "MBConv": "nas.blocks.nn.mbconv",
    "Attention": "nas.blocks.nn.transformer",
    "Mlp": "nas.blocks.nn.transformer",
    "TransformerBlock": "nas.blocks.nn.transformer",
    "ClassifierHead": "nas.blocks.nn.head",
    "LINEAR_ATTENTION_EPS": "nas.blocks.nn.relu_linear",
}


def __getattr__(name: str):
    if name in _TORCH_NAMES:
        return getattr(importlib.import_module(_TORCH_NAMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AttentionKind",
    "BlockKind",
    "ChoiceSpec",
    "LayerContext",
    "SettingSpec",
    "attention_kind",
    "attention_kinds",
    "block_kind",
    "block_kinds",
    "kind_of",
    "register_attention",
    "register_block",
]
