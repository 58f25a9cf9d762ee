"""Paths a user takes on day one, through the `nas` command: extraction for several devices,
device profiles of another space, archs as `nas sample` writes them (the README's own arch
commands run in ``test_readme``), and Ray clusters that are already running."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import CliRunner

import search_spaces
from nas.arch import Arch


@pytest.fixture(scope="module")
def runner():
    server = CliRunner()
    yield server
    server.close()


def _folder(world, folder: Path) -> Path:
    """A user's working folder: a copy of the run, the space files and the profiles."""
    shutil.copytree(world.run, folder / "run")
    for path in (world.space, world.other_space, world.profile_a, world.profile_b):
        shutil.copy(path, folder / path.name)
    shutil.copy(world.profile_other, folder / "other.json")
    return folder


def _one_error_line(result) -> str:
    assert result.code == 2, f"exit {result.code}: {result.err}"
    assert "Traceback" not in result.err
    (line,) = result.err.strip().splitlines()
    return line


# --------------------------------------------------------------------- several devices


def _budget_that_misses(folder: Path, shipped: dict) -> float:
    """A latency budget on device B that some searched archs meet but the arch ``shipped`` for
    device A alone does not (the largest latency on B below the shipped arch's)."""
    from nas.deploy import Device

    space = search_spaces.get(str(folder / "tiny.yaml"))
    history = (folder / "run/search/base/history.jsonl").read_text().splitlines()
    archs = [Arch.from_dict(json.loads(line)["arch"]) for line in history]
    device = Device.open(folder / "b.json", space)
    shipped_ms = float(device.latency([Arch.from_dict(shipped)])[0])
    below = [float(t) for t in device.latency(archs) if t < shipped_ms]
    assert below, "the arch shipped for device A is the fastest on B: no budget can show this"
    return max(below)


def test_extraction_for_two_devices_meets_both_budgets_and_keeps_the_single_device_model(
    tiny_world, runner, tmp_path
):
    folder = _folder(tiny_world, tmp_path)
    single = runner.run(
        ["extract", "--run", "run", "--device", "a.json", "--latency-ms", "1000", "--no-measure"],
        folder,
    )
    assert single.code == 0, single.err
    models = folder / "run" / "models"
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    assert set(before) == {"a-1000ms.onnx", "a-1000ms.onnx.card.json"}
    shipped = json.loads(before["a-1000ms.onnx.card.json"])["arch"]
    budget_b = _budget_that_misses(folder, shipped)

    both = "extract --run run --device a.json --device b.json --no-measure --latency-ms 1000"
    result = runner.run([*both.split(), repr(budget_b)], folder)
    assert result.code == 0, result.err
    # the single-device model is untouched; the new one names both devices and budgets
    assert {p.name: p.read_bytes() for p in models.iterdir() if p.name in before} == before
    (card_path,) = [p for p in models.glob("*.card.json") if p.name not in before]
    assert card_path.name == f"a-1000ms_b-{budget_b:g}ms.onnx.card.json"
    assert card_path.with_name(card_path.name.removesuffix(".card.json")).is_file()
    card = json.loads(card_path.read_text())
    assert card["budgets_ms"] == {"A": 1000.0, "B": budget_b}
    assert card["latency"]["A"]["predicted_ms"] <= 1000
    assert card["latency"]["B"]["predicted_ms"] <= budget_b
    assert card["latency"]["B"]["budget_ms"] == budget_b
    assert card["arch"] != shipped


# --------------------------------------------------------------------- profiles of a space


def test_a_profile_of_another_space_is_refused_everywhere_naming_both_spaces(
    tiny_world, runner, tmp_path
):
    folder = _folder(tiny_world, tmp_path)
    commands = [
        "search --run run --device other.json --latency-ms 1000 --evaluations 4 --name other",
        "extract --run run --device other.json --latency-ms 1000 --no-measure",
        "device predict --profile other.json --arch " + str(tiny_world.samples) + ":1 --space "
        "tiny.yaml",
    ]
    for command in commands:
        line = _one_error_line(runner.run(command.split(), folder))
        assert "other.json" in line or "profile is for space" in line, line
        assert "'tiny-other'" in line and "'tiny-test'" in line, line
    assert not (folder / "run" / "search" / "other").exists()
    assert not (folder / "run" / "models").exists()


