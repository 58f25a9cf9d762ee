"""Fronts: score against latency on every device on one figure, and the joint front.

Latency is normalised to each device's range over the sample (0 = its fastest sampled arch,
1 = its slowest), so devices of very different speed share one axis. The joint front is the
front of score against an arch's *worst* normalised latency over the devices: the archs that
meet a budget at the same normalised position on every device at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nas.study.devices import best_under, front
from nas.study.figures import colours, pyplot, save
from nas.study.report import Document, fmt
from nas.study.table import StudyTable

BUDGETS = (0.1, 0.25, 0.5)


def normalised(latency: np.ndarray) -> np.ndarray:
    low, high = float(latency.min()), float(latency.max())
    return (latency - low) / (high - low) if high > low else np.zeros_like(latency)


def fronts(table: StudyTable) -> dict[str, Any]:
    score = table.score.values
    norm = {d.label: normalised(table.latency(d).values) for d in table.devices}
    worst = np.max(np.stack(list(norm.values())), axis=0)
    out: dict[str, Any] = {
        "score": table.score.name,
        "score_axis": table.score.axis,
        "score_is_proxy": table.score_is_proxy,
        "ranges_ms": {
            d.label: [float(table.latency(d).values.min()), float(table.latency(d).values.max())]
            for d in table.devices
        },
        "fronts": {label: [int(i) for i in front(score, n)] for label, n in norm.items()},
        "joint_front": [int(i) for i in front(score, worst)],
        "budgets": [],
    }
    for b in BUDGETS:
        entry: dict[str, Any] = {"normalised_budget": b, "per_device": {}}
        for label, n in norm.items():
            entry["per_device"][label] = _best(table, best_under(score, n, b))
        entry["joint"] = _best(table, best_under(score, worst, b))
        out["budgets"].append(entry)
    return out


def _best(table: StudyTable, row: int | None) -> dict | None:
    if row is None:
        return None
    return {"arch": row, "score": float(table.score.values[row]), "source": table.source(row)}


def _cell(best: dict | None) -> str:
    if best is None:
        return "none"
    source = f", {best['source']}" if best.get("source") else ""
    return f"{fmt(best['score'])} (#{best['arch']}{source})"


def figure(result: dict, table: StudyTable, folder: Path) -> Path:
    plt = pyplot()
    score = table.score.values
    norm = {d.label: normalised(table.latency(d).values) for d in table.devices}
    worst = np.max(np.stack(list(norm.values())), axis=0)
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    ax.scatter(worst, score, s=4, alpha=0.25, color="#aaa", label="sampled archs (worst device)")
    measured = (
        table.accuracy.measured if table.accuracy is not None else np.ones(len(table), dtype=bool)
    )
    for (label, n), colour in zip(norm.items(), colours(len(norm)), strict=True):
        rows = np.array(result["fronts"][label], dtype=int)
        ax.step(n[rows], score[rows], where="post", color=colour, lw=1.4, label=f"front on {label}")
        on = rows[measured[rows]]
        off = rows[~measured[rows]]
        ax.scatter(n[on], score[on], s=16, color=colour)
        ax.scatter(n[off], score[off], s=16, facecolors="white", edgecolors=colour)
    if table.accuracy is not None:
        ax.scatter([], [], s=16, color="#555", label="measured accuracy")
        ax.scatter([], [], s=16, facecolors="white", edgecolors="#555", label="predicted accuracy")
    rows = result["joint_front"]
    ax.step(
        worst[rows],
        score[rows],
        where="post",
        color="black",
        lw=2.0,
        ls="--",
        label="joint front (every device at once)",
    )
    ax.set_xlabel("latency normalised to each device's range (0 = fastest, 1 = slowest sampled)")
    ax.set_ylabel(
        result["score_axis"] + (" (stand-in: no --run)" if result["score_is_proxy"] else "")
    )
    ax.legend(loc="lower right")
    return save(fig, folder / "fronts.png")


def report(doc: Document, result: dict, table: StudyTable, path: Path) -> None:
    doc.heading("Fronts")
    proxy = (
        " Without --run there is no accuracy: MACs stand in as the score (more computation at "
        "equal latency)."
        if result["score_is_proxy"]
        else ""
    )
    ranges = "; ".join(f"{k}: {v[0]:.4g} to {v[1]:.4g} ms" for k, v in result["ranges_ms"].items())
    doc.paragraph(
        f"{result['score'].capitalize()} against latency normalised to each device's sampled range "
        f"({ranges}). The joint front takes each arch's worst normalised latency over the "
        f"devices.{proxy}"
    )
    doc.figure(path, "Fronts of every device on one figure, and the joint front.")
    labels = list(result["ranges_ms"])
    rows = []
    for entry in result["budgets"]:
        row = [f"{entry['normalised_budget']:g}"]
        row += [_cell(entry["per_device"][label]) for label in labels]
        row.append(_cell(entry["joint"]))
        rows.append(row)
    doc.table(
        ["normalised budget"] + [f"best on {label}" for label in labels] + ["best on all at once"],
        rows,
        f"Best {result['score']} under a budget at the same normalised position",
    )
    doc.paragraph(
        f"Front sizes: {', '.join(f'{k} {len(v)}' for k, v in result['fronts'].items())}; joint "
        f"front {len(result['joint_front'])} archs."
    )
