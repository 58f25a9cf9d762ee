"""Optuna's NSGA-II and TPE samplers driving the search, with the study kept in SQLite.

The study lives in ``study.db`` in the run folder, so a killed search resumes where it stopped
and ``optuna-dashboard sqlite:///runs/X/study.db`` shows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import optuna

from nas.arch import Arch
from nas.search.problem import Evaluation, Problem

ALGORITHMS = ("nsga2", "tpe")


class OptunaSearch:
    """Multi-objective search over all objectives; constraints as ``value - limit <= 0``
    (Optuna's constrained domination in NSGA-II, constrained TPE)."""

    def __init__(
        self,
        problem: Problem,
        algorithm: str,
        storage: str | Path | None = None,
        seed: int = 0,
        study_name: str = "search",
        population: int = 50,
    ):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown Optuna algorithm {algorithm!r}; choices: {ALGORITHMS}")
        self.name, self.problem = algorithm, problem
        if algorithm == "nsga2":
            sampler = optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
        else:
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=20, multivariate=True)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(
            study_name=study_name,
            storage=f"sqlite:///{storage}" if storage else None,
            sampler=sampler,
            directions=["maximize" if o.maximize else "minimize" for o in problem.objectives],
            load_if_exists=True,
        )
        self.distributions = {
            d.name: optuna.distributions.CategoricalDistribution(d.values)
            for d in problem.space.dimensions
        }
        self.pending: dict[Arch, list[optuna.Trial]] = {}

    def ask(self, n: int) -> list[Arch]:
        archs = []
        for _ in range(n):
            trial = self.study.ask(self.distributions)
            arch = self.problem.space.assemble([trial.params[d] for d in self.distributions])
            self.pending.setdefault(arch, []).append(trial)
            archs.append(arch)
        return archs

    def _values(self, e: Evaluation) -> tuple[list[float], dict[str, float]]:
        values = [e.objectives[o.name] for o in self.problem.objectives]
        slack = {c.name: e.constraints[c.name] - c.limit for c in self.problem.constraints}
        return values, slack

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        for e in evaluations:
            values, slack = self._values(e)
            trials = self.pending.get(e.arch)
            if trials:
                trial = trials.pop()
                for name, value in slack.items():
                    trial.set_constraint(name, value)
                self.study.tell(trial, values)
            elif not self._in_study(e.arch):  # an evaluation the stored study lacks
                params = dict(
                    zip(self.distributions, self.problem.space.decisions(e.arch), strict=True)
                )
                params = {
                    k: v if v is not None else self.distributions[k].choices[0]
                    for k, v in params.items()
                }
                self.study.add_trial(
                    optuna.trial.create_trial(
                        params=params,
                        distributions=self.distributions,
                        values=values,
                        constraints=slack,
                    )
                )

    def _in_study(self, arch: Arch) -> bool:
        if not hasattr(self, "_known"):
            space = self.problem.space
            self._known = {
                space.assemble([t.params[d] for d in self.distributions])
                for t in self.study.get_trials(
                    deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
                )
            }
        return arch in self._known
