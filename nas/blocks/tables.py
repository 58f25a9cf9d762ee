"""Spelling shared by the block kinds' keys in the published latency tables (see
:mod:`predictors.lut`): Pixel 4 (ElasticViT space) and Samsung Note10 (Once-for-All MobileNetV3)."""

from __future__ import annotations

PIXEL4 = "pixel4"
NOTE10 = "note10"

#: Activation names as the Pixel 4 table spells them.
PIXEL4_ACT = {"hswish": "hard_swish", "relu": "relu"}


def num(value: float) -> str:
    """6.0 -> '6', 2.5 -> '2.5'."""
    return str(int(value)) if float(value).is_integer() else str(value)


def hwc(hw: int, ch: int) -> str:
    """A Note10 tensor shape: ``{hw}x{hw}x{ch}``."""
    return f"{hw}x{hw}x{ch}"
