"""A catalogue of bad inputs and faults, each given to the `nas` command as a user would.

For every case: exit code 2, one line on stderr that names the input and what would be valid, no
traceback, no temporary file left, and every file that existed before (the run folder, profiles,
the case's own inputs) byte-identical afterwards. Each case runs in a process of its own
(:class:`cli_runner.CliRunner`) in a fresh folder; inputs that a case changes are copies.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cli_runner import CliRunner
from conftest import TINY_SPACE

from nas.supernet.checkpoint import read_checkpoint


@dataclass
class Bad:
    """A command given bad input: what the one-line message must mention (the input, and what
    would be valid), paths it may create (a fresh run folder), standard input, a file size
    limit (bytes: larger writes fail as on a full disk)."""

    argv: list[str]
    mentions: list[str]
    fresh: list[str] = field(default_factory=list)
    stdin: str | None = None
    file_size_limit: int | None = None


@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    make: Callable  # (world, folder) -> Bad


CASES: list[Case] = []


def case(kind: str):
    def register(make):
        CASES.append(Case(kind, make.__name__.removeprefix("case_"), make))
        return make

    return register


# --------------------------------------------------------------------- helpers


def _copy_run(w, d: Path) -> Path:
    return Path(shutil.copytree(w.run, d / "run"))


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _profile(w, d: Path, change: Callable[[dict], None], name: str = "p.json") -> Path:
    data = json.loads(w.profile_a.read_text())
    change(data)
    return _write(d / name, json.dumps(data, indent=1))


def _arch(w) -> dict:
    return json.loads(w.samples.read_text().splitlines()[0])["arch"]


def _search(run: Path | str, profile: Path | str, *extra: str) -> list[str]:
    return ["search", "--run", str(run), "--device", str(profile), "--latency-ms", "1000", *extra]


def _base_search(run: Path) -> list[str]:
    """The fixture's search `base` again (it resumes when its folder is sound)."""
    return _search(run, "a.json", "--evaluations", "8", "--batch-size", "4", "--name", "base")


def _extract(run: Path | str, profile: Path | str = "a.json", *extra: str) -> list[str]:
    return ["extract", "--run", str(run), "--device", str(profile), "--latency-ms", "1000", *extra]


TRAIN = [
    "train", "--space", "tiny.yaml", "--epochs", "1", "--train-limit", "160", "--eval-limit", "40",
    "--batch-size", "32", "--calib-images", "32", "--levels", "2", "--pool-draws", "20",
    "--pool-size", "5", "--sampler", "uniform", "--threads", "1", "--no-progress",
]  # fmt: skip


def _train(out: Path | str, *extra: str) -> list[str]:
    return [*TRAIN, "--out", str(out), *extra]


def _npz(path: Path, **arrays) -> Path:
    rng = np.random.default_rng(0)
    arrays.setdefault("x", rng.integers(0, 255, (120, 8, 8, 3), dtype=np.uint8))
    arrays.setdefault("y", np.arange(120) % 4)
    np.savez(path, **arrays)
    return path


BOMB = """\
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
description: [*g, *g, *g, *g, *g, *g, *g, *g, *g]
"""

# --------------------------------------------------------------------- files that are not what
# they claim: arch files


@case("files: arch")
def case_binary_arch(w, d):
    _write(d / "arch.json", bytes(range(256)) * 4)
    return Bad(["inspect", "arch.json"], ["arch.json", "binary", "expected an arch"])


@case("files: arch")
def case_pickled_arch(w, d):
    _write(d / "arch.json", pickle.dumps(_arch(w), protocol=4))
    return Bad(["inspect", "arch.json"], ["arch.json", "expected an arch"])


@case("files: arch")
def case_deeply_nested_arch(w, d):
    _write(d / "arch.json", "[" * 200_000 + "]" * 200_000)
    return Bad(["inspect", "arch.json"], ["arch.json", "too deeply", "expected an arch"])


@case("files: arch")
def case_json_lines_with_a_malformed_line(w, d):
    lines = w.samples.read_text().splitlines()
    lines[1] = lines[1][:40]
    _write(d / "archs.jsonl", "\n".join(lines) + "\n")
    return Bad(["inspect", "archs.jsonl:1"], ["archs.jsonl:2", "not valid JSON", "expected"])


@case("files: arch")
def case_empty_arch_file(w, d):
    _write(d / "arch.json", "")
    return Bad(["inspect", "arch.json"], ["arch.json", "empty", "expected an arch"])


