"""Does the supernet rank subnets as standalone training does? Ranking, samplers and recipes.

1. Picks ``--archs`` archs of the space spread evenly over ``--levels`` complexity levels (MACs,
   or predicted latency with ``--device-profile``; the smallest and largest arch included) and
   trains each one standalone with one pinned recipe for ``--standalone-steps`` steps, once per
   seed of ``--seeds``: the ground truth is each arch's mean test top-1 over seeds.
2. Trains one supernet per recipe of ``--recipes`` and seed of ``--supernet-seeds`` for
   ``--supernet-steps`` steps (times the recipe's factor). A recipe is ``nas train``'s defaults
   with the options of :data:`RECIPES` changed; the samplers there all train the same number of
   subnets per step (the largest as teacher, and two more), so they compare at equal optimizer
   steps and trained subnets; forward passes spent only scoring candidates (PAS, best-of-k) are
   counted and reported.
3. Scores every arch on each supernet with BN recalibration (validation split: what `nas search`
   maximises; test split: per-level probe accuracy) and reports Kendall's tau and Spearman's rho
   between inherited and standalone accuracy with bootstrap intervals (scipy.stats), tau over
   pairs within a level, and the same for the accuracy predictors (mlp, gbm, ridge) fitted on
   ``--predictor-archs`` random archs measured on the supernet of each recipe of
   ``--predictors-for``. For scale: tau of MACs alone, and the noise ceiling (tau between one
   standalone seed and the mean of the others).

Writes ``ranking.json`` and ``ranking.png`` to ``--out``. Every training is a resumable run folder
(its name carries a digest of its configuration): rerun the same command after an interruption;
finished jobs are skipped.

    python benchmarks/supernet_ranking.py                       # default recipe, 24 archs x 3 seeds
    python benchmarks/supernet_ranking.py --recipes uniform,sandwich,cas,cas+pas,attentivenas \\
        --supernet-seeds 0,1,2                                  # samplers at equal compute
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
from training_protocol import (
    REPO,
    Job,
    add_protocol_options,
    base_config,
    digest,
    run_folder,
    run_jobs,
    seeds_of,
    standalone_config,
    train,
    write_arch,
)

#: Supernet recipes: ``nas train``'s defaults with these options changed, and a factor on the
#: number of steps. Each sampler trains the largest subnet and two more per step.
RECIPES: dict[str, tuple[dict[str, Any], float]] = {
    "default": ({}, 1.0),
    "uniform": ({"sampler": "uniform", "distill": "kl"}, 1.0),
    "sandwich": ({"sampler": "sandwich", "distill": "kl"}, 1.0),
    "cas": ({"sampler": "cas", "distill": "kl"}, 1.0),
    "cas+pas": ({"sampler": "cas+pas", "distill": "kl"}, 1.0),
    "attentivenas": ({"sampler": "sandwich", "distill": "kl", "best_of": 3}, 1.0),
    "alpha": ({"distill": "alpha"}, 1.0),
    "no-distill": ({"distill": "none"}, 1.0),
    "long": ({}, 2.0),
}
PREDICTORS = ("mlp", "gbm", "ridge")
#: hybrid-tiny widened (8-32 px, narrower choices): on hybrid-tiny itself the standalone
#: accuracies of a few hundred steps span too little beyond seed noise to rank.
WIDE_SPACE = REPO / "benchmarks" / "spaces" / "hybrid-wide.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_protocol_options(parser, str(WIDE_SPACE))
    parser.add_argument("--archs", type=int, default=24, help="archs to rank (default 24)")
    parser.add_argument("--levels", type=int, default=6, help="complexity levels (default 6)")
    parser.add_argument(
        "--device-profile",
        help="spread the archs over latency levels of this device profile (default: MACs)",
    )
    parser.add_argument(
        "--recipes",
        default="default",
        help=f"supernet recipes, comma-separated, from: {', '.join(RECIPES)} (default: default)",
    )
    parser.add_argument("--supernet-seeds", default="0", help="seeds of each supernet (default 0)")
    parser.add_argument(
        "--supernet-steps",
        type=int,
        default=1200,
        help="optimizer steps of a supernet (times the recipe's factor; default 1200)",
    )
    parser.add_argument(
        "--predictor-archs",
        type=int,
        default=150,
        help="random archs measured on the supernet to fit the accuracy predictors (default 150)",
    )
    parser.add_argument(
        "--predictors-for",
        default="default",
        help="recipes whose first-seed supernet fits the accuracy predictors ('' for none)",
    )
    parser.add_argument(
        "--calib-images",
        default="",
        help="also score the archs with BN recalibrated on these numbers of images, "
        "comma-separated (default: only the run's own --calib-images)",
    )
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument(
        "--partial",
        action="store_true",
        help="train nothing: report from the jobs finished so far (marked incomplete)",
    )
    parser.add_argument("--out", default=str(REPO / "runs" / "supernet_ranking"))
    args = parser.parse_args()

    recipes = [r for r in args.recipes.split(",") if r]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; choices: {', '.join(RECIPES)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    probes = choose_archs(args, out)
    jobs, supernets = plan_jobs(args, out, probes, recipes)
    if args.partial:
        for job in jobs:
            job.result = job.done()
    else:
        run_jobs(jobs, args.jobs)
    summary = summarise(args, probes, jobs, supernets)
    (out / "ranking.json").write_text(json.dumps(summary, indent=1) + "\n")
    print_tables(summary)
    plot(summary, out / "ranking.png")
    print(f"wrote {out / 'ranking.json'} and {out / 'ranking.png'}")


# --------------------------------------------------------------------- archs


def choose_archs(args, out: Path) -> list[dict]:
    """The archs to rank (cached in ``archs.json``: the same archs for every later run)."""
    import search_spaces
    from nas.arch import Arch
    from nas.runs import write_atomic
    from nas.train.levels import build_levels, complexity_function
    from nas.train.ranking import spread_archs

    key = {
        "space": args.space,
        "archs": args.archs,
        "levels": args.levels,
        "device_profile": args.device_profile,
    }
    path = out / "archs.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved["key"] == key:
            return [{**p, "arch": Arch.from_dict(p["arch"])} for p in saved["archs"]]
    declared = search_spaces.get(args.space)
    space = task_space(args)
    metric = "latency" if args.device_profile else "macs"
    complexity = complexity_function(space, metric, args.device_profile, declared)
    levels = build_levels(
        space, complexity, count=args.levels, draws=3000, pool_size=100_000, seed=0, metric=metric
    )
    from nas.graph import count

    probes = [
        {"level": p.level, metric: p.value, "macs": count(space, p.arch)[0], "arch": p.arch}
        for p in spread_archs(space, complexity, levels, args.archs)
    ]
    saved = {
        "key": key,
        "metric": metric,
        "edges": levels.edges,
        "archs": [{**p, "arch": p["arch"].to_dict()} for p in probes],
    }
    write_atomic(path, json.dumps(saved, indent=1) + "\n")
    return probes


def task_space(args):
    """The space as trained on the data (its classes and input channels)."""
    import search_spaces
    from nas.train.data import load_data

    data = load_data(args.data, train_limit=1000, eval_limit=10)
    return search_spaces.get(args.space).with_task(
        num_classes=data.num_classes, in_channels=data.in_channels
    )


# --------------------------------------------------------------------- jobs


def supernet_config(args, recipe: str, seed: int):
    """``nas train``'s defaults with the recipe's options, on the protocol's data and budget."""
    options, factor = RECIPES[recipe]
    return base_config(args, round(args.supernet_steps * factor), seed, **options)


