"""Accuracy of a study's archs from a trained run: measured on the supernet for a subset,
predicted for the rest by the project's accuracy predictor, and always labelled which.

Measurements are BN-recalibrated validation top-1 of :meth:`TrainedRun.accuracy`, so they land
in the run's accuracy cache (a killed study resumes without measuring them again, and searches
of the run reuse them). The predictor is fitted on every arch the run has measured; its Kendall
tau on a held-out quarter of them is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from nas.arch import Arch
from nas.errors import InputError
from nas.study.decisions import Decisions

#: Fewest supernet measurements the accuracy predictor is fitted on.
MIN_MEASURED = 8
#: Fewest held-out archs a Kendall tau of the predictor is reported on.
MIN_HELDOUT = 5
#: Archs measured per call of the run (each call appends them to the run's cache).
CHUNK = 4
#: Rounds of measuring the archs the report names best under a budget.
VERIFY_ROUNDS = 10


@dataclass
class StudyAccuracy:
    """Validation top-1 (%) of each sampled arch, whether it was measured, and the predictor."""

    values: np.ndarray
    measured: np.ndarray
    predictor: Any
    decisions: Decisions
    summary: dict[str, Any]

    def predict(self, index: np.ndarray) -> np.ndarray:
        """Predicted top-1 (%) of archs given as index rows (paired archs: always predicted)."""
        return 100.0 * self.predictor.predict_encoded(self.decisions.encode(index))

    def sources(self) -> list[str]:
        return ["measured" if m else "predicted" for m in self.measured]


def run_archs(run) -> list[Arch]:
    """Every arch a search of ``run`` evaluated and every arch its accuracy cache holds."""
    from nas.deploy import searched_archs

    return list(dict.fromkeys([*searched_archs(run), *run.measured()]))


def study_accuracy(
    run,
    decisions: Decisions,
    index: np.ndarray,
    archs: list[Arch],
    macs: np.ndarray,
    from_run: np.ndarray,
    measure: int,
    kind: str = "gbm",
    seed: int = 0,
    progress: bool = True,
) -> StudyAccuracy:
    """Measure ``measure`` archs of the sample that do not come from the run (spread over its
    MACs range; those in the run's cache are not measured again), fit the predictor on every
    arch the run has measured, predict the others."""
    from predictors.accuracy import AccuracyPredictor

    known = run.measured()
    candidates = [i for i in np.argsort(macs, kind="stable") if not from_run[i]]
    chosen = [candidates[int(p)] for p in _spread(len(candidates), measure)]
    picks = [i for i in chosen if archs[i] not in known]
    with tqdm(
        total=len(picks), desc="accuracy on the supernet", unit="arch", disable=not progress
    ) as bar:
        for start in range(0, len(picks), CHUNK):
            chunk = [archs[i] for i in picks[start : start + CHUNK]]
            run.accuracy(chunk)
            bar.update(len(chunk))
    known = run.measured()
    train = list(known)
    if len(train) < MIN_MEASURED:
        raise InputError(
            f"the accuracy predictor needs at least {MIN_MEASURED} archs measured on the "
            f"supernet; the run has {len(train)}: raise --measure"
        )
    top1 = np.array([100.0 * known[a] for a in train])
    tau = _heldout_tau(AccuracyPredictor, decisions.space, kind, seed, train, top1)
    predictor = AccuracyPredictor(decisions.space, kind, seed).fit(train, top1 / 100.0)
    measured = np.array([a in known for a in archs])
    values = np.empty(len(archs))
    values[measured] = [100.0 * known[a] for a, m in zip(archs, measured, strict=True) if m]
    if (~measured).any():
        values[~measured] = 100.0 * predictor.predict_encoded(decisions.encode(index[~measured]))
    summary = {
        "split": "val",
        "checkpoint": run.checkpoint.name,
        "step": run.step,
        "measured_in_sample": int(measured.sum()),
        "predicted_in_sample": int((~measured).sum()),
        "measured_for_study": len(chosen),
        "measured_now": len(picks),
        "predictor": kind,
        "predictor_trained_on": len(train),
        "predictor_heldout_kendall_tau": tau,
    }
    return StudyAccuracy(values, measured, predictor, decisions, summary)


def _spread(available: int, count: int) -> np.ndarray:
    """``count`` distinct positions spread evenly over ``range(available)``."""
    count = min(count, available)
    if count <= 0:
        return np.zeros(0, dtype=int)
    return np.unique(np.round(np.linspace(0, available - 1, count)).astype(int))


def _heldout_tau(predictor_class, space, kind, seed, archs, top1) -> float | None:
    """Kendall tau of the predictor on a held-out quarter of the measured archs."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(archs))
    cut = int(round(len(archs) * 0.75))
    test = order[cut:]
    if len(test) < MIN_HELDOUT:
        return None
    model = predictor_class(space, kind, seed).fit(
        [archs[i] for i in order[:cut]], top1[order[:cut]] / 100.0
    )
    tau = model.kendall_tau([archs[i] for i in test], top1[test] / 100.0)
    return None if np.isnan(tau) else float(tau)


def verify_winners(
    run, accuracy: StudyAccuracy, archs: list[Arch], winners: Callable[[np.ndarray], set[int]]
) -> int:
    """Measure on the supernet the archs ``winners(accuracy values)`` names (the report's best
    archs under budgets) until all of them are measurements, as searches do before they report
    a winner; at most :data:`VERIFY_ROUNDS` rounds. Returns how many were measured."""
    measured = 0
    for _ in range(VERIFY_ROUNDS):
        pending = sorted(i for i in winners(accuracy.values) if not accuracy.measured[i])
        if not pending:
            break
        accuracy.values[pending] = 100.0 * run.accuracy([archs[i] for i in pending])
        accuracy.measured[pending] = True
        measured += len(pending)
    accuracy.summary.update(
        winners_measured=measured,
        measured_in_sample=int(accuracy.measured.sum()),
        predicted_in_sample=int((~accuracy.measured).sum()),
    )
    return measured
