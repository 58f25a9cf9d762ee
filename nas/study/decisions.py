"""A space's decisions as the columns of an integer matrix: one row per arch, one column per
:attr:`SearchSpace.dimensions` entry, each entry the index of the chosen value.

The study works on such matrices (the rows :class:`~predictors.positions.ArchIndexer` gives),
so that thousands of archs, and every arch with one decision changed, are numpy operations.
Per-layer decisions past a stage's depth keep a value (a random fill, as
:meth:`SearchSpace.decisions` gives): it is inactive, and becomes the new layer's value when a
paired arch deepens the stage. Everything here is derived from ``space.dimensions``, so new
decisions of a space appear in the study without code here.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from nas.arch import Arch, Choice
from nas.space import Dimension, SearchSpace

#: Words for the choices of a stage (others are shown with underscores as spaces).
CHOICE_WORDS = {
    "depth": "depth (layers)",
    "width": "width (channels)",
    "kernel": "kernel size",
    "expand_ratio": "expand ratio",
    "attention": "attention kind",
    "heads": "attention heads",
    "v_scale": "value width multiplier",
    "mlp_ratio": "MLP ratio",
    "block": "block kind",
}
SPACE_WORDS = {
    "resolution": "input resolution (px)",
    "stem.width": "stem width (channels)",
    "stem.depth": "stem separable layers",
}


def decision_label(dim: Dimension) -> str:
    """A decision in words: ``stage 2 kernel size (layer 1)``."""
    if dim.stage is None:
        return SPACE_WORDS.get(dim.name, dim.name.replace("_", " "))
    words = CHOICE_WORDS.get(dim.choice or "", (dim.choice or dim.name).replace("_", " "))
    layer = "" if dim.layer is None else f" (layer {dim.layer})"
    return f"stage {dim.stage} {words}{layer}"


def is_ordered(dim: Dimension) -> bool:
    """Whether a decision's values are numbers (ordered), not kinds."""
    return all(isinstance(v, int | float) for v in dim.values)


