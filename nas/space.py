"""Search spaces declared as data: a stem, stages of registered block kinds, a head, resolutions.

A :class:`SearchSpace` is built from a plain mapping (a YAML file) and knows everything about its
choices: it validates archs, samples and mutates them, encodes them as vectors and counts them.
What a stage of each kind may choose and set is declared by the kind (:mod:`nas.blocks`). It
imports no torch, so search algorithms can use it anywhere.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from nas import grammar
from nas.arch import Arch, ArchError, Choice, StageArch, StemArch
from nas.blocks import block_kind
from nas.blocks.head import HeadSpec
from nas.blocks.registry import BlockKind, kind_names
from nas.blocks.stem import StemSpec
from nas.grammar import ACTIVATIONS, SpaceError

SPACE_VERSION = 1
#: Keys every stage has, whatever its kinds.
STAGE_KEYS = ("kind", "blocks", "depths", "widths", "stride", "per_layer")

__all__ = [
    "ACTIVATIONS",
    "Dimension",
    "HeadSpec",
    "SearchSpace",
    "SpaceError",
    "StageSpec",
    "StemSpec",
]


@dataclass(frozen=True)
class StageSpec:
    """One stage: its block kinds, its choices and the kinds' fixed settings.

    ``kind`` is the stage's kind as declared; ``blocks`` the block kinds its layers may take
    (a choice, ``block``, when there are several); a setting reads as an attribute
    (``spec.se``, ``spec.head_dim``).
    """

    kind: str
    choices: Mapping[str, tuple[Choice, ...]]
    stride: int = 1
    per_layer: frozenset[str] = frozenset()
    settings: Mapping[str, Any] = field(default_factory=dict)
    blocks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, value in self.settings.items():  # settings read as attributes
            if name not in self.__dataclass_fields__:
                object.__setattr__(self, name, value)

    @property
    def depths(self) -> tuple[int, ...]:
        return self.choices["depth"]  # type: ignore[return-value]

    @property
    def widths(self) -> tuple[int, ...]:
        return self.choices["width"]  # type: ignore[return-value]

    @property
    def extra_choices(self) -> tuple[str, ...]:
        """The stage's choices other than depth and width, in canonical order."""
        return tuple(name for name in self.choices if name not in ("depth", "width"))

    @property
    def block_kind(self) -> BlockKind:
        """The kind of the stage's layers (the first, when the stage chooses among several)."""
        return block_kind(self.blocks[0] if self.blocks else self.kind)

    @property
    def entry(self) -> str | None:
        """The slot name of the layer opening the stage, if its kinds have one."""
        return self.block_kind.stage_entry(self.settings)


@dataclass(frozen=True)
class Dimension:
    """One independent decision of a space, such as ``stages[2].kernel[1]``."""

    name: str
    values: tuple[Choice, ...]
    stage: int | None = None
    choice: str | None = None
    layer: int | None = None


