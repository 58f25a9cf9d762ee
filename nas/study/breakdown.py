"""Where the time goes: the predicted latency of chosen archs split by stage and by kernel kind.

Chosen archs: the smallest and the largest, and each device's best arch (highest score) under
the 25th, 50th and 75th percentile of its latencies. Each is split on every device with the
predictor's breakdown (:meth:`LatencyPredictor.breakdown`): every kernel's share of the
prediction, the overhead term applied, plus the profile's fixed per-model overhead; the parts
add up to the predicted latency.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nas.study.devices import best_under
from nas.study.figures import colours, pyplot, save, wrap
from nas.study.report import Document, fmt
from nas.study.table import StudyTable

BUDGETS = (25, 50, 75)
FIXED = "fixed per-model overhead"


def chosen_archs(table: StudyTable) -> list[dict[str, Any]]:
    """[{"arch": row, "names": [...]}] in order: smallest, largest, each device's winners."""
    named: dict[int, list[str]] = {}
    for origin in ("smallest", "largest"):
        named.setdefault(table.origin.index(origin), []).append(origin)
    score = table.score.values
    for device in table.devices:
        latency = table.latency(device).values
        for p in BUDGETS:
            row = best_under(score, latency, float(np.percentile(latency, p)))
            if row is not None:
                named.setdefault(row, []).append(f"best on {device.label} under p{p}")
    return [{"arch": row, "names": names} for row, names in named.items()]


def _stage(slot: str) -> str:
    parts = slot.split(".")
    if parts[0] == "stages":
        return f"stage {parts[1]}"
    return "stem" if parts[0].startswith("stem") else parts[0]


def where_the_time_goes(table: StudyTable) -> dict[str, Any]:
    chosen = chosen_archs(table)
    out: dict[str, Any] = {"archs": chosen, "per_device": {}}
    for device in table.devices:
        predictor = device.predictor
        fixed = float(predictor.overhead.constant)
        entries = []
        for item in chosen:
            arch = table.archs[item["arch"]]
            by_stage: dict[str, float] = {}
            by_kind: dict[str, float] = {}
            for row in predictor.breakdown(arch):
                stage = _stage(row["layer"])
                by_stage[stage] = by_stage.get(stage, 0.0) + row["share_ms"]
                by_kind[row["kind"]] = by_kind.get(row["kind"], 0.0) + row["share_ms"]
            if fixed > 0:
                by_stage[FIXED] = by_kind[FIXED] = fixed
            elif fixed < 0:  # a negative constant cannot be a bar: spread it over the parts
                factor = (sum(by_stage.values()) + fixed) / sum(by_stage.values())
                by_stage = {k: v * factor for k, v in by_stage.items()}
                by_kind = {k: v * factor for k, v in by_kind.items()}
            entries.append(
                {
                    "arch": item["arch"],
                    "predicted_ms": float(table.latency(device).values[item["arch"]]),
                    "by_stage": by_stage,
                    "by_kind": by_kind,
                }
            )
        out["per_device"][device.label] = entries
        out.setdefault("fixed_overhead_ms", {})[device.label] = fixed
    return out


def _stack(ax, entries: list[dict], field: str, labels: list[str]) -> None:
    """Stacked bars of each arch's parts as shares (%) of its predicted latency."""
    parts = list(dict.fromkeys(name for e in entries for name in e[field]))
    bottom = np.zeros(len(entries))
    totals = np.array([sum(e[field].values()) for e in entries])
    for part, colour in zip(parts, colours(len(parts)), strict=True):
        heights = 100.0 * np.array([e[field].get(part, 0.0) for e in entries]) / totals
        ax.bar(range(len(entries)), heights, bottom=bottom, color=colour, label=part, width=0.7)
        bottom += heights
    ax.set_xticks(range(len(entries)), labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("share of predicted latency (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def figures(result: dict, table: StudyTable, folder: Path) -> list[tuple[Path, str]]:
    plt = pyplot()
    out = []
    for number, device in enumerate(table.devices):
        entries = result["per_device"][device.label]
        labels = [
            wrap(f"#{item['arch']} {', '.join(item['names'])}: {e['predicted_ms']:.3g} ms", 26)
            for item, e in zip(result["archs"], entries, strict=True)
        ]
        width = max(6.0, 0.75 * len(entries) + 3.5)
        fig, axes = plt.subplots(1, 2, figsize=(2 * width, 4.8))
        _stack(axes[0], entries, "by_stage", labels)
        axes[0].set_title(f"{device.label}: by stage")
        _stack(axes[1], entries, "by_kind", labels)
        axes[1].set_title(f"{device.label}: by kernel kind")
        path = save(fig, folder / f"breakdown_{number}_{_safe(device.label)}.png")
        out.append(
            (
                path,
                f"Where the predicted latency on {device.label} of each chosen arch goes, by "
                "stage and by kernel kind (shares of its latency, which the labels give in ms).",
            )
        )
    return out


def _safe(text: str) -> str:
    from nas.runs import slug

    return slug(text)


def report(doc: Document, result: dict, table: StudyTable, figs: list[tuple[Path, str]]) -> None:
    doc.heading("Where the time goes")
    doc.paragraph(
        "Predicted latency of chosen archs split into the kernels' shares (the profile's "
        "overhead term applied), summed by stage and by kernel kind; on measured profiles the "
        "fixed per-model overhead is a part of its own. Chosen: "
        + "; ".join(f"#{item['arch']} = {', '.join(item['names'])}" for item in result["archs"])
        + "."
    )
    negative = [k for k, v in result["fixed_overhead_ms"].items() if v < 0]
    if negative:
        doc.paragraph(
            "The fixed per-model overhead of "
            + ", ".join(f"{k} ({result['fixed_overhead_ms'][k]:.3g} ms)" for k in negative)
            + " is negative (its kernels timed alone add up to more than whole models): it is "
            "spread over the parts in proportion."
        )
    for path, caption in figs:
        doc.figure(path, caption)
    for device in table.devices:
        entries = result["per_device"][device.label]
        for field, words, folded in (
            ("by_stage", "stage", False),
            ("by_kind", "kernel kind", True),
        ):
            parts = list(dict.fromkeys(name for e in entries for name in e[field]))
            doc.table(
                ["arch", "predicted (ms)"] + parts,
                [
                    [f"#{e['arch']}", fmt(e["predicted_ms"])]
                    + [fmt(e[field].get(name, 0.0)) for name in parts]
                    for e in entries
                ],
                f"Latency on {device.label} by {words} (ms)",
                folded=folded,
            )
