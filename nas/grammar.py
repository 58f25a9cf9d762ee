"""Typed values of the space grammar (YAML), each refused with an error naming the key and what
would be valid. Shared by the space parser and the block kinds that declare their own keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nas.errors import InputError

#: Activations a block may use (graph operator names; :func:`nas.blocks.nn.activation` builds them).
ACTIVATIONS = ("relu", "relu6", "hswish", "gelu", "silu")


class SpaceError(InputError):
    """A space declaration is malformed; the message names the key, the value and what is allowed."""


def reject_unknown(data: Any, known: set[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise SpaceError(f"{where} must be a mapping, got {data!r}")
    unknown = set(data) - known
    if unknown:
        raise SpaceError(f"{where} has unknown key(s) {sorted(unknown)}; allowed: {sorted(known)}")


def positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpaceError(f"{where} = {value!r} must be a positive integer")
    return value


def int_list(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise SpaceError(f"{where} = {value!r} must be a non-empty list of positive integers")
    items = tuple(positive_int(v, f"{where}[{i}]") for i, v in enumerate(value))
    if len(set(items)) != len(items):
        raise SpaceError(f"{where} = {value!r} has repeated values")
    return items


def choice_list(value: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(value, list) or not value:
        raise SpaceError(f"{where} = {value!r} must be a non-empty list")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            raise SpaceError(f"{where}[{i}] = {v!r} must be a number or a string")
    if len(set(value)) != len(value):
        raise SpaceError(f"{where} = {value!r} has repeated values")
    return tuple(value)


def one_of(value: Any, allowed: Sequence[str], where: str) -> str:
    if value not in allowed:
        raise SpaceError(f"{where} = {value!r} is not allowed; choices: {list(allowed)}")
    return value


def activation(value: Any, where: str) -> str:
    return one_of(value, ACTIVATIONS, where)


def nonnegative_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpaceError(f"{where} = {value!r} must be an integer >= 0")
    return value


def nonnegative_ints(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise SpaceError(f"{where} = {value!r} must be a non-empty list of integers >= 0")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise SpaceError(f"{where}[{i}] = {v!r} must be an integer >= 0")
    return list(value)


def odd_kernel(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise SpaceError(f"{where} = {value!r} must be an odd positive integer")
    return value


def positive_ints(values: tuple[Any, ...], where: str) -> None:
    """Check a declared list of choices holds positive integers."""
    int_list(list(values), where)


def odd_kernels(values: tuple[Any, ...], where: str) -> None:
    """Check a declared list of kernel sizes holds odd positive integers."""
    int_list(list(values), where)
    for k in values:
        odd_kernel(k, where)
