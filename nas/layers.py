"""(space, arch) -> the concrete layers of the subnet, with every shape resolved.

Every layer a subnet can have sits in a *slot*: the dotted name of the supernet module computing
it (``stem``, ``stem_ds.k``, ``stages.i.<entry>``, ``stages.i.layers.k``, ``head``). The layer in
a slot depends on a few of the space's decisions (:attr:`SearchSpace.dimensions`): the
resolution, the widths feeding and leaving it, its block kind and its own choices.
:func:`slot_layer` builds it from those values through the slot's block kind, and it is the one
way layers are made: :func:`layers_of` (the layers of one arch), the supernet (the largest layer
of each slot) and the latency positions (every layer of a slot) all call it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nas.arch import Arch
from nas.blocks import block_kind
from nas.blocks.head import HeadLayer
from nas.blocks.mbconv import MBConvLayer, expanded_channels, se_channels
from nas.blocks.registry import Layer, LayerContext
from nas.blocks.shapes import conv_out_hw, make_divisible
from nas.blocks.stem import StemLayer
from nas.blocks.transformer import TransformerLayer
from nas.space import SearchSpace

__all__ = [
    "HeadLayer",
    "Layer",
    "MBConvLayer",
    "Slot",
    "StemLayer",
    "TransformerLayer",
    "conv_out_hw",
    "expanded_channels",
    "layers_of",
    "make_divisible",
    "se_channels",
    "slot_layer",
    "slots",
    "stage_sides",
]

#: Roles of slots: the stem conv, a layer after it, a stage's entry, a stage layer, the head.
ROLES = ("stem", "stem_ds", "entry", "body", "head")


@dataclass(frozen=True)
class Slot:
    """One possible layer of a space, by the name of the supernet module computing it.

    ``deps`` are indices into ``space.dimensions`` of the decisions the layer depends on (the
    resolution first), ``fields`` what each means to the slot (``resolution``, ``in_width``,
    ``width``, ``block`` or a choice name). The slot is active iff the value of ``depth_dim`` is
    more than ``layer`` (always, when ``depth_dim`` is None).
    """

    name: str
    role: str
    stage: int | None
    layer: int
    deps: tuple[int, ...]
    fields: tuple[str, ...]
    depth_dim: int | None

    def shape(self, space: SearchSpace) -> tuple[int, ...]:
        """Number of values of each decision of ``deps``."""
        return tuple(len(space.dimensions[d].values) for d in self.deps)


def _cache(space: SearchSpace) -> dict:
    """Derived per-space data (slots, slot builders, decision readers), kept on the space."""
    return space.__dict__.setdefault("_layer_cache", {})


def slots(space: SearchSpace) -> tuple[Slot, ...]:
    """Every slot of ``space`` in execution order."""
    cache = _cache(space)
    if "slots" not in cache:
        cache["slots"] = _slots(space)
    return cache["slots"]


def _slots(space: SearchSpace) -> tuple[Slot, ...]:
    index = {dim.name: k for k, dim in enumerate(space.dimensions)}
    res, stem_w = index["resolution"], index["stem.width"]
    own = ("resolution", "width")
    out = [Slot("stem", "stem", None, 0, (res, stem_w), own, None)]
    for k in range(max(space.stem.ds_depths)):
        out.append(
            Slot(f"stem_ds.{k}", "stem_ds", None, k, (res, stem_w), own, index["stem.depth"])
        )
    feeding = stem_w
    for i, spec in enumerate(space.stages):
        width, depth = index[f"stages[{i}].width"], index[f"stages[{i}].depth"]
        if spec.entry:
            deps, fields = (res, feeding, width), ("resolution", "in_width", "width")
            for name in spec.block_kind.entry_choices:
                if name in spec.choices:  # a per-layer choice: the first layer's value
                    key = f"stages[{i}].{name}"
                    deps += (index[key] if key in index else index[f"{key}[0]"],)
                    fields += (name,)
            out.append(Slot(f"stages.{i}.{spec.entry}", "entry", i, 0, deps, fields, None))
        for k in range(max(spec.depths)):
            fed = k == 0 and not spec.entry  # later layers are fed by their own stage's width
            deps = (res, *((feeding,) if fed else ()), width)
            fields = ("resolution", *(("in_width",) if fed else ()), "width")
            for name in spec.extra_choices:
                layered = name in spec.per_layer
                deps += (index[f"stages[{i}].{name}[{k}]" if layered else f"stages[{i}].{name}"],)
                fields += (name,)
            out.append(Slot(f"stages.{i}.layers.{k}", "body", i, k, deps, fields, depth))
        feeding = width
    out.append(Slot("head", "head", None, 0, (res, feeding), ("resolution", "in_width"), None))
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _sides(stem_stride: int, strides: tuple[int, ...], resolution: int):
    hw = conv_out_hw(resolution, stem_stride)
    stem_side, before, inside = hw, [], []
    for stride in strides:
        before.append(hw)
        hw = conv_out_hw(hw, stride)
        inside.append(hw)
    return stem_side, tuple(before), tuple(inside)


def stage_sides(
    space: SearchSpace, resolution: int
) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """(side after the stem, side entering each stage, side inside each stage) at a resolution.

    A stage changes the side by its stride only (applied by its entry, or by its first layer)."""
    return _sides(space.stem.total_stride, tuple(s.stride for s in space.stages), resolution)


def slot_layer(space: SearchSpace, slot: Slot, values: Sequence[Any] | Mapping[str, Any]) -> Layer:
    """The layer in ``slot`` when its decisions (``slot.deps``) take ``values`` (in that order,
    or by field name). Layers are immutable: each is built once per space and values."""
    key = tuple(values[f] for f in slot.fields) if isinstance(values, dict) else tuple(values)
    build, memo = _slot_builder(space, slot)
    layer = memo.get(key)
    if layer is None:
        layer = memo[key] = build(dict(zip(slot.fields, key, strict=True)))
    return layer


def _slot_builder(space: SearchSpace, slot: Slot):
    builders = _cache(space).setdefault("builders", {})
    found = builders.get(slot.name)
    if found is None:
        found = builders[slot.name] = (_builder(space, slot), {})
    return found


def _builder(space: SearchSpace, slot: Slot):
    """``values by field -> layer`` for ``slot``, with what does not depend on them looked up."""
    strides = tuple(s.stride for s in space.stages)

    def sides(resolution: int):
        return _sides(space.stem.total_stride, strides, resolution)

    name, role = slot.name, slot.role
    if role in ("stem", "stem_ds"):
        stem, spec = block_kind("stem"), space.stem
        if role == "stem":
            return lambda v: stem.layer(
                LayerContext(
                    name, v["resolution"], space.in_channels, v["width"], spec.stride, spec
                )
            )
        return lambda v: stem.ds_layer(
            LayerContext(name, sides(v["resolution"])[0], v["width"], v["width"], 1, spec)
        )
    if role == "head":
        head, spec, classes = block_kind("head"), space.head, space.num_classes

        def build_head(v):
            stem_side, _, inside = sides(v["resolution"])
            hw = inside[-1] if inside else stem_side
            return head.layer(LayerContext(name, hw, v["in_width"], classes, 1, spec))

        return build_head
    i, spec = slot.stage, space.stages[slot.stage]
    kind = spec.block_kind
    if role == "entry":
        read = [f for f in slot.fields if f not in ("resolution", "in_width", "width")]
        return lambda v: kind.entry_layer(
            LayerContext(
                name,
                sides(v["resolution"])[1][i],
                v["in_width"],
                v["width"],
                spec.stride,
                spec,
                {f: v[f] for f in read},
            )
        )
    first = slot.layer == 0 and not spec.entry
    stride = spec.stride if first else 1
    choices = tuple(n for n in spec.extra_choices if n != "block")
    kinds = {k: block_kind(k) for k in spec.blocks}

    def build_body(v):
        _, before, inside = sides(v["resolution"])
        ctx = LayerContext(
            name,
            before[i] if first else inside[i],
            v["in_width"] if first else v["width"],
            v["width"],
            stride,
            spec,
            {n: v[n] for n in choices},
            slot.layer,
        )
        return (kinds[v["block"]] if "block" in v else kind).layer(ctx)

    return build_body


def _readers(space: SearchSpace) -> list:
    """For each dimension of ``space``, ``arch -> its value`` (per-layer values of layers the
    arch does not have are not read)."""
    cache = _cache(space)
    if "readers" not in cache:
        readers = []
        for d in space.dimensions:
            if d.stage is None:
                field = {"resolution": None, "stem.width": "width", "stem.depth": "depth"}[d.name]
                readers.append(
                    (lambda a: a.resolution)
                    if field is None
                    else (lambda a, f=field: getattr(a.stem, f))
                )
            elif d.choice in ("depth", "width"):
                readers.append(lambda a, i=d.stage, f=d.choice: getattr(a.stages[i], f))
            elif d.layer is None:
                readers.append(lambda a, i=d.stage, c=d.choice: a.stages[i].choice(c))
            else:
                readers.append(lambda a, i=d.stage, c=d.choice, k=d.layer: a.stages[i].choice(c)[k])
        cache["readers"] = readers
    return cache["readers"]


def _plan(space: SearchSpace) -> list:
    """Per slot: (reader of its depth decision, its layer index, readers of its decisions, its
    builder and built layers)."""
    cache = _cache(space)
    if "plan" not in cache:
        read = _readers(space)
        cache["plan"] = [
            (
                None if slot.depth_dim is None else read[slot.depth_dim],
                slot.layer,
                tuple(read[d] for d in slot.deps),
                slot,
                _slot_builder(space, slot),
            )
            for slot in slots(space)
        ]
    return cache["plan"]


def layers_of(space: SearchSpace, arch: Arch) -> tuple[Layer, ...]:
    """The subnet's layers in execution order (by :func:`slot_layer`). ``arch`` must be valid
    for ``space``."""
    space.validate(arch)
    layers = []
    for depth, index, readers, slot, (build, memo) in _plan(space):
        if depth is not None and depth(arch) <= index:
            continue
        key = tuple([read(arch) for read in readers])
        layer = memo.get(key)
        if layer is None:
            layer = memo[key] = build(dict(zip(slot.fields, key, strict=True)))
        layers.append(layer)
    return tuple(layers)
