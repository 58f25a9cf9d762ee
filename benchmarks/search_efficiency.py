"""Sample efficiency of the search algorithms on a problem with a known optimum.

The problem: maximise the ``capacity`` proxy of :mod:`nas.search.proxies` (a documented, cheap
stand-in for accuracy) over ``elasticvit`` under a latency budget on the Pixel 4 (the imported
published table), at the 10%, 25% and 50% latency quantiles of random archs. The optimum under
each budget was found exactly by ``search_efficiency_optimum.py`` and is stored beside this
script (``search_efficiency_optimum.json``).

For every algorithm of ``nas search`` (the default marked ``*``), and two baselines written here
-- uniform random sampling of feasible archs and regularized (aging) evolution (Real et al.,
2019) -- each seed runs one search per search size (``--sizes``, 50 and 500 by default, each
with the settings of that evaluation budget) through :func:`nas.search.run_search`, which counts
as an evaluation only a new arch meeting the budget. The best value found so far is recorded at
each checkpoint (``--evaluations``, 20, 50, 200 and 500 by default), read from the smallest
search that reaches it. The table gives, as medians over seeds (their number in brackets):

* regret: optimum minus the best proxy value found within the checkpoint's evaluations;
* top %: the share of 20,000 uniformly random feasible archs at least as good as the best found;
* proposals per evaluation, wall and CPU seconds of the largest search.

Then the Optuna samplers are timed with the study in memory, in the journal file the search
uses (``study.journal``) and in SQLite, on the same search, as ratios to the in-memory time.

    nice -n 10 python benchmarks/search_efficiency.py --profile PIXEL4.json
        [--seeds 10] [--evaluations 20 50 200 500] [--sizes 50 500] [--algorithms ...]
        [--out DIR] [--no-storage] [--report-only]

(``PIXEL4.json``: ``nas device import-table pixel4
../shared/data/pixel4_elasticvit/pixel4_lut.json --out PIXEL4.json``.) Each finished search is
appended to ``DIR/cells.jsonl`` (default ``runs/search_efficiency``): a killed run resumes, and
runs of other algorithms or more seeds add to the same table. On a shared machine run it with
one BLAS thread (``OMP_NUM_THREADS=1``): the searches are sequential and small.
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


def run_cell(
    space, predictor, budget, algorithm, seed, evaluations, checkpoints=(), storage="journal"
) -> dict:
    """One search of ``evaluations`` evaluations; the best value found, and the best among the
    first ``n`` evaluations for each checkpoint ``n`` up to ``evaluations``."""
    problem = make_problem(space, predictor, budget)
    searcher = make(algorithm, problem, seed, evaluations, storage)
    with tempfile.TemporaryDirectory() as folder:
        start, cpu = time.perf_counter(), time.process_time()
        found = run_search(problem, searcher, evaluations, folder, progress=False)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        counts = json.loads((Path(folder) / "progress.json").read_text())
    assert all(e.feasible for e in found) and len({e.arch for e in found}) == len(found)
    so_far = np.maximum.accumulate([e.objectives["proxy_capacity"] for e in found])
    return {
        "budget": budget,
        "algorithm": algorithm,
        "seed": seed,
        "evaluations": evaluations,
        "best": float(so_far[-1]),
        "best_at": {str(n): float(so_far[n - 1]) for n in checkpoints if n <= len(so_far)},
        "seconds": seconds,
        "cpu_seconds": cpu,
        "counts": counts,
        "resolved": searcher.name,
    }


def run_size(checkpoint: int, sizes: Sequence[int]) -> int:
    """The search a checkpoint is read from: the smallest search size that reaches it."""
    return min(s for s in sizes if s >= checkpoint)


# --------------------------------------------------------------------- report


def _median(values) -> float:
    return float(statistics.median(values)) if values else float("nan")


def print_table(
    cells: list[dict], optimum: dict, references: dict, checkpoints, sizes, algorithms
) -> None:
    for budget, opt in optimum.items():
        print(f"\nbudget {budget:g} ms: optimum {opt:.4f}; median over seeds (seeds run)")
        header = ["algorithm"]
        header += [f"regret@{n}" for n in checkpoints] + [f"top%@{n}" for n in checkpoints]
        header += [f"prop/eval@{sizes[-1]}", f"s@{sizes[-1]}", f"cpu s@{sizes[-1]}"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        ref = references[budget]
        for algorithm in algorithms:
            mine = [c for c in cells if c["budget"] == budget and c["algorithm"] == algorithm]
            if not mine:
                continue
            regrets, tops = [], []
            for n in checkpoints:
                size = run_size(n, sizes)
                best = [c["best_at"][str(n)] for c in mine if c["evaluations"] == size]
                regrets.append(f"{_median([opt - b for b in best]):.4f} ({len(best)})")
                share = [
                    100 * (len(ref) - np.searchsorted(ref, b, "left")) / len(ref) for b in best
                ]
                tops.append(f"{_median(share):.3f}")
            last = [c for c in mine if c["evaluations"] == sizes[-1]]
            ratio = [c["counts"]["proposals"] / max(c["counts"]["evaluations"], 1) for c in last]
            row = [algorithm, *regrets, *tops, f"{_median(ratio):.2f}"]
            row += [f"{_median([c[k] for c in last]):.1f}" for k in ("seconds", "cpu_seconds")]
            print("| " + " | ".join(row) + " |")


def storage_timing(space, predictor, budget: float, evaluations: int) -> None:
    print(f"\nOptuna study storage, one search of {evaluations} evaluations at {budget:g} ms:")
    print(
        "| sampler | proposals | memory s (cpu) | journal s (cpu) | sqlite s (cpu) "
        "| journal/memory | sqlite/memory | result |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for algorithm in ("nsga2", "tpe"):
        cells = {
            storage: run_cell(space, predictor, budget, algorithm, 0, evaluations, (), storage)
            for storage in ("memory", "journal", "sqlite")
        }
        same = len({c["best"] for c in cells.values()}) == 1
        wall = {k: f"{c['seconds']:.1f} ({c['cpu_seconds']:.1f})" for k, c in cells.items()}
        m = cells["memory"]["seconds"]
        print(
            f"| {algorithm} | {cells['memory']['counts']['proposals']} | {wall['memory']} "
            f"| {wall['journal']} | {wall['sqlite']} | {cells['journal']['seconds'] / m:.2f} "
            f"| {cells['sqlite']['seconds'] / m:.2f} | {'same' if same else 'DIFFER'} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, help="Pixel 4 device profile (JSON)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per algorithm")
    parser.add_argument(
        "--evaluations",
        type=int,
        nargs="+",
        default=[20, 50, 200, 500],
        help="checkpoints: the best found within the first N evaluations of a search",
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[50, 500],
        help="searches run per algorithm, seed and budget, each with the settings of its "
        "evaluation budget; a checkpoint is read from the smallest size that reaches it "
        "(default 50 and 500: 20 and 50 from the search set for 50, 200 and 500 from the one "
        "set for 500)",
    )
    choices = [*ALGORITHMS, *BASELINES]
    parser.add_argument(
        "--algorithms", nargs="+", default=choices, choices=choices, help="default: all"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/search_efficiency"),
        help="cells.jsonl (one line per finished search; rerun to resume) and reference caches",
    )
    parser.add_argument("--no-storage", action="store_true", help="skip the storage timing")
    parser.add_argument(
        "--report-only", action="store_true", help="print the tables of the cells done; run none"
    )
    args = parser.parse_args()
    args.sizes = sorted(set(args.sizes) | {max(args.evaluations)})
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
        for s in range(args.seeds)
        for a in args.algorithms
        for b in optimum
        for n in args.sizes
        if (b, a, s, n) not in done and not args.report_only
    ]
    start = time.perf_counter()
    with cells_path.open("a") as f:
        for b, a, s, n in (bar := tqdm(todo, desc="searches", unit="search")):
            bar.set_postfix_str(f"{a} {b:g} ms seed {s} x{n}")
            cell = run_cell(space, predictor, b, a, s, n, args.evaluations)
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
    print_table(cells, optimum, references, args.evaluations, args.sizes, names)
    if not args.no_storage and not args.report_only:
        storage_timing(space, predictor, list(optimum)[1], args.evaluations[-1])


if __name__ == "__main__":
    main()
