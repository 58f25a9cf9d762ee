"""(space, arch) -> operator graph: one node per operator with shapes, MACs and parameters.

MACs count multiply-accumulates of convolutions, linear layers and matrix products (what
``torch.utils.flop_counter`` counts, halved); element-wise operators have 0 MACs but are nodes,
so latency kernels can be cut from the graph. Shapes exclude the batch dimension:
``(C, H, W)`` for feature maps, ``(N, C)`` for token sequences, ``(heads, N, M)`` for attention.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import networkx as nx

from nas.arch import Arch
from nas.layers import HeadLayer, Layer, MBConvLayer, StemLayer, TransformerLayer, layers_of
from nas.space import SearchSpace

Shape = tuple[int, ...]


class _Builder:
    """Appends operator nodes of one layer at a time, wiring data-flow edges."""

    def __init__(self, graph: nx.DiGraph):
        self.graph = graph
        self.layer: Layer | None = None

    def op(
        self,
        name: str,
        op: str,
        inputs: list[str],
        in_shape: Shape,
        out_shape: Shape,
        macs: int = 0,
        params: int = 0,
        **attrs,
    ) -> str:
        node = f"{self.layer.slot}/{name}"
        self.graph.add_node(
            node,
            op=op,
            block=self.layer.slot,
            block_kind=_kind(self.layer),
            input_shape=in_shape,
            output_shape=out_shape,
            macs=int(macs),
            params=int(params),
            **attrs,
        )
        for source in inputs:
            self.graph.add_edge(source, node)
        return node

    def conv(
        self,
        name: str,
        x: str,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int,
        hw: int,
        groups: int = 1,
        bias: bool = False,
    ) -> tuple[str, int]:
        out_hw = (hw - 1) // stride + 1
        weights = out_ch * (in_ch // groups) * kernel * kernel
        node = self.op(
            name,
            "conv",
            [x],
            (in_ch, hw, hw),
            (out_ch, out_hw, out_hw),
            macs=out_hw * out_hw * weights,
            params=weights + (out_ch if bias else 0),
            kernel=kernel,
            stride=stride,
            groups=groups,
            in_channels=in_ch,
            out_channels=out_ch,
        )
        return node, out_hw

    def conv_bn_act(
        self,
        name: str,
        x: str,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int,
        hw: int,
        act: str | None,
        depthwise: bool = False,
    ) -> tuple[str, int]:
        groups = out_ch if depthwise else 1
        node, out_hw = self.conv(f"{name}.conv", x, in_ch, out_ch, kernel, stride, hw, groups)
        shape = (out_ch, out_hw, out_hw)
        node = self.op(f"{name}.bn", "batchnorm", [node], shape, shape, params=2 * out_ch)
        if act:
            node = self.op(f"{name}.act", act, [node], shape, shape)
        return node, out_hw

    def linear(
        self, name: str, x: str, tokens: int | None, in_f: int, out_f: int, bias: bool = True
    ) -> str:
        """A linear layer on ``tokens`` vectors, or on one vector when ``tokens`` is None."""
        lead = (tokens,) if tokens else ()
        return self.op(
            name,
            "linear",
            [x],
            (*lead, in_f),
            (*lead, out_f),
            macs=(tokens or 1) * in_f * out_f,
            params=in_f * out_f + (out_f if bias else 0),
            in_features=in_f,
            out_features=out_f,
        )


def _kind(layer: Layer) -> str:
    return {
        StemLayer: "stem",
        MBConvLayer: "mbconv",
        TransformerLayer: "transformer",
        HeadLayer: "head",
    }[type(layer)]


def _stem(b: _Builder, layer: StemLayer, x: str) -> str:
    node, _ = b.conv_bn_act(
        "stem",
        x,
        layer.in_ch,
        layer.out_ch,
        layer.kernel,
        layer.stride,
        layer.in_hw,
        layer.activation,
    )
    return node


def _mbconv(b: _Builder, layer: MBConvLayer, x: str) -> str:
    hw, mid, act = layer.in_hw, layer.mid_ch, layer.activation
    node = x
    if layer.expand_ratio != 1:
        node, _ = b.conv_bn_act("expand", node, layer.in_ch, mid, 1, 1, hw, act)
    node, hw = b.conv_bn_act(
        "depthwise", node, mid, mid, layer.kernel, layer.stride, hw, act, depthwise=True
    )
    if layer.se:
        shape, se = (mid, hw, hw), layer.se_ch
        pooled = b.op("se.pool", "global_pool", [node], shape, (mid, 1, 1))
        reduced, _ = b.conv("se.reduce", pooled, mid, se, 1, 1, 1, bias=True)
        reduced = b.op("se.relu", "relu", [reduced], (se, 1, 1), (se, 1, 1))
        gate, _ = b.conv("se.expand", reduced, se, mid, 1, 1, 1, bias=True)
        gate = b.op("se.gate", "hsigmoid", [gate], (mid, 1, 1), (mid, 1, 1))
        node = b.op("se.scale", "mul", [node, gate], shape, shape)
    node, hw = b.conv_bn_act("project", node, mid, layer.out_ch, 1, 1, hw, None)
    if layer.residual:
        shape = (layer.out_ch, hw, hw)
        node = b.op("add", "add", [node, x], shape, shape)
    return node


def _transformer(b: _Builder, layer: TransformerLayer, x: str) -> str:
    n, c, heads, d = layer.hw * layer.hw, layer.width, layer.heads, layer.head_dim
    dv, inner_v, hidden = layer.v_dim, layer.heads * layer.v_dim, layer.mlp_hidden
    tokens, image = (n, c), (c, layer.hw, layer.hw)
    x = b.op("to_tokens", "reshape", [x], image, tokens)
    norm = b.op("norm1", "layernorm", [x], tokens, tokens, params=2 * c)
    q = b.linear("attn.q", norm, n, c, layer.qk_dim)
    k = b.linear("attn.k", norm, n, c, layer.qk_dim)
    v = b.linear("attn.v", norm, n, c, inner_v)
    local, _ = b.conv(
        "attn.v_local", v, inner_v, inner_v, 3, 1, layer.hw, groups=inner_v, bias=True
    )
    if layer.attention == "softmax":
        scores = b.op(
            "attn.scores", "matmul", [q, k], (heads, n, d), (heads, n, n), macs=heads * n * n * d
        )
        scores = b.op(
            "attn.pos_bias",
            "add",
            [scores],
            (heads, n, n),
            (heads, n, n),
            params=heads * (2 * layer.hw - 1) ** 2,
        )
        probs = b.op("attn.softmax", "softmax", [scores], (heads, n, n), (heads, n, n))
        out = b.op(
            "attn.context",
            "matmul",
            [probs, v],
            (heads, n, n),
            (heads, n, dv),
            macs=heads * n * n * dv,
        )
    else:
        q = b.op("attn.q_relu", "relu", [q], (heads, n, d), (heads, n, d))
        k = b.op("attn.k_relu", "relu", [k], (heads, n, d), (heads, n, d))
        kv = b.op(
            "attn.kv", "matmul", [k, v], (heads, n, d), (heads, d, dv), macs=heads * d * n * dv
        )
        num = b.op(
            "attn.numerator",
            "matmul",
            [q, kv],
            (heads, n, d),
            (heads, n, dv),
            macs=heads * n * d * dv,
        )
        ksum = b.op("attn.k_sum", "reduce_sum", [k], (heads, n, d), (heads, 1, d))
        den = b.op(
            "attn.denominator",
            "matmul",
            [q, ksum],
            (heads, n, d),
            (heads, n, 1),
            macs=heads * n * d,
        )
        out = b.op("attn.normalize", "div", [num, den], (heads, n, dv), (heads, n, dv))
    out = b.op("attn.add_local", "add", [out, local], (n, inner_v), (n, inner_v))
    out = b.op("attn.act", layer.activation, [out], (n, inner_v), (n, inner_v))
    out = b.linear("attn.proj", out, n, inner_v, c)
    x = b.op("attn.residual", "add", [out, x], tokens, tokens)
    norm = b.op("norm2", "layernorm", [x], tokens, tokens, params=2 * c)
    hid = b.linear("mlp.fc1", norm, n, c, hidden)
    hid = b.op("mlp.act", layer.activation, [hid], (n, hidden), (n, hidden))
    out = b.linear("mlp.fc2", hid, n, hidden, c)
    x = b.op("mlp.residual", "add", [out, x], tokens, tokens)
    return b.op("to_image", "reshape", [x], tokens, image)


def _head(b: _Builder, layer: HeadLayer, x: str) -> str:
    node, hw = b.conv_bn_act(
        "expand", x, layer.in_ch, layer.expand_ch, 1, 1, layer.in_hw, layer.activation
    )
    node = b.op("pool", "global_pool", [node], (layer.expand_ch, hw, hw), (layer.expand_ch,))
    node = b.linear("feature", node, None, layer.expand_ch, layer.feature_ch, bias=False)
    node = b.op("act", layer.activation, [node], (layer.feature_ch,), (layer.feature_ch,))
    return b.linear("classifier", node, None, layer.feature_ch, layer.num_classes)


_EMITTERS = {
    StemLayer: _stem,
    MBConvLayer: _mbconv,
    TransformerLayer: _transformer,
    HeadLayer: _head,
}


def operator_graph(space: SearchSpace, arch: Arch) -> nx.DiGraph:
    """The subnet's operators; graph attributes ``macs`` and ``params`` hold the totals."""
    graph = nx.DiGraph(space=space.name, resolution=arch.resolution)
    builder = _Builder(graph)
    node = _add_input(graph, (space.in_channels, arch.resolution, arch.resolution))
    for layer in layers_of(space, arch):
        builder.layer = layer
        node = _EMITTERS[type(layer)](builder, layer, node)
    graph.graph["macs"] = sum(a["macs"] for _, a in graph.nodes(data=True))
    graph.graph["params"] = sum(a["params"] for _, a in graph.nodes(data=True))
    return graph


