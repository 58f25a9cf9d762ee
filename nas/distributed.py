"""Ray: data-parallel supernet training on Ray Train, and supernet evaluation on Ray actors.

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

:func:`ray_cluster` starts the local Ray instance that training and parallel supernet evaluation
run in, or joins a running cluster (``--ray-address``, ``$RAY_ADDRESS``); a cluster with fewer CPUs
than the workers asked for is refused at once, naming its size (its workers would wait forever).

Parallel evaluation: :class:`RayEvaluator` starts ``workers`` Ray actors for an opened run. Each
receives the run's supernet weights, its BN calibration images and shard k of N of every split (a
contiguous run of whole evaluation batches, :func:`nas.train.data.shard`). For a list of archs every actor
recalibrates BN on the same calibration images as the in-process path, so it holds the same
statistics, and counts the correct predictions on its shard; an arch's accuracy is the sum of the
counts over the sum of the shard sizes: the in-process top-1 exactly (the same images in the same
batches, after the same recalibration).

An actor that dies (its process killed, out of memory) is replaced by a fresh one for the same
shard, which is given that shard's archs again; after ``max_restarts`` replacements in one call
the evaluator gives up with :class:`WorkerError`. Use it through
:meth:`nas.trained.TrainedRun.parallel`, which keeps the run's accuracy cache in one place.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
import torch
from ray.exceptions import RayActorError

from nas.arch import Arch
from nas.errors import InputError
from nas.runs import make_folder
from nas.space import SearchSpace
from nas.supernet import Supernet
from nas.train.config import TrainConfig
from nas.train.data import Split, shard
from nas.train.evaluate import correct_count, recalibrated

if TYPE_CHECKING:
    from nas.trained import TrainedRun


def train_distributed(
    config: TrainConfig,
    out: str | Path,
    *,
    max_steps: int | None = None,
    space: SearchSpace | None = None,
    num_cpus: int | None = None,
    address: str | None = None,
):
    """Train (or resume) the run in ``out`` on ``config.workers`` Ray Train workers.

    Runs in :func:`ray_cluster` (a local instance with ``num_cpus``, default one per worker, or
    the cluster at ``address``). Returns the run's :class:`nas.train.trainer.RunResult`, read back
    from the run folder (on a cluster of several machines it must be on storage they share).
    """
    # Worker output goes to the driver once (Ray Train's print patch would log it twice).
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from nas.supernet.checkpoint import read_checkpoint
    from nas.train.trainer import FINAL, LAST, RunResult

    config = config.check()
    out = Path(out).resolve()
    use_gpu = torch.cuda.is_available() and config.device != "cpu"
    with ray_cluster(config.workers, address, num_cpus):
        make_folder(out)
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


class RayClusterError(InputError):
    """The Ray cluster cannot be joined, or is too small for the workers asked for."""


@contextmanager
def ray_cluster(
    workers: int, address: str | None = None, num_cpus: int | None = None
) -> Iterator[None]:
    """Ray for the block, with a CPU for each of ``workers``: the instance this process already
    runs; else the cluster at ``address`` (or ``$RAY_ADDRESS``), joined and left running; else a
    new local instance with ``num_cpus`` CPUs (default ``workers``), shut down at the end. A
    cluster with fewer CPUs than ``workers`` is refused at once (:class:`RayClusterError`)."""
    if ray.is_initialized():
        _require_cpus(workers, "the Ray instance this process runs")
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    original_print = builtins.print  # the Ray driver may patch print for its progress bars
    if address:
        try:
            with _native_log() as log:
                ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as err:
            reason = " ".join(str(err).split())
            if log.last:
                reason += f" ({log.last})"
            raise RayClusterError(
                f"cannot join the Ray cluster at {address}: {reason}; give the HOST:PORT of its "
                "head node (`ray start --head` prints it), and for a cluster with token "
                "authentication (Ray's default) set RAY_AUTH_MODE=token with its token in "
                "~/.ray/auth_token or RAY_AUTH_TOKEN"
            ) from None
    else:  # "local": never attach by surprise to another cluster on this machine
        root = logging.getLogger()
        level, handlers = root.level, list(root.handlers)
        ray.init(
            address="local",
            num_cpus=num_cpus or workers,
            include_dashboard=False,
            logging_level=logging.WARNING,
            # Ray's own processes log errors only: Ray Train's placement-group cleaner warns
            # every second that the state API (the dashboard, not started here) is unavailable
            logging_config=ray.LoggingConfig(log_level="ERROR"),
        )
        root.setLevel(level)  # that config is meant for Ray's processes, not this one's root
        root.handlers[:] = handlers
    try:
        _require_cpus(workers, f"the Ray cluster at {address}" if address else "local Ray")
        yield
    finally:
        ray.shutdown()
        builtins.print = original_print


class _NativeLog:
    last = ""  # the last warning Ray's core wrote while connecting, without its prefix


@contextmanager
def _native_log() -> Iterator[_NativeLog]:
    """Keep what Ray's C++ core writes to stderr while connecting (a warning per retry) off the
    terminal; the last line is kept for the error message."""
    log = _NativeLog()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield log
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines = sink.read().decode(errors="replace").strip().splitlines()
            if lines:
                log.last = lines[-1].split("] ", 1)[-1].split(": ", 1)[-1]


def _require_cpus(workers: int, where: str) -> None:
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < workers:
        raise RayClusterError(
            f"{where} has {cpus:g} CPU(s), fewer than the {workers} workers asked for (a CPU "
            f"each); use --workers {max(1, int(cpus))} or a cluster with {workers} CPUs or more"
        )


def _worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: a Trainer with this worker's rank and the world size."""
    import ray.train

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


