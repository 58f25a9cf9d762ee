"""Published per-block latency lookup tables and the keys an arch's blocks have in them.

Two tables are supported, each tied to the space it was measured for:

* the Pixel 4 table of the ElasticViT space (one JSON file, key -> ms), keys from :func:`pixel4_keys`;
* the Samsung Note10 tables of Once-for-All's MobileNetV3 w1.2 (one YAML file per input
  resolution, ``{res}_lookup_table.yaml``, key -> {mean, std, count}), keys from :func:`note10_keys`.

A model's latency on the device is the sum of its blocks' entries (:func:`table_latency`). Keys are
read off :func:`nas.layers.layers_of`, so they always describe the layers the engine builds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from nas.arch import Arch
from nas.errors import InputError
from nas.layers import HeadLayer, Layer, MBConvLayer, StemLayer, TransformerLayer, layers_of
from nas.space import SearchSpace

try:
    _YamlLoader = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _YamlLoader = yaml.SafeLoader

_NOTE10_FILE = re.compile(r"^(\d+)_lookup_table\.yaml$")
#: Activation names as the Pixel 4 table spells them.
_PIXEL4_ACT = {"hswish": "hard_swish", "relu": "relu"}


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
    if isinstance(layer, StemLayer):
        return [
            f"firstconv_{layer.in_hw}_{layer.in_ch}_{layer.out_ch}_{layer.stride}_{layer.kernel}"
        ]
    if isinstance(layer, MBConvLayer) and layer.slot.endswith(".downsample"):
        return [
            f"transds_{layer.in_hw}_{layer.in_ch}_{layer.out_ch}_{layer.stride}"
            f"_{_num(layer.expand_ratio)}"
        ]
    if isinstance(layer, MBConvLayer):
        return [
            f"conv_{layer.in_hw}_{layer.in_ch}_{layer.out_ch}_{_num(layer.expand_ratio)}"
            f"_{layer.stride}_{_PIXEL4_ACT[layer.activation]}_{layer.kernel}"
            f"_{'se' if layer.se else 'nose'}"
        ]
    if isinstance(layer, TransformerLayer):
        act = _PIXEL4_ACT[layer.activation]
        return [
            f"transattn_{layer.hw}_{layer.width}_{act}_{layer.v_scale}_ln",
            f"transffn_{layer.hw}_{layer.width}_{layer.mlp_ratio}_{act}_ln",
        ]
    if isinstance(layer, HeadLayer):
        return [
            f"mbpool_{layer.in_hw}_{layer.in_ch}_{layer.feature_ch}"
            f"_{_num(layer.expand_ch / layer.in_ch)}_{_PIXEL4_ACT[layer.activation]}"
        ]
    raise TypeError(f"no Pixel 4 key for layer {layer!r}")


def note10_keys(space: SearchSpace, arch: Arch) -> list[str]:
    """One Note10 table key per block; the head gives four (Conv_1, AvgPool2D, Conv_2, Logits)."""
    return [key for layer in layers_of(space, arch) for key in note10_layer_keys(layer)]


def note10_layer_keys(layer: Layer) -> list[str]:
    """The Note10 table keys of one layer."""
    if isinstance(layer, StemLayer):
        return [
            f"Conv-input:{_hwc(layer.in_hw, layer.in_ch)}-output:{_hwc(layer.out_hw, layer.out_ch)}"
        ]
    if isinstance(layer, MBConvLayer):
        return [
            f"expanded_conv-input:{_hwc(layer.in_hw, layer.in_ch)}"
            f"-output:{_hwc(layer.out_hw, layer.out_ch)}-expand:{layer.mid_ch}"
            f"-kernel:{layer.kernel}-stride:{layer.stride}-idskip:{int(layer.residual)}"
            f"-se:{int(layer.se)}-hs:{int(layer.activation == 'hswish')}"
        ]
    if isinstance(layer, HeadLayer):
        hw, cin, mid, feat = layer.in_hw, layer.in_ch, layer.expand_ch, layer.feature_ch
        return [
            f"Conv_1-input:{_hwc(hw, cin)}-output:{_hwc(hw, mid)}",
            f"AvgPool2D-input:{_hwc(hw, mid)}-output:{_hwc(1, mid)}",
            f"Conv_2-input:{_hwc(1, mid)}-output:{_hwc(1, feat)}",
            f"Logits-input:{_hwc(1, feat)}-output:{layer.num_classes}",
        ]
    raise TypeError(f"no Note10 key for layer {layer!r} (the tables cover MobileNetV3 only)")


def table_latency(keys: Iterable[str], table: Mapping[str, float]) -> float:
    """Sum of the table entries of ``keys`` (ms); :class:`MissingKeysError` lists absent keys."""
    keys = list(keys)
    missing = [key for key in dict.fromkeys(keys) if key not in table]
    if missing:
        raise MissingKeysError(missing, len(table))
    return sum(table[key] for key in keys)


def _num(value: float) -> str:
    """6.0 -> '6', 2.5 -> '2.5'."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _hwc(hw: int, ch: int) -> str:
    return f"{hw}x{hw}x{ch}"
