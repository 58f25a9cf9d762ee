"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tests.fused_kind  # noqa: F401  (registers the test-only block kind ``test_fused``)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (latency tables, OFA configs, data sets).

    ``$NAS_SHARED_DATA`` if set, else ``../shared/data`` beside the repository. Tests that need it
    are skipped, with the reason shown, when it is absent.
    """
    folder = Path(os.environ.get("NAS_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")
    if not folder.is_dir():
        pytest.skip(
            f"shared data folder not found at {folder}: "
            "set NAS_SHARED_DATA or place ../shared beside the repo"
        )
    return folder


TINY_SPACE = {
    "name": "tiny-test",
    "in_channels": 3,
    "num_classes": 4,
    "resolutions": [8, 12],
    "stem": {"widths": [4, 8], "stride": 1, "kernel": 3, "ds_depths": [0, 1]},
    "stages": [
        {
            "kind": "conv",
            "depths": [1, 2],
            "widths": [8, 16],
            "kernels": [3, 5],
            "expand_ratios": [1, 2],
            "per_layer": ["kernel"],
            "stride": 2,
            "se": True,
            "activation": "relu",
        },
        {
            "kind": "transformer",
            "depths": [1, 2],
            "widths": [16],
            "attentions": ["softmax", "relu_linear"],
            "heads": [1, 2],
            "head_dim": 4,
            "v_scales": [1, 2],
            "mlp_ratios": [2],
            "per_layer": ["attention"],
            "stride": 1,
        },
    ],
    "head": {"expand_ratio": 2, "feature_width": 16},
}


@pytest.fixture
def tiny_space():
    """A small space using every feature of the grammar (per-layer choices, heads, SE, DS)."""
    from nas.space import SearchSpace

    return SearchSpace.from_dict(TINY_SPACE)


def trained_looking(module, seed: int = 0):
    """``module`` in eval mode with BatchNorm statistics, norm affines and position tables given
    random values, as training would leave them."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d | nn.LayerNorm):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.uniform_(0.5, 1.5, generator=gen)
            if getattr(m, "pos_table", None) is not None:
                m.pos_table.normal_(generator=gen)
    return module.eval()