@case("files: arch")
def case_arch_that_is_an_array(w, d):
    _write(d / "arch.json", "[1, 2, 3]")
    return Bad(["inspect", "arch.json"], ["arch.json", "must be a JSON object"])


@case("files: arch")
def case_arch_without_stages(w, d):
    _write(d / "arch.json", json.dumps({k: v for k, v in _arch(w).items() if k != "stages"}))
    return Bad(["inspect", "arch.json"], ["arch.json", "stages is missing"])


@case("files: arch")
def case_arch_with_an_unknown_field(w, d):
    _write(d / "arch.json", json.dumps({**_arch(w), "depth_multiplier": 2}))
    return Bad(["inspect", "arch.json"], ["arch.json", "depth_multiplier", "allowed:"])


@case("files: arch")
def case_arch_outside_its_space(w, d):
    arch = _arch(w)
    arch["stages"][0]["width"] = 1000
    _write(d / "arch.json", json.dumps(arch))
    return Bad(["inspect", "arch.json", "--space", "tiny.yaml"], ["arch.json", "choices"])


@case("files: arch")
def case_arch_with_nan(w, d):
    _write(d / "arch.json", json.dumps({**_arch(w), "resolution": float("nan")}))
    return Bad(["inspect", "arch.json"], ["arch.json", "NaN", "expected an arch"])


@case("files: arch")
def case_line_past_the_end(w, d):
    return Bad(["inspect", str(w.samples) + ":9"], ["samples.jsonl", "line 9", "1, 2, 3"])


@case("files: arch")
def case_several_archs_without_a_line(w, d):
    return Bad(["inspect", str(w.samples)], ["samples.jsonl", "holds 3 archs", ":N"])


@case("files: arch")
def case_arch_that_is_a_folder(w, d):
    return Bad(["inspect", str(d)], [d.name, "is a folder", "expected an arch"])


@case("files: arch")
def case_missing_arch_file(w, d):
    return Bad(["inspect", "nowhere.json"], ["nowhere.json", "does not exist"])


@case("files: arch")
def case_arch_of_another_space(w, d):
    return Bad(
        ["inspect", str(w.samples) + ":1", "--space", "hybrid-tiny"],
        ["samples.jsonl:1", "'tiny-test', not 'hybrid-tiny'"],
    )


@case("files: arch")
def case_extract_a_binary_arch(w, d):
    _write(d / "arch.json", b"\x80\x04\x95garbage\x00")
    return Bad(
        ["extract", "--space", "tiny.yaml", "--arch", "arch.json", "--out", "m.onnx"],
        ["arch.json", "binary"],
    )


@case("files: arch")
def case_predict_with_a_malformed_json_line(w, d):
    _write(d / "archs.jsonl", w.samples.read_text() + '{"arch": {"space": \n')
    argv = ["device", "predict", "--profile", str(w.profile_a), "--arch", "archs.jsonl"]
    return Bad(argv, ["archs.jsonl:4", "not valid JSON"])


@case("files: arch")
def case_fixed_sampler_with_a_pickled_arch(w, d):
    _write(d / "arch.json", pickle.dumps(_arch(w), protocol=4))
    argv = _train(d / "out", "--data", "digits", "--sampler", "fixed", "--arch", "arch.json")
    return Bad(argv, ["arch.json", "expected an arch"])


# --------------------------------------------------------------------- device profiles


@case("files: profile")
def case_binary_profile(w, d):
    _write(d / "p.json", os.urandom(64) + b"\x00")
    return Bad(_search(w.run, "p.json"), ["p.json", "binary", "device profile"])


@case("files: profile")
def case_pickled_profile(w, d):
    _write(d / "p.json", pickle.dumps(json.loads(w.profile_a.read_text()), protocol=4))
    return Bad(_search(w.run, "p.json"), ["p.json", "device profile"])


@case("files: profile")
def case_deeply_nested_profile(w, d):
    _write(d / "p.json", '{"kernels": ' + "[" * 200_000 + "]" * 200_000 + "}")
    return Bad(_extract(w.run, "p.json"), ["p.json", "too deeply", "device profile"])


