"""Multivariate time series: a seeded sines benchmark with known ground truth, and loaders for a
user's own series (``csv:PATH``, ``npy:PATH``).

Every source here is a :class:`SequenceSource`: ``next(n) -> (x, lengths)`` with ``x`` of shape
``(n, T, F)`` (float32) and ``lengths`` ``(n,)`` int64, or None when every sequence has the full
length ``T``. Steps at or beyond a sequence's length are zero.

**Sines** (the TimeGAN benchmark, Yoon et al. 2019): each of the F features of a sequence is
``sin(f * t + p)`` for t = 0..T-1, with its own frequency f and phase p drawn uniformly from
[0, 0.1]. Default T = 24, F = 5. The parameters are the ground truth (``SineBenchmark.params``).

Value range: **[-1, 1]** by default, which is sin's own range and the framework's convention for
generated data (images are in [-1, 1] and G ends in tanh), so nothing has to be rescaled between
the data, the nets and the pictures. TimeGAN itself rescaled to [0, 1] (``zero_one=True``); use
that to compare absolute predictive scores (MAE) with the paper's: MAE in [0, 1] units is
exactly half the MAE in [-1, 1] units.

**User data** is min-max scaled per feature to [-1, 1] over the whole file(s); the source keeps
the minimum and maximum (:meth:`SequenceSource.denormalise` maps samples back to data units).

- ``csv:FILE``: rows are time steps, columns features (an optional header row of names); the
  sequences are the sliding windows of ``length`` consecutive rows, ``stride`` rows apart.
- ``csv:FOLDER``: every ``*.csv`` file in the folder (sorted by name) is one sequence; they may
  have different lengths. ``T`` is the longest (or ``length`` when given: longer ones are
  truncated to their first ``length`` rows).
- ``npy:FILE``: an array of shape (N, T, F) (or (N, T) for one feature), loaded with
  ``allow_pickle=False``; all sequences have the full length.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .base import DataError, InMemorySource
from .registry import DATASETS, Dataset, Split

SINE_LENGTH = 24  # TimeGAN's sequence length
SINE_FEATURES = 5  # TimeGAN's feature count
SINE_COUNT = 10000  # TimeGAN's number of sequences
SINE_SEEDS = {"train": 0, "test": 1}  # the registered sines: the same data in every run, a test set apart


@dataclass(frozen=True)
class SineBenchmark:
    """Seeded sines with their ground truth."""

    data: Tensor  # (N, T, F) float32, zero beyond each length
    lengths: Tensor | None  # (N,) int64, or None when all have length T
    params: Tensor  # (N, F, 2) float64: (frequency, phase) of each feature
    zero_one: bool  # values in [0, 1] instead of [-1, 1]


def sines(n: int = SINE_COUNT, *, length: int = SINE_LENGTH, features: int = SINE_FEATURES,
          seed: int = 0, zero_one: bool = False, min_length: int = 0) -> SineBenchmark:
    """``n`` sequences of ``features`` sines over ``length`` steps (see the module docstring).

    ``min_length`` > 0 gives variable lengths drawn uniformly from {min_length, ..., length};
    steps beyond a sequence's length are zero.
    """
    if n < 1 or length < 1 or features < 1:
        raise ValueError(f"sines needs n, length and features >= 1, got {n}, {length}, {features}")
    if not 0 <= min_length <= length:
        raise ValueError(f"min_length must be in [0, length={length}], got {min_length}")
    g = torch.Generator().manual_seed(int(seed))
    params = torch.rand(n, features, 2, generator=g, dtype=torch.float64) * 0.1  # U[0, 0.1]
    t = torch.arange(length, dtype=torch.float64)  # (T,)
    x = torch.sin(params[:, None, :, 0] * t[None, :, None] + params[:, None, :, 1])  # (N, T, F)
    if zero_one:
        x = (x + 1) / 2
    lengths = None
    if min_length:
        lengths = torch.randint(min_length, length + 1, (n,), generator=g)
        x = x * length_mask(lengths, length)[:, :, None]
    return SineBenchmark(x.float(), lengths, params, zero_one)


def length_mask(lengths: Tensor, length: int) -> Tensor:
    """(B, T) float mask: 1 for the steps t < lengths[b], 0 after."""
    return (torch.arange(length, device=lengths.device)[None, :] < lengths[:, None]).float()


class SequenceSource(InMemorySource):
    """Sequences held in memory, visited in epochs of a seeded permutation (exact resume through
    ``state_dict``, as :class:`InMemorySource`). ``next(n) -> (x (n, T, F), lengths (n,) | None)``.

    ``data_min`` / ``data_max`` (F,) record the scaling of user data (None for the sines).
    """

    def __init__(self, data: Tensor, lengths: Tensor | None = None, *, seed: int = 0, description: str = "",
                 data_min: Tensor | None = None, data_max: Tensor | None = None):
        if data.dim() != 3 or not data.is_floating_point():
            raise DataError(f"sequences must be a float (N, T, F) array, got {data.dtype} {tuple(data.shape)}")
        if lengths is not None:
            lengths = lengths.long()
            if lengths.shape != data.shape[:1] or lengths.min() < 1 or lengths.max() > data.shape[1]:
                raise DataError(f"sequence lengths must be (N,) in [1, {data.shape[1]}]")
            data = data * length_mask(lengths, data.shape[1])[:, :, None].to(data.dtype)
        super().__init__(data.float(), lengths, seed=seed, description=description)
        self.data_min, self.data_max = data_min, data_max

    @property
    def lengths(self) -> Tensor | None:
        return self.labels

    def denormalise(self, x: Tensor) -> Tensor:
        """Samples in [-1, 1] back to the units of the loaded data (identity for the sines)."""
        if self.data_min is None:
            return x
        return (x + 1) / 2 * (self.data_max - self.data_min) + self.data_min


def sines_source(n: int = SINE_COUNT, *, seed: int = 0, **kwargs) -> SequenceSource:
    """The sines benchmark as a data source (``kwargs`` as :func:`sines`)."""
    b = sines(n, seed=seed, **kwargs)
    rng = "[0, 1]" if b.zero_one else "[-1, 1]"
    var = f", lengths {int(b.lengths.min())}..{b.data.shape[1]}" if b.lengths is not None else ""
    return SequenceSource(b.data, b.lengths, seed=seed,
                          description=f"sines: {n} sequences x {b.data.shape[1]} steps x {b.data.shape[2]} "
                                      f"features in {rng}{var}")


# -- user data ---------------------------------------------------------------------------------

def _read_csv(path: Path) -> np.ndarray:
    """A CSV of numbers as a (rows, columns) float64 array; a first row of names is skipped."""
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if rows and not _numeric(rows[0]):
        rows = rows[1:]  # header
    if not rows:
        raise DataError(f"{path} holds no rows of numbers")
    width = len(rows[0])
    out = np.empty((len(rows), width))
    for i, r in enumerate(rows):
        if len(r) != width:
            raise DataError(f"{path}: row {i + 1} has {len(r)} columns, the first has {width}")
        try:
            out[i] = [float(c) for c in r]
        except ValueError:
            raise DataError(f"{path}: row {i + 1} is not all numbers: {','.join(r)[:60]}") from None
    if not np.isfinite(out).all():
        raise DataError(f"{path} holds NaN or infinite values")
    return out


def _numeric(row: list[str]) -> bool:
    try:
        [float(c) for c in row]
        return True
    except ValueError:
        return False


def _scaled_source(data: np.ndarray, lengths: np.ndarray | None, seed: int, description: str) -> SequenceSource:
    """Min-max scale each feature to [-1, 1] over the valid steps; constant features become 0."""
    x = torch.from_numpy(data).double()  # (N, T, F)
    valid = torch.ones(x.shape[:2], dtype=torch.bool) if lengths is None else \
        length_mask(torch.from_numpy(lengths), x.shape[1]).bool()
    v = x[valid]  # (steps, F)
    lo, hi = v.min(0).values, v.max(0).values
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    scaled = (x - lo) / span * 2 - 1
    scaled = torch.where(hi > lo, scaled, torch.zeros_like(scaled))
    return SequenceSource(scaled.float(), None if lengths is None else torch.from_numpy(lengths), seed=seed,
                          description=description, data_min=lo.float(), data_max=hi.float())


def csv_source(path: str | Path, *, length: int = SINE_LENGTH, stride: int = 1, seed: int = 0) -> SequenceSource:
    """``csv:PATH``: sliding windows of one CSV file, or one sequence per CSV file of a folder
    (``length`` 0 = the longest file). See the module docstring."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"csv path not found: {root}")
    if length < 0 or stride < 1:
        raise DataError(f"csv sequences need length >= 0 and stride >= 1, got {length}, {stride}")
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
        if not files:
            raise DataError(f"no .csv files in {root}")
        seqs = [_read_csv(p) for p in files]
        for p, s in zip(files, seqs):
            if s.shape[1] != seqs[0].shape[1]:
                raise DataError(f"{p.name} has {s.shape[1]} columns, {files[0].name} has {seqs[0].shape[1]}: "
                                f"all files need the same features")
        t = length or max(len(s) for s in seqs)
        data = np.zeros((len(seqs), t, seqs[0].shape[1]))
        lengths = np.array([min(len(s), t) for s in seqs], dtype=np.int64)
        for i, s in enumerate(seqs):
            data[i, :lengths[i]] = s[:t]
        full = bool((lengths == t).all())
        return _scaled_source(data, None if full else lengths, seed,
                              f"{root}: {len(seqs)} sequences of up to {t} steps x {data.shape[2]} features")
    series = _read_csv(root)
    if length == 0:
        raise DataError("csv:FILE cuts one series into windows: give a window length >= 1")
    if len(series) < length:
        raise DataError(f"{root} has {len(series)} rows, fewer than the window length {length}")
    starts = range(0, len(series) - length + 1, stride)
    data = np.stack([series[s:s + length] for s in starts])  # (N, T, F)
    return _scaled_source(data, None, seed, f"{root}: {len(data)} windows of {length} steps x "
                                            f"{data.shape[2]} features (stride {stride})")


