"""Extracted subnets equal the supernet, are made of standard layers, and export faithfully."""

from __future__ import annotations

import random

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import nas.blocks
import search_spaces
from nas.extract import (
    ModelFileError,
    export_onnx,
    export_torchscript,
    extract,
    load_model,
    save_model,
)
from nas.supernet import Supernet
from nas.supernet.checkpoint import CheckpointError, load_supernet, save_supernet
from tests.conftest import trained_looking as _trained_looking

#: Random archs per space: a sample by default, the full proof with the tests marked slow.
ARCHS_PER_SPACE = {"elasticvit": 100, "ofa-mbv3": 100, "hybrid-tiny": 100, "ofa-mbv3-w1.0": 25}
SAMPLE_PER_SPACE = {"elasticvit": 6, "ofa-mbv3": 6, "hybrid-tiny": 30, "ofa-mbv3-w1.0": 3}
SIZES = [
    pytest.param(SAMPLE_PER_SPACE, id="sample"),
    pytest.param(ARCHS_PER_SPACE, id="all", marks=pytest.mark.slow),
]
STATIC_BLOCKS = {
    nas.blocks.ConvBNAct,
    nas.blocks.MBConv,
    nas.blocks.SqueezeExcite,
    nas.blocks.Attention,
    nas.blocks.Mlp,
    nas.blocks.TransformerBlock,
    nas.blocks.ClassifierHead,
}


@pytest.fixture(scope="module")
def supernets():
    torch.manual_seed(0)
    return {name: _trained_looking(Supernet(search_spaces.get(name))) for name in ARCHS_PER_SPACE}


def _image(space, arch, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, space.in_channels, arch.resolution, arch.resolution, generator=gen)


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("name", list(ARCHS_PER_SPACE))
def test_extracted_model_equals_supernet_on_random_archs(name, sizes, supernets):
    supernet, space = supernets[name], search_spaces.get(name)
    rng = random.Random(7)
    worst = 0.0
    with torch.no_grad():
        for _ in range(sizes[name]):
            arch = space.sample(rng)
            model = extract(supernet, arch)
            image = _image(space, arch)
            supernet.set_arch(arch)
            worst = max(worst, (supernet(image) - model(image)).abs().max().item())
    print(f"{name}: worst |supernet - extracted| over {sizes[name]} archs: {worst:.2e}")
    assert worst <= 1e-5


@pytest.mark.parametrize("name", ["hybrid-tiny", "elasticvit"])
def test_extracted_model_is_made_of_standard_layers_only(name, supernets):
    space = search_spaces.get(name)
    model = extract(supernets[name], space.sample(3))
    for module in model.modules():
        kind = type(module)
        assert kind in STATIC_BLOCKS or kind.__module__.startswith("torch.nn"), kind


def test_extraction_copies_weights(tiny_space):
    torch.manual_seed(0)
    supernet = _trained_looking(Supernet(tiny_space))
    arch = tiny_space.sample(1)
    model = extract(supernet, arch)
    before = supernet.stem.conv.weight.detach().clone()
    with torch.no_grad():
        model[0].conv.weight.add_(1.0)
    assert torch.equal(supernet.stem.conv.weight, before)
    out, k = arch.stem.width, tiny_space.stem.kernel
    assert torch.equal(model[0].conv.weight, before[:out, :, :k, :k] + 1.0)


def test_a_smaller_kernel_takes_the_centre_of_the_largest(tiny_space):
    """Elastic kernels (Once-for-All): a k x k choice is the centre k x k of the largest kernel's
    weights, for every depthwise convolution of an arch."""
    supernet = _trained_looking(Supernet(tiny_space))
    checked = 0
    for arch in (tiny_space.min_arch(), tiny_space.sample(3), tiny_space.sample(4)):
        model = extract(supernet, arch)
        for block, elastic in zip(model, supernet.active_blocks, strict=True):
            full = dict(elastic.named_parameters())
            for name, weight in block.named_parameters():
                largest = full[name]
                if weight.dim() != 4 or weight.shape[1] != 1:
                    continue  # depthwise convolutions only
                k, big = weight.shape[-1], largest.shape[-1]
                if k == big:
                    continue
                start = (big - k) // 2
                centre = largest[: weight.shape[0], :, start : start + k, start : start + k]
                assert torch.equal(weight, centre), f"{name}: kernel {k} of {big}"
                checked += 1
    assert checked >= 2


