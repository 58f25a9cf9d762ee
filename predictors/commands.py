"""The ``nas device`` command group: measure, import and validate device latency profiles.

Registered into the ``nas`` parser by :func:`register`; every heavy import happens inside the
command functions, so ``nas spaces`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nas.errors import InputError
from nas.options import nonnegative_float
from nas.runs import check_output_file


class DeviceCommandError(InputError):
    """Bad options of a ``nas device`` command."""


def register(subparsers) -> None:
    """Add ``nas device`` and its subcommands to the ``nas`` command's subparsers."""
    device = subparsers.add_parser(
        "device", help="device latency profiles: measure, import, validate, predict"
    )
    sub = device.add_subparsers(dest="device_command", required=True, metavar="SUBCOMMAND")
    space_help = "built-in space name or path to a space YAML file"

    p = sub.add_parser(
        "measure",
        help="measure a profile on this machine (resumable)",
        description="Measure a latency profile of SPACE on this machine with one backend: the "
        "cost of an empty invocation, the fusion rules of the backend (which neighbouring "
        "operators run as one kernel), every kernel configuration of the space (or, beyond "
        "--max-exact, a sample plus per-kind regressors refined where they miss), and whole "
        "models for the per-model overhead. The profile JSON is written as each step completes: "
        "kill the command at any moment and run it again to resume (executorch and tflite keep "
        "what they converted in OUT.conversions until the profile is complete, so a resumed job "
        "does not convert again). `nas search --device OUT` then predicts latency from it; "
        "`nas device validate --profile OUT` checks it.",
    )
    p.add_argument(
        "--backend",
        required=True,
        help="onnxruntime, torch, executorch (XNNPACK, the CPU kernels of ExecuTorch on phones) "
        "or tflite (LiteRT's interpreter, XNNPACK too)",
    )
    p.add_argument("--space", required=True, help=space_help)
    p.add_argument("--out", required=True, help="profile JSON; rerun the same command to resume")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "int8"],
        help="int8: time quantized kernels (onnxruntime: static QDQ; executorch: PT2E with the "
        "XNNPACK quantizer; tflite: PT2E with litert-torch's quantizer), so that `nas search` targets the latency of the int8 model "
        "(default fp32)",
    )
    p.add_argument(
        "--resolutions", type=int, nargs="+", help="only these input resolutions (default all)"
    )
    p.add_argument("--warmup", type=int, default=10, help="warm-up runs (default 10)")
    p.add_argument("--repeats", type=int, default=30, help="timed runs per pass (default 30)")
    p.add_argument(
        "--passes",
        type=int,
        default=3,
        help="measurement passes over shuffled chunks; a kernel or model keeps its fastest "
        "(default 3)",
    )
    p.add_argument(
        "--statistic",
        default="min",
        help="median, q25, min or mean of each pass (default min: other processes only ever "
        "slow a run down, so on a shared machine the fastest run is the repeatable figure)",
    )
    p.add_argument(
        "--min-time-ms",
        type=nonnegative_float,
        default=40.0,
        help="a fast kernel is run until its timed runs add up to this (at most 20x --repeats "
        "runs; default 40)",
    )
    p.add_argument(
        "--min-span-ms",
        type=nonnegative_float,
        default=5000.0,
        help="each round-robin of kernels or models lasts at least this long, so that every "
        "one's runs are spread over the fast and slow spells of a shared machine (fast ones are "
        "timed in larger chunks to fill it; 0: no minimum; default 5000)",
    )
    p.add_argument(
        "--max-exact",
        type=int,
        default=4000,
        help="measure every kernel configuration up to this many, else sample (default 4000)",
    )
    p.add_argument(
        "--prior-per-kind",
        type=int,
        default=40,
        help="beyond --max-exact: configurations per kernel kind measured first (default 40)",
    )
    p.add_argument(
        "--adaptive-rounds",
        type=int,
        default=4,
        help="beyond --max-exact: rounds of checking the regressors and measuring around the "
        "configurations they miss by more than 10%% (default 4)",
    )
    p.add_argument(
        "--adaptive-batch",
        type=int,
        default=200,
        help="beyond --max-exact: configurations measured to check the regressors in each round "
        "(default 200)",
    )
    p.add_argument(
        "--models",
        type=int,
        default=32,
        help="whole subnets timed for the overhead fit (default 32: its five terms fitted on 16 "
        "predicted 3-4 points fewer random subnets within 10%%)",
    )
    p.add_argument("--device", help="name of the device (default: CPU model, backend, threads)")
    p.add_argument("--cpus", type=int, nargs="+", help="pin the process to these CPUs")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="executorch, tflite: worker processes converting each chunk of kernels ahead of timing, one "
        "CPU each; nothing is timed while they run (default 1: convert each one when it is timed)",
    )
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser(
        "export-suite",
        help="write every kernel to measure as ONNX files or ExecuTorch programs, for a phone",
        description="Write the kernels of SPACE (and a few whole models for the overhead fit) "
        "as files a phone can time, with a manifest and a README saying how. Time them on the "
        "device (onnxruntime_perf_test, executor_runner or the Android benchmark app), write a "
        "CSV of name,ms, and build the phone's profile with `nas device import`.",
    )
    p.add_argument("--space", required=True, help=space_help)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--format",
        default="onnx",
        choices=["onnx", "executorch"],
        help="onnx (.onnx files for onnxruntime_perf_test) or executorch (XNNPACK-delegated .pte "
        "programs for executor_runner or the Android benchmark app) (default onnx)",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "int8"],
        help="int8: quantized kernels (onnx: static QDQ; executorch: PT2E) (default fp32)",
    )
    p.add_argument("--resolutions", type=int, nargs="+", help="only these input resolutions")
    p.add_argument("--rules-from", help="cut kernels by this profile's fusion rules")
    p.add_argument("--models", type=int, default=12, help="whole models to include (default 12)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_export_suite)

    p = sub.add_parser(
        "time-suite",
        help="time a suite here with ONNX Runtime or ExecuTorch (a phone stand-in)",
        description="Time every file of a suite written by `nas device export-suite` on this "
        "machine and write the name,ms CSV that `nas device import` reads: the same path a "
        "phone's timings take, run here.",
    )
    p.add_argument("suite", help="folder written by export-suite")
    p.add_argument("--out", required=True, help="timings CSV to write")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    p.add_argument("--repeats", type=int, default=30, help="timed runs (default 30)")
    p.set_defaults(func=cmd_time_suite)

    p = sub.add_parser(
        "import",
        help="build a profile from a suite and the device's timings CSV",
        description="Build a device profile from a suite (`nas device export-suite`) and the "
        "CSV of its timings on the device (columns name, ms; one row per suite file).",
    )
    p.add_argument("suite", help="folder written by export-suite")
    p.add_argument("timings", help="CSV with columns name, ms")
    p.add_argument("--out", required=True, help="profile JSON to write")
    p.add_argument("--device", help="name of the device")
    p.add_argument("--backend", default="phone", help="runtime that timed it (default phone)")
    p.add_argument("--threads", type=int, default=1, help="threads it was timed with (default 1)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser(
        "import-table",
        help="a profile from a published latency table",
        description="Build a profile from a published per-block latency table: pixel4 "
        "(ElasticViT's Pixel 4 table, for the elasticvit space) or note10 (Once-for-All's "
        "Note10 tables, for the ofa-mbv3 space).",
    )
    p.add_argument("table", choices=["pixel4", "note10"], help="which table")
    p.add_argument("path", help="pixel4: pixel4_lut.json; note10: folder of *_lookup_table.yaml")
    p.add_argument("--out", required=True, help="profile JSON to write")
    p.set_defaults(func=cmd_import_table)

    p = sub.add_parser(
        "validate",
        help="predicted vs measured latency of random subnets",
        description="Time N random subnets of the profile's space end to end with the "
        "profile's backend, threads and batch on this machine, and compare them with the "
        "profile's predictions: RMSE, MAPE, share within 5% and 10%, Spearman, bias and the "
        "worst error, plus a per-subnet CSV and a scatter plot in --out. Only meaningful on the "
        "machine the profile was measured on (use --recalibrate when its speed drifts). With "
        "executorch and tflite, whose conversions take most of the time, the converted subnets "
        "are kept in OUT/conversions until the report is written: the same command, killed and "
        "run again, converts only those it had not.",
    )
    p.add_argument("--profile", required=True, help="profile JSON")
    p.add_argument("--n", type=int, default=100, help="number of subnets (default 100)")
    p.add_argument("--out", help="report folder (default runs/validate-<profile name>)")
    p.add_argument("--resolutions", type=int, nargs="+", help="subnet resolutions")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument(
        "--repeatability",
        action="store_true",
        help="measure every subnet twice and report how often the two agree",
    )
    p.add_argument(
        "--recalibrate",
        action="store_true",
        help="time the profile's calibration subnets again alongside and refit the overhead term "
        "on them (drift correction for machines whose speed changes between sessions)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="executorch, tflite: worker processes converting the subnets ahead of timing, one "
        "CPU each; nothing is timed while they run (default 1: convert each one when it is timed)",
    )
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "predict",
        help="predicted latency of archs",
        description="Print the latency the profile predicts for each arch (with --breakdown, "
        "per kernel).",
    )
    p.add_argument("--profile", required=True, help="profile JSON")
    p.add_argument(
        "--arch",
        required=True,
        nargs="+",
        help="arch files: arch JSON documents or JSON lines (`nas sample` output), every arch "
        "of each; FILE:N takes line N only; - reads standard input",
    )
    p.add_argument("--space", help="space YAML for a profile of a user-declared space")
    p.add_argument("--breakdown", action="store_true", help="print per-kernel times")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "info",
        help="summary of a profile",
        description="Print a profile's device, backend, space, measurement settings, counts "
        "of kernels and whole models measured, fusion rules and the fitted overhead term.",
    )
    p.add_argument("--profile", required=True, help="profile JSON")
    p.set_defaults(func=cmd_info)


