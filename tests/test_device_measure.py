"""Measuring a profile on this machine (resumable after a kill) and validating it end to end.

Timings are real but tiny (a few repeats on the tiny space), so only structure is asserted here;
the accuracy figures come from ``benchmarks/latency_predictor.py``.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from nas.cli import main
from predictors.kernels import FusionRules
from predictors.latency import LatencyPredictor
from predictors.measure import (
    MeasurementJob,
    MeasureSettings,
    MeasureSettingsError,
    enumerate_kernels,
)
from predictors.profile import DeviceProfile

FAST = dict(warmup=1, repeats=3, passes=1, min_time_ms=0.0, models=4, resolutions=(12,))


def test_measure_resumes_after_a_kill_and_validates(tmp_path, tiny_space):
    out = tmp_path / "profile.json"
    settings = MeasureSettings(backend="torch", **FAST)
    job = MeasurementJob(tiny_space, out, settings, progress=False, log=lambda m: None)
    job._stop_after = 3  # the job is "killed" after three measured chunks
    with pytest.raises(KeyboardInterrupt):
        job.run()
    partial = DeviceProfile.load(out)
    assert not partial.complete and partial.fusion_rules
    measured_before = {k for k, r in partial.kernels.items() if r.measurement.passes}
    assert len(measured_before) > 0

    resumed = MeasurementJob(tiny_space, out, settings, progress=False, log=lambda m: None)
    profile = resumed.run()
    assert profile.complete
    rules = FusionRules.from_list(profile.fusion_rules)
    wanted = {spec.key for spec in enumerate_kernels(tiny_space, rules, [12])}
    assert wanted == set(profile.kernels)
    assert all(len(r.measurement.passes) == 1 for r in profile.kernels.values())
    # kernels measured before the kill were not measured again
    for key in measured_before:
        assert len(profile.kernels[key].measurement.passes) == 1
    assert len(profile.models) == 4 and profile.baseline is not None
    env = profile.environment
    assert env["backend"] == "torch" and env["threads"] == 1 and env["batch"] == 1
    assert env["cpu"] and env["torch"]

    # same command again: nothing to do; other settings: refused
    assert MeasurementJob(tiny_space, out, settings, progress=False, log=lambda m: None).run()
    other = MeasureSettings(backend="torch", **{**FAST, "repeats": 5})
    with pytest.raises(MeasureSettingsError, match="other settings.*repeats"):
        MeasurementJob(tiny_space, out, other, progress=False, log=lambda m: None).run()

    # validate end to end on a handful of subnets: report fields and files
    report_dir = tmp_path / "report"
    args = ["device", "validate", "--profile", str(out), "--n", "4", "--out", str(report_dir)]
    assert main([*args, "--repeatability", "--recalibrate"]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    metrics = report["metrics"]
    for key in ("rmse_ms", "mape_pct", "within_5pct", "within_10pct", "spearman", "n"):
        assert key in metrics
        assert key in report["metrics_without_recalibration"]
    assert report["recalibrated_on"] == 4
    assert 0.0 <= report["repeatability"]["within_10pct"] <= 1.0
    assert metrics["n"] == 4 and report["resolutions"] == [12]
    assert (report_dir / "scatter.png").read_bytes()[:4] == b"\x89PNG"
    assert len((report_dir / "subnets.csv").read_text().splitlines()) == 5
    predictor = LatencyPredictor.load(out)
    arch = dataclasses.replace(tiny_space.max_arch(), resolution=12)
    assert np.isfinite(predictor.predict([arch])).all()


def test_calibration_passes_are_spread_over_the_kernel_passes(tmp_path, tiny_space):
    """Whole models are timed after each pass over the kernels, not in one burst at the end:
    a shared machine's speed changes then reach the overhead fit as they reach the kernels."""
    settings = MeasureSettings(backend="torch", **{**FAST, "passes": 2, "models": 2})
    job = MeasurementJob(
        tiny_space, tmp_path / "p.json", settings, progress=False, log=lambda m: None
    )
    timed, order = job._time, []

    def spy(modules):
        order.append("model" if modules[0][0].startswith("{") else "kernel")  # arch JSON keys
        return timed(modules)

    job._time = spy
    profile = job.run()
    phases = [kind for i, kind in enumerate(order) if i == 0 or order[i - 1] != kind]
    assert phases == ["kernel", "model", "kernel", "model"]
    assert all(len(m.measurement.passes) == 2 for m in profile.models)
    assert all(len(r.measurement.passes) == 2 for r in profile.kernels.values())


def test_measure_on_onnxruntime_detects_fusion_rules(tmp_path, tiny_space):
    out = tmp_path / "ort.json"
    settings = MeasureSettings(backend="onnxruntime", **{**FAST, "models": 3})
    profile = MeasurementJob(tiny_space, out, settings, progress=False, log=lambda m: None).run()
    levels = {r["level"] for r in profile.fusion_rules}
    assert levels == {"op", "unit"}
    for rule in profile.fusion_rules:
        evidence = rule["evidence"]
        assert {"t_first_ms", "t_second_ms", "t_fused_ms", "baseline_ms"} <= set(evidence)
    assert profile.environment["onnxruntime"]
    predictor = LatencyPredictor.load(out)
    assert predictor.overhead.models == 3


def test_too_many_configurations_are_sampled_adaptively(tmp_path, tiny_space):
    out = tmp_path / "adaptive.json"
    settings = MeasureSettings(
        backend="torch",
        **{**FAST, "models": 3},
        max_exact=10,
        prior_per_kind=2,
        adaptive_rounds=1,
        adaptive_batch=8,
    )
    profile = MeasurementJob(tiny_space, out, settings, progress=False, log=lambda m: None).run()
    rules = FusionRules.from_list(profile.fusion_rules)
    pool = enumerate_kernels(tiny_space, rules, [12])
    assert profile.plan["strategy"] == "adaptive" and profile.plan["configurations"] == len(pool)
    history = profile.plan["adaptive"]["history"]
    assert history and 0.0 <= history[0]["share_over_10pct"] <= 1.0
    assert 0 < len(profile.kernels) < len(pool)
    predictor = LatencyPredictor.load(out)
    archs = [dataclasses.replace(tiny_space.sample(i), resolution=12) for i in range(20)]
    assert predictor.regressed(archs).any()
    assert np.all(predictor.predict(archs) > 0)


def test_each_timed_call_follows_a_call_of_the_same_runner():
    from predictors.backends import TimingProtocol, time_runners

    calls: list[str] = []
    runners = [lambda name=name: calls.append(name) for name in "abc"]
    protocol = TimingProtocol(warmup=1, repeats=4, min_time_ms=0.0)
    timings = time_runners(runners, protocol)
    assert [t.repeats for t in timings] == [4, 4, 4]
    rounds = calls[3:]  # after one warm-up call each
    assert rounds == ["a", "a", "b", "b", "c", "c"] * 4  # an untimed re-warm, then the timed call
    calls.clear()
    time_runners(runners, TimingProtocol(warmup=1, repeats=4, min_time_ms=0.0, rewarm=False))
    assert calls[3:] == ["a", "b", "c"] * 4