def plan_jobs(args, out: Path, probes: list[dict], recipes: list[str]):
    """The jobs (supernets first: they are the longest), and per recipe its runs by seed."""
    predictor_recipes = [r for r in args.predictors_for.split(",") if r]
    calib = [int(c) for c in args.calib_images.split(",") if c]
    runs: dict[str, dict] = {}  # by configuration digest: recipes with the same options share
    supernets: dict[str, list[dict]] = {}
    for recipe in recipes:
        for n, seed in enumerate(seeds_of(args.supernet_seeds)):
            config = supernet_config(args, recipe, seed)
            run = runs.setdefault(
                digest(config),
                {
                    "name": f"supernet {recipe} s{seed}",
                    "config": config,
                    "folder": run_folder(out / "supernets", f"{recipe}-s{seed}", config),
                    "predictors": 0,
                },
            )
            if recipe in predictor_recipes and n == 0:
                run["predictors"] = args.predictor_archs
            supernets.setdefault(recipe, []).append({"seed": seed, "run": run})
    jobs = [train(run["name"], run["config"], run["folder"]) for run in runs.values()]
    for seed in seeds_of(args.seeds):
        for k in spread_order(len(probes)):
            probe = probes[k]
            arch_file = write_arch(out / "archs" / f"a{k:02d}.json", probe["arch"])
            config = standalone_config(args, arch_file.resolve(), seed)
            folder = run_folder(out / "standalone", f"a{k:02d}-s{seed}", config)
            jobs.append(train(f"standalone a{k:02d} s{seed}", config, folder))
    archs = [p["arch"].to_dict() for p in probes]
    for run in runs.values():
        tag = f"p{run['predictors']}-c{'_'.join(map(str, calib)) or 'run'}"
        run["evaluation"] = f"{run['name']} ranking {tag}"
        jobs.append(
            Job(
                run["evaluation"],
                run["folder"] / "ranking" / tag,
                evaluate_supernet,
                (str(run["folder"]), archs, run["predictors"], calib),
                after=(run["name"],),
            )
        )
    for recipe, entries in supernets.items():
        supernets[recipe] = [
            {
                "seed": e["seed"],
                "train": e["run"]["name"],
                "evaluation": e["run"]["evaluation"],
                "folder": str(e["run"]["folder"]),
            }
            for e in entries
        ]
    return jobs, supernets


