"""The end-to-end demo on the embedded default: what ``make demo`` runs.

It is the sequence of ``nas`` commands a user would type, on scikit-learn's digits and the
``hybrid-tiny`` space: train a supernet with CAS+PAS, measure an ONNX Runtime latency profile of
this machine, search under a latency budget, extract the winner to ONNX with its card, then
measure a quick eager-PyTorch profile and write the space's trade-off study on both backends.
Every step writes into the demo folder and resumes when the demo is run again.
"""

from __future__ import annotations

import time
from pathlib import Path

DEMO_SPACE = "hybrid-tiny"


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

    space = TrainedRun.open(run).space
    device = Device.open(profile, space)
    problem = Problem(
        space,
        [Objective("latency", device.latency, maximize=False)],
        [Constraint("latency", device.latency, float("inf"))],
    )
    low, high = problem.constraint_ranges()["latency"]
    return round(low + 0.4 * (high - low), 3)


def run_demo(out: Path, seed: int = 0, epochs: int = 10, evaluations: int = 150) -> Path:
    """Run the pipeline into ``out``; return the path of the exported ONNX model."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run, profile = out / "supernet", out / "onnxruntime_profile.json"
    _step(
        "train a hybrid-tiny supernet on digits with complexity- and performance-aware sampling",
        [
            "train",
            "--space",
            DEMO_SPACE,
            "--data",
            "digits",
            "--epochs",
            str(epochs),
            "--sampler",
            "cas+pas",
            "--seed",
            str(seed),
            "--out",
            str(run),
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
        ],
    )
    budget = _budget(profile, run)
    target = ["--run", str(run), "--device", str(profile), "--latency-ms", str(budget)]
    _step(
        f"search the supernet for the most accurate subnet under {budget} ms",
        ["search", *target, "--algorithm", "evolution", "--name", "demo"]
        + ["--evaluations", str(evaluations), "--seed", str(seed)],
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
        + [str(torch_profile), "--passes", "1", "--min-time-ms", "10", "--seed", str(seed)],
    )
    study = out / "study"
    _step(
        "study the space's trade-offs on both backends with the trained supernet's accuracy",
        ["study", "--space", DEMO_SPACE, "--run", str(run), "--device", str(profile)]
        + ["--device", str(torch_profile), "--out", str(study), "--seed", str(seed)],
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
