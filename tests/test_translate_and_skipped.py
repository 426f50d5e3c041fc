"""`ganforge translate` / `upscale` on real folders: the relative folder structure is kept, no two
inputs share an output, unreadable inputs are skipped with a reason, a grayscale model writes
grayscale PNGs, large folders get a progress bar; and training on a folder names the files it
skipped (the first few on screen, all of them in the run folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from ganforge.cli import main
from ganforge.config import resolve
from ganforge.data import folders as gf
from ganforge.data import images as gi
from ganforge.imagefiles import output_name, translate_files
from ganforge.loading import load
from ganforge.session import train

TINY = ("model.g.width=8", "model.d.width=8", "train.batch_size=4", "train.steps=1", "data.limit=8",
        "train.log_every=1", "train.sample_every=0", "train.ckpt_every=0", "train.progress=false",
        "train.threads=1", "train.device=cpu", "loss.terms.feature=0")


@pytest.fixture(scope="module")
def pix2pix(tmp_path_factory) -> Path:
    if not (gi.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    torch.set_num_threads(1)
    return train(resolve("pix2pix", overrides=[*TINY, f"out={tmp_path_factory.mktemp('runs')}"]), quiet=True)


def _img(path: Path, value: int = 100, mode: str = "L", fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (28, 28), value if mode == "L" else (value, 20, 200)).save(path, format=fmt)
    return path


def _messy(root: Path) -> Path:
    _img(root / "a" / "x.png", 10)
    _img(root / "b" / "x.png", 200)
    _img(root / "x.png", 60)
    _img(root / "x.jpg", 120, mode="RGB", fmt="JPEG")
    _img(root / "sub" / "deep" / "y.png", 30)
    (root / "broken.png").write_bytes(_img(root / "tmp.png").read_bytes()[:40])  # cut short
    (root / "tmp.png").unlink()
    (root / "notes.jpg").write_text("not a picture")
    return root


def _outputs(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_translate_keeps_the_folder_structure_and_skips_unreadable_inputs(pix2pix, tmp_path, capsys):
    src = _messy(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["translate", str(pix2pix), str(src), "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert _outputs(out) == ["a/x.png", "b/x.png", "sub/deep/y.png", "x.jpg.png", "x.png"]
    assert "wrote 5 images" in cap.out
    err = cap.err.splitlines()
    assert err[0] == "warning: 2 unreadable files skipped:"
    assert err[1].startswith(f"  {src / 'broken.png'}: ") and err[2].startswith(f"  {src / 'notes.jpg'}: ")
    assert "UnidentifiedImageError" in err[2] or "OSError" in err[2]
    # a grayscale model writes grayscale PNGs, and different inputs give different outputs
    pixels = {}
    for name in _outputs(out):
        with Image.open(out / name) as im:
            assert im.mode == "L" and im.size == (28, 28), name
            pixels[name] = im.tobytes()
    assert pixels["a/x.png"] != pixels["b/x.png"]


def test_several_inputs_keep_their_names_apart(pix2pix, tmp_path, capsys, monkeypatch):
    src = _messy(tmp_path / "in")
    monkeypatch.chdir(tmp_path)
    assert main(["translate", str(pix2pix), "in/a", "in/b", "--out", "o1"]) == 0
    assert _outputs(tmp_path / "o1") == ["a/x.png", "b/x.png"]
    assert main(["translate", str(pix2pix), str(src / "x.png"), str(src / "x.jpg"), "--out", "o2"]) == 0
    assert _outputs(tmp_path / "o2") == ["x.jpg.png", "x.png"]
    assert output_name(Path("p/q.JPEG")) == Path("p/q.JPEG.png") and output_name(Path("q.png")) == Path("q.png")
    # an input named like another's output is a clear error, not a silent overwrite
    _img(src / "x.jpg.png")
    assert main(["translate", str(pix2pix), str(src / "x.jpg"), str(src / "x.jpg.png"), "--out", "o3"]) == 2
    assert "would both be written to" in capsys.readouterr().err


def test_many_unreadable_inputs_are_counted_and_none_readable_is_one_line(pix2pix, tmp_path, capsys):
    src = tmp_path / "in"
    _img(src / "good.png")
    for i in range(8):
        (src / f"bad{i}.png").write_bytes(b"junk")
    assert main(["translate", str(pix2pix), str(src), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "warning: 8 unreadable files skipped:" and len(err) == 7 and err[-1] == "  ... and 3 more"
    (src / "good.png").unlink()
    assert main(["translate", str(pix2pix), str(src), "--out", str(tmp_path / "o2")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: none of the 8 inputs could be read (e.g. ")


def test_a_large_folder_gets_a_progress_bar(pix2pix, tmp_path, capsys, monkeypatch):
    src = tmp_path / "in"
    for i in range(5):
        _img(src / f"{i}.png", i * 40)
    g = load(pix2pix)
    translate_files(g, [str(src)], tmp_path / "quiet")
    assert "translating" not in capsys.readouterr().err  # 5 files: no bar
    monkeypatch.setattr(gf, "PROGRESS_MIN_FILES", 3)
    done = translate_files(g, [str(src)], tmp_path / "bar")
    assert "translating" in capsys.readouterr().err and len(done.written) == 5


def test_training_on_a_folder_names_the_skipped_files(tmp_path, capsys, one_thread):
    src = tmp_path / "imgs"
    for i in range(6):
        _img(src / f"g{i}.png", i * 40)
    for i in range(7):
        (src / f"bad{i}.png").write_bytes(b"not an image %d" % i)
    args = ["train", "dcgan"]
    for o in (f"data.name=folder:{src}", "data.image_size=16", "model.g.width=8", "model.d.width=8",
              "train.batch_size=4", "train.steps=1", "train.progress=false", "train.sample_every=0",
              "train.ckpt_every=0", "train.threads=1", f"out={tmp_path / 'runs'}"):
        args += ["--set", o]
    assert main(args) == 0
    (run,) = (tmp_path / "runs").iterdir()
    lines = capsys.readouterr().out.splitlines()
    i = lines.index("7 unreadable files skipped:")
    assert lines[i + 1] == f"  {src / 'bad0.png'}: UnidentifiedImageError: cannot identify image file"
    assert lines[i + 6] == "  ... and 2 more" and lines[i + 7] == f"  (the full list: {run / 'skipped.txt'})"
    listed = (run / "skipped.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in listed] == [str(src / f"bad{i}.png") for i in range(7)]
    assert all("UnidentifiedImageError" in line.split("\t")[1] for line in listed)
    assert json.loads((run / "run.json").read_text())["skipped_files"] == {"count": 7, "list": "skipped.txt"}
