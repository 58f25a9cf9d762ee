"""The options of `nas search` and `nas extract` beyond the README's own commands, through the
installed `nas` command, each into a fresh folder: every search algorithm, several devices,
every export format of a searched winner, and the bad input a user can give them.

The trained run and the onnxruntime profile are the README's (``readme_flow``: made by the
README's ``nas train`` and ``nas device measure`` commands in a fresh folder).
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_SPACE, run_nas
from readme_commands import SMALL_TIMING as README_TIMING

import search_spaces
from nas.arch import Arch
from nas.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SMALL_TIMING = ["--warmup", "1", "--repeats", "3", "--passes", "1", "--min-time-ms", "0"]
SMALL_TIMING += ["--min-span-ms", "0"]
SPACE = "hybrid-tiny"


class Trained:
    """The README's run, its onnxruntime profile and a second device profile (eager torch).

    Only README commands that come before its searches are run here: the README's checks read
    what its commands wrote, and this module's tests run first on their worker."""

    def __init__(self, flow, folder: Path):
        flow.run_ok("nas train --space hybrid-tiny --data digits")
        flow.run_ok("nas device measure --backend onnxruntime --space hybrid-tiny --out")
        self.folder = folder
        # a copy without the README's searches, so that each search here starts its own folder
        # whichever of the README's commands ran before
        self.run = folder / "digits"
        shutil.copytree(flow.path("runs/digits"), self.run, ignore=shutil.ignore_patterns("search"))
        self.ort = flow.path("runs/ort.json")
        self.budget = flow.budget()
        self.torch = folder / "torch.json"
        run_nas(
            *["device", "measure", "--backend", "torch", "--space", SPACE, "--device", "torch"],
            *[*shlex.split(README_TIMING), "--out", self.torch],  # as the README's profiles
            cwd=folder,
        )

    def predictor(self, profile: Path):
        from predictors.latency import LatencyPredictor

        return LatencyPredictor.load(profile, search_spaces.get(SPACE))

    def measured(self) -> dict[Arch, float]:
        """Validation accuracy of every arch measured on the run's supernet so far."""
        from nas.trained import TrainedRun

        return TrainedRun.open(self.run).measured()

    def searched(self) -> list[Arch]:
        from nas.search.history import History

        space = search_spaces.get(SPACE)
        found = {}
        for path in sorted((self.run / "search").glob("*/history.jsonl")):
            found.update((e.arch, None) for e in History(path, space).load())
        return list(found)


@pytest.fixture(scope="module")
def trained(readme_flow, tmp_path_factory) -> Trained:
    return Trained(readme_flow, tmp_path_factory.mktemp("devices"))


