"""What a search yields: Pareto fronts, best arch per budget, hypervolume, plots, a report."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nas.runs import replace_atomic, slug, write_atomic
from nas.search.pareto import as_maximised, hypervolume, pareto_mask
from nas.search.problem import Evaluation, Problem

REPORT_FORMAT = "nas-search-report"
REPORT_VERSION = 1


def _columns(evaluations: Sequence[Evaluation], problem: Problem, cost: str):
    score = np.array([e.objectives[problem.primary.name] for e in evaluations])
    costs = np.array(
        [e.constraints[cost] if cost in e.constraints else e.objectives[cost] for e in evaluations]
    )
    return score, costs


def pareto_front(
    evaluations: Sequence[Evaluation], problem: Problem, cost: str
) -> list[Evaluation]:
    """Evaluations not beaten on both the primary objective and ``cost`` (e.g. a latency),
    sorted by cost; only archs meeting every *other* constraint count."""
    pool = [e for e in evaluations if _meets_others(e, problem, cost)]
    if not pool:
        return []
    score, costs = _columns(pool, problem, cost)
    points = as_maximised(np.stack([score, costs], axis=1), [problem.primary.maximize, False])
    mask = pareto_mask(points)
    return sorted((e for e, m in zip(pool, mask, strict=True) if m), key=lambda e: _cost(e, cost))


def _cost(e: Evaluation, cost: str) -> float:
    return e.constraints[cost] if cost in e.constraints else e.objectives[cost]


def _meets_others(e: Evaluation, problem: Problem, cost: str) -> bool:
    return all(e.constraints[c.name] <= c.limit for c in problem.constraints if c.name != cost)


def best_under(
    evaluations: Sequence[Evaluation], problem: Problem, cost: str, budget: float
) -> Evaluation | None:
    """The best primary objective among archs with ``cost <= budget`` meeting the others."""
    pool = [e for e in evaluations if _meets_others(e, problem, cost) and _cost(e, cost) <= budget]
    if not pool:
        return None
    sign = 1 if problem.primary.maximize else -1
    return max(pool, key=lambda e: sign * e.objectives[problem.primary.name])


def front_hypervolume(
    evaluations: Sequence[Evaluation], problem: Problem, cost: str, reference: tuple[float, float]
) -> float:
    """Hypervolume of (primary, cost) against ``reference`` = (worst primary, largest cost)."""
    pool = [e for e in evaluations if _meets_others(e, problem, cost)]
    if not pool:
        return 0.0
    score, costs = _columns(pool, problem, cost)
    maximize = [problem.primary.maximize, False]
    points = as_maximised(np.stack([score, costs], axis=1), maximize)
    return hypervolume(points, as_maximised(np.array([reference]), maximize)[0])


def plot_front(
    evaluations: Sequence[Evaluation],
    problem: Problem,
    cost: str,
    path: Path,
    budget: float | None = None,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    score, costs = _columns(evaluations, problem, cost)
    front = pareto_front(evaluations, problem, cost)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    ax.scatter(costs, score, s=8, alpha=0.35, color="tab:gray", label="evaluated")
    if front:
        fc, fs = _columns(front, problem, cost)[1], _columns(front, problem, cost)[0]
        ax.step(fc, fs, where="post", color="tab:blue", lw=1.5)
        ax.scatter(fc, fs, s=22, color="tab:blue", label="Pareto front", zorder=3)
    if budget is not None:
        ax.axvline(budget, color="tab:red", ls="--", lw=1, label=f"budget {budget:g}")
        best = best_under(evaluations, problem, cost, budget)
        if best is not None:
            ax.scatter(
                [_cost(best, cost)],
                [best.objectives[problem.primary.name]],
                marker="*",
                s=160,
                color="tab:red",
                zorder=4,
                label="best under budget",
            )
    ax.set_xlabel(cost)
    ax.set_ylabel(problem.primary.name)
    title = f"{problem.space.name}: {problem.primary.name} vs {cost}"
    if problem.primary.description:  # e.g. that the objective is a proxy, not accuracy
        title += f" -- {problem.primary.description}"
    ax.set_title(textwrap.fill(title, 60), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    replace_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


def write_report(
    evaluations: Sequence[Evaluation],
    problem: Problem,
    folder: Path,
    algorithm: str,
    extra: dict | None = None,
) -> dict:
    """``results.json`` (with ``extra`` entries) and one ``pareto_<cost>.png`` per latency/cost
    constraint."""
    folder = Path(folder)
    costs = [c for c in problem.constraints] or []
    report = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "space": problem.space.name,
        "algorithm": algorithm,
        "evaluations": len(evaluations),
        "feasible": sum(e.feasible for e in evaluations),
        "objective": problem.primary.name,
        "objective_description": problem.primary.description or None,
        "per_constraint": {},
    }
    for c in costs:
        values = [_cost(e, c.name) for e in evaluations]
        scores = [e.objectives[problem.primary.name] for e in evaluations]
        reference = (min(scores) if problem.primary.maximize else max(scores), max(values))
        best = best_under(evaluations, problem, c.name, c.limit)
        front = pareto_front(evaluations, problem, c.name)
        plot = plot_front(
            evaluations, problem, c.name, folder / f"pareto_{slug(c.name)}.png", c.limit
        )
        report["per_constraint"][c.name] = {
            "budget": c.limit,
            "best": None if best is None else _record(best),
            "hypervolume": front_hypervolume(evaluations, problem, c.name, reference),
            "hypervolume_reference": list(reference),
            "pareto_front": [_record(e) for e in front],
            "plot": plot.name,
        }
    report.update(extra or {})
    write_atomic(folder / "results.json", json.dumps(report, indent=2) + "\n")
    return report


def _record(e: Evaluation) -> dict:
    return {"arch": e.arch.to_dict(), "objectives": e.objectives, "constraints": e.constraints}
