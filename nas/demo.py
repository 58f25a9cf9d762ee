"""The end-to-end demo on the embedded default: what ``make demo`` runs.

It is the sequence of ``nas`` commands a user would type, on scikit-learn's digits and the
``hybrid-tiny`` space: train a supernet with ``nas train``'s default recipe, measure an ONNX
Runtime latency profile of this machine, search under a latency budget, extract the winner to ONNX
with its card, then measure a quick eager-PyTorch profile and write the space's trade-off study on
both backends. Every step writes into the demo folder and resumes when the demo is run again.

The quick demo (``nas demo --quick``, or ``NAS_DEMO_QUICK=1`` in the environment, as in
``NAS_DEMO_QUICK=1 make demo``) runs the same steps at a size for checking that they work: one
epoch on a subset of digits, a profile timed with few repeats on a sample of the kernel
configurations (the others predicted by the per-kind regressors), a dozen searched archs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from nas.train.config import CONFIG_FILE

DEMO_SPACE = "hybrid-tiny"
QUICK_ENV = "NAS_DEMO_QUICK"


@dataclass(frozen=True)
class DemoSize:
    """How big each step of the demo is: epochs, searched archs, and further options of the
    ``nas train``, ``nas device measure`` and ``nas search`` steps."""

    epochs: int
    evaluations: int
    train: tuple[str, ...] = ()
    measure: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    torch_measure: tuple[str, ...] = (
        "--passes", "1", "--min-time-ms", "10", "--min-span-ms", "1000"
    )  # fmt: skip
    study: tuple[str, ...] = ()


FULL = DemoSize(epochs=10, evaluations=150)
QUICK = DemoSize(
    epochs=1,
    evaluations=12,
    train=(
        "--train-limit", "256", "--eval-limit", "100", "--batch-size", "32",
        "--calib-images", "64", "--levels", "3", "--pool-draws", "60", "--pool-size", "10",
        "--no-progress",
    ),
    measure=(
        "--warmup", "1", "--repeats", "3", "--passes", "1", "--min-time-ms", "0",
        "--min-span-ms", "0", "--models", "4", "--max-exact", "0", "--prior-per-kind", "3",
        "--adaptive-rounds", "1", "--adaptive-batch", "8",
    ),
    search=("--batch-size", "6"),
    torch_measure=(
        "--warmup", "1", "--repeats", "2", "--passes", "1", "--min-time-ms", "0",
        "--min-span-ms", "0", "--models", "3", "--max-exact", "0", "--prior-per-kind", "2",
        "--adaptive-rounds", "1", "--adaptive-batch", "8",
    ),
    study=("--n", "24", "--pairs", "3", "--measure", "6", "--importance-archs", "16"),
)  # fmt: skip


def quick_from_environment() -> bool:
    """Whether ``NAS_DEMO_QUICK`` asks for the quick demo (set to anything but '', 0, false)."""
    return os.environ.get(QUICK_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _step(title: str, argv: list[str]) -> None:
    from nas.cli import main

    print(f"\n==> {title}\n    nas {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    code = main(argv)
    if code:
        raise SystemExit(code)
    print(f"    ({time.perf_counter() - start:.0f} s)", flush=True)


def _budget(profile: Path, run: Path) -> float:
    """A budget 40% of the way from the fastest to the slowest arch on the measured device."""
    from nas.deploy import Device
    from nas.search import Problem
    from nas.search.problem import Constraint, Objective
    from nas.trained import TrainedRun

    space = TrainedRun.open(run).declared_space
    device = Device.open(profile, space)
    problem = Problem(
        space,
        [Objective("latency", device.latency, maximize=False)],
        [Constraint("latency", device.latency, float("inf"))],
    )
    low, high = problem.constraint_ranges()["latency"]
    return round(low + 0.4 * (high - low), 3)


def run_demo(
    out: Path,
    seed: int = 0,
    epochs: int | None = None,
    evaluations: int | None = None,
    quick: bool | None = None,
) -> Path:
    """Run the pipeline into ``out``; return the path of the exported ONNX model.

    ``quick`` (default: from ``NAS_DEMO_QUICK``) runs the steps at :data:`QUICK` size;
    ``epochs`` and ``evaluations`` override the size's own."""
    size = QUICK if (quick_from_environment() if quick is None else quick) else FULL
    epochs = size.epochs if epochs is None else epochs
    evaluations = size.evaluations if evaluations is None else evaluations
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run, profile = out / "supernet", out / "onnxruntime_profile.json"
    # A demo folder from an earlier version resumes with the options its run was started with.
    earlier = ["--config", str(run / CONFIG_FILE)] if (run / CONFIG_FILE).is_file() else []
    _step(
        "train a hybrid-tiny supernet on digits (nas train's default recipe)",
        [
            "train",
            *earlier,
            "--space",
            DEMO_SPACE,
            "--data",
            "digits",
            "--epochs",
            str(epochs),
            "--seed",
            str(seed),
            "--out",
            str(run),
            *size.train,
        ],
    )
    _step(
        "measure an ONNX Runtime latency profile of this machine (batch 1, one thread)",
        [
            "device",
            "measure",
            "--backend",
            "onnxruntime",
            "--space",
            DEMO_SPACE,
            "--out",
            str(profile),
            "--seed",
            str(seed),
            *size.measure,
        ],
    )
    budget = _budget(profile, run)
    target = ["--run", str(run), "--device", str(profile), "--latency-ms", str(budget)]
    _step(
        f"search the supernet for the most accurate subnet under {budget} ms",
        ["search", *target, "--name", "demo"]
        + ["--evaluations", str(evaluations), "--seed", str(seed), *size.search],
    )
    model = out / "model.onnx"
    _step(
        "extract the winner to ONNX with BN recalibration, test accuracy and a model card",
        ["extract", *target, "--format", "onnx", "--out", str(model)],
    )
    torch_profile = out / "torch_profile.json"
    _step(
        "measure an eager PyTorch latency profile too (one quick pass), to compare backends",
        ["device", "measure", "--backend", "torch", "--space", DEMO_SPACE, "--out"]
        + [str(torch_profile), "--seed", str(seed), *size.torch_measure],
    )
    study = out / "study"
    _step(
        "study the space's trade-offs on both backends with the trained supernet's accuracy",
        ["study", "--space", DEMO_SPACE, "--run", str(run), "--device", str(profile)]
        + ["--device", str(torch_profile), "--out", str(study), "--seed", str(seed), *size.study],
    )
    search = run / "search" / "demo"
    print(f"\ndemo finished in {(time.perf_counter() - start) / 60:.1f} min")
    print(f"  model:        {model}")
    print(f"  model card:   {model}.card.json")
    print(f"  Pareto plot:  {sorted(search.glob('pareto_*.png'))[0]}")
    print(f"  search:       {search / 'results.json'}")
    print(f"  training run: {run} (metrics.jsonl, best.pt)")
    print(f"  profiles:     {profile}, {torch_profile}")
    print(f"  study:        {study / 'report.html'}")
    return model