@dataclass(frozen=True)
class Decisions:
    """The decisions of one space and the conversions between archs and index rows.

    ``allowed`` restricts decisions (column -> value indices), e.g. resolutions to those every
    device profile was measured at; samples and paired archs stay within it.
    """

    space: SearchSpace
    allowed: dict[int, tuple[int, ...]] = field(default_factory=dict)

    @classmethod
    def restricted(cls, space: SearchSpace, resolutions: Sequence[int]) -> Decisions:
        """The decisions of ``space`` with the input resolution limited to ``resolutions``."""
        keep = tuple(j for j, r in enumerate(space.resolutions) if r in resolutions)
        return cls(space, {} if len(keep) == len(space.resolutions) else {0: keep})

    @property
    def dims(self) -> tuple[Dimension, ...]:
        return self.space.dimensions

    @cached_property
    def column(self) -> dict[str, int]:
        """Decision name -> column."""
        return {d.name: k for k, d in enumerate(self.dims)}

    @cached_property
    def _depth_column(self) -> list[int | None]:
        """For each decision, the column of the depth that switches it on (None: always on)."""
        out: list[int | None] = []
        for dim in self.dims:
            if dim.stage is None or dim.choice in ("depth", "width"):
                out.append(None)
            else:
                out.append(self.column[f"stages[{dim.stage}].depth"])
        return out

    def value_order(self, k: int) -> list[int]:
        """Indices of decision ``k``'s allowed values: numbers ascending (the first is the
        reference of paired changes), kinds as declared."""
        dim = self.dims[k]
        order = range(len(dim.values))
        if is_ordered(dim):
            order = np.argsort(dim.values, kind="stable")
        allowed = self.allowed.get(k)
        return [int(j) for j in order if allowed is None or j in allowed]

    def varied(self, k: int) -> bool:
        """Whether decision ``k`` has a choice (two or more allowed values)."""
        return len(self.value_order(k)) > 1

    def ends(self, seed: int = 0) -> np.ndarray:
        """Rows of the smallest and the largest arch within the allowed values."""
        space = self.space
        rows = self.index([space.min_arch(), space.max_arch()], seed)
        for k in self.allowed:
            order = self.value_order(k)
            rows[0, k], rows[1, k] = order[0], order[-1]
        return rows

    # ----------------------------------------------------------------- activity

    def active(self, index: np.ndarray) -> np.ndarray:
        """(archs, decisions) bool: whether each decision changes each arch's network.

        A stage's other choices matter only when the stage has layers, a per-layer choice only
        when its layer is within the stage's depth."""
        index = np.asarray(index)
        out = np.ones(index.shape, dtype=bool)
        for k, (dim, depth_col) in enumerate(zip(self.dims, self._depth_column, strict=True)):
            if depth_col is None:
                continue
            depths = np.array(self.dims[depth_col].values)[index[:, depth_col]]
            out[:, k] = depths > (dim.layer or 0)
        return out

    def canonical(self, index: np.ndarray) -> np.ndarray:
        """``index`` with inactive per-layer decisions set to 0: equal rows, equal archs."""
        out = np.array(index, copy=True)
        per_layer = [k for k, d in enumerate(self.dims) if d.layer is not None]
        if per_layer:
            inactive = ~self.active(out)[:, per_layer]
            out[:, per_layer] = np.where(inactive, 0, out[:, per_layer])
        return out

    # ----------------------------------------------------------------- conversions

    def values(self, row: Sequence[int]) -> list[Choice]:
        return [dim.values[int(j)] for dim, j in zip(self.dims, row, strict=True)]

    def archs(self, index: np.ndarray) -> list[Arch]:
        """The arch of each row."""
        return [self.space.assemble(self.values(row)) for row in np.asarray(index)]

    def index(self, archs: Sequence[Arch], seed: int = 0) -> np.ndarray:
        """Rows of ``archs``; inactive per-layer decisions get seeded random fills."""
        rng = random.Random(seed)
        rows = [
            [
                dim.values.index(v)
                for dim, v in zip(self.dims, self.space.decisions(a, rng), strict=True)
            ]
            for a in archs
        ]
        return np.array(rows, dtype=np.int32).reshape(len(rows), len(self.dims))

    # ----------------------------------------------------------------- sampling

    def uniform(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` rows with every decision drawn uniformly from its allowed values."""
        columns = [
            np.array(self.value_order(k))[rng.integers(0, len(self.value_order(k)), n)]
            for k in range(len(self.dims))
        ]
        return np.stack(columns, 1).astype(np.int32).reshape(n, len(self.dims))

    def tilted(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` rows drawn towards one end of the space: per row a size t in [0, 1]; every
        numeric decision takes its values' t-quantile with binomial spread, kinds uniformly.
        Small and large archs, rare under uniform draws, come out as often as middling ones."""
        size = rng.random(n)
        columns = []
        for k, dim in enumerate(self.dims):
            order = np.array(self.value_order(k))
            if is_ordered(dim):
                columns.append(order[rng.binomial(len(order) - 1, size)])
            else:
                columns.append(order[rng.integers(0, len(order), n)])
        return np.stack(columns, 1).astype(np.int32).reshape(n, len(self.dims))

    def encode(self, index: np.ndarray) -> np.ndarray:
        """The one-hot encoding of each row, equal to :meth:`SearchSpace.encode` of its arch."""
        index = np.asarray(index)
        offsets = np.cumsum([0] + [len(d.values) for d in self.dims[:-1]])
        out = np.zeros((len(index), self.space.encoding_length), dtype=np.float32)
        rows = np.arange(len(index))
        active = self.active(index)
        for k, dim in enumerate(self.dims):
            on = active[:, k] if dim.layer is not None else np.ones(len(index), dtype=bool)
            out[rows[on], offsets[k] + index[on, k]] = 1.0
        return out
