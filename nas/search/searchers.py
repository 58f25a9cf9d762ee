"""Random search and evolution: ask for archs to evaluate, tell their evaluations.

Every searcher works on any :class:`~nas.space.SearchSpace` through a :class:`Problem`. These two
check the constraints themselves (they are predicted, so free) and propose only feasible archs
never evaluated before; the search driver checks every proposal of every searcher again.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from nas.arch import Arch
from nas.search.problem import Evaluation, InfeasibleBudgetError, Problem


class Searcher(Protocol):
    """What the search driver needs of an algorithm (``load_state(folder)`` and
    ``save_state(folder)`` are optional: state kept in the search folder)."""

    name: str
    seed: int

    def ask(self, n: int) -> list[Arch]:
        """Up to ``n`` archs to evaluate next."""

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        """Results of archs asked for (or of earlier runs, when resuming): evaluated archs, and
        proposals the driver rejected without evaluating them (``feasible`` False: over a budget,
        only their constraint values known)."""


def sample_feasible(
    problem: Problem, rng: random.Random, n: int, exclude=(), max_draws: int = 200_000
) -> list[Arch]:
    """``n`` distinct feasible archs drawn uniformly (rejection sampling with a bound)."""
    found: dict[Arch, None] = {}
    draws = 0
    while len(found) < n and draws < max_draws:
        batch = [problem.space.sample(rng) for _ in range(min(512, max_draws - draws))]
        draws += len(batch)
        ok = problem.feasible(batch)
        for arch, feasible in zip(batch, ok, strict=True):
            if feasible and arch not in exclude:
                found.setdefault(arch)
            if len(found) == n:
                break
    if not found and n:
        limits = ", ".join(f"{c.name} <= {c.limit:g}" for c in problem.constraints)
        raise InfeasibleBudgetError(
            f"no feasible arch in {draws} random draws under {limits}; "
            "the budget is at the edge of the space: loosen it"
        )
    return list(found)


def _score(problem: Problem, evaluation: Evaluation) -> float:
    value = evaluation.objectives[problem.primary.name]
    return value if problem.primary.maximize else -value


class RandomSearch:
    """Uniformly sampled feasible archs."""

    name = "random"

    def __init__(self, problem: Problem, seed: int = 0):
        self.problem, self.seed, self.rng = problem, seed, random.Random(seed)
        self.seen: set[Arch] = set()

    def ask(self, n: int) -> list[Arch]:
        archs = sample_feasible(self.problem, self.rng, n, exclude=self.seen)
        self.seen.update(archs)
        return archs

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        self.seen.update(e.arch for e in evaluations)


@dataclass(frozen=True)
class EvolutionSettings:
    """Defaults follow Once-for-All's search: keep the top 25%, half mutants, half crossovers."""

    population: int = 100
    parent_ratio: float = 0.25
    mutation_ratio: float = 0.5
    mutation_prob: float = 0.1

    @classmethod
    def for_budget(cls, evaluations: int | None) -> EvolutionSettings:
        """Once-for-All's settings from 500 evaluations up; a smaller budget starts from a
        smaller population (a fifth of the evaluations, at least 10), so it breeds early."""
        if evaluations is None:
            return cls()
        return cls(population=min(100, max(10, evaluations // 5)))


class Evolution:
    """Regularised-elitist evolution on the primary objective under the constraints.

    The population is the best ``population`` feasible archs evaluated so far; each generation
    draws parents from its top ``parent_ratio``, makes mutants and uniform crossovers, and keeps
    only feasible, never-evaluated children.
    """

    name = "evolution"

    def __init__(self, problem: Problem, seed: int = 0, settings: EvolutionSettings | None = None):
        self.problem, self.seed, self.rng = problem, seed, random.Random(seed)
        self.settings = settings or EvolutionSettings()
        self.evaluated: dict[Arch, float] = {}
        self.queue: list[Arch] = []

    def _population(self) -> list[Arch]:
        feasible = [a for a, score in self.evaluated.items() if score > -np.inf]
        ranked = sorted(feasible, key=self.evaluated.get, reverse=True)
        return ranked[: self.settings.population]

    def _next_generation(self) -> list[Arch]:
        s, rng = self.settings, self.rng
        population = self._population()
        if len(population) < s.population:
            return sample_feasible(
                self.problem, rng, s.population - len(population), exclude=self.evaluated
            )
        parents = population[: max(2, int(s.parent_ratio * len(population)))]
        children: dict[Arch, None] = {}
        wanted = s.population - len(parents)
        for _ in range(50):  # rounds of candidates, checked against the constraints together
            if len(children) >= wanted:
                break
            candidates = [self._child(parents) for _ in range(2 * wanted)]
            candidates = [c for c in dict.fromkeys(candidates) if c not in self.evaluated]
            for child, ok in zip(candidates, self.problem.feasible(candidates), strict=True):
                if ok and len(children) < wanted:
                    children.setdefault(child)
        if not children:  # converged: refresh with random feasible archs
            return sample_feasible(self.problem, rng, wanted, exclude=self.evaluated)
        return list(children)

    def _child(self, parents: list[Arch]) -> Arch:
        s, rng, space = self.settings, self.rng, self.problem.space
        if rng.random() < s.mutation_ratio:
            return space.mutate(rng.choice(parents), rng, s.mutation_prob)
        a, b = rng.sample(parents, 2)
        return space.crossover(a, b, rng)

    def ask(self, n: int) -> list[Arch]:
        while len(self.queue) < n:
            fresh = [a for a in self._next_generation() if a not in self.queue]
            if not fresh:
                break
            self.queue.extend(fresh)
        batch, self.queue = self.queue[:n], self.queue[n:]
        return batch

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        for e in evaluations:
            if e.feasible:
                self.evaluated[e.arch] = _score(self.problem, e)
            else:
                self.evaluated.setdefault(e.arch, -np.inf)
