"""The end-to-end demo on the embedded default: what ``make demo`` runs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

import search_spaces
from nas.extract import export_onnx, extract
from nas.graph import count
from nas.runs import write_atomic
from nas.supernet import Supernet

DEMO_SPACE = "hybrid-tiny"


def run_demo(out: Path, seed: int = 0) -> Path:
    """List the spaces, sample archs of ``hybrid-tiny``, extract one to ONNX and check it in
    ONNX Runtime. Returns the ONNX file's path."""
    import onnxruntime as ort

    out.mkdir(parents=True, exist_ok=True)
    print("built-in spaces:")
    for name in search_spaces.names():
        print(f"  {name:14s} {search_spaces.get(name).size():.3e} archs")

    space = search_spaces.get(DEMO_SPACE)
    rng = random.Random(seed)
    samples = []
    print(f"\nsampled archs of {DEMO_SPACE}:")
    for _ in range(5):
        arch = space.sample(rng)
        macs, params = count(space, arch)
        samples.append({"arch": arch.to_dict(), "macs": macs, "params": params})
        print(
            f"  resolution {arch.resolution:3d}  {macs / 1e6:7.2f}M MACs  {params / 1e3:7.1f}K params"
        )
    write_atomic(out / "samples.jsonl", "".join(json.dumps(s) + "\n" for s in samples))

    torch.manual_seed(seed)
    supernet = Supernet(space).eval()
    arch = space.sample(rng)
    model = extract(supernet, arch)
    arch.save(out / "arch.json")
    onnx_path = export_onnx(model, space, arch, out / "model.onnx")
    image = torch.randn(1, space.in_channels, arch.resolution, arch.resolution)
    with torch.no_grad():
        expected = model(image).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": image.numpy()})[0]
    print(f"\nextracted {arch.space} subnet -> {onnx_path}")
    print(f"ONNX Runtime vs PyTorch: max abs difference {np.abs(got - expected).max():.2e}")
    print(f"arch: {out / 'arch.json'}   samples: {out / 'samples.jsonl'}")
    return onnx_path
