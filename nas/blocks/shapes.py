"""Shape rules shared by block kinds."""

from __future__ import annotations


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, never more than 10% below (MobileNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_out_hw(hw: int, stride: int) -> int:
    """Output side of a same-padded conv with an odd kernel."""
    return (hw - 1) // stride + 1


class SameShape:
    """Layer-record mixin of a block keeping its input's shape: ``in_hw``/``out_hw`` are the
    record's ``hw``, ``in_ch``/``out_ch`` its ``width``."""

    hw: int
    width: int

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
