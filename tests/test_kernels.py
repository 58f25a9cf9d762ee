"""Operator graph -> kernels: coverage, fusion rules, specs, positions and kernel modules."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch

import search_spaces
from nas.blocks import Attention
from nas.blocks.nn.transformer import AttentionCore
from nas.graph import layer_operator_graph, operator_graph
from nas.layers import TransformerLayer, layers_of, slot_layer, slots
from predictors.kernels import FusionRule, FusionRules, KernelSpec, fusion_candidates, split_kernels
from predictors.modules import kernel_module, onnx_bytes
from predictors.positions import ArchIndexer

OPS = [
    ("op", first, second)
    for first in ("conv", "dwconv", "pwconv", "conv-bn", "dwconv-bn", "pwconv-bn", "linear", "add")
    for second in ("bn", "act", "add", "layernorm")
]
UNITS = [
    ("unit", first, second)
    for first in ("conv", "dwconv", "pwconv", "se")
    for second in ("conv", "dwconv", "pwconv", "se", "add")
]
RULE_SETS = {
    "none": FusionRules(),
    "ops": FusionRules.fusing(OPS),
    "ops+units": FusionRules.fusing(OPS + UNITS),
}


def _archs(space, n=30, seed=0):
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(n)] + [space.min_arch(), space.max_arch()]


@pytest.mark.parametrize("rules", RULE_SETS.values(), ids=RULE_SETS.keys())
def test_every_operator_is_in_exactly_one_kernel(tiny_space, rules):
    for space in (tiny_space, search_spaces.get("hybrid-tiny")):
        for arch in _archs(space, 15):
            graph = operator_graph(space, arch)
            kernels = split_kernels(graph, rules)
            covered = [node for kernel in kernels for node in kernel.nodes]
            assert len(covered) == len(set(covered))
            assert set(covered) == {n for n, a in graph.nodes(data=True) if a["op"] != "input"}
            # kernels never span two layers, so per-layer splits give the same kernels
            per_layer = [
                k.spec
                for layer in layers_of(space, arch)
                for k in split_kernels(layer_operator_graph(layer), rules)
            ]
            assert per_layer == [k.spec for k in kernels]


def test_fusion_rules_are_respected(tiny_space):
    arch = tiny_space.max_arch()
    stages = list(arch.stages)
    stages[1] = dataclasses.replace(stages[1], attention=("softmax", "relu_linear"))
    arch = dataclasses.replace(arch, stages=tuple(stages))
    graph = operator_graph(tiny_space, arch)
    kinds = {k.kind for k in split_kernels(graph, FusionRules())}
    assert {"pwconv", "bn", "act", "se", "attn-softmax", "attn-relu_linear", "head"} <= kinds
    rules = FusionRules([FusionRule("pwconv", "bn", True), FusionRule("pwconv-bn", "act", True)])
    kernels = split_kernels(graph, rules)
    for kernel in kernels:
        ops = [graph.nodes[n]["op"] for n in kernel.nodes]
        if kernel.kind.startswith("pwconv"):
            assert ops[:2] == ["conv", "batchnorm"]
    # a pointwise conv never stands alone before its batchnorm once the rule fuses them
    assert "pwconv" not in {k.kind for k in kernels}
    # a rule saying "not fused" splits like no rule at all
    not_fused = FusionRules([FusionRule("pwconv", "bn", False)])
    assert [k.spec for k in split_kernels(graph, not_fused)] == [
        k.spec for k in split_kernels(graph, FusionRules())
    ]
    joined = {k.kind for k in split_kernels(graph, RULE_SETS["ops+units"])}
    assert any("+" in kind for kind in joined)
    assert any(kind.startswith("pwconv-bn-act+dwconv-bn-act") for kind in joined)


def test_fusion_candidates_offer_operator_pairs_before_unit_pairs(tiny_space):
    graph = operator_graph(tiny_space, tiny_space.max_arch())
    first = fusion_candidates([graph], FusionRules())
    assert first and all(c.level == "op" for c in first)
    assert ("pwconv", "bn") in {(c.first, c.second) for c in first}
    later = fusion_candidates([graph], RULE_SETS["ops"])
    assert later and all(c.level == "unit" for c in later)
    for c in first + later:
        assert c.fused_spec != c.first_spec


def test_kernel_spec_keys_round_trip(tiny_space):
    for rules in RULE_SETS.values():
        for kernel in split_kernels(operator_graph(tiny_space, tiny_space.max_arch()), rules):
            spec = kernel.spec
            assert KernelSpec.from_key(spec.key) == spec
            assert KernelSpec.make(spec.kind, spec.feature_dict()) == spec
    with pytest.raises(ValueError):
        KernelSpec.from_key("no-colon")


@pytest.mark.parametrize("name", ["tiny", "elasticvit", "ofa-mbv3", "hybrid-tiny"])
def test_positions_rebuild_the_layers_of_every_arch(tiny_space, name):
    space = tiny_space if name == "tiny" else search_spaces.get(name)
    indexer = ArchIndexer(space)
    archs = _archs(space, 40, seed=3)
    index = indexer.indices(archs)
    for arch, row in zip(archs, index, strict=True):
        built = []
        for position in slots(space):
            if position.depth_dim is not None:
                depth = space.dimensions[position.depth_dim].values[row[position.depth_dim]]
                if depth <= position.layer:
                    continue
            values = [space.dimensions[d].values[row[d]] for d in position.deps]
            built.append(slot_layer(space, position, values))
        assert tuple(built) == layers_of(space, arch)


def test_indexer_rejects_archs_outside_the_space(tiny_space):
    from nas.arch import ArchError

    indexer = ArchIndexer(tiny_space)
    arch = tiny_space.max_arch()
    bad = dataclasses.replace(arch, resolution=999)
    with pytest.raises(ArchError, match="resolution = 999"):
        indexer.indices([arch, bad])
    other = search_spaces.get("hybrid-tiny").max_arch()
    with pytest.raises(ArchError):
        indexer.indices([other])


def test_kernel_modules_run_alike_in_torch_and_onnxruntime(tiny_space):
    import onnxruntime as ort

    specs = {}
    for rules in RULE_SETS.values():
        for arch in _archs(tiny_space, 4):
            for kernel in split_kernels(operator_graph(tiny_space, arch), rules):
                specs.setdefault(kernel.kind, kernel.spec)
    assert len(specs) > 20
    for spec in specs.values():
        module, inputs = kernel_module(spec)
        with torch.no_grad():
            expected = module(*inputs).numpy()
        session = ort.InferenceSession(
            onnx_bytes(module, inputs), providers=["CPUExecutionProvider"]
        )
        got = session.run(None, {f"input{i}": t.numpy() for i, t in enumerate(inputs)})[0]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=spec.kind)


@pytest.mark.parametrize("kind", ["softmax", "relu_linear"])
def test_attention_core_computes_what_the_block_does(kind):
    torch.manual_seed(0)
    layer = TransformerLayer("x", 4, 32, 4, 8, 2, 2, kind, "hswish")
    block = Attention(layer).eval()
    with torch.no_grad():
        block.pos_table.normal_() if block.pos_table is not None else None
        x = torch.randn(2, 16, 32)
        spec = KernelSpec.make(
            f"attn-{kind}", {"tokens": 16, "side": 4, "heads": 4, "head_dim": 8, "v_dim": 16}
        )
        core = AttentionCore(spec).eval()
        if block.pos_table is not None:
            core.attn.pos_table.copy_(block.pos_table)
        v = block.v(x)
        local = block.v_local(v.transpose(1, 2).reshape(2, 64, 4, 4))
        out = core(block.q(x), block.k(x), v) + local.flatten(2).transpose(1, 2)
        composed = block.proj(block.act(out))
        torch.testing.assert_close(composed, block(x))


def test_mobilevit_kernels_are_the_operators_its_model_runs():
    """MobileViT runs its transformer on the patch positions as one batch: each operator is one
    kernel (the attention core with the positions as extra heads), not one per patch position,
    which at small sizes would count each operator's fixed cost four times."""
    import onnx

    from nas.blocks.nn import build_block

    space = search_spaces.get("hybrid-zoo")
    largest = space.max_arch()
    stages = list(largest.stages)
    stages[2] = dataclasses.replace(
        stages[2], block=("mobilevit", "mobilevitv2"), attention=("softmax", "relu_linear")
    )
    arch = space.validate(dataclasses.replace(largest, resolution=32, stages=tuple(stages)))
    checked = 0
    for layer in layers_of(space, arch):
        if type(layer).__name__ not in ("MobileViTLayer", "MobileViTv2Layer"):
            continue
        kernels = split_kernels(layer_operator_graph(layer), FusionRules())
        block = build_block(layer).eval()
        image = torch.randn(1, layer.width, layer.hw, layer.hw)
        ops = [
            node.op_type for node in onnx.load_from_string(onnx_bytes(block, (image,))).graph.node
        ]
        assert sum(k.kind == "layernorm" for k in kernels) == ops.count("LayerNormalization")
        cores = [k.spec.feature_dict() for k in kernels if k.kind.startswith("attn-")]
        side = layer.hw // layer.patch
        assert len(cores) == layer.inner_depth
        if layer.attention == "softmax":
            assert ops.count("Softmax") == layer.inner_depth
        assert all(c["heads"] == layer.heads * layer.patch**2 for c in cores)
        assert all(c["tokens"] == side * side for c in cores)
        checked += 1
    assert checked == 2


