"""A profile timed in a form this version no longer exports is found, not trusted.

A kernel key names its unit and features, not the module timed for it: when a unit's exported
form changes (the softmax attention's position bias became a constant), profiles measured before
time other work under the same keys. Profiles record the unit revisions they timed
(:mod:`predictors.forms`); opening an older one says which kernels are stale, and measuring into
it is refused, since timings of two forms cannot be mixed.
"""

from __future__ import annotations

import json
import shutil

from conftest import TINY_SPACE, run_nas
from tiny_world import MEASURE

from predictors import forms
from predictors.profile import DeviceProfile
from predictors.suite import export_suite, import_suite, read_manifest


def _older(src, dst):
    """``src`` as the version before the field wrote it: revision 1 of every unit."""
    data = json.loads(src.read_text())
    del data["unit_forms"]
    dst.write_text(json.dumps(data))
    return dst


def test_a_fresh_profile_records_what_it_timed_and_gets_no_note(tiny_world, tmp_path):
    profile = DeviceProfile.load(tiny_world.profile_a)
    assert profile.unit_forms == forms.current() and forms.current()["attn-softmax"] >= 2
    assert any(k.kind == "attn-softmax" for k in profile.kernels.values())
    assert profile.stale_forms() is None
    info = run_nas("device", "info", "--profile", tiny_world.profile_a, cwd=tmp_path)
    assert "revision" not in info.stderr


def test_an_older_profile_is_named_stale_wherever_it_is_opened(tiny_world, tmp_path):
    old = _older(tiny_world.profile_a, tmp_path / "old.json")
    kernels = DeviceProfile.load(old).kernels.values()
    softmax = sum("attn-softmax" in k.kind.split("+") for k in kernels)
    expected = f"{softmax} attn-softmax kernel(s) at revision 1"
    info = run_nas("device", "info", "--profile", old, cwd=tmp_path)
    assert expected in info.stderr and "another --out" in info.stderr
    predict = ["device", "predict", "--profile", old, "--arch", tiny_world.samples]
    assert expected in run_nas(*predict, "--space", tiny_world.space, cwd=tmp_path).stderr
    search = ["search", "--space", tiny_world.space, "--device", old, "--latency-ms", "1000"]
    search += ["--objective", "params", "--evaluations", "3", "--out", tmp_path / "search"]
    assert expected in run_nas(*search, cwd=tmp_path).stderr


def test_measuring_into_an_older_profile_is_refused_and_loses_nothing(tiny_world, tmp_path):
    shutil.copy(tiny_world.space, tmp_path / "tiny.yaml")
    old = _older(tiny_world.profile_a, tmp_path / "old.json")
    before = old.read_bytes()
    command = MEASURE.format(space="tiny.yaml", device="A", out="old.json").split()
    result = run_nas(*command, cwd=tmp_path, expect=2)
    assert old.read_bytes() == before
    line = result.stderr.strip().splitlines()[-1]
    assert "attn-softmax kernel(s) at revision 1" in line and "another --out" in line


def test_a_suite_records_its_revisions_and_an_older_one_imports_as_stale(tmp_path):
    from nas.space import SearchSpace

    space = SearchSpace.from_dict(TINY_SPACE)
    manifest = export_suite(space, tmp_path, resolutions=[8], models=0, progress=False)
    assert read_manifest(tmp_path)["unit_forms"] == forms.current()
    timings = tmp_path / "timings.csv"
    rows = [f"{e['name']},0.01" for e in manifest["entries"]]
    timings.write_text("\n".join(["name,ms", *rows]) + "\n")
    assert import_suite(tmp_path, timings, "phone", "onnxruntime", 1).stale_forms() is None
    data = json.loads((tmp_path / "manifest.json").read_text())
    del data["unit_forms"]
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    stale = import_suite(tmp_path, timings, "phone", "onnxruntime", 1).stale_forms()
    assert stale and "attn-softmax" in stale and "revision 1" in stale


def test_every_unit_exports_the_graph_recorded_for_its_revision():
    """A unit whose exported form changes needs a new revision (else older profiles would not be
    found stale): its graph is recorded per revision (``tests/unit_graphs.py``)."""
    from unit_graphs import recorded, signatures

    from nas.blocks.registry import unit_names

    now, record = signatures(), recorded()
    assert unit_names() <= set(now), "a registered unit has no configuration in the examples"
    assert set(now) == set(record), "record the new units: python tests/unit_graphs.py --write"
    for unit, signature in now.items():
        assert signature == record[unit], (
            f"{unit} exports {signature}, recorded {record[unit]}: raise its revision in "
            "predictors/forms.py, then python tests/unit_graphs.py --write"
        )
