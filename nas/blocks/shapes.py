"""Shape rules shared by block kinds."""

from __future__ import annotations


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, never more than 10% below (MobileNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_out_hw(hw: int, stride: int) -> int:
    """Output side of a same-padded conv with an odd kernel."""
    return (hw - 1) // stride + 1
