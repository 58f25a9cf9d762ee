"""`nas study` as a user runs it: the report's numbers, its sections, and bad input refused.

The study here runs on the imported Pixel 4 table (elasticvit, latency only); the study of a
trained run with two measured backends is in test_pipeline.py.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

import search_spaces
from nas.cli import main
from nas.graph import count
from predictors.complexity import ComplexityTable
from predictors.latency import LatencyPredictor

STUDY = "study --space elasticvit --n 40 --pairs 6 --importance-archs 40 --no-progress"
SECTIONS = (
    "Summary",
    "Per-decision effects",
    "Importance of decisions",
    "Where FLOPs mislead",
    "Devices disagree",
    "Where the time goes",
    "Fronts",
    "Archs and settings",
)


@pytest.fixture(scope="module")
def pixel4(shared_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("study-profiles") / "PIXEL4.json"
    table = shared_data / "pixel4_elasticvit" / "pixel4_lut.json"
    assert main(["device", "import-table", "pixel4", str(table), "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def study(pixel4, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "pixel4-study"
    assert main([*STUDY.split(), "--device", str(pixel4), "--out", str(out)]) == 0
    return out


def _records(folder):
    return [json.loads(line) for line in (folder / "archs.jsonl").read_text().splitlines()]


def test_paired_latency_effects_are_the_predictors_own_differences(study, pixel4):
    space = search_spaces.get("elasticvit")
    predictor = LatencyPredictor.load(pixel4, space)
    result = json.loads((study / "study.json").read_text())
    bases = [r["decisions"] for r in _records(study) if r["paired_base"]]
    assert len(bases) == 6 == result["effects"]["bases"]
    names = [d.name for d in space.dimensions]
    checked = 0
    for decision in result["effects"]["decisions"]:
        k = names.index(decision["decision"])
        values = [entry["value"] for entry in decision["values"]]
        for entry in decision["values"]:
            diffs = []
            for base in bases:
                archs = {}
                for value in values:  # the base with only decision k changed, to each value
                    changed = list(base)
                    changed[k] = value
                    archs[value] = space.assemble(changed)
                if len(set(archs.values())) == 1:
                    continue  # the decision is inactive on this base
                ms = predictor.predict([archs[entry["value"]], archs[decision["reference"]]])
                diffs.append(ms[0] - ms[1])
            change = entry["change"]["latency@PIXEL4"]["absolute"]
            assert entry["pairs"] == len(diffs)
            assert change["median"] == pytest.approx(float(np.median(diffs)), abs=1e-9)
            assert change["q25"] == pytest.approx(float(np.percentile(diffs, 25)), abs=1e-9)
            checked += 1
    assert checked > 60  # every value of every decision of the space


def test_every_decision_of_the_space_has_effects_and_an_importance(study):
    result = json.loads((study / "study.json").read_text())
    space = search_spaces.get("elasticvit")
    varied = {d.name for d in space.dimensions if len(d.values) > 1}
    assert {d["decision"] for d in result["effects"]["decisions"]} == varied
    for key in ("macs", "params", "latency@PIXEL4"):
        ranking = result["importance"]["per_objective"][key]
        assert {r["decision"] for r in ranking} == varied
        assert sum(r["importance"] for r in ranking) == pytest.approx(1.0)
    assert result["summary"]["most_important"]["latency@PIXEL4"]


def test_report_holds_every_section_and_its_numbers(study):
    html = (study / "report.html").read_text()
    markdown = (study / "report.md").read_text()
    for heading in SECTIONS:
        assert f">{heading}</h" in html
        assert f"## {heading}" in markdown or f"### {heading}" in markdown
    assert "data:image/png;base64," in html and 'src="effects_costs.png"' not in html
    for png in ("effects_costs.png", "importance.png", "flops_vs_latency.png", "fronts.png"):
        assert (study / png).read_bytes()[:4] == b"\x89PNG"
        assert f"({png})" in markdown
    result = json.loads((study / "study.json").read_text())
    assert result["format"] == "nas-study" and result["version"] == 1
    flops = result["where_flops_mislead"]["per_device"]["PIXEL4"]
    assert f"Kendall tau {flops['kendall_tau']:.2f}" in html
    records = _records(study)
    assert len(records) == result["sample"]["archs"] >= 40
    assert [r["origin"] for r in records[:2]] == ["smallest", "largest"]
    for entry in result["where_the_time_goes"]["per_device"]["PIXEL4"]:
        assert sum(entry["by_stage"].values()) == pytest.approx(entry["predicted_ms"], rel=1e-9)
        assert records[entry["arch"]]["latency_ms"]["PIXEL4"] == pytest.approx(
            entry["predicted_ms"]
        )
    assert result["devices_disagree"]["rank_agreement"] == []  # one device: nothing to compare


def test_a_rerun_reuses_the_parts_and_gives_the_same_numbers(study, pixel4):
    before = json.loads((study / "study.json").read_text())
    assert main([*STUDY.split(), "--device", str(pixel4), "--out", str(study)]) == 0
    after = json.loads((study / "study.json").read_text())
    assert set(after["reused_parts"]) >= {"effects", "importance", "flops", "fronts"}
    for key in ("effects", "importance", "where_flops_mislead", "fronts"):
        assert after[key] == before[key]


@pytest.mark.parametrize(
    "options, message",
    [
        ("--n 0", "--n 0: the number of archs to sample must be at least 1"),
        ("--importance anova", "--importance 'anova' is not known; choices: ped-anova, fanova"),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, pixel4, options, message):
    out = tmp_path / "out"
    args = [*STUDY.split(), *options.split(), "--device", str(pixel4), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()


def test_a_profile_of_another_space_or_no_profile_is_refused(tmp_path, capsys, pixel4):
    out = tmp_path / "out"
    study = f"study --space hybrid-tiny --device {pixel4} --out {out} --no-progress"
    assert main(study.split()) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"--device {pixel4}" in err and "'elasticvit', not 'hybrid-tiny'" in err
    missing = tmp_path / "nowhere.json"
    assert main([*STUDY.split(), "--device", str(missing), "--out", str(out)]) == 2
    assert f"--device {missing}: {missing} does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_a_missing_run_is_refused(tmp_path, capsys, pixel4):
    out = tmp_path / "out"
    run = tmp_path / "no-run"
    assert (
        main([*STUDY.split(), "--device", str(pixel4), "--run", str(run), "--out", str(out)]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{run} is not a training run" in err


def test_macs_tables_count_as_the_operator_graph(tiny_space):
    for space in (tiny_space, search_spaces.get("hybrid-tiny")):
        archs = [space.sample(random.Random(seed)) for seed in range(8)]
        archs += [space.min_arch(), space.max_arch()]
        macs, params = ComplexityTable(space).count(archs)
        assert [(int(m), int(p)) for m, p in zip(macs, params, strict=True)] == [
            count(space, a) for a in archs
        ]


def test_new_decisions_appear_in_the_study_without_code(tiny_space):
    """Per-layer attention kinds and head counts (choices of the tiny space) are studied like
    any decision: every varied dimension gets paired effects, inactive layers are skipped."""
    from nas.study.decisions import Decisions
    from nas.study.effects import paired_effects
    from nas.study.table import StudyTable, build_objectives

    decisions = Decisions(tiny_space)
    index = decisions.uniform(np.random.default_rng(0), 30)
    assert (decisions.encode(index) == tiny_space.encode_many(decisions.archs(index))).all()
    objectives = build_objectives(decisions, index, [], None)
    table = StudyTable(decisions, index, ["sample"] * 30, decisions.archs(index), [], objectives)
    table.bases = np.arange(30)
    effects = paired_effects(table)
    names = {d["decision"] for d in effects["decisions"]}
    assert names == {d.name for d in tiny_space.dimensions if len(d.values) > 1}
    second_layer = next(
        d for d in effects["decisions"] if d["decision"] == "stages[1].attention[1]"
    )
    depth = decisions.column["stages[1].depth"]
    assert second_layer["pairs"] == int((index[:, depth] == 1).sum())  # depth 2 (index 1) only


def test_two_objective_fronts_match_the_definition():
    from nas.search.pareto import pareto_mask

    rng = np.random.default_rng(0)
    points = rng.integers(0, 12, size=(300, 2)).astype(float)  # many ties and duplicates
    mask = pareto_mask(points)
    for i, p in enumerate(points):
        dominated = np.any(np.all(points >= p, axis=1) & np.any(points > p, axis=1))
        first_copy = np.flatnonzero(np.all(points == p, axis=1))[0] == i
        assert mask[i] == (not dominated and first_copy)


def test_both_importance_evaluators_rank_the_decisions(tiny_space):
    from nas.study.decisions import Decisions
    from nas.study.importance import importances
    from nas.study.table import StudyTable, build_objectives

    decisions = Decisions(tiny_space)
    index = decisions.uniform(np.random.default_rng(1), 20)
    objectives = build_objectives(decisions, index, [], None)
    table = StudyTable(decisions, index, ["sample"] * 20, decisions.archs(index), [], objectives)
    varied = {d.name for d in tiny_space.dimensions if len(d.values) > 1}
    conditional = {"stages[0].kernel[1]", "stages[1].attention[1]"}  # layer 1 of depth 1 or 2
    ped = importances(table, "ped-anova", 60, progress=False)["per_objective"]["macs"]
    assert {r["decision"] for r in ped} == varied
    fanova = importances(table, "fanova", 60, progress=False)["per_objective"]["macs"]
    assert {r["decision"] for r in fanova} == varied - conditional  # fANOVA: unconditional only
    assert fanova[0]["importance"] >= fanova[-1]["importance"]
