"""int8 accuracy of a search's winners: what the deployed precision costs, measured, cached.

``nas search --quantized-accuracy`` keeps the search itself on the supernet's fp32 accuracy (one
quantization per candidate would cost seconds each) and measures the shortlist of winners -- the
:data:`SHORTLIST` most accurate archs that meet every budget -- in int8: each subnet cut from the
supernet with BN recalibrated, quantized with ONNX Runtime's static QDQ (per-channel int8
weights, uint8 activations; :data:`CALIBRATION_IMAGES` training images calibrate it) and run by
ONNX Runtime on the validation split. Results are cached per arch in
``RUN/quantized_accuracy.jsonl``; a rerun measures only archs not there yet.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.arch import Arch

CACHE = "quantized_accuracy.jsonl"
SHORTLIST = 5
CALIBRATION_IMAGES = 256


def _key(arch: Arch) -> str:
    return json.dumps(arch.to_dict(), sort_keys=True)


def _cached(folder: Path, scheme: str) -> dict[str, float]:
    path = folder / CACHE
    if not path.is_file():
        return {}
    from nas.textfiles import json_lines, read_text

    expected = "int8 accuracies, one JSON object a line"
    out = {}
    for _, record in json_lines(read_text(path, expected), str(path), expected, torn_last=True):
        if record.get("scheme") == scheme and isinstance(record.get("arch"), dict):
            out[json.dumps(record["arch"], sort_keys=True)] = float(record["val_top1_int8"])
    return out


def int8_accuracy(run, archs: Sequence[Arch], progress: bool = True) -> dict[Arch, float]:
    """Validation top-1 of each arch quantized to int8 (see the module docstring)."""
    from tqdm import tqdm

    from nas.export import get_format
    from nas.export.checks import torch_top1
    from nas.runs import append_text
    from nas.train.data import resize
    from nas.train.evaluate import calibration_images
    from predictors.qdq import SCHEME

    cached = _cached(run.folder, SCHEME)
    out = {a: cached[_key(a)] for a in archs if _key(a) in cached}
    pending = [a for a in archs if a not in out]
    fmt = get_format("onnx")
    for arch in tqdm(pending, desc="int8 accuracy", unit="arch", disable=not progress):
        model = run.extract(arch).eval()
        x = resize(run.data.val.x, arch.resolution)
        calibration = resize(
            calibration_images(run.data.train, CALIBRATION_IMAGES), arch.resolution
        )
        candidate = fmt.quantizer(model, x[:1].clone(), calibration).quantize(None)
        value = torch_top1(candidate, x.numpy(), run.data.val.y.numpy())
        out[arch] = value
        record = {"arch": arch.to_dict(), "scheme": SCHEME, "val_top1_int8": value}
        append_text(run.folder / CACHE, json.dumps(record) + "\n")
    return out


def shortlist_report(run, evaluations, primary: str, progress: bool = True) -> dict[str, Any]:
    """The ``quantized_accuracy`` section of a search report: the shortlist's fp32 and int8
    validation accuracy, best int8 first."""
    from predictors.qdq import SCHEME

    feasible = sorted(
        (e for e in evaluations if e.feasible), key=lambda e: e.objectives[primary], reverse=True
    )
    top: dict[Arch, Any] = {}
    for e in feasible:
        top.setdefault(e.arch, e)
        if len(top) == SHORTLIST:
            break
    int8 = int8_accuracy(run, list(top), progress)
    rows = [
        {
            "arch": arch.to_dict(),
            "val_top1_fp32": e.objectives[primary],
            "val_top1_int8": int8[arch],
            "constraints": dict(e.constraints),
        }
        for arch, e in top.items()
    ]
    rows.sort(key=lambda r: r["val_top1_int8"], reverse=True)
    return {"scheme": SCHEME, "split": "val", "cache": CACHE, "shortlist": rows}
