"""A finished (or running) training run opened for evaluation: space, data, trained supernet.

Accuracies are BN-recalibrated top-1 on a split, cached per arch in the run folder
(``accuracy_cache.jsonl``, tagged with the checkpoint's step), so searches and extraction never
evaluate the same subnet twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nas.arch import Arch
from nas.errors import InputError
from nas.supernet import Supernet
from nas.supernet.checkpoint import load_supernet, read_checkpoint
from nas.train.config import CONFIG_FILE, read_config
from nas.train.data import DataSet, load_data
from nas.train.evaluate import calibration_images, evaluate_archs, evaluation_copy

CACHE_FILE = "accuracy_cache.jsonl"
CHECKPOINTS = ("best.pt", "last.pt")


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
            net = evaluation_copy(self.supernet)
            results = evaluate_archs(
                net, missing, self.calibration, [getattr(self.data, split)], self.batch_size
            )
            self._store([(a, split, r[0]) for a, r in zip(missing, results, strict=True)])
        return np.array([self._cache[(a, split)] for a in archs])

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

    def extract(self, arch: Arch, recalibrate: bool = True):
        """The standalone model of ``arch`` with BN statistics recalibrated on training images."""
        from nas.extract import extract
        from nas.train.evaluate import recalibrate_bn

        net = evaluation_copy(self.supernet)
        net.set_arch(arch)
        if recalibrate:
            recalibrate_bn(net, self.calibration, arch.resolution, self.batch_size)
        return extract(net.eval(), arch)
