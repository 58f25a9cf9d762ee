"""Sampling ablation: uniform, sandwich, CAS and CAS+PAS supernets at an equal number of steps.

Trains a ``hybrid-tiny`` supernet on Fashion-MNIST with each sampler (same seed, same number of
optimizer steps, same subnets per step, in-place KL distillation from the largest subnet), then
scores fixed probe archs spread over the complexity levels with BN recalibration: mean and
per-level top-1. It also trains each probe arch standalone for the same number of steps and
reports, per sampler, the Kendall tau between the accuracy a probe inherits from the supernet
and its standalone accuracy. Prints a table, writes ``ablation.json`` and ``ablation.png``.

Every run is a resumable run folder under ``--out``: rerun the same command to go on after an
interruption; finished runs are not repeated.

    python benchmarks/sampling_ablation.py [--steps 300] [--batch-size 64] [--levels 5]
        [--probes-per-level 2] [--samplers uniform,sandwich,cas,cas+pas] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from nas.train.config import TrainConfig
from nas.train.data import load_data
from nas.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


def _shared_fashion_mnist() -> Path:
    shared = Path(os.environ.get("NAS_SHARED_DATA") or REPO.parent / "shared" / "data")
    return shared / "fashion_mnist"


def _kendall_tau(a: list[float], b: list[float]) -> float:
    from scipy.stats import kendalltau

    tau = kendalltau(a, b).statistic
    return float("nan") if tau is None else float(tau)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(_shared_fashion_mnist()), help="Fashion-MNIST folder")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per run")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--subnets", type=int, default=2, help="sampled subnets per step")
    parser.add_argument("--levels", type=int, default=5)
    parser.add_argument("--probes-per-level", type=int, default=2)
    parser.add_argument("--eval-limit", type=int, default=2000, help="val and test images each")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--samplers", default="uniform,sandwich,cas,cas+pas")
    parser.add_argument("--no-standalone", action="store_true", help="skip the standalone runs")
    parser.add_argument("--out", default=str(REPO / "runs" / "sampling_ablation"))
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # One epoch over exactly steps x batch images: every run takes the same number of steps.
    base = TrainConfig(
        space="hybrid-tiny",
        data=args.data,
        epochs=1,
        batch_size=args.batch_size,
        train_limit=args.steps * args.batch_size,
        eval_limit=args.eval_limit,
        subnets=args.subnets,
        levels=args.levels,
        probes_per_level=args.probes_per_level,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        log_every=20,
        checkpoint_every=50,
        rescore_every=25,
    )
    data = load_data(args.data, train_limit=base.train_limit, eval_limit=base.eval_limit)
    print(data.describe(), flush=True)

    results: dict[str, dict] = {}
    for name in args.samplers.split(","):
        started = time.perf_counter()
        trainer = Trainer(replace(base, sampler=name), out / name, data=data)
        result = trainer.run()
        final = result.final
        results[name] = {
            "seconds_this_call": time.perf_counter() - started,
            "steps": result.step,
            "subnets_per_step": args.subnets + 1,
            "final": final,
        }
        print(f"{name}: probe mean test top-1 {final['mean_test_top1']:.4f}", flush=True)

    probes = [r for r in next(iter(results.values()))["final"]["rows"] if r["name"] != "smallest"]
    probes = [r for r in probes if r["name"] != "largest"]
    standalone: list[dict] = []
    if not args.no_standalone:
        for k, row in enumerate(probes):
            folder = out / "standalone" / f"probe{k}"
            folder.mkdir(parents=True, exist_ok=True)
            arch_path = folder / "arch.json"
            arch_path.write_text(json.dumps(row["arch"]))
            config = replace(base, sampler="fixed", arch=str(arch_path), distill="none")
            final = Trainer(config, folder / "run", data=data).run().final
            standalone.append(final["rows"][0])
            print(
                f"standalone probe {k} (level {row['level']}): test top-1 "
                f"{final['rows'][0]['test_top1']:.4f}",
                flush=True,
            )

    summary = _summarise(results, probes, standalone, args)
    (out / "ablation.json").write_text(json.dumps(summary, indent=1) + "\n")
    _print_table(summary)
    _plot(summary, out / "ablation.png")
    print(f"wrote {out / 'ablation.json'} and {out / 'ablation.png'}")


def _summarise(results, probes, standalone, args) -> dict:
    metric = next(iter(results.values()))["final"]["metric"]
    summary = {
        "settings": {k: v for k, v in vars(args).items()},
        "metric": metric,
        "torch_threads": torch.get_num_threads(),
        "probes": [{"level": p["level"], metric: p[metric]} for p in probes],
        "standalone_test_top1": [s["test_top1"] for s in standalone],
        "samplers": {},
    }
    for name, result in results.items():
        rows = [r for r in result["final"]["rows"] if r["name"].startswith("level")]
        levels = sorted({r["level"] for r in rows})
        per_level = [
            sum(r["test_top1"] for r in rows if r["level"] == lv)
            / sum(1 for r in rows if r["level"] == lv)
            for lv in levels
        ]
        inherited = [r["test_top1"] for r in rows]
        extremes = {r["name"]: r["test_top1"] for r in result["final"]["rows"]}
        summary["samplers"][name] = {
            "mean_test_top1": result["final"]["mean_test_top1"],
            "mean_val_top1": result["final"]["mean_val_top1"],
            "level_test_top1": per_level,
            "probe_test_top1": inherited,
            "smallest_test_top1": extremes.get("smallest"),
            "largest_test_top1": extremes.get("largest"),
            "kendall_tau": (
                _kendall_tau(inherited, summary["standalone_test_top1"]) if standalone else None
            ),
            "steps": result["steps"],
            "subnets_per_step": result["subnets_per_step"],
        }
    return summary


def _print_table(summary: dict) -> None:
    samplers = summary["samplers"]
    levels = len(next(iter(samplers.values()))["level_test_top1"])
    header = ["sampler", "steps", "mean"] + [f"L{k}" for k in range(levels)]
    header += ["min", "max", "tau"]
    rows = []
    for name, s in samplers.items():
        tau = "-" if s["kendall_tau"] is None else f"{s['kendall_tau']:+.3f}"
        rows.append(
            [name, str(s["steps"]), f"{s['mean_test_top1']:.4f}"]
            + [f"{a:.4f}" for a in s["level_test_top1"]]
            + [f"{s['smallest_test_top1']:.4f}", f"{s['largest_test_top1']:.4f}", tau]
        )
    if summary["standalone_test_top1"]:
        alone = summary["standalone_test_top1"]
        per_level: dict[int, list[float]] = {}
        for probe, acc in zip(summary["probes"], alone, strict=True):
            per_level.setdefault(probe["level"], []).append(acc)
        rows.append(
            ["standalone", "", f"{sum(alone) / len(alone):.4f}"]
            + [f"{sum(v) / len(v):.4f}" for _, v in sorted(per_level.items())]
            + ["", "", ""]
        )
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    print("\nprobe test top-1 after BN recalibration (L = complexity level; tau = Kendall tau")
    print("between supernet-inherited and standalone accuracy of the probe archs)")
    for row in [header, *rows]:
        print("  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)))


def _plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    metric = summary["metric"]
    scale = 1e6 if metric == "macs" else 1.0
    xs = [p[metric] / scale for p in summary["probes"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, s in summary["samplers"].items():
        order = sorted(range(len(xs)), key=lambda k: xs[k])
        left.plot(
            [xs[k] for k in order],
            [s["probe_test_top1"][k] for k in order],
            "o-",
            label=f"{name} (mean {s['mean_test_top1']:.3f})",
        )
    if summary["standalone_test_top1"]:
        left.plot(xs, summary["standalone_test_top1"], "k^", label="standalone")
    left.set_xscale("log")
    left.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    left.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    left.set_xlabel("MACs (M)" if metric == "macs" else "latency (ms)")
    left.set_ylabel("test top-1 (BN recalibrated)")
    left.set_title("probe archs")
    left.legend(fontsize=8)
    names = list(summary["samplers"])
    levels = len(summary["samplers"][names[0]]["level_test_top1"])
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        accs = summary["samplers"][name]["level_test_top1"]
        right.bar([lv + k * width for lv in range(levels)], accs, width, label=name)
    right.set_xticks([lv + 0.4 - width / 2 for lv in range(levels)])
    right.set_xticklabels([f"L{lv}" for lv in range(levels)])
    lowest = min(min(s["level_test_top1"]) for s in summary["samplers"].values())
    right.set_ylim(max(0.0, lowest - 0.1), None)
    right.set_ylabel("mean probe test top-1")
    right.set_title("per complexity level")
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