def spread_order(count: int) -> list[int]:
    """0..count-1 with the ends first, then each next index as far as possible from those
    before it: a run stopped early has archs across the whole range."""
    order = [0, count - 1][:count]
    while len(order) < count:
        order.append(max(range(count), key=lambda i: min(abs(i - j) for j in order)))
    return order


def evaluate_supernet(
    folder: str, arch_dicts: list[dict], predictor_archs: int, calib: list[int]
) -> dict:
    """In a worker: inherited val and test top-1 of the ranked archs (BN recalibrated on the
    run's calibration images, and on ``calib`` other counts), and val top-1 of
    ``predictor_archs`` random archs (cached in the run's accuracy cache, resumable)."""
    from nas.arch import Arch
    from nas.train.evaluate import calibration_images, evaluate_archs, evaluation_copy
    from nas.trained import TrainedRun

    run = TrainedRun.open(folder)
    archs = [Arch.from_dict(a) for a in arch_dicts]
    result: dict[str, Any] = {
        "val_top1": run.accuracy(archs, "val").tolist(),
        "test_top1": run.accuracy(archs, "test").tolist(),
        "checkpoint": run.checkpoint.name,
    }
    for count in calib:
        images = calibration_images(run.data.train, count)
        splits = [run.data.val, run.data.test]
        rows = evaluate_archs(evaluation_copy(run.supernet), archs, images, splits, run.batch_size)
        result[f"calib{count}"] = {
            "val_top1": [r[0] for r in rows],
            "test_top1": [r[1] for r in rows],
        }
    if predictor_archs:
        rng = random.Random(f"predictor-archs-{predictor_archs}")
        sample = list(dict.fromkeys(run.space.sample(rng) for _ in range(predictor_archs)))
        measured = []
        for start in range(0, len(sample), 10):  # cached in chunks: an interruption loses little
            measured += run.accuracy(sample[start : start + 10], "val").tolist()
        result["predictor_archs"] = [a.to_dict() for a in sample]
        result["predictor_val_top1"] = measured
    return result


# --------------------------------------------------------------------- summary


