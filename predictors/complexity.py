"""MACs and parameters of many archs at once, from per-position tables of the operator graph.

:func:`nas.graph.count` builds a subnet's whole operator graph, which takes milliseconds per arch.
For thousands of archs the counts are tabulated once per layer position instead (the same lookup
tables the latency predictor uses, :mod:`predictors.positions`): each entry is the count of one
layer's operator graph, so an arch's total is the sum of its active positions' entries, exactly
:func:`nas.graph.count`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from nas.arch import Arch
from nas.graph import layer_operator_graph
from nas.layers import Layer
from nas.space import SearchSpace
from predictors.positions import ArchIndexer, PositionTable, tabulate


class ComplexityTable:
    """``count(archs)`` -> (MACs, parameters), vectorised over archs."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self.indexer = ArchIndexer(space)
        self._tables: list[PositionTable] | None = None
        self._layers: dict[Layer, tuple[int, int]] = {}

    def layer_counts(self, layer: Layer) -> tuple[int, int]:
        """(MACs, parameters) of one layer's operator graph (cached; builds no table)."""
        key = replace(layer, slot="")
        counts = self._layers.get(key)
        if counts is None:
            graph = layer_operator_graph(layer)
            nodes = [a for _, a in graph.nodes(data=True)]
            counts = (sum(a["macs"] for a in nodes), sum(a["params"] for a in nodes))
            self._layers[key] = counts
        return counts

    def count(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """(MACs, parameters) of each arch, as int64 arrays."""
        return self.count_index(self.indexer.indices(list(archs)))

    def count_index(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(MACs, parameters) of archs given as :class:`~predictors.positions.ArchIndexer` rows."""
        if self._tables is None:
            self._tables = tabulate(self.space, self.layer_counts)
        total = np.zeros((len(index), 2), dtype=np.int64)
        for table in self._tables:
            total += table.lookup(np.asarray(index)).astype(np.int64)
        return total[:, 0], total[:, 1]
