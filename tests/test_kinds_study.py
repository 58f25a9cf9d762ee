"""The block-kind study (``benchmarks/block_kinds.py``) run as users run it, at its smallest size."""

from __future__ import annotations

import json
import subprocess

import search_spaces
from nas.arch import Arch
from nas.graph import count
from tests.conftest import run_benchmark


def study(*argv: str) -> subprocess.CompletedProcess:
    return run_benchmark("block_kinds", *argv)


def test_quick_study_writes_table_json_png_at_equal_macs_and_resumes(tmp_path):
    out = tmp_path / "study"
    argv = ["--quick", "--kinds", "mbconv", "transformer", "--out", str(out), "--no-progress"]
    done = study(*argv)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "block_kinds.json").read_text())
    assert (out / "block_kinds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = report["rows"]
    assert [r["label"] for r in rows] == ["mbconv", "transformer/softmax"]
    space = search_spaces.get("mobile-zoo")
    target = report["target_macs"]
    for row in rows:
        arch = space.validate(Arch.from_dict(row["arch"]))
        assert arch.resolution == 224
        macs, _ = count(space, arch)  # the operator graph's count, as `nas inspect` shows it
        assert macs == row["macs"] and abs(macs / target - 1) <= 0.05
        blocks = {b for i in row["stages"] for b in arch.stages[i].block}
        assert blocks == {row["kind"]}
        for backend in ("onnxruntime", "torch"):
            assert row[f"{backend}_ms"] > 0
    assert max(r["macs"] for r in rows) / min(r["macs"] for r in rows) <= 1.05 / 0.95
    table = (out / "block_kinds.md").read_text()
    assert "| transformer/softmax |" in table and table in done.stdout
    assert "no profile at hand applies to mobile-zoo" in table

    cells = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    again = study(*argv)
    assert again.returncode == 0, again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()} == cells
    assert json.loads((out / "block_kinds.json").read_text())["rows"] == rows


def test_study_refuses_a_kind_outside_the_space_in_one_line(tmp_path):
    done = study("--quick", "--kinds", "mbconv", "lstm", "--out", str(tmp_path / "s"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "lstm" in done.stderr and "mobilevit" in done.stderr
