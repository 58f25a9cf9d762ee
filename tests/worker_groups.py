"""Which tests run on the same pytest-xdist worker (``make test``: ``-n 2 --dist loadgroup``).

A module's tests that share something costly (a module-scoped fixture, or a world of runs built
with the `nas` command) are one group, run on one worker, so that it is built once; the other
tests are balanced across workers one by one. Free of torch, so that a test can run this plugin
in a small pytest session of its own.
"""

from __future__ import annotations

import pytest

#: Session fixtures that build a world of runs and profiles with the `nas` command, on demand:
#: the tests of every module that uses one of these worlds are one group (named after it), so that
#: it is built once. (The README's chain, ``readme_flow``, was once built per module so that two
#: workers shared it: `test_commands` then trained and measured again what `test_readme` had, and
#: the tests without a group, dealt out one by one, balance the workers anyway.)
SHARED_WORLDS = ("tiny_world", "readme_flow")


def worker_group(item: pytest.Item) -> str | None:
    """The pytest-xdist group of a test: the world of :data:`SHARED_WORLDS` it uses; else its
    module, when the test shares something costly with the module's other tests (a
    module-scoped fixture); else none, and the test is balanced across workers on its own. A
    test marked with a group of its own keeps it.

    With ``pytest -n 2 --dist loadgroup`` (``make test``) a module's shared fixtures are then
    built once, on one worker: a module split across workers builds them again on each switch.
    """
    if item.get_closest_marker("xdist_group"):
        return None  # the test names its group
    world = next((name for name in SHARED_WORLDS if name in item.fixturenames), None)
    if world:
        return world
    fixtures = getattr(item, "_fixtureinfo", None)
    defs = fixtures.name2fixturedefs.values() if fixtures else ()
    shares = any(d[-1].scope == "module" for d in defs if d)
    return item.module.__name__ if shares and getattr(item, "module", None) else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Tests run in the worker group of :func:`worker_group` (``xdist_group``)."""
    for item in items:
        group = worker_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
