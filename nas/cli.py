"""The ``nas`` command."""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from nas.arch import Arch, ArchError
from nas.errors import InputError, WorkFailed
from nas.options import (
    EXIT_BAD_INPUT,
    OneLineParser,
    fraction,
    positive_float,
    torch_device,
)
from nas.runs import check_folder, check_output_file
from nas.search.driver import DEFAULT_BATCH_SIZE
from nas.space import SearchSpace

ARCH_SOURCE_HELP = (
    "arch file: an arch JSON document or a line of `nas sample` output; FILE:N takes line N "
    "of a JSON-lines file; - reads standard input"
)
RAY_ADDRESS_HELP = (
    "join the running Ray cluster at this address (its head node, e.g. 10.0.0.5:6379, or "
    "auto) instead of starting a local Ray instance; the cluster needs a CPU per worker "
    "(default: $RAY_ADDRESS, else a local instance)"
)


class UsageError(InputError):
    """Bad input from the user: printed as one line, exit code 2."""


# --------------------------------------------------------------------- helpers


def _space(name: str) -> SearchSpace:
    import search_spaces

    return search_spaces.get(name)


def _arch_and_space(source: str, space_name: str | None) -> tuple[Arch, SearchSpace]:
    """The arch of an arch source (:mod:`nas.archfile`), checked against its space."""
    from nas.archfile import read_arch

    where, arch = read_arch(source)
    space = _space(space_name or arch.space)
    if arch.space != space.name:
        raise UsageError(f"{where} is an arch of space {arch.space!r}, not {space.name!r}")
    try:
        space.validate(arch)
    except ArchError as err:
        raise ArchError(f"{where}: {err}") from None
    return arch, space


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def _choices_text(stage) -> str:
    from nas.blocks.registry import choice_spec

    parts = []
    for name, value in stage.to_dict().items():
        if name in ("depth", "width"):
            continue
        spec = choice_spec(name)
        label = spec.label if spec else ""
        shown = "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)
        parts.append(f"{label}{shown}")
    return " ".join(parts)


# --------------------------------------------------------------------- commands


def cmd_spaces(args: argparse.Namespace) -> None:
    import search_spaces

    rows = []
    for name in search_spaces.names():
        space = search_spaces.get(name)
        rows.append(
            (
                name,
                f"{space.size():.3e}",
                str(len(space.stages)),
                ",".join(map(str, space.resolutions)),
                space.description,
            )
        )
    _print_table(("space", "archs", "stages", "resolutions", "description"), rows)


def _preset(name: str):
    from nas import presets

    return presets.get(name)


def cmd_presets(args: argparse.Namespace) -> None:
    from nas import presets

    rows = []
    for name in presets.names():
        preset = presets.get(name)
        macs, params = preset.counts()
        published_macs = preset.published_macs
        rows.append(
            (
                name,
                preset.model,
                preset.space,
                str(preset.arch.resolution),
                f"{params / 1e6:.3f}M",
                f"{preset.published_params / 1e6:.2f}M",
                f"{100 * (params / preset.published_params - 1):+.1f}%",
                f"{macs / 1e6:.0f}M",
                "-" if published_macs is None else f"{published_macs / 1e6:.0f}M",
                "-" if published_macs is None else f"{100 * (macs / published_macs - 1):+.1f}%",
            )
        )
    _print_table(
        (
            "preset",
            "model",
            "space",
            "res",
            "params",
            "published",
            "diff",
            "MACs",
            "published",
            "diff",
        ),
        rows,
    )


def cmd_sample(args: argparse.Namespace) -> None:
    from nas.graph import count

    if args.preset is not None:
        if args.space is not None or args.n is not None or args.seed is not None:
            raise UsageError(
                "--preset prints its one published arch: leave out --space, -n and --seed"
            )
        if args.resolution is not None:
            raise UsageError("--preset prints the published arch at its published resolution")
        preset = _preset(args.preset)
        macs, params = preset.counts()
        print(json.dumps({"arch": preset.arch.to_dict(), "macs": macs, "params": params}))
        return
    if args.space is None:
        raise UsageError("give --space SPACE (sample archs) or --preset NAME (a published arch)")
    space = _space(args.space)
    args.n = 1 if args.n is None else args.n
    if args.n < 1:
        raise UsageError(f"-n {args.n}: the number of archs must be at least 1")
    if args.resolution is not None and args.resolution not in space.resolutions:
        raise UsageError(
            f"--resolution {args.resolution}: space {space.name!r} has resolutions "
            f"{list(space.resolutions)}"
        )
    rng = random.Random(args.seed)
    for _ in range(args.n):
        arch = space.sample(rng)
        if args.resolution is not None:
            arch = Arch.from_dict({**arch.to_dict(), "resolution": args.resolution})
        macs, params = count(space, arch)
        print(json.dumps({"arch": arch.to_dict(), "macs": macs, "params": params}))


