"""Shared fixtures: tiny configs, run folders, an in-memory image dataset, torch global state.

Everything here is sized for a busy 2-core CPU: MLP nets with 16 hidden units, batches of 32,
a handful of steps, one torch thread, no progress bar.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from ganforge import runtime
from ganforge.config import Config, resolve
from ganforge.validation import validate

# Overrides that make any toy run tiny; tests add their own on top (later overrides win).
TINY_TOY = (
    "model.arch=mlp",
    "data.name=ring8",
    "model.z_dim=4",
    "model.g.hidden=16",
    "model.d.hidden=16",
    "train.batch_size=32",
    "train.steps=4",
    "train.log_every=2",
    "train.sample_every=0",
    "train.ckpt_every=0",
    "train.progress=false",
    "train.threads=1",
    "train.device=cpu",
)

# Tiny constructor arguments per network family (unknown families use their defaults).
TINY_NET_KWARGS = {
    "mlp": ({"hidden": 16}, {"hidden": 16}),
    "dcgan": ({"width": 8}, {"width": 8}),
    "resnet": ({"width": 8}, {"width": 8}),
    "biggan": ({"width": 8, "shared_dim": 8}, {"width": 8}),
    "stylegan2": ({"w_dim": 8, "map_depth": 1, "channel_base": 128, "channel_max": 8, "noise_mode": "const"},
                  {"channel_base": 128, "channel_max": 8}),
    "sagan": ({"width": 8}, {"width": 8}),
}

_unique = itertools.count()


def data_cfg(root: Path | None = None, **data) -> Config:
    """A default Config (seed 3, no progress bar) with ``data.root`` and other ``data.*`` set."""
    cfg = Config()
    cfg.seed = 3
    cfg.train.progress = False
    if root is not None:
        cfg.data.root = str(root)
    for k, v in data.items():
        setattr(cfg.data, k, v)
    return cfg


@pytest.fixture(autouse=True)
def _restore_torch_globals():
    """Training sets process-wide torch state (threads, deterministic mode, RNG); undo it."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    rng = torch.get_rng_state()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if torch.are_deterministic_algorithms_enabled() != deterministic:
        torch.use_deterministic_algorithms(deterministic)  # slow on first call: only when changed
    torch.set_rng_state(rng)


REAL_CPU_NATIVE_BF16 = runtime.cpu_native_bf16  # the real check, for the tests of the check itself


@pytest.fixture(autouse=True)
def _fp32_on_every_cpu(monkeypatch):
    """``train.amp`` / ``train.channels_last`` ``auto`` pick bf16 and NHWC on CPUs with bf16
    instructions; in tests they resolve as on a CPU without them, so every machine runs the same
    fp32 maths. Tests of the bf16 path patch ``runtime.cpu_native_bf16`` back to True."""
    monkeypatch.setattr(runtime, "cpu_native_bf16", lambda: False)


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """The parent folder for this test's run folders (``cfg.out``)."""
    return tmp_path / "runs"


@pytest.fixture
def make_cfg(runs_dir: Path):
    """``make_cfg(*overrides, preset="vanilla")``: a validated tiny toy config writing into runs_dir."""

    def make(*overrides: str, preset: str = "vanilla") -> Config:
        return validate(resolve(preset, overrides=[*TINY_TOY, f"out={runs_dir}", *overrides]))

    return make


@pytest.fixture
def train_tiny(make_cfg):
    """``train_tiny(*overrides, preset="vanilla")``: train a tiny toy run and return its folder."""
    from ganforge.session import train

    def run(*overrides: str, preset: str = "vanilla") -> Path:
        return train(make_cfg(*overrides, preset=preset), quiet=True)

    return run


@pytest.fixture
def image_dataset(monkeypatch):
    """``image_dataset(shape=(1, 28, 28), n=64)``: register random uint8 images under a unique
    dataset name for this test only and return the name (for ``data.name=...``)."""
    from ganforge.data import DATASETS, Dataset, InMemorySource

    def register(shape=(1, 28, 28), n: int = 64) -> str:
        name = f"test-images-{next(_unique)}"
        g = torch.Generator().manual_seed(1234)
        data = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)

        def factory(cfg, path=""):
            return InMemorySource(data, seed=cfg.seed, description=f"{n} random images {shape}")

        monkeypatch.setitem(DATASETS._items, name, Dataset(build=factory, task="generate"))
        return name

    return register


@pytest.fixture
def labelled_dataset(monkeypatch):
    """``labelled_dataset(shape=(1, 28, 28), n=60, classes=3)``: random uint8 images whose
    brightness depends on the label, registered for this test only; returns the name."""
    from ganforge.data import DATASETS, Dataset, InMemorySource

    def register(shape=(1, 28, 28), n: int = 60, classes: int = 3) -> str:
        name = f"test-labelled-{next(_unique)}"
        g = torch.Generator().manual_seed(4321)
        labels = torch.arange(n) % classes
        data = (torch.randint(0, 64, (n, *shape), generator=g) + labels.view(-1, *([1] * len(shape))) * 64)
        data = data.to(torch.uint8)

        def factory(cfg, path=""):
            return InMemorySource(data, labels, seed=cfg.seed, num_classes=classes,
                                  description=f"{n} labelled random images {shape}")

        monkeypatch.setitem(DATASETS._items, name, Dataset(build=factory, task="generate",
                                                           classes=tuple(map(str, range(classes)))))
        return name

    return register


@pytest.fixture
def one_thread():
    """Tiny nets run fastest on one thread (restored after the test by _restore_torch_globals)."""
    torch.set_num_threads(1)


@pytest.fixture
def restore_signals():
    """For tests that run a benchmark's main in-process: its SIGINT/SIGTERM handlers and stop flag are undone."""
    import signal

    from benchmarks import common
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in old.items():
        signal.signal(s, h)
    common._stop["why"] = None
