"""The seed block zoo as users run it: the `hybrid-zoo` space (at one resolution) trained with
CAS+PAS on digits, measured with ONNX Runtime, searched under a latency budget and its winner
exported to ONNX, each through the `nas` command into fresh folders; and RepViT's folding at
export."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

import search_spaces
from nas.arch import Arch, StageArch
from nas.blocks.nn import build_model, deployed
from nas.blocks.nn.repvit import RepViTBlock
from nas.layers import layers_of
from tests.conftest import run_nas, trained_looking


@pytest.mark.slow  # minutes on 2 cores: `make test-all`; the kinds' conformance runs by default
def test_hybrid_zoo_trains_measures_searches_and_exports(tmp_path):
    """The built-in space's stages and kinds at one resolution (16 px) and one width each, so
    that the profile is quick."""

    def nas(*args: str) -> None:
        run_nas(*args, cwd=tmp_path)

    builtin = search_spaces.get("hybrid-zoo")
    assert {"mbconv", "fused_mbconv", "repvit"} == set(builtin.stages[0].blocks)
    global_kinds = {"transformer", "mobilevit", "mobilevitv2", "efficientformer"}
    global_kinds |= {"efficientvit_mit", "efficientvit_msra"}
    assert global_kinds == set(builtin.stages[2].blocks)
    space = tmp_path / "zoo16.yaml"
    smaller = {**builtin.to_dict(), "name": "hybrid-zoo-small", "resolutions": [16]}
    for part in [smaller["stem"], *smaller["stages"]]:
        part["widths"] = part["widths"][:1]
    space.write_text(yaml.safe_dump(smaller))
    run, profile, model = tmp_path / "run", tmp_path / "profile.json", tmp_path / "zoo.onnx"
    nas(
        *f"train --space {space} --data digits --sampler cas+pas --epochs 1 --train-limit 64 "
        f"--eval-limit 40 --batch-size 32 --calib-images 32 --pool-draws 60 --levels 2 "
        f"--pool-size 20 --no-progress --out {run}".split()
    )
    nas(
        *f"device measure --backend onnxruntime --space {space} --warmup 1 --repeats 1 "
        f"--passes 1 --min-time-ms 0 --min-span-ms 0 --models 2 --max-exact 0 --prior-per-kind 3 "
        f"--adaptive-rounds 1 --adaptive-batch 8 --out {profile}".split()
    )
    kinds = {k["kind"] for k in json.loads(profile.read_text())["kernels"]}
    assert {"pool-mixer", "attn-separable", "attn-softmax", "attn-relu_linear"} <= kinds
    assert {"lite-mla", "cga-head"} <= kinds
    nas(
        *f"search --run {run} --device {profile} --latency-ms 100 --evaluations 10 "
        f"--batch-size 5 --name zoo".split()
    )
    history = (run / "search" / "zoo" / "history.jsonl").read_text().splitlines()
    blocks = {b for line in history for s in json.loads(line)["arch"]["stages"] for b in s["block"]}
    assert len(blocks) >= 3, blocks  # the search meets several kinds
    nas(
        *f"extract --run {run} --device {profile} --latency-ms 100 --format onnx "
        f"--out {model}".split()
    )
    card = json.loads((tmp_path / "zoo.onnx.card.json").read_text())
    side = card["arch"]["resolution"]
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"image": np.zeros((1, 1, side, side), dtype=np.float32)})[0]
    assert logits.shape == (1, 10) and np.isfinite(logits).all()


def test_repvit_exports_one_depthwise_conv_per_token_mixer():
    space = search_spaces.get("hybrid-zoo")
    largest = space.max_arch()
    stages = [StageArch(2, 24, block=("repvit",) * 2, kernel=5, expand_ratio=2)]
    stages += [StageArch(2, 32, block=("repvit",) * 2, kernel=3, expand_ratio=4)]
    arch = space.validate(Arch(space.name, 24, largest.stem, (*stages, *largest.stages[2:])))
    torch.manual_seed(0)
    model = trained_looking(build_model(space, arch))
    image = torch.randn(2, 3, arch.resolution, arch.resolution)
    exported = deployed(model, space, arch)
    repvit = [b for b in exported if isinstance(b, RepViTBlock)]
    kept = [layer for layer in layers_of(space, arch) if getattr(layer, "identity", False)]
    assert kept and len(repvit) == 4
    for block in repvit:
        if block.identity:  # no branch left: one conv with bias, no BatchNorm
            assert isinstance(block.fused, torch.nn.Conv2d) and block.dw is block.dw1 is None
    with torch.no_grad():
        assert (exported(image) - model(image)).abs().max() <= 1e-4
