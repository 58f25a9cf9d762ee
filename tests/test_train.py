"""Supernet training: losses, BN recalibration, checkpoints that resume exactly (also after
kill -9), the run folder, and the `nas train` command."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_SPACE, nas_executable

from nas.arch import Arch
from nas.cli import main
from nas.extract import load_model
from nas.supernet.checkpoint import load_supernet, read_checkpoint
from nas.train.config import ConfigError, TrainConfig
from nas.train.evaluate import recalibrate_bn
from nas.train.losses import adaptive_alpha_divergence, alpha_divergence, kl_distillation
from nas.train.trainer import Trainer, format_final_table

#: A tiny run: 10 steps per epoch on 320 digits, tiny space at 8-12 px.
TINY_RUN = {
    "data": "digits",
    "epochs": 2,
    "batch_size": 32,
    "train_limit": 320,
    "eval_limit": 60,
    "sampler": "cas+pas",
    "subnets": 2,
    "levels": 3,
    "pool_draws": 60,
    "pool_size": 10,
    "bank_size": 4,
    "rescore_every": 4,
    "calib_images": 64,
    "checkpoint_every": 3,
    "ema_decay": 0.9,
    "log_every": 1,
    "threads": 1,
}


@pytest.fixture(autouse=True, scope="module")
def _restore_torch_threads():
    """The runs here use one torch thread (``threads: 1``); other tests keep the default."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def space_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_SPACE))
    return path


@pytest.fixture(scope="module")
def tiny_config(space_file):
    return TrainConfig(space=str(space_file), **TINY_RUN)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_config):
    """An uninterrupted tiny run."""
    out = tmp_path_factory.mktemp("runs") / "reference"
    result = Trainer(tiny_config, out, progress=False).run()
    return out, result


def _cli_args(config: TrainConfig, out: Path) -> list[str]:
    args = ["train", "--out", str(out), "--no-progress"]
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        if value is not None and value != f.default:
            args += ["--" + f.name.replace("_", "-"), str(value)]
    return args


def _same_weights(a: Path, b: Path) -> None:
    first, second = read_checkpoint(a), read_checkpoint(b)
    assert first["step"] == second["step"]
    for part in ("model", "ema"):
        assert first[part].keys() == second[part].keys()
        for key in first[part]:
            assert torch.equal(first[part][key], second[part][key]), f"{part}.{key} differs"


def _records(out: Path) -> list[dict]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for r in records:
        r.pop("subnets_per_s", None)  # wall-clock rate
    return records


# --------------------------------------------------------------------- losses


def test_distillation_losses():
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 5), torch.randn(8, 5)
    assert float(kl_distillation(teacher, teacher)) == pytest.approx(0, abs=1e-6)
    assert float(alpha_divergence(teacher, teacher, -1.0)) == pytest.approx(0, abs=1e-6)
    assert float(alpha_divergence(student, teacher, 1.0)) == pytest.approx(
        float(kl_distillation(student, teacher)), rel=1e-5
    )
    pairs = [(s[None], t[None]) for s, t in zip(student, teacher, strict=True)]
    low = torch.stack([alpha_divergence(s, t, -1.0) for s, t in pairs])
    high = torch.stack([alpha_divergence(s, t, 1.0) for s, t in pairs])
    both = adaptive_alpha_divergence(student, teacher, -1.0, 1.0)
    assert float(both) == pytest.approx(float(torch.maximum(low, high).mean()))  # per sample
    assert float(both) > max(float(low.mean()), float(high.mean()))  # the two disagree here


def _gradient(loss_fn, student, teacher):
    student = student.clone().requires_grad_(True)
    loss_fn(student, teacher).backward()
    return student.grad


def test_alpha_divergence_gradient_is_alphanets():
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 5), torch.randn(8, 5)
    # alpha 1 is KL(teacher || student): same gradient
    kl = _gradient(kl_distillation, student, teacher)
    assert torch.allclose(_gradient(lambda s, t: alpha_divergence(s, t, 1.0), student, teacher), kl)
    # no ratio reaches the clip: the exact gradient of the divergence
    exact = _gradient(lambda s, t: _alpha_divergence_formula(s, t, -0.5), student, teacher)
    ours = _gradient(lambda s, t: alpha_divergence(s, t, -0.5, clip=1e9), student, teacher)
    assert torch.allclose(ours, exact, atol=1e-6)
    # alpha > 1 and a class the student rules out: the clipped gradient stays bounded, the
    # exact one explodes
    student[:, 0] = -30.0
    clipped = _gradient(lambda s, t: alpha_divergence(s, t, 2.0), student, teacher)
    unclipped = _gradient(lambda s, t: _alpha_divergence_formula(s, t, 2.0), student, teacher)
    assert clipped.abs().max() < 10 < unclipped.abs().max()


