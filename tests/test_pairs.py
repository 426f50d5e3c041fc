"""Image-to-image data: the built-in Fashion-MNIST tasks, paired / unpaired folders, resumable
order, and the CycleGAN image pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.functional import gaussian_blur

from ganforge.data import DataError, build_dataset
from ganforge.data import images as gi
from ganforge.data import pairs as gp
from ganforge.pool import ImagePool
from conftest import data_cfg as make_cfg

pytestmark = pytest.mark.usefixtures("one_thread")



def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) * 127.5).round().to(torch.uint8)


# -- built-in Fashion-MNIST tasks ----------------------------------------------------------------

@pytest.fixture(scope="module")
def fmnist_root(tmp_path_factory) -> Path:
    if not (gi.DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    root = tmp_path_factory.mktemp("fmnist")
    gi.prepare_fashion_mnist(root)
    return root


PAIRED_TASKS = ["fmnist-edges", "fmnist-blur", "fmnist-sr2", "fmnist-sr4"]
INPUT_SIZE = {"fmnist-edges": 28, "fmnist-blur": 28, "fmnist-sr2": 14, "fmnist-sr4": 7}


@pytest.mark.parametrize("name", PAIRED_TASKS)
def test_paired_task_shapes_and_alignment(fmnist_root, name):
    x, y = gp.load_pairs(name, "train", root=fmnist_root, limit=8)
    s = INPUT_SIZE[name]
    assert x.shape == (8, 1, 28, 28) and y.shape == (8, 1, s, s)
    assert x.dtype == torch.uint8 and y.dtype == torch.uint8
    items, _ = gi.load_split("fashion-mnist", "train", root=fmnist_root, limit=8)
    assert torch.equal(x, items)  # the targets are the items, in file order
    if name == "fmnist-edges":
        assert set(y.unique().tolist()) == {0, 255}  # a binary sketch
        assert 0.05 < (y == 0).float().mean() < 0.5  # dark lines on a light background
        assert torch.equal(y, gp.edge_sketch(x))
        near_item = F.max_pool2d((x > 0).float(), 3, 1, 1) > 0  # the item and the pixels next to it
        assert (y[~near_item] == 255).all()  # lines sit on the item's outline, not on empty space
    elif name == "fmnist-blur":
        assert torch.equal(y, gaussian_blur(x, [7, 7], [1.5, 1.5]))
        assert not torch.equal(x, y)
    else:
        ref = F.interpolate(x.float(), size=(s, s), mode="bicubic", antialias=True).round().clamp(0, 255)
        assert torch.equal(y, ref.to(torch.uint8))
    if name != "fmnist-edges":  # pair i looks like target i, not like target i + 1
        up = F.interpolate(y.float(), size=(28, 28), mode="bicubic").clamp(0, 255)
        matched = (up - x.float()).abs().mean((1, 2, 3))
        shifted = (up - x.roll(1, 0).float()).abs().mean((1, 2, 3))
        assert (matched < shifted).all()
    xt, yt = gp.load_pairs(name, "test", root=fmnist_root, limit=3)
    assert xt.shape == (3, 1, 28, 28) and yt.shape == (3, 1, s, s) and not torch.equal(xt, x[:3])


def test_shoes_domains_have_the_right_classes(fmnist_root):
    x, y = gp.load_pairs("fmnist-shoes", "test", root=fmnist_root, limit=6)
    assert x.shape == (6, 1, 28, 28) and y.shape == (6, 1, 28, 28)
    images, labels = gi.load_split("fashion-mnist", "test", root=fmnist_root)
    flat = images.flatten(1)
    for imgs, cls in ((x, gp.SHOES_B), (y, gp.SHOES_A)):
        for im in imgs:
            where = (flat == im.flatten()).all(1).nonzero().flatten()
            assert len(where) >= 1 and (labels[where] == cls).all()
    assert (gp.SHOES_A, gp.SHOES_B) == (7, 9)  # sneakers -> ankle boots


def test_task_sources_give_aligned_batches_in_range(fmnist_root):
    src = build_dataset(make_cfg(fmnist_root, name="fmnist-blur", limit=16, download=False))
    assert isinstance(src, gp.PairedSource)
    assert src.shape == (1, 28, 28) and src.cond_shape == (1, 28, 28) and src.num_classes == 0
    assert "16 pairs" in src.description
    x, y = src.next(4)
    assert x.shape == (4, 1, 28, 28) and y.shape == (4, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and y.min() >= -1 and y.max() <= 1
    assert torch.equal(to_uint8(y), gaussian_blur(to_uint8(x), [7, 7], [1.5, 1.5]))  # still pairs

    src = build_dataset(make_cfg(fmnist_root, name="fmnist-sr4", limit=4, channels=3, image_size=32))
    assert src.shape == (3, 32, 32) and src.cond_shape == (3, 8, 8)
    with pytest.raises(DataError, match="multiple of 4"):
        build_dataset(make_cfg(fmnist_root, name="fmnist-sr4", limit=4, image_size=30))

    src = build_dataset(make_cfg(fmnist_root, name="fmnist-shoes", limit=8))
    assert isinstance(src, gp.UnpairedSource) and src.num_classes == 0
    assert src.shape == src.cond_shape == (1, 28, 28) and len(src) == 8
    x, y = src.next(3)
    assert x.shape == y.shape == (3, 1, 28, 28) and x.min() >= -1 and x.max() <= 1


def test_unknown_task_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="did you mean 'fmnist-blur'"):
        gp.load_pairs("fmnist-blurr", "train", root=tmp_path)


# -- resumable order -------------------------------------------------------------------------

def _batches(src, k=4, n=5):
    return [src.next(n) for _ in range(k)]


def _same(a, b) -> bool:
    return all(torch.equal(p, q) for bp, bq in zip(a, b) for p, q in zip(bp, bq))


def test_paired_resume_continues_the_same_order():
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 256, (7, 1, 6, 6), generator=g, dtype=torch.uint8)
    inputs = torch.randint(0, 256, (7, 3, 3, 3), generator=g, dtype=torch.uint8)
    src = gp.PairedSource(targets, inputs, seed=5)
    src.next(3)
    state = src.state_dict()
    expected = _batches(src)  # crosses epoch boundaries (7 pairs)
    again = gp.PairedSource(targets, inputs, seed=5)
    again.load_state_dict(state)
    assert _same(_batches(again), expected)
    assert again.epoch == src.epoch >= 2
    other = gp.PairedSource(targets, inputs, seed=6)
    other.next(3)
    assert not _same(_batches(other), expected)
    for x, y in expected:  # pairs stay pairs: the same index picks both
        idx = [int((to_uint8(xi) == targets).flatten(1).all(1).nonzero()) for xi in x]
        assert torch.equal(to_uint8(y), inputs[idx])


def test_unpaired_resume_and_independent_orders():
    a = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 1, 4, 4).contiguous()
    b = (100 + torch.arange(6, dtype=torch.uint8)).view(6, 1, 1, 1).expand(6, 3, 4, 4).contiguous()
    src = gp.UnpairedSource(b, a, seed=2)
    assert src.shape == (3, 4, 4) and src.cond_shape == (1, 4, 4)
    src.next(4)
    state = src.state_dict()
    expected = _batches(src)
    again = gp.UnpairedSource(b, a, seed=2)
    again.load_state_dict(state)
    assert _same(_batches(again), expected)
    # the two domains are drawn by different permutations
    xs = torch.cat([to_uint8(x)[:, 0, 0, 0] - 100 for x, _ in expected])
    ys = torch.cat([to_uint8(y)[:, 0, 0, 0] for _, y in expected])
    assert not torch.equal(xs, ys)


# -- folders ---------------------------------------------------------------------------------

def save(im: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def gray(size, value) -> Image.Image:
    w, h = (size, size) if isinstance(size, int) else size
    return Image.new("L", (w, h), value)


def test_side_by_side_folder(tmp_path):
    d = tmp_path / "facades"
    for i in range(4):  # left (input A) = 10 * i, right (target B) = 200 - 10 * i
        im = Image.new("RGB", (24, 12), (10 * i, 10 * i, 10 * i))
        im.paste((200 - 10 * i, 0, 0), (12, 0, 24, 12))
        save(im, d / "train" / f"{i}.png")
    (d / "train" / "broken.png").write_bytes(b"not a png")
    src = build_dataset(make_cfg(name=f"paired:{d}"))
    assert isinstance(src, gp.PairedSource)
    assert src.shape == (3, 12, 12) and src.cond_shape == (3, 12, 12) and len(src) == 4
    assert [p.name for p, _ in src.skipped] == ["broken.png"] and "1 unreadable" in src.description
    x, y = src.next(4)
    xs, ys = to_uint8(x), to_uint8(y)
    assert (xs[:, 1:] == 0).all()  # targets are the red right halves
    assert torch.equal(xs[:, 0, 0, 0].long(), 200 - ys[:, 0, 0, 0].long())  # aligned pairs
    src = build_dataset(make_cfg(name=f"paired:{d}", image_size=8, channels=1))
    assert src.shape == (1, 8, 8) and src.cond_shape == (1, 8, 8)


def test_a_b_folders_match_by_name(tmp_path):
    d = tmp_path / "pairs"
    for i, name in enumerate(["x", "y", "sub/z"]):
        save(gray(10, 20 * i), d / "A" / f"{name}.png")
        save(Image.new("RGB", (10, 10), (0, 20 * i, 0)), d / "B" / f"{name}.bmp")  # suffixes may differ
    src = build_dataset(make_cfg(name=f"paired:{d}"))
    assert src.cond_shape == (1, 10, 10) and src.shape == (3, 10, 10)  # each side keeps its channels
    x, y = src.next(3)
    assert torch.equal(to_uint8(x)[:, 1, 0, 0], to_uint8(y)[:, 0, 0, 0])
    assert {a.relative_to(d).as_posix() for a, _ in src.files} == {"A/x.png", "A/y.png", "A/sub/z.png"}
    # super-resolution pairs: targets an integer multiple of the inputs
    sr = tmp_path / "sr"
    for i in range(2):
        save(gray(6, i), sr / "A" / f"{i}.png")
        save(gray(12, i), sr / "B" / f"{i}.png")
    src = build_dataset(make_cfg(name=f"paired:{sr}"))
    assert src.cond_shape == (1, 6, 6) and src.shape == (1, 12, 12)
    src = build_dataset(make_cfg(name=f"paired:{sr}", image_size=8))  # image_size resizes both sides
    assert src.cond_shape == src.shape == (1, 8, 8)


def _one_line_error(cfg, match):
    with pytest.raises(DataError, match=match) as e:
        build_dataset(cfg)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_paired_folder_errors(tmp_path):
    d = tmp_path / "unmatched"
    for name in ("a", "b", "c", "d", "e"):
        save(gray(8, 1), d / "A" / f"{name}.png")
    save(gray(8, 1), d / "B" / "a.png")
    msg = _one_line_error(make_cfg(name=f"paired:{d}"), "no match in B")
    assert "b, c, d" in msg and "4 in all" in msg

    d = tmp_path / "sizes"
    save(gray(8, 1), d / "A" / "1.png"), save(gray(8, 1), d / "B" / "1.png")
    save(gray(12, 1), d / "A" / "2.png"), save(gray(12, 1), d / "B" / "2.png")
    _one_line_error(make_cfg(name=f"paired:{d}"), "differ in size.*image_size")
    assert len(build_dataset(make_cfg(name=f"paired:{d}", image_size=8))) == 2  # fixed by image_size

    d = tmp_path / "within"
    save(gray(8, 1), d / "A" / "1.png"), save(gray(10, 1), d / "B" / "1.png")
    _one_line_error(make_cfg(name=f"paired:{d}"), "differ in size")

    d = tmp_path / "wide"
    save(gray((30, 20), 1), d / "1.png")
    _one_line_error(make_cfg(name=f"paired:{d}"), "width = 2 x height")

    (tmp_path / "empty").mkdir()
    _one_line_error(make_cfg(name=f"paired:{tmp_path / 'empty'}"), "no image files")
    _one_line_error(make_cfg(name=f"paired:{tmp_path / 'missing'}"), "not found")
    save(gray(8, 1), tmp_path / "only_a" / "A" / "1.png")
    _one_line_error(make_cfg(name=f"paired:{tmp_path / 'only_a'}"), "no B/ folder")
    d = tmp_path / "broken"
    (d / "A").mkdir(parents=True), (d / "B").mkdir()
    (d / "A" / "1.png").write_bytes(b""), (d / "B" / "1.png").write_bytes(b"")
    _one_line_error(make_cfg(name=f"paired:{d}"), "could be read")


def test_unpaired_folder(tmp_path):
    d = tmp_path / "horse2zebra"
    for i in range(3):
        save(gray(10, 10 * i), d / "trainA" / f"{i}.png")
    for i in range(4):
        save(Image.new("RGB", (20, 12), (0, 0, 50 * i)), d / "trainB" / f"{i}.jpg")
    (d / "trainB" / "zero.png").write_bytes(b"")
    src = build_dataset(make_cfg(name=f"unpaired:{d}", image_size=8))
    assert isinstance(src, gp.UnpairedSource)
    assert src.shape == (3, 8, 8) and src.cond_shape == (1, 8, 8)
    assert len(src) == 4 and len(src.a) == 3 and len(src.skipped) == 1
    x, y = src.next(5)
    assert x.shape == (5, 3, 8, 8) and y.shape == (5, 1, 8, 8)
    (tmp_path / "half" / "trainA").mkdir(parents=True)
    _one_line_error(make_cfg(name=f"unpaired:{tmp_path / 'half'}"), "no trainB/")
    _one_line_error(make_cfg(name=f"unpaired:{tmp_path / 'nowhere'}"), "not found")
    (tmp_path / "emptyB" / "trainA").mkdir(parents=True), (tmp_path / "emptyB" / "trainB").mkdir()
    save(gray(8, 1), tmp_path / "emptyB" / "trainA" / "1.png")
    _one_line_error(make_cfg(name=f"unpaired:{tmp_path / 'emptyB'}"), "no image files")


# -- the image pool --------------------------------------------------------------------------

def _batch(start: int, n: int = 4) -> torch.Tensor:
    """n images whose value is their serial number."""
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()


def test_pool_size_zero_passes_through():
    pool = ImagePool(0, generator=torch.Generator().manual_seed(0))
    x = _batch(0)
    assert torch.equal(pool.query(x), x) and len(pool) == 0


def test_pool_fills_first_then_mixes_about_half():
    pool = ImagePool(6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pool.query(_batch(0)), _batch(0))  # filling: new images come back
    out = pool.query(_batch(4))
    assert torch.equal(out[:2], _batch(4)[:2]) and len(pool) == 6  # the last two of the 6 filled it
    old = 0
    total = 0
    for k in range(100):
        start = 8 + 4 * k
        served = pool.query(_batch(start))[:, 0, 0, 0]
        new = _batch(start)[:, 0, 0, 0]
        is_new = served == new
        assert (served[~is_new] < new[~is_new]).all()  # otherwise a stored, older image
        old += int((~is_new).sum())
        total += 4
        stored = pool.images[:, 0, 0, 0]
        assert len(set(stored.tolist())) == 6  # each stored image at most once
    assert 0.4 < old / total < 0.6  # probability 1/2, 400 draws


def test_pool_is_seeded_and_resumes_exactly():
    def run(pool, k0, k1):
        return [pool.query(_batch(4 * k)) for k in range(k0, k1)]

    a = ImagePool(5, generator=torch.Generator().manual_seed(1))
    run(a, 0, 6)
    state = a.state_dict()
    assert state["count"] == 5 and state["images"].shape == (5, 1, 2, 2)
    expected = run(a, 6, 20)
    b = ImagePool(5, generator=torch.Generator().manual_seed(99))
    b.load_state_dict(state)
    assert all(torch.equal(p, q) for p, q in zip(run(b, 6, 20), expected))
    c = ImagePool(5, generator=torch.Generator().manual_seed(1))
    run(c, 0, 6)
    assert all(torch.equal(p, q) for p, q in zip(run(c, 6, 20), expected))  # same seed, same choices
    with pytest.raises(ValueError, match="size"):
        ImagePool(4).load_state_dict(state)
    fresh = ImagePool(5).state_dict()
    assert fresh["count"] == 0 and fresh["images"] is None


def test_pool_detaches_and_checks_shapes():
    pool = ImagePool(2, generator=torch.Generator().manual_seed(0))
    x = _batch(0, 2).requires_grad_()
    assert not pool.query(x).requires_grad
    with pytest.raises(ValueError, match="shape"):
        pool.query(torch.zeros(1, 3, 2, 2))


def test_preview_is_fixed_and_keeps_the_position():
    targets = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 1, 2, 2).contiguous()
    inputs = (10 + torch.arange(5, dtype=torch.uint8)).view(5, 1, 1, 1).expand(5, 3, 1, 1).contiguous()
    src = gp.PairedSource(targets, inputs, seed=0)
    src.next(2)
    state = src.state_dict()
    x, y = src.preview(8)
    assert to_uint8(x)[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4] and to_uint8(y)[:, 0, 0, 0].tolist() == [10, 11, 12, 13, 14]
    assert src.state_dict()["pos"] == state["pos"]
    un = gp.UnpairedSource(targets, inputs[:3], seed=0)
    b, a = un.preview(8)
    assert b.shape == (3, 1, 2, 2) and a.shape == (3, 3, 1, 1)
