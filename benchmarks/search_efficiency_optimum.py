"""The exact optimum of the search-efficiency benchmark's problem, by dynamic programming.

The problem (see ``search_efficiency.py``): maximise the ``capacity`` proxy of
:mod:`nas.search.proxies` over ``elasticvit`` under a Pixel 4 latency budget. Both sides are
sums: the proxy is monotone in a sum of per-decision weights, and the predicted latency is a
constant plus one table entry per active layer position, each position depending on the
resolution, the width feeding its stage and its own stage's decisions. So for each resolution
the space is a chain of stages whose only link is the width one stage hands the next, and the
Pareto front of (latency, weight sum) over partial archs can be carried from stage to stage,
keeping every point no other point beats on both. The best point under each budget is the
optimum: exact, with no sampling.

The budgets are the 10%, 25% and 50% quantiles of the predicted latency of 20,000 uniformly
random archs (seed 0), rounded to 0.01 ms. The result goes to ``search_efficiency_optimum.json``
beside this script; ``search_efficiency.py`` reads it.

    python benchmarks/search_efficiency_optimum.py --profile PIXEL4.json

(``PIXEL4.json`` from ``nas device import-table pixel4
../shared/data/pixel4_elasticvit/pixel4_lut.json --out PIXEL4.json``.) It reads the predictor's
tabulated positions (``LatencyPredictor._compiled_tables``): it is tied to that implementation,
and checks its answer against ``LatencyPredictor.predict``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
from pathlib import Path

import numpy as np

import search_spaces
from nas.search.proxies import capacity

OUT = Path(__file__).with_name("search_efficiency_optimum.json")
QUANTILES = (10, 25, 50)
QUANTILE_SAMPLES = 20_000


def budgets_at_quantiles(space, predictor) -> dict[int, float]:
    rng = random.Random(0)
    latency = predictor.predict([space.sample(rng) for _ in range(QUANTILE_SAMPLES)])
    return {q: round(float(np.percentile(latency, q)), 2) for q in QUANTILES}


def _pareto(lat: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices of points no other point beats (lower latency and higher score)."""
    order = np.lexsort((-score, lat))
    s = score[order]
    best_before = np.maximum.accumulate(np.concatenate([[-np.inf], s[:-1]]))
    return order[s > best_before]


