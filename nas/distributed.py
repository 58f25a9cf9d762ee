"""Ray: data-parallel supernet training on Ray Train.

:func:`train_distributed` runs ``config.workers`` copies of :class:`nas.train.trainer.Trainer`
under Ray Train's ``TorchTrainer`` (gloo on CPU, NCCL on GPUs). Every worker builds the same
supernet and the same sampler from the run's seed, so all workers train the same subnets at every
step; each takes its shard of every global mini-batch, and after the step's backward passes the
gradients are averaged over the process group Ray Train sets up. Mini-batch scores (PAS,
best-of-k) are averaged the same way, so the samplers stay in step.

Gradients are all-reduced by hand rather than through ``DistributedDataParallel``: each step runs
several backward passes through different subnets, which leave different parameters unused, and
one averaged reduction per optimizer step is all data parallelism needs here.

Worker 0 writes the run folder (checkpoints in the single-process format, metrics, evaluation);
a run can be resumed with the same command, and its checkpoints load into a single-process
supernet (``nas.supernet.checkpoint.load_supernet``).

:func:`local_ray` starts the local Ray instance that training and parallel supernet evaluation
(:mod:`nas.parallel`) run in.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nas.space import SearchSpace
from nas.train.config import TrainConfig


def train_distributed(
    config: TrainConfig,
    out: str | Path,
    *,
    max_steps: int | None = None,
    space: SearchSpace | None = None,
    num_cpus: int | None = None,
):
    """Train (or resume) the run in ``out`` on ``config.workers`` Ray Train workers.

    Starts a local Ray instance (``num_cpus``: default one per worker) unless one is running.
    Returns the run's :class:`nas.train.trainer.RunResult`, read back from the run folder.
    """
    # Worker output goes to the driver once (Ray Train's print patch would log it twice).
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    import torch
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from nas.supernet.checkpoint import read_checkpoint
    from nas.train.trainer import FINAL, LAST, RunResult

    config = config.check()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    use_gpu = torch.cuda.is_available() and config.device != "cpu"
    with local_ray(num_cpus or config.workers):
        trainer = TorchTrainer(
            _worker,
            train_loop_config={
                "config": config.to_dict(),
                "out": str(out),
                "max_steps": max_steps,
                "space": space.to_dict() if space is not None else None,
            },
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
            scaling_config=ScalingConfig(
                num_workers=config.workers, use_gpu=use_gpu, resources_per_worker={"CPU": 1}
            ),
            run_config=RunConfig(name="train", storage_path=str(out / "ray")),
        )
        trainer.fit()
    payload = read_checkpoint(out / LAST)
    step, total = int(payload["step"]), int(payload["total_steps"])
    final = json.loads((out / FINAL).read_text()) if step >= total else None
    return RunResult(step, total, step >= total, final)


@contextmanager
def local_ray(num_cpus: int) -> Iterator[None]:
    """A local Ray instance with ``num_cpus`` CPUs for the block, shut down at its end; when Ray
    is already running, that instance is used and left running."""
    import ray

    if ray.is_initialized():
        yield
        return
    original_print = builtins.print  # the Ray driver may patch print for its progress bars
    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()
        builtins.print = original_print


def _worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: a Trainer with this worker's rank and the world size."""
    import ray.train
    import torch

    from nas.train.trainer import Trainer

    context = ray.train.get_context()
    config = TrainConfig.from_dict(loop_config["config"])
    if torch.cuda.is_available() and config.device != "cpu":
        torch.cuda.set_device(ray.train.torch.get_device())
    space = SearchSpace.from_dict(loop_config["space"]) if loop_config["space"] else None
    trainer = Trainer(
        config,
        loop_config["out"],
        space=space,
        rank=context.get_world_rank(),
        world=context.get_world_size(),
        progress=False,
    )
    result = trainer.run(loop_config["max_steps"])
    ray.train.report({"step": result.step, "finished": result.finished})
