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
    argv += ["--min-time-ms", "0", "--models", "12", "--out", "p.json"]
    assert main(argv) == 0
    profile = json.loads((counting / "p.json").read_text())
    assert profile["complete"] and len(profile["models"]) == 12
    assert CREATED[0] > 88 + 12
    assert STALE[0] == 0  # no runner was created while one of an earlier chunk lived
