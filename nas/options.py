"""Command-line option checks shared by every ``nas`` command.

Numbers given on the command line must be finite and in range (``nan`` and ``inf`` parse as
floats in Python, and would otherwise travel deep into a search before failing), and a usage
error is one line, like every other error of the ``nas`` command.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import NoReturn

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``--help`` shows the usage)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _number(kind: type, low: float | None, strict: bool, what: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number; give {what}")
        if low is not None and (value <= low if strict else value < low):
            raise argparse.ArgumentTypeError(f"{text} is out of range; give {what}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


#: A finite float.
finite_float = _number(float, None, False, "a finite number")
#: A finite float > 0.
positive_float = _number(float, 0.0, True, "a number > 0")
#: A finite float >= 0.
nonnegative_float = _number(float, 0.0, False, "a number >= 0")
#: An integer >= 1.
positive_int = _number(int, 1, False, "an integer >= 1")
#: An integer >= 0.
nonnegative_int = _number(int, 0, False, "an integer >= 0")


def fraction(text: str) -> float:
    """A finite float in [0, 1]."""
    value = finite_float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is out of range; give a number in [0, 1]")
    return value


def torch_device(name: str, option: str = "--torch-device") -> str:
    """``name`` checked against what this machine has: ``cpu``, ``cuda`` or ``cuda:N``."""
    from nas.errors import InputError

    if name == "cpu":
        return name
    if name != "cuda" and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise InputError(f"{option} {name!r} is not a device; choices: cpu, cuda, cuda:N")
    import torch

    if not torch.cuda.is_available():
        raise InputError(f"{option} {name}: CUDA is not available here; use {option} cpu")
    index = int(name[5:]) if ":" in name else 0
    if index >= torch.cuda.device_count():
        raise InputError(
            f"{option} {name}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    return name
