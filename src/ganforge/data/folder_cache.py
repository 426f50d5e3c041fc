"""The dataset cache of a folder of images: decoded once into a memory-mapped file.

A folder too large to decode into memory (``data.cache=auto`` decides by its decoded size, ``on`` /
``off`` force it) is decoded once, resized and cropped exactly as the in-memory path does, into
``<data root>/cache/<key>/``:

- ``images.u8``: the images, uint8 ``(N, C, H, W)`` rows back to back (no header, no pickle);
- ``meta.json``: its shape and provenance: the source folder, the number of files, a fingerprint
  of their names, sizes and modification times, the image size and channels, ``data.limit``, the
  ganforge version and cache format, and the unreadable files skipped (with their reasons).

``<key>`` hashes what decides the pixels (the folder's absolute path, H x W, the channels asked
for, ``data.limit``, the cache format), so other sizes of the same folder get their own caches. A
folder whose fingerprint changed (a file added, removed, rewritten or touched) is rebuilt, and the
build says so. The build writes ``images.u8`` under a temporary name and renames it into place,
then writes ``meta.json`` (removed first when rebuilding): a build killed or interrupted at any
point leaves no ``meta.json`` that matches, so the cache is never used half-written (the temporary
file of a killed build is removed by the next one).

Training reads the file through a memory map: batches are copied out of the page cache, so the
process's memory does not grow with the dataset. With ``data.workers`` > 0, DataLoader worker
processes read the batches ahead; the order is the same seeded permutation of
:class:`~ganforge.data.base.InMemorySource` and its position is what the loop has consumed, so a
resumed run draws the same batches as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..atomic import atomic_path, remove_stale_files, write_json_atomic
from .base import InMemorySource
from .folders import (MAX_PIXELS, PROGRESS_MIN_FILES, SkippedFile, _decode, folder_files, folder_size, folder_source,
                      image_rows, none_readable, skip_reason)
from .registry import DATASETS, Dataset

CACHE_FORMAT = 1  # bumped when the file layout or the decoding changes: older caches are rebuilt
AUTO_BYTES = 1 << 30  # data.cache=auto: cache folders whose decoded images would take more than this
IMAGES, META = "images.u8", "meta.json"


def cache_dir(cfg, root: Path, size: tuple[int, int]) -> Path:
    """Where the cache of folder ``root`` at ``size`` lives: ``<data root>/cache/<key>``."""
    key = json.dumps({"folder": str(root.resolve()), "size": list(size), "channels": cfg.data.channels,
                      "limit": cfg.data.limit, "format": CACHE_FORMAT}, sort_keys=True)
    return cfg.data_root / "cache" / hashlib.sha256(key.encode()).hexdigest()[:16]


def fingerprint(root: Path, files: list[Path]) -> str:
    """A hash of every file's path (relative to ``root``), size and modification time."""
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _read_meta(where: Path) -> dict | None:
    try:
        meta = json.loads((where / META).read_text())
        shape = tuple(int(v) for v in meta["shape"])
        if meta["format"] != CACHE_FORMAT or (where / IMAGES).stat().st_size != int(np.prod(shape)):
            return None
        return meta
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _decode_one(job):
    path, size, max_pixels = job
    try:
        im = _decode(Path(path), size, max_pixels)
    except Exception as e:  # PIL raises many types on bad data; skip the file, keep a reason
        return None, skip_reason(e)
    return (image_rows(im, 1) if im.mode == "L" else image_rows(im, 3)), im.mode


