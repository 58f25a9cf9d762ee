"""The search loop: ask, check constraints, evaluate new feasible archs, record, tell; resumable.

An *evaluation* is the computation of a new arch's objectives (for a supernet: BN recalibration
and a validation pass), the cost a search budget counts. Every arch a searcher proposes is first
checked against the constraints (predicted, so free): an arch over a budget (*infeasible*) or one
already evaluated (*repeat*) is told back to the searcher at once, without an evaluation, and does
not count toward ``evaluations``. ``progress.json`` keeps the counts.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from nas.arch import Arch
from nas.errors import InputError
from nas.runs import make_folder, write_atomic
from nas.search.history import History
from nas.search.problem import Evaluation, Problem
from nas.search.searchers import Searcher
from nas.textfiles import read_json_object

SEARCH_STATE = "search.json"
PROGRESS = "progress.json"

#: Archs evaluated together per search step (``nas search --batch-size``).
DEFAULT_BATCH_SIZE = 20

#: A step gives up when this many proposals in a row bring no new feasible arch (per arch wanted).
MAX_REJECTED_PER_ARCH = 200


@dataclass
class SearchCounts:
    """What a search has done: proposals = evaluations + infeasible + repeats (+ in flight)."""

    proposals: int = 0
    infeasible: int = 0
    repeats: int = 0
    evaluations: int = 0

    def to_dict(self) -> dict:
        out = asdict(self)
        share = (self.proposals - self.infeasible) / self.proposals if self.proposals else None
        out["feasible_share"] = share
        return out

    @classmethod
    def load(cls, folder: Path, evaluated: int) -> SearchCounts:
        """The stored counts, with evaluations the history holds beyond them (a kill between
        writing the history and the counts) counted as proposals too."""
        path = folder / PROGRESS
        counts = cls(evaluations=evaluated, proposals=evaluated)
        if path.is_file():
            stored = read_json_object(path, "the counts of a search (progress.json)")
            try:
                counts = cls(**{k: int(stored[k]) for k in asdict(cls())})
            except (ValueError, KeyError, TypeError):
                raise InputError(
                    f"{path} is not a search progress file (proposals, infeasible, repeats, "
                    "evaluations): delete it to count from the history"
                ) from None
            counts.proposals += max(evaluated - counts.evaluations, 0)
            counts.evaluations = evaluated
        return counts

    def save(self, folder: Path) -> None:
        write_atomic(folder / PROGRESS, json.dumps(self.to_dict(), indent=2) + "\n")


def run_search(
    problem: Problem,
    searcher: Searcher,
    evaluations: int,
    folder: str | Path,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> list[Evaluation]:
    """Evaluate up to ``evaluations`` new feasible archs proposed by ``searcher``; return every
    evaluation (those of an earlier run of the same search included).

    Nothing is written before the search is accepted (budgets feasible, ``folder`` free or
    holding this same search). Then ``folder`` gets ``search.json`` (what the search is),
    ``history.jsonl`` (one line per evaluation), ``progress.json`` (:class:`SearchCounts`) and the
    searcher's state; running the same search again continues from there.
    """
    folder = Path(folder)
    problem.check_budgets()
    identity = search_identity(problem, searcher)
    check_same_search(folder, identity)
    make_folder(folder)
    if not (folder / SEARCH_STATE).is_file():
        write_atomic(folder / SEARCH_STATE, json.dumps(identity, indent=2) + "\n")
    history = History(folder / "history.jsonl", problem.space)
    done = history.load()
    counts = SearchCounts.load(folder, len(done))
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
        archs, repeats = _propose(
            problem, searcher, min(batch_size, evaluations - len(done)), counts
        )
        if not archs:
            break
        batch = problem.evaluate(archs)
        history.append(batch, len(done))
        searcher.tell(batch + problem.evaluate(repeats))
        if hasattr(searcher, "save_state"):
            searcher.save_state(folder)
        done.extend(batch)
        counts.evaluations = len(done)
        counts.save(folder)
        bar.update(len(batch))
        best = _best_feasible(problem, done)
        if best is not None:
            bar.set_postfix({problem.primary.name: f"{best.objectives[problem.primary.name]:.4g}"})
    bar.close()
    if hasattr(searcher, "save_state"):  # proposals rejected after the last step's save
        searcher.save_state(folder)
    counts.save(folder)
    return done


def _propose(
    problem: Problem, searcher: Searcher, wanted: int, counts: SearchCounts
) -> tuple[list[Arch], list[Arch]]:
    """Up to ``wanted`` new feasible archs from ``searcher``, and the archs it proposed twice in
    them (to be told along). Infeasible archs and archs evaluated before are told back at once."""
    chosen: dict[Arch, None] = {}
    again: list[Arch] = []
    rejected_in_a_row = 0
    while len(chosen) < wanted:
        asked = wanted - len(chosen)
        archs = searcher.ask(asked)
        if not archs:
            break
        feasible = problem.feasible(archs)
        told: list[Evaluation] = []
        for arch, ok in zip(archs, feasible, strict=True):
            counts.proposals += 1
            if problem.evaluated(arch):
                counts.repeats += 1
                told.extend(problem.evaluate([arch]))
            elif not ok:
                counts.infeasible += 1
                told.append(problem.rejected(arch))
            elif arch in chosen:
                counts.repeats += 1
                again.append(arch)
            else:
                chosen[arch] = None
        if told:
            searcher.tell(told)
        new = len(chosen) - (wanted - asked)
        if new == len(archs) and len(archs) < asked:
            break  # all the searcher has for this step
        rejected_in_a_row = 0 if new else rejected_in_a_row + len(archs)
        if rejected_in_a_row >= MAX_REJECTED_PER_ARCH * wanted:
            warnings.warn(
                f"{searcher.name}: {rejected_in_a_row} proposals in a row were over a budget or "
                "evaluated before; stopping this search early",
                stacklevel=2,
            )
            break
    return list(chosen), again


def _best_feasible(problem: Problem, evaluations: list[Evaluation]) -> Evaluation | None:
    feasible = [e for e in evaluations if e.feasible]
    if not feasible:
        return None
    sign = 1 if problem.primary.maximize else -1
    return max(feasible, key=lambda e: sign * e.objectives[problem.primary.name])


def search_identity(problem: Problem, searcher: Searcher) -> dict:
    """What makes two searches the same search (``search.json``)."""
    return {
        "format": "nas-search",
        "version": 1,
        "space": problem.space.name,
        "algorithm": searcher.name,
        "seed": getattr(searcher, "seed", None),
        "objectives": [o.name for o in problem.objectives],
        "constraints": {c.name: c.limit for c in problem.constraints},
    }


def stored_identity(folder: Path) -> dict | None:
    """The ``search.json`` of ``folder``, or None when there is none."""
    path = Path(folder) / SEARCH_STATE
    if not path.is_file():
        return None
    stored = read_json_object(path, "the record of a search (search.json)")
    if stored.get("format") != "nas-search":
        raise InputError(f"{path} is not the record of a search (format nas-search)")
    return stored


def check_same_search(folder: Path, identity: dict) -> None:
    """Refuse to mix two different searches in one folder."""
    stored = stored_identity(folder)
    if stored is None:
        return
    differ = [k for k in identity if k in stored and stored[k] != identity[k]]  # older: no seed
    if differ:
        differences = ", ".join(f"{k} {stored[k]!r} (now {identity[k]!r})" for k in differ)
        raise InputError(
            f"{folder} holds another search ({differences}); "
            "use another --name, or the same settings to resume"
        )
