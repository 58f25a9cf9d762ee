"""Generative search: a budget-conditioned policy over a space's decisions.

The policy is a factorised categorical distribution: for each decision of the space, logits are
a linear function of radial-basis features of the (normalised) latency budget. It is trained by
policy gradient with rank-based advantages. Before any evaluation it learns the budget side from
the predicted constraint alone (free): for budgets across the feasible range, archs that meet
their budget and use most of it are rewarded, archs over it penalised by how far. Then it learns
the objective from the search's evaluations, while every proposal keeps training the budget side.
Once trained it proposes good feasible archs for *any* budget in the range without searching
again (:meth:`BudgetPolicy.generate`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nas.arch import Arch
from nas.runs import write_atomic
from nas.search.problem import Constraint, Evaluation, Problem
from nas.space import SearchSpace

#: Share of the policy's draws at the search's budget that should meet every constraint.
FEASIBLE_TARGET = 0.98

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
    """Ranks scaled to -0.5..0.5 (ties share their mean rank, so they pull nowhere)."""
    from scipy.stats import rankdata

    ranks = rankdata(rewards) - 1.0
    return ranks / max(len(rewards) - 1, 1) - 0.5


def budget_range(problem: Problem, constraint: Constraint) -> tuple[float, float]:
    """(smallest, largest) finite value of ``constraint`` over the space (its sampled range)."""
    low, high = problem.constraint_ranges()[constraint.name]
    if not math.isfinite(high):
        high = max(constraint.limit, low) if math.isfinite(constraint.limit) else low
    return float(low), float(max(high, low))


class GenerativeSearch:
    """Trains a :class:`BudgetPolicy` on predicted constraints, then on the search's
    evaluations; asks feasible archs from it.

    Each proposal round draws half its archs at the problem's own budget and half at budgets
    spread below it, so the policy learns the range while the search focuses on the asked budget.
    Draws that miss their budget or any other constraint (or were evaluated before) are not
    proposed: they only train the budget side. :attr:`policy_feasible_share` is the share of the
    policy's draws at the problem's budget that met every constraint.
    """

    name = "generative"

    def __init__(
        self,
        problem: Problem,
        seed: int = 0,
        lr: float = 0.05,
        pretrain_steps: int = 100,
        pretrain_lr: float = 0.2,
        draws: int = 128,
    ):
        if not problem.constraints:
            raise ValueError("generative search needs a budget constraint (e.g. latency)")
        self.problem, self.seed, self.lr = problem, seed, lr
        self.pretrain_steps, self.pretrain_lr, self.draws = pretrain_steps, pretrain_lr, draws
        self.budget = problem.constraints[0]
        low, high = budget_range(problem, self.budget)
        self.policy = BudgetPolicy(problem.space, low, high)
        self.target = min(max(self.budget.limit, low), high)
        self.rng = np.random.default_rng(seed)
        self.full_use = 0.9
        self.asked: dict[Arch, list[tuple[float, np.ndarray]]] = {}
        self.sampled_at_target = self.feasible_at_target = 0

    @property
    def policy_feasible_share(self) -> float | None:
        if not self.sampled_at_target:
            return None
        return self.feasible_at_target / self.sampled_at_target

    def _budgets(self, n: int, high: float) -> np.ndarray:
        spread = self.rng.uniform(self.policy.low, high, n)
        return np.where(np.arange(n) % 2 == 0, self.target, spread)

    def _draw(
        self, budgets: np.ndarray, lr: float | None = None
    ) -> tuple[list[Arch], np.ndarray, np.ndarray, np.ndarray]:
        """Archs drawn at ``budgets``, their value indices, budget values and whether each meets
        its budget and every other constraint; the budget side of the policy learns from them."""
        archs, indices = self.policy.sample(budgets, self.rng)
        values = np.asarray(self.budget.evaluate(archs), dtype=float)
        others = np.ones(len(archs), dtype=bool)
        for c in self.problem.constraints[1:]:
            others &= np.asarray(c.evaluate(archs), dtype=float) <= c.limit
        ok = (values <= budgets) & others
        # An arch using ``full_use`` of its budget is as good as a larger one: the policy keeps
        # that margin below the budget, narrowed or widened to keep FEASIBLE_TARGET of its draws.
        used = np.minimum(values / budgets, self.full_use)
        fill = np.where(ok, used, -1.0 - np.abs(values / budgets - 1.0))
        self.policy.update(budgets, indices, _rank_advantages(fill), lr or self.lr)
        share = float(ok[budgets == self.target].mean())
        step = 0.02 if share < FEASIBLE_TARGET else -0.005
        self.full_use = float(np.clip(self.full_use - step, 0.5, 1.0))
        return archs, indices, values, ok

    def pretrain(self) -> None:
        """Learn the budget side from predicted constraint values alone (no evaluation)."""
        for _ in range(self.pretrain_steps):
            budgets = self.rng.uniform(self.policy.low, self.policy.high, self.draws)
            budgets[::2] = self.target
            self._draw(budgets, self.pretrain_lr)

    def ask(self, n: int) -> list[Arch]:
        if self.policy.steps == 0:
            self.pretrain()
        chosen: list[Arch] = []
        for _ in range(50):
            budgets = self._budgets(max(self.draws, 2 * n), self.target)
            archs, indices, values, ok = self._draw(budgets, self.pretrain_lr)
            at_target = budgets == self.target
            self.sampled_at_target += int(at_target.sum())
            self.feasible_at_target += int((ok & at_target).sum())
            # the draws at the search's budget that meet it, those using most of it first
            for i in sorted(np.flatnonzero(ok & at_target), key=lambda i: -values[i]):
                arch = archs[i]
                if len(chosen) == n:
                    break
                if arch not in chosen and not self.problem.evaluated(arch):
                    self.asked.setdefault(arch, []).append((float(budgets[i]), indices[i]))
                    chosen.append(arch)
            if len(chosen) == n:
                break
        return chosen

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        budgets, indices, rewards = [], [], []
        primary = self.problem.primary
        for e in evaluations:
            asked = self.asked.pop(e.arch, [])
            if not e.feasible or primary.name not in e.objectives:
                continue  # rejected proposals: the budget side already learnt from them
            score = e.objectives[primary.name] * (1 if primary.maximize else -1)
            for budget, idx in asked:
                if e.constraints[self.budget.name] <= budget:
                    budgets.append(budget)
                    indices.append(idx)
                    rewards.append(score)
        if len(budgets) > 1:
            self.policy.update(
                np.array(budgets), np.array(indices), _rank_advantages(np.array(rewards)), self.lr
            )

    def save_state(self, folder: Path) -> None:
        self.policy.save(folder / "generator.json")

    def load_state(self, folder: Path) -> None:
        path = folder / "generator.json"
        if path.is_file():
            self.policy = BudgetPolicy.load(path, self.problem.space)
