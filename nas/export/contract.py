"""The deployment contract of a model card: what goes in, what comes out, and how to feed it.

:func:`input_spec` writes the input section from a run's :class:`~nas.train.data.Preprocessing`
(shape, layout, dtype, value range, colour, per-channel mean and std, resize rule);
:class:`InputContract` reads it back and turns image files or arrays into the model's input
exactly as training did: pixels scaled to [0, 1], normalised per channel, resized bilinearly
(``align_corners=False``, no antialiasing) to the model's resolution. :func:`snippet` is a short
script that does the same with NumPy, Pillow, PyTorch and the format's runtime only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import InputError
from nas.train.data import Preprocessing, as_unit_images

LAYOUT = "NCHW"
RESIZE_RULE = (
    "after normalisation, resize to resolution x resolution with bilinear interpolation "
    "(torch.nn.functional.interpolate, align_corners=False, antialias=False); images of an "
    "image-folder data set are first resized to stored_size x stored_size (PIL, bilinear)"
)


class ContractError(InputError):
    """A card lacks the input contract, or an input does not fit it."""


def input_spec(pre: Preprocessing, resolution: int, batch: int | None) -> dict[str, Any]:
    """The card's ``input`` section."""
    return {
        "name": "image",
        "shape": ["batch" if batch is None else batch, pre.channels, resolution, resolution],
        "layout": LAYOUT,
        "dtype": "float32",
        "color": pre.color,
        "value_range": [0.0, 1.0],
        "scale": "8-bit pixels / 255 (16-bit / 65535) to [0, 1] before normalisation",
        "mean": list(pre.mean),
        "std": list(pre.std),
        "normalise": "(x - mean) / std per channel",
        "resize": {
            "size": [resolution, resolution],
            "method": "bilinear",
            "align_corners": False,
            "antialias": False,
            "stored_size": pre.stored_size,
            "rule": RESIZE_RULE,
        },
    }


def output_spec(classes: list[str], batch: int | None) -> dict[str, Any]:
    """The card's ``output`` section."""
    return {
        "name": "logits",
        "shape": ["batch" if batch is None else batch, len(classes)],
        "dtype": "float32",
        "meaning": "unnormalised class scores; softmax gives probabilities, argmax the class "
        "index into `classes`",
    }


