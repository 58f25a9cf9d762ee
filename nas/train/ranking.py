"""How well a supernet ranks subnets: archs spread over the complexity range, rank agreement.

:func:`spread_archs` picks archs evenly over the complexity levels of a space (the smallest and
the largest arch included), the set on which a supernet's inherited accuracy is compared with
accuracy trained alone. :func:`rank_agreement` gives Kendall's tau and Spearman's rho between two
scorings of the same archs, each with a paired bootstrap confidence interval (scipy.stats), and
Kendall's tau over the pairs of archs that share a level: the comparisons a search under a
latency budget actually makes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from nas.space import SearchSpace
from nas.train.evaluate import Probe
from nas.train.levels import Complexity, Levels


def spread_archs(
    space: SearchSpace, complexity: Complexity, levels: Levels, count: int
) -> list[Probe]:
    """``count`` distinct archs from the levels' pools, the same number per level (the middle
    levels take the remainder), each level's picks spaced evenly in log complexity across its
    band; the space's smallest arch opens the lowest level and its largest closes the top one."""
    per_level = [count // levels.count] * levels.count
    centre = (levels.count - 1) / 2
    for level in sorted(range(levels.count), key=lambda k: abs(k - centre))[: count % levels.count]:
        per_level[level] += 1
    fixed = {0: space.min_arch(), levels.count - 1: space.max_arch()}
    picked: list[Probe] = []
    for level, slots in enumerate(per_level):
        pool = list(zip(levels.pools[level], levels.values[level], strict=True))
        low, high = math.log(levels.edges[level]), math.log(levels.edges[level + 1])
        targets = [low + (j + 0.5) / slots * (high - low) for j in range(slots)] if slots else []
        taken: set = set()
        chosen: list[Probe] = []
        if level in fixed and slots:
            arch = fixed[level]
            chosen.append(Probe(level, arch, complexity(arch)))
            taken.add(arch)
            targets = targets[1:] if level == 0 else targets[:-1]
        for target in targets:
            free = [(a, v) for a, v in pool if a not in taken]
            if not free:
                break
            arch, value = min(free, key=lambda e: abs(math.log(e[1]) - target))
            chosen.append(Probe(level, arch, value))
            taken.add(arch)
        picked += sorted(chosen, key=lambda p: p.value)
    return picked


def within_group_tau(
    scores: Sequence[float], truth: Sequence[float], groups: Sequence[Any]
) -> tuple[float, int]:
    """Kendall's tau (tau-a) over the pairs of items in the same group, and the number of such
    pairs: +1 when every within-group pair is ordered alike by both scorings."""
    s, t = np.asarray(scores, dtype=float), np.asarray(truth, dtype=float)
    total = pairs = 0
    for i in range(len(s)):
        for j in range(i + 1, len(s)):
            if groups[i] == groups[j]:
                total += np.sign(s[i] - s[j]) * np.sign(t[i] - t[j])
                pairs += 1
    return (float(total / pairs) if pairs else float("nan")), pairs


def rank_agreement(
    scores: Sequence[float],
    truth: Sequence[float],
    *,
    groups: Sequence[Any] | None = None,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Kendall's tau and Spearman's rho between ``scores`` and ``truth`` (one value per arch),
    each with a paired bootstrap interval over archs (BCa; percentile where BCa is undefined);
    with ``groups``, also :func:`within_group_tau`."""
    import warnings

    from scipy.stats import bootstrap, kendalltau, spearmanr

    x, y = np.asarray(scores, dtype=float), np.asarray(truth, dtype=float)
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(f"need at least 3 paired values, got {len(x)} and {len(y)}")
    out: dict[str, Any] = {"n": len(x), "confidence": confidence}
    for name, function in (("kendall_tau", kendalltau), ("spearman", spearmanr)):

        def statistic(a, b, function=function):
            value = function(a, b).statistic
            return 0.0 if value is None or np.isnan(value) else float(value)

        out[name] = statistic(x, y)
        with warnings.catch_warnings():  # resamples of repeated values are constant at times
            warnings.simplefilter("ignore")
            out[f"{name}_ci"] = _bootstrap_interval(
                bootstrap, (x, y), statistic, confidence, resamples, seed
            )
    if groups is not None:
        out["within_level_tau"], out["within_level_pairs"] = within_group_tau(x, y, groups)
    return out


def _bootstrap_interval(bootstrap, data, statistic, confidence, resamples, seed) -> list[float]:
    for method in ("BCa", "percentile"):
        result = bootstrap(
            data,
            statistic,
            paired=True,
            vectorized=False,
            n_resamples=resamples,
            confidence_level=confidence,
            method=method,
            rng=np.random.default_rng(seed),
        )
        low, high = result.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return [float(low), float(high)]
    return [float("nan"), float("nan")]