def _same_as_the_supernet(trained: Trained, arch: Arch, run_model) -> None:
    """``run_model`` (an image -> logits callable) computes what the trained supernet's subnet
    does after BN recalibration."""
    from nas.trained import TrainedRun

    reference = TrainedRun.open(trained.run).extract(arch).eval()
    image = torch.randn(
        2, 1, arch.resolution, arch.resolution, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        torch.testing.assert_close(run_model(image), reference(image), atol=1e-4, rtol=1e-4)


def _macs_limit() -> float:
    """The median MACs (millions) of 30 random archs, as the option takes it."""
    from nas.graph import count

    space = search_spaces.get(SPACE)
    return round(float(np.median([count(space, space.sample(s))[0] for s in range(30)]) / 1e6), 3)


@pytest.mark.parametrize(
    "algorithm", ["guided", "evolution", "random", "nsga2", "tpe", "generative"]
)
def test_every_search_algorithm_finds_a_measured_arch_under_the_budget(algorithm, trained):
    """Each into its default folder, which does not exist before; random search also under a
    MACs limit (--macs-limit). Every evaluation is of a new arch under the budget: proposals
    over it or seen before are counted apart and never measured on the supernet."""
    from nas.graph import count

    budget = trained.budget
    args = ["search", "--run", trained.run, "--device", trained.ort, "--latency-ms", budget]
    args += ["--algorithm", algorithm, "--evaluations", 8, "--batch-size", 4]
    if algorithm == "random":
        args += ["--macs-limit", _macs_limit()]
    done = run_nas(*args, cwd=trained.folder)
    folder = trained.run / "search" / f"{algorithm}-ort-{budget:g}ms"  # the default name
    assert f"search folder: {folder}" in done.stdout
    results = json.loads((folder / "results.json").read_text())
    assert results["algorithm"] == algorithm and results["evaluations"] == 8
    assert results["proposals"] == 8 + results["infeasible"] + results["repeats"]
    assert f"{results['proposals']} proposals, {results['infeasible']} over a budget" in done.stdout
    history = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    assert len(history) == 8 and all(h["feasible"] for h in history)
    archs = [Arch.from_dict(h["arch"]) for h in history]
    assert len(set(archs)) == 8
    assert all(trained.predictor(trained.ort).predict(archs) <= budget)
    latency = "latency_ms@" + trained.predictor(trained.ort).profile.device
    part = results["per_constraint"][latency]
    arch = Arch.from_dict(part["best"]["arch"])
    assert trained.predictor(trained.ort).predict([arch])[0] <= budget
    assert part["best"]["objectives"]["val_top1"] == trained.measured()[arch]
    assert (folder / part["plot"]).read_bytes()[:4] == b"\x89PNG"
    if algorithm == "random":
        assert results["per_constraint"]["mmacs"]["budget"] == _macs_limit()
        for part in results["per_constraint"].values():
            best = Arch.from_dict(part["best"]["arch"])
            assert count(search_spaces.get(SPACE), best)[0] / 1e6 <= _macs_limit()
    if algorithm in ("nsga2", "tpe"):  # the Optuna study, as optuna-dashboard reads it
        _check_optuna_study(folder, latency, budget)
    if algorithm == "generative":  # proposes archs for any budget afterwards: plain JSON
        assert json.loads((folder / "generator.json").read_text())


def _check_optuna_study(folder: Path, latency: str, budget: float) -> None:
    """The journal file holds a study named after the search, with its metric names; every
    trial's constraints are where Optuna's constraints_func puts them (the dashboard's
    feasibility), and only archs under the budget are complete (evaluated) trials."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "study.journal")))
    study = optuna.load_study(study_name=folder.name, storage=storage)
    assert study.metric_names == ["val_top1", latency]
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len({tuple(t.params.items()) for t in complete}) == 8  # repeats: told, not measured
    told = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for trial in study.get_trials(states=told):  # start-up archs not asked yet wait
        (slack,) = trial.system_attrs["constraints"]
        assert slack == pytest.approx(trial.user_attrs[latency] - budget)
        assert (slack <= 0) == (trial.state == optuna.trial.TrialState.COMPLETE)
    assert study.best_trials and all(
        t.system_attrs["constraints"][0] <= 0 for t in study.best_trials
    )


def test_default_search_resumes_into_the_same_folder(trained):
    """Without --algorithm the search is guided (every constraint is a predicted latency); a
    rerun with more evaluations continues the history, and another algorithm is refused."""
    budget = trained.budget
    args = ["search", "--run", trained.run, "--device", trained.ort, "--latency-ms", budget]
    args += ["--name", "resumed", "--batch-size", 3]
    run_nas(*args, "--evaluations", 6, cwd=trained.folder)
    folder = trained.run / "search" / "resumed"
    first = (folder / "history.jsonl").read_text().splitlines()
    assert len(first) == 6
    run_nas(*args, "--evaluations", 10, cwd=trained.folder)
    again = (folder / "history.jsonl").read_text().splitlines()
    assert len(again) == 10 and again[:6] == first
    results = json.loads((folder / "results.json").read_text())
    assert results["algorithm"] == "guided" and results["evaluations"] == 10
    refused = run_nas(
        *args, "--evaluations", 12, "--algorithm", "tpe", cwd=trained.folder, expect=2
    )
    assert "holds another search" in refused.stderr and "'guided'" in refused.stderr
    assert (folder / "history.jsonl").read_text().splitlines() == again


@pytest.fixture(scope="module")
def two_devices(trained):
    """A search of the run on both devices, each under its own budget."""
    space = search_spaces.get(SPACE)
    sample = [space.sample(s) for s in range(50)]
    torch_budget = float(np.percentile(trained.predictor(trained.torch).predict(sample), 60))
    budgets = [trained.budget, round(torch_budget, 4)]
    devices = ["--device", trained.ort, "--device", trained.torch]
    run_nas(
        *["search", "--run", trained.run, *devices, "--latency-ms", *budgets],
        *["--evaluations", 12, "--batch-size", 6, "--name", "two-devices"],
        cwd=trained.folder,
    )
    return devices, budgets


def test_search_for_two_devices_meets_both_budgets(trained, two_devices):
    _, budgets = two_devices
    ort_predictor, torch_predictor = (
        trained.predictor(trained.ort),
        trained.predictor(trained.torch),
    )
    folder = trained.run / "search" / "two-devices"
    results = json.loads((folder / "results.json").read_text())
    assert [p["budget"] for p in results["per_constraint"].values()] == budgets
    assert len(list(folder.glob("pareto_*.png"))) == 2
    for part in results["per_constraint"].values():
        arch = Arch.from_dict(part["best"]["arch"])
        assert ort_predictor.predict([arch])[0] <= budgets[0]
        assert torch_predictor.predict([arch])[0] <= budgets[1]


def test_extract_for_two_devices_meets_both_budgets(trained, two_devices):
    """The shipped model (TorchScript, default path) meets each device's budget, is the most
    accurate searched arch that does, and is that arch cut from the trained supernet."""
    devices, budgets = two_devices
    ort_predictor, torch_predictor = (
        trained.predictor(trained.ort),
        trained.predictor(trained.torch),
    )
    # A second budget that the most accurate searched arch under the first one misses: a model
    # for the first budget only would be that arch.
    measured = trained.measured()
    archs = [a for a in trained.searched() if a in measured]
    ort_ms, torch_ms = ort_predictor.predict(archs), torch_predictor.predict(archs)
    under_first = [i for i in range(len(archs)) if ort_ms[i] <= budgets[0]]
    best = max(under_first, key=lambda i: measured[archs[i]])
    faster = [torch_ms[i] for i in under_first if torch_ms[i] < torch_ms[best]]
    second = round(float((max(faster) + torch_ms[best]) / 2), 6) if faster else budgets[1]
    extract_budgets = [budgets[0], second]
    done = run_nas(
        *["extract", "--run", trained.run, *devices, "--latency-ms", *extract_budgets],
        *["--format", "torchscript"],
        cwd=trained.folder,
    )
    # the default path names every device and budget
    model = trained.run / "models" / f"ort-{budgets[0]:g}ms_torch-{extract_budgets[1]:g}ms.ts"
    assert f"model: {model}" in done.stdout
    card = json.loads(Path(f"{model}.card.json").read_text())
    arch = Arch.from_dict(card["arch"])
    assert ort_predictor.predict([arch])[0] <= extract_budgets[0]
    assert torch_predictor.predict([arch])[0] <= extract_budgets[1]
    assert len(card["latency"]) == 2
    for entry, budget in zip(card["latency"].values(), extract_budgets, strict=True):
        assert entry["predicted_ms"] <= budget and entry["measured_ms"] > 0
    measured = trained.measured()  # with what the extraction measured
    feasible = [
        measured[a]
        for a in trained.searched()
        if a in measured
        and ort_predictor.predict([a])[0] <= extract_budgets[0]
        and torch_predictor.predict([a])[0] <= extract_budgets[1]
    ]
    assert card["accuracy"]["val_top1"] == max(feasible)
    _same_as_the_supernet(trained, arch, torch.jit.load(str(model)))


def test_extract_of_a_searched_winner_as_a_pt_file(trained, tmp_path):
    from nas.extract import load_model

    out = tmp_path / "winner.pt"
    args = [
        "extract",
        "--run",
        trained.run,
        "--device",
        trained.ort,
        "--latency-ms",
        trained.budget,
    ]
    run_nas(*args, "--format", "pt", "--out", out, "--no-measure", cwd=tmp_path)
    card = json.loads((tmp_path / "winner.pt.card.json").read_text())
    (latency,) = card["latency"].values()
    assert latency["measured_ms"] is None  # --no-measure
    model, space, arch = load_model(out)
    assert arch.to_dict() == card["arch"] and space.in_channels == 1
    _same_as_the_supernet(trained, arch, model)


def test_a_profile_of_another_space_is_refused(trained, tmp_path):
    """A profile measured for another space (at the run's resolutions): exit 2, one line naming
    both spaces, no search folder."""
    space_file = tmp_path / "other.yaml"
    space_file.write_text(
        yaml.safe_dump({**TINY_SPACE, "name": "other-space", "resolutions": [16, 24, 32]})
    )
    other = tmp_path / "other-profile.json"
    run_nas(
        *["device", "measure", "--backend", "torch", "--space", space_file],
        *[*SMALL_TIMING, "--models", "2", "--out", other],
        cwd=tmp_path,
    )
    args = ["search", "--run", trained.run, "--device", other, "--latency-ms", 1, "--name", "other"]
    done = run_nas(*args, "--evaluations", 4, cwd=tmp_path, expect=2)
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nas: error:")
    assert "other-space" in err and SPACE in err
    assert not (trained.run / "search" / "other").exists()


def test_unknown_accuracy_source_is_named_with_the_choices(trained, capsys):
    args = ["search", "--run", str(trained.run), "--device", str(trained.ort), "--latency-ms", "1"]
    assert main([*args, "--accuracy", "oracle"]) == 2
    err = capsys.readouterr().err
    assert "unknown accuracy predictor 'oracle'" in err and "supernet" in err and "mlp" in err


def test_impossible_budget_is_refused_with_the_feasible_range(trained, capsys):
    """Refused before its folder is written, so the corrected rerun of the same --name runs."""
    args = ["search", "--run", str(trained.run), "--device", str(trained.ort)]
    args += ["--evaluations", "3", "--batch-size", "3", "--name", "impossible"]
    code = main([*args, "--latency-ms", "0.000001"])
    err = capsys.readouterr().err
    assert code == 2
    assert "is infeasible" in err and "feasible budgets are >=" in err
    assert not (trained.run / "search" / "impossible").exists()
    assert main([*args, "--latency-ms", str(trained.budget)]) == 0
    assert json.loads((trained.run / "search" / "impossible" / "results.json").read_text())


def test_search_of_a_folder_that_is_not_a_run_exits_2(tmp_path, capsys):
    code = main(["search", "--run", str(tmp_path), "--device", "x.json", "--latency-ms", "1"])
    assert code == 2 and "is not a training run" in capsys.readouterr().err


def test_study_of_a_run_compares_two_backends_on_the_same_archs(trained, tmp_path):
    from scipy.stats import kendalltau

    out = tmp_path / "study"
    run_nas(
        *["study", "--space", SPACE, "--run", trained.run, "--device", trained.ort],
        *["--device", trained.torch, "--n", "40", "--pairs", "4", "--measure", "8"],
        *["--importance-archs", "24", "--no-progress", "--out", out],
        cwd=tmp_path,
    )
    result = json.loads((out / "study.json").read_text())
    records = [json.loads(line) for line in (out / "archs.jsonl").read_text().splitlines()]

    # the devices are compared on the same archs: every arch has a latency on both
    (pair,) = result["devices_disagree"]["rank_agreement"]
    assert pair["device_a"] != pair["device_b"]
    assert pair["archs"] == len(records) == result["sample"]["archs"]
    a = [r["latency_ms"][pair["device_a"]] for r in records]
    b = [r["latency_ms"][pair["device_b"]] for r in records]
    assert pair["kendall_tau"] == pytest.approx(kendalltau(a, b).statistic)

    # accuracy: measured ones come from the run's cache, the rest are predicted, each labelled
    measured = trained.measured()
    labelled = [r for r in records if r["accuracy"] == "measured"]
    assert len(labelled) >= 8 and any(r["accuracy"] == "predicted" for r in records)
    for r in records:
        arch = Arch.from_dict(r["arch"])
        if r["accuracy"] == "measured":
            assert r["val_top1_pct"] == pytest.approx(100 * measured[arch])
        else:
            assert r["accuracy"] == "predicted" and arch not in measured
    assert result["accuracy"]["measured_in_sample"] == len(labelled)
    # the archs the report names best under a budget are measured, as a search's winners are
    for budget in result["fronts"]["budgets"]:
        for best in [*budget["per_device"].values(), budget["joint"]]:
            assert best is None or best["source"] == "measured"
    html = (out / "report.html").read_text()
    for heading in ("Summary", "Per-decision effects", "Devices disagree", "Fronts"):
        assert f">{heading}</h" in html
    assert (out / "effects_accuracy.png").read_bytes()[:4] == b"\x89PNG"
