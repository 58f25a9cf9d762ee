"""Published latency tables as device profiles: Pixel 4 (ElasticViT) and Note10 (OFA MobileNetV3)."""

from __future__ import annotations

import dataclasses
import random
import re

import numpy as np
import pytest

import search_spaces
from nas.cli import main
from nas.space import SearchSpace
from predictors.latency import LatencyPredictor
from predictors.lut import (
    load_note10_tables,
    load_pixel4_table,
    note10_keys,
    pixel4_keys,
    table_latency,
)
from predictors.tables import import_table
from search_spaces.ofa import NOTE10_SUBNET_MACS, arch_from_ofa_net_config, resolution_for_macs


@pytest.fixture(scope="module")
def pixel4_profile_file(shared_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("tables") / "pixel4.json"
    table = shared_data / "pixel4_elasticvit" / "pixel4_lut.json"
    assert main(["device", "import-table", "pixel4", str(table), "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def note10_profile(shared_data):
    return import_table("note10", shared_data / "ofa_note10")


def test_pixel4_profile_predicts_the_table_sum(shared_data, pixel4_profile_file):
    space = search_spaces.get("elasticvit")
    table = load_pixel4_table(shared_data / "pixel4_elasticvit" / "pixel4_lut.json")
    predictor = LatencyPredictor.load(pixel4_profile_file)
    rng = random.Random(4)
    archs = [space.sample(rng) for _ in range(2000)] + [space.min_arch(), space.max_arch()]
    predicted = predictor.predict(archs)
    expected = np.array([table_latency(pixel4_keys(space, a), table) for a in archs])
    np.testing.assert_allclose(predicted, expected, rtol=1e-12, atol=1e-9)
    assert not predictor.regressed(archs).any()
    assert predictor.predict_arch(archs[0]) == pytest.approx(expected[0], rel=1e-12)


def test_table_profiles_work_with_the_device_commands(tmp_path, capsys, pixel4_profile_file):
    arch = tmp_path / "arch.json"
    search_spaces.get("elasticvit").min_arch().save(arch)
    assert (
        main(["device", "predict", "--profile", str(pixel4_profile_file), "--arch", str(arch)]) == 0
    )
    assert " ms  elasticvit resolution 128" in capsys.readouterr().out
    assert main(["device", "info", "--profile", str(pixel4_profile_file)]) == 0
    assert "Pixel 4" in capsys.readouterr().out
    code = main(["device", "validate", "--profile", str(pixel4_profile_file), "--n", "5"])
    assert code == 2
    assert "backend 'tflite', which cannot run on this machine" in capsys.readouterr().err
    bad = tmp_path / "absent.json"
    assert main(["device", "import-table", "pixel4", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "absent.json" in capsys.readouterr().err


def test_note10_profile_predicts_the_table_sums(shared_data, note10_profile):
    space = search_spaces.get("ofa-mbv3")
    tables = load_note10_tables(shared_data / "ofa_note10")
    predictor = LatencyPredictor.from_profile(note10_profile)
    rng = random.Random(10)
    archs = [
        dataclasses.replace(space.sample(rng), resolution=rng.choice(sorted(tables)))
        for _ in range(300)
    ]
    expected = np.array([table_latency(note10_keys(space, a), tables[a.resolution]) for a in archs])
    np.testing.assert_allclose(predictor.predict(archs), expected, rtol=1e-12)
    assert not predictor.regressed(archs).any()
    # 128 and 144 are in the space but not in the tables: predicted by the block work model
    low = [dataclasses.replace(a, resolution=128) for a in archs[:5]]
    assert predictor.regressed(low).all()
    assert (predictor.predict(low) < predictor.predict(archs[:5])).all()


def test_published_note10_subnets_predict_within_5_percent(shared_data, note10_profile):
    """Each subnet at the resolution its published MAC count implies (net.config has none)."""
    paths = sorted((shared_data / "ofa_note10" / "specialized").glob("note10_lat-*/net.config"))
    assert len(paths) == 8
    print()
    for path in paths:
        ms = int(re.search(r"lat-(\d+)ms", path.parent.name).group(1))
        arch = arch_from_ofa_net_config(path)
        resolution = resolution_for_macs(
            arch, NOTE10_SUBNET_MACS[path.parent.name.replace("-", "@")]
        )
        declared = search_spaces.get(arch.space).to_dict()
        declared["resolutions"] = sorted({*declared["resolutions"], resolution})
        space = SearchSpace.from_dict(declared)
        predictor = LatencyPredictor.from_profile(note10_profile, space, allow_other_space=True)
        arch = dataclasses.replace(arch, resolution=resolution)
        predicted = predictor.predict([arch])[0]
        regressed = bool(predictor.regressed([arch])[0])
        print(f"{path.parent.name}: {predicted:.2f} ms at {resolution} (regressed {regressed})")
        assert predicted == pytest.approx(ms, rel=0.05), path.parent.name
        in_tables = (
            arch.space == "ofa-mbv3" and resolution in note10_profile.settings["resolutions"]
        )
        assert regressed == (not in_tables)


def test_a_resolution_the_tables_lack_is_predicted_within_5_percent(shared_data):
    """Leave the 208 table out: 300 random subnets at 208, regressed from the other tables,
    stay within 5% of the left-out table's exact sums, with no systematic bias."""
    full = import_table("note10", shared_data / "ofa_note10")
    partial = import_table("note10", shared_data / "ofa_note10")
    partial.kernels = {k: v for k, v in partial.kernels.items() if not k.startswith("208:")}
    space = search_spaces.get("ofa-mbv3")
    rng = random.Random(208)
    archs = [dataclasses.replace(space.sample(rng), resolution=208) for _ in range(300)]
    held_out = LatencyPredictor.from_profile(partial, space)
    assert held_out.regressed(archs).all()
    error = held_out.predict(archs) / LatencyPredictor.from_profile(full, space).predict(archs) - 1
    assert np.mean(np.abs(error) <= 0.05) >= 0.99
    assert abs(np.median(error)) < 0.015
