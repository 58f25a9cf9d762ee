"""Figures of the study: matplotlib without a display, one look for all, saved atomically."""

from __future__ import annotations

import textwrap
from pathlib import Path

from nas.runs import replace_atomic

DPI = 100


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 9,
            "axes.titlesize": 9,
            "axes.labelsize": 9,
            "legend.fontsize": 8,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt


def save(fig, path: Path, layout: bool = True) -> Path:
    """Write ``fig`` as PNG to ``path`` and close it (``layout``: tighten it first)."""
    plt = pyplot()
    if layout:
        fig.tight_layout()
    replace_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    plt.close(fig)
    return path


def wrap(text: str, width: int = 34) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def colours(n: int) -> list:
    """``n`` distinguishable colours."""
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def log_axes(ax) -> None:
    """Both axes on a log scale, ticks labelled as plain numbers (1, 2, 5, 10, 20, ...)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    label = FuncFormatter(lambda v, _: f"{v:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(label)
        axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
