"""Image classification data sets for supernet training, held in memory as normalised tensors.

:func:`load_data` reads the embedded default (scikit-learn's digits) or a local data set:

* ``digits``: scikit-learn's 8x8 digits, shipped with scikit-learn (1,797 images, 10 classes);
* ``idx``: MNIST / Fashion-MNIST IDX files (``train-images-idx3-ubyte[.gz]`` and friends);
* ``cifar10`` / ``cifar100``: the CIFAR "python version" batches;
* ``folder``: an image folder with one subfolder per class (optionally under ``train/``,
  ``val/``, ``test/``);
* ``npz``: a NumPy ``.npz`` file with ``x`` and ``y`` (optionally ``x_val``/``y_val`` and
  ``x_test``/``y_test``).

Every data set ends as three splits (train / val / test); where a source has no validation (or
test) split, a fixed stratified part of its training set is held out, so the split never depends
on the run's seed. Grey data sets keep one input channel (the supernet's stem is built for the
data set's channels, see ``SearchSpace.with_task``). Images are kept at their stored size and
resized to each arch's resolution batch by batch (:func:`resize`). Nothing is downloaded.

Pixels are scaled to [0, 1] (8-bit images: /255) and normalised per channel with the training
split's mean and standard deviation; :class:`Preprocessing` holds them, training records them in
the run folder, and a deployed model's card states them (its input contract).
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from nas.errors import InputError
from nas.train.config import DATA_FORMATS

#: Fractions of a single labelled pool given to (train, val, test) when a source has one pool.
POOL_SPLIT = (0.7, 0.15, 0.15)
#: Fraction of a training set held out for validation when a source has train and test only.
VAL_FRACTION = 0.1
#: The split is fixed: it never depends on the run's seed.
SPLIT_SEED = 0
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class DataError(InputError):
    """A data set is missing, unreadable or malformed; the message names the path."""


class ChannelsError(DataError):
    """Images with another number of channels than expected (``channels``: theirs)."""

    def __init__(self, message: str, channels: int):
        super().__init__(message)
        self.channels = channels


@dataclass
class Split:
    """Images ``x`` (N, C, H, W) float32, normalised; labels ``y`` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray | torch.Tensor) -> Split:
        index = torch.as_tensor(index, dtype=torch.long)
        return Split(self.x[index], self.y[index])


@dataclass(frozen=True)
class Preprocessing:
    """How images in [0, 1] become model inputs: ``(x - mean) / std`` per channel (float32).

    ``stored_size``: image-folder data sets store every image resized to that side first (PIL,
    bilinear); other formats keep their stored size. Inputs are then resized to the model's
    resolution (:func:`resize`).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    stored_size: int | None = None

    def __post_init__(self) -> None:
        if len(self.mean) not in (1, 3) or len(self.std) != len(self.mean):
            raise DataError(
                f"preprocessing needs 1 or 3 channel means and as many stds, got "
                f"{len(self.mean)} means and {len(self.std)} stds"
            )
        values = [*self.mean, *self.std]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise DataError(f"preprocessing mean/std must be finite numbers, got {values}")
        if min(self.std) <= 0:
            raise DataError(f"preprocessing std must be positive, got {list(self.std)}")

    @property
    def channels(self) -> int:
        return len(self.mean)

    @property
    def color(self) -> str:
        """The PIL mode images are converted to: ``L`` (grey) or ``RGB``."""
        return "L" if self.channels == 1 else "RGB"

    def normalise(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, C) images in [0, 1] -> normalised float32, as training saw them."""
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return (np.asarray(images, dtype=np.float32) - mean) / std

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "stored_size": self.stored_size}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        try:
            size = data.get("stored_size")
            return cls(
                tuple(float(v) for v in data["mean"]),
                tuple(float(v) for v in data["std"]),
                None if size is None else int(size),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"malformed preprocessing record {data!r}: {err}") from None

    @classmethod
    def of_images(cls, images: np.ndarray, stored_size: int | None = None) -> Preprocessing:
        """Per-channel mean and std (+1e-6) of (N, H, W, C) images, as float32 statistics."""
        mean = images.mean(axis=(0, 1, 2))
        std = images.std(axis=(0, 1, 2)) + 1e-6
        return cls(
            tuple(float(np.float32(v)) for v in mean),
            tuple(float(np.float32(v)) for v in std),
            stored_size,
        )


