"""The ``nas`` command."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from nas.arch import Arch, ArchError
from nas.errors import InputError
from nas.space import SearchSpace

EXIT_BAD_INPUT = 2


class UsageError(InputError):
    """Bad input from the user: printed as one line, exit code 2."""


# --------------------------------------------------------------------- helpers


def _space(name: str) -> SearchSpace:
    import search_spaces

    return search_spaces.get(name)


def _arch_and_space(arch_path: str, space_name: str | None) -> tuple[Arch, SearchSpace]:
    arch = Arch.load(arch_path)
    space = _space(space_name or arch.space)
    if arch.space != space.name:
        raise UsageError(f"{arch_path} is an arch of space {arch.space!r}, not {space.name!r}")
    try:
        space.validate(arch)
    except ArchError as err:
        raise ArchError(f"{arch_path}: {err}") from None
    return arch, space


def _check_writable(path: str) -> Path:
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise UsageError(f"--out {path} is a directory; give a file path")
    if not parent.is_dir():
        raise UsageError(f"--out {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--out {path}: folder {parent} is not writable")
    return out


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def _choices_text(stage) -> str:
    labels = {
        "kernel": "k",
        "expand_ratio": "e",
        "attention": "",
        "heads": "h",
        "v_scale": "v",
        "mlp_ratio": "mlp",
    }
    parts = []
    for name, label in labels.items():
        value = getattr(stage, name)
        if value is None:
            continue
        shown = "[" + ",".join(map(str, value)) + "]" if isinstance(value, tuple) else str(value)
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


def cmd_sample(args: argparse.Namespace) -> None:
    from nas.graph import count

    space = _space(args.space)
    if args.n < 1:
        raise UsageError(f"-n {args.n}: the number of archs must be at least 1")
    rng = random.Random(args.seed)
    for _ in range(args.n):
        arch = space.sample(rng)
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
    from nas.extract import EXPORT_FORMATS, export, extract

    if args.format not in EXPORT_FORMATS:
        raise UsageError(f"unknown format {args.format!r}; choices: {', '.join(EXPORT_FORMATS)}")
    out = _check_writable(args.out)
    arch, space = _arch_and_space(args.arch, args.space)
    import torch

    from nas.supernet import Supernet
    from nas.supernet.checkpoint import load_supernet

    if args.checkpoint:
        supernet = load_supernet(args.checkpoint, space)
        space = supernet.space
    else:
        print("no --checkpoint: weights are freshly initialised", file=sys.stderr)
        torch.manual_seed(args.seed)
        supernet = Supernet(space)
    model = extract(supernet.to(args.device).eval(), arch)
    export(model, space, arch, args.format, out)
    print(f"wrote {args.format} model of {arch.space} (resolution {arch.resolution}) to {out}")


def cmd_demo(args: argparse.Namespace) -> None:
    from nas.demo import run_demo

    run_demo(Path(args.out), seed=args.seed)


# --------------------------------------------------------------------- parser


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nas",
        description="Hardware-aware neural architecture search for hybrid conv/attention models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    space_help = "built-in space name (see `nas spaces`) or path to a space YAML file"

    p = sub.add_parser("spaces", help="list the built-in search spaces and their sizes")
    p.set_defaults(func=cmd_spaces)

    p = sub.add_parser("sample", help="sample random archs as JSON lines with MACs and params")
    p.add_argument("--space", required=True, help=space_help)
    p.add_argument("-n", type=int, default=1, help="number of archs (default 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: fresh)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("inspect", help="per-stage table of an arch: shapes, MACs, params")
    p.add_argument("arch", help="arch JSON file")
    p.add_argument("--space", help=space_help + " (default: the arch's own space)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("extract", help="cut a subnet out of the supernet and export it")
    p.add_argument("--space", help=space_help + " (default: the arch's own space)")
    p.add_argument("--arch", required=True, help="arch JSON file")
    p.add_argument("--checkpoint", help="supernet checkpoint (default: fresh weights)")
    p.add_argument("--format", default="onnx", help="onnx, torchscript or pt (default onnx)")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed for fresh weights (default 0)")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("demo", help="run the main job end to end on the embedded data set")
    p.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except InputError as err:
        print(f"nas: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
