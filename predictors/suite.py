"""Kernel suites: measuring a device that cannot run Python (a phone).

``export_suite`` writes every kernel configuration of a space as a model file -- ONNX, or an
XNNPACK-delegated ExecuTorch program (``.pte``) with ``fmt="executorch"``; fp32, or quantized
kernels with ``precision="int8"`` -- plus the pieces of every fusion test, a baseline (an
invocation with no work) and a few whole models, with a ``manifest.json`` and a README on timing
them on the device. The user times every file there and
writes one CSV; ``import_suite`` turns the folder and the CSV into a device profile -- the same kind
of file ``nas device measure`` writes, and the same predictor.

The kernels are cut by *assumed* fusion rules: by default every candidate pair fused, which gives
the coarsest kernels (any backend's timing of a coarse kernel is a correct timing of that piece;
finer kernels only need fewer configurations). ``--rules-from PROFILE`` uses a profile's rules
instead. The fusion tests in the suite let the import record the device's real fusion rules as
evidence.

CSV format (``TIMINGS.csv``)::

    name,ms
    baseline,0.012
    k00001,0.153
    ...

``name`` is the entry name of the manifest (the file name without its suffix), ``ms`` the time
of one inference in milliseconds (median over runs is recommended). Other columns are ignored;
every entry of the manifest needs a row.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from nas.arch import Arch
from nas.errors import InputError
from nas.runs import replace_atomic, write_atomic
from nas.space import SearchSpace
from nas.textfiles import FileFormatError, read_json, read_text
from predictors import forms
from predictors.backends import Timing
from predictors.kernels import FusionRule, FusionRules, fusion_candidates
from predictors.measure import (
    calibration_archs,
    enumerate_kernels,
    fuses,
    model_runner_inputs,
)
from predictors.profile import DeviceProfile, KernelRecord, Measurement, ModelRecord

SUITE_FORMAT = "nas-kernel-suite"
SUITE_VERSION = 1
CSV_COLUMNS = ("name", "ms")
#: File formats of a suite and their suffixes.
SUITE_FILES = {"onnx": ".onnx", "executorch": ".pte"}


class SuiteError(InputError):
    """A suite folder or a timings CSV is missing, malformed or does not match."""


# --------------------------------------------------------------------- export


def coarse_rules(space: SearchSpace, resolutions) -> tuple[FusionRules, list]:
    """Rules fusing every candidate pair of the space, and the candidates met on the way."""
    from nas.graph import operator_graph

    archs = [space.max_arch(), space.min_arch()]
    graphs = [
        operator_graph(space, Arch(a.space, max(resolutions), a.stem, a.stages)) for a in archs
    ]
    rules = FusionRules()
    tests = []
    while True:
        candidates = fusion_candidates(graphs, rules)
        if not candidates:
            return rules, tests
        for c in candidates:
            rules.add(FusionRule(c.first, c.second, True, c.level, {"assumed": True}))
            tests.append(c)


def export_suite(
    space: SearchSpace,
    out: str | Path,
    rules: FusionRules | None = None,
    resolutions: list[int] | None = None,
    models: int = 12,
    batch: int = 1,
    seed: int = 0,
    progress: bool = True,
    fmt: str = "onnx",
    precision: str = "fp32",
) -> dict[str, Any]:
    """Write the suite into folder ``out``; returns the manifest."""
    from tqdm import tqdm

    from predictors.backends import check_settings
    from predictors.modules import BASELINE, kernel_module

    if fmt not in SUITE_FILES:
        raise SuiteError(
            f"suite format {fmt!r} is not supported; choices: {', '.join(SUITE_FILES)}"
        )
    check_settings(1, batch, precision)

    out = Path(out)
    resolutions = list(resolutions or space.resolutions)
    assumed, tests = coarse_rules(space, resolutions)
    if rules is None:
        rules = assumed
    specs = enumerate_kernels(space, rules, resolutions)
    archs = calibration_archs(space, models, resolutions, seed) if models else []
    for folder in ("kernels", "fusion", "models"):
        (out / folder).mkdir(parents=True, exist_ok=True)

    entries: list[dict[str, Any]] = []

    def add(name: str, folder: str, module, inputs, **info) -> None:
        file = f"{folder}/{name}{SUITE_FILES[fmt]}" if folder else f"{name}{SUITE_FILES[fmt]}"
        data = suite_file(module, inputs, fmt, precision)
        replace_atomic(out / file, lambda tmp: tmp.write_bytes(data))
        shapes = [{"name": f"input{i}", "shape": list(t.shape)} for i, t in enumerate(inputs)]
        entries.append({"name": name, "file": file, "inputs": shapes, **info})

    total = 1 + 3 * len(tests) + len(specs) + len(archs)
    bar = tqdm(total=total, desc="export suite", unit="file", disable=not progress, leave=False)
    add("baseline", "", *kernel_module(BASELINE, batch), role="baseline")
    bar.update(1)
    for i, c in enumerate(tests):
        for part, spec in (
            ("first", c.first_spec),
            ("second", c.second_spec),
            ("fused", c.fused_spec),
        ):
            add(
                f"f{i:03d}_{part}",
                "fusion",
                *kernel_module(spec, batch),
                role="fusion",
                level=c.level,
                first=c.first,
                second=c.second,
                part=part,
                key=spec.key,
            )
            bar.update(1)
    for i, spec in enumerate(specs):
        add(
            f"k{i:05d}",
            "kernels",
            *kernel_module(spec, batch),
            role="kernel",
            key=spec.key,
            kind=spec.kind,
            features=spec.feature_dict(),
        )
        bar.update(1)
    for i, arch in enumerate(archs):
        add(
            f"m{i:03d}",
            "models",
            *model_runner_inputs(space, arch, batch, seed + i),
            role="model",
            arch=arch.to_dict(),
        )
        bar.update(1)
    bar.close()
    manifest = {
        "format": SUITE_FORMAT,
        "version": SUITE_VERSION,
        "space": {"name": space.name, "declaration": space.to_dict()},
        "file_format": fmt,
        "precision": precision,
        "batch": batch,
        "resolutions": resolutions,
        "rules": rules.to_list(),
        "unit_forms": forms.current(),
        "entries": entries,
    }
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    names = "\n".join(e["name"] for e in entries)
    write_atomic(out / "timings_template.csv", "name,ms\n" + names.replace("\n", ",\n") + ",\n")
    write_atomic(out / "README.md", _readme(space, manifest))
    return manifest


def suite_file(module, inputs: tuple, fmt: str, precision: str) -> bytes:
    """One kernel (or model) of a suite as the bytes of a ``fmt`` file at ``precision``."""
    module = module.eval()
    if fmt == "executorch":
        from predictors.executorch_backend import program_bytes, quantize_module

        if precision == "int8":
            module = quantize_module(module, tuple(inputs))
        return program_bytes(module, tuple(inputs))
    from predictors.modules import onnx_bytes

    data = onnx_bytes(module, tuple(inputs))
    if precision == "int8":
        from predictors.qdq import quantize_kernel

        data = quantize_kernel(
            data, {f"input{i}": t.detach().numpy() for i, t in enumerate(inputs)}
        )
    return data


def _readme(space: SearchSpace, manifest: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for e in manifest["entries"]:
        counts[e["role"]] = counts.get(e["role"], 0) + 1
    shown = ", ".join(f"{n} {role}" for role, n in counts.items())
    fmt = manifest.get("file_format", "onnx")
    kind = {"onnx": "ONNX files (opset 17)", "executorch": "ExecuTorch programs (XNNPACK)"}[fmt]
    suffix = SUITE_FILES[fmt]
    precision = manifest.get("precision", "fp32")
    how = _HOW_ONNX if fmt == "onnx" else _HOW_EXECUTORCH
    return f"""# Kernel suite for space `{space.name}`

