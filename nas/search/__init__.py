"""Search algorithms over any search space, driven by objective callables (no torch here)."""

from nas.search.driver import DEFAULT_BATCH_SIZE, SearchCounts, run_search
from nas.search.problem import Constraint, Evaluation, InfeasibleBudgetError, Objective, Problem
from nas.search.searchers import Evolution, EvolutionSettings, RandomSearch, Searcher

ALGORITHMS = ("guided", "evolution", "nsga2", "tpe", "generative", "random")
AUTO = "auto"


def default_algorithm(problem: Problem) -> str:
    """What ``nas search`` runs without ``--algorithm`` (:data:`AUTO`): ``guided`` when every
    constraint can screen candidates cheaply (:attr:`Constraint.on_indices`, as latency
    predictors can), else ``evolution``; either with settings for the evaluation budget."""
    if all(c.on_indices is not None for c in problem.constraints):
        return "guided"
    return "evolution"


def make_searcher(
    algorithm: str,
    problem: Problem,
    seed: int = 0,
    evaluations: int | None = None,
    study_name: str = "search",
    storage: str = "journal",
) -> Searcher:
    """A searcher by name (``auto``: :func:`default_algorithm`), with settings for a budget of
    ``evaluations`` (None: the algorithm's defaults). Optuna studies are named ``study_name``
    and kept, once the driver gives them the search folder, as ``storage``: ``journal``
    (``study.journal``), ``sqlite`` (``study.db``) or ``memory``."""
    if algorithm == AUTO:
        algorithm = default_algorithm(problem)
    if algorithm == "random":
        return RandomSearch(problem, seed)
    if algorithm == "evolution":
        return Evolution(problem, seed, EvolutionSettings.for_budget(evaluations))
    if algorithm == "guided":
        from nas.search.guided import GuidedSearch, GuidedSettings

        return GuidedSearch(problem, seed, GuidedSettings.for_budget(evaluations))
    if algorithm in ("nsga2", "tpe"):
        from nas.search.optuna_search import OptunaSearch

        return OptunaSearch(problem, algorithm, seed, study_name, storage, evaluations)
    if algorithm == "generative":
        from nas.search.generative import GenerativeSearch

        return GenerativeSearch(problem, seed)
    raise ValueError(f"unknown algorithm {algorithm!r}; choices: {', '.join(ALGORITHMS)}")


__all__ = [
    "ALGORITHMS",
    "AUTO",
    "DEFAULT_BATCH_SIZE",
    "SearchCounts",
    "default_algorithm",
    "Constraint",
    "Evaluation",
    "Evolution",
    "EvolutionSettings",
    "InfeasibleBudgetError",
    "Objective",
    "Problem",
    "RandomSearch",
    "Searcher",
    "make_searcher",
    "run_search",
]
