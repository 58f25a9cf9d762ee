"""The search loop: ask, evaluate, record, tell; resumable from the run folder."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm.auto import tqdm

from nas.runs import make_folder, write_atomic
from nas.search.history import History
from nas.search.problem import Evaluation, Problem
from nas.search.searchers import Searcher
from nas.textfiles import read_json_object

SEARCH_STATE = "search.json"


def run_search(
    problem: Problem,
    searcher: Searcher,
    evaluations: int,
    folder: str | Path,
    batch_size: int = 50,
    progress: bool = True,
    seed: int | None = None,
) -> list[Evaluation]:
    """Evaluate up to ``evaluations`` archs proposed by ``searcher``; return every evaluation.

    Everything is written under ``folder`` (``history.jsonl``, searcher state); running the same
    search again (with the same ``seed``, which the folder records) continues from what is there.
    """
    folder = Path(folder)
    make_folder(folder)
    _check_same_search(folder, problem, searcher, seed)
    problem.check_budgets()
    history = History(folder / "history.jsonl", problem.space)
    done = history.load()
    for e in done:
        problem.remember(e)
    if hasattr(searcher, "load_state"):
        searcher.load_state(folder)
    if done:
        searcher.tell(done)
    bar = tqdm(
        total=evaluations,
        initial=min(len(done), evaluations),
        disable=not progress,
        desc=f"{searcher.name} search",
        unit="arch",
    )
    while len(done) < evaluations:
        archs = searcher.ask(min(batch_size, evaluations - len(done)))
        if not archs:
            break  # the searcher has nothing left to propose
        batch = problem.evaluate(archs)
        history.append(batch, len(done))
        searcher.tell(batch)
        if hasattr(searcher, "save_state"):
            searcher.save_state(folder)
        done.extend(batch)
        bar.update(len(batch))
        best = _best_feasible(problem, done)
        if best is not None:
            bar.set_postfix({problem.primary.name: f"{best.objectives[problem.primary.name]:.4g}"})
    bar.close()
    return done


def _best_feasible(problem: Problem, evaluations: list[Evaluation]) -> Evaluation | None:
    feasible = [e for e in evaluations if e.feasible]
    if not feasible:
        return None
    sign = 1 if problem.primary.maximize else -1
    return max(feasible, key=lambda e: sign * e.objectives[problem.primary.name])


def _check_same_search(
    folder: Path, problem: Problem, searcher: Searcher, seed: int | None = None
) -> None:
    """Refuse to mix two different searches (or two seeds) in one folder."""
    identity = {
        "format": "nas-search",
        "version": 1,
        "space": problem.space.name,
        "algorithm": searcher.name,
        "objectives": [o.name for o in problem.objectives],
        "constraints": {c.name: c.limit for c in problem.constraints},
    }
    if seed is not None:
        identity["seed"] = seed
    path = folder / SEARCH_STATE
    if path.is_file():
        stored = read_json_object(path, "the record of a search (search.json)")
        older = {k: v for k, v in identity.items() if k != "seed"}  # written before seeds
        if stored != identity and stored != older:
            from nas.errors import InputError

            raise InputError(
                f"{folder} holds another search ({stored.get('algorithm')} on "
                f"{stored.get('space')}, constraints {stored.get('constraints')}, seed "
                f"{stored.get('seed', 'unrecorded')}); use a new folder (--name) or the same "
                "settings to resume"
            )
    else:
        write_atomic(path, json.dumps(identity, indent=2) + "\n")
