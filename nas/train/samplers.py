"""Samplers: which subnets each training step trains.

One small interface (:class:`Sampler`): ``sample(step, total_steps, score)`` returns the archs of a
step; ``observe(archs, scores)`` feeds back the mini-batch scores (minus the cross-entropy) of the
archs that were trained; ``state_dict`` / ``load_state_dict`` hold everything needed to resume
(plain Python types only). ``score`` evaluates archs on the current mini-batch without training.

* ``uniform``: every decision drawn independently and uniformly.
* ``sandwich``: the largest arch (trained first, see :attr:`Sampler.trains_max`), the smallest
  and ``subnets - 1`` uniform ones.
* ``cas`` (ElasticViT's complexity-aware sampling): a target level that moves by -1, 0 or +1 each
  step (inward or still at the edges), the level's smallest arch and candidates of that level.
* ``cas+pas`` (performance-aware sampling on top): each level keeps a bank of good (arch, score)
  entries; a pick exploits the bank (softmax of scores) with a probability that rises over
  training, else explores the level, preferring archs that spend their complexity on width rather
  than depth. Banks are re-scored when they are older than ``rescore_every`` steps and lose
  entries that left their level.
* ``best_of`` > 1 (AttentiveNAS's best-up): each pick is the best of k candidates by mini-batch
  loss.
* ``fixed``: one arch, every step (standalone training of that arch).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nas.arch import Arch
from nas.space import SearchSpace
from nas.train.levels import Complexity, Levels

#: ``archs -> scores``: minus the cross-entropy of each arch on the current mini-batch.
ScoreFn = Callable[[Sequence[Arch]], list[float]]


def _no_score(archs: Sequence[Arch]) -> list[float]:
    raise RuntimeError("this sampler needs a score function (best_of > 1 or PAS re-scoring)")


class Sampler:
    """Picks the subnets of each step; deterministic given its seed and the scores it sees."""

    name = "base"
    #: Whether each step also trains the space's largest arch first (as the sandwich rule does).
    trains_max = False

    def __init__(self, space: SearchSpace, seed: int, subnets: int = 2, best_of: int = 1):
        self.space, self.subnets, self.best_of = space, subnets, best_of
        self.rng = random.Random(seed)

    def sample(self, step: int, total_steps: int, score: ScoreFn = _no_score) -> list[Arch]:
        raise NotImplementedError

    def observe(self, archs: Sequence[Arch], scores: Sequence[float]) -> None:
        """Mini-batch scores of archs just trained (used by performance-aware samplers)."""

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rng": _rng_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"sampler state of {state.get('name')!r}, not {self.name!r}")
        self.rng.setstate(_rng_unstate(state["rng"]))

    def _best(self, candidates: list[Arch], score: ScoreFn) -> Arch:
        if len(candidates) == 1:
            return candidates[0]
        scores = score(candidates)
        return candidates[max(range(len(candidates)), key=lambda i: scores[i])]


class UniformSampler(Sampler):
    name = "uniform"

    def _pick(self, score: ScoreFn) -> Arch:
        return self._best([self.space.sample(self.rng) for _ in range(self.best_of)], score)

    def sample(self, step: int, total_steps: int, score: ScoreFn = _no_score) -> list[Arch]:
        return [self._pick(score) for _ in range(self.subnets)]


class SandwichSampler(UniformSampler):
    name = "sandwich"
    trains_max = True

    def sample(self, step: int, total_steps: int, score: ScoreFn = _no_score) -> list[Arch]:
        return [self.space.min_arch()] + [self._pick(score) for _ in range(self.subnets - 1)]


class FixedSampler(Sampler):
    name = "fixed"

    def __init__(self, space: SearchSpace, arch: Arch, seed: int = 0):
        super().__init__(space, seed, subnets=1)
        self.arch = space.validate(arch)

    def sample(self, step: int, total_steps: int, score: ScoreFn = _no_score) -> list[Arch]:
        return [self.arch]


# --------------------------------------------------------------------- performance banks


class Bank:
    """At most ``capacity`` distinct (arch, score) entries; a better arch replaces the worst."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.entries: list[tuple[Arch, float]] = []
        self.scored_at = 0

    def __len__(self) -> int:
        return len(self.entries)

    def offer(self, arch: Arch, score: float) -> bool:
        """Add or update ``arch``; returns whether it is in the bank afterwards."""
        for k, (known, _) in enumerate(self.entries):
            if known == arch:
                self.entries[k] = (arch, score)
                return True
        if len(self.entries) < self.capacity:
            self.entries.append((arch, score))
            return True
        worst = min(range(len(self.entries)), key=lambda k: self.entries[k][1])
        if score > self.entries[worst][1]:
            self.entries[worst] = (arch, score)
            return True
        return False

    def choose(self, rng: random.Random) -> Arch:
        """An entry drawn with softmax(score) weights."""
        top = max(s for _, s in self.entries)
        weights = [math.exp(s - top) for _, s in self.entries]
        return rng.choices(self.entries, weights=weights)[0][0]

    def rescore(self, score: ScoreFn, step: int) -> None:
        if self.entries:
            archs = [a for a, _ in self.entries]
            self.entries = list(zip(archs, score(archs), strict=True))
        self.scored_at = step

    def evict(self, keep: Callable[[Arch], bool]) -> int:
        """Drop entries for which ``keep`` is false; returns how many were dropped."""
        before = len(self.entries)
        self.entries = [(a, s) for a, s in self.entries if keep(a)]
        return before - len(self.entries)

    def best(self) -> list[tuple[Arch, float]]:
        return sorted(self.entries, key=lambda e: -e[1])

    def state_dict(self) -> dict[str, Any]:
        return {
            "archs": [a.to_dict() for a, _ in self.entries],
            "scores": [float(s) for _, s in self.entries],
            "scored_at": self.scored_at,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        archs = [Arch.from_dict(a) for a in state["archs"]]
        self.entries = list(zip(archs, (float(s) for s in state["scores"]), strict=True))
        self.scored_at = int(state["scored_at"])


@dataclass(frozen=True)
class PasSettings:
    bank_size: int = 50
    exploit_start: float = 0.2
    exploit_end: float = 0.8
    rescore_every: int = 50
    explore_candidates: int = 3

    def exploit_probability(self, step: int, total_steps: int) -> float:
        progress = min(1.0, step / max(1, total_steps - 1))
        return self.exploit_start + (self.exploit_end - self.exploit_start) * progress


def width_preference(space: SearchSpace, arch: Arch) -> float:
    """How much an arch leans to width over depth: mean width rank minus mean depth rank (0..1)."""
    width = depth = 0.0
    for spec, stage in zip(space.stages, arch.stages, strict=True):
        width += _rank(stage.width, spec.widths)
        depth += _rank(stage.depth, spec.depths)
    return (width - depth) / len(space.stages)


def _rank(value: int, values: tuple) -> float:
    ordered = sorted(values)
    return ordered.index(value) / (len(ordered) - 1) if len(ordered) > 1 else 0.0


# --------------------------------------------------------------------- complexity-aware


class ComplexityAwareSampler(Sampler):
    """CAS: the level moves by at most one per step; optional PAS banks per level."""

    name = "cas"

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        levels: Levels,
        complexity: Complexity,
        subnets: int = 2,
        best_of: int = 1,
        pas: PasSettings | None = None,
    ):
        super().__init__(space, seed, subnets, best_of)
        self.levels, self.complexity, self.pas = levels, complexity, pas
        self.level: int | None = None
        self.banks = [Bank(pas.bank_size) for _ in range(levels.count)] if pas else []
        if pas:
            self.name = "cas+pas"

    def move(self) -> int:
        """The next target level: -1, 0 or +1 from the last (inward or still at the edges)."""
        if self.level is None:
            self.level = self.rng.randrange(self.levels.count)
        else:
            steps = [d for d in (-1, 0, 1) if 0 <= self.level + d < self.levels.count]
            self.level += self.rng.choice(steps)
        return self.level

    def sample(self, step: int, total_steps: int, score: ScoreFn = _no_score) -> list[Arch]:
        level = self.move()
        if self.pas:
            self._refresh(level, step, score)
        picks = [self._pick(level, step, total_steps, score) for _ in range(self.subnets - 1)]
        first = [self.levels.smallest(level)] if self.subnets > 1 else []
        return first + (picks or [self._pick(level, step, total_steps, score)])

    def _candidates(self, level: int, k: int) -> list[Arch]:
        pool = self.levels.pools[level]
        return self.rng.sample(pool, min(k, len(pool)))

    def _pick(self, level: int, step: int, total_steps: int, score: ScoreFn) -> Arch:
        if not self.pas:
            return self._best(self._candidates(level, self.best_of), score)
        bank = self.banks[level]
        exploit = self.rng.random() < self.pas.exploit_probability(step, total_steps)
        if exploit and len(bank):
            return bank.choose(self.rng)
        if self.best_of > 1:
            return self._best(self._candidates(level, self.best_of), score)
        candidates = self._candidates(level, self.pas.explore_candidates)
        return max(candidates, key=lambda a: width_preference(self.space, a))

    def _refresh(self, level: int, step: int, score: ScoreFn) -> None:
        bank = self.banks[level]
        if len(bank) and step - bank.scored_at >= self.pas.rescore_every:
            bank.evict(lambda a: self.levels.level_of(self.complexity(a)) == level)
            bank.rescore(score, step)

    def observe(self, archs: Sequence[Arch], scores: Sequence[float]) -> None:
        if not self.pas:
            return
        for arch, value in zip(archs, scores, strict=True):
            level = self.levels.level_of(self.complexity(arch))
            if level is not None:
                self.banks[level].offer(arch, float(value))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["level"] = -1 if self.level is None else self.level
        state["banks"] = [bank.state_dict() for bank in self.banks]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.level = None if state["level"] < 0 else int(state["level"])
        if len(state["banks"]) != len(self.banks):
            raise ValueError("sampler state has banks for a different number of levels")
        for bank, saved in zip(self.banks, state["banks"], strict=True):
            bank.load_state_dict(saved)


# --------------------------------------------------------------------- factory


def make_sampler(
    name: str,
    space: SearchSpace,
    seed: int,
    *,
    subnets: int = 2,
    best_of: int = 1,
    levels: Levels | None = None,
    complexity: Complexity | None = None,
    pas: PasSettings | None = None,
    arch: Arch | None = None,
) -> Sampler:
    """The sampler called ``name`` (see the module docstring)."""
    if name == "uniform":
        return UniformSampler(space, seed, subnets, best_of)
    if name == "sandwich":
        return SandwichSampler(space, seed, subnets, best_of)
    if name == "fixed":
        if arch is None:
            raise ValueError("the fixed sampler needs an arch")
        return FixedSampler(space, arch, seed)
    if name in ("cas", "cas+pas"):
        if levels is None or complexity is None:
            raise ValueError(f"the {name} sampler needs levels and a complexity function")
        settings = (pas or PasSettings()) if name == "cas+pas" else None
        return ComplexityAwareSampler(space, seed, levels, complexity, subnets, best_of, settings)
    raise ValueError(f"unknown sampler {name!r}")


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng_unstate(state: Sequence) -> tuple:
    version, internal, gauss = state
    return (int(version), tuple(int(x) for x in internal), gauss)
