"""Generative search: a budget-conditioned policy over a space's decisions.

The policy is a factorised categorical distribution: for each decision of the space, logits are
a linear function of radial-basis features of the (normalised) latency budget. It is trained by
policy gradient with rank-based advantages on the rewards the search collects, for budgets drawn
across the feasible range, so once trained it proposes good feasible archs for *any* budget in
that range without searching again (:meth:`BudgetPolicy.generate`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nas.arch import Arch
from nas.runs import write_atomic
from nas.search.problem import Constraint, Evaluation, Problem
from nas.space import SearchSpace

POLICY_FORMAT = "nas-budget-policy"
POLICY_VERSION = 1


class BudgetPolicy:
    """p(arch | budget) as independent softmaxes over every decision of the space."""

    def __init__(self, space: SearchSpace, low: float, high: float, centres: int = 8):
        self.space, self.low, self.high, self.centres = space, float(low), float(high), centres
        self.weights = [np.zeros((len(d.values), centres)) for d in space.dimensions]
        self._adam = [(np.zeros_like(w), np.zeros_like(w)) for w in self.weights]
        self.steps = 0

    def features(self, budgets: np.ndarray) -> np.ndarray:
        t = (np.asarray(budgets, dtype=float) - self.low) / max(self.high - self.low, 1e-12)
        centres = np.linspace(0.0, 1.0, self.centres)
        width = 1.0 / (self.centres - 1)
        phi = np.exp(-0.5 * ((t[:, None] - centres[None, :]) / width) ** 2)
        return phi / phi.sum(axis=1, keepdims=True)

    def probabilities(self, budgets: np.ndarray) -> list[np.ndarray]:
        phi = self.features(budgets)
        probs = []
        for w in self.weights:
            logits = phi @ w.T
            logits -= logits.max(axis=1, keepdims=True)
            e = np.exp(logits)
            probs.append(e / e.sum(axis=1, keepdims=True))
        return probs

    def sample(
        self, budgets: np.ndarray, rng: np.random.Generator, greedy: bool = False
    ) -> tuple[list[Arch], np.ndarray]:
        """One arch per budget, and the chosen value indices (rows: archs, columns: decisions)."""
        probs = self.probabilities(budgets)
        indices = np.empty((len(budgets), len(probs)), dtype=int)
        for k, p in enumerate(probs):
            if greedy:
                indices[:, k] = p.argmax(axis=1)
            else:
                u = rng.random((len(budgets), 1))
                indices[:, k] = np.minimum((p.cumsum(axis=1) < u).sum(axis=1), p.shape[1] - 1)
        dims = self.space.dimensions
        archs = [
            self.space.assemble([dims[k].values[i] for k, i in enumerate(row)]) for row in indices
        ]
        return archs, indices

    def update(
        self, budgets: np.ndarray, indices: np.ndarray, advantages: np.ndarray, lr: float = 0.05
    ) -> None:
        """One Adam step along the policy gradient sum(advantage * grad log p)."""
        phi = self.features(budgets)
        probs = self.probabilities(budgets)
        self.steps += 1
        beta1, beta2 = 0.9, 0.999
        for k, (w, p) in enumerate(zip(self.weights, probs, strict=True)):
            onehot = np.zeros_like(p)
            onehot[np.arange(len(p)), indices[:, k]] = 1.0
            grad = ((onehot - p) * advantages[:, None]).T @ phi / len(p)
            m, v = self._adam[k]
            m[:] = beta1 * m + (1 - beta1) * grad
            v[:] = beta2 * v + (1 - beta2) * grad**2
            m_hat, v_hat = m / (1 - beta1**self.steps), v / (1 - beta2**self.steps)
            w += lr * m_hat / (np.sqrt(v_hat) + 1e-8)  # ascent

    def generate(
        self, budget: float, constraint: Constraint, n: int = 5, draws: int = 2000, seed: int = 0
    ) -> list[Arch]:
        """The ``n`` most probable distinct archs the policy proposes that meet ``budget``."""
        rng = np.random.default_rng(seed)
        archs, indices = self.sample(np.full(draws, budget), rng)
        greedy, greedy_idx = self.sample(np.array([budget]), rng, greedy=True)
        archs, indices = greedy + archs, np.vstack([greedy_idx, indices])
        probs = self.probabilities(np.array([budget]))
        log_p = sum(np.log(p[0, indices[:, k]] + 1e-12) for k, p in enumerate(probs))
        values = np.asarray(constraint.evaluate(archs), dtype=float)
        chosen: dict[Arch, None] = {}
        for i in np.argsort(-log_p):
            if values[i] <= budget and archs[i] not in chosen:
                chosen[archs[i]] = None
            if len(chosen) == n:
                break
        return list(chosen)

    def to_dict(self) -> dict:
        return {
            "format": POLICY_FORMAT,
            "version": POLICY_VERSION,
            "space": self.space.name,
            "budget_range": [self.low, self.high],
            "centres": self.centres,
            "steps": self.steps,
            "weights": [w.tolist() for w in self.weights],
            "adam": [[m.tolist(), v.tolist()] for m, v in self._adam],
        }

    def save(self, path: str | Path) -> None:
        write_atomic(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace) -> BudgetPolicy:
        data = json.loads(Path(path).read_text())
        if data.get("format") != POLICY_FORMAT or data.get("version") != POLICY_VERSION:
            raise ValueError(f"{path} is not a {POLICY_FORMAT} v{POLICY_VERSION} file")
        if data["space"] != space.name:
            raise ValueError(f"{path} is a policy of space {data['space']!r}, not {space.name!r}")
        policy = cls(space, *data["budget_range"], centres=data["centres"])
        policy.weights = [np.asarray(w, dtype=float) for w in data["weights"]]
        policy._adam = [(np.asarray(m, float), np.asarray(v, float)) for m, v in data["adam"]]
        policy.steps = data["steps"]
        return policy


def _rank_advantages(rewards: np.ndarray) -> np.ndarray:
    ranks = np.argsort(np.argsort(rewards)).astype(float)
    centred = ranks / max(len(rewards) - 1, 1) - 0.5
    return centred


class GenerativeSearch:
    """Trains a :class:`BudgetPolicy` on the search's evaluations; asks archs from it.

    Half of each batch targets the problem's own budget, half budgets spread over the feasible
    range, so the policy learns the whole range while the search focuses on the asked budget.
    """

    name = "generative"

    def __init__(self, problem: Problem, seed: int = 0, lr: float = 0.05):
        if not problem.constraints:
            raise ValueError("generative search needs a budget constraint (e.g. latency)")
        self.problem, self.lr = problem, lr
        self.budget = problem.constraints[0]
        low, high = problem.constraint_ranges()[self.budget.name]
        self.policy = BudgetPolicy(problem.space, low, high)
        self.rng = np.random.default_rng(seed)
        self.asked: dict[Arch, list[tuple[float, np.ndarray]]] = {}
        self.worst = None
        random.seed(seed)

    def ask(self, n: int) -> list[Arch]:
        low, high = self.policy.low, self.policy.high
        target = min(max(self.budget.limit, low), high)
        budgets = np.where(np.arange(n) % 2 == 0, target, self.rng.uniform(low, high, n))
        archs, indices = self.policy.sample(budgets, self.rng)
        for arch, b, idx in zip(archs, budgets, indices, strict=True):
            self.asked.setdefault(arch, []).append((float(b), idx))
        return archs

    def _reward(self, e: Evaluation, budget: float) -> float:
        score = e.objectives[self.problem.primary.name]
        score = score if self.problem.primary.maximize else -score
        others_ok = all(e.constraints[c.name] <= c.limit for c in self.problem.constraints[1:])
        value = e.constraints[self.budget.name]
        if value <= budget and others_ok:
            return score
        floor = self.worst if self.worst is not None else score
        return floor - 1.0 - (value / budget - 1.0)

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        budgets, indices, rewards = [], [], []
        for e in evaluations:
            score = e.objectives[self.problem.primary.name]
            score = score if self.problem.primary.maximize else -score
            self.worst = score if self.worst is None else min(self.worst, score)
            for budget, idx in self.asked.pop(e.arch, []):
                budgets.append(budget)
                indices.append(idx)
                rewards.append(self._reward(e, budget))
        if budgets:
            self.policy.update(
                np.array(budgets), np.array(indices), _rank_advantages(np.array(rewards)), self.lr
            )

    def save_state(self, folder: Path) -> None:
        self.policy.save(folder / "generator.json")

    def load_state(self, folder: Path) -> None:
        path = folder / "generator.json"
        if path.is_file():
            self.policy = BudgetPolicy.load(path, self.problem.space)
