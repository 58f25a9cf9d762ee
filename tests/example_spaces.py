"""Tiny spaces built from the examples the registered kinds declare: each kind's example (a stem,
a stage or a head mapping) with the first examples of the other roles around it. The block kinds'
conformance suite and the record of the units' exported forms (``unit_graphs.py``) run on them."""

from __future__ import annotations

RESOLUTIONS = [8, 12]


def example(role: str) -> dict:
    """The first example a kind of ``role`` declares."""
    from nas.blocks import block_kinds

    return dict(next(k for k in block_kinds(role) if k.example is not None).example)


def example_space(name: str, stem=None, stage=None, head=None):
    """A tiny space of one stage: the given parts, else the first examples of their roles."""
    from nas.space import SearchSpace

    return SearchSpace.from_dict(
        {
            "name": f"example-{name}",
            "in_channels": 3,
            "num_classes": 4,
            "resolutions": RESOLUTIONS,
            "stem": stem or example("stem"),
            "stages": [stage or example("stage")],
            "head": head or example("head"),
        }
    )


def kind_examples() -> dict[str, dict]:
    """Per registered kind (attention kinds as ``attention-NAME``), the keyword arguments of
    :func:`example_space` that put its example in a space."""
    from nas.blocks import attention_kinds, block_kinds

    out = {}
    for kind in block_kinds():
        # an entry kind's example is a stage its layers open
        key = {"stem": "stem", "stage": "stage", "entry": "stage", "head": "head"}[kind.role]
        out[kind.name] = {key: kind.example}
    for attention in attention_kinds():
        out[f"attention-{attention.name}"] = {"stage": attention.example}
    return out
