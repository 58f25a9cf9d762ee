"""What each latency unit exports, recorded with its revision (:mod:`predictors.forms`).

For every unit of every registered block kind (the first configuration of each in the kinds'
example spaces, nothing fused), the ATen operators of its timed module's ``torch.export`` graph,
counted. ``unit_graphs.json`` holds them with each unit's revision;
``tests/test_unit_forms.py`` checks that this version exports the same, so that a change of a
unit's exported form cannot land without a new revision (which marks older profiles stale).
After changing a unit's form on purpose, raise its revision in ``predictors/forms.py``, then:

    python tests/unit_graphs.py --write

which refuses to record a changed graph under an unchanged revision.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORD = HERE / "unit_graphs.json"


def example_spaces() -> list:
    """The tiny space of every registered stage, entry and attention kind's example stage (those
    of the block kinds' conformance suite)."""
    from tests.example_spaces import example_space, kind_examples

    return [example_space(name, **kw) for name, kw in kind_examples().items() if "stage" in kw]


def unit_specs() -> dict:
    """unit name -> its first kernel configuration in :func:`example_spaces` (no fusion)."""
    from predictors.kernels import FusionRules
    from predictors.measure import enumerate_kernels

    units: dict = {}
    for space in example_spaces():
        for spec in enumerate_kernels(space, FusionRules()):
            for unit in spec.get("units") or (spec,):
                units.setdefault(unit.kind, unit)
    return dict(sorted(units.items()))


def operators(spec) -> dict[str, int]:
    """The ATen operators of the unit's timed module, exported, counted."""
    import torch

    from predictors.modules import kernel_module

    module, inputs = kernel_module(spec)
    graph = torch.export.export(module, inputs).graph
    ops = Counter(str(n.target) for n in graph.nodes if n.op == "call_function")
    return dict(sorted(ops.items()))


def signatures() -> dict[str, dict]:
    """unit -> {"revision", "ops"} as this version exports it."""
    from predictors import forms

    current = forms.current()
    return {
        unit: {"revision": current.get(unit, 1), "ops": operators(spec)}
        for unit, spec in unit_specs().items()
    }


def recorded() -> dict[str, dict]:
    return json.loads(RECORD.read_text())["units"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {RECORD.name}")
    args = parser.parse_args(argv)
    now = signatures()
    old = recorded() if RECORD.exists() else {}
    unbumped = [
        u for u, s in now.items() if u in old and s["ops"] != old[u]["ops"] and
        s["revision"] == old[u]["revision"]
    ]  # fmt: skip
    if unbumped:
        print(
            f"the exported form of {', '.join(unbumped)} changed: raise their revisions in "
            "predictors/forms.py first",
            file=sys.stderr,
        )
        return 2
    if args.write:
        import torch

        RECORD.write_text(json.dumps({"torch": torch.__version__, "units": now}, indent=1) + "\n")
        print(f"wrote {RECORD}: {len(now)} units")
    else:
        print(json.dumps(now, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main())
