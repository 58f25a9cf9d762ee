"""Operator graph -> kernels: the pieces a backend runs as one unit, with their features.

Kernels are formed in two steps, both driven by :class:`FusionRules` measured per backend and stored
in the device profile:

1. *Units.* A unit is either *structural*, always one piece whatever the backend -- the nodes a
   block kind marks as a unit in the operator graph (node attributes ``unit``, ``unit_features``):
   squeeze-excite (``se``), the attention core of each attention kind (``attn-softmax``,
   ``attn-relu_linear``: scores to context, between the Q/K/V projections and the output
   projection) and the classifier ``head`` (pool, feature layer, classifier) -- or a *chain*: a leading operator (``conv``,
   ``dwconv``, ``pwconv``, ``linear``, ``add``, ``layernorm``, ``bn``, ``act``, ``reshape``,
   ``pool``, ``concat``) followed by the element-wise operators a backend fuses into it. The operator rule
   ``("pwconv", "bn")`` says a batchnorm after a pointwise conv runs inside it;
   ``("pwconv-bn", "act")`` that an activation after that runs inside it too, giving the unit kind
   ``pwconv-bn-act``.
2. *Kernels.* Consecutive units of one layer join into one kernel when the unit rule for their
   leaders says so (``("pwconv", "dwconv")``: a depthwise conv after a pointwise conv runs without
   a boundary between them, as ONNX Runtime does when it keeps both in its blocked memory layout).
   A joined kernel's kind lists its units: ``pwconv-bn-act+dwconv-bn-act``.

A :class:`KernelSpec` (kind + features: shapes, channels, kernel size, stride, tokens, heads, MACs,
parameters) says everything needed to rebuild a kernel as a standalone module
(:mod:`predictors.modules`) and to predict its latency; kernels with equal specs take equal time.
Kernels never span two layers. This module imports no torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from nas.blocks.registry import unit_names
from nas.grammar import ACTIVATIONS

#: Operators that may join the unit before them (``second`` of an operator rule).
FUSABLE = ("bn", "act", "add", "layernorm")
#: Unit leaders that element-wise operators may join.
LEADERS = ("conv", "dwconv", "pwconv", "linear", "add")
#: Unit leaders between which a unit rule may join two units into one kernel.
UNIT_FIRST = ("conv", "dwconv", "pwconv", "se")
UNIT_SECOND = ("conv", "dwconv", "pwconv", "se", "add")
ACTIVATION_OPS = (*ACTIVATIONS, "hsigmoid")
LEVELS = ("op", "unit")


# --------------------------------------------------------------------- kernel specs


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, KernelSpec):
        return value.feature_dict()
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class KernelSpec:
    """A kernel configuration: its kind and features (shapes, channels, kernel size, MACs, ...).

    A kernel of several units has kind ``unit1+unit2+...`` and a feature ``units`` holding one
    :class:`KernelSpec` per unit.
    """

    kind: str
    features: tuple[tuple[str, Any], ...]

    @classmethod
    def make(cls, kind: str, features: Mapping[str, Any]) -> KernelSpec:
        items = []
        for name in sorted(features):
            value = features[name]
            if name == "units":
                kinds = kind.split("+")
                if len(kinds) != len(value):
                    raise ValueError(
                        f"kernel kind {kind!r} has {len(kinds)} units, got {len(value)}"
                    )
                value = tuple(
                    v if isinstance(v, KernelSpec) else cls.make(k, v)
                    for k, v in zip(kinds, value, strict=True)
                )
            else:
                value = _freeze(value)
            items.append((name, value))
        return cls(kind, tuple(items))

    @property
    def key(self) -> str:
        """A canonical string naming this configuration (used in profiles and CSV files)."""
        return f"{self.kind}:{json.dumps(self.feature_dict(), separators=(',', ':'))}"

    def feature_dict(self) -> dict[str, Any]:
        return {name: _thaw(v) for name, v in self.features}

    def get(self, name: str, default: Any = None) -> Any:
        for key, value in self.features:
            if key == name:
                return value
        return default

    @property
    def conv_input_elements(self) -> int:
        """Elements of the image a convolution kernel reads (``cin`` x ``hw`` squared); 0 for
        every other kernel. Timed on its own, a convolution pays on every run a cost in proportion
        to its input that it does not pay inside a model (on ONNX Runtime on x86 most likely the
        conversion to and from its blocked NCHWc layout, which consecutive convolutions share):
        the latency predictor's overhead fit prices it per element (``Overhead.per_minput``)."""
        first = self.units[0]
        if first.get("cin") is None or first.get("hw") is None:
            return 0
        return int(first.get("cin")) * int(first.get("hw")) ** 2

    @property
    def units(self) -> tuple[KernelSpec, ...]:
        """The unit specs of this kernel (itself when it is one unit)."""
        return self.get("units") or (self,)

    @property
    def tokens(self) -> tuple[str, ...]:
        """The operator tokens of a one-unit chain kind (``pwconv-bn-act`` -> pwconv, bn, act)."""
        return (self.kind,) if self.structural else tuple(self.kind.split("-"))

    @property
    def leader(self) -> str:
        return self.tokens[0]

    @property
    def structural(self) -> bool:
        return self.kind in unit_names()

    @classmethod
    def from_key(cls, key: str) -> KernelSpec:
        kind, sep, text = key.partition(":")
        if not sep:
            raise ValueError(f"kernel key {key!r} has no ':' between kind and features")
        features = json.loads(text)
        if not isinstance(features, dict):
            raise ValueError(f"kernel key {key!r}: features must be a JSON object")
        return cls.make(kind, features)


