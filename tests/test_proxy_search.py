"""`nas search --space`: a space searched with a device's latency table and no trained supernet,
on a proxy objective, through the installed `nas` command into fresh folders.

The space is ElasticViT's with the imported Pixel 4 table (shared data), as a user with a phone
table and no supernet has them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_nas

import search_spaces
from nas.arch import Arch
from nas.graph import count

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def pixel4(shared_data, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pixel4")
    table = shared_data / "pixel4_elasticvit" / "pixel4_lut.json"
    run_nas("device", "import-table", "pixel4", table, "--out", "pixel4.json", cwd=folder)
    return folder / "pixel4.json"


def _predicted_ms(profile: Path, archs: list[Arch]):
    from predictors.latency import LatencyPredictor

    return LatencyPredictor.load(profile, search_spaces.get("elasticvit")).predict(archs)


def test_space_search_maximises_params_under_the_budget_and_resumes(pixel4, tmp_path):
    """Default algorithm and folder (runs/search/guided-pixel4-30ms under the working folder);
    results say the objective is a proxy; a rerun with more evaluations continues."""
    args = ["search", "--space", "elasticvit", "--device", pixel4, "--latency-ms", 30]
    done = run_nas(*args, "--evaluations", 12, "--batch-size", 4, cwd=tmp_path)
    folder = tmp_path / "runs" / "search" / "guided-pixel4-30ms"
    assert f"search folder: {folder.relative_to(tmp_path)}" in done.stdout
    assert "PROXY, not accuracy" in done.stdout
    results = json.loads((folder / "results.json").read_text())
    assert results["objective"] == "proxy_params" and results["algorithm"] == "guided"
    assert results["objective_description"].startswith("PROXY, not accuracy")
    assert results["proxy"]["name"] == "params" and "not accuracy" in results["proxy"]["note"]
    assert results["evaluations"] == 12 == results["proposals"] - results["infeasible"]
    (part,) = results["per_constraint"].values()
    assert (folder / part["plot"]).read_bytes()[:4] == b"\x89PNG"
    best = Arch.from_dict(part["best"]["arch"])
    space = search_spaces.get("elasticvit")
    assert _predicted_ms(pixel4, [best])[0] <= 30
    assert part["best"]["objectives"]["proxy_params"] == pytest.approx(count(space, best)[1] / 1e6)
    history = (folder / "history.jsonl").read_text().splitlines()
    archs = [Arch.from_dict(json.loads(line)["arch"]) for line in history]
    assert len(set(archs)) == 12 and all(_predicted_ms(pixel4, archs) <= 30)
    assert all(
        part["best"]["objectives"]["proxy_params"] >= count(space, a)[1] / 1e6 for a in archs
    )

    run_nas(*args, "--evaluations", 20, "--batch-size", 4, cwd=tmp_path)
    again = (folder / "history.jsonl").read_text().splitlines()
    assert len(again) == 20 and again[:12] == history


def test_space_search_with_a_zero_cost_proxy_into_a_given_folder(pixel4, tmp_path):
    """--objective synflow scores the randomly initialised subnet; --out names the folder."""
    out = tmp_path / "fresh" / "synflow"
    args = ["search", "--space", "elasticvit", "--device", pixel4, "--latency-ms", 25]
    args += ["--objective", "synflow", "--algorithm", "random", "--evaluations", 2, "--out", out]
    run_nas(*args, cwd=tmp_path)
    results = json.loads((out / "results.json").read_text())
    assert results["objective"] == "proxy_synflow" and "SynFlow" in results["proxy"]["description"]
    values = [
        json.loads(line)["objectives"]["proxy_synflow"]
        for line in (out / "history.jsonl").read_text().splitlines()
    ]
    assert len(values) == 2 and values[0] != values[1]
    assert all(0 < v < 1000 for v in values)  # log10 of a positive, finite sum


def test_space_search_refusals_write_nothing(pixel4, tmp_path):
    """An impossible budget, --run with --space, or a supernet option: exit 2, one line."""
    base = ["search", "--space", "elasticvit", "--device", pixel4, "--evaluations", 3]
    for extra, words in (
        (["--latency-ms", 0.5], "is infeasible"),
        (["--latency-ms", 30, "--run", tmp_path], "not allowed with argument"),
        (["--latency-ms", 30, "--accuracy", "mlp"], "need a trained supernet"),
    ):
        done = run_nas(*base, *extra, "--out", tmp_path / "refused", cwd=tmp_path, expect=2)
        assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "refused").exists()
