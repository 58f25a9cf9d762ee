"""Search under a device's latency budget, and ship the winner with a model card.

``search_run`` builds the problem (supernet accuracy, predicted latency per device, MACs) for a
training run and runs one search into ``RUN/search/NAME``; ``search_proxy`` searches a space with
no trained supernet, maximising a documented proxy objective (:mod:`nas.search.proxies`).
``extract_for_device`` picks the best arch any search of the run found under a budget on every
device, cuts it out, recalibrates BN, measures test accuracy (and end-to-end latency where the
device's backend runs here) and writes the model and its card.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas.arch import Arch
from nas.errors import InputError
from nas.graph import count
from nas.runs import make_folder, slug, write_atomic
from nas.search import (
    AUTO,
    DEFAULT_BATCH_SIZE,
    Constraint,
    Evaluation,
    Objective,
    Problem,
    SearchCounts,
    default_algorithm,
    make_searcher,
    run_search,
)
from nas.search.driver import stored_identity
from nas.search.history import History
from nas.search.results import write_report
from nas.search.surrogate import RefittedAccuracy, SurrogateSettings
from nas.trained import TrainedRun

CARD_FORMAT = "nas-model-card"
CARD_VERSION = 3


class NoCandidateError(InputError):
    """No searched arch meets the asked budget."""


@dataclass
class Device:
    """A device profile opened as a latency predictor for a space."""

    name: str
    path: Path
    predictor: Any

    @classmethod
    def open(cls, path: str | Path, space) -> Device:
        """The profile at ``path`` for archs of ``space``; a profile measured or imported for
        another space (or another declaration of it) is refused, naming both."""
        from predictors.latency import LatencyPredictor

        predictor = LatencyPredictor.load(path, space)
        return cls(predictor.profile.device, Path(path), predictor)

    def stale_note(self) -> str | None:
        """:meth:`LatencyPredictor.stale_note` of the profile."""
        return self.predictor.stale_note(self.path)

    @classmethod
    def open_all(cls, paths: Sequence[str | Path], space) -> list[Device]:
        """One :class:`Device` per profile; two profiles of one device are refused."""
        devices = [cls.open(path, space) for path in paths]
        seen: dict[str, Path] = {}
        for d in devices:
            if d.name in seen:
                raise InputError(
                    f"--device {seen[d.name]} and --device {d.path} are both profiles of device "
                    f"{d.name!r}; give each device once (name a profile's device with `nas device "
                    "measure --device NAME`)"
                )
            seen[d.name] = d.path
        return devices

    @property
    def metric(self) -> str:
        return f"latency_ms@{self.name}"

    def latency(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.asarray(self.predictor.predict(list(archs)), dtype=float)

    def budget(self, budget_ms: float) -> Constraint:
        """Predicted latency <= ``budget_ms`` on this device (also on value indices)."""
        return Constraint(
            self.metric, self.latency, float(budget_ms), "ms", self.predictor.predict_index
        )


def _macs(space):
    return lambda archs: np.array([count(space, a)[0] / 1e6 for a in archs])


def build_problem(
    run: TrainedRun,
    devices: Sequence[Device],
    budgets_ms: Sequence[float],
    macs_limit: float | None = None,
    accuracy=None,
) -> Problem:
    """Maximise validation accuracy (measured on the supernet, or ``accuracy`` -- e.g. a
    :class:`~nas.search.surrogate.RefittedAccuracy`); minimise latency on the first device;
    latency <= budget on every device; MACs <= limit (millions) when given."""
    primary = Objective("val_top1", accuracy or run.accuracy, maximize=True)
    return _problem(run.space, primary, devices, budgets_ms, macs_limit)


def build_proxy_problem(
    space,
    devices: Sequence[Device],
    budgets_ms: Sequence[float],
    proxy: str,
    macs_limit: float | None = None,
    seed: int = 0,
) -> Problem:
    """:func:`build_problem` for a space without a trained supernet: maximise the proxy
    objective ``proxy`` (:mod:`nas.search.proxies`) instead of accuracy."""
    from nas.search.proxies import proxy_objective

    return _problem(space, proxy_objective(proxy, space, seed), devices, budgets_ms, macs_limit)


def _problem(space, primary: Objective, devices, budgets_ms, macs_limit) -> Problem:
    for device, budget in zip(devices, budgets_ms, strict=True):
        if not math.isfinite(budget) or budget <= 0:
            raise InputError(f"latency budget {budget} on {device.name} must be a number > 0")
    if macs_limit is not None and (not math.isfinite(macs_limit) or macs_limit <= 0):
        raise InputError(f"MACs limit {macs_limit} must be a number > 0 (millions)")
    latency = Objective(devices[0].metric, devices[0].latency, maximize=False, unit="ms")
    constraints = [d.budget(b) for d, b in zip(devices, budgets_ms, strict=True)]
    if macs_limit is not None:
        constraints.append(Constraint("mmacs", _macs(space), macs_limit, "M"))
    return Problem(space, [primary, latency], constraints)


def default_name(algorithm: str, devices: Sequence[Device], budgets_ms: Sequence[float]) -> str:
    """``ALGORITHM-DEVICE-BUDGET``, the folder name of a search without ``--name``."""
    budget = "_".join(f"{b:g}ms" for b in budgets_ms)
    return slug(f"{algorithm}-{devices[0].path.stem}-{budget}")


def run_problem(
    problem: Problem,
    folder: Path,
    algorithm: str,
    evaluations: int,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    finish=None,
) -> tuple[list[Evaluation], dict]:
    """Run (or resume) the search of ``problem`` in ``folder``; return its evaluations and the
    report entries about how it went. ``auto`` resumes the algorithm of an earlier search in
    ``folder``, else takes :func:`~nas.search.default_algorithm`. The Optuna study is named
    after the folder. ``finish(found)`` may amend the evaluations before they are reported."""
    if algorithm == AUTO:
        stored = stored_identity(folder)
        algorithm = stored["algorithm"] if stored else default_algorithm(problem)
    searcher = make_searcher(algorithm, problem, seed, evaluations, study_name=folder.name)
    found = run_search(problem, searcher, evaluations, folder, batch_size, progress)
    if finish is not None:
        found = finish(found)
    counts = SearchCounts.load(folder, len(found))
    extra = {"algorithm": searcher.name, "seed": seed, **counts.to_dict()}
    share = getattr(searcher, "policy_feasible_share", None)
    if share is not None:
        extra["policy_feasible_share"] = share
    return found, extra


def search_run(
    run: TrainedRun,
    devices: Sequence[Device],
    budgets_ms: Sequence[float],
    algorithm: str,
    evaluations: int,
    name: str | None = None,
    seed: int = 0,
    macs_limit: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    workers: int = 1,
    surrogate: SurrogateSettings | None = None,
    ray_address: str | None = None,
    quantized_accuracy: bool = False,
) -> tuple[Path, dict]:
    """Run (or resume) one search; return its folder and report. ``workers`` > 1 evaluates the
    supernet on that many Ray actors (:meth:`TrainedRun.parallel`), on the Ray cluster at
    ``ray_address`` when given.

    With ``surrogate``, accuracy comes from a predictor refitted on supernet measurements as the
    search goes (:class:`~nas.search.surrogate.RefittedAccuracy`); the best archs per budget are
    measured before the report is written, so the reported best is a measured accuracy.

    ``quantized_accuracy`` adds the int8 validation accuracy of the shortlist of winners to the
    report (:mod:`nas.export.quantized_accuracy`); the search itself ranks by fp32 accuracy.
    """
    accuracy = None
    if surrogate is not None:
        accuracy = RefittedAccuracy(run.space, run.accuracy, surrogate, seed)
        accuracy.remember(run.measured())
    problem = build_problem(run, devices, budgets_ms, macs_limit, accuracy)
    resolved = default_algorithm(problem) if algorithm == AUTO else algorithm
    folder = run.folder / "search" / (name or default_name(resolved, devices, budgets_ms))
    finish = None
    if accuracy is not None:
        finish = lambda found: _with_best_measured(found, problem, run)  # noqa: E731
    with run.parallel(workers, ray_address) if workers > 1 else nullcontext():
        found, extra = run_problem(
            problem, folder, algorithm, evaluations, seed, batch_size, progress, finish
        )
    if accuracy is not None:
        extra["accuracy_predictor"] = accuracy.summary()
    if quantized_accuracy:
        from nas.export.quantized_accuracy import shortlist_report

        extra["quantized_accuracy"] = shortlist_report(run, found, problem.primary.name, progress)
    return folder, write_report(found, problem, folder, extra.pop("algorithm"), extra)


def search_proxy(
    space,
    devices: Sequence[Device],
    budgets_ms: Sequence[float],
    algorithm: str,
    evaluations: int,
    proxy: str,
    folder: Path | None = None,
    name: str | None = None,
    seed: int = 0,
    macs_limit: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> tuple[Path, dict]:
    """Search ``space`` without a trained supernet, maximising the proxy objective ``proxy``
    under the budgets; results go to ``folder`` (default ``runs/search/NAME``) and are labelled
    as a proxy in the report and plots."""
    from nas.search.proxies import proxy_info

    problem = build_proxy_problem(space, devices, budgets_ms, proxy, macs_limit, seed)
    resolved = default_algorithm(problem) if algorithm == AUTO else algorithm
    if folder is None:
        folder = Path("runs") / "search" / (name or default_name(resolved, devices, budgets_ms))
    found, extra = run_problem(problem, folder, algorithm, evaluations, seed, batch_size, progress)
    info = proxy_info(proxy)
    extra["proxy"] = {
        "name": info.name,
        "unit": info.unit,
        "description": info.description,
        "note": "a proxy objective, not accuracy: no supernet was trained or evaluated",
    }
    return folder, write_report(found, problem, folder, extra.pop("algorithm"), extra)


#: Archs per budget measured on the supernet before a predicted winner is reported or shipped.
VERIFY_TOP = 5


def _with_best_measured(
    found: list[Evaluation], problem: Problem, run: TrainedRun
) -> list[Evaluation]:
    """``found`` with the accuracies of the best feasible archs measured (:func:`verify_best`)."""
    name = problem.primary.name
    values = verify_best({e.arch: e.objectives[name] for e in found if e.feasible}, run)
    return [
        replace(e, objectives={**e.objectives, name: values[e.arch]}) if e.arch in values else e
        for e in found
    ]


def verify_best(accuracy: dict[Arch, float], run: TrainedRun) -> dict[Arch, float]:
    """``accuracy`` (predicted or measured, per arch) with every measurement the run has, and
    more measured on the supernet until the :data:`VERIFY_TOP` highest are all measurements."""
    measured = run.measured()
    values = {a: measured.get(a, v) for a, v in accuracy.items()}
    while True:
        top = sorted(values, key=values.__getitem__, reverse=True)[:VERIFY_TOP]
        pending = [a for a in top if a not in measured]
        if not pending:
            return values
        for arch, value in zip(pending, run.accuracy(pending), strict=True):
            measured[arch] = values[arch] = float(value)


def searched_archs(run: TrainedRun) -> dict[Arch, float]:
    """Validation accuracy of every arch any search of the run evaluated."""
    out: dict[Arch, float] = {}
    for history in sorted((run.folder / "search").glob("*/history.jsonl")):
        for e in History(history, run.space).load():
            if "val_top1" in e.objectives:
                out[e.arch] = e.objectives["val_top1"]
    return out


def best_for_devices(
    run: TrainedRun, devices: Sequence[Device], budgets_ms: Sequence[float]
) -> tuple[Arch, float]:
    """(arch, val accuracy) of the most accurate searched arch that meets every budget, each on
    its device.

    Searches with an accuracy predictor record predictions: the winner is the best measured one
    (:func:`verify_best`)."""
    accuracy = searched_archs(run)
    if not accuracy:
        raise NoCandidateError(
            f"{run.folder} has no search results: run `nas search --run "
            f"{run.folder} --device PROFILE --latency-ms X` first"
        )
    archs = list(accuracy)
    feasible = np.ones(len(archs), dtype=bool)
    for device, budget in zip(devices, budgets_ms, strict=True):
        latency = device.latency(archs)
        meets = latency <= budget
        if not (feasible & meets).any():
            others = " and the other budgets" if len(devices) > 1 else ""
            raise NoCandidateError(
                f"no searched arch runs under {budget:g} ms on {device.name}{others}; searched "
                f"archs take {latency.min():.3g}-{latency.max():.3g} ms there: search with these "
                "budgets first (nas search with the same --device and --latency-ms options)"
            )
        feasible &= meets
    candidates = [archs[i] for i in np.flatnonzero(feasible)]
    values = verify_best({a: accuracy[a] for a in candidates}, run)
    best = max(candidates, key=values.__getitem__)
    return best, values[best]


def default_model_path(
    run: TrainedRun,
    devices: Sequence[Device],
    budgets_ms: Sequence[float],
    fmt: str,
    precision: str = "fp32",
) -> Path:
    """``RUN/models/DEVICE-BUDGET[_DEVICE2-BUDGET2...][-int8].EXT``: every device and budget
    named, and the precision when it is not fp32."""
    from nas.export import get_format

    name = "_".join(f"{d.path.stem}-{b:g}ms" for d, b in zip(devices, budgets_ms, strict=True))
    name += "" if precision == "fp32" else f"-{precision}"
    return run.folder / "models" / slug(name + get_format(fmt).suffix)


def extract_for_device(
    run: TrainedRun,
    devices: Sequence[Device],
    budgets_ms: Sequence[float],
    fmt: str,
    out: Path,
    measure: bool = True,
    replace_other: bool = True,
    options=None,
) -> dict[str, Any]:
    """Write the most accurate searched arch that meets every budget (``budgets_ms[i]`` on
    ``devices[i]``) as a model, with its card. Unless ``replace_other``, a model of another
    extraction (other devices or budgets) already at ``out`` is refused.

    ``options`` (:class:`nas.export.ship.ShipOptions`) sets batch, precision and the int8
    calibration; the card also holds the deployment contract (:func:`nas.export.ship.ship`).
    """
    from nas.export.ship import ShipOptions, embed_card, ship
    from nas.train.evaluate import top1

    options = replace(options or ShipOptions(), fmt=fmt, measure=measure).check()
    budgets = {d.name: float(b) for d, b in zip(devices, budgets_ms, strict=True)}
    card_path = out.with_suffix(out.suffix + ".card.json")
    if not replace_other:
        _refuse_other_extraction(card_path, budgets)
    arch, val_top1 = best_for_devices(run, devices, budgets_ms)
    model = run.extract(arch)
    test_top1 = top1(model, run.data.test, arch.resolution, run.batch_size)
    macs, params = count(run.space, arch)
    latency = {}
    for d in devices:
        entry = {
            "profile": str(d.path),
            "backend": d.predictor.profile.backend,
            "budget_ms": budgets[d.name],
            "predicted_ms": float(d.latency([arch])[0]),
            "measured_ms": None,
        }
        if measure:
            entry["measured_ms"] = _measure_here(d, arch)
        latency[d.name] = entry
    make_folder(out.parent)
    deployment = ship(run, arch, model, options, out)
    card = {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "model": out.name,
        "model_format": fmt,
        "space": run.space.name,
        "arch": arch.to_dict(),
        "macs": macs,
        "params": params,
        "accuracy": {
            "val_top1": val_top1,
            "test_top1": test_top1,
            "data": run.data.describe(),
            "bn_recalibrated": True,
        },
        "budgets_ms": budgets,
        "latency": latency,
        "run": str(run.folder),
        "checkpoint": run.checkpoint.name,
        **deployment,
    }
    write_atomic(card_path, json.dumps(card, indent=2) + "\n")
    embed_card(model, run.space, arch, fmt, out, card)
    card["card"] = str(card_path)
    return card


def _refuse_other_extraction(card_path: Path, budgets: dict[str, float]) -> None:
    """Refuse to replace the model of an extraction for other devices or budgets."""
    if not card_path.is_file():
        return
    from nas.textfiles import FileFormatError, read_json_object

    try:
        card = read_json_object(card_path, "a model card")
    except FileFormatError:
        return  # not a card this engine can read: the model beside it is replaced
    theirs = card.get("budgets_ms")
    if theirs is None and "budget_ms" in card:  # a version 1 card: one device
        theirs = {card.get("target_device"): card["budget_ms"]}
    if theirs != budgets:
        model = card_path.with_name(card_path.name.removesuffix(".card.json"))
        raise InputError(
            f"{model} holds the model extracted for {theirs}, not {budgets}; give --out PATH "
            "to write this one elsewhere"
        )


def _measure_here(device: Device, arch: Arch) -> float | None:
    """End-to-end time on the profile's backend, when that backend runs on this machine."""
    from predictors.backends import backend_names
    from predictors.validate import measure_archs

    if device.predictor.profile.backend not in backend_names():
        return None
    return float(measure_archs(device.predictor, [arch], progress=False)[0])
