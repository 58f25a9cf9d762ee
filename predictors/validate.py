"""End-to-end validation of a device profile: predicted vs measured latency of random subnets.

``validate(predictor, n)`` draws ``n`` random subnets (at the profile's resolutions unless told
otherwise), times each end to end on the profile's backend with the profile's protocol
(round-robin chunks, passes), and reports RMSE, MAPE, the share of subnets within +-5% and +-10%,
Spearman's rank correlation, and writes ``report.json``, ``subnets.csv`` and ``scatter.png`` into
the output folder.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import random
import shutil
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from nas.arch import Arch
from nas.errors import InputError
from nas.runs import replace_atomic, write_atomic
from predictors.backends import (
    ChunkSizer,
    TimingProtocol,
    convert_ahead,
    get_backend,
    time_modules,
)
from predictors.latency import LatencyPredictor
from predictors.measure import MOST_MODELS, model_runner_inputs

#: Subfolder of the report folder that holds converted subnets until the report is written.
CONVERSIONS = "conversions"


class ValidationError(InputError):
    """The profile cannot be validated on this machine (a phone or a published table)."""


def metrics(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """RMSE (ms), MAPE (%), shares within +-5% / +-10%, Spearman, bias (%), worst error (%)."""
    rel = (predicted - measured) / measured
    return {
        "n": int(len(measured)),
        "rmse_ms": float(np.sqrt(np.mean((predicted - measured) ** 2))),
        "mape_pct": float(np.mean(np.abs(rel)) * 100),
        "within_5pct": float(np.mean(np.abs(rel) <= 0.05)),
        "within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
        "spearman": spearman(predicted, measured),
        "bias_pct": float(np.mean(rel) * 100),
        "max_error_pct": float(np.max(np.abs(rel)) * 100) if len(rel) else 0.0,
    }


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    if len(a) < 2:
        return float("nan")
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 0, tied values sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    starts = np.r_[0, np.flatnonzero(np.diff(values[order])) + 1]
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    return ranks


def validation_archs(
    predictor: LatencyPredictor, n: int, seed: int, resolutions: Sequence[int] | None
) -> list[Arch]:
    space = predictor.space
    allowed = list(
        resolutions or predictor.profile.settings.get("resolutions") or space.resolutions
    )
    rng = random.Random(seed)
    return [
        dataclasses.replace(space.sample(rng), resolution=rng.choice(allowed)) for _ in range(n)
    ]


def measure_archs(
    predictor: LatencyPredictor,
    archs: Sequence[Arch],
    chunk: int = 8,
    progress: bool = True,
    seed: int = 0,
    backend=None,
    jobs: int = 1,
) -> np.ndarray:
    """End-to-end times (ms) of ``archs`` on the profile's backend with the profile's protocol
    (every arch converted first, by ``jobs`` worker processes where the backend converts slowly:
    nothing is timed while they run)."""
    from tqdm import tqdm

    profile = predictor.profile
    settings = profile.settings
    backend = backend or profile_backend(predictor)
    protocol = TimingProtocol(  # profiles from before rewarm and min_span_ms: as they were timed
        int(settings.get("warmup", 10)),
        int(settings.get("repeats", 30)),
        profile.statistic,
        float(settings.get("min_time_ms", 10.0)),
        rewarm=bool(settings.get("rewarm", False)),
        min_span_ms=float(settings.get("min_span_ms", 0.0)),
    )
    passes = int(settings.get("passes", 1))
    modules = [
        (
            conversion_key(i, arch),
            partial(model_runner_inputs, predictor.space, arch, backend.batch, seed + i),
        )
        for i, arch in enumerate(archs)
    ]
    convert_ahead(backend, modules, jobs, progress)
    best = np.full(len(archs), np.inf)
    bar = tqdm(total=len(archs) * passes, desc="subnets", disable=not progress, leave=False)
    for p in range(passes):
        order = list(range(len(archs)))
        random.Random(seed * 1000 + p).shuffle(order)
        sizer = ChunkSizer(protocol, chunk, MOST_MODELS)
        for part in sizer.chunks(order):
            timings = time_modules(backend, [modules[i] for i in part], protocol)
            sizer.update(timings)
            for i, timing in zip(part, timings, strict=True):
                best[i] = min(best[i], timing.value(profile.statistic))
            bar.update(len(part))
    bar.close()
    return best


def conversion_key(index: int, arch: Arch) -> str:
    """The key a subnet's conversion is cached under (its place in the timed list and its arch)."""
    return f"validate:{index}:{arch.to_json()}"


