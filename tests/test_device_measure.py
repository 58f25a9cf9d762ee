"""Measuring a profile on this machine (resumable after a kill) and validating it end to end.

Timings are real but tiny (a few repeats on the tiny space): what is asserted is what follows
from them (resumption, the fits and figures recomputed from the stored timings); the accuracy
figures come from ``benchmarks/latency_predictor.py``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TINY_SPACE, nas_executable, run_nas

from nas.arch import Arch
from nas.cli import main
from predictors.kernels import FusionRules
from predictors.latency import LatencyPredictor
from predictors.measure import (
    MeasurementJob,
    MeasureSettings,
    enumerate_kernels,
)
from predictors.profile import DeviceProfile
from predictors.validate import metrics as validation_metrics

FAST = dict(
    warmup=1, repeats=3, passes=1, min_time_ms=0.0, min_span_ms=0.0, models=4, resolutions=(12,)
)
#: A sample of one kernel configuration per kind, the others predicted: for tests of what a
#: measurement does around its kernels (fusion rules, calibration passes), not of the table.
SAMPLED = dict(max_exact=0, prior_per_kind=1, adaptive_rounds=0)


def _measured_kernels(path: Path) -> dict[str, list]:
    """Kernel key -> its timings, of the kernels a profile file holds measurements for."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {k["key"]: k["passes"] for k in data.get("kernels", []) if k.get("passes")}


