"""Published models as presets: their parameter counts from the operator graph against the
published ones, `nas presets`, `nas sample --preset` and `nas extract --preset` through the
`nas` command into fresh folders; and the head options the presets need (no expand conv, no
feature layer, BatchNorm folded into the classifiers at export, a distillation classifier)."""

from __future__ import annotations

import json
import random

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import search_spaces
from nas import presets
from nas.arch import Arch
from nas.blocks.nn import build_model, deployed
from nas.extract import extract
from nas.graph import count
from nas.space import SearchSpace
from nas.supernet import Supernet
from tests.conftest import run_nas, trained_looking

#: The published models built in (more join as their kinds land).
EXPECTED = {
    "mobilenetv2-1.0",
    "repvit-m0.9",
    "efficientformer-l1",
    "mobilevit-xxs",
    "mobilevit-xs",
    "mobilevit-s",
    "mobilevitv2-0.5",
    "efficientvit-m0",
}


def test_presets_are_archs_of_built_in_spaces():
    assert set(presets.names()) >= EXPECTED
    for name in presets.names():
        preset = presets.get(name)
        assert preset.space in search_spaces.names(), name
        search_spaces.get(preset.space).validate(preset.arch)
        assert preset.arch.space == preset.space


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_params_within_3_percent_of_published(name):
    preset = presets.get(name)
    macs, params = preset.counts()
    assert abs(params / preset.published_params - 1) <= 0.03, (params, preset.published_params)
    if preset.published_macs is not None:  # stated next to the published figure; within 5%
        assert abs(macs / preset.published_macs - 1) <= 0.05, (macs, preset.published_macs)


@pytest.mark.parametrize("name", ["repvit-m0.9", "efficientvit-m0"])
def test_preset_count_is_the_exported_models(name):
    """The operator graph counts the model as exported (RepViT's folded mixers, the head's
    BatchNorm folded into its classifier)."""
    preset = presets.get(name)
    space = search_spaces.get(preset.space)
    model = deployed(build_model(space, preset.arch), space, preset.arch)
    assert sum(p.numel() for p in model.parameters()) == preset.counts()[1]


def test_nas_presets_lists_counts_next_to_published(tmp_path):
    out = run_nas("presets", cwd=tmp_path).stdout
    for name in presets.names():
        preset = presets.get(name)
        params = preset.counts()[1]
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert f"{params / 1e6:.3f}M" in row and f"{preset.published_params / 1e6:.2f}M" in row


def test_sample_preset_prints_its_arch_line(tmp_path):
    done = run_nas("sample", "--preset", "efficientformer-l1", cwd=tmp_path)
    (line,) = done.stdout.splitlines()
    record = json.loads(line)
    preset = presets.get("efficientformer-l1")
    assert Arch.from_dict(record["arch"]) == preset.arch
    assert (record["macs"], record["params"]) == preset.counts()
    assert record["arch"]["stages"][3]["mixer"] == ["pool", "pool", "pool", "attention"]
    (tmp_path / "l1.jsonl").write_text(done.stdout)
    inspected = run_nas("inspect", "l1.jsonl", cwd=tmp_path).stdout
    assert "space efficientformer, resolution 224" in inspected


@pytest.mark.parametrize(
    "args",
    [
        ["sample", "--preset", "no-such-model"],
        ["sample", "--preset", "repvit-m0.9", "-n", "3"],
        ["extract", "--preset", "no-such-model", "--out", "m.onnx"],
        ["extract", "--preset", "repvit-m0.9", "--arch", "a.json", "--out", "m.onnx"],
        ["extract", "--preset", "repvit-m0.9", "--space", "hybrid-tiny", "--out", "m.onnx"],
    ],
)
def test_preset_misuse_is_refused_in_one_line(args, tmp_path):
    done = run_nas(*args, cwd=tmp_path, expect=2)
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["mobilenetv2-1.0", "efficientvit-m0"])
def test_extract_preset_writes_a_working_model(name, tmp_path):
    run_nas("extract", "--preset", name, "--format", "onnx", "--out", "m.onnx", cwd=tmp_path)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    logits = session.run(None, {"image": image})[0]
    assert logits.shape == (1, 1000) and np.isfinite(logits).all()
    torch.manual_seed(0)  # the command's default --seed: the same fresh weights
    preset = presets.get(name)
    model = build_model(search_spaces.get(preset.space), preset.arch).eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(image)).numpy()
    assert np.abs(logits - expected).max() <= 1e-4