def build_cache(cfg, root: Path, files: list[Path], size: tuple[int, int], where: Path, *,
                max_pixels: int = MAX_PIXELS, fp: str | None = None) -> dict:
    """Decode ``files`` into ``where/images.u8`` and write ``where/meta.json``; returns the meta.
    ``fp``: the files' :func:`fingerprint` taken before (a file changed during the build makes the
    next run rebuild).

    Channels as in :func:`~ganforge.data.folders.folder_source`: with ``data.channels`` 0 the rows
    are written as RGB and reduced to one channel at the end when every image was gray.
    """
    from tqdm.auto import tqdm

    where.mkdir(parents=True, exist_ok=True)
    remove_stale_files(where)  # the temporary file of a build that was killed
    (where / META).unlink(missing_ok=True)  # from here on the old cache (if any) is not used
    fp = fp or fingerprint(root, files)
    h, w = size
    want = cfg.data.channels
    write_c = want or 3
    show = len(files) > PROGRESS_MIN_FILES and getattr(getattr(cfg, "train", None), "progress", True)
    skipped: list[SkippedFile] = []
    n, all_gray, t0 = 0, True, time.perf_counter()
    jobs = ((str(f), size, max_pixels) for f in files)
    pool = None
    if cfg.data.workers > 0:
        import multiprocessing as mp
        pool = mp.get_context("fork").Pool(cfg.data.workers, initializer=_decoder_init)
    finished = False
    try:
        with atomic_path(where / IMAGES) as tmp, open(tmp, "wb") as out:
            results = pool.imap(_decode_one, jobs, chunksize=64) if pool else map(_decode_one, jobs)
            bar = tqdm(results, total=len(files), desc=f"caching {root.name or root}", unit="img", disable=not show,
                       leave=False)
            for f, (rows, mode) in zip(files, bar):
                if rows is None:
                    skipped.append(SkippedFile(f, mode))  # mode: the reason
                    continue
                all_gray &= mode == "L"
                if rows.shape[0] != write_c:
                    rows = np.repeat(rows, 3, 0) if write_c == 3 else _to_gray(rows)
                out.write(np.ascontiguousarray(rows).tobytes())
                n += 1
            if n == 0:
                raise none_readable(root, len(files), skipped)
            out.flush()
            channels = write_c
            if want == 0 and all_gray:  # every image gray: keep one of the three equal channels
                out.close()
                _keep_first_channel(tmp, n, (h, w))
                channels = 1
        finished = True
    finally:
        if pool is not None:
            if finished:  # the decoders take the pool's end-of-work message and exit
                pool.close()
                pool.join()
            else:  # an error or Ctrl-C: SIGTERM ends them (they ignore only Ctrl-C's SIGINT)
                pool.terminate()
    meta = {"format": CACHE_FORMAT, "ganforge": __version__, "source": str(root.resolve()),
            "files": len(files), "fingerprint": fp, "shape": [n, channels, h, w],
            "image_size": [h, w], "channels": channels, "channels_asked": want, "limit": cfg.data.limit,
            "skipped": [[s.path.relative_to(root).as_posix(), s.reason] for s in skipped],
            "build_seconds": round(time.perf_counter() - t0, 3)}
    write_json_atomic(where / META, meta)
    return meta


def _to_gray(rows: np.ndarray) -> np.ndarray:
    """uint8 RGB (3, H, W) -> (1, H, W) with PIL's BT.601 conversion (as ``convert("L")``)."""
    from PIL import Image

    return image_rows(Image.fromarray(np.ascontiguousarray(rows.transpose(1, 2, 0))).convert("L"), 1)


def _keep_first_channel(path: Path, n: int, size: tuple[int, int]) -> None:
    """Rewrite (n, 3, H, W) rows whose channels are equal as (n, 1, H, W), in place, in chunks."""
    h, w = size
    mm = np.memmap(path, dtype=np.uint8, mode="r+", shape=(n, 3, h, w))
    for i in range(0, n, 4096):
        chunk = np.array(mm[i:i + 4096, 0])  # (k, H, W)
        mm.reshape(-1)[i * h * w:i * h * w + chunk.size] = chunk.reshape(-1)
    mm.flush()
    del mm
    os.truncate(path, n * h * w)


