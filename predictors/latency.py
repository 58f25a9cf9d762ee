"""The latency predictor: per-kernel measurements of a device profile -> milliseconds per arch.

``LatencyPredictor(space).fit(profile)`` (or :meth:`LatencyPredictor.load`) builds, from the raw
measurements of a :class:`~predictors.profile.DeviceProfile`:

* a kernel model: the measured time of every kernel configuration in the profile (an exact lookup
  table), and for configurations it lacks, one scikit-learn regressor per kernel kind, fitted on
  first need on that kind's measurements;
* a per-model overhead term ``scale * sum(kernel - baseline) + per_kernel * kernels
  + per_structural * structural units + per_mparam * parameters + per_minput * convolution inputs
  + constant`` (:class:`Overhead`), fitted
  by least squares (relative error) on the profile's whole-model measurements, its terms chosen by
  leave-one-out error; the baseline is the cost of one invocation with no work in it, which every
  standalone kernel timing includes once and a whole model only once in total.

``predict(archs)`` is vectorised: the predictor is *compiled* for its space once -- the latency of
every configuration of every layer position (:mod:`predictors.positions`) goes into a small numpy
table -- and an arch's latency is the sum of table lookups over its active positions plus the
constant. :meth:`LatencyPredictor.predict_arch` is the reference path (operator graph -> kernels ->
sum) the tables are checked against.
"""

from __future__ import annotations

import copy
import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas.arch import Arch
from nas.errors import InputError
from nas.layers import Layer, layers_of, slots
from nas.space import SearchSpace
from predictors.kernels import FusionRules, KernelSpec, split_kernels
from predictors.positions import ArchIndexer, PositionTable, StackedTables, position_layers
from predictors.profile import DeviceProfile, KernelRecord, ProfileError, ProfileSpaceError

MIN_REGRESSION_SAMPLES = 3


class ResolutionError(InputError):
    """An arch's resolution is outside the resolutions a profile was measured at."""


# --------------------------------------------------------------------- schemes


class OperatorScheme:
    """Layers -> kernels by the profile's fusion rules (profiles measured here or from a suite)."""

    name = "operators"

    def __init__(self, rules: FusionRules):
        self.rules = rules
        self._cache: dict[Layer, tuple[KernelSpec, ...]] = {}

    def record_id(self, record: KernelRecord) -> Any:
        return KernelSpec.make(record.kind, record.features)

    def layer_units(self, layer: Layer, resolution: int) -> tuple[KernelSpec, ...]:
        from nas.graph import layer_operator_graph

        key = replace(layer, slot="")
        units = self._cache.get(key)
        if units is None:
            graph = layer_operator_graph(layer)
            units = self._cache[key] = tuple(k.spec for k in split_kernels(graph, self.rules))
        return units

    def arch_units(self, space: SearchSpace, arch: Arch) -> list[KernelSpec]:
        from nas.graph import operator_graph

        return [k.spec for k in split_kernels(operator_graph(space, arch), self.rules)]

    def describe(self, unit: KernelSpec) -> tuple[str, dict[str, Any]]:
        return unit.kind, unit.feature_dict()

    def regressor(self, kind: str, rows, ms):
        return None  # the default per-kind trees

    def params(self, unit: KernelSpec) -> int:
        return int(unit.get("params", 0))

    def conv_input_elements(self, unit: KernelSpec) -> int:
        return unit.conv_input_elements

    def structural(self, unit: KernelSpec) -> bool:
        return unit.structural


class TableScheme:
    """Layers -> block keys of a published latency table (Pixel 4 or Note10)."""

    def __init__(self, name: str):
        from predictors import tables

        self.name = name
        self._keys = tables.layer_keys_function(name)
        self._features = tables.key_features
        self._cache: dict[tuple[Layer, int], tuple[str, ...]] = {}

    def record_id(self, record: KernelRecord) -> Any:
        return record.key

    def layer_units(self, layer: Layer, resolution: int) -> tuple[str, ...]:
        key = (replace(layer, slot=""), resolution)
        units = self._cache.get(key)
        if units is None:
            units = self._cache[key] = tuple(self._keys(layer, resolution))
        return units

    def arch_units(self, space: SearchSpace, arch: Arch) -> list[str]:
        return [
            unit
            for layer in layers_of(space, arch)
            for unit in self.layer_units(layer, arch.resolution)
        ]

    def describe(self, unit: str) -> tuple[str, dict[str, Any]]:
        return self._features(unit)

    def regressor(self, kind: str, rows, ms):
        from predictors.tables import block_regressor

        return block_regressor(self.name, kind, rows, ms)

    def params(self, unit: str) -> int:
        return 0  # table entries are whole-model shares already

    def conv_input_elements(self, unit: str) -> int:
        return 0

    def structural(self, unit: str) -> bool:
        return False


