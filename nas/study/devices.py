"""Devices disagree: how differently devices rank the same archs, and what it costs.

All figures are computed on the same sampled archs for every device:

* Kendall tau (and Spearman) of latency between every pair of devices;
* Pareto fronts of (score, latency) per device -- score is accuracy with a run, else MACs as a
  stand-in for capacity -- and how far each arch on device A's front is from device B's: its
  latency on B over the latency of B's fastest arch scoring at least as well (0% = on B's front);
* the cost of searching for the wrong device: at equal-percentile budgets (the p-th percentile
  of each device's latencies), the best arch under A's budget, taken to B, against B's own best
  under B's budget.
"""

from __future__ import annotations

from itertools import combinations, permutations
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr

from nas.search.pareto import as_maximised, pareto_mask
from nas.study.figures import pyplot, save
from nas.study.report import Document, fmt, pct
from nas.study.table import StudyTable

PERCENTILES = (10, 25, 50, 75)


def front(score: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Row numbers of the archs on the (higher score, lower latency) Pareto front, fastest first."""
    mask = pareto_mask(as_maximised(np.column_stack([score, latency]), [True, False]))
    rows = np.flatnonzero(mask)
    return rows[np.argsort(latency[rows], kind="stable")]


def fastest_scoring_at_least(score: np.ndarray, latency: np.ndarray, at: np.ndarray) -> np.ndarray:
    """For each score in ``at``: the least latency of an arch scoring at least that."""
    order = np.argsort(-score, kind="stable")
    running = np.minimum.accumulate(latency[order])
    position = np.searchsorted(-score[order], -np.asarray(at), side="right") - 1
    return running[np.clip(position, 0, len(order) - 1)]


def best_under(score: np.ndarray, latency: np.ndarray, budget: float) -> int | None:
    """The highest-scoring arch within ``budget`` (the faster one on ties)."""
    feasible = np.flatnonzero(latency <= budget)
    if not len(feasible):
        return None
    return int(feasible[np.lexsort((latency[feasible], -score[feasible]))[0]])


def devices_disagree(table: StudyTable) -> dict[str, Any]:
    score = table.score.values
    latency = {d.label: table.latency(d).values for d in table.devices}
    fronts = {label: front(score, lat) for label, lat in latency.items()}
    out: dict[str, Any] = {
        "archs": len(table),
        "score": table.score.name,
        "score_is_proxy": table.score_is_proxy,
        "fronts": {label: [int(i) for i in rows] for label, rows in fronts.items()},
        "rank_agreement": [],
        "front_distance": [],
        "wrong_device": [],
    }
    for a, b in combinations(latency, 2):
        out["rank_agreement"].append(
            {
                "device_a": a,
                "device_b": b,
                "archs": len(latency[a]),
                "kendall_tau": float(kendalltau(latency[a], latency[b]).statistic),
                "spearman": float(spearmanr(latency[a], latency[b]).statistic),
            }
        )
    for a, b in permutations(latency, 2):
        rows = fronts[a]
        own = fastest_scoring_at_least(score, latency[b], score[rows])
        excess = latency[b][rows] / own - 1.0
        worst = np.argsort(-excess, kind="stable")[:3]
        out["front_distance"].append(
            {
                "front_of": a,
                "on": b,
                "front_archs": len(rows),
                "also_on_front": int(np.isin(rows, fronts[b]).sum()),
                "median_excess": float(np.median(excess)),
                "max_excess": float(np.max(excess)),
                "worst": [
                    {
                        "arch": int(rows[w]),
                        "excess": float(excess[w]),
                        "latency_ms": float(latency[b][rows[w]]),
                    }
                    for w in worst
                ],
            }
        )
        for p in PERCENTILES:
            budget_a = float(np.percentile(latency[a], p))
            budget_b = float(np.percentile(latency[b], p))
            pick = best_under(score, latency[a], budget_a)
            own_best = best_under(score, latency[b], budget_b)
            entry: dict[str, Any] = {
                "searched_on": a,
                "used_on": b,
                "percentile": p,
                "budget_a_ms": budget_a,
                "budget_b_ms": budget_b,
                "pick": pick,
                "best_on_b": own_best,
            }
            if pick is not None and own_best is not None:
                meets = bool(latency[b][pick] <= budget_b)
                entry.update(
                    pick_latency_b_ms=float(latency[b][pick]),
                    pick_meets_b=meets,
                    over_budget=float(latency[b][pick] / budget_b - 1.0),
                    pick_score=float(score[pick]),
                    pick_source=table.source(pick),
                    best_on_b_score=float(score[own_best]),
                    best_on_b_source=table.source(own_best),
                    score_loss=float(score[own_best] - score[pick]) if meets else None,
                )
            out["wrong_device"].append(entry)
    return out


def figure(result: dict, table: StudyTable, folder: Path) -> Path | None:
    """Latency on one device against another, each device's front highlighted."""
    pairs = result["rank_agreement"][:6]
    if not pairs:
        return None
    plt = pyplot()
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 4.2 * rows), squeeze=False)
    devices = {d.label: d for d in table.devices}
    for ax, pair in zip(axes.flat, pairs, strict=False):
        a, b = devices[pair["device_a"]], devices[pair["device_b"]]
        x, y = table.latency(a).values, table.latency(b).values
        ax.scatter(x, y, s=4, alpha=0.35, color="#999", label="sampled archs")
        for label, marker, colour in ((a.label, "o", "#d62728"), (b.label, "s", "#1f77b4")):
            rows_ = result["fronts"][label]
            ax.scatter(
                x[rows_],
                y[rows_],
                s=18,
                marker=marker,
                facecolors="none",
                edgecolors=colour,
                label=f"front on {label}",
            )
        ax.set_xlabel(a.axis)
        ax.set_ylabel(b.axis)
        ax.set_title(f"Kendall tau {pair['kendall_tau']:.2f} on {pair['archs']:,} archs")
        ax.legend(loc="upper left", markerscale=1.5)
    for ax in axes.flat[len(pairs) :]:
        ax.axis("off")
    return save(fig, folder / "devices.png")


