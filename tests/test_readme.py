"""The README is a test: each of its ``nas`` and ``make`` commands runs (at a small size, see
``readme_commands.SUBSTITUTIONS``) in one fresh folder and writes what the README says it writes.

The commands run in README order through the installed ``nas`` command; each test below checks
one command's outcome (exit code, files, their content). A README command without a check here
fails: every documented command has a stated outcome.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml
from conftest import REPO_ROOT, nas_executable
from readme_commands import (
    PLACEHOLDERS,
    SUBSTITUTIONS,
    ReadmeFlow,
    readme_commands,
    redirect_target,
    self_contained,
    substitute,
)

import search_spaces
from nas.arch import Arch
from nas.train.config import TrainConfig

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

COMMANDS = readme_commands()


def _onnx_logits(path: Path, image: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": image.astype(np.float32)})[0]


def _image(channels: int, side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, channels, side, side)).astype(np.float32)


def _arch_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------- checks, one per command


def check_make_demo(flow: ReadmeFlow, out: str) -> None:
    demo = flow.path("runs/demo")
    model = demo / "model.onnx"
    for shown in ("model:", "model card:", "Pareto plot:", "training run:", "profiles:"):
        assert shown in out, f"the demo does not print where its {shown[:-1]} is"
    card = json.loads((demo / "model.onnx.card.json").read_text())
    assert card["format"] == "nas-model-card" and card["model_format"] == "onnx"
    ((device, latency),) = card["latency"].items()
    assert latency["predicted_ms"] <= latency["budget_ms"] == card["budgets_ms"][device]
    side = card["arch"]["resolution"]
    assert _onnx_logits(model, _image(1, side)).shape == (1, 10)
    results = json.loads((demo / "supernet" / "search" / "demo" / "results.json").read_text())
    history = (demo / "supernet" / "search" / "demo" / "history.jsonl").read_text().splitlines()
    assert len(history) == 12  # the quick demo's evaluations
    (part,) = results["per_constraint"].values()
    assert (demo / "supernet" / "search" / "demo" / part["plot"]).read_bytes()[:4] == b"\x89PNG"
    config = yaml.safe_load((demo / "supernet" / "config.yaml").read_text())
    assert config["epochs"] == 1  # the quick size, same steps
    assert config["sampler"] == TrainConfig().sampler  # nas train's default recipe
    assert json.loads((demo / "onnxruntime_profile.json").read_text())["complete"] is True
    assert (
        "study:" in out and ">Per-decision effects</h" in (demo / "study/report.html").read_text()
    )
    # the paths into the demo's folder that the README and the benchmarks' usage lines give
    for source in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "benchmarks").glob("*.py"))]:
        for name in set(re.findall(r"runs/demo/([\w.-]*\w)", source.read_text())):
            assert (demo / name).exists(), f"{source.name} names runs/demo/{name}: not written"


def check_make_test(flow: ReadmeFlow, out: str) -> None:
    assert "pytest" in out and "-rs" in out.split(), "make test must show skip reasons (-rs)"


def check_make_test_all(flow: ReadmeFlow, out: str) -> None:
    assert "pytest" in out and "-rs" in out.split() and "slow or not slow" in out


def check_make_lint(flow: ReadmeFlow, out: str) -> None:
    assert "ruff check" in out and "ruff format --check" in out


def check_make_format(flow: ReadmeFlow, out: str) -> None:
    assert "ruff check --fix" in out and "ruff format" in out


def check_make_clean(flow: ReadmeFlow, out: str) -> None:
    assert "__pycache__" in out and ".pytest_cache" in out and "runs" in out


def check_spaces(flow: ReadmeFlow, out: str) -> None:
    for name in search_spaces.names():
        size = f"{search_spaces.get(name).size():.3e}"
        assert re.search(rf"^{re.escape(name)}\s+{re.escape(size)}\s", out, re.M), name


def _first_command(command: str) -> list[str]:
    """The words of a README command up to a pipe (``|``)."""
    words = shlex.split(command, comments=True)
    return words[: words.index("|")] if "|" in words else words


def _option(command: str, name: str, default: str) -> str:
    words = _first_command(command)
    return words[words.index(name) + 1] if name in words else default


def check_presets(flow: ReadmeFlow, out: str) -> None:
    from nas import presets

    for name in presets.names():
        preset = presets.get(name)
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert f"{preset.counts()[1] / 1e6:.3f}M" in row, row
        assert f"{preset.published_params / 1e6:.2f}M" in row, row


def check_sample_preset(flow: ReadmeFlow, out: str) -> None:
    from nas import presets

    preset = presets.get(_option(flow.current, "--preset", ""))
    target = redirect_target(flow.current)
    (record,) = _arch_lines(flow.path(target).read_text() if target else out)
    assert Arch.from_dict(record["arch"]) == preset.arch
    assert (record["macs"], record["params"]) == preset.counts()


def check_extract_preset(flow: ReadmeFlow, out: str) -> None:
    """Fresh weights (seed 0) of the standalone model of the preset's arch."""
    from nas import presets
    from nas.blocks.nn import build_model

    preset = presets.get(_option(flow.current, "--preset", ""))
    torch.manual_seed(0)
    model = build_model(search_spaces.get(preset.space), preset.arch).eval()
    image = _image(3, preset.arch.resolution)
    with torch.no_grad():
        expected = model(torch.from_numpy(image)).numpy()
    out_file = flow.path(_option(flow.current, "--out", ""))
    np.testing.assert_allclose(_onnx_logits(out_file, image), expected, atol=1e-4)


