"""``nas study``: sample, measure, analyse, write the report -- resumably, with progress.

Steps write their results to ``DIR/parts/STEP.json`` tagged with a fingerprint of the table they
were computed from (the sampled archs and every measured value) and of their own settings; a
rerun of the same command reuses every part whose fingerprint still matches, and accuracy
measurements come back from the run's accuracy cache. Figures, ``study.json`` and the reports are
rewritten from the parts each time.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from nas.errors import InputError
from nas.runs import write_atomic

STUDY_FORMAT = "nas-study"
STUDY_VERSION = 1


class StudyError(InputError):
    """Bad options of ``nas study``."""


@dataclass
class StudySettings:
    space: str
    devices: list[str]
    out: Path
    n: int = 2000
    run: str | None = None
    seed: int = 0
    pairs: int = 400
    measure: int = 40
    accuracy_predictor: str = "gbm"
    importance: str = "ped-anova"
    importance_archs: int = 1000
    progress: bool = True
    torch_device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        from nas.study.importance import EVALUATORS
        from predictors.accuracy import KINDS

        if self.n < 1:
            raise StudyError(f"--n {self.n}: the number of archs to sample must be at least 1")
        if self.pairs < 1:
            raise StudyError(f"--pairs {self.pairs}: the number of base archs must be at least 1")
        if self.measure < 0:
            raise StudyError(f"--measure {self.measure} must be 0 or more")
        if self.importance_archs < 2:
            raise StudyError(f"--importance-archs {self.importance_archs} must be at least 2")
        if self.importance not in EVALUATORS:
            raise StudyError(
                f"--importance {self.importance!r} is not known; choices: {', '.join(EVALUATORS)}"
            )
        if self.accuracy_predictor not in KINDS:
            raise StudyError(
                f"--accuracy-predictor {self.accuracy_predictor!r} is not known; choices: "
                f"{', '.join(KINDS)}"
            )
        if self.out.exists() and not self.out.is_dir():
            raise StudyError(f"--out {self.out} is a file; give a folder")


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and NaN/inf as None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Parts:
    """Step results in ``DIR/parts``, reused while their fingerprint matches."""

    def __init__(self, folder: Path, fingerprint: str):
        self.folder = folder / "parts"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fingerprint = fingerprint
        self.reused: list[str] = []

    def get(self, name: str, settings: dict, compute: Callable[[], dict]) -> dict:
        key = hashlib.sha256(
            json.dumps([self.fingerprint, settings], sort_keys=True).encode()
        ).hexdigest()
        path = self.folder / f"{name}.json"
        if path.is_file():
            try:
                stored = json.loads(path.read_text())
                if stored.get("fingerprint") == key:
                    self.reused.append(name)
                    return stored["result"]
            except (OSError, json.JSONDecodeError):
                pass  # a torn or foreign file: compute again
        result = _jsonable(compute())
        write_atomic(path, json.dumps({"fingerprint": key, "result": result}, allow_nan=False))
        return result


def _fingerprint(table) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([table.decisions.space.to_dict(), table.origin]).encode())
    digest.update(np.ascontiguousarray(table.index).tobytes())
    digest.update(np.ascontiguousarray(table.bases).tobytes())
    for o in table.objectives:
        digest.update(o.key.encode())
        digest.update(np.ascontiguousarray(o.values, dtype=np.float64).tobytes())
    if table.accuracy is not None:
        digest.update(table.accuracy.measured.tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------- the table


def open_inputs(settings: StudySettings):
    """(space, devices, run or None), every input checked before any work."""
    import search_spaces
    from nas.study.profiles import open_devices

    settings.check()
    space = search_spaces.get(settings.space)
    devices = open_devices(settings.devices, space)
    run = None
    if settings.run is not None:
        from nas.trained import TrainedRun

        run = TrainedRun.open(settings.run, settings.torch_device)
        if run.space.name != space.name:
            raise StudyError(
                f"--run {settings.run} trained space {run.space.name!r}, not {space.name!r}; "
                f"give --space {run.space.name}"
            )
    return space, devices, run


def build_table(settings: StudySettings, space, devices, run, steps: Steps):
    from nas.study.accuracy import run_archs, study_accuracy, verify_winners
    from nas.study.decisions import Decisions
    from nas.study.profiles import common_resolutions
    from nas.study.sampling import stratified
    from nas.study.table import StudyTable, build_objectives
    from predictors.complexity import ComplexityTable

    decisions = Decisions.restricted(space, common_resolutions(devices, space))
    counter = ComplexityTable(space)
    extra = {}
    if run is not None:
        allowed = set(decisions.value_order(0))
        archs = [a for a in run_archs(run) if space.resolutions.index(a.resolution) in allowed]
        if archs:
            extra["run"] = decisions.index(archs, settings.seed)
    with steps("sample"):
        sample = stratified(
            decisions, lambda rows: counter.count_index(rows)[0], settings.n, settings.seed, extra
        )
        archs = decisions.archs(sample.index)
    accuracy = None
    with steps("accuracy"):
        if run is not None:
            accuracy = study_accuracy(
                run,
                decisions,
                sample.index,
                archs,
                counter.count_index(sample.index)[0],
                np.array([o == "run" for o in sample.origin]),
                settings.measure,
                settings.accuracy_predictor,
                settings.seed,
                settings.progress,
            )
    with steps("latency, MACs, params"):
        objectives = build_objectives(decisions, sample.index, devices, accuracy, counter)
        rng = np.random.default_rng(settings.seed + 1)
        bases = np.sort(rng.permutation(len(archs))[: min(settings.pairs, len(archs))])
    if accuracy is not None:
        with steps("accuracy of the best archs"):
            latencies = [o.values for o in objectives if o.device is not None]
            verify_winners(run, accuracy, archs, lambda values: budget_winners(latencies, values))
    return StudyTable(
        decisions, sample.index, sample.origin, archs, devices, objectives, accuracy, bases
    )


def budget_winners(latencies: list[np.ndarray], score: np.ndarray) -> set[int]:
    """Every arch the report names as the best under a budget: per device at the percentiles of
    the wrong-device table and of the time breakdown, and at the fronts' normalised budgets,
    per device and on all at once."""
    from nas.study import breakdown, devices, fronts

    out: set[int] = set()
    percentiles = sorted(set(devices.PERCENTILES) | set(breakdown.BUDGETS))
    norms = [fronts.normalised(lat) for lat in latencies]
    for lat, norm in zip(latencies, norms, strict=True):
        out |= {devices.best_under(score, lat, float(np.percentile(lat, p))) for p in percentiles}
        out |= {devices.best_under(score, norm, b) for b in fronts.BUDGETS}
    if norms:
        worst = np.max(np.stack(norms), axis=0)
        out |= {devices.best_under(score, worst, b) for b in fronts.BUDGETS}
    return {i for i in out if i is not None}


# --------------------------------------------------------------------- study


STEPS = (
    "sample",
    "accuracy",
    "latency, MACs, params",
    "accuracy of the best archs",
    "effects",
    "importance",
    "flops",
    "devices",
    "breakdown",
    "fronts",
    "figures",
    "report",
)


class Steps:
    """The study's progress bar, and the seconds each step took."""

    def __init__(self, progress: bool):
        self.bar = tqdm(total=len(STEPS), desc="study", unit="step", disable=not progress)
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.bar.set_postfix_str(name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        self.bar.update()


def run_study(settings: StudySettings) -> dict[str, Path]:
    """Run (or resume) a study into ``settings.out``; return the paths of what it wrote."""
    from nas.study import breakdown, effects, flops, fronts
    from nas.study import devices as devices_section
    from nas.study import importance as importance_section
    from nas.study.summary import summary

    space, devices, run = open_inputs(settings)
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    steps = Steps(settings.progress)
    with steps.bar:
        table = build_table(settings, space, devices, run, steps)
        table.write_jsonl(out / "archs.jsonl")
        parts = Parts(out, _fingerprint(table))
        results: dict[str, Any] = {}
        sections = {
            "effects": ({}, lambda: effects.paired_effects(table)),
            "importance": (
                {"evaluator": settings.importance, "archs": settings.importance_archs},
                lambda: importance_section.importances(
                    table,
                    settings.importance,
                    settings.importance_archs,
                    settings.seed,
                    settings.progress,
                ),
            ),
            "flops": ({}, lambda: flops.where_flops_mislead(table)),
            "devices": ({}, lambda: devices_section.devices_disagree(table)),
            "breakdown": ({}, lambda: breakdown.where_the_time_goes(table)),
            "fronts": ({}, lambda: fronts.fronts(table)),
        }
        for name, (options, compute) in sections.items():
            with steps(name):
                results[name] = parts.get(name, options, compute)
        with steps("figures"):
            figs = {
                "effects": effects.figures(results["effects"], table, out),
                "importance": importance_section.figure(results["importance"], table, out),
                "flops": flops.figure(results["flops"], table, out),
                "devices": devices_section.figure(results["devices"], table, out),
                "breakdown": breakdown.figures(results["breakdown"], table, out),
                "fronts": fronts.figure(results["fronts"], table, out),
            }
        with steps("report"):
            headline = summary(table, results)
            document = _document(settings, table, results, figs, headline)
            study = _study_json(settings, table, results, figs, headline, parts.reused)
            study["seconds"] = dict(steps.seconds)
            write_atomic(out / "study.json", json.dumps(study, indent=1, allow_nan=False) + "\n")
            md, html = document.write(out)
    return {"html": html, "markdown": md, "json": out / "study.json", "archs": out / "archs.jsonl"}


def _document(settings, table, results, figs, headline):
    from nas.study import breakdown, devices, effects, flops, fronts, importance
    from nas.study.report import Document
    from nas.study.summary import setup_report, summary_report

    doc = Document(f"Trade-off study of the {table.decisions.space.name} space")
    summary_report(doc, headline)
    effects.report(doc, results["effects"], table, figs["effects"])
    importance.report(doc, results["importance"], table, figs["importance"])
    flops.report(doc, results["flops"], table, figs["flops"])
    devices.report(doc, results["devices"], table, figs["devices"])
    breakdown.report(doc, results["breakdown"], table, figs["breakdown"])
    fronts.report(doc, results["fronts"], table, figs["fronts"])
    setup_report(doc, settings, table)
    return doc


def _study_json(settings, table, results, figs, headline, reused) -> dict:
    def names(value) -> list[str]:
        if value is None:
            return []
        if isinstance(value, list):
            return [p.name for p, _ in value]
        return [value.name]

    origins: dict[str, int] = {}
    for origin in table.origin:
        origins[origin] = origins.get(origin, 0) + 1
    settings_dict = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in asdict(settings).items()
        if k not in ("progress", "extra")
    }
    return _jsonable(
        {
            "format": STUDY_FORMAT,
            "version": STUDY_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "space": table.decisions.space.name,
            "settings": settings_dict,
            "devices": [
                {
                    **d.describe(),
                    "regressed_share": float(np.mean(d.predictor.regressed_index(table.index))),
                }
                for d in table.devices
            ],
            "sample": {
                "archs": len(table),
                "by_origin": origins,
                "resolutions": [
                    table.decisions.dims[0].values[j] for j in table.decisions.value_order(0)
                ],
                "paired_bases": len(table.bases),
                "archs_file": "archs.jsonl",
            },
            "objectives": [
                {
                    "key": o.key,
                    "name": o.name,
                    "axis": o.axis,
                    "unit": o.unit,
                    "kind": o.kind,
                    "min": float(np.min(o.values)),
                    "median": float(np.median(o.values)),
                    "max": float(np.max(o.values)),
                }
                for o in table.objectives
            ],
            "accuracy": None if table.accuracy is None else table.accuracy.summary,
            "summary": headline,
            "effects": results["effects"],
            "importance": results["importance"],
            "where_flops_mislead": results["flops"],
            "devices_disagree": results["devices"],
            "where_the_time_goes": results["breakdown"],
            "fronts": results["fronts"],
            "figures": {k: names(v) for k, v in figs.items()},
            "reused_parts": reused,
        }
    )
