"""Per-decision effects measured on paired archs.

For every decision and every base arch where the decision is active, the study builds one arch
per allowed value, everything else unchanged, and measures each objective on all of them. The
effect of a value is the change from the decision's reference value (its smallest number, or
its first declared kind) on the *same* base arch; its median and spread over the bases say what
the decision does, free of what the other decisions happen to be in a marginal mean. Paired
archs are measured by the objectives' own evaluators (the latency predictors, the MAC tables,
the accuracy predictor), so a latency effect is exactly a difference of two predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nas.study.decisions import decision_label
from nas.study.figures import colours, pyplot, save, wrap
from nas.study.report import Document
from nas.study.table import Objective, StudyTable

PERCENTILES = (5, 25, 50, 75, 95)
PANEL_COLUMNS = 6


def _stats(values: np.ndarray) -> dict[str, float] | None:
    if len(values) == 0:
        return None
    p5, q25, median, q75, p95 = np.percentile(values, PERCENTILES)
    return {
        "median": float(median),
        "q25": float(q25),
        "q75": float(q75),
        "p5": float(p5),
        "p95": float(p95),
        "mean": float(np.mean(values)),
    }


def paired_effects(table: StudyTable) -> dict[str, Any]:
    """Effects of every value of every varied decision on every objective (see module doc)."""
    decisions = table.decisions
    base_rows = table.index[table.bases]
    active = decisions.active(base_rows)
    blocks, plan = [], []
    for k in range(len(decisions.dims)):
        if not decisions.varied(k):
            continue
        rows = base_rows[active[:, k]]
        order = decisions.value_order(k)
        for j in order:
            variant = rows.copy()
            variant[:, k] = j
            blocks.append(variant)
        plan.append((k, order, len(rows)))
    width = len(decisions.dims)
    variants = np.concatenate(blocks) if blocks else np.zeros((0, width), dtype=np.int32)
    measured = {o.key: o.evaluate(variants) for o in table.objectives} if len(variants) else {}
    out, offset = [], 0
    for k, order, n in plan:
        dim = decisions.dims[k]
        at = {j: slice(offset + m * n, offset + (m + 1) * n) for m, j in enumerate(order)}
        offset += len(order) * n
        values = []
        for j in order:
            entry: dict[str, Any] = {"value": dim.values[j], "pairs": n, "change": {}}
            for o in table.objectives:
                if n == 0:
                    entry["change"][o.key] = None
                    continue
                new, ref = measured[o.key][at[j]], measured[o.key][at[order[0]]]
                change = {"absolute": _stats(new - ref)}
                if o.kind == "cost":
                    change["relative_pct"] = _stats(100.0 * (new / ref - 1.0))
                entry["change"][o.key] = change
            values.append(entry)
        out.append(
            {
                "decision": dim.name,
                "label": decision_label(dim),
                "reference": dim.values[order[0]],
                "pairs": n,
                "values": values,
            }
        )
    return {"bases": len(table.bases), "paired_archs": len(variants), "decisions": out}


# --------------------------------------------------------------------- figures


def _panels(result: dict, objectives: list[Objective], measure: str, ylabel: str, path: Path):
    """One panel per decision: median change per value with its 25th-75th percentile bar."""
    plt = pyplot()
    decisions = result["decisions"]
    cols = min(PANEL_COLUMNS, max(1, len(decisions)))
    rows = -(-len(decisions) // cols)
    width, height = 2.9 * cols, 2.35 * rows + 0.7
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False)
    # fixed margins (inches): tight_layout costs seconds on a grid of dozens of panels
    fig.subplots_adjust(
        left=0.85 / width,
        right=1 - 0.1 / width,
        bottom=0.45 / height,
        top=1 - 0.75 / height,
        wspace=0.38,
        hspace=0.8,
    )
    palette = colours(len(objectives))
    for ax, decision in zip(axes.flat, decisions, strict=False):
        labels = [str(v["value"]) for v in decision["values"]]
        x = np.arange(len(labels))
        for m, (o, colour) in enumerate(zip(objectives, palette, strict=True)):
            shift = (m - (len(objectives) - 1) / 2) * 0.12
            stats = [(v["change"].get(o.key) or {}).get(measure) for v in decision["values"]]
            med = np.array([s["median"] if s else np.nan for s in stats])
            low = np.array([s["median"] - s["q25"] if s else 0 for s in stats])
            high = np.array([s["q75"] - s["median"] if s else 0 for s in stats])
            ax.vlines(x + shift, med - low, med + high, color=colour, lw=1.2)
            ax.plot(x + shift, med, "o", ms=3.5, color=colour, label=o.name)
        ax.axhline(0, color="#999", lw=0.7)
        ax.set_xticks(x, labels, rotation=45 if len(labels) > 5 else 0, fontsize=7)
        ax.set_title(wrap(f"{decision['label']} ({decision['pairs']} pairs)"), fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for ax in axes.flat[len(decisions) :]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=min(6, len(names)), frameon=False)
    return save(fig, path, layout=False)


def figures(result: dict, table: StudyTable, folder: Path) -> list[tuple[Path, str]]:
    costs = [o for o in table.objectives if o.kind == "cost"]
    out = [
        (
            _panels(result, costs, "relative_pct", "change (%)", folder / "effects_costs.png"),
            "Change of MACs, parameters and latency on every device when only one decision "
            "changes from its reference value (the leftmost value of each panel): median over "
            "paired archs, bars from the 25th to the 75th percentile.",
        )
    ]
    accuracy = [o for o in table.objectives if o.kind == "accuracy"]
    if accuracy:
        path = _panels(
            result,
            accuracy,
            "absolute",
            "accuracy change (points)",
            folder / "effects_accuracy.png",
        )
        out.append(
            (
                path,
                "Change of validation top-1 accuracy (percentage points, predicted by the "
                "accuracy predictor on both archs of each pair) when only one decision changes.",
            )
        )
    return out


# --------------------------------------------------------------------- report


def _cell(change: dict | None, measure: str = "absolute", unit: str = "") -> str:
    stats = (change or {}).get(measure)
    if not stats:
        return "n/a"
    return (
        f"{_signed(stats['median'], 3)}{unit} "
        f"[{_signed(stats['q25'], 2)}, {_signed(stats['q75'], 2)}]"
    )


def _signed(value: float, digits: int) -> str:
    """``value`` with a sign and ``digits`` significant digits, never in exponent form."""
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:+,.0f}"
    return f"{value:+.{digits}g}"


def _last_value_cell(decision: dict, o: Objective) -> str:
    change = decision["values"][-1]["change"].get(o.key)
    if o.kind == "cost":
        return _cell(change, "relative_pct", "%")
    return _cell(change)


def report(doc: Document, result: dict, table: StudyTable, figs: list[tuple[Path, str]]) -> None:
    doc.heading("Per-decision effects")
    doc.paragraph(
        f"{result['bases']} base archs of the sample; for each decision, every base where it is "
        "active is paired with one arch per allowed value, everything else unchanged "
        f"({result['paired_archs']:,} paired archs measured). A value's effect is the change "
        "from the decision's reference value on the same base: median, and in brackets the "
        "25th and 75th percentile over the bases."
        + (
            " Accuracy changes are differences of two predictions of the accuracy predictor."
            if table.accuracy is not None
            else ""
        )
    )
    for path, caption in figs:
        doc.figure(path, caption)
    objectives = table.objectives
    units = ["%" if o.kind == "cost" else o.unit for o in objectives]
    doc.table(
        ["decision", "from reference to last value", "pairs"]
        + [f"{o.name} ({u})" for o, u in zip(objectives, units, strict=True)],
        [
            [
                d["label"],
                f"{d['reference']} to {d['values'][-1]['value']}",
                d["pairs"],
            ]
            + [_last_value_cell(d, o) for o in objectives]
            for d in result["decisions"]
        ],
        "Change from the reference value to the last value of each decision (costs relative, "
        "accuracy in points; median [25th, 75th percentile])",
    )
    rows = []
    for decision in result["decisions"]:
        for entry in decision["values"][1:]:
            rows.append(
                [
                    decision["label"],
                    f"{entry['value']} (vs {decision['reference']})",
                    entry["pairs"],
                ]
                + [_cell(entry["change"][o.key]) for o in objectives]
            )
    doc.table(
        ["decision", "value (vs reference)", "pairs"]
        + [f"{o.name} ({o.unit})" for o in objectives],
        rows,
        "Every value: absolute change when only this decision changes (median [25th, 75th "
        "percentile])",
        folded=True,
    )
