"""The latency predictor on synthetic profiles: vectorised vs per-arch path, JSON round trip,
errors for bad profiles, regression of unmeasured kernels, the ``nas device`` commands that need
no timing."""

from __future__ import annotations

import dataclasses
import json
import random
import zlib

import numpy as np
import pytest
import yaml

import search_spaces
from nas.cli import main
from nas.space import SearchSpace
from predictors.backends import Timing
from predictors.kernels import FusionRules
from predictors.latency import LatencyPredictor, ResolutionError
from predictors.measure import calibration_archs, enumerate_kernels
from predictors.profile import (
    DeviceProfile,
    KernelRecord,
    Measurement,
    ModelRecord,
    ProfileError,
    ProfileSpaceError,
)

RULES = FusionRules.fusing(
    [("op", a, b) for a in ("conv", "dwconv", "pwconv") for b in ("bn",)]
    + [("op", a, "act") for a in ("conv-bn", "dwconv-bn", "pwconv-bn", "linear")]
    + [("unit", "pwconv", "dwconv")]
)


BASELINE_MS = 0.003
#: The synthetic whole models' overhead: measured = SCALE * (sum of kernels - baseline) + CONSTANT.
SCALE, CONSTANT = 1.1, 0.02


def _fake_ms(spec) -> float:
    """A made-up but deterministic kernel time, growing with MACs and parameters."""
    jitter = (zlib.crc32(spec.key.encode()) % 1000) / 1e6
    return 0.004 + spec.get("macs", 0) * 2e-9 + spec.get("params", 0) * 1e-8 + jitter


def _kernel_sum(space: SearchSpace, arch) -> float:
    """The arch's kernel times net of the baseline, added up here from the made-up times."""
    from nas.graph import operator_graph
    from predictors.kernels import split_kernels

    kernels = split_kernels(operator_graph(space, arch), RULES)
    return sum(_fake_ms(k.spec) - BASELINE_MS for k in kernels)


def synthetic_profile(space: SearchSpace, drop_every: int = 0, seed: int = 0) -> DeviceProfile:
    """A complete profile with made-up times: every kernel, baseline and a few whole models."""
    profile = DeviceProfile(
        device="synthetic",
        backend="onnxruntime",
        scheme="operators",
        space_name=space.name,
        space_declaration=space.to_dict(),
        settings={"threads": 1, "batch": 1, "statistic": "median", "passes": 1},
        fusion_rules=RULES.to_list(),
        baseline=Measurement([Timing.exact(BASELINE_MS)]),
        complete=True,
    )
    for i, spec in enumerate(enumerate_kernels(space, RULES)):
        if drop_every and i % drop_every == 0:
            continue
        ms = _fake_ms(spec)
        profile.kernels[spec.key] = KernelRecord(
            spec.key, spec.kind, spec.feature_dict(), Measurement([Timing(ms, ms, ms, ms, ms, 5)])
        )
    for arch in calibration_archs(space, 6, space.resolutions, seed):
        truth = SCALE * _kernel_sum(space, arch) + CONSTANT
        profile.models.append(ModelRecord(arch.to_dict(), Measurement([Timing.exact(truth)])))
    return profile


@pytest.fixture
def tiny_profile(tiny_space):
    return synthetic_profile(tiny_space)


def _archs(space, n, seed=1):
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(n)]


def test_vectorised_predict_equals_the_per_arch_path(tiny_space, tiny_profile):
    predictor = LatencyPredictor(tiny_space).fit(tiny_profile)
    archs = _archs(tiny_space, 60) + [tiny_space.min_arch(), tiny_space.max_arch()]
    fast = predictor.predict(archs)
    slow = np.array([predictor.predict_arch(a) for a in archs])
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)
    assert fast.shape == (len(archs),) and (fast > 0).all()
    assert not predictor.regressed(archs).any()
    # the overhead fit recovers the synthetic one (whole models were 1.1 x sum + 0.02 ms), so
    # archs it was not fitted on are predicted as such a model would be measured
    overhead = predictor.overhead
    assert overhead.scale == pytest.approx(SCALE, rel=1e-6)
    assert overhead.constant == pytest.approx(CONSTANT, abs=1e-6)
    assert overhead.per_kernel == pytest.approx(0, abs=1e-9)
    assert overhead.per_mparam == pytest.approx(0, abs=1e-9) and overhead.fit_mape < 1e-6
    truth = np.array([SCALE * _kernel_sum(tiny_space, a) + CONSTANT for a in archs])
    np.testing.assert_allclose(fast, truth, rtol=1e-6)
    assert predictor.predict([]).shape == (0,)


