"""Torch half of the MobileViT kind (:mod:`nas.blocks.mobilevit`): the static block and its
elastic twin. The transformer layers are the transformer kind's blocks (plain), run on the patch
positions as a batch."""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks.mobilevit import MobileViTLayer, MobileViTv2Layer
from nas.blocks.nn.common import ConvBNAct
from nas.blocks.nn.transformer import ElasticTransformerBlock, TransformerBlock
from nas.supernet.elastic import ElasticConv2d, ElasticConvBNAct, ElasticLayerNorm


def unfold(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, d, H, W) -> (B * patch^2, d, H / patch, W / patch): one map per patch position."""
    batch, dim, height, width = x.shape
    h, w = height // patch, width // patch
    x = x.reshape(batch, dim, h, patch, w, patch).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(batch * patch * patch, dim, h, w)


def fold(x: torch.Tensor, patch: int) -> torch.Tensor:
    """The inverse of :func:`unfold`."""
    _, dim, h, w = x.shape
    x = x.reshape(-1, patch, patch, dim, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(-1, dim, h * patch, w * patch)


class PatchTransformer(nn.Module):
    """The first ``depth`` of its transformer layers, then LayerNorm, on (batch, d, h, w)."""

    def __init__(self, layers: list[nn.Module], norm: nn.Module):
        super().__init__()
        self.layers, self.norm, self.depth = nn.ModuleList(layers), norm, len(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[: self.depth]:
            x = layer(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def patch_transformer(layer: MobileViTLayer) -> PatchTransformer:
    inner = layer.inner()
    layers = [TransformerBlock(inner) for _ in range(layer.inner_depth)]
    return PatchTransformer(layers, nn.LayerNorm(layer.dim))


class ElasticPatchTransformer(PatchTransformer):
    def __init__(self, largest: MobileViTLayer):
        inner = largest.inner(largest.hw)
        layers = [ElasticTransformerBlock(inner) for _ in range(largest.inner_depth)]
        super().__init__(layers, ElasticLayerNorm(largest.dim))
        for block in layers:
            block.set_active(inner)

    def set_active(self, layer: MobileViTLayer) -> None:
        self.depth = layer.inner_depth
        for block in self.layers[: self.depth]:
            block.set_active(layer.inner())
        self.norm.set_active(layer.dim)


class MobileViTBlock(nn.Module):
    """local conv -> 1x1 to the transformer width -> unfold -> transformer layers and norm ->
    fold -> 1x1 back -> fusion conv over the concat with the input."""

    def __init__(self, layer: MobileViTLayer):
        super().__init__()
        c, d, act = layer.width, layer.dim, layer.activation
        self.patch = layer.patch
        self.local = ConvBNAct(c, c, 3, act=act)
        self.proj_in = nn.Conv2d(c, d, 1, bias=False)
        self.transformer = patch_transformer(layer)
        self.proj_out = ConvBNAct(d, c, 1, act=act)
        self.fusion = ConvBNAct(2 * c, c, 3, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = unfold(self.proj_in(self.local(x)), self.patch)
        y = fold(self.transformer(y), self.patch)
        return self.fusion(torch.cat([x, self.proj_out(y)], dim=1))


class ElasticHalvesConv2d(ElasticConv2d):
    """A conv over the concat of two inputs of ``in_ch / 2`` channels each: leading channels of
    each half of the largest weight's inputs."""

    def active_weight(self) -> torch.Tensor:
        half, c = self.weight.shape[1] // 2, self.in_ch // 2
        weight = self.weight[: self.out_ch]
        return torch.cat([weight[:, :c], weight[:, half : half + c]], dim=1)


class ElasticMobileViTBlock(nn.Module):
    """The largest MobileViT block of a slot. Its transformer's position table is sized for the
    slot's largest side (any patch size)."""

    forward = MobileViTBlock.forward

    def __init__(self, largest: MobileViTLayer, spec=None):
        super().__init__()
        c, d, act = largest.width, largest.dim, largest.activation
        self.patch = largest.patch
        self.local = ElasticConvBNAct(c, c, 3, act=act)
        self.proj_in = ElasticConv2d(c, d, 1)
        self.transformer = ElasticPatchTransformer(largest)
        self.proj_out = ElasticConvBNAct(d, c, 1, act=act)
        self.fusion = ElasticConvBNAct(2 * c, c, 3, act=act)
        self.fusion.conv = ElasticHalvesConv2d(2 * c, c, 3)

    def set_active(self, layer: MobileViTLayer) -> None:
        c, d = layer.width, layer.dim
        self.patch = layer.patch
        self.local.configure(c, c)
        self.proj_in.set_active(c, d)
        self.transformer.set_active(layer)
        self.proj_out.configure(d, c)
        if self.fusion is not None:
            self.fusion.configure(2 * c, c)


class MobileViTv2Block(nn.Module):
    """depthwise local conv -> 1x1 to the transformer width -> unfold -> transformer -> fold ->
    1x1 back (BN, no activation)."""

    def __init__(self, layer: MobileViTv2Layer):
        super().__init__()
        c, d = layer.width, layer.dim
        self.patch = layer.patch
        self.local = ConvBNAct(c, c, 3, act=layer.activation, depthwise=True)
        self.proj_in = nn.Conv2d(c, d, 1, bias=False)
        self.transformer = patch_transformer(layer)
        self.proj_out = ConvBNAct(d, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = unfold(self.proj_in(self.local(x)), self.patch)
        return self.proj_out(fold(self.transformer(y), self.patch))


class ElasticMobileViTv2Block(ElasticMobileViTBlock):
    forward = MobileViTv2Block.forward

    def __init__(self, largest: MobileViTv2Layer, spec=None):
        nn.Module.__init__(self)
        c, d = largest.width, largest.dim
        self.patch = largest.patch
        self.local = ElasticConvBNAct(c, c, 3, act=largest.activation, depthwise=True)
        self.proj_in = ElasticConv2d(c, d, 1)
        self.transformer = ElasticPatchTransformer(largest)
        self.proj_out = ElasticConvBNAct(d, c, 1)
        self.fusion = None
