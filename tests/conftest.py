"""Shared pytest fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# One CPU thread per process, here and in every `nas` command the tests start (they inherit the
# environment): the suite's models are tiny, and on a small machine torch's thread pool spends
# far more time synchronising than computing (a tiny conv takes about 100x longer on 2 threads).
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

import tests.fused_kind  # noqa: E402, F401  (registers the test-only block kind ``test_fused``)

REPO_ROOT = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    """Whether the suite runs in CI (``CI=true``, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def shared_data_folder() -> Path:
    """``$NAS_SHARED_DATA`` if set, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("NAS_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")


# Tests that share a module's costly fixtures run on one pytest-xdist worker (worker_groups).
from worker_groups import pytest_collection_modifyitems  # noqa: E402, F401


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (latency tables, OFA configs, data sets).

    Tests that need it are skipped, with the reason shown, when it is absent; in CI (``CI=true``)
    they fail instead, so a CI run never passes without them.
    """
    folder = shared_data_folder()
    if not folder.is_dir():
        reason = (
            f"shared data folder not found at {folder}: "
            "set NAS_SHARED_DATA or place ../shared beside the repo"
        )
        if in_ci():
            pytest.fail(f"{reason} (CI=true: a test that needs it fails instead of skipping)")
        pytest.skip(reason)
    return folder


def nas_executable() -> Path:
    """The installed ``nas`` command of the environment running the tests."""
    return Path(sys.executable).parent / "nas"


def run_nas(
    *args: str | Path,
    cwd: Path,
    expect: int | None = 0,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess:
    """Run a `nas` command as a user does, in ``cwd``, in a process of its own (forked by the
    test process's command server, :mod:`cli_runner`, which has the engine imported already);
    check its exit code (``expect``, or none when None) and return the finished process (text
    output)."""
    from cli_runner import shared_runner

    argv = [str(a) for a in args]
    result = shared_runner().run(argv, cwd, env=env, timeout=timeout)
    if result.code is None:
        raise subprocess.TimeoutExpired(["nas", *argv], timeout, result.out, result.err)
    done = subprocess.CompletedProcess(["nas", *argv], result.code, result.out, result.err)
    if expect is not None:
        assert done.returncode == expect, (
            f"`nas {' '.join(argv)}` exited {done.returncode}, not {expect}\n"
            f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
        )
    return done


def run_benchmark(name: str, *argv: str) -> subprocess.CompletedProcess:
    """Run ``benchmarks/NAME.py`` as its docstring says (from the repository root, with the
    repository importable) and return the finished process (text output)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    script = REPO_ROOT / "benchmarks" / f"{name}.py"
    return subprocess.run(
        [sys.executable, str(script), *argv], capture_output=True, text=True, env=env, cwd=REPO_ROOT
    )


@pytest.fixture(scope="session")
def readme_flow(tmp_path_factory):
    """The README's commands, run on demand in one fresh folder (``readme_commands``)."""
    from readme_commands import ReadmeFlow

    return ReadmeFlow(tmp_path_factory.mktemp("readme"))


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


def trained_looking(module, seed: int = 0):
    """``module`` in eval mode with BatchNorm statistics, norm affines, position tables and layer
    scales given random values, as training would leave them."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d | nn.LayerNorm):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.uniform_(0.5, 1.5, generator=gen)
            if getattr(m, "pos_table", None) is not None:
                m.pos_table.normal_(generator=gen)
            if isinstance(getattr(m, "scale", None), nn.Parameter):  # layer scales
                m.scale.uniform_(0.5, 1.5, generator=gen)
    return module.eval()
