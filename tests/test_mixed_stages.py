"""Stages whose layers choose their block kind (``blocks``) or attention kind per layer: grammar,
counting and operators of the space, one weight set per kind in the supernet, and the whole job
(train, measure, search, extract) on such a space through the ``nas`` command."""

from __future__ import annotations

import itertools
import json
import random

import numpy as np
import pytest
import yaml

from nas.arch import Arch
from nas.cli import main
from nas.space import SearchSpace, SpaceError

MIXED = {
    "name": "mixed-tiny",
    "in_channels": 3,
    "num_classes": 10,
    "resolutions": [8, 12],
    "stem": {"widths": [8], "stride": 1, "kernel": 3},
    "stages": [
        {
            "blocks": ["mbconv", "fused_mbconv"],
            "per_layer": ["block"],
            "depths": [1, 2],
            "widths": [8, 16],
            "kernels": [3],
            "expand_ratios": [1, 2],
            "stride": 2,
            "activation": "relu",
        },
        {
            "kind": "transformer",
            "depths": [1, 2],
            "widths": [16],
            "attentions": ["softmax", "relu_linear"],
            "per_layer": ["attention"],
            "head_dim": 8,
            "mlp_ratios": [2],
            "stride": 1,
        },
    ],
    "head": {"expand_ratio": 2, "feature_width": 16},
}


@pytest.fixture
def mixed():
    return SearchSpace.from_dict(MIXED)


def test_a_stage_declares_its_block_kinds(mixed):
    first, second = mixed.stages
    assert first.blocks == ("mbconv", "fused_mbconv") and first.choices["block"] == first.blocks
    assert [d.name for d in mixed.dimensions[3:6]] == [
        "stages[0].depth",
        "stages[0].width",
        "stages[0].block[0]",
    ]
    assert "block" not in second.choices and second.blocks == ("transformer",)
    arch = mixed.sample(3)
    assert isinstance(arch.stages[0].block, tuple) and arch.stages[1].block is None
    assert "block" in arch.to_dict()["stages"][0] and "block" not in arch.to_dict()["stages"][1]


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"blocks": ["mbconv", "transformer"]}, "'mbconv' and 'transformer' cannot share a stage"),
        ({"blocks": ["mbconv", "lstm"]}, r"blocks = 'lstm' is not allowed; choices: \[.*'mbconv'"),
        ({"blocks": ["mbconv", "mbconv"]}, "must be a list of distinct block kinds"),
        ({"blocks": ["mbconv", "head"]}, r"blocks = 'head' is not allowed"),
        ({"kind": "transformer"}, r"kind = 'transformer' must be one of its blocks"),
        ({"per_layer": ["attention"]}, r"per_layer = \['attention'\] must list choices"),
    ],
)
def test_bad_block_choices_are_refused_with_what_is_allowed(patch, message):
    stages = [{**MIXED["stages"][0], **patch}, MIXED["stages"][1]]
    with pytest.raises(SpaceError, match=message):
        SearchSpace.from_dict({**MIXED, "stages": stages})


def test_size_sampling_mutation_crossover_and_encoding_cover_the_kinds(mixed):
    distinct = {
        mixed._assemble(v) for v in itertools.product(*(d.values for d in mixed.dimensions))
    }
    assert mixed.size() == len(distinct)
    rng = random.Random(0)
    archs = [mixed.sample(rng) for _ in range(300)]
    seen_blocks = {b for a in archs for b in a.stages[0].block}
    seen_attention = {x for a in archs for x in a.stages[1].attention}
    assert seen_blocks == {"mbconv", "fused_mbconv"}
    assert seen_attention == {"softmax", "relu_linear"}
    assert any(len(set(a.stages[0].block)) == 2 for a in archs)  # kinds mixed within a stage
    for a, b in zip(archs, archs[1:], strict=False):
        mixed.validate(mixed.mutate(a, rng, 0.5))
        mixed.validate(mixed.crossover(a, b, rng))
    assert mixed.mutate(archs[0], 1, 0.0) == archs[0]
    unique = sorted(set(archs), key=lambda a: a.to_json())
    vectors = mixed.encode_many(unique)
    assert len({v.tobytes() for v in vectors}) == len(unique)
    data = archs[0].to_dict()
    data["stages"][0]["block"] = ["mbconv", "resnet"][: archs[0].stages[0].depth]
    with pytest.raises(Exception, match=r"stages\[0\].block\[\d\] = .* is not allowed"):
        mixed.validate(Arch.from_dict(data))