@case("files: profile")
def case_truncated_profile(w, d):
    text = w.profile_a.read_text()
    _write(d / "p.json", text[: len(text) // 2])
    return Bad(["device", "info", "--profile", "p.json"], ["p.json", "not valid JSON", "line"])


@case("files: profile")
def case_profile_with_a_nan_kernel_time(w, d):
    def change(p):
        p["kernels"][0]["passes"][0]["min"] = float("nan")

    _profile(w, d, change)
    return Bad(_search(w.run, "p.json"), ["p.json", "NaN", "device profile"])


@case("files: profile")
def case_profile_with_a_negative_kernel_time(w, d):
    def change(p):
        p["kernels"][3]["passes"][0]["min"] = -0.5

    _profile(w, d, change)
    return Bad(_search(w.run, "p.json"), ["p.json", "kernels[3]", "finite time >= 0"])


@case("files: profile")
def case_profile_with_a_nan_model_time(w, d):
    def change(p):
        p["models"][1]["passes"] = [dict(p["models"][1]["passes"][0], min=float("nan"))]

    _profile(w, d, change)
    return Bad(["device", "info", "--profile", "p.json"], ["p.json", "NaN"])


@case("files: profile")
def case_profile_with_a_text_time(w, d):
    def change(p):
        p["models"][0]["passes"][0]["median"] = "fast"

    _profile(w, d, change)
    return Bad(_extract(w.run, "p.json"), ["p.json", "models[0]", "times in ms"])


@case("files: profile")
def case_profile_kernel_without_kind(w, d):
    def change(p):
        del p["kernels"][5]["kind"]

    _profile(w, d, change)
    return Bad(_search(w.run, "p.json"), ["p.json", "kernels[5]", "lacks 'kind'"])


@case("files: profile")
def case_profile_of_another_space(w, d):
    return Bad(_search(w.run, w.profile_other), ["other.json", "'tiny-other'", "'tiny-test'"])


@case("files: profile")
def case_extract_with_a_profile_of_another_space(w, d):
    return Bad(_extract(w.run, w.profile_other), ["other.json", "'tiny-other'", "'tiny-test'"])


@case("files: profile")
def case_profile_of_another_declaration(w, d):
    def change(p):
        p["space"]["declaration"]["stages"][0]["widths"] = [8, 24]

    _profile(w, d, change)
    return Bad(_search(w.run, "p.json"), ["p.json", "'tiny-test'", "stages differ"])


@case("files: profile")
def case_arch_file_given_as_profile(w, d):
    _write(d / "p.json", json.dumps(_arch(w)))
    return Bad(_search(w.run, "p.json"), ["p.json", "not a device profile"])


@case("files: profile")
def case_one_device_twice(w, d):
    argv = [*_search(w.run, w.profile_a), "--device", str(w.profile_a), "--name", "twice"]
    return Bad(argv, ["a.json", "both profiles of device 'A'", "each device once"])


@case("files: profile")
def case_predict_an_arch_of_another_space(w, d):
    Path(d / "arch.json").write_text(json.dumps(_arch(w)).replace("tiny-test", "tiny-other"))
    argv = ["device", "predict", "--profile", str(w.profile_a), "--arch", "arch.json"]
    return Bad(argv, ["arch.json", "tiny-other"])


@case("files: profile")
def case_latency_levels_with_a_profile_of_another_space(w, d):
    argv = _train(d / "out", "--data", "digits", "--level-metric", "latency")
    argv += ["--device-profile", str(w.profile_other)]
    return Bad(argv, ["--device-profile", "other.json", "'tiny-other', not 'tiny-test'"])


@case("files: profile")
def case_published_table_that_is_binary(w, d):
    _write(d / "pixel4_lut.json", bytes(range(200)))
    argv = ["device", "import-table", "pixel4", "pixel4_lut.json", "--out", "p4.json"]
    return Bad(argv, ["pixel4_lut.json", "binary", "key -> ms"])


@case("files: profile")
def case_suite_with_a_binary_manifest(w, d):
    (d / "suite").mkdir()
    _write(d / "suite" / "manifest.json", pickle.dumps({"format": "suite"}, protocol=4))
    _write(d / "t.csv", "name,ms\nbaseline,0.1\n")
    argv = ["device", "import", "suite", "t.csv", "--out", "p.json"]
    return Bad(argv, ["manifest.json", "binary", "kernel suite"])


# --------------------------------------------------------------------- run folder files


@case("files: run folder")
def case_truncated_search_record(w, d):
    run = _copy_run(w, d)
    record = run / "search" / "base" / "search.json"
    record.write_text(record.read_text()[:50])
    return Bad(_base_search(run), ["search.json", "not valid JSON", "record of a search"])


@case("files: run folder")
def case_search_record_that_is_an_array(w, d):
    run = _copy_run(w, d)
    (run / "search" / "base" / "search.json").write_text("[1, 2]")
    return Bad(_base_search(run), ["search.json", "array, not an object"])


@case("files: run folder")
def case_history_line_that_is_an_array(w, d):
    run = _copy_run(w, d)
    history = run / "search" / "base" / "history.jsonl"
    lines = history.read_text().splitlines()
    lines[2] = "[1, 2, 3]"
    history.write_text("\n".join(lines) + "\n")
    return Bad(_base_search(run), ["history.jsonl:3", "not a search record", "objectives"])


@case("files: run folder")
def case_history_line_without_objectives(w, d):
    run = _copy_run(w, d)
    history = run / "search" / "base" / "history.jsonl"
    lines = history.read_text().splitlines()
    record = json.loads(lines[1])
    del record["objectives"]
    lines[1] = json.dumps(record)
    history.write_text("\n".join(lines) + "\n")
    return Bad(_extract(run), ["history.jsonl:2", "not a search record", "objectives"])


@case("files: run folder")
def case_history_line_with_a_nan_accuracy(w, d):
    run = _copy_run(w, d)
    history = run / "search" / "base" / "history.jsonl"
    lines = history.read_text().splitlines()
    record = json.loads(lines[0])
    record["objectives"]["val_top1"] = float("nan")
    lines[0] = json.dumps(record)
    history.write_text("\n".join(lines) + "\n")
    return Bad(_extract(run), ["history.jsonl:1", "val_top1", "finite number"])


@case("files: run folder")
def case_history_line_of_another_space(w, d):
    run = _copy_run(w, d)
    history = run / "search" / "base" / "history.jsonl"
    lines = history.read_text().splitlines()
    lines[3] = lines[3].replace('"width": 16', '"width": 999')
    history.write_text("\n".join(lines) + "\n")
    return Bad(_base_search(run), ["history.jsonl:4", "not an arch of space 'tiny-test'"])


@case("files: run folder")
def case_resume_from_a_best_checkpoint(w, d):
    run = _copy_run(w, d)
    shutil.copy(run / "best.pt", run / "last.pt")
    return Bad(_train(run, "--data", "digits", "--seed", "0"), ["last.pt", "not a resumable"])


@case("files: run folder")
def case_resume_from_a_checkpoint_of_another_space(w, d):
    run = _copy_run(w, d)
    payload = read_checkpoint(run / "last.pt")
    payload["space"] = {**payload["space"], "num_classes": 7}
    torch.save(payload, run / "last.pt")
    argv = _train(run, "--data", "digits", "--seed", "0")
    return Bad(argv, ["last.pt", "7 classes", "10 classes", "new --out"])


@case("files: run folder")
def case_resume_from_a_garbage_checkpoint(w, d):
    run = _copy_run(w, d)
    (run / "last.pt").write_bytes(b"\x00not a checkpoint" * 10)
    return Bad(_train(run, "--data", "digits", "--seed", "0"), ["last.pt", "not a readable"])


@case("files: run folder")
def case_run_with_a_malformed_config(w, d):
    run = _copy_run(w, d)
    (run / "config.yaml").write_text("space: tiny.yaml\ndata: [digits\nepochs: 1\n")
    return Bad(_search(run, "a.json"), ["config.yaml:", "expected a training configuration"])


@case("files: run folder")
def case_run_with_a_binary_config(w, d):
    run = _copy_run(w, d)
    (run / "config.yaml").write_bytes(pickle.dumps({"space": "tiny.yaml"}, protocol=4))
    return Bad(_extract(run), ["config.yaml", "training configuration"])


@case("files: run folder")
def case_run_with_a_corrupt_best_checkpoint(w, d):
    run = _copy_run(w, d)
    (run / "best.pt").write_bytes((run / "best.pt").read_bytes()[:5000])
    return Bad(_search(run, "a.json"), ["best.pt", "not a readable checkpoint"])


@case("files: run folder")
def case_model_file_given_as_checkpoint(w, d):
    from nas.supernet.checkpoint import CHECKPOINT_FORMAT

    _write(d / "arch.json", json.dumps(_arch(w)))
    torch.save({"format": "nas-model", "version": 1}, d / "model.pt")
    argv = ["extract", "--space", "tiny.yaml", "--arch", "arch.json", "--checkpoint", "model.pt"]
    argv += ["--out", "m.onnx"]
    return Bad(argv, ["model.pt", f"not a {CHECKPOINT_FORMAT} checkpoint"])


@case("files: run folder")
def case_search_in_a_folder_that_is_not_a_run(w, d):
    return Bad(_search(d, w.profile_a), [d.name, "not a training run", "nas train --out"])


# --------------------------------------------------------------------- numbers and options


@case("numbers")
def case_train_lr_nan(w, d):
    return Bad(_train(d / "out", "--data", "digits", "--lr", "nan"), ["--lr", "nan", "finite"])


@case("numbers")
def case_train_lr_inf(w, d):
    return Bad(_train(d / "out", "--data", "digits", "--lr", "inf"), ["--lr", "inf", "finite"])


@case("numbers")
def case_train_label_smoothing_nan(w, d):
    argv = _train(d / "out", "--data", "digits", "--label-smoothing", "nan")
    return Bad(argv, ["--label-smoothing", "finite"])


@case("numbers")
def case_train_config_with_a_nan(w, d):
    _write(d / "c.yaml", "lr: .nan\n")
    argv = _train(d / "out", "--data", "digits", "--config", "c.yaml")
    return Bad(argv, ["--lr", "nan", "finite"])


@case("numbers")
def case_search_budget_nan(w, d):
    argv = ["search", "--run", str(w.run), "--device", str(w.profile_a), "--latency-ms", "nan"]
    return Bad(argv, ["--latency-ms", "nan", "finite"])


@case("numbers")
def case_search_budget_inf(w, d):
    argv = ["search", "--run", str(w.run), "--device", str(w.profile_a), "--latency-ms", "inf"]
    return Bad(argv, ["--latency-ms", "inf", "finite"])


@case("numbers")
def case_search_budget_negative(w, d):
    argv = ["search", "--run", str(w.run), "--device", str(w.profile_a), "--latency-ms", "-1"]
    return Bad(argv, ["--latency-ms", "-1", "> 0"])


@case("numbers")
def case_extract_budget_nan(w, d):
    argv = ["extract", "--run", str(w.run), "--device", str(w.profile_a), "--latency-ms", "NaN"]
    return Bad(argv, ["--latency-ms", "NaN", "finite"])


@case("numbers")
def case_search_macs_limit_nan(w, d):
    return Bad(_search(w.run, w.profile_a, "--macs-limit", "nan"), ["--macs-limit", "finite"])


@case("numbers")
def case_search_verify_out_of_range(w, d):
    argv = _search(w.run, w.profile_a, "--accuracy", "ridge", "--verify", "1.5")
    return Bad(argv, ["--verify", "1.5", "[0, 1]"])


@case("numbers")
def case_measure_min_time_nan(w, d):
    argv = [
        *["device", "measure", "--backend", "torch", "--space", "tiny.yaml"],
        "--min-time-ms",
        "nan",
    ]
    return Bad([*argv, "--out", "p.json"], ["--min-time-ms", "finite"])


@case("numbers")
def case_measure_min_span_negative(w, d):
    argv = [
        *["device", "measure", "--backend", "torch", "--space", "tiny.yaml"],
        "--min-span-ms",
        "-1",
    ]
    return Bad([*argv, "--out", "p.json"], ["--min-span-ms", ">= 0"])


@case("options")
def case_sample_at_a_resolution_outside_the_space(w, d):
    argv = ["sample", "--space", "hybrid-tiny", "--resolution", "99"]
    return Bad(argv, ["--resolution 99", "[16, 24, 32]"])


@case("options")
def case_search_batch_size_zero(w, d):
    return Bad(_search(w.run, w.profile_a, "--batch-size", "0"), ["--batch-size 0", "at least 1"])


@case("options")
def case_search_no_evaluations(w, d):
    return Bad(_search(w.run, w.profile_a, "--evaluations", "0"), ["--evaluations 0", "at least"])


@case("options")
def case_budgets_that_do_not_match_the_devices(w, d):
    argv = ["search", "--run", str(w.run), "--device", "a.json", "--device", "b.json"]
    argv += ["--latency-ms", "1", "2", "3"]
    return Bad(argv, ["3 --latency-ms values for 2 --device", "one per device"])


@case("options")
def case_extract_on_cuda_without_cuda(w, d):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _write(d / "arch.json", json.dumps(_arch(w)))
    argv = [
        "extract",
        "--space",
        "tiny.yaml",
        "--arch",
        "arch.json",
        "--out",
        "m.onnx",
        "--torch-device",
        "cuda",
    ]
    return Bad(argv, ["--torch-device cuda", "CUDA is not available", "cpu"])


@case("options")
def case_search_on_an_unknown_device(w, d):
    argv = _search(w.run, w.profile_a, "--torch-device", "tpu")
    return Bad(argv, ["--torch-device 'tpu'", "choices: cpu, cuda"])


@case("options")
def case_measure_with_no_workers(w, d):
    argv = ["device", "measure", "--backend", "torch", "--space", "tiny.yaml", "--jobs", "0"]
    return Bad([*argv, "--out", "p.json"], ["--jobs 0", "at least 1"])


@case("options")
def case_validate_with_no_workers(w, d):
    return Bad(
        ["device", "validate", "--profile", "a.json", "--jobs", "0"], ["--jobs 0", "at least 1"]
    )


@case("options")
def case_sample_no_archs(w, d):
    return Bad(["sample", "--space", "hybrid-tiny", "-n", "0"], ["-n 0", "at least 1"])


@case("options")
def case_extract_unknown_format(w, d):
    return Bad(_extract(w.run, w.profile_a, "--format", "coreml"), ["'coreml'", "onnx"])


@case("options")
def case_unknown_option(w, d):
    return Bad([*_search(w.run, "a.json"), "--budget", "3"], ["--budget", "--help"])


@case("options")
def case_ray_address_without_workers(w, d):
    argv = _search(w.run, w.profile_a, "--ray-address", "127.0.0.1:1")
    return Bad(argv, ["--ray-address", "--workers N > 1"])


@case("options")
def case_train_ray_address_without_workers(w, d):
    argv = _train(d / "out", "--data", "digits", "--ray-address", "127.0.0.1:1")
    return Bad(argv, ["--ray-address", "--workers N > 1"])


@case("seed")
def case_search_resumed_with_another_seed(w, d):
    run = _copy_run(w, d)
    return Bad([*_base_search(run), "--seed", "1"], ["base", "seed 0", "same settings"])


# --------------------------------------------------------------------- training faults


@case("training")
def case_loss_becomes_nan(w, d):
    argv = _train(d / "out", "--data", "digits", "--lr", "1e9", "--grad-clip", "0", "--epochs", "3")
    return Bad(argv, ["diverged", "step", "lower --lr (now 1e+09)", "--grad-clip"], fresh=["out"])


# --------------------------------------------------------------------- data


@case("data")
def case_test_class_absent_from_training(w, d):
    _npz(d / "data.npz", x_test=np.zeros((8, 8, 8, 3)), y_test=np.full(8, 9))
    return Bad(_train(d / "out", "--data", "data.npz"), ["data.npz", "y_test", "[9]", "lacks"])


@case("data")
def case_nan_labels(w, d):
    y = (np.arange(120) % 4).astype(float)
    y[17] = np.nan
    _npz(d / "data.npz", y=y)
    return Bad(_train(d / "out", "--data", "data.npz"), ["data.npz", "y", "index 17", "integer"])


@case("data")
def case_fractional_labels(w, d):
    _npz(d / "data.npz", y=np.arange(120) % 4 + 0.5)
    return Bad(_train(d / "out", "--data", "data.npz"), ["data.npz", "whole numbers"])


@case("data")
def case_nan_pixels(w, d):
    x = np.random.default_rng(0).random((120, 8, 8, 3))
    x[3, 2, 1, 0] = np.nan
    _npz(d / "data.npz", x=x)
    return Bad(_train(d / "out", "--data", "data.npz"), ["data.npz", "NaN", "finite"])


@case("data")
def case_validation_class_absent_from_training(w, d):
    _npz(
        d / "data.npz",
        x_val=np.zeros((4, 8, 8, 3)),
        y_val=np.full(4, 5),
        x_test=np.zeros((4, 8, 8, 3)),
        y_test=np.zeros(4),
    )
    return Bad(_train(d / "out", "--data", "data.npz"), ["data.npz", "y_val", "[5]"])


@case("data")
def case_search_with_data_of_other_channels(w, d):
    run = _copy_run(w, d)
    _npz(d / "rgb.npz", y=np.arange(120) % 10)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"] = str(d / "rgb.npz")
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return Bad(_search(run, "a.json"), ["1-channel", "3 channel(s)", "rgb.npz"])


# --------------------------------------------------------------------- YAML


@case("yaml")
def case_space_alias_bomb(w, d):
    _write(d / "bomb.yaml", BOMB + yaml.safe_dump(TINY_SPACE))
    return Bad(["sample", "--space", "bomb.yaml"], ["bomb.yaml:1:4", "aliases", "not allowed"])


@case("yaml")
def case_train_with_an_alias_bomb_space(w, d):
    _write(d / "bomb.yaml", BOMB + yaml.safe_dump(TINY_SPACE))
    argv = ["train", "--space", "bomb.yaml", "--data", "digits", "--out", "out"]
    return Bad(argv, ["bomb.yaml", "anchors and aliases"])


@case("yaml")
def case_config_alias_bomb(w, d):
    _write(d / "c.yaml", BOMB)
    argv = _train(d / "out", "--data", "digits", "--config", "c.yaml")
    return Bad(argv, ["c.yaml:1:4", "anchors and aliases"])


@case("yaml")
def case_space_syntax_error(w, d):
    _write(d / "s.yaml", yaml.safe_dump(TINY_SPACE).replace("name: tiny-test", "name: [tiny"))
    return Bad(["inspect", str(w.samples) + ":1", "--space", "s.yaml"], ["s.yaml:", "search space"])


@case("yaml")
def case_config_syntax_error(w, d):
    _write(d / "c.yaml", "lr: 0.1\n  epochs: 2\n")
    return Bad(_train(d / "out", "--config", "c.yaml"), ["c.yaml:2:", "training configuration"])


@case("yaml")
def case_space_that_is_binary(w, d):
    _write(d / "s.yaml", bytes(range(256)))
    return Bad(["sample", "--space", "s.yaml"], ["s.yaml", "binary", "search space"])


@case("yaml")
def case_space_that_is_a_list(w, d):
    _write(d / "s.yaml", "- 1\n- 2\n")
    return Bad(["sample", "--space", "s.yaml"], ["s.yaml", "must be a mapping"])


@case("yaml")
def case_config_option_of_the_wrong_type(w, d):
    _write(d / "c.yaml", "epochs: many\n")
    return Bad(_train(d / "out", "--config", "c.yaml"), ["epochs = 'many'", "integer"])


@case("yaml")
def case_config_unknown_option(w, d):
    _write(d / "c.yaml", "learning_rate: 0.1\n")
    return Bad(_train(d / "out", "--config", "c.yaml"), ["c.yaml", "learning_rate"])


# --------------------------------------------------------------------- writing


@case("writing")
def case_model_under_a_regular_file(w, d):
    _write(d / "arch.json", json.dumps(_arch(w)))
    _write(d / "file", "")
    argv = ["extract", "--space", "tiny.yaml", "--arch", "arch.json", "--out", "file/m.onnx"]
    return Bad(argv, ["file/m.onnx", "file is a file, not a folder"])


def _extract_arch(w, d: Path, out: str, *extra: str) -> list[str]:
    """`nas extract` of one sampled arch with the run's weights into ``out``."""
    _write(d / "arch.json", json.dumps(_arch(w)))
    argv = ["extract", "--space", "tiny.yaml", "--arch", "arch.json", "--out", out]
    return [*argv, "--checkpoint", str(w.run / "best.pt"), *extra]


@case("writing")
def case_model_on_a_full_disk(w, d):
    argv = _extract_arch(w, d, "m.pt", "--format", "pt")
    return Bad(argv, ["cannot write m.pt", "too large"], file_size_limit=3000)


@case("writing")
def case_onnx_model_on_a_full_disk(w, d):
    argv = _extract_arch(w, d, "m.onnx")
    return Bad(argv, ["cannot write m.onnx", "too large"], file_size_limit=3000)


@case("writing")
def case_torchscript_model_on_a_full_disk(w, d):
    argv = _extract_arch(w, d, "m.ts", "--format", "torchscript")
    return Bad(argv, ["cannot write m.ts", "too large"], file_size_limit=3000)


@case("writing")
def case_model_in_a_place_nobody_may_write(w, d):
    argv = _extract_arch(w, d, "/proc/nas-model.onnx")
    return Bad(argv, ["cannot write /proc/nas-model.onnx"])


@case("writing")
def case_train_into_a_path_under_a_file(w, d):
    _write(d / "file", "")
    return Bad(_train("file/run", "--data", "digits"), ["file/run", "file is a file"])


@case("writing")
def case_train_into_a_file(w, d):
    _write(d / "run", "not a folder")
    return Bad(_train("run", "--data", "digits"), ["run", "a file of that name exists"])


@case("writing")
def case_train_on_a_full_disk(w, d):
    argv = _train("out", "--data", "digits")
    return Bad(argv, ["cannot write", "levels.json", "too large"], ["out"], file_size_limit=2000)


@case("writing")
def case_search_folder_under_a_file(w, d):
    run = _copy_run(w, d)
    shutil.rmtree(run / "search")
    (run / "search").write_text("")
    return Bad(
        _search(run, "a.json", "--evaluations", "4"),
        ["guided-a-1000ms", "search is a file"],  # the default algorithm
    )


@case("writing")
def case_models_folder_under_a_file(w, d):
    run = _copy_run(w, d)
    (run / "models").write_text("")
    return Bad(_extract(run, "a.json", "--no-measure"), ["models", "a file of that name"])


@case("writing")
def case_profile_under_a_file(w, d):
    _write(d / "file", "")
    argv = ["device", "measure", "--backend", "torch", "--space", "tiny.yaml"]
    return Bad([*argv, "--out", "file/p.json"], ["file/p.json", "file is a file, not a folder"])


# --------------------------------------------------------------------- running the catalogue


@pytest.fixture(scope="module")
def runner():
    server = CliRunner()
    yield server
    server.close()


def _case_folder(w, folder: Path) -> Path:
    """A fresh folder holding the space files and profiles, as a user's working folder does."""
    folder.mkdir()
    for path in (w.space, w.other_space, w.profile_a, w.profile_b):
        shutil.copy(path, folder / path.name)
    return folder


def _files(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots``."""
    out = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_the_catalogue_covers_every_class():
    kinds = {c.kind.split(":")[0] for c in CASES}
    assert kinds == {"files", "numbers", "options", "seed", "training", "data", "yaml", "writing"}
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("bad", CASES, ids=lambda c: c.name)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(bad, tiny_world, runner, tmp_path):
    folder = _case_folder(tiny_world, tmp_path / bad.name)
    given = bad.make(tiny_world, folder)
    before = _files(tiny_world.root, folder)
    result = runner.run(
        given.argv,
        folder,
        stdin=given.stdin,
        file_size_limit=given.file_size_limit,
    )
    err = result.err.strip()
    assert result.code == 2, f"exit {result.code}:\n{result.err}"
    assert "Traceback" not in result.err
    lines = err.splitlines()
    assert len(lines) == 1, f"{len(lines)} lines:\n{err}"
    assert lines[0].startswith("nas") and " error: " in lines[0]
    for text in given.mentions:
        assert text in lines[0], f"{text!r} not in: {lines[0]}"
    after = _files(tiny_world.root, folder)
    fresh = [str(folder / f) for f in given.fresh]
    new = {p for p in after.keys() - before.keys() if not p.startswith(tuple(fresh))}
    assert not new, f"files appeared: {sorted(new)}"
    changed = [p for p in before if after.get(p) != before[p]]
    assert not changed, f"files changed or vanished: {changed}"
    assert not [p for p in after if p.endswith(".tmp")], "a temporary file was left"
    for checkpoint in (folder / f for f in given.fresh):
        for path in checkpoint.rglob("*.pt") if checkpoint.is_dir() else []:
            for name, tensor in read_checkpoint(path)["model"].items():
                assert torch.isfinite(tensor).all(), f"{path}: {name} is not finite"


def test_the_nas_executable_answers_as_the_catalogue_runner(tiny_world, tmp_path):
    """The catalogue runs `nas.cli.main` in forked processes; the console command itself gives
    the same exit code and line (for cases that fail before any heavy import)."""
    by_name = {c.name: c for c in CASES}
    for name in ("arch_with_an_unknown_field", "search_budget_nan", "space_alias_bomb"):
        folder = _case_folder(tiny_world, tmp_path / name)
        given = by_name[name].make(tiny_world, folder)
        done = subprocess.run(
            [sys.executable, "-m", "nas.cli", *given.argv],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert all(text in line for text in given.mentions), line
