"""The dataset cache of image folders (memory-mapped), DataLoader workers with exact resume, and
non-square image sizes (data.image_size=HxW)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import data_cfg
from ganforge.checkpoint import latest_checkpoint, load_checkpoint
from ganforge.config import ConfigError, Config, apply_override, image_hw, resolve
from ganforge.data import build_dataset
from ganforge.data import folder_cache as fc
from ganforge.data import folders as gf
from ganforge.session import resume, train
from ganforge.validation import validate

SRC = Path(__file__).resolve().parent.parent / "src"


def make_folder(d: Path, n: int = 30, gray: bool = False, seed: int = 0) -> Path:
    """``n`` random images of varied sizes (every 7th gray unless ``gray``: then all), 2 broken files."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = 20 + i % 5 * 6, 24 + i % 3 * 9
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        im = Image.fromarray(a)
        if gray or i % 7 == 3:
            im = im.convert("L")
        (d / f"s{i % 3}").mkdir(parents=True, exist_ok=True)
        im.save(d / f"s{i % 3}" / f"{i:03d}.png")
    (d / "zero.png").write_bytes(b"")
    (d / "text.jpg").write_text("not an image\n")
    return d


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "imgs")


def cfg_for(tmp_path: Path, folder: Path, **data) -> Config:
    return data_cfg(tmp_path / "root", name=f"folder:{folder}", **data)


def cached(cfg) -> fc.CachedFolderSource:
    src = build_dataset(cfg)
    assert isinstance(src, fc.CachedFolderSource)
    return src


# -- the cache ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,channels", [(16, 0), ("12x20", 1), (10, 3)])
def test_cache_holds_the_same_images_and_batches_as_memory(tmp_path, folder, size, channels):
    mem = build_dataset(cfg_for(tmp_path, folder, image_size=size, channels=channels, cache="off"))
    src = cached(cfg_for(tmp_path, folder, image_size=size, channels=channels, cache="on"))
    assert type(mem) is gf.ImageFolderSource
    assert src.data.shape == mem.data.shape == (30, channels or 3, *image_hw(size))
    assert torch.equal(src.data, mem.data)
    assert src.skipped == mem.skipped and len(src.skipped) == 2  # the same files and reasons
    assert src.files == mem.files
    assert "2 unreadable files skipped" in src.description
    for _ in range(4):  # 4 x 9 > 30: crosses an epoch
        (xa, ya), (xb, yb) = mem.next(9), src.next(9)
        assert ya is None and yb is None and torch.equal(xa, xb)
    assert torch.equal(src.preview(5)[0], mem.preview(5)[0])


def test_all_gray_folder_is_cached_with_one_channel(tmp_path):
    d = make_folder(tmp_path / "gray", n=12, gray=True)
    mem = build_dataset(cfg_for(tmp_path, d, image_size=8, cache="off"))
    src = cached(cfg_for(tmp_path, d, image_size=8, cache="on"))
    assert src.data.shape == mem.data.shape == (12, 1, 8, 8) and torch.equal(src.data, mem.data)
    assert (src.cache / fc.IMAGES).stat().st_size == 12 * 64


def test_cache_is_built_once_and_reused(tmp_path, folder, capsys, monkeypatch):
    cfg = cfg_for(tmp_path, folder, image_size=8, cache="on")
    first = cached(cfg)
    assert "dataset cache: decoding 32 files" in capsys.readouterr().err
    meta = json.loads((first.cache / fc.META).read_text())
    assert meta["files"] == 32 and meta["shape"] == [30, 3, 8, 8] and meta["source"] == str(folder.resolve())
    assert meta["ganforge"] and meta["fingerprint"] and len(meta["skipped"]) == 2
    assert first.cache.parent == tmp_path / "root" / "cache"

    monkeypatch.setattr(fc, "build_cache", lambda *a, **k: pytest.fail("rebuilt an unchanged folder"))
    again = cached(cfg)
    assert again.cache == first.cache and capsys.readouterr().err == ""
    assert torch.equal(again.data, first.data)
    # another size is another cache
    monkeypatch.undo()
    other = cached(cfg_for(tmp_path, folder, image_size=6, cache="on"))
    assert other.cache != first.cache and other.shape == (3, 6, 6)