{len(manifest["entries"])} {kind} ({shown}), {precision}, batch {manifest["batch"]}, fixed input
shapes (listed per file in `manifest.json`; inputs are named `input0`, `input1`, ... in order).

Time every file on the device, one inference at a time, with the settings you deploy with (threads,
runtime version), CPU frequency and affinity pinned, and the device idle and cool. Write one CSV:

```
name,ms
baseline,0.012
k00000,0.153
...
```

`name` is the file name without `{suffix}` (the `name` of the manifest entry), `ms` the time of
one inference in milliseconds; the median over at least 50 runs after 10 warm-up runs is
recommended. Extra columns are ignored. `timings_template.csv` lists every name. Then, on the
computer:

```
nas device import {{this folder}} TIMINGS.csv --out PROFILE.json --device "Pixel 7, {fmt}, 1 thread"
```

`nas device time-suite {{this folder}} --out TIMINGS.csv` times every file on this computer
instead (a stand-in for a phone, and a check of the round trip).
{how}
## What the files are

* `baseline{suffix}`: a model with no work in it: the cost of one invocation, which every
  standalone kernel timing includes and the predictor subtracts.
* `kernels/k*{suffix}`: every kernel configuration of the space, cut by the fusion rules in
  `manifest.json` (`rules`).
* `fusion/f*_{{first,second,fused}}{suffix}`: two pieces apart and together; the import records
  whether the device runs them fused.