# --------------------------------------------------------------------- helpers


def _space(name: str):
    import search_spaces

    return search_spaces.get(name)


def _predictor(profile_path: str, space_path: str | None = None):
    from predictors.latency import LatencyPredictor

    space = _space(space_path) if space_path else None
    predictor = LatencyPredictor.load(profile_path, space)
    note = predictor.stale_note(profile_path)
    if note:
        print(f"note: {note}", file=sys.stderr)
    return predictor


def _overhead_text(o: dict) -> str:
    text = (
        f"scale {o['scale']:.3f}, {o['per_kernel_ms'] * 1000:.2f} us/kernel, "
        f"{o['per_mparam_ms'] * 1000:.1f} us per M parameters, "
        f"{o['per_minput_ms'] * 1000:.1f} us per M convolution input elements, "
        f"{o['per_structural_ms'] * 1000:.2f} us per structural unit, "
        f"constant {o['constant_ms'] * 1000:.1f} us"
    )
    if o.get("fit_mape") is not None:
        text += f" (terms {', '.join(o['terms']) or 'none'}; fit MAPE {o['fit_mape']:.2f}%"
        if o.get("loo_mape") is not None:
            text += f", leave-one-out {o['loo_mape']:.2f}%"
        text += ")"
    return text


# --------------------------------------------------------------------- commands


