"""The study's table: one row per sampled arch, one column per objective.

Objectives are MACs and parameters (operator-graph counts, :mod:`predictors.complexity`),
latency on every device (the profiles' predictors) and, with a training run, validation
accuracy (:mod:`nas.study.accuracy`). Each objective also evaluates arbitrary index rows, which
is how paired archs (:mod:`nas.study.effects`) are measured.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nas.arch import Arch
from nas.runs import replace_atomic
from nas.study.accuracy import StudyAccuracy
from nas.study.decisions import Decisions
from nas.study.profiles import StudyDevice

ARCHS_FILE = "archs.jsonl"


@dataclass
class Objective:
    """One measured quantity of every arch; ``evaluate`` measures any index rows."""

    key: str
    name: str
    axis: str
    values: np.ndarray
    evaluate: Callable[[np.ndarray], np.ndarray]
    kind: str = "cost"  # cost (lower is better) or accuracy
    device: str | None = None
    unit: str = ""


@dataclass
class StudyTable:
    decisions: Decisions
    index: np.ndarray
    origin: list[str]
    archs: list[Arch]
    devices: list[StudyDevice]
    objectives: list[Objective]
    accuracy: StudyAccuracy | None = None
    bases: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    def __len__(self) -> int:
        return len(self.archs)

    def objective(self, key: str) -> Objective:
        return next(o for o in self.objectives if o.key == key)

    @property
    def macs(self) -> Objective:
        return self.objective("macs")

    def latency(self, device: StudyDevice) -> Objective:
        return self.objective(device.key)

    @property
    def score(self) -> Objective:
        """What fronts maximise: accuracy with a run, else MACs (a stand-in for capacity)."""
        if self.accuracy is not None:
            return self.objective("accuracy")
        return self.macs

    @property
    def score_is_proxy(self) -> bool:
        return self.accuracy is None

    def source(self, row: int) -> str | None:
        """Whether arch ``row``'s accuracy was measured or predicted (None without a run)."""
        if self.accuracy is None:
            return None
        return "measured" if self.accuracy.measured[row] else "predicted"

    def write_jsonl(self, path: Path) -> Path:
        """One JSON line per arch: the arch, its decisions (inactive per-layer ones included),
        where it came from, its objectives and, for accuracy, whether measured or predicted."""
        sources = self.accuracy.sources() if self.accuracy is not None else None
        base = np.zeros(len(self), dtype=bool)
        base[self.bases] = True

        def write(tmp: Path) -> None:
            with tmp.open("w") as f:
                for i, arch in enumerate(self.archs):
                    record = {
                        "id": i,
                        "origin": self.origin[i],
                        "paired_base": bool(base[i]),
                        "arch": arch.to_dict(),
                        "decisions": self.decisions.values(self.index[i]),
                        "macs": int(self.macs.values[i] * 1e6 + 0.5),
                        "params": int(self.objective("params").values[i] * 1e6 + 0.5),
                        "latency_ms": {
                            d.label: float(self.latency(d).values[i]) for d in self.devices
                        },
                    }
                    if sources is not None:
                        record["val_top1_pct"] = float(self.accuracy.values[i])
                        record["accuracy"] = sources[i]
                    f.write(json.dumps(record) + "\n")

        return replace_atomic(path, write)


def build_objectives(
    decisions: Decisions,
    index: np.ndarray,
    devices: list[StudyDevice],
    accuracy: StudyAccuracy | None,
    counter=None,
) -> list[Objective]:
    """MACs, parameters, latency per device and (with a run) accuracy of the rows ``index``;
    ``counter``: the space's :class:`~predictors.complexity.ComplexityTable` if built already."""
    from predictors.complexity import ComplexityTable

    counter = counter or ComplexityTable(decisions.space)

    def macs(rows: np.ndarray) -> np.ndarray:
        return counter.count_index(rows)[0] / 1e6

    def params(rows: np.ndarray) -> np.ndarray:
        return counter.count_index(rows)[1] / 1e6

    counts = counter.count_index(index)
    out = [
        Objective("macs", "MACs", "MACs (millions)", counts[0] / 1e6, macs, unit="M"),
        Objective(
            "params", "parameters", "parameters (millions)", counts[1] / 1e6, params, unit="M"
        ),
    ]
    for device in devices:
        predict = device.predictor.predict_index
        out.append(
            Objective(
                device.key,
                f"latency on {device.label}",
                device.axis,
                predict(index),
                predict,
                device=device.label,
                unit="ms",
            )
        )
    if accuracy is not None:
        out.append(
            Objective(
                "accuracy",
                "accuracy",
                "validation top-1 accuracy (%)",
                accuracy.values,
                accuracy.predict,
                kind="accuracy",
                unit="points",
            )
        )
    return out
