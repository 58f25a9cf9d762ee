"""Cost of training and running a subnet inside the supernet vs as an extracted model.

For random archs of each space (resolutions 128-160, batch 16) it times a training step
(forward + backward) and an inference pass of the supernet with the arch set and of the extracted
model, interleaving the two so machine noise hits both alike, and prints per-arch and median
ratios (supernet / extracted). Target: training-step ratio <= 1.10.

    python benchmarks/extract_overhead.py [--archs 10] [--batch 16] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import time

import torch
from torch import nn

import search_spaces
from nas.extract import extract
from nas.supernet import Supernet

RESOLUTIONS = {"ofa-mbv3": (128, 144, 160), "elasticvit": (128, 160)}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _train_step(model: nn.Module, image: torch.Tensor, labels: torch.Tensor, device: str) -> float:
    start = time.perf_counter()
    loss = nn.functional.cross_entropy(model(image), labels)
    loss.backward()
    _sync(device)
    elapsed = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return elapsed


def _inference(model: nn.Module, image: torch.Tensor, device: str) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        model(image)
    _sync(device)
    return time.perf_counter() - start


def _time_pair(supernet, model, image, labels, repeats: int, device: str):
    """Median (train, inference) seconds of supernet and extracted model, interleaved."""
    times = {key: [] for key in ("super_train", "ext_train", "super_infer", "ext_infer")}
    supernet.train()
    model.train()
    _train_step(supernet, image, labels, device)  # warm-up
    _train_step(model, image, labels, device)
    for _ in range(repeats):
        times["super_train"].append(_train_step(supernet, image, labels, device))
        times["ext_train"].append(_train_step(model, image, labels, device))
    supernet.eval()
    model.eval()
    _inference(supernet, image, device)
    _inference(model, image, device)
    for _ in range(repeats):
        times["super_infer"].append(_inference(supernet, image, device))
        times["ext_infer"].append(_inference(model, image, device))
    return {key: statistics.median(values) for key, values in times.items()}


def run(space_name: str, archs: int, batch: int, repeats: int, device: str, seed: int) -> dict:
    space = search_spaces.get(space_name)
    torch.manual_seed(seed)
    supernet = Supernet(space).to(device)
    rng = random.Random(seed)
    train_ratios, infer_ratios = [], []
    print(f"\n{space_name}: {archs} archs, batch {batch}, {repeats} timed repeats, {device}")
    print(
        f"{'res':>4} {'super train':>12} {'ext train':>10} {'ratio':>6} "
        f"{'super infer':>12} {'ext infer':>10} {'ratio':>6}"
    )
    for _ in range(archs):
        arch = dataclasses.replace(
            space.sample(rng), resolution=rng.choice(RESOLUTIONS[space_name])
        )
        supernet.set_arch(arch)
        model = extract(supernet, arch)
        image = torch.randn(
            batch, space.in_channels, arch.resolution, arch.resolution, device=device
        )
        labels = torch.randint(0, space.num_classes, (batch,), device=device)
        t = _time_pair(supernet, model, image, labels, repeats, device)
        train_ratios.append(t["super_train"] / t["ext_train"])
        infer_ratios.append(t["super_infer"] / t["ext_infer"])
        print(
            f"{arch.resolution:>4} {t['super_train'] * 1e3:>10.1f}ms {t['ext_train'] * 1e3:>8.1f}ms "
            f"{train_ratios[-1]:>6.3f} {t['super_infer'] * 1e3:>10.1f}ms "
            f"{t['ext_infer'] * 1e3:>8.1f}ms {infer_ratios[-1]:>6.3f}"
        )
    summary = {
        "train": statistics.median(train_ratios),
        "infer": statistics.median(infer_ratios),
    }
    print(
        f"median supernet/extracted: training step {summary['train']:.3f}x, "
        f"inference {summary['infer']:.3f}x"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spaces", nargs="+", default=list(RESOLUTIONS), choices=list(RESOLUTIONS))
    parser.add_argument("--archs", type=int, default=10, help="random archs per space")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per arch")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = {
        name: run(name, args.archs, args.batch, args.repeats, args.device, args.seed)
        for name in args.spaces
    }
    print("\nsummary (median ratio supernet / extracted; target training step <= 1.10):")
    for name, r in results.items():
        verdict = "meets" if r["train"] <= 1.10 else "misses"
        print(
            f"  {name:12s} training step {r['train']:.3f}x ({verdict} target), "
            f"inference {r['infer']:.3f}x"
        )


if __name__ == "__main__":
    main()