def keep_conversions(backend, folder: Path, archs: Sequence[Arch], progress: bool) -> bool:
    """Have a converting backend (executorch, tflite) keep its conversions in ``folder``, so that
    a killed validation, run again, converts only what it had not; says whether it does."""
    keep = getattr(backend, "keep_conversions", None)
    if keep is None:
        return False
    keys = [conversion_key(i, arch) for i, arch in enumerate(archs)]
    found = keep(folder, keys)
    if found and progress:
        print(
            f"resuming: {found} of {len(keys)} subnets were converted by an earlier run "
            f"(kept in {folder} until the report is written)",
            file=sys.stderr,
        )
    return True


def profile_backend(predictor: LatencyPredictor):
    """A backend configured as the profile was measured (threads, batch, precision)."""
    settings = predictor.profile.settings
    return get_backend(
        predictor.profile.backend,
        int(settings.get("threads", 1)),
        int(settings.get("batch", 1)),
        str(settings.get("precision", "fp32")),
    )


def validate(
    predictor: LatencyPredictor,
    n: int = 100,
    out: str | Path | None = None,
    seed: int = 0,
    resolutions: Sequence[int] | None = None,
    progress: bool = True,
    repeatability: bool = False,
    recalibrate: bool = False,
    jobs: int = 1,
) -> dict[str, Any]:
    """Validate ``predictor`` on ``n`` random subnets; write the report files into ``out``.

    With ``repeatability`` the subnets are measured twice, independently; the report then says how
    often the two measurements of a subnet agree within 5% and 10% -- the ceiling any predictor
    can reach on this machine at this time -- and predictions are compared with the lesser of
    the two (the statistic over all passes).

    With ``recalibrate`` the profile's calibration subnets are timed again, shuffled in among the
    validation subnets, and the overhead term is refitted on them before predicting (see
    :meth:`LatencyPredictor.recalibrated`); the report keeps the figures without it too.

    ``jobs`` worker processes convert the subnets before any is timed (executorch: lowering a
    subnet takes far longer than timing it; tflite likewise). Their conversions are kept in
    ``out/conversions`` until the report is written: the same validation, killed and run again,
    converts only the subnets it had not.
    """
    from predictors.backends import backend_names

    profile = predictor.profile
    if profile.backend not in backend_names() or profile.source != "measured":
        raise ValidationError(
            f"profile {profile.device!r} is for backend {profile.backend!r}, which cannot run on "
            f"this machine (it holds {profile.source} timings of another device; backends here: "
            f"{', '.join(backend_names())}); validate it on its device by timing whole models "
            "from `nas device export-suite`"
        )
    if n < 2:
        raise InputError(f"--n {n}: validation needs at least 2 subnets")
    archs = validation_archs(predictor, n, seed, resolutions)
    calibration = []
    if recalibrate:
        calibration = [Arch.from_dict(m.arch) for m in profile.models if m.measurement.passes]
        if not calibration:
            raise InputError("the profile has no whole-model measurements to recalibrate on")
    timed = archs + calibration
    backend = profile_backend(predictor)
    conversions = Path(out) / CONVERSIONS if out is not None else None
    kept = conversions is not None and keep_conversions(backend, conversions, timed, progress)
    measured = measure_archs(
        predictor, timed, progress=progress, seed=seed, backend=backend, jobs=jobs
    )
    again = None
    if repeatability:
        second = measure_archs(
            predictor, timed, progress=progress, seed=seed + 7919, backend=backend, jobs=jobs
        )
        ratio = second / measured
        agreement = ratio / np.median(ratio) - 1
        again = {
            "median_ratio": float(np.median(ratio)),
            "within_5pct": float(np.mean(np.abs(agreement) <= 0.05)),
            "within_10pct": float(np.mean(np.abs(agreement) <= 0.10)),
        }
        measured = np.minimum(measured, second)
    measured, calibration_ms = measured[: len(archs)], measured[len(archs) :]
    without = None
    if recalibrate:
        without = metrics(predictor.predict(archs), measured)
        predictor = predictor.recalibrated(list(zip(calibration, calibration_ms, strict=True)))
    predicted = predictor.predict(archs)
    report = {
        "profile": {
            "device": profile.device,
            "backend": profile.backend,
            "space": predictor.space.name,
            "settings": profile.settings,
        },
        "resolutions": sorted({a.resolution for a in archs}),
        "metrics": metrics(predicted, measured),
        "overhead": predictor.overhead.to_dict(),
    }
    if again is not None:
        report["repeatability"] = again
    if without is not None:
        report["recalibrated_on"] = len(calibration)
        report["metrics_without_recalibration"] = without
        report["calibration"] = [
            {"arch": a.to_dict(), "measured_ms": float(ms)}
            for a, ms in zip(calibration, calibration_ms, strict=True)
        ]
    if out is not None:
        write_report(Path(out), report, archs, predicted, measured)
    if kept:
        shutil.rmtree(conversions, ignore_errors=True)
    return report