def summarise(args, probes: list[dict], jobs: list[Job], supernets: dict) -> dict:
    """Every figure, from the jobs finished so far (``complete`` says whether that is all)."""
    from nas.train.ranking import rank_agreement

    results = {job.name: job.result for job in jobs}
    seeds = seeds_of(args.seeds)
    names = [[f"standalone a{k:02d} s{s}" for s in seeds] for k in range(len(probes))]
    standalone = np.array(
        [[(results[n] or {}).get("test_top1", np.nan) for n in row] for row in names]
    )
    ranked = ~np.isnan(standalone).all(axis=1)  # archs with at least one finished seed
    if ranked.sum() < 3:
        raise SystemExit(f"{int(ranked.sum())} archs have a finished standalone run: 3 needed")
    truth = np.full(len(probes), np.nan)
    truth[ranked] = np.nanmean(standalone[ranked], axis=1)
    levels = np.array([p["level"] for p in probes])
    finished = [results[n] for row in names for n in row if results[n] is not None]

    def agreement(scores) -> dict:
        scores = np.asarray(scores, dtype=float)[ranked]
        return rank_agreement(
            scores, truth[ranked], groups=levels[ranked].tolist(), resamples=args.resamples
        )

    summary: dict[str, Any] = {
        "complete": all(r is not None for r in results.values()),
        "settings": {k: v for k, v in vars(args).items()},
        "archs": [
            {
                "level": p["level"],
                "macs": p["macs"],
                "resolution": p["arch"].resolution,
                "arch": p["arch"].to_dict(),
                "standalone_test_top1": [None if np.isnan(a) else a for a in standalone[k]],
                "standalone_mean": None if np.isnan(truth[k]) else float(truth[k]),
                "standalone_std": _std(standalone[k]),
            }
            for k, p in enumerate(probes)
        ],
        "standalone": {
            "seeds": seeds,
            "runs_finished": len(finished),
            "archs_ranked": int(ranked.sum()),
            "span": float(np.nanmax(truth) - np.nanmin(truth)),
            "min": float(np.nanmin(truth)),
            "max": float(np.nanmax(truth)),
            "cpu_s": sum(r["cpu_s"] for r in finished),
            "wall_s": sum(r["wall_s"] for r in finished),
        },
        "macs_baseline": agreement([p["macs"] for p in probes]),
        "recipes": {},
    }
    full = ~np.isnan(standalone).any(axis=1)
    if len(seeds) > 1 and full.sum() >= 3:
        # Seed noise over the archs with every seed: the pooled per-arch standard deviation, and
        # how well one seed ranks the mean of the others (what any proxy can hope for).
        every = standalone[full]
        summary["standalone"]["seed_std"] = float(np.sqrt(every.var(axis=1, ddof=1).mean()))
        summary["standalone"]["seed_std_archs"] = int(full.sum())
        ceilings = []
        for j in range(len(seeds)):
            others = np.delete(every, j, axis=1).mean(axis=1)
            ceilings.append(rank_agreement(every[:, j], others, resamples=10)["kendall_tau"])
        summary["standalone"]["noise_ceiling_tau"] = float(np.mean(ceilings))
    space = task_space(args)
    level_ids = sorted(set(levels.tolist()))
    for recipe, runs in supernets.items():
        per_seed = []
        for entry in runs:
            train_result, evaluation = results[entry["train"]], results[entry["evaluation"]]
            if train_result is None or evaluation is None:
                continue
            val, test = evaluation["val_top1"], evaluation["test_top1"]
            row = {
                "seed": entry["seed"],
                "folder": entry["folder"],
                "inherited_val_top1": val,
                "inherited_test_top1": test,
                "ranking": agreement(val),
                "level_test_top1": [
                    float(np.mean([t for t, lv in zip(test, levels, strict=True) if lv == level]))
                    for level in level_ids
                ],
                "mean_test_top1": float(np.mean(test)),
                "trained_passes": train_result.get("trained_passes"),
                "scored_passes": train_result.get("scored_passes"),
                "steps": train_result["steps"],
                "train_wall_s": train_result["wall_s"],
                "train_cpu_s": train_result["cpu_s"],
            }
            for key, value in evaluation.items():
                if key.startswith("calib"):
                    row[key] = {"ranking": agreement(value["val_top1"]), **value}
            if "predictor_archs" in evaluation:
                row["predictors"] = _predictors(space, evaluation, probes, agreement)
            per_seed.append(row)
        if not per_seed:
            continue
        same = [
            other
            for other, r in summary["recipes"].items()
            if [s["folder"] for s in r["seeds"]] == [s["folder"] for s in per_seed]
        ]
        summary["recipes"][recipe] = {
            "options": RECIPES[recipe][0],
            "steps_factor": RECIPES[recipe][1],
            "same_runs_as": same[0] if same else None,
            "seeds": per_seed,
            "kendall_tau": _mean_ci([r["ranking"]["kendall_tau"] for r in per_seed]),
            "spearman": _mean_ci([r["ranking"]["spearman"] for r in per_seed]),
            "within_level_tau": _mean_ci([r["ranking"]["within_level_tau"] for r in per_seed]),
            "mean_test_top1": _mean_ci([r["mean_test_top1"] for r in per_seed]),
            "level_test_top1": [
                _mean_ci([r["level_test_top1"][k] for r in per_seed]) for k in range(len(level_ids))
            ],
        }
    return summary


def _std(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.std(ddof=1)) if len(values) > 1 else None


def _predictors(space, evaluation: dict, probes: list[dict], agreement) -> dict:
    from nas.arch import Arch
    from predictors.accuracy import AccuracyPredictor

    archs = [Arch.from_dict(a) for a in evaluation["predictor_archs"]]
    out = {"fitted_on": len(archs)}
    targets = [p["arch"] for p in probes]
    for kind in PREDICTORS:
        predictor = AccuracyPredictor(space, kind, seed=0).fit(
            archs, evaluation["predictor_val_top1"]
        )
        out[kind] = agreement(predictor.predict(targets).tolist())
    return out


