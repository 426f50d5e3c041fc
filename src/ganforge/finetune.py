"""Start training from saved weights, optionally with FreezeD (Mo et al. 2020).

:func:`init_from` copies a run's (or a model folder's) weights into already-built nets and
freezes the first ``freeze_d_blocks`` blocks of D, so fine-tuning on a small dataset only adapts
D's upper layers. It is a pure function of its arguments: the trainer decides when to call it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .checkpoint import CheckpointError

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def d_blocks(D: nn.Module) -> list[list[nn.Module]]:
    """D's blocks in input-to-output order (what FreezeD counts).

    - **residual Ds** (``resnet``, ``biggan``): each residual block of ``D.blocks``; BigGAN's
      self-attention belongs to the block it follows. The final linear and the label head are
      not blocks.
    - **sequential Ds** (``dcgan``, ``mlp``, ``pix2pix`` PatchGAN, ``srgan``): ``D.net`` split
      at every conv / linear layer: a block is one such layer with the norm, activation and
      dropout after it (the last conv / linear is the last block); the label head is not one.
    - **CycleGAN** (``D.b`` and ``D.a``): block i is block i of both PatchGANs.
    """
    if hasattr(D, "a") and hasattr(D, "b") and not hasattr(D, "net"):  # CycleGAN: both domains' PatchGANs
        pairs = zip(d_blocks(D.b), d_blocks(D.a))
        return [b + a for b, a in pairs]
    if isinstance(getattr(D, "blocks", None), (nn.Sequential, nn.ModuleList)):
        blocks = [[m] for m in D.blocks if any(True for _ in m.parameters())]
        attn_after = getattr(D, "attn_after", -1)
        if getattr(D, "attn", None) is not None and 0 <= attn_after < len(D.blocks):
            owner = sum(1 for m in list(D.blocks)[:attn_after + 1] if any(True for _ in m.parameters())) - 1
            blocks[owner].append(D.attn)
        return blocks
    if isinstance(getattr(D, "net", None), nn.Sequential):
        blocks: list[list[nn.Module]] = []
        for m in D.net:
            if isinstance(m, _LAYERS) or not blocks:
                blocks.append([m])
            else:
                blocks[-1].append(m)
        return [b for b in blocks if isinstance(b[0], _LAYERS)]  # drops a leading Flatten (MLP)
    raise ValueError(f"{type(D).__name__}: no block structure known for FreezeD")


def freeze_d(D: nn.Module, n: int) -> int:
    """Freeze (requires_grad=False) the parameters of D's first ``n`` blocks; returns how many
    parameters were frozen. Batch-norm running statistics still follow D's train/eval mode."""
    from .errors import UsageError
    blocks = d_blocks(D)
    if n < 0 or n >= len(blocks):
        raise UsageError(f"freeze_d_blocks must be in 0..{len(blocks) - 1} for this "
                         f"{type(D).__name__} ({len(blocks)} blocks), got {n}")
    frozen = 0
    for block in blocks[:n]:
        for m in block:
            for p in m.parameters():
                p.requires_grad_(False)
                frozen += p.numel()
    return frozen


def _source_weights(source, what: str, ema: bool | None) -> tuple[dict, str]:
    """({"G": state_dict[, "D": state_dict]}, description) from a run or a model folder."""
    from safetensors.torch import load_file

    from .errors import UsageError
    from .trained import resolve_checkpoint
    from .checkpoint import load_weights
    from .model_folder import WEIGHTS, is_model_folder, load_model_folder
    if is_model_folder(source):
        if what == "gd":
            raise UsageError(f"{source} is a model folder: it holds G only; give a run folder for what='gd'")
        g = load_model_folder(source, "cpu", ema=ema)  # verifies the folder (checksums, config)
        return {"G": load_file(str(Path(g.checkpoint) / WEIGHTS))}, f"{source} (model folder, step {g.step})"
    from .rundir import check_run_dir
    check_run_dir(source)
    ckpt = resolve_checkpoint(Path(source), None)
    nets, _ = load_weights(ckpt)
    key = "G_ema" if ema else "G"
    if key not in nets:
        raise CheckpointError(f"{ckpt} has no {key} weights")
    out = {"G": nets[key]}
    if what == "gd":
        out["D"] = nets["D"]
    return out, str(ckpt)


def _check_fit(name: str, net: nn.Module, sd: dict, where: str) -> None:
    own = net.state_dict()
    missing = [k for k in own if k not in sd]
    extra = [k for k in sd if k not in own]
    if missing or extra:
        k = (missing or extra)[0]
        what = "missing from the saved weights" if missing else "not in the net"
        raise CheckpointError(f"{where}: {name} does not fit: '{k}' is {what} "
                              f"({len(missing)} missing, {len(extra)} unexpected keys)")
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{where}: {name}.{k} has shape {tuple(sd[k].shape)} in the saved weights, "
                                  f"{tuple(v.shape)} in the net")


@torch.no_grad()
def init_from(G: nn.Module, D: nn.Module | None, folder_or_run, *, what: str = "g", freeze_d_blocks: int = 0,
              ema: bool | None = None) -> dict:
    """Load saved weights into built nets, then freeze D's first ``freeze_d_blocks`` blocks.

    ``what="g"``: G only (from a run's newest checkpoint or a model folder); ``"gd"``: G and D
    (runs only). ``ema=True`` takes a run's EMA generator instead of the raw one. Nothing is
    changed when the weights do not fit (a one-line :class:`CheckpointError`). Returns a summary.
    """
    from .errors import UsageError
    if what not in ("g", "gd"):
        raise UsageError(f"what must be 'g' or 'gd', got {what!r}")
    if freeze_d_blocks and D is None:
        raise UsageError("freeze_d_blocks needs a discriminator")
    if D is not None and freeze_d_blocks:
        n_blocks = len(d_blocks(D))
        if not 0 <= freeze_d_blocks < n_blocks:
            raise UsageError(f"freeze_d_blocks must be in 0..{n_blocks - 1} for this {type(D).__name__} "
                             f"({n_blocks} blocks), got {freeze_d_blocks}")
    weights, where = _source_weights(folder_or_run, what, ema)
    nets = {"G": G, **({"D": D} if what == "gd" else {})}
    if what == "gd" and D is None:
        raise UsageError("what='gd' needs a discriminator")
    for name, net in nets.items():  # check everything before changing anything
        _check_fit(name, net, weights[name], where)
    for name, net in nets.items():
        net.load_state_dict(weights[name])
    frozen = freeze_d(D, freeze_d_blocks) if D is not None and freeze_d_blocks else 0
    return {"source": where, "loaded": sorted(nets), "frozen_d_blocks": freeze_d_blocks, "frozen_d_params": frozen}


__all__ = ["init_from", "freeze_d", "d_blocks"]
