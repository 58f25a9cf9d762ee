"""Run folders and crash-safe file writes: write to a temporary name, then rename.

A write that fails (a full disk, a read-only folder, a path through a file) raises
:class:`OutputError` naming the path, and leaves neither a temporary file nor a half-written one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.errors import InputError


class OutputError(InputError):
    """A file or folder cannot be written; the message names it and the system's reason."""

    @classmethod
    def of(cls, path: str | Path, err: OSError) -> OutputError:
        return cls(f"cannot write {path}: {err.strerror or err}")


def make_folder(path: str | Path) -> Path:
    """Create the folder ``path`` (and its parents) unless it exists."""
    path = Path(path)
    check_folder(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError.of(path, err) from None
    return path


def check_folder(path: str | Path) -> None:
    """Raise :class:`OutputError` when ``path`` cannot become a folder because it, or a folder
    above it, is a file."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                where = "a file of that name exists" if part == path else f"{part} is a file"
                raise OutputError(f"cannot create folder {path}: {where}")
            return


def check_output_file(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a file a command may write: not a folder, in a folder that exists."""
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise OutputError(f"{option} {path} is a folder; give a file path")
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{option} {path}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise OutputError(f"{option} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{option} {path}: folder {parent} is not writable")
    return out


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


def save_torch(payload: Any, path: str | Path) -> Path:
    """``torch.save(payload)`` to ``path`` atomically. Torch reports a failed write (a full
    disk) as a bare RuntimeError: here it is an :class:`OutputError` naming the path."""
    import torch

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            sink = _Sink(f)
            try:
                torch.save(payload, sink)
            except RuntimeError:
                if sink.error is not None:
                    raise sink.error from None
                raise

    return replace_atomic(path, write)


class _Sink:
    """A file object that remembers the OSError a write raised."""

    def __init__(self, file) -> None:
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.file.flush()


def slug(text: str) -> str:
    """``text`` as a file-name-safe word: letters, digits, ``-``, ``_`` and ``.`` only."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)
    return "_".join(part for part in safe.split("_") if part) or "unnamed"


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return replace_atomic(path, lambda tmp: tmp.write_text(text))