# --------------------------------------------------------------------- evaluation

#: The splits every actor holds a shard of.
SPLITS = ("train", "val", "test")


class WorkerError(RuntimeError):
    """Evaluation workers kept dying: more replacements in one call than allowed."""


class ShardWorker:
    """One actor's state: the supernet on its device, the calibration images, a shard per split."""

    def __init__(
        self,
        space: dict,
        state: dict[str, torch.Tensor],
        calibration: torch.Tensor,
        shards: dict[str, Split],
        batch_size: int,
        device: str,
    ) -> None:
        self.net = Supernet(SearchSpace.from_dict(space))
        self.net.load_state_dict(state)
        self.net.to(device).eval()
        self.calibration = calibration
        self.shards = shards
        self.batch_size = batch_size

    def correct(self, archs: Sequence[Arch], split: str) -> list[tuple[int, int]]:
        """(correct, total) on this actor's shard of ``split`` for each arch, after BN
        recalibration."""
        part = self.shards[split]
        return [
            (correct_count(self.net, part, arch.resolution, self.batch_size), len(part))
            for arch in recalibrated(self.net, archs, self.calibration, self.batch_size)
        ]


class RayEvaluator:
    """BN-recalibrated top-1 of archs on a run's split, computed by ``workers`` Ray actors.

    Runs in :func:`ray_cluster` (a local instance, or the cluster at ``address``); :meth:`close`
    stops the actors (and a local instance). ``restarts`` counts the actors replaced so far.
    """

    def __init__(
        self, run: TrainedRun, workers: int, max_restarts: int = 3, address: str | None = None
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.workers = workers
        self.max_restarts = max_restarts
        self.restarts = 0
        self.actors: list[ray.actor.ActorHandle] = []
        self._stack = ExitStack()
        self._stack.enter_context(ray_cluster(workers, address))
        try:
            gpus = _gpus_per_actor(run, workers)
            self._actor_class = ray.remote(num_cpus=1, num_gpus=gpus)(ShardWorker)
            state = {k: v.detach().cpu() for k, v in run.supernet.state_dict().items()}
            self._args = (
                run.space.to_dict(),
                ray.put(state),
                ray.put(run.calibration.cpu()),
            )
            self._shards = [
                ray.put(
                    {s: shard(getattr(run.data, s), k, workers, run.batch_size) for s in SPLITS}
                )
                for k in range(workers)
            ]
            self._batch_size = run.batch_size
            self._device = "cuda" if gpus else "cpu"
            self.actors = [self._start(k) for k in range(workers)]
        except BaseException:
            self.close()
            raise

    def __call__(self, archs: Sequence[Arch], split: str = "val") -> list[float]:
        """Top-1 (0..1) of each arch on ``split``, summed over the actors' shards."""
        archs = list(archs)
        if not archs:
            return []
        pending = {self.actors[k].correct.remote(archs, split): k for k in range(self.workers)}
        counts: dict[int, list[tuple[int, int]]] = {}
        replaced = 0
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ref)
            try:
                counts[k] = ray.get(ref)
            except RayActorError as err:
                replaced += 1
                if replaced > self.max_restarts:
                    raise WorkerError(
                        f"gave up after {self.max_restarts} restarts of evaluation workers in "
                        f"one call: worker {k} of {self.workers} died ({type(err).__name__})"
                    ) from err
                print(
                    f"nas: warning: evaluation worker {k} of {self.workers} died; "
                    f"restarting it and retrying its shard of {len(archs)} archs",
                    file=sys.stderr,
                )
                self._replace(k)
                pending[self.actors[k].correct.remote(archs, split)] = k
        correct = [sum(counts[k][i][0] for k in counts) for i in range(len(archs))]
        total = sum(counts[k][0][1] for k in counts)
        return [c / max(1, total) for c in correct]

    def close(self) -> None:
        """Stop the actors, and Ray when it was started here."""
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        self._stack.close()

    def _start(self, k: int) -> ray.actor.ActorHandle:
        return self._actor_class.remote(
            *self._args, self._shards[k], self._batch_size, self._device
        )

    def _replace(self, k: int) -> None:
        ray.kill(self.actors[k])  # in case it is only unreachable
        self.actors[k] = self._start(k)
        self.restarts += 1


def _gpus_per_actor(run: TrainedRun, workers: int) -> float:
    """A share of Ray's GPUs for each actor when the run is on a GPU, else none."""
    if next(run.supernet.parameters()).device.type == "cpu":
        return 0
    return min(1.0, ray.cluster_resources().get("GPU", 0) / workers)
