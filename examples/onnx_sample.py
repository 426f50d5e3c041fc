"""Run a generator exported by ``ganforge export RUN --format onnx`` without PyTorch or ganforge.

Needs only onnxruntime, numpy and Pillow::

    python examples/onnx_sample.py model.onnx --out grid.png --n 16 --seed 0 [--label 3]
    python examples/onnx_sample.py translator.onnx --input photo.png --out translated.png
    python examples/onnx_sample.py toy.onnx --out points.csv --n 1000   # 2-D toy models

Noise models get a grid of ``--n`` samples; class-conditional ones take ``--label`` (default: a
random class per sample); image-to-image models translate ``--input``. What the model takes is
read from the file's ``ganforge`` metadata record.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Images (N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8."""
    return ((np.clip(x, -1, 1) + 1) * 127.5).round().astype(np.uint8).transpose(0, 2, 3, 1)


def grid(images: np.ndarray, nrow: int, pad: int = 2) -> Image.Image:
    n, h, w, c = images.shape
    rows = math.ceil(n / nrow)
    canvas = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, nrow)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = img
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas)


def read_input(path: str, shape: list) -> np.ndarray:
    """An image file -> (1, C, H, W) float32 in [-1, 1] at the model's input size."""
    c, h, w = shape
    img = Image.open(path).convert("L" if c == 1 else "RGB").resize((w, h), Image.BICUBIC)
    x = np.asarray(img, dtype=np.float32).reshape(h, w, c).transpose(2, 0, 1)
    return (x / 127.5 - 1)[None]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a .onnx file written by `ganforge export`")
    p.add_argument("--out", default="samples.png")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", type=int, default=None, help="class-conditional models: this class only")
    p.add_argument("--input", default=None, help="image-to-image models: the image to translate")
    args = p.parse_args(argv)

    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    meta = json.loads(sess.get_modelmeta().custom_metadata_map["ganforge"])
    names = [i["name"] for i in meta["inputs"]]
    rng = np.random.default_rng(args.seed)
    feed = {}
    if "image" in names:
        if not args.input:
            print("error: this is an image-to-image model: give --input IMAGE", file=sys.stderr)
            return 2
        feed["image"] = read_input(args.input, meta["inputs"][names.index("image")]["shape"][1:])
    else:
        z_dim = meta["z_dim"]
        if meta["latent"] == "uniform":
            feed["z"] = rng.uniform(-1, 1, (args.n, z_dim)).astype(np.float32)
        else:
            feed["z"] = rng.standard_normal((args.n, z_dim)).astype(np.float32)
        if "label" in names:
            k = meta["num_classes"]
            labels = np.full(args.n, args.label) if args.label is not None else rng.integers(0, k, args.n)
            feed["label"] = labels.astype(np.int64)
    images = sess.run(None, feed)[0]  # (N, C, H, W) in [-1, 1]
    if images.ndim != 4:  # a toy model: points, not images
        np.savetxt(args.out, images, delimiter=",", fmt="%.6f")
        print(f"wrote {args.out}: {len(images)} points of dimension {images.shape[1]} (CSV)")
        return 0
    nrow = max(1, int(round(math.sqrt(len(images)))))
    grid(to_uint8(images), nrow).save(args.out)
    print(f"wrote {args.out}: {len(images)} image(s) of shape {tuple(images.shape[1:])} "
          f"from {meta['arch']} ({meta['kind']}, step {meta['step']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