def _mean_ci(values: list[float], confidence: float = 0.95) -> dict:
    """Mean over seeds with a t interval (None with one seed)."""
    from scipy.stats import t

    values = [v for v in values if v is not None and not math.isnan(v)]
    mean = float(np.mean(values)) if values else float("nan")
    if len(values) < 2:
        return {"mean": mean, "ci": None, "n": len(values)}
    half = (
        t.ppf(0.5 + confidence / 2, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))
    )
    return {"mean": mean, "ci": [mean - float(half), mean + float(half)], "n": len(values)}


def _interval(stat: dict, name: str) -> str:
    low, high = stat[f"{name}_ci"]
    return f"{stat[name]:+.3f} [{low:+.3f}, {high:+.3f}]"


def _with_ci(stat: dict, digits: int = 3) -> str:
    if stat["ci"] is None:
        return f"{stat['mean']:.{digits}f}"
    half = (stat["ci"][1] - stat["ci"][0]) / 2
    return f"{stat['mean']:.{digits}f} +- {half:.{digits}f}"


def print_tables(summary: dict) -> None:
    alone = summary["standalone"]
    if not summary["complete"]:
        print(
            f"\nPARTIAL: {alone['runs_finished']} standalone runs finished, "
            f"{alone['archs_ranked']} archs ranked; recipes shown: {list(summary['recipes'])}"
        )
    print(
        f"\nstandalone test top-1 over {len(summary['archs'])} archs x seeds {alone['seeds']}: "
        f"{alone['min']:.4f} - {alone['max']:.4f} (span {alone['span']:.4f}"
        + (
            f"; seed std {alone['seed_std']:.4f} over {alone['seed_std_archs']} archs; "
            f"noise ceiling tau {alone['noise_ceiling_tau']:+.3f})"
            if "seed_std" in alone
            else ")"
        )
        + f"; {alone['cpu_s'] / 3600:.2f} CPU-h, {alone['wall_s'] / 3600:.2f} h of job wall time"
    )
    print(f"MACs alone: Kendall tau {_interval(summary['macs_baseline'], 'kendall_tau')}")
    print(
        "\nsupernet-inherited (val, BN recalibrated) vs standalone (test) accuracy, 95% bootstrap"
    )
    header = [
        "recipe",
        "seed",
        "kendall tau [CI]",
        "spearman [CI]",
        "within-level tau",
        "probe test",
    ]
    rows = []
    for recipe, r in summary["recipes"].items():
        if r["same_runs_as"]:
            rows.append([recipe, f"= {r['same_runs_as']}", "", "", "", ""])
            continue
        for s in r["seeds"]:
            k = s["ranking"]
            rows.append(
                [
                    recipe,
                    str(s["seed"]),
                    _interval(k, "kendall_tau"),
                    _interval(k, "spearman"),
                    f"{k['within_level_tau']:+.3f}",
                    f"{s['mean_test_top1']:.4f}",
                ]
            )
            for key in sorted(x for x in s if x.startswith("calib")):
                k = s[key]["ranking"]
                rows.append(
                    [
                        f"  {key}",
                        "",
                        _interval(k, "kendall_tau"),
                        _interval(k, "spearman"),
                        f"{k['within_level_tau']:+.3f}",
                        "",
                    ]
                )
            for kind in PREDICTORS if "predictors" in s else ():
                k = s["predictors"][kind]
                rows.append(
                    [
                        f"  {kind} ({s['predictors']['fitted_on']})",
                        "",
                        _interval(k, "kendall_tau"),
                        _interval(k, "spearman"),
                        f"{k['within_level_tau']:+.3f}",
                        "",
                    ]
                )
    _table(header, rows)
    print("\nper recipe over seeds (mean +- 95% t interval): tau, and probe test top-1 per level")
    levels = (
        len(next(iter(summary["recipes"].values()))["level_test_top1"]) if summary["recipes"] else 0
    )
    header = ["recipe", "seeds", "kendall tau", "mean"] + [f"L{k}" for k in range(levels)]
    header += ["trained", "scored", "CPU-h"]
    rows = []
    for recipe, r in summary["recipes"].items():
        first = r["seeds"][0]
        rows.append(
            [
                recipe,
                str(len(r["seeds"])),
                _with_ci(r["kendall_tau"]),
                _with_ci(r["mean_test_top1"], 4),
            ]
            + [_with_ci(x, 4) for x in r["level_test_top1"]]
            + [
                str(first["trained_passes"]),
                str(first["scored_passes"]),
                f"{sum(s['train_cpu_s'] for s in r['seeds']) / 3600:.2f}",
            ]
        )
    per_level: dict[int, list[float]] = {}
    means = [a["standalone_mean"] for a in summary["archs"] if a["standalone_mean"] is not None]
    for a in summary["archs"]:
        if a["standalone_mean"] is not None:
            per_level.setdefault(a["level"], []).append(a["standalone_mean"])
    rows.append(
        ["standalone", "", "", f"{np.mean(means):.4f}"]
        + [f"{np.mean(v):.4f}" for _, v in sorted(per_level.items())]
        + ["", "", ""]
    )
    _table(header, rows)


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = summary["archs"]
    truth = np.array(
        [np.nan if a["standalone_mean"] is None else a["standalone_mean"] for a in archs]
    )
    error = np.array([a["standalone_std"] or 0.0 for a in archs])
    levels = np.array([a["level"] for a in archs])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    left, middle, right = axes
    recipes = summary["recipes"]
    if recipes:
        name, r = next(iter(recipes.items()))
        seed = r["seeds"][0]
        inherited = np.array(seed["inherited_val_top1"])
        left.errorbar(inherited, truth, yerr=error, fmt="none", ecolor="0.7", zorder=1)
        points = left.scatter(inherited, truth, c=levels, cmap="viridis", zorder=2)
        fig.colorbar(points, ax=left, label="complexity level")
        k = seed["ranking"]
        left.set_title(
            f"{name} (seed {seed['seed']}): tau {k['kendall_tau']:+.2f} "
            f"[{k['kendall_tau_ci'][0]:+.2f}, {k['kendall_tau_ci'][1]:+.2f}]",
            fontsize=10,
        )
    left.set_xlabel("supernet-inherited val top-1 (BN recalibrated)")
    left.set_ylabel("standalone test top-1 (mean +- std over seeds)")

    labels, values, lows, highs = [], [], [], []
    for name, r in recipes.items():
        for s in r["seeds"] if not r["same_runs_as"] else ():
            k = s["ranking"]
            labels.append(f"{name} s{s['seed']}")
            values.append(k["kendall_tau"])
            lows.append(k["kendall_tau_ci"][0])
            highs.append(k["kendall_tau_ci"][1])
            for kind in PREDICTORS if "predictors" in s else ():
                p = s["predictors"][kind]
                labels.append(f"  {kind} ({name})")
                values.append(p["kendall_tau"])
                lows.append(p["kendall_tau_ci"][0])
                highs.append(p["kendall_tau_ci"][1])
    ys = np.arange(len(labels))[::-1]
    values, lows, highs = map(np.array, (values, lows, highs))
    middle.errorbar(values, ys, xerr=[values - lows, highs - values], fmt="o", capsize=3)
    middle.set_yticks(ys)
    middle.set_yticklabels(labels, fontsize=8)
    middle.axvline(
        summary["macs_baseline"]["kendall_tau"], color="0.5", ls="--", label="MACs alone"
    )
    if "noise_ceiling_tau" in summary["standalone"]:
        middle.axvline(
            summary["standalone"]["noise_ceiling_tau"],
            color="k",
            ls=":",
            label="seed noise ceiling",
        )
    middle.axvline(0.7, color="tab:red", lw=0.8, label="target 0.7")
    middle.set_xlabel("Kendall tau with standalone accuracy (95% bootstrap)")
    middle.legend(fontsize=8, loc="lower left")

    level_ids = sorted(set(levels.tolist()))
    for name, r in recipes.items():
        means = [x["mean"] for x in r["level_test_top1"]]
        half = [
            0.0 if x["ci"] is None else (x["ci"][1] - x["ci"][0]) / 2 for x in r["level_test_top1"]
        ]
        right.errorbar(level_ids, means, yerr=half, marker="o", capsize=3, label=name)
    right.plot(
        level_ids, [np.nanmean(truth[levels == lv]) for lv in level_ids], "k^--", label="standalone"
    )
    right.set_xlabel("complexity level")
    right.set_ylabel("mean test top-1 of the level's archs")
    right.set_title("per level (mean +- 95% CI over supernet seeds)", fontsize=10)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
