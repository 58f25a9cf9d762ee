"""The ranking and search-value benchmarks run as their docstrings say, at their smallest size,
on the tiny space and the embedded digits into fresh folders (the figures come from full runs)."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from nas.train.config import TrainConfig
from tests.conftest import REPO_ROOT, TINY_SPACE, run_benchmark

SMALL = [
    *["--data", "digits", "--train-images", "1200", "--batch-size", "8"],
    *["--standalone-steps", "4", "--supernet-steps", "8", "--eval-limit", "40", "--seeds", "0,1"],
]


@pytest.mark.slow  # a supernet, 8 standalone trainings, a profile and two searches: minutes
def test_ranking_then_search_value_write_their_figures_and_resume(tmp_path):
    space = tmp_path / "tiny.yaml"  # declared for RGB; the digits task is grey: the profile
    space.write_text(yaml.safe_dump(TINY_SPACE))  # stays the declaration's, as `nas search` has it
    ranking = tmp_path / "ranking"
    argv = [*SMALL, "--space", str(space), "--archs", "4", "--levels", "2"]
    argv += ["--predictor-archs", "6", "--resamples", "50", "--out", str(ranking)]
    done = run_benchmark("supernet_ranking", *argv)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((ranking / "ranking.json").read_text())
    assert summary["complete"] and (ranking / "ranking.png").stat().st_size > 0
    (run,) = summary["recipes"]["default"]["seeds"]
    assert len(run["inherited_val_top1"]) == 4 and run["ranking"]["n"] == 4
    low, high = run["ranking"]["kendall_tau_ci"]
    assert -1 <= low <= run["ranking"]["kendall_tau"] <= high <= 1
    assert set(run["predictors"]) >= {"mlp", "gbm", "ridge"}
    again = run_benchmark("supernet_ranking", *argv)  # every job finished: nothing is trained again
    assert again.returncode == 0 and "standalone a00 s0:" not in again.stdout + again.stderr
    # the recipe that names nas train's defaults explicitly is the same run, not a new supernet
    (alias,) = _recipes_equal_to_the_defaults()
    named = run_benchmark("supernet_ranking", *argv, "--recipes", alias)
    assert named.returncode == 0, named.stderr[-3000:]
    assert f"supernet {alias} s0:" not in named.stdout + named.stderr
    (same,) = json.loads((ranking / "ranking.json").read_text())["recipes"][alias]["seeds"]
    assert same["folder"] == run["folder"]

    value = tmp_path / "value"
    argv = [*SMALL, "--space", str(space), "--supernets", str(ranking / "supernets")]
    argv += ["--random", "1", "--evaluations", "6", "--out", str(value)]
    done = run_benchmark("search_value", *argv)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((value / "search_value.json").read_text())
    assert summary["complete"] and (value / "search_value.png").stat().st_size > 0
    assert len(summary["budgets"]) == 2
    assert summary["supernet"] == run["folder"]  # the ranking's supernet, not a new one
    for part in summary["budgets"]:
        kinds = [row["kind"] for row in part["rows"]]
        assert kinds == ["searched", "hand", "random0"]
        for row in part["rows"]:
            assert row["predicted_ms"] <= part["budget_ms"] and len(row["test_top1"]) == 2
        assert "over_hand" in part["gains"]


def _recipes_equal_to_the_defaults() -> list[str]:
    """The recipes of the ranking benchmark whose options are exactly ``nas train``'s defaults."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from supernet_ranking import RECIPES

    defaults = TrainConfig()
    return [
        name
        for name, (options, factor) in RECIPES.items()
        if name != "default" and factor == 1.0 and options
        if all(getattr(defaults, k) == v for k, v in options.items())
    ]


def test_a_finished_standalone_run_counts_only_for_the_arch_it_trained(tmp_path, tiny_space):
    """search_value writes the searched arch to the same file each run; when a search picks
    another arch, its standalone runs must be new, not the former arch's results."""
    from types import SimpleNamespace

    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from training_protocol import run_folder, standalone_config, write_arch

    args = SimpleNamespace(space="tiny", data="digits", batch_size=8, eval_limit=40)
    args.standalone_steps, args.train_images = 4, 1200
    first, second = tiny_space.min_arch(), tiny_space.max_arch()
    arch_file = write_arch(tmp_path / "archs" / "b0-searched.json", first)
    config = standalone_config(args, arch_file, 0)
    folder = run_folder(tmp_path / "standalone", "b0-searched-s0", config)
    folder.mkdir(parents=True)
    (folder / "final.json").write_text(json.dumps({"rows": [{"arch": first.to_dict()}]}))
    assert run_folder(tmp_path / "standalone", "b0-searched-s0", config) == folder
    write_arch(arch_file, second)  # the search picked another arch: same file, same options
    assert run_folder(tmp_path / "standalone", "b0-searched-s0", config) != folder
    # a finished folder named by the file's path alone (earlier runs) counts for its own arch
    earlier = _path_only_folder(tmp_path / "standalone", "b0-searched-s0", config)
    earlier.mkdir()
    (earlier / "final.json").write_text(json.dumps({"rows": [{"arch": second.to_dict()}]}))
    assert run_folder(tmp_path / "standalone", "b0-searched-s0", config) == earlier
    write_arch(arch_file, first)
    assert run_folder(tmp_path / "standalone", "b0-searched-s0", config) == folder


def _path_only_folder(parent, name, config):
    import hashlib

    text = json.dumps(config.to_dict(), sort_keys=True)
    return parent / f"{name}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
