"""``nas predict``: run a model file with its card's input contract on images, print top classes.

The card is ``MODEL.card.json`` beside the model (``--card`` names another; a ``.pt`` model
file carries its own). Inputs are image files, ``.npz`` files (``x``, optionally ``y``) or a
split of the run the model came from (:func:`run_split`, the images before normalisation); with
labels the accuracy is printed too -- on the run's test split it is the card's accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.export import format_of_path
from nas.export.base import run_batched
from nas.export.contract import ContractError, InputContract


@dataclass
class Prediction:
    source: str
    top: list[tuple[str, float]]  # (class, probability), best first
    label: str | None = None


def read_card(model: Path, card: Path | None = None) -> dict[str, Any]:
    """The card of ``model``: ``card``, else ``MODEL.card.json``, else one stored in a ``.pt``."""
    path = card or model.with_suffix(model.suffix + ".card.json")
    if path.is_file() or card is not None:
        from nas.textfiles import read_json_object

        return read_json_object(path, "a model card (MODEL.card.json, written by nas extract)")
    if model.suffix == ".pt" and model.is_file():
        from nas.extract import model_card

        stored = model_card(model)
        if stored:
            return stored
    raise ContractError(
        f"no card for {model}: expected {path} (written by `nas extract --run ...`); "
        "pass --card CARD.json"
    )


def run_split(card: dict[str, Any], split: str, run: Path | None = None):
    """(N, H, W, C) images in [0, 1] and labels of ``split`` of the training run named by the
    card (or ``run``), read with that run's data options, before normalisation."""
    from nas.errors import InputError
    from nas.train.config import CONFIG_FILE, read_config
    from nas.train.data import load_raw_split

    folder = run or (Path(card["run"]) if isinstance(card.get("run"), str) else None)
    if folder is None:
        raise ContractError("the card names no training run: pass --run RUN with --split")
    if not (folder / CONFIG_FILE).is_file():
        raise ContractError(
            f"--split {split}: {folder} is not a training run (no {CONFIG_FILE}); pass --run RUN"
        )
    config = read_config(folder / CONFIG_FILE)
    # folder data sets store images at the side the card records; other formats keep theirs
    stored = (card.get("input") or {}).get("resize", {}).get("stored_size")
    try:
        x, y, _ = load_raw_split(
            config.data,
            split,
            config.data_format,
            image_size=stored if isinstance(stored, int) else 32,
            train_limit=config.train_limit,
            eval_limit=config.eval_limit,
        )
    except InputError as err:
        raise ContractError(f"--split {split} of {folder}: {err}") from None
    return x, y


def predict(
    model: Path,
    inputs: list[Path],
    card: Path | None = None,
    top: int = 3,
    threads: int = 1,
    split: str | None = None,
    run: Path | None = None,
) -> tuple[list[Prediction], dict[str, Any]]:
    """Top-``top`` classes of every input image, and accuracy per labelled ``.npz`` (and per
    run ``split``)."""
    fmt = format_of_path(model)
    data = read_card(model, card)
    contract = InputContract.from_card(data, str(card or model))
    classes = [str(c) for c in data.get("classes") or []]
    batches: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    if split is not None:
        images, labels = run_split(data, split, run)
        batches.append((f"{split} split", contract.from_unit_images(images), labels))
    for path in inputs:
        if path.suffix.lower() == ".npz":
            x, y = contract.read_npz(path)
            batches.append((str(path), x, y))
        else:
            batches.append((str(path), contract.read_image(path), None))
    loaded = fmt.load(model, threads=threads)
    predictions: list[Prediction] = []
    accuracy: dict[str, Any] = {}
    for source, x, y in batches:
        logits = run_batched(loaded, x)
        if classes and logits.shape[1] != len(classes):
            raise ContractError(
                f"{model} gives {logits.shape[1]} scores but its card lists {len(classes)} classes"
            )
        names = classes or [str(i) for i in range(logits.shape[1])]
        probs = _softmax(logits)
        order = np.argsort(-probs, axis=1)[:, :top]
        many = len(x) > 1 or y is not None
        index = None if y is None else _indices(y, names, source)
        for i in range(len(x)):
            label = None if index is None else names[index[i]]
            predictions.append(
                Prediction(
                    f"{source}[{i}]" if many else source,
                    [(names[k], float(probs[i, k])) for k in order[i]],
                    label,
                )
            )
        if y is not None:
            correct = int((logits.argmax(axis=1) == index).sum())
            accuracy[source] = {"correct": correct, "images": len(y), "top1": correct / len(y)}
    return predictions, accuracy


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _indices(y: np.ndarray, names: list[str], source: str) -> np.ndarray:
    """Labels as class indices: by class name when every label names a class (as ``nas train``
    reads an ``.npz``), else integers 0..K-1 taken as indices."""
    lookup = {name: i for i, name in enumerate(names)}
    values = [str(v) for v in y]
    if all(v in lookup for v in values):
        return np.array([lookup[v] for v in values], dtype=np.int64)
    if np.issubdtype(y.dtype, np.integer) and y.min() >= 0 and y.max() < len(names):
        return y.astype(np.int64)
    unknown = sorted(set(values) - set(lookup))
    raise ContractError(
        f"{source}: labels {unknown[:5]} are neither class names of the model nor indices "
        f"0..{len(names) - 1}"
    )