def test_a_truncated_cache_file_is_rebuilt_not_read(tmp_path, folder, capsys):
    """Real bytes cut off the cache file (a disk filled mid-copy, a half-synced folder): the next
    run decodes the folder again instead of reading short rows."""
    cfg = cfg_for(tmp_path, folder, image_size=8, cache="on")
    first = cached(cfg)
    good = first.data.clone()
    images = first.cache / fc.IMAGES
    del first
    os.truncate(images, images.stat().st_size // 2)
    capsys.readouterr()
    again = cached(cfg)
    assert "dataset cache: decoding 32 files" in capsys.readouterr().err
    assert torch.equal(again.data, good) and images.stat().st_size == good.numel()


def test_cache_is_rebuilt_when_the_folder_changes(tmp_path, folder, capsys):
    cfg = cfg_for(tmp_path, folder, image_size=8, cache="on")
    before = cached(cfg).data.clone()
    capsys.readouterr()
    target = folder / "s0" / "000.png"
    Image.new("RGB", (30, 30), (1, 2, 3)).save(target)  # rewritten: new size and mtime
    src = cached(cfg)
    err = capsys.readouterr().err
    assert "changed since its cache was built" in err and "rebuilding" in err
    i = src.files.index(target)
    assert (src.data[i] == torch.tensor([1, 2, 3], dtype=torch.uint8).view(3, 1, 1)).all()
    assert not torch.equal(src.data[i], before[i])
    # a file added: rebuilt too, one image more
    Image.new("RGB", (30, 30)).save(folder / "zz.png")
    assert len(cached(cfg)) == 31 and "changed" in capsys.readouterr().err


def test_an_error_mid_build_leaves_no_usable_cache(tmp_path, folder, monkeypatch, capsys):
    cfg = cfg_for(tmp_path, folder, image_size=8, cache="on")
    real, calls = fc._decode, []

    def fail_on_the_tenth(path, size, max_pixels):
        calls.append(path)
        if len(calls) == 10:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the build
        return real(path, size, max_pixels)

    monkeypatch.setattr(fc, "_decode", fail_on_the_tenth)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(cfg)
    where = fc.cache_dir(cfg, folder, (8, 8))
    assert sorted(p.name for p in where.iterdir()) == []  # no images file, no meta, no temporary file
    monkeypatch.undo()
    capsys.readouterr()
    src = cached(cfg)
    assert "decoding" in capsys.readouterr().err and len(src) == 30


def test_a_killed_build_is_not_used_and_is_cleaned_up(tmp_path, folder, capsys):
    """A real SIGKILL in the middle of a build (in a child process): its temporary file stays,
    there is no meta.json, and the next build removes it and builds the cache whole."""
    cfg = cfg_for(tmp_path, folder, image_size=8, cache="on")
    child = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from conftest import data_cfg
from ganforge.data import build_dataset, folder_cache as fc
real, n = fc._decode, [0]
def decode(*a):
    n[0] += 1
    if n[0] == 12:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*a)
