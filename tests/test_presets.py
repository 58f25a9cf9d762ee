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


def test_preset_count_is_the_exported_models(tmp_path):
    """The operator graph counts the model as exported (RepViT's folded mixers, the head's
    BatchNorm folded into its classifier)."""
    preset = presets.get("repvit-m0.9")
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


def test_extract_preset_writes_a_working_model(tmp_path):
    run_nas(
        "extract",
        "--preset",
        "mobilenetv2-1.0",
        "--format",
        "onnx",
        "--out",
        "v2.onnx",
        cwd=tmp_path,
    )
    session = ort.InferenceSession(str(tmp_path / "v2.onnx"), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    logits = session.run(None, {"image": image})[0]
    assert logits.shape == (1, 1000) and np.isfinite(logits).all()
    torch.manual_seed(0)  # the command's default --seed: the same fresh weights
    preset = presets.get("mobilenetv2-1.0")
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
    assert {"transformer", "mobilevit", "mobilevitv2", "efficientformer"} == set(
        space.stages[-1].blocks
    )
    assert "mobile-zoo" in run_nas("spaces", cwd=tmp_path).stdout
    smallest, largest = count(space, space.min_arch()), count(space, space.max_arch())
    assert smallest < largest  # MACs and params from the operator graph, no model built
