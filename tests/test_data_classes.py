"""data.classes: keep only some classes of a labelled dataset (train split, references NAME:SPLIT@C,C...)."""

from __future__ import annotations

import types

import pytest
import torch

import ganforge.data.images as gi
from ganforge.config import resolve
from ganforge.data import build_dataset, load_reference
from ganforge.data.registry import split_classes, with_classes
from ganforge.errors import ConfigError, DataError
from ganforge.validation import validate

# a fake Fashion-MNIST: image i holds the value i (so the kept images are known), label = a fixed pattern
LABELS = {"train": torch.tensor([3, 7, 1, 7, 3, 0, 7, 5, 3, 7, 2, 1]),
          "test": torch.tensor([7, 0, 3, 3, 9, 7, 1, 7])}


@pytest.fixture
def fake_fmnist(monkeypatch):
    """load_split reads these labels and images (value = file index) instead of the real files
    (class 4 has no images in either split)."""
    def read(ds, root, train, download):
        labels = LABELS["train" if train else "test"]
        images = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 28, 28).contiguous()
        return images, labels.clone()
    monkeypatch.setattr(gi, "_read_torchvision", read)


def cfg_with(*overrides):
    return validate(resolve("dcgan", overrides=["data.name=fashion-mnist", *overrides]))


def test_train_split_keeps_exactly_those_classes_then_limit(fake_fmnist):
    src = build_dataset(cfg_with("data.classes=[3,7]"))
    assert src.labels.tolist() == [3, 7, 7, 3, 7, 3, 7]  # labels keep their indices, file order kept
    assert src.data[:, 0, 0, 0].tolist() == [0, 1, 3, 4, 6, 8, 9]
    assert src.num_classes == 10 and "classes 3,7 of 10" in src.description
    src = build_dataset(cfg_with("data.classes=[7,3]", "data.limit=4"))  # limit counts the kept images
    assert src.data[:, 0, 0, 0].tolist() == [0, 1, 3, 4] and src.labels.tolist() == [3, 7, 7, 3]
    assert len(build_dataset(cfg_with("data.limit=4")).labels) == 4  # [] = every class
    assert build_dataset(cfg_with("data.limit=4")).labels.tolist() == [3, 7, 1, 7]


def test_load_split_and_reference_restricted(fake_fmnist):
    images, labels = gi.load_split("fashion-mnist", "test", classes=(7, 1), limit=3)
    assert labels.tolist() == [7, 7, 1] and images[:, 0, 0, 0].tolist() == [0, 5, 6]
    ref = load_reference("fashion-mnist:test@1,7")
    assert ref.labels.tolist() == [7, 7, 1, 7] and ref.images[:, 0, 0, 0].tolist() == [0, 5, 6, 7]
    assert load_reference("fashion-mnist:test@1,7", limit=2).labels.tolist() == [7, 7]  # limit after the filter
    assert load_reference("fashion-mnist@9").labels.tolist() == [9]  # a bare name is its test split
    assert load_reference("fashion-mnist:train@0").images[:, 0, 0, 0].tolist() == [5]
    assert len(load_reference("fashion-mnist:test").labels) == 8


def test_empty_result_and_bad_classes_are_one_line_errors(fake_fmnist):
    with pytest.raises(DataError, match=r"no samples of classes \[4\]"):
        build_dataset(cfg_with("data.classes=[4]"))
    with pytest.raises(DataError, match=r"fashion-mnist:test@4'.*no samples"):
        load_reference("fashion-mnist:test@4")
    with pytest.raises(DataError, match=r"reference 'fashion-mnist:test@10': class 10 is not a class index .*0\.\.9"):
        load_reference("fashion-mnist:test@10")
    with pytest.raises(DataError, match="comma-separated class indices"):
        load_reference("fashion-mnist:test@five")


@pytest.mark.parametrize("overrides, message", [
    (["data.classes=[3,10]"], r"data.classes: class 10 is not a class index of fashion-mnist \(0..9\)"),
    (["data.classes=[-1]"], "integers >= 0"),
    (["data.classes=[3,3]"], "given twice"),
    (["data.classes=[a]"], "integers >= 0"),
    (["data.classes=3"], "expected a list"),
    (["data.classes=[3]", "model.conditional=true"], "not with model.conditional"),
    (["data.classes=[1]", "data.name=semi:fashion-mnist"], "no classes to choose from; .*fashion-mnist"),
    (["data.classes=[1]", "data.name=folder:/tmp"], "no classes to choose from"),
])
def test_config_checks(overrides, message):
    with pytest.raises(ConfigError, match=message) as e:
        cfg_with(*overrides)
    assert "\n" not in str(e.value)


def test_ref_syntax():
    assert split_classes("fashion-mnist:test@5,7") == ("fashion-mnist:test", (5, 7))
    assert split_classes("mnist@ 1, 2") == ("mnist", (1, 2))
    assert split_classes("fashion-mnist:test") == ("fashion-mnist:test", ())
    assert split_classes("folder:/data/me@3") == ("folder:/data/me@3", ())  # an @ in a path stays in it
    assert with_classes("fashion-mnist:test", [5, 7]) == "fashion-mnist:test@5,7"
    assert with_classes("fashion-mnist:test", []) == "fashion-mnist:test"


def test_default_reference_of_a_run_uses_its_classes():
    from ganforge.evaluation import EvalContext
    from ganforge.tasks import TASKS

    def ref_of(*overrides, ref=None):
        model = types.SimpleNamespace(task=TASKS.get("generate"), cfg=cfg_with(*overrides))
        return EvalContext(model, n=2, ref=ref).ref
    assert ref_of("data.classes=[5,7]") == "fashion-mnist:test@5,7"
    assert ref_of() == "fashion-mnist:test"
    assert ref_of("data.classes=[5,7]", ref="fashion-mnist:test") == "fashion-mnist:test"  # explicit wins


def test_reference_features_cached_per_class_list(fake_fmnist, tmp_path, monkeypatch):
    from ganforge.evaluation import reference_features
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path))

    class Mean:  # a stand-in extractor: the feature is the image's mean value
        name, sha256 = "mean", "0" * 64

        def extract(self, images):
            f = images.float().mean((1, 2, 3)).unsqueeze(1)
            return f, torch.ones(len(images), 10) / 10
    f_all, _, p_all = reference_features("fashion-mnist:test", Mean())
    f_sub, _, p_sub = reference_features("fashion-mnist:test@1,7", Mean())
    assert f_all.flatten().tolist() == list(range(8)) and f_sub.flatten().tolist() == [0, 5, 6, 7]
    assert p_sub["classes"] == [1, 7] and "classes" not in p_all and p_sub["cache"] != p_all["cache"]
    f_again, _, p_again = reference_features("fashion-mnist:test@1,7", Mean())  # from the cache
    assert p_again["cache"] == p_sub["cache"] and torch.equal(f_again, f_sub)
