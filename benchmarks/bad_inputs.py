"""The bad-input part of the reliability benchmark: user mistakes and unusual-but-valid inputs
(configs, data folders, odd image files, damaged run folders and checkpoints, a malicious pickle)
through the real ``ganforge`` CLI, one subprocess each. Run by ``python -m benchmarks.reliability``.

The planted pickle's payload only creates a marker file (``touch PWNED-...``); a case passes when
ganforge refused to unpickle it and the marker does not exist.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

from .common import only_run, quote, run_child, train_argv


class _Payload:
    """Unpickling this calls ``fn(*args)`` (the classic pickle code-execution payload)."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _img(path: Path, mode: str = "RGB", size=(20, 20), color=None, fmt: str | None = None, **kw) -> Path:
    """A small image file of a PIL ``mode`` (RGB, RGBA, P, CMYK, I;16, L)."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        a = (np.arange(size[0] * size[1], dtype=np.uint16).reshape(size[1], size[0]) * 97) % 65535
        im = Image.fromarray(a.astype(np.uint16))
        if im.mode != "I;16":
            im = im.convert("I;16")
    elif mode == "P":
        im = Image.new("RGB", size, color or (30, 120, 200)).convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        im = Image.new(mode, size, color if color is not None else
                       {"RGBA": (200, 30, 60, 128), "CMYK": (0, 255, 255, 0), "L": 90}.get(mode, (200, 30, 60)))
    im.save(path, format=fmt, **kw)
    return path


def _png_header_only(path: Path, w: int, h: int) -> Path:
    """A tiny PNG whose header claims ``w`` x ``h`` pixels (what a decompression bomb looks like
    before it is decoded): signature, IHDR, an empty IDAT, IEND."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit gray
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))
    return path


