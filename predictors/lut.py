"""Published per-block latency lookup tables and the keys an arch's blocks have in them.

Two tables are supported, each tied to the space it was measured for:

* the Pixel 4 table of the ElasticViT space (one JSON file, key -> ms), keys from :func:`pixel4_keys`;
* the Samsung Note10 tables of Once-for-All's MobileNetV3 w1.2 (one YAML file per input
  resolution, ``{res}_lookup_table.yaml``, key -> {mean, std, count}), keys from :func:`note10_keys`.

A model's latency on the device is the sum of its blocks' entries (:func:`table_latency`). Keys are
read off :func:`nas.layers.layers_of`, so they always describe the layers the engine builds; each
block kind spells its own keys (:meth:`nas.blocks.BlockKind.table_keys`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from nas.arch import Arch
from nas.blocks.registry import kind_of
from nas.blocks.tables import NOTE10, PIXEL4
from nas.errors import InputError
from nas.layers import Layer, layers_of
from nas.space import SearchSpace

try:
    _YamlLoader = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _YamlLoader = yaml.SafeLoader

_NOTE10_FILE = re.compile(r"^(\d+)_lookup_table\.yaml$")


class TableError(InputError):
    """A latency table file is missing or malformed; the message names the path."""


class MissingKeysError(KeyError):
    """Some blocks have no entry in a latency table; ``missing`` lists their keys."""

    def __init__(self, missing: list[str], table_size: int):
        super().__init__(missing)
        self.missing = missing
        self.table_size = table_size

    def __str__(self) -> str:
        shown = ", ".join(self.missing[:10])
        more = f" (and {len(self.missing) - 10} more)" if len(self.missing) > 10 else ""
        return (
            f"{len(self.missing)} block key(s) not in the latency table "
            f"({self.table_size} entries): {shown}{more}"
        )


# --------------------------------------------------------------------- loading


def load_pixel4_table(path: str | Path) -> dict[str, float]:
    """The Pixel 4 table: a JSON object mapping block keys to milliseconds."""
    from nas.textfiles import FileFormatError, read_json

    path = Path(path)
    try:
        data = read_json(path, "a latency table (a JSON object of key -> ms)")
    except FileFormatError as err:
        raise TableError(f"latency table {err}") from None
    if not isinstance(data, dict) or not data:
        raise TableError(f"latency table {path} must be a non-empty JSON object of key -> ms")
    return {key: _ms(value, path, key) for key, value in data.items()}


def load_note10_tables(folder: str | Path) -> dict[int, dict[str, float]]:
    """The Note10 tables of a folder: resolution -> (key -> mean ms), from ``{res}_lookup_table.yaml``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TableError(f"latency table folder {folder} does not exist")
    files = {int(m.group(1)): p for p in folder.iterdir() if (m := _NOTE10_FILE.match(p.name))}
    if not files:
        raise TableError(f"no {{res}}_lookup_table.yaml files in {folder}")
    return {res: _load_note10_file(files[res]) for res in sorted(files)}


def _load_note10_file(path: Path) -> dict[str, float]:
    try:
        data = yaml.load(path.read_text(), Loader=_YamlLoader)
    except OSError as err:
        raise TableError(f"cannot read latency table {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise TableError(f"latency table {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict) or not data:
        raise TableError(f"latency table {path} must be a non-empty mapping of key -> {{mean: ms}}")
    table = {}
    for key, entry in data.items():
        if not isinstance(entry, Mapping) or "mean" not in entry:
            raise TableError(f"latency table {path}: entry {key!r} has no 'mean' (got {entry!r})")
        table[key] = _ms(entry["mean"], path, key)
    return table


def _ms(value: object, path: Path, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise TableError(f"latency table {path}: entry {key!r} = {value!r} is not a latency in ms")
    return float(value)


# --------------------------------------------------------------------- keys


def pixel4_keys(space: SearchSpace, arch: Arch) -> list[str]:
    """One Pixel 4 table key per block (two per transformer layer: attention and FFN)."""
    return [key for layer in layers_of(space, arch) for key in pixel4_layer_keys(layer)]


def pixel4_layer_keys(layer: Layer) -> list[str]:
    """The Pixel 4 table keys of one layer."""
    keys = kind_of(layer).table_keys(PIXEL4, layer)
    if keys is None:
        raise TypeError(f"no Pixel 4 key for layer {layer!r}")
    return keys


def note10_keys(space: SearchSpace, arch: Arch) -> list[str]:
    """One Note10 table key per block; the head gives four (Conv_1, AvgPool2D, Conv_2, Logits)."""
    return [key for layer in layers_of(space, arch) for key in note10_layer_keys(layer)]


def note10_layer_keys(layer: Layer) -> list[str]:
    """The Note10 table keys of one layer."""
    keys = kind_of(layer).table_keys(NOTE10, layer)
    if keys is None:
        raise TypeError(f"no Note10 key for layer {layer!r} (the tables cover MobileNetV3 only)")
    return keys


def table_latency(keys: Iterable[str], table: Mapping[str, float]) -> float:
    """Sum of the table entries of ``keys`` (ms); :class:`MissingKeysError` lists absent keys."""
    keys = list(keys)
    missing = [key for key in dict.fromkeys(keys) if key not in table]
    if missing:
        raise MissingKeysError(missing, len(table))
    return sum(table[key] for key in keys)
