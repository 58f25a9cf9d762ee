"""(space, arch) -> the concrete layers of the subnet, with every shape resolved.

This is the one place where an arch is turned into layers. The static model, the supernet's
active path, the operator graph and latency-table keys are all read off this list.
Each layer has a ``slot``: the dotted name of the supernet module that computes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.arch import Arch
from nas.space import SearchSpace, StageSpec, heads_of


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, never more than 10% below (MobileNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_out_hw(hw: int, stride: int) -> int:
    """Output side of a same-padded conv with an odd kernel."""
    return (hw - 1) // stride + 1


def expanded_channels(in_ch: int, expand_ratio: float) -> int:
    return in_ch if expand_ratio == 1 else make_divisible(round(in_ch * expand_ratio), 8)


def se_channels(mid_ch: int) -> int:
    return make_divisible(mid_ch // 4, 8)


@dataclass(frozen=True)
class StemLayer:
    slot: str
    in_hw: int
    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    activation: str

    @property
    def out_hw(self) -> int:
        return conv_out_hw(self.in_hw, self.stride)


@dataclass(frozen=True)
class MBConvLayer:
    """Inverted residual: [1x1 expand] -> kxk depthwise -> [squeeze-excite] -> 1x1 project."""

    slot: str
    in_hw: int
    in_ch: int
    out_ch: int
    expand_ratio: float
    kernel: int
    stride: int
    se: bool
    activation: str

    @property
    def out_hw(self) -> int:
        return conv_out_hw(self.in_hw, self.stride)

    @property
    def mid_ch(self) -> int:
        return expanded_channels(self.in_ch, self.expand_ratio)

    @property
    def se_ch(self) -> int:
        return se_channels(self.mid_ch)

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_ch == self.out_ch


@dataclass(frozen=True)
class TransformerLayer:
    """Pre-norm attention (with depthwise conv on V) + pre-norm MLP, both residual."""

    slot: str
    hw: int
    width: int
    heads: int
    head_dim: int
    v_scale: int
    mlp_ratio: int
    attention: str
    activation: str

    @property
    def in_hw(self) -> int:
        return self.hw

    @property
    def out_hw(self) -> int:
        return self.hw

    @property
    def in_ch(self) -> int:
        return self.width

    @property
    def out_ch(self) -> int:
        return self.width

    @property
    def qk_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def v_dim(self) -> int:
        """Value channels per head."""
        return self.head_dim * self.v_scale

    @property
    def mlp_hidden(self) -> int:
        return self.width * self.mlp_ratio


@dataclass(frozen=True)
class HeadLayer:
    """1x1 conv expand -> global pool -> feature linear -> classifier."""

    slot: str
    in_hw: int
    in_ch: int
    expand_ch: int
    feature_ch: int
    num_classes: int
    activation: str

    @property
    def out_hw(self) -> int:
        return 1

    @property
    def out_ch(self) -> int:
        return self.num_classes


Layer = StemLayer | MBConvLayer | TransformerLayer | HeadLayer


def layers_of(space: SearchSpace, arch: Arch) -> tuple[Layer, ...]:
    """The subnet's layers in execution order. ``arch`` must be valid for ``space``."""
    space.validate(arch)
    stem = space.stem
    first = StemLayer(
        "stem",
        arch.resolution,
        space.in_channels,
        arch.stem.width,
        stem.kernel,
        stem.stride,
        stem.activation,
    )
    layers: list[Layer] = [first]
    hw, ch = first.out_hw, first.out_ch
    for k in range(arch.stem.depth):
        ds = MBConvLayer(
            f"stem_ds.{k}",
            hw,
            ch,
            ch,
            1,
            stem.ds_kernel,
            1,
            False,
            stem.ds_activation or stem.activation,
        )
        layers.append(ds)
    for i, (spec, stage) in enumerate(zip(space.stages, arch.stages, strict=True)):
        if spec.kind == "conv":
            for k in range(stage.depth):
                layer = MBConvLayer(
                    f"stages.{i}.layers.{k}",
                    hw,
                    ch,
                    stage.width,
                    stage.layer_value("expand_ratio", k),
                    int(stage.layer_value("kernel", k)),
                    spec.stride if k == 0 else 1,
                    spec.se,
                    spec.activation,
                )
                layers.append(layer)
                hw, ch = layer.out_hw, layer.out_ch
        else:
            down = _downsample(spec, f"stages.{i}.downsample", hw, ch, stage.width)
            layers.append(down)
            hw, ch = down.out_hw, down.out_ch
            for k in range(stage.depth):
                layers.append(
                    TransformerLayer(
                        f"stages.{i}.layers.{k}",
                        hw,
                        ch,
                        heads_of(spec, stage, k),
                        spec.head_dim,
                        int(stage.layer_value("v_scale", k)),
                        int(stage.layer_value("mlp_ratio", k)),
                        str(stage.layer_value("attention", k)),
                        spec.activation,
                    )
                )
    head = space.head
    layers.append(
        HeadLayer(
            "head",
            hw,
            ch,
            head.expand_channels(ch),
            head.feature_width,
            space.num_classes,
            head.activation,
        )
    )
    return tuple(layers)


def _downsample(spec: StageSpec, slot: str, hw: int, in_ch: int, out_ch: int) -> MBConvLayer:
    return MBConvLayer(
        slot,
        hw,
        in_ch,
        out_ch,
        spec.downsample_expand,
        spec.downsample_kernel,
        spec.stride,
        False,
        spec.activation,
    )


def stage_sides(space: SearchSpace, resolution: int) -> list[int]:
    """Feature-map side inside each stage at a given input resolution."""
    hw = conv_out_hw(resolution, space.stem.stride)
    sides = []
    for spec in space.stages:
        hw = conv_out_hw(hw, spec.stride)
        sides.append(hw)
    return sides
