"""The learned relative-position bias of the attentions that add one (softmax in the transformer
kind and in EfficientViT's cascaded heads): exported models hold the gathered bias as a constant
(ExecuTorch ran the gather on a portable kernel: ``elasticvit`` subnets at 160 px ran 1.5-1.9x
slower with it), and the kept bias follows the weights wherever they change."""

from __future__ import annotations

import pytest
import torch

from nas.blocks import block_kind, block_kinds
from nas.blocks.nn import build_model, deployed
from nas.extract import extract, load_model, save_model
from nas.space import SearchSpace
from nas.supernet import Supernet
from predictors.kernels import KernelSpec
from predictors.modules import kernel_module
from tests.conftest import trained_looking


def _example(role: str) -> dict:
    return dict(next(k for k in block_kinds(role) if k.example is not None).example)


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    """A transformer stage and an EfficientViT (MSRA) stage, both with softmax attention."""
    transformer = {**block_kind("transformer").example, "attentions": ["softmax"]}
    msra = {**block_kind("efficientvit_msra").example, "attentions": ["softmax"]}
    msra = {k: v for k, v in msra.items() if k not in ("blocks", "per_layer")}
    return SearchSpace.from_dict(
        {
            "name": "biased",
            "in_channels": 3,
            "num_classes": 4,
            "resolutions": [16],
            "stem": _example("stem"),
            "stages": [transformer, {**msra, "kind": "efficientvit_msra"}],
            "head": _example("head"),
        }
    )


@pytest.fixture(scope="module")
def supernet(space):
    torch.manual_seed(0)
    return trained_looking(Supernet(space))  # random position tables, as training leaves them


def _ops(model: torch.nn.Module, *inputs: torch.Tensor) -> set[str]:
    graph = torch.export.export(model, inputs).graph
    return {str(node.target) for node in graph.nodes if node.op == "call_function"}


def test_an_exported_model_holds_its_position_biases_as_constants(space, supernet):
    arch = space.max_arch()
    image = torch.randn(1, 3, 16, 16)
    model = extract(supernet, arch).eval()
    assert any(op.startswith("aten.index") for op in _ops(model, image))  # gathered while trained
    supernet.set_arch(arch)
    with torch.no_grad():
        expected = supernet(image)
        exported = deployed(model, space, arch)
        assert not any(op.startswith("aten.index") for op in _ops(exported, image))
        assert (exported(image) - expected).abs().max() <= 1e-5


def test_the_kept_bias_follows_the_weights(space, supernet, tmp_path):
    arch = space.max_arch()
    image = torch.randn(2, 3, 16, 16)
    model = deployed(extract(supernet, arch).eval(), space, arch)
    with torch.no_grad():
        expected = model(image)
        # loading weights into a deployed model (what load_model does) gathers them again
        loaded, _, _ = load_model(save_model(model, space, arch, tmp_path / "model.pt"))
        assert (loaded(image) - expected).abs().max() <= 1e-6
        fresh = deployed(build_model(space, arch), space, arch).eval()
        fresh.load_state_dict(model.state_dict())
        assert (fresh(image) - expected).abs().max() <= 1e-6
        # training a deployed model reaches its tables, and eval mode then uses what it learned
        model.train()
        for module in model.modules():
            if getattr(module, "pos_table", None) is not None:
                module.pos_table.add_(torch.randn_like(module.pos_table))
        changed = model.eval()(image)
        assert (changed - expected).abs().max() > 1e-3
        assert (changed - _rebuilt(model, space, arch)(image)).abs().max() <= 1e-6


def _rebuilt(model, space, arch):
    """A model freshly built and loaded with ``model``'s weights (never deployed before)."""
    copy = build_model(space, arch)
    copy.load_state_dict(model.state_dict())
    return copy.eval()


def test_attention_kernels_are_timed_as_exported():
    spec = KernelSpec.make(
        "attn-softmax", {"heads": 2, "head_dim": 4, "v_dim": 4, "side": 3, "tokens": 9}
    )
    module, inputs = kernel_module(spec)
    assert not any(op.startswith("aten.index") for op in _ops(module, *inputs))