def test_vectorised_predict_equals_the_per_arch_path_with_many_resolutions():
    """More resolutions than any stage has depths: the batched lookup's index columns of
    resolution and depth must not be confused (a space like Note10's, with 7 resolutions)."""
    from tests.conftest import TINY_SPACE

    space = SearchSpace.from_dict({**TINY_SPACE, "resolutions": [8, 10, 12, 14, 16]})
    predictor = LatencyPredictor(space).fit(synthetic_profile(space))
    archs = _archs(space, 40) + [space.min_arch(), space.max_arch()]
    assert {a.resolution for a in archs} == set(space.resolutions)
    slow = np.array([predictor.predict_arch(a) for a in archs])
    for batch in (1, 3, len(archs)):  # single moves and whole populations alike
        fast = np.concatenate(
            [predictor.predict(archs[i : i + batch]) for i in range(0, len(archs), batch)]
        )
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)


def test_unmeasured_kernels_are_regressed_alike_on_both_paths(tiny_space):
    profile = synthetic_profile(tiny_space, drop_every=5)
    predictor = LatencyPredictor(tiny_space).fit(profile)
    archs = _archs(tiny_space, 40, seed=7)
    fast = predictor.predict(archs)
    slow = np.array([predictor.predict_arch(a) for a in archs])
    np.testing.assert_allclose(fast, slow, rtol=1e-9)
    assert predictor.regressed(archs).any()
    complete = LatencyPredictor(tiny_space).fit(synthetic_profile(tiny_space)).predict(archs)
    assert np.median(np.abs(fast - complete) / complete) < 0.2


def test_kernels_timed_or_regressed_below_the_baseline_never_make_a_latency_negative(tiny_space):
    """A sampled profile on a noisy machine: kernels at or below the cost of an empty invocation
    (the baseline) and whole models fitted by a negative constant. Every prediction stays at
    least one invocation, alike on both paths (they had summed to negative milliseconds)."""
    profile = synthetic_profile(tiny_space, drop_every=3)
    for record in list(profile.kernels.values())[::2]:
        ms = BASELINE_MS * 0.5
        record.measurement = Measurement([Timing(ms, ms, ms, ms, ms, 5)])
    for model in profile.models:
        model.measurement = Measurement([Timing.exact(0.004)])
    predictor = LatencyPredictor(tiny_space).fit(profile)
    archs = _archs(tiny_space, 40, seed=3) + [tiny_space.min_arch(), tiny_space.max_arch()]
    fast = predictor.predict(archs)
    slow = np.array([predictor.predict_arch(a) for a in archs])
    np.testing.assert_allclose(fast, slow, rtol=1e-9)
    assert (fast >= BASELINE_MS).all()


def test_profile_json_round_trip(tmp_path, tiny_space, tiny_profile):
    path = tmp_path / "profile.json"
    predictor = LatencyPredictor(tiny_space).fit(tiny_profile)
    archs = _archs(tiny_space, 50)
    before = predictor.predict(archs)
    predictor.save(path)
    assert not list(tmp_path.glob(".*.tmp"))
    data = json.loads(path.read_text())
    assert data["format"] == "nas-device-profile" and data["version"] == 1
    assert data["kernels"] and data["fusion_rules"] and data["models"]
    loaded = LatencyPredictor.load(path, tiny_space)
    after = loaded.predict(archs)
    np.testing.assert_array_equal(before, after)
    assert b"pickle" not in path.read_bytes()


def test_bad_profiles_give_clear_errors(tmp_path, tiny_space, tiny_profile):
    path = tmp_path / "p.json"
    with pytest.raises(ProfileError, match="does not exist"):
        DeviceProfile.load(path)
    path.write_text("{broken")
    with pytest.raises(ProfileError, match="not valid JSON"):
        DeviceProfile.load(path)
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ProfileError, match="not a device profile"):
        DeviceProfile.load(path)
    data = tiny_profile.to_dict()
    path.write_text(json.dumps({**data, "version": 99}))
    with pytest.raises(ProfileError, match="version 99 is not supported; supported: 1"):
        DeviceProfile.load(path)
    path.write_text(json.dumps({**data, "scheme": "magic"}))
    with pytest.raises(ProfileError, match="scheme 'magic'.*choices"):
        DeviceProfile.load(path)
    broken = dict(data, kernels=[{"key": "k"}])
    path.write_text(json.dumps(broken))
    with pytest.raises(ProfileError, match="is not a valid measurement"):
        DeviceProfile.load(path)
    without = {k: v for k, v in data.items() if k != "kernels"}
    path.write_text(json.dumps(without))
    with pytest.raises(ProfileError, match=r"missing field\(s\) \['kernels'\]"):
        DeviceProfile.load(path)
    with pytest.raises(
        ProfileSpaceError, match="profile is for space 'tiny-test', not 'hybrid-tiny'"
    ):
        LatencyPredictor(search_spaces.get("hybrid-tiny")).fit(tiny_profile)
    other = tiny_space.with_task(num_classes=7)
    with pytest.raises(ProfileSpaceError, match="different declaration"):
        LatencyPredictor(other).fit(tiny_profile)