def npy_source(path: str | Path, *, seed: int = 0) -> SequenceSource:
    """``npy:PATH``: an (N, T, F) or (N, T) numeric array, loaded without pickle."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"npy file not found: {p}")
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as e:
        msg = "it needs pickle (object arrays are refused)" if "pickle" in str(e) else str(e).splitlines()[0]
        raise DataError(f"cannot load {p}: {msg}") from None
    except (OSError, EOFError) as e:
        raise DataError(f"cannot load {p}: not a .npy file ({e})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiub":
        raise DataError(f"{p} must hold a numeric array, got dtype {getattr(arr, 'dtype', type(arr))}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or min(arr.shape) < 1:
        raise DataError(f"{p} must be an (N, T, F) array of sequences, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise DataError(f"{p} holds NaN or infinite values")
    return _scaled_source(arr, None, seed, f"{p}: {arr.shape[0]} sequences x {arr.shape[1]} steps x "
                                           f"{arr.shape[2]} features")


def sequence_source(spec: str, *, length: int = SINE_LENGTH, stride: int = 1, seed: int = 0) -> SequenceSource:
    """The source for ``csv:PATH`` or ``npy:PATH``."""
    if spec.startswith("csv:"):
        return csv_source(spec[4:], length=length, stride=stride, seed=seed)
    if spec.startswith("npy:"):
        return npy_source(spec[4:], seed=seed)
    raise DataError(f"not a sequence data spec: {spec!r} (use csv:PATH or npy:PATH)")


# -- registration ------------------------------------------------------------------------------

def sequence_options(cfg) -> dict:
    """The data options that shape a config's sequences (passed to the split functions)."""
    d = cfg.data
    return {"length": d.length, "features": d.features, "min_length": d.min_length, "stride": d.stride}