class CachedFolderSource(InMemorySource):
    """A folder's images read from its memory-mapped cache (see the module docstring).

    The same order, position and state as :class:`InMemorySource` over the same images; extra
    attributes ``files``, ``skipped``, ``cache`` (the cache folder), ``meta`` and ``workers``.
    """

    def __init__(self, where: Path, meta: dict, *, files: list[Path], skipped: list[SkippedFile], seed: int,
                 workers: int, description: str):
        self.rows = MappedRows(where / IMAGES, tuple(int(v) for v in meta["shape"]))
        super().__init__(self.rows.data, None, seed=seed, num_classes=0, description=description)
        self.files, self.skipped, self.cache, self.meta, self.workers = files, skipped, where, meta, workers
        self._loader = None  # (batch size, iterator) of the DataLoader reading ahead

    def _batch(self, idx: torch.Tensor):
        return self.rows[idx][0].float().div_(127.5).sub_(1.0), None  # (B, C, H, W) in [-1, 1]

    def next(self, n: int):
        if self.workers == 0:
            return super().next(n)
        if self._loader is None or self._loader[0] != n:
            self._loader = (n, iter(self._make_loader(n)))
        x, idx = next(self._loader[1])
        want = self._take(n)  # the position the loop has consumed (what a checkpoint saves)
        if not torch.equal(idx, want):
            raise RuntimeError("the DataLoader's batches left the source's order")  # a bug, not a user error
        return x.float().div_(127.5).sub_(1.0), None  # (B, C, H, W) in [-1, 1]

    def _make_loader(self, n: int):
        twin = InMemorySource.__new__(InMemorySource)  # a copy of the order from the current position
        twin.data, twin._gen = self.data, torch.Generator()
        twin.load_state_dict(self.state_dict())
        return torch.utils.data.DataLoader(self.rows, sampler=_Batches(twin, n), batch_size=None,
                                           num_workers=self.workers, prefetch_factor=2, worker_init_fn=_quiet_worker)

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._loader = None  # read ahead again from the restored position