def cmd_inspect(args: argparse.Namespace) -> None:
    from nas.graph import block_summaries, operator_graph

    arch, space = _arch_and_space(args.arch, args.space)
    graph = operator_graph(space, arch)
    groups: dict[str, list] = {}
    for block in block_summaries(graph):
        key = (
            block.block.split(".")[0]
            if not block.block.startswith("stages.")
            else ".".join(block.block.split(".")[:2])
        )
        groups.setdefault("stem" if key == "stem_ds" else key, []).append(block)
    rows = []
    for key, blocks in groups.items():
        if key.startswith("stages."):
            i = int(key.split(".")[1])
            stage, spec = arch.stages[i], space.stages[i]
            kind, depth, width, choices = spec.kind, stage.depth, stage.width, _choices_text(stage)
        elif key == "stem":
            kind, depth, width, choices = "stem", 1 + arch.stem.depth, arch.stem.width, ""
        else:
            kind, depth, width, choices = "head", 1, space.head.feature_width, ""
        out = "x".join(map(str, blocks[-1].output_shape))
        rows.append(
            (
                key,
                kind,
                str(depth),
                str(width),
                choices,
                out,
                _human(sum(b.macs for b in blocks)),
                _human(sum(b.params for b in blocks)),
            )
        )
    print(f"space {space.name}, resolution {arch.resolution}")
    _print_table(("stage", "kind", "depth", "width", "choices", "output", "MACs", "params"), rows)
    print(f"total: {_human(graph.graph['macs'])} MACs, {_human(graph.graph['params'])} params")


def cmd_extract(args: argparse.Namespace) -> None:
    from nas.extract import EXPORT_FORMATS

    if args.format not in EXPORT_FORMATS:
        raise UsageError(f"unknown format {args.format!r}; choices: {', '.join(EXPORT_FORMATS)}")
    if args.quantize != "none" and not args.run:
        raise UsageError("--quantize calibrates on the run's training images: use it with --run")
    from nas.export.commands import ship_options

    ship_options(args)  # batch, precision, --max-drop and counts checked before any work
    if args.preset:
        _extract_preset(args)
    elif args.run:
        _extract_for_device(args)
    elif args.arch:
        _extract_arch(args)
    else:
        raise UsageError(
            "give --arch ARCH.json, --preset NAME, or --run RUN --device PROFILE --latency-ms X"
        )


def _extract_preset(args: argparse.Namespace) -> None:
    """A published model: the preset's arch, with fresh weights or a supernet checkpoint's."""
    if args.arch or args.run:
        raise UsageError("--preset, --arch and --run exclude each other (one arch source)")
    if args.device or args.latency_ms:
        raise UsageError("--device and --latency-ms choose an arch of a --run; --preset is one")
    if not args.out:
        raise UsageError("--out PATH is required with --preset")
    preset = _preset(args.preset)
    space = _space(preset.space)
    if args.space is not None and _space(args.space).name != space.name:
        raise UsageError(
            f"--space {args.space}: preset {preset.name!r} is an arch of space {space.name!r}"
        )
    _export_arch(args, preset.arch, space, fresh_model=True)


def _extract_arch(args: argparse.Namespace) -> None:
    if not args.out:
        raise UsageError("--out PATH is required with --arch")
    arch, space = _arch_and_space(args.arch, args.space)
    _export_arch(args, arch, space, fresh_model=False)


def _export_arch(
    args: argparse.Namespace, arch: Arch, space: SearchSpace, fresh_model: bool
) -> None:
    """Export ``arch`` with the weights of ``--checkpoint``; without one, freshly initialised
    (as a standalone model when ``fresh_model``, else cut from a fresh supernet)."""
    from nas.extract import export, extract

    out = check_output_file(args.out)
    import torch

    from nas.blocks.nn import build_model
    from nas.supernet import Supernet
    from nas.supernet.checkpoint import load_supernet

    device = torch_device(args.torch_device)
    if args.checkpoint:
        supernet = load_supernet(args.checkpoint, space)
        space = supernet.space
        model = extract(supernet.to(device).eval(), arch)
    else:
        print("no --checkpoint: weights are freshly initialised", file=sys.stderr)
        torch.manual_seed(args.seed)
        if fresh_model:
            model = build_model(space, arch).eval()
        else:
            model = extract(Supernet(space).to(device).eval(), arch)
    export(model.cpu(), space, arch, args.format, out, args.batch)
    print(f"wrote {args.format} model of {arch.space} (resolution {arch.resolution}) to {out}")


