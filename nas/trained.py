"""A finished (or running) training run opened for evaluation: space, data, trained supernet.

Accuracies are BN-recalibrated top-1 on a split, cached per arch in the run folder
(``accuracy_cache.jsonl``, tagged with the checkpoint's step), so searches and extraction never
evaluate the same subnet twice. Archs missing from the cache are evaluated in this process, or
on Ray actors inside :meth:`TrainedRun.parallel`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from nas.arch import Arch
from nas.errors import InputError
from nas.supernet import Supernet
from nas.supernet.checkpoint import load_supernet, read_checkpoint
from nas.train.config import CONFIG_FILE, read_config
from nas.train.data import DataSet, load_data
from nas.train.evaluate import calibration_images, evaluate_archs, evaluation_copy

if TYPE_CHECKING:
    from nas.distributed import RayEvaluator

CACHE_FILE = "accuracy_cache.jsonl"
CHECKPOINTS = ("best.pt", "last.pt")

#: Computes the top-1 of archs on a split (by name): in this process, or on Ray actors.
Evaluator = Callable[[Sequence[Arch], str], list[float]]


class RunFolderError(InputError):
    """A folder is not a training run, or lacks what is asked of it."""


@dataclass
class TrainedRun:
    folder: Path
    checkpoint: Path
    step: int
    supernet: Supernet
    data: DataSet
    calibration: torch.Tensor
    batch_size: int
    _cache: dict[tuple[Arch, str], float] = field(default_factory=dict, repr=False)
    _evaluator: Evaluator | None = field(default=None, repr=False)

    @property
    def space(self):
        return self.supernet.space

    @classmethod
    def open(cls, folder: str | Path, device: str = "cpu") -> TrainedRun:
        """The run's best checkpoint (else its last) on ``device``."""
        folder = Path(folder)
        if not (folder / CONFIG_FILE).is_file():
            raise RunFolderError(
                f"{folder} is not a training run (no {CONFIG_FILE}); "
                "create one with `nas train --out FOLDER`"
            )
        checkpoint = next((folder / c for c in CHECKPOINTS if (folder / c).is_file()), None)
        if checkpoint is None:
            raise RunFolderError(f"{folder} has no checkpoint yet ({' or '.join(CHECKPOINTS)})")
        config = read_config(folder / CONFIG_FILE)
        supernet = load_supernet(checkpoint).to(device).eval()
        data = load_data(
            config.data,
            config.data_format,
            image_size=max(supernet.space.resolutions),
            train_limit=config.train_limit,
            eval_limit=config.eval_limit,
        )
        run = cls(
            folder,
            checkpoint,
            int(read_checkpoint(checkpoint).get("step", 0)),
            supernet,
            data,
            calibration_images(data.train, config.calib_images),
            config.eval_batch_size,
        )
        run._load_cache()
        return run

    def accuracy(self, archs: Sequence[Arch], split: str = "val") -> np.ndarray:
        """Top-1 (0..1) of each arch after BN recalibration, from the cache when known."""
        missing = list(dict.fromkeys(a for a in archs if (a, split) not in self._cache))
        if missing:
            evaluate = self._evaluator or self._evaluate_here
            top1s = evaluate(missing, split)
            self._store([(a, split, t) for a, t in zip(missing, top1s, strict=True)])
        return np.array([self._cache[(a, split)] for a in archs])

    @contextmanager
    def parallel(self, workers: int) -> Iterator[RayEvaluator]:
        """Inside the block, :meth:`accuracy` computes the archs it lacks on ``workers`` Ray
        actors (:mod:`nas.distributed`), with the same results; they stop at the block's end."""
        from nas.distributed import RayEvaluator

        evaluator = RayEvaluator(self, workers)
        previous, self._evaluator = self._evaluator, evaluator
        try:
            yield evaluator
        finally:
            self._evaluator = previous
            evaluator.close()

    def _evaluate_here(self, archs: Sequence[Arch], split: str) -> list[float]:
        """The default evaluator: top-1 of ``archs`` computed in this process."""
        net = evaluation_copy(self.supernet)
        splits = [getattr(self.data, split)]
        return [r[0] for r in evaluate_archs(net, archs, self.calibration, splits, self.batch_size)]

    def _store(self, rows: list[tuple[Arch, str, float]]) -> None:
        lines = []
        for arch, split, top1 in rows:
            self._cache[(arch, split)] = float(top1)
            lines.append(
                json.dumps(
                    {
                        "arch": arch.to_dict(),
                        "split": split,
                        "top1": float(top1),
                        "checkpoint": self.checkpoint.name,
                        "step": self.step,
                    }
                )
            )
        with (self.folder / CACHE_FILE).open("a") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())

    def _load_cache(self) -> None:
        path = self.folder / CACHE_FILE
        if not path.is_file():
            return
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill
            if record.get("checkpoint") == self.checkpoint.name and record.get("step") == self.step:
                arch = Arch.from_dict(record["arch"])
                self._cache[(arch, record["split"])] = record["top1"]

    def measured(self, split: str = "val") -> dict[Arch, float]:
        """Every accuracy on ``split`` measured so far for this checkpoint (from the cache)."""
        return {arch: top1 for (arch, s), top1 in self._cache.items() if s == split}

    def extract(self, arch: Arch, recalibrate: bool = True):
        """The standalone model of ``arch`` with BN statistics recalibrated on training images."""
        from nas.extract import extract
        from nas.train.evaluate import recalibrate_bn

        net = evaluation_copy(self.supernet)
        net.set_arch(arch)
        if recalibrate:
            recalibrate_bn(net, self.calibration, arch.resolution, self.batch_size)
        return extract(net.eval(), arch)
