"""Data-parallel training on Ray Train: 2 CPU workers (gloo) on a tiny run.

Starting Ray and its workers takes most of the time; it is a slow proof (``make test-all``).
"""

from __future__ import annotations

import json

import pytest
import torch

from nas.space import SearchSpace
from nas.supernet.checkpoint import load_supernet, read_checkpoint
from nas.train.config import TrainConfig

pytestmark = [
    # 80 data-parallel steps on two Ray workers: minutes on 2 cores (make test-all runs it); the
    # default suite trains with --workers 2 through the README's own command (test_readme.py)
    pytest.mark.slow,
    pytest.mark.ray,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # Ray's own deprecations
]


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module (starting one takes seconds)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def test_two_ray_workers_train_resume_and_their_checkpoint_loads_in_one_process(
    tmp_path, tiny_space, ray_instance
):
    from nas.distributed import train_distributed

    config = TrainConfig(
        epochs=4,
        batch_size=32,
        train_limit=320,
        eval_limit=60,
        sampler="cas+pas",
        subnets=1,
        distill="none",
        label_smoothing=0.0,
        lr=2e-2,
        levels=2,
        pool_draws=40,
        pool_size=10,
        bank_size=4,
        calib_images=64,
        log_every=1,
        workers=2,
    )
    out = tmp_path / "run"
    result = train_distributed(config, out, space=tiny_space)
    assert result.finished and result.step == 40
    losses = [
        json.loads(line)["loss"]
        for line in (out / "metrics.jsonl").read_text().splitlines()
        if '"kind": "train"' in line
    ]
    assert len(losses) == 40
    assert sum(losses[-8:]) / 8 < sum(losses[:8]) / 8 - 0.05
    assert read_checkpoint(out / "last.pt")["config"]["workers"] == 2
    supernet = load_supernet(out / "last.pt", SearchSpace.from_dict(tiny_space.to_dict()))
    supernet.set_arch(supernet.space.min_arch())
    logits = supernet.eval()(torch.randn(2, 1, 8, 8))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    assert result.final is not None and "mean_test_top1" in result.final

    # Stopped half-way (as a kill after a checkpoint would leave it) and run again: the same
    # weights as the uninterrupted run.
    resumed = tmp_path / "resumed"
    half = train_distributed(config, resumed, max_steps=20, space=tiny_space)
    assert not half.finished and half.step == 20
    again = train_distributed(config, resumed, space=tiny_space)
    assert again.finished and again.step == 40
    steps = [
        json.loads(line)["step"]
        for line in (resumed / "metrics.jsonl").read_text().splitlines()
        if '"kind": "train"' in line
    ]
    assert steps == sorted(set(steps)) and len(steps) == 40  # no step lost or repeated
    whole, parts = read_checkpoint(out / "last.pt"), read_checkpoint(resumed / "last.pt")
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, parts["model"][name]), name