def _budgets(args: argparse.Namespace) -> list[float]:
    devices, budgets = args.device or [], args.latency_ms or []
    if not devices or not budgets:
        raise UsageError("give --device PROFILE.json and --latency-ms BUDGET")
    if len(budgets) == 1:
        budgets = budgets * len(devices)
    if len(budgets) != len(devices):
        raise UsageError(
            f"{len(budgets)} --latency-ms values for {len(devices)} --device profiles; "
            "give one budget, or one per device"
        )
    return budgets


def _open_run_and_devices(args: argparse.Namespace):
    """The training run and its devices; profiles are for the space the run declared (before
    the data set set its input channels and classes)."""
    from nas.trained import TrainedRun

    budgets = _budgets(args)
    run = TrainedRun.open(args.run, torch_device(args.torch_device))
    return run, _devices(args.device, run.declared_space), budgets


def _devices(paths, space):
    """The profiles opened for ``space``, with a note on stderr for any that lacks kernels."""
    from nas.deploy import Device

    devices = Device.open_all(paths, space)
    for device in devices:
        note = device.stale_note()
        if note:
            print(f"note: {note}", file=sys.stderr)
    return devices


def _extract_for_device(args: argparse.Namespace) -> None:
    from nas.deploy import default_model_path, extract_for_device
    from nas.export.commands import deployment_lines, ship_options

    if args.arch:
        raise UsageError("--arch and --run exclude each other")
    options = ship_options(args)
    given = check_output_file(args.out) if args.out else None
    run, devices, budgets = _open_run_and_devices(args)
    out = given or default_model_path(run, devices, budgets, args.format, options.precision)
    check_folder(out.parent)
    card = extract_for_device(
        run,
        devices,
        budgets,
        args.format,
        out,
        measure=not args.no_measure,
        replace_other=given is not None,
        options=options,
    )
    acc = card["accuracy"]
    print(f"model: {out}\ncard:  {card['card']}")
    print(
        f"arch at {card['arch']['resolution']} px, {card['macs'] / 1e6:.2f}M MACs, "
        f"{card['params'] / 1e3:.1f}K params; val top-1 {acc['val_top1']:.4f}, "
        f"test top-1 {acc['test_top1']:.4f}"
    )
    for name, lat in card["latency"].items():
        measured = (
            "not measurable here" if lat["measured_ms"] is None else f"{lat['measured_ms']:.3f} ms"
        )
        print(
            f"latency on {name}: predicted {lat['predicted_ms']:.3f} ms (budget "
            f"{lat['budget_ms']:g} ms), measured {measured}"
        )
    for line in deployment_lines(card):
        print(line)


def cmd_search(args: argparse.Namespace) -> None:
    from nas.search import ALGORITHMS, AUTO

    if args.algorithm not in (AUTO, *ALGORITHMS):
        raise UsageError(
            f"unknown algorithm {args.algorithm!r}; choices: {', '.join((AUTO, *ALGORITHMS))}"
        )
    if args.evaluations < 1:
        raise UsageError(f"--evaluations {args.evaluations} must be at least 1")
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers} must be at least 1")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size} must be at least 1 (archs per step)")
    if args.ray_address and args.workers == 1:
        raise UsageError("--ray-address needs --workers N > 1 (the evaluation actors it runs)")
    if (args.run is None) == (args.space is None):
        raise UsageError(
            "give --run RUN (search a trained supernet) or --space SPACE (search a space "
            "without one, on a proxy objective), not both"
        )
    if args.run is not None:
        folder, report = _search_run(args)
    else:
        folder, report = _search_space(args)
    print(f"search folder: {folder}")
    print(
        f"{report['algorithm']}: {report['evaluations']} evaluations of new archs meeting every "
        f"constraint; {report['proposals']} proposals, {report['infeasible']} over a budget, "
        f"{report['repeats']} repeats (none evaluated)"
    )
    if "proxy" in report:
        print(f"objective {report['objective']}: {report['objective_description']}")
    if "accuracy_predictor" in report:
        a = report["accuracy_predictor"]
        tau = a["heldout_kendall_tau"]
        print(
            f"accuracy predictor {a['predictor']}: {a['measured']} archs measured on the supernet, "
            f"{a['fits']} fits; Kendall tau on {a['heldout_checks']} held-out checks "
            + ("n/a" if tau is None else f"{tau:.3f}")
        )
    objective = report["objective"]
    for name, part in report["per_constraint"].items():
        best = part["best"]
        if best is None:
            print(f"{name} <= {part['budget']:g}: no feasible arch found")
            continue
        print(
            f"{name} <= {part['budget']:g}: best {objective} {best['objectives'][objective]:.4f} "
            f"at {best['constraints'][name]:.3f}; hypervolume {part['hypervolume']:.4g}; "
            f"Pareto front {len(part['pareto_front'])} archs; plot {folder / part['plot']}"
        )
    quantized = report.get("quantized_accuracy")
    if quantized:
        shortlist = quantized["shortlist"]
        if not shortlist:
            print("int8 accuracy: no feasible arch to quantize")
        else:
            best = shortlist[0]
            print(
                f"int8 accuracy of the {len(shortlist)} most accurate feasible archs: best val "
                f"top-1 {best['val_top1_int8']:.4f} in int8 ({best['val_top1_fp32']:.4f} in fp32); "
                f"{folder / 'results.json'} -> quantized_accuracy"
            )


