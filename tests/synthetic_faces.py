"""Synthetic face-like photos for tests: an oval face of a random skin tone with eyes, brows and a
mouth on a coloured background, written in the CelebA or FFHQ-thumbnails folder layout."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw


def face(rng: random.Random, w: int, h: int) -> Image.Image:
    bg = tuple(rng.randrange(40, 220) for _ in range(3))
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    cx, cy = w / 2 + rng.uniform(-0.05, 0.05) * w, h / 2 + rng.uniform(-0.05, 0.05) * h
    fw, fh = w * rng.uniform(0.28, 0.36), h * rng.uniform(0.30, 0.38)
    tone = rng.randrange(90, 235)
    skin = (tone, int(tone * rng.uniform(0.7, 0.85)), int(tone * rng.uniform(0.55, 0.7)))
    hair = tuple(rng.randrange(0, 120) for _ in range(3))
    d.ellipse([cx - fw * 1.08, cy - fh * 1.15, cx + fw * 1.08, cy + fh * 0.4], fill=hair)
    d.ellipse([cx - fw, cy - fh, cx + fw, cy + fh], fill=skin)
    for sx in (-1, 1):
        ex, ey, r = cx + sx * fw * 0.4, cy - fh * 0.15, fw * 0.12
        d.ellipse([ex - r * 1.4, ey - r, ex + r * 1.4, ey + r], fill=(245, 245, 245))
        d.ellipse([ex - r * 0.6, ey - r * 0.6, ex + r * 0.6, ey + r * 0.6], fill=(40, 30, 20))
        d.line([ex - r * 1.5, ey - r * 2, ex + r * 1.5, ey - r * 2.2], fill=hair, width=max(1, int(r / 2)))
    d.arc([cx - fw * 0.4, cy + fh * 0.2, cx + fw * 0.4, cy + fh * 0.6], 20, 160, fill=(150, 40, 50),
          width=max(1, int(fw / 12)))
    return img


def write_celeba(root: Path, n: int, seed: int = 0) -> Path:
    """CelebA's aligned layout: ROOT/img_align_celeba/000001.jpg ... (178 x 218 JPEG)."""
    rng = random.Random(seed)
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True)
    for i in range(n):
        face(rng, 178, 218).save(folder / f"{i + 1:06d}.jpg", quality=90)
    return folder


def write_ffhq_thumbnails(root: Path, n: int, seed: int = 1, per_folder: int = 8) -> Path:
    """FFHQ's thumbnails layout: ROOT/thumbnails128x128/00000/00000.png ... (subfolders of 1000 in
    the real set; ``per_folder`` here)."""
    rng = random.Random(seed)
    folder = root / "thumbnails128x128"
    for i in range(n):
        sub = folder / f"{(i // per_folder) * 1000:05d}"
        sub.mkdir(parents=True, exist_ok=True)
        face(rng, 128, 128).save(sub / f"{i:05d}.png")
    return folder
