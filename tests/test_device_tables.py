"""Published latency tables as device profiles: Pixel 4 (ElasticViT) and Note10 (OFA MobileNetV3)."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re

import numpy as np
import pytest
import yaml

import search_spaces
from nas.cli import main
from nas.space import SearchSpace
from predictors.latency import LatencyPredictor
from predictors.tables import import_table
from search_spaces.ofa import NOTE10_SUBNET_MACS, arch_from_ofa_net_config, resolution_for_macs

# The tables' block keys written out here from the published conventions (ElasticViT's Pixel 4
# table, Once-for-All's Note10 tables), not with predictors.lut: the expected sums below do not
# share code with the predictor they check.


def _pixel4_keys_by_hand(arch: dict) -> list[str]:
    """ElasticViT: stem conv (stride 2) and depthwise-separable layers, two MBConv stages (stride
    2, hard swish, the second with SE), four transformer stages (a downsampling MBConv with
    expand 6, then attention + FFN per layer), the pooled head with a 1984-wide feature layer."""
    side, width = arch["resolution"], arch["stem"]["width"]
    keys = [f"firstconv_{side}_3_{width}_2_3"]
    side = math.ceil(side / 2)
    keys += [f"conv_{side}_{width}_{width}_1_1_hard_swish_3_nose"] * arch["stem"]["depth"]
    strides, channels = [2, 2, 2, 1, 2, 2], width
    for i, stage in enumerate(arch["stages"]):
        if i < 2:
            for j in range(stage["depth"]):
                stride = strides[i] if j == 0 else 1
                se = "se" if i == 1 else "nose"
                keys.append(
                    f"conv_{side}_{channels}_{stage['width']}_{stage['expand_ratio']}_{stride}"
                    f"_hard_swish_{stage['kernel']}_{se}"
                )
                channels, side = stage["width"], math.ceil(side / stride)
            continue
        keys.append(f"transds_{side}_{channels}_{stage['width']}_{strides[i]}_6")
        channels, side = stage["width"], math.ceil(side / strides[i])
        for _ in range(stage["depth"]):
            keys.append(f"transattn_{side}_{channels}_hard_swish_{stage['v_scale']}_ln")
            keys.append(f"transffn_{side}_{channels}_{stage['mlp_ratio']}_hard_swish_ln")
    keys.append(f"mbpool_{side}_{channels}_1984_6_hard_swish")
    return keys


def _note10_keys_by_hand(arch: dict) -> list[str]:
    """Once-for-All MobileNetV3 w1.2: stem conv to 24 channels (stride 2), one 3x3 separable
    layer, five stages of widths 32, 48, 96, 136, 192 (strides 2, 2, 2, 1, 2; SE in stages 2, 4,
    5; hard swish from stage 3), head 1152 -> 1536 -> 1000."""

    def hwc(side: int, channels: int) -> str:
        return f"{side}x{side}x{channels}"

    side = math.ceil(arch["resolution"] / 2)
    keys = [f"Conv-input:{hwc(arch['resolution'], 3)}-output:{hwc(side, 24)}"]
    keys.append(
        f"expanded_conv-input:{hwc(side, 24)}-output:{hwc(side, 24)}-expand:24-kernel:3"
        "-stride:1-idskip:1-se:0-hs:0"
    )
    channels = 24
    strides, se, hs = [2, 2, 2, 1, 2], [0, 1, 0, 1, 1], [0, 0, 1, 1, 1]
    for i, stage in enumerate(arch["stages"]):
        for j in range(stage["depth"]):
            stride = strides[i] if j == 0 else 1
            out = math.ceil(side / stride)
            skip = int(stride == 1 and channels == stage["width"])
            keys.append(
                f"expanded_conv-input:{hwc(side, channels)}-output:{hwc(out, stage['width'])}"
                f"-expand:{channels * stage['expand_ratio'][j]}-kernel:{stage['kernel'][j]}"
                f"-stride:{stride}-idskip:{skip}-se:{se[i]}-hs:{hs[i]}"
            )
            channels, side = stage["width"], out
    return keys + [
        f"Conv_1-input:{hwc(side, channels)}-output:{hwc(side, 1152)}",
        f"AvgPool2D-input:{hwc(side, 1152)}-output:{hwc(1, 1152)}",
        f"Conv_2-input:{hwc(1, 1152)}-output:{hwc(1, 1536)}",
        "Logits-input:1x1x1536-output:1000",
    ]


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
    """Predictions are the sums of the table's entries for each arch's blocks (keys written out
    by hand, values read straight from the JSON file)."""
    space = search_spaces.get("elasticvit")
    table = json.loads((shared_data / "pixel4_elasticvit" / "pixel4_lut.json").read_text())
    predictor = LatencyPredictor.load(pixel4_profile_file)
    rng = random.Random(4)
    archs = [space.sample(rng) for _ in range(300)] + [space.min_arch(), space.max_arch()]
    expected = [sum(table[k] for k in _pixel4_keys_by_hand(a.to_dict())) for a in archs]
    np.testing.assert_allclose(predictor.predict(archs), expected, rtol=1e-12, atol=1e-9)
    assert not predictor.regressed(archs).any()
    assert predictor.predict_arch(archs[0]) == pytest.approx(expected[0], rel=1e-12)


@pytest.mark.slow
def test_pixel4_profile_predicts_the_table_sum_of_2000_archs(shared_data, pixel4_profile_file):
    space = search_spaces.get("elasticvit")
    table = json.loads((shared_data / "pixel4_elasticvit" / "pixel4_lut.json").read_text())
    rng = random.Random(2000)
    archs = [space.sample(rng) for _ in range(2000)]
    expected = [sum(table[k] for k in _pixel4_keys_by_hand(a.to_dict())) for a in archs]
    predicted = LatencyPredictor.load(pixel4_profile_file).predict(archs)
    np.testing.assert_allclose(predicted, expected, rtol=1e-12, atol=1e-9)


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
    """Predictions are the sums of the entries (their means) of the table at the arch's
    resolution, keys written out by hand, values read straight from the YAML files."""
    space = search_spaces.get("ofa-mbv3")
    tables = {
        side: yaml.load(
            (shared_data / "ofa_note10" / f"{side}_lookup_table.yaml").read_text(),
            Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader),
        )
        for side in (160, 176, 192, 208, 224)
    }
    predictor = LatencyPredictor.from_profile(note10_profile)
    rng = random.Random(10)
    archs = [
        dataclasses.replace(space.sample(rng), resolution=rng.choice(sorted(tables)))
        for _ in range(300)
    ]
    expected = [
        sum(tables[a.resolution][k]["mean"] for k in _note10_keys_by_hand(a.to_dict()))
        for a in archs
    ]
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
