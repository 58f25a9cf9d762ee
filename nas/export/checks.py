"""Checks of an exported file against the PyTorch model, accuracy and latency through its runtime.

* :func:`compare`: the largest absolute difference between the file's logits and the PyTorch
  model's on the same images;
* :func:`top1`: accuracy of the file, run by its runtime, on inputs and labels;
* :func:`time_files`: end-to-end latency of one or more loaded files, timed side by side
  (round-robin, the timing protocol of :mod:`predictors.backends`), one input of the file's
  batch size (1 for a dynamic batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.export.base import LoadedModel, run_batched


@torch.no_grad()
def compare(loaded: LoadedModel, model: nn.Module, x: np.ndarray) -> float:
    """Max |file logits - PyTorch logits| over the images ``x`` (N, C, H, W)."""
    expected = model.eval()(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    return float(np.abs(run_batched(loaded, x) - expected).max())


@torch.no_grad()
def torch_top1(model, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    """Share of ``x`` a callable on torch tensors (a model, an int8 candidate) classifies as
    ``y``."""
    correct = 0
    for start in range(0, len(x), batch):
        logits = model(torch.from_numpy(x[start : start + batch]))
        correct += int((logits.argmax(dim=1).numpy() == y[start : start + batch]).sum())
    return correct / max(1, len(y))


def top1(loaded: LoadedModel, x: np.ndarray, y: np.ndarray) -> float:
    """Share of ``x`` the file classifies as ``y``."""
    return float((run_batched(loaded, x).argmax(axis=1) == np.asarray(y)).mean())


def time_files(
    loaded: Sequence[LoadedModel],
    shape: Sequence[int],
    passes: int = 3,
    warmup: int = 10,
    repeats: int = 30,
    min_time_ms: float = 40.0,
) -> list[dict[str, Any]]:
    """Per file: min and median ms of one inference over ``passes`` side-by-side passes."""
    from predictors.backends import TimingProtocol, time_runners

    protocol = TimingProtocol(warmup, repeats, "min", min_time_ms)
    runners = []
    for model in loaded:
        x = np.random.default_rng(0).standard_normal((model.batch or 1, *shape[1:]))
        x = x.astype(np.float32)
        runners.append(lambda model=model, x=x: model(x))
    timings = [time_runners(runners, protocol) for _ in range(passes)]
    return [
        {
            "min_ms": min(t[i].min for t in timings),
            "median_ms": float(np.median([t[i].median for t in timings])),
            "batch": model.batch or 1,
            "protocol": {**protocol.to_dict(), "passes": passes},
        }
        for i, model in enumerate(loaded)
    ]
