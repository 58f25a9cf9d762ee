"""Every block kind of the built-in spaces exports to every deployment format and runs there.

``tests/spaces/deploy_kinds.yaml`` holds one small block of every kind the built-in spaces use
(stem with its depthwise-separable layer, MBConv with ReLU and Hardswish and squeeze-excite,
softmax and ReLU-linear attention, head); one arch of it has them all. Each format writes it,
its runtime runs it here, and the logits match PyTorch's; formats with an int8 path quantize it
and the int8 file runs too. The phone runtimes' lowering takes a minute or more each on two
cores, and ONNX Runtime's int8 quantization of every kind at once a minute: those are marked slow
(``make test-all``), and the default run quantizes a sample of the kinds to ONNX.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas.export import get_format
from nas.export.base import run_batched
from nas.export.kinds import block_kinds
from nas.extract import example_input, extract
from nas.space import SearchSpace
from nas.supernet import Supernet

SPACE_FILE = Path(__file__).parent / "spaces" / "deploy_kinds.yaml"
FAST = ["onnx", "torchscript", "pt"]
PHONE = ["executorch", "tflite"]
FORMATS = [*FAST, *[pytest.param(f, marks=pytest.mark.slow) for f in PHONE]]


@pytest.fixture(scope="module")
def model():
    space = SearchSpace.from_yaml(SPACE_FILE)
    torch.manual_seed(0)
    arch = space.max_arch()
    return space, arch, extract(Supernet(space).eval(), arch).eval()


def _split_activation(kind: str) -> tuple[str, str | None]:
    """(the kind without its activation, e.g. ``RepViT +SE``; the activation, or None)."""
    from nas.grammar import ACTIVATIONS

    *rest, last = kind.split()
    activation, se = last.removesuffix("+SE"), last.endswith("+SE")
    if activation not in ACTIVATIONS:
        return kind, None
    return " ".join([*rest, *(["+SE"] if se else [])]), activation


def test_the_kinds_space_holds_every_block_kind_of_the_built_in_spaces(model):
    """Every block kind (type, attention kind, squeeze-excite) of the built-in spaces, and every
    activation they use (a space has one stem and one head, so not every pairing of the two)."""
    import search_spaces

    space, arch, _ = model
    ours = {_split_activation(kind) for _, kind in block_kinds(space, arch)}
    theirs = set()
    for name in search_spaces.names():
        built_in = search_spaces.get(name)
        for seed in range(20):
            theirs |= {
                _split_activation(kind) for _, kind in block_kinds(built_in, built_in.sample(seed))
            }
    missing = {kind for kind, _ in theirs} - {kind for kind, _ in ours}
    assert not missing, f"kinds missing from {SPACE_FILE.name}: {sorted(missing)}"
    missing = {act for _, act in theirs} - {act for _, act in ours}
    assert not missing, f"activations missing from {SPACE_FILE.name}: {sorted(missing)}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_block_kind_exports_and_runs_in_every_format(fmt, model, tmp_path):
    space, arch, net = model
    fmt_ = get_format(fmt)
    x = example_input(space, arch, batch=1)
    path = fmt_.write(
        net, x, tmp_path / f"m{fmt_.suffix}", None, meta={"space": space, "arch": arch}
    )
    loaded = fmt_.load(path, threads=1)
    images = _images(x)
    with torch.no_grad():
        expected = net(torch.from_numpy(images)).numpy()
    assert np.abs(run_batched(loaded, images) - expected).max() < 1e-4


def _images(x: torch.Tensor) -> np.ndarray:
    return torch.randn(3, *x.shape[1:], generator=torch.Generator().manual_seed(1)).numpy()


#: The first block of every fourth kind of the kinds space: ONNX Runtime's quantizer takes time
#: quadratic in the graph's nodes (a minute for every kind at once on two cores), so the default
#: run quantizes this sample and ``make test-all`` every kind.
SAMPLE_STAGES = slice(0, None, 4)

INT8 = [
    pytest.param("onnx", "sample", id="onnx-sample-of-kinds"),
    *[
        pytest.param(f, "all", marks=pytest.mark.slow, id=f"{f}-every-kind")
        for f in ["onnx", *PHONE]
    ],
]


@pytest.mark.parametrize(("fmt", "kinds"), INT8)
def test_int8_export_of_the_block_kinds_runs(fmt, kinds, model, tmp_path):
    space, arch, net = model
    if kinds == "sample":
        config = space.to_dict()
        space = SearchSpace.from_dict({**config, "stages": config["stages"][SAMPLE_STAGES]})
        torch.manual_seed(0)
        arch = space.max_arch()
        net = extract(Supernet(space).eval(), arch).eval()
    fmt_ = get_format(fmt)
    x = example_input(space, arch, batch=1)
    calibration = torch.randn(8, *x.shape[1:], generator=torch.Generator().manual_seed(2))
    candidate = fmt_.quantizer(net, x, calibration).quantize(None)
    int8 = fmt_.load(candidate.write(tmp_path / f"int8{fmt_.suffix}", x), threads=1)
    images = _images(x)
    with torch.no_grad():
        expected = net(torch.from_numpy(images)).numpy()
    logits = run_batched(int8, images)
    assert logits.shape == expected.shape and np.isfinite(logits).all()
    assert np.abs(logits - expected).max() < 0.5 * np.abs(expected).max() + 0.1


@pytest.mark.parametrize("fmt", PHONE)
def test_a_small_conv_model_runs_on_the_phone_runtimes_here(fmt, tmp_path):
    """The phone formats' whole path (write, load, run, int8) on a model XNNPACK takes in one
    piece, fast enough for every run of the suite. Its map is cut into EfficientViT's local
    windows, padded to whole windows: that padding must lower to XNNPACK in int8 too (an int8
    ``F.pad`` is refused when an ExecuTorch program loads: "Failed to create
    StaticConstantPad")."""
    from torch import nn

    from nas.blocks.nn.windows import WindowMerge, WindowPartition

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        WindowPartition(3),  # 8 x 8 padded to 9 x 9: 9 windows
        nn.Conv2d(4, 4, 1),
        WindowMerge(8),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()
    fmt_ = get_format(fmt)
    x = torch.randn(1, 1, 8, 8)
    loaded = fmt_.load(fmt_.write(net, x, tmp_path / f"m{fmt_.suffix}", 2), threads=1)
    assert loaded.batch == 2
    images = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net(images).numpy()
    assert np.abs(run_batched(loaded, images.numpy()) - expected).max() < 1e-5
    candidate = fmt_.quantizer(net, x, torch.randn(16, 1, 8, 8)).quantize(None)
    int8 = fmt_.load(candidate.write(tmp_path / f"int8{fmt_.suffix}", x), threads=1)
    logits = run_batched(int8, images.numpy())
    assert np.abs(logits - expected).max() < 0.5 * np.abs(expected).max() + 0.1
    if fmt == "tflite":  # a fully int8 file: the card's integer input and output fields
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(tmp_path / "int8.tflite"))
        for name, (details,) in (
            ("input", interpreter.get_input_details()),
            ("output", interpreter.get_output_details()),
        ):
            fields = int8.integer_io().get(name)
            if details["dtype"] == np.float32:
                assert fields is None
            else:
                scale, zero = details["quantization"]
                assert fields["dtype"] == np.dtype(details["dtype"]).name
                assert fields["quantization"]["scale"] == pytest.approx(scale)
                assert fields["quantization"]["zero_point"] == zero