def joined_spec(units: list[KernelSpec]) -> KernelSpec:
    """One kernel made of consecutive units."""
    if len(units) == 1:
        return units[0]
    return KernelSpec.make(
        "+".join(u.kind for u in units),
        {
            "units": units,
            "macs": sum(u.get("macs", 0) for u in units),
            "params": sum(u.get("params", 0) for u in units),
        },
    )


@dataclass(frozen=True)
class Kernel:
    """One kernel of a graph: its spec and the operator nodes it covers."""

    spec: KernelSpec
    nodes: tuple[str, ...]

    @property
    def kind(self) -> str:
        return self.spec.kind


# --------------------------------------------------------------------- fusion rules


@dataclass(frozen=True)
class FusionRule:
    """Whether ``second`` runs fused with ``first`` on a backend.

    ``level`` "op": ``first`` is a unit kind, ``second`` an element-wise operator token;
    ``level`` "unit": both are unit leaders (``pwconv``, ``dwconv``, ``se``, ...).
    """

    first: str
    second: str
    fused: bool
    level: str = "op"
    evidence: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "first": self.first,
            "second": self.second,
            "fused": self.fused,
            "evidence": dict(self.evidence),
        }


class FusionRules:
    """The fusion rules of a backend; pairs without a rule do not fuse."""

    def __init__(self, rules: Iterable[FusionRule] = ()):
        self._rules: dict[tuple[str, str, str], FusionRule] = {}
        for rule in rules:
            self.add(rule)

    def fuses(self, first: str, second: str, level: str = "op") -> bool:
        rule = self._rules.get((level, first, second))
        return bool(rule and rule.fused)

    def decided(self, first: str, second: str, level: str = "op") -> bool:
        return (level, first, second) in self._rules

    def add(self, rule: FusionRule) -> None:
        if rule.level not in LEVELS:
            raise ValueError(f"fusion rule level {rule.level!r}; choices: {', '.join(LEVELS)}")
        self._rules[(rule.level, rule.first, rule.second)] = rule

    def __iter__(self):
        return iter(self._rules.values())

    def __len__(self) -> int:
        return len(self._rules)

    def to_list(self) -> list[dict[str, Any]]:
        return [rule.to_dict() for rule in self._rules.values()]

    @classmethod
    def from_list(cls, data: Iterable[Mapping[str, Any]]) -> FusionRules:
        return cls(
            FusionRule(
                str(item["first"]),
                str(item["second"]),
                bool(item["fused"]),
                str(item.get("level", "op")),
                dict(item.get("evidence", {})),
            )
            for item in data
        )

    @classmethod
    def fusing(cls, pairs: Iterable[tuple[str, str, str]]) -> FusionRules:
        """Rules fusing each (level, first, second) of ``pairs``."""
        return cls(FusionRule(first, second, True, level) for level, first, second in pairs)

    def signature(self) -> tuple[tuple[str, str, str], ...]:
        """The fused pairs, sorted: two rule sets with the same signature split graphs alike."""
        return tuple(sorted(key for key, rule in self._rules.items() if rule.fused))


# --------------------------------------------------------------------- splitting


def _structural_kind(graph: nx.DiGraph, node: str) -> str | None:
    """The structural unit ``node`` belongs to, as its block kind marked it."""
    return graph.nodes[node].get("unit")


def op_token(attrs: Mapping[str, Any]) -> str:
    """The chain token of an operator node."""
    op = attrs["op"]
    if op == "conv":
        groups, cin = attrs["groups"], attrs["in_channels"]
        if groups > 1 and groups == cin == attrs["out_channels"]:
            return "dwconv"
        if attrs["kernel"] == 1 and groups == 1:
            return "pwconv"
        return "conv"
    if op in ACTIVATION_OPS:
        return "act"
    if op == "batchnorm":
        return "bn"
    if op == "global_pool":
        return "pool"
    return op


