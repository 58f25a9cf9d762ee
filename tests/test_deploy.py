"""Deployment through the `nas` command, each into a fresh folder: the model card as an input
contract that `nas predict` and the card's own snippet follow, ONNX with a dynamic batch, int8
through ONNX Runtime's quantization tools with the per-block sensitivity pass, ExecuTorch and
LiteRT files that run here, and the bad input of these commands.

The trained run, its search and device profile A are the tiny world's (``conftest.tiny_world``,
made with the `nas` command); each test copies them into its own folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_runner import CliRunner

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def nas():
    runner = CliRunner()
    yield runner
    runner.close()


@pytest.fixture
def world(tiny_world, tmp_path) -> Path:
    """A fresh folder with a copy of the tiny world's run (searched) and profile A."""
    shutil.copytree(tiny_world.run, tmp_path / "run")
    shutil.copy(tiny_world.profile_a, tmp_path / "a.json")
    return tmp_path


def _ok(nas, folder: Path, *argv, timeout: float = 900) -> str:
    result = nas.run([str(a) for a in argv], folder, timeout=timeout)
    assert result.code == 0, f"nas {' '.join(map(str, argv))}\n{result.out}\n{result.err}"
    return result.out


def _refused(nas, folder: Path, *argv) -> str:
    """The command exits 2 with one line on stderr; returns that line."""
    result = nas.run([str(a) for a in argv], folder)
    assert result.code == 2, f"nas {' '.join(map(str, argv))}: {result.code}\n{result.err}"
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


EXTRACT = ("extract", "--run", "run", "--device", "a.json", "--latency-ms", "1000")


def _split_accuracy(out: str) -> float:
    (line,) = [line for line in out.splitlines() if line.startswith("accuracy on test split")]
    return float(line.split(":")[1].split()[0])


