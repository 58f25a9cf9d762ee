"""fp32 vs int8 on each deployment runtime, for the Pareto-front archs of a searched run.

For every arch on the Pareto fronts of the run's searches (up to ``--archs``, fastest first), the
subnet is cut from the trained supernet (BN recalibrated), written in each ``--formats`` format
in fp32 and int8 (``nas extract --quantize int8``'s path: ONNX Runtime static QDQ, PT2E with the
XNNPACK quantizer for ExecuTorch, PT2E with litert-torch's quantizer for LiteRT), and each file is
run by its runtime here: test top-1 of fp32 and int8 on the same split, and end-to-end latency,
fp32 and int8 timed side by side (min over passes, batch 1 for the fixed-batch formats, one
thread). The table gives one row per arch and runtime, then the means per attention kind of the
arch (``softmax``, ``relu_linear``, both, none); the PNG plots the int8/fp32 latency ratio
against the accuracy drop per runtime.

    python benchmarks/deploy.py --run runs/demo/supernet [--formats onnx executorch tflite]
        [--archs 4] [--calib-images 256] [--out benchmarks/deploy-results]

The machine is shared: latencies are side-by-side ratios of one pass set, not absolute figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from nas.arch import Arch
from nas.export import get_format
from nas.export.kinds import block_kinds
from nas.export.ship import ShipOptions, ship
from nas.trained import TrainedRun


def front_archs(run: TrainedRun, limit: int) -> list[Arch]:
    """Archs of the Pareto fronts of every search of ``run``, fastest first, each once."""
    found: dict[Arch, float] = {}
    for report in sorted((run.folder / "search").glob("*/results.json")):
        data = json.loads(report.read_text())
        for entry in data.get("per_constraint", {}).values():
            for point in entry.get("pareto_front", []):
                arch = Arch.from_dict(point["arch"])
                cost = min(v for k, v in point["objectives"].items() if k.startswith("latency"))
                found[arch] = min(cost, found.get(arch, cost))
    return sorted(found, key=found.__getitem__)[:limit]


def attention_of(run: TrainedRun, arch: Arch) -> str:
    kinds = {k.split()[1] for _, k in block_kinds(run.space, arch) if k.startswith("Transformer")}
    return "+".join(sorted(kinds)) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="trained and searched run folder")
    parser.add_argument("--formats", nargs="+", default=["onnx", "executorch", "tflite"])
    parser.add_argument("--archs", type=int, default=4, help="Pareto-front archs (default 4)")
    parser.add_argument("--calib-images", type=int, default=256)
    parser.add_argument("--out", default="benchmarks/deploy-results", help="table and PNG folder")
    args = parser.parse_args()

    run = TrainedRun.open(args.run)
    archs = front_archs(run, args.archs)
    if not archs:
        raise SystemExit(f"{args.run} has no search results: run `nas search` first")
    rows = []
    with tempfile.TemporaryDirectory(prefix="nas-deploy-bench-") as tmp:
        for i, arch in enumerate(archs):
            model = run.extract(arch)
            attention = attention_of(run, arch)
            for fmt in args.formats:
                options = ShipOptions(fmt=fmt, precision="int8", calib_images=args.calib_images)
                out = Path(tmp) / f"a{i}{get_format(fmt).suffix}"
                card = ship(run, arch, model, options, out, progress=False)
                fp32, int8 = card["deployed"]["fp32"], card["deployed"]["int8"]
                row = {
                    "arch": i,
                    "resolution": arch.resolution,
                    "attention": attention,
                    "runtime": fmt,
                    "fp32_top1": fp32["test_top1"],
                    "int8_top1": int8["test_top1"],
                    "drop_points": 100 * (fp32["test_top1"] - int8["test_top1"]),
                    "fp32_ms": fp32["latency_ms"]["min_ms"],
                    "int8_ms": int8["latency_ms"]["min_ms"],
                }
                row["int8_over_fp32"] = row["int8_ms"] / row["fp32_ms"]
                rows.append(row)
                print(_line(row), flush=True)
    _report(rows, Path(args.out), run)


def _line(r: dict) -> str:
    return (
        f"arch {r['arch']} ({r['resolution']} px, attention {r['attention']:>19}) "
        f"{r['runtime']:>10}: top-1 fp32 {r['fp32_top1']:.4f} int8 {r['int8_top1']:.4f} "
        f"(drop {r['drop_points']:+.2f} pt); ms fp32 {r['fp32_ms']:.3f} int8 {r['int8_ms']:.3f} "
        f"(int8/fp32 {r['int8_over_fp32']:.2f})"
    )


def _report(rows: list[dict], out: Path, run: TrainedRun) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "| arch | px | attention | runtime | fp32 top-1 | int8 top-1 | drop (pt) | fp32 ms | "
        "int8 ms | int8/fp32 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {r['resolution']} | {r['attention']} | {r['runtime']} | "
            f"{r['fp32_top1']:.4f} | {r['int8_top1']:.4f} | {r['drop_points']:+.2f} | "
            f"{r['fp32_ms']:.3f} | {r['int8_ms']:.3f} | {r['int8_over_fp32']:.2f} |"
        )
    lines += [
        "",
        "| attention | runtime | archs | mean drop (pt) | median int8/fp32 |",
        "|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["attention"], r["runtime"]), []).append(r)
    for (attention, runtime), part in sorted(groups.items()):
        lines.append(
            f"| {attention} | {runtime} | {len(part)} | "
            f"{np.mean([r['drop_points'] for r in part]):+.2f} | "
            f"{np.median([r['int8_over_fp32'] for r in part]):.2f} |"
        )
    table = "\n".join(lines) + "\n"
    (out / "deploy.md").write_text(f"Run {run.folder}\n\n" + table)
    (out / "deploy.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n" + table)

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for runtime in sorted({r["runtime"] for r in rows}):
        part = [r for r in rows if r["runtime"] == runtime]
        ax.scatter(
            [r["int8_over_fp32"] for r in part], [r["drop_points"] for r in part], label=runtime
        )
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=0.8)
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("int8 latency / fp32 latency (measured here, side by side)")
    ax.set_ylabel("test top-1 drop, fp32 - int8 (points)")
    ax.set_title(f"fp32 vs int8 per runtime, Pareto-front archs of {run.folder.name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "deploy.png", dpi=110)
    print(f"wrote {out / 'deploy.md'}, {out / 'deploy.json'}, {out / 'deploy.png'}")


if __name__ == "__main__":
    main()
