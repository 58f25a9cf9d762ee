"""Files written by the version before block kinds had a registry still load and give the same
results: arch files, the 2-step training run (checkpoint and resume), device profiles (measured,
imported from a phone suite, imported from the published tables), and the spaces' sampling,
encoding, MACs and parameters. The fixtures and ``expected.json`` were written by that version
(``tests/fixtures/generate.py``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import search_spaces
from nas.arch import Arch
from nas.cli import main
from nas.graph import count, operator_graph

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


def _archs(rows) -> list[Arch]:
    return [Arch.from_dict(row) for row in rows]


@pytest.mark.parametrize("name", list(EXPECTED["spaces"]))
def test_spaces_sample_encode_and_count_as_before(name):
    space, facts = search_spaces.get(name), EXPECTED["spaces"][name]
    assert space.size() == facts["size"]
    assert space.encoding_length == facts["encoding_length"]
    assert [[d.name, list(d.values)] for d in space.dimensions] == facts["dimensions"]
    assert [space.sample(s).to_dict() for s in range(5)] == facts["samples"]
    mutants = [space.mutate(space.sample(s), s + 100, 0.3).to_dict() for s in range(5)]
    assert mutants == facts["mutants"]
    children = [
        space.crossover(space.sample(s), space.sample(s + 50), s + 200).to_dict() for s in range(5)
    ]
    assert children == facts["children"]
    for row in facts["archs"]:
        arch = space.validate(Arch.from_dict(row["arch"]))
        assert arch.to_dict() == row["arch"]
        assert count(space, arch) == (row["macs"], row["params"])
        assert operator_graph(space, arch).number_of_nodes() == row["graph_nodes"]
        assert space.encode(arch).nonzero()[0].tolist() == row["hot"]


@pytest.mark.parametrize("name", list(EXPECTED["files"]))
def test_arch_files_load_with_the_same_macs(name):
    space = search_spaces.get(name)
    arch = space.validate(Arch.load(FIXTURES / "archs" / f"{name}.json"))
    facts = EXPECTED["files"][name]
    assert count(space, arch) == (facts["macs"], facts["params"])
    assert json.loads((FIXTURES / "archs" / f"{name}.json").read_text()) == arch.to_dict()


def _check_outputs(supernet, rows, atol: float = 1e-6) -> None:
    from nas.extract import extract

    space = supernet.space
    supernet.eval()
    with torch.no_grad():
        for row in rows:
            arch = Arch.from_dict(row["arch"])
            gen = torch.Generator().manual_seed(0)
            image = torch.randn(
                2, space.in_channels, arch.resolution, arch.resolution, generator=gen
            )
            supernet.set_arch(arch)
            np.testing.assert_allclose(supernet(image).numpy(), row["supernet"], atol=atol)
            model = extract(supernet, arch).eval()
            np.testing.assert_allclose(model(image).numpy(), row["extracted"], atol=atol)


def test_checkpoint_of_a_2_step_run_gives_the_same_outputs():
    from nas.supernet.checkpoint import load_supernet

    supernet = load_supernet(FIXTURES / "hybrid_tiny_run" / "last.pt")
    _check_outputs(supernet, EXPECTED["checkpoint"]["step2"])


def test_the_2_step_run_resumes_to_the_same_weights(tmp_path):
    from nas.supernet.checkpoint import load_supernet

    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "hybrid_tiny_run", run)
    train = (
        "train --space hybrid-tiny --data digits --epochs 1 --train-limit 256 --eval-limit 100 "
        "--batch-size 32 --calib-images 64 --sampler cas+pas --no-progress --max-steps 3 --out"
    )
    assert main([*train.split(), str(run)]) == 0
    # a training step's sums depend on torch's thread count (about 1e-5 here); a resume that
    # loses the optimizer, the sampler or the data order differs by far more than the tolerance
    _check_outputs(load_supernet(run / "last.pt"), EXPECTED["checkpoint"]["step3"], atol=1e-4)


def test_a_seeded_supernet_starts_from_the_same_weights():
    from nas.supernet import Supernet

    torch.manual_seed(EXPECTED["init"]["seed"])
    _check_outputs(Supernet(search_spaces.get("hybrid-tiny")), EXPECTED["init"]["rows"])


def _check_predictions(profile: Path, space_name: str, facts: dict) -> None:
    from predictors.kernels import KernelSpec
    from predictors.latency import LatencyPredictor

    space = search_spaces.get(space_name)
    predictor = LatencyPredictor.load(profile, space)
    archs = _archs(facts["archs"])
    units = [
        [u.key if isinstance(u, KernelSpec) else u for u in predictor.scheme.arch_units(space, a)]
        for a in archs
    ]
    assert units == facts["units"]
    np.testing.assert_allclose(predictor.predict(archs), facts["predict"], rtol=1e-12)
    np.testing.assert_allclose(
        [predictor.predict_arch(a) for a in archs], facts["predict_arch"], rtol=1e-12
    )
    assert predictor.regressed(archs).tolist() == facts["regressed"]
    breakdown = [[row["ms"] for row in predictor.breakdown(a)] for a in archs]
    assert [len(b) for b in breakdown] == [len(b) for b in facts["breakdown"]]
    for ours, theirs in zip(breakdown, facts["breakdown"], strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)  # regressors run batched


def test_a_measured_profile_predicts_as_before():
    _check_predictions(FIXTURES / "ort_profile.json", "hybrid-tiny", EXPECTED["onnxruntime"])


def test_a_phone_suite_imports_and_predicts_as_before(tmp_path):
    suite = tmp_path / "suite"
    shutil.copytree(FIXTURES / "suite", suite)
    out = tmp_path / "phone.json"
    timings = str(FIXTURES / "suite_timings.csv")
    args = ["device", "import", str(suite), timings, "--out", str(out), "--device", "phone"]
    assert main(args) == 0
    _check_predictions(out, "hybrid-tiny", EXPECTED["suite"])


@pytest.mark.parametrize("table, space", [("pixel4", "elasticvit"), ("note10", "ofa-mbv3")])
def test_imported_table_subsets_predict_as_before(table, space):
    _check_predictions(FIXTURES / f"{table}_subset.json", space, EXPECTED[table])


def test_imported_tables_predict_as_before(tmp_path, shared_data):
    pixel4 = tmp_path / "pixel4.json"
    lut = shared_data / "pixel4_elasticvit" / "pixel4_lut.json"
    assert main(["device", "import-table", "pixel4", str(lut), "--out", str(pixel4)]) == 0
    _check_predictions(pixel4, "elasticvit", EXPECTED["pixel4"])
    note10 = tmp_path / "note10.json"
    folder = shared_data / "ofa_note10"
    assert main(["device", "import-table", "note10", str(folder), "--out", str(note10)]) == 0
    _check_predictions(note10, "ofa-mbv3", EXPECTED["note10"])
    _check_predictions(note10, "ofa-mbv3", EXPECTED["note10_regressed"])


class _FirstStepOnly(Exception):
    pass


def test_a_demo_folder_trained_with_the_former_default_sampler_resumes(tmp_path, monkeypatch):
    """`nas train`'s default sampler changed (cas+pas -> uniform): a demo folder written before
    resumes with its run's own options instead of stopping at 'holds a run with other options'."""
    from nas import demo
    from nas.supernet.checkpoint import read_checkpoint
    from nas.train.config import CONFIG_FILE, read_config

    run = tmp_path / "demo" / "supernet"
    former = ["--sampler", "cas+pas", "--seed", "0", *demo.QUICK.train, "--max-steps", "1"]
    assert (
        main(["train", "--space", demo.DEMO_SPACE, "--epochs", "1", *former, "--out", str(run)])
        == 0
    )
    steps = []

    def first_step_only(title, argv):
        steps.append(argv)
        raise _FirstStepOnly

    monkeypatch.setattr(demo, "_step", first_step_only)
    with pytest.raises(_FirstStepOnly):
        demo.run_demo(tmp_path / "demo", quick=True)
    assert main([*steps[0], "--max-steps", "2"]) == 0  # the demo's own training step, resumed
    assert read_config(run / CONFIG_FILE).sampler == "cas+pas"
    assert read_checkpoint(run / "last.pt")["step"] == 2