@pytest.mark.parametrize("hw, window", [(14, 7), (6, 4)])  # whole windows; padded windows
def test_windowed_cascaded_attention_kernels_are_the_operators_its_model_runs(hw, window):
    """EfficientViT's window attention runs every window through each operator as one batch:
    one kernel per operator (each cascaded head timed on all windows at once), not one per
    window, which would count each operator's fixed cost once per window."""
    import onnx

    from nas.blocks.efficientvit_msra import EfficientViTMSRALayer
    from nas.blocks.nn import build_block

    layer = EfficientViTMSRALayer("s1.l0", hw, 32, 4, 8, 2, "softmax", "relu", window)
    windows = layer.window_grid**2
    assert windows == 4
    graph = layer_operator_graph(layer)
    kernels = split_kernels(graph, FusionRules())
    block = build_block(layer).eval()
    image = torch.randn(1, layer.width, hw, hw)
    ops = [node.op_type for node in onnx.load_from_string(onnx_bytes(block, (image,))).graph.node]
    assert sum(d["op"] in ("conv", "dwconv", "pwconv") for _, d in graph.nodes(data=True)) == (
        ops.count("Conv")
    )
    heads = [k.spec for k in kernels if k.kind == "cga-head"]
    assert len(heads) == layer.heads == ops.count("Softmax")
    assert all(h.get("windows") == windows for h in heads)
    assert sum(k.kind == "window-partition" for k in kernels) == 1
    assert sum(k.kind == "window-merge" for k in kernels) == 1
    # the head's kernel module runs every window: the batch of the model's heads
    module, inputs = kernel_module(heads[1], batch=1)
    assert inputs[0].shape == (windows, layer.v_dim, window, window)
    assert len(inputs) == 2  # a cascaded head also takes the previous head's output
    assert module(*inputs).numel() == 1
