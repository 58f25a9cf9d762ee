"""What a search optimises: objectives and constraints over the archs of a space.

Objectives and constraints are vectorised callables ``list[Arch] -> np.ndarray``; the problem
caches their values per arch. Constraints are cheap (predicted latency, MACs): the search driver
(:func:`nas.search.run_search`) checks them on every proposed arch and computes objectives only for
new archs that meet them all. An objective named like a constraint (latency as both an objective
and a budget) takes the constraint's value and is never computed twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from nas.arch import Arch
from nas.errors import InputError
from nas.space import SearchSpace

Vectorised = Callable[[Sequence[Arch]], np.ndarray]


class InfeasibleBudgetError(InputError):
    """No arch of the space meets a constraint; the message gives the feasible range."""


@dataclass(frozen=True)
class Objective:
    """A quantity to optimise, e.g. accuracy (maximise) or latency (minimise)."""

    name: str
    evaluate: Vectorised
    maximize: bool = True
    unit: str = ""
    description: str = ""  # shown in reports and plots, e.g. that the objective is a proxy


@dataclass(frozen=True)
class Constraint:
    """``evaluate(arch) <= limit`` must hold, e.g. latency on a device under a budget.

    ``on_indices``, when given, computes the same values from a matrix of value indices (rows:
    archs, columns: ``space.dimensions``), so searchers can screen many candidates without
    building archs (e.g. :meth:`predictors.latency.LatencyPredictor.predict_index`)."""

    name: str
    evaluate: Vectorised
    limit: float
    unit: str = ""
    on_indices: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class Evaluation:
    """An arch with its constraint values and, when it met them all (``feasible``), its
    objectives; an infeasible proposal has only the objectives its constraints give."""

    arch: Arch
    objectives: dict[str, float]
    constraints: dict[str, float]
    feasible: bool


@dataclass
class Problem:
    """A space, objectives (the first is primary) and constraints."""

    space: SearchSpace
    objectives: list[Objective]
    constraints: list[Constraint] = field(default_factory=list)
    _objective_cache: dict[Arch, dict[str, float]] = field(default_factory=dict, repr=False)
    _constraint_cache: dict[Arch, dict[str, float]] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if not self.objectives:
            raise ValueError("a problem needs at least one objective")
        for kind, items in (("objective", self.objectives), ("constraint", self.constraints)):
            names = [item.name for item in items]
            if len(set(names)) != len(names):
                raise ValueError(f"{kind} names must be unique: {names}")

    @property
    def primary(self) -> Objective:
        return self.objectives[0]

    def constraint_values(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        """Each arch's constraint values by name (computed once per arch, then cached)."""
        missing = list(dict.fromkeys(a for a in archs if a not in self._constraint_cache))
        if missing:
            columns = {
                c.name: np.asarray(c.evaluate(missing), dtype=float) for c in self.constraints
            }
            for i, arch in enumerate(missing):
                self._constraint_cache[arch] = {n: float(v[i]) for n, v in columns.items()}
        return [self._constraint_cache[a] for a in archs]

    def feasible(self, archs: Sequence[Arch], remember: bool = True) -> np.ndarray:
        """Which archs meet every constraint; ``remember=False`` for many throw-away candidates
        (nothing is cached)."""
        archs = list(archs)
        if not remember:
            ok = np.ones(len(archs), dtype=bool)
            for c in self.constraints:
                ok &= np.asarray(c.evaluate(archs), dtype=float) <= c.limit
            return ok
        values = self.constraint_values(archs)
        return np.array(
            [all(v[c.name] <= c.limit for c in self.constraints) for v in values], dtype=bool
        )

    def feasible_indices(
        self, rows: np.ndarray, to_archs: Callable[[np.ndarray], list[Arch]]
    ) -> np.ndarray:
        """Which archs, given as rows of value indices, meet every constraint (constraints
        without :attr:`Constraint.on_indices` see the archs ``to_archs(rows)`` builds)."""
        ok = np.ones(len(rows), dtype=bool)
        archs = None
        for c in self.constraints:
            if c.on_indices is not None:
                values = c.on_indices(rows)
            else:
                archs = to_archs(rows) if archs is None else archs
                values = c.evaluate(archs)
            ok &= np.asarray(values, dtype=float) <= c.limit
        return ok

    def evaluated(self, arch: Arch) -> bool:
        """Whether the objectives of ``arch`` are known (computed, or remembered)."""
        return arch in self._objective_cache

    def rejected(self, arch: Arch) -> Evaluation:
        """``arch`` as an infeasible proposal: constraint values, no objective computed."""
        (values,) = self.constraint_values([arch])
        cheap = {o.name: values[o.name] for o in self.objectives if o.name in values}
        return Evaluation(arch, cheap, values, False)

    def evaluate(self, archs: Sequence[Arch]) -> list[Evaluation]:
        """Objectives and constraints of each arch (objectives computed once per arch)."""
        constraints = self.constraint_values(archs)
        missing = list(dict.fromkeys(a for a in archs if a not in self._objective_cache))
        if missing:
            values = self.constraint_values(missing)
            columns = {
                o.name: (
                    np.array([v[o.name] for v in values])
                    if o.name in values[0]
                    else np.asarray(o.evaluate(missing), dtype=float)
                )
                for o in self.objectives
            }
            for i, arch in enumerate(missing):
                self._objective_cache[arch] = {n: float(v[i]) for n, v in columns.items()}
        return [
            Evaluation(
                arch,
                self._objective_cache[arch],
                cons,
                all(cons[c.name] <= c.limit for c in self.constraints),
            )
            for arch, cons in zip(archs, constraints, strict=True)
        ]

    def remember(self, evaluation: Evaluation) -> None:
        """Seed the caches with an evaluation made earlier (a resumed search)."""
        self._objective_cache[evaluation.arch] = dict(evaluation.objectives)
        self._constraint_cache[evaluation.arch] = dict(evaluation.constraints)

    def constraint_ranges(
        self, samples: int = 512, seed: int = 0
    ) -> dict[str, tuple[float, float]]:
        """(smallest, largest) value of each constraint over the min arch, max arch and samples."""
        rng = np.random.default_rng(seed)
        archs = [self.space.min_arch(), self.space.max_arch()]
        archs += [self.space.sample(int(s)) for s in rng.integers(0, 2**31, samples)]
        values = self.constraint_values(archs)
        return {
            c.name: (min(v[c.name] for v in values), max(v[c.name] for v in values))
            for c in self.constraints
        }

    def check_budgets(self) -> None:
        """Refuse at once a constraint no arch can meet, naming the feasible range."""
        ranges = self.constraint_ranges()
        for c in self.constraints:
            low, high = ranges[c.name]
            if low > c.limit:
                unit = f" {c.unit}" if c.unit else ""
                raise InfeasibleBudgetError(
                    f"{c.name} <= {c.limit:g}{unit} is infeasible in space {self.space.name!r}: "
                    f"the smallest arch needs {low:.4g}{unit}; feasible budgets are >= "
                    f"{low:.4g}{unit} (the largest arch needs {high:.4g}{unit})"
                )
