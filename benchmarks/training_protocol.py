"""The training protocol the ranking and search-value benchmarks share, and their job runner.

* Data: Fashion-MNIST from ``../shared/data/fashion_mnist`` (``$NAS_SHARED_DATA``), ``hybrid-tiny``.
* A budget of optimizer steps becomes ``epochs`` x ``train_limit``: the fewest epochs whose
  fixed stratified subset fits in the training split, so every run takes exactly that many steps.
* Standalone training (``--sampler fixed``) has a pinned recipe (:data:`STANDALONE`), so a change
  of ``nas train``'s defaults never changes the ground truth the supernets are compared with.
* Every job is a resumable run folder whose name carries a digest of its configuration: a
  finished job is skipped, an interrupted one resumes, a changed configuration gets a new folder.
* :func:`run_jobs` runs jobs in ``--jobs`` worker processes (one torch thread each) with a
  progress bar; each job records its wall and CPU seconds in ``job.json`` beside its run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: Training images of Fashion-MNIST once the validation part is held out.
FASHION_MNIST_TRAIN = 54_000
JOB_FILE = "job.json"

#: The standalone recipe: the optimiser settings of `nas train` before any change by these
#: benchmarks, written out so the ground truth stays fixed.
STANDALONE: dict[str, Any] = {
    "sampler": "fixed",
    "distill": "none",
    "optimizer": "adamw",
    "lr": 2e-3,
    "min_lr": 1e-5,
    "weight_decay": 0.05,
    "label_smoothing": 0.1,
    "warmup_steps": -1,
    "grad_clip": 5.0,
    "ema_decay": 0.0,
}


def shared_fashion_mnist() -> Path:
    shared = Path(os.environ.get("NAS_SHARED_DATA") or REPO.parent / "shared" / "data")
    return shared / "fashion_mnist"


def add_protocol_options(parser, space: str) -> None:
    """The options every protocol benchmark takes (space, data, budget, evaluation, jobs)."""
    parser.add_argument("--space", default=space, help=f"search space (default {space})")
    parser.add_argument(
        "--data", default=str(shared_fashion_mnist()), help="Fashion-MNIST folder (IDX files)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    parser.add_argument(
        "--standalone-steps",
        type=int,
        default=300,
        help="optimizer steps of each standalone training (default 300)",
    )
    parser.add_argument(
        "--seeds", default="0,1,2", help="seeds of each standalone training (default 0,1,2)"
    )
    parser.add_argument(
        "--eval-limit",
        type=int,
        default=5000,
        help="validation and test images each (default 5000)",
    )
    parser.add_argument(
        "--train-images",
        type=int,
        default=FASHION_MNIST_TRAIN,
        help="training images the data set holds (sets epochs x subset for a step budget)",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="training processes at once, one thread each (2)"
    )


def seeds_of(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def budget(steps: int, batch_size: int, train_images: int) -> dict[str, int]:
    """``epochs`` and ``train_limit`` that make exactly ``steps`` optimizer steps."""
    epochs = max(1, math.ceil(steps * batch_size / train_images))
    while steps % epochs:
        epochs += 1
    return {"epochs": epochs, "train_limit": steps // epochs * batch_size}


def base_config(args, steps: int, seed: int, **options):
    """A run of ``steps`` steps on the protocol's data with ``options`` (TrainConfig fields)."""
    from nas.train.config import TrainConfig

    return TrainConfig(
        space=args.space,
        data=args.data,
        batch_size=args.batch_size,
        eval_limit=args.eval_limit,
        seed=seed,
        threads=1,
        log_every=20,
        checkpoint_every=50,
        **budget(steps, args.batch_size, args.train_images),
        **options,
    )


def standalone_config(args, arch_file: Path, seed: int):
    return base_config(args, args.standalone_steps, seed, arch=str(arch_file), **STANDALONE)


def digest(config) -> str:
    """A short digest of a configuration (for run folder names; stable across processes). An arch
    named by file counts by what the file holds: a file rewritten with another arch (a search
    that picks anew) gets a folder of its own rather than the results of the arch it held."""
    data = config.to_dict()
    if data.get("arch"):
        data["arch"] = json.loads(Path(data["arch"]).read_text())
    return _sha(data)


def _sha(data: dict) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]


def run_folder(parent: Path, name: str, config) -> Path:
    """``parent/NAME-DIGEST``; a folder of the same configuration under another name (a recipe
    whose options equal another's, named by whichever ran first) is reused, a finished one first.
    A finished folder named by the digest of the arch file's path alone (as before arch contents
    counted) is reused when it trained the arch the file holds now."""
    tag = digest(config)
    own = parent / f"{name}-{tag}"
    same = sorted(
        parent.glob(f"*-{tag}"),
        key=lambda p: (not (p / "final.json").is_file(), p != own, p.name),
    )
    if same:
        return same[0]
    data = config.to_dict()
    if data.get("arch"):
        earlier = parent / f"{name}-{_sha(data)}"
        if _trained(earlier) == json.loads(Path(data["arch"]).read_text()):
            return earlier
    return own