def test_each_kind_of_a_slot_has_its_own_weights(mixed):
    import torch

    from nas.layers import layers_of
    from nas.supernet import KindChoice, Supernet

    supernet = Supernet(mixed)
    slot = supernet.get_submodule("stages.0.layers.1")
    assert isinstance(slot, KindChoice) and set(slot) == {"mbconv", "fused_mbconv"}
    names = [n for n, _ in supernet.named_parameters()]
    assert any(n.startswith("stages.0.layers.1.mbconv.") for n in names)
    assert any(n.startswith("stages.0.layers.1.fused_mbconv.") for n in names)
    arch = mixed.sample(0)
    stages = list(arch.stages)
    stages[0] = type(stages[0])(2, 16, block=("fused_mbconv", "mbconv"), kernel=3, expand_ratio=2)
    arch = Arch(arch.space, arch.resolution, arch.stem, tuple(stages))
    supernet.set_arch(mixed.validate(arch))
    assert [type(layer).__name__ for layer in layers_of(mixed, arch)][1:3] == [
        "FusedMBConvLayer",
        "MBConvLayer",
    ]
    supernet(torch.randn(2, 3, 12, 12)).sum().backward()
    grads = {n for n, p in supernet.named_parameters() if p.grad is not None}
    assert any(n.startswith("stages.0.layers.0.fused_mbconv.") for n in grads)
    assert not any(n.startswith("stages.0.layers.0.mbconv.") for n in grads)
    assert any(n.startswith("stages.0.layers.1.mbconv.") for n in grads)


TRAIN = (
    "train --data digits --epochs 1 --train-limit 64 --eval-limit 40 --batch-size 32 "
    "--calib-images 32 --pool-draws 60 --levels 2 --pool-size 20 --no-progress"
)
MEASURE = (
    "device measure --backend onnxruntime --warmup 1 --repeats 1 --passes 1 "
    "--min-time-ms 0 --min-span-ms 0 --models 2"
)


def test_train_measure_search_and_extract_a_mixed_space(tmp_path):
    space = tmp_path / "mixed.yaml"
    space.write_text(yaml.safe_dump(MIXED))
    run, profile = tmp_path / "run", tmp_path / "profile.json"
    assert main([*TRAIN.split(), "--space", str(space), "--out", str(run)]) == 0
    assert main([*MEASURE.split(), "--space", str(space), "--out", str(profile)]) == 0
    kinds = {r["kind"] for r in json.loads(profile.read_text())["kernels"]}
    assert {"attn-softmax", "attn-relu_linear"} <= kinds

    search = f"search --run {run} --device {profile} --latency-ms 100 --evaluations 10"
    assert main([*search.split(), "--batch-size", "5", "--name", "s"]) == 0
    history = [
        json.loads(line)["arch"]
        for line in (run / "search" / "s" / "history.jsonl").read_text().splitlines()
    ]
    assert history and all(
        len(h["stages"][1]["attention"]) == h["stages"][1]["depth"] for h in history
    )
    assert all(len(h["stages"][0]["block"]) == h["stages"][0]["depth"] for h in history)

    out = tmp_path / "model.onnx"
    extract = f"extract --run {run} --device {profile} --latency-ms 100 --out {out}"
    assert main(extract.split()) == 0
    card = json.loads((tmp_path / "model.onnx.card.json").read_text())
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    side = card["arch"]["resolution"]
    logits = session.run(None, {"image": np.zeros((1, 1, side, side), dtype=np.float32)})[0]
    assert logits.shape == (1, 10) and np.isfinite(logits).all()
