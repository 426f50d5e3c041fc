"""Run folders for the studio tests: fake ones (made-up metrics, no weights) and two real tiny
runs trained through the library (a class-conditional DCGAN and a pix2pix)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

TINY = ["data.limit=64", "train.progress=false", "train.threads=1", "train.device=cpu", "train.log_every=1"]


def train_tiny(out: Path, preset: str, extra: list[str]) -> Path:
    from ganforge.config import resolve
    from ganforge.session import train
    return train(resolve(preset, None, [f"out={out}", *TINY, *extra]), quiet=True)


def real_runs(out: Path) -> dict[str, Path]:
    """A 4-step class-conditional DCGAN (samples and checkpoints at steps 2 and 4) and a 2-step
    pix2pix; ~1.5 s together on one core."""
    cond = train_tiny(out, "projection-dcgan", ["model.g.width=8", "model.d.width=8", "model.z_dim=8",
                                                "train.batch_size=16", "train.steps=4", "train.sample_every=2",
                                                "train.ckpt_every=2"])
    p2p = train_tiny(out, "pix2pix", ["model.g.width=4", "model.d.width=4", "train.batch_size=8", "train.steps=2",
                                      "train.sample_every=0", "train.ckpt_every=0"])
    return {"cond": cond, "pix2pix": p2p}


def age(path: Path, seconds: float) -> None:
    """Make every file and folder under ``path`` look ``seconds`` old."""
    t = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (t, t))


def png_bytes(size=(20, 20), mode="L", colour=128) -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(side: int = 9000) -> bytes:
    """A small PNG file that decodes to side x side pixels (81 million for 9000): written row
    by row, so making it needs no big image in memory."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * side  # filter byte + one grey byte per pixel
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj))
