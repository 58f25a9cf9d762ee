"""Reading the text files users give and run folders hold: JSON, JSON lines and YAML.

Every reader here turns what can go wrong with a file -- missing, a folder, unreadable, binary
(a pickle or an archive renamed ``.json``), malformed JSON or YAML, nesting too deep to parse,
numbers that are not finite, YAML anchors and aliases -- into a :class:`FileFormatError`, one
line naming the file (and line) and what was expected, instead of a Python traceback.

YAML anchors and aliases are refused: the engine's YAML files never need them, and a few nested
aliases expand to gigabytes (a "billion laughs" document).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nas.errors import InputError


class FileFormatError(InputError):
    """A file is not the JSON or YAML document it should be."""


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(text: str, where: str, expected: str) -> Any:
    """``text`` parsed as one JSON value; ``where`` (a file, ``file:line``) and ``expected`` (a
    description) name the input in the error. NaN and Infinity are refused."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise FileFormatError(
            f"{where} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); "
            f"expected {expected}"
        ) from None
    except ValueError as err:  # NaN / Infinity
        raise FileFormatError(f"{where}: {err}; expected {expected}") from None
    except RecursionError:
        raise FileFormatError(
            f"{where} nests arrays or objects too deeply to read; expected {expected}"
        ) from None


def read_text(path: str | Path, expected: str) -> str:
    """The text of ``path``; a missing, unreadable or binary file is a :class:`FileFormatError`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileFormatError(f"{path} does not exist; expected {expected}") from None
    except IsADirectoryError:
        raise FileFormatError(f"{path} is a folder; expected {expected}") from None
    except OSError as err:
        raise FileFormatError(f"cannot read {path}: {err.strerror}; expected {expected}") from None
    if b"\x00" in data:
        raise FileFormatError(f"{path} is a binary file, not text; expected {expected}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FileFormatError(
            f"{path} is not UTF-8 text (byte {err.start}); expected {expected}"
        ) from None


def read_json(path: str | Path, expected: str) -> Any:
    """The JSON document in ``path``."""
    return parse_json(read_text(path, expected), str(path), expected)


def read_json_object(path: str | Path, expected: str) -> dict[str, Any]:
    """The JSON object in ``path`` (another JSON value is an error)."""
    data = read_json(path, expected)
    if not isinstance(data, dict):
        raise FileFormatError(
            f"{path} holds a JSON {_kind(data)}, not an object; expected {expected}"
        )
    return data


def json_lines(
    text: str, where: str, expected: str, *, torn_last: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line of a JSON-lines text. With ``torn_last`` a
    malformed last line (a write cut short by a kill) is skipped instead of refused."""
    lines = text.splitlines()
    last = max((i for i, line in enumerate(lines, 1) if line.strip()), default=0)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = parse_json(line, f"{where}:{number}", expected)
        except FileFormatError:
            if torn_last and number == last:
                return
            raise
        if not isinstance(record, dict):
            raise FileFormatError(
                f"{where}:{number} holds a JSON {_kind(record)}, not an object; expected {expected}"
            )
        yield number, record


def parse_yaml(text: str, where: str, expected: str) -> Any:
    """The YAML document in ``text``, read safely; ``where`` names it in errors."""
    import yaml

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                mark = event.start_mark
                raise FileFormatError(
                    f"{where}:{mark.line + 1}:{mark.column + 1}: anchors and aliases (& and *) "
                    f"are not allowed; write {expected} out in full"
                )
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(err.problem or err.context or "malformed YAML").split())
        raise FileFormatError(f"{where}{at}: {problem}; expected {expected} in YAML") from None
    except yaml.YAMLError as err:
        reason = " ".join(str(err).split())
        raise FileFormatError(f"{where}: {reason}; expected {expected} in YAML") from None


def read_yaml(path: str | Path, expected: str) -> Any:
    """The YAML document in the file ``path``."""
    return parse_yaml(read_text(path, expected), str(path), expected)


def finite_number(value: Any, where: str, minimum: float | None = None) -> float:
    """``value`` as a float, refusing booleans, non-numbers, NaN, infinities and values below
    ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FileFormatError(f"{where} = {value!r} must be a finite number")
    if minimum is not None and value < minimum:
        raise FileFormatError(f"{where} = {value!r} must be >= {minimum:g}")
    return float(value)


def _kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )
