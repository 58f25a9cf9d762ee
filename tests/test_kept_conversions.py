"""`nas device validate` and `nas device measure` on a backend whose conversions take most of
the time (executorch, tflite) keep what they converted: killed and run again, they convert only
what they had not.

The backend here is a stand-in with the same frame (:class:`ConvertingBackend`): it converts to
TorchScript, which takes milliseconds where lowering to ExecuTorch takes a minute."""

from __future__ import annotations

import io
import json
import shutil

import pytest
import torch

import predictors.backends as backends
from nas.cli import main
from predictors.backends import ConvertingBackend

#: The stand-in converts with torch.jit, deprecated in favour of torch.export.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONVERTED: list[str] = []
#: Conversions after which the stand-in "kill" (KeyboardInterrupt) comes; None: never.
KILL_AFTER: list[int | None] = [None]


class Interrupted(KeyboardInterrupt):
    pass


def _script(precision: str, build) -> tuple[bytes, tuple]:
    if KILL_AFTER[0] is not None and len(CONVERTED) >= KILL_AFTER[0]:
        raise Interrupted
    module, inputs = build()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(module.eval(), tuple(inputs)), buffer)
    CONVERTED.append(_identity(build))
    return buffer.getvalue(), tuple(inputs)


def _identity(build) -> str:
    """What a conversion is of: a kernel's key, or a whole model's arch."""
    first = build.args[0]
    return getattr(first, "key", None) or build.args[1].to_json()


class ScriptedBackend(ConvertingBackend):
    name, suffix = "test-scripted", ".ts"
    convert = staticmethod(_script)

    def runner(self, data, inputs):
        module = torch.jit.load(io.BytesIO(data) if isinstance(data, bytes) else str(data))
        return lambda: module(*inputs)

    def versions(self):
        return {"torch": torch.__version__}


@pytest.fixture
def scripted_profile(tiny_world, tmp_path, monkeypatch):
    """Device A's profile as if measured on the stand-in backend, in a fresh folder."""
    monkeypatch.setitem(backends._BACKENDS, ScriptedBackend.name, ScriptedBackend)
    monkeypatch.chdir(tmp_path)
    shutil.copy(tiny_world.space, tmp_path / "tiny.yaml")
    profile = json.loads(tiny_world.profile_a.read_text())
    profile["backend"] = ScriptedBackend.name
    (tmp_path / "p.json").write_text(json.dumps(profile))
    CONVERTED.clear()
    yield tmp_path / "p.json"
    KILL_AFTER[0] = None


def test_a_killed_validation_converts_only_what_it_had_not(scripted_profile, tmp_path, capsys):
    argv = ["device", "validate", "--profile", str(scripted_profile), "--n", "5", "--out", "v"]
    KILL_AFTER[0] = 3
    with pytest.raises(Interrupted):
        main(argv)
    assert len(CONVERTED) == 3
    assert len(list((tmp_path / "v/conversions").glob("*/*.ts"))) == 3  # what survives the kill
    assert not (tmp_path / "v/report.json").exists()

    KILL_AFTER[0] = None
    CONVERTED.clear()
    assert main(argv) == 0
    assert len(CONVERTED) == 2  # the other two of five
    err = capsys.readouterr().err
    assert "resuming: 3 of 5 subnets were converted by an earlier run" in err
    report = json.loads((tmp_path / "v/report.json").read_text())
    assert report["metrics"]["n"] == 5
    assert not (tmp_path / "v/conversions").exists()  # removed once the report is written

    CONVERTED.clear()  # a finished validation, run again, starts afresh
    assert main(argv) == 0
    assert len(CONVERTED) == 5 and "resuming" not in capsys.readouterr().err


def test_conversions_of_other_settings_are_not_reused(scripted_profile, tmp_path):
    """A conversion is reused only at the settings it was made at (here the batch size)."""
    argv = ["device", "validate", "--profile", str(scripted_profile), "--n", "3", "--out", "v"]
    KILL_AFTER[0] = 2
    with pytest.raises(Interrupted):
        main(argv)
    profile = json.loads(scripted_profile.read_text())
    profile["settings"]["batch"] = 2
    scripted_profile.write_text(json.dumps(profile))
    KILL_AFTER[0] = None
    CONVERTED.clear()
    assert main(argv) == 0
    assert len(CONVERTED) == 3


def test_a_killed_measurement_does_not_convert_again(tiny_world, tmp_path, monkeypatch, capsys):
    """`nas device measure` on a converting backend, killed in its first pass, then run again:
    what it converted before the kill (kernels and whole models, timed or not) is not converted
    again in either pass, and the kept conversions go once the profile is complete."""
    monkeypatch.setitem(backends._BACKENDS, ScriptedBackend.name, ScriptedBackend)
    monkeypatch.chdir(tmp_path)
    shutil.copy(tiny_world.space, tmp_path / "tiny.yaml")
    converted = CONVERTED
    converted.clear()
    argv = ["device", "measure", "--backend", ScriptedBackend.name, "--space", "tiny.yaml"]
    argv += ["--resolutions", "8", "--warmup", "1", "--repeats", "2", "--passes", "2"]
    argv += ["--min-time-ms", "0", "--min-span-ms", "0", "--models", "2", "--out", "p.json"]
    KILL_AFTER[0] = 25
    with pytest.raises(Interrupted):
        main(argv)
    first = list(converted)
    assert len(first) == 25 and (tmp_path / "p.json.conversions").is_dir()

    KILL_AFTER[0] = None
    converted.clear()
    assert main(argv) == 0
    assert "resuming: 25 conversions of an earlier run" in capsys.readouterr().err
    assert converted and not set(first) & set(converted)  # none converted twice
    profile = json.loads((tmp_path / "p.json").read_text())
    assert profile["complete"] and all(len(k["passes"]) == 2 for k in profile["kernels"])
    assert len({*first, *converted}) == len(first) + len(converted)
    assert not (tmp_path / "p.json.conversions").exists()
    KILL_AFTER[0] = None
