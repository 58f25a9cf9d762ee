"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A trained run of the tiny space, device profiles A and B (and one of another space), a
    search and sampled archs, all made with the `nas` command (:mod:`tiny_world`). Tests copy
    what they change."""
    import tiny_world as world

    return world.build(tmp_path_factory.mktemp("world"), TINY_SPACE)
