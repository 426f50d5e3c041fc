"""Image data: folders of files, channel/size conversion, resumable order, Fashion-MNIST offline."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import DATASETS, DataError, InMemorySource, build_dataset
from ganforge.data import folders as gf
from ganforge.data import images as gi
from conftest import data_cfg as make_cfg



def rgb(w: int, h: int, color=(200, 30, 60)) -> Image.Image:
    return Image.new("RGB", (w, h), color)


def save(im: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kw)
    return path


@pytest.fixture
def messy_folder(tmp_path: Path) -> Path:
    """8 readable images of mixed sizes, modes and formats, 3 broken ones, 1 non-image file."""
    d = tmp_path / "imgs"
    save(rgb(40, 30), d / "a_rgb.png")
    save(Image.new("L", (20, 50), 90), d / "b_gray.png")
    save(rgb(100, 60, (10, 200, 10)), d / "sub" / "c_photo.jpg", quality=95)
    save(Image.new("RGBA", (33, 33), (255, 0, 0, 0)), d / "d_transparent.png")  # alpha 0 -> white
    save(rgb(16, 16).convert("P", palette=Image.Palette.ADAPTIVE), d / "sub" / "deeper" / "e_palette.gif")
    save(Image.new("CMYK", (24, 24), (0, 255, 255, 0)), d / "f_cmyk.jpg")  # red in CMYK
    save(Image.fromarray(np.full((18, 18), 65535, dtype=np.uint16)), d / "g_16bit.png")
    save(rgb(30, 30), d / "H_UPPER.BMP")
    # broken files
    (d / "zero.png").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    (d / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (d / "text.png").write_text("this is not an image\n")
    (d / "notes.txt").write_text("ignored: not an image suffix\n")
    return d


# -- folders ---------------------------------------------------------------------------------

def test_folder_reads_good_files_and_counts_skipped(messy_folder: Path):
    src = gf.folder_source(make_cfg(image_size=16), messy_folder)
    assert len(src) == 8
    assert sorted(p.name for p, _ in src.skipped) == ["text.png", "truncated.png", "zero.png"]
    assert all(reason for _, reason in src.skipped)
    assert "3 unreadable files skipped" in src.description
    assert len(src.files) == 8 and not any(f.name in ("zero.png", "notes.txt") for f in src.files)
    assert src.data.dtype == torch.uint8 and src.data.shape == (8, 3, 16, 16)  # mixed -> RGB
    assert src.num_classes == 0 and src.shape == (3, 16, 16)
    x, y = src.next(5)
    assert y is None
    assert x.dtype == torch.float32 and x.shape == (5, 3, 16, 16)
    assert x.min() >= -1.0 and x.max() <= 1.0


def test_folder_through_build_dataset(messy_folder: Path):
    src = build_dataset(make_cfg(name=f"folder:{messy_folder}", image_size=8, channels=1))
    assert src.data.shape == (8, 1, 8, 8)


def test_folder_default_size_is_64(messy_folder: Path):
    src = gf.folder_source(make_cfg(), messy_folder)
    assert src.shape == (3, gf.DEFAULT_FOLDER_SIZE, gf.DEFAULT_FOLDER_SIZE) == (3, 64, 64)


def test_mode_conversions(messy_folder: Path):
    src = gf.folder_source(make_cfg(image_size=8, channels=3), messy_folder)
    by_name = {f.name: src.data[i] for i, f in enumerate(src.files)}
    assert (by_name["d_transparent.png"] == 255).all()  # transparent composited on white
    assert (by_name["g_16bit.png"] == 255).all()  # 65535 -> 255
    cmyk = by_name["f_cmyk.jpg"].float().mean((1, 2))
    assert cmyk[0] > 200 and cmyk[1] < 60 and cmyk[2] < 60  # CMYK red -> RGB red
    gray = by_name["b_gray.png"]
    assert (gray[0] == gray[1]).all() and (gray[1] == gray[2]).all()  # gray -> RGB repeats


def test_16bit_midgray_scaled(tmp_path: Path):
    save(Image.fromarray(np.full((10, 10), 32896, dtype=np.uint16)), tmp_path / "mid.png")
    src = gf.folder_source(make_cfg(image_size=4), tmp_path)
    assert src.data.shape == (1, 1, 4, 4)  # all gray -> 1 channel
    assert (src.data == 128).all()


def test_gray_vs_rgb_channels(tmp_path: Path):
    save(Image.new("L", (12, 12), 50), tmp_path / "g1.png")
    save(Image.new("L", (20, 10), 100), tmp_path / "g2.jpg")
    assert gf.folder_source(make_cfg(image_size=8), tmp_path).shape == (1, 8, 8)  # all gray
    assert gf.folder_source(make_cfg(image_size=8, channels=3), tmp_path).shape == (3, 8, 8)
    save(rgb(12, 12, (255, 0, 0)), tmp_path / "red.png")
    src = gf.folder_source(make_cfg(image_size=8), tmp_path)  # one colour image -> RGB
    assert src.shape == (3, 8, 8)
    src1 = gf.folder_source(make_cfg(image_size=8, channels=1), tmp_path)
    red = src1.data[[f.name for f in src1.files].index("red.png")]
    assert red.shape == (1, 8, 8) and abs(int(red[0, 0, 0]) - 76) <= 1  # 0.299 * 255


def test_resize_shorter_side_then_center_crop(tmp_path: Path):
    a = np.zeros((20, 60, 3), dtype=np.uint8)  # H=20, W=60: red | green | blue thirds
    a[:, :20, 0] = 255
    a[:, 20:40, 1] = 255
    a[:, 40:, 2] = 255
    save(Image.fromarray(a), tmp_path / "stripes.png")
    src = gf.folder_source(make_cfg(image_size=10), tmp_path)
    img = src.data[0]
    assert img.shape == (3, 10, 10)
    inner = img[:, :, 2:8].float()  # away from the antialiased borders
    assert (inner[1] > 240).all() and (inner[0] < 15).all() and (inner[2] < 15).all()


def test_upscales_small_images(tmp_path: Path):
    save(rgb(5, 7), tmp_path / "tiny.png")
    assert gf.folder_source(make_cfg(image_size=32), tmp_path).shape == (3, 32, 32)


def test_too_large_images_are_skipped(tmp_path: Path):
    save(rgb(50, 50), tmp_path / "big.png")
    save(rgb(5, 5), tmp_path / "small.png")
    src = gf.folder_source(make_cfg(image_size=4), tmp_path, max_pixels=100)
    assert [f.name for f in src.files] == ["small.png"]
    assert "too large" in src.skipped[0].reason


@pytest.mark.parametrize("setup", ["missing", "empty", "only_other_files", "only_broken", "file"])
def test_folder_errors_are_one_line_data_errors(tmp_path: Path, setup: str):
    d = tmp_path / "d"
    if setup == "empty":
        d.mkdir()
    elif setup == "only_other_files":
        d.mkdir()
        (d / "readme.txt").write_text("x")
    elif setup == "only_broken":
        d.mkdir()
        (d / "a.png").write_bytes(b"")
        (d / "b.jpg").write_text("nope")
    elif setup == "file":
        d.write_text("x")
    with pytest.raises(DataError) as e:
        gf.folder_source(make_cfg(), d)
    assert "\n" not in str(e.value) and str(d) in str(e.value)


def test_folder_progress_bar_does_not_break(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(gf, "PROGRESS_MIN_FILES", 2)
    for i in range(4):
        save(rgb(8, 8), tmp_path / f"{i}.png")
    cfg = make_cfg(image_size=4)
    cfg.train.progress = True
    assert len(gf.folder_source(cfg, tmp_path)) == 4


# -- conversions -----------------------------------------------------------------------------

def test_convert_channels_and_resize():
    g = torch.randint(0, 256, (4, 1, 6, 6), dtype=torch.uint8)
    c = gi.convert_channels(g, 3)
    assert c.shape == (4, 3, 6, 6) and (c == g).all()
    assert (gi.convert_channels(c, 1) == g).all()  # luma weights sum to 1
    assert gi.convert_channels(g, 0) is g
    const = torch.full((3, 3, 28, 28), 77, dtype=torch.uint8)
    for s in (14, 28, 64):
        r = gi.resize_images(const, s)
        assert r.shape == (3, 3, s, s) and r.dtype == torch.uint8 and (r == 77).all()


# -- resumable order -------------------------------------------------------------------------

def test_in_memory_source_resumes_same_order():
    data = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    labels = torch.arange(10)
    a = InMemorySource(data, labels, seed=5)
    for _ in range(3):
        a.next(4)  # 12 samples: into the second epoch
    state = a.state_dict()
    expected = [a.next(4)[1] for _ in range(6)]  # crosses more epoch boundaries
    b = InMemorySource(data, labels, seed=99)
    b.load_state_dict(state)
    got = [b.next(4)[1] for _ in range(6)]
    assert all(torch.equal(e, g) for e, g in zip(expected, got))
    assert b.epoch == a.epoch
    # every epoch is a permutation: each index once per 10 samples
    c = InMemorySource(data, labels, seed=1)
    assert sorted(c.next(10)[1].tolist()) == list(range(10))


# -- named datasets --------------------------------------------------------------------------

def test_named_datasets_registered():
    for name in ("fashion-mnist", "mnist", "cifar10"):
        assert name in DATASETS and DATASETS.help(name)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_missing_named_dataset_offline_is_a_clear_error(tmp_path: Path, name: str):
    with pytest.raises(DataError) as e:
        build_dataset(make_cfg(tmp_path, name=name, download=False))
    msg = str(e.value)
    assert "\n" not in msg and "data.download" in msg and str(tmp_path) in msg


def test_missing_fashion_mnist_offline_mentions_debian_package(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(gi, "DEBIAN_FASHION_MNIST", tmp_path / "no-such-dir")
    with pytest.raises(DataError) as e:
        build_dataset(make_cfg(tmp_path / "root", name="fashion-mnist", download=False))
    assert "apt-get install dataset-fashion-mnist" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        gi.prepare_fashion_mnist(tmp_path / "root", source=tmp_path / "no-such-dir")


def test_load_split_rejects_bad_arguments(tmp_path: Path):
    with pytest.raises(DataError, match="did you mean 'mnist'"):
        gi.load_split("mnsit", "test", root=tmp_path)
    with pytest.raises(DataError, match="split"):
        gi.load_split("mnist", "validation", root=tmp_path)


needs_debian = pytest.mark.skipif(not (gi.DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
                                  reason="Debian package dataset-fashion-mnist not installed")


@needs_debian
def test_fashion_mnist_offline_from_debian_package(tmp_path: Path, monkeypatch):
    raw = gi.prepare_fashion_mnist(tmp_path)
    assert raw == tmp_path / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(gi._IDX_FILES)
    assert gi.prepare_fashion_mnist(tmp_path) == raw  # idempotent

    xtr, ytr = gi.load_split("fashion-mnist", "train", root=tmp_path)
    xte, yte = gi.load_split("fashion-mnist", "test", root=tmp_path)
    assert xtr.shape == (60000, 1, 28, 28) and xte.shape == (10000, 1, 28, 28)
    assert xtr.dtype == torch.uint8 and ytr.dtype == torch.int64
    assert set(yte.unique().tolist()) == set(range(10))

    monkeypatch.setenv("GANFORGE_DATA", str(tmp_path))  # root via the environment
    src = build_dataset(make_cfg(name="fashion-mnist", limit=1000, download=False))
    assert len(src) == 1000 and src.num_classes == 10 and src.shape == (1, 28, 28)
    assert torch.equal(src.data, xtr[:1000]) and torch.equal(src.labels, ytr[:1000])
    x, y = src.next(64)
    assert x.shape == (64, 1, 28, 28) and x.min() >= -1 and x.max() <= 1 and y.dtype == torch.int64

    src = build_dataset(make_cfg(tmp_path, name="fashion-mnist", limit=300, image_size=32, channels=3))
    assert src.data.shape == (300, 3, 32, 32) and src.data.dtype == torch.uint8

    cfg = make_cfg(tmp_path, name="fashion-mnist", limit=10)
    assert gi.load_config_split(cfg, "test")[0].shape == (10000, 1, 28, 28)  # limit is train-only
    assert gi.load_config_split(cfg, "train")[0].shape == (10, 1, 28, 28)


@needs_debian
def test_fashion_mnist_unpacks_into_an_empty_root_automatically(tmp_path: Path):
    src = build_dataset(make_cfg(tmp_path, name="fashion-mnist", limit=50, download=False))
    assert len(src) == 50
    assert (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()


def test_a_folder_run_records_the_image_size_it_used(tmp_path, make_cfg):
    """config.yaml says which size a folder was read at (the default, 64), not 0."""
    import yaml
    from PIL import Image

    from ganforge.session import train
    for i in range(4):
        Image.new("RGB", (40, 30), (60 * i, 20, 200)).save(tmp_path / f"{i}.png")
    run = train(make_cfg(f"data.name=folder:{tmp_path}", "train.steps=1", "train.batch_size=2"), quiet=True)
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["image_size"] == 64