def _trained(folder: Path) -> dict | None:
    """The arch a finished standalone run in ``folder`` trained (None if there is none)."""
    try:
        rows = json.loads((folder / "final.json").read_text())["rows"]
    except (OSError, ValueError, KeyError):
        return None
    return rows[0].get("arch") if len(rows) == 1 else None


def write_arch(path: Path, arch) -> Path:
    """``arch`` as an arch file at ``path`` (unchanged when it already holds it)."""
    from nas.runs import write_atomic

    text = arch.to_json()
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)
    return path


# --------------------------------------------------------------------- jobs


@dataclass
class Job:
    """One unit of work: ``function(*args)`` in a worker, with its result kept in ``folder``."""

    name: str
    folder: Path
    function: Callable[..., dict]
    args: tuple = ()
    #: Jobs this one needs finished first (their names).
    after: tuple[str, ...] = ()
    result: dict | None = field(default=None, repr=False)

    def done(self) -> dict | None:
        path = self.folder / JOB_FILE
        if path.is_file():
            record = json.loads(path.read_text())
            if record.get("finished"):
                return record
        return None


def run_jobs(jobs: Sequence[Job], workers: int, log: Callable[[str], None] = print) -> None:
    """Run every job not finished yet, at most ``workers`` at once, respecting ``after``;
    each job's ``result`` is filled (from its ``job.json`` when it had finished before)."""
    from tqdm.auto import tqdm

    pending = []
    for job in jobs:
        job.result = job.done()
        if job.result is None:
            pending.append(job)
    finished = {job.name for job in jobs if job.result is not None}
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(pending), unit="job", desc="jobs")
    context = get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=max(1, workers),
        mp_context=context,
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        running: dict = {}
        while pending or running:
            ready = [j for j in pending if all(a in finished for a in j.after)]
            for job in ready[: max(0, workers - len(running))]:
                pending.remove(job)
                running[pool.submit(_run_job, job.function, job.args, str(job.folder))] = job
            if not running:
                missing = sorted({a for j in pending for a in j.after} - finished)
                raise RuntimeError(f"jobs wait for jobs that do not exist: {missing}")
            future = next(as_completed(running))
            job = running.pop(future)
            job.result = future.result()
            finished.add(job.name)
            bar.update(1)
            bar.write(f"{job.name}: {_short(job.result)}")
    bar.close()


def _short(result: dict) -> str:
    shown = {k: v for k, v in result.items() if isinstance(v, int | float) and k != "finished"}
    return ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()
    )


def _exit_with_parent(parent: int) -> None:
    """In a worker: end when the benchmark process is gone (killed), so that a rerun never
    trains a run folder that an orphaned worker is still writing."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _run_job(function: Callable[..., dict], args: tuple, folder: str) -> dict:
    """In a worker: run the job, add its seconds to ``job.json`` (summed over attempts)."""
    import torch

    from nas.runs import write_atomic

    torch.set_num_threads(1)
    path = Path(folder) / JOB_FILE
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    previous = json.loads(path.read_text()) if path.is_file() else {}
    record = {
        **result,
        "finished": True,
        "wall_s": previous.get("wall_s", 0.0) + time.perf_counter() - wall,
        "cpu_s": previous.get("cpu_s", 0.0) + time.process_time() - cpu,
    }
    Path(folder).mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(record) + "\n")
    return record


_DATA: dict = {}


def load_protocol_data(config):
    """The data set of ``config`` (kept per worker process: several jobs share one load)."""
    from nas.train.data import load_data

    key = (config.data, config.data_format, config.train_limit, config.eval_limit)
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = load_data(
            config.data,
            config.data_format,
            train_limit=config.train_limit,
            eval_limit=config.eval_limit,
        )
    return _DATA[key]


def train_job(config_dict: dict, folder: str) -> dict:
    """Train (or resume) one run; its final test and val top-1 (mean over its probes)."""
    from nas.train.config import TrainConfig
    from nas.train.trainer import Trainer

    config = TrainConfig.from_dict(config_dict)
    trainer = Trainer(config, folder, data=load_protocol_data(config), progress=False)
    final = trainer.run().final
    return {
        "test_top1": final["mean_test_top1"],
        "val_top1": final["mean_val_top1"],
        "steps": final["step"],
        **{f"{k}_passes": v for k, v in final.get("subnet_passes", {}).items()},
    }


def train(name: str, config, folder: Path, after: tuple[str, ...] = ()) -> Job:
    """A :class:`Job` training ``config`` into ``folder``."""
    return Job(name, folder, train_job, (config.to_dict(), str(folder)), after)
