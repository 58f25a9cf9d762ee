"""Search spaces declared as data: stem, stages of MBConv or transformer layers, head, resolutions.

A :class:`SearchSpace` is built from a plain mapping (a YAML file) and knows everything about its
choices: it validates archs, samples and mutates them, encodes them as vectors and counts them.
It imports no torch, so search algorithms can use it anywhere.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from nas.arch import STAGE_CHOICES, Arch, ArchError, Choice, StageArch, StemArch
from nas.errors import InputError

SPACE_VERSION = 1
ACTIVATIONS = ("relu", "hswish")
ATTENTIONS = ("softmax", "relu_linear")
STAGE_KINDS = ("conv", "transformer")

#: YAML key (plural) of each stage choice.
CHOICE_KEYS = {
    "depth": "depths",
    "width": "widths",
    "kernel": "kernels",
    "expand_ratio": "expand_ratios",
    "attention": "attentions",
    "heads": "heads",
    "v_scale": "v_scales",
    "mlp_ratio": "mlp_ratios",
}
KIND_CHOICES = {
    "conv": ("kernel", "expand_ratio"),
    "transformer": ("attention", "heads", "v_scale", "mlp_ratio"),
}
KIND_DEFAULTS = {
    "conv": {},
    "transformer": {"attention": ("softmax",), "v_scale": (1,)},
}


class SpaceError(InputError):
    """A space declaration is malformed; the message names the key, the value and what is allowed."""


@dataclass(frozen=True)
class StemSpec:
    """A ``kernel`` x ``kernel`` conv (BN, activation), then ``depth`` depthwise-separable layers."""

    widths: tuple[int, ...]
    stride: int = 2
    kernel: int = 3
    activation: str = "hswish"
    ds_depths: tuple[int, ...] = (0,)
    ds_kernel: int = 3
    ds_activation: str | None = None


@dataclass(frozen=True)
class StageSpec:
    """One stage: its kind, its choices and its fixed settings."""

    kind: str
    choices: Mapping[str, tuple[Choice, ...]]
    stride: int = 1
    se: bool = False
    activation: str = "hswish"
    per_layer: frozenset[str] = frozenset()
    head_dim: int = 16
    downsample_expand: int = 6
    downsample_kernel: int = 3

    @property
    def depths(self) -> tuple[int, ...]:
        return self.choices["depth"]  # type: ignore[return-value]

    @property
    def widths(self) -> tuple[int, ...]:
        return self.choices["width"]  # type: ignore[return-value]

    @property
    def extra_choices(self) -> tuple[str, ...]:
        """The stage's choices other than depth and width, in canonical order."""
        return tuple(name for name in STAGE_CHOICES if name in self.choices)


