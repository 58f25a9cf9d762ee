"""Which blocks to keep in float: a per-block int8 sensitivity pass and a greedy choice.

Hybrid models do not quantize evenly (Q-HyViT: attention blocks, their normalisations and the
blocks bridging convolution and attention lose most). :func:`keep_float` measures the
validation accuracy of the model with everything in int8 and, quantizing one block at a time,
each block's own drop (the report); if the whole model drops more than ``max_drop`` points below
fp32, it keeps blocks in float, most sensitive first, re-measuring the whole model each time,
until the drop is at most ``max_drop`` (or every block is float). :func:`plot` draws the per-block drops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.export.base import Candidate, Quantizer

#: Accuracy (0..1) of a candidate on the selection split.
Evaluate = Callable[[Candidate], float]


@dataclass
class Sensitivity:
    """The outcome of :func:`keep_float` (accuracies 0..1, drops in points)."""

    fp32: float
    all_int8: float
    max_drop: float
    blocks: list[dict[str, Any]] = field(default_factory=list)  # name, kind, drop (pass order)
    steps: list[dict[str, Any]] = field(default_factory=list)  # float blocks -> accuracy
    float_blocks: list[str] = field(default_factory=list)
    final: float = 0.0

    def quantized_blocks(self, names: Sequence[str]) -> list[str] | None:
        """The blocks to quantize (None: all)."""
        if not self.float_blocks:
            return None
        return [n for n in names if n not in self.float_blocks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "selection_split": "val",
            "fp32_top1": self.fp32,
            "all_int8_top1": self.all_int8,
            "max_drop_points": self.max_drop,
            "per_block": self.blocks,
            "steps": self.steps,
            "float_blocks": self.float_blocks,
            "final_top1": self.final,
            "final_drop_points": 100 * (self.fp32 - self.final),
        }


def keep_float(
    quantizer: Quantizer,
    blocks: Sequence[tuple[str, str]],
    evaluate: Evaluate,
    fp32: float,
    max_drop: float,
    progress: bool = True,
) -> Sensitivity:
    """Choose float blocks (see the module docstring). ``blocks``: (name, kind) in model order;
    ``max_drop`` in accuracy points (0..100)."""
    from tqdm import tqdm

    names = [name for name, _ in blocks]
    full = evaluate(quantizer.quantize(None))
    result = Sensitivity(fp32, full, max_drop, final=full)
    result.steps.append({"float_blocks": [], "top1": full})
    bar = tqdm(blocks, desc="int8 sensitivity", unit="block", disable=not progress, leave=False)
    for name, kind in bar:
        top1 = evaluate(quantizer.quantize([name]))
        result.blocks.append({"block": name, "kind": kind, "drop_points": 100 * (fp32 - top1)})
    bar.close()
    if 100 * (fp32 - full) <= max_drop:
        return result
    order = sorted(result.blocks, key=lambda b: -b["drop_points"])
    for entry in order:
        result.float_blocks.append(entry["block"])
        remaining = [n for n in names if n not in result.float_blocks]
        top1 = evaluate(quantizer.quantize(remaining)) if remaining else fp32
        result.steps.append({"float_blocks": list(result.float_blocks), "top1": top1})
        result.final = top1
        if 100 * (fp32 - top1) <= max_drop:
            break
    return result


def plot(result: Sensitivity, path: Path, title: str) -> Path | None:
    """Bar chart of each block's drop when quantized alone; float-kept blocks hatched."""
    if not result.blocks:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.runs import replace_atomic

    labels = [f"{b['block']}: {b['kind']}" for b in result.blocks]
    drops = [b["drop_points"] for b in result.blocks]
    kept = [b["block"] in result.float_blocks for b in result.blocks]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(labels) + 2), 4.5))
    bars = ax.bar(range(len(labels)), drops, color=["tab:red" if k else "tab:blue" for k in kept])
    for bar, k in zip(bars, kept, strict=True):
        if k:
            bar.set_hatch("//")
    ax.axhline(result.max_drop, color="grey", linestyle="--", label=f"max drop {result.max_drop:g}")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("val top-1 drop, only this block int8 (points)")
    ax.set_title(
        f"{title}\nall int8: {100 * (result.fp32 - result.all_int8):.2f} points; "
        f"{len(result.float_blocks)} block(s) kept float (red): "
        f"{100 * (result.fp32 - result.final):.2f} points",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    replace_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path
