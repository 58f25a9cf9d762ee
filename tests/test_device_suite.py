"""Kernel suites for phones, round-tripped with ONNX Runtime on this machine standing in for one."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from nas.cli import main
from predictors.latency import LatencyPredictor
from predictors.suite import SuiteError, export_suite, import_suite, read_timings, time_suite
from predictors.validate import measure_archs


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    from nas.space import SearchSpace
    from tests.conftest import TINY_SPACE

    space = SearchSpace.from_dict(TINY_SPACE)
    folder = tmp_path_factory.mktemp("suite")
    manifest = export_suite(space, folder, resolutions=[12], models=4, progress=False)
    timings = folder / "timings.csv"
    time_suite(folder, timings, warmup=2, repeats=15, progress=False)
    return space, folder, manifest, timings


def test_suite_folder_has_files_manifest_and_readme(suite):
    space, folder, manifest, _ = suite
    roles = {e["role"] for e in manifest["entries"]}
    assert roles == {"baseline", "fusion", "kernel", "model"}
    for entry in manifest["entries"]:
        assert (folder / entry["file"]).is_file()
        assert all(i["name"].startswith("input") for i in entry["inputs"])
    readme = (folder / "README.md").read_text()
    assert "onnxruntime_perf_test" in readme and "benchmark_model" in readme and "name,ms" in readme
    template = (folder / "timings_template.csv").read_text().splitlines()
    assert template[0] == "name,ms" and len(template) == len(manifest["entries"]) + 1
    assert json.loads((folder / "manifest.json").read_text())["space"]["name"] == space.name


def test_suite_round_trip_matches_direct_measurement(tmp_path, suite):
    space, folder, manifest, timings_csv = suite
    out = tmp_path / "phone.json"
    code = main(
        [
            "device", "import", str(folder), str(timings_csv), "--out", str(out),
            "--backend", "onnxruntime", "--device", "stand-in phone",
        ]
    )  # fmt: skip
    assert code == 0
    predictor = LatencyPredictor.load(out)
    profile = predictor.profile
    assert profile.source == "suite" and profile.device == "stand-in phone"
    timings = read_timings(timings_csv)
    kernels = [e for e in manifest["entries"] if e["role"] == "kernel"]
    assert len(profile.kernels) == len(kernels)
    for entry in kernels:  # every kernel time is the CSV's, exactly
        assert profile.kernels[entry["key"]].measurement.ms() == timings[entry["name"]]
    assert all("device" in r["evidence"] for r in profile.fusion_rules)
    # predictions of fresh subnets against timing them whole with ONNX Runtime here
    rng = np.random.default_rng(0)
    archs = [
        dataclasses.replace(space.sample(int(rng.integers(1 << 30))), resolution=12)
        for _ in range(6)
    ]
    predicted = predictor.predict(archs)
    measured = measure_archs(predictor, archs, progress=False)
    ratio = predicted / measured
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio
    assert abs(np.median(ratio) - 1) < 0.35, ratio


def test_bad_timings_give_clear_errors(tmp_path, suite):
    _, folder, manifest, timings_csv = suite
    bad = tmp_path / "bad.csv"
    bad.write_text("file,time\nbaseline,0.1\n")
    with pytest.raises(SuiteError, match=r"lacks column\(s\) \['name', 'ms'\].*found: file, time"):
        import_suite(folder, bad)
    lines = timings_csv.read_text().splitlines()
    bad.write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(SuiteError, match="has no time for 3 of"):
        import_suite(folder, bad)
    bad.write_text("\n".join([*lines, "k99999,0.5"]) + "\n")
    with pytest.raises(SuiteError, match="not in the suite.*k99999"):
        import_suite(folder, bad)
    bad.write_text("name,ms\nbaseline,fast\n")
    with pytest.raises(SuiteError, match="line 2: ms = 'fast' is not a number"):
        import_suite(folder, bad)
    with pytest.raises(SuiteError, match="does not exist"):
        import_suite(folder, tmp_path / "absent.csv")
    with pytest.raises(SuiteError, match="no manifest.json"):
        import_suite(tmp_path, timings_csv)
