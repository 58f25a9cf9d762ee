"""Where FLOPs mislead: how well MACs order the archs by latency on each device.

Per device: Spearman and Kendall rank correlation of MACs and latency over the sample (scipy),
the share of arch pairs whose MAC order is the reverse of their latency order (over all pairs,
and over pairs whose MACs differ by at least 10%, where MACs look decisive), and the worst
reversals: arch A with fewer MACs than arch B yet slower, ranked by the smaller of the two
ratios (B's MACs / A's, A's latency / B's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr

from nas.study.figures import colours, log_axes, pyplot, save
from nas.study.kinds import arch_kinds
from nas.study.report import Document, fmt, pct
from nas.study.table import StudyTable

CLEAR_MACS_RATIO = 1.10
WORST = 5
CHUNK = 512


def reversed_pairs(macs: np.ndarray, latency: np.ndarray, worst: int = WORST) -> dict[str, Any]:
    """Exact counts over all pairs (chunked), and the ``worst`` reversals (distinct A archs)."""
    n = len(macs)
    reversed_all = pairs_all = reversed_clear = pairs_clear = 0
    best_score = np.full(n, -np.inf)
    best_partner = np.zeros(n, dtype=int)
    log_macs, log_lat = np.log(np.maximum(macs, 1e-12)), np.log(np.maximum(latency, 1e-12))
    for start in range(0, n, CHUNK):
        rows = np.arange(start, min(n, start + CHUNK))
        dm = log_macs[None, :] - log_macs[rows, None]  # > 0: column has more MACs than row
        dl = log_lat[rows, None] - log_lat[None, :]  # > 0: row is slower than column
        upper = np.arange(n)[None, :] > rows[:, None]
        compared = upper & (dm != 0) & (dl != 0)
        rev = compared & (np.sign(dm) == np.sign(dl))
        clear = compared & (np.abs(dm) >= np.log(CLEAR_MACS_RATIO))
        pairs_all += int(compared.sum())
        reversed_all += int(rev.sum())
        pairs_clear += int(clear.sum())
        reversed_clear += int((rev & clear).sum())
        score = np.where((dm > 0) & (dl > 0), np.minimum(dm, dl), -np.inf)
        partner = np.argmax(score, axis=1)
        best_score[rows] = score[np.arange(len(rows)), partner]
        best_partner[rows] = partner
    order = [int(i) for i in np.argsort(-best_score, kind="stable") if np.isfinite(best_score[i])]
    examples, used = [], set()
    for a in order:
        b = int(best_partner[a])
        if a in used or b in used:
            continue
        used |= {a, b}
        examples.append(
            {
                "fewer_macs": a,
                "more_macs": b,
                "macs_ratio": float(macs[b] / macs[a]),
                "latency_ratio": float(latency[a] / latency[b]),
            }
        )
        if len(examples) == worst:
            break
    return {
        "pairs": pairs_all,
        "reversed_share": reversed_all / pairs_all if pairs_all else None,
        "clear_pairs": pairs_clear,
        "clear_reversed_share": reversed_clear / pairs_clear if pairs_clear else None,
        "worst": examples,
    }


def where_flops_mislead(table: StudyTable) -> dict[str, Any]:
    macs = table.macs.values
    out: dict[str, Any] = {"per_device": {}}
    for device in table.devices:
        latency = table.latency(device).values
        result = reversed_pairs(macs, latency)
        for example in result["worst"]:
            a, b = example["fewer_macs"], example["more_macs"]
            example["differences"] = differences(table, a, b)
            example["macs_m"] = [float(macs[a]), float(macs[b])]
            example["latency_ms"] = [float(latency[a]), float(latency[b])]
        out["per_device"][device.label] = {
            "spearman": float(spearmanr(macs, latency).statistic),
            "kendall_tau": float(kendalltau(macs, latency).statistic),
            **result,
        }
    return out


def differences(table: StudyTable, a: int, b: int, limit: int = 6) -> str:
    """The active decisions where archs ``a`` and ``b`` differ, as ``label: x -> y``."""
    from nas.study.decisions import decision_label

    decisions = table.decisions
    rows = table.index[[a, b]]
    active = decisions.active(rows)
    parts = []
    for k, dim in enumerate(decisions.dims):
        if rows[0, k] != rows[1, k] and (active[0, k] or active[1, k]):
            x = dim.values[rows[0, k]] if active[0, k] else "-"
            y = dim.values[rows[1, k]] if active[1, k] else "-"
            parts.append(f"{decision_label(dim)}: {x} vs {y}")
    more = f"; and {len(parts) - limit} more" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more


def figure(result: dict, table: StudyTable, folder: Path) -> Path:
    """Latency against MACs per device, coloured by the kinds of blocks each arch uses."""
    plt = pyplot()
    kinds = arch_kinds(table)
    devices = table.devices
    cols = min(3, len(devices))
    rows = -(-len(devices) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 4.0 * rows), squeeze=False)
    macs = table.macs.values
    for ax, device in zip(axes.flat, devices, strict=False):
        latency = table.latency(device).values
        stats = result["per_device"][device.label]
        if kinds.categorical:
            for name, colour in zip(kinds.names, colours(len(kinds.names)), strict=True):
                mask = kinds.labels == name
                ax.scatter(macs[mask], latency[mask], s=5, alpha=0.5, color=colour, label=name)
            ax.legend(title=kinds.title, markerscale=2.5, loc="upper left")
        else:
            points = ax.scatter(macs, latency, s=5, alpha=0.5, c=kinds.values, cmap="viridis")
            fig.colorbar(points, ax=ax, label=kinds.title)
        log_axes(ax)
        ax.set_xlabel("MACs (millions, log scale)")
        ax.set_ylabel(device.axis.replace("(ms)", "(ms, log scale)"))
        ax.set_title(
            f"{device.label}: Spearman {stats['spearman']:.2f}, Kendall tau "
            f"{stats['kendall_tau']:.2f}"
        )
    for ax in axes.flat[len(devices) :]:
        ax.axis("off")
    return save(fig, folder / "flops_vs_latency.png")


def report(doc: Document, result: dict, table: StudyTable, path: Path) -> None:
    doc.heading("Where FLOPs mislead")
    doc.paragraph(
        "How well MACs order the sampled archs by latency. A reversed pair is two archs whose "
        "MAC order is the opposite of their latency order; 'clear' pairs differ by at least "
        f"{round(100 * (CLEAR_MACS_RATIO - 1))}% in MACs."
    )
    doc.figure(path, "Latency against MACs on every device, one point per sampled arch.")
    rows = []
    for label, r in result["per_device"].items():
        rows.append(
            [
                label,
                fmt(r["spearman"]),
                fmt(r["kendall_tau"]),
                pct(r["reversed_share"]),
                f"{r['pairs']:,}",
                pct(r["clear_reversed_share"]),
                f"{r['clear_pairs']:,}",
            ]
        )
    doc.table(
        [
            "device",
            "Spearman (MACs, latency)",
            "Kendall tau",
            "reversed pairs",
            "pairs",
            "reversed among clear pairs",
            "clear pairs",
        ],
        rows,
        "Rank agreement of MACs and latency",
    )
    for label, r in result["per_device"].items():
        if not r["worst"]:
            continue
        doc.table(
            [
                "arch A (fewer MACs)",
                "arch B",
                "MACs A / B (M)",
                "latency A / B (ms)",
                "differences",
            ],
            [
                [
                    f"#{w['fewer_macs']}",
                    f"#{w['more_macs']}",
                    f"{w['macs_m'][0]:.4g} / {w['macs_m'][1]:.4g} (B x{w['macs_ratio']:.2f})",
                    f"{w['latency_ms'][0]:.4g} / {w['latency_ms'][1]:.4g} "
                    f"(A x{w['latency_ratio']:.2f})",
                    w["differences"],
                ]
                for w in r["worst"]
            ],
            f"Worst reversals on {label}: A has fewer MACs than B yet is slower "
            "(#N: the arch with id N in archs.jsonl)",
        )