@dataclass
class DataSet:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    classes: list[str]
    preprocessing: Preprocessing | None = None

    @property
    def in_channels(self) -> int:
        return int(self.train.x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train.x.shape[-1])

    def describe(self) -> str:
        return (
            f"{self.name}: {len(self.train)} train / {len(self.val)} val / {len(self.test)} test, "
            f"{self.num_classes} classes, {self.in_channels}x{self.image_size}x{self.image_size}"
        )


# --------------------------------------------------------------------- entry point


def load_data(
    source: str,
    fmt: str = "auto",
    *,
    image_size: int = 32,
    train_limit: int = 0,
    eval_limit: int = 0,
    preprocessing: Preprocessing | None = None,
) -> DataSet:
    """Load ``source`` (``digits`` or a path) as normalised train/val/test splits.

    ``image_size`` is the side images of a folder data set are stored at (other formats keep
    their own size). ``train_limit`` / ``eval_limit`` keep a fixed stratified subset of at most
    that many training / validation-and-test images (0 keeps all). ``preprocessing`` (a trained
    run's record) normalises with those statistics instead of the training split's own.
    """
    name, raw, stored_size = _read(source, fmt, image_size)
    splits = _cut(name, raw, train_limit, eval_limit)
    if preprocessing is None:
        preprocessing = Preprocessing.of_images(splits["train"][0], stored_size)
    channels = splits["train"][0].shape[-1]
    if preprocessing.channels != channels:
        raise ChannelsError(
            f"{name} has {channels} channel(s) but the preprocessing record has "
            f"{preprocessing.channels}",
            channels,
        )

    def tensor(x: np.ndarray, y: np.ndarray) -> Split:
        x = preprocessing.normalise(x)
        images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))
        return Split(images, torch.from_numpy(y.astype(np.int64)))

    return DataSet(
        name=name,
        train=tensor(*splits["train"]),
        val=tensor(*splits["val"]),
        test=tensor(*splits["test"]),
        num_classes=len(raw.classes),
        classes=raw.classes,
        preprocessing=preprocessing,
    )


