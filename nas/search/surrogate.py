"""An accuracy objective that learns as the search goes: a predictor refitted on measurements.

Measuring a subnet on the supernet (BN recalibration + validation pass) costs far more than a
prediction. :class:`RefittedAccuracy` is a vectorised objective that measures the first
``warmup`` archs it is asked about, then predicts with an accuracy predictor
(:mod:`predictors.accuracy`) fitted on every measurement so far, measuring only the ``verify``
share of each batch it predicts best. Those are held-out checks -- each is predicted before its
measurement joins the training data -- so the Kendall tau it reports is an honest ranking figure.
The predictor is refitted once ``refit_every`` new measurements have come in
(:class:`SurrogateSettings`).

Values returned for unmeasured archs are predictions; :attr:`measured` says which are real.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from nas.arch import Arch
from nas.space import SearchSpace

Measure = Callable[[Sequence[Arch]], np.ndarray]


@dataclass(frozen=True)
class SurrogateSettings:
    """How the accuracy predictor of a search is fitted (see :class:`RefittedAccuracy`)."""

    kind: str = "mlp"
    warmup: int = 50
    verify: float = 0.2
    refit_every: int = 20

    def __post_init__(self):
        from nas.errors import InputError
        from predictors.accuracy import KINDS

        if self.kind not in KINDS:
            raise InputError(
                f"unknown accuracy predictor {self.kind!r}; choices: supernet, {', '.join(KINDS)}"
            )
        if self.warmup < 2:
            raise InputError(f"warmup {self.warmup}: the predictor needs at least 2 measurements")
        if not 0.0 <= self.verify <= 1.0:
            raise InputError(f"verify {self.verify} must be a share between 0 and 1")
        if self.refit_every < 1:
            raise InputError(f"refit every {self.refit_every}: must be at least 1 measurement")


@dataclass
class RefittedAccuracy:
    space: SearchSpace
    measure: Measure
    settings: SurrogateSettings = SurrogateSettings()
    seed: int = 0
    measured: dict[Arch, float] = field(default_factory=dict)
    fits: int = 0
    _heldout: list[tuple[float, float]] = field(default_factory=list, repr=False)
    _predictor: Any = field(default=None, repr=False)
    _fitted_on: int = 0

    def remember(self, measured: dict[Arch, float]) -> None:
        """Measurements made earlier (a resumed search, or other searches of the same run)."""
        self.measured.update(measured)

    def __call__(self, archs: Sequence[Arch]) -> np.ndarray:
        archs = list(archs)
        if len(self.measured) < self.settings.warmup:
            return self._measure(archs)
        self._refit_if_due()
        values = self._predictor.predict(archs)
        fresh = [i for i, a in enumerate(archs) if a not in self.measured]
        checks = sorted(fresh, key=lambda i: -values[i])[
            : math.ceil(self.settings.verify * len(fresh))
        ]
        if checks:
            truth = self._measure([archs[i] for i in checks])
            self._heldout += [
                (float(values[i]), float(t)) for i, t in zip(checks, truth, strict=True)
            ]
        return np.array([self.measured.get(a, v) for a, v in zip(archs, values, strict=True)])

    def _measure(self, archs: list[Arch]) -> np.ndarray:
        missing = list(dict.fromkeys(a for a in archs if a not in self.measured))
        if missing:
            for arch, value in zip(missing, self.measure(missing), strict=True):
                self.measured[arch] = float(value)
        return np.array([self.measured[a] for a in archs])

    def _refit_if_due(self) -> None:
        if (
            self._predictor is not None
            and len(self.measured) - self._fitted_on < self.settings.refit_every
        ):
            return
        from predictors.accuracy import AccuracyPredictor

        archs = list(self.measured)
        self._predictor = AccuracyPredictor(self.space, self.settings.kind, self.seed).fit(
            archs, [self.measured[a] for a in archs]
        )
        self._fitted_on = len(archs)
        self.fits += 1

    def heldout_tau(self) -> float | None:
        """Kendall tau between prediction and measurement over every held-out check so far."""
        if len(self._heldout) < 3:
            return None
        predicted, truth = zip(*self._heldout, strict=True)
        tau = kendalltau(predicted, truth).statistic
        return None if np.isnan(tau) else float(tau)

    def summary(self) -> dict[str, Any]:
        return {
            "predictor": self.settings.kind,
            "measured": len(self.measured),
            "fits": self.fits,
            "heldout_checks": len(self._heldout),
            "heldout_kendall_tau": self.heldout_tau(),
            "warmup": self.settings.warmup,
            "verify": self.settings.verify,
            "refit_every": self.settings.refit_every,
        }
