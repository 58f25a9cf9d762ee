"""Published latency tables as device profiles.

* The Pixel 4 table of the ElasticViT space (``pixel4_lut.json``) becomes a profile with scheme
  ``pixel4-blocks``: its "kernels" are the table's blocks, keyed as :func:`predictors.lut.pixel4_keys`
  names them, so a prediction is exactly the sum of the arch's table entries.
* The Samsung Note10 tables of Once-for-All's MobileNetV3 w1.2 (one ``{res}_lookup_table.yaml``
  per input resolution) become a profile with scheme ``note10-blocks``; keys are prefixed with the
  resolution (``224:expanded_conv-input:...``) because the tables give the same block different
  times at different resolutions.

The files are read from where the user keeps them (``--table PATH``); nothing is copied into the
repository. Block features parsed from the keys (:func:`key_features`) let the predictor regress
blocks a table lacks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.layers import Layer
from predictors.backends import Timing
from predictors.lut import (
    load_note10_tables,
    load_pixel4_table,
    note10_layer_keys,
    pixel4_layer_keys,
)
from predictors.profile import DeviceProfile, KernelRecord, Measurement

TABLES = {
    "pixel4": {
        "scheme": "pixel4-blocks",
        "space": "elasticvit",
        "device": "Google Pixel 4 CPU, TFLite, 1 thread (published per-block table)",
        "backend": "tflite",
    },
    "note10": {
        "scheme": "note10-blocks",
        "space": "ofa-mbv3",
        "device": "Samsung Note10 (published Once-for-All per-block tables)",
        "backend": "tflite",
    },
}

#: Names of the numbers in a Pixel 4 key, per block kind.
_PIXEL4_FIELDS = {
    "firstconv": ("hw", "cin", "cout", "stride", "kernel"),
    "conv": ("hw", "cin", "cout", "expand", "stride", "act", "kernel", "se"),
    "transds": ("hw", "cin", "cout", "stride", "expand"),
    "transattn": ("hw", "c", "act", "v", "norm"),
    "transffn": ("hw", "c", "mlp_ratio", "act", "norm"),
    "mbpool": ("hw", "cin", "feature", "expand", "act"),
}
_NOTE10_PART = re.compile(r"-([a-z]+):([0-9x]+)")


def layer_keys_function(scheme: str) -> Callable[[Layer, int], list[str]]:
    """(layer, resolution) -> the table keys of that layer, for a table scheme."""
    if scheme == "pixel4-blocks":
        return lambda layer, resolution: pixel4_layer_keys(layer)
    if scheme == "note10-blocks":
        return lambda layer, resolution: [f"{resolution}:{k}" for k in note10_layer_keys(layer)]
    raise ValueError(f"no table keys for scheme {scheme!r}")


def key_features(key: str) -> tuple[str, dict[str, Any]]:
    """(block kind, numeric features) of a Pixel 4 or (resolution-prefixed) Note10 key."""
    if ":" in key.split("-", 1)[0]:
        return _note10_features(key)
    return _pixel4_features(key)


def _pixel4_features(key: str) -> tuple[str, dict[str, Any]]:
    kind, *rest = key.replace("hard_swish", "hardswish").split("_")
    names = _PIXEL4_FIELDS.get(kind, tuple(f"f{i}" for i in range(len(rest))))
    features: dict[str, Any] = {}
    for name, value in zip(names, rest, strict=False):
        if value in ("se", "nose"):
            features[name] = int(value == "se")
        else:
            features[name] = _number(value)
    return kind, features


def _note10_features(key: str) -> tuple[str, dict[str, Any]]:
    resolution, _, body = key.partition(":")
    kind = body.split("-", 1)[0]
    features: dict[str, Any] = {"resolution": int(resolution)}
    for name, value in _NOTE10_PART.findall(body):
        if "x" in value:
            h, _, c = value.split("x")
            features[f"{name}_hw"], features[f"{name}_c"] = int(h), int(c)
        else:
            features[name] = int(value)
    return kind, features


def _number(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() else value


# --------------------------------------------------------------------- block work model


def _note10_work(kind: str, f: dict[str, float]) -> list[float] | None:
    """Work terms of a Note10 block (MACs and tensor sizes of its parts), or None if unknown."""
    if kind == "expanded_conv":
        h_in, h_out = f["input_hw"] ** 2, f["output_hw"] ** 2
        cin, cout, mid, k = f["input_c"], f["output_c"], f["expand"], f["kernel"]
        expands = float(mid != cin)
        hs = f.get("hs", 0.0)
        dw = h_out * mid * k * k
        act = expands * h_in * mid + h_out * mid
        return [
            expands * h_in * cin * mid,
            dw * (k == 3),
            dw * (k == 5),
            dw * (k == 7),
            h_out * mid * cout,
            f.get("se", 0.0) * h_out * mid,
            act * hs,
            act * (1 - hs),
            h_in * cin + h_out * cout,
            f.get("idskip", 0.0) * h_out * cout,
            1.0,
        ]
    if kind in ("Conv", "Conv_1"):
        h_out = f["output_hw"] ** 2
        kernel = 9.0 if kind == "Conv" else 1.0
        return [h_out * f["output_c"] * f["input_c"] * kernel, h_out * f["output_c"], 1.0]
    if kind == "AvgPool2D":
        return [f["input_hw"] ** 2 * f["input_c"], 1.0]
    if kind == "Conv_2":
        return [f["input_c"] * f["output_c"]]
    if kind == "Logits":
        return [f["input_c"] * f["output"]]
    return None


class WorkRegressor:
    """Block time as a non-negative combination of its work terms (MACs of each part, tensor
    sizes), fitted in relative error: unlike trees it extrapolates to narrower or wider blocks.

    Each resolution's table was timed on its own and gives the same block a different time, so
    one fit over all of them is biased at each: the fit is scaled per resolution by the ratio of
    that table's entries to the fit's predictions of them (a resolution between two tables takes
    the interpolated scale; one beyond the tables, the nearest table's)."""

    def __init__(self, kind: str, rows: list[dict[str, float]], ms):
        import numpy as np
        from sklearn.linear_model import LinearRegression

        self.kind = kind
        x = np.array([_note10_work(kind, r) for r in rows], dtype=np.float64)
        y = np.asarray(ms, dtype=np.float64)
        self.scale = np.maximum(np.abs(x).max(0), 1e-12)
        fit = LinearRegression(positive=True, fit_intercept=False)
        fit.fit(x / self.scale, y, sample_weight=1.0 / y**2)  # relative error
        self.coef = fit.coef_
        fitted = (x / self.scale) @ self.coef
        resolution = np.array([r.get("resolution", 0) for r in rows], dtype=np.float64)
        self.resolutions = np.unique(resolution)
        self.factors = np.array(
            [
                y[resolution == r].sum() / max(fitted[resolution == r].sum(), 1e-12)
                for r in self.resolutions
            ]
        )

    def predict(self, rows: list[dict[str, float]]):
        import numpy as np

        x = np.array([_note10_work(self.kind, r) for r in rows], dtype=np.float64)
        resolution = np.array([r.get("resolution", 0) for r in rows], dtype=np.float64)
        return (x / self.scale) @ self.coef * np.interp(resolution, self.resolutions, self.factors)


def block_regressor(scheme: str, kind: str, rows: list[dict[str, float]], ms):
    """The regressor for table blocks of ``kind`` a table lacks, or None for the default."""
    if scheme == "note10-blocks" and rows and _note10_work(kind, rows[0]) is not None:
        return WorkRegressor(kind, rows, ms)
    return None


# --------------------------------------------------------------------- import


def import_table(which: str, path: str | Path) -> DeviceProfile:
    """A profile from a published table: ``which`` is ``pixel4`` (a JSON file) or ``note10``
    (the folder of ``{res}_lookup_table.yaml`` files)."""
    import search_spaces

    info = TABLES[which]
    space = search_spaces.get(info["space"])
    kernels: dict[str, KernelRecord] = {}
    if which == "pixel4":
        for key, ms in load_pixel4_table(path).items():
            kind, features = key_features(key)
            kernels[key] = KernelRecord(key, kind, features, Measurement([Timing.exact(ms)]))
        resolutions = None
    else:
        tables = load_note10_tables(path)
        for resolution, table in tables.items():
            for key, ms in table.items():
                full = f"{resolution}:{key}"
                kind, features = key_features(full)
                kernels[full] = KernelRecord(full, kind, features, Measurement([Timing.exact(ms)]))
        resolutions = sorted(tables)
    return DeviceProfile(
        device=info["device"],
        backend=info["backend"],
        scheme=info["scheme"],
        space_name=space.name,
        space_declaration=space.to_dict(),
        settings={"threads": 1, "batch": 1, "statistic": "median", "resolutions": resolutions},
        source="table",
        environment={"table": which, "table_file": Path(path).name},
        kernels=kernels,
        complete=True,
        notes=[
            f"imported from the published {which} latency table ({Path(path).name}); "
            "a prediction is the sum of the arch's block entries"
        ],
    )