def test_malformed_preset_file_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("format: nas-preset\nversion: 1\nname: bad\n")
    with pytest.raises(presets.PresetError, match="missing"):
        presets.load(path)
    path.write_bytes(b"\x00\x01binary")
    with pytest.raises(presets.PresetError):
        presets.load(path)
    good = presets.get("repvit-m0.9")
    path.write_text(
        json.dumps(
            {
                "format": "nas-preset",
                "version": 1,
                "name": "bad",
                "model": "x",
                "source": "x",
                "space": "repvit",
                "published": {"params": 1},
                "arch": {**good.arch.to_dict(), "resolution": 999},
            }
        )
    )
    with pytest.raises(presets.PresetError, match="resolution"):
        presets.load(path)


# --------------------------------------------------------------------- head options


def _head_space(head: dict) -> SearchSpace:
    return SearchSpace.from_dict(
        {
            "name": "head-options",
            "num_classes": 5,
            "resolutions": [8, 12],
            "stem": {"widths": [4, 8], "stride": 1},
            "stages": [
                {
                    "kind": "mbconv",
                    "depths": [1, 2],
                    "widths": [8, 16],
                    "kernels": [3],
                    "expand_ratios": [2],
                    "stride": 2,
                }
            ],
            "head": head,
        }
    )


@pytest.mark.parametrize(
    "head",
    [
        {"feature_width": 0, "norm": "batchnorm", "distillation": True},
        {"expand_width": 24, "feature_width": 0, "activation": "relu6"},
        {"expand_ratio": 2, "feature_width": 12, "norm": "batchnorm"},
    ],
)
def test_head_options_equal_supernet_counts_and_export(head):
    space = _head_space(head)
    torch.manual_seed(0)
    supernet = trained_looking(Supernet(space))
    rng = random.Random(0)
    for arch in [space.min_arch(), space.max_arch(), *(space.sample(rng) for _ in range(4))]:
        image = torch.randn(2, 3, arch.resolution, arch.resolution)
        model = trained_looking(extract(supernet, arch), seed=1)
        exported = deployed(model, space, arch)
        supernet_model = extract(supernet, arch).eval()
        supernet.set_arch(arch)
        macs, params = count(space, arch)
        with torch.no_grad():
            assert (supernet_model(image) - supernet(image)).abs().max() <= 1e-5
            assert (exported(image) - model(image)).abs().max() <= 1e-5
            with FlopCounterMode(display=False) as counter:
                exported(image[:1])
        assert params == sum(p.numel() for p in exported.parameters())
        assert abs(macs - counter.get_total_flops() / 2) <= 0.01 * macs
        if head.get("norm") == "batchnorm":
            assert exported[-1].bn is None and model[-1].bn is not None


def test_mobile_zoo_holds_the_zoo_kinds_at_imagenet_scale(tmp_path):
    space = search_spaces.get("mobile-zoo")
    assert 224 in space.resolutions and space.num_classes == 1000
    assert {"mbconv", "fused_mbconv", "repvit"} == set(space.stages[0].blocks)
    for stage in space.stages[2:]:
        assert {
            "transformer",
            "mobilevit",
            "mobilevitv2",
            "efficientformer",
            "efficientvit_mit",
            "efficientvit_msra",
        } == set(stage.blocks)
    assert "mobile-zoo" in run_nas("spaces", cwd=tmp_path).stdout
    smallest, largest = count(space, space.min_arch()), count(space, space.max_arch())
    assert smallest < largest  # MACs and params from the operator graph, no model built


# --------------------------------------------------------------------- EfficientViT (Microsoft)


def test_windowed_cascaded_attention_runs_on_each_padded_window():
    """EfficientViT's local window attention: the map is padded with zeros at the bottom and
    right to whole windows, each window attends alone with the same weights, the padding is cut
    off; maps no wider than the window attend globally."""
    from nas.blocks.efficientvit_msra import EfficientViTMSRALayer
    from nas.blocks.nn.efficientvit_msra import CascadedGroupAttention

    layer = EfficientViTMSRALayer("x", 9, 8, 2, 4, 2, "softmax", "relu", window=4)
    attention = trained_looking(CascadedGroupAttention(layer)).eval()
    x = torch.randn(2, 8, 9, 9)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 3))
    expected = torch.zeros(2, 8, 12, 12)
    with torch.no_grad():
        for i in range(3):
            for j in range(3):
                rows, cols = slice(4 * i, 4 * i + 4), slice(4 * j, 4 * j + 4)
                expected[:, :, rows, cols] = attention.cascade(padded[:, :, rows, cols])
        assert (attention(x) - expected[:, :, :9, :9]).abs().max() <= 1e-5
        moved = x.clone()
        moved[:, :, 8, 8] += 1.0  # in the last window: the first window's output stays
        change = (attention(moved) - attention(x)).abs()
        assert change[:, :, :4, :4].max() == 0 and change[:, :, 8:, 8:].max() > 1e-4
    assert layer.window_grid == 3 and layer.attention_side == 4
    small = EfficientViTMSRALayer("x", 4, 8, 2, 4, 2, "softmax", "relu", window=0)
    assert small.attention_side == 4 and small.window_grid == 1