def check_sample(flow: ReadmeFlow, out: str) -> None:
    from nas.graph import count

    space = search_spaces.get("hybrid-tiny")
    target = redirect_target(flow.current)
    text = flow.path(target).read_text() if target else out
    n = int(_option(flow.current, "-n", "1"))
    records = _arch_lines(text)
    assert len(records) == n
    archs = [Arch.from_dict(record["arch"]) for record in records]
    assert len(set(archs)) == n
    resolution = _option(flow.current, "--resolution", "")
    assert not resolution or {arch.resolution for arch in archs} == {int(resolution)}
    if target:  # what every command reading an arch takes: each line of the file, or the file
        from nas.archfile import read_archs

        assert [arch for _, arch in read_archs(str(flow.path(target)))] == archs
    for record, arch in zip(records, archs, strict=True):
        space.validate(arch)
        assert (record["macs"], record["params"]) == count(space, arch)


def _arch_source(flow: ReadmeFlow, source: str) -> Arch:
    """The arch a README command names: FILE, FILE:N, or ``-`` (the output of the command piped
    into it, run again here)."""
    from nas.archfile import read_arch

    if source == "-":
        sample = _first_command(flow.current)
        done = subprocess.run(
            [str(nas_executable()), *sample[1:]], capture_output=True, text=True, check=True
        )
        return Arch.from_dict(json.loads(done.stdout)["arch"])
    return read_arch(str(flow.path(source)))[1]


def check_inspect(flow: ReadmeFlow, out: str) -> None:
    from nas.graph import operator_graph

    space = search_spaces.get("hybrid-tiny")
    arch = _arch_source(flow, shlex.split(flow.current, comments=True)[-1])
    rows = [line.split()[0] for line in out.splitlines()[2:-1]]
    assert rows == ["stem", "stages.0", "stages.1", "stages.2", "stages.3", "head"]
    macs = operator_graph(space, arch).graph["macs"]
    shown = f"{macs / 1e6:.2f}M" if macs >= 1e6 else f"{macs / 1e3:.2f}K"
    assert f"total: {shown} MACs" in out
    assert f"resolution {arch.resolution}" in out.splitlines()[0]


def check_extract_arch(flow: ReadmeFlow, out: str) -> None:
    """Without --checkpoint the weights are freshly initialised (seed 0): the file computes what
    a supernet initialised so computes with the arch set."""
    from nas.supernet import Supernet

    space = search_spaces.get("hybrid-tiny")
    arch = _arch_source(flow, _option(flow.current, "--arch", ""))
    torch.manual_seed(0)
    supernet = Supernet(space).eval()
    supernet.set_arch(arch)
    image = _image(3, arch.resolution)
    with torch.no_grad():
        expected = supernet(torch.from_numpy(image)).numpy()
    out_file = flow.path(_option(flow.current, "--out", ""))
    np.testing.assert_allclose(_onnx_logits(out_file, image), expected, atol=1e-4)


def check_train(flow: ReadmeFlow, out: str, folder: str = "runs/digits") -> None:
    from nas.supernet.checkpoint import load_supernet, read_checkpoint
    from nas.trained import TrainedRun

    run = flow.path(folder)
    for name in ("config.yaml", "levels.json", "last.pt", "best.pt", "metrics.jsonl"):
        assert (run / name).is_file(), name
    records = _arch_lines((run / "metrics.jsonl").read_text())
    kinds = [r["kind"] for r in records]
    assert kinds.count("eval") == 1 and kinds[-1] == "final"  # one epoch, then the final table
    final = json.loads((run / "final.json").read_text())
    assert final["step"] == read_checkpoint(run / "last.pt")["step"] > 0
    assert "probe mean" in out and str(run.relative_to(flow.root)) in out
    # the final table's largest-arch accuracy is what the saved supernet gives
    opened = TrainedRun.open(run)
    largest = next(r for r in final["rows"] if r["name"] == "largest")
    arch = Arch.from_dict(largest["arch"])
    assert opened.accuracy([arch])[0] == pytest.approx(largest["val_top1"], abs=1e-9)
    supernet = load_supernet(run / "best.pt")
    assert supernet.space.num_classes == opened.data.num_classes


def check_train_fmnist(flow: ReadmeFlow, out: str) -> None:
    check_train(flow, out, "runs/fmnist")
    config = yaml.safe_load(flow.path("runs/fmnist/config.yaml").read_text())
    assert config["sampler"] == "sandwich" and config["derived"]["in_channels"] == 1
    assert "1x28x28" in config["derived"]["data"]


