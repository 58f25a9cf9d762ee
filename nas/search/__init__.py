"""Search algorithms over any search space, driven by objective callables (no torch here)."""

from nas.search.driver import run_search
from nas.search.problem import Constraint, Evaluation, InfeasibleBudgetError, Objective, Problem
from nas.search.searchers import Evolution, EvolutionSettings, RandomSearch, Searcher

ALGORITHMS = ("random", "evolution", "nsga2", "tpe", "generative")


def make_searcher(algorithm: str, problem: Problem, seed: int = 0, folder=None) -> Searcher:
    """A searcher by name; Optuna studies are stored in ``folder/study.db``."""
    if algorithm == "random":
        return RandomSearch(problem, seed)
    if algorithm == "evolution":
        return Evolution(problem, seed)
    if algorithm in ("nsga2", "tpe"):
        from nas.search.optuna_search import OptunaSearch

        storage = None if folder is None else f"{folder}/study.db"
        return OptunaSearch(problem, algorithm, storage, seed)
    if algorithm == "generative":
        from nas.search.generative import GenerativeSearch

        return GenerativeSearch(problem, seed)
    raise ValueError(f"unknown algorithm {algorithm!r}; choices: {', '.join(ALGORITHMS)}")


__all__ = [
    "ALGORITHMS",
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