def make_scheme(profile: DeviceProfile):
    if profile.scheme == "operators":
        return OperatorScheme(FusionRules.from_list(profile.fusion_rules))
    return TableScheme(profile.scheme)


# --------------------------------------------------------------------- kernel model


def numeric_features(features: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Flat numbers of a feature dict: strings become stable codes, shapes their size and last
    dimension, the units of a joined kernel get prefixes ``u0_``, ``u1_``, ..."""
    out: dict[str, float] = {}
    for name, value in features.items():
        if name == "units":
            for i, unit in enumerate(value):
                out.update(numeric_features(unit, f"{prefix}u{i}_"))
        elif isinstance(value, bool | int | float):
            out[prefix + name] = float(value)
        elif isinstance(value, str):
            out[prefix + name] = float(zlib.crc32(value.encode()) % 1009)
        elif isinstance(value, list | tuple) and value:
            out[prefix + name + "_numel"] = float(math.prod(value))
            out[prefix + name + "_last"] = float(value[-1])
    return out


class KindRegressor:
    """One scikit-learn regressor for a kernel kind: features -> log(ms)."""

    def __init__(self, rows: list[dict[str, float]], ms: np.ndarray):
        from sklearn.ensemble import ExtraTreesRegressor

        self.names = sorted({name for row in rows for name in row})
        x = self._matrix(rows)
        self.model = ExtraTreesRegressor(n_estimators=64, random_state=0, n_jobs=1)
        self.model.fit(x, np.log(np.maximum(ms, 1e-6)))

    def _matrix(self, rows: list[dict[str, float]]) -> np.ndarray:
        return np.array([[row.get(n, 0.0) for n in self.names] for row in rows], dtype=np.float64)

    def predict(self, rows: list[dict[str, float]]) -> np.ndarray:
        return np.exp(self.model.predict(self._matrix(rows)))


class ScaledRegressor:
    """For a kind with one or two measurements: their time per unit of work, times the work."""

    def __init__(self, samples: list[tuple[dict[str, float], float]]):
        self.rate = float(np.mean([ms / _work(row) for row, ms in samples]))

    def predict(self, rows: list[dict[str, float]]) -> np.ndarray:
        return np.array([self.rate * _work(row) for row in rows])


def _work(row: dict[str, float]) -> float:
    return row.get("macs", 0.0) + row.get("params", 0.0) + 1000.0


class KernelModel:
    """Measured kernel times, exact where measured, regressed per kind elsewhere."""

    def __init__(self, profile: DeviceProfile, scheme):
        self.scheme = scheme
        self.statistic = profile.statistic
        self.exact: dict[Any, float] = {}
        self.by_kind: dict[str, list[tuple[dict[str, float], float]]] = {}
        for record in profile.kernels.values():
            if not record.measurement.passes:
                continue
            ms = record.measurement.ms(self.statistic)
            self.exact[scheme.record_id(record)] = ms
            self.by_kind.setdefault(record.kind, []).append((numeric_features(record.features), ms))
        self._regressors: dict[str, KindRegressor] = {}
        self.regressed = 0

    def ms(self, unit: Any) -> tuple[float, bool]:
        """(time of ``unit``, whether it was regressed rather than measured)."""
        found = self.exact.get(unit)
        if found is not None:
            return found, False
        kind, features = self.scheme.describe(unit)
        self.regressed += 1
        return float(self.regressor(kind).predict([numeric_features(features)])[0]), True

    def ms_many(self, units: Sequence[Any]) -> dict[Any, tuple[float, bool]]:
        """Like :meth:`ms` for many units, regressing the unmeasured ones kind by kind."""
        out: dict[Any, tuple[float, bool]] = {}
        missing: dict[str, list[tuple[Any, dict[str, float]]]] = {}
        for unit in units:
            found = self.exact.get(unit)
            if found is not None:
                out[unit] = (found, False)
            elif unit not in out:
                kind, features = self.scheme.describe(unit)
                missing.setdefault(kind, []).append((unit, numeric_features(features)))
        for kind, items in missing.items():
            values = self.regressor(kind).predict([row for _, row in items])
            for (unit, _), value in zip(items, values, strict=True):
                out[unit] = (float(value), True)
            self.regressed += len(items)
        return out

    def regressor(self, kind: str) -> KindRegressor:
        model = self._regressors.get(kind)
        if model is None:
            samples = self.by_kind.get(kind, [])
            if 0 < len(samples) < MIN_REGRESSION_SAMPLES:
                model = self._regressors[kind] = ScaledRegressor(samples)
                return model
            if len(samples) < MIN_REGRESSION_SAMPLES:
                raise ProfileError(
                    f"the profile has {len(samples)} measurement(s) of kernel kind {kind!r}, too "
                    f"few to predict its unmeasured configurations (measured kinds: "
                    f"{', '.join(sorted(self.by_kind))}); measure the profile for this space"
                )
            rows = [row for row, _ in samples]
            ms = np.array([ms for _, ms in samples])
            model = self.scheme.regressor(kind, rows, ms) or KindRegressor(rows, ms)
            self._regressors[kind] = model
        return model


# --------------------------------------------------------------------- overhead


@dataclass(frozen=True)
class Overhead:
    """Whole model = scale * sum(kernel - baseline) + per_kernel * kernels
    + per_structural * structural units + per_mparam * parameters / 1e6
    + per_minput * convolution input elements / 1e6 + constant (ms).

    The parameter term stands for weights a whole model streams from memory once per run,
    which a kernel timed on its own over and over finds in cache. The input term goes the other
    way: a convolution timed on its own pays on every run a cost in proportion to its input that
    it does not pay inside a model (:attr:`KernelSpec.conv_input_elements`); for a depthwise
    convolution at 112 px on ONNX Runtime that is half its standalone time. The structural-unit
    term prices what a block kind's multi-operator unit (an attention core, a cascaded head, SE:
    :attr:`KernelSpec.structural`) costs inside a model beyond its time alone: on ONNX Runtime at
    32 px a cascaded head costs about half as much again inside a model.
    """

    scale: float = 1.0
    per_kernel: float = 0.0
    constant: float = 0.0
    baseline: float = 0.0
    models: int = 0
    fit_mape: float | None = None
    per_mparam: float = 0.0
    terms: tuple[str, ...] = ("scale", "per_kernel", "constant")
    loo_mape: float | None = None
    per_minput: float = 0.0
    per_structural: float = 0.0

    def apply(self, raw, count, mparams=0.0, minputs=0.0, structural=0.0):
        return (
            self.scale * raw
            + self.per_kernel * count
            + self.per_mparam * mparams
            + self.per_minput * minputs
            + self.per_structural * structural
            + self.constant
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "per_kernel_ms": self.per_kernel,
            "per_mparam_ms": self.per_mparam,
            "per_minput_ms": self.per_minput,
            "per_structural_ms": self.per_structural,
            "constant_ms": self.constant,
            "baseline_ms": self.baseline,
            "terms": list(self.terms),
            "models": self.models,
            "fit_mape": self.fit_mape,
            "loo_mape": self.loo_mape,
        }


#: Terms whose column is zero for a model without such kernels: a set with one that is zero for
#: every calibration model is not tried.
SPARSE_TERMS = ("per_mparam", "per_minput", "per_structural")

#: Term sets tried for the overhead fit, richest first; "scale" fixed to 1 when absent.
OVERHEAD_TERMS = (
    ("scale", "per_kernel", "per_structural", "per_mparam", "per_minput", "constant"),
    ("scale", "per_kernel", "per_structural", "per_minput", "constant"),
    ("scale", "per_kernel", "per_structural", "constant"),
    ("scale", "per_kernel", "per_mparam", "per_minput", "constant"),
    ("scale", "per_kernel", "per_minput", "constant"),
    ("scale", "per_kernel", "per_mparam", "constant"),
    ("scale", "per_kernel", "constant"),
    ("per_kernel", "constant"),
    ("constant",),
)


def fit_overhead(
    raw: np.ndarray,
    count: np.ndarray,
    measured: np.ndarray,
    baseline: float,
    mparams: np.ndarray | None = None,
    minputs: np.ndarray | None = None,
    structural: np.ndarray | None = None,
) -> Overhead:
    """Least squares in relative error over each term set of :data:`OVERHEAD_TERMS` the data can
    carry (at least two models more than terms, and no term that is zero for every model); the
    set with the least leave-one-out error wins."""
    n = len(measured)
    if n == 0:
        return Overhead(constant=baseline, baseline=baseline, terms=())
    mparams = np.zeros(n) if mparams is None else np.asarray(mparams, dtype=np.float64)
    minputs = np.zeros(n) if minputs is None else np.asarray(minputs, dtype=np.float64)
    structural = np.zeros(n) if structural is None else np.asarray(structural, dtype=np.float64)
    columns = {
        "scale": raw,
        "per_kernel": count,
        "per_mparam": mparams,
        "per_minput": minputs,
        "per_structural": structural,
        "constant": np.ones(n),
    }
    best = None
    for terms in OVERHEAD_TERMS:
        if n < len(terms) + 2 and terms != ("constant",):
            continue
        if any(not columns[t].any() for t in terms if t in SPARSE_TERMS):
            continue
        coef = _solve(terms, columns, raw, measured, np.arange(n))
        if coef is None:
            continue
        loo = _leave_one_out(terms, columns, raw, measured)
        if best is None or loo < best[0] - 1e-12:
            best = (loo, terms, coef)
    loo, terms, coef = best
    values = dict(zip(terms, coef, strict=True))
    fit = Overhead(
        scale=float(values.get("scale", 1.0)),
        per_kernel=float(values.get("per_kernel", 0.0)),
        per_mparam=float(values.get("per_mparam", 0.0)),
        per_minput=float(values.get("per_minput", 0.0)),
        per_structural=float(values.get("per_structural", 0.0)),
        constant=float(values.get("constant", 0.0)),
        baseline=baseline,
        models=n,
        terms=terms,
        loo_mape=float(loo * 100) if np.isfinite(loo) else None,
    )
    guess = fit.apply(raw, count, mparams, minputs, structural)
    mape = float(np.mean(np.abs(guess - measured) / measured) * 100)
    return replace(fit, fit_mape=mape)


def _solve(terms, columns, raw, measured, rows) -> np.ndarray | None:
    """Coefficients of ``terms`` fitted on ``rows``; None when the scale comes out implausible."""
    x = np.stack([columns[t] for t in terms], 1)[rows]
    target = measured[rows] if "scale" in terms else (measured - raw)[rows]
    w = 1.0 / measured[rows]
    coef = np.linalg.lstsq(x * w[:, None], target * w, rcond=None)[0]
    if "scale" in terms and not 0.2 < coef[0] < 5.0:
        return None
    return coef


def _leave_one_out(terms, columns, raw, measured) -> float:
    """Mean relative error on each model when fitted on the others (inf if it cannot be done)."""
    n = len(measured)
    if n < 3:
        return float("inf") if terms != ("constant",) else 0.0
    errors = []
    for i in range(n):
        rows = np.delete(np.arange(n), i)
        coef = _solve(terms, columns, raw, measured, rows)
        if coef is None:
            return float("inf")
        x = np.array([columns[t][i] for t in terms])
        guess = x @ coef + (0.0 if "scale" in terms else raw[i])
        errors.append(abs(guess - measured[i]) / measured[i])
    return float(np.mean(errors))


# --------------------------------------------------------------------- predictor


@dataclass
class _Compiled:
    """A position's latency table and, per entry, whether it uses regressed kernels."""

    latency: PositionTable
    regressed: np.ndarray


