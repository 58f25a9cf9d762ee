"""Search algorithms side by side on `elasticvit` with the Pixel 4 latency profile.

Every algorithm gets the same number of evaluations (100, 1,000, 5,000 by default) and the same
seeds; the table gives mean +- std over seeds of the hypervolume of (accuracy, latency) and of
the best feasible accuracy under the budget, plus wall time per 10,000 evaluated candidates
(target < 5 s on one core).

Accuracy is a cheap, documented proxy, not a trained supernet: every decision value gets a
"capacity" equal to its rank among the decision's choices (0 = smallest, 1 = largest), each
decision a fixed random importance in [0.5, 1.5] (seed 0); with s the importance-weighted sum
over the arch's active decisions, normalised by the largest arch's sum,

    proxy accuracy = 67 + 13 * (1 - exp(-3 s)) / (1 - exp(-3))   (percent, 67 .. 80)

which mimics ElasticViT's reported 67-80% range, saturating with size. Latency is the Pixel 4
profile's prediction (the published per-block table).

    python benchmarks/search_algorithms.py --profile runs/pixel4.json [--sizes 100 1000 5000]
        [--seeds 5] [--latency-ms 40] [--algorithms random evolution nsga2 tpe generative]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

import search_spaces
from nas.search import ALGORITHMS, Constraint, Objective, Problem, make_searcher, run_search
from nas.search.results import best_under, front_hypervolume
from nas.space import SearchSpace


def proxy_accuracy(space: SearchSpace):
    """The documented proxy above, vectorised over archs."""
    rng = np.random.default_rng(0)
    weights = []
    for dim in space.dimensions:
        importance = rng.uniform(0.5, 1.5)
        ranks = np.argsort(np.argsort(_sortable(dim.values)))
        weights.append(importance * ranks / max(len(dim.values) - 1, 1))
    weights = np.concatenate(weights)
    top = float(space.encode(space.max_arch()) @ weights)

    def evaluate(archs) -> np.ndarray:
        s = space.encode_many(list(archs)) @ weights / top
        return 67 + 13 * (1 - np.exp(-3 * s)) / (1 - np.exp(-3))

    return evaluate


def _sortable(values):
    return [v if isinstance(v, int | float) else i for i, v in enumerate(values)]


def make_problem(space: SearchSpace, latency, budget_ms: float) -> Problem:
    return Problem(
        space,
        [
            Objective("accuracy", proxy_accuracy(space)),
            Objective("latency_ms", latency, maximize=False, unit="ms"),
        ],
        [Constraint("latency_ms", latency, budget_ms, "ms")],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, help="Pixel 4 device profile (JSON)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=40.0, help="budget (default 40)")
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS)
    args = parser.parse_args()

    from predictors.latency import LatencyPredictor

    space = search_spaces.get("elasticvit")
    predictor = LatencyPredictor.load(args.profile, space)
    latency = predictor.predict
    lo, hi = make_problem(space, latency, args.latency_ms).constraint_ranges()["latency_ms"]
    print(
        f"elasticvit on {args.profile}: latency range {lo:.1f}-{hi:.1f} ms, "
        f"budget {args.latency_ms:g} ms; reference point (67 %, {hi:.1f} ms)"
    )
    print(
        f"{'algorithm':>10} {'evals':>6} {'hypervolume':>18} {'best feasible acc':>20} "
        f"{'s / 10k cand.':>14}"
    )
    for size in args.sizes:
        for algorithm in args.algorithms:
            volumes, bests, per_10k = [], [], []
            for seed in range(args.seeds):
                problem = make_problem(space, latency, args.latency_ms)
                with tempfile.TemporaryDirectory() as folder:
                    searcher = make_searcher(algorithm, problem, seed)  # in-memory Optuna
                    start = time.perf_counter()
                    found = run_search(
                        problem, searcher, size, folder, batch_size=100, progress=False
                    )
                    elapsed = time.perf_counter() - start
                volumes.append(front_hypervolume(found, problem, "latency_ms", (67.0, hi)))
                best = best_under(found, problem, "latency_ms", args.latency_ms)
                bests.append(best.objectives["accuracy"] if best else float("nan"))
                per_10k.append(elapsed / len(found) * 10_000)
            print(
                f"{algorithm:>10} {size:>6} {_mean_std(volumes):>18} {_mean_std(bests):>20} "
                f"{statistics.median(per_10k):>13.2f}s",
                flush=True,
            )


def _mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"


if __name__ == "__main__":
    main()
