"""Write a trained subnet in a deployment format, check it, quantize it, and describe it.

:func:`ship` writes the model file (fp32, or int8 with ``quantize="int8"``), runs it with its
runtime here against the PyTorch model (max abs difference of the logits, test accuracy on the
run's test split), times it end to end (fp32 and int8 side by side), and returns the card's
deployment sections: the input/output contract, the classes, the runtime versions, per
precision accuracy and latency, the quantization record (with the per-block sensitivity pass of
``max_drop``) and a runnable snippet.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.arch import Arch
from nas.export import get_format
from nas.export.base import ExportError
from nas.export.checks import compare, time_files, top1, torch_top1
from nas.export.contract import input_spec, output_spec, snippet
from nas.export.kinds import block_kinds

PRECISIONS = ("fp32", "int8")
#: Test images compared logit by logit with the PyTorch model.
COMPARED_IMAGES = 64


@dataclass(frozen=True)
class ShipOptions:
    """How ``nas extract`` writes a model (``nas extract --help`` explains each)."""

    fmt: str = "onnx"
    batch: int | None = None  # None: dynamic where the format allows, else 1
    precision: str = "fp32"
    max_drop: float | None = None  # accuracy points; None: quantize every block
    calib_images: int = 256
    threads: int = 1
    measure: bool = True

    def check(self) -> ShipOptions:
        fmt = get_format(self.fmt)
        if self.precision not in PRECISIONS:
            raise ExportError(
                f"precision {self.precision!r} is not supported; choices: {', '.join(PRECISIONS)}"
            )
        if self.precision == "int8" and fmt.quantizer is None:
            raise ExportError(
                f"format {self.fmt} has no int8 path; --quantize int8 works with onnx, "
                "executorch and tflite"
            )
        if self.max_drop is not None:
            if self.precision != "int8":
                raise ExportError("--max-drop goes with --quantize int8")
            if not 0 <= self.max_drop <= 100 or not np.isfinite(self.max_drop):
                raise ExportError(f"--max-drop {self.max_drop} must be in [0, 100] points")
        for name in ("calib_images", "threads"):
            if getattr(self, name) < 1:
                raise ExportError(f"--{name.replace('_', '-')} must be at least 1")
        if self.batch is not None and self.batch < 1:
            raise ExportError(f"--batch {self.batch} must be at least 1")
        return self


def _images(split, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    from nas.train.data import resize

    return resize(split.x, resolution).numpy(), split.y.numpy()


def ship(
    run,
    arch: Arch,
    model: nn.Module,
    options: ShipOptions,
    out: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``model`` (the BN-recalibrated subnet ``arch`` of ``run``) to ``out``; return the
    card's deployment sections (see the module docstring)."""
    from nas.blocks.nn import deployed
    from nas.export.sensitivity import keep_float, plot
    from nas.train.data import resize
    from nas.train.evaluate import calibration_images

    options = options.check()
    fmt = get_format(options.fmt)
    model = deployed(model, run.space, arch).eval()  # each block kind's deploy step
    resolution = arch.resolution
    test_x, test_y = _images(run.data.test, resolution)
    example = torch.from_numpy(test_x[:1]).clone(memory_format=torch.contiguous_format)
    batch = options.batch or (None if fmt.dynamic_batch else 1)
    meta = {"space": run.space, "arch": arch}
    int8 = options.precision == "int8"
    results: dict[str, dict[str, Any]] = {}
    quantization: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix=".nas-ship-", dir=out.parent) as tmp:
        fp32_path = Path(tmp) / f"fp32{fmt.suffix}" if int8 else out
        fmt.write(model, example, fp32_path, batch, meta=meta)
        loaded = {"fp32": fmt.load(fp32_path, threads=options.threads)}
        if int8:
            calibration = resize(
                calibration_images(run.data.train, options.calib_images), resolution
            )
            quantizer = fmt.quantizer(model, example, calibration)
            quantized = None
            quantization = {
                "scheme": quantizer.scheme,
                "calibration_images": len(calibration),
                "calibration_split": "train",
            }
            if options.max_drop is not None:
                val_x, val_y = _images(run.data.val, resolution)
                result = keep_float(
                    quantizer,
                    block_kinds(run.space, arch),
                    lambda candidate: torch_top1(candidate, val_x, val_y),
                    torch_top1(model, val_x, val_y),
                    options.max_drop,
                    progress,
                )
                quantized = result.quantized_blocks(
                    [name for name, _ in block_kinds(run.space, arch)]
                )
                quantization["sensitivity"] = result.to_dict()
                png = plot(result, out.with_suffix(out.suffix + ".sensitivity.png"), out.name)
                quantization["sensitivity"]["plot"] = png.name if png else None
            quantization["float_blocks"] = quantization.get("sensitivity", {}).get(
                "float_blocks", []
            )
            quantizer.quantize(quantized).write(out, example, batch)
            loaded["int8"] = fmt.load(out, threads=options.threads)
        compared = test_x[:COMPARED_IMAGES]
        for precision, file in loaded.items():
            results[precision] = {
                "test_top1": top1(file, test_x, test_y),
                "max_abs_diff_vs_pytorch": compare(file, model, compared),
            }
        if options.measure:
            timings = time_files(list(loaded.values()), (1, *test_x.shape[1:]))
            for precision, timing in zip(loaded, timings, strict=True):
                results[precision]["latency_ms"] = timing
        integer_io = (
            loaded["int8"].integer_io() if hasattr(loaded.get("int8"), "integer_io") else {}
        )
        del loaded  # the runtimes hold the temporary fp32 file open
    card_name = out.name + ".card.json"
    return {
        "input": {
            **input_spec(run.preprocessing, resolution, batch),
            **integer_io.get("input", {}),
        },
        "output": {**output_spec(run.data.classes, batch), **integer_io.get("output", {})},
        "classes": list(run.data.classes),
        "runtime": {**fmt.describe(), "batch": batch, "threads": options.threads},
        "precision": options.precision,
        "deployed": {
            "split": "test",
            "images": len(test_y),
            "compared_images": min(COMPARED_IMAGES, len(test_y)),
            "reference": "the extracted PyTorch model (fp32), same inputs",
            **results,
        },
        "quantization": quantization,
        "notes": fmt.notes or None,
        "snippet": snippet(fmt.name, out.name, card_name),
    }


def embed_card(model: nn.Module, space, arch: Arch, fmt: str, out: Path, card: dict) -> None:
    """Formats that carry their card inside the file (``pt``) get it written in."""
    if fmt == "pt":
        from nas.extract import save_model

        save_model(model, space, arch, out, card)