def _decoder_init() -> None:
    """A decoding process leaves Ctrl-C (SIGINT, sent to the whole process group) to the builder,
    which stops the build; SIGTERM keeps its default so that ``Pool.terminate`` can end it (a
    decoder that ignored it would leave ``terminate`` waiting for it forever)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _quiet_worker(worker_id: int) -> None:
    """A worker leaves Ctrl-C / SIGTERM (sent to the whole process group) to the training process,
    which finishes its step, checkpoints and stops, then ends the workers; a worker whose training
    process is gone exits by itself (DataLoader's watchdog)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class MappedRows(torch.utils.data.Dataset):
    """The cache file's rows: ``rows[idx]`` -> (uint8 (B, C, H, W) copy, idx); ``rows.data`` is the
    whole file as a read-only memory-mapped (N, C, H, W) tensor.

    Batches are read with ``os.preadv`` into a fresh buffer, not through the map: pages a process
    has touched through a map stay mapped and count in its RSS (a long run would map the whole
    file), and a fault maps more than its row (the cached pages around it, whole large folios of a
    freshly written file). Dropping them after each batch (``MADV_DONTNEED``) bounded the RSS but
    cost ~20 ms of kernel time per 64-image batch in re-faulting; a read costs a copy. The file's
    data stays in the page cache either way. Forked DataLoader workers share the descriptor
    (``preadv`` takes its own offset).
    """

    def __init__(self, path: Path, shape: tuple):
        import mmap

        self.shape, self.row = shape, int(np.prod(shape[1:]))
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._map = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
        if hasattr(mmap, "MADV_RANDOM") and hasattr(self._map, "madvise"):
            self._map.madvise(mmap.MADV_RANDOM)  # whoever indexes .data: no read-ahead
        array = np.frombuffer(self._map, dtype=np.uint8).reshape(shape)
        with warnings.catch_warnings():  # read-only: indexing copies
            warnings.simplefilter("ignore", UserWarning)
            self.data = torch.from_numpy(array)  # (N, C, H, W) uint8 view of the file

    def __len__(self):
        return self.shape[0]

    def __del__(self):
        try:
            os.close(self._fd)
        except (AttributeError, OSError):  # never opened, or already closed
            pass

    def __getitem__(self, idx):
        if not hasattr(os, "preadv"):  # Windows: copy the rows out of the map
            return self.data[idx].clone(), idx
        rows = torch.as_tensor(idx).reshape(-1).tolist()
        out = np.empty((len(rows), self.row), dtype=np.uint8)
        for k, i in enumerate(rows):
            if os.preadv(self._fd, [out[k]], i * self.row) != self.row:
                raise OSError(f"short read from the dataset cache at row {i}")
        return torch.from_numpy(out).view(len(rows), *self.shape[1:]), idx


class _Batches(torch.utils.data.Sampler):
    """The endless stream of index batches a source's ``_take(n)`` will return, from a copy of it."""

    def __init__(self, twin: InMemorySource, n: int):
        self.twin, self.n = twin, n

    def __iter__(self):
        while True:
            yield self.twin._take(self.n)


def use_cache(cfg, n_files: int, size: tuple[int, int]) -> bool:
    """``data.cache``: on, off, or auto (when the decoded images would take more than 1 GB)."""
    if cfg.data.cache == "auto":
        return n_files * (cfg.data.channels or 3) * size[0] * size[1] > AUTO_BYTES
    return cfg.data.cache == "on"


def cached_folder_source(cfg, path: str | Path, *, max_pixels: int = MAX_PIXELS, listed=None,
                         print_fn=None) -> CachedFolderSource:
    """The folder's cache, built (or rebuilt when the folder changed) first if needed. ``listed``:
    (folder, files) when the caller has listed them already; ``print_fn`` says what is built."""
    say = print_fn or (lambda msg: print(msg, file=sys.stderr))
    root, files = listed or folder_files(cfg, path)
    size = folder_size(cfg)
    where = cache_dir(cfg, root, size)
    meta, fp = _read_meta(where), fingerprint(root, files)
    if meta is None or meta.get("fingerprint") != fp:
        if meta is None:
            say(f"dataset cache: decoding {len(files)} files of {root} into {where} (once)")
        else:
            say(f"dataset cache: {root} changed since its cache was built ({meta['files']} files then, "
                f"{len(files)} now, or files rewritten); rebuilding {where}")
        meta = build_cache(cfg, root, files, size, where, max_pixels=max_pixels, fp=fp)
    bad = {rel: why for rel, why in meta["skipped"]}
    skipped = [SkippedFile(root / rel, why) for rel, why in meta["skipped"]]
    used = [f for f in files if f.relative_to(root).as_posix() not in bad]
    n, c, h, w = meta["shape"]
    desc = (f"folder {root}: {n} images {c}x{h}x{w}, unlabelled, cached in {where}"
            + (f", {len(skipped)} unreadable files skipped" if skipped else ""))
    return CachedFolderSource(where, meta, files=used, skipped=skipped, seed=cfg.seed, workers=cfg.data.workers,
                              description=desc)


def folder_dataset(cfg, path: str | Path):
    """``folder:PATH``: decoded into memory, or read from its cache (``data.cache``)."""
    if cfg.data.cache == "off":
        return folder_source(cfg, path)
    root, files = folder_files(cfg, path)
    if use_cache(cfg, len(files), folder_size(cfg)):
        return cached_folder_source(cfg, path, listed=(root, files))
    return folder_source(cfg, path)


DATASETS.register("folder")(Dataset(
    build=folder_dataset, task="generate", scheme=True, any_shape=True,
    help="every image under PATH (recursive), resized and centre-cropped to data.image_size (default 64, or HxW); "
         "large folders are decoded once into a memory-mapped cache (data.cache, data.workers)"))

__all__ = ["AUTO_BYTES", "CACHE_FORMAT", "CachedFolderSource", "build_cache", "cache_dir", "cached_folder_source",
           "fingerprint", "folder_dataset", "use_cache"]
