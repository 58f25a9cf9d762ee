"""How many whole subnets the overhead fit needs (`nas device measure --models`).

A profile's prediction of a whole subnet is its kernels' times put through an overhead term
(scale, per kernel, per M parameters, per M convolution input elements, constant) fitted on the
profile's calibration subnets. With few subnets the five terms follow their noise. This script
takes the timings of one `nas device validate` run (its random subnets and the calibration
subnets it timed again, all of one session), fits the overhead on N of them drawn at random and
predicts the others, many times over, for each N; it prints the share of the held-out subnets
within +-10% (mean, 10th percentile, median) and how often a draw reaches 95%.

    python benchmarks/calibration_size.py --profile PROFILE.json --validation VALIDATE_DIR
        [--sizes 8 12 16 24 32 48] [--draws 200] [--seed 0]

VALIDATE_DIR is the --out folder of `nas device validate --profile PROFILE.json [--recalibrate]`
(its subnets.csv and report.json). No timing is done: it runs in seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timings(folder: Path) -> tuple[list[dict], np.ndarray]:
    """The archs and measured ms of a validation folder: its subnets and calibration subnets."""
    rows = list(csv.DictReader((folder / "subnets.csv").open()))
    archs = [json.loads(r["arch"]) for r in rows]
    measured = [float(r["measured_ms"]) for r in rows]
    report = json.loads((folder / "report.json").read_text())
    for entry in report.get("calibration") or []:
        archs.append(entry["arch"])
        measured.append(float(entry["measured_ms"]))
    return archs, np.array(measured)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True, help="the validated profile")
    parser.add_argument("--validation", required=True, help="its `nas device validate` folder")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 12, 16, 24, 32, 48])
    parser.add_argument("--draws", type=int, default=200, help="random draws per size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from nas.arch import Arch
    from predictors.latency import LatencyPredictor, fit_overhead

    predictor = LatencyPredictor.load(args.profile)
    dicts, measured = timings(Path(args.validation))
    inputs = predictor.overhead_inputs([Arch.from_dict(a) for a in dicts])
    baseline = predictor.overhead.baseline
    own = predictor.overhead.apply(*inputs.T)
    own_share = np.mean(np.abs(own - measured) / measured <= 0.10) * 100
    print(
        f"{len(measured)} subnets timed in one session; the profile's own fit "
        f"({predictor.overhead.models} subnets of the measuring session): {own_share:.1f}% within "
        "+-10%"
    )
    print("| fit on | held out | within 10%: mean | p10 | median | draws >= 95% |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(args.seed)
    for n in args.sizes:
        if n >= len(measured):
            continue
        shares = []
        for _ in range(args.draws):
            order = rng.permutation(len(measured))
            fit, test = order[:n], order[n:]
            overhead = fit_overhead(*inputs[fit, :2].T, measured[fit], baseline, *inputs[fit, 2:].T)
            guess = overhead.apply(*inputs[test].T)
            shares.append(np.mean(np.abs(guess - measured[test]) / measured[test] <= 0.10))
        s = np.array(shares) * 100
        print(
            f"| {n} | {len(measured) - n} | {s.mean():.1f}% | {np.percentile(s, 10):.1f}% | "
            f"{np.median(s):.1f}% | {np.mean(s >= 95) * 100:.0f}% |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
