"""Kernel spec -> a standalone torch module and example inputs, built from the static blocks.

Chain kernels reuse :class:`nas.blocks.ConvBNAct` (conv, bn and activation fused or not),
``nn.Linear``, ``nn.LayerNorm`` and :func:`nas.blocks.activation`; structural kernels are built by
the block kind that declares them (its ``units``: squeeze-excite, attention cores, the classifier
head), from the same layers as its static block. Tensor layouts at kernel boundaries are those of the blocks'
``forward`` methods (tokens ``(B, N, C)``, images ``(B, C, H, W)``), so a kernel does the same
reshapes it does inside a model.
"""

from __future__ import annotations

import io
import math
import warnings

import torch
from torch import nn

from nas.blocks.nn.common import ConvBNAct, activation
from nas.blocks.nn.position_bias import freeze_position_biases
from nas.blocks.registry import unit_builder
from nas.grammar import ACTIVATIONS
from predictors.kernels import KernelSpec

CONV_TOKENS = ("conv", "dwconv", "pwconv")


def _tokens_to_image(x: torch.Tensor, side: int) -> torch.Tensor:
    batch, _, channels = x.shape
    return x.transpose(1, 2).reshape(batch, channels, side, side)


def _image_to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


class ChainKernel(nn.Module):
    """A leading operator followed by fused element-wise operators (bn, activation, add, norm).
    A ``concat`` leader joins its second input along the channels."""

    def __init__(self, spec: KernelSpec):
        super().__init__()
        tokens = list(spec.tokens)
        f = spec.feature_dict()
        self.lead_kind = tokens[0]
        self.side = 0
        self.adds: list[str] = []  # layout of each extra input, in order
        rest = tokens[1:]
        if self.lead_kind in CONV_TOKENS:
            if rest[:1] == ["bn"]:
                with_act = rest[1:2] == ["act"]
                self.lead = ConvBNAct(
                    f["cin"],
                    f["cout"],
                    f["kernel"],
                    f["stride"],
                    f.get("act") if with_act else None,
                    depthwise=self.lead_kind == "dwconv",
                )
                rest = rest[2:] if with_act else rest[1:]
            else:
                groups = f["cin"] if self.lead_kind == "dwconv" else 1
                self.lead = nn.Conv2d(
                    f["cin"],
                    f["cout"],
                    f["kernel"],
                    f["stride"],
                    f["kernel"] // 2,
                    groups=groups,
                    bias=bool(f["bias"]),
                )
            if f["layout"] == "tokens":
                self.side = f["hw"]
        elif self.lead_kind == "linear":
            self.lead = nn.Linear(f["cin"], f["cout"], bias=bool(f["bias"]))
        elif self.lead_kind == "bn":
            self.lead = nn.BatchNorm2d(f["c"])
        elif self.lead_kind == "act":
            self.lead = activation(_block_activation(f["act"]))
        elif self.lead_kind == "layernorm":
            self.lead = nn.LayerNorm(f["c"])
        elif self.lead_kind == "add":
            self.lead = None
            self.adds.append(f["b_layout"])
        elif self.lead_kind in ("reshape", "pool", "concat"):
            self.lead = None
        else:
            raise ValueError(f"no module for kernel kind {spec.kind!r}")
        self.to_image = (
            self.lead_kind == "reshape" and len(f["shape_in"]) == 2 and len(f["shape_out"]) == 3
        )
        steps = []
        for token in rest:
            if token == "act":
                steps.append(activation(_block_activation(f["act"])))
            elif token == "bn":
                steps.append(nn.BatchNorm2d(f["cout"]))
            elif token == "layernorm":
                steps.append(nn.LayerNorm(_last_channels(f)))
            elif token == "add":
                steps.append(None)
                self.adds.append(f.get("add_layout", "same"))
            else:
                raise ValueError(f"kernel kind {spec.kind!r}: {token!r} cannot follow a leader")
        self.steps = nn.ModuleList([s if s is not None else nn.Identity() for s in steps])
        self.step_is_add = [s is None for s in steps]

    def forward(self, x: torch.Tensor, *extras: torch.Tensor) -> torch.Tensor:
        extra = iter(extras)
        if self.lead_kind == "add":
            other = next(extra)
            x = x + (_image_to_tokens(other) if self.adds[0] == "image" else other)
        elif self.lead_kind == "reshape":
            if self.to_image:
                side = math.isqrt(x.shape[1])
                x = _tokens_to_image(x, side)
            else:
                x = _image_to_tokens(x)
        elif self.lead_kind == "pool":
            x = x.mean((2, 3), keepdim=True)
        elif self.lead_kind == "concat":
            x = torch.cat([x, next(extra)], dim=1)
        else:
            if self.side:
                x = _tokens_to_image(x, self.side)
            x = self.lead(x)
        add_layouts = iter(self.adds[1:] if self.lead_kind == "add" else self.adds)
        for step, is_add in zip(self.steps, self.step_is_add, strict=True):
            if is_add:
                other = next(extra)
                x = x + (_image_to_tokens(other) if next(add_layouts) == "image" else other)
            else:
                x = step(x)
        return x


def _block_activation(op: str) -> str:
    """Graph activation op -> :func:`nas.blocks.activation` name."""
    if op not in ACTIVATIONS:
        raise ValueError(f"no activation module for graph op {op!r}; choices: {ACTIVATIONS}")
    return op