def test_training_mode_matches_too(tiny_space):
    """In training mode both use batch statistics; outputs and gradients agree."""
    torch.manual_seed(0)
    supernet = Supernet(tiny_space).train()
    for arch in (tiny_space.sample(s) for s in range(5)):
        model = extract(supernet, arch).train()
        image = _image(tiny_space, arch, batch=4)
        supernet.set_arch(arch)
        assert torch.allclose(supernet(image), model(image), atol=1e-5)


def test_any_arch_of_a_user_space_extracts(tiny_space):
    supernet = _trained_looking(Supernet(tiny_space))
    rng = random.Random(0)
    with torch.no_grad():
        for _ in range(30):
            arch = tiny_space.sample(rng)
            supernet.set_arch(arch)
            image = _image(tiny_space, arch)
            assert (supernet(image) - extract(supernet, arch)(image)).abs().max() <= 1e-5


@pytest.mark.parametrize("name", ["hybrid-tiny", "ofa-mbv3", "elasticvit"])
def test_onnx_export_matches_in_onnx_runtime(name, supernets, tmp_path):
    space, supernet = search_spaces.get(name), supernets[name]
    rng = random.Random(5)
    for i in range(2):
        arch = space.sample(rng)
        model = extract(supernet, arch)
        path = export_onnx(model, space, arch, tmp_path / f"{i}.onnx")
        image = _image(space, arch, batch=1)
        with torch.no_grad():
            expected = model(image).numpy()
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {"image": image.numpy()})[0]
        assert np.abs(got - expected).max() <= 1e-4


def test_torchscript_export_loads_and_matches(supernets, tmp_path):
    space = search_spaces.get("hybrid-tiny")
    arch = space.sample(2)
    model = extract(supernets["hybrid-tiny"], arch)
    path = export_torchscript(model, space, arch, tmp_path / "model.ts")
    loaded = torch.jit.load(str(path))
    image = _image(space, arch, batch=1)
    with torch.no_grad():
        assert torch.allclose(loaded(image), model(image), atol=1e-6)


def test_model_file_round_trip_with_weights_only(supernets, tmp_path):
    space = search_spaces.get("hybrid-tiny")
    arch = space.sample(4)
    model = extract(supernets["hybrid-tiny"], arch)
    path = save_model(model, space, arch, tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["arch"] == arch.to_dict()
    loaded, loaded_space, loaded_arch = load_model(path)
    assert loaded_arch == arch and loaded_space.name == space.name
    image = _image(space, arch)
    with torch.no_grad():
        assert torch.equal(loaded(image), model(image))


def test_corrupt_model_file_is_refused(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a readable model file"):
        load_model(path)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_supernet_checkpoint_round_trip_and_errors(tiny_space, tmp_path):
    supernet = _trained_looking(Supernet(tiny_space), seed=3)
    path = save_supernet(supernet, tmp_path / "last.pt")
    loaded = load_supernet(path).eval()
    arch = tiny_space.sample(9)
    image = _image(tiny_space, arch)
    supernet.set_arch(arch)
    loaded.set_arch(arch)
    with torch.no_grad():
        assert torch.equal(supernet(image), loaded(image))
    with pytest.raises(CheckpointError, match="space 'tiny-test', not 'hybrid-tiny'"):
        load_supernet(path, search_spaces.get("hybrid-tiny"))
    (tmp_path / "bad.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_supernet(tmp_path / "bad.pt")


class _FailingModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        raise RuntimeError("export failed half-way")


def test_failed_export_keeps_the_previous_file(tmp_path):
    space = search_spaces.get("hybrid-tiny")
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="half-way"):
        export_onnx(_FailingModel(), space, space.sample(0), target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_supernet_and_extraction_run_on_cuda(tiny_space):
    supernet = _trained_looking(Supernet(tiny_space)).cuda()
    arch = tiny_space.sample(0)
    model = extract(supernet, arch)
    assert next(model.parameters()).is_cuda
    image = _image(tiny_space, arch).cuda()
    supernet.set_arch(arch)
    with torch.no_grad():
        assert (supernet(image) - model(image)).abs().max() <= 1e-4