class LatencyPredictor:
    """Predicts the latency (ms) of archs of one space on the device of a profile."""

    def __init__(self, space: SearchSpace | None = None, *, allow_other_space: bool = False):
        self.space = space
        self.allow_other_space = allow_other_space
        self.profile: DeviceProfile | None = None

    # ----------------------------------------------------------------- fitting

    def fit(self, measurements: DeviceProfile) -> LatencyPredictor:
        """Build the kernel model and the overhead term from a profile's raw measurements."""
        profile = measurements
        if self.space is None:
            self.space = profile.resolve_space()
        elif not self.allow_other_space:
            profile.check_space(self.space)
        self.profile = profile
        self.scheme = make_scheme(profile)
        self.kernels = KernelModel(profile, self.scheme)
        statistic = profile.statistic
        self.baseline = profile.baseline.ms(statistic) if profile.baseline else 0.0
        self.overhead = self._fit_overhead(profile)
        self._compiled: list[_Compiled] | None = None
        self._stacked: StackedTables | None = None
        self._indexer = ArchIndexer(self.space)
        measured = profile.settings.get("resolutions") if profile.scheme == "operators" else None
        self.resolutions = tuple(measured or self.space.resolutions)
        self._resolution_ok = np.array([r in self.resolutions for r in self.space.resolutions])
        return self

    def _fit_overhead(self, profile: DeviceProfile) -> Overhead:
        if profile.scheme != "operators":
            return Overhead()
        models = [
            (Arch.from_dict(record.arch), record.measurement.ms(profile.statistic))
            for record in profile.models
            if record.measurement.passes
        ]
        return self._overhead_from(models)

    def overhead_inputs(self, archs: Sequence[Arch]) -> np.ndarray:
        """Per arch, the inputs of :meth:`Overhead.apply`: the sum of its kernel times net of the
        baseline, its kernels, parameters / 1e6, convolution input elements / 1e6 and
        structural units (n x 5)."""
        per_arch = [self.scheme.arch_units(self.space, arch) for arch in archs]
        costs = self.kernels.ms_many([u for units in per_arch for u in units])  # one batch
        sums = np.array([self._raw_of(units, costs)[0] for units in per_arch], dtype=np.float64)
        return sums.reshape(len(per_arch), 5)

    def _overhead_from(self, models: Sequence[tuple[Arch, float]]) -> Overhead:
        sums = self.overhead_inputs([arch for arch, _ in models])
        measured = np.array([ms for _, ms in models], dtype=np.float64)
        return fit_overhead(sums[:, 0], sums[:, 1], measured, self.baseline, *sums[:, 2:].T)

    def recalibrated(self, models: Sequence[tuple[Arch, float]]) -> LatencyPredictor:
        """A copy whose overhead term is refitted on (arch, measured ms) pairs.

        For whole-model times measured in another session than the kernels: on a machine whose
        speed drifts (shared, thermally throttled), timing the profile's calibration subnets again
        next to the subnets of interest puts the overhead term on the same footing.
        """
        self._require()
        other = copy.copy(self)
        other.overhead = self._overhead_from(models)
        other._compiled = other._stacked = None
        return other

    @classmethod
    def from_profile(
        cls, profile: DeviceProfile, space: SearchSpace | None = None, **kwargs
    ) -> LatencyPredictor:
        return cls(space, **kwargs).fit(profile)

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace | None = None, **kwargs) -> LatencyPredictor:
        """Read a profile file and fit the predictor (no pickle: refitted from raw measurements).
        A profile of another space is refused (:class:`ProfileSpaceError`, naming the file)."""
        profile = DeviceProfile.load(path)
        try:
            return cls.from_profile(profile, space, **kwargs)
        except ProfileSpaceError as err:
            raise ProfileSpaceError(f"{path}: {err}") from None

    def save(self, path: str | Path) -> Path:
        """Write the profile the predictor was fitted on (raw measurements, rules, metadata)."""
        return self._require().save(path)

    def _require(self) -> DeviceProfile:
        if self.profile is None:
            raise RuntimeError("the predictor is not fitted; call fit(profile) or load(path)")
        return self.profile

    # ----------------------------------------------------------------- reference path

    def _raw(self, arch: Arch) -> tuple[tuple[float, int, float, float, int], bool]:
        """The terms :meth:`Overhead.apply` takes -- (sum of kernel times net of the baseline,
        kernels, parameters / 1e6, convolution input elements / 1e6, structural units) -- and
        whether any is regressed."""
        units = self.scheme.arch_units(self.space, arch)
        return self._raw_of(units, self.kernels.ms_many(units))

    def _raw_of(
        self, units: Sequence[Any], costs: dict[Any, tuple[float, bool]]
    ) -> tuple[tuple[float, int, float, float, int], bool]:
        """:meth:`_raw` of an arch's ``units``, their times looked up in ``costs``
        (:meth:`KernelModel.ms_many`: the unmeasured ones regressed in one batch per kernel kind)."""
        found = [costs[u] for u in units]
        mparams = sum(self.scheme.params(u) for u in units) / 1e6
        minputs = sum(self.scheme.conv_input_elements(u) for u in units) / 1e6
        structural = sum(self.scheme.structural(u) for u in units)
        raw = sum(self._net(ms) for ms, _ in found)
        return (raw, len(units), mparams, minputs, structural), any(r for _, r in found)

    def predict_arch(self, arch: Arch) -> float:
        """One arch through its operator graph (or table keys): the reference for :meth:`predict`."""
        self._require()
        self.space.validate(arch)
        self._check_resolutions(self._indexer.indices([arch]))
        terms, _ = self._raw(arch)
        return max(float(self.overhead.apply(*terms)), self.baseline)

    def breakdown(self, arch: Arch) -> list[dict[str, Any]]:
        """Per kernel (or table block) of ``arch``: layer, kind, ms (as measured alone), its
        share of the prediction (``share_ms``: the overhead term applied; the shares plus
        ``overhead.constant`` add up to :meth:`predict`) and whether it was regressed."""
        self._require()
        per_layer = [
            (layer, self.scheme.layer_units(layer, arch.resolution))
            for layer in layers_of(self.space, arch)
        ]
        costs = self.kernels.ms_many([u for _, units in per_layer for u in units])
        rows = []
        for layer, units in per_layer:
            for unit in units:
                ms, regressed = costs[unit]
                kind, _ = self.scheme.describe(unit)
                rows.append(
                    {
                        "layer": layer.slot,
                        "kind": kind,
                        "key": unit.key if isinstance(unit, KernelSpec) else unit,
                        "ms": ms,
                        "share_ms": self._share(unit, ms),
                        "regressed": regressed,
                    }
                )
        return rows

    def _net(self, ms: float) -> float:
        """A kernel's time net of the baseline (an invocation that does no work); a regressed or
        noisy kernel below the baseline does no work, rather than negative work."""
        return max(ms - self.baseline, 0.0)

    def _share(self, unit: Any, ms: float) -> float:
        """A kernel's part of a whole-model prediction: its time net of the baseline, scaled,
        plus its per-kernel, per-parameter, per-input and structural-unit overhead."""
        o = self.overhead
        return (
            o.scale * self._net(ms)
            + o.per_kernel
            + o.per_mparam * self.scheme.params(unit) / 1e6
            + o.per_minput * self.scheme.conv_input_elements(unit) / 1e6
            + o.per_structural * self.scheme.structural(unit)
        )

    # ----------------------------------------------------------------- vectorised path

    def compile(self) -> float:
        """Tabulate every layer position's latency over its decisions; returns the seconds taken."""
        self._require()
        start = time.perf_counter()
        space = self.space
        plan = []
        distinct: dict[Any, None] = {}
        for position in slots(space):
            shape = position.shape(space)
            resolutions = space.dimensions[position.deps[0]].values
            per_res = math.prod(shape[1:])
            entries = []
            for flat, layer in position_layers(space, position):
                resolution = resolutions[flat // per_res]
                if resolution not in self.resolutions:
                    entries.append(None)
                    continue
                units = self.scheme.layer_units(layer, resolution)
                entries.append(units)
                distinct.update(dict.fromkeys(units))
            plan.append((position, entries))
        costs = self.kernels.ms_many(list(distinct))
        self._unmeasured = sum(regressed for _, regressed in costs.values())
        share = {u: self._share(u, costs[u][0]) for u in distinct}
        compiled = []
        for position, entries in plan:
            table = np.empty(len(entries), dtype=np.float64)
            regressed = np.zeros(len(entries), dtype=bool)
            for flat, units in enumerate(entries):
                if units is None:
                    table[flat] = np.nan
                    continue
                table[flat] = sum(share[u] for u in units)
                regressed[flat] = any(costs[u][1] for u in units)
            compiled.append(_Compiled(PositionTable.build(space, position, table), regressed))
        self._compiled, self._stacked = compiled, None
        return time.perf_counter() - start

    def unmeasured_kernels(self) -> int:
        """Kernel configurations of the space (at the profile's resolutions) that the profile
        has no timing of, and that are regressed from the measured ones."""
        if self._compiled is None:
            self.compile()
        return self._unmeasured

    def stale_note(self, where: str | Path) -> str | None:
        """A note when the profile (read from ``where``) timed kernels in a form this version no
        longer exports (:meth:`DeviceProfile.stale_forms`), or was measured kernel by kernel yet
        lacks kernels of the space (measured by a version that cut some block into other
        kernels), which are regressed; None when neither."""
        notes = []
        stale = self.profile.stale_forms()
        if stale:
            notes.append(
                f"{where} timed {stale}; its predictions for them are of the older form: "
                "measure a fresh profile (`nas device measure` with another --out)"
            )
        elif self.profile.measures_every_kernel and self.unmeasured_kernels():
            notes.append(
                f"{where} lacks {self.unmeasured_kernels()} kernel configurations of this "
                "version's operator graphs, predicted from other kernels; rerun its `nas device "
                "measure` command to measure them"
            )
        return "; ".join(notes) or None

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Latency in ms of each arch (vectorised over archs)."""
        return self._lookup(self._indexer.indices(list(archs)))[0]

    def predict_index(self, index: np.ndarray) -> np.ndarray:
        """Latency in ms of archs given as :class:`~predictors.positions.ArchIndexer` rows."""
        return self._lookup(np.asarray(index))[0]

    def regressed(self, archs: Sequence[Arch]) -> np.ndarray:
        """Whether each arch's prediction uses any kernel the profile did not measure."""
        return self._lookup(self._indexer.indices(list(archs)))[1]

    def regressed_index(self, index: np.ndarray) -> np.ndarray:
        """:meth:`regressed` of archs given as :class:`~predictors.positions.ArchIndexer` rows."""
        return self._lookup(np.asarray(index))[1]

    def _compiled_tables(self) -> list[_Compiled]:
        self._require()
        if self._compiled is None:
            self.compile()
        return self._compiled

    def _lookup(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._check_resolutions(index)
        if self._stacked is None:
            compiled = self._compiled_tables()
            self._stacked = StackedTables(
                [c.latency for c in compiled],
                [len(d.values) for d in self.space.dimensions],
                [[c.regressed for c in compiled]],
            )
        values, flags = self._stacked.lookup(np.asarray(index))
        # a model takes at least one invocation: an overhead fit extrapolated below its smallest
        # calibration model must not predict less (or a negative time)
        total = np.maximum(self.overhead.constant + values.sum(axis=1), self.baseline)
        return total, flags.any(axis=1)

    def _check_resolutions(self, index: np.ndarray) -> None:
        bad = ~self._resolution_ok[index[:, 0]] if len(index) else np.zeros(0, dtype=bool)
        if bad.any():
            resolution = self.space.resolutions[int(index[int(np.argmax(bad)), 0])]
            raise ResolutionError(
                f"the profile was measured at resolution(s) {list(self.resolutions)} only; "
                f"an arch has resolution {resolution} (measure the profile without "
                "--resolutions, or with this one)"
            )

    # ----------------------------------------------------------------- description

    def describe(self) -> dict[str, Any]:
        profile = self._require()
        return {
            "device": profile.device,
            "backend": profile.backend,
            "scheme": profile.scheme,
            "space": self.space.name,
            "kernels_measured": len(profile.kernels),
            "models_measured": len(profile.models),
            "statistic": profile.statistic,
            "overhead": self.overhead.to_dict(),
        }
