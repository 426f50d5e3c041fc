"""The face recipe (docs/faces.md): its commands resolve and validate on CelebA- and FFHQ-layout
folders, and the stylegan2 preset trains and samples at 64 px RGB on a small synthetic folder."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.cli import main
from synthetic_faces import write_celeba, write_ffhq_thumbnails

pytestmark = pytest.mark.usefixtures("one_thread")

DOC = Path(__file__).resolve().parents[1] / "docs" / "faces.md"
TINY = ["model.g.w_dim=8", "model.g.map_depth=1", "model.g.channel_base=128", "model.g.channel_max=8",
        "model.d.channel_base=128", "model.d.channel_max=8", "train.batch_size=4", "train.steps=2",
        "train.progress=false", "train.threads=1", "train.device=cpu"]


def _doc_train_commands() -> list[list[str]]:
    text = DOC.read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    commands = []
    for block in blocks:
        for cmd in block.replace("\\\n", " ").splitlines():
            if cmd.startswith("ganforge train"):
                commands.append(shlex.split(cmd)[1:])
    return commands


def test_the_recipes_commands_validate(tmp_path, capsys):
    celeba, ffhq = write_celeba(tmp_path, 3), write_ffhq_thumbnails(tmp_path, 3)
    commands = _doc_train_commands()
    assert len(commands) == 2  # the GPU and the CPU recipe
    for args in commands:
        args = [a.replace("/data/ffhq/thumbnails128x128", str(ffhq)).replace("/data/celeba/img_align_celeba", str(celeba))
                for a in args]
        assert main([*args, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "arch: stylegan2" in out and "image_size: 64" in out and "channels: 3" in out


def test_both_layouts_are_read_as_64px_rgb(tmp_path, capsys):
    celeba, ffhq = write_celeba(tmp_path, 5), write_ffhq_thumbnails(tmp_path, 20, per_folder=8)
    assert main(["data", f"folder:{ffhq}"]) == 0
    assert "20 images 3x64x64" in capsys.readouterr().out  # nested subfolders are read too
    assert main(["data", f"folder:{celeba}"]) == 0
    assert "5 images 3x64x64" in capsys.readouterr().out


def test_data_limit_keeps_the_first_files_of_a_folder(tmp_path):
    from ganforge.config import resolve
    from ganforge.data import build_dataset
    folder = write_celeba(tmp_path, 6)
    cfg = resolve(overrides=[f"data.name=folder:{folder}", "data.image_size=64", "data.limit=4"])
    src = build_dataset(cfg)
    assert "4 images 3x64x64" in src.description
    assert [p.name for p in src.files] == [f"{i:06d}.jpg" for i in range(1, 5)]


def test_stylegan2_trains_on_a_face_folder_and_samples(tmp_path, capsys):
    folder = write_celeba(tmp_path / "celeba", 12)
    run = ganforge.train("stylegan2", overrides=[
        f"out={tmp_path / 'runs'}", f"data.name=folder:{folder}", "data.image_size=64", "data.channels=3",
        "data.limit=10", *TINY], quiet=True)
    g = ganforge.load(run)
    x = g.sample(3, seed=0, truncation=0.7)
    assert x.shape == (3, 3, 64, 64) and torch.isfinite(x).all() and x.abs().max() <= 1
    assert not torch.allclose(x[0], x[1])
    out = tmp_path / "s.png"
    assert main(["sample", str(run), "--n", "4", "--truncation", "0.7", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert main(["eval", str(run), "--metrics", "ppl", "--n", "8", "--out", str(tmp_path / "e.json")]) == 0
    assert "ppl_w" in capsys.readouterr().out