@dataclass
class _Unit:
    kind: str  # structural kind, or "" for a chain
    block: str
    nodes: list[str]
    tokens: list[str]

    @property
    def leader(self) -> str:
        return self.kind or self.tokens[0]

    @property
    def unit_kind(self) -> str:
        return self.kind or "-".join(self.tokens)


class _Splitter:
    """Groups operators into units, then units into kernels, by the rules.

    ``on_candidate(level, first, second, first_nodes, second_nodes)`` is called for every pair the
    rules do not decide, so the pairs a backend must be tested for can be collected.
    """

    def __init__(self, graph: nx.DiGraph, rules: FusionRules, on_candidate=None):
        self.graph = graph
        self.rules = rules
        self.on_candidate = on_candidate

    def units(self) -> list[_Unit]:
        graph = self.graph
        units: list[_Unit] = []
        unit_of: dict[str, _Unit] = {}
        structural: dict[tuple[str, str], _Unit] = {}
        for node, attrs in graph.nodes(data=True):
            if attrs["op"] == "input":
                continue
            kind = _structural_kind(graph, node)
            if kind is not None:
                key = (attrs["block"], kind, attrs.get("copy", ""))
                unit = structural.get(key)
                if unit is None:
                    unit = structural[key] = _Unit(kind, attrs["block"], [], [kind])
                    units.append(unit)
                unit.nodes.append(node)
                unit_of[node] = unit
                continue
            token = op_token(attrs)
            unit = self._leading_unit(node, token, unit_of)
            if unit is None:
                unit = _Unit("", attrs["block"], [node], [token])
                units.append(unit)
            else:
                unit.nodes.append(node)
                unit.tokens.append(token)
            unit_of[node] = unit
        return units

    def _leading_unit(self, node: str, token: str, unit_of) -> _Unit | None:
        """The chain unit ``node`` fuses into, if any."""
        if token not in FUSABLE:
            return None
        preds = list(self.graph.predecessors(node))
        if not preds or preds[0] not in unit_of:
            return None
        prev = preds[0]
        unit = unit_of[prev]
        if unit.kind or unit.nodes[-1] != prev or unit.tokens[0] not in LEADERS:
            return None
        if self.graph.out_degree(prev) != 1:
            return None
        first = unit.unit_kind
        if self.rules.fuses(first, token, "op"):
            return unit
        if self.on_candidate is not None and not self.rules.decided(first, token, "op"):
            self.on_candidate("op", first, token, list(unit.nodes), [node])
        return None

    def kernels(self) -> list[list[_Unit]]:
        kernels: list[list[_Unit]] = []
        for unit in self.units():
            if kernels and self._joins(kernels[-1], unit):
                kernels[-1].append(unit)
            else:
                kernels.append([unit])
        return kernels

    def _joins(self, kernel: list[_Unit], unit: _Unit) -> bool:
        last = kernel[-1]
        if last.block != unit.block or last.leader not in UNIT_FIRST:
            return False
        if unit.leader not in UNIT_SECOND:
            return False
        tail = last.nodes[-1]
        members = set(unit.nodes)
        if not set(self.graph.successors(tail)) <= members:
            return False
        if tail not in self.graph.predecessors(unit.nodes[0]):
            return False
        if self.rules.fuses(last.leader, unit.leader, "unit"):
            return True
        if self.on_candidate is not None and not self.rules.decided(
            last.leader, unit.leader, "unit"
        ):
            self.on_candidate("unit", last.leader, unit.leader, list(last.nodes), list(unit.nodes))
        return False


def _unit_spec(graph: nx.DiGraph, unit: _Unit) -> KernelSpec:
    return group_spec(graph, unit.nodes, unit.kind)


def split_kernels(graph: nx.DiGraph, rules: FusionRules) -> list[Kernel]:
    """The kernels of an operator graph, in execution order; every operator is in exactly one."""
    out = []
    for units in _Splitter(graph, rules).kernels():
        spec = joined_spec([_unit_spec(graph, u) for u in units])
        out.append(Kernel(spec, tuple(n for u in units for n in u.nodes)))
    return out


@dataclass(frozen=True)
class FusionCandidate:
    """An undecided pair, with the specs to measure: the first piece, the second, both fused."""

    level: str
    first: str
    second: str
    first_spec: KernelSpec
    second_spec: KernelSpec
    fused_spec: KernelSpec
    size: float