def test_a_run_on_grey_images_takes_a_profile_of_its_declared_three_channel_space(
    tiny_world, runner, tmp_path
):
    """The run trained on digits (one channel) while tiny.yaml declares three: the profile
    measured for tiny.yaml is the run's, and its predictions are the declared space's."""
    folder = _folder(tiny_world, tmp_path)
    result = runner.run(
        [
            "search",
            "--run",
            "run",
            "--device",
            "b.json",
            "--latency-ms",
            "1000",
            "--evaluations",
            "4",
            "--name",
            "b",
        ],
        folder,
    )
    assert result.code == 0, result.err
    history = (folder / "run/search/b/history.jsonl").read_text().splitlines()
    record = json.loads(history[0])
    from nas.deploy import Device

    space = search_spaces.get(str(folder / "tiny.yaml"))
    assert space.in_channels == 3
    expected = Device.open(folder / "b.json", space).latency([Arch.from_dict(record["arch"])])
    assert record["constraints"]["latency_ms@B"] == pytest.approx(float(expected[0]))


# --------------------------------------------------------------------- archs from nas sample


def test_every_arch_reader_takes_a_line_of_nas_sample_output(tiny_world, runner, tmp_path):
    folder = _folder(tiny_world, tmp_path)
    samples = str(tiny_world.samples)
    lines = tiny_world.samples.read_text().splitlines()
    (folder / "one.json").write_text(lines[1] + "\n")
    second = Arch.from_dict(json.loads(lines[1])["arch"])

    inspect = runner.run(["inspect", samples + ":2", "--space", "tiny.yaml"], folder)
    assert inspect.code == 0 and f"resolution {second.resolution}" in inspect.out, inspect.err
    piped = runner.run(["inspect", "-", "--space", "tiny.yaml"], folder, stdin=folder / "one.json")
    assert piped.out == inspect.out
    predict = runner.run(["device", "predict", "--profile", "a.json", "--arch", samples], folder)
    assert predict.code == 0 and len(predict.out.strip().splitlines()) == 3, predict.err
    extract = ["extract", "--space", "tiny.yaml", "--arch", "one.json", "--out", "m.pt"]
    assert runner.run([*extract, "--format", "pt"], folder).code == 0
    from nas.extract import load_model

    assert load_model(folder / "m.pt")[2] == second
    train = ["train", "--space", "tiny.yaml", "--data", "digits", "--sampler", "fixed"]
    train += ["--arch", samples + ":2", "--epochs", "1", "--train-limit", "64", "--eval-limit"]
    train += ["20", "--batch-size", "32", "--calib-images", "16", "--no-progress", "--out", "f"]
    assert runner.run(train, folder).code == 0
    assert json.loads((folder / "f" / "final.json").read_text())["rows"][0]["arch"] == (
        second.to_dict()
    )


# --------------------------------------------------------------------- Ray clusters

CLUSTER = """
import sys, ray
ray.init(address="local", num_cpus=int(sys.argv[1]), include_dashboard=False)
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # until the test closes it
ray.shutdown()
"""


@pytest.mark.ray
@pytest.mark.slow  # a Ray cluster of its own (about 20 s); the default suite runs the README's
# `nas search --workers 2` on a local instance and refuses --ray-address without --workers
def test_search_joins_a_running_ray_cluster_and_refuses_one_too_small(tiny_world, runner, tmp_path):
    folder = _folder(tiny_world, tmp_path)
    cluster = subprocess.Popen(
        [sys.executable, "-c", CLUSTER, "2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        address = cluster.stdout.readline().strip()
        assert address, "the Ray cluster did not start"
        search = "search --run run --device a.json --latency-ms 1000 --batch-size 4 --seed 5"
        search = search.split() + ["--evaluations", "4", "--name", "ray"]
        token = {"RAY_AUTH_MODE": "token"}  # the cluster has Ray's default token authentication
        too_many = [*search, "--workers", "3", "--ray-address", address]
        line = _one_error_line(runner.run(too_many, folder, env=token))
        assert f"Ray cluster at {address} has 2 CPU(s), fewer than the 3 workers" in line
        from_env = runner.run(
            [*search, "--workers", "3"], folder, env={**token, "RAY_ADDRESS": address}
        )
        assert "has 2 CPU(s), fewer than the 3 workers" in _one_error_line(from_env)
        assert not (folder / "run" / "search" / "ray").exists()

        joined = [*search, "--workers", "2", "--ray-address", address]
        joined = runner.run(joined, folder, env=token)
        assert joined.code == 0, joined.err
        history = (folder / "run/search/ray/history.jsonl").read_text().splitlines()
        assert len(history) == 4
    finally:
        cluster.stdin.close()
        cluster.wait(timeout=120)
