"""Device profiles: the JSON file that holds everything measured on (or imported for) one device.

A profile is plain JSON -- no pickle -- and holds the raw measurements, never a fitted model; the
predictor is refitted from them on load (:class:`predictors.latency.LatencyPredictor`). Layout::

    {
      "format": "nas-device-profile", "version": 1,
      "device": "free text naming the device",
      "backend": "onnxruntime",            # or "torch", or a phone runtime ("tflite", ...)
      "scheme": "operators",               # how archs break into priced pieces (see SCHEMES)
      "source": "measured",                # measured | suite | table
      "space": {"name": ..., "declaration": {...}},   # the space the measurements are for
      "settings": {"threads": 1, "batch": 1, "warmup": 10, "repeats": 30, "passes": 2,
                   "statistic": "median", "resolutions": null},
      "environment": {...},                # CPU model, library versions, threads, batch, ...
      "fusion_rules": [{"level": "op", "first": "pwconv-bn", "second": "act", "fused": true,
                        "evidence": {...}}, ...],
      "baseline": {"ms": 0.005, "passes": [...]},      # one invocation with no work in it
      "kernels": [{"key": ..., "kind": ..., "features": {...}, "ms": ..., "passes": [...]}, ...],
      "models": [{"arch": {...}, "ms": ..., "passes": [...]}, ...],
      "plan": {...},                       # what the measurement job set out to measure
      "unit_forms": {"attn-softmax": 2, ...},  # revisions of the units timed (predictors.forms)
      "complete": true, "created": ..., "updated": ...
    }

Each measurement's ``passes`` holds one timing summary (median, quartiles, min, mean, repeats) per
measurement pass; its ``ms`` is the profile's statistic, the least over the passes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import InputError
from nas.runs import write_atomic
from nas.space import SearchSpace
from predictors import forms
from predictors.backends import Timing

PROFILE_FORMAT = "nas-device-profile"
PROFILE_VERSION = 1
SCHEMES = ("operators", "pixel4-blocks", "note10-blocks")
SOURCES = ("measured", "suite", "table")
REQUIRED = ("device", "backend", "scheme", "space", "settings", "kernels")


class ProfileError(InputError):
    """A device profile is missing, corrupt, of an unsupported version or for another space."""


class ProfileSpaceError(ProfileError):
    """A profile was measured for a different search space."""


@dataclass
class Measurement:
    """One measured thing (a kernel, a whole model, the baseline): its timing per pass."""

    passes: list[Timing] = field(default_factory=list)

    def ms(self, statistic: str = "median") -> float:
        if not self.passes:
            raise ValueError("no timing measured yet")
        return min(t.value(statistic) for t in self.passes)

    def to_dict(self, statistic: str) -> dict[str, Any]:
        return {
            "ms": self.ms(statistic) if self.passes else None,
            "passes": [t.to_dict() for t in self.passes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        """A measurement read from a file; its times must be finite and >= 0 (ValueError)."""
        passes = data.get("passes")
        if passes is not None and (passes or data.get("ms") is None):
            return cls([Timing.from_dict(p) for p in passes])
        return cls([Timing.from_dict({"median": data["ms"]})])


@dataclass
class KernelRecord:
    key: str
    kind: str
    features: dict[str, Any]
    measurement: Measurement
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, statistic: str) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "features": self.features,
            **self.measurement.to_dict(statistic),
            **self.extra,
        }


@dataclass
class ModelRecord:
    arch: dict[str, Any]
    measurement: Measurement

    def to_dict(self, statistic: str) -> dict[str, Any]:
        return {"arch": self.arch, **self.measurement.to_dict(statistic)}


@dataclass
class DeviceProfile:
    """The contents of a profile file (see the module docstring)."""

    device: str
    backend: str
    scheme: str
    space_name: str
    space_declaration: dict[str, Any] | None
    settings: dict[str, Any]
    source: str = "measured"
    environment: dict[str, Any] = field(default_factory=dict)
    fusion_rules: list[dict[str, Any]] = field(default_factory=list)
    baseline: Measurement | None = None
    kernels: dict[str, KernelRecord] = field(default_factory=dict)
    models: list[ModelRecord] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)
    complete: bool = False
    notes: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: _now())
    unit_forms: dict[str, int] = field(default_factory=forms.current)

    @property
    def statistic(self) -> str:
        return str(self.settings.get("statistic", "median"))

    @property
    def measures_every_kernel(self) -> bool:
        """Whether the measurement set out to time every kernel configuration of the space (an
        exact table), rather than a sample left to regressors on purpose, or an import."""
        return self.plan.get("strategy") == "exact"

    def stale_forms(self) -> str | None:
        """What the profile timed in a form this version no longer exports (its kernels of units
        whose revision changed since, :mod:`predictors.forms`), in words; None if nothing."""
        if self.source not in ("measured", "suite"):
            return None
        kinds = [k.kind for k in self.kernels.values()]
        counts = forms.stale_units(self.unit_forms, kinds)
        return forms.stale_text(self.unit_forms, counts) if counts else None

    # ----------------------------------------------------------------- space

    def check_space(self, space: SearchSpace) -> None:
        """Raise :class:`ProfileSpaceError` unless the profile was measured for ``space``."""
        if space.name != self.space_name:
            raise ProfileSpaceError(
                f"profile is for space {self.space_name!r}, not {space.name!r}; "
                f"measure or import a profile for {space.name!r}"
            )
        if self.space_declaration is not None:
            declared = _comparable(self.space_declaration)
            wanted = _comparable(space.to_dict())
            if declared != wanted:
                differ = sorted(
                    k for k in declared.keys() | wanted.keys() if declared.get(k) != wanted.get(k)
                )
                raise ProfileSpaceError(
                    f"profile is for a different declaration of space {space.name!r} (its "
                    f"{', '.join(differ)} differ: {_shown(declared, differ)} in the profile, "
                    f"{_shown(wanted, differ)} here); measure the profile again for this space"
                )

    def resolve_space(self) -> SearchSpace:
        """The profile's space: the built-in one of that name, else its stored declaration."""
        import search_spaces

        if self.space_name in search_spaces.names():
            return search_spaces.get(self.space_name)
        if self.space_declaration is None:
            raise ProfileSpaceError(
                f"profile space {self.space_name!r} is not built in and the profile holds no "
                "declaration; pass --space PATH.yaml"
            )
        return SearchSpace.from_dict(self.space_declaration)

    # ----------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        stat = self.statistic
        return {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "device": self.device,
            "backend": self.backend,
            "scheme": self.scheme,
            "source": self.source,
            "space": {"name": self.space_name, "declaration": self.space_declaration},
            "settings": self.settings,
            "environment": self.environment,
            "fusion_rules": self.fusion_rules,
            "baseline": self.baseline.to_dict(stat) if self.baseline else None,
            "kernels": [k.to_dict(stat) for k in self.kernels.values()],
            "models": [m.to_dict(stat) for m in self.models],
            "plan": self.plan,
            "unit_forms": self.unit_forms,
            "complete": self.complete,
            "notes": self.notes,
            "created": self.created,
            "updated": _now(),
        }

    def save(self, path: str | Path) -> Path:
        """Write the profile atomically (a crash never leaves a half-written file)."""
        return write_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: Any, where: str = "profile") -> DeviceProfile:
        if not isinstance(data, Mapping):
            raise ProfileError(f"{where} is not a device profile (a JSON object is expected)")
        fmt = data.get("format")
        if fmt != PROFILE_FORMAT:
            raise ProfileError(f"{where} is not a device profile (format = {fmt!r})")
        version = data.get("version")
        if version != PROFILE_VERSION:
            raise ProfileError(
                f"{where}: profile version {version!r} is not supported; "
                f"supported: {PROFILE_VERSION}"
            )
        missing = [key for key in REQUIRED if key not in data]
        if missing:
            raise ProfileError(f"{where}: missing field(s) {missing}")
        scheme = data["scheme"]
        if scheme not in SCHEMES:
            raise ProfileError(
                f"{where}: scheme {scheme!r} is not supported; choices: {', '.join(SCHEMES)}"
            )
        space = data["space"]
        if not isinstance(space, Mapping) or not isinstance(space.get("name"), str):
            raise ProfileError(f"{where}: space must be an object with a name")
        try:  # a profile without the field timed revision 1 of every unit
            unit_forms = forms.check_recorded(data.get("unit_forms", {}), "unit_forms")
        except ValueError as err:
            raise ProfileError(f"{where}: {err}") from None
        part = "the profile"
        try:
            kernels = {}
            for i, item in enumerate(data["kernels"]):
                part = f"kernels[{i}]"
                record = KernelRecord(
                    str(item["key"]),
                    str(item["kind"]),
                    dict(item.get("features", {})),
                    Measurement.from_dict(item),
                    {k: v for k, v in item.items() if k in ("std_ms", "count", "file")},
                )
                kernels[record.key] = record
            models = []
            for i, item in enumerate(data.get("models", [])):
                part = f"models[{i}]"
                models.append(ModelRecord(dict(item["arch"]), Measurement.from_dict(item)))
            part = "baseline"
            baseline = data.get("baseline")
            profile = cls(
                device=str(data["device"]),
                backend=str(data["backend"]),
                scheme=scheme,
                space_name=space["name"],
                space_declaration=space.get("declaration"),
                settings=dict(data["settings"]),
                source=str(data.get("source", "measured")),
                environment=dict(data.get("environment", {})),
                fusion_rules=list(data.get("fusion_rules", [])),
                baseline=Measurement.from_dict(baseline) if baseline else None,
                kernels=kernels,
                models=models,
                plan=dict(data.get("plan", {})),
                unit_forms=unit_forms,
                complete=bool(data.get("complete", False)),
                notes=list(data.get("notes", [])),
                created=str(data.get("created", _now())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            reason = f"lacks {err}" if isinstance(err, KeyError) else str(err)
            raise ProfileError(
                f"{where}: {part} is not a valid measurement ({reason}); expected times in ms, "
                "finite and >= 0"
            ) from None
        return profile

    @classmethod
    def load(cls, path: str | Path) -> DeviceProfile:
        from nas.textfiles import FileFormatError, read_json

        try:
            data = read_json(path, "a device profile (nas device measure, import or import-table)")
        except FileFormatError as err:
            raise ProfileError(str(err)) from None
        return cls.from_dict(data, str(path))


def _comparable(declaration: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a declaration that decide layer shapes (text fields left out)."""
    return {k: v for k, v in declaration.items() if k not in ("description", "version")}


def _shown(declaration: Mapping[str, Any], keys: list[str]) -> str:
    """The values of ``keys`` in a declaration, abbreviated for a one-line message."""
    parts = []
    for key in keys:
        text = json.dumps(declaration.get(key))
        parts.append(f"{key} {text if len(text) <= 40 else text[:37] + '...'}")
    return ", ".join(parts)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
