"""`nas device measure` and `nas device validate` time subnets in the same state: a chunk's
runners are created only after the previous chunk's are released.

Sub-millisecond subnets whose ONNX Runtime sessions were created while the previous chunk's
still lived ran several percent slower; the validation held them and the measuring job did not,
which put every own-fit prediction of `hybrid-zoo` at 32 px about 10% low. The backend here
watches its runners."""

from __future__ import annotations

import gc
import json
import shutil

import pytest

import predictors.backends as backends
from nas.cli import main
from predictors.backends import TorchBackend

#: Runners alive that have run (a chunk already timed), and the most of them when one was created.
RUN_AND_ALIVE: list[int] = [0]
STALE: list[int] = [0]
CREATED: list[int] = [0]


class Runner:
    def __init__(self, run):
        self.run, self.has_run = run, False
        CREATED[0] += 1
        STALE[0] = max(STALE[0], RUN_AND_ALIVE[0])

    def __call__(self):
        if not self.has_run:
            self.has_run = True
            RUN_AND_ALIVE[0] += 1
        return self.run()

    def __del__(self):
        RUN_AND_ALIVE[0] -= self.has_run


class CountingBackend(TorchBackend):
    name = "test-counting"

    def prepare(self, module, inputs):  # prepare_cached too
        return Runner(super().prepare(module, inputs))


@pytest.fixture
def counting(tiny_world, tmp_path, monkeypatch):
    monkeypatch.setitem(backends._BACKENDS, CountingBackend.name, CountingBackend)
    monkeypatch.chdir(tmp_path)
    shutil.copy(tiny_world.space, tmp_path / "tiny.yaml")
    gc.collect()
    RUN_AND_ALIVE[0] = STALE[0] = CREATED[0] = 0
    return tmp_path


def test_validation_releases_each_chunk_before_the_next(counting, tiny_world):
    profile = json.loads(tiny_world.profile_a.read_text())
    profile["backend"] = CountingBackend.name
    (counting / "p.json").write_text(json.dumps(profile))
    argv = ["device", "validate", "--profile", "p.json", "--n", "20", "--out", "v"]
    assert main(argv) == 0
    assert json.loads((counting / "v/report.json").read_text())["metrics"]["n"] == 20
    assert CREATED[0] == 20 * profile["settings"].get("passes", 1)
    assert STALE[0] == 0  # no runner was created while one of an earlier chunk lived


def test_measurement_releases_each_chunk_before_the_next(counting):
    argv = ["device", "measure", "--backend", CountingBackend.name, "--space", "tiny.yaml"]
    argv += ["--resolutions", "8", "--warmup", "1", "--repeats", "2", "--passes", "1"]
    argv += ["--min-time-ms", "0", "--min-span-ms", "0", "--models", "12", "--out", "p.json"]
    assert main(argv) == 0
    profile = json.loads((counting / "p.json").read_text())
    assert profile["complete"] and len(profile["models"]) == 12
    assert CREATED[0] > 88 + 12
    assert STALE[0] == 0  # no runner was created while one of an earlier chunk lived


def test_a_round_robin_lasts_its_minimum_span_with_every_runner_timed_throughout():
    """A shared machine switches speed every second or so: the minimum of a runner's calls is
    repeatable only when they are spread over a few seconds, so the round-robin goes on until
    ``min_span_ms`` has passed, every runner in every round."""
    import time

    from predictors.backends import TimingProtocol, time_runners

    stamps: dict[str, list[float]] = {"a": [], "b": []}
    runners = [lambda name=name: stamps[name].append(time.perf_counter()) for name in "ab"]
    protocol = TimingProtocol(warmup=1, repeats=3, min_time_ms=0.0, min_span_ms=60.0)
    start = time.perf_counter()
    timings = time_runners(runners, protocol)
    assert time.perf_counter() - start >= 0.06
    assert timings[0].repeats == timings[1].repeats > 3
    for calls in stamps.values():  # timed calls from the start of the span to its end
        assert calls[-1] - calls[1] >= 0.05  # the span, less the last round
    plain = time_runners(runners, TimingProtocol(warmup=1, repeats=3, min_time_ms=0.0))
    assert [t.repeats for t in plain] == [3, 3]


def test_chunks_of_fast_runners_grow_to_fill_the_span_and_cover_every_item_once():
    from predictors.backends import ChunkSizer, Timing, TimingProtocol

    protocol = TimingProtocol(warmup=0, repeats=10, min_time_ms=0.0, min_span_ms=1000.0)
    sizer = ChunkSizer(protocol, first=4, most=50)
    items = list(range(200))
    seen, sizes = [], []
    for chunk in sizer.chunks(items):
        seen += chunk
        sizes.append(len(chunk))
        sizer.update([Timing.exact(5.0)] * len(chunk))  # 10 timed + 10 re-warm calls: 100 ms
    assert seen == items  # in order, none skipped, none twice, though the size changed
    assert sizes[:3] == [4, 10, 10]  # 1000 ms / 100 ms per runner
    sizer.update([Timing.exact(0.01)] * 10)
    assert sizer.size == 50  # bounded by the runners that may live at once
    sizer.update([Timing.exact(500.0)])
    assert sizer.size == 4  # never below the first size
    still = ChunkSizer(TimingProtocol(min_span_ms=0.0), first=8, most=64)
    still.update([Timing.exact(0.01)] * 8)
    assert still.size == 8  # no span: chunks keep their size


def test_a_profile_records_its_span_and_the_validation_times_with_it(
    counting, tiny_world, monkeypatch
):
    import predictors.validate as validate
    from predictors.measure import MeasureSettings

    assert MeasureSettings().stored()["min_span_ms"] == 5000.0
    assert MeasureSettings().protocol().min_span_ms == 5000.0
    spans = []

    def recording(backend, modules, protocol, *args, **kwargs):
        spans.append(protocol.min_span_ms)
        return backends.time_modules(backend, modules, protocol, *args, **kwargs)

    monkeypatch.setattr(validate, "time_modules", recording)
    profile = json.loads(tiny_world.profile_a.read_text())
    profile["backend"] = CountingBackend.name
    profile["settings"]["min_span_ms"] = 3.0
    (counting / "p.json").write_text(json.dumps(profile))
    assert main(["device", "validate", "--profile", "p.json", "--n", "4", "--out", "v"]) == 0
    assert spans and set(spans) == {3.0}
    del profile["settings"]["min_span_ms"]  # a profile from before the span: as it was timed
    (counting / "p.json").write_text(json.dumps(profile))
    spans.clear()
    assert main(["device", "validate", "--profile", "p.json", "--n", "4", "--out", "v2"]) == 0
    assert spans and set(spans) == {0.0}