def _sines_split(name: str, split: str, *, limit: int = 0, length: int = SINE_LENGTH,
                 features: int = SINE_FEATURES, min_length: int = 0, **_) -> Split:
    """The registered sines' ``split`` (train: seed 0, test: seed 1) as ``Split(images=(N, T, F) float,
    labels=lengths or None)``; ``limit`` sequences (default 10000)."""
    if split not in SINE_SEEDS:
        raise DataError(f"sines has the splits {', '.join(SINE_SEEDS)}, not '{split}'")
    try:
        b = sines(limit or SINE_COUNT, length=length, features=features, seed=SINE_SEEDS[split],
                  min_length=min_length)
    except ValueError as e:
        raise DataError(f"sines: {e}") from None
    return Split(b.data, b.lengths)


def _sines_build(cfg, path: str = "") -> SequenceSource:
    sp = _sines_split("sines", "train", limit=cfg.data.limit, **sequence_options(cfg))
    var = f", lengths {cfg.data.min_length}..{cfg.data.length}" if sp.labels is not None else ""
    return SequenceSource(sp.images, sp.labels, seed=cfg.seed,
                          description=f"sines: {len(sp.images)} sequences x {sp.images.shape[1]} steps x "
                                      f"{sp.images.shape[2]} features in [-1, 1]{var}")


