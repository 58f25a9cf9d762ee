"""Block kinds in words: how deployment reports (sensitivity, conformance) name a model's blocks.

A kind is the layer's type with what changes the operators a runtime sees: the attention kind,
squeeze-excite and the activation. A model's top-level blocks are named ``"0"``, ``"1"``, ... in
execution order (the children of the extracted ``nn.Sequential``).
"""

from __future__ import annotations

from nas.arch import Arch
from nas.layers import layers_of
from nas.space import SearchSpace


def kind_of(layer) -> str:
    """E.g. ``MBConv hswish+SE``, ``Transformer softmax hswish``, ``Stem hswish``."""
    parts = [type(layer).__name__.removesuffix("Layer")]
    attention = getattr(layer, "attention", None)
    if attention:
        parts.append(str(attention))
    activation = getattr(layer, "activation", None)
    if activation:
        parts.append(str(activation) + ("+SE" if getattr(layer, "se", False) else ""))
    return " ".join(parts)


def block_kinds(space: SearchSpace, arch: Arch) -> list[tuple[str, str]]:
    """(block name, kind) of each top-level block of the extracted model of ``arch``."""
    return [(str(i), kind_of(layer)) for i, layer in enumerate(layers_of(space, arch))]