def _test_images(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The run's test split before normalisation (what a user's image files hold)."""
    from nas.train.data import load_raw_split

    x, y, _ = load_raw_split("digits", "test", train_limit=160, eval_limit=40)
    return x, y


def test_onnx_card_is_an_input_contract_that_predict_and_its_snippet_follow(nas, world):
    out = _ok(nas, world, *EXTRACT, "--format", "onnx", "--out", "m.onnx")
    card = json.loads((world / "m.onnx.card.json").read_text())
    derived = __import__("yaml").safe_load((world / "run/config.yaml").read_text())["derived"]
    spec = card["input"]
    resolution = card["arch"]["resolution"]
    assert spec["mean"] == derived["preprocessing"]["mean"]
    assert spec["std"] == derived["preprocessing"]["std"]
    assert spec["shape"] == ["batch", 1, resolution, resolution]  # dynamic batch by default
    assert spec["layout"] == "NCHW" and spec["dtype"] == "float32" and spec["color"] == "L"
    assert card["classes"] == [str(c) for c in range(10)]
    assert card["runtime"]["opset"] == "17" and card["runtime"]["onnxruntime"]
    fp32 = card["deployed"]["fp32"]
    assert fp32["max_abs_diff_vs_pytorch"] < 1e-4 and fp32["latency_ms"]["min_ms"] > 0
    assert fp32["test_top1"] == card["accuracy"]["test_top1"]
    assert "fp32: test top-1" in out

    # Any batch size runs (the ONNX input has a dynamic batch axis).
    import onnxruntime as ort

    session = ort.InferenceSession(str(world / "m.onnx"))
    x = np.random.default_rng(0).standard_normal((4, 1, resolution, resolution), np.float32)
    assert session.run(None, {"image": x})[0].shape == (4, 10)

    # nas predict on the run's test split gives the card's accuracy ...
    predicted = _ok(nas, world, "predict", "m.onnx", "--split", "test")
    assert _split_accuracy(predicted) == pytest.approx(fp32["test_top1"])

    # ... and on PNG files of those images the classes the same images give from an .npz.
    from PIL import Image

    images, labels = _test_images(world)
    pngs = []
    for i in range(5):
        path = world / f"digit{i}.png"
        Image.fromarray(np.round(images[i, :, :, 0] * 255).astype(np.uint8), "L").save(path)
        pngs.append(path)
    np.savez(world / "digits.npz", x=images[:5], y=labels[:5])
    by_file = _ok(
        nas, world, "predict", "m.onnx", *[p.name for p in pngs], "--top", "1"
    ).splitlines()
    by_npz = _ok(nas, world, "predict", "m.onnx", "digits.npz", "--top", "1").splitlines()
    top_file = [line.split(": ")[1].split(" (")[0] for line in by_file[:5]]
    top_npz = [line.split(": ")[1].split(" (")[0] for line in by_npz[:5]]
    assert top_file == top_npz
    assert by_npz[-1].startswith("accuracy on digits.npz:")

    # The card's snippet, run as a standalone script, prints the class nas predict prints.
    (world / "snippet.py").write_text(card["snippet"])
    done = subprocess.run(
        [sys.executable, "snippet.py", pngs[0].name],
        cwd=world,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == top_file[0]


def test_onnx_int8_keeps_sensitive_blocks_float_and_states_both_precisions(nas, world):
    """--quantize int8 --max-drop: ONNX Runtime static QDQ, a per-block sensitivity pass with its
    plot, fp32 and int8 accuracy and latency measured; nas predict reproduces the int8 figure."""
    out = _ok(
        nas,
        world,
        *EXTRACT,
        *["--format", "onnx", "--quantize", "int8", "--max-drop", "0", "--calib-images", "32"],
    )
    model = world / "run/models/a-1000ms-int8.onnx"  # the default path names the precision
    assert f"model: {model}" in out or "model: run/models/a-1000ms-int8.onnx" in out
    card = json.loads(Path(f"{model}.card.json").read_text())
    assert card["precision"] == "int8"
    quantization = card["quantization"]
    assert "QDQ" in quantization["scheme"] and quantization["calibration_images"] == 32
    sensitivity = quantization["sensitivity"]
    from nas.arch import Arch
    from nas.export.kinds import block_kinds
    from nas.space import SearchSpace

    space = SearchSpace.from_dict(
        json.loads((world / "a.json").read_text())["space"]["declaration"]
    )
    kinds = block_kinds(space, Arch.from_dict(card["arch"]))
    # every block quantized alone, named by its kind, in model order
    assert [(b["block"], b["kind"]) for b in sensitivity["per_block"]] == kinds
    assert sensitivity["final_drop_points"] <= 0 + 1e-9  # --max-drop 0, on the validation split
    assert (model.parent / sensitivity["plot"]).read_bytes()[:4] == b"\x89PNG"
    for precision in ("fp32", "int8"):
        part = card["deployed"][precision]
        assert 0 <= part["test_top1"] <= 1 and part["latency_ms"]["min_ms"] > 0
    assert card["deployed"]["fp32"]["max_abs_diff_vs_pytorch"] < 1e-4
    assert "int8 sensitivity:" in out
    predicted = _ok(nas, world, "predict", model, "--split", "test")
    assert _split_accuracy(predicted) == pytest.approx(card["deployed"]["int8"]["test_top1"])


@pytest.mark.slow  # two ExecuTorch lowerings: about 4 minutes on two busy cores
def test_executorch_int8_pte_runs_here_with_its_card_accuracy(nas, world):
    """The deployment path of a phone: an XNNPACK-delegated int8 .pte with fp32 and int8
    accuracy and latency in its card; nas predict runs it and gets the card's accuracy."""
    out = _ok(
        nas,
        world,
        *EXTRACT,
        *["--format", "executorch", "--quantize", "int8", "--calib-images", "16"],
        *["--out", "m.pte"],
    )
    card = json.loads((world / "m.pte.card.json").read_text())
    resolution = card["arch"]["resolution"]
    assert card["input"]["shape"] == [1, 1, resolution, resolution]  # .pte: fixed batch
    assert card["runtime"]["delegate"] == "XNNPACK" and card["runtime"]["executorch"]
    assert "XNNPACKQuantizer" in card["quantization"]["scheme"]
    fp32, int8 = card["deployed"]["fp32"], card["deployed"]["int8"]
    assert fp32["max_abs_diff_vs_pytorch"] < 1e-4
    assert fp32["latency_ms"]["min_ms"] > 0 and int8["latency_ms"]["min_ms"] > 0
    assert "int8: test top-1" in out
    predicted = _ok(nas, world, "predict", "m.pte", "--split", "test")
    assert _split_accuracy(predicted) == pytest.approx(int8["test_top1"])


def test_tflite_file_runs_here_with_its_card_accuracy(nas, world):
    _ok(nas, world, *EXTRACT, "--format", "tflite", "--out", "m.tflite", "--batch", "2")
    card = json.loads((world / "m.tflite.card.json").read_text())
    assert card["input"]["shape"][0] == 2 and card["runtime"]["ai-edge-litert"]
    fp32 = card["deployed"]["fp32"]
    assert fp32["max_abs_diff_vs_pytorch"] < 1e-4
    predicted = _ok(nas, world, "predict", "m.tflite", "--split", "test")
    assert _split_accuracy(predicted) == pytest.approx(fp32["test_top1"])


