"""(space, arch) -> operator graph: one node per operator with shapes, MACs and parameters.

MACs count multiply-accumulates of convolutions, linear layers and matrix products (what
``torch.utils.flop_counter`` counts, halved); element-wise operators have 0 MACs but are nodes,
so latency kernels can be cut from the graph. Shapes exclude the batch dimension:
``(C, H, W)`` for feature maps, ``(N, C)`` for token sequences, ``(heads, N, M)`` for attention.
Each layer's nodes come from its block kind (:meth:`nas.blocks.BlockKind.graph`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import networkx as nx

from nas.arch import Arch
from nas.blocks.registry import Layer, kind_of
from nas.layers import layers_of
from nas.space import SearchSpace

Shape = tuple[int, ...]


class GraphBuilder:
    """Appends the operator nodes of one layer at a time, wiring data-flow edges.

    Block kinds call it from their ``graph`` method. Nodes made inside ``with b.unit(kind,
    **features)`` form one structural latency unit: they get the attributes ``unit`` (its kind)
    and ``unit_features`` (what a latency predictor knows it by).
    """

    def __init__(self, graph: nx.DiGraph):
        self.graph = graph
        self.layer: Layer | None = None
        self._kind = ""
        self._unit: dict[str, Any] = {}
        self._copy = ""
        self._shared = False

    def start(self, layer: Layer) -> None:
        """Nodes from now on belong to ``layer``."""
        self.layer, self._kind = layer, kind_of(layer).name

    @contextmanager
    def unit(self, kind: str, **features: Any) -> Iterator[None]:
        """Mark the nodes made inside as one latency unit of ``kind`` with ``features``."""
        self._unit = {"unit": kind, "unit_features": features}
        try:
            yield
        finally:
            self._unit = {}

    @contextmanager
    def copy(self, name: str, shares_weights: bool) -> Iterator[None]:
        """Nodes made inside are one copy of a part a block runs several times, one after the
        other (EfficientViT's cascaded heads; MobileViT's transformer layers): named
        ``<name>.<op>``, attribute ``copy`` (so each copy's latency units stay apart), and with no
        parameters when ``shares_weights`` (they are an earlier copy's)."""
        self._copy, self._shared = name, shares_weights
        try:
            yield
        finally:
            self._copy, self._shared = "", False

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
        node = (
            f"{self.layer.slot}/{self._copy}.{name}" if self._copy else f"{self.layer.slot}/{name}"
        )
        if self._copy:
            attrs["copy"] = self._copy
        self.graph.add_node(
            node,
            op=op,
            block=self.layer.slot,
            block_kind=self._kind,
            input_shape=in_shape,
            output_shape=out_shape,
            macs=int(macs),
            params=0 if self._shared else int(params),
            **self._unit,
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


def emit(builder: GraphBuilder, layer: Layer, x: str) -> str:
    """Add ``layer``'s operators after node ``x`` (through its block kind); return the output."""
    builder.start(layer)
    return kind_of(layer).graph(builder, layer, x)


def operator_graph(space: SearchSpace, arch: Arch) -> nx.DiGraph:
    """The subnet's operators; graph attributes ``macs`` and ``params`` hold the totals."""
    graph = nx.DiGraph(space=space.name, resolution=arch.resolution)
    builder = GraphBuilder(graph)
    node = _add_input(graph, (space.in_channels, arch.resolution, arch.resolution))
    for layer in layers_of(space, arch):
        node = emit(builder, layer, node)
    graph.graph["macs"] = sum(a["macs"] for _, a in graph.nodes(data=True))
    graph.graph["params"] = sum(a["params"] for _, a in graph.nodes(data=True))
    return graph


def layer_operator_graph(layer: Layer) -> nx.DiGraph:
    """The operators of one layer, fed by a node ``input`` holding the layer's input shape.

    Its operator nodes are the ones :func:`operator_graph` gives that layer in a whole subnet.
    """
    graph = nx.DiGraph()
    emit(GraphBuilder(graph), layer, _add_input(graph, (layer.in_ch, layer.in_hw, layer.in_hw)))
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
