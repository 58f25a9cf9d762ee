"""OFA's published Note10 subnets parse into archs of the OFA spaces; their LUT sums fit their names."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

import search_spaces
from nas.graph import count
from nas.layers import MBConvLayer, layers_of
from predictors.lut import load_note10_tables, note10_keys, table_latency
from search_spaces.ofa import (
    NOTE10_SUBNET_MACS,
    OfaConfigError,
    arch_from_ofa_net_config,
    resolution_for_macs,
)

WIDTH_1_0_MS = {8, 11, 16, 22}


def _configs(shared_data):
    paths = sorted((shared_data / "ofa_note10" / "specialized").glob("note10_lat-*/net.config"))
    assert len(paths) == 8, f"expected 8 OFA Note10 configs, found {len(paths)}"
    return [(int(re.search(r"lat-(\d+)ms", p.parent.name).group(1)), p) for p in paths]


def test_configs_parse_and_read_back(shared_data):
    for ms, path in _configs(shared_data):
        arch = arch_from_ofa_net_config(path)
        assert arch.space == ("ofa-mbv3-w1.0" if ms in WIDTH_1_0_MS else "ofa-mbv3"), path
        assert arch.resolution == 224
        space = search_spaces.get(arch.space)
        blocks = [b["mobile_inverted_conv"] for b in json.loads(path.read_text())["blocks"]]
        layers = [layer for layer in layers_of(space, arch) if isinstance(layer, MBConvLayer)]
        assert len(layers) == len(blocks) == 1 + sum(stage.depth for stage in arch.stages)
        for layer, block in zip(layers, blocks, strict=True):
            built = (layer.in_ch, layer.out_ch, layer.kernel, layer.stride, layer.expand_ratio)
            given = tuple(
                block[k]
                for k in ("in_channels", "out_channels", "kernel_size", "stride", "expand_ratio")
            )
            assert built == given, f"{path} {layer.slot}"
            assert layer.se == block["use_se"], f"{path} {layer.slot}"
            assert layer.mid_ch == (block["mid_channels"] or block["in_channels"]), layer.slot


def test_width_1_2_lut_sum_fits_name(shared_data):
    tables = load_note10_tables(shared_data / "ofa_note10")
    space = search_spaces.get("ofa-mbv3")
    top = max(tables)
    print()
    for ms, path in _configs(shared_data):
        if ms in WIDTH_1_0_MS:
            continue
        arch = arch_from_ofa_net_config(path, resolution=top)
        sums = {
            r: table_latency(note10_keys(space, dataclasses.replace(arch, resolution=r)), t)
            for r, t in tables.items()
        }
        shown = ", ".join(f"{r}: {v:.1f}" for r, v in sums.items())
        print(
            f"{path.parent.name}: LUT sum at {top} = {sums[top]:.2f} ms "
            f"(ratio {sums[top] / ms:.2f}); by resolution {shown}"
        )
        assert 0.5 <= sums[top] / ms <= 2.0, f"{path.parent.name}: {sums[top]:.1f} ms"


def test_resolution_argument(shared_data):
    _, path = _configs(shared_data)[-1]
    assert arch_from_ofa_net_config(path, resolution=160).resolution == 160
    with pytest.raises(OfaConfigError, match="resolution = 300"):
        arch_from_ofa_net_config(path, resolution=300)


def _config(shared_data, ms=30):
    path = next(p for m, p in _configs(shared_data) if m == ms)
    return json.loads(path.read_text())


def test_too_deep_stage_is_named(shared_data):
    config = _config(shared_data)
    extra = dict(config["blocks"][-1])
    config["blocks"] = config["blocks"] + [extra, extra]  # last stage 4 -> 6 blocks
    with pytest.raises(
        OfaConfigError, match=r"stage 4 has \d blocks; ofa-mbv3 allows depths \[2, 3, 4\]"
    ):
        arch_from_ofa_net_config(config)


def test_malformed_configs_give_clear_errors(shared_data, tmp_path):
    config = _config(shared_data)
    wrong_width = json.loads(json.dumps(config))
    wrong_width["final_expand_layer"]["out_channels"] = 1280
    with pytest.raises(OfaConfigError, match="head 1280 -> 1536 match no OFA MobileNetV3 space"):
        arch_from_ofa_net_config(wrong_width)

    wrong_stem = json.loads(json.dumps(config))
    wrong_stem["first_conv"]["out_channels"] = 32
    with pytest.raises(OfaConfigError, match=r"blocks\[0\] must be the expand-1"):
        arch_from_ofa_net_config(wrong_stem)

    bad_kernel = json.loads(json.dumps(config))
    bad_kernel["blocks"][2]["mobile_inverted_conv"]["kernel_size"] = 9
    with pytest.raises(OfaConfigError, match=r"stages\[0\]\.kernel\[1\] = 9"):
        arch_from_ofa_net_config(bad_kernel)

    no_blocks = {k: v for k, v in config.items() if k != "blocks"}
    with pytest.raises(OfaConfigError, match=r"missing field\(s\) \['blocks'\]"):
        arch_from_ofa_net_config(no_blocks)

    broken = json.loads(json.dumps(config))
    del broken["blocks"][3]["mobile_inverted_conv"]["stride"]
    with pytest.raises(OfaConfigError, match="malformed OFA net.config.*stride"):
        arch_from_ofa_net_config(broken)

    path = tmp_path / "net.config"
    path.write_text("{")
    with pytest.raises(OfaConfigError, match="net.config is not valid JSON"):
        arch_from_ofa_net_config(path)
    with pytest.raises(OfaConfigError, match="cannot read"):
        arch_from_ofa_net_config(tmp_path / "absent.config")


def test_published_mac_counts_give_each_subnet_its_resolution(shared_data):
    """net.config has no resolution; OFA's published MAC counts recover it. Our MAC count of
    the 30 ms subnet at 224 is OFA's 339M; every subnet's count at its recovered resolution is
    within 5% of the published one."""
    space = search_spaces.get("ofa-mbv3")
    for ms, path in _configs(shared_data):
        published = NOTE10_SUBNET_MACS[path.parent.name.replace("-", "@")]
        arch = arch_from_ofa_net_config(path)
        resolution = resolution_for_macs(arch, published)
        at = dataclasses.replace(arch, resolution=resolution)
        wide = dataclasses.replace(search_spaces.get(arch.space), resolutions=(resolution,))
        macs = count(wide, at)[0] / 1e6
        assert macs == pytest.approx(published, rel=0.05), path.parent.name
        if ms == 30:
            assert resolution == 224
            assert count(space, at)[0] / 1e6 == pytest.approx(339, abs=0.5)
    with pytest.raises(OfaConfigError, match="at least one candidate"):
        resolution_for_macs(arch, 100, resolutions=())