def _broken_images(d: Path) -> Path:
    import io

    import numpy as np
    from PIL import Image

    d.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(buf, "PNG")
    (d / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (d / "zero.png").write_bytes(b"")
    (d / "text.png").write_text("this is not an image\n")
    return d


def _flip_byte(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def plant_pickle(ckpt: Path, marker: Path) -> None:
    """state.pt -> a pickle whose loading would run ``touch marker``; the manifest is fixed so the
    checksum passes (only the safe loader stands in the way)."""
    import hashlib

    torch.save({"step": 1, "evil": _Payload(os.system, (f"touch '{marker}'",))}, ckpt / "state.pt")
    manifest = json.loads((ckpt / "manifest.json").read_text())
    manifest["files"]["state.pt"] = hashlib.sha256((ckpt / "state.pt").read_bytes()).hexdigest()
    (ckpt / "manifest.json").write_text(json.dumps(manifest))


TOY_TINY = ["model.arch=mlp", "data.name=ring8", "model.z_dim=4", "model.g.hidden=16", "model.d.hidden=16",
            "train.batch_size=32", "train.steps=4", "train.log_every=2", "train.sample_every=0",
            "train.ckpt_every=0", "train.progress=false", "train.threads=1", "train.device=cpu"]
IMG_TINY = ["data.image_size=16", "model.g.width=8", "model.d.width=8", "train.steps=2", "train.batch_size=4",
            "train.grid_size=4", "train.log_every=1", "train.sample_every=0", "train.ckpt_every=0",
            "train.progress=false", "train.threads=1", "train.device=cpu"]


def _sets(overrides) -> list[str]:
    out = []
    for o in overrides:
        out += ["--set", o]
    return out


def bad_input_cases(w: Path) -> list[dict]:
    """The user mistakes (and unusual-but-valid inputs) tried by :func:`bad_inputs`.

    Each case: ``id``, ``input`` (what it is), ``argv`` (after ``ganforge``), ``expect`` ("error"
    = exit 2 with a one-line message; "ok" = exit 0), optional ``setup`` (a callable run first),
    ``needs`` (fixture runs: "toy", "dcgan"), ``check`` (callable(result) -> problem or None).
    """
    runs = w / "runs"
    img = lambda folder: ["train", "dcgan", *_sets(IMG_TINY + [f"data.name=folder:{folder}", f"out={runs}"])]
    toy = lambda *more: ["train", "vanilla", *_sets(TOY_TINY + [f"out={runs}", *more])]
    notrun = w / "not-a-run"
    R = lambda name: w / "runs-fixtures" / name  # per-case copies of the toy run

    def copy_toy(name, mutate=None):
        def setup():
            import shutil
            shutil.copytree(w / "fixtures" / "toy", R(name))
            if mutate:
                mutate(R(name))
        return setup

    def only_ckpt(run: Path) -> Path:
        return sorted((run / "checkpoints").iterdir())[-1]

    def corrupt(run):
        _flip_byte(only_ckpt(run) / "state.pt")

    def foreign(run):  # the run's checkpoints replaced by a DCGAN run's (under its own, consistent name)
        import shutil
        src = sorted((w / "fixtures" / "dcgan" / "checkpoints").iterdir())[-1]
        for own in (run / "checkpoints").glob("ckpt-*"):
            shutil.rmtree(own)
        shutil.copytree(src, run / "checkpoints" / src.name)

    def evil(run):
        plant_pickle(only_ckpt(run), w / "PWNED-resume")

    def evil_sample(run):
        plant_pickle(only_ckpt(run), w / "PWNED-sample")

    def bad_cfg(run):
        (run / "config.yaml").write_text("train: [unclosed\n  steps: 4\n")

    def no_marker(name):
        return lambda res: f"{name} was created: the payload ran" if (w / name).exists() else None

    def says(text):
        return lambda res: None if text in res.stdout + res.stderr else f"output lacks '{text}'"

    def mk_files():
        _img(w / "cmyk" / "a.jpg", "CMYK", fmt="JPEG")
        _img(w / "cmyk" / "b.jpg", "CMYK", color=(255, 0, 0, 0), fmt="JPEG")
        _img(w / "gray16" / "a.png", "I;16")
        _img(w / "gray16" / "b.png", "I;16", size=(24, 20))
        _img(w / "palette" / "a.png", "P")
        _img(w / "palette" / "b.png", "P", size=(30, 20))
        _img(w / "rgba" / "a.png", "RGBA")
        _img(w / "rgba" / "b.png", "RGBA", color=(0, 0, 255, 0))
        _png_header_only(w / "huge" / "huge.png", 9000, 9000)
        _png_header_only(w / "bomb" / "bomb.png", 50000, 50000)
        _img(w / "bomb" / "good-1.png", "RGB")
        _img(w / "bomb" / "good-2.png", "RGB", color=(10, 200, 10))
        _broken_images(w / "broken")
        (w / "empty").mkdir(parents=True, exist_ok=True)
        (w / "a-file.txt").write_text("not a folder\n")
        notrun.mkdir(parents=True, exist_ok=True)
        (notrun / "notes.txt").write_text("just a folder\n")
        (w / "broken.yaml").write_text("train: [unclosed\n  steps: 4\n")
        (w / "empty-root").mkdir(parents=True, exist_ok=True)
        _img(w / "fixture-images" / "a.png", "RGB")  # the data of the DCGAN fixture run
        _img(w / "fixture-images" / "b.png", "RGB", color=(10, 200, 10))

    cases = [
        # configuration
        dict(id="unknown-key", input="unknown config key `train.stepz`", argv=toy("train.stepz=10"), expect="error"),
        dict(id="bad-type", input="bad value type `train.steps=abc`", argv=toy("train.steps=abc"), expect="error"),
        dict(id="bad-range", input="out-of-range value `train.batch_size=0`", argv=toy("train.batch_size=0"),
             expect="error"),
        dict(id="bad-lr", input="`optim.lr_d=nan`", argv=toy("optim.lr_d=nan"), expect="error"),
        dict(id="unknown-preset", input="unknown preset `dcgna`", argv=["train", "dcgna"], expect="error"),
        dict(id="bad-override", input="override without `=` (`--set train.steps`)", argv=["train", "--set", "train.steps"],
             expect="error"),
        dict(id="missing-yaml", input="`-c` config file that does not exist", argv=["train", "-c", str(w / "nope.yaml")],
             expect="error"),
        dict(id="broken-yaml", input="`-c` file that is not valid YAML", argv=["train", "-c", str(w / "broken.yaml")],
             expect="error"),
        dict(id="no-cuda", input="`train.device=cuda` on a machine without CUDA", argv=toy("train.device=cuda"),
             expect="ok" if torch.cuda.is_available() else "error"),
        # data
        dict(id="missing-folder", input="`data.name=folder:` a folder that does not exist",
             argv=img(w / "no-such-folder"), expect="error"),
        dict(id="empty-folder", input="empty folder", argv=img(w / "empty"), expect="error"),
        dict(id="file-not-folder", input="`folder:` a file, not a folder", argv=img(w / "a-file.txt"), expect="error"),
        dict(id="only-broken", input="folder of only broken images (truncated PNG, zero-byte .png, text file named .png)",
             argv=img(w / "broken"), expect="error"),
        dict(id="missing-dataset", input="`data.name=mnist` offline, empty root, `data.download=false`",
             argv=["train", "dcgan", *_sets(["data.name=mnist", f"data.root={w / 'empty-root'}",
                                            "data.download=false", f"out={runs}"])], expect="error"),
        dict(id="cmyk-jpeg", input="CMYK JPEGs (2 files)", argv=img(w / "cmyk"), expect="ok", check=says("2 images 3x16x16")),
        dict(id="png16", input="16-bit grayscale PNGs (`I;16`, 2 files)", argv=img(w / "gray16"), expect="ok",
             check=says("2 images 1x16x16")),
        dict(id="palette", input="palette PNGs (mode `P`, 2 files)", argv=img(w / "palette"), expect="ok",
             check=says("2 images 3x16x16")),
        dict(id="rgba", input="RGBA PNGs with transparency (2 files)", argv=img(w / "rgba"), expect="ok",
             check=says("2 images 3x16x16")),
        dict(id="huge", input="huge image alone: PNG header says 9000x9000 (81 MP > ganforge's 8192² guard)",
             argv=img(w / "huge"), expect="error", check=says("too large")),
        dict(id="bomb", input="decompression bomb (PNG header 50000x50000, 2.5 GP) beside 2 good PNGs",
             argv=img(w / "bomb"), expect="ok", check=says("1 unreadable files skipped")),
        # run folders and checkpoints
        dict(id="resume-not-run", input="`--resume` on a folder that is not a run folder",
             argv=["train", "--resume", str(notrun)], expect="error"),
        dict(id="resume-missing", input="`--resume` on a path that does not exist",
             argv=["train", "--resume", str(w / "no-such-run")], expect="error"),
        dict(id="resume-with-preset", input="`train dcgan --resume RUN` (preset and resume together)",
             argv=["train", "dcgan", "--resume", str(R("toy-preset"))], expect="error", needs={"toy"},
             setup=copy_toy("toy-preset")),
        dict(id="resume-corrupt", input="`--resume` on a run whose only checkpoint is corrupted (state.pt byte flipped)",
             argv=["train", "--resume", str(R("toy-corrupt"))], expect="error", needs={"toy"},
             setup=copy_toy("toy-corrupt", corrupt), check=says("no usable checkpoint")),
        dict(id="resume-bad-config", input="`--resume` on a run whose config.yaml is not valid YAML",
             argv=["train", "--resume", str(R("toy-badcfg"))], expect="error", needs={"toy"},
             setup=copy_toy("toy-badcfg", bad_cfg)),
        dict(id="resume-other-width", input="`--resume RUN --set model.d.hidden=32` (checkpoint from another architecture)",
             argv=["train", "--resume", str(R("toy-width")), "--set", "model.d.hidden=32", "--set", "train.steps=8"],
             expect="error", needs={"toy"}, setup=copy_toy("toy-width"), check=says("different model")),
        dict(id="resume-foreign-ckpt", input="`--resume` on an MLP run whose checkpoints were replaced by a DCGAN run's",
             argv=["train", "--resume", str(R("toy-foreign")), "--set", "train.steps=200"], expect="error",
             needs={"toy", "dcgan"}, setup=copy_toy("toy-foreign", foreign), check=says("different model")),
        dict(id="sample-foreign-ckpt", input="`sample` on that run (its checkpoint from a DCGAN run)",
             argv=["sample", str(R("toy-foreign2")), "--n", "4", "--out", str(w / "s-foreign.png")], expect="error",
             needs={"toy", "dcgan"}, setup=copy_toy("toy-foreign2", foreign)),
        dict(id="resume-evil-pickle", input="`--resume` on a run whose state.pt is a malicious pickle "
                                            "(would `touch PWNED-resume`; manifest checksum fixed)",
             argv=["train", "--resume", str(R("toy-evil")), "--set", "train.steps=8"], expect="error",
             needs={"toy"}, setup=copy_toy("toy-evil", evil), check=no_marker("PWNED-resume")),
        dict(id="sample-evil-pickle", input="`sample` on a run with the malicious state.pt (sampling reads only safetensors)",
             argv=["sample", str(R("toy-evil2")), "--n", "4", "--out", str(w / "s-evil.png")], expect="ok",
             needs={"toy"}, setup=copy_toy("toy-evil2", evil_sample), check=no_marker("PWNED-sample")),
        dict(id="sample-not-run", input="`sample` on a folder that is not a run folder",
             argv=["sample", str(notrun)], expect="error"),
        dict(id="eval-not-run", input="`eval` on a folder that is not a run folder", argv=["eval", str(notrun)],
             expect="error"),
        dict(id="sample-no-step", input="`sample --checkpoint 999` (no such step)",
             argv=["sample", str(w / "fixtures" / "toy"), "--checkpoint", "999"], expect="error", needs={"toy"}),
        dict(id="sample-n0", input="`sample --n 0`", argv=["sample", str(w / "fixtures" / "toy"), "--n", "0"],
             expect="error", needs={"toy"}),
        dict(id="eval-toy-run", input="`eval` on a 2-D toy run without `--metrics` (its task's default: modes)",
             argv=["eval", str(w / "fixtures" / "toy"), "--n", "500"], expect="ok", needs={"toy"},
             check=says("reverse_kl")),
        dict(id="eval-toy-fid", input="`eval --metrics fid` on a 2-D toy run",
             argv=["eval", str(w / "fixtures" / "toy"), "--metrics", "fid"], expect="error", needs={"toy"},
             check=says("image samples")),
        dict(id="eval-bad-metric", input="`eval --metrics fid,bogus`",
             argv=["eval", str(w / "fixtures" / "toy"), "--metrics", "fid,bogus", "--ref", "fashion-mnist:test"],
             expect="error", needs={"toy"}),
    ]
    for c in cases:
        c.setdefault("needs", set())
        c["_files"] = mk_files
    return cases


def _fixture_runs(w: Path, needs: set) -> None:
    """The trained runs some cases start from: a 4-step toy MLP run and a 2-step DCGAN run."""
    import shutil

    specs = {"toy": ("vanilla", TOY_TINY),
             "dcgan": ("dcgan", [*IMG_TINY, f"data.name=folder:{w / 'fixture-images'}"])}
    for name in sorted(needs):
        if (w / "fixtures" / name).is_dir():
            continue
        preset, over = specs[name]
        tmp = w / "fixtures" / f"_{name}"
        run_child(train_argv(preset, over + [f"out={tmp}"]))
        shutil.move(str(only_run(tmp)), str(w / "fixtures" / name))
        shutil.rmtree(tmp)


def _first(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def bad_inputs(work: str | Path, only=None, jobs: int = 1, timeout: float = 300) -> list[dict]:
    """Run the real CLI (a subprocess each) on every case of :func:`bad_input_cases` (or the ids in
    ``only``) and record exit status, the first line of stderr, whether a traceback appeared, and
    a verdict against the expectation."""
    from concurrent.futures import ThreadPoolExecutor

    w = Path(work)
    w.mkdir(parents=True, exist_ok=True)
    cases = [c for c in bad_input_cases(w) if only is None or c["id"] in only]
    if only is not None and len(cases) != len(set(only)):
        raise ValueError(f"unknown case ids: {sorted(set(only) - {c['id'] for c in cases})}")
    if cases:
        cases[0]["_files"]()
    _fixture_runs(w, set().union(*(c["needs"] for c in cases)) if cases else set())
    for c in cases:
        if c.get("setup"):
            c["setup"]()

    def one(c):
        argv = [sys.executable, "-m", "ganforge", *map(str, c["argv"])]
        t0 = time.perf_counter()
        res = run_child(argv, timeout=timeout, check=False)
        tb = "Traceback (most recent call last)" in res.stderr + res.stdout
        err_line = next((ln for ln in res.stderr.splitlines() if ln.startswith("error:")), "")
        problems = []
        if tb:
            problems.append("traceback")
        if c["expect"] == "error" and res.returncode == 0:
            problems.append("exit 0 on an error")
        elif c["expect"] == "error" and res.returncode != 2:
            problems.append(f"exit {res.returncode}, not 2")
        elif c["expect"] == "ok" and res.returncode != 0:
            problems.append(f"failed with exit {res.returncode}")
        if c["expect"] == "error" and res.returncode != 0 and not err_line:
            problems.append("no `error:` line")
        if c.get("check"):
            p = c["check"](res)
            if p:
                problems.append(p)
        data_line = next((ln for ln in res.stdout.splitlines()
                          if ln.startswith(("data:", "wrote", "done:"))), "").replace(str(w), "$W")
        return {"id": c["id"], "input": c["input"], "command": quote(argv).replace(str(w), "$W"),
                "expect": c["expect"], "exit": res.returncode,
                "stderr_first_line": _first(res.stderr).replace(str(w), "$W"),
                "error_line": err_line.replace(str(w), "$W"), "stderr_lines": len(res.stderr.splitlines()),
                "traceback": tb,
                "stdout_note": data_line, "ok": not problems, "problems": problems,
                "seconds": time.perf_counter() - t0,
                "stderr": res.stderr[-4000:] if (tb or problems) else res.stderr[:1000]}

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        rows = list(pool.map(one, cases))
    for r in rows:
        print(f"{'ok ' if r['ok'] else 'BUG'} {r['id']:20s} exit {r['exit']} {r['stderr_first_line'][:110]}"
              + (f"  <- {', '.join(r['problems'])}" if r["problems"] else ""), flush=True)
    return rows

