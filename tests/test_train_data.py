"""Data sets for supernet training: the embedded digits and the local loaders, with clear errors."""

from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from nas.errors import InputError
from nas.train.data import DataError, detect_format, epoch_order, load_data, resize, train_batches


def test_digits_split_is_fixed_stratified_and_normalised():
    first, second = load_data("digits"), load_data("digits")
    assert (len(first.train), len(first.val), len(first.test)) == (1257, 269, 271)
    assert first.num_classes == 10 and first.in_channels == 1 and first.image_size == 8
    assert torch.equal(first.train.x, second.train.x) and torch.equal(first.test.y, second.test.y)
    assert abs(float(first.train.x.mean())) < 1e-4 and abs(float(first.train.x.std()) - 1) < 1e-2
    for split in (first.train, first.val, first.test):
        counts = torch.bincount(split.y, minlength=10).float()
        assert counts.min() / counts.max() > 0.8  # stratified: every class about equally present


def test_limits_keep_a_fixed_subset():
    data = load_data("digits", train_limit=200, eval_limit=50)
    assert (len(data.train), len(data.val), len(data.test)) == (200, 50, 50)
    assert torch.equal(data.train.y, load_data("digits", train_limit=200).train.y)


def test_batches_follow_a_seeded_order_and_shard_over_workers():
    data = load_data("digits", train_limit=128)
    assert torch.equal(epoch_order(128, 3, 1), epoch_order(128, 3, 1))
    assert not torch.equal(epoch_order(128, 3, 1), epoch_order(128, 3, 2))
    whole = list(train_batches(data.train, 32, seed=0, epoch=0))
    assert len(whole) == 4
    later = list(train_batches(data.train, 32, seed=0, epoch=0, start=2))
    assert torch.equal(later[0][0], whole[2][0])
    shards = [list(train_batches(data.train, 32, 0, 0, rank=r, world=2)) for r in range(2)]
    assert torch.equal(torch.cat([shards[0][1][1], shards[1][1][1]]), whole[1][1])


def test_resize_is_bilinear_to_the_arch_resolution():
    """Bilinear, pixel centres aligned (align_corners=False), edges clamped, no antialiasing:
    values worked out by hand."""
    x = torch.rand(2, 1, 8, 8)
    assert resize(x, 8) is x
    small = torch.tensor([[0.0, 4.0], [8.0, 12.0]]).reshape(1, 1, 2, 2)
    # 2 -> 4: output pixel centres fall at -0.25, 0.25, 0.75, 1.25 input pixels (clamped to 0..1)
    up = [[0, 1, 3, 4], [2, 3, 5, 6], [6, 7, 9, 10], [8, 9, 11, 12]]
    assert torch.equal(resize(small, 4), torch.tensor(up, dtype=torch.float32).reshape(1, 1, 4, 4))
    # 4 -> 2: centres at 0.5 and 2.5: each output is the mean of a 2 x 2 block
    big = torch.tensor(up, dtype=torch.float32).reshape(1, 1, 4, 4)
    down = torch.tensor([[1.5, 4.5], [7.5, 10.5]]).reshape(1, 1, 2, 2)
    assert torch.equal(resize(big, 2), down)
    assert resize(torch.rand(3, 2, 5, 5), 7).shape == (3, 2, 7, 7)  # every image and channel


def _idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _idx_folder(folder, n=60):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "t10k"):
        _idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 6, 6)))
        _idx(folder / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 3)
    return folder


def test_idx_files_load_with_a_validation_part_held_out(tmp_path):
    folder = _idx_folder(tmp_path / "mnist")
    assert detect_format(str(folder)) == "idx"
    data = load_data(str(folder))
    assert (len(data.train), len(data.val), len(data.test)) == (54, 6, 60)
    assert data.num_classes == 3 and data.train.x.shape[1:] == (1, 6, 6)


def test_corrupt_and_missing_idx_files_are_named(tmp_path):
    folder = _idx_folder(tmp_path / "mnist")
    path = folder / "train-images-idx3-ubyte.gz"
    data = gzip.decompress(path.read_bytes())
    with gzip.open(path, "wb") as f:
        f.write(data[:-10])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is truncated"):
        load_data(str(folder))
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is not a readable IDX"):
        load_data(str(folder))
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    path.unlink()
    with pytest.raises(DataError, match="missing"):
        load_data(str(folder), "idx")
    with pytest.raises(InputError, match="neither the embedded data set 'digits' nor"):
        load_data(str(tmp_path / "nowhere"))


def test_cifar10_batches_load_and_nothing_but_arrays_is_unpickled(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 255, (20, 3072), dtype=np.uint8), b"labels": [0, 1] * 10}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"cat", b"dog"]}))
    data = load_data(str(tmp_path))
    assert data.train.x.shape[1:] == (3, 32, 32) and len(data.test) == 20
    assert data.classes == ["cat", "dog"]

    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match="refusing to load .*getcwd from a data file"):
        load_data(str(tmp_path))


def test_image_folder_and_npz(tmp_path):
    from PIL import Image

    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for k in range(10):
            pixels = rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{k}.png")
    data = load_data(str(root), image_size=16)
    assert detect_format(str(root)) == "folder"
    assert data.classes == ["a", "b"] and data.train.x.shape[1:] == (3, 16, 16)
    assert len(data.train) + len(data.val) + len(data.test) == 20
    (root / "a" / "broken.png").write_bytes(b"no image")
    with pytest.raises(DataError, match="broken.png is not a readable image"):
        load_data(str(root))

    npz = tmp_path / "set.npz"
    np.savez(npz, x=rng.integers(0, 255, (40, 9, 9), dtype=np.uint8), y=np.repeat([3, 7], 20))
    data = load_data(str(npz))
    assert data.classes == ["3", "7"] and data.in_channels == 1
    np.savez(npz, images=np.zeros((4, 9, 9)))
    with pytest.raises(DataError, match="must hold arrays 'x' and 'y'"):
        load_data(str(npz))


def test_fashion_mnist_from_the_shared_folder(shared_data):
    folder = shared_data / "fashion_mnist"
    assert detect_format(str(folder)) == "idx"
    data = load_data(str(folder), train_limit=1000, eval_limit=500)
    assert data.num_classes == 10 and data.image_size == 28
    assert (len(data.train), len(data.val), len(data.test)) == (1000, 500, 500)
