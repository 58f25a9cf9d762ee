"""The search history: one JSON line per evaluated arch, appended as the search goes.

A line is written whole and flushed to disk before the next batch, so a killed search loses at
most the batch in flight; a torn last line is ignored on resume.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from nas.arch import Arch, ArchError
from nas.errors import InputError
from nas.runs import write_atomic
from nas.search.problem import Evaluation
from nas.space import SearchSpace
from nas.textfiles import finite_number


class HistoryError(InputError):
    """A history file does not belong to this search or cannot be read."""


#: The fields of every line of a history.
RECORD_KEYS = frozenset({"arch", "objectives", "constraints", "feasible"})


def _numbers(values: object, where: str) -> dict[str, float]:
    """``values`` as a mapping of names to finite numbers."""
    if not isinstance(values, dict):
        raise HistoryError(f"{where} must be an object of names and numbers")
    return {name: finite_number(value, f"{where}: {name}") for name, value in values.items()}


class History:
    def __init__(self, path: str | Path, space: SearchSpace):
        self.path, self.space = Path(path), space

    def load(self) -> list[Evaluation]:
        if not self.path.is_file():
            return []
        evaluations = []
        lines = self.path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                if number == len(lines):  # torn by a kill mid-write: drop it
                    write_atomic(self.path, "".join(x + "\n" for x in lines[:-1]))
                    break
                raise HistoryError(f"{self.path}:{number} is not valid JSON") from None
            where = f"{self.path}:{number}"
            if not isinstance(record, dict) or not set(record) >= RECORD_KEYS:
                raise HistoryError(
                    f"{where} is not a search record: expected an object with "
                    f"{', '.join(sorted(RECORD_KEYS))}"
                )
            try:
                arch = self.space.validate(Arch.from_dict(record["arch"]))
            except ArchError as err:
                raise HistoryError(
                    f"{where}: not an arch of space {self.space.name!r}: {err}"
                ) from None
            evaluations.append(
                Evaluation(
                    arch,
                    _numbers(record["objectives"], f"{where}: objectives"),
                    _numbers(record["constraints"], f"{where}: constraints"),
                    bool(record["feasible"]),
                )
            )
        return evaluations

    def append(self, evaluations: Sequence[Evaluation], start: int) -> None:
        lines = [
            json.dumps(
                {
                    "index": start + i,
                    "arch": e.arch.to_dict(),
                    "objectives": e.objectives,
                    "constraints": e.constraints,
                    "feasible": e.feasible,
                }
            )
            for i, e in enumerate(evaluations)
        ]
        with self.path.open("a") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
