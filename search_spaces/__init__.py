"""Registry of declared search spaces: the built-in YAML files here, and any YAML path."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from nas.space import SearchSpace, SpaceError

_HERE = Path(__file__).parent
BUILTIN = {
    "elasticvit": "elasticvit.yaml",
    "ofa-mbv3": "ofa_mbv3.yaml",
    "ofa-mbv3-w1.0": "ofa_mbv3_w10.yaml",
    "hybrid-tiny": "hybrid_tiny.yaml",
    "hybrid-zoo": "hybrid_zoo.yaml",
    "mobile-zoo": "mobile_zoo.yaml",
    "mobilenetv2": "mobilenetv2.yaml",
    "mobilevitv2": "mobilevitv2.yaml",
    "repvit": "repvit.yaml",
    "efficientformer": "efficientformer.yaml",
    "efficientvit-msra": "efficientvit_msra.yaml",
}


class UnknownSpaceError(SpaceError):
    """Neither a built-in space name nor a readable YAML file."""


def names() -> list[str]:
    """Names of the built-in spaces."""
    return list(BUILTIN)


@cache
def _builtin(name: str) -> SearchSpace:
    return SearchSpace.from_yaml(_HERE / BUILTIN[name])


def get(name_or_path: str | Path) -> SearchSpace:
    """A built-in space by name, or a space declared in a YAML file."""
    key = str(name_or_path)
    if key in BUILTIN:
        return _builtin(key)
    path = Path(key)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UnknownSpaceError(f"space file {key} does not exist")
        return SearchSpace.from_yaml(path)
    raise UnknownSpaceError(
        f"unknown space {key!r}; built-in spaces: {', '.join(BUILTIN)} (or a path to a .yaml file)"
    )


__all__ = ["BUILTIN", "UnknownSpaceError", "get", "names"]
