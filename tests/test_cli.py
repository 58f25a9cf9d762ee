"""The `nas` command as a user runs it: output, files written, exit code 2 on bad input."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import onnxruntime as ort
import pytest
import torch

import search_spaces
from nas.arch import Arch
from nas.cli import main
from nas.extract import load_model


@pytest.fixture
def arch_file(tmp_path):
    path = tmp_path / "arch.json"
    search_spaces.get("hybrid-tiny").sample(0).save(path)
    return path


def test_spaces_lists_names_and_exact_sizes(capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    for name in search_spaces.names():
        assert name in out
    assert f"{search_spaces.get('hybrid-tiny').size():.3e}" in out


def test_sample_prints_json_lines_with_macs_and_params(capsys):
    assert main(["sample", "--space", "hybrid-tiny", "-n", "3", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    space = search_spaces.get("hybrid-tiny")
    for line in lines:
        record = json.loads(line)
        space.validate(Arch.from_dict(record["arch"]))
        assert record["macs"] > 0 and record["params"] > 0


def test_sample_is_reproducible_with_a_seed(capsys):
    main(["sample", "--space", "elasticvit", "-n", "2", "--seed", "5"])
    first = capsys.readouterr().out
    main(["sample", "--space", "elasticvit", "-n", "2", "--seed", "5"])
    assert capsys.readouterr().out == first


def test_inspect_prints_a_row_per_stage(arch_file, capsys):
    assert main(["inspect", str(arch_file)]) == 0
    out = capsys.readouterr().out
    for row in ("stem", "stages.0", "stages.3", "head", "total:"):
        assert row in out
    assert "transformer" in out


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "pt"])
def test_extract_writes_a_model_that_computes_what_the_supernet_does(fmt, arch_file, tmp_path):
    """Without --checkpoint the weights are those of a supernet initialised with --seed (0)."""
    from nas.supernet import Supernet

    out = tmp_path / f"model.{fmt}"
    assert main(["extract", "--arch", str(arch_file), "--format", fmt, "--out", str(out)]) == 0
    arch = Arch.load(arch_file)
    torch.manual_seed(0)
    supernet = Supernet(search_spaces.get("hybrid-tiny")).eval()
    supernet.set_arch(arch)
    generator = torch.Generator().manual_seed(1)
    image = torch.randn(1, 3, arch.resolution, arch.resolution, generator=generator)
    with torch.no_grad():
        expected = supernet(image)
        if fmt == "onnx":
            session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {"image": image.numpy()})[0])
        elif fmt == "torchscript":
            got = torch.jit.load(str(out))(image)
        else:
            model, space, loaded_arch = load_model(out)
            assert loaded_arch == arch and space.name == "hybrid-tiny"
            got = model(image)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_extract_takes_weights_from_a_checkpoint(arch_file, tmp_path):
    from nas.supernet import Supernet
    from nas.supernet.checkpoint import save_supernet

    space = search_spaces.get("hybrid-tiny")
    torch.manual_seed(123)
    supernet = Supernet(space)
    save_supernet(supernet, tmp_path / "ckpt.pt")
    out = tmp_path / "model.pt"
    args = ["extract", "--arch", str(arch_file), "--checkpoint", str(tmp_path / "ckpt.pt")]
    assert main([*args, "--format", "pt", "--out", str(out)]) == 0
    model, _, _ = load_model(out)
    assert torch.equal(
        model[0].conv.weight, supernet.stem.conv.weight[: model[0].conv.out_channels]
    )


def _run_bad(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("nas: error:")
    return err


def test_malformed_json_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"space": "hybrid-tiny",')
    assert "is not valid JSON" in _run_bad(capsys, ["inspect", str(bad)])


def test_unknown_space_exits_2(capsys):
    assert "unknown space 'resnet'" in _run_bad(capsys, ["sample", "--space", "resnet"])


def test_arch_outside_its_space_exits_2(tmp_path, capsys):
    data = search_spaces.get("hybrid-tiny").sample(0).to_dict()
    data["stages"][1]["width"] = 1000
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(data))
    err = _run_bad(capsys, ["extract", "--arch", str(path), "--out", str(tmp_path / "m.onnx")])
    assert "stages[1].width = 1000 is not allowed; choices: [24, 32]" in err
    assert not (tmp_path / "m.onnx").exists()


def test_arch_of_another_space_exits_2(arch_file, capsys):
    err = _run_bad(capsys, ["inspect", str(arch_file), "--space", "elasticvit"])
    assert "arch of space 'hybrid-tiny', not 'elasticvit'" in err


def test_unknown_format_exits_2(arch_file, tmp_path, capsys):
    argv = ["extract", "--arch", str(arch_file), "--format", "coreml", "--out", str(tmp_path / "m")]
    assert (
        "unknown format 'coreml'; choices: onnx, torchscript, pt, executorch, tflite"
        in _run_bad(capsys, argv)
    )


def test_unwritable_output_exits_2(arch_file, tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "m.onnx"
    argv = ["extract", "--arch", str(arch_file), "--out", str(missing)]
    assert "does not exist" in _run_bad(capsys, argv)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        argv = ["extract", "--arch", str(arch_file), "--out", str(locked / "m.onnx")]
        assert "not writable" in _run_bad(capsys, argv)


def test_corrupt_checkpoint_exits_2(arch_file, tmp_path, capsys):
    bad = tmp_path / "ckpt.pt"
    bad.write_bytes(b"\x00garbage")
    argv = [
        "extract",
        "--arch",
        str(arch_file),
        "--checkpoint",
        str(bad),
        "--out",
        str(tmp_path / "m.onnx"),
    ]
    assert "not a readable checkpoint" in _run_bad(capsys, argv)


def test_console_script_help_and_usage_errors():
    exe = [sys.executable, "-m", "nas.cli"]
    help_text = subprocess.run([*exe, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("spaces", "sample", "inspect", "extract", "demo"):
        assert command in help_text
    missing = subprocess.run([*exe, "extract"], capture_output=True, text=True)
    assert missing.returncode == 2 and "--arch" in missing.stderr


def _subcommands(parser, path=()):
    """Every leaf command of an argparse parser, as (path, parser)."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield path, parser
        return
    for name, child in actions[0].choices.items():
        yield from _subcommands(child, (*path, name))


def test_every_command_explains_itself_in_its_help():
    from nas.cli import build_parser

    commands = dict(_subcommands(build_parser()))
    assert ("device", "validate") in commands and ("train",) in commands
    for path, parser in commands.items():
        text = parser.format_help()
        assert parser.description and len(parser.description) > 40, f"nas {' '.join(path)}"
        assert "%%" not in text, f"nas {' '.join(path)} --help shows a doubled %"
        undocumented = [a.dest for a in parser._actions if not a.help and a.dest != "help"]
        assert not undocumented, f"nas {' '.join(path)}: options without help {undocumented}"


def test_commands_that_need_no_model_start_without_importing_torch():
    """`nas --help`, `nas spaces` and `nas sample` answer in a second: torch (2 s to import) is
    imported only by the commands that build models."""
    code = (
        "import sys; from nas.cli import main; "
        "main(['spaces']); main(['sample', '--space', 'hybrid-tiny', '--seed', '0']); "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"
