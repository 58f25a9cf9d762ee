"""Published models as presets: archs of built-in spaces that reproduce them, with the
published parameter count and MACs they are checked against.

A preset is a plain YAML file (``search_spaces/presets/<name>.yaml``, format ``nas-preset``,
version 1): its name, the model it reproduces, where the figures come from, the published
``params`` and ``macs`` with a note on what they count, the built-in space and the arch (an arch
document without ``space``; the preset's ``space`` is its space).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from nas.arch import Arch, ArchError
from nas.errors import InputError

PRESET_FORMAT = "nas-preset"
PRESET_VERSION = 1
PRESET_DIR = Path(__file__).resolve().parent.parent / "search_spaces" / "presets"
_KEYS = {"format", "version", "name", "model", "source", "published", "space", "arch"}


class PresetError(InputError):
    """A preset name is unknown, or a preset file is malformed."""


@dataclass(frozen=True)
class Preset:
    """A published model as an arch of a built-in space, with its published figures."""

    name: str
    model: str
    source: str
    space: str
    arch: Arch
    published_params: int
    published_macs: int | None
    note: str = ""

    def counts(self) -> tuple[int, int]:
        """(MACs, parameters) from the operator graph of the arch as exported."""
        import search_spaces
        from nas.graph import count

        return count(search_spaces.get(self.space), self.arch)


def _require(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise PresetError(f"{where}: {key} is missing")
    return data[key]


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PresetError(f"{where} = {value!r} must be a positive integer")
    return value


def from_dict(data: Any, where: str) -> Preset:
    """The preset a ``nas-preset`` document describes; its arch is checked against its space."""
    import search_spaces

    if not isinstance(data, Mapping):
        raise PresetError(f"{where} must be a mapping (a {PRESET_FORMAT} document)")
    if data.get("format") != PRESET_FORMAT:
        raise PresetError(f"{where}: format = {data.get('format')!r}; expected {PRESET_FORMAT!r}")
    if data.get("version") != PRESET_VERSION:
        raise PresetError(
            f"{where}: version = {data.get('version')!r} is not supported; supported: "
            f"{PRESET_VERSION}"
        )
    unknown = set(data) - _KEYS
    if unknown:
        raise PresetError(f"{where} has unknown key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    published = _require(data, "published", where)
    if not isinstance(published, Mapping):
        raise PresetError(f"{where}: published must be a mapping with params (and macs, note)")
    space_name = str(_require(data, "space", where))
    arch_data = _require(data, "arch", where)
    if not isinstance(arch_data, Mapping):
        raise PresetError(f"{where}: arch must be a mapping (an arch document without space)")
    space = search_spaces.get(space_name)
    try:
        arch = space.validate(Arch.from_dict({**arch_data, "space": space.name}))
    except ArchError as err:
        raise PresetError(f"{where}: arch: {err}") from None
    macs = published.get("macs")
    return Preset(
        name=str(_require(data, "name", where)),
        model=str(_require(data, "model", where)),
        source=" ".join(str(_require(data, "source", where)).split()),
        space=space.name,
        arch=arch,
        published_params=_count(
            _require(published, "params", f"{where}: published"), f"{where}: published.params"
        ),
        published_macs=None if macs is None else _count(macs, f"{where}: published.macs"),
        note=" ".join(str(published.get("note", "")).split()),
    )


def load(path: str | Path) -> Preset:
    """The preset in a YAML file."""
    from nas.textfiles import FileFormatError, read_yaml

    try:
        data = read_yaml(path, f"a preset ({PRESET_FORMAT} YAML)")
    except FileFormatError as err:
        raise PresetError(str(err)) from None
    return from_dict(data, str(path))


def _files() -> dict[str, Path]:
    return {path.stem: path for path in sorted(PRESET_DIR.glob("*.yaml"))}


def names() -> list[str]:
    """Names of the built-in presets."""
    return list(_files())


@cache
def get(name: str) -> Preset:
    """A built-in preset by name."""
    path = _files().get(name)
    if path is None:
        raise PresetError(f"unknown preset {name!r}; presets: {', '.join(names())}")
    preset = load(path)
    if preset.name != name:
        raise PresetError(f"{path}: name = {preset.name!r} must be the file's name {name!r}")
    return preset


__all__ = ["Preset", "PresetError", "from_dict", "get", "load", "names"]
