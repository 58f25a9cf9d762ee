"""Run folders and crash-safe file writes: write to a temporary name, then rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def replace_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    A crash or error leaves any previous ``path`` untouched and removes the temporary file.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
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
