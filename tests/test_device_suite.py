"""Kernel suites for phones: exported, timed on a device (here: made-up timings, so that what
the imported profile predicts is known exactly), imported.

Timing a suite with ONNX Runtime here (`nas device time-suite`) runs in tests/test_readme.py.
"""

from __future__ import annotations

import dataclasses
import json
import zlib

import numpy as np
import pytest

from nas.cli import main
from nas.graph import operator_graph
from predictors.kernels import FusionRules, split_kernels
from predictors.latency import LatencyPredictor
from predictors.suite import SuiteError, export_suite, import_suite, read_timings

#: The made-up device: an empty run takes BASELINE ms; a whole model takes the sum of its
#: kernels net of the baseline, plus PER_KERNEL ms per kernel and CONSTANT ms.
BASELINE, PER_KERNEL, CONSTANT = 0.002, 0.0005, 0.03


def _kernel_ms(key: str) -> float:
    return 0.01 + (zlib.crc32(key.encode()) % 100) / 1e4


def _model_ms(space, arch, rules: FusionRules) -> float:
    kernels = split_kernels(operator_graph(space, arch), rules)
    return (
        sum(_kernel_ms(k.spec.key) - BASELINE for k in kernels)
        + PER_KERNEL * len(kernels)
        + CONSTANT
    )


def _made_up_timings(space, manifest: dict) -> dict[str, float]:
    """What the made-up device times for each suite file."""
    from nas.arch import Arch

    rules = FusionRules.from_list(manifest["rules"])
    timings = {}
    for entry in manifest["entries"]:
        role = entry["role"]
        if role == "baseline":
            timings[entry["name"]] = BASELINE
        elif role == "model":
            timings[entry["name"]] = _model_ms(space, Arch.from_dict(entry["arch"]), rules)
        else:  # kernels and the pieces of fusion tests
            timings[entry["name"]] = _kernel_ms(entry["key"])
    return timings


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    from nas.space import SearchSpace
    from tests.conftest import TINY_SPACE

    space = SearchSpace.from_dict(TINY_SPACE)
    folder = tmp_path_factory.mktemp("suite")
    manifest = export_suite(space, folder, resolutions=[12], models=4, progress=False)
    timings = folder / "timings.csv"
    rows = [f"{name},{ms!r}" for name, ms in _made_up_timings(space, manifest).items()]
    timings.write_text("\n".join(["name,ms", *rows]) + "\n")
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


def test_imported_timings_predict_what_the_device_would_time(tmp_path, suite):
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
    # fresh subnets are predicted as the made-up device times whole models: the overhead fitted
    # on the suite's 4 models is the device's own
    assert predictor.overhead.per_kernel == pytest.approx(PER_KERNEL, rel=1e-6)
    assert predictor.overhead.constant == pytest.approx(CONSTANT, rel=1e-6)
    rules = FusionRules.from_list(manifest["rules"])
    archs = [dataclasses.replace(space.sample(seed), resolution=12) for seed in range(20)]
    expected = [_model_ms(space, arch, rules) for arch in archs]
    np.testing.assert_allclose(predictor.predict(archs), expected, rtol=1e-6)


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
