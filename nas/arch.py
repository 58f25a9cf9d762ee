"""One point of a search space: an immutable, hashable architecture with a JSON form.

An :class:`Arch` holds the choices made for every decision a space declares. Choices made once per
stage are scalars; choices a space lets vary per layer are tuples with one value per active layer.
Checking an arch against the *allowed* values is the space's job (``SearchSpace.validate``); this
module only guarantees a well-formed structure and a lossless JSON round trip.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import InputError

ARCH_FORMAT = "nas-arch"
ARCH_VERSION = 1

Choice = int | float | str
LayerChoice = Choice | tuple[Choice, ...]

#: Names of the choices stages may make besides depth and width: the choice of block kind and
#: the choices block kinds declare (``nas.blocks.registry`` adds them as kinds register).
_CHOICE_NAMES: set[str] = {"block"}


def register_choice(name: str) -> None:
    """Make ``name`` a stage choice: a stage without it reads it as ``None``."""
    _CHOICE_NAMES.add(name)


class ArchError(InputError):
    """An arch is malformed or outside its space; the message names field, value and what is allowed."""


@dataclass(frozen=True)
class StemArch:
    """Stem choices: output width and the number of depthwise-separable layers after the stem conv."""

    width: int
    depth: int = 0


@dataclass(frozen=True, init=False, eq=False)
class StageArch:
    """Choices of one stage: depth, width and the choices of its kinds, by name.

    ``StageArch(depth=2, width=24, kernel=5, expand_ratio=(3, 4))``; a choice reads as an
    attribute (``stage.kernel``), ``None`` for a registered choice the stage does not make.
    Choices keep the order they were given in (arch files list them so); equality ignores it.
    """

    depth: int
    width: int
    choices: tuple[tuple[str, LayerChoice], ...]

    def __init__(
        self,
        depth: int,
        width: int,
        choices: tuple[tuple[str, LayerChoice], ...] | dict[str, LayerChoice] = (),
        **named: LayerChoice | None,
    ):
        values = dict(choices)
        values.update(named)
        values = {k: v for k, v in values.items() if v is not None}
        object.__setattr__(self, "depth", depth)
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "choices", tuple(values.items()))
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_key", (depth, width, tuple(sorted(values.items()))))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StageArch):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __getattr__(self, name: str) -> LayerChoice | None:
        if name.startswith("_"):
            raise AttributeError(name)
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        if name in _CHOICE_NAMES:
            return None
        raise AttributeError(f"{type(self).__name__} has no choice {name!r}")

    def choice(self, name: str) -> LayerChoice | None:
        return self._values.get(name)

    def layer_value(self, name: str, layer: int) -> Choice | None:
        """The value of choice ``name`` at layer ``layer`` (per-stage choices repeat)."""
        value = self._values.get(name)
        return value[layer] if isinstance(value, tuple) else value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"depth": self.depth, "width": self.width}
        for name, value in self.choices:
            out[name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class Arch:
    """A subnet of a named search space."""

    space: str
    resolution: int
    stem: StemArch
    stages: tuple[StageArch, ...]

    def __hash__(self) -> int:  # archs key many caches: hash once
        try:
            return self._hash
        except AttributeError:
            value = hash((self.space, self.resolution, self.stem, self.stages))
            object.__setattr__(self, "_hash", value)
            return value

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ARCH_FORMAT,
            "version": ARCH_VERSION,
            "space": self.space,
            "resolution": self.resolution,
            "stem": {"width": self.stem.width, "depth": self.stem.depth},
            "stages": [stage.to_dict() for stage in self.stages],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def save(self, path: str | Path) -> None:
        from nas.runs import write_atomic

        write_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Arch:
        if not isinstance(data, Mapping):
            raise ArchError(f"an arch must be a JSON object, got {type(data).__name__}")
        fmt = data.get("format", ARCH_FORMAT)
        if fmt != ARCH_FORMAT:
            raise ArchError(f"format = {fmt!r} is not an arch; expected {ARCH_FORMAT!r}")
        version = data.get("version", ARCH_VERSION)
        if version != ARCH_VERSION:
            raise ArchError(f"version = {version!r} is not supported; supported: {ARCH_VERSION}")
        unknown = set(data) - {"format", "version", "space", "resolution", "stem", "stages"}
        if unknown:
            raise ArchError(
                f"unknown arch field(s) {sorted(unknown)}; allowed: "
                "format, version, space, resolution, stem, stages"
            )
        space = _required(data, "space", "")
        if not isinstance(space, str) or not space:
            raise ArchError(f"space = {space!r} must be a non-empty space name")
        stem_data = _required(data, "stem", "")
        if not isinstance(stem_data, Mapping):
            raise ArchError(f"stem = {stem_data!r} must be an object with width and depth")
        stem = StemArch(
            width=_int(_required(stem_data, "width", "stem."), "stem.width"),
            depth=_int(stem_data.get("depth", 0), "stem.depth"),
        )
        stages_data = _required(data, "stages", "")
        if not isinstance(stages_data, list) or not stages_data:
            raise ArchError(f"stages = {stages_data!r} must be a non-empty list of objects")
        stages = tuple(_stage_from_dict(s, f"stages[{i}]") for i, s in enumerate(stages_data))
        return cls(
            space=space,
            resolution=_int(_required(data, "resolution", ""), "resolution"),
            stem=stem,
            stages=stages,
        )

    @classmethod
    def from_json(cls, text: str) -> Arch:
        from nas.textfiles import FileFormatError, parse_json

        try:
            data = parse_json(text, "the text", "an arch (nas-arch JSON)")
        except FileFormatError as err:
            raise ArchError(str(err)) from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> Arch:
        """The arch document in ``path`` (for every form users give, see :mod:`nas.archfile`)."""
        from nas.textfiles import read_json

        data = read_json(path, "an arch (nas-arch JSON)")
        try:
            return cls.from_dict(data)
        except ArchError as err:
            raise ArchError(f"{path}: {err}") from None


def _required(data: Mapping[str, Any], key: str, prefix: str) -> Any:
    if key not in data:
        raise ArchError(f"{prefix}{key} is missing")
    return data[key]


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArchError(f"{where} = {value!r} must be an integer")
    return value


def _choice(value: Any, where: str) -> Choice:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ArchError(f"{where} = {value!r} must be a number or a string")
    return value


def _stage_from_dict(data: Any, where: str) -> StageArch:
    """A stage's depth, width and choices (which choices a stage may make is the space's call)."""
    if not isinstance(data, Mapping):
        raise ArchError(f"{where} = {data!r} must be an object")
    values: dict[str, Any] = {}
    for name, raw in data.items():
        if name in ("depth", "width"):
            continue
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise ArchError(f"{where} has a malformed field name {name!r}")
        if isinstance(raw, list):
            values[name] = tuple(_choice(v, f"{where}.{name}[{i}]") for i, v in enumerate(raw))
        else:
            values[name] = _choice(raw, f"{where}.{name}")
    return StageArch(
        _int(_required(data, "depth", f"{where}."), f"{where}.depth"),
        _int(_required(data, "width", f"{where}."), f"{where}.width"),
        values,
    )
