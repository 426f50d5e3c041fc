"""Self-describing model folders: one generator's weights with everything needed to use it.

``ganforge save-model RUN --out DIR`` writes::

    DIR/model.safetensors   the generator's weights (EMA by default), safetensors only
    DIR/config.yaml         the run's resolved config
    DIR/model.json          constructor arguments and model facts (arch, g_args, z_dim, latent,
                            classes, data shape, input preprocessing) + the weights' SHA-256
    DIR/README.md           a model card with YAML front matter (see ganforge.card)
    DIR/sample.png          a sample picture made from these weights

``ganforge.load(DIR)`` (and every command that takes a run) accepts such a folder, and
``hf://user/name[@revision]`` for one on the Hugging Face Hub (see ganforge.hub).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
import yaml

from .checkpoint import CheckpointError, _sha256
from .rundir import CONFIG, RunDirError

MODEL_JSON = "model.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
SAMPLE = "sample.png"
FORMAT = "ganforge-model"
FORMAT_VERSION = 1
HF_PREFIX = "hf://"


def class_names(cfg) -> list[str] | None:
    """Names of the classes of a named labelled dataset (None when unknown)."""
    from .data import DATASETS, parse_name
    key, _ = parse_name(cfg.data.name)
    return list(DATASETS.get(key).classes) or None if key in DATASETS else None


# MODEL-KIND: how the model's task is named in model.json and the card. Replace with the task
# object's name when the task layer lands (the export inputs are in export.export_adapter).
def task_kind(g) -> str:
    if g.task.takes_images:
        return "image-to-image (unpaired)" if g.task.two_way else "image-to-image (paired)"
    return "class-conditional" if g.conditional else "noise-to-image"


def model_facts(g) -> dict:
    """What a user of the weights needs to know, as plain JSON-able data."""
    cfg = g.cfg
    args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.args.items()}
    out_shape = list(args.get("out_shape") or [])
    in_shape = list(args["cond_shape"]) if args.get("cond_shape") else None
    img = in_shape or out_shape  # the images a user feeds (image-to-image) or gets (noise models)
    names = class_names(cfg) if g.conditional else None
    if names is not None and len(names) != g.num_classes:
        names = None
    return {"arch": cfg.model.arch, "preset": cfg.preset, "task": task_kind(g), "task_name": g.task.name,
            "takes_images": g.task.takes_images, "two_way": g.task.two_way,
            "g_args": args, "z_dim": g.z_dim, "latent": cfg.model.latent, "num_classes": g.num_classes,
            "class_names": names, "dataset": cfg.data.name, "data_shape": out_shape, "input_shape": in_shape,
            "preprocessing": {"value_range": [-1, 1], "channels": img[0] if len(img) == 3 else None,
                              "size": img[1:] if len(img) == 3 else None},
            "step": g.step, "ema": g.ema}


# -- saving ------------------------------------------------------------------------------------

def save_model_folder(run: str | Path, out: str | Path, *, checkpoint=None, ema: bool | None = None,
                      license: str = "other", seed: int = 0) -> Path:
    """Write the model folder of a run's generator to ``out`` (a new or empty folder), atomically."""
    from safetensors.torch import save_file

    from .errors import UsageError
    from .trained import load_run as load
    from .card import write_card, write_sample
    if is_model_folder(run):
        raise UsageError(f"{run} is already a model folder; copy it instead")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} already exists and is not empty; choose a new folder")
    g = load(run, checkpoint, ema=ema)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        sd = {k: v.detach().cpu().contiguous().clone() for k, v in g.net.state_dict().items()}
        save_file(sd, str(tmp / WEIGHTS), metadata={"format": FORMAT, "step": str(g.step), "ema": str(g.ema)})
        shutil.copyfile(Path(run) / CONFIG, tmp / CONFIG)
        facts = model_facts(g)
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **facts,
                "source": {"run": Path(run).resolve().name, "checkpoint": g.checkpoint.name},  # no local paths
                "weights": {"file": WEIGHTS, "sha256": _sha256(tmp / WEIGHTS)}}
        (tmp / MODEL_JSON).write_text(json.dumps(meta, indent=1))
        picture = write_sample(g, Path(run), tmp / SAMPLE, seed=seed)
        write_card(g, Path(run), tmp / CARD, facts, license=license, picture=picture)
        if out.exists():
            out.rmdir()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# -- loading -----------------------------------------------------------------------------------

def is_model_folder(path) -> bool:
    """True for a folder holding model.json, and for ``hf://`` references (fetched on load)."""
    if str(path).startswith(HF_PREFIX):
        return True
    p = Path(path)
    return p.is_dir() and (p / MODEL_JSON).is_file()


