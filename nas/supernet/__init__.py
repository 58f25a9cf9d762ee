"""The weight-sharing supernet of a search space."""

from __future__ import annotations

import torch
from torch import nn

from nas.arch import Arch
from nas.layers import layers_of, stage_sides
from nas.space import SearchSpace
from nas.supernet.blocks import (
    ElasticHead,
    ElasticMBConv,
    ElasticStem,
    ElasticTransformerBlock,
)


class Supernet(nn.Module):
    """Holds the largest weights of every slot; ``set_arch`` picks the subnet ``forward`` runs.

    Module names follow the ``slot`` of each layer in :func:`nas.layers.layers_of`:
    ``stem``, ``stem_ds.k``, ``stages.i.downsample``, ``stages.i.layers.k``, ``head``.
    """

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space
        stem = space.stem
        width = max(stem.widths)
        self.stem = ElasticStem(space.in_channels, width, stem.kernel, stem.stride, stem.activation)
        self.stem_ds = nn.ModuleList(
            ElasticMBConv(
                width, width, 1, stem.ds_kernel, 1, False, stem.ds_activation or stem.activation
            )
            for _ in range(max(stem.ds_depths))
        )
        self.stages = nn.ModuleList()
        sides = stage_sides(space, max(space.resolutions))
        for spec, side in zip(space.stages, sides, strict=True):
            out = max(spec.widths)
            stage = nn.ModuleDict()
            if spec.kind == "conv":
                stage["layers"] = nn.ModuleList(
                    ElasticMBConv(
                        width if k == 0 else out,
                        out,
                        max(spec.choices["expand_ratio"]),
                        max(spec.choices["kernel"]),
                        spec.stride if k == 0 else 1,
                        spec.se,
                        spec.activation,
                    )
                    for k in range(max(spec.depths))
                )
            else:
                stage["downsample"] = ElasticMBConv(
                    width,
                    out,
                    spec.downsample_expand,
                    spec.downsample_kernel,
                    spec.stride,
                    False,
                    spec.activation,
                )
                heads = max(spec.choices.get("heads", (out // spec.head_dim,)))
                stage["layers"] = nn.ModuleList(
                    ElasticTransformerBlock(
                        out,
                        heads,
                        spec.head_dim,
                        max(spec.choices["v_scale"]),
                        max(spec.choices["mlp_ratio"]),
                        side,
                        spec.activation,
                    )
                    for _ in range(max(spec.depths))
                )
            self.stages.append(stage)
            width = out
        head = space.head
        self.head = ElasticHead(
            width,
            head.expand_channels(width),
            head.feature_width,
            space.num_classes,
            head.activation,
        )
        self.set_arch(space.max_arch())

    def set_arch(self, arch: Arch) -> None:
        """Make ``forward`` compute the subnet ``arch`` (validated against the space)."""
        active = []
        for layer in layers_of(self.space, arch):
            module = self.get_submodule(layer.slot)
            module.set_active(layer)
            active.append(module)
        self.arch = arch
        self.active_blocks = active

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.active_blocks:
            x = block(x)
        return x