def test_measure_killed_with_sigkill_resumes_and_validates(tmp_path, tiny_space):
    """`nas device measure` killed (SIGKILL) once its first chunk of kernels is saved, then
    rerun: it completes without timing those kernels again, and the profile validates. The space
    is declared at the one measured resolution, so that `nas search` runs on the profile."""
    space_file = tmp_path / "tiny.yaml"
    space_file.write_text(yaml.safe_dump({**TINY_SPACE, "resolutions": [12]}))  # as measured
    out = tmp_path / "profile.json"
    command = [str(nas_executable()), "device", "measure", "--backend", "torch"]
    command += ["--space", str(space_file), "--resolutions", "12", "--out", str(out)]
    command += [
        "--warmup",
        "1",
        "--repeats",
        "3",
        "--passes",
        "1",
        "--min-time-ms",
        "0",
        "--min-span-ms",
        "0",
    ]
    command += ["--models", "4"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not _measured_kernels(out) and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the job ended before it could be killed"
    partial = DeviceProfile.load(out)
    assert not partial.complete and partial.fusion_rules
    before = _measured_kernels(out)
    rules = FusionRules.from_list(partial.fusion_rules)
    wanted = {spec.key for spec in enumerate_kernels(tiny_space, rules, [12])}
    assert 0 < len(before) < len(wanted)

    run_nas(*command[1:], cwd=tmp_path)  # the same command again
    profile = DeviceProfile.load(out)
    assert profile.complete and wanted == set(profile.kernels)
    after = _measured_kernels(out)
    assert all(len(passes) == 1 for passes in after.values())
    for key, passes in before.items():  # timed before the kill, kept as they were
        assert after[key] == passes
    assert len(profile.models) == 4 and profile.baseline is not None
    env = profile.environment
    assert env["backend"] == "torch" and env["threads"] == 1 and env["batch"] == 1
    assert env["cpu"] and env["torch"]

    # same command again: nothing to do, the file unchanged; other settings: refused
    text = out.read_text()
    assert main(command[1:]) == 0 and out.read_text() == text
    other = [*command[1:], "--repeats", "5"]
    assert main(other) == 2 and out.read_text() == text

    # a complete profile lacking kernels (a newer version cuts a block into other kernels):
    # the same command measures those, keeps every other timing, and nothing is regressed
    data = json.loads(text)
    kinds = Counter(k["key"].split(":")[0] for k in data["kernels"])
    dropped = [k["key"] for k in data["kernels"] if kinds[k["key"].split(":")[0]] > 3][:2]
    data["kernels"] = [k for k in data["kernels"] if k["key"] not in dropped]
    out.write_text(json.dumps(data))
    search = ["search", "--space", space_file, "--device", out, "--latency-ms", "1000"]
    search += ["--objective", "params", "--evaluations", "3"]
    stale = run_nas(*search, "--out", tmp_path / "stale-search", cwd=tmp_path)
    assert "lacks 2 kernel configurations" in stale.stderr and "nas device measure" in stale.stderr
    assert main(command[1:]) == 0
    fresh = run_nas(*search, "--out", tmp_path / "search", cwd=tmp_path)
    assert "lacks" not in fresh.stderr
    assert set(DeviceProfile.load(out).kernels) == wanted
    assert {k: v for k, v in _measured_kernels(out).items() if k not in dropped} == {
        k: v for k, v in after.items() if k not in dropped
    }
    assert not LatencyPredictor.load(out).regressed([tiny_space.max_arch()]).any()

    # validate end to end on a handful of subnets: report fields and files
    report_dir = tmp_path / "report"
    args = ["device", "validate", "--profile", str(out), "--n", "4", "--out", str(report_dir)]
    assert main([*args, "--repeatability", "--recalibrate"]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    metrics = report["metrics"]
    assert metrics["n"] == 4 and report["resolutions"] == [12]
    assert report["recalibrated_on"] == 4
    rows = list(csv.DictReader((report_dir / "subnets.csv").open()))
    archs = [Arch.from_json(r["arch"]) for r in rows]
    measured = np.array([float(r["measured_ms"]) for r in rows])
    # the figures with and without the refit, recomputed from the profile and the timings
    plain = LatencyPredictor.load(out)
    refit = plain.recalibrated(
        [(Arch.from_dict(c["arch"]), c["measured_ms"]) for c in report["calibration"]]
    )
    np.testing.assert_allclose(
        [float(r["predicted_ms"]) for r in rows], refit.predict(archs), rtol=1e-5
    )  # CSV: 6 decimals
    for key, value in validation_metrics(refit.predict(archs), measured).items():
        assert metrics[key] == pytest.approx(value, rel=1e-9, nan_ok=True), key
    without = validation_metrics(plain.predict(archs), measured)
    assert report["metrics_without_recalibration"]["mape_pct"] == pytest.approx(without["mape_pct"])
    # two timings of each of the 8 subnets (4 validated, 4 calibration): shares of 8
    again = report["repeatability"]
    for key in ("within_5pct", "within_10pct"):
        assert again[key] * 8 == pytest.approx(round(again[key] * 8))
    assert again["within_5pct"] <= again["within_10pct"] and again["median_ratio"] > 0
    assert (report_dir / "scatter.png").read_bytes()[:4] == b"\x89PNG"


def test_calibration_passes_are_spread_over_the_kernel_passes(tmp_path, tiny_space):
    """Whole models are timed after each pass over the kernels, not in one burst at the end:
    a shared machine's speed changes then reach the overhead fit as they reach the kernels."""
    settings = MeasureSettings(backend="torch", **{**FAST, "passes": 2, "models": 2}, **SAMPLED)
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
    settings = MeasureSettings(backend="onnxruntime", **{**FAST, "models": 3}, **SAMPLED)
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
    (first,) = profile.plan["adaptive"]["history"]  # one adaptive round
    assert first["checked"] == 8  # a check batch of --adaptive-batch configurations
    missed = round(first["share_over_10pct"] * 8)  # a share of the 8 checked
    assert first["share_over_10pct"] * 8 == pytest.approx(missed)
    # the prior (2 per kernel kind), the check batch, and up to 2 neighbours per missed one
    kinds: dict[str, int] = {}
    for spec in pool:
        kinds[spec.kind] = kinds.get(spec.kind, 0) + 1
    base = sum(min(n, 2) for n in kinds.values()) + 8
    assert base <= len(profile.kernels) <= base + 2 * missed < len(pool)
    if missed == 0:  # densified only where the regressors missed
        assert len(profile.kernels) == base
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


def test_the_builders_sent_to_worker_processes_pickle_and_build_the_same_modules(tiny_space):
    """``--jobs`` pickles each (space, arch) model builder and kernel builder to a worker: they
    must pickle after the space has served models (it caches closures), and build there the
    module and inputs this process would time (a model seeded as exported: the same weights;
    a kernel: the same shapes, its weights are random draws)."""
    import pickle
    from functools import partial

    import torch

    from predictors.measure import MeasurementJob, model_runner_inputs

    def shapes(module, inputs):
        return [(k, v.shape) for k, v in module.state_dict().items()], [t.shape for t in inputs]

    arch = tiny_space.sample(random.Random(0))
    model_runner_inputs(tiny_space, arch, 1, 0)  # fills the space's caches
    job = MeasurementJob(tiny_space, "unused.json", MeasureSettings(backend="torch"))
    spec = enumerate_kernels(tiny_space, FusionRules(), (8,))[-1]
    for (_, build), same_weights in [(job._model(arch, 2), True), (job._kernel(spec), False)]:
        assert isinstance(build, partial)
        (module, inputs), (module2, inputs2) = build(), pickle.loads(pickle.dumps(build))()
        assert shapes(module, inputs) == shapes(module2, inputs2)
        state, state2 = module.state_dict(), module2.state_dict()
        assert same_weights == all(torch.equal(state[k], state2[k]) for k in state)
        assert same_weights == all(torch.equal(a, b) for a, b in zip(inputs, inputs2, strict=True))


@pytest.mark.slow  # two worker processes import ExecuTorch and lower: about a minute on two cores
def test_executorch_programs_lowered_by_worker_processes_are_the_ones_lowered_here(tiny_space):
    """``--jobs``: subnets and kernels lowered ahead in worker processes (the space and builders
    pickled to them) are the programs the process itself would time: same bytes, same inputs."""
    from functools import partial

    import torch

    from predictors.executorch_backend import ExecuTorchBackend, precision_program
    from predictors.measure import model_runner_inputs

    archs = [dataclasses.replace(tiny_space.min_arch(), resolution=8)]
    archs.append(dataclasses.replace(archs[0], stem=dataclasses.replace(archs[0].stem, width=8)))
    modules = [(a.to_json(), partial(model_runner_inputs, tiny_space, a, 1, 3)) for a in archs]
    backend = ExecuTorchBackend()
    backend.convert_ahead(modules, jobs=2, progress=False)

    def not_again():
        raise AssertionError("a program converted ahead was converted again")

    for key, build in modules:
        module, inputs = build()
        data, stored_inputs = backend._cache._entries[key]
        assert data == precision_program("fp32", module, inputs)
        assert all(torch.equal(a, b) for a, b in zip(stored_inputs, inputs, strict=True))
        runner = backend.prepare_cached(key, not_again)
        assert torch.allclose(runner()[0], module(*inputs), atol=1e-5)


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes through /proc")
def test_conversion_workers_end_when_the_command_is_killed():
    """`--jobs N` workers of a killed `nas device measure` / `validate` (SIGKILL, or SIGTERM,
    which leaves no time to shut the pool down) end by themselves instead of waiting for work
    forever with the memory of their conversions."""
    import os
    import sys

    script = (
        "import time\nfrom functools import partial\n"
        "from predictors.backends import ConversionCache\n"
        "items = [(k, partial(time.sleep, 120)) for k in 'ab']\n"
        "ConversionCache('.bin').fill(items, jobs=2)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while len(workers) < 2 and time.monotonic() < deadline:  # the pool's workers are up
            time.sleep(0.5)
            workers = [p for p in _children(parent.pid) if "spawn_main" in _cmdline(p)]
        assert len(workers) == 2
        time.sleep(3)  # each is in its initializer or waiting on its sleep
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [p for p in workers if _alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, "conversion workers outlived the killed command"


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _worker_pid() -> tuple[bytes, None]:
    import os

    return str(os.getpid()).encode(), None


def test_conversion_workers_are_replaced_and_every_queued_conversion_is_done(monkeypatch):
    """More conversions than ``jobs * WORKER_TASKS`` all finish, each worker process converting
    at most WORKER_TASKS of them. (ProcessPoolExecutor's max_tasks_per_child broke the pool with
    such a backlog on Python 3.11: a 160 px ExecuTorch validation ended after 16 conversions.)"""
    import predictors.backends as backends

    monkeypatch.setattr(backends, "WORKER_TASKS", 2)
    cache = backends.ConversionCache(".bin")
    keys = [f"k{i}" for i in range(5)]
    items = [(key, _worker_pid) for key in keys]
    filling = threading.Thread(target=cache.fill, args=(items, 2), daemon=True)
    filling.start()
    filling.join(120)
    assert not filling.is_alive(), "the conversions stalled when a worker reached its limit"
    pids = Counter(cache.get(key, None)[0] for key in keys)
    assert sum(pids.values()) == 5 and max(pids.values()) <= 2 and len(pids) >= 3
    cache.close_workers()


def test_a_conversion_worker_that_dies_ends_the_work_with_one_line(monkeypatch, capsys):
    """A `--jobs` worker killed mid-conversion (the system, for memory) ends the command with
    one line naming what happened and what to do (exit 1), not a BrokenProcessPool traceback."""
    import argparse
    import os
    from functools import partial

    import nas.cli
    from predictors.backends import ConversionCache, ConversionWorkerError

    cache = ConversionCache(".bin")
    with pytest.raises(ConversionWorkerError) as raised:
        cache.fill([(key, partial(os._exit, 3)) for key in "abc"], jobs=2)
    assert "worker process died" in str(raised.value) and "fewer --jobs" in str(raised.value)
    assert cache._pool == []  # a later fill starts fresh workers

    def dies(args):
        raise raised.value

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=dies)
    monkeypatch.setattr(nas.cli, "build_parser", lambda: parser)
    assert nas.cli.main([]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "worker process died" in err
