"""Run many `nas` commands fast, each in a process of its own.

Starting `nas` costs seconds of imports (torch, scikit-learn, Ray); a catalogue of dozens of
commands would spend minutes on them. :class:`CliRunner` starts one server process that imports
the engine once and then forks a fresh child per command: the child runs ``nas.cli.main`` on its
argv with stdout and stderr on files, and exits with its return code. An exception that escapes
``main`` is printed as Python prints it (traceback, exit 1), so each command behaves as the `nas`
executable does, in a process that shares no state with the others.

The server never runs torch operations itself, so the children inherit no thread pools.
"""

from __future__ import annotations

import atexit
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SERVER = r"""
import io, json, os, resource, signal, sys, tempfile, time, traceback
import nas.cli, nas.deploy, nas.trained, nas.train.trainer, predictors.commands, predictors.latency
import predictors.measure, predictors.validate
import onnx, onnxruntime, optuna, sklearn.datasets, sklearn.ensemble, torch._dynamo  # slow imports

requests, replies = sys.stdin, os.fdopen(os.dup(1), "w")

def child(request, out, err):
    os.chdir(request["cwd"])
    os.environ.update(request.get("env") or {})
    if request.get("file_size_limit") is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        limit = request["file_size_limit"]
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    stdin = os.open(request.get("stdin_path") or os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    sys.stdin = io.TextIOWrapper(os.fdopen(0, "rb"))
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb"), write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb"), write_through=True)
    sys.argv = ["nas", *request["argv"]]
    try:
        code = nas.cli.main(request["argv"])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)

for line in requests:
    request = json.loads(line)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            try:
                child(request, out, err)
            finally:
                os._exit(70)
        deadline = time.monotonic() + request["timeout"]
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = None
                break
            time.sleep(0.01)
        out.seek(0)
        err.seek(0)
        code = None if status is None else os.waitstatus_to_exitcode(status)
        reply = {"code": code, "out": out.read().decode(errors="replace"),
                 "err": err.read().decode(errors="replace")}
    replies.write(json.dumps(reply) + "\n")
    replies.flush()
"""


@dataclass
class Result:
    """What a command did: exit code (None: killed after the timeout), stdout, stderr."""

    code: int | None
    out: str
    err: str


class CliRunner:
    """A server that runs `nas` commands, each in a freshly forked process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(
        self,
        argv: list[str],
        cwd: str | Path,
        *,
        stdin: str | Path | None = None,
        env: dict[str, str] | None = None,
        file_size_limit: int | None = None,
        timeout: float = 120,
    ) -> Result:
        """Run ``nas ARGV`` in ``cwd``; ``stdin`` is a file to read standard input from;
        ``file_size_limit`` (bytes) makes larger writes fail as on a full disk."""
        request = {
            "argv": [str(a) for a in argv],
            "cwd": str(cwd),
            "stdin_path": None if stdin is None else str(stdin),
            "env": env,
            "file_size_limit": file_size_limit,
            "timeout": timeout,
        }
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the command server died (exit code {self.process.poll()})")
        reply = json.loads(line)
        return Result(reply["code"], reply["out"], reply["err"])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


_shared: CliRunner | None = None


def shared_runner() -> CliRunner:
    """The test process's one command server (started on first use, closed at exit)."""
    global _shared
    if _shared is None or _shared.process.poll() is not None:
        _shared = CliRunner()
        atexit.register(_shared.close)
    return _shared
