"""The operator graph agrees with PyTorch's FLOP counter and parameter count on built models."""

from __future__ import annotations

import random

import networkx as nx
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import search_spaces
from nas.blocks import build_model
from nas.graph import block_summaries, count, operator_graph

#: Random archs per space: a sample by default, the full proof with the tests marked slow.
ARCHS_PER_SPACE = {"elasticvit": 200, "ofa-mbv3": 200, "hybrid-tiny": 200, "ofa-mbv3-w1.0": 50}
SAMPLE_PER_SPACE = {"elasticvit": 10, "ofa-mbv3": 10, "hybrid-tiny": 30, "ofa-mbv3-w1.0": 5}
SIZES = [
    pytest.param(SAMPLE_PER_SPACE, id="sample"),
    pytest.param(ARCHS_PER_SPACE, id="all", marks=pytest.mark.slow),
]


def _zero_model(space, arch):
    """The static model with zero weights, built without paying for random initialisation."""
    with torch.device("meta"):
        model = build_model(space, arch)
    zeros = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in model.state_dict().items()}
    model.load_state_dict(zeros, assign=True)
    return model.eval()


def _torch_macs(model, arch, in_channels) -> float:
    image = torch.zeros(1, in_channels, arch.resolution, arch.resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(image)
    return counter.get_total_flops() / 2


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("name", list(ARCHS_PER_SPACE))
def test_macs_and_params_match_torch_on_random_archs(name, sizes):
    space = search_spaces.get(name)
    rng = random.Random(2024)
    worst = 0.0
    for _ in range(sizes[name]):
        arch = space.sample(rng)
        macs, params = count(space, arch)
        model = _zero_model(space, arch)
        assert params == sum(p.numel() for p in model.parameters()), arch
        reference = _torch_macs(model, arch, space.in_channels)
        worst = max(worst, abs(macs - reference) / reference)
    print(f"{name}: worst MAC difference over {sizes[name]} archs: {worst:.2e}")
    assert worst <= 0.01


def test_graph_has_one_node_per_operator_with_shapes(tiny_space):
    arch = tiny_space.max_arch()
    graph = operator_graph(tiny_space, arch)
    assert nx.is_directed_acyclic_graph(graph)
    ops = {attrs["op"] for _, attrs in graph.nodes(data=True)}
    assert {"conv", "batchnorm", "linear", "layernorm", "matmul", "softmax", "add"} <= ops
    for node, attrs in graph.nodes(data=True):
        assert {"input_shape", "output_shape", "macs", "params", "block"} <= set(attrs), node
    # The last operator produces the class scores.
    (sink,) = [n for n in graph if graph.out_degree(n) == 0]
    assert graph.nodes[sink]["output_shape"] == (tiny_space.num_classes,)
    blocks = block_summaries(graph)
    assert sum(b.macs for b in blocks) == graph.graph["macs"]
    assert [b.block for b in blocks][0] == "stem"


def test_bigger_choices_cost_more(tiny_space):
    small, large = (
        count(tiny_space, tiny_space.min_arch()),
        count(tiny_space, tiny_space.max_arch()),
    )
    assert small[0] < large[0] and small[1] < large[1]
