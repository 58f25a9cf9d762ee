"""A space's layer positions: which decisions each possible layer depends on, and its layers.

Every layer a subnet can have sits at a *position* (its supernet slot: ``stem``,
``stages.2.layers.1``, ``head``, ...). The layer at a position is fully determined by a few of the
space's decisions (:attr:`SearchSpace.dimensions`): the resolution, its stage's width, the width
feeding it, its own kernel / expand ratio / attention choices. So a per-layer quantity (latency,
MACs) can be tabulated once per position over those few decisions, and a whole arch's quantity is a
sum of table lookups over its active positions -- which numpy does for many archs at once.

:func:`layer_at` builds the layer of a position from its decision values exactly as
:func:`nas.layers.layers_of` does for a whole arch (tests check they agree).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.arch import Arch, ArchError
from nas.layers import HeadLayer, Layer, MBConvLayer, StemLayer, TransformerLayer, conv_out_hw
from nas.space import SearchSpace


@dataclass(frozen=True)
class Position:
    """One possible layer of a space."""

    slot: str
    role: str  # stem, stem_ds, conv, downsample, transformer, head
    stage: int | None
    layer: int
    deps: tuple[int, ...]  # indices into space.dimensions, in the order layer_at expects
    depth_dim: int | None  # active iff the value of this dimension is > ``layer``
    active_from: int = 0

    def shape(self, space: SearchSpace) -> tuple[int, ...]:
        return tuple(len(space.dimensions[d].values) for d in self.deps)


def positions(space: SearchSpace) -> tuple[Position, ...]:
    """Every position of ``space`` in execution order."""
    index = {dim.name: k for k, dim in enumerate(space.dimensions)}
    res, stem_w = index["resolution"], index["stem.width"]
    out = [Position("stem", "stem", None, 0, (res, stem_w), None)]
    for k in range(max(space.stem.ds_depths)):
        out.append(Position(f"stem_ds.{k}", "stem_ds", None, k, (res, stem_w), index["stem.depth"]))
    prev_w = stem_w
    for i, spec in enumerate(space.stages):
        width, depth = index[f"stages[{i}].width"], index[f"stages[{i}].depth"]

        def dim(name: str, k: int, i: int = i, spec=spec) -> int:
            if name in spec.per_layer:
                return index[f"stages[{i}].{name}[{k}]"]
            return index[f"stages[{i}].{name}"]

        if spec.kind == "conv":
            for k in range(max(spec.depths)):
                feeding = (prev_w,) if k == 0 else ()  # later layers are fed by their own width
                deps = (res, *feeding, width, dim("kernel", k), dim("expand_ratio", k))
                out.append(Position(f"stages.{i}.layers.{k}", "conv", i, k, deps, depth))
        else:
            out.append(
                Position(f"stages.{i}.downsample", "downsample", i, 0, (res, prev_w, width), None)
            )
            for k in range(max(spec.depths)):
                extra = tuple(dim(name, k) for name in spec.extra_choices)
                out.append(
                    Position(
                        f"stages.{i}.layers.{k}", "transformer", i, k, (res, width, *extra), depth
                    )
                )
        prev_w = width
    out.append(Position("head", "head", None, 0, (res, prev_w), None))
    return tuple(out)


def _stage_sides(space: SearchSpace, resolution: int) -> tuple[int, list[int], list[int]]:
    """(side after the stem, side entering each stage, side inside each stage)."""
    hw = conv_out_hw(resolution, space.stem.stride)
    stem_side, before, inside = hw, [], []
    for spec in space.stages:
        before.append(hw)
        hw = conv_out_hw(hw, spec.stride)
        inside.append(hw)
    return stem_side, before, inside


def layer_at(space: SearchSpace, position: Position, values: Sequence[Any]) -> Layer:
    """The layer at ``position`` when its decisions (``position.deps``) take ``values``."""
    resolution = values[0]
    stem_side, before, inside = _stage_sides(space, resolution)
    stem = space.stem
    role, i, k = position.role, position.stage, position.layer
    if role == "stem":
        return StemLayer(
            "stem",
            resolution,
            space.in_channels,
            values[1],
            stem.kernel,
            stem.stride,
            stem.activation,
        )
    if role == "stem_ds":
        width = values[1]
        return MBConvLayer(
            position.slot,
            stem_side,
            width,
            width,
            1,
            stem.ds_kernel,
            1,
            False,
            stem.ds_activation or stem.activation,
        )
    if role == "conv":
        spec = space.stages[i]
        if k == 0:
            _, source, width, kernel, expand = values
        else:
            _, width, kernel, expand = values
            source = width
        return MBConvLayer(
            position.slot,
            before[i] if k == 0 else inside[i],
            source,
            width,
            expand,
            int(kernel),
            spec.stride if k == 0 else 1,
            spec.se,
            spec.activation,
        )
    if role == "downsample":
        spec = space.stages[i]
        return MBConvLayer(
            position.slot,
            before[i],
            values[1],
            values[2],
            spec.downsample_expand,
            spec.downsample_kernel,
            spec.stride,
            False,
            spec.activation,
        )
    if role == "transformer":
        spec = space.stages[i]
        width = values[1]
        chosen = dict(zip(spec.extra_choices, values[2:], strict=True))
        heads = chosen["heads"] if "heads" in chosen else width // spec.head_dim
        return TransformerLayer(
            position.slot,
            inside[i],
            width,
            int(heads),
            spec.head_dim,
            int(chosen["v_scale"]),
            int(chosen["mlp_ratio"]),
            str(chosen["attention"]),
            spec.activation,
        )
    if role == "head":
        head, last = space.head, values[1]
        hw = inside[-1] if space.stages else stem_side
        return HeadLayer(
            "head",
            hw,
            last,
            head.expand_channels(last),
            head.feature_width,
            space.num_classes,
            head.activation,
        )
    raise ValueError(f"unknown position role {role!r}")


def position_layers(space: SearchSpace, position: Position):
    """Yield (flat table index, layer) for every combination of the position's decisions."""
    dims = [space.dimensions[d].values for d in position.deps]
    for flat, values in enumerate(itertools.product(*dims)):
        yield flat, layer_at(space, position, values)


