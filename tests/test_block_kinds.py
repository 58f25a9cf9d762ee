"""The conformance suite: every registered block kind and attention kind passes the same checks.

Each kind's only test input is the tiny example it declares (``example``: a stage, or the stem or
head mapping), built into a tiny space with the other kinds' examples. A kind registered later --
in the package or outside it, like ``tests/fused_kind.py`` -- is checked here without any test
code of its own:

* layers: the per-slot derivation (the supernet's and the latency tables') gives the layers of
  ``layers_of``, chained shape to shape; arch JSON round trip;
* the operator graph: MACs within 1% of ``torch.utils.flop_counter`` on the model as exported
  (after the kinds' deploy steps), parameters exact;
* the supernet: its output equals the extracted model's within 1e-5 (eval, float32, random
  BatchNorm statistics and norms), before and after the kinds' deploy steps;
* export: ONNX Runtime equals PyTorch within 1e-4; a TorchScript file loads and equals it;
* latency: an ONNX Runtime profile measured with tiny settings (one, of a space of all the
  example stages) covers every kernel of the kind (none is regressed), and the kind's share of
  each arch's per-kernel breakdown sums the profile's measured table entries.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas.arch import Arch
from nas.blocks.nn import build_model, deployed
from nas.extract import export_onnx, export_torchscript, extract
from nas.graph import count
from nas.layers import layers_of, slot_layer, slots
from nas.space import SearchSpace
from nas.supernet import Supernet
from tests.conftest import trained_looking
from tests.example_spaces import example_space, kind_examples

MEASURED = 32  # one resolution, for the space of every example stage (strided one after another)


KINDS = kind_examples()


@pytest.fixture(scope="module")
def spaces():
    return {name: example_space(name, **kwargs) for name, kwargs in KINDS.items()}


def _archs(space: SearchSpace, n: int = 12, seed: int = 0) -> list[Arch]:
    rng = random.Random(seed)
    return [space.min_arch(), space.max_arch(), *(space.sample(rng) for _ in range(n))]


def _image(space: SearchSpace, arch: Arch, batch: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(batch, space.in_channels, arch.resolution, arch.resolution, generator=gen)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_declares_an_example(kind):
    assert KINDS[kind] and all(v is not None for v in KINDS[kind].values()), kind


@pytest.mark.parametrize("kind", KINDS)
def test_layers_of_slots_and_json_round_trip(kind, spaces):
    space = spaces[kind]
    for arch in _archs(space, 20):
        assert Arch.from_json(arch.to_json()) == arch
        assert space.validate(Arch.from_dict(json.loads(arch.to_json()))) == arch
        assert space.assemble(space.decisions(arch)) == arch
        layers = layers_of(space, arch)
        # the per-slot derivation, fed from the arch's decision values as latency tables are
        values = space.decisions(arch)
        rebuilt = [
            slot_layer(space, slot, [values[d] for d in slot.deps])
            for slot in slots(space)
            if slot.depth_dim is None or values[slot.depth_dim] > slot.layer
        ]
        assert tuple(rebuilt) == layers
        for before, after in zip(layers, layers[1:], strict=False):
            assert (after.in_hw, after.in_ch) == (before.out_hw, before.out_ch), after.slot


@pytest.mark.parametrize("kind", KINDS)
def test_graph_counts_equal_torch(kind, spaces):
    space = spaces[kind]
    for arch in _archs(space):
        macs, params = count(space, arch)
        model = deployed(build_model(space, arch), space, arch).eval()
        assert params == sum(p.numel() for p in model.parameters()), arch
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(_image(space, arch, batch=1))
        reference = counter.get_total_flops() / 2
        assert abs(macs - reference) <= 0.01 * reference, (arch, macs, reference)


@pytest.fixture(scope="module")
def supernets(spaces):
    torch.manual_seed(0)
    return {name: trained_looking(Supernet(space)) for name, space in spaces.items()}


@pytest.mark.parametrize("kind", KINDS)
def test_supernet_equals_extracted_and_deployed_models(kind, spaces, supernets):
    space, supernet = spaces[kind], supernets[kind]
    with torch.no_grad():
        for arch in _archs(space):
            image = _image(space, arch)
            model = extract(supernet, arch).eval()
            supernet.set_arch(arch)
            expected = supernet(image)
            assert (model(image) - expected).abs().max() <= 1e-5, arch
            assert (deployed(model, space, arch)(image) - expected).abs().max() <= 1e-5, arch


#: The archs exported per kind: the largest by default, a random one too in ``make test-all``
#: (each export and run takes seconds).
EXPORTED = [
    pytest.param("max", id="max-arch"),
    pytest.param("sample", marks=pytest.mark.slow, id="sampled-arch"),
]


@pytest.mark.parametrize("which", EXPORTED)
@pytest.mark.parametrize("kind", KINDS)
def test_onnx_runtime_and_torchscript_equal_torch(kind, which, spaces, supernets, tmp_path):
    import onnxruntime as ort

    space, supernet = spaces[kind], supernets[kind]
    for i, arch in enumerate([space.max_arch() if which == "max" else space.sample(3)]):
        model = extract(supernet, arch).eval()
        image = _image(space, arch, batch=1)
        with torch.no_grad():
            expected = model(image).numpy()
        path = export_onnx(model, space, arch, tmp_path / f"{i}.onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {"image": image.numpy()})[0]
        assert np.abs(got - expected).max() <= 1e-4, arch
        scripted = torch.jit.load(str(export_torchscript(model, space, arch, tmp_path / f"{i}.pt")))
        with torch.no_grad():
            assert np.abs(scripted(image).numpy() - expected).max() <= 1e-5, arch


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """An ONNX Runtime profile measured with tiny settings, of one space holding every kind's
    example stage (one measurement for all kinds), and that space."""
    from predictors.measure import MeasurementJob, MeasureSettings

    stages = [kwargs["stage"] for kwargs in KINDS.values() if "stage" in kwargs]
    space = example_space("all", stage=stages[0])
    space = SearchSpace.from_dict({**space.to_dict(), "stages": stages, "resolutions": [MEASURED]})
    settings = MeasureSettings(
        warmup=1, repeats=1, passes=1, min_time_ms=0.0, min_span_ms=0.0, models=0
    )
    out = tmp_path_factory.mktemp("profile") / "profile.json"
    return MeasurementJob(space, out, settings, False, lambda m: None).run(), space


def _belongs(layer, kind: str) -> bool:
    from nas.blocks import kind_of

    if kind.startswith("attention-"):
        return getattr(layer, "attention", None) == kind.removeprefix("attention-")
    return kind_of(layer).name == kind


@pytest.mark.parametrize("kind", KINDS)
def test_kernels_are_covered_by_a_measured_profile(kind, measured):
    from predictors.latency import LatencyPredictor

    profile, space = measured
    predictor = LatencyPredictor(space).fit(profile)
    archs = _archs(space, 8)
    predicted = predictor.predict(archs)
    # finite; not necessarily positive: one-repeat timings minus the measured baseline are noise
    assert np.isfinite(predicted).all()
    np.testing.assert_allclose(predicted, [predictor.predict_arch(a) for a in archs], rtol=1e-9)
    assert not predictor.regressed(archs).any()
    own = 0
    for arch in archs:
        layers = {layer.slot: layer for layer in layers_of(space, arch)}
        rows = [r for r in predictor.breakdown(arch) if _belongs(layers[r["layer"]], kind)]
        own += len(rows)
        assert not any(row["regressed"] for row in rows)
        table = [profile.kernels[r["key"]].measurement.ms(profile.statistic) for r in rows]
        assert sum(r["ms"] for r in rows) == pytest.approx(sum(table))
    assert own > 0, f"no kernel of {kind} in {len(archs)} archs"
