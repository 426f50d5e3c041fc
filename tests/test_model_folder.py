"""Model folders (`ganforge save-model`, `ganforge.load(DIR)`), their model card, every run-taking
command on a folder, damaged folders, and the Hugging Face Hub paths without a network
(`hf://` from a local Hub cache with HF_HUB_OFFLINE=1; `ganforge push` argument checks)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from ganforge import load
from ganforge.checkpoint import CheckpointError
from ganforge.cli import main
from ganforge.model_folder import is_model_folder
from test_export import train_runs

RUNS = {"dcgan": ["model.z_dim=8", "train.ema=0.9"], "cgan": ["model.z_dim=8"], "pix2pix": []}
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return train_runs(tmp_path_factory, RUNS)


@pytest.fixture(scope="module")
def folders(runs, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("models")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, run in runs.items():
            assert main(["save-model", str(run), "--out", str(out / name), "--license", "apache-2.0"]) == 0
    finally:
        torch.set_num_threads(threads)
    return {name: out / name for name in runs}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_round_trip_gives_bit_identical_samples(runs, folders):
    for name in ("dcgan", "cgan"):
        a, b = load(runs[name]), load(folders[name])
        facts = ("step", "ema", "z_dim", "num_classes", "task")
        assert [getattr(b, k) for k in facts] == [getattr(a, k) for k in facts]
        assert b.args == a.args and b.ema == (name == "dcgan")
        labels = torch.tensor([0, 5, 9, 2, 2, 7]) if a.conditional else None
        assert torch.equal(a.sample(6, seed=4, labels=labels), b.sample(6, seed=4, labels=labels))
    p2p_run, p2p = load(runs["pix2pix"]), load(folders["pix2pix"])
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    assert torch.equal(p2p_run.translate(x), p2p.translate(x))


def test_model_json_describes_the_model(folders):
    m = json.loads((folders["cgan"] / "model.json").read_text())
    assert m["format"] == "ganforge-model" and m["arch"] == "dcgan" and m["task"] == "class-conditional"
    assert m["g_args"] == {"z_dim": 8, "out_shape": [1, 28, 28], "num_classes": 10, "width": 8}
    assert m["z_dim"] == 8 and m["latent"] == "normal" and m["num_classes"] == 10
    assert m["class_names"][0] == "T-shirt/top" and len(m["class_names"]) == 10
    assert m["preprocessing"] == {"value_range": [-1, 1], "channels": 1, "size": [28, 28]}
    assert m["data_shape"] == [1, 28, 28] and m["input_shape"] is None and m["step"] == 2
    p = json.loads((folders["pix2pix"] / "model.json").read_text())
    assert p["task"] == "image-to-image (paired)" and p["input_shape"] == [1, 28, 28] and p["class_names"] is None
    assert is_model_folder(folders["cgan"]) and not is_model_folder(folders["cgan"].parent)


def _front_matter(readme: Path) -> dict:
    text = readme.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_front_matter_carries_training_and_the_newest_evaluation(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["cgan"], run)
    prov = {"run": str(run), "step": 2, "ema": False, "n": 40, "reference": "fashion-mnist:test",
            "reference_n": 10000, "extractor": "fmnist", "extractor_sha256": "ab" * 32, "seed": 0}
    (run / "eval-step1.json").write_text(json.dumps({"results": {"fid": 99.0}, "provenance": {**prov, "step": 1}}))
    (run / "eval-step2.json").write_text(json.dumps({"results": {"fid": 123.5, "kid": 0.25}, "provenance": prov}))
    assert main(["save-model", str(run), "--out", str(tmp_path / "m")]) == 0
    fm = _front_matter(tmp_path / "m" / "README.md")
    gf = fm["ganforge"]
    assert fm["library_name"] == "ganforge" and fm["license"] == "other" and fm["datasets"] == ["fashion-mnist"]
    assert gf["task"] == "class-conditional" and gf["preset"] == "cgan" and gf["step"] == 2
    assert gf["training"]["steps"] == 2 and gf["training"]["images_seen"] == 2 * 4  # steps x batch
    assert gf["training"]["source"] == "result.json, metrics.jsonl"
    assert gf["metrics"]["fid"] == {"value": 123.5, **{k: v for k, v in prov.items() if k != "run"},
                                    "source": "eval-step2.json"}
    assert gf["metrics"]["kid"]["value"] == 0.25
    assert "| fid | 123.5 | 2 | 40 | fashion-mnist:test | fmnist |" in (tmp_path / "m" / "README.md").read_text()
    img = Image.open(tmp_path / "m" / "sample.png")  # 6 samples per class, one row per class
    assert img.size == (6 * 30 + 2, 10 * 30 + 2)


def test_card_without_evaluation_says_so(folders):
    fm = _front_matter(folders["dcgan"] / "README.md")
    assert fm["license"] == "apache-2.0" and fm["ganforge"]["metrics"] is None and fm["ganforge"]["ema"] is True
    assert fm["pipeline_tag"] == "unconditional-image-generation"
    assert _front_matter(folders["pix2pix"] / "README.md")["pipeline_tag"] == "image-to-image"
    assert (folders["pix2pix"] / "sample.png").is_file()  # the run's before/after grid
    assert "No evaluation was recorded" in (folders["dcgan"] / "README.md").read_text()


def test_run_commands_accept_a_model_folder(runs, folders, tmp_path, capsys):
    assert main(["sample", str(folders["cgan"]), "--out", str(tmp_path / "f.png"), "--n", "20"]) == 0
    assert main(["sample", str(runs["cgan"]), "--out", str(tmp_path / "r.png"), "--n", "20"]) == 0
    assert (tmp_path / "f.png").read_bytes() == (tmp_path / "r.png").read_bytes()
    assert main(["interpolate", str(folders["dcgan"]), "--out", str(tmp_path / "i"),
                 "--steps", "3", "--rows", "2"]) == 0
    assert (tmp_path / "i.gif").is_file()
    assert main(["synthesize", str(folders["cgan"]), "--per-class", "1", "--out", str(tmp_path / "syn")]) == 0
    assert len(list((tmp_path / "syn").rglob("*.png"))) == 10
    Image.new("L", (28, 28), 100).save(tmp_path / "in.png")
    assert main(["translate", str(folders["pix2pix"]), str(tmp_path / "in.png"), "--out", str(tmp_path / "tr")]) == 0
    assert (tmp_path / "tr" / "in.png").is_file()
    assert main(["export", str(folders["dcgan"]), "--format", "torchscript", "--out", str(tmp_path / "g.pt")]) == 0
    assert "verified with torch.jit.load" in capsys.readouterr().out


def _copy(folder: Path, tmp_path: Path, name: str) -> Path:
    dst = tmp_path / name
    shutil.copytree(folder, dst)
    return dst


def test_damaged_or_misused_folders_are_one_line_errors(folders, tmp_path, capsys):
    def fails(folder, *extra, match):
        assert main(["sample", str(folder), "--out", str(tmp_path / "x.png"), *extra]) == 2
        assert match in _one_line_error(capsys)

    f = _copy(folders["dcgan"], tmp_path, "no-weights")
    (f / "model.safetensors").unlink()
    fails(f, match="model.safetensors is missing")
    f = _copy(folders["dcgan"], tmp_path, "flipped")
    data = bytearray((f / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (f / "model.safetensors").write_bytes(bytes(data))
    fails(f, match="damaged (checksum mismatch)")
    f = _copy(folders["dcgan"], tmp_path, "bad-json")
    (f / "model.json").write_text("{not json")
    fails(f, match="model.json is damaged")
    f = _copy(folders["dcgan"], tmp_path, "no-config")
    (f / "config.yaml").unlink()
    fails(f, match="config.yaml is missing")
    f = _copy(folders["dcgan"], tmp_path, "wrong-args")
    m = json.loads((f / "model.json").read_text())
    m["g_args"]["width"] = 16
    (f / "model.json").write_text(json.dumps(m))
    fails(f, match="do not fit the described dcgan generator")
    fails(folders["dcgan"], "--checkpoint", "2", match="--checkpoint does not apply")
    fails(folders["dcgan"], "--no-ema", match="holds only the EMA weights")
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(CheckpointError, match="raw generator weights"):
        load(folders["cgan"], ema=True)


def test_save_model_refuses_to_overwrite(runs, folders, capsys):
    assert main(["save-model", str(runs["dcgan"]), "--out", str(folders["dcgan"])]) == 2
    assert "already exists and is not empty" in _one_line_error(capsys)
    assert main(["save-model", str(folders["dcgan"]), "--out", str(folders["dcgan"].parent / "again")]) == 2
    assert "already a model folder" in _one_line_error(capsys)
    assert sorted(p.name for p in folders["dcgan"].parent.iterdir()) == ["cgan", "dcgan", "pix2pix"]


# -- Hugging Face Hub, offline ---------------------------------------------------------------

@pytest.fixture
def hub_cache(folders, tmp_path, monkeypatch) -> Path:
    """A local Hub cache holding user/tiny-cgan (main = SNAPSHOT), read offline."""
    pytest.importorskip("huggingface_hub")
    cache = tmp_path / "hub"
    repo = cache / "models--user--tiny-cgan"
    shutil.copytree(folders["cgan"], repo / "snapshots" / SNAPSHOT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SNAPSHOT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_hf_reference_loads_from_the_offline_cache(folders, hub_cache, tmp_path, monkeypatch, capsys):
    want = load(folders["cgan"]).sample(5, seed=2)
    for ref in ("hf://user/tiny-cgan", f"hf://user/tiny-cgan@{SNAPSHOT}"):
        g = load(ref)
        assert torch.equal(g.sample(5, seed=2), want)
        assert Path(g.checkpoint) == hub_cache / "models--user--tiny-cgan" / "snapshots" / SNAPSHOT
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "hf://user/tiny-cgan", "--n", "10"]) == 0  # default output: the current folder
    assert (tmp_path / "sample-step2-seed0.png").is_file()
    capsys.readouterr()
    assert main(["sample", "hf://user/missing"]) == 2
    err = _one_line_error(capsys)
    assert "hf://user/missing is not in the local Hugging Face cache" in err and "HF_HUB_OFFLINE is set" in err
    assert main(["sample", "hf://user/tiny-cgan@v9"]) == 2
    assert "not in the local Hugging Face cache" in _one_line_error(capsys)
    assert main(["sample", "hf://not-a-repo-id"]) == 2
    assert "hf://user/name" in _one_line_error(capsys)


def test_push_checks_its_arguments_and_fails_in_one_line(folders, runs, tmp_path, monkeypatch, capsys):
    hub = pytest.importorskip("huggingface_hub")
    assert main(["push", str(runs["dcgan"]), "user/tiny"]) == 2
    assert "is not a model folder" in _one_line_error(capsys)
    assert main(["push", str(folders["dcgan"]), "not a repo"]) == 2
    assert "must look like user/name" in _one_line_error(capsys)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["push", str(folders["dcgan"]), "user/tiny"]) == 2
    assert "HF_HUB_OFFLINE is set" in _one_line_error(capsys)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    calls = []

    class NoNetwork:  # stands in for HfApi: records the calls, then fails like an unreachable Hub
        def __init__(self, **kw):
            pass

        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", repo_id, kw.get("exist_ok")))

        def upload_folder(self, **kw):
            calls.append(("upload_folder", kw["repo_id"], kw["folder_path"]))
            raise OSError("[Errno 111] Connection refused\nmore detail")

    monkeypatch.setattr(hub, "HfApi", NoNetwork)
    assert main(["push", str(folders["dcgan"]), "user/tiny"]) == 2
    assert _one_line_error(capsys) == (f"error: could not push {folders['dcgan']} to user/tiny: "
                                       "[Errno 111] Connection refused")
    assert calls == [("create_repo", "user/tiny", True), ("upload_folder", "user/tiny", str(folders["dcgan"]))]


def test_missing_hub_package_names_the_extra(folders, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    assert main(["push", str(folders["dcgan"]), "user/tiny"]) == 2
    assert "pip install ganforge[hub]" in _one_line_error(capsys)
    assert main(["sample", "hf://user/tiny"]) == 2
    assert "pip install ganforge[hub]" in _one_line_error(capsys)
