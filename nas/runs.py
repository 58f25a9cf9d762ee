"""Run folders and crash-safe file writes: write to a temporary name, then rename.

A write that fails (a full disk, a read-only folder, a path through a file) raises
:class:`OutputError` naming the path, and leaves neither a temporary file nor a half-written one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from nas.errors import InputError


class OutputError(InputError):
    """A file or folder cannot be written; the message names it and the system's reason."""

    @classmethod
    def of(cls, path: str | Path, err: OSError) -> OutputError:
        return cls(f"cannot write {path}: {err.strerror or err}")


def make_folder(path: str | Path) -> Path:
    """Create the folder ``path`` (and its parents) unless it exists."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot create folder {path}: a file of that name exists") from None
    except OSError as err:
        raise OutputError.of(path, err) from None
    return path


def append_text(path: str | Path, text: str, sync: bool = True) -> None:
    """Append ``text`` to ``path``; with ``sync``, flushed to disk (records survive a crash).
    After a last line torn by a kill, ``text`` starts on a line of its own."""
    try:
        with open(path, "ab+") as f:
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    text = "\n" + text
            f.write(text.encode())
            if sync:
                f.flush()
                os.fsync(f.fileno())
    except OSError as err:
        raise OutputError.of(path, err) from None


def replace_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    A crash or error leaves any previous ``path`` untouched and removes the temporary file.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise OutputError.of(path, err) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise OutputError.of(path, err) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def slug(text: str) -> str:
    """``text`` as a file-name-safe word: letters, digits, ``-``, ``_`` and ``.`` only."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)
    return "_".join(part for part in safe.split("_") if part) or "unnamed"


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return replace_atomic(path, lambda tmp: tmp.write_text(text))
