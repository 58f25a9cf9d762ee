"""Optuna's NSGA-II and TPE samplers driving the search.

The study is named after the search, its metrics after the objectives, and it lives in the search
folder as Optuna's journal file ``study.journal``, kept in memory and appended once per search
step (:class:`~nas.search.journal.StepJournal`: at in-memory speed; ``optuna-dashboard
RUN/search/NAME/study.journal`` opens it), so a killed search resumes where it stopped.

Every proposal becomes a trial. Constraint values (``value - limit``, feasible when <= 0) are
stored where Optuna's samplers and optuna-dashboard read them, the trial system attribute
``constraints`` (a list in the order of ``user_attrs["constraint_names"]`` of the study), and
each constraint's own value is a user attribute. An evaluated arch is a COMPLETE trial; an arch
over a budget is a PRUNED trial with its constraints and no objective values (its accuracy is
never computed): TPE counts it among the infeasible trials it learns to avoid, NSGA-II keeps it
out of its populations, and ``Study.best_trials`` holds only feasible, evaluated archs.
The first trials are feasible random archs (enqueued), so the samplers start from the budget's
side of the space.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from pathlib import Path

import optuna

from nas.arch import Arch
from nas.search.journal import StepJournal
from nas.search.problem import Evaluation, Problem
from nas.search.searchers import sample_feasible

ALGORITHMS = ("nsga2", "tpe")
STORAGES = ("journal", "sqlite", "memory")
STUDY_FILE = {"journal": "study.journal", "sqlite": "study.db"}
CONSTRAINTS_KEY = "constraints"  # what Optuna's constraints_func stores and the dashboard reads


def startup_trials(algorithm: str, evaluations: int | None) -> int:
    """Feasible random archs the study starts from: NSGA-II's first population (a fifth of the
    evaluation budget, 10 to 50), TPE's start-up trials (a tenth, 5 to 20)."""
    budget = evaluations or 1000
    if algorithm == "nsga2":
        return min(50, max(10, budget // 5))
    return min(20, max(5, budget // 10))


class OptunaSearch:
    """Multi-objective search over all objectives with the problem's constraints."""

    def __init__(
        self,
        problem: Problem,
        algorithm: str,
        seed: int = 0,
        study_name: str = "search",
        storage: str = "journal",
        evaluations: int | None = None,
    ):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown Optuna algorithm {algorithm!r}; choices: {ALGORITHMS}")
        if storage not in STORAGES:
            raise ValueError(f"unknown study storage {storage!r}; choices: {STORAGES}")
        self.name, self.problem, self.seed = algorithm, problem, seed
        self.study_name, self.storage = study_name, storage
        self.startup = startup_trials(algorithm, evaluations)
        self.distributions = {
            d.name: optuna.distributions.CategoricalDistribution(d.values)
            for d in problem.space.dimensions
        }
        self.pending: dict[Arch, list[optuna.Trial]] = {}
        self._study: optuna.Study | None = None
        self._known: set[Arch] | None = None
        self._journal: StepJournal | None = None

    # ----------------------------------------------------------------- the study

    def _sampler(self) -> optuna.samplers.BaseSampler:
        # constraints_func writes the trial attribute optuna-dashboard reads for feasibility;
        # Optuna 5 suggests Trial.set_constraint instead, whose keys the dashboard does not read
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return self._new_sampler()

    def _new_sampler(self) -> optuna.samplers.BaseSampler:
        constraints = self._trial_constraints
        if self.name == "nsga2":
            return optuna.samplers.NSGAIISampler(
                population_size=self.startup, seed=self.seed, constraints_func=constraints
            )
        return optuna.samplers.TPESampler(
            seed=self.seed,
            n_startup_trials=self.startup,
            multivariate=True,
            constraints_func=constraints,
        )

    def _trial_constraints(self, trial: optuna.trial.FrozenTrial) -> list[float]:
        """Optuna's constraints function: ``value - limit`` per constraint (<= 0: feasible),
        from the constraint values the trial's user attributes hold."""
        return [trial.user_attrs[c.name] - c.limit for c in self.problem.constraints]

    def load_state(self, folder: Path | None) -> None:
        """Open (or create) the study in ``folder``; a new study is seeded with feasible archs."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = None
        if self.storage == "journal" and folder is not None:
            self._journal = StepJournal(str(Path(folder) / STUDY_FILE["journal"]))
            storage = optuna.storages.JournalStorage(self._journal)
        elif self.storage == "sqlite" and folder is not None:
            storage = f"sqlite:///{Path(folder) / STUDY_FILE['sqlite']}"
        self._study = optuna.create_study(
            study_name=self.study_name,
            storage=storage,
            sampler=self._sampler(),
            directions=["maximize" if o.maximize else "minimize" for o in self.problem.objectives],
            load_if_exists=True,
        )
        if not self._study.trials:
            with warnings.catch_warnings():  # experimental in Optuna, read by its dashboard
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self._study.set_metric_names([o.name for o in self.problem.objectives])
            names = [c.name for c in self.problem.constraints]
            self._study.set_user_attr("constraint_names", names)
            self._study.set_user_attr(
                "constraint_limits", {c.name: c.limit for c in self.problem.constraints}
            )
            rng = random.Random(self.seed)
            for arch in sample_feasible(self.problem, rng, self.startup):
                self._study.enqueue_trial(self._params(arch, rng))

    def save_state(self, folder: Path) -> None:
        """Write the study's new trials to its journal file (once per search step)."""
        if self._journal is not None:
            self._journal.flush()

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self.load_state(None)  # in memory
        return self._study

    def _params(self, arch: Arch, rng: random.Random) -> dict:
        decisions = self.problem.space.decisions(arch, rng)  # unused layers: random fills
        return dict(zip(self.distributions, decisions, strict=True))

    # ----------------------------------------------------------------- ask / tell

    def ask(self, n: int) -> list[Arch]:
        archs = []
        for _ in range(n):
            trial = self.study.ask(self.distributions)
            arch = self.problem.space.assemble([trial.params[d] for d in self.distributions])
            self.pending.setdefault(arch, []).append(trial)
            archs.append(arch)
        return archs

    def _constraints(self, e: Evaluation) -> list[float]:
        return [e.constraints[c.name] - c.limit for c in self.problem.constraints]

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        for e in evaluations:
            trials = self.pending.get(e.arch)
            if trials:
                self._tell_trial(trials.pop(), e)
            elif e.arch not in self._in_study():  # an evaluation the stored study lacks
                self._add_trial(e)

    def _tell_trial(self, trial: optuna.Trial, e: Evaluation) -> None:
        for name, value in e.constraints.items():  # the sampler's constraints_func reads them
            trial.set_user_attr(name, value)
        if e.feasible:
            self.study.tell(trial, [e.objectives[o.name] for o in self.problem.objectives])
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)

    def _add_trial(self, e: Evaluation) -> None:
        evaluated = all(o.name in e.objectives for o in self.problem.objectives)
        self.study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.COMPLETE
                if evaluated
                else optuna.trial.TrialState.PRUNED,
                params=self._params(e.arch, random.Random(0)),
                distributions=self.distributions,
                values=[e.objectives[o.name] for o in self.problem.objectives]
                if evaluated
                else None,
                user_attrs=dict(e.constraints),
                system_attrs={CONSTRAINTS_KEY: self._constraints(e)},
            )
        )
        self._in_study().add(e.arch)

    def _in_study(self) -> set[Arch]:
        if self._known is None:
            space = self.problem.space
            self._known = {
                space.assemble([t.params[d] for d in self.distributions])
                for t in self.study.get_trials(
                    deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
                )
            }
        return self._known
