"""The weight-sharing supernet of a search space."""

from __future__ import annotations

import torch
from torch import nn

from nas.arch import Arch
from nas.blocks.registry import Layer, kind_of
from nas.layers import Slot, layers_of, slot_layer, slots
from nas.space import SearchSpace


class KindChoice(nn.ModuleDict):
    """A slot whose layer may be of several block kinds: one elastic module (weight set) each."""


def _largest(values: tuple) -> object:
    """The largest of numeric choices; the first declared of others."""
    if all(isinstance(v, int | float) for v in values):
        return max(values)
    return values[0]


class Supernet(nn.Module):
    """Holds the largest weights of every slot; ``set_arch`` picks the subnet ``forward`` runs.

    Module names are the slots of :func:`nas.layers.slots`: ``stem``, ``stem_ds.k``,
    ``stages.i.<entry>`` (``stages.i.downsample`` for transformer stages), ``stages.i.layers.k``,
    ``head``; a slot whose stage chooses among block kinds holds one module per kind
    (``stages.i.layers.k.<kind>``). Each module is its block kind's elastic twin, built for the
    largest layer of the slot.
    """

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space
        built = {slot.name: self._elastic(slot) for slot in slots(space)}
        self.stem = built["stem"]
        self.stem_ds = nn.ModuleList(
            built[f"stem_ds.{k}"] for k in range(max(space.stem.ds_depths))
        )
        self.stages = nn.ModuleList()
        for i, spec in enumerate(space.stages):
            stage = nn.ModuleDict()
            if spec.entry:
                stage[spec.entry] = built[f"stages.{i}.{spec.entry}"]
            stage["layers"] = nn.ModuleList(
                built[f"stages.{i}.layers.{k}"] for k in range(max(spec.depths))
            )
            self.stages.append(stage)
        self.head = built["head"]
        self.set_arch(space.max_arch())

    def _elastic(self, slot: Slot) -> nn.Module:
        space = self.space
        spec = space.stages[slot.stage] if slot.stage is not None else None
        spec = spec or (space.head if slot.role == "head" else space.stem)
        values = {
            field: _largest(space.dimensions[d].values)
            for field, d in zip(slot.fields, slot.deps, strict=True)
        }
        if "block" not in values:
            layer = slot_layer(space, slot, values)
            return kind_of(layer).build_elastic(layer, spec)
        choice = KindChoice()
        for kind in spec.blocks:
            layer = slot_layer(space, slot, {**values, "block": kind})
            choice[kind] = kind_of(layer).build_elastic(layer, spec)
        return choice

    def _module(self, layer: Layer) -> nn.Module:
        module = self.get_submodule(layer.slot)
        return module[kind_of(layer).name] if isinstance(module, KindChoice) else module

    def set_arch(self, arch: Arch) -> None:
        """Make ``forward`` compute the subnet ``arch`` (validated against the space)."""
        active = []
        for layer in layers_of(self.space, arch):
            module = self._module(layer)
            module.set_active(layer)
            active.append(module)
        self.arch = arch
        self.active_blocks = active

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.active_blocks:
            x = block(x)
        return x