fc._decode = decode
build_dataset(data_cfg({str(tmp_path / 'root')!r}, name={f'folder:{folder}'!r}, image_size=8, cache="on"))
"""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    where = fc.cache_dir(cfg, folder, (8, 8))
    left = [p.name for p in where.iterdir()]
    assert len(left) == 1 and ".tmp-" in left[0] and not (where / fc.META).exists()
    capsys.readouterr()
    src = cached(cfg)
    assert "decoding" in capsys.readouterr().err
    assert sorted(p.name for p in where.iterdir()) == [fc.IMAGES, fc.META]
    assert torch.equal(src.data, build_dataset(cfg_for(tmp_path, folder, image_size=8, cache="off")).data)


def test_a_folder_of_only_bad_files_keeps_its_error_and_writes_no_cache(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "a.png").write_bytes(b"")
    (d / "b.png").write_text("no")
    cfg = cfg_for(tmp_path, d, cache="on")
    with pytest.raises(gf.DataError, match="none of the 2 image files under .* could be read"):
        build_dataset(cfg)
    assert list(fc.cache_dir(cfg, d, (64, 64)).iterdir()) == []
    with pytest.raises(gf.DataError, match="image folder not found"):
        build_dataset(cfg_for(tmp_path, tmp_path / "missing", cache="on"))


def test_auto_caches_only_large_folders(tmp_path, folder, monkeypatch):
    assert type(build_dataset(cfg_for(tmp_path, folder, image_size=8))) is gf.ImageFolderSource
    monkeypatch.setattr(fc, "AUTO_BYTES", 30 * 3 * 8 * 8 - 1)  # just below the decoded size of 30 images
    assert isinstance(build_dataset(cfg_for(tmp_path, folder, image_size=8)), fc.CachedFolderSource)


def test_workers_give_the_same_batches_and_resume_the_same_order(tmp_path, folder):
    plain = cached(cfg_for(tmp_path, folder, image_size=8, cache="on"))
    src = cached(cfg_for(tmp_path, folder, image_size=8, cache="on", workers=2))
    ref = [plain.next(7)[0] for _ in range(10)]  # 70 > 2 epochs
    got = [src.next(7)[0] for _ in range(4)]
    state = src.state_dict()  # what a checkpoint saves: the consumed position, not the read-ahead
    got += [src.next(7)[0] for _ in range(6)]
    assert all(torch.equal(a, b) for a, b in zip(ref, got))
    again = cached(cfg_for(tmp_path, folder, image_size=8, cache="on", workers=2))
    again.load_state_dict(state)
    assert all(torch.equal(again.next(7)[0], r) for r in ref[4:])
    assert torch.equal(again.next(5)[0], plain.next(5)[0])  # another batch size restarts the reader


def test_decoding_processes_end_with_the_build_and_obey_sigterm(tmp_path, folder):
    """The build's decoding processes leave Ctrl-C to the builder but not SIGTERM: Pool.terminate
    (an error mid-build) must be able to end them, or the build waits for them forever."""
    import multiprocessing as mp

    cached(cfg_for(tmp_path, folder, image_size=8, cache="on", workers=2))
    assert mp.active_children() == []
    code = ("import signal; from ganforge.data.folder_cache import _decoder_init; _decoder_init(); "
            "print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN, signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(SRC)})
    assert out.stdout.split() == ["True", "True"], out.stderr


# -- exact resume of training with workers -------------------------------------------------------------

def test_resume_with_a_cached_folder_and_two_workers_is_bit_identical(tmp_path, folder, one_thread):
    over = [f"data.name=folder:{folder}", f"data.root={tmp_path / 'root'}", "data.cache=on", "data.workers=2",
            "data.image_size=8x12", "model.arch=mlp", "model.z_dim=4", "model.g.hidden=16", "model.d.hidden=16",
            "train.batch_size=8", "train.steps=8", "train.log_every=4", "train.ckpt_every=0",
            "train.progress=false", "train.grid_size=4", "train.device=cpu", "train.threads=1",
            "train.deterministic=true", f"out={tmp_path / 'runs'}"]
    full = train(validate(resolve("vanilla", overrides=over)), quiet=True)
    half = train(validate(resolve("vanilla", overrides=over + ["train.steps=4"])), quiet=True)
    resume(half, ["train.steps=8"], quiet=True)
    a_nets, a_extra, _ = load_checkpoint(latest_checkpoint(full / "checkpoints"))
    b_nets, b_extra, _ = load_checkpoint(latest_checkpoint(half / "checkpoints"))
    assert a_extra["step"] == b_extra["step"] == 8
    for net in ("G", "D"):
        for k in a_nets[net]:
            assert torch.equal(a_nets[net][k], b_nets[net][k]), f"{net}.{k}"
    assert a_extra["data"]["pos"] == b_extra["data"]["pos"] and torch.equal(a_extra["data"]["perm"],
                                                                             b_extra["data"]["perm"])
    # 8 steps x 8 images over 30: the order crossed two epochs
    assert a_extra["data"]["epoch"] == 2
    saved = yaml.safe_load((full / "config.yaml").read_text())["data"]
    assert saved["image_size"] == "8x12" and saved["workers"] == 2 and saved["cache"] == "on"


def test_folder_default_size_is_recorded_in_the_saved_config(tmp_path, folder, one_thread):
    over = [f"data.name=folder:{folder}", "model.arch=mlp", "model.z_dim=4", "model.g.hidden=4", "model.d.hidden=4",
            "train.batch_size=4", "train.steps=1", "train.progress=false", "train.grid_size=4", "train.device=cpu",
            "train.threads=1", f"out={tmp_path / 'runs'}"]
    run = train(validate(resolve("vanilla", overrides=over)), quiet=True)
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["image_size"] == 64


# -- HxW sizes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value,hw", [("48x64", "48x64", (48, 64)), ("32X32", 32, (32, 32)), ("64", 64, (64, 64)),
                                           (" 8 x 6 ", "8x6", (8, 6)), ("0", 0, (0, 0))])
def test_image_size_parsing(text, value, hw):
    cfg = Config()
    apply_override(cfg, f"data.image_size={text}")
    assert cfg.data.image_size == value and image_hw(cfg.data.image_size) == hw
    assert Config.from_dict(yaml.safe_load(cfg.to_yaml())).data.image_size == value  # the saved config reloads


@pytest.mark.parametrize("text", ["48x", "x64", "axb", "48x64x3", "-4x8", "big", "1.5"])
def test_bad_image_sizes_are_one_line_errors(text):
    with pytest.raises(ConfigError, match=r"^data.image_size: expected an integer or HxW"):
        apply_override(Config(), f"data.image_size={text}")


def test_hxw_errors_name_what_can_take_it(tmp_path):
    folder = f"data.name=folder:{tmp_path}"
    with pytest.raises(ConfigError, match=r"^model.arch 'resnet' needs square images, but data.image_size=48x64; "
                                          r"families that take HxW images: dcgan, mlp$"):
        validate(resolve("sngan", overrides=[folder, "data.image_size=48x64"]))
    with pytest.raises(ConfigError, match=r"^data.image_size=48x64: DCGAN supports HxW sizes whose longer side is a "
                                          r"multiple of the shorter side's 2\^n .* got 48x64$"):
        validate(resolve("dcgan", overrides=[folder, "data.image_size=48x64"]))
    validate(resolve("dcgan", overrides=[folder, "data.image_size=32x64"]))
    with pytest.raises(ConfigError, match=r"fashion-mnist images are square .* HxW sizes are for folder:PATH"):
        validate(resolve("vanilla", overrides=["data.image_size=48x64"]))
    with pytest.raises(ConfigError, match="data.cache: unknown value 'maybe'"):
        resolve("vanilla", overrides=["data.cache=maybe"])
    with pytest.raises(ConfigError, match="data.workers: must be >= 0"):
        resolve("vanilla", overrides=["data.workers=-1"])
    validate(resolve("vanilla", overrides=[f"data.name=folder:{tmp_path}", "data.image_size=48x64"]))


@pytest.mark.parametrize("hw,base", [((32, 64), (4, 8)), ((64, 32), (8, 4)), ((28, 56), (7, 14)), ((28, 28), (7, 7))])
def test_dcgan_takes_hxw_images(hw, base):
    from ganforge.nets.dcgan import DCGANDiscriminator, DCGANGenerator

    g, d = DCGANGenerator(8, (3, *hw), width=4), DCGANDiscriminator((3, *hw), width=4, mbstd=2)
    assert tuple(g.net[0].weight.shape[2:]) == base  # G's first kernel: the base H x W
    x = g(torch.randn(5, 8))
    assert x.shape == (5, 3, *hw) and d(x).shape == (5,)


def test_training_dcgan_on_a_non_square_folder(tmp_path, folder, one_thread):
    over = [f"data.name=folder:{folder}", f"data.root={tmp_path / 'root'}", "data.image_size=16x32", "model.z_dim=4",
            "model.g.width=4", "model.d.width=4", "train.batch_size=4", "train.steps=2", "train.progress=false",
            "train.grid_size=4", "train.device=cpu", "train.threads=1", f"out={tmp_path / 'runs'}"]
    run = train(validate(resolve("dcgan", overrides=over)), quiet=True)
    grid = Image.open(run / "samples" / "step-0000002.png")
    assert grid.width > grid.height  # 2 x 2 wide pictures
    from ganforge import load

    assert load(run).sample(3, seed=0).shape == (3, 3, 16, 32)


def test_hxw_resizes_to_cover_then_crops_the_centre(tmp_path):
    d = tmp_path / "bands"
    d.mkdir()
    a = np.zeros((100, 100, 3), dtype=np.uint8)
    a[:25] = (255, 0, 0)  # red top quarter, green middle half, blue bottom quarter
    a[25:75] = (0, 255, 0)
    a[75:] = (0, 0, 255)
    Image.fromarray(a).save(d / "x.png")
    src = gf.folder_source(data_cfg(image_size="10x20", cache="off"), d)  # 100x100 -> 20x20 -> rows 5..15
    img = src.data[0]
    assert img.shape == (3, 10, 20)
    assert (img[1, 1:-1] == 255).all() and (img[0, 2:-2] == 0).all() and (img[2, 2:-2] == 0).all()
    tall = gf.folder_source(data_cfg(image_size="20x10", cache="off"), d)  # all three bands kept
    assert tall.data.shape == (1, 3, 20, 10) and tall.data[0, 0, 0].float().mean() > 200


def test_the_benchmark_folder_generator_is_seeded_and_resumable(tmp_path):
    from benchmarks.bigfolder import generate_folder

    generate_folder(tmp_path / "a", 6, seed=1)
    generate_folder(tmp_path / "b", 6, seed=1)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert len(files) == 6
    pixels = [np.asarray(Image.open(tmp_path / "a" / f)) for f in files]
    assert all(p.shape == (64, 64, 3) for p in pixels) and len({p.tobytes() for p in pixels}) == 6
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert generate_folder(tmp_path / "a", 6, seed=1) == 0.0  # complete: nothing to do


def test_the_benchmark_takes_turns_between_the_cache_and_memory(tmp_path, one_thread):
    from benchmarks.bigfolder import child_compare, generate_folder

    generate_folder(tmp_path / "f", 24, seed=0)
    spec = {"folder": str(tmp_path / "f"), "root": str(tmp_path / "root"), "seed": 0, "batch": 4, "steps": 4,
            "block": 2, "width": 4, "workers": 0, "limit": 24}
    r = child_compare(spec)
    assert r["kinds"] == {"cache": "CachedFolderSource", "memory": "ImageFolderSource"}
    assert all(v > 0 for v in r["cpu_s"].values())
    assert (tmp_path / "root" / "cache").is_dir()  # the cache side really read a built cache


def test_ctrl_c_to_the_process_group_with_workers_checkpoints_and_stops(tmp_path, folder):
    """A terminal's Ctrl-C reaches the trainer and its DataLoader workers: the workers leave it to
    the trainer, which finishes its step, checkpoints and exits 130 (not a crash of a worker)."""
    out = tmp_path / "runs"
    argv = [sys.executable, "-m", "ganforge", "train", "vanilla"]
    for o in [f"data.name=folder:{folder}", f"data.root={tmp_path / 'root'}", "data.cache=on", "data.workers=2",
              "data.image_size=8", "model.z_dim=4", "model.g.hidden=8", "model.d.hidden=8", "train.batch_size=8",
              "train.steps=100000", "train.log_every=5", "train.ckpt_every=0", "train.progress=false",
              "train.grid_size=4", "train.threads=1", f"out={out}"]:
        argv += ["--set", o]
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        import time
        deadline = time.time() + 180
        while not list(out.glob("*/metrics.jsonl")) or not list(out.glob("*/metrics.jsonl"))[0].read_text().strip():
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else "too slow"
            time.sleep(0.1)
        os.killpg(proc.pid, 2)  # SIGINT to the trainer and its workers
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    assert proc.returncode == 130, err
    assert "exited unexpectedly" not in err and "Traceback" not in err
    (run,) = out.iterdir()
    result = json.loads((run / "result.json").read_text())
    assert result["reason"] == "interrupted"
    assert latest_checkpoint(run / "checkpoints").name.endswith(f"{result['step']:07d}")


def _rss_file_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no RssFile in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc (Linux)")
def test_reading_the_whole_cache_does_not_keep_it_mapped(tmp_path):
    """48 MB of rows read in random batches: batches read from the file leave nothing mapped;
    the same batches taken through the memory map end up mapping all of it."""
    shape = (4096, 3, 64, 64)
    path = tmp_path / fc.IMAGES
    data = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path.write_bytes(data.tobytes())
    peaks = {}
    for name in ("read", "mapped"):
        rows = fc.MappedRows(path, shape)
        before, peak = _rss_file_mb(), 0.0
        for idx in torch.randperm(shape[0], generator=torch.Generator().manual_seed(0)).split(64):
            x = rows[idx][0] if name == "read" else rows.data[idx]
            peak = max(peak, _rss_file_mb() - before)
            assert torch.equal(x, torch.from_numpy(data[idx.numpy()]))
        peaks[name] = peak
        del rows, x
    assert peaks["mapped"] > 40 and peaks["read"] < 8, peaks


def test_rows_without_preadv_are_the_same_copies(tmp_path, monkeypatch):
    """Where the OS has no ``preadv`` (Windows) batches are copied out of the map instead: the same
    rows, and writable copies that do not touch the file."""
    shape = (50, 1, 4, 4)
    path = tmp_path / fc.IMAGES
    data = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    path.write_bytes(data.tobytes())
    idx = torch.tensor([7, 0, 49, 7])
    read = fc.MappedRows(path, shape)[idx][0]
    monkeypatch.delattr(os, "preadv")
    copied = fc.MappedRows(path, shape)[idx][0]
    assert torch.equal(read, copied) and torch.equal(read, torch.from_numpy(data[idx.numpy()]))
    copied += 1  # a copy, not the read-only map
    assert path.read_bytes() == data.tobytes()
