"""What a search optimises: objectives and constraints over the archs of a space.

Objectives and constraints are vectorised callables ``list[Arch] -> np.ndarray``; the problem
caches their values per arch, so an arch proposed twice costs one evaluation. Constraints are
assumed cheap (predicted latency, MACs) and are checked before an arch is spent on objectives.
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


@dataclass(frozen=True)
class Constraint:
    """``evaluate(arch) <= limit`` must hold, e.g. latency on a device under a budget."""

    name: str
    evaluate: Vectorised
    limit: float
    unit: str = ""


@dataclass(frozen=True)
class Evaluation:
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
        missing = list(dict.fromkeys(a for a in archs if a not in self._constraint_cache))
        if missing:
            columns = {
                c.name: np.asarray(c.evaluate(missing), dtype=float) for c in self.constraints
            }
            for i, arch in enumerate(missing):
                self._constraint_cache[arch] = {n: float(v[i]) for n, v in columns.items()}
        return [self._constraint_cache[a] for a in archs]

    def feasible(self, archs: Sequence[Arch]) -> np.ndarray:
        """Which archs meet every constraint."""
        values = self.constraint_values(archs)
        return np.array(
            [all(v[c.name] <= c.limit for c in self.constraints) for v in values], dtype=bool
        )

    def evaluate(self, archs: Sequence[Arch]) -> list[Evaluation]:
        """Objectives and constraints of each arch (objectives computed once per arch)."""
        constraints = self.constraint_values(archs)
        missing = list(dict.fromkeys(a for a in archs if a not in self._objective_cache))
        if missing:
            columns = {
                o.name: np.asarray(o.evaluate(missing), dtype=float) for o in self.objectives
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