@pytest.mark.slow  # a LiteRT int8 conversion and its measurements: about a minute on two cores
def test_int8_tflite_card_states_the_files_integer_input_and_its_snippet_feeds_it(nas, world):
    """A fully int8 .tflite takes integer tensors: the card says so (dtype, scale, zero point),
    nas predict reproduces the card's int8 accuracy, and the card's snippet quantizes its input
    as the card says and prints the class nas predict prints."""
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    _ok(
        nas,
        world,
        *EXTRACT,
        *["--format", "tflite", "--quantize", "int8", "--calib-images", "16", "--out", "q.tflite"],
    )
    card = json.loads((world / "q.tflite.card.json").read_text())
    interpreter = Interpreter(model_path=str(world / "q.tflite"))
    (details,) = interpreter.get_input_details()
    assert card["input"]["dtype"] == np.dtype(details["dtype"]).name
    if details["dtype"] != np.float32:
        scale, zero = details["quantization"]
        assert card["input"]["quantization"]["scale"] == pytest.approx(scale)
        assert card["input"]["quantization"]["zero_point"] == zero
    int8 = card["deployed"]["int8"]
    predicted = _ok(nas, world, "predict", "q.tflite", "--split", "test")
    assert _split_accuracy(predicted) == pytest.approx(int8["test_top1"])

    images, _ = _test_images(world)
    Image.fromarray(np.round(images[0, :, :, 0] * 255).astype(np.uint8), "L").save(world / "d.png")
    by_predict = _ok(nas, world, "predict", "q.tflite", "d.png", "--top", "1").splitlines()[0]
    (world / "snippet.py").write_text(card["snippet"])
    done = subprocess.run(
        [sys.executable, "snippet.py", "d.png"], cwd=world, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == by_predict.split(": ")[1].split(" (")[0]


def test_deployment_bad_input_is_one_line_and_exit_2(nas, world):
    assert "torchscript" in _refused(
        nas, world, *EXTRACT, "--format", "torchscript", "--quantize", "int8", "--out", "m.ts"
    )
    assert "--run" in _refused(
        nas, world, "extract", "--arch", "a.json", "--quantize", "int8", "--out", "m.onnx"
    )
    assert "--max-drop" in _refused(nas, world, *EXTRACT, "--max-drop", "1", "--out", "m.onnx")
    assert "--calib-images" in _refused(
        nas, world, *EXTRACT, "--quantize", "int8", "--calib-images", "0", "--out", "m.onnx"
    )
    assert not list(world.glob("m.*"))  # nothing written
    (world / "model.onnx").write_bytes(b"\x00garbage")
    assert "card" in _refused(nas, world, "predict", "model.onnx", "x.png")
    (world / "model.onnx.card.json").write_bytes(b"\x80\x02binary pickle\x00")
    assert "model.onnx.card.json" in _refused(nas, world, "predict", "model.onnx", "x.png")
    assert "suffix" in _refused(nas, world, "predict", "model.bin", "x.png")


def test_a_missing_runtime_names_the_extra_to_install():
    from nas.runtimes import MissingRuntimeError, require

    with pytest.raises(MissingRuntimeError, match=r"pip install -e '\.\[deploy\]'"):
        require("no_such_runtime_module")


MEASURE_SMALL = [
    "--space",
    "tiny.yaml",
    "--resolutions",
    "8",
    "--warmup",
    "1",
    "--repeats",
    "3",
    "--passes",
    "1",
    "--min-time-ms",
    "0",
    "--min-span-ms",
    "0",
    "--models",
    "1",
    "--max-exact",
    "0",
    "--prior-per-kind",
    "1",
    "--adaptive-rounds",
    "0",
]


def _measure_int8(nas, tiny_world, folder: Path, backend: str) -> dict:
    shutil.copy(tiny_world.space, folder / "tiny.yaml")
    argv = ["device", "measure", "--backend", backend, *MEASURE_SMALL, "--out", "int8.json"]
    _ok(nas, folder, *argv, "--precision", "int8")
    profile = json.loads((folder / "int8.json").read_text())
    assert profile["settings"]["precision"] == "int8" and profile["device"].endswith("/ int8")
    assert profile["environment"]["precision"] == "int8" and profile["models"]
    # the profile resumes only at its precision
    assert "precision" in _refused(nas, folder, *argv, "--precision", "fp32")
    return profile


def test_an_int8_onnxruntime_profile_records_its_precision(nas, tiny_world, tmp_path):
    _measure_int8(nas, tiny_world, tmp_path, "onnxruntime")


@pytest.mark.slow  # every kernel lowered twice (fp32 graph, then int8): minutes on two cores
def test_an_int8_executorch_profile_records_its_precision(nas, tiny_world, tmp_path):
    profile = _measure_int8(nas, tiny_world, tmp_path, "executorch")
    assert profile["environment"]["delegate"] == "XNNPACK"


@pytest.mark.slow  # every kernel converted twice (fp32 graph, then int8): minutes on two cores
def test_an_int8_tflite_profile_records_its_precision(nas, tiny_world, tmp_path):
    profile = _measure_int8(nas, tiny_world, tmp_path, "tflite")
    assert profile["environment"]["delegate"] == "XNNPACK"
    assert profile["environment"]["litert-torch"] and profile["environment"]["ai-edge-litert"]


@pytest.mark.slow  # a profile and a validation converted kernel by kernel: minutes on two cores
def test_a_tflite_profile_is_measured_and_validated_through_the_cli(nas, tiny_world, tmp_path):
    shutil.copy(tiny_world.space, tmp_path / "tiny.yaml")
    measure = ["device", "measure", "--backend", "tflite", *MEASURE_SMALL, "--out", "t.json"]
    _ok(nas, tmp_path, *measure, "--jobs", "2")
    profile = json.loads((tmp_path / "t.json").read_text())
    assert profile["backend"] == "tflite" and profile["device"].endswith("/ tflite / 1 thread(s)")
    assert profile["kernels"] and all(k["ms"] > 0 for k in profile["kernels"])
    out = _ok(nas, tmp_path, "device", "validate", "--profile", "t.json", "--n", "3", "--out", "v")
    assert "3 subnets" in out and (tmp_path / "v/report.json").is_file()


def test_tflite_backend_times_the_module_it_was_given():
    """The ``tflite`` backend's runner invokes the converted module with the given inputs in
    the module's argument order (inputs of three shapes), and computes what torch computes."""
    import torch

    from predictors.backends import get_backend

    class Three(torch.nn.Module):
        def forward(self, a, b, c):
            return a @ b + c

    inputs = (torch.randn(1, 3, 5), torch.randn(1, 5, 2), torch.randn(1, 3, 2))
    runner = get_backend("tflite").prepare(Three().eval(), inputs)
    interpreter = runner()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, Three()(*inputs).numpy(), atol=1e-5)


