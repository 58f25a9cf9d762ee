"""Square windows of a feature map (EfficientViT's local window attention): cut a map into
``window`` x ``window`` windows stacked along the batch (padding the bottom and right with zeros
to whole windows) and put them back (cropping the padding), and both as latency units."""

from __future__ import annotations

import torch
from torch import nn


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, C, H, H) -> (B * G * G, C, window, window), G = ceil(H / window), windows in row-major
    order."""
    batch, channels, side, _ = x.shape
    pad = (window - side % window) % window
    if pad:  # zeros concatenated, not F.pad: XNNPACK refuses an int8 pad whose scales differ
        x = torch.cat([x, x.new_zeros(batch, channels, side, pad)], dim=3)
        x = torch.cat([x, x.new_zeros(batch, channels, pad, side + pad)], dim=2)
    grid = (side + pad) // window
    x = x.view(batch, channels, grid, window, grid, window).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(batch * grid * grid, channels, window, window)


def window_merge(x: torch.Tensor, side: int) -> torch.Tensor:
    """The inverse of :func:`window_partition` for a ``side`` x ``side`` map."""
    windows, channels, window, _ = x.shape
    grid = (side + window - 1) // window
    batch = windows // (grid * grid)
    x = x.view(batch, grid, grid, channels, window, window).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(batch, channels, grid * window, grid * window)[:, :, :side, :side]


class WindowPartition(nn.Module):
    def __init__(self, window: int):
        super().__init__()
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return window_partition(x, self.window)


class WindowMerge(nn.Module):
    def __init__(self, side: int):
        super().__init__()
        self.side = side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return window_merge(x, self.side)


def partition_kernel(spec, batch: int):
    """The ``window-partition`` unit as a standalone module, and its input (the map)."""
    f = spec.feature_dict()
    return WindowPartition(f["window"]), (torch.randn(batch, f["c"], f["hw"], f["hw"]),)


def merge_kernel(spec, batch: int):
    """The ``window-merge`` unit as a standalone module, and its input (the windows)."""
    f = spec.feature_dict()
    w, grid = f["window"], (f["hw"] + f["window"] - 1) // f["window"]
    return WindowMerge(f["hw"]), (torch.randn(batch * grid * grid, f["c"], w, w),)