* `models/m*{suffix}`: whole subnets (their archs are in the manifest) for the per-model overhead
  term.
"""


_HOW_ONNX = """
## With ONNX Runtime (Android / iOS / Linux boards)

Build or download `onnxruntime_perf_test` for the device, push the folder, and run for each file

```
onnxruntime_perf_test -e cpu -m times -r 60 -x 1 -y 1 -I -o 99 kernels/k00000.onnx
```

(`-x 1 -y 1`: one intra-op and one inter-op thread; `-I`: generated inputs; `-o 99`: all graph
optimisations.) Take the average (or better the median, with `-p` profiling) it reports per run.

## With TFLite / LiteRT

Convert each ONNX file to `.tflite` (for example with `onnx2tf`), keep the file stem, then run

```
benchmark_model --graph=k00000.tflite --num_threads=1 --num_runs=50 --warmup_runs=10
```

and take the reported average inference time (it prints microseconds; the CSV wants ms).

"""

_HOW_EXECUTORCH = """
## With ExecuTorch (Android / iOS / Linux boards)

Build ExecuTorch's `executor_runner` with the XNNPACK backend for the device (ExecuTorch's
"Building with CMake" guide: `-DEXECUTORCH_BUILD_XNNPACK=ON`, the Android NDK toolchain file for
a phone), push it and this folder (`adb push`), and run for each file

```
taskset f0 ./executor_runner --model_path kernels/k00000.pte --num_executions 60 --cpu_threads 1
```