def write_report(
    folder: Path,
    report: dict[str, Any],
    archs: Sequence[Arch],
    predicted: np.ndarray,
    measured: np.ndarray,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "report.json", json.dumps(report, indent=2) + "\n")

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["predicted_ms", "measured_ms", "error_pct", "arch"])
            for arch, p, m in zip(archs, predicted, measured, strict=True):
                writer.writerow(
                    [f"{p:.6f}", f"{m:.6f}", f"{(p - m) / m * 100:.3f}", arch.to_json()]
                )

    replace_atomic(folder / "subnets.csv", write_csv)
    scatter_plot(folder / "scatter.png", predicted, measured, report)


def scatter_plot(path: Path, predicted: np.ndarray, measured: np.ndarray, report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    m = report["metrics"]
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.scatter(measured, predicted, s=10, alpha=0.7)
    lo = float(min(measured.min(), predicted.min())) * 0.95
    hi = float(max(measured.max(), predicted.max())) * 1.05
    line = np.array([lo, hi])
    ax.plot(line, line, "k-", lw=1, label="exact")
    ax.plot(line, line * 1.1, "k:", lw=1, label="+-10%")
    ax.plot(line, line * 0.9, "k:", lw=1)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    p = report["profile"]
    ax.set_title(
        f"{p['space']} on {p['backend']}: {m['within_10pct']:.0%} within 10%, "
        f"MAPE {m['mape_pct']:.1f}%",
        fontsize=9,
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    replace_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def format_report(report: dict[str, Any]) -> str:
    m, p = report["metrics"], report["profile"]
    lines = []
    if "metrics_without_recalibration" in report:
        w = report["metrics_without_recalibration"]
        lines.append(
            f"  overhead refitted on {report['recalibrated_on']} calibration subnets timed "
            f"alongside; without that: MAPE {w['mape_pct']:.2f}%, within 10% "
            f"{w['within_10pct']:.1%}, bias {w['bias_pct']:+.2f}%"
        )
    if "repeatability" in report:
        r = report["repeatability"]
        lines.append(
            f"  two measurements of a subnet agree within 5% for {r['within_5pct']:.1%}, within "
            f"10% for {r['within_10pct']:.1%} (median ratio {r['median_ratio']:.3f})"
        )
    return "\n".join(
        [
            f"{p['space']} on {p['backend']} ({p['device']}), {m['n']} subnets at "
            f"resolution(s) {report['resolutions']}",
            f"  RMSE {m['rmse_ms']:.4f} ms   MAPE {m['mape_pct']:.2f}%   "
            f"within 5% {m['within_5pct']:.1%}   within 10% {m['within_10pct']:.1%}   "
            f"Spearman {m['spearman']:.4f}   bias {m['bias_pct']:+.2f}%   "
            f"worst {m['max_error_pct']:.1f}%",
            *lines,
        ]
    )