def cmd_measure(args: argparse.Namespace) -> None:
    from predictors.backends import get_backend, pin_cpus
    from predictors.measure import MeasurementJob, MeasureSettings

    out = check_output_file(args.out)
    get_backend(args.backend, args.threads, args.batch, args.precision)  # bad settings first
    settings = MeasureSettings(
        backend=args.backend,
        threads=args.threads,
        batch=args.batch,
        precision=args.precision,
        warmup=args.warmup,
        repeats=args.repeats,
        passes=args.passes,
        statistic=args.statistic,
        min_time_ms=args.min_time_ms,
        min_span_ms=args.min_span_ms,
        resolutions=tuple(args.resolutions) if args.resolutions else None,
        max_exact=args.max_exact,
        prior_per_kind=args.prior_per_kind,
        adaptive_rounds=args.adaptive_rounds,
        adaptive_batch=args.adaptive_batch,
        models=args.models,
        seed=args.seed,
        device=args.device,
        jobs=args.jobs,
    )
    settings.protocol()  # bad timing settings before any work
    for option in ("passes", "prior_per_kind", "adaptive_batch", "jobs"):
        if getattr(args, option) < 1:
            name = "--" + option.replace("_", "-")
            raise DeviceCommandError(f"{name} {getattr(args, option)} must be at least 1")
    if args.adaptive_rounds < 0:
        raise DeviceCommandError(f"--adaptive-rounds {args.adaptive_rounds} must be at least 0")
    pin_cpus(args.cpus)
    space = _space(args.space)
    job = MeasurementJob(space, out, settings, log=lambda m: print(m, file=sys.stderr))
    profile = job.run()
    from predictors.latency import LatencyPredictor

    predictor = LatencyPredictor.from_profile(profile, space)
    print(
        f"wrote {out}: {len(profile.kernels)} kernels, {len(profile.models)} whole models; "
        f"overhead {_overhead_text(predictor.overhead.to_dict())}"
    )


