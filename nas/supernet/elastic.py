"""Elastic layers: full-size weights of which the active subnet uses a slice.

Widths take the first channels (or the channels an index names), kernels take the centre of the
largest kernel. ``active_state()`` returns the sliced tensors under the names the matching
standard layer uses, so a static block can load them directly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nas.blocks.nn.common import ConvBNAct, activation


def _take(tensor: torch.Tensor, count: int, index: torch.Tensor | None, dim: int = 0):
    if index is not None:
        return tensor.index_select(dim, index)
    return tensor.narrow(dim, 0, count)


class ElasticConv2d(nn.Module):
    """Conv2d with elastic input/output channels and a centre-cropped kernel."""

    def __init__(
        self,
        max_in: int,
        max_out: int,
        max_kernel: int,
        stride: int = 1,
        depthwise: bool = False,
        bias: bool = False,
    ):
        super().__init__()
        self.stride, self.depthwise, self.max_kernel = stride, depthwise, max_kernel
        in_per_group = 1 if depthwise else max_in
        self.weight = nn.Parameter(torch.empty(max_out, in_per_group, max_kernel, max_kernel))
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.set_active(max_in, max_out, max_kernel)

    def set_active(
        self, in_ch: int, out_ch: int, kernel: int | None = None, index: torch.Tensor | None = None
    ) -> None:
        """Use ``in_ch`` inputs, ``out_ch`` outputs (or the outputs ``index`` names), ``kernel``."""
        kernel = kernel or self.max_kernel
        if kernel > self.max_kernel or out_ch > self.weight.shape[0]:
            raise ValueError(f"conv slice ({in_ch}->{out_ch}, k{kernel}) exceeds its weights")
        self.in_ch, self.out_ch, self.kernel, self.index = in_ch, out_ch, kernel, index

    def active_weight(self) -> torch.Tensor:
        weight = _take(self.weight, self.out_ch, self.index)
        if not self.depthwise:
            weight = weight[:, : self.in_ch]
        if self.kernel < self.max_kernel:
            start = (self.max_kernel - self.kernel) // 2
            weight = weight[:, :, start : start + self.kernel, start : start + self.kernel]
        return weight

    def active_bias(self) -> torch.Tensor | None:
        return None if self.bias is None else _take(self.bias, self.out_ch, self.index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = self.out_ch if self.depthwise else 1
        return F.conv2d(
            x, self.active_weight(), self.active_bias(), self.stride, self.kernel // 2, 1, groups
        )

    def active_state(self) -> dict[str, torch.Tensor]:
        state = {"weight": self.active_weight()}
        if self.bias is not None:
            state["bias"] = self.active_bias()
        return state


class ElasticGroupedConv2d(ElasticConv2d):
    """1x1 conv in groups of ``group`` channels (each group's outputs from its own inputs): the
    leading groups of the largest weight."""

    def __init__(self, max_channels: int, group: int):
        nn.Module.__init__(self)
        self.stride, self.depthwise, self.max_kernel, self.group = 1, False, 1, group
        self.weight = nn.Parameter(torch.empty(max_channels, group, 1, 1))
        self.bias = None
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.set_active(max_channels, max_channels)

    def active_weight(self) -> torch.Tensor:
        return self.weight[: self.out_ch]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.active_weight(), None, 1, 0, 1, self.out_ch // self.group)


class ElasticSegmentConv2d(ElasticConv2d):
    """1x1 conv over ``segments`` equal parts laid side by side (heads, scales): the leading
    ``in_ch / segments`` inputs of each part of the largest weight's inputs."""

    def __init__(self, max_in: int, max_out: int, max_segments: int):
        super().__init__(max_in, max_out, 1)
        self.max_part = max_in // max_segments
        self.segments = max_segments

    def set_segments(self, segments: int) -> None:
        self.segments = segments

    def active_weight(self) -> torch.Tensor:
        part, weight = self.in_ch // self.segments, self.weight[: self.out_ch]
        starts = range(0, self.segments * self.max_part, self.max_part)
        return torch.cat([weight[:, s : s + part] for s in starts], dim=1)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over the first ``channels``; running statistics are updated in place."""

    def __init__(self, max_channels: int):
        super().__init__(max_channels)
        self.channels = max_channels

    def set_active(self, channels: int) -> None:
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.channels
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as in nn.BatchNorm2d
                factor = 1.0 / float(self.num_batches_tracked)
        return F.batch_norm(
            x,
            self.running_mean[:c],
            self.running_var[:c],
            self.weight[:c],
            self.bias[:c],
            self.training,
            factor,
            self.eps,
        )

    def active_state(self) -> dict[str, torch.Tensor]:
        c = self.channels
        return {
            "weight": self.weight[:c],
            "bias": self.bias[:c],
            "running_mean": self.running_mean[:c],
            "running_var": self.running_var[:c],
            "num_batches_tracked": self.num_batches_tracked,
        }


class ElasticLinear(nn.Module):
    """Linear with elastic input and output features (first ones, or those an index names)."""

    def __init__(self, max_in: int, max_out: int, bias: bool = True):
        super().__init__()
        reference = nn.Linear(max_in, max_out, bias=bias)
        self.weight = reference.weight
        self.bias = reference.bias
        self.set_active(max_in, max_out)

    def set_active(
        self,
        in_features: int,
        out_features: int,
        in_index: torch.Tensor | None = None,
        out_index: torch.Tensor | None = None,
    ) -> None:
        self.in_features, self.out_features = in_features, out_features
        self.in_index, self.out_index = in_index, out_index

    def active_weight(self) -> torch.Tensor:
        weight = _take(self.weight, self.out_features, self.out_index)
        return _take(weight, self.in_features, self.in_index, dim=1)

    def active_bias(self) -> torch.Tensor | None:
        return None if self.bias is None else _take(self.bias, self.out_features, self.out_index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.active_weight(), self.active_bias())

    def active_state(self) -> dict[str, torch.Tensor]:
        state = {"weight": self.active_weight()}
        if self.bias is not None:
            state["bias"] = self.active_bias()
        return state


class ElasticLayerNorm(nn.LayerNorm):
    """LayerNorm over the first ``channels`` features."""

    def __init__(self, max_channels: int):
        super().__init__(max_channels)
        self.channels = max_channels

    def set_active(self, channels: int) -> None:
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.channels
        return F.layer_norm(x, (c,), self.weight[:c], self.bias[:c], self.eps)

    def active_state(self) -> dict[str, torch.Tensor]:
        return {"weight": self.weight[: self.channels], "bias": self.bias[: self.channels]}


def active_state_dict(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """The sliced tensors of every elastic part of ``module``, keyed like a static state dict."""
    if hasattr(module, "active_state"):
        own = module.active_state()
    else:  # a standard layer shared whole, such as the classifier
        own = {n: t for n, t in module.named_parameters(recurse=False)}
        own.update(
            (n, t)
            for n, t in module.named_buffers(recurse=False)
            if n not in module._non_persistent_buffers_set
        )
    state = {prefix + name: tensor for name, tensor in own.items()}
    for name, child in module.named_children():
        state.update(active_state_dict(child, f"{prefix}{name}."))
    return state


class ElasticConvBNAct(nn.Module):
    """:class:`nas.blocks.nn.common.ConvBNAct` with elastic channels and kernel."""

    def __init__(
        self,
        max_in: int,
        max_out: int,
        max_kernel: int,
        stride: int = 1,
        act: str | None = None,
        depthwise: bool = False,
    ):
        super().__init__()
        self.conv = ElasticConv2d(max_in, max_out, max_kernel, stride, depthwise)
        self.bn = ElasticBatchNorm2d(max_out)
        self.act = activation(act) if act else nn.Identity()

    forward = ConvBNAct.forward

    def configure(self, in_ch: int, out_ch: int, kernel: int | None = None) -> None:
        self.conv.set_active(in_ch, out_ch, kernel)
        self.bn.set_active(out_ch)
