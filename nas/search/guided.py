"""Predictor-guided search: a model of the objective, refitted on every evaluation, chooses
which feasible archs to evaluate.

Once-for-All searches its supernet with evolution on an accuracy predictor; here the predictor is
refitted as the search evaluates, and only archs it rates best under the budget are evaluated:

1. ``initial`` feasible random archs are evaluated.
2. Each step fits a Bayesian linear regression (scikit-learn's ``BayesianRidge``) of the
   objective on the arch's choices -- ordered choices (depth, width, kernel, ...) as "at least
   this step" indicators, others one-hot -- and on each constraint's share of its budget (what
   an arch costs is free to know, and accuracy tends to grow with it).
3. Each proposal is built by a greedy climb from the smallest arch: change one decision at a
   time, taking the change with the best predicted gain per unit of budget spent (a change that
   spends nothing first), while every constraint holds. The first climb of a step follows the
   model's mean; the others follow draws from its posterior (Thompson sampling), so the step's
   archs are each the best under one plausible model, and the step explores where the model is
   unsure.

Candidates are handled as matrices of value indices and screened by constraints with an index
form (:attr:`~nas.search.problem.Constraint.on_indices`, such as a latency predictor's tables),
so a climb scores its moves without building archs; a constraint without one (a MACs limit) is
checked on each climb's result only, which is then kept or dropped.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nas.arch import Arch
from nas.search.problem import Evaluation, Problem
from nas.search.searchers import sample_feasible
from nas.space import SearchSpace


@dataclass(frozen=True)
class GuidedSettings:
    """How :class:`GuidedSearch` spends a budget (see the module docstring)."""

    initial: int = 20
    step: int = 10
    draws_per_arch: int = 3  # posterior draws tried per wanted arch before random archs fill in
    climb_every: int = 2
    fit_top: float = 0.5
    fit_least: int = 40

    @classmethod
    def for_budget(cls, evaluations: int | None) -> GuidedSettings:
        """A tenth of the budget (5 to 20) as random start, steps of a twentieth (1 to 10)."""
        if evaluations is None:
            return cls()
        return cls(
            initial=min(20, max(5, evaluations // 10)), step=min(10, max(1, evaluations // 20))
        )


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class ArchMatrix:
    """Archs of a space as rows of value indices (columns: ``space.dimensions``); per-layer
    slots past a stage's depth hold index 0."""

    def __init__(self, space: SearchSpace):
        from predictors.positions import ArchIndexer

        self.space = space
        dims = space.dimensions
        self.sizes = np.array([len(d.values) for d in dims])
        index = {d.name: k for k, d in enumerate(dims)}
        self.per_layer = [
            (k, index[f"stages[{d.stage}].depth"], d.layer)
            for k, d in enumerate(dims)
            if d.layer is not None
        ]
        # ordered choices (numbers) by value rank; others (attention kinds) have no order
        self.ranks = [
            np.argsort(np.argsort(d.values)) if all(_is_number(v) for v in d.values) else None
            for d in dims
        ]
        self._indexer = ArchIndexer(space)
        # every (dimension, value index) pair, dimension by dimension: the candidate moves
        self._move_dims = np.repeat(np.arange(len(self.sizes)), self.sizes)
        self._move_values = np.concatenate([np.arange(size) for size in self.sizes])

    def indices(self, archs: Sequence[Arch]) -> np.ndarray:
        return self._indexer.indices(list(archs)).astype(np.int64).reshape(-1, len(self.sizes))

    def archs(self, rows: np.ndarray) -> list[Arch]:
        dims = self.space.dimensions
        return [self.space.assemble([dims[k].values[i] for k, i in enumerate(r)]) for r in rows]

    def absent(self, rows: np.ndarray) -> np.ndarray:
        """(rows, dimensions): slots of layers an arch does not have."""
        out = np.zeros(rows.shape, dtype=bool)
        for k, depth_dim, layer in self.per_layer:
            depth = np.asarray(self.space.dimensions[depth_dim].values)[rows[:, depth_dim]]
            out[:, k] = depth <= layer
        return out

    def canonical(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` with the slots of absent layers set to 0 (one row per distinct arch)."""
        return np.where(self.absent(rows), 0, rows)

    def features(self, rows: np.ndarray) -> np.ndarray:
        """Ordered choices as "at least step j" indicators (value rank >= 1, >= 2, ...), others
        one-hot, absent layers all zeros: a linear model on them learns what each step up of
        each choice is worth."""
        absent = self.absent(rows)
        columns = []
        for k, rank in enumerate(self.ranks):
            if rank is None:
                block = np.eye(self.sizes[k], dtype=np.float32)[rows[:, k]]
            else:
                block = (rank[rows[:, k]][:, None] >= np.arange(1, self.sizes[k])).astype(
                    np.float32
                )
            block[absent[:, k]] = 0.0
            columns.append(block)
        return np.hstack(columns)

    def contributions(self, weights: np.ndarray) -> list[np.ndarray]:
        """Per dimension, what each value adds to ``features(rows) @ weights``."""
        out, start = [], 0
        for k, rank in enumerate(self.ranks):
            width = self.sizes[k] if rank is None else self.sizes[k] - 1
            w = weights[start : start + width]
            out.append(w.copy() if rank is None else np.concatenate([[0.0], np.cumsum(w)])[rank])
            start += width
        return out

    def neighbours(self, row: np.ndarray) -> np.ndarray:
        """The rows that differ from ``row`` in one present decision (canonical)."""
        present = ~self.absent(row[None])[0]
        keep = present[self._move_dims] & (self._move_values != row[self._move_dims])
        dims, values = self._move_dims[keep], self._move_values[keep]
        out = np.repeat(row[None], len(dims), axis=0)
        out[np.arange(len(dims)), dims] = values
        return self.canonical(out) if self.per_layer else out

    @staticmethod
    def keys(rows: np.ndarray) -> list[bytes]:
        return [r.tobytes() for r in np.ascontiguousarray(rows)]


class GuidedSearch:
    """See the module docstring."""

    name = "guided"

    def __init__(self, problem: Problem, seed: int = 0, settings: GuidedSettings | None = None):
        self.problem, self.seed = problem, seed
        self.settings = settings or GuidedSettings()
        self.matrix = ArchMatrix(problem.space)
        self.rng = np.random.default_rng(seed)
        self.random = random.Random(seed)
        self.scores: dict[Arch, float] = {}  # evaluated feasible archs, primary as maximised
        self.seen: set[bytes] = set()  # rows evaluated, rejected or asked: never asked again
        self.indexed = [c for c in problem.constraints if c.on_indices is not None]
        self.others = [c for c in problem.constraints if c.on_indices is None]

    # ----------------------------------------------------------------- ask / tell

    def ask(self, n: int) -> list[Arch]:
        n = min(n, self.settings.step)
        if len(self.scores) < self.settings.initial:
            wanted = min(n, self.settings.initial - len(self.scores))
            rows = self._random(wanted)
        else:
            rows = self._climbed(n)
        self.seen.update(self.matrix.keys(rows))
        return self.matrix.archs(rows)

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        primary = self.problem.primary
        rows = self.matrix.indices([e.arch for e in evaluations])
        self.seen.update(self.matrix.keys(rows))
        for e in evaluations:
            if e.feasible and primary.name in e.objectives:
                value = e.objectives[primary.name]
                self.scores[e.arch] = value if primary.maximize else -value

    def _random(self, n: int) -> np.ndarray:
        archs = sample_feasible(self.problem, self.random, 4 * n, exclude=set(self.scores))
        rows = self.matrix.indices(archs)
        fresh = [i for i, key in enumerate(self.matrix.keys(rows)) if key not in self.seen]
        return rows[fresh[:n]]

    # ----------------------------------------------------------------- model and climbs

    def _shares(self, rows: np.ndarray) -> np.ndarray:
        """(rows, index-form constraints): each constraint's value over its limit."""
        if not self.indexed:
            return np.zeros((len(rows), 0))
        return np.stack(
            [np.asarray(c.on_indices(rows), dtype=float) / c.limit for c in self.indexed], axis=1
        )

    def _feasible(self, rows: np.ndarray, shares: np.ndarray, others: bool = False) -> np.ndarray:
        """Which rows meet the index-form constraints (climbs check only these, fast), and with
        ``others`` the remaining constraints too (checked on a climb's results only)."""
        ok = np.all(shares <= 1.0, axis=1) if shares.shape[1] else np.ones(len(rows), bool)
        if others and self.others and ok.any():
            archs = self.matrix.archs(rows[ok])
            inner = np.ones(len(archs), dtype=bool)
            for c in self.others:
                inner &= np.asarray(c.evaluate(archs), dtype=float) <= c.limit
            ok[np.flatnonzero(ok)] = inner
        return ok

    def _fit(self):
        """Bayesian ridge regression of the objective on choices and budget shares."""
        from sklearn.linear_model import BayesianRidge

        archs = sorted(self.scores, key=self.scores.__getitem__, reverse=True)
        keep = max(self.settings.fit_least, int(np.ceil(self.settings.fit_top * len(archs))))
        archs = archs[:keep]
        rows = self.matrix.indices(archs)
        x = np.hstack([self.matrix.features(rows), self._shares(rows)])
        y = np.array([self.scores[a] for a in archs])
        return BayesianRidge().fit(x, y)

    def _climbed(self, n: int) -> np.ndarray:
        """``n`` new feasible rows: the model mean's optimum (a greedy climb from the smallest
        arch, polished), then optima of posterior draws polished from it; random feasible rows
        if the model keeps pointing at archs seen before."""
        model = self._fit()
        mean = model.coef_
        chol = np.linalg.cholesky(model.sigma_ + 1e-12 * np.eye(len(mean)))
        start = self.matrix.indices([self.problem.space.min_arch()])[0]
        best = self._polish(self._climb(start, mean), mean)
        found: dict[bytes, np.ndarray] = {}
        for attempt in range(self.settings.draws_per_arch * n):
            if len(found) == n:
                break
            if attempt == 0:
                row = best
            else:
                w = mean + chol @ self.rng.standard_normal(len(mean))
                climb = self.settings.climb_every and attempt % self.settings.climb_every == 0
                row = self._polish(self._climb(start, w) if climb else best, w)
            key = self.matrix.keys(row[None])[0]
            if key in self.seen or key in found:
                continue
            if not self._feasible(row[None], self._shares(row[None]), others=True)[0]:
                self.seen.add(key)  # over a limit only the full constraints know (e.g. MACs)
                continue
            found[key] = row
        rows = np.stack(list(found.values())) if found else np.zeros((0, len(start)), int)
        if len(rows) < n:
            rows = np.concatenate([rows, self._random(n - len(rows))])
        return rows

    def _value(self, weights: np.ndarray):
        """The linear model ``weights`` as a function of (rows, budget shares)."""
        n_shares = len(self.indexed)
        contributions = self.matrix.contributions(weights[: len(weights) - n_shares])
        table = np.zeros((len(contributions), int(self.matrix.sizes.max())))
        for k, t in enumerate(contributions):
            table[k, : len(t)] = t
        dims = np.arange(len(contributions))[None, :]
        w_shares = weights[len(weights) - n_shares :]

        def value(rows: np.ndarray, shares: np.ndarray) -> np.ndarray:
            parts = table[dims, rows]
            if self.matrix.per_layer:
                parts[self.matrix.absent(rows)] = 0.0
            return parts.sum(axis=1) + shares @ w_shares

        return value

    def _climb(self, row: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Greedy ascent of the linear model ``weights`` from ``row`` under the constraints:
        one decision per move, best predicted gain per unit of budget spent (free moves first)."""
        value = self._value(weights)
        shares = self._shares(row[None])
        current, spent = value(row[None], shares)[0], shares.max(initial=0.0)
        for _ in range(int(self.matrix.sizes.sum())):
            moves = self.matrix.neighbours(row)
            move_shares = self._shares(moves)
            ok = self._feasible(moves, move_shares)
            if not ok.any():
                break
            moves, move_shares = moves[ok], move_shares[ok]
            gain = value(moves, move_shares) - current
            spend = move_shares.max(axis=1, initial=0.0) - spent
            useful = gain > 1e-12
            if not useful.any():
                break
            free = useful & (spend <= 0)
            if free.any():
                pick = np.flatnonzero(free)[np.argmax(gain[free])]
            else:
                pick = int(np.argmax(np.where(useful, gain / np.maximum(spend, 1e-12), -np.inf)))
            row, current, spent = moves[pick], current + gain[pick], spent + spend[pick]
        return row

    def _polish(self, row: np.ndarray, weights: np.ndarray, pairs: int = 400) -> np.ndarray:
        """Local search of the model ``weights`` from ``row``: the best feasible change of one
        decision or of two (trading budget between them), until none gains."""
        value = self._value(weights)
        current = value(row[None], self._shares(row[None]))[0]
        for _ in range(int(self.matrix.sizes.sum())):
            singles = self.matrix.neighbours(row)
            gain1 = value(singles, self._shares(singles)) - current
            changed = np.argmax(singles != row, axis=1)
            # pairs of single changes on two decisions, most promising (gains added) first
            i, j = np.triu_indices(len(singles), k=1)
            keep = changed[i] != changed[j]
            i, j = i[keep], j[keep]
            order = np.argsort(-(gain1[i] + gain1[j]))[:pairs]
            i, j = i[order], j[order]
            two = singles[i].copy()
            two[np.arange(len(i)), changed[j]] = singles[j, changed[j]]
            if self.matrix.per_layer:
                two = self.matrix.canonical(two)
            moves = np.concatenate([singles, two])
            shares = self._shares(moves)
            ok = self._feasible(moves, shares)
            gain = np.where(ok, value(moves, shares) - current, -np.inf)
            best = int(np.argmax(gain))
            if gain[best] <= 1e-12:
                break
            row, current = moves[best], current + gain[best]
        return row