def layer_operator_graph(layer: Layer) -> nx.DiGraph:
    """The operators of one layer, fed by a node ``input`` holding the layer's input shape.

    Its operator nodes are the ones :func:`operator_graph` gives that layer in a whole subnet.
    """
    graph = nx.DiGraph()
    builder = _Builder(graph)
    builder.layer = layer
    _EMITTERS[type(layer)](
        builder, layer, _add_input(graph, (layer.in_ch, layer.in_hw, layer.in_hw))
    )
    return graph


def _add_input(graph: nx.DiGraph, shape: Shape) -> str:
    """The node ``input`` that feeds the first operator with a tensor of ``shape``."""
    graph.add_node(
        "input",
        op="input",
        block="input",
        block_kind="input",
        macs=0,
        params=0,
        input_shape=(),
        output_shape=shape,
    )
    return "input"


@dataclass(frozen=True)
class BlockSummary:
    block: str
    kind: str
    input_shape: Shape
    output_shape: Shape
    macs: int
    params: int


def block_summaries(graph: nx.DiGraph) -> list[BlockSummary]:
    """Per-layer totals, in execution order."""
    nodes: dict[str, list[dict]] = defaultdict(list)
    for _, attrs in graph.nodes(data=True):
        if attrs["op"] != "input":
            nodes[attrs["block"]].append(attrs)
    return [
        BlockSummary(
            block,
            ops[0]["block_kind"],
            ops[0]["input_shape"],
            ops[-1]["output_shape"],
            sum(o["macs"] for o in ops),
            sum(o["params"] for o in ops),
        )
        for block, ops in nodes.items()
    ]


def count(space: SearchSpace, arch: Arch) -> tuple[int, int]:
    """(MACs, parameters) of a subnet."""
    graph = operator_graph(space, arch)
    return graph.graph["macs"], graph.graph["params"]