def _alpha_divergence_formula(student, teacher, alpha):
    q, p = torch.softmax(student, -1), torch.softmax(teacher, -1)
    return (q * ((p / q) ** alpha - 1) / (alpha * (alpha - 1))).sum(-1).mean()


def test_top1_counts_the_images_whose_largest_logit_is_their_label():
    """The accuracy every table and model card states: an image counts when its largest logit is
    its label's. Logits written by hand (the model passes each 10-channel 1x1 image through);
    the README's one-epoch model is too close to constant to tell argmax from argmin."""
    from nas.train.data import Split
    from nas.train.evaluate import top1

    labels = torch.arange(10)
    logits = torch.zeros(10, 10)
    for i, label in enumerate(labels.tolist()):
        logits[i, label] = 1.0 if i < 7 else -1.0  # largest for the first 7, smallest after
        logits[i, (label + 1) % 10] = 0.5 if i < 7 else 2.0  # the runner-up, or the winner
    split = Split(logits[:, :, None, None], labels)
    identity = torch.nn.Linear(10, 10)
    with torch.no_grad():
        identity.weight.copy_(torch.eye(10))
        identity.bias.zero_()
    model = torch.nn.Sequential(torch.nn.Flatten(), identity)
    assert top1(model, split, resolution=1, batch_size=4) == pytest.approx(0.7)


def test_bn_recalibration_gives_the_exact_statistics_of_the_calibration_images():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    model[1].running_mean.fill_(5.0)
    images = torch.randn(40, 1, 6, 6)
    recalibrate_bn(model, images, resolution=6, batch_size=10)
    with torch.no_grad():
        features = model[0](images)
    assert torch.allclose(model[1].running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5)
    assert model[1].momentum == 0.1 and model.training


# --------------------------------------------------------------------- runs


def test_a_run_writes_its_folder_and_learns(reference, tiny_config):
    out, result = reference
    assert result.finished and result.step == 20
    for name in ("config.yaml", "levels.json", "last.pt", "best.pt", "metrics.jsonl", "final.json"):
        assert (out / name).is_file(), name
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written["device"] == "cpu" and written["amp"] == "off"
    assert written["derived"]["total_steps"] == 20 and written["derived"]["in_channels"] == 1
    records = _records(out)
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["epoch"] for r in evals] == [0, 1]
    assert len(evals[0]["level_top1"]) == 3 and all(p["top1"] >= 0 for p in evals[0]["probes"])
    final = json.loads((out / "final.json").read_text())
    assert {r["name"] for r in final["rows"]} >= {"level 0", "smallest", "largest"}
    assert "probe mean" in format_final_table(final)
    assert final["mean_test_top1"] > 0.1  # above chance (10 classes) after 20 steps
    # 20 steps of the teacher and two sampled subnets; PAS re-scored its banks on the way.
    assert final["subnet_passes"]["trained"] == 60 and final["subnet_passes"]["scored"] > 0
    steps = [r for r in records if r["kind"] == "train"]
    assert sum(r["loss"] for r in steps[-5:]) < sum(r["loss"] for r in steps[:5])


def test_stopping_and_rerunning_ends_with_the_same_weights(reference, tiny_config, tmp_path):
    out, _ = reference
    resumed = tmp_path / "resumed"
    for stop in (4, 13):  # mid-epoch, between checkpoints, in the second epoch
        partial = Trainer(tiny_config, resumed, progress=False).run(max_steps=stop)
        assert not partial.finished and partial.step == stop
    Trainer(tiny_config, resumed, progress=False).run()
    _same_weights(out / "last.pt", resumed / "last.pt")
    assert _records(out) == _records(resumed)
    assert json.loads((out / "final.json").read_text()) == json.loads(
        (resumed / "final.json").read_text()
    )