def test_profiles_measured_at_some_resolutions_refuse_others(tiny_space, tiny_profile):
    tiny_profile.settings["resolutions"] = [12]
    predictor = LatencyPredictor(tiny_space).fit(tiny_profile)
    arch = dataclasses.replace(tiny_space.max_arch(), resolution=12)
    assert predictor.predict([arch])[0] > 0
    with pytest.raises(ResolutionError, match=r"resolution\(s\) \[12\] only.*resolution 8"):
        predictor.predict([dataclasses.replace(arch, resolution=8)])


def test_device_commands_on_a_profile(tmp_path, capsys, tiny_space, tiny_profile):
    space_file = tmp_path / "tiny.yaml"
    space_file.write_text(yaml.safe_dump(tiny_space.to_dict()))
    profile = tmp_path / "profile.json"
    tiny_profile.save(profile)
    arch = tmp_path / "arch.json"
    tiny_space.max_arch().save(arch)
    args = ["device", "predict", "--profile", str(profile), "--arch", str(arch)]
    assert main([*args, "--space", str(space_file), "--breakdown"]) == 0
    out = capsys.readouterr().out
    expected = LatencyPredictor(tiny_space).fit(tiny_profile).predict([tiny_space.max_arch()])[0]
    assert f"{expected:.4f} ms" in out and "stages.1.layers.0" in out
    # a user-declared space is rebuilt from the declaration the profile stores
    assert main(["device", "info", "--profile", str(profile)]) == 0
    assert "tiny-test" in capsys.readouterr().out
    profile.write_text("{}")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("nas: error:") and "not a device profile" in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_backend_is_named_with_the_choices(tmp_path, capsys):
    out = tmp_path / "p.json"
    code = main(
        ["device", "measure", "--backend", "tpu", "--space", "hybrid-tiny", "--out", str(out)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown backend 'tpu'" in err and "onnxruntime" in err and "torch" in err
    assert not out.exists()


def test_overhead_terms_are_chosen_by_leave_one_out():
    from predictors.latency import fit_overhead

    rng = np.random.default_rng(0)
    raw = rng.uniform(1, 10, 16)
    count = rng.integers(20, 80, 16).astype(float)
    mparams = rng.uniform(0.5, 6, 16)
    measured = 1.1 * raw + 0.002 * count + 0.3 * mparams + 0.05
    fit = fit_overhead(raw, count, measured, 0.005, mparams)
    assert fit.terms == ("scale", "per_kernel", "per_mparam", "constant")
    assert fit.per_mparam == pytest.approx(0.3, rel=1e-6) and fit.scale == pytest.approx(1.1)
    assert fit.loo_mape < 1e-6
    # without a parameter effect, and with noise, the simpler set wins
    plain = 1.2 * raw + 0.1 + rng.normal(0, 0.02, 16)
    fit = fit_overhead(raw, count, plain, 0.005, mparams)
    assert "per_mparam" not in fit.terms and fit.scale == pytest.approx(1.2, rel=0.05)
    minputs = rng.uniform(0.5, 3, 16)  # convolution inputs with no effect either
    assert "per_minput" not in fit_overhead(raw, count, plain, 0.005, mparams, minputs).terms
    discounted = 1.05 * raw + 0.002 * count - 0.6 * minputs + 0.05
    fit = fit_overhead(raw, count, discounted, 0.005, mparams, minputs)
    assert "per_minput" in fit.terms and fit.per_minput == pytest.approx(-0.6, rel=1e-6)
    assert fit.per_mparam == pytest.approx(0, abs=1e-9) and fit.scale == pytest.approx(1.05)
    # too few models for the richer sets
    assert fit_overhead(raw[:2], count[:2], plain[:2], 0.005, mparams[:2]).terms == ("constant",)
    assert fit_overhead(raw[:0], count[:0], plain[:0], 0.005).constant == 0.005


def test_conv_inputs_are_counted_for_convolutions_only():
    from predictors.kernels import KernelSpec

    conv = KernelSpec.make("dwconv-bn", {"cin": 96, "hw": 112, "kernel": 3, "macs": 1})
    fused = KernelSpec.make("pwconv+dwconv", {"units": [conv.feature_dict(), {"cin": 8, "hw": 4}]})
    assert conv.conv_input_elements == 96 * 112 * 112 == fused.conv_input_elements
    for kind, features in (
        ("act", {"shape": [96, 112, 112]}),
        ("linear", {"cin": 64, "tokens": 9}),
    ):
        assert KernelSpec.make(kind, features).conv_input_elements == 0


def _specs(space: SearchSpace, arch) -> list:
    from nas.graph import operator_graph
    from predictors.kernels import split_kernels

    return [k.spec for k in split_kernels(operator_graph(space, arch), RULES)]


def _conv_inputs(space: SearchSpace, arch) -> float:
    """Millions of elements the arch's convolutions read, added up here from the kernels."""
    return sum(spec.conv_input_elements for spec in _specs(space, arch)) / 1e6


def _structural_units(space: SearchSpace, arch) -> int:
    """The arch's structural units (attention cores, SE, ...), counted here from the kernels."""
    return sum(spec.structural for spec in _specs(space, arch))


def test_whole_models_cheaper_per_convolution_input_are_fitted_and_predicted_on_both_paths(
    tiny_space,
):
    """ONNX Runtime times a convolution on its own with its input's layout conversion, which a
    model does once for a run of convolutions: whole models cost less than their kernels' sum by
    an amount per convolution input element. The overhead fit finds that term, and both
    prediction paths give such models' times for archs it was not fitted on."""
    per_minput = -0.4
    profile = synthetic_profile(tiny_space)
    profile.models = []
    for arch in calibration_archs(tiny_space, 12, tiny_space.resolutions, 3):
        truth = SCALE * _kernel_sum(tiny_space, arch) + per_minput * _conv_inputs(tiny_space, arch)
        truth += CONSTANT
        profile.models.append(ModelRecord(arch.to_dict(), Measurement([Timing.exact(truth)])))
    predictor = LatencyPredictor(tiny_space).fit(profile)
    assert "per_minput" in predictor.overhead.terms
    assert predictor.overhead.per_minput == pytest.approx(per_minput, rel=1e-4)
    archs = _archs(tiny_space, 40, seed=5)
    truth = [
        SCALE * _kernel_sum(tiny_space, a) + per_minput * _conv_inputs(tiny_space, a) + CONSTANT
        for a in archs
    ]
    np.testing.assert_allclose(predictor.predict(archs), truth, rtol=1e-5)
    np.testing.assert_allclose([predictor.predict_arch(a) for a in archs], truth, rtol=1e-5)


def test_whole_models_dearer_per_structural_unit_are_fitted_and_predicted_on_both_paths(
    tiny_space,
):
    """A block kind's multi-operator unit (an attention core, a cascaded head) can cost more
    inside a model than timed on its own (on ONNX Runtime at 32 px a cascaded head costs about
    half as much again). The overhead fit finds a price per such unit, and both prediction paths
    give such models' times for archs it was not fitted on."""
    per_unit = 0.006
    profile = synthetic_profile(tiny_space)
    profile.models = []

    def truth(arch) -> float:
        units = _structural_units(tiny_space, arch)
        return SCALE * _kernel_sum(tiny_space, arch) + per_unit * units + CONSTANT

    calibration = calibration_archs(tiny_space, 12, tiny_space.resolutions, 3)
    assert len({_structural_units(tiny_space, a) for a in calibration}) > 2
    for arch in calibration:
        profile.models.append(ModelRecord(arch.to_dict(), Measurement([Timing.exact(truth(arch))])))
    predictor = LatencyPredictor(tiny_space).fit(profile)
    assert "per_structural" in predictor.overhead.terms
    assert predictor.overhead.per_structural == pytest.approx(per_unit, rel=1e-4)
    archs = _archs(tiny_space, 40, seed=5)
    expected = [truth(a) for a in archs]
    np.testing.assert_allclose(predictor.predict(archs), expected, rtol=1e-5)
    np.testing.assert_allclose([predictor.predict_arch(a) for a in archs], expected, rtol=1e-5)
    # without such a cost the fit prices none
    plain = LatencyPredictor(tiny_space).fit(synthetic_profile(tiny_space)).overhead
    assert plain.per_structural == pytest.approx(0, abs=1e-9)
    assert plain.scale == pytest.approx(SCALE)
