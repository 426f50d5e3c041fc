"""init_from (weights from a run or a model folder into built nets) and FreezeD block freezing."""

from __future__ import annotations

import json

import pytest
import torch

from ganforge.errors import UsageError
from ganforge.checkpoint import CheckpointError, latest_checkpoint, load_weights
from ganforge.config import Config
from ganforge.finetune import d_blocks, freeze_d, init_from
from ganforge.model_folder import save_model_folder
from ganforge.nets import (BigGANDiscriminator, CycleDiscriminator, DCGANDiscriminator, MLPDiscriminator,
                           PatchDiscriminator, ResNetDiscriminator, SRGANDiscriminator, rebuild)

pytestmark = pytest.mark.usefixtures("one_thread")


def _nets(run, **g_changes):
    info = json.loads((run / "run.json").read_text())
    import yaml
    cfg = Config.from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    torch.manual_seed(123)  # fresh weights, unlike the run's
    return rebuild(cfg.model, {**info["g_args"], **g_changes}, "g"), rebuild(cfg.model, info["d_args"], "d")


def _equal(net, sd) -> bool:
    return all(torch.equal(v, sd[k]) for k, v in net.state_dict().items())


def test_block_counts_per_discriminator_family():
    cases = [
        (DCGANDiscriminator((1, 28, 28), width=8), 3),  # conv 28->14, conv 14->7, conv 7->1
        (MLPDiscriminator((2,), hidden=16), 3),  # two hidden linears + the output linear
        (ResNetDiscriminator((1, 28, 28), width=8), 4),  # optimized, down, two plain residual blocks
        (PatchDiscriminator((1, 28, 28), width=8), 4),  # conv s2, conv s2, conv s1, output conv
        (SRGANDiscriminator((1, 28, 28), width=8, n_stages=2), 6),  # 4 convs + 2 linears (pooling in between)
        (CycleDiscriminator((1, 28, 28), (1, 28, 28), width=8), 4),
    ]
    for D, n in cases:
        assert len(d_blocks(D)) == n, type(D).__name__
    srg = d_blocks(cases[4][0])
    assert len(srg) == 6 and isinstance(srg[-1][0], torch.nn.Linear)
    big = BigGANDiscriminator((1, 28, 28), width=8)  # attention after the first block (14 px)
    blocks = d_blocks(big)
    assert len(blocks) == 4 and blocks[0] == [big.blocks[0], big.attn]
    cyc = cases[-1][0]
    assert blocks_params(d_blocks(cyc)[0]) == blocks_params([cyc.b.net[0], cyc.b.net[1]]) + \
        blocks_params([cyc.a.net[0], cyc.a.net[1]])


def blocks_params(mods) -> int:
    return sum(p.numel() for m in mods for p in m.parameters())


def test_freeze_d_stops_only_the_first_blocks_from_learning():
    torch.manual_seed(0)
    D = DCGANDiscriminator((1, 28, 28), width=8)
    before = {k: v.clone() for k, v in D.state_dict().items()}
    n = freeze_d(D, 2)
    first_two = [D.net[0], D.net[1], D.net[2], D.net[3], D.net[4]]  # conv, act, conv, bn, act
    assert n == blocks_params(first_two) > 0
    opt = torch.optim.Adam([p for p in D.parameters() if p.requires_grad], lr=1e-2)
    D(torch.randn(4, 1, 28, 28)).square().mean().backward()
    opt.step()
    after = D.state_dict()
    frozen = {f"net.{i}.{k}" for i in (0, 2, 3) for k in ("weight", "bias")} & set(after)
    for k in frozen:
        assert torch.equal(after[k], before[k]), k
    assert not torch.equal(after["net.5.weight"], before["net.5.weight"])  # the last block learns
    with pytest.raises(UsageError, match=r"freeze_d_blocks must be in 0\.\.2"):
        freeze_d(DCGANDiscriminator((1, 28, 28), width=8), 3)


def test_init_from_a_run_loads_g_and_d(train_tiny):
    run = train_tiny("train.ema=0.9")
    nets, _ = load_weights(latest_checkpoint(run / "checkpoints"))
    G, D = _nets(run)
    assert not _equal(G, nets["G"])
    out = init_from(G, D, run, what="gd", freeze_d_blocks=1)
    assert _equal(G, nets["G"]) and _equal(D, nets["D"])
    assert out["loaded"] == ["D", "G"] and out["frozen_d_blocks"] == 1
    assert [p.requires_grad for p in D.net[1].parameters()] == [False, False]  # the first Linear
    G2, _ = _nets(run)
    init_from(G2, None, run, ema=True)
    assert _equal(G2, nets["G_ema"]) and not _equal(G2, nets["G"])


def test_init_from_a_model_folder_loads_g_only(train_tiny, tmp_path):
    for extra, key in (("train.ema=0", "G"), ("train.ema=0.9", "G_ema")):  # the folder holds the sampling G
        run = train_tiny(extra)
        folder = save_model_folder(run, tmp_path / key)
        nets, _ = load_weights(latest_checkpoint(run / "checkpoints"))
        G, D = _nets(run)
        init_from(G, D, folder)
        assert _equal(G, nets[key])
    with pytest.raises(UsageError, match="holds G only"):
        init_from(G, D, folder, what="gd")


def test_weights_that_do_not_fit_change_nothing(train_tiny):
    run = train_tiny()
    G, D = _nets(run, hidden=32)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"G\.\S+ has shape \(\d+(, \d+)*\) in the saved weights, \(\d+"):
        init_from(G, D, run, what="gd")
    assert _equal(G, before)
    with pytest.raises(UsageError, match="what must be"):
        init_from(G, D, run, what="d")
