"""A space's layer positions, tabulated: every layer of each slot, and archs as index rows.

Every layer a subnet can have sits at a *position* -- a slot of :func:`nas.layers.slots`
(``stem``, ``stages.2.layers.1``, ``head``, ...) -- fully determined by a few of the space's
decisions (:attr:`SearchSpace.dimensions`): the resolution, its stage's width, the width feeding
it, its block kind and its own choices. So a per-layer quantity (latency, MACs) can be tabulated
once per position over those few decisions, and a whole arch's quantity is a sum of table lookups
over its active positions -- which numpy does for many archs at once. The layers are built by
:func:`nas.layers.slot_layer`, the function :func:`nas.layers.layers_of` builds an arch's layers
with.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.arch import Arch, ArchError
from nas.layers import Layer, Slot, slot_layer, slots
from nas.space import SearchSpace


def position_layers(space: SearchSpace, position: Slot):
    """Yield (flat table index, layer) for every combination of the position's decisions."""
    dims = [space.dimensions[d].values for d in position.deps]
    for flat, values in enumerate(itertools.product(*dims)):
        yield flat, slot_layer(space, position, values)


@dataclass
class PositionTable:
    """A per-layer quantity tabulated over every combination of one position's decisions.

    ``values[flat]`` is the quantity of the layer :func:`position_layers` yields at ``flat``;
    archs come as :class:`ArchIndexer` rows.
    """

    position: Slot
    deps: np.ndarray
    strides: np.ndarray
    values: np.ndarray
    depth_values: np.ndarray | None

    @classmethod
    def build(cls, space: SearchSpace, position: Slot, values: np.ndarray) -> PositionTable:
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


class StackedTables:
    """Several :class:`PositionTable` of one space (and extra per-entry columns of the same
    shape) looked up together: one gather for all positions, so that small batches of archs
    (a search's candidate moves) cost a few numpy calls rather than a few per position."""

    def __init__(
        self, tables: Sequence[PositionTable], dim_sizes: Sequence[int], columns: Sequence = ()
    ):
        """``dim_sizes``: the number of values of each of the space's dimensions."""
        n_dims = len(dim_sizes)
        sizes = [len(t.values) for t in tables]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.strides = np.zeros((n_dims, len(tables)), dtype=np.float64)
        for p, t in enumerate(tables):
            np.add.at(self.strides[:, p], t.deps, t.strides)
        self.values = [np.concatenate([t.values for t in tables])]
        self.values += [np.concatenate(list(column)) for column in columns]
        # active[p, j]: position p has a layer when its depth decision takes value index j;
        # positions every arch has read dimension 0 (any of its values: a row of True)
        depth_sizes = [0 if t.depth_values is None else len(t.depth_values) for t in tables]
        self.depth_cols = np.array(
            [0 if t.depth_values is None else t.position.depth_dim for t in tables], np.int64
        )
        self.active = np.ones((len(tables), max([1, dim_sizes[0], *depth_sizes])), dtype=bool)
        for p, t in enumerate(tables):
            if t.depth_values is not None:
                self.active[p, : len(t.depth_values)] = t.depth_values > t.position.layer
        self._positions = np.arange(len(tables))[None, :]

    def lookup(self, index: np.ndarray) -> list[np.ndarray]:
        """(archs, positions) entries of each value array, zero where an arch has no layer."""
        # a float product (BLAS) is exact here (entries far below 2**53) and much faster
        flat = (index.astype(np.float64) @ self.strides).astype(np.int64) + self.offsets
        active = self.active[self._positions, index[:, self.depth_cols]]
        return [v[flat] * active for v in self.values]


def tabulate(space: SearchSpace, quantity: Callable[[Layer], Any]) -> list[PositionTable]:
    """``quantity(layer)`` (a number or a row of numbers) tabulated at every position of ``space``."""
    return [
        PositionTable.build(
            space,
            position,
            np.array([quantity(layer) for _, layer in position_layers(space, position)]),
        )
        for position in slots(space)
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
