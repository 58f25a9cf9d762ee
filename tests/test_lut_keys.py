"""Every block of every arch of a table's space has an entry in the published latency table."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

import search_spaces
from predictors.lut import (
    MissingKeysError,
    TableError,
    load_note10_tables,
    load_pixel4_table,
    note10_keys,
    pixel4_keys,
    table_latency,
)

#: Archs checked: a sample by default, the full proof with the tests marked slow.
N_ELASTICVIT = {"sample": 500, "all": 10_000}
N_OFA = {"sample": 250, "all": 2_000}
SIZES = ["sample", pytest.param("all", marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def pixel4_table(shared_data):
    return load_pixel4_table(shared_data / "pixel4_elasticvit" / "pixel4_lut.json")


@pytest.fixture(scope="module")
def note10_tables(shared_data):
    return load_note10_tables(shared_data / "ofa_note10")


def _coverage(space, archs, keys_of, table_of):
    """(archs checked, archs with every key present, {missing key: count})."""
    missing: dict[str, int] = {}
    complete = 0
    for arch in archs:
        table = table_of(arch)
        absent = [key for key in keys_of(space, arch) if key not in table]
        complete += not absent
        for key in absent:
            missing[key] = missing.get(key, 0) + 1
    return len(archs), complete, missing


@pytest.mark.parametrize("size", SIZES)
def test_elasticvit_keys_all_in_pixel4_table(pixel4_table, size):
    space = search_spaces.get("elasticvit")
    rng = random.Random(2023)
    archs = [space.sample(rng) for _ in range(N_ELASTICVIT[size])]
    archs += [space.min_arch(), space.max_arch()]
    checked, complete, missing = _coverage(space, archs, pixel4_keys, lambda _: pixel4_table)
    print(f"\nelasticvit / Pixel 4: {complete}/{checked} archs have every key in the table")
    assert checked == N_ELASTICVIT[size] + 2
    assert complete == checked, f"missing keys (key: archs): {sorted(missing.items())[:20]}"


def test_elasticvit_key_formats(pixel4_table):
    space = search_spaces.get("elasticvit")
    arch = space.min_arch()
    keys = pixel4_keys(space, arch)
    assert keys[0] == f"firstconv_{arch.resolution}_3_{arch.stem.width}_2_3"
    assert keys[1].startswith(f"conv_{arch.resolution // 2}_") and keys[1].endswith("_3_nose")
    assert keys[-1].startswith("mbpool_") and keys[-1].endswith("_1984_6_hard_swish")
    kinds = [key.split("_")[0] for key in keys]
    n_transformer = sum(stage.depth for stage in arch.stages[2:])
    assert kinds.count("transds") == 4
    assert kinds.count("transattn") == kinds.count("transffn") == n_transformer
    assert table_latency(keys, pixel4_table) > 0


@pytest.mark.parametrize("size", SIZES)
def test_ofa_keys_all_in_note10_tables(note10_tables, size):
    assert sorted(note10_tables) == [160, 176, 192, 208, 224]
    space = search_spaces.get("ofa-mbv3")
    rng = random.Random(2020)
    archs = [space.sample(rng) for _ in range(N_OFA[size] // len(note10_tables))]
    archs += [space.min_arch(), space.max_arch()]
    archs = [dataclasses.replace(a, resolution=r) for a in archs for r in note10_tables]
    checked, complete, missing = _coverage(
        space, archs, note10_keys, lambda arch: note10_tables[arch.resolution]
    )
    print(f"\nofa-mbv3 / Note10 at {sorted(note10_tables)}: {complete}/{checked} archs complete")
    assert checked >= N_OFA[size]
    assert complete == checked, f"missing keys (key: archs): {sorted(missing.items())[:20]}"


def test_ofa_first_block_key(note10_tables):
    space = search_spaces.get("ofa-mbv3")
    keys = note10_keys(space, dataclasses.replace(space.min_arch(), resolution=160))
    assert keys[:2] == [
        "Conv-input:160x160x3-output:80x80x24",
        "expanded_conv-input:80x80x24-output:80x80x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0",
    ]
    assert keys[-4:] == [
        "Conv_1-input:5x5x192-output:5x5x1152",
        "AvgPool2D-input:5x5x1152-output:1x1x1152",
        "Conv_2-input:1x1x1152-output:1x1x1536",
        "Logits-input:1x1x1536-output:1000",
    ]


def test_missing_keys_are_listed():
    with pytest.raises(MissingKeysError) as info:
        table_latency(["a", "b", "c", "b"], {"a": 1.0})
    assert info.value.missing == ["b", "c"]
    assert "2 block key(s)" in str(info.value) and "b, c" in str(info.value)
    assert isinstance(info.value, KeyError)
    assert table_latency(["a", "a"], {"a": 1.5}) == 3.0


def test_table_errors_name_the_path(tmp_path):
    with pytest.raises(TableError, match="nope.json"):
        load_pixel4_table(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TableError, match="bad.json.*not valid JSON"):
        load_pixel4_table(bad)
    bad.write_text(json.dumps({"k": "fast"}))
    with pytest.raises(TableError, match="'k'"):
        load_pixel4_table(bad)
    with pytest.raises(TableError, match="does not exist"):
        load_note10_tables(tmp_path / "absent")
    with pytest.raises(TableError, match="no \\{res\\}_lookup_table.yaml"):
        load_note10_tables(tmp_path)
    (tmp_path / "160_lookup_table.yaml").write_text("Conv-x: {std: 0.1}\n")
    with pytest.raises(TableError, match="160_lookup_table.yaml.*no 'mean'"):
        load_note10_tables(tmp_path)
    (tmp_path / "160_lookup_table.yaml").write_text("a: [unclosed\n")
    with pytest.raises(TableError, match="not valid YAML"):
        load_note10_tables(tmp_path)