def _limited(src: SequenceSource, limit: int, seed: int = 0) -> SequenceSource:
    """The first ``limit`` sequences (all for 0), scaled as the whole file(s) were."""
    if not limit or limit >= len(src):
        return src
    lengths = None if src.lengths is None else src.lengths[:limit]
    return SequenceSource(src.data[:limit], lengths, seed=seed, description=f"{src.description}, first {limit}",
                          data_min=src.data_min, data_max=src.data_max)


def _file_build(scheme: str):
    def build(cfg, path: str) -> SequenceSource:
        d = cfg.data
        src = sequence_source(f"{scheme}:{path}", length=d.length, stride=d.stride, seed=cfg.seed)
        return _limited(src, d.limit, cfg.seed)
    return build


def _file_split(scheme: str):
    def split_fn(path: str, split: str, *, limit: int = 0, length: int = SINE_LENGTH, stride: int = 1,
                 **_) -> Split:
        """A user's sequences have no held-out part: ``train`` is all of them (the TimeGAN protocol
        scores generated data against the training data)."""
        if split != "train":
            raise DataError(f"{scheme}:PATH data has no '{split}' split; compare with its training data "
                            f"({scheme}:PATH:train)")
        src = _limited(sequence_source(f"{scheme}:{path}", length=length, stride=stride), limit)
        return Split(src.data, src.lengths)
    return split_fn


DATASETS.register("sines")(Dataset(
    build=_sines_build, task="sequence", split=_sines_split,
    help="TimeGAN's sines: data.features sines over data.length steps, frequency and phase U[0, 0.1] "
         "(train seed 0, test seed 1; data.min_length > 0: variable lengths)"))
DATASETS.register("csv")(Dataset(
    build=_file_build("csv"), task="sequence", scheme=True, split=_file_split("csv"),
    help="time series from CSV: windows of data.length rows (data.stride apart) of one file, or one "
         "sequence per file of a folder; scaled per feature to [-1, 1]"))
DATASETS.register("npy")(Dataset(
    build=_file_build("npy"), task="sequence", scheme=True, split=_file_split("npy"),
    help="time series from an (N, T, F) .npy array (no pickle); scaled per feature to [-1, 1]"))


__all__ = ["SINE_COUNT", "SINE_FEATURES", "SINE_LENGTH", "SequenceSource", "SineBenchmark", "csv_source",
           "length_mask", "npy_source", "sequence_options", "sequence_source", "sines", "sines_source"]