@dataclass(frozen=True)
class SearchSpace:
    """A declared space of architectures; see the README for the YAML grammar."""

    name: str
    resolutions: tuple[int, ...]
    stem: StemSpec
    stages: tuple[StageSpec, ...]
    head: HeadSpec
    in_channels: int = 3
    num_classes: int = 1000
    description: str = ""
    source: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        """The declaration, without data derived from it and kept on the space (``nas.layers``
        caches closures there): a space pickles, e.g. to build models in worker processes."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        if not isinstance(data, Mapping):
            raise SpaceError(f"a space must be a mapping, got {type(data).__name__}")
        version = data.get("version", SPACE_VERSION)
        if version != SPACE_VERSION:
            raise SpaceError(f"version = {version!r} is not supported; supported: {SPACE_VERSION}")
        known = {
            "name",
            "version",
            "description",
            "in_channels",
            "num_classes",
            "resolutions",
            "stem",
            "stages",
            "head",
        }
        grammar.reject_unknown(data, known, "space")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise SpaceError(f"name = {name!r} must be a non-empty string")
        stages_data = data.get("stages")
        if not isinstance(stages_data, list) or not stages_data:
            raise SpaceError("stages must be a non-empty list")
        head = block_kind("head").parse(data.get("head", {}))
        space = cls(
            name=name,
            description=str(data.get("description", "")),
            in_channels=grammar.positive_int(data.get("in_channels", 3), "in_channels"),
            num_classes=grammar.positive_int(data.get("num_classes", 1000), "num_classes"),
            resolutions=grammar.int_list(data.get("resolutions"), "resolutions"),
            stem=block_kind("stem").parse(data.get("stem")),
            stages=tuple(_stage_from_dict(s, f"stages[{i}]") for i, s in enumerate(stages_data)),
            head=head,
            source=dict(data),
        )
        return space

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        from nas.textfiles import FileFormatError, read_yaml

        try:
            data = read_yaml(path, "a search space declaration")
        except FileFormatError as err:
            raise SpaceError(str(err)) from None
        try:
            return cls.from_dict(data)
        except SpaceError as err:
            raise SpaceError(f"{path}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """The declaration this space was built from, with task overrides applied."""
        data = dict(self.source)
        data.update(name=self.name, in_channels=self.in_channels, num_classes=self.num_classes)
        return data

    def with_task(self, *, num_classes: int | None = None, in_channels: int | None = None):
        """The same space for another task (number of classes, input channels)."""
        return replace(
            self,
            num_classes=num_classes or self.num_classes,
            in_channels=in_channels or self.in_channels,
        )

    # ----------------------------------------------------------------- dimensions

    @cached_property
    def dimensions(self) -> tuple[Dimension, ...]:
        """Every independent decision; per-layer choices have one dimension per possible layer."""
        dims = [Dimension("resolution", self.resolutions)]
        dims.append(Dimension("stem.width", self.stem.widths))
        dims.append(Dimension("stem.depth", self.stem.ds_depths))
        for i, stage in enumerate(self.stages):
            for name in ("depth", "width", *stage.extra_choices):
                values = stage.choices[name]
                if name in stage.per_layer:
                    for layer in range(max(stage.depths)):
                        dims.append(
                            Dimension(f"stages[{i}].{name}[{layer}]", values, i, name, layer)
                        )
                else:
                    dims.append(Dimension(f"stages[{i}].{name}", values, i, name))
        return tuple(dims)

    def decisions(self, arch: Arch, rng: random.Random | None = None) -> list[Choice]:
        """Arch -> one value per dimension; inactive per-layer slots get random fills (or None)."""
        out: list[Choice] = []
        for dim in self.dimensions:
            if dim.stage is None:
                value = {
                    "resolution": arch.resolution,
                    "stem.width": arch.stem.width,
                    "stem.depth": arch.stem.depth,
                }[dim.name]
            else:
                stage = arch.stages[dim.stage]
                raw = getattr(stage, dim.choice)  # type: ignore[arg-type]
                if dim.layer is None:
                    value = raw
                elif dim.layer < stage.depth:
                    value = raw[dim.layer]
                else:
                    value = rng.choice(dim.values) if rng else None
            out.append(value)
        return out

    def assemble(self, values: Sequence[Choice]) -> Arch:
        """The arch taking ``values[k]`` for ``dimensions[k]`` (per-layer values past a stage's
        depth are ignored)."""
        return self.validate(self._assemble(values))

    def _assemble(self, slots: Sequence[Choice]) -> Arch:
        """One value per dimension -> Arch (per-layer values cut to the stage's depth)."""
        by_name = dict(zip((d.name for d in self.dimensions), slots, strict=True))
        stages = []
        for i, spec in enumerate(self.stages):
            depth = by_name[f"stages[{i}].depth"]
            values: dict[str, Any] = {"depth": depth, "width": by_name[f"stages[{i}].width"]}
            for name in spec.extra_choices:
                if name in spec.per_layer:
                    values[name] = tuple(by_name[f"stages[{i}].{name}[{k}]"] for k in range(depth))
                else:
                    values[name] = by_name[f"stages[{i}].{name}"]
            stages.append(StageArch(**values))
        return Arch(
            space=self.name,
            resolution=by_name["resolution"],
            stem=StemArch(width=by_name["stem.width"], depth=by_name["stem.depth"]),
            stages=tuple(stages),
        )

    # ----------------------------------------------------------------- archs

    def sample(self, rng: random.Random | int | None = None) -> Arch:
        """A random arch: every decision drawn uniformly and independently."""
        rng = _rng(rng)
        return self._assemble([rng.choice(d.values) for d in self.dimensions])

    def min_arch(self) -> Arch:
        """The smallest arch (first declared value for categorical choices)."""
        return self._assemble([_extreme(d.values, min) for d in self.dimensions])

    def max_arch(self) -> Arch:
        """The largest arch (first declared value for categorical choices)."""
        return self._assemble([_extreme(d.values, max) for d in self.dimensions])

    def mutate(self, arch: Arch, rng: random.Random | int | None = None, prob: float = 0.1) -> Arch:
        """Redraw each decision with probability ``prob`` (layers a new depth adds are random)."""
        rng = _rng(rng)
        self.validate(arch)
        slots = self.decisions(arch, rng)
        for k, dim in enumerate(self.dimensions):
            if rng.random() < prob:
                slots[k] = rng.choice(dim.values)
        return self._assemble(slots)

    def crossover(self, first: Arch, second: Arch, rng: random.Random | int | None = None) -> Arch:
        """Uniform crossover: each decision taken from either parent with equal chance."""
        rng = _rng(rng)
        self.validate(first)
        self.validate(second)
        a, b = self.decisions(first, rng), self.decisions(second, rng)
        return self._assemble([x if rng.random() < 0.5 else y for x, y in zip(a, b, strict=True)])

    def size(self) -> int:
        """The exact number of distinct archs in the space."""
        total = len(self.resolutions) * len(self.stem.widths) * len(self.stem.ds_depths)
        for stage in self.stages:
            per_stage = len(stage.widths)
            per_layer = 1
            for name in stage.extra_choices:
                if name in stage.per_layer:
                    per_layer *= len(stage.choices[name])
                else:
                    per_stage *= len(stage.choices[name])
            total *= per_stage * sum(per_layer**depth for depth in stage.depths)
        return total

    # ----------------------------------------------------------------- encoding

    @cached_property
    def encoding_length(self) -> int:
        return sum(len(d.values) for d in self.dimensions)

    def encode(self, arch: Arch) -> np.ndarray:
        """Fixed-length one-hot vector; layers beyond a stage's depth encode as all zeros."""
        self.validate(arch)
        vector = np.zeros(self.encoding_length, dtype=np.float32)
        offset = 0
        for dim, value in zip(self.dimensions, self.decisions(arch), strict=True):
            if value is not None:
                vector[offset + dim.values.index(value)] = 1.0
            offset += len(dim.values)
        return vector

    def encode_many(self, archs: Sequence[Arch]) -> np.ndarray:
        """Stack of :meth:`encode`, shape (len(archs), encoding_length)."""
        if not archs:
            return np.zeros((0, self.encoding_length), dtype=np.float32)
        return np.stack([self.encode(a) for a in archs])

    # ----------------------------------------------------------------- validation

    def validate(self, arch: Arch) -> Arch:
        """Raise :class:`ArchError` naming the first field outside this space; return the arch."""
        if not isinstance(arch, Arch):
            raise ArchError(f"expected an Arch, got {type(arch).__name__}")
        if arch.space != self.name:
            raise ArchError(f"space = {arch.space!r} does not match this space {self.name!r}")
        _check(arch.resolution, self.resolutions, "resolution")
        _check(arch.stem.width, self.stem.widths, "stem.width")
        _check(arch.stem.depth, self.stem.ds_depths, "stem.depth")
        if len(arch.stages) != len(self.stages):
            raise ArchError(
                f"stages has {len(arch.stages)} entries; this space has {len(self.stages)}"
            )
        for i, (stage, spec) in enumerate(zip(arch.stages, self.stages, strict=True)):
            where = f"stages[{i}]"
            _check(stage.depth, spec.depths, f"{where}.depth")
            _check(stage.width, spec.widths, f"{where}.width")
            for name, value in stage.choices:
                if name not in spec.choices:
                    raise ArchError(
                        f"{where}.{name} = {_show(value)} is not a choice of this {spec.kind} "
                        f"stage; its choices: depth, width, {', '.join(spec.extra_choices)}"
                    )
            for name in spec.extra_choices:
                value = stage.choice(name)
                allowed = spec.choices[name]
                if value is None:
                    raise ArchError(f"{where}.{name} is missing; allowed: {list(allowed)}")
                if name in spec.per_layer:
                    if not isinstance(value, tuple) or len(value) != stage.depth:
                        raise ArchError(
                            f"{where}.{name} = {_show(value)} must be a list of {stage.depth} "
                            f"values (one per layer) from {list(allowed)}"
                        )
                    for k, v in enumerate(value):
                        _check(v, allowed, f"{where}.{name}[{k}]")
                else:
                    if isinstance(value, tuple):
                        raise ArchError(
                            f"{where}.{name} = {_show(value)} must be one value from {list(allowed)} "
                            "(this space chooses it once per stage)"
                        )
                    _check(value, allowed, f"{where}.{name}")
        return arch


# --------------------------------------------------------------------- helpers


def _rng(rng: random.Random | int | None) -> random.Random:
    return rng if isinstance(rng, random.Random) else random.Random(rng)


def _extreme(values: tuple[Choice, ...], pick) -> Choice:
    if all(isinstance(v, int | float) for v in values):
        return pick(values)
    return values[0]


def _show(value: Any) -> str:
    return repr(list(value)) if isinstance(value, tuple) else repr(value)


def _check(value: Any, allowed: tuple[Choice, ...], where: str) -> None:
    if isinstance(value, bool) or value not in allowed:
        raise ArchError(f"{where} = {_show(value)} is not allowed; choices: {list(allowed)}")


def _stage_kinds(data: Mapping[str, Any], where: str) -> tuple[str, tuple[str, ...]]:
    """(the stage's kind as declared, the registered names of its block kinds)."""
    blocks = data.get("blocks")
    if blocks is None:
        kind = data.get("kind")
        return kind, (block_kind(kind, f"{where}.kind", "stage").name,)
    if not isinstance(blocks, list) or not blocks or len(set(blocks)) != len(blocks):
        raise SpaceError(
            f"{where}.blocks = {blocks!r} must be a list of distinct block kinds; "
            f"choices: {kind_names('stage')}"
        )
    kinds = [block_kind(b, f"{where}.blocks", "stage") for b in blocks]
    first = kinds[0]
    for other in kinds[1:]:
        if _signature(other) != _signature(first):
            raise SpaceError(
                f"{where}.blocks: {first.name!r} and {other.name!r} cannot share a stage (its "
                f"layers take one set of choices); {first.name} chooses "
                f"{[c.name for c in first.choices]} and sets {[s.name for s in first.settings]}, "
                f"{other.name} chooses {[c.name for c in other.choices]} and sets "
                f"{[s.name for s in other.settings]}"
            )
    kind = data.get("kind", blocks[0])
    if block_kind(kind, f"{where}.kind", "stage").name not in [k.name for k in kinds]:
        raise SpaceError(f"{where}.kind = {kind!r} must be one of its blocks {blocks}")
    return kind, tuple(k.name for k in kinds)


def _signature(kind: BlockKind) -> tuple:
    """What block kinds sharing a stage must have in common."""
    return (tuple(c.name for c in kind.choices), tuple(s.name for s in kind.settings), kind.entry)


def _stage_from_dict(data: Any, where: str) -> StageSpec:
    if not isinstance(data, Mapping):
        raise SpaceError(f"{where} must be a mapping, got {data!r}")
    declared, blocks = _stage_kinds(data, where)
    kind = block_kind(blocks[0])
    known = set(STAGE_KEYS) | {c.key for c in kind.choices} | {s.name for s in kind.settings}
    grammar.reject_unknown(data, known, where)

    choices: dict[str, tuple[Choice, ...]] = {}
    for name, key in (("depth", "depths"), ("width", "widths")):
        if key not in data:
            raise SpaceError(f"{where}.{key} is missing (a {declared} stage needs it)")
        choices[name] = grammar.int_list(data[key], f"{where}.{key}")
    if len(blocks) > 1:
        choices["block"] = blocks
    for choice in kind.choices:
        if choice.key in data:
            values = grammar.choice_list(data[choice.key], f"{where}.{choice.key}")
        elif choice.default:
            values = choice.default
        elif choice.optional:
            continue
        else:
            raise SpaceError(f"{where}.{choice.key} is missing (a {declared} stage needs it)")
        if choice.check is not None:
            choice.check(values, f"{where}.{choice.key}")
        choices[choice.name] = values

    own = [name for name in choices if name not in ("depth", "width")]
    per_layer = data.get("per_layer", [])
    if not isinstance(per_layer, list) or any(p not in own for p in per_layer):
        raise SpaceError(
            f"{where}.per_layer = {per_layer!r} must list choices of a {declared} stage: {own}"
        )
    settings = {
        s.name: s.parse(data.get(s.name, s.default), f"{where}.{s.name}") for s in kind.settings
    }
    stride = grammar.positive_int(data.get("stride", 1), f"{where}.stride")
    for name in blocks:  # each kind of the stage refuses what it cannot build
        block_kind(name).check_stage(choices, {**settings, "stride": stride}, where)
    return StageSpec(
        kind=declared,
        choices=choices,
        stride=stride,
        per_layer=frozenset(per_layer),
        settings=settings,
        blocks=blocks,
    )
