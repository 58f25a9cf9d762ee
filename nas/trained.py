"""A finished (or running) training run opened for evaluation: space, data, trained supernet.

Accuracies are BN-recalibrated top-1 on a split, cached per arch in the run folder
(``accuracy_cache.jsonl``, tagged with the checkpoint's step), so searches and extraction never
evaluate the same subnet twice. Archs missing from the cache are evaluated in this process, or
on Ray actors inside :meth:`TrainedRun.parallel`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from nas.arch import Arch, ArchError
from nas.errors import InputError
from nas.runs import append_text
from nas.space import SearchSpace, SpaceError
from nas.supernet import Supernet
from nas.supernet.checkpoint import load_supernet, read_checkpoint
from nas.textfiles import read_text
from nas.train.config import CONFIG_FILE, read_config, read_derived
from nas.train.data import ChannelsError, DataSet, Preprocessing, load_data
from nas.train.evaluate import calibration_images, evaluate_archs, evaluation_copy

if TYPE_CHECKING:
    from nas.distributed import RayEvaluator

CACHE_FILE = "accuracy_cache.jsonl"
CHECKPOINTS = ("best.pt", "last.pt")
SPLITS = ("train", "val", "test")

#: Computes the top-1 of archs on a split (by name): in this process, or on Ray actors.
Evaluator = Callable[[Sequence[Arch], str], list[float]]


class RunFolderError(InputError):
    """A folder is not a training run, or lacks what is asked of it."""


def _declared_space(payload: dict, name: str, space: SearchSpace) -> SearchSpace:
    """The space as declared (before ``with_task``) of a run whose supernet has ``space``: from
    the checkpoint, else from the run's ``--space`` when it still describes the same space, else
    ``space`` itself."""
    import search_spaces

    if isinstance(payload.get("declared_space"), dict):
        try:
            return SearchSpace.from_dict(payload["declared_space"])
        except SpaceError:
            pass
    try:
        declared = search_spaces.get(name)
    except SpaceError:
        return space
    same = declared.with_task(num_classes=space.num_classes, in_channels=space.in_channels)
    return declared if same == space else space


@dataclass
class TrainedRun:
    folder: Path
    checkpoint: Path
    step: int
    supernet: Supernet
    data: DataSet
    calibration: torch.Tensor
    batch_size: int
    declared_space: SearchSpace
    _cache: dict[tuple[Arch, str], float] = field(default_factory=dict, repr=False)
    _evaluator: Evaluator | None = field(default=None, repr=False)

    @property
    def space(self) -> SearchSpace:
        """The space the supernet was built for: the declared space with the data set's input
        channels and classes (``SearchSpace.with_task``)."""
        return self.supernet.space

    @property
    def preprocessing(self) -> Preprocessing:
        """How the run's images were fed to the supernet (a deployed model's input contract)."""
        assert self.data.preprocessing is not None
        return self.data.preprocessing

    @property
    def config(self):
        return read_config(self.folder / CONFIG_FILE)

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
        payload = read_checkpoint(checkpoint)
        saved = read_derived(folder / CONFIG_FILE).get("preprocessing")
        supernet = load_supernet(checkpoint).to(device).eval()
        space = supernet.space
        try:
            data = load_data(
                config.data,
                config.data_format,
                image_size=max(space.resolutions),
                train_limit=config.train_limit,
                eval_limit=config.eval_limit,
                # runs recorded before the record existed: recomputed, the same statistics
                preprocessing=Preprocessing.from_dict(saved) if saved else None,
            )
        except ChannelsError as err:
            raise _other_data(folder, space, config.data, f"{err.channels} channel(s)") from None
        if (data.in_channels, data.num_classes) != (space.in_channels, space.num_classes):
            raise _other_data(
                folder,
                space,
                config.data,
                f"{data.in_channels} channel(s) and {data.num_classes} classes",
            )
        run = cls(
            folder,
            checkpoint,
            int(payload.get("step", 0)),
            supernet,
            data,
            calibration_images(data.train, config.calib_images),
            config.eval_batch_size,
            _declared_space(payload, config.space, space),
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
    def parallel(self, workers: int, address: str | None = None) -> Iterator[RayEvaluator]:
        """Inside the block, :meth:`accuracy` computes the archs it lacks on ``workers`` Ray
        actors (:mod:`nas.distributed`; on the Ray cluster at ``address`` when given), with the
        same results; they stop at the block's end."""
        from nas.distributed import RayEvaluator

        evaluator = RayEvaluator(self, workers, address=address)
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
        append_text(self.folder / CACHE_FILE, "".join(line + "\n" for line in lines))

    def _load_cache(self) -> None:
        """Read the cache; a line that is not a valid record of this space (torn by a kill,
        edited by hand) is only a cache miss."""
        path = self.folder / CACHE_FILE
        if not path.is_file():
            return
        text = read_text(path, "accuracy cache records")
        for line in text.splitlines():
            try:
                record = json.loads(line)
                if record["checkpoint"] != self.checkpoint.name or record["step"] != self.step:
                    continue
                arch = self.space.validate(Arch.from_dict(record["arch"]))
                split, top1 = record["split"], record["top1"]
            except (ValueError, KeyError, TypeError, RecursionError, ArchError):
                continue
            if split in SPLITS and isinstance(top1, float | int) and 0 <= top1 <= 1:
                self._cache[(arch, split)] = float(top1)

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


def _other_data(folder: Path, space: SearchSpace, data: str, has: str) -> RunFolderError:
    return RunFolderError(
        f"{folder}: its supernet was trained on {space.in_channels}-channel images of "
        f"{space.num_classes} classes, but its data {data} now has {has}; restore the data set "
        "the run was trained on"
    )
