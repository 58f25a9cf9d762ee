"""Pareto fronts and hypervolume, for objectives given as "larger is better" columns."""

from __future__ import annotations

import numpy as np


def as_maximised(values: np.ndarray, maximize: list[bool]) -> np.ndarray:
    """Flip the sign of minimised columns so every column is "larger is better"."""
    signs = np.where(np.asarray(maximize), 1.0, -1.0)
    return np.asarray(values, dtype=float) * signs


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points`` (all columns maximised)."""
    points = np.asarray(points, dtype=float)
    if points.ndim == 2 and points.shape[1] == 2:
        return _pareto_mask_2d(points)
    n = len(points)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        if not mask[i]:
            continue
        dominated_by = np.all(points >= points[i], axis=1) & np.any(points > points[i], axis=1)
        if dominated_by.any():
            mask[i] = False
            continue
        dominates = np.all(points[i] >= points, axis=1) & np.any(points[i] > points, axis=1)
        mask &= ~dominates
    # keep one of exact duplicates
    _, first = np.unique(points[mask], axis=0, return_index=True)
    keep = np.zeros(n, dtype=bool)
    keep[np.flatnonzero(mask)[first]] = True
    return keep


def _pareto_mask_2d(points: np.ndarray) -> np.ndarray:
    """:func:`pareto_mask` of two columns in O(n log n): in order of the first column (then the
    second) descending, a row is on the front when its second column beats every row before it;
    of exact duplicates the first row is kept."""
    order = np.lexsort((-points[:, 1], -points[:, 0]))
    second = points[order, 1]
    before = np.concatenate([[-np.inf], np.maximum.accumulate(second)[:-1]])
    keep = np.zeros(len(points), dtype=bool)
    keep[order[second > before]] = True
    return keep


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Volume dominated by ``points`` and bounded below by ``reference`` (all maximised).

    Exact: a sweep in 2-D, recursive slicing above (fine for fronts of a few hundred points).
    """
    points = np.asarray(points, dtype=float)
    reference = np.asarray(reference, dtype=float)
    if len(points) == 0:
        return 0.0
    points = points[np.all(points > reference, axis=1)]
    if len(points) == 0:
        return 0.0
    points = points[pareto_mask(points)]
    if points.shape[1] == 1:
        return float(points[:, 0].max() - reference[0])
    if points.shape[1] == 2:
        order = np.argsort(-points[:, 0])
        volume, best_y = 0.0, reference[1]
        for x, y in points[order]:
            if y > best_y:
                volume += (x - reference[0]) * (y - best_y)
                best_y = y
        return float(volume)
    # slice along the last axis
    order = np.argsort(-points[:, -1])
    volume = 0.0
    levels = list(points[order, -1]) + [reference[-1]]
    for k in range(len(order)):
        height = levels[k] - levels[k + 1]
        if height > 0:
            volume += height * hypervolume(points[order[: k + 1], :-1], reference[:-1])
    return float(volume)