@dataclass(frozen=True)
class HeadSpec:
    """1x1 conv to ``expand_ratio`` x the last width (or ``expand_width``), pool, feature layer."""

    feature_width: int
    expand_ratio: int | None = None
    expand_width: int | None = None
    activation: str = "hswish"

    def expand_channels(self, last_width: int) -> int:
        return self.expand_width if self.expand_width else last_width * (self.expand_ratio or 1)


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
        _reject_unknown(data, known, "space")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise SpaceError(f"name = {name!r} must be a non-empty string")
        stages_data = data.get("stages")
        if not isinstance(stages_data, list) or not stages_data:
            raise SpaceError("stages must be a non-empty list")
        head_data = data.get("head", {})
        _reject_unknown(
            head_data, {"feature_width", "expand_ratio", "expand_width", "activation"}, "head"
        )
        if "feature_width" not in head_data:
            raise SpaceError("head.feature_width is missing")
        if ("expand_ratio" in head_data) == ("expand_width" in head_data):
            raise SpaceError("head needs exactly one of expand_ratio or expand_width")
        head = HeadSpec(
            feature_width=_positive_int(head_data["feature_width"], "head.feature_width"),
            expand_ratio=head_data.get("expand_ratio"),
            expand_width=head_data.get("expand_width"),
            activation=_one_of(
                head_data.get("activation", "hswish"), ACTIVATIONS, "head.activation"
            ),
        )
        space = cls(
            name=name,
            description=str(data.get("description", "")),
            in_channels=_positive_int(data.get("in_channels", 3), "in_channels"),
            num_classes=_positive_int(data.get("num_classes", 1000), "num_classes"),
            resolutions=_int_list(data.get("resolutions"), "resolutions"),
            stem=_stem_from_dict(data.get("stem")),
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
            for name in STAGE_CHOICES:
                value = getattr(stage, name)
                if name not in spec.choices:
                    if value is not None:
                        raise ArchError(
                            f"{where}.{name} = {value!r} is not a choice of this {spec.kind} stage; "
                            f"its choices: depth, width, {', '.join(spec.extra_choices)}"
                        )
                    continue
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


def _reject_unknown(data: Any, known: set[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise SpaceError(f"{where} must be a mapping, got {data!r}")
    unknown = set(data) - known
    if unknown:
        raise SpaceError(f"{where} has unknown key(s) {sorted(unknown)}; allowed: {sorted(known)}")


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpaceError(f"{where} = {value!r} must be a positive integer")
    return value


def _int_list(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise SpaceError(f"{where} = {value!r} must be a non-empty list of positive integers")
    items = tuple(_positive_int(v, f"{where}[{i}]") for i, v in enumerate(value))
    if len(set(items)) != len(items):
        raise SpaceError(f"{where} = {value!r} has repeated values")
    return items


def _choice_list(value: Any, where: str) -> tuple[Choice, ...]:
    if not isinstance(value, list) or not value:
        raise SpaceError(f"{where} = {value!r} must be a non-empty list")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            raise SpaceError(f"{where}[{i}] = {v!r} must be a number or a string")
    if len(set(value)) != len(value):
        raise SpaceError(f"{where} = {value!r} has repeated values")
    return tuple(value)


def _one_of(value: Any, allowed: Sequence[str], where: str) -> str:
    if value not in allowed:
        raise SpaceError(f"{where} = {value!r} is not allowed; choices: {list(allowed)}")
    return value


def _stem_from_dict(data: Any) -> StemSpec:
    known = {"widths", "stride", "kernel", "activation", "ds_depths", "ds_kernel", "ds_activation"}
    _reject_unknown(data, known, "stem")
    ds_depths = data.get("ds_depths", [0])
    return StemSpec(
        widths=_int_list(data.get("widths"), "stem.widths"),
        stride=_positive_int(data.get("stride", 2), "stem.stride"),
        kernel=_odd_kernel(data.get("kernel", 3), "stem.kernel"),
        activation=_one_of(data.get("activation", "hswish"), ACTIVATIONS, "stem.activation"),
        ds_depths=tuple(_nonnegative_ints(ds_depths, "stem.ds_depths")),
        ds_kernel=_odd_kernel(data.get("ds_kernel", 3), "stem.ds_kernel"),
        ds_activation=(
            _one_of(data["ds_activation"], ACTIVATIONS, "stem.ds_activation")
            if "ds_activation" in data
            else None
        ),
    )


def _nonnegative_ints(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise SpaceError(f"{where} = {value!r} must be a non-empty list of integers >= 0")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise SpaceError(f"{where}[{i}] = {v!r} must be an integer >= 0")
    return list(value)


def _odd_kernel(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise SpaceError(f"{where} = {value!r} must be an odd positive integer")
    return value


def _stage_from_dict(data: Any, where: str) -> StageSpec:
    if not isinstance(data, Mapping):
        raise SpaceError(f"{where} must be a mapping, got {data!r}")
    kind = _one_of(data.get("kind"), STAGE_KINDS, f"{where}.kind")
    own = KIND_CHOICES[kind]
    settings = {"kind", "stride", "se", "activation", "per_layer"}
    if kind == "transformer":
        settings |= {"head_dim", "downsample_expand", "downsample_kernel"}
    known = settings | {CHOICE_KEYS[n] for n in ("depth", "width", *own)}
    _reject_unknown(data, known, where)

    choices: dict[str, tuple[Choice, ...]] = {}
    for name in ("depth", "width", *own):
        key = CHOICE_KEYS[name]
        if key in data:
            choices[name] = _choice_list(data[key], f"{where}.{key}")
        elif name in KIND_DEFAULTS[kind]:
            choices[name] = KIND_DEFAULTS[kind][name]
        elif not (kind == "transformer" and name == "heads"):
            raise SpaceError(f"{where}.{key} is missing (a {kind} stage needs it)")
    for name in ("depth", "width", "kernel", "expand_ratio", "heads", "v_scale", "mlp_ratio"):
        if name in choices:
            _int_list(list(choices[name]), f"{where}.{CHOICE_KEYS[name]}")
    if min(choices["depth"]) < (1 if kind == "conv" else 0):
        raise SpaceError(f"{where}.depths = {list(choices['depth'])} must be >= 1")
    for k in choices.get("kernel", ()):
        _odd_kernel(k, f"{where}.kernels")
    for a in choices.get("attention", ()):
        _one_of(a, ATTENTIONS, f"{where}.attentions")

    per_layer = data.get("per_layer", [])
    if not isinstance(per_layer, list) or any(p not in own for p in per_layer):
        raise SpaceError(
            f"{where}.per_layer = {per_layer!r} must list choices of a {kind} stage: {list(own)}"
        )
    head_dim = _positive_int(data.get("head_dim", 16), f"{where}.head_dim")
    if kind == "transformer" and "heads" not in choices:
        bad = [w for w in choices["width"] if w % head_dim]
        if bad:
            raise SpaceError(
                f"{where}.widths {bad} are not multiples of head_dim = {head_dim} "
                "(heads = width / head_dim when heads are not declared)"
            )
    return StageSpec(
        kind=kind,
        choices=choices,
        stride=_positive_int(data.get("stride", 1), f"{where}.stride"),
        se=bool(data.get("se", False)),
        activation=_one_of(data.get("activation", "hswish"), ACTIVATIONS, f"{where}.activation"),
        per_layer=frozenset(per_layer),
        head_dim=head_dim,
        downsample_expand=_positive_int(
            data.get("downsample_expand", 6), f"{where}.downsample_expand"
        ),
        downsample_kernel=_odd_kernel(
            data.get("downsample_kernel", 3), f"{where}.downsample_kernel"
        ),
    )


def heads_of(spec: StageSpec, stage: StageArch, layer: int) -> int:
    """Attention heads of a transformer layer: declared, or width / head_dim."""
    if "heads" in spec.choices:
        return int(stage.layer_value("heads", layer))  # type: ignore[arg-type]
    return stage.width // spec.head_dim