def test_kill_9_and_rerun_ends_with_the_same_weights(reference, tiny_config, tmp_path):
    """`nas train` killed with SIGKILL after its first checkpoint, then rerun."""
    out, _ = reference
    killed = tmp_path / "killed"
    command = [str(nas_executable()), *_cli_args(tiny_config, killed)]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    # killed as soon as its first checkpoint is on disk (step 3 of 20), however long that takes
    while not (killed / "last.pt").exists() and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert read_checkpoint(killed / "last.pt")["step"] < 20
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "probe mean" in done.stdout
    _same_weights(out / "last.pt", killed / "last.pt")


def test_training_checkpoints_load_as_supernets_and_extract(reference, space_file, tmp_path):
    out, _ = reference
    for name in ("last.pt", "best.pt"):
        supernet = load_supernet(out / name)
        assert supernet.space.in_channels == 1 and supernet.space.num_classes == 10
    payload = read_checkpoint(out / "last.pt")
    assert payload["kind"] == "train" and payload["step"] == 20
    assert {"optimizer", "sampler", "rng", "ema", "config", "scaler"} <= payload.keys()
    arch = tmp_path / "arch.json"
    supernet.space.sample(0).save(arch)
    model = tmp_path / "model.pt"
    args = ["extract", "--arch", str(arch), "--space", str(space_file), "--format", "pt"]
    assert main([*args, "--checkpoint", str(out / "best.pt"), "--out", str(model)]) == 0
    # the file holds the best checkpoint's subnet: it computes what that supernet computes
    loaded, space, loaded_arch = load_model(model)
    assert loaded_arch == Arch.load(arch) and space.in_channels == 1
    supernet = load_supernet(out / "best.pt").eval()
    supernet.set_arch(loaded_arch)
    side = loaded_arch.resolution
    image = torch.randn(3, 1, side, side, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(image), supernet(image), atol=1e-5, rtol=1e-5)


def test_a_batch_with_a_nan_is_skipped_and_counted(tiny_config, tmp_path):
    """A non-finite loss never reaches the weights or the BatchNorm statistics: the step is
    skipped and counted, and training goes on."""
    from nas.train.data import load_data

    data = load_data("digits", train_limit=320, eval_limit=60)
    data.train.x[7] = float("nan")  # one image: one batch of each epoch
    out = tmp_path / "run"
    result = Trainer(tiny_config, out, data=data, progress=False).run()
    assert result.finished and result.step == 20
    train = [r for r in _records(out) if r["kind"] == "train"]
    assert train[-1]["skipped_steps"] == 2
    assert sum(r["loss"] is None for r in train) == 2  # written as null, not NaN
    for name in ("last.pt", "best.pt"):
        payload = read_checkpoint(out / name)
        for part in ("model", "ema"):
            for key, tensor in payload.get(part, {}).items():
                assert torch.isfinite(tensor).all(), f"{name} {part}.{key} is not finite"


def test_rerunning_with_other_options_is_refused(reference, tiny_config):
    out, _ = reference
    with pytest.raises(ConfigError, match="lr: 0.002 -> 0.01"):
        Trainer(replace(tiny_config, lr=0.01), out, progress=False)
    # A finished run rerun with the same options only reports its final table.
    result = Trainer(replace(tiny_config, threads=2), out, progress=False).run()
    assert result.finished and result.final["step"] == 20


def test_the_command_stops_at_max_steps_and_takes_options_from_a_config_file(
    reference, tmp_path, capsys
):
    out, _ = reference
    run = tmp_path / "from-config"
    args = ["train", "--config", str(out / "config.yaml"), "--out", str(run), "--no-progress"]
    assert main([*args, "--max-steps", "2"]) == 0
    assert "stopped at step 2/20; rerun to resume" in capsys.readouterr().out
    assert read_checkpoint(run / "last.pt")["step"] == 2
    assert yaml.safe_load((run / "config.yaml").read_text()) == yaml.safe_load(
        (out / "config.yaml").read_text()
    )


def test_bad_options_are_input_errors(capsys, tmp_path):
    assert main(["train", "--out", str(tmp_path / "x"), "--sampler", "fixed"]) == 2
    assert "--arch FILE goes with --sampler fixed" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "x"), "--data", str(tmp_path / "none")]) == 2
    assert "neither the embedded data set" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "x"), "--level-metric", "latency"]) == 2
    assert "--device-profile" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--batch-size 30 must be a multiple of --workers 4"):
        TrainConfig(batch_size=30, workers=4).check()


def test_train_help_documents_every_option(capsys):
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for f in fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in text
    for flag in ("--out", "--config", "--max-steps", "--no-progress", "--ray-address"):
        assert flag in text
