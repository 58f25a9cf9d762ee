"""Ranking quality of a supernet: archs spread over complexity levels, rank agreement."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_SPACE

from nas.space import SearchSpace
from nas.train.levels import build_levels, complexity_function
from nas.train.ranking import rank_agreement, spread_archs, within_group_tau


def test_spread_archs_fill_every_level_evenly_from_the_smallest_to_the_largest_arch():
    space = SearchSpace.from_dict(TINY_SPACE)
    complexity = complexity_function(space, "macs")
    levels = build_levels(space, complexity, count=3, draws=200, pool_size=1000, seed=0)
    assert levels.count == 3
    picked = spread_archs(space, complexity, levels, 8)
    archs = [p.arch for p in picked]
    assert len(set(archs)) == 8
    assert archs[0] == space.min_arch() and archs[-1] == space.max_arch()
    assert [sum(p.level == k for p in picked) for k in range(3)] == [3, 3, 2]  # middle first
    for p in picked:
        assert levels.level_of(p.value) == p.level and p.value == complexity(p.arch)
    values = [p.value for p in picked]
    assert values == sorted(values)


def test_rank_agreement_gives_tau_and_rho_with_bootstrap_intervals():
    truth = np.arange(20.0)
    same = rank_agreement(truth * 2 + 1, truth, resamples=200)
    assert same["kendall_tau"] == pytest.approx(1.0) and same["spearman"] == pytest.approx(1.0)
    assert same["kendall_tau_ci"][1] == pytest.approx(1.0)
    reverse = rank_agreement(-truth, truth, resamples=200)
    assert reverse["kendall_tau"] == pytest.approx(-1.0)
    noisy = truth + np.random.default_rng(0).normal(0, 6, 20)
    result = rank_agreement(noisy, truth, resamples=500)
    for name in ("kendall_tau", "spearman"):
        low, high = result[f"{name}_ci"]
        assert -1 <= low < result[name] < high <= 1
    with pytest.raises(ValueError, match="at least 3"):
        rank_agreement([1, 2], [1, 2])


def test_within_level_tau_sees_what_the_overall_tau_hides():
    """Levels ordered right, archs inside each level ordered wrong: overall tau stays high."""
    truth = [1, 2, 3, 11, 12, 13, 21, 22, 23]
    scores = [3, 2, 1, 13, 12, 11, 23, 22, 21]
    levels = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    result = rank_agreement(scores, truth, groups=levels, resamples=100)
    assert result["kendall_tau"] == pytest.approx(0.5)  # 27 pairs across levels right, 9 wrong
    assert result["within_level_tau"] == pytest.approx(-1.0) and result["within_level_pairs"] == 9
    assert within_group_tau(truth, truth, levels) == (1.0, 9)
