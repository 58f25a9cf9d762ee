"""What kinds of blocks an arch uses, for colouring archs in the study's figures.

Decisions whose values are kinds (strings: attention kind, block kind, ...) name an arch's
kinds: an arch is labelled by the set of kinds its active layers use (``relu_linear``,
``softmax``, ``relu_linear+softmax``). A space without such decisions colours archs by how many
attention layers they have (layers of stages with an attention choice), or, without attention,
by input resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nas.study.decisions import is_ordered
from nas.study.table import StudyTable


@dataclass
class Kinds:
    title: str
    categorical: bool
    labels: np.ndarray  # per arch (categorical)
    names: list[str]  # distinct labels in order
    values: np.ndarray  # per arch (continuous)


def arch_kinds(table: StudyTable) -> Kinds:
    decisions = table.decisions
    index = table.index
    kind_columns = [
        k for k, d in enumerate(decisions.dims) if not is_ordered(d) and decisions.varied(k)
    ]
    if kind_columns:
        active = decisions.active(index)
        labels = []
        for row, on in zip(index, active, strict=True):
            used = {str(decisions.dims[k].values[row[k]]) for k in kind_columns if on[k]}
            labels.append("+".join(sorted(used)) or "none")
        words = {decisions.dims[k].choice or decisions.dims[k].name for k in kind_columns}
        title = " / ".join(sorted(w.replace("_", " ") for w in words)) + " kinds used"
        names = sorted(set(labels), key=lambda s: (s.count("+"), s))
        return Kinds(title, True, np.array(labels), names, np.zeros(len(index)))
    space = decisions.space
    depth_columns = [
        decisions.column[f"stages[{i}].depth"]
        for i, spec in enumerate(space.stages)
        if "attention" in spec.extra_choices  # stages whose layers attend
    ]
    if depth_columns:
        values = sum(np.array(decisions.dims[k].values)[index[:, k]] for k in depth_columns).astype(
            float
        )
        return Kinds("attention layers", False, np.array([]), [], values)
    resolution = np.array(space.resolutions)[index[:, 0]].astype(float)
    return Kinds("input resolution (px)", False, np.array([]), [], resolution)
