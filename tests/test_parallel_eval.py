"""Parallel supernet evaluation on Ray actors: the in-process accuracies exactly, and a search
that outlives a killed worker.

Training the tiny run and starting Ray take most of this module's time. The exact accuracies run
in the default suite; the worker faults (killed, and dying again and again) are `slow`.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from pathlib import Path

import pytest
import ray
import torch
from conftest import TINY_SPACE

from nas.cli import main
from nas.distributed import RayEvaluator, WorkerError, ray_cluster
from nas.search import Objective, Problem, RandomSearch, run_search
from nas.space import SearchSpace
from nas.train.config import TrainConfig
from nas.train.data import Split, eval_batches, shard
from nas.train.trainer import Trainer
from nas.trained import CACHE_FILE, TrainedRun

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own deprecations

#: Four steps of the tiny space on digits; 60 val images in batches of 16 (2 per worker).
TINY_RUN = TrainConfig(
    epochs=1,
    batch_size=32,
    train_limit=128,
    eval_limit=60,
    sampler="uniform",
    subnets=1,
    distill="none",
    levels=2,
    pool_draws=40,
    pool_size=10,
    calib_images=64,
    eval_batch_size=16,
)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One torch thread here, as in each actor (and quick on a busy machine); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    Trainer(TINY_RUN, out, space=SearchSpace.from_dict(TINY_SPACE), progress=False).run()
    return out


@pytest.fixture(scope="module")
def ray_instance():
    """One Ray instance for the module (the evaluators use it), shut down at its end. Ray's
    processes log errors only; this process's root logger stays as it was."""
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    with ray_cluster(2):
        assert (root.level, list(root.handlers)) == before
        yield ray
    assert not ray.is_initialized()


def _copy(run: Path, to: Path) -> Path:
    """The run folder without its accuracy cache, so every accuracy is computed again."""
    return Path(shutil.copytree(run, to, ignore=shutil.ignore_patterns(CACHE_FILE)))


def _kill(actor) -> None:
    os.kill(ray.get(actor.__ray_call__.remote(lambda _: os.getpid())), signal.SIGKILL)


def _serial(run: Path, to: Path, archs, split: str = "val") -> list[float]:
    """The accuracies computed in this process, on a copy of the run."""
    return TrainedRun.open(_copy(run, to)).accuracy(archs, split).tolist()


def test_shards_split_the_evaluation_batches_among_workers():
    split = Split(torch.arange(60.0).reshape(60, 1, 1, 1), torch.arange(60))
    shards = [shard(split, k, 3, 16) for k in range(3)]
    assert [len(s) for s in shards] == [16, 16, 28]
    assert [len(y) for s in shards for _, y in eval_batches(s, 16)] == [16, 16, 16, 12]
    assert torch.equal(torch.cat([s.y for s in shards]), split.y)


@pytest.mark.ray
def test_two_workers_give_exactly_the_in_process_accuracies(trained, ray_instance, tmp_path):
    run = TrainedRun.open(_copy(trained, tmp_path / "run"))
    archs = [run.space.min_arch(), run.space.max_arch()] + [run.space.sample(s) for s in range(4)]
    serial = _serial(trained, tmp_path / "serial", archs)
    serial_test = _serial(trained, tmp_path / "serial-test", archs[:2], "test")
    with run.parallel(2) as evaluator:
        assert evaluator([], "val") == []
        assert run.accuracy(archs).tolist() == serial
        assert evaluator(archs[:2], "test") == serial_test
    assert evaluator.actors == [] and evaluator.restarts == 0
    assert len((run.folder / CACHE_FILE).read_text().splitlines()) == len(archs)


@pytest.mark.ray
@pytest.mark.slow  # worker faults (about 20 s with the next test); the default suite runs
# two workers' exact accuracies here and the README's `nas search --workers 2`
def test_a_search_completes_after_a_worker_is_killed(trained, ray_instance, tmp_path, capsys):
    run = TrainedRun.open(_copy(trained, tmp_path / "run"))
    problem = Problem(run.space, [Objective("val_top1", run.accuracy)])
    searcher, folder = RandomSearch(problem, seed=0), tmp_path / "search"
    with run.parallel(2) as evaluator:
        run_search(problem, searcher, 4, folder, batch_size=4, progress=False)
        _kill(evaluator.actors[1])
        found = run_search(problem, searcher, 12, folder, batch_size=4, progress=False)
        assert evaluator.restarts >= 1
    assert "evaluation worker 1 of 2 died" in capsys.readouterr().err
    assert len(found) == 12
    archs = [e.arch for e in found]
    assert [e.objectives["val_top1"] for e in found] == _serial(trained, tmp_path / "s", archs)


@pytest.mark.ray
@pytest.mark.slow  # worker faults, with the test above
def test_workers_that_keep_dying_end_the_call_with_an_error(trained, ray_instance):
    run = TrainedRun.open(trained)
    evaluator = RayEvaluator(run, 2, max_restarts=0)
    try:
        _kill(evaluator.actors[0])
        with pytest.raises(WorkerError, match="after 0 restarts .* worker 0 of 2 died"):
            evaluator([run.space.min_arch()], "val")
    finally:
        evaluator.close()


def test_search_refuses_fewer_than_one_worker(tmp_path, capsys):
    args = ["search", "--run", str(tmp_path), "--device", "x.json", "--latency-ms", "1"]
    assert main([*args, "--workers", "0"]) == 2
    assert "--workers 0 must be at least 1" in capsys.readouterr().err
