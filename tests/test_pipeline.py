"""The main job through the `nas` command at a tiny scale: train, measure, search, extract."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from nas.arch import Arch
from nas.cli import main

TRAIN = "train --space hybrid-tiny --data digits --epochs 1 --train-limit 256 --eval-limit 100 "
TRAIN += "--batch-size 32 --calib-images 64 --sampler cas+pas --no-progress --out"
MEASURE = "device measure --backend onnxruntime --space hybrid-tiny --warmup 1 --repeats 3 "
MEASURE += "--passes 1 --models 4 --out"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    run, profile = root / "run", root / "profile.json"
    assert main([*TRAIN.split(), str(run)]) == 0
    assert main([*MEASURE.split(), str(profile)]) == 0
    return root, run, profile


def _budget(run, profile) -> float:
    """A budget that some but not all archs meet: the 60th percentile of 50 random archs."""
    from nas.deploy import Device
    from nas.trained import TrainedRun

    space = TrainedRun.open(run).space
    device = Device.open(profile, space)
    return float(np.percentile(device.latency([space.sample(s) for s in range(50)]), 60))


def test_search_then_extract_ships_a_model_with_its_card(pipeline):
    root, run, profile = pipeline
    budget = f"{_budget(run, profile):.4f}"
    search = f"search --run {run} --device {profile} --latency-ms {budget} --evaluations 12 "
    assert main([*search.split(), "--batch-size", "6", "--name", "s"]) == 0
    results = json.loads((run / "search" / "s" / "results.json").read_text())
    (part,) = results["per_constraint"].values()
    assert part["best"] is not None
    assert list(part["best"]["constraints"].values())[0] <= float(budget)
    assert (run / "search" / "s" / part["plot"]).is_file()

    out = root / "model.onnx"
    extract = f"extract --run {run} --device {profile} --latency-ms {budget} --out {out}"
    assert main(extract.split()) == 0
    card = json.loads((root / "model.onnx.card.json").read_text())
    assert card["format"] == "nas-model-card"
    assert 0 <= card["accuracy"]["test_top1"] <= 1 and card["macs"] > 0
    (latency,) = card["latency"].values()
    assert latency["predicted_ms"] <= float(budget) and latency["measured_ms"] > 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    side = card["arch"]["resolution"]
    image = np.zeros((1, 1, side, side), dtype=np.float32)
    assert session.run(None, {"image": image})[0].shape == (1, 10)


def test_search_with_a_refitted_predictor_reports_a_measured_best(pipeline, capsys):
    from nas.trained import TrainedRun

    _, run, profile = pipeline
    budget = f"{_budget(run, profile):.4f}"
    search = f"search --run {run} --device {profile} --latency-ms {budget} --evaluations 30 "
    search += "--batch-size 10 --accuracy ridge --warmup 10 --verify 0.2 --name predicted"
    assert main(search.split()) == 0
    assert "accuracy predictor ridge" in capsys.readouterr().out
    results = json.loads((run / "search" / "predicted" / "results.json").read_text())
    summary = results["accuracy_predictor"]
    assert summary["predictor"] == "ridge" and summary["heldout_checks"] >= 2
    assert summary["measured"] < 30  # most archs were predicted, not measured
    (part,) = results["per_constraint"].values()
    best = part["best"]
    measured = TrainedRun.open(run).measured()
    arch = next(a for a in measured if a.to_dict() == best["arch"])
    assert best["objectives"]["val_top1"] == measured[arch]  # the reported best is measured


def test_unknown_accuracy_source_is_named_with_the_choices(pipeline, capsys):
    _, run, profile = pipeline
    search = f"search --run {run} --device {profile} --latency-ms 1 --accuracy oracle"
    assert main(search.split()) == 2
    err = capsys.readouterr().err
    assert "unknown accuracy predictor 'oracle'" in err and "supernet" in err and "mlp" in err


def test_impossible_budget_is_refused_with_the_feasible_range(pipeline, capsys):
    _, run, profile = pipeline
    search = f"search --run {run} --device {profile} --latency-ms 0.000001 --evaluations 5"
    code = main([*search.split(), "--name", "impossible"])
    err = capsys.readouterr().err
    assert code == 2
    assert "is infeasible" in err and "feasible budgets are >=" in err
    assert not (run / "search" / "impossible" / "history.jsonl").exists()


def test_search_of_a_folder_that_is_not_a_run_exits_2(tmp_path, capsys):
    code = main(["search", "--run", str(tmp_path), "--device", "x.json", "--latency-ms", "1"])
    assert code == 2 and "is not a training run" in capsys.readouterr().err


TORCH = "device measure --backend torch --space hybrid-tiny --resolutions 16 --warmup 1 "
TORCH += "--repeats 3 --passes 1 --min-time-ms 0 --models 4 --out"


def test_study_of_a_run_compares_two_backends_on_the_same_archs(pipeline):
    from scipy.stats import kendalltau

    from nas.trained import TrainedRun

    root, run, profile = pipeline
    torch_profile = root / "torch.json"
    assert main([*TORCH.split(), str(torch_profile)]) == 0
    out = root / "study"
    study = f"study --space hybrid-tiny --run {run} --device {profile} --device {torch_profile} "
    study += f"--n 40 --pairs 4 --measure 8 --importance-archs 24 --no-progress --out {out}"
    assert main(study.split()) == 0
    result = json.loads((out / "study.json").read_text())
    records = [json.loads(line) for line in (out / "archs.jsonl").read_text().splitlines()]

    # the devices are compared on the same archs: every arch has a latency on both
    (pair,) = result["devices_disagree"]["rank_agreement"]
    assert {pair["device_a"], pair["device_b"]} == {"profile", "torch"}
    assert pair["archs"] == len(records) == result["sample"]["archs"]
    a = [r["latency_ms"][pair["device_a"]] for r in records]
    b = [r["latency_ms"][pair["device_b"]] for r in records]
    assert pair["kendall_tau"] == pytest.approx(kendalltau(a, b).statistic)
    # only the resolution both profiles were measured at is studied
    assert {r["arch"]["resolution"] for r in records} == {16}

    # accuracy: measured ones come from the run's cache, the rest are predicted, each labelled
    measured = TrainedRun.open(run).measured()
    by_arch = {Arch.from_dict(r["arch"]): r for r in records}
    labelled = [r for r in records if r["accuracy"] == "measured"]
    assert len(labelled) >= 8 and any(r["accuracy"] == "predicted" for r in records)
    for arch, r in by_arch.items():
        if r["accuracy"] == "measured":
            assert r["val_top1_pct"] == pytest.approx(100 * measured[arch])
        else:
            assert r["accuracy"] == "predicted" and arch not in measured
    assert result["accuracy"]["measured_in_sample"] == len(labelled)
    # the archs the report names best under a budget are measured, as a search's winners are
    for budget in result["fronts"]["budgets"]:
        for best in [*budget["per_device"].values(), budget["joint"]]:
            assert best is None or best["source"] == "measured"
    for entry in result["devices_disagree"]["wrong_device"]:
        assert entry.get("pick_source", "measured") == "measured"
        assert entry.get("best_on_b_source", "measured") == "measured"
    html = (out / "report.html").read_text()
    for heading in ("Summary", "Per-decision effects", "Devices disagree", "Fronts"):
        assert f">{heading}</h" in html
    assert ", predicted)" in html or ", measured)" in html  # accuracies in tables say which
    assert (out / "effects_accuracy.png").is_file()
