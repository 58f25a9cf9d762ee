"""Latency predictor benchmark: prediction speed, end-to-end validation, published subnets.

1. Speed: archs/s of the vectorised ``predict`` for ``elasticvit`` on one core (target >= 100,000),
   with the profile's load and compile times.
2. Validation: for each case (space at one resolution) and backend, a profile is measured here
   (``nas device measure``; resumed if a previous run was killed, reused when complete) and
   validated on N random subnets timed end to end (``nas device validate``), at batch 1 and one
   thread. Targets: >= 99% of subnets within +-10% on onnxruntime, >= 95% on torch.
3. The Note10 table's profile on OFA's eight published ``note10_lat-*`` subnets (when the shared
   data folder is present), each at the input resolution its published MAC count implies.

    python benchmarks/latency_predictor.py [--n 100] [--backends onnxruntime torch]
        [--cases hybrid-tiny:32 elasticvit:160] [--out runs/latency-bench] [--speed-only]

Profiles and reports go to ``--out`` (one ``{space}-{res}-{backend}.json`` and report folder each).
Every subnet is measured twice; "repeat 10%" is the share of subnets whose two measurements agree
within 10%, the ceiling for "within 10%" on this machine at this time. The profile's calibration
subnets are timed again among the validation subnets and the overhead term refitted on them
(``--recalibrate``, a correction for drift between sessions); figures without it are shown too.
Each measuring and each validating step runs in a fresh process, as the commands do. On a shared
machine the figures move with the load of other processes: run it on an idle one.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import random
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import search_spaces
from nas.space import SearchSpace
from predictors.latency import LatencyPredictor
from predictors.measure import MeasurementJob, MeasureSettings
from predictors.profile import DeviceProfile
from predictors.validate import validate

TARGETS = {"onnxruntime": 0.99, "torch": 0.95}


def shared_data() -> Path | None:
    here = Path(__file__).resolve().parents[1]
    folder = Path(os.environ.get("NAS_SHARED_DATA") or here.parent / "shared" / "data")
    return folder if folder.is_dir() else None


def speed(profile_path: Path, space: SearchSpace, n: int = 100_000) -> dict[str, float]:
    start = time.perf_counter()
    predictor = LatencyPredictor.load(profile_path, space)
    loaded = time.perf_counter() - start
    compiled = predictor.compile()
    rng = random.Random(0)
    allowed = list(predictor.resolutions)
    archs = [
        dataclasses.replace(space.sample(rng), resolution=rng.choice(allowed)) for _ in range(n)
    ]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        predictor.predict(archs)
        best = min(best, time.perf_counter() - start)
    return {"load_s": loaded, "compile_s": compiled, "archs_per_s": n / best}


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr)


def measure(space_name: str, resolution: int, backend: str, out: Path) -> Path:
    """``nas device measure`` for one case (resumed, or reused when complete)."""
    path = out / f"{space_name}-{resolution}-{backend}.json"
    settings = MeasureSettings(backend=backend, resolutions=(resolution,))
    MeasurementJob(search_spaces.get(space_name), path, settings, log=log).run()
    return path


def validate_profile(path: Path, space_name: str, resolution: int, n: int, out: Path) -> dict:
    """``nas device validate --repeatability --recalibrate`` for one profile."""
    predictor = LatencyPredictor.load(path, search_spaces.get(space_name))
    return validate(
        predictor, n, out, seed=1, resolutions=[resolution], repeatability=True, recalibrate=True
    )


def in_fresh_process(function, *args):
    """Run one step in a new interpreter, as the commands run one after another: timings then
    owe nothing to what an earlier step left in this process's memory."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def note10_subnets(folder: Path) -> list[dict]:
    """OFA's Note10 subnets, each at the resolution its published MAC count implies."""
    from predictors.tables import import_table
    from search_spaces.ofa import NOTE10_SUBNET_MACS, arch_from_ofa_net_config, resolution_for_macs

    profile = import_table("note10", folder)
    rows = []
    paths = sorted(
        folder.glob("specialized/note10_lat-*/net.config"),
        key=lambda p: int(re.search(r"lat-(\d+)ms", str(p)).group(1)),
    )
    for path in paths:
        name = path.parent.name
        macs = NOTE10_SUBNET_MACS[name.replace("-", "@")]
        arch = arch_from_ofa_net_config(path)
        resolution = resolution_for_macs(arch, macs)
        arch = dataclasses.replace(arch, resolution=resolution)
        space = dataclasses.replace(search_spaces.get(arch.space), resolutions=(resolution,))
        predictor = LatencyPredictor.from_profile(profile, space, allow_other_space=True)
        rows.append(
            {
                "name": name,
                "space": arch.space,
                "ms": float(re.search(r"lat-(\d+)ms", name).group(1)),
                "macs": macs,
                "resolution": resolution,
                "predicted": float(predictor.predict([arch])[0]),
                "regressed": bool(predictor.regressed([arch])[0]),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="validation subnets (default 100)")
    parser.add_argument("--backends", nargs="+", default=["onnxruntime", "torch"])
    parser.add_argument("--cases", nargs="+", default=["hybrid-tiny:32", "elasticvit:160"])
    parser.add_argument("--out", default="runs/latency-bench", help="profiles and reports")
    parser.add_argument("--speed-only", action="store_true", help="skip measuring and validating")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    data = shared_data()
    elasticvit = search_spaces.get("elasticvit")
    print("== prediction speed (one process, numpy on one core) ==")
    profiles = []
    if data is not None:
        from predictors.tables import import_table

        table = out / "pixel4-elasticvit.json"
        import_table("pixel4", data / "pixel4_elasticvit" / "pixel4_lut.json").save(table)
        profiles.append(("Pixel 4 table", table, elasticvit))
    for backend in args.backends:
        path = out / f"elasticvit-160-{backend}.json"
        if path.exists() and DeviceProfile.load(path).complete:
            profiles.append((f"measured {backend}, 160", path, elasticvit))
    for label, path, space in profiles:
        s = speed(path, space)
        print(
            f"elasticvit, {label}: {s['archs_per_s']:,.0f} archs/s "
            f"(load {s['load_s']:.2f} s, compile {s['compile_s']:.2f} s)"
        )
    if not profiles:
        print("no elasticvit profile yet (no shared data, nothing measured)")

    rows = []
    if not args.speed_only:
        print("\n== validation (batch 1, one thread) ==")
        for case in args.cases:
            name, _, res = case.partition(":")
            space = search_spaces.get(name)
            resolution = int(res) if res else max(space.resolutions)
            for backend in args.backends:
                print(f"{name} at {resolution} on {backend}: measuring profile", file=sys.stderr)
                start = time.perf_counter()
                path = in_fresh_process(measure, name, resolution, backend, out)
                measured = time.perf_counter() - start
                predictor = LatencyPredictor.load(path, space)
                report = in_fresh_process(
                    validate_profile, path, name, resolution, args.n, out / f"validate-{path.stem}"
                )
                m = report["metrics"]
                m["repeat_10pct"] = report["repeatability"]["within_10pct"]
                m["plain"] = report["metrics_without_recalibration"]
                rows.append((name, resolution, backend, m, measured, predictor))
        print(
            "\nPredictions with the overhead term refitted on the profile's calibration subnets "
            "timed alongside (drift correction); in brackets, with the profile's own fit. "
            "'repeat 10%': share of subnets whose two measurements agree within 10%."
        )
        print(
            "| space | res | backend | n | RMSE ms | MAPE % | within 5% | within 10% "
            "| Spearman | target | met | repeat 10% |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, resolution, backend, m, _, _ in rows:
            target = TARGETS[backend]
            p = m["plain"]
            print(
                f"| {name} | {resolution} | {backend} | {m['n']} | {m['rmse_ms']:.4f} "
                f"({p['rmse_ms']:.4f}) | {m['mape_pct']:.2f} ({p['mape_pct']:.2f}) | "
                f"{m['within_5pct']:.1%} ({p['within_5pct']:.1%}) | {m['within_10pct']:.1%} "
                f"({p['within_10pct']:.1%}) | {m['spearman']:.4f} | >= {target:.0%} | "
                f"{'yes' if m['within_10pct'] >= target else 'no'} | {m['repeat_10pct']:.1%} |"
            )
        for name, resolution, backend, _, measured, predictor in rows:
            o = predictor.overhead
            print(
                f"{name}@{resolution} {backend}: {len(predictor.profile.kernels)} kernels "
                f"(measure step {measured:.0f} s this run); profile overhead terms "
                f"{', '.join(o.terms)}: scale {o.scale:.3f}, {o.per_kernel * 1000:.2f} us/kernel, "
                f"{o.per_mparam * 1000:.1f} us/M params, {o.per_minput * 1000:.1f} us/M conv inputs, "
                f"constant {o.constant * 1000:.1f} us"
            )

    if data is not None:
        print("\n== OFA's published Note10 subnets with the Note10 table's profile ==")
        print(
            "Each at the resolution whose MAC count is closest to OFA's published one (its "
            "net.config has none); 'regressed': some blocks are not in the tables (width 1.0, "
            "or a resolution between or beyond them)."
        )
        print(
            "| subnet | space | MACs (published) | resolution | predicted ms | error | regressed |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in note10_subnets(data / "ofa_note10"):
            print(
                f"| {r['name']} | {r['space']} | {r['macs']}M | {r['resolution']} | "
                f"{r['predicted']:.2f} | {(r['predicted'] / r['ms'] - 1) * 100:+.1f}% | "
                f"{'yes' if r['regressed'] else 'no'} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