(`taskset` pins the big cores; `--cpu_threads 1` sizes XNNPACK's thread pool.) It prints
`Model executed successfully 60 time(s) in T ms`: the time of one inference is T / 60. Run it
twice and take the second (the first includes loading and warm-up), or build it with the
event tracer and read per-run times from `--etdump_path`. The Android benchmark app of
ExecuTorch (`extension/benchmark/android`) runs a list of `.pte` files the same way and reports
per-model latency. Inputs are generated; the programs keep PyTorch's NCHW layout.
"""


# --------------------------------------------------------------------- timing here


def time_suite(
    folder: str | Path,
    out_csv: str | Path,
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 30,
    progress: bool = True,
) -> Path:
    """Time every file of a suite on this machine (ONNX Runtime for ONNX files, ExecuTorch for
    ``.pte`` programs) and write the timings CSV.

    What a phone would do; used to check the suite round trip here.
    """
    from tqdm import tqdm

    from predictors.backends import TimingProtocol, time_runners

    folder = Path(folder)
    manifest = read_manifest(folder)
    runner = _file_runner(manifest.get("file_format", "onnx"), threads)
    protocol = TimingProtocol(warmup, repeats)
    rng = np.random.default_rng(0)
    rows = []
    entries = manifest["entries"]
    bar = tqdm(total=len(entries), desc="time suite", disable=not progress, leave=False)
    for start in range(0, len(entries), 16):
        part = entries[start : start + 16]
        runners = []
        for entry in part:
            feeds = {
                i["name"]: rng.standard_normal(i["shape"]).astype(np.float32)
                for i in entry["inputs"]
            }
            runners.append(runner(folder / entry["file"], feeds))
        for entry, timing in zip(part, time_runners(runners, protocol), strict=True):
            rows.append((entry["name"], timing.median))
        bar.update(len(part))
    bar.close()

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            writer.writerows((name, f"{ms:.6f}") for name, ms in rows)

    return replace_atomic(out_csv, write)


def _file_runner(fmt: str, threads: int):
    """``(path, feeds) -> runner`` for the suite's file format."""
    if fmt == "executorch":
        import torch

        from predictors.executorch_backend import Program

        def run_program(path: Path, feeds: dict[str, np.ndarray]):
            program = Program(path, threads)
            inputs = [torch.from_numpy(feeds[f"input{i}"]) for i in range(len(feeds))]
            return lambda: program(inputs)

        return run_program
    from predictors.backends import OnnxRuntimeBackend

    return OnnxRuntimeBackend(threads=threads).prepare_onnx


# --------------------------------------------------------------------- import


def read_manifest(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / "manifest.json"
    if not folder.is_dir():
        raise SuiteError(f"suite folder {folder} does not exist")
    if not path.is_file():
        raise SuiteError(f"{folder} has no manifest.json; is it a folder from export-suite?")
    try:
        manifest = read_json(path, "the manifest of a kernel suite (nas device export-suite)")
    except FileFormatError as err:
        raise SuiteError(str(err)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != SUITE_FORMAT:
        raise SuiteError(f"{path} is not a kernel suite manifest")
    if manifest.get("version") != SUITE_VERSION:
        raise SuiteError(
            f"{path}: suite version {manifest.get('version')!r} is not supported; "
            f"supported: {SUITE_VERSION}"
        )
    try:  # a suite without the field was exported with revision 1 of every unit
        manifest["unit_forms"] = forms.check_recorded(manifest.get("unit_forms", {}), str(path))
    except ValueError as err:
        raise SuiteError(str(err)) from None
    return manifest


def read_timings(path: str | Path) -> dict[str, float]:
    """name -> ms from a timings CSV (format in the module docstring)."""
    path = Path(path)
    try:
        text = read_text(path, f"a timings CSV with columns {', '.join(CSV_COLUMNS)}")
    except FileFormatError as err:
        raise SuiteError(f"timings file {err}") from None
    reader = csv.DictReader(line for line in text.splitlines() if line.strip())
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in CSV_COLUMNS if c not in columns]
    if missing:
        raise SuiteError(
            f"{path} lacks column(s) {missing}; required columns: {', '.join(CSV_COLUMNS)} "
            f"(found: {', '.join(columns) or 'none'})"
        )
    timings: dict[str, float] = {}
    for line, row in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        name, value = row["name"], row["ms"]
        try:
            ms = float(value)
        except ValueError:
            raise SuiteError(f"{path}, line {line}: ms = {value!r} is not a number") from None
        if not math.isfinite(ms) or ms < 0:
            raise SuiteError(f"{path}, line {line}: ms = {value!r} must be a time >= 0")
        if name in timings:
            raise SuiteError(f"{path}, line {line}: {name!r} appears twice")
        timings[name] = ms
    return timings


def import_suite(
    folder: str | Path,
    timings_csv: str | Path,
    device: str | None = None,
    backend: str = "phone",
    threads: int = 1,
) -> DeviceProfile:
    """A device profile from a suite folder and the device's timings of its files."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    timings = read_timings(timings_csv)
    entries = manifest["entries"]
    names = {e["name"] for e in entries}
    unknown = sorted(set(timings) - names)
    if unknown:
        raise SuiteError(
            f"{timings_csv}: {len(unknown)} name(s) are not in the suite, e.g. {unknown[:5]}"
        )
    absent = [e["name"] for e in entries if e["name"] not in timings]
    if absent:
        raise SuiteError(
            f"{timings_csv} has no time for {len(absent)} of {len(entries)} suite files, "
            f"e.g. {absent[:5]}"
        )

    def measured(name: str) -> Measurement:
        return Measurement([Timing.exact(timings[name])])

    space = manifest["space"]
    kernels: dict[str, KernelRecord] = {}
    models: list[ModelRecord] = []
    fusion: dict[tuple[str, str, str], dict[str, float]] = {}
    baseline = None
    for entry in entries:
        role = entry["role"]
        if role == "baseline":
            baseline = measured(entry["name"])
        elif role == "kernel":
            kernels[entry["key"]] = KernelRecord(
                entry["key"], entry["kind"], dict(entry["features"]), measured(entry["name"])
            )
        elif role == "model":
            models.append(ModelRecord(dict(entry["arch"]), measured(entry["name"])))
        elif role == "fusion":
            key = (entry["level"], entry["first"], entry["second"])
            fusion.setdefault(key, {})[entry["part"]] = timings[entry["name"]]
    base = baseline.ms() if baseline else 0.0
    observed, disagree = [], []
    assumed = FusionRules.from_list(manifest["rules"])
    for (level, first, second), parts in fusion.items():
        t1, t2, t12 = (parts[p] - base for p in ("first", "second", "fused"))
        fused = fuses(t1, t2, t12)
        observed.append(
            {
                "level": level,
                "first": first,
                "second": second,
                "fused": bool(fused),
                "t_first_ms": t1,
                "t_second_ms": t2,
                "t_fused_ms": t12,
            }
        )
        if fused != assumed.fuses(first, second, level):
            disagree.append(f"{first}+{second}")
    notes = [f"imported from kernel suite {folder.name} and timings {Path(timings_csv).name}"]
    if disagree:
        notes.append(
            "the device's fusion tests disagree with the rules the suite was cut by for "
            + ", ".join(disagree)
            + "; kernels stay cut by the suite's rules (their timings are still correct); "
            "export the suite again with --rules-from this profile for finer kernels"
        )
    rules = [
        dict(r, evidence={**r.get("evidence", {}), "device": _find(observed, r)})
        for r in manifest["rules"]
    ]
    return DeviceProfile(
        device=device or f"device timed from suite {folder.name}",
        backend=backend,
        scheme="operators",
        space_name=space["name"],
        space_declaration=space.get("declaration"),
        settings={
            "threads": threads,
            "batch": manifest.get("batch", 1),
            "precision": manifest.get("precision", "fp32"),
            "warmup": 10,
            "repeats": 30,
            "passes": 1,
            "statistic": "median",
            "resolutions": manifest.get("resolutions"),
        },
        source="suite",
        environment={"suite": folder.name, "timings": Path(timings_csv).name},
        fusion_rules=rules,
        baseline=baseline,
        kernels=kernels,
        models=models,
        plan={"strategy": "suite", "configurations": len(kernels)},
        unit_forms=manifest["unit_forms"],
        complete=True,
        notes=notes,
    )


def _find(observed: list[dict[str, Any]], rule: dict[str, Any]) -> dict[str, Any] | None:
    for item in observed:
        if (item["level"], item["first"], item["second"]) == (
            rule.get("level", "op"),
            rule["first"],
            rule["second"],
        ):
            return item
    return None