@dataclass(frozen=True)
class InputContract:
    """The input section of a card, read back: turns images into model inputs."""

    preprocessing: Preprocessing
    resolution: int
    batch: int | None

    @classmethod
    def from_card(cls, card: dict[str, Any], where: str = "card") -> InputContract:
        spec = card.get("input")
        if not isinstance(spec, dict) or "mean" not in spec or "std" not in spec:
            raise ContractError(
                f"{where} has no input contract (mean, std, shape): extract the model with "
                "`nas extract --run RUN ...`, which records how the run fed its images"
            )
        try:
            shape = spec["shape"]
            pre = Preprocessing.from_dict(
                {
                    "mean": spec["mean"],
                    "std": spec["std"],
                    "stored_size": spec.get("resize", {}).get("stored_size"),
                }
            )
            batch = shape[0] if isinstance(shape[0], int) else None
            return cls(pre, int(shape[-1]), batch)
        except (InputError, KeyError, IndexError, TypeError, ValueError) as err:
            raise ContractError(f"{where}: malformed input section ({err})") from None

    def from_unit_images(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, C) images in [0, 1] -> (N, C, R, R) float32 model inputs."""
        import torch

        from nas.train.data import resize

        if images.shape[-1] != self.preprocessing.channels:
            raise ContractError(
                f"images have {images.shape[-1]} channel(s); the model takes "
                f"{self.preprocessing.channels} ({self.preprocessing.color})"
            )
        x = self.preprocessing.normalise(images).transpose(0, 3, 1, 2)
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        return resize(x, self.resolution).numpy()

    def read_image(self, path: Path) -> np.ndarray:
        """An image file as a (1, C, R, R) model input."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                pixels = unit_pixels(img, self.preprocessing)
        except FileNotFoundError:
            raise ContractError(f"image file {path} does not exist") from None
        except (OSError, UnidentifiedImageError) as err:
            raise ContractError(f"{path} is not a readable image ({err})") from None
        return self.from_unit_images(pixels[None])

    def read_npz(self, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
        """(model inputs, labels or None) from an ``.npz`` with ``x`` (and ``y``) in the layouts
        ``nas train --data FILE.npz`` accepts (uint8 pixels, or floats in [0, 1])."""
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except FileNotFoundError:
            raise ContractError(f"{path} does not exist") from None
        except (OSError, ValueError) as err:
            raise ContractError(f"{path} is not a readable .npz file ({err})") from None
        if "x" not in arrays:
            raise ContractError(f"{path} must hold an array 'x' (and optionally 'y')")
        try:
            images = as_unit_images(arrays["x"], f"{path}: x")
        except InputError as err:
            raise ContractError(str(err)) from None
        labels = arrays.get("y")
        if labels is not None:
            labels = np.asarray(labels).ravel()
            if len(labels) != len(images):
                raise ContractError(f"{path}: {len(images)} images but {len(labels)} labels")
        return self.from_unit_images(images), labels


def unit_pixels(img, pre: Preprocessing) -> np.ndarray:
    """A PIL image as (H, W, C) float32 in [0, 1], in the run's colour mode and stored size."""
    from PIL import Image

    scale = 65535.0 if img.mode.startswith("I;16") else 255.0
    if scale == 255.0 or pre.color != "L":
        img = img.convert(pre.color)
        scale = 255.0
    if pre.stored_size:
        img = img.resize((pre.stored_size, pre.stored_size), Image.BILINEAR)
    array = np.asarray(img, dtype=np.float32) / scale
    return array.reshape(array.shape[0], array.shape[1], -1)


_RUN = {
    "onnx": (
        "import onnxruntime as ort\n",
        'session = ort.InferenceSession("{model}")\n'
        'logits = session.run(None, {{"image": x.numpy()}})[0]\n',
    ),
    "executorch": (
        "from executorch.runtime import Runtime\n",
        'method = Runtime.get().load_program("{model}").load_method("forward")\n'
        "logits = method.execute([x])[0].numpy()\n",
    ),
    "tflite": (
        "from ai_edge_litert.interpreter import Interpreter\n",
        'interpreter = Interpreter(model_path="{model}")\n'
        "interpreter.allocate_tensors()\n"
        "inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()[0]\n"
        "x = x.numpy()\n"
        'if inp["dtype"] != np.float32:  # an int8 file: quantize as the card says\n'
        '    scale, zero = inp["quantization"]\n'
        '    info = np.iinfo(inp["dtype"])\n'
        '    x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(inp["dtype"])\n'
        'interpreter.set_tensor(inp["index"], x)\n'
        "interpreter.invoke()\n"
        'logits = interpreter.get_tensor(outp["index"])\n',
    ),
    "torchscript": (
        "",
        'logits = torch.jit.load("{model}")(x).detach().numpy()\n',
    ),
    "pt": (
        "from nas.extract import load_model\n",
        'model, space, arch = load_model("{model}")\nlogits = model(x).detach().numpy()\n',
    ),
}


def snippet(fmt: str, model: str, card: str) -> str:
    """A runnable script: one image file (argv[1]) through the model with the card's contract;
    prints the top class."""
    imports, run = _RUN[fmt]
    return (
        "import json, sys\n"
        "import numpy as np, torch\n"
        "from PIL import Image\n" + imports + f'spec = json.load(open("{card}"))["input"]\n'
        'img = Image.open(sys.argv[1]).convert(spec["color"])\n'
        'if spec["resize"]["stored_size"]:\n'
        '    side = spec["resize"]["stored_size"]\n'
        "    img = img.resize((side, side), Image.BILINEAR)\n"
        "pixels = np.asarray(img, np.float32) / 255.0\n"
        "pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)\n"
        'x = (pixels - np.float32(spec["mean"])) / np.float32(spec["std"])\n'
        "x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))\n"
        "x = torch.nn.functional.interpolate(\n"
        '    x, size=spec["resize"]["size"], mode="bilinear", align_corners=False\n'
        ")\n"
        + run.format(model=model)
        + f'print(json.load(open("{card}"))["classes"][int(logits[0].argmax())])\n'
    )