def load_raw_split(
    source: str,
    split: str,
    fmt: str = "auto",
    *,
    image_size: int = 32,
    train_limit: int = 0,
    eval_limit: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One split of ``source`` before normalisation: (N, H, W, C) float32 images in [0, 1],
    labels and class names -- exactly the images :func:`load_data` normalises."""
    name, raw, _ = _read(source, fmt, image_size)
    splits = _cut(name, raw, train_limit, eval_limit)
    if split not in splits:
        raise DataError(f"unknown split {split!r}; choices: train, val, test")
    x, y = splits[split]
    return x, y, raw.classes


def _read(source: str, fmt: str, image_size: int) -> tuple[str, _Raw, int | None]:
    """(name, raw splits, stored side of folder images or None) of ``source``."""
    if fmt not in DATA_FORMATS:
        raise DataError(f"data format {fmt!r} is not known; choices: {', '.join(DATA_FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(source)
    if fmt == "digits":
        raw = _digits()
        name = "digits"
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(f"data path {source} does not exist")
        loader = {
            "idx": _idx,
            "cifar10": _cifar10,
            "cifar100": _cifar100,
            "folder": lambda p: _folder(p, image_size),
            "npz": _npz,
        }[fmt]
        try:
            raw = loader(path)
        except DataError:
            raise
        except (OSError, EOFError, ValueError, KeyError, struct.error, pickle.UnpicklingError) as e:
            raise DataError(
                f"{source} is not a readable {fmt} data set ({e.__class__.__name__}: {e})"
            ) from None
        name = f"{fmt}:{path.name}"
    return name, raw, image_size if fmt == "folder" else None


def detect_format(source: str) -> str:
    """The format of ``source``: ``digits``, or guessed from the files found at the path."""
    if source == "digits":
        return "digits"
    path = Path(source)
    if not path.exists():
        raise DataError(
            f"data {source!r} is neither the embedded data set 'digits' nor an existing path"
        )
    if path.is_file():
        if path.suffix == ".npz":
            return "npz"
        raise DataError(f"{source}: a data file must be .npz; folders hold the other formats")
    names = {p.name for p in path.iterdir()}
    if _find_idx(path, "train", "images", required=False) is not None:
        return "idx"
    if "data_batch_1" in names or (path / "cifar-10-batches-py").is_dir():
        return "cifar10"
    if (path / "cifar-100-python").is_dir() or (
        (path / "train").is_file() and (path / "test").is_file()
    ):
        return "cifar100"
    if any(p.is_dir() for p in path.iterdir()):
        return "folder"
    raise DataError(
        f"{source}: cannot tell the data format (no IDX files, CIFAR batches or class folders); "
        f"pass --data-format ({', '.join(DATA_FORMATS[1:])})"
    )


# --------------------------------------------------------------------- batches


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The training order of epoch ``epoch``: a permutation fixed by (seed, epoch)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def train_batches(
    split: Split,
    batch_size: int,
    seed: int,
    epoch: int,
    start: int = 0,
    rank: int = 0,
    world: int = 1,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of one epoch from batch ``start`` on (incomplete last batch dropped).

    With ``world`` > 1 the global batch of ``batch_size`` images is cut into ``world`` shards and
    worker ``rank`` gets its shard, so all workers together see what one worker would.
    """
    order = epoch_order(len(split), seed, epoch)
    per_worker = batch_size // world
    for b in range(start, len(split) // batch_size):
        index = order[b * batch_size : (b + 1) * batch_size][rank * per_worker :][:per_worker]
        yield split.x[index], split.y[index]


def eval_batches(split: Split, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(split), batch_size):
        yield split.x[start : start + batch_size], split.y[start : start + batch_size]


def shard(split: Split, index: int, count: int, batch_size: int) -> Split:
    """Part ``index`` of ``count`` of ``split``: a contiguous run of its evaluation batches, so the
    shards' :func:`eval_batches` are together exactly the batches of the whole split (a copy:
    it does not keep the whole split alive)."""
    batches = -(-len(split) // batch_size)
    start = batches * index // count * batch_size
    stop = batches * (index + 1) // count * batch_size
    return Split(split.x[start:stop].clone(), split.y[start:stop].clone())


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images resized to ``size`` x ``size`` (bilinear, no antialiasing); unchanged if already."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


# --------------------------------------------------------------------- splitting


@dataclass
class _Raw:
    """Images as (N, H, W, C) arrays in [0, 1] (float32) and integer labels, per split."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    classes: list[str]


def _stratified(y: np.ndarray, fractions: tuple[float, ...]) -> list[np.ndarray]:
    """Indices of ``y`` cut into parts of the given fractions, stratified, fixed."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    parts = []
    remaining = 1.0
    for frac in fractions[:-1]:
        share = frac / remaining
        if share >= 1.0:
            parts.append(index)
            index = index[:0]
            break
        try:
            taken, index = train_test_split(
                index, train_size=share, random_state=SPLIT_SEED, stratify=y[index]
            )
        except ValueError:  # too few images of some class to stratify
            taken, index = train_test_split(index, train_size=share, random_state=SPLIT_SEED)
        parts.append(np.sort(taken))
        remaining -= frac
    parts.append(np.sort(index))
    return parts


def _limit(x: np.ndarray, y: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    if not limit or limit >= len(y):
        return x, y
    keep, _ = _stratified(y, (limit / len(y), 1 - limit / len(y)))
    return x[keep], y[keep]


def _cut(
    name: str, raw: _Raw, train_limit: int, eval_limit: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The fixed train / val / test splits of ``raw`` (held out where the source has none)."""
    splits = dict(raw.splits)
    if "test" not in splits:
        x, y = splits.pop("train")
        train, val, test = _stratified(y, POOL_SPLIT)
        splits = {
            "train": (x[train], y[train]),
            "val": (x[val], y[val]),
            "test": (x[test], y[test]),
        }
    elif "val" not in splits:
        x, y = splits["train"]
        train, val = _stratified(y, (1 - VAL_FRACTION, VAL_FRACTION))
        splits["train"], splits["val"] = (x[train], y[train]), (x[val], y[val])
    splits["train"] = _limit(*splits["train"], train_limit)
    splits["val"] = _limit(*splits["val"], eval_limit)
    splits["test"] = _limit(*splits["test"], eval_limit)
    for key, (_, y) in splits.items():
        if len(y) == 0:
            raise DataError(f"{name}: the {key} split is empty; the data set is too small")
    return splits


# --------------------------------------------------------------------- formats


def _digits() -> _Raw:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    return _Raw({"train": (x, digits.target.astype(np.int64))}, [str(c) for c in range(10)])


_IDX_NAMES = {
    ("train", "images"): ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    ("train", "labels"): ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    ("test", "images"): ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    ("test", "labels"): ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _find_idx(folder: Path, split: str, kind: str, required: bool = True) -> Path | None:
    for stem in _IDX_NAMES[(split, kind)]:
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    if required:
        raise DataError(f"{folder}: missing {_IDX_NAMES[(split, kind)][0]}.gz (IDX {split} {kind})")
    return None


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{path} is not a readable IDX file ({err})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated (header)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(shape))
    if len(data) - header != size:
        raise DataError(
            f"{path} is truncated or padded: {len(data) - header} bytes of data, expected {size}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _idx(folder: Path) -> _Raw:
    if not folder.is_dir():
        raise DataError(f"{folder}: IDX data must be a folder holding the four IDX files")
    splits = {}
    for split in ("train", "test"):
        images = _read_idx(_find_idx(folder, split, "images"))
        labels = _read_idx(_find_idx(folder, split, "labels"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match"
            )
        splits[split] = ((images.astype(np.float32) / 255.0)[..., None], labels.astype(np.int64))
    classes = sorted(set(splits["train"][1].tolist()) | set(splits["test"][1].tolist()))
    if classes != list(range(len(classes))):
        raise DataError(f"{folder}: labels must be 0..K-1, found {classes[:20]}")
    return _Raw(splits, [str(c) for c in classes])


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays only (CIFAR batches), nothing executable."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"missing CIFAR batch file {path}")
    with open(path, "rb") as f:
        data = _ArrayUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    if not isinstance(data, dict):
        raise DataError(f"{path} is not a CIFAR batch (not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def _cifar_images(batch: dict, path: Path) -> np.ndarray:
    data = np.asarray(batch["data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: CIFAR data must be N x 3072 bytes, got {data.shape}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255.0


def _cifar10(folder: Path) -> _Raw:
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    xs, ys = [], []
    for k in range(1, 6):
        batch = _unpickle(folder / f"data_batch_{k}")
        xs.append(_cifar_images(batch, folder / f"data_batch_{k}"))
        ys.append(np.asarray(batch["labels"], dtype=np.int64))
    test = _unpickle(folder / "test_batch")
    classes = [str(c) for c in range(10)]
    meta = folder / "batches.meta"
    if meta.is_file():
        names = _unpickle(meta).get("label_names")
        if names:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return _Raw(
        {
            "train": (np.concatenate(xs), np.concatenate(ys)),
            "test": (
                _cifar_images(test, folder / "test_batch"),
                np.asarray(test["labels"], np.int64),
            ),
        },
        classes,
    )


def _cifar100(folder: Path) -> _Raw:
    if (folder / "cifar-100-python").is_dir():
        folder = folder / "cifar-100-python"
    splits = {}
    for split in ("train", "test"):
        batch = _unpickle(folder / split)
        splits[split] = (
            _cifar_images(batch, folder / split),
            np.asarray(batch["fine_labels"], np.int64),
        )
    classes = [str(c) for c in range(100)]
    meta = folder / "meta"
    if meta.is_file():
        names = _unpickle(meta).get("fine_label_names")
        if names:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return _Raw(splits, classes)


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folder(root: Path, size: int) -> _Raw:
    from PIL import Image, UnidentifiedImageError

    named = {s: root / s for s in ("train", "val", "test") if (root / s).is_dir()}
    if "train" in named and "test" in named:
        parts = named
        classes = [p.name for p in _class_folders(named["train"])]
    else:
        parts = {"train": root}
        classes = [p.name for p in _class_folders(root)]
    if len(classes) < 2:
        raise DataError(f"{root}: an image folder needs at least two class subfolders")
    files: dict[str, list[tuple[Path, int]]] = {}
    for split, folder in parts.items():
        found = {p.name for p in _class_folders(folder)}
        unknown = found - set(classes)
        if unknown:
            raise DataError(f"{folder}: class folders {sorted(unknown)} are not in train/")
        files[split] = [
            (f, label)
            for label, name in enumerate(classes)
            if (folder / name).is_dir()
            for f in sorted((folder / name).iterdir())
            if f.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not files[split]:
            raise DataError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    images: dict[str, list] = {}
    grey = True
    for split, entries in files.items():
        images[split] = []
        for path, _ in entries:
            try:
                with Image.open(path) as img:
                    img.load()
                    grey = grey and img.mode in ("1", "L", "LA", "I", "I;16", "F")
                    images[split].append(img.copy())
            except (OSError, UnidentifiedImageError) as err:
                raise DataError(f"{path} is not a readable image ({err})") from None
    mode = "L" if grey else "RGB"
    splits = {}
    for split, entries in files.items():
        arrays = [
            np.asarray(img.convert(mode).resize((size, size), Image.BILINEAR), dtype=np.float32)
            for img in images[split]
        ]
        x = np.stack(arrays) / 255.0
        if x.ndim == 3:
            x = x[..., None]
        splits[split] = (x, np.array([label for _, label in entries], dtype=np.int64))
    return _Raw(splits, classes)


def as_unit_images(x: np.ndarray, where: str) -> np.ndarray:
    """Square images as (N, H, W, C) float32 in [0, 1]: from N x H x W, N x H x W x C or
    N x C x H x W arrays, uint8 scaled by 1/255, floats taken as already in [0, 1]."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim == 4 and x.shape[-1] not in (1, 3) and x.shape[1] in (1, 3):
        x = x.transpose(0, 2, 3, 1)
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or x.shape[1] != x.shape[2]:
        raise DataError(
            f"{where} has shape {x.shape}; expected square images N x H x W, N x H x W x C "
            "or N x C x H x W with C = 1 or 3"
        )
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if x.dtype.kind not in "iuf":
        raise DataError(f"{where} holds {x.dtype} values; expected image intensities (numbers)")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{where} holds NaN or infinite pixel values; expected finite intensities")
    return x


def _check_labels(y: np.ndarray, where: str) -> None:
    """Labels must be finite whole numbers (any integers, or floats holding integers)."""
    if y.dtype.kind in "iu":
        return
    if y.dtype.kind != "f":
        raise DataError(f"{where} has {y.dtype} labels; expected integer class labels")
    bad = ~np.isfinite(y) | (y != np.round(y))
    if bad.any():
        first = int(np.flatnonzero(bad.ravel())[0])
        raise DataError(
            f"{where} has {int(bad.sum())} label(s) that are not whole numbers (the first at "
            f"index {first}: {y.ravel()[first]!r}); expected integer class labels"
        )


def _some(values: np.ndarray) -> str:
    shown = [v.item() for v in values[:10]]
    return str(shown)[:-1] + (", ...]" if len(values) > 10 else "]")


def _npz(path: Path) -> _Raw:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    if "x" not in arrays or "y" not in arrays:
        raise DataError(f"{path} must hold arrays 'x' and 'y'; found {sorted(arrays)}")
    raw_labels = {"train": arrays["y"]}
    splits_x = {"train": arrays["x"]}
    for split in ("val", "test"):
        if f"x_{split}" in arrays and f"y_{split}" in arrays:
            splits_x[split], raw_labels[split] = arrays[f"x_{split}"], arrays[f"y_{split}"]
    if "val" in splits_x and "test" not in splits_x:
        raise DataError(f"{path}: x_val/y_val are given without x_test/y_test")
    for split, labels in raw_labels.items():
        _check_labels(np.asarray(labels), f"{path}: y{'' if split == 'train' else '_' + split}")
    values = np.unique(np.asarray(raw_labels["train"]).ravel())
    for split in ("val", "test"):
        if split in raw_labels:
            extra = np.setdiff1d(np.asarray(raw_labels[split]).ravel(), values)
            if len(extra):
                raise DataError(
                    f"{path}: y_{split} has classes {_some(extra)} that y (training) lacks; "
                    f"every class of y_{split} must have training images (y has {_some(values)})"
                )
    splits = {}
    for split, x in splits_x.items():
        y = np.asarray(raw_labels[split]).ravel()
        if len(y) != len(x):
            raise DataError(f"{path}: {len(x)} images but {len(y)} labels in the {split} split")
        splits[split] = (
            as_unit_images(x, f"{path}: x"),
            np.searchsorted(values, y).astype(np.int64),
        )
    return _Raw(splits, [str(v) for v in values.tolist()])