def _search_run(args: argparse.Namespace):
    from nas.deploy import search_run

    if args.objective is not None or args.out is not None:
        raise UsageError("--objective and --out go with --space; with --run use --name")
    surrogate = _surrogate_settings(args)
    run, devices, budgets = _open_run_and_devices(args)
    return search_run(
        run,
        devices,
        budgets,
        args.algorithm,
        args.evaluations,
        args.name,
        args.seed,
        args.macs_limit,
        args.batch_size,
        workers=args.workers,
        surrogate=surrogate,
        ray_address=args.ray_address,
        quantized_accuracy=args.quantized_accuracy,
    )


def _search_space(args: argparse.Namespace):
    from nas.deploy import search_proxy

    if args.accuracy != "supernet" or args.workers > 1 or args.quantized_accuracy:
        raise UsageError(
            "--accuracy, --workers and --quantized-accuracy need a trained supernet (--run RUN)"
        )
    if args.out is not None and args.name is not None:
        raise UsageError("--out and --name exclude each other (--out is the search folder)")
    budgets = _budgets(args)
    space = _space(args.space)
    devices = _devices(args.device, space)
    out = Path(args.out) if args.out else None
    if out is not None:
        check_folder(out)  # created with its parents once the search is accepted
    return search_proxy(
        space,
        devices,
        budgets,
        args.algorithm,
        args.evaluations,
        args.objective or "params",
        out,
        args.name,
        args.seed,
        args.macs_limit,
        args.batch_size,
    )


def _surrogate_settings(args: argparse.Namespace):
    """The accuracy predictor settings of `nas search`, or None to measure every arch."""
    from nas.search.surrogate import SurrogateSettings

    if args.accuracy == "supernet":
        return None
    return SurrogateSettings(args.accuracy, args.warmup, args.verify, args.refit_every)


def cmd_demo(args: argparse.Namespace) -> None:
    from nas.demo import run_demo

    run_demo(
        Path(args.out),
        seed=args.seed,
        epochs=args.epochs,
        evaluations=args.evaluations,
        quick=True if args.quick else None,
    )


