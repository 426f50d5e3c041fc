"""Time series: the sines benchmark and the csv / npy loaders (ganforge.data.sequences), the
sequence nets (ganforge.nets.sequence) and TimeGAN's scores (ganforge.metrics.timeseries).

The nets get the checks every family gets (shapes, range, one optimizer step moves G and D,
safetensors round trip, seeded init) plus masking: values at padded steps change nothing.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ganforge.checkpoint import flatten, unflatten
from ganforge.config import ConfigError, ModelConfig
from ganforge.data.base import DataError
from ganforge.data.sequences import SequenceSource, csv_source, npy_source, sequence_source, sines, sines_source
from ganforge.metrics.timeseries import discriminative_score, predictive_score, sequence_plot
from ganforge.nets import NETS, NetFamily, build_nets
from ganforge.nets.sequence import SequenceDiscriminator, SequenceGenerator

pytestmark = pytest.mark.usefixtures("one_thread")

T, F, Z, B = 12, 3, 4, 5
VARIANTS = [("rnn", "gru"), ("rnn", "lstm"), ("conv", "gru"), ("transformer", "gru")]
IDS = [f"{a}-{c}" if a == "rnn" else a for a, c in VARIANTS]
LENGTHS = torch.tensor([12, 3, 7, 1, 10])


# -- sines ---------------------------------------------------------------------------------------

def test_sines_follow_their_ground_truth():
    b = sines(20, length=T, features=F, seed=5)
    assert b.data.shape == (20, T, F) and b.data.dtype == torch.float32 and b.lengths is None
    assert b.params.min() >= 0 and b.params.max() <= 0.1
    for i, t, f in ((0, 0, 0), (3, 11, 2), (19, 5, 1)):
        freq, phase = b.params[i, f].tolist()
        assert abs(b.data[i, t, f].item() - math.sin(freq * t + phase)) < 1e-6
    z = sines(20, length=T, features=F, seed=5, zero_one=True)
    assert torch.allclose(z.data, (b.data + 1) / 2)
    assert torch.equal(sines(20, length=T, features=F, seed=5).data, b.data)
    assert not torch.equal(sines(20, length=T, features=F, seed=6).data, b.data)
    full = sines(4000, seed=0)  # TimeGAN's defaults: 24 steps, 5 features, frequencies up to 0.1
    assert full.data.shape == (4000, 24, 5)
    # arguments f * t + p lie in [0, 0.1 * 23 + 0.1] = [0, 2.4], inside [0, pi]: values in [0, 1], peak near pi/2
    assert full.data.min() >= 0 and full.data.max() <= 1 and full.data.max() > 0.99


def test_variable_length_sines_are_zero_padded():
    b = sines(200, length=T, features=F, seed=1, min_length=4)
    assert b.lengths.dtype == torch.int64 and b.lengths.min() == 4 and b.lengths.max() == T
    steps = torch.arange(T)[None, :, None]
    assert (b.data[(steps >= b.lengths[:, None, None]).expand_as(b.data)] == 0).all()
    i = int(torch.argmax((b.lengths < T).int()))
    freq, phase = b.params[i, 0].tolist()
    assert abs(b.data[i, 0, 0].item() - math.sin(phase)) < 1e-6 and freq <= 0.1


def test_source_batches_and_exact_resume():
    src = sines_source(50, seed=2, length=T, features=F, min_length=3)
    assert src.shape == (T, F) and "sines: 50" in src.description
    x, lengths = src.next(8)
    assert x.shape == (8, T, F) and lengths.shape == (8,) and lengths.dtype == torch.int64
    for _ in range(6):  # cross an epoch boundary (50 samples)
        src.next(8)
    buf = io.BytesIO()
    torch.save(src.state_dict(), buf)
    expected = [src.next(8) for _ in range(4)]
    other = sines_source(50, seed=2, length=T, features=F, min_length=3)
    buf.seek(0)
    other.load_state_dict(torch.load(buf, weights_only=True))
    for (xa, la), (xb, lb) in zip(expected, [other.next(8) for _ in range(4)]):
        assert torch.equal(xa, xb) and torch.equal(la, lb)
    fresh = sines_source(50, seed=2, length=T, features=F, min_length=3)
    assert not torch.equal(fresh.next(8)[0], expected[0][0])
    assert sines_source(10, seed=0, length=T, features=F).next(3)[1] is None


# -- user files ----------------------------------------------------------------------------------

def test_csv_file_sliding_windows(tmp_path):
    rows = np.stack([np.arange(30.0), 10 + 2 * np.arange(30.0)], 1)  # (30, 2): feature ranges 0..29, 10..68
    path = tmp_path / "series.csv"
    path.write_text("a,b\n" + "\n".join(f"{u},{v}" for u, v in rows) + "\n")
    src = csv_source(path, length=10, stride=4)
    assert len(src) == (30 - 10) // 4 + 1 == 6 and src.shape == (10, 2)
    w = src.data[1]  # rows 4..13, scaled by the min / max over the whole file
    assert torch.allclose(w[:, 0], torch.arange(4.0, 14.0) / 29 * 2 - 1)
    assert torch.allclose(src.denormalise(src.data[5]), torch.from_numpy(rows[20:30]).float(), atol=1e-4)
    assert src.lengths is None and src.data.min() == -1 and src.data.max() == 1
    assert sequence_source(f"csv:{path}", length=10, stride=4).data.shape == src.data.shape


def test_csv_folder_is_one_sequence_per_file(tmp_path):
    for name, n in (("a.csv", 5), ("b.csv", 8), ("c.csv", 3)):
        (tmp_path / name).write_text("\n".join(f"{i},{-i}" for i in range(n)))
    (tmp_path / "notes.txt").write_text("ignored")
    src = csv_source(tmp_path, length=0)
    assert src.shape == (8, 2) and torch.equal(src.lengths, torch.tensor([5, 8, 3]))
    assert (src.data[0, 5:] == 0).all() and (src.data[2, 3:] == 0).all()
    assert torch.allclose(src.data[1, :, 0], torch.arange(8.0) / 7 * 2 - 1)
    cut = csv_source(tmp_path, length=4)
    assert cut.shape == (4, 2) and torch.equal(cut.lengths, torch.tensor([4, 4, 3]))


def test_npy_loader(tmp_path):
    arr = np.random.default_rng(0).normal(size=(7, 6, 2))
    np.save(tmp_path / "x.npy", arr)
    src = npy_source(tmp_path / "x.npy")
    assert src.shape == (6, 2) and len(src) == 7 and src.lengths is None
    assert torch.allclose(src.denormalise(src.data), torch.from_numpy(arr).float(), atol=1e-5)
    np.save(tmp_path / "uni.npy", arr[:, :, 0])
    assert npy_source(tmp_path / "uni.npy").shape == (6, 1)


@pytest.mark.parametrize("content,match", [
    ("1,2\n3\n", "row 2 has 1 columns"),
    ("1,2\n3,x\n", "row 2 is not all numbers"),
    ("1,2\nnan,4\n", "NaN"),
    ("a,b\n", "no rows"),
    ("1,2\n3,4\n", "fewer than the window length"),
])
def test_bad_csv_files_are_one_line_data_errors(tmp_path, content, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=match) as e:
        csv_source(path, length=5)
    assert "\n" not in str(e.value)


def test_bad_paths_and_arrays_are_data_errors(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "flat.npy", np.zeros(5))
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.csv").write_text("1,2\n3,4\n")
    (tmp_path / "d" / "b.csv").write_text("1\n3\n")
    for call, match in ((lambda: npy_source(tmp_path / "obj.npy"), "pickle"),
                        (lambda: npy_source(tmp_path / "flat.npy"), r"\(N, T, F\)"),
                        (lambda: npy_source(tmp_path / "junk.npy"), "cannot load"),
                        (lambda: npy_source(tmp_path / "missing.npy"), "not found"),
                        (lambda: csv_source(tmp_path / "missing.csv"), "not found"),
                        (lambda: csv_source(tmp_path / "d"), "b.csv has 1 columns"),
                        (lambda: sequence_source("tsv:x"), "csv:PATH or npy:PATH")):
        with pytest.raises(DataError, match=match):
            call()


# -- nets ----------------------------------------------------------------------------------------

def build(arch, cell, *, seed=0, hidden=8, **g):
    torch.manual_seed(seed)
    G = SequenceGenerator(Z, (T, F), arch=arch, cell=cell, hidden=hidden, heads=2, **g)
    D = SequenceDiscriminator((T, F), arch=arch, cell=cell, hidden=hidden, heads=2)
    return G, D


@pytest.mark.parametrize("arch,cell", VARIANTS, ids=IDS)
def test_shapes_range_and_both_latent_forms(arch, cell):
    G, D = build(arch, cell)
    for z in (torch.randn(B, Z), torch.randn(B, T, Z)):
        for lengths in (None, LENGTHS):
            x = G(z, lengths)
            assert x.shape == (B, T, F) and torch.isfinite(x).all() and x.abs().max() <= 1
            assert D(x, lengths).shape == (B,)
    G.eval(), D.eval()
    with torch.no_grad():
        assert G(torch.randn(1, Z), None).shape == (1, T, F) and D(torch.randn(1, T, F)).shape == (1,)
    with pytest.raises(ValueError, match="z must be"):
        G(torch.randn(B, Z + 1))
    with pytest.raises(ValueError, match="lengths must be in"):
        D(torch.randn(B, T, F), LENGTHS + 1)


@pytest.mark.parametrize("arch,cell", VARIANTS, ids=IDS)
def test_masking(arch, cell):
    G, D = build(arch, cell)
    G.eval(), D.eval()
    pad = (torch.arange(T)[None, :] >= LENGTHS[:, None])[:, :, None]  # (B, T, 1)
    with torch.no_grad():
        z = torch.randn(B, T, Z)
        x = G(z, LENGTHS)
        assert (x.masked_select(pad) == 0).all()  # G's outputs beyond each length are zero
        z2 = torch.where(pad, 5 * torch.randn(B, T, Z), z)  # other noise at the padded steps only
        assert torch.allclose(G(z2, LENGTHS), x, atol=1e-6)
        real = torch.randn(B, T, F)
        junk = torch.where(pad, 100 * torch.randn(B, T, F), real)  # other values at padded steps
        assert torch.allclose(D(junk, LENGTHS), D(real, LENGTHS), atol=1e-5)
        assert not torch.allclose(D(junk, None), D(real, None), atol=1e-3)  # full length: they count
        valid_change = real.clone()
        valid_change[:, 0] += 1  # step 0 is valid for every sequence
        assert (D(valid_change, LENGTHS) - D(real, LENGTHS)).abs().min() > 1e-6


@pytest.mark.parametrize("arch,cell", VARIANTS, ids=IDS)
def test_one_step_changes_parameters(arch, cell):
    G, D = build(arch, cell)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=1e-2), torch.optim.Adam(D.parameters(), lr=1e-2)
    real = torch.rand(B, T, F) * 2 - 1
    d0, g0 = [p.detach().clone() for p in D.parameters()], [p.detach().clone() for p in G.parameters()]
    fake = G(torch.randn(B, Z), LENGTHS).detach()
    loss_d = nn.functional.softplus(-D(real, LENGTHS)).mean() + nn.functional.softplus(D(fake, LENGTHS)).mean()
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    for p, p0 in zip(D.parameters(), d0):
        assert p.grad is not None and not torch.equal(p, p0)
    assert all(torch.equal(p, q) for p, q in zip(G.parameters(), g0))
    D.requires_grad_(False)
    loss_g = nn.functional.softplus(-D(G(torch.randn(B, Z), LENGTHS), LENGTHS)).mean()
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    for p, p0 in zip(G.parameters(), g0):
        assert p.grad is not None and not torch.equal(p, p0)


@pytest.mark.parametrize("arch,cell", VARIANTS, ids=IDS)
def test_safetensors_round_trip_and_seeded_init(arch, cell, tmp_path):
    G, D = build(arch, cell, seed=0)
    save_file(flatten({"G": G.state_dict(), "D": D.state_dict()}), str(tmp_path / "n.safetensors"))
    G2, D2 = build(arch, cell, seed=1)
    z, x = torch.randn(B, Z), torch.randn(B, T, F)
    with torch.no_grad():
        assert not torch.equal(G(z, LENGTHS), G2(z, LENGTHS))
        nets = unflatten(load_file(str(tmp_path / "n.safetensors")))
        G2.load_state_dict(nets["G"])
        D2.load_state_dict(nets["D"])
        assert torch.equal(G(z, LENGTHS), G2(z, LENGTHS)) and torch.equal(D(x, LENGTHS), D2(x, LENGTHS))
    G3, _ = build(arch, cell, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G3.state_dict().values()))


def test_family_builds_through_build_nets():
    """The registered family: model.g / model.d are checked against the constructors, the data
    shape (T, F) reaches them, and it serves the sequence task on any (non-image) data."""
    fam = NETS.get("sequence")
    assert fam == NetFamily(SequenceGenerator, SequenceDiscriminator, task="sequence") and not fam.images_only
    cfg = ModelConfig(arch="sequence", z_dim=Z, g={"arch": "conv", "hidden": 8}, d={"hidden": 8})
    G, D, g_args, _ = build_nets(cfg, (T, F))
    assert G(torch.randn(2, Z)).shape == (2, T, F) and g_args["out_shape"] == [T, F]
    with pytest.raises(ConfigError, match="cell"):
        build_nets(ModelConfig(arch="sequence", g={"cel": "gru"}), (T, F))
    with pytest.raises(ConfigError, match="unknown sequence arch"):
        build_nets(ModelConfig(arch="sequence", g={"arch": "wavenet"}), (T, F))


# -- TimeGAN scores ------------------------------------------------------------------------------

REAL = sines(300, length=T, features=F, seed=1).data
OTHER_REAL = sines(300, length=T, features=F, seed=2).data
NOISE = torch.rand(300, T, F, generator=torch.Generator().manual_seed(3)) * 2 - 1
FAST = dict(steps=80, batch_size=64)


def test_discriminative_score_real_vs_real_and_noise():
    same = discriminative_score(REAL, OTHER_REAL, seed=0, train_fraction=0.5, **FAST)
    noise = discriminative_score(REAL, NOISE, seed=0, **FAST)
    assert 0 <= same < 0.1  # 300 held-out sequences: chance accuracy 0.5 +- 0.03 (1 std)
    assert noise > 0.45
    assert discriminative_score(REAL, NOISE, seed=0, **FAST) == noise  # seeded


def test_predictive_score_real_beats_noise():
    real = predictive_score(OTHER_REAL, REAL, seed=0, **FAST)
    noise = predictive_score(NOISE, REAL, seed=0, **FAST)
    assert real < 0.5 * noise, (real, noise)
    last_real = predictive_score(OTHER_REAL, REAL, seed=0, target="last", **FAST)
    last_noise = predictive_score(NOISE, REAL, seed=0, target="last", **FAST)
    assert last_real < last_noise


def test_predictive_score_is_the_mae_of_the_trained_predictor():
    """With lr=0 the predictor keeps its seeded init: the score must be that net's masked MAE."""
    from ganforge.metrics.timeseries import _GRU
    lengths = torch.tensor([T, 4, 2, 9] * 5)
    x = sines(20, length=T, features=F, seed=4).data
    score = predictive_score(x, x, train_lengths=lengths, test_lengths=lengths, seed=7, steps=1, lr=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        model = _GRU(F, 16, 1, F)
    total = 0.0
    with torch.no_grad():
        for i in range(20):
            n = int(lengths[i]) - 1  # predicted steps 1..length-1 from steps 0..length-2
            pred = model(x[i:i + 1, :n], torch.tensor([n]))[0][0]  # (n, F)
            total += (pred - x[i, 1:n + 1]).abs().mean().item()
    assert abs(score - total / 20) < 1e-5


def test_sequence_plot():
    img = sequence_plot(REAL, NOISE, n=3, features=2, panel=(100, 50))
    assert img.size == (2 * 100 + 15, 3 * 55 + 20)
    px = torch.from_numpy(np.array(img)).float()
    left, right = px[20:, :105], px[20:, 110:]
    coloured = lambda a: ((a.max(-1).values - a.min(-1).values) > 60).sum().item()  # non-grey pixels
    assert coloured(left) > 100 and coloured(right) > 100
    assert not np.array_equal(np.array(sequence_plot(REAL, REAL, n=3)), np.array(sequence_plot(REAL, NOISE, n=3)))


def test_source_has_no_labels_and_denormalise_is_identity_for_sines():
    src = SequenceSource(REAL[:10])
    assert src.num_classes == 0 and torch.equal(src.denormalise(REAL[:2]), REAL[:2])


def test_scores_ignore_padded_steps():
    b = sines(120, length=T, features=F, seed=8, min_length=4)
    pad = (torch.arange(T)[None, :] >= b.lengths[:, None])[:, :, None]
    junk = torch.where(pad, 50 * torch.randn(120, T, F), b.data)
    kw = dict(seed=1, steps=15, batch_size=32)
    assert discriminative_score(REAL[:120], b.data, fake_lengths=b.lengths, **kw) == \
        discriminative_score(REAL[:120], junk, fake_lengths=b.lengths, **kw)
    assert abs(predictive_score(junk, REAL, train_lengths=b.lengths, **kw)
               - predictive_score(b.data, REAL, train_lengths=b.lengths, **kw)) < 1e-6
    assert predictive_score(junk, REAL, **kw) != predictive_score(b.data, REAL, **kw)  # full length: they count
