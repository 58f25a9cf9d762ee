"""Does search pay? The arch `nas search` picks against random and hand-designed archs.

Under each of two latency budgets on an ONNX Runtime profile measured on this machine (`nas
device measure`), three kinds of arch are trained standalone with the ranking benchmark's pinned
recipe (``--standalone-steps`` steps, once per seed of ``--seeds``):

* searched: the arch `nas search` (its default algorithm, ``--evaluations`` archs scored on the supernet)
  picks under the budget on the supernet of `nas train`'s default recipe;
* random: ``--random`` archs drawn uniformly among those that meet the budget;
* hand-designed: the space's largest arch shrunk uniformly -- every stage's depth and width (and
  the stem's width) stepped down together through its choices -- until it meets the budget.

Prints test top-1 mean +- std over seeds per arch, and the searched arch's gain over the hand
baseline and over the random archs (Welch's t-test on the per-seed accuracies). Writes
``search_value.json`` and ``search_value.png`` to ``--out``.

The supernet is the one `benchmarks/supernet_ranking.py` trains for the default recipe when
``--supernets`` points at its folder with the same settings (the default); otherwise it is
trained here. The profile, the searches and every training resume when rerun.

    python benchmarks/search_value.py                  # budgets at the 25th/60th latency percentile
    python benchmarks/search_value.py --latency-ms 0.4 0.8
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from supernet_ranking import WIDE_SPACE, supernet_config, task_space
from training_protocol import (
    REPO,
    Job,
    add_protocol_options,
    run_folder,
    run_jobs,
    seeds_of,
    standalone_config,
    train,
    write_arch,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_protocol_options(parser, str(WIDE_SPACE))
    parser.add_argument(
        "--supernet-steps", type=int, default=1200, help="supernet steps (default 1200)"
    )
    parser.add_argument(
        "--supernets",
        default=str(REPO / "runs" / "supernet_ranking" / "supernets"),
        help="folder of supernet runs (shared with the ranking benchmark)",
    )
    parser.add_argument("--profile", help="device profile (default: measured into --out)")
    parser.add_argument(
        "--latency-ms",
        type=float,
        nargs=2,
        help="the two budgets (default: 25th and 60th percentile of 1000 random archs)",
    )
    parser.add_argument("--random", type=int, default=5, help="random feasible archs per budget")
    parser.add_argument(
        "--evaluations", type=int, default=200, help="archs `nas search` evaluates (default 200)"
    )
    parser.add_argument(
        "--partial",
        action="store_true",
        help="train, measure and search nothing: report from what has finished so far",
    )
    parser.add_argument("--out", default=str(REPO / "runs" / "search_value"))
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    supernet = supernet_config(args, "default", 0)
    folder = run_folder(Path(args.supernets), "default-s0", supernet)
    profile = Path(args.profile) if args.profile else out / "onnxruntime_profile.json"
    if not args.partial:
        run_jobs([train("supernet default s0", supernet, folder)], 1)
        if not args.profile:
            measure_profile(args, profile)
    import search_spaces
    from nas.deploy import Device

    space = task_space(args)
    # the profile is of the declared space, as `nas search` opens it (the task's input
    # channels and classes are the data's, not the declaration's)
    device = Device.open(profile, search_spaces.get(args.space))
    budgets = args.latency_ms or default_budgets(space, device)
    plans = []
    for b, ms in enumerate(budgets):
        searched = searched_arch(folder, profile, ms, args.evaluations, run_it=not args.partial)
        if searched is None:
            continue
        plans.append(
            {
                "budget_ms": ms,
                "archs": [("searched", searched), ("hand", shrink_to_budget(space, device, ms))]
                + [
                    (f"random{k}", a)
                    for k, a in enumerate(random_feasible(space, device, ms, args.random, b))
                ],
            }
        )
    jobs: list[Job] = []
    for seed in seeds_of(args.seeds):  # every arch's first seed first
        for b, plan in enumerate(plans):
            for kind, arch in plan["archs"]:
                arch_file = write_arch(out / "archs" / f"b{b}-{kind}.json", arch)
                config = standalone_config(args, arch_file.resolve(), seed)
                job_folder = run_folder(out / "standalone", f"b{b}-{kind}-s{seed}", config)
                jobs.append(train(f"b{b} {kind} s{seed}", config, job_folder))
    if args.partial:
        for job in jobs:
            job.result = job.done()
    else:
        run_jobs(jobs, args.jobs)
    summary = summarise(args, plans, jobs, space, device, folder, profile)
    (out / "search_value.json").write_text(json.dumps(summary, indent=1) + "\n")
    print_table(summary)
    plot(summary, out / "search_value.png")
    print(f"wrote {out / 'search_value.json'} and {out / 'search_value.png'}")


# --------------------------------------------------------------------- steps


def _nas(*argv: str) -> None:
    """Run a `nas` command as a user would (fails loudly)."""
    command = [sys.executable, "-m", "nas.cli", *argv]
    print("$ nas " + " ".join(argv), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def measure_profile(args, path: Path) -> None:
    """An ONNX Runtime profile of this machine (one thread, batch 1), resumed when rerun."""
    _nas("device", "measure", "--backend", "onnxruntime", "--space", args.space, "--out", str(path))


def default_budgets(space, device) -> list[float]:
    """The 25th and 60th percentile of the predicted latency of 1000 random archs."""
    latency = device.latency([space.sample(random.Random(k)) for k in range(1000)])
    return [round(float(np.percentile(latency, q)), 4) for q in (25, 60)]


def searched_arch(run: Path, profile: Path, budget_ms: float, evaluations: int, *, run_it: bool):
    """The arch `nas search` reports as best under the budget (the search resumes); with
    ``run_it`` false, the one a finished search reported, or None."""
    from nas.arch import Arch

    name = f"value-{budget_ms:g}ms-{evaluations}"
    if run_it:
        budget, count = str(budget_ms), str(evaluations)
        target = ["--run", str(run), "--device", str(profile), "--latency-ms", budget]
        _nas("search", *target, "--evaluations", count, "--name", name)
    path = run / "search" / name / "results.json"
    if not path.is_file():
        return None
    (part,) = json.loads(path.read_text())["per_constraint"].values()
    return Arch.from_dict(part["best"]["arch"])


def random_feasible(space, device, budget_ms: float, count: int, salt: int) -> list:
    """``count`` distinct uniform archs that meet the budget (rejection sampling, fixed seed)."""
    rng = random.Random(f"random-feasible-{salt}")
    found: list = []
    while len(found) < count:
        batch = [space.sample(rng) for _ in range(200)]
        for arch, ms in zip(batch, device.latency(batch), strict=True):
            if ms <= budget_ms and arch not in found and len(found) < count:
                found.append(arch)
    return found


def shrink(space, fraction: float):
    """The largest arch with every stage's depth and width, and the stem's width, at the same
    fraction of their range of choices (0: smallest, 1: largest); other choices stay largest."""
    from dataclasses import replace

    def at(values) -> Any:
        ordered = sorted(values)
        return ordered[round(fraction * (len(ordered) - 1))]

    largest = space.max_arch()
    stages = []
    for spec, stage in zip(space.stages, largest.stages, strict=True):
        depth = at(spec.depths)
        per_layer = {
            name: getattr(stage, name)[:depth]
            for name in spec.per_layer
            if isinstance(getattr(stage, name), tuple)
        }
        stages.append(replace(stage, depth=depth, width=at(spec.widths), **per_layer))
    stem = replace(largest.stem, width=at(space.stem.widths))
    return space.validate(replace(largest, stem=stem, stages=tuple(stages)))


def shrink_to_budget(space, device, budget_ms: float):
    """:func:`shrink` at the largest fraction (steps of 0.05) that meets the budget; if even the
    smallest widths and depths do not, the resolution steps down too."""
    from dataclasses import replace

    for resolution in sorted(space.resolutions, reverse=True):
        for k in range(20, -1, -1):
            arch = replace(shrink(space, k / 20), resolution=resolution)
            if device.latency([arch])[0] <= budget_ms:
                return space.validate(arch)
    raise SystemExit(f"no shrunk arch meets {budget_ms} ms")


# --------------------------------------------------------------------- summary


def summarise(args, plans, jobs, space, device, run: Path, profile: Path) -> dict:
    """Per budget and arch the test top-1 of the finished seeds, and the searched arch's gains
    (``complete`` says whether every job had finished)."""
    from scipy.stats import ttest_ind

    from nas.graph import count

    results = {job.name: job.result for job in jobs}
    finished = [r for r in results.values() if r is not None]
    budgets = []
    for b, plan in enumerate(plans):
        rows = []
        for kind, arch in plan["archs"]:
            runs = [results[f"b{b} {kind} s{s}"] for s in seeds_of(args.seeds)]
            accs = [r["test_top1"] for r in runs if r is not None]
            rows.append(
                {
                    "kind": kind,
                    "arch": arch.to_dict(),
                    "predicted_ms": float(device.latency([arch])[0]),
                    "macs": count(space, arch)[0],
                    "test_top1": accs,
                    "mean": float(np.mean(accs)) if accs else None,
                    "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else None,
                }
            )
        part = {"budget_ms": plan["budget_ms"], "rows": rows}
        searched, hand = rows[0]["test_top1"], rows[1]["test_top1"]
        randoms = [a for r in rows[2:] for a in r["test_top1"]]
        random_means = [r["mean"] for r in rows[2:] if r["mean"] is not None]
        if searched and hand and randoms:
            part["random_mean"] = float(np.mean(randoms))
            part["random_std"] = (
                float(np.std(random_means, ddof=1)) if len(random_means) > 1 else None
            )
            gains = {
                "over_hand": float(np.mean(searched) - np.mean(hand)),
                "over_random_mean": float(np.mean(searched) - np.mean(randoms)),
                "over_best_random": float(np.mean(searched) - max(random_means)),
                "searched_rank_among_all": 1
                + sum(r["mean"] > rows[0]["mean"] for r in rows[1:] if r["mean"] is not None),
            }
            if len(searched) > 1 and len(hand) > 1:
                gains["p_over_hand"] = float(ttest_ind(searched, hand, equal_var=False).pvalue)
                gains["p_over_random"] = float(ttest_ind(searched, randoms, equal_var=False).pvalue)
            part["gains"] = gains
        budgets.append(part)
    return {
        "complete": len(finished) == len(results) and len(plans) == 2,
        "settings": {k: v for k, v in vars(args).items()},
        "supernet": str(run),
        "profile": str(profile),
        "device": device.name,
        "budgets": budgets,
        "standalone_runs_finished": len(finished),
        "standalone_cpu_s": sum(r["cpu_s"] for r in finished),
        "standalone_wall_s": sum(r["wall_s"] for r in finished),
    }


def print_table(summary: dict) -> None:
    if not summary["complete"]:
        print(f"\nPARTIAL: {summary['standalone_runs_finished']} standalone runs finished")
    for part in summary["budgets"]:
        print(f"\nbudget {part['budget_ms']:g} ms on {summary['device']}: test top-1 over seeds")
        for row in part["rows"]:
            std = "" if row["std"] is None else f" +- {row['std']:.4f}"
            mean = "not trained yet" if row["mean"] is None else f"{row['mean']:.4f}{std}"
            print(
                f"  {row['kind']:<9} {row['predicted_ms']:.3f} ms  {row['macs'] / 1e6:5.2f}M MACs  "
                f"res {row['arch']['resolution']}  {mean} ({len(row['test_top1'])} seeds)"
            )
        if "gains" not in part:
            continue
        g = part["gains"]
        p = (
            f" (p {g['p_over_hand']:.3f} / {g['p_over_random']:.3f}, Welch)"
            if "p_over_hand" in g
            else ""
        )
        print(
            f"  searched gain: {g['over_hand']:+.4f} over hand, {g['over_random_mean']:+.4f} over "
            f"the random mean, {g['over_best_random']:+.4f} over the best random{p}; rank "
            f"{g['searched_rank_among_all']} of {len(part['rows'])}"
        )
    print(
        f"\nstandalone trainings: {summary['standalone_cpu_s'] / 3600:.2f} CPU-h, "
        f"{summary['standalone_wall_s'] / 3600:.2f} h of job wall time"
    )


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = summary["budgets"]
    fig, axes = plt.subplots(1, len(parts), figsize=(6 * len(parts), 4.2), squeeze=False)
    for ax, part in zip(axes[0], parts, strict=True):
        rows = part["rows"]
        colours = ["tab:red", "tab:blue"] + ["0.6"] * (len(rows) - 2)
        xs = np.arange(len(rows))
        means = [r["mean"] or 0.0 for r in rows]
        errors = [r["std"] or 0.0 for r in rows]
        ax.bar(xs, means, yerr=errors, color=colours, capsize=3)
        for x, r in zip(xs, rows, strict=True):
            ax.scatter([x] * len(r["test_top1"]), r["test_top1"], color="k", s=8, zorder=3)
        ax.set_xticks(xs)
        ax.set_xticklabels([r["kind"] for r in rows], rotation=30, fontsize=8)
        accs = [a for r in rows for a in r["test_top1"]] or [0.0, 1.0]
        ax.set_ylim(min(accs) - 0.02, max(accs) + 0.01)
        ax.set_ylabel("standalone test top-1 (mean +- std over seeds)")
        g = part.get("gains")
        title = f"<= {part['budget_ms']:g} ms"
        if g:
            title += (
                f": searched {g['over_hand']:+.3f} vs hand, {g['over_random_mean']:+.3f} vs random"
            )
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
