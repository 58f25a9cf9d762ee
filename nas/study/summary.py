"""The report's plain-language summary of the findings, and its closing section on what was
studied (devices, sample, objectives, accuracy sources, files)."""

from __future__ import annotations

from typing import Any

import numpy as np

from nas.study.report import Document, fmt, pct
from nas.study.table import StudyTable

TOP = 3


def summary(table: StudyTable, results: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers and sentences of a study (from the sections' results only)."""
    importance = results["importance"]["per_objective"]
    important = {
        o.key: [r["label"] for r in importance.get(o.key, [])[:TOP]] for o in table.objectives
    }
    lines = []
    for o in table.objectives:
        if o.kind == "cost" and o.device is None and o.key != "macs":
            continue
        ranked = importance.get(o.key, [])[:TOP]
        listed = ", ".join(f"{r['label']} ({r['importance']:.2f})" for r in ranked)
        lines.append(f"Most important for {o.name}: {listed}.")
    flops = results["flops"]["per_device"]
    for label, r in flops.items():
        text = (
            f"MACs order archs by latency on {label} with Kendall tau {r['kendall_tau']:.2f} "
            f"(Spearman {r['spearman']:.2f}); {pct(r['reversed_share'])} of arch pairs run in "
            f"the opposite order of their MACs ({pct(r['clear_reversed_share'])} of pairs whose "
            "MACs differ by 10% or more)"
        )
        if r["worst"]:
            w = r["worst"][0]
            text += (
                f"; worst: #{w['fewer_macs']} has {w['macs_ratio']:.2f}x fewer MACs than "
                f"#{w['more_macs']} yet runs {w['latency_ratio']:.2f}x slower"
            )
        lines.append(text + ".")
    devices = results["devices"]
    for r in devices["rank_agreement"]:
        lines.append(
            f"Latency ranks of the same {r['archs']:,} archs agree between {r['device_a']} and "
            f"{r['device_b']} at Kendall tau {r['kendall_tau']:.2f}."
        )
    for r in devices["wrong_device"]:
        if r["percentile"] != 50 or r["pick"] is None or r["best_on_b"] is None:
            continue
        if r["pick_meets_b"]:
            unit = "points of accuracy" if not devices["score_is_proxy"] else "million MACs"
            sources = ""
            if r["pick_source"]:
                sources = f" ({r['pick_source']} vs {r['best_on_b_source']})"
            cost = f"costs {fmt(r['score_loss'])} {unit}{sources} against {r['used_on']}'s own best"
        else:
            cost = f"runs {pct(r['over_budget'])} over {r['used_on']}'s median budget"
        lines.append(
            f"Searching on {r['searched_on']} for use on {r['used_on']} (median budgets): the "
            f"pick {cost}."
        )
    if not devices["rank_agreement"]:
        lines.append("One device profile: give --device twice or more to compare devices.")
    if table.accuracy is not None:
        a = table.accuracy.summary
        tau = a["predictor_heldout_kendall_tau"]
        lines.append(
            f"Accuracy: {a['measured_in_sample']:,} sampled archs measured on the supernet, "
            f"{a['predicted_in_sample']:,} predicted ({a['predictor']} predictor fitted on "
            f"{a['predictor_trained_on']} measured archs, held-out Kendall tau "
            f"{'n/a' if tau is None else f'{tau:.2f}'})."
        )
    else:
        lines.append("No --run: latency, MACs and parameters only; MACs stand in for accuracy.")
    return {
        "most_important": important,
        "flops_kendall_tau": {k: v["kendall_tau"] for k, v in flops.items()},
        "flops_spearman": {k: v["spearman"] for k, v in flops.items()},
        "device_kendall_tau": [
            {"a": r["device_a"], "b": r["device_b"], "tau": r["kendall_tau"]}
            for r in devices["rank_agreement"]
        ],
        "lines": lines,
    }


def summary_report(doc: Document, headline: dict[str, Any]) -> None:
    doc.heading("Summary")
    doc.bullets(headline["lines"], summary=True)


def setup_report(doc: Document, settings, table: StudyTable) -> None:
    doc.heading("Archs and settings")
    origins: dict[str, int] = {}
    for origin in table.origin:
        origins[origin] = origins.get(origin, 0) + 1
    resolutions = [table.decisions.dims[0].values[j] for j in table.decisions.value_order(0)]
    doc.paragraph(
        f"{len(table):,} archs of {table.decisions.space.name}: "
        + ", ".join(f"{n:,} {name}" for name, n in origins.items())
        + f"; the sample is stratified over log-MACs between the smallest and largest arch "
        f"(seed {settings.seed}); input resolutions {resolutions}"
        + (
            " (those every profile was measured at)"
            if len(resolutions) < len(table.decisions.space.resolutions)
            else ""
        )
        + "."
    )
    doc.table(
        ["label", "device", "backend", "source", "profile", "archs with regressed kernels"],
        [
            [
                d.label,
                d.description,
                d.backend,
                d.source,
                str(d.path),
                pct(float(np.mean(d.predictor.regressed_index(table.index)))),
            ]
            for d in table.devices
        ],
        "Devices (the last column: share of archs whose latency uses kernels or table blocks the "
        "profile lacks, predicted by its regressors)",
    )
    doc.table(
        ["objective", "min", "median", "max"],
        [
            [
                o.axis,
                fmt(o.values.min()),
                fmt(float(sorted(o.values)[len(o.values) // 2])),
                fmt(o.values.max()),
            ]
            for o in table.objectives
        ],
        "Objectives over the sample",
    )
    if table.accuracy is not None:
        a = table.accuracy.summary
        doc.paragraph(
            f"Accuracy is validation top-1 after BN recalibration ({a['checkpoint']}, step "
            f"{a['step']}), measured on the supernet for {a['measured_in_sample']:,} of the "
            f"studied archs: {a['measured_for_study']} picked by this study over the MACs range, "
            f"{a.get('winners_measured', 0)} more that the report names best under a budget "
            "(measured as searches measure their winners), the others measured before by the "
            "run's searches; all are kept in the run's accuracy cache. The "
            f"{a['predicted_in_sample']:,} others are predicted by the {a['predictor']} accuracy "
            "predictor; archs.jsonl labels each."
        )
    doc.paragraph(
        "Files: study.json (every number of this report), archs.jsonl (one line per arch: id, "
        "arch, decisions, MACs, parameters, latency per device"
        + (", accuracy and whether measured or predicted" if table.accuracy is not None else "")
        + "), report.md, report.html and the PNG figures. #N in tables is the arch with id N."
    )
