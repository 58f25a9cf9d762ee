"""Sample efficiency of the search algorithms on a problem with a known optimum.

The problem: maximise the ``capacity`` proxy of :mod:`nas.search.proxies` (a documented, cheap
stand-in for accuracy) over ``elasticvit`` under a latency budget on the Pixel 4 (the imported
published table), at the 10%, 25% and 50% latency quantiles of random archs. The optimum under
each budget was found exactly by ``search_efficiency_optimum.py`` and is stored beside this
script (``search_efficiency_optimum.json``).

For every algorithm of ``nas search`` (the default marked ``*``), and two baselines written here
-- uniform random sampling of feasible archs and regularized (aging) evolution (Real et al.,
2019) -- each seed runs one search per evaluation budget (20, 50, 200 and 500 by default, each
with the settings that budget gets) through :func:`nas.search.run_search`, which counts as an
evaluation only a new arch meeting the budget. The table gives, as medians over seeds:

* regret: optimum minus the best proxy value found;
* top %: the share of 20,000 uniformly random feasible archs at least as good as the best found;
* proposals per evaluation, and wall seconds, of the largest budget.

Then the Optuna samplers are timed with the study in memory, in the journal file the search
uses (``study.journal``) and in SQLite, on the same search, as ratios to the in-memory time.

    nice -n 10 python benchmarks/search_efficiency.py --profile PIXEL4.json
        [--seeds 10] [--evaluations 20 50 200 500] [--algorithms ...] [--out DIR]

(``PIXEL4.json``: ``nas device import-table pixel4
../shared/data/pixel4_elasticvit/pixel4_lut.json --out PIXEL4.json``.) Each finished search is
appended to ``DIR/cells.jsonl`` (default ``runs/search_efficiency``): a killed run resumes.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import search_spaces
from nas.arch import Arch
from nas.search import (
    ALGORITHMS,
    Constraint,
    Evaluation,
    Objective,
    Problem,
    default_algorithm,
    make_searcher,
    run_search,
)
from nas.search.proxies import proxy_objective
from nas.search.searchers import sample_feasible

OPTIMUM = Path(__file__).with_name("search_efficiency_optimum.json")
REFERENCE_ARCHS = 20_000
BASELINES = ("random-feasible", "regularized-evolution")


# --------------------------------------------------------------------- baselines


class RandomFeasible:
    """Baseline: distinct archs drawn uniformly, kept when under the budget."""

    name = "random-feasible"

    def __init__(self, problem: Problem, seed: int):
        self.problem, self.seed, self.rng = problem, seed, random.Random(seed)
        self.seen: set[Arch] = set()

    def ask(self, n: int) -> list[Arch]:
        out = []
        while len(out) < n:
            arch = self.problem.space.sample(self.rng)
            if arch not in self.seen and self.problem.feasible([arch])[0]:
                self.seen.add(arch)
                out.append(arch)
        return out

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        pass


class RegularizedEvolution:
    """Baseline: aging evolution. A population of ``population`` feasible random archs; then
    each child mutates one decision of the best of ``sample`` random members (redrawn until it
    is feasible and new) and replaces the oldest member."""

    name = "regularized-evolution"

    def __init__(self, problem: Problem, seed: int, evaluations: int):
        self.problem, self.seed, self.rng = problem, seed, random.Random(seed)
        self.population_size = min(50, max(10, evaluations // 5))
        self.sample = max(2, self.population_size // 4)
        self.population: list[tuple[Arch, float]] = []
        self.seen: set[Arch] = set()

    def ask(self, n: int) -> list[Arch]:
        if len(self.population) < self.population_size:
            wanted = min(n, self.population_size - len(self.population))
            archs = sample_feasible(self.problem, self.rng, wanted, exclude=self.seen)
        else:
            archs = [self._child() for _ in range(min(n, self.population_size // 2))]
        self.seen.update(archs)
        return archs

    def _child(self) -> Arch:
        space = self.problem.space
        parent = max(self.rng.sample(self.population, self.sample), key=lambda p: p[1])[0]
        for _ in range(1000):
            slots = space.decisions(parent, self.rng)
            k = self.rng.randrange(len(slots))
            slots[k] = self.rng.choice(space.dimensions[k].values)
            child = space.assemble(slots)
            if child not in self.seen and self.problem.feasible([child])[0]:
                return child
        return sample_feasible(self.problem, self.rng, 1, exclude=self.seen)[0]

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        for e in evaluations:
            if e.feasible and "proxy_capacity" in e.objectives:
                self.population.append((e.arch, e.objectives["proxy_capacity"]))
                if len(self.population) > self.population_size:
                    self.population.pop(0)


def make(algorithm: str, problem: Problem, seed: int, evaluations: int, storage="journal"):
    if algorithm == "random-feasible":
        return RandomFeasible(problem, seed)
    if algorithm == "regularized-evolution":
        return RegularizedEvolution(problem, seed, evaluations)
    return make_searcher(algorithm, problem, seed, evaluations, storage=storage)


# --------------------------------------------------------------------- the problem


def make_problem(space, predictor, budget: float) -> Problem:
    latency = Constraint(
        "latency_ms", predictor.predict, budget, "ms", on_indices=predictor.predict_index
    )
    return Problem(
        space,
        [
            proxy_objective("capacity", space),
            Objective("latency_ms", predictor.predict, maximize=False, unit="ms"),
        ],
        [latency],
    )


def reference_scores(space, predictor, budget: float, folder: Path) -> np.ndarray:
    """Proxy values of ``REFERENCE_ARCHS`` uniformly random feasible archs (cached)."""
    path = folder / f"reference_{budget:g}ms.npy"
    if path.is_file():
        return np.load(path)
    problem = make_problem(space, predictor, budget)
    archs = sample_feasible(problem, random.Random(12345), REFERENCE_ARCHS, max_draws=10**7)
    scores = np.sort(problem.objectives[0].evaluate(archs))
    np.save(path, scores)
    return scores


def run_cell(space, predictor, budget, algorithm, seed, evaluations, storage="journal") -> dict:
    problem = make_problem(space, predictor, budget)
    searcher = make(algorithm, problem, seed, evaluations, storage)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        found = run_search(problem, searcher, evaluations, folder, progress=False)
        seconds = time.perf_counter() - start
        counts = json.loads((Path(folder) / "progress.json").read_text())
    best = max(e.objectives["proxy_capacity"] for e in found if e.feasible)
    assert all(e.feasible for e in found) and len({e.arch for e in found}) == len(found)
    return {
        "budget": budget,
        "algorithm": algorithm,
        "seed": seed,
        "evaluations": evaluations,
        "best": float(best),
        "seconds": seconds,
        "counts": counts,
        "resolved": searcher.name,
    }


# --------------------------------------------------------------------- report


def _median(values) -> float:
    return float(statistics.median(values)) if values else float("nan")


def print_table(cells: list[dict], optimum: dict, references: dict, sizes, algorithms) -> None:
    for budget, opt in optimum.items():
        print(f"\nbudget {budget:g} ms: optimum {opt:.4f}; median over seeds")
        header = ["algorithm"]
        header += [f"regret@{n}" for n in sizes] + [f"top%@{n}" for n in sizes]
        header += [f"prop/eval@{sizes[-1]}", f"s@{sizes[-1]}"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for algorithm in algorithms:
            mine = [c for c in cells if c["budget"] == budget and c["algorithm"] == algorithm]
            if not mine:
                continue
            row = [algorithm]
            ref = references[budget]
            regrets, tops = [], []
            for n in sizes:
                best = [c["best"] for c in mine if c["evaluations"] == n]
                regrets.append(f"{_median([opt - b for b in best]):.4f}")
                share = [
                    100 * (len(ref) - np.searchsorted(ref, b, "left")) / len(ref) for b in best
                ]
                tops.append(f"{_median(share):.3f}")
            last = [c for c in mine if c["evaluations"] == sizes[-1]]
            ratio = [c["counts"]["proposals"] / max(c["counts"]["evaluations"], 1) for c in last]
            row += regrets + tops
            row += [f"{_median(ratio):.2f}", f"{_median([c['seconds'] for c in last]):.1f}"]
            print("| " + " | ".join(row) + " |")


def storage_timing(space, predictor, budget: float, evaluations: int) -> None:
    print(f"\nOptuna study storage, one search of {evaluations} evaluations at {budget:g} ms:")
    print("| sampler | memory s | journal s | sqlite s | journal/memory | sqlite/memory |")
    print("|---|---|---|---|---|---|")
    for algorithm in ("nsga2", "tpe"):
        seconds, bests = {}, {}
        for storage in ("memory", "journal", "sqlite"):
            cell = run_cell(space, predictor, budget, algorithm, 0, evaluations, storage)
            seconds[storage], bests[storage] = cell["seconds"], cell["best"]
        same = "same result" if len(set(bests.values())) == 1 else "RESULTS DIFFER"
        m = seconds["memory"]
        print(
            f"| {algorithm} | {m:.1f} | {seconds['journal']:.1f} | {seconds['sqlite']:.1f} | "
            f"{seconds['journal'] / m:.2f} | {seconds['sqlite'] / m:.2f} |  ({same})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, help="Pixel 4 device profile (JSON)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--evaluations", type=int, nargs="+", default=[20, 50, 200, 500])
    choices = [*ALGORITHMS, *BASELINES]
    parser.add_argument("--algorithms", nargs="+", default=choices, choices=choices)
    parser.add_argument("--out", type=Path, default=Path("runs/search_efficiency"))
    parser.add_argument("--no-storage", action="store_true", help="skip the storage timing")
    args = parser.parse_args()
    from predictors.latency import LatencyPredictor

    space = search_spaces.get("elasticvit")
    predictor = LatencyPredictor.load(args.profile, space)
    stored = json.loads(OPTIMUM.read_text())
    optimum = {}
    for entry in stored["budgets"]:
        arch = space.validate(Arch.from_dict(entry["arch"]))
        value = float(proxy_objective("capacity", space).evaluate([arch])[0])
        latency = float(predictor.predict([arch])[0])
        if abs(value - entry["optimum"]) > 1e-9 or latency > entry["budget_ms"]:
            raise SystemExit(f"{OPTIMUM} does not match this profile or proxy: rerun the finder")
        optimum[entry["budget_ms"]] = value
    args.out.mkdir(parents=True, exist_ok=True)
    references = {b: reference_scores(space, predictor, b, args.out) for b in optimum}
    cells_path = args.out / "cells.jsonl"
    cells = (
        [json.loads(line) for line in cells_path.read_text().splitlines()]
        if cells_path.is_file()
        else []
    )
    done = {(c["budget"], c["algorithm"], c["seed"], c["evaluations"]) for c in cells}
    todo = [
        (b, a, s, n)
        for b in optimum
        for a in args.algorithms
        for s in range(args.seeds)
        for n in args.evaluations
        if (b, a, s, n) not in done
    ]
    start = time.perf_counter()
    with cells_path.open("a") as f:
        for b, a, s, n in tqdm(todo, desc="searches", unit="search"):
            cell = run_cell(space, predictor, b, a, s, n)
            if cell["best"] > optimum[b] + 1e-9:
                raise SystemExit(f"{a} found {cell['best']} > the stored optimum {optimum[b]}")
            cells.append(cell)
            f.write(json.dumps(cell) + "\n")
            f.flush()
    default = default_algorithm(make_problem(space, predictor, 30.0))
    names = [f"{a}*" if a == default else a for a in args.algorithms]
    for cell in cells:
        if cell["algorithm"] == default:
            cell["algorithm"] += "*"
    print(
        f"elasticvit, capacity proxy, {args.profile}; * = the default of `nas search`; "
        f"{len(todo)} searches run now in {time.perf_counter() - start:.0f} s"
    )
    print_table(cells, optimum, references, args.evaluations, names)
    if not args.no_storage:
        storage_timing(space, predictor, list(optimum)[1], args.evaluations[-1])


if __name__ == "__main__":
    main()
