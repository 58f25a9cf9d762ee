"""An Optuna journal file written once per search step, at in-memory speed.

Optuna's :class:`~optuna.storages.journal.JournalFileBackend` locks, opens, appends and fsyncs
the file for every operation (each ask, attribute and tell of every trial) and reads it back
before every query, which made a 500-proposal search wait on the disk far longer than it
computed. A search folder has one writer, so :class:`StepJournal` keeps the log in memory,
answers the study's reads from there, and appends what is new to the same journal file (the
format ``optuna-dashboard`` opens) in one locked write when :meth:`StepJournal.flush` is called,
once per search step. A search killed between two flushes loses only its unfinished step, which
the driver's history restores on resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from optuna.storages.journal import BaseJournalBackend, JournalFileBackend


class StepJournal(BaseJournalBackend):
    """A journal file (``path``) read once, then kept in memory and appended on :meth:`flush`."""

    def __init__(self, path: str):
        self.file = JournalFileBackend(path)
        self.logs: list[dict[str, Any]] = list(self.file.read_logs(0))
        self.written = len(self.logs)

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        return iter(self.logs[log_number_from:])

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.logs.extend(logs)

    def flush(self) -> None:
        """Append the logs written since the last flush to the file (one locked write)."""
        if len(self.logs) > self.written:
            self.file.append_logs(self.logs[self.written :])
            self.written = len(self.logs)
