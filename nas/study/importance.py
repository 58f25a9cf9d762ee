"""Importance of each decision for each objective, by Optuna's importance evaluators.

The sampled archs become the completed trials of an in-memory Optuna study (one parameter per
decision, categorical over its values; per-layer decisions past a stage's depth are left out, as
conditional parameters), with every objective as a value; ``optuna.importance`` then ranks the
decisions per objective:

* ``ped-anova`` (default): PED-ANOVA, how much each decision matters for an arch to be among the
  best 10% on the objective (cheapest for costs, most accurate for accuracy). Handles the
  conditional per-layer decisions.
* ``fanova``: fANOVA, each decision's share of the objective's variance, from a random forest
  (16 trees of depth at most 8, for speed); it weighs only decisions present in every arch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from nas.errors import InputError
from nas.study.decisions import decision_label
from nas.study.figures import pyplot, save, wrap
from nas.study.report import Document, fmt
from nas.study.table import StudyTable

EVALUATORS = ("ped-anova", "fanova")
SHOWN = 12


def _evaluator(name: str, seed: int):
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    if name == "ped-anova":
        return PedAnovaImportanceEvaluator()
    if name == "fanova":
        return FanovaImportanceEvaluator(n_trees=16, max_depth=8, seed=seed)
    raise InputError(f"unknown importance evaluator {name!r}; choices: {', '.join(EVALUATORS)}")


def _study(table: StudyTable, index: np.ndarray, values: list[np.ndarray]):
    """An in-memory study whose trials are the archs ``index`` with objective ``values``."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    decisions = table.decisions
    varied = [k for k in range(len(decisions.dims)) if decisions.varied(k)]
    dists = {
        decisions.dims[k].name: CategoricalDistribution(decisions.dims[k].values) for k in varied
    }
    active = decisions.active(index)
    study = optuna.create_study(directions=["minimize"] * len(values))
    trials = []
    for n, row in enumerate(index):
        params = {
            decisions.dims[k].name: decisions.dims[k].values[row[k]] for k in varied if active[n, k]
        }
        trials.append(
            optuna.trial.create_trial(
                params=params,
                distributions={name: dists[name] for name in params},
                values=[float(v[n]) for v in values],
            )
        )
    study.add_trials(trials)
    return study, list(dists)


def importances(
    table: StudyTable, evaluator: str, archs: int, seed: int = 0, progress: bool = True
) -> dict[str, Any]:
    """Normalised importance of every varied decision for every objective (sums to 1), on
    ``archs`` uniformly drawn archs: importance evaluators assume independent decisions, which
    the complexity-stratified sample is not."""
    import optuna
    from optuna.importance import get_param_importances

    index = table.decisions.uniform(np.random.default_rng(seed + 2), archs)
    values = [o.evaluate(index) for o in table.objectives]
    labels = {d.name: decision_label(d) for d in table.decisions.dims}
    out: dict[str, Any] = {"evaluator": evaluator, "archs": len(index), "per_objective": {}}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study, params = _study(table, index, values)
            for k, o in enumerate(
                tqdm(
                    table.objectives,
                    desc="importance",
                    unit="objective",
                    disable=not progress,
                    leave=False,
                )
            ):
                sign = -1.0 if o.kind == "accuracy" else 1.0
                ranking = get_param_importances(
                    study,
                    evaluator=_evaluator(evaluator, seed),
                    params=params if evaluator == "ped-anova" else None,
                    target=lambda t, k=k, sign=sign: sign * t.values[k],
                )
                out["per_objective"][o.key] = [
                    {"decision": name, "label": labels[name], "importance": float(value)}
                    for name, value in ranking.items()
                ]
    finally:
        optuna.logging.set_verbosity(verbosity)
    return out


def top(result: dict, key: str, n: int = 3) -> list[dict]:
    return result["per_objective"].get(key, [])[:n]


def figure(result: dict, table: StudyTable, folder: Path) -> Path:
    """One bar chart per objective: the most important decisions."""
    plt = pyplot()
    objectives = table.objectives
    cols = min(3, len(objectives))
    rows = -(-len(objectives) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax, o in zip(axes.flat, objectives, strict=False):
        ranking = result["per_objective"][o.key][:SHOWN][::-1]
        ax.barh(
            [wrap(r["label"], 30) for r in ranking],
            [r["importance"] for r in ranking],
            color="#4c72b0",
        )
        ax.set_xlabel("importance (share, sums to 1)")
        ax.set_title(wrap(f"{o.name}", 50))
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes.flat[len(objectives) :]:
        ax.axis("off")
    return save(fig, folder / "importance.png")


def report(doc: Document, result: dict, table: StudyTable, path: Path) -> None:
    doc.heading("Importance of decisions", 3)
    meaning = (
        "how much each decision matters for an arch to be among the best 10% on the objective "
        "(PED-ANOVA)"
        if result["evaluator"] == "ped-anova"
        else "each decision's share of the objective's variance (fANOVA)"
    )
    doc.paragraph(
        f"Importance by Optuna's {result['evaluator']} evaluator on {result['archs']:,} archs "
        f"drawn uniformly (every decision independent, as the evaluators assume; the "
        f"complexity-stratified sample ties decisions together): {meaning}. Importances of one "
        "objective sum to 1."
        + (" Accuracy of these archs is predicted." if table.accuracy is not None else "")
    )
    doc.figure(path, "The most important decisions per objective.")
    header = ["rank"] + [o.name for o in table.objectives]
    rankings = [result["per_objective"][o.key] for o in table.objectives]
    rows = []
    for r in range(min(SHOWN, max(len(x) for x in rankings))):
        row: list[Any] = [r + 1]
        for ranking in rankings:
            row.append(
                f"{ranking[r]['label']} ({fmt(ranking[r]['importance'], 2)})"
                if r < len(ranking)
                else ""
            )
        rows.append(row)
    doc.table(header, rows, "Decisions ranked per objective (importance in brackets)")