def report(doc: Document, result: dict, table: StudyTable, path: Path | None) -> None:
    doc.heading("Devices disagree")
    if not result["rank_agreement"]:
        doc.paragraph(
            "One device profile was given: pass --device more than once (profiles of the same "
            "space) to compare how devices rank the archs."
        )
        return
    proxy = " (MACs stand in for accuracy: no --run)" if result["score_is_proxy"] else ""
    doc.paragraph(
        f"All numbers use the same {result['archs']:,} archs on every device. Fronts are the "
        f"Pareto fronts of {result['score']}{proxy} against latency on each device."
    )
    if path is not None:
        doc.figure(path, "Latency of the same archs on two devices; each device's front marked.")
    doc.table(
        ["device A", "device B", "archs", "Kendall tau", "Spearman"],
        [
            [r["device_a"], r["device_b"], r["archs"], fmt(r["kendall_tau"]), fmt(r["spearman"])]
            for r in result["rank_agreement"]
        ],
        "Rank agreement of latency between devices",
    )
    doc.table(
        [
            "front of",
            "on device",
            "front archs",
            "also on its front",
            "median excess latency",
            "worst excess",
            "worst arch",
        ],
        [
            [
                r["front_of"],
                r["on"],
                r["front_archs"],
                r["also_on_front"],
                pct(r["median_excess"]),
                pct(r["max_excess"]),
                f"#{r['worst'][0]['arch']}" if r["worst"] else "",
            ]
            for r in result["front_distance"]
        ],
        "Archs on one device's front, on another device: latency over that device's fastest "
        "arch scoring at least as well",
    )
    rows = []
    for r in result["wrong_device"]:
        if r["pick"] is None or r["best_on_b"] is None:
            continue
        rows.append(
            [
                r["searched_on"],
                r["used_on"],
                f"p{r['percentile']}",
                f"{r['budget_a_ms']:.4g} / {r['budget_b_ms']:.4g}",
                f"#{r['pick']} at {r['pick_latency_b_ms']:.4g} ms",
                "yes" if r["pick_meets_b"] else f"no (+{pct(r['over_budget'])})",
                _scored(r["pick_score"], r["pick_source"]),
                _scored(r["best_on_b_score"], r["best_on_b_source"]),
                fmt(r["score_loss"]) if r["score_loss"] is not None else "over budget",
            ]
        )
    doc.table(
        [
            "searched on A",
            "used on B",
            "budget",
            "budget A / B (ms)",
            "A's pick on B",
            "meets B's budget",
            f"pick's {result['score']}",
            f"B's own best {result['score']}",
            "loss",
        ],
        rows,
        "The cost of searching for the wrong device, at equal-percentile budgets",
    )


def _scored(value: float, source: str | None) -> str:
    """A score for a table, with whether it was measured or predicted."""
    return fmt(value) if source is None else f"{fmt(value)} ({source})"