def cmd_export_suite(args: argparse.Namespace) -> None:
    from predictors.kernels import FusionRules
    from predictors.profile import DeviceProfile
    from predictors.suite import export_suite

    space = _space(args.space)
    rules = None
    if args.rules_from:
        rules = FusionRules.from_list(DeviceProfile.load(args.rules_from).fusion_rules)
    if args.resolutions:
        bad = [r for r in args.resolutions if r not in space.resolutions]
        if bad:
            raise DeviceCommandError(
                f"--resolutions {bad} are not in space {space.name!r}; "
                f"choices: {list(space.resolutions)}"
            )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DeviceCommandError(f"--out {out} exists and is not a folder")
    manifest = export_suite(
        space,
        out,
        rules,
        args.resolutions,
        args.models,
        args.batch,
        args.seed,
        fmt=args.format,
        precision=args.precision,
    )
    counts: dict[str, int] = {}
    for e in manifest["entries"]:
        counts[e["role"]] = counts.get(e["role"], 0) + 1
    print(
        f"wrote {len(manifest['entries'])} {args.format} files to {out} "
        f"({', '.join(f'{n} {r}' for r, n in counts.items())}); see {out / 'README.md'}"
    )


def cmd_time_suite(args: argparse.Namespace) -> None:
    from predictors.suite import read_manifest, time_suite

    read_manifest(args.suite)
    out = check_output_file(args.out)
    time_suite(args.suite, out, threads=args.threads, repeats=args.repeats)
    print(f"wrote {out}")


def cmd_import(args: argparse.Namespace) -> None:
    from predictors.latency import LatencyPredictor
    from predictors.suite import import_suite

    out = check_output_file(args.out)
    profile = import_suite(args.suite, args.timings, args.device, args.backend, args.threads)
    predictor = LatencyPredictor.from_profile(profile)
    predictor.compile()
    profile.save(out)
    for note in profile.notes[1:]:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {out}: {len(profile.kernels)} kernels, {len(profile.models)} whole models")


def cmd_import_table(args: argparse.Namespace) -> None:
    from predictors.tables import import_table

    out = check_output_file(args.out)
    profile = import_table(args.table, args.path)
    profile.save(out)
    print(f"wrote {out}: {len(profile.kernels)} table entries for space {profile.space_name!r}")


def cmd_validate(args: argparse.Namespace) -> None:
    from predictors.validate import format_report, validate

    if args.jobs < 1:
        raise DeviceCommandError(f"--jobs {args.jobs} must be at least 1")
    predictor = _predictor(args.profile)
    out = Path(args.out or f"runs/validate-{Path(args.profile).stem}")
    report = validate(
        predictor,
        args.n,
        out,
        seed=args.seed,
        resolutions=args.resolutions,
        repeatability=args.repeatability,
        recalibrate=args.recalibrate,
        jobs=args.jobs,
    )
    print(format_report(report))
    print(f"report, per-subnet CSV and scatter plot in {out}")


def cmd_predict(args: argparse.Namespace) -> None:
    from nas.arch import ArchError
    from nas.archfile import read_archs

    predictor = _predictor(args.profile, args.space)
    archs = []
    for source in args.arch:
        for where, arch in read_archs(source):
            try:
                archs.append(predictor.space.validate(arch))
            except ArchError as err:
                raise ArchError(f"{where}: {err}") from None
    values = predictor.predict(archs)
    regressed = predictor.regressed(archs)
    for arch, ms, flag in zip(archs, values, regressed, strict=True):
        note = " (includes regressed kernels)" if flag else ""
        print(f"{ms:.4f} ms  {arch.space} resolution {arch.resolution}{note}")
        if args.breakdown:
            for row in predictor.breakdown(arch):
                mark = " *" if row["regressed"] else ""
                print(f"    {row['ms']:9.4f} ms  {row['layer']:22s} {row['kind']}{mark}")


def cmd_info(args: argparse.Namespace) -> None:
    predictor = _predictor(args.profile)
    profile = predictor.profile
    info = predictor.describe()
    print(f"device:   {info['device']}")
    print(f"backend:  {info['backend']} ({profile.source}, scheme {info['scheme']})")
    print(f"space:    {info['space']}   settings: {json.dumps(profile.settings)}")
    print(f"kernels:  {info['kernels_measured']}   whole models: {info['models_measured']}")
    fused = [f"{r['first']}+{r['second']}" for r in profile.fusion_rules if r.get("fused")]
    print(f"fused:    {', '.join(fused) or 'none'}")
    print(f"overhead: {_overhead_text(info['overhead'])}")
    for note in profile.notes:
        print(f"note:     {note}")