@dataclass
class PositionTable:
    """A per-layer quantity tabulated over every combination of one position's decisions.

    ``values[flat]`` is the quantity of the layer :func:`position_layers` yields at ``flat``;
    archs come as :class:`ArchIndexer` rows.
    """

    position: Position
    deps: np.ndarray
    strides: np.ndarray
    values: np.ndarray
    depth_values: np.ndarray | None

    @classmethod
    def build(cls, space: SearchSpace, position: Position, values: np.ndarray) -> PositionTable:
        shape = position.shape(space)
        strides = [int(np.prod(shape[k + 1 :], dtype=np.int64)) for k in range(len(shape))]
        depth = position.depth_dim
        return cls(
            position,
            np.array(position.deps, dtype=np.int64),
            np.array(strides, dtype=np.int64),
            np.asarray(values),
            None if depth is None else np.array(space.dimensions[depth].values),
        )

    def flat(self, index: np.ndarray) -> np.ndarray:
        """Each arch's entry number in the table."""
        return index[:, self.deps] @ self.strides

    def active(self, index: np.ndarray) -> np.ndarray | None:
        """Whether each arch has a layer at this position (None: every arch has)."""
        if self.depth_values is None:
            return None
        return self.depth_values[index[:, self.position.depth_dim]] > self.position.layer

    def lookup(self, index: np.ndarray) -> np.ndarray:
        """Each arch's entry, zero where it has no layer at this position."""
        values = self.values[self.flat(index)]
        active = self.active(index)
        if active is None:
            return values
        return values * active.reshape(-1, *([1] * (values.ndim - 1)))


def tabulate(space: SearchSpace, quantity: Callable[[Layer], Any]) -> list[PositionTable]:
    """``quantity(layer)`` (a number or a row of numbers) tabulated at every position of ``space``."""
    return [
        PositionTable.build(
            space,
            position,
            np.array([quantity(layer) for _, layer in position_layers(space, position)]),
        )
        for position in positions(space)
    ]


class ArchIndexer:
    """Archs -> integer matrix: row = arch, column = dimension, entry = index of the chosen value.

    Per-layer decisions of layers beyond a stage's depth get index 0 (positions there are
    inactive). Written for speed: one pass of attribute reads and dict lookups per arch.
    """

    def __init__(self, space: SearchSpace):
        self.space = space
        dims = space.dimensions
        self.n_dims = len(dims)
        self._maps = [{v: j for j, v in enumerate(d.values)} for d in dims]
        self._res, self._stem_w, self._stem_d = self._maps[0], self._maps[1], self._maps[2]
        plans = []
        col = 3
        for spec in space.stages:
            fields = []
            for name in ("depth", "width", *spec.extra_choices):
                if name in spec.per_layer:
                    n = max(spec.depths)
                    fields.append((name, self._maps[col], n))
                    col += n
                else:
                    fields.append((name, self._maps[col], 0))
                    col += 1
            plans.append(tuple(fields))
        self._plans = tuple(plans)

    def indices(self, archs: Sequence[Arch]) -> np.ndarray:
        """(len(archs), n_dims) int32 matrix of value indices."""
        flat: list[int] = []
        extend = flat.extend
        name = self.space.name
        n_stages = len(self._plans)
        res, stem_w, stem_d = self._res, self._stem_w, self._stem_d
        plans = self._plans
        for arch in archs:
            try:
                if arch.space != name or len(arch.stages) != n_stages:
                    raise KeyError
                stem = arch.stem
                row = [res[arch.resolution], stem_w[stem.width], stem_d[stem.depth]]
                for stage, plan in zip(arch.stages, plans, strict=True):
                    for field, mapping, per_layer in plan:
                        value = getattr(stage, field)
                        if per_layer:
                            if len(value) != stage.depth:
                                raise KeyError
                            row.extend([mapping[v] for v in value])
                            row.extend([0] * (per_layer - len(value)))
                        else:
                            row.append(mapping[value])
            except (KeyError, TypeError, AttributeError):
                self._raise_for(arch)
            extend(row)
        return np.asarray(flat, dtype=np.int32).reshape(len(archs), self.n_dims)

    def _raise_for(self, arch: Any) -> None:
        self.space.validate(arch)  # raises ArchError naming the field
        raise ArchError(f"arch {arch!r} could not be indexed in space {self.space.name!r}")
