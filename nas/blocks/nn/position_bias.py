"""The learned relative-position bias of attention (LeViT, EfficientViT, ElasticViT): a table of
one value per head and (dy, dx) offset, read for every pair of tokens.

Gathered from its table on every call, the bias is an indexing op in an exported program, and
ExecuTorch runs it on a portable kernel rather than XNNPACK: ``elasticvit`` subnets at 160 px
ran 1.5-1.9x slower with it (``benchmarks/position_bias.py``). As the papers' own code does in eval mode, the deploy step keeps
the gathered bias (:func:`freeze_position_biases`), so exported programs hold it as a constant.
"""

from __future__ import annotations

import torch
from torch import nn


def relative_position_index(side: int, table_side: int | None = None) -> torch.Tensor:
    """(N, N) indices into a (2S-1)^2 table of offsets, for a ``side`` x ``side`` token grid."""
    table_side = table_side or side
    steps = torch.arange(side, device="cpu")  # also when models are built on the meta device
    ys, xs = torch.meshgrid(steps, steps, indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, N)
    offsets = coords[:, :, None] - coords[:, None, :] + (table_side - 1)
    return offsets[0] * (2 * table_side - 1) + offsets[1]


class RelativePositionBias(nn.Module):
    """Base of an attention with a position bias: a ``pos_table`` parameter (heads, (2S-1)^2), or
    None when its attention kind adds no bias, and a ``pos_index`` buffer (N, N).

    :meth:`position_bias` gathers the (heads, N, N) bias on each call, so that training reaches
    the table, until :meth:`freeze_position_bias` keeps it: from then on an eval-mode call returns
    the kept tensor. It follows the table: it is gathered again when weights are loaded and when
    the module is put back in eval mode.
    """

    def init_position_bias(self, heads: int, side: int) -> None:
        self.pos_table = nn.Parameter(torch.zeros(heads, (2 * side - 1) ** 2))
        self.register_buffer("pos_index", relative_position_index(side), persistent=False)
        self.register_buffer("pos_bias", None, persistent=False)
        self.register_load_state_dict_post_hook(_refresh)

    def position_bias(self) -> torch.Tensor:
        if self.pos_bias is not None and not self.training:
            return self.pos_bias
        return self.pos_table[:, self.pos_index]

    def freeze_position_bias(self) -> None:
        if self.pos_table is not None:
            with torch.no_grad():
                self.pos_bias = self.pos_table[:, self.pos_index].clone()

    def train(self, mode: bool = True):
        super().train(mode)
        if not mode and getattr(self, "pos_bias", None) is not None:
            self.freeze_position_bias()
        return self


def _refresh(module: RelativePositionBias, incompatible_keys) -> None:
    if module.pos_bias is not None:
        module.freeze_position_bias()


def freeze_position_biases(model: nn.Module) -> nn.Module:
    """``model`` with the position bias of each of its attentions kept (in place; returned)."""
    for module in model.modules():
        if isinstance(module, RelativePositionBias):
            module.freeze_position_bias()
    return model
