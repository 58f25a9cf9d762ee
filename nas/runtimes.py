"""Optional runtime libraries (ExecuTorch, LiteRT): import them, or say how to install them, and
keep their start-up chatter (native log lines, optional-extension warnings) off the user's
screen; errors still surface as exceptions."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from nas.errors import InputError

#: Loggers of the runtime libraries that warn about optional pieces they could not load.
_LOGGERS = ("torchao", "torch.utils._pytree", "root", "absl")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Python warnings, the runtimes' loggers, and file descriptors 1 and 2 (native code
    prints there) inside the block."""
    levels = {name: logging.getLogger(None if name == "root" else name).level for name in _LOGGERS}
    for name in levels:
        logging.getLogger(None if name == "root" else name).setLevel(logging.ERROR)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)
        for name, level in levels.items():
            logging.getLogger(None if name == "root" else name).setLevel(level)


class MissingRuntimeError(InputError):
    """A library a format or backend needs is not installed."""


def require(module: str, extra: str = "deploy") -> Any:
    """Import ``module`` or raise :class:`MissingRuntimeError` naming the package extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise _missing(module, extra, str(err)) from None


def require_installed(module: str, extra: str = "deploy") -> None:
    """Raise :class:`MissingRuntimeError` unless ``module`` is installed (without importing it)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise _missing(module, extra, "no such module")


def _missing(module: str, extra: str, why: str) -> MissingRuntimeError:
    return MissingRuntimeError(
        f"{module} is not installed ({why}); install the deployment runtimes with "
        f"`pip install -e '.[{extra}]'`"
    )