def read_model_json(folder: Path) -> dict:
    try:
        meta = json.loads((folder / MODEL_JSON).read_text())
    except OSError:
        raise CheckpointError(f"{folder} is not a usable model folder: {MODEL_JSON} is missing") from None
    except ValueError as e:
        raise CheckpointError(f"{folder}/{MODEL_JSON} is damaged (not JSON: {str(e).splitlines()[0]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{folder}/{MODEL_JSON} is not a ganforge model description (format != {FORMAT})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{folder} was written by a newer ganforge (model format "
                              f"{meta.get('format_version')}); upgrade ganforge")
    for key in ("arch", "g_args", "weights"):
        if key not in meta:
            raise CheckpointError(f"{folder}/{MODEL_JSON} is damaged: '{key}' is missing")
    return meta


def load_model_folder(path, device: str | torch.device = "cpu", *, checkpoint=None,
                      ema: bool | None = None):
    """The :class:`ganforge.trained.TrainedGenerator` of a model folder (or ``hf://user/name[@revision]``),
    the same object :func:`ganforge.load` returns for the run it came from."""
    from safetensors.torch import load_file

    from .errors import UsageError
    from .trained import TrainedGenerator
    from .config import Config
    from .nets import rebuild
    if str(path).startswith(HF_PREFIX):
        from .hub import download
        path = download(str(path))
    folder = Path(path)
    if not folder.is_dir():
        raise RunDirError(f"model folder not found: {folder}")
    if checkpoint is not None and checkpoint != "latest":
        raise UsageError(f"{folder} is a model folder with one set of weights; --checkpoint does not apply")
    meta = read_model_json(folder)
    if ema is True and not meta.get("ema"):
        raise CheckpointError(f"{folder} holds the raw generator weights, not EMA ones")
    if ema is False and meta.get("ema"):
        raise UsageError(f"{folder} holds only the EMA weights; save the run with --no-ema for the raw ones")
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{folder}: {WEIGHTS} is missing")
    if _sha256(weights) != meta["weights"].get("sha256"):
        raise CheckpointError(f"{folder}: {WEIGHTS} is damaged (checksum mismatch)")
    try:
        cfg_d = yaml.safe_load((folder / CONFIG).read_text())
        cfg = Config.from_dict(cfg_d)
    except OSError:
        raise CheckpointError(f"{folder}: {CONFIG} is missing") from None
    except (yaml.YAMLError, ValueError) as e:
        raise CheckpointError(f"{folder}: {CONFIG} is damaged ({str(e).splitlines()[0]})") from None
    from .checkpoint import check_dtypes, nonfinite
    try:
        sd = load_file(str(weights))
    except Exception as e:  # noqa: BLE001  (SafetensorError: a damaged file, whatever the cause)
        raise CheckpointError(f"{folder}: {WEIGHTS} does not parse ({str(e).strip()[:160]})") from None
    if nonfinite({"G": sd}):
        raise CheckpointError(f"{folder}: {nonfinite({'G': sd})} holds NaN/Inf; these weights are unusable")
    try:
        net = rebuild(cfg.model, meta["g_args"], "g")
        check_dtypes(net, sd, str(folder))
        net.load_state_dict(sd)
    except (TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{folder}: the weights do not fit the described {meta['arch']} generator: "
                              f"{str(e).strip().splitlines()[0]}") from None
    device = torch.device(device)
    return TrainedGenerator(net.to(device), cfg, args=meta["g_args"], step=int(meta.get("step", 0)), checkpoint=folder,
                            ema=bool(meta.get("ema")), device=device, num_classes=int(meta.get("num_classes") or 0))


# -- publishing ------------------------------------------------------------------------------

def push(folder: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
         token: str | None = None, message: str | None = None) -> str:
    """Upload a model folder to ``repo_id`` (created when missing); returns the commit URL."""
    from .hub import _REPO_ID, HubError, _first_line, _hub, _offline
    folder = Path(folder)
    if str(folder).startswith("hf://") or not is_model_folder(folder):
        raise HubError(f"{folder} is not a model folder (no {MODEL_JSON}); make one with "
                       f"`ganforge save-model RUN --out DIR`")
    meta = read_model_json(folder)
    if not _REPO_ID.match(repo_id or ""):
        raise HubError(f"repository id {repo_id!r} must look like user/name")
    hub = _hub()
    if _offline():
        raise HubError("cannot push: HF_HUB_OFFLINE is set (unset it to reach the Hub)")
    api = hub.HfApi(token=token, endpoint=os.environ.get("HF_ENDPOINT") or None)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        message = message or f"ganforge {meta['arch']} generator, step {meta.get('step')}"
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), revision=revision, repo_type="model",
                                 commit_message=message)
    except Exception as e:  # no network, no token, refused: one line
        raise HubError(f"could not push {folder} to {repo_id}: {_first_line(e)}") from None
    return str(getattr(info, "commit_url", info))



__all__ = ["push", "save_model_folder", "load_model_folder", "is_model_folder", "model_facts", "class_names", "task_kind"]
