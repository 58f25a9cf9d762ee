"""Exported attention with its position bias gathered at run time vs kept as a constant.

The transformer kind's softmax attention (and EfficientViT's cascaded heads) add a learned
relative-position bias, a (heads, (2S-1)^2) table read for every pair of tokens. The deploy step
keeps the gathered (heads, N, N) bias (:mod:`nas.blocks.nn.position_bias`), so exported programs
hold it as a constant; this script times, side by side, random subnets of a space exported both
ways (the same weights; "gathered" is the deployed model with its kept biases dropped), on each
measuring backend: every pass times all models round-robin on one backend (median of the timed
calls), and a figure is the median over passes. It also states the size of the exported files.

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/position_bias.py [--space elasticvit]
        [--resolution 160] [--archs 3] [--backends executorch onnxruntime torch] [--passes 3]
        [--seed 0]

Prints one row per arch and backend (ms gathered, ms constant, ratio) and the median ratio per
backend. The machine may be shared: the figures that compare are the ratios of one run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _forms(space, arch, batch: int, seed: int):
    """(gathered, constant): the model of ``arch`` as exported, with and without its kept
    position biases, and its input."""
    import copy

    from nas.blocks.nn.position_bias import RelativePositionBias
    from predictors.measure import model_runner_inputs

    constant, inputs = model_runner_inputs(space, arch, batch, seed)
    gathered = copy.deepcopy(constant)
    for module in gathered.modules():
        if isinstance(module, RelativePositionBias):
            module.pos_bias = None
    return gathered, constant, inputs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="elasticvit")
    parser.add_argument("--resolution", type=int, default=160)
    parser.add_argument("--archs", type=int, default=3, help="random subnets (default 3)")
    parser.add_argument("--backends", nargs="+", default=["executorch", "onnxruntime", "torch"])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import dataclasses

    import torch

    import search_spaces
    from predictors.backends import TimingProtocol, get_backend, time_runners

    torch.set_num_threads(1)
    space = search_spaces.get(args.space)
    rng = random.Random(args.seed)
    archs = [
        dataclasses.replace(space.sample(rng), resolution=args.resolution)
        for _ in range(args.archs)
    ]
    protocol = TimingProtocol(10, 30, "median", min_time_ms=0.0)
    for name in args.backends:
        backend = get_backend(name, threads=1, batch=1)
        runners, sizes = [], []
        for i, arch in enumerate(archs):
            gathered, constant, inputs = _forms(space, arch, 1, i)
            if name == "executorch":  # lowered once: timed, and its size stated
                from predictors.executorch_backend import program_bytes

                programs = [program_bytes(m, inputs) for m in (gathered, constant)]
                runners += [backend.runner(data, inputs) for data in programs]
                sizes.append([len(data) / 1e6 for data in programs])
            else:
                runners += [backend.prepare(m, inputs) for m in (gathered, constant)]
        per_pass = [
            time_runners(runners, protocol, backend.timing_context()) for _ in range(args.passes)
        ]
        ratios = []
        for i in range(len(archs)):
            ms = [statistics.median(p[2 * i + j].value("median") for p in per_pass) for j in (0, 1)]
            ratios.append(ms[0] / ms[1])
            size = f"  .pte {sizes[i][0]:.1f} -> {sizes[i][1]:.1f} MB" if sizes else ""
            print(
                f"{name:12s} arch {i}: gathered {ms[0]:7.2f} ms  constant {ms[1]:7.2f} ms  "
                f"ratio {ms[0] / ms[1]:.2f}{size}",
                flush=True,
            )
        print(f"{name:12s} median ratio (gathered / constant): {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
