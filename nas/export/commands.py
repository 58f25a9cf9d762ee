"""The deployment options of ``nas extract`` and the ``nas predict`` command.

Registered into the ``nas`` parser by :func:`add_extract_arguments` and :func:`register`; the
runtimes are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_extract_arguments(p: argparse.ArgumentParser) -> None:
    """Batch, int8 and timing options of ``nas extract``."""
    p.add_argument(
        "--batch",
        type=int,
        help="fix the batch size of the file (default: dynamic for onnx, torchscript and pt; "
        "1 for executorch and tflite)",
    )
    p.add_argument(
        "--quantize",
        default="none",
        choices=["none", "int8"],
        help="int8 (with --run): post-training static quantization calibrated on "
        "--calib-images training images of the run (onnx: ONNX Runtime QDQ; executorch and "
        "tflite: PT2E); the card states fp32 and int8 test accuracy and latency (default none)",
    )
    p.add_argument(
        "--max-drop",
        type=float,
        metavar="POINTS",
        help="with --quantize int8: keep the most int8-sensitive blocks in float until the "
        "validation top-1 drop is at most this many points (a per-block sensitivity pass, "
        "reported in the card and MODEL.sensitivity.png)",
    )
    p.add_argument(
        "--calib-images",
        type=int,
        default=256,
        help="training images that calibrate the int8 activation ranges (default 256)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="runtime threads for the end-to-end timing of the written file (default 1)",
    )


def ship_options(args: argparse.Namespace):
    """:class:`~nas.export.ship.ShipOptions` from ``nas extract``'s arguments (checked)."""
    from nas.export.ship import ShipOptions

    return ShipOptions(
        fmt=args.format,
        batch=args.batch,
        precision="fp32" if args.quantize == "none" else args.quantize,
        max_drop=args.max_drop,
        calib_images=args.calib_images,
        threads=args.threads,
        measure=not args.no_measure,
    ).check()


def deployment_lines(card: dict[str, Any]) -> list[str]:
    """What ``nas extract`` prints about the written file: accuracy, latency, differences."""
    deployed = card.get("deployed") or {}
    runtime = card.get("runtime") or {}
    lines = [
        f"runtime: {runtime.get('format')} on {runtime.get('runtime')}, batch "
        f"{runtime.get('batch') or 'dynamic'}"
    ]
    for precision in ("fp32", "int8"):
        part = deployed.get(precision)
        if not part:
            continue
        text = (
            f"{precision}: test top-1 {part['test_top1']:.4f} through the runtime, max |diff| vs "
            f"PyTorch {part['max_abs_diff_vs_pytorch']:.2e}"
        )
        if "latency_ms" in part:
            lat = part["latency_ms"]
            text += f", {lat['min_ms']:.3f} ms (min; median {lat['median_ms']:.3f} ms)"
        lines.append(text)
    quantization = card.get("quantization") or {}
    sensitivity = quantization.get("sensitivity")
    if sensitivity:
        kept = ", ".join(sensitivity["float_blocks"]) or "none"
        lines.append(
            f"int8 sensitivity: all-int8 val drop {100 * (sensitivity['fp32_top1'] - sensitivity['all_int8_top1']):.2f} "
            f"points; kept float: {kept}; final drop {sensitivity['final_drop_points']:.2f} points"
            + (f"; plot {sensitivity['plot']}" if sensitivity.get("plot") else "")
        )
    return lines


def register(subparsers) -> None:
    """Add ``nas predict``."""
    p = subparsers.add_parser(
        "predict",
        help="run a model file on images with its card's preprocessing; print top classes",
        description="Run an exported model (.onnx, .pte, .tflite, .ts or .pt) with the input "
        "contract of its card (MODEL.card.json, or --card) on image files or .npz files "
        "(array x, optionally labels y), or a split of the training run (--split). Prints the "
        "top classes of every image file and .npz image, and the accuracy on labelled .npz "
        "files and on the split.",
    )
    p.add_argument("model", help="model file written by `nas extract`")
    p.add_argument("inputs", nargs="*", metavar="IMAGE", help="image files or .npz files")
    p.add_argument(
        "--split",
        choices=["train", "val", "test"],
        help="also run on this split of the training run the card names (or --run), read as "
        "training read it; the test split gives the card's test accuracy",
    )
    p.add_argument("--run", help="training run folder for --split (default: the card's run)")
    p.add_argument("--card", help="model card (default MODEL.card.json)")
    p.add_argument("--top", type=int, default=3, help="classes printed per image (default 3)")
    p.add_argument("--threads", type=int, default=1, help="runtime threads (default 1)")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> None:
    from nas.export.base import ExportError
    from nas.export.predict import predict

    if args.top < 1:
        raise ExportError(f"--top {args.top} must be at least 1")
    if args.threads < 1:
        raise ExportError(f"--threads {args.threads} must be at least 1")
    if not args.inputs and not args.split:
        raise ExportError("give image files, .npz files or --split SPLIT to predict on")
    predictions, accuracy = predict(
        Path(args.model),
        [Path(p) for p in args.inputs],
        Path(args.card) if args.card else None,
        args.top,
        args.threads,
        args.split,
        Path(args.run) if args.run else None,
    )
    shown = (
        predictions if args.split is None else [p for p in predictions if "split[" not in p.source]
    )
    for p in shown:
        shown = ", ".join(f"{name} ({prob:.3f})" for name, prob in p.top)
        label = "" if p.label is None else f"  [label {p.label}]"
        print(f"{p.source}: {shown}{label}")
    for source, a in accuracy.items():
        print(f"accuracy on {source}: {a['top1']:.4f} ({a['correct']}/{a['images']})")
    sys.stdout.flush()
