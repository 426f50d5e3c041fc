"""Shared checks per extension type, like the net-family checks in test_nets.py: every registered
task, dataset, metric and preset gets the same tests. A new extension is checked as soon as it
is registered (the classes below are generated from the registries)."""

from __future__ import annotations

import math

import pytest
import torch

from ganforge.config import PRESETS, resolve
from ganforge.data import DATASETS, parse_name
from ganforge.data import images as gi
from ganforge.errors import UsageError
from ganforge.evaluation import METRICS
from ganforge.evaluation.registry import WHY, Metric
from ganforge.loop import build_state, train_step
from ganforge.nets import NETS
from ganforge.objectives import Objective
from ganforge.previews import fixed_inputs, write_samples
from ganforge.reporting import Reporter
from ganforge.tasks import TASKS, Task
from ganforge.validation import validate

HAVE_FMNIST = (gi.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file()
needs_fmnist = pytest.mark.skipif(not HAVE_FMNIST, reason="Debian package dataset-fashion-mnist not installed")

# tiny sizes per net family: (model.g, model.d) overrides
TINY = {"mlp": ("hidden=16",), "dcgan": ("width=8",), "resnet": ("width=8",), "biggan": ("width=8",),
        "pix2pix": ("width=8",), "cyclegan": ("width=8",), "srgan": ("width=8",)}
TINY["sagan"] = ("width=8",)
TINY["stylegan2"] = ("channel_base=128", "channel_max=8")
TINY["sequence"] = ("hidden=8", "layers=1")
TINY["sgan"] = ("width=4",)
TINY["stargan"] = ("width=4",)
# data overrides per net family, after the shared ones (a semi-supervised run needs every class labelled)
TINY_DATA = {"sgan": ("data.limit=100", "data.labels_per_class=1")}
TINY_G_ONLY = {"stylegan2": ("w_dim=8", "map_depth=1"), "biggan": ("shared_dim=8",), "srgan": ("n_blocks=1",), "cyclegan": ("n_blocks=1",)}
TINY_G_ONLY["stargan"] = ("n_blocks=1",)


def tiny_overrides(preset: str, tmp_path) -> list[str]:
    arch = resolve(preset).model.arch
    out = [f"out={tmp_path}", "data.limit=16", "train.batch_size=4", "train.steps=1", "train.progress=false",
           "train.grid_size=4", "train.device=cpu", "train.threads=1"]
    for kv in TINY.get(arch, ()):
        out += [f"model.g.{kv}", f"model.d.{kv}"]
    out += [f"model.g.{kv}" for kv in TINY_G_ONLY.get(arch, ())]
    return out + list(TINY_DATA.get(arch, ()))


# -- tasks ----------------------------------------------------------------------------------------

class TaskChecks:
    name: str = ""

    @property
    def task(self) -> Task:
        return TASKS.get(self.name)

    def test_has_an_objective_verbs_and_default_metrics(self):
        assert issubclass(self.task.objective, Objective)
        assert self.task.verbs and self.task.help
        for m in self.task.default_metrics.split(","):
            assert m in METRICS

    def test_is_served_by_a_net_family_and_a_dataset(self):
        assert any(f.task == self.name for _, f in NETS.items())
        assert any(d.task == self.name for _, d in DATASETS.items())

    def test_refuses_verbs_it_does_not_serve(self):
        with pytest.raises(UsageError, match="not `nonsense`"):
            self.task.require("nonsense")


# -- datasets -------------------------------------------------------------------------------------

class DatasetChecks:
    name: str = ""

    def test_entry_is_complete(self):
        entry = DATASETS.get(self.name)
        assert entry.task in TASKS and entry.help
        assert parse_name(f"{self.name}:/some/path" if entry.scheme else self.name)[0] == self.name

    @needs_fmnist
    def test_batches_and_exact_resume(self, tmp_path):
        entry = DATASETS.get(self.name)
        if entry.scheme:
            pytest.skip("a folder scheme: tested with real folders in test_data_images / test_pairs")
        from ganforge.data import build_dataset
        from ganforge.errors import DataError
        cfg = resolve(overrides=[f"data.name={self.name}", "data.limit=32", "train.progress=false",
                                 "data.download=false"])  # nothing downloads in the tests
        try:
            src = build_dataset(cfg)
        except DataError as e:
            if "data.download is false" not in str(e):
                raise
            pytest.skip(f"{self.name} is not available offline here")
        x, y = src.next(5)
        assert x.shape == (5, *src.shape) and x.dtype == torch.float32
        if len(src.shape) == 3:
            assert -1 <= float(x.min()) and float(x.max()) <= 1
        state = src.state_dict()
        a = src.next(7)
        src.load_state_dict(state)
        b = src.next(7)
        for t, u in zip(a, b):
            assert (t is None and u is None) or torch.equal(t, u)
        if entry.split is not None:
            split = entry.split(self.name, "test", limit=8)
            assert len(split.images) <= 8
            if len(src.shape) == 3:  # images: uint8, as the feature extractors take them
                assert split.images.dtype == torch.uint8 and split.images.dim() == 4
            else:  # vectors / sequences: the samples' own values and shape
                assert split.images.is_floating_point() and split.images.shape[1:] == src.shape


# -- metrics --------------------------------------------------------------------------------------

class MetricChecks:
    name: str = ""

    def test_is_a_metric_with_help_and_known_needs(self):
        m = METRICS.get(self.name)
        assert isinstance(m, Metric) and m.name == self.name and METRICS.help(self.name)
        assert set(m.needs) <= set(WHY)

    def test_some_default_plan_or_option_reaches_it(self):
        # every metric is either some task's default or needs something no default model has
        defaults = {n for _, t in TASKS.items() for n in t.default_metrics.split(",")}
        m = METRICS.get(self.name)
        assert self.name in defaults or m.needs


# -- presets --------------------------------------------------------------------------------------

class PresetChecks:
    name: str = ""

    def test_validates(self):
        validate(resolve(self.name))

    @needs_fmnist
    def test_builds_and_steps_once_at_a_tiny_size(self, tmp_path):
        cfg = validate(resolve(self.name, overrides=tiny_overrides(self.name, tmp_path)))
        state = build_state(cfg)
        before = [p.detach().clone() for p in state.G.parameters()]
        report = Reporter()
        train_step(state, report)
        values = report.flush()
        assert values and all(math.isfinite(v) for v in values.values())
        assert any(not torch.equal(a, b) for a, b in zip(before, state.G.parameters()))
        path = write_samples(state, tmp_path, fixed_inputs(state), "step")
        assert path.stat().st_size > 0

    @needs_fmnist
    def test_steps_in_bf16_with_channels_last(self, tmp_path, monkeypatch):
        """The CPU's fast path (train.amp=bf16, channels_last; emulated where the CPU lacks bf16):
        every preset's nets, losses and penalties accept bf16 activations and keep fp32 weights."""
        from ganforge import runtime
        monkeypatch.setattr(runtime, "cpu_native_bf16", lambda: True)
        cfg = validate(resolve(self.name, overrides=[*tiny_overrides(self.name, tmp_path), "train.amp=bf16",
                                                      "train.channels_last=on"]))
        state = build_state(cfg)
        report = Reporter()
        for _ in range(2):
            train_step(state, report)
        values = report.flush()
        assert values and all(math.isfinite(v) for v in values.values())
        assert all(p.dtype == torch.float32 for p in [*state.G.parameters(), *state.D.parameters()])


def _generate(mixin, registry, prefix: str):
    for key in registry:
        cls = type(f"Test{prefix}_{key.replace('-', '_')}", (mixin,), {"name": key})
        globals()[cls.__name__] = cls


_generate(TaskChecks, TASKS.keys(), "Task")
_generate(DatasetChecks, DATASETS.keys(), "Dataset")
_generate(MetricChecks, METRICS.keys(), "Metric")
_generate(PresetChecks, list(PRESETS), "Preset")


def test_every_registered_dataset_lists_its_own_help():
    helps = [DATASETS.help(k) for k in DATASETS.keys()]
    assert all(helps) and len(set(helps)) == len(helps)  # not the Dataset class's docstring for all