class ChainOptimum:
    """Exact max of a per-decision weight sum under an additive latency, stage by stage."""

    def __init__(self, space, predictor, weights: np.ndarray):
        self.space, self.predictor = space, predictor
        dims = space.dimensions
        if any(d.layer is not None for d in dims):
            raise ValueError("per-layer decisions are not supported by this optimum finder")
        offsets = np.cumsum([0] + [len(d.values) for d in dims])
        self.weight = [weights[offsets[k] : offsets[k + 1]] for k in range(len(dims))]
        self.groups = [[1, 2]] + [
            [k for k, d in enumerate(dims) if d.stage == i] for i in range(len(space.stages))
        ]
        self.width = [1] + [
            next(k for k in g if dims[k].choice == "width") for g in self.groups[1:]
        ]
        self.terms: list[list] = [[] for _ in self.groups]
        for compiled in predictor._compiled_tables():
            c = compiled.latency  # a PositionTable
            deps = [int(d) for d in c.deps]
            group = max((gi for gi, g in enumerate(self.groups) if set(deps) & set(g)), default=0)
            allowed = {0, *self.groups[group]}
            if group > 0:
                allowed.add(self.width[group - 1])
            if not set(deps) <= allowed:
                raise ValueError(f"position {c.position.slot} links non-adjacent stages")
            shape = tuple(len(dims[d].values) for d in deps)
            table = c.values.reshape(shape)
            depth = None if c.depth_values is None else int(c.position.depth_dim)
            self.terms[group].append((deps, table, depth, c.depth_values, c.position.layer))
        self.constant = float(predictor.overhead.constant)

    def _group_tables(self, gi: int, r: int):
        """(latency[prev width index, combo], score[combo], combos) of group ``gi`` at
        resolution index ``r``."""
        dims = self.space.dimensions
        group = self.groups[gi]
        combos = np.array(list(itertools.product(*[range(len(dims[k].values)) for k in group])))
        prev = self.width[gi - 1] if gi > 0 else None
        n_prev = len(dims[prev].values) if prev is not None else 1
        latency = np.zeros((n_prev, len(combos)))
        for p in range(n_prev):
            value = {0: np.full(len(combos), r)}
            if prev is not None:
                value[prev] = np.full(len(combos), p)
            for j, k in enumerate(group):
                value[k] = combos[:, j]
            for deps, table, depth, depth_values, layer in self.terms[gi]:
                entry = table[tuple(value[d] for d in deps)]
                if depth is not None:
                    entry = entry * (depth_values[value[depth]] > layer)
                latency[p] += entry
        score = sum(self.weight[k][combos[:, j]] for j, k in enumerate(group))
        return latency, score, combos

    def solve(self, budgets: list[float]) -> dict[float, tuple[list[int], float, float]]:
        """For each budget: (value index per dimension, latency, weight sum) of the optimum."""
        dims = self.space.dimensions
        top = max(budgets) - self.constant
        best: dict[float, tuple[float, list[int], float]] = {}
        for r in range(len(dims[0].values)):
            tables = [self._group_tables(gi, r) for gi in range(len(self.groups))]
            floor = [
                min(t[0].min() for t in tables[gi + 1 :]) if gi + 1 < len(tables) else 0.0
                for gi in range(len(tables))
            ]
            # front[state] = (latency, score, back pointers); state = index of the last width
            lat0, score0, combos0 = tables[0]
            w0 = self.groups[0].index(self.width[0])
            fronts = {}
            for w in range(len(dims[self.width[0]].values)):
                mine = np.flatnonzero(combos0[:, w0] == w)
                fronts[w] = (lat0[0, mine], score0[mine], [(None, None, int(i)) for i in mine])
            history = [fronts]
            for gi in range(1, len(self.groups)):
                latency, score, combos = tables[gi]
                wj = self.groups[gi].index(self.width[gi])
                new = {}
                for w in range(len(dims[self.width[gi]].values)):
                    lats, scores, backs = [], [], []
                    for p, (fl, fs, _) in fronts.items():
                        mine = np.flatnonzero(combos[:, wj] == w)
                        keep = mine[_pareto(latency[p, mine], score[mine])]
                        pl = (fl[:, None] + latency[p, keep][None, :]).ravel()
                        ps = (fs[:, None] + score[keep][None, :]).ravel()
                        ok = pl + floor[gi] <= top
                        pi, ci = np.divmod(np.flatnonzero(ok), len(keep))
                        lats.append(pl[ok])
                        scores.append(ps[ok])
                        backs.append(np.stack([np.full(len(pi), p), pi, keep[ci]], axis=1))
                    lat, sc, back = (
                        np.concatenate(lats),
                        np.concatenate(scores),
                        np.concatenate(backs),
                    )
                    kept = _pareto(lat, sc) if len(lat) else np.zeros(0, dtype=int)
                    new[w] = (lat[kept], sc[kept], back[kept])
                fronts = new
                history.append(fronts)
            for budget in budgets:
                for w, (fl, fs, _) in fronts.items():
                    ok = np.flatnonzero(fl + self.constant <= budget)
                    if not len(ok):
                        continue
                    i = ok[np.argmax(fs[ok])]
                    total = float(fs[i] + self.weight[0][r])
                    if budget not in best or total > best[budget][0]:
                        best[budget] = (
                            total,
                            self._trace(history, tables, r, w, int(i)),
                            float(fl[i] + self.constant),
                        )
        return {b: (idx, lat, s) for b, (s, idx, lat) in best.items()}

    def _trace(self, history, tables, r, state, point) -> list[int]:
        index = [0] * len(self.space.dimensions)
        index[0] = r
        for gi in range(len(self.groups) - 1, -1, -1):
            _, _, backs = history[gi][state]
            if gi == 0:
                combo = tables[0][2][backs[point][2]]
            else:
                prev, point, c = (int(x) for x in backs[point])
                combo = tables[gi][2][c]
                state = prev
            for j, k in enumerate(self.groups[gi]):
                index[k] = int(combo[j])
        return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, help="Pixel 4 device profile (JSON)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    from predictors.latency import LatencyPredictor

    space = search_spaces.get("elasticvit")
    predictor = LatencyPredictor.load(args.profile, space)
    proxy = capacity(space)
    budgets = budgets_at_quantiles(space, predictor)
    start = time.perf_counter()
    solved = ChainOptimum(space, predictor, proxy.weights).solve(list(budgets.values()))
    seconds = time.perf_counter() - start
    entries = []
    for q, budget in budgets.items():
        index, latency, _ = solved[budget]
        arch = space.assemble([space.dimensions[k].values[i] for k, i in enumerate(index)])
        predicted = float(predictor.predict([arch])[0])
        assert predicted <= budget, (predicted, budget)
        assert abs(predicted - latency) < 1e-6, (predicted, latency)
        entries.append(
            {
                "quantile": q,
                "budget_ms": budget,
                "optimum": float(proxy([arch])[0]),
                "latency_ms": predicted,
                "arch": arch.to_dict(),
            }
        )
        print(
            f"budget {budget} ms (q{q}): optimum {entries[-1]['optimum']:.6f} at {predicted:.3f} ms"
        )
    data = {
        "format": "nas-search-benchmark-optimum",
        "version": 1,
        "space": space.name,
        "device": predictor.profile.device,
        "objective": "proxy_capacity (nas.search.proxies.capacity, seed 0)",
        "method": "exact dynamic programming over stages of Pareto fronts (latency, weight sum)",
        "budget_quantiles_of": f"{QUANTILE_SAMPLES} uniformly random archs, seed 0",
        "budgets": entries,
    }
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out} ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
