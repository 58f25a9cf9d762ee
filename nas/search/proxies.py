"""Proxy objectives: what a search maximises when there is no trained supernet to measure.

A proxy is not accuracy; every objective built here is named ``proxy_<name>`` and carries a
description saying so, which reports and plots show. The proxies:

``params``
    Parameters of the arch, in millions (from its operator graph): the largest model that fits
    the budget.
``macs``
    Multiply-accumulates, in millions.
``capacity``
    A synthetic score with a known, reproducible shape, used by the search benchmarks: every value
    of a decision gets its rank among the decision's choices (0 = smallest, 1 = largest), every
    decision a fixed random importance in [0.5, 1.5] (drawn with ``seed``, in the order of
    :attr:`SearchSpace.dimensions`); with ``s`` the importance-weighted sum of the arch's ranks
    divided by the largest arch's sum,

        capacity = 67 + 13 * (1 - exp(-3 s)) / (1 - exp(-3))

    which spans 67..80, as ImageNet top-1 of ElasticViT's space does, and saturates with size.
    Non-numeric choices (attention kinds) rank in declaration order.
``synflow``
    SynFlow (Tanaka et al., 2020), a zero-cost score of the randomly initialised subnet: with
    every weight replaced by its absolute value and BatchNorm at its initial (identity) statistics,
    the sum over parameters of ``|theta * d(sum of outputs)/d theta|`` for an input of ones, in
    float64, as a log10. It costs one forward and backward pass of the subnet per arch (about a
    second for an ImageNet-size arch on one CPU core), so it suits small spaces or small budgets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nas.arch import Arch
from nas.errors import InputError
from nas.search.problem import Objective
from nas.space import SearchSpace

PROXIES = ("params", "macs", "capacity", "synflow")


@dataclass(frozen=True)
class ProxyInfo:
    """What a proxy measures, for reports: ``unit`` and a one-line ``description``."""

    name: str
    unit: str
    description: str


_INFO = {
    "params": ProxyInfo("params", "M", "parameters in millions"),
    "macs": ProxyInfo("macs", "M", "multiply-accumulates in millions"),
    "capacity": ProxyInfo(
        "capacity", "", "synthetic rank-weighted capacity score (67-80), a benchmark objective"
    ),
    "synflow": ProxyInfo(
        "synflow", "log10", "SynFlow zero-cost score of the randomly initialised subnet"
    ),
}


def proxy_info(name: str) -> ProxyInfo:
    if name not in _INFO:
        raise InputError(f"unknown proxy objective {name!r}; choices: {', '.join(PROXIES)}")
    return _INFO[name]


def proxy_objective(name: str, space: SearchSpace, seed: int = 0) -> Objective:
    """The proxy ``name`` as a maximised objective named ``proxy_<name>``."""
    info = proxy_info(name)
    evaluate = {
        "params": lambda: _counted(space, 1),
        "macs": lambda: _counted(space, 0),
        "capacity": lambda: capacity(space, seed),
        "synflow": lambda: _synflow(space, seed),
    }[name]()
    description = f"PROXY, not accuracy: {info.description}"
    return Objective(f"proxy_{name}", evaluate, True, info.unit, description)


def capacity(space: SearchSpace, seed: int = 0):
    """The ``capacity`` proxy of the module docstring, vectorised over archs."""
    rng = np.random.default_rng(seed)
    weights = []
    for dim in space.dimensions:
        importance = rng.uniform(0.5, 1.5)
        ranks = np.argsort(np.argsort(_sortable(dim.values)))
        weights.append(importance * ranks / max(len(dim.values) - 1, 1))
    weights = np.concatenate(weights)
    top = float(space.encode(space.max_arch()) @ weights)

    def evaluate(archs: Sequence[Arch]) -> np.ndarray:
        s = space.encode_many(list(archs)) @ weights / top
        return 67 + 13 * (1 - np.exp(-3 * s)) / (1 - np.exp(-3))

    evaluate.weights = weights / top  # per encoding entry: s = encode(arch) @ weights
    return evaluate


def _sortable(values):
    return [v if isinstance(v, int | float) else i for i, v in enumerate(values)]


def _counted(space: SearchSpace, column: int):
    from nas.graph import count

    def evaluate(archs: Sequence[Arch]) -> np.ndarray:
        return np.array([count(space, a)[column] / 1e6 for a in archs], dtype=float)

    return evaluate


def _synflow(space: SearchSpace, seed: int):
    def evaluate(archs: Sequence[Arch]) -> np.ndarray:
        from nas.zero_cost import synflow

        return np.array([synflow(space, a, seed) for a in archs], dtype=float)

    return evaluate