def fusion_candidates(graphs: Iterable[nx.DiGraph], rules: FusionRules) -> list[FusionCandidate]:
    """Undecided pairs met in ``graphs`` (operator pairs first); per pair, its largest occurrence.

    Unit pairs are only offered once no operator pair is left undecided, since units depend on the
    operator rules.
    """
    graphs = list(graphs)
    best: dict[tuple[str, str, str], FusionCandidate] = {}
    for graph in graphs:
        found: list[tuple] = []
        _Splitter(graph, rules, lambda *args, found=found: found.append(args)).kernels()
        for level, first, second, first_nodes, second_nodes in found:
            a = _spec_of_nodes(graph, first_nodes)
            b = _spec_of_nodes(graph, second_nodes)
            if level == "op":
                fused = group_spec(graph, [*first_nodes, *second_nodes], "")
            else:
                fused = joined_spec([a, b])
            size = float(fused.get("macs", 0)) + _numel(
                graph.nodes[second_nodes[-1]]["output_shape"]
            )
            key = (level, first, second)
            if key in best and best[key].size >= size:
                continue
            best[key] = FusionCandidate(level, first, second, a, b, fused, size)
    ops = [c for c in best.values() if c.level == "op"]
    return ops or list(best.values())


def _spec_of_nodes(graph: nx.DiGraph, nodes: list[str]) -> KernelSpec:
    kind = _structural_kind(graph, nodes[0])
    return group_spec(graph, nodes, kind or "")


# --------------------------------------------------------------------- features


def _numel(shape: Iterable[int]) -> int:
    return math.prod(shape) if shape else 1


def _is_tokens(shape) -> bool:
    return len(shape) == 2


def group_spec(graph: nx.DiGraph, nodes: list[str], structural: str) -> KernelSpec:
    """The spec of the kernel made of ``nodes`` (a structural kind, or "" for a chain)."""
    ops = [graph.nodes[n] for n in nodes]
    totals = {"macs": sum(o["macs"] for o in ops), "params": sum(o["params"] for o in ops)}
    if structural:
        return KernelSpec.make(structural, {**ops[0]["unit_features"], **totals})
    tokens = [op_token(o) for o in ops]
    features = _leader_features(graph, nodes[0], ops[0], tokens[0])
    for node, attrs, token in zip(nodes[1:], ops[1:], tokens[1:], strict=True):
        if token == "act":
            features["act"] = attrs["op"]
        elif token == "add":
            features["add_layout"] = _other_input_layout(graph, node, attrs)
    return KernelSpec.make("-".join(tokens), {**features, **totals})


def _other_input_layout(graph: nx.DiGraph, node: str, attrs: Mapping[str, Any]) -> str:
    """'image' when the second input of an add on tokens comes from an image-shaped operator."""
    preds = list(graph.predecessors(node))
    if len(preds) < 2:
        return "same"
    other = graph.nodes[preds[1]]["output_shape"]
    return "image" if _is_tokens(attrs["output_shape"]) and len(other) == 3 else "same"


def _leader_features(
    graph: nx.DiGraph, node: str, attrs: Mapping[str, Any], token: str
) -> dict[str, Any]:
    in_shape, out_shape = attrs["input_shape"], attrs["output_shape"]
    if token in ("conv", "dwconv", "pwconv"):
        preds = list(graph.predecessors(node))
        source = graph.nodes[preds[0]]["output_shape"] if preds else in_shape
        weights = attrs["out_channels"] * (attrs["in_channels"] // attrs["groups"])
        weights *= attrs["kernel"] ** 2
        return {
            "hw": in_shape[1],
            "cin": attrs["in_channels"],
            "cout": attrs["out_channels"],
            "kernel": attrs["kernel"],
            "stride": attrs["stride"],
            "bias": int(attrs["params"] > weights),
            "layout": "tokens" if _is_tokens(source) else "image",
        }
    if token == "linear":
        return {
            "tokens": in_shape[0] if len(in_shape) == 2 else 0,
            "cin": attrs["in_features"],
            "cout": attrs["out_features"],
            "bias": int(attrs["params"] > attrs["in_features"] * attrs["out_features"]),
        }
    if token == "bn":
        return {"c": in_shape[0], "hw": in_shape[1]}
    if token == "act":
        return {"shape": list(in_shape), "act": attrs["op"]}
    if token == "add":
        return {"shape": list(out_shape), "b_layout": _other_input_layout(graph, node, attrs)}
    if token == "layernorm":
        return {"tokens": in_shape[0], "c": in_shape[1]}
    if token == "reshape":
        return {"shape_in": list(in_shape), "shape_out": list(out_shape)}
    if token == "pool":
        return {"c": in_shape[0], "hw": in_shape[1]}
    return {"shape_in": list(in_shape), "shape_out": list(out_shape), "op": attrs["op"]}


def kernel_count_summary(kernels: Iterable[Kernel]) -> dict[str, int]:
    """Number of kernels of each kind."""
    counts: dict[str, int] = {}
    for kernel in kernels:
        counts[kernel.kind] = counts.get(kernel.kind, 0) + 1
    return counts
