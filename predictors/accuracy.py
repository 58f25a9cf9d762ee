"""Accuracy predictors: scikit-learn regressors from an arch's encoding to its accuracy.

Fitted on (arch, accuracy) pairs measured on the supernet (BN recalibration + validation
accuracy). They are used for ranking, so the figure that matters is Kendall's tau on held-out
archs. Nothing is pickled: the saved form is the training data, and the model is refitted on
load (a second or less for a few thousand archs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.neural_network import MLPRegressor

from nas.arch import Arch
from nas.errors import InputError
from nas.runs import write_atomic
from nas.space import SearchSpace

KINDS = ("mlp", "gbm", "ridge")
PREDICTOR_FORMAT = "nas-accuracy-predictor"
PREDICTOR_VERSION = 1
#: Pairs from which the MLP stops early on a 10% validation split (sklearn needs 2 there).
MLP_EARLY_STOPPING_MIN = 20


def _regressor(kind: str, seed: int):
    if kind == "mlp":  # Once-for-All's predictor: a small MLP on the one-hot encoding
        return MLPRegressor(
            hidden_layer_sizes=(128, 128),
            alpha=1e-3,
            learning_rate_init=3e-3,
            max_iter=800,
            early_stopping=True,
            random_state=seed,
        )
    if kind == "gbm":
        return GradientBoostingRegressor(
            n_estimators=300, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=seed
        )
    if kind == "ridge":
        return Ridge(alpha=1.0)
    raise InputError(f"unknown accuracy predictor {kind!r}; choices: {', '.join(KINDS)}")


class AccuracyPredictor:
    """``fit(archs, accuracies)``, ``predict(archs)``, ``kendall_tau(archs, accuracies)``."""

    def __init__(self, space: SearchSpace, kind: str = "mlp", seed: int = 0):
        self.space, self.kind, self.seed = space, kind, seed
        self.model = _regressor(kind, seed)
        self.archs: list[Arch] = []
        self.accuracies: list[float] = []

    def fit(self, archs: Sequence[Arch], accuracies: Sequence[float]) -> AccuracyPredictor:
        if len(archs) != len(accuracies) or len(archs) < 2:
            raise InputError(f"need at least 2 (arch, accuracy) pairs, got {len(archs)}")
        self.archs, self.accuracies = list(archs), [float(a) for a in accuracies]
        y = np.asarray(self.accuracies)
        self._mean, self._scale = y.mean(), y.std() or 1.0
        if self.kind == "mlp":  # early stopping holds out 10%: at least 2 pairs, else none
            self.model.set_params(early_stopping=len(y) >= MLP_EARLY_STOPPING_MIN)
        self.model.fit(self.space.encode_many(self.archs), (y - self._mean) / self._scale)
        return self

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.predict_encoded(self.space.encode_many(list(archs)))

    def predict_encoded(self, encodings: np.ndarray) -> np.ndarray:
        """Accuracy of archs given by their encodings (rows of :meth:`SearchSpace.encode`)."""
        if not self.archs:
            raise RuntimeError("the predictor is not fitted yet")
        return self.model.predict(encodings) * self._scale + self._mean

    def kendall_tau(self, archs: Sequence[Arch], accuracies: Sequence[float]) -> float:
        """Rank agreement between predicted and measured accuracy on ``archs``."""
        return float(kendalltau(self.predict(archs), accuracies).statistic)

    def save(self, path: str | Path) -> None:
        data = {
            "format": PREDICTOR_FORMAT,
            "version": PREDICTOR_VERSION,
            "space": self.space.name,
            "kind": self.kind,
            "seed": self.seed,
            "archs": [a.to_dict() for a in self.archs],
            "accuracies": self.accuracies,
        }
        write_atomic(path, json.dumps(data) + "\n")

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace) -> AccuracyPredictor:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"cannot read accuracy predictor {path}: {err}") from None
        if data.get("format") != PREDICTOR_FORMAT or data.get("version") != PREDICTOR_VERSION:
            raise InputError(f"{path} is not a {PREDICTOR_FORMAT} v{PREDICTOR_VERSION} file")
        if data["space"] != space.name:
            raise InputError(f"{path} predicts archs of {data['space']!r}, not {space.name!r}")
        archs = [space.validate(Arch.from_dict(a)) for a in data["archs"]]
        return cls(space, data["kind"], data["seed"]).fit(archs, data["accuracies"])


def compare_predictors(
    space: SearchSpace,
    archs: Sequence[Arch],
    accuracies: Sequence[float],
    holdout: float = 0.25,
    seed: int = 0,
) -> dict[str, float]:
    """Held-out Kendall tau of every predictor kind on the same split."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(archs))
    cut = int(len(archs) * (1 - holdout))
    train, test = order[:cut], order[cut:]
    pick = lambda idx, xs: [xs[i] for i in idx]  # noqa: E731
    return {
        kind: AccuracyPredictor(space, kind, seed)
        .fit(pick(train, archs), pick(train, accuracies))
        .kendall_tau(pick(test, archs), pick(test, accuracies))
        for kind in KINDS
    }