def _last_channels(f: dict) -> int:
    shape = f.get("shape") or f.get("shape_out")
    if shape:
        return shape[-1]
    return f["cout"]


def _chain_inputs(spec: KernelSpec, batch: int) -> list[torch.Tensor]:
    f = spec.feature_dict()
    lead = spec.tokens[0]
    if lead in CONV_TOKENS:
        hw, cin = f["hw"], f["cin"]
        first = (
            torch.randn(batch, hw * hw, cin)
            if f["layout"] == "tokens"
            else torch.randn(batch, cin, hw, hw)
        )
        out_hw = (hw - 1) // f["stride"] + 1
        out_shape = (f["cout"], out_hw, out_hw)
    elif lead == "linear":
        lead_shape = (f["tokens"],) if f["tokens"] else ()
        first = torch.randn(batch, *lead_shape, f["cin"])
        out_shape = (*lead_shape, f["cout"])
    elif lead in ("bn", "pool"):
        first = torch.randn(batch, f["c"], f["hw"], f["hw"])
        out_shape = (f["c"], f["hw"], f["hw"])
    elif lead in ("act", "add"):
        first = torch.randn(batch, *f["shape"])
        out_shape = tuple(f["shape"])
    elif lead == "layernorm":
        first = torch.randn(batch, f["tokens"], f["c"])
        out_shape = (f["tokens"], f["c"])
    elif lead in ("reshape", "concat"):
        first = torch.randn(batch, *f["shape_in"])
        out_shape = tuple(f["shape_out"])
    else:
        raise ValueError(f"no inputs for kernel kind {spec.kind!r}")
    inputs = [first]
    if lead == "concat":  # the second input: the channels the first lacks
        channels = f["shape_out"][0] - f["shape_in"][0]
        inputs.append(torch.randn(batch, channels, *f["shape_in"][1:]))
    if lead == "add":
        inputs.append(_extra_input(out_shape, f["b_layout"], batch))
    if "add" in spec.tokens[1:]:
        inputs.append(_extra_input(out_shape, f.get("add_layout", "same"), batch))
    return inputs


def _extra_input(shape: tuple[int, ...], layout: str, batch: int) -> torch.Tensor:
    if layout == "image" and len(shape) == 2:
        tokens, channels = shape
        side = math.isqrt(tokens)
        return torch.randn(batch, channels, side, side)
    return torch.randn(batch, *shape)


def _unit_module(spec: KernelSpec, batch: int) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    if spec.structural:
        module, inputs = unit_builder(spec.kind)(spec, batch)
    elif spec.kind == "baseline":
        module = Baseline()
        inputs = (torch.randn(batch, 1),)
    else:
        module = ChainKernel(spec)
        inputs = tuple(_chain_inputs(spec, batch))
    return module, inputs


class JoinedKernel(nn.Module):
    """Units run one after the other; each later unit also takes its own extra inputs."""

    def __init__(self, units: list[nn.Module], extras: list[int]):
        super().__init__()
        self.units = nn.ModuleList(units)
        self.extras = extras

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        first = len(inputs) - sum(self.extras)
        x = self.units[0](*inputs[:first])
        position = first
        for unit, count in zip(self.units[1:], self.extras, strict=True):
            x = unit(x, *inputs[position : position + count])
            position += count
        return x


class Sink(nn.Module):
    """Runs a kernel and returns only the first element of its output.

    A standalone kernel's output would otherwise be the graph's output, which runtimes treat
    specially: ONNX Runtime, for one, fuses no operator into one that produces a graph output and
    copies graph outputs into fresh arrays -- neither happens to a kernel inside a model.
    """

    def __init__(self, kernel: nn.Module):
        super().__init__()
        self.kernel = kernel

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.kernel(*inputs).reshape(-1)[:1]


def kernel_module(spec: KernelSpec, batch: int = 1) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """A freshly initialised module computing the kernel (wrapped in :class:`Sink`) as exported
    (position biases kept: :func:`~nas.blocks.nn.position_bias.freeze_position_biases`), in eval mode, and
    inputs for it."""
    module, inputs = _kernel_module(spec, batch)
    return freeze_position_biases(Sink(module)).eval(), inputs


def _kernel_module(spec: KernelSpec, batch: int) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    units = spec.units
    if len(units) == 1:
        module, inputs = _unit_module(spec, batch)
        return module.eval(), inputs
    modules, inputs, extras = [], [], []
    for i, unit in enumerate(units):
        module, unit_inputs = _unit_module(unit, batch)
        modules.append(module)
        if i == 0:
            inputs.extend(unit_inputs)
        else:
            inputs.extend(unit_inputs[1:])
            extras.append(len(unit_inputs) - 1)
    return JoinedKernel(modules, extras).eval(), tuple(inputs)


class Baseline(nn.Module):
    """No work: wrapped in :class:`Sink` like every kernel, it costs what one invocation of a
    kernel costs on a backend besides the kernel's own work."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


BASELINE = KernelSpec("baseline", ())


def onnx_bytes(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> bytes:
    """The module as an ONNX model (opset 17, fixed shapes, inputs ``input0..``, output ``output``).

    Same exporter settings as :func:`nas.extract.export_onnx`.
    """
    buffer = io.BytesIO()
    names = [f"input{i}" for i in range(len(inputs))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            tuple(inputs),
            buffer,
            input_names=names,
            output_names=["output"],
            opset_version=17,
            dynamo=False,
        )
    return buffer.getvalue()
