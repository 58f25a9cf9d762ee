"""Accuracy predictors rank held-out archs like the measurements they were fitted on."""

from __future__ import annotations

import random

import numpy as np
import pytest

import search_spaces
from nas.errors import InputError
from nas.graph import count
from predictors.accuracy import KINDS, AccuracyPredictor, compare_predictors


def _dataset(n=240, seed=0):
    """Archs of hybrid-tiny with a smooth, noisy stand-in for accuracy (log MACs + noise)."""
    space = search_spaces.get("hybrid-tiny")
    rng = random.Random(seed)
    archs = list({space.sample(rng): None for _ in range(n)})
    noise = np.random.default_rng(seed).normal(0, 0.05, len(archs))
    accuracy = [np.log(count(space, a)[0]) + e for a, e in zip(archs, noise, strict=True)]
    return space, archs, accuracy


def test_every_kind_ranks_held_out_archs():
    space, archs, accuracy = _dataset()
    taus = compare_predictors(space, archs, accuracy)
    assert set(taus) == set(KINDS)
    for kind, tau in taus.items():
        assert tau > 0.5, (kind, tau)


def test_saved_predictor_reloads_with_identical_predictions(tmp_path):
    space, archs, accuracy = _dataset(n=80)
    predictor = AccuracyPredictor(space, "gbm").fit(archs, accuracy)
    predictor.save(tmp_path / "acc.json")
    again = AccuracyPredictor.load(tmp_path / "acc.json", space)
    assert np.allclose(again.predict(archs), predictor.predict(archs))
    assert (tmp_path / "acc.json").read_text().startswith('{"format": "nas-accuracy-predictor"')


def test_bad_input_is_refused(tmp_path):
    space = search_spaces.get("hybrid-tiny")
    with pytest.raises(InputError, match="unknown accuracy predictor 'svm'"):
        AccuracyPredictor(space, "svm")
    with pytest.raises(InputError, match="at least 2"):
        AccuracyPredictor(space).fit([space.sample(0)], [0.5])
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(InputError, match="not a nas-accuracy-predictor"):
        AccuracyPredictor.load(tmp_path / "x.json", space)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_fits_from_its_smallest_sample_up(kind):
    """`nas search --warmup 2` fits the predictor on 2 measured archs: every kind must fit on
    any count from the documented minimum (the MLP's early stopping needs 20 for its split)."""
    space, archs, accuracy = _dataset(n=24)
    for n in (2, 3, 10, 19, 20, 24):
        predictor = AccuracyPredictor(space, kind).fit(archs[:n], accuracy[:n])
        assert np.isfinite(predictor.predict(archs)).all(), (kind, n)
