"""benchmarks/calibration_size.py on a validation folder whose timings are known: subnets timed
as the profile's overhead predicts them, give or take 3%, are all held out within 10% once the
fit has enough subnets, and the table says so."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
from conftest import run_benchmark

from predictors.latency import LatencyPredictor

PROFILE = Path(__file__).parent / "fixtures" / "ort_profile.json"


def test_the_overhead_fit_is_scored_on_held_out_subnets(tmp_path):
    predictor = LatencyPredictor.load(PROFILE)
    space = predictor.space
    archs = [dataclasses.replace(space.sample(seed), resolution=16) for seed in range(40)]
    archs = list(dict.fromkeys(archs))
    noise = 1 + 0.03 * np.random.default_rng(0).uniform(-1, 1, len(archs))
    measured = predictor.predict(archs) * noise
    with (tmp_path / "subnets.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arch", "measured_ms"])
        for arch, ms in zip(archs[8:], measured[8:], strict=True):
            writer.writerow([arch.to_json(), ms])
    first = zip(archs[:8], measured[:8], strict=True)
    calibration = [{"arch": a.to_dict(), "measured_ms": ms} for a, ms in first]
    (tmp_path / "report.json").write_text(json.dumps({"calibration": calibration}))

    argv = ["--profile", str(PROFILE), "--validation", str(tmp_path), "--sizes", "12", "24"]
    done = run_benchmark("calibration_size", *argv, "--draws", "20")
    assert done.returncode == 0, done.stderr
    assert f"{len(archs)} subnets timed in one session" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 12 ") or
            line.startswith("| 24 ")]  # fmt: skip
    assert len(rows) == 2
    for row, n in zip(rows, (12, 24), strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[:2] == [str(n), str(len(archs) - n)]
        assert cells[2] == "100.0%" and cells[5] == "100%"