def test_cascaded_heads_that_do_not_divide_the_width_take_the_most_that_do():
    """mobile-zoo's heads were chosen for MobileViT's widths (9 heads at 64 channels): an
    EfficientViT (Microsoft) layer there takes the most heads below the choice that split the
    width evenly (and, under separable attention, into multiples of head_dim), and the supernet
    computes what the extracted model does."""
    from nas.blocks.efficientvit_msra import EfficientViTMSRALayer, cascade_heads
    from nas.layers import layers_of

    assert cascade_heads(64, 4, 16, "softmax") == 4  # EfficientViT-M0's own: unchanged
    assert cascade_heads(64, 9, 8, "softmax") == 8 and cascade_heads(80, 15, 8, "softmax") == 10
    assert (
        cascade_heads(48, 9, 16, "relu_linear") == 8 and cascade_heads(48, 9, 16, "separable") == 3
    )
    space = search_spaces.get("mobile-zoo")
    cascaded = [
        layer
        for seed in range(200)
        for layer in layers_of(space, space.sample(seed))
        if isinstance(layer, EfficientViTMSRALayer)
    ]
    for layer in cascaded:
        assert layer.width % layer.heads == 0 and layer.v_dim * layer.heads == layer.width
    assert {layer.heads for layer in cascaded} > {8, 10}  # heads the choices do not name
    # a small space of the same kind: the supernet's sliced heads = the extracted model's
    data = search_spaces.get("mobile-zoo").to_dict()
    data["resolutions"], data["num_classes"] = [32], 10
    data["stages"] = [
        {**data["stages"][0], "widths": [8], "depths": [1]},
        {**data["stages"][2], "blocks": ["efficientvit_msra"], "widths": [12, 16],
         "heads": [3, 5], "head_dim": 4, "depths": [2], "per_layer": ["attention"]},
    ]  # fmt: skip
    small = SearchSpace.from_dict(data)
    torch.manual_seed(0)
    supernet = trained_looking(Supernet(small)).eval()
    heads = set()
    for seed in range(6):
        arch = small.sample(seed)
        layers = layers_of(small, arch)
        heads |= {layer.heads for layer in layers if isinstance(layer, EfficientViTMSRALayer)}
        supernet.set_arch(arch)
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            assert (supernet(x) - extract(supernet, arch).eval()(x)).abs().max() <= 1e-5
    assert heads & {2, 4}  # 3 heads on 16 channels -> 2; 5 on 12 -> 4


def test_efficientvit_m0_preset_has_the_published_layout():
    """Four-conv stem to 1/16, windows of 7 on the 14x14 map only, patch merging (expand 4,
    squeeze-excite to a quarter) with residual pairs between stages, BatchNorm + classifier."""
    from nas.blocks.nn.patch_merging import PatchMerging
    from nas.layers import layers_of

    preset = presets.get("efficientvit-m0")
    space = search_spaces.get(preset.space)
    layers = {layer.slot: layer for layer in layers_of(space, preset.arch)}
    assert layers["stem"].conv_widths == (8, 16, 32, 64) and layers["stem"].out_hw == 14
    assert layers["stages.0.layers.0"].window == 7
    assert [layers[f"stages.{i}.layers.0"].hw for i in range(3)] == [14, 7, 4]
    assert all(layers[f"stages.{i}.layers.0"].window == 0 for i in (1, 2))
    merging = layers["stages.2.downsample"]
    assert (merging.in_ch, merging.mid_ch, merging.se_ch, merging.out_ch) == (128, 512, 128, 192)
    module = build_model(space, preset.arch)
    assert sum(isinstance(m, PatchMerging) for m in module.modules()) == 2
    assert module[-1].expand is None and module[-1].bn is not None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"window": -1}, "window"),
        ({"window": 3.5}, "window"),
        ({"downsample": "patchmerging"}, "patch_merging"),
        ({"stem": {"widths": [12], "convs": 4}}, "multiples of 8"),
        ({"stem": {"widths": [64], "convs": 5}}, "convs"),
    ],
)
def test_bad_efficientvit_settings_are_refused_in_one_line(change, named, tmp_path):
    import yaml

    data = search_spaces.get("efficientvit-msra").to_dict()
    if "stem" in change:
        data["stem"] = {**data["stem"], **change["stem"]}
    else:
        data["stages"] = [dict(data["stages"][0]), *data["stages"][1:]]
        data["stages"][1] = {**data["stages"][1], **change}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    done = run_nas("sample", "--space", "bad.yaml", cwd=tmp_path, expect=2)
    (line,) = done.stderr.strip().splitlines()
    assert named in line and "bad.yaml" in line
    assert not done.stdout