# --------------------------------------------------------------------- parser


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="nas",
        description="Hardware-aware neural architecture search for hybrid conv/attention models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    space_help = "built-in space name (see `nas spaces`) or path to a space YAML file"

    p = sub.add_parser(
        "spaces",
        help="list the built-in search spaces and their sizes",
        description="List the built-in search spaces: number of archs, stages, input "
        "resolutions and what each is for. Any command's --space also takes a space YAML file "
        "of your own (README, 'Declaring a search space').",
    )
    p.set_defaults(func=cmd_spaces)

    p = sub.add_parser(
        "presets",
        help="list the published models built in as presets: params and MACs vs published",
        description="The published models built in as archs of built-in spaces: each preset's "
        "space and resolution, its parameter count and MACs from the operator graph of the "
        "model as exported, next to the published figures (with the difference in percent). "
        "`nas sample --preset NAME` prints a preset's arch; `nas extract --preset NAME` builds "
        "and exports it.",
    )
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser(
        "sample",
        help="sample random archs as JSON lines with MACs and params",
        description="Print random archs of a space, one JSON document per line with its MACs "
        "and parameters: arch sources for `nas inspect`, `nas device predict`, `nas extract "
        "--arch FILE:N` and `nas train --sampler fixed --arch`.",
    )
    p.add_argument("--space", help=space_help + " (required unless --preset)")
    p.add_argument(
        "--preset",
        help="print the arch of this published model (see `nas presets`) instead of sampling",
    )
    p.add_argument("-n", type=int, default=None, help="number of archs (default 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: fresh)")
    p.add_argument(
        "--resolution",
        type=int,
        help="input resolution of every arch (one of the space's; default: sampled too), e.g. "
        "the one a device profile was measured at",
    )
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser(
        "inspect",
        help="per-stage table of an arch: shapes, MACs, params",
        description="Print an arch stage by stage: block kind, depth, width and choices, output "
        "shape, MACs and parameters; the arch is checked against its space first.",
    )
    p.add_argument("arch", help=ARCH_SOURCE_HELP)
    p.add_argument("--space", help=space_help + " (default: the arch's own space)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "extract",
        help="cut a subnet out of the supernet and export it",
        description="Export one subnet: either --arch ARCH.json or --preset NAME (weights from "
        "--checkpoint, or fresh), or the best arch a search of --run found under --latency-ms on "
        "--device, with BN recalibration, test accuracy, measured latency and a model card.",
    )
    p.add_argument("--space", help=space_help + " (default: the arch's own space)")
    p.add_argument("--arch", help=ARCH_SOURCE_HELP)
    p.add_argument(
        "--preset",
        help="a published model (see `nas presets`): its arch, built as a standalone model with "
        "fresh weights (or a --checkpoint of its space's supernet)",
    )
    p.add_argument(
        "--checkpoint", help="supernet checkpoint for --arch or --preset (default: fresh weights)"
    )
    p.add_argument("--run", help="training run folder whose searches to take the best arch from")
    p.add_argument(
        "--device",
        action="append",
        metavar="PROFILE",
        help="device profile JSON (with --run); repeat for more devices",
    )
    p.add_argument(
        "--latency-ms",
        type=positive_float,
        nargs="+",
        help="latency budget: one for all devices, or one per --device; the model meets every "
        "budget on its device",
    )
    p.add_argument(
        "--format",
        default="onnx",
        help="onnx (ONNX Runtime), executorch (XNNPACK-delegated .pte), tflite (LiteRT), "
        "torchscript or pt (the engine's model file, `nas.extract.load_model`) (default onnx)",
    )
    __import__("nas.export.commands", fromlist=["add_extract_arguments"]).add_extract_arguments(p)
    p.add_argument(
        "--out",
        help="output file (required with --arch; default with --run: "
        "RUN/models/DEVICE-BUDGET[_DEVICE2-BUDGET2...].EXT, naming every device and budget)",
    )
    p.add_argument(
        "--no-measure",
        action="store_true",
        help="skip the end-to-end latency measurements (with --run)",
    )
    p.add_argument("--torch-device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed for fresh weights (default 0)")
    p.set_defaults(func=cmd_extract)

    __import__("nas.train.commands", fromlist=["register"]).register(sub)

    __import__("predictors.commands", fromlist=["register"]).register(sub)

    __import__("nas.study.command", fromlist=["register"]).register(sub)

    __import__("nas.export.commands", fromlist=["register"]).register(sub)

    p = sub.add_parser(
        "search",
        help="search a trained supernet (or a space, on a proxy) under latency budgets",
        description="Find the most accurate subnets of a training run (--run) under a latency "
        "budget on one or more device profiles; or, with --space and no trained supernet, the "
        "archs of a space that maximise a proxy objective (--objective) under the budgets. "
        "Results go to RUN/search/NAME (or runs/search/NAME, or --out): search.json, "
        "history.jsonl, progress.json, results.json, Pareto plots, and the algorithm's state "
        "(Optuna's study.journal, the generative policy's generator.json); rerun to resume.",
    )
    target = p.add_mutually_exclusive_group()
    target.add_argument("--run", help="training run folder (from `nas train`)")
    target.add_argument(
        "--space",
        help=space_help + ": search it without a trained supernet, maximising the proxy "
        "objective of --objective (labelled as a proxy in results and plots)",
    )
    p.add_argument(
        "--device",
        action="append",
        metavar="PROFILE",
        required=True,
        help="device profile JSON; repeat for several devices",
    )
    p.add_argument(
        "--latency-ms",
        type=positive_float,
        nargs="+",
        required=True,
        help="latency budget: one for all devices, or one per --device",
    )
    p.add_argument(
        "--algorithm",
        default="auto",
        help="auto, guided, evolution, nsga2, tpe, generative or random (default auto: guided "
        "when every constraint is a predicted latency, else evolution, with settings for the "
        "--evaluations budget; a resumed search keeps its algorithm)",
    )
    p.add_argument(
        "--objective",
        choices=("params", "macs", "synflow"),
        help="with --space: the proxy maximised in place of accuracy: params (parameters, "
        "millions), macs (multiply-accumulates, millions) or synflow (SynFlow zero-cost score of "
        "the randomly initialised subnet, about a second per arch on a CPU; default params)",
    )
    p.add_argument(
        "--out",
        metavar="FOLDER",
        help="with --space: the search folder (default runs/search/NAME)",
    )
    p.add_argument(
        "--evaluations",
        type=int,
        default=500,
        help="evaluations: new archs meeting every constraint whose accuracy (or proxy) is "
        "computed; proposals over a budget or seen before are rejected without an evaluation "
        "and do not count (default 500)",
    )
    p.add_argument(
        "--macs-limit", type=positive_float, help="also require MACs <= this many millions"
    )
    p.add_argument(
        "--quantized-accuracy",
        action="store_true",
        help="after the search (which ranks by the supernet's fp32 accuracy), measure the int8 "
        "validation accuracy of the 5 most accurate archs that meet every budget (ONNX Runtime "
        "static QDQ; cached in RUN/quantized_accuracy.jsonl) and report it in results.json",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"archs evaluated per search step (default {DEFAULT_BATCH_SIZE})",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="evaluate each search step's archs on N Ray actors, each holding the supernet and "
        "1/N of the validation data, with the same accuracies; a killed worker is restarted and "
        "its archs retried (default 1: in this process, no Ray)",
    )
    p.add_argument("--ray-address", metavar="HOST:PORT", help=RAY_ADDRESS_HELP)
    p.add_argument(
        "--accuracy",
        default="supernet",
        help="where accuracy comes from: supernet (measure every arch: BN recalibration + "
        "validation top-1) or a predictor refitted as the search measures archs: mlp, gbm or "
        "ridge (default supernet)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=50,
        help="with a predictor: archs measured before it predicts (default 50)",
    )
    p.add_argument(
        "--verify",
        type=fraction,
        default=0.2,
        help="with a predictor: share of each step's archs, the best predicted, that are also "
        "measured; these held-out checks give the reported Kendall tau (default 0.2)",
    )
    p.add_argument(
        "--refit-every",
        type=int,
        default=20,
        help="with a predictor: refit after this many new measurements (default 20)",
    )
    p.add_argument("--name", help="search folder name (default ALGORITHM-DEVICE-BUDGET)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed of the search (default 0); a search folder keeps its seed: resuming "
        "it with another seed is refused",
    )
    p.add_argument("--torch-device", default="cpu", help="cpu or cuda (default cpu)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "demo",
        help="run the main job end to end on the embedded data set",
        description="Run the main job as the nas commands a user would type, on scikit-learn's "
        "digits and the hybrid-tiny space: train a supernet, measure an ONNX Runtime latency "
        "profile of this machine, search under a latency budget, extract the winner to ONNX "
        "with its card, and write the space's trade-off study. Every step writes into --out "
        "and resumes when the demo is run again.",
    )
    p.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--epochs", type=int, help="supernet epochs (default 10; 1 with --quick)")
    p.add_argument("--evaluations", type=int, help="searched archs (default 150; 12 with --quick)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="the same steps at a size that checks they work in a minute or two: one epoch on "
        "256 digits, a profile timed with few repeats on a sample of the kernel configurations, "
        "12 searched archs (also "
        "NAS_DEMO_QUICK=1 in the environment, e.g. `NAS_DEMO_QUICK=1 make demo`)",
    )
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``nas`` command; return its exit code (2: bad input, named in one line)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed
        return stop.code if isinstance(stop.code, int) else EXIT_BAD_INPUT
    try:
        args.func(args)
    except InputError as err:
        print(f"nas: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except WorkFailed as err:
        print(f"nas: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        sys.stderr.close()
    except OSError as err:
        if err.filename is None:
            raise
        # A file system fault no check foresaw (a full disk, a folder made read-only meanwhile).
        print(f"nas: error: {err.filename}: {err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


if __name__ == "__main__":
    sys.exit(main())
