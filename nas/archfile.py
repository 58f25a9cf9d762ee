"""Archs as users hand them to commands: a file, a line of a JSON-lines file, or standard input.

An *arch source* is one of

* ``PATH``: a JSON arch document (``Arch.save``), or a JSON-lines file of them;
* ``PATH:N``: line ``N`` (1-based) of a JSON-lines file, e.g. one line of ``nas sample``'s output;
* ``-``: the same read from standard input (``nas sample ... | nas inspect -``).

Each document or line is an arch, or an object whose ``arch`` field is one: a ``nas sample``
line (``{"arch": ..., "macs": ..., "params": ...}``), a line of a search's ``history.jsonl`` or a
model card.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from nas.arch import Arch, ArchError
from nas.textfiles import FileFormatError, json_lines, parse_json, read_text

EXPECTED = "an arch (nas-arch JSON) or a `nas sample` line"
_LINE = re.compile(r"^(?P<path>.+):(?P<line>\d+)$")


def read_archs(source: str) -> list[tuple[str, Arch]]:
    """Every arch of ``source``, each with where it came from (``file`` or ``file:line``)."""
    path, line = _split(source)
    where = "standard input" if path == "-" else path
    text = sys.stdin.read() if path == "-" else read_text(path, EXPECTED)
    records = _records(text, where)
    if line is not None:
        chosen = [r for r in records if r[0] == line or (r[0] is None and line == 1)]
        if not chosen:
            numbers = [str(n) for n, _ in records]
            raise ArchError(
                f"{where} has no arch on line {line}; lines with archs: {_ranges(numbers)}"
            )
        records = chosen
    return [(_where(where, n), _arch(record, _where(where, n))) for n, record in records]


def read_arch(source: str) -> tuple[str, Arch]:
    """The one arch of ``source``; a file of several archs needs ``PATH:N``."""
    archs = read_archs(source)
    if len(archs) != 1:
        raise ArchError(
            f"{source} holds {len(archs)} archs (JSON lines); choose one as {source}:N, "
            f"N = 1..{len(archs)}"
        )
    return archs[0]


def _split(source: str) -> tuple[str, int | None]:
    """(path, chosen line or None). ``PATH:N`` means a line unless a file is named so."""
    match = _LINE.match(source)
    if match and not Path(source).exists():
        return match["path"], int(match["line"])
    return source, None


def _records(text: str, where: str) -> list[tuple[int | None, Any]]:
    """(line number, JSON value) of each JSON line of ``text``, or (None, value) when ``text``
    is one JSON document."""
    if not text.strip():
        raise ArchError(f"{where} is empty; expected {EXPECTED}")
    try:
        return [(None, parse_json(text, where, EXPECTED))]
    except FileFormatError as err:
        if "Extra data" not in str(err):
            raise
    return list(json_lines(text, where, EXPECTED))


def _where(where: str, line: int | None) -> str:
    return where if line is None else f"{where}:{line}"


def _arch(record: Any, where: str) -> Arch:
    if isinstance(record, dict) and "arch" in record and "stages" not in record:
        record = record["arch"]
    try:
        return Arch.from_dict(record)
    except ArchError as err:
        raise ArchError(f"{where}: {err}") from None


def _ranges(numbers: list[str]) -> str:
    return ", ".join(numbers) if len(numbers) <= 5 else f"{numbers[0]}..{numbers[-1]}"