def test_search_reports_the_int8_accuracy_of_its_winners_measured_once(nas, world):
    """--quantized-accuracy: the search ranks by fp32, then the shortlist of feasible winners is
    measured in int8 (ONNX Runtime QDQ) on the validation split, cached in the run folder."""
    from nas.export.quantized_accuracy import CACHE, SHORTLIST

    search = [
        *["search", "--run", "run", "--device", "a.json", "--latency-ms", "1000"],
        *["--evaluations", "8", "--batch-size", "4", "--name", "base", "--seed", "0"],
        "--quantized-accuracy",
    ]
    out = _ok(nas, world, *search)
    report = json.loads((world / "run/search/base/results.json").read_text())
    section = report["quantized_accuracy"]
    shortlist = section["shortlist"]
    history = [json.loads(line) for line in (world / "run/search/base/history.jsonl").open()]
    assert 1 <= len(shortlist) <= SHORTLIST and "QDQ" in section["scheme"]
    assert len({json.dumps(r["arch"], sort_keys=True) for r in shortlist}) == len(shortlist)
    int8 = [r["val_top1_int8"] for r in shortlist]
    assert int8 == sorted(int8, reverse=True) and all(0 <= v <= 1 for v in int8)
    fp32 = sorted((r["val_top1_fp32"] for r in shortlist), reverse=True)
    feasible = {json.dumps(e["arch"], sort_keys=True): e for e in history if e["feasible"]}
    evaluated = sorted((e["objectives"]["val_top1"] for e in feasible.values()), reverse=True)
    assert fp32 == evaluated[: len(fp32)]  # the most accurate feasible archs in fp32
    assert "int8 accuracy of the" in out
    cached = (world / "run" / CACHE).read_text().splitlines()
    assert len(cached) == len(shortlist)
    _ok(nas, world, *search)  # again: every int8 accuracy comes from the cache
    assert (world / "run" / CACHE).read_text().splitlines() == cached


def test_extract_of_an_arch_with_a_fixed_batch(nas, tiny_world, tmp_path):
    """--arch: ONNX with a dynamic batch by default, --batch fixes it; --batch 0 is refused."""
    import onnxruntime as ort

    shutil.copy(tiny_world.space, tmp_path / "tiny.yaml")
    shutil.copy(tiny_world.samples, tmp_path / "samples.jsonl")
    arch = ["extract", "--space", "tiny.yaml", "--arch", "samples.jsonl:1"]
    _ok(nas, tmp_path, *arch, "--out", "any.onnx")
    _ok(nas, tmp_path, *arch, "--out", "four.onnx", "--batch", "4")
    (dynamic,) = ort.InferenceSession(str(tmp_path / "any.onnx")).get_inputs()
    (fixed,) = ort.InferenceSession(str(tmp_path / "four.onnx")).get_inputs()
    assert not isinstance(dynamic.shape[0], int) and fixed.shape[0] == 4
    assert "--batch" in _refused(nas, tmp_path, *arch, "--out", "zero.onnx", "--batch", "0")
    assert not (tmp_path / "zero.onnx").exists()