def check_train_workers(flow: ReadmeFlow, out: str) -> None:
    """Two Ray workers started by the command: the same steps as one process, one run folder."""
    from nas.supernet.checkpoint import read_checkpoint
    from nas.trained import TrainedRun

    check_train(flow, out, "runs/digits-2w")
    payload = read_checkpoint(flow.path("runs/digits-2w/last.pt"))
    config = payload["config"]
    assert config["workers"] == 2
    # the global batch is split between the workers, not multiplied: the steps of one process
    train_images = len(TrainedRun.open(flow.path("runs/digits-2w")).data.train)
    assert payload["step"] == config["epochs"] * (train_images // config["batch_size"]) > 0


def check_train_help(flow: ReadmeFlow, out: str) -> None:
    from dataclasses import fields

    from nas.train.config import TrainConfig

    for f in fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in out, f"--help lacks {f.name}"


def _check_profile(path: Path, resolutions: list[int]) -> None:
    from predictors.latency import LatencyPredictor, ResolutionError
    from predictors.profile import DeviceProfile

    profile = DeviceProfile.load(path)
    assert profile.complete and profile.backend == "onnxruntime" and len(profile.models) == 4
    # the sampled plan of the substitution: a few configurations per kind, the rest regressed
    assert profile.plan["strategy"] == "adaptive"
    assert 0 < len(profile.kernels) < profile.plan["configurations"]
    space = search_spaces.get("hybrid-tiny")
    predictor = LatencyPredictor.load(path, space)
    archs = [space.sample(s) for s in range(10)]
    for side in space.resolutions:
        at = [Arch.from_dict({**a.to_dict(), "resolution": side}) for a in archs]
        if side in resolutions:
            ms = predictor.predict(at)
            assert np.isfinite(ms).all() and (ms > 0).all()
        else:
            with pytest.raises(ResolutionError):
                predictor.predict(at)


def check_measure_all(flow: ReadmeFlow, out: str) -> None:
    assert "wrote runs/ort.json" in out
    _check_profile(flow.path("runs/ort.json"), [16, 24, 32])


def check_measure_torch(flow: ReadmeFlow, out: str) -> None:
    from predictors.profile import DeviceProfile

    profile = DeviceProfile.load(flow.path("runs/torch.json"))
    assert profile.complete and profile.backend == "torch" and profile.space_name == "hybrid-tiny"


def check_measure_32(flow: ReadmeFlow, out: str) -> None:
    _check_profile(flow.path("ort.json"), [32])


def _search_folder(flow: ReadmeFlow, prefix: str) -> tuple[Path, dict]:
    budget = flow.budget()
    folder = flow.path(f"runs/digits/search/{prefix}-ort-{budget:g}ms")  # the default name
    return folder, json.loads((folder / "results.json").read_text())


def _check_study(folder: Path, devices: int, accuracy: bool) -> dict:
    result = json.loads((folder / "study.json").read_text())
    records = [json.loads(line) for line in (folder / "archs.jsonl").read_text().splitlines()]
    assert len(records) == result["sample"]["archs"] >= 24
    for record in records:
        assert len(record["latency_ms"]) == devices
        assert all(np.isfinite(ms) and ms > 0 for ms in record["latency_ms"].values())
        assert ("val_top1_pct" in record) == accuracy
    html = (folder / "report.html").read_text()
    for heading in ("Summary", "Per-decision effects", "Importance of decisions", "Fronts"):
        assert f">{heading}</h" in html, heading
    return result


def check_study_run(flow: ReadmeFlow, out: str) -> None:
    result = _check_study(flow.path("runs/study"), devices=2, accuracy=True)
    (pair,) = result["devices_disagree"]["rank_agreement"]
    assert -1 <= pair["kendall_tau"] <= 1


def check_study_pixel4(flow: ReadmeFlow, out: str) -> None:
    _check_study(flow.path("runs/pixel4-study"), devices=1, accuracy=False)


def check_study_help(flow: ReadmeFlow, out: str) -> None:
    for option in ("--space", "--run", "--device", "--n", "--pairs", "--measure", "--out"):
        assert option in out, f"--help lacks {option}"


def check_search(flow: ReadmeFlow, out: str) -> None:
    from nas.trained import TrainedRun
    from predictors.latency import LatencyPredictor

    folder, results = _search_folder(flow, "guided")  # the default algorithm
    budget = flow.budget()
    assert len((folder / "history.jsonl").read_text().splitlines()) == 12
    (part,) = results["per_constraint"].values()
    best = part["best"]
    assert part["budget"] == budget and (folder / part["plot"]).read_bytes()[:4] == b"\x89PNG"
    arch = Arch.from_dict(best["arch"])
    space = search_spaces.get("hybrid-tiny")
    predicted = LatencyPredictor.load(flow.path("runs/ort.json"), space).predict([arch])[0]
    assert predicted <= budget
    assert (
        best["objectives"]["val_top1"] == TrainedRun.open(flow.path("runs/digits")).measured()[arch]
    )


def check_search_space(flow: ReadmeFlow, out: str) -> None:
    """No supernet: the proxy maximised under the Pixel 4 budget, labelled as a proxy."""
    from nas.graph import count
    from predictors.latency import LatencyPredictor

    folder = flow.path("runs/search/guided-pixel4-30ms")
    results = json.loads((folder / "results.json").read_text())
    assert results["objective"] == "proxy_params" and "PROXY, not accuracy" in out
    (part,) = results["per_constraint"].values()
    arch = Arch.from_dict(part["best"]["arch"])
    space = search_spaces.get("elasticvit")
    assert LatencyPredictor.load(flow.path("pixel4.json"), space).predict([arch])[0] <= 30
    assert part["best"]["objectives"]["proxy_params"] == pytest.approx(count(space, arch)[1] / 1e6)


def check_search_predictor(flow: ReadmeFlow, out: str) -> None:
    from nas.trained import TrainedRun

    budget = flow.budget()
    folder = flow.path(f"runs/digits/search/guided-ort-{budget:g}ms")
    # same algorithm, device and budget as the search above: the same folder, resumed and grown
    results = json.loads((folder / "results.json").read_text())
    assert len((folder / "history.jsonl").read_text().splitlines()) == 24
    summary = results["accuracy_predictor"]
    assert summary["predictor"] == "mlp" and "accuracy predictor mlp" in out
    assert summary["heldout_checks"] >= 1  # predictions checked by measuring them
    (part,) = results["per_constraint"].values()
    arch = Arch.from_dict(part["best"]["arch"])
    measured = TrainedRun.open(flow.path("runs/digits")).measured()
    assert part["best"]["objectives"]["val_top1"] == measured[arch]  # a measurement, not a guess


def check_extract_run(flow: ReadmeFlow, out: str) -> None:
    """The default output path; the model equals the trained supernet's subnet (BN recalibrated)
    and the card's test accuracy is the model's."""
    from nas.train.data import resize
    from nas.trained import TrainedRun

    budget = flow.budget()
    model = flow.path(f"runs/digits/models/ort-{budget:g}ms.onnx")
    card = json.loads(Path(f"{model}.card.json").read_text())
    assert card["model"] == model.name and list(card["budgets_ms"].values()) == [budget]
    (latency,) = card["latency"].values()
    assert latency["predicted_ms"] <= budget == latency["budget_ms"] and latency["measured_ms"] > 0
    arch = Arch.from_dict(card["arch"])
    run = TrainedRun.open(flow.path("runs/digits"))
    image = _image(1, arch.resolution)
    with torch.no_grad():
        expected = run.extract(arch).eval()(torch.from_numpy(image)).numpy()
    np.testing.assert_allclose(_onnx_logits(model, image), expected, atol=1e-4)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    images = resize(run.data.test.x, arch.resolution).numpy()
    predicted = [session.run(None, {"image": x[None]})[0].argmax() for x in images]
    top1 = float(np.mean(np.array(predicted) == run.data.test.y.numpy()))
    assert abs(top1 - card["accuracy"]["test_top1"]) <= 1 / len(images)  # a near tie may flip


def check_extract_int8(flow: ReadmeFlow, out: str) -> None:
    """An int8 ONNX file whose card holds the input contract and both precisions' accuracy and
    latency measured here."""
    card = json.loads(flow.path("runs/model-int8.onnx.card.json").read_text())
    derived = yaml.safe_load(flow.path("runs/digits/config.yaml").read_text())["derived"]
    assert card["input"]["mean"] == derived["preprocessing"]["mean"]
    resolution = card["arch"]["resolution"]
    assert card["input"]["shape"] == ["batch", 1, resolution, resolution]  # dynamic batch
    assert card["runtime"]["format"] == "onnx" and card["precision"] == "int8"
    assert "QDQ" in card["quantization"]["scheme"]
    assert card["deployed"]["fp32"]["max_abs_diff_vs_pytorch"] < 1e-4
    for precision in ("fp32", "int8"):
        part = card["deployed"][precision]
        assert 0 <= part["test_top1"] <= 1 and part["latency_ms"]["min_ms"] > 0
        assert f"{precision}: test top-1 {part['test_top1']:.4f}" in out


def check_predict_model(flow: ReadmeFlow, out: str) -> None:
    """nas predict on the test split reproduces the card's int8 accuracy of the file."""
    card = json.loads(flow.path("runs/model-int8.onnx.card.json").read_text())
    (line,) = [x for x in out.splitlines() if x.startswith("accuracy on test split")]
    assert float(line.split(":")[1].split()[0]) == pytest.approx(
        card["deployed"]["int8"]["test_top1"], abs=1e-4
    )


def _check_validation_report(flow: ReadmeFlow, out: str) -> dict:
    folder = flow.path("runs/validate-ort")  # the default report folder
    report = json.loads((folder / "report.json").read_text())
    rows = list(csv.DictReader((folder / "subnets.csv").open()))
    assert report["metrics"]["n"] == len(rows) == 3
    predicted = np.array([float(r["predicted_ms"]) for r in rows])
    measured = np.array([float(r["measured_ms"]) for r in rows])
    mape = float(np.mean(np.abs(predicted - measured) / measured) * 100)
    assert report["metrics"]["mape_pct"] == pytest.approx(mape, rel=1e-4)  # CSV: 6 decimals
    assert f"MAPE {mape:.2f}%" in out and "RMSE" in out
    assert (folder / "scatter.png").read_bytes()[:4] == b"\x89PNG"
    return report


def check_validate(flow: ReadmeFlow, out: str) -> None:
    from predictors.latency import LatencyPredictor

    report = _check_validation_report(flow, out)
    rows = list(csv.DictReader(flow.path("runs/validate-ort/subnets.csv").open()))
    predictor = LatencyPredictor.load(flow.path("ort.json"))
    for row in rows:  # the profile's own predictions, as the CSV writes them (6 decimals)
        ms = predictor.predict([Arch.from_json(row["arch"])])[0]
        assert float(row["predicted_ms"]) == pytest.approx(ms, abs=0.5e-6 + 1e-12)
    assert report["resolutions"] == [32]


def check_validate_repeatability(flow: ReadmeFlow, out: str) -> None:
    report = _check_validation_report(flow, out)
    assert report["recalibrated_on"] == 4  # the profile's 4 calibration subnets
    assert set(report["repeatability"]) >= {"within_5pct", "within_10pct", "median_ratio"}
    assert "two measurements of a subnet agree" in out and "overhead refitted" in out


def check_predict(flow: ReadmeFlow, out: str) -> None:
    from predictors.latency import LatencyPredictor

    predictor = LatencyPredictor.load(flow.path("ort.json"))
    arch = _arch_source(flow, "arch.json")
    lines = out.splitlines()
    assert lines[0].startswith(f"{predictor.predict([arch])[0]:.4f} ms  hybrid-tiny")
    rows = predictor.breakdown(arch)
    assert len(lines) == 1 + len(rows)


def check_info(flow: ReadmeFlow, out: str) -> None:
    from predictors.profile import DeviceProfile

    profile = DeviceProfile.load(flow.path("ort.json"))
    assert re.search(r"^backend:\s+onnxruntime", out, re.M)
    assert re.search(rf"^kernels:\s+{len(profile.kernels)}\b", out, re.M)
    assert "hybrid-tiny" in out


def check_export_suite(flow: ReadmeFlow, out: str) -> None:
    suite = flow.path("suite")
    manifest = json.loads((suite / "manifest.json").read_text())
    roles = [e["role"] for e in manifest["entries"]]
    assert roles.count("model") == 4 and "kernel" in roles and "baseline" in roles
    for entry in manifest["entries"]:
        assert (suite / entry["file"]).is_file(), entry["file"]
    first = next(e for e in manifest["entries"] if e["role"] == "model")
    session = ort.InferenceSession(str(suite / first["file"]), providers=["CPUExecutionProvider"])
    feed = {i.name: np.zeros(i.shape, np.float32) for i in session.get_inputs()}
    assert np.isfinite(session.run(None, feed)[0]).all()
    assert "name,ms" in (suite / "README.md").read_text()


def check_time_suite(flow: ReadmeFlow, out: str) -> None:
    manifest = json.loads(flow.path("suite/manifest.json").read_text())
    rows = list(csv.DictReader(flow.path("timings.csv").open()))
    assert {r["name"] for r in rows} == {e["name"] for e in manifest["entries"]}
    assert all(np.isfinite(float(r["ms"])) and float(r["ms"]) > 0 for r in rows)


def check_import(flow: ReadmeFlow, out: str) -> None:
    from predictors.latency import LatencyPredictor

    predictor = LatencyPredictor.load(flow.path("phone.json"))
    assert predictor.profile.device == "Pixel 7, ORT 1.20, 1 thread"
    timings = {r["name"]: float(r["ms"]) for r in csv.DictReader(flow.path("timings.csv").open())}
    manifest = json.loads(flow.path("suite/manifest.json").read_text())
    for entry in (e for e in manifest["entries"] if e["role"] == "kernel"):
        assert predictor.profile.kernels[entry["key"]].measurement.ms() == timings[entry["name"]]
    space = search_spaces.get("hybrid-tiny")
    archs = [Arch.from_dict({**space.sample(s).to_dict(), "resolution": 32}) for s in range(5)]
    assert (predictor.predict(archs) > 0).all()


def _check_table(flow: ReadmeFlow, name: str, space: str) -> None:
    from predictors.latency import LatencyPredictor

    predictor = LatencyPredictor.load(flow.path(name))
    assert predictor.profile.space_name == space and predictor.profile.source == "table"
    archs = [search_spaces.get(space).sample(s) for s in range(5)]
    assert (predictor.predict(archs) > 0).all()


def check_import_pixel4(flow: ReadmeFlow, out: str) -> None:
    _check_table(flow, "pixel4.json", "elasticvit")


def check_import_note10(flow: ReadmeFlow, out: str) -> None:
    _check_table(flow, "note10.json", "ofa-mbv3")


#: README command (regular expression) -> check of its outcome (the flow, its stdout).
CHECKS: list[tuple[str, Callable[[ReadmeFlow, str], None]]] = [
    (r"make demo$", check_make_demo),
    (r"make test$", check_make_test),
    (r"make test-all$", check_make_test_all),
    (r"make lint$", check_make_lint),
    (r"make format$", check_make_format),
    (r"make clean$", check_make_clean),
    (r"nas spaces$", check_spaces),
    (r"nas presets$", check_presets),
    (r"nas sample --preset ", check_sample_preset),
    (r"nas extract --preset ", check_extract_preset),
    (r"nas sample .* nas inspect ", check_inspect),
    (r"nas sample ", check_sample),
    (r"nas inspect ", check_inspect),
    (r"nas extract .*--arch ", check_extract_arch),
    (r"nas extract .*--quantize int8", check_extract_int8),
    (r"nas extract .*--run ", check_extract_run),
    (r"nas predict ", check_predict_model),
    (r"nas train --help", check_train_help),
    (r"nas train .*--workers", check_train_workers),
    (r"nas train .*fashion_mnist", check_train_fmnist),
    (r"nas train ", check_train),
    (r"nas device measure .*--backend torch", check_measure_torch),
    (r"nas device measure .*--resolutions 32", check_measure_32),
    (r"nas device measure ", check_measure_all),
    (r"nas search .*--accuracy", check_search_predictor),
    (r"nas search --space", check_search_space),
    (r"nas search ", check_search),
    (r"nas device validate .*--repeatability", check_validate_repeatability),
    (r"nas device validate ", check_validate),
    (r"nas device predict ", check_predict),
    (r"nas device info ", check_info),
    (r"nas device export-suite ", check_export_suite),
    (r"nas device time-suite ", check_time_suite),
    (r"nas device import suite", check_import),
    (r"nas device import-table pixel4", check_import_pixel4),
    (r"nas device import-table note10", check_import_note10),
    (r"nas study --help", check_study_help),
    (r"nas study .*--run ", check_study_run),
    (r"nas study ", check_study_pixel4),
]


def _check_of(command: str) -> Callable[[ReadmeFlow, str], None] | None:
    return next((check for pattern, check in CHECKS if re.match(pattern, command)), None)


#: Self-contained README commands that take a minute or more: a worker group of their own, so
#: that `make test` runs them beside the README's chain of commands rather than after it.
APART = (r"^make demo$", r"^nas train .*--workers")


def _param(command: str):
    apart = self_contained(command) and any(re.match(p, command) for p in APART)
    marks = [pytest.mark.xdist_group("readme-apart")] if apart else []
    return pytest.param(command, marks=marks, id=re.sub(r"\s+", "_", command)[:60])


@pytest.mark.parametrize("command", [_param(c) for c in COMMANDS])
def test_readme_command_does_what_the_readme_says(command, readme_flow):
    check = _check_of(command)
    assert check is not None, f"README command `{command}` has no check in {__file__}: add one"
    outcome = readme_flow.run(command)
    assert outcome.returncode == 0, outcome.explain()
    check(readme_flow, outcome.stdout)
    lines = Counter(line.strip() for line in outcome.stderr.splitlines() if line.strip())
    repeated = [(line, n) for line, n in lines.most_common(3) if n > 5]
    assert not repeated, f"`{command}` repeats a message on stderr: {repeated}"


def test_the_readme_lists_the_commands_this_test_knows():
    """The README still documents the main commands (a README that lost them fails too)."""
    wanted = [
        "make demo", "make test", "nas train ", "nas device measure ", "nas search ",
        "nas extract --run ", "nas device export-suite ", "nas device time-suite ",
    ]  # fmt: skip
    for prefix in wanted:
        assert any(c.startswith(prefix) for c in COMMANDS), prefix
    # every substitution still applies to some README command: none is stale
    for pattern, _, why in SUBSTITUTIONS:
        assert any(re.search(pattern, c) for c in COMMANDS), f"stale substitution {pattern} ({why})"
    for command in COMMANDS:
        left = re.sub("|".join(map(re.escape, PLACEHOLDERS)), "", substitute(command))
        assert "{" not in left, f"unknown placeholder in {substitute(command)}"


def test_in_ci_a_test_that_needs_the_shared_data_fails_without_it(tmp_path):
    """As the README says: skipped with the reason outside CI, failed in CI (CI=true)."""
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    command += ["tests/test_lut_keys.py::test_elasticvit_key_formats"]
    env = {**os.environ, "NAS_SHARED_DATA": str(tmp_path / "absent")}
    for ci, code, shown in (("", 0, "SKIPPED"), ("true", 1, "CI=true")):
        done = subprocess.run(
            command, cwd=REPO_ROOT, env={**env, "CI": ci}, capture_output=True, text=True
        )
        assert done.returncode == code, done.stdout[-2000:]
        assert shown in done.stdout and "shared data folder not found" in done.stdout
