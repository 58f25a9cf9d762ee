"""`make test` runs the suite on two pytest-xdist workers: a module's shared fixtures must be
built once, on one worker, or the suite pays for them again on every switch between modules.

Runs the suite's own grouping plugin (``worker_groups``) in a small pytest session of its own,
with the options of ``make test``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import tomllib

TESTS = Path(__file__).resolve().parent
#: The ``-p no:`` options of the suite's own configuration (pyproject.toml), which a session in
#: another folder does not read.
_ADDOPTS = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())["tool"]["pytest"][
    "ini_options"
]["addopts"].split()
UNUSED_PLUGINS = [
    word
    for option, name in zip(_ADDOPTS, _ADDOPTS[1:], strict=False)
    if option == "-p"
    for word in ("-p", name)
]

CONFTEST = f"""
import os, sys
import pytest
sys.path.insert(0, {str(TESTS)!r})
from worker_groups import pytest_collection_modifyitems  # noqa: F401

def _built(name):
    with open(os.path.join(os.path.dirname(__file__), "built.txt"), "a") as f:
        f.write(f"{{name}} {{os.environ.get('PYTEST_XDIST_WORKER', '-')}}\\n")

@pytest.fixture(scope="session")
def tiny_world():
    _built("tiny_world")
"""

SHARED_MODULE = """
import pytest
from conftest import _built

@pytest.fixture(scope="module")
def costly():
    _built("costly")

@pytest.mark.parametrize("i", range(12))
def test_uses_the_module_fixture(i, costly):
    pass
"""

WORLD_MODULE = """
import pytest

@pytest.mark.parametrize("i", range(8))
def test_uses_the_world(i, tiny_world):
    pass
"""

FREE_MODULE = """
import time
import pytest
from conftest import _built

@pytest.mark.parametrize("i", range(30))
def test_free(i):
    time.sleep(0.05)
    _built("free")
"""


def test_a_modules_shared_fixtures_are_built_once_and_free_tests_use_both_workers(tmp_path):
    for name, text in {
        "conftest.py": CONFTEST,
        "test_a_shared.py": SHARED_MODULE,
        "test_b_world.py": WORLD_MODULE,
        "test_c_free.py": FREE_MODULE,
    }.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup"]
        + ["-p", "no:cacheprovider", "-p", "no:randomly", *UNUSED_PLUGINS, str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "50 passed" in done.stdout, done.stdout
    built = [line.split() for line in (tmp_path / "built.txt").read_text().splitlines()]
    workers = {name: [w for n, w in built if n == name] for name in ("costly", "tiny_world")}
    assert len(workers["costly"]) == 1 and len(workers["tiny_world"]) == 1, built
    assert {w for name, w in built if name == "free"} == {"gw0", "gw1"}, built
