"""The semi-supervised task: the semi:NAME source (exact resume of both streams), the K+1 losses
through SSLObjective against an explicit (K+1)-way softmax, the linear probe against
scikit-learn, `ganforge classify`, and the test_acc / linear_probe metrics on a tiny run."""

from __future__ import annotations

import csv
import io
import itertools

import pytest
import torch
import torch.nn.functional as F

import ganforge
from ganforge.checkpoint import latest_checkpoint, load_checkpoint
from ganforge.cli import main
from ganforge.config import resolve
from ganforge.data import DATASETS, Dataset, InMemorySource, Split, build_dataset
from ganforge.data.labelled import SemiSupervisedSource
from ganforge.errors import ConfigError, DataError, EvalError
from ganforge.evaluation import evaluate
from ganforge.metrics.linear_probe import fit_logistic_regression, linear_probe_accuracy
from ganforge.nets.ssl import DCGANGenerator, SSLDiscriminator
from ganforge.objectives import SSLObjective
from ganforge.session import resume
from ganforge.validation import validate

pytestmark = pytest.mark.usefixtures("one_thread")

K = 3
_unique = itertools.count()


def _images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, 1, 8, 8) images whose brightness tells the class, and the labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % K
    x = torch.randint(0, 60, (n, 1, 8, 8), generator=g) + labels.view(-1, 1, 1, 1) * 90
    return x.to(torch.uint8), labels


@pytest.fixture
def blobs(monkeypatch):
    """A labelled 8x8 dataset with train and test splits, registered for this test only."""
    name = f"test-blobs-{next(_unique)}"
    train, test = _images(60, 1), _images(30, 2)

    def build(cfg, path=""):
        x, y = train
        n = cfg.data.limit or len(x)
        return InMemorySource(x[:n], y[:n], seed=cfg.seed, num_classes=K, description="blobs")

    def split(name_, which, limit=0, **_):
        x, y = train if which == "train" else test
        return Split(x[:limit or None], y[:limit or None])

    monkeypatch.setitem(DATASETS._items, name, Dataset(build=build, task="generate", split=split,
                                                       classes=("dark", "mid", "bright")))
    return name


TINY = ("model.z_dim=4", "model.g.width=4", "model.d.width=4", "data.labels_per_class=4", "train.batch_size=6",
        "train.steps=4", "train.log_every=2", "train.sample_every=0", "train.ckpt_every=0", "train.grid_size=4",
        "train.progress=false", "train.device=cpu", "train.threads=1")


def tiny(tmp_path, blobs, *extra):
    return validate(resolve("sgan", overrides=[f"out={tmp_path}", f"data.name=semi:{blobs}", *TINY, *extra]))


# -- data -------------------------------------------------------------------------------------------

def test_source_streams_and_exact_resume(tmp_path, blobs):
    src = build_dataset(tiny(tmp_path, blobs))
    assert isinstance(src, SemiSupervisedSource) and src.num_classes == K and src.shape == (1, 8, 8)
    assert torch.equal(torch.bincount(src.labelled.labels, minlength=K), torch.tensor([4, 4, 4]))
    assert torch.equal(src.labelled.data, src.unlabelled.data[src.index])  # a subset of the same images
    x, xl, yl = src.next(5)
    assert x.shape == xl.shape == (5, 1, 8, 8) and yl.shape == (5,) and -1 <= x.min() and x.max() <= 1
    for _ in range(4):  # past the labelled subset's epoch (12 samples)
        src.next(5)
    buf = io.BytesIO()
    torch.save(src.state_dict(), buf)
    expected = [src.next(5) for _ in range(5)]
    other = build_dataset(tiny(tmp_path, blobs))
    buf.seek(0)
    other.load_state_dict(torch.load(buf, weights_only=True))
    for a, b in zip(expected, [other.next(5) for _ in range(5)]):
        assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_config_and_data_refusals(tmp_path, blobs):
    with pytest.raises(ConfigError, match="semi-supervised classification"):
        validate(resolve("sgan", overrides=[f"data.name={blobs}"]))  # a plain dataset serves `generate`
    with pytest.raises(DataError, match="labelled image dataset"):
        build_dataset(resolve("sgan", overrides=["data.name=semi:ring8"]))
    with pytest.raises(DataError, match="class 0 has 20 samples, fewer than the 21"):
        build_dataset(tiny(tmp_path, blobs, "data.labels_per_class=21"))
    with pytest.raises(ConfigError, match="'sgan' has no class-conditional nets"):
        tiny(tmp_path, blobs, "model.conditional=true")


# -- the objective --------------------------------------------------------------------------------

def _objective(fm: float = 1.0, unsup: float = 0.5):
    cfg = resolve("sgan", overrides=["model.z_dim=4", f"loss.terms.fm={fm}", f"loss.terms.unsup={unsup}"])
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=4, out_shape=(1, 8, 8), width=4)
    D = SSLDiscriminator(in_shape=(1, 8, 8), num_classes=K, width=4, dropout=0.0)
    return SSLObjective(cfg, generator=torch.Generator().manual_seed(1)), G, D


def _batch():
    g = torch.Generator().manual_seed(5)
    return torch.rand(6, 1, 8, 8, generator=g) * 2 - 1, torch.rand(6, 1, 8, 8, generator=g) * 2 - 1, \
        torch.tensor([0, 1, 2, 2, 1, 0])


def _k_plus_1(D, x) -> torch.Tensor:
    """The explicit K+1-way softmax with the generated class's logit 0 appended (B, K + 1)."""
    logits = D(x)[0]
    return F.softmax(torch.cat([logits, torch.zeros(len(x), 1)], 1), 1)


def test_d_loss_is_the_k_plus_1_classifier_loss():
    obj, G, D = _objective(unsup=0.5)
    x, xl, yl = batch = _batch()
    loss, stats, fake = obj.d_loss(G, D, batch, d_step=0, keep_fake=True)
    with torch.no_grad():
        pl, pr, pf = _k_plus_1(D, xl), _k_plus_1(D, x), _k_plus_1(D, fake)
        # supervised: -log p(y | x, real) = -log(p_y / (1 - p_gen)); unsupervised: -log D(x) - log(1 - D(G(z)))
        sup = -(pl[torch.arange(6), yl] / (1 - pl[:, K])).log().mean()
        unsup = -(1 - pr[:, K]).log().mean() - pf[:, K].log().mean()
    assert torch.allclose(stats["loss/D/sup"], sup, atol=1e-5)
    assert torch.allclose(stats["loss/D/unsup"], unsup, atol=1e-5)
    assert torch.allclose(loss.detach(), sup + 0.5 * unsup, atol=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in D.parameters())


def test_g_loss_is_feature_matching_or_non_saturating():
    obj, G, D = _objective(fm=2.0)
    x, xl, yl = batch = _batch()
    fake = obj.generate(G, 6)
    loss, stats = obj.g_loss(G, D, batch, fake=fake)
    with torch.no_grad():
        fm = (D(x)[1].mean(0) - D(fake)[1].mean(0)).pow(2).sum()
    assert torch.allclose(stats["loss/G/fm"], fm, atol=1e-6) and torch.allclose(loss.detach(), 2 * fm, atol=1e-6)
    loss.backward()
    assert all(p.grad is not None for p in G.parameters())
    obj, G, D = _objective(fm=0.0)
    fake = obj.generate(G, 6)
    loss, stats = obj.g_loss(G, D, batch, fake=fake)
    with torch.no_grad():
        ns = -(1 - _k_plus_1(D, fake)[:, K]).log().mean()
    assert torch.allclose(loss.detach(), ns, atol=1e-6) and "loss/G/adv" in stats


# -- the linear probe ------------------------------------------------------------------------------

def test_linear_probe_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn.linear_model")
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 5, generator=g) * 2
    y = torch.arange(90) % 3
    x = (centres[y] + torch.randn(90, 5, generator=g) * 1.5).double()
    tx, ty = x[:60], y[:60]
    l2 = 0.05
    W, b, mean, std = fit_logistic_regression(tx, ty, l2=l2)
    ref = sklearn.LogisticRegression(C=1 / (l2 * 60), tol=1e-10, max_iter=10000)
    ref.fit(((tx - mean) / std).numpy(), ty.numpy())
    assert torch.allclose(W, torch.from_numpy(ref.coef_), atol=1e-4)  # both sum to 0 over classes
    assert torch.allclose(b - b.mean(), torch.from_numpy(ref.intercept_ - ref.intercept_.mean()), atol=1e-4)
    want = float((torch.from_numpy(ref.predict(((x[60:] - mean) / std).numpy())) == y[60:]).double().mean())
    assert linear_probe_accuracy(tx, ty, x[60:], y[60:], l2=l2) == want
    assert linear_probe_accuracy(tx, ty, tx, ty, l2=1e-4) > 0.8  # separable enough to fit


# -- a tiny run: metrics, classify, resume ----------------------------------------------------------

@pytest.fixture
def run(tmp_path, blobs):
    return ganforge.train(tiny(tmp_path, blobs), quiet=True)


def test_metrics_on_a_tiny_run(run, blobs, train_tiny):
    m = ganforge.load(run)
    res = evaluate(m, n=20)["results"]
    assert set(res) == {"test_acc", "linear_probe"}
    # test_acc by hand: the checkpoint's D on the first 20 test images
    nets, _, meta = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    D = SSLDiscriminator(**{k: tuple(v) if k == "in_shape" else v for k, v in meta["d_args"].items()})
    D.load_state_dict(nets["D"])
    x, y = _images(30, 2)
    with torch.no_grad():
        pred = D.eval()(x[:20].float() / 127.5 - 1)[0].argmax(1)
    assert res["test_acc"] == pytest.approx((pred == y[:20]).float().mean().item())
    assert 0 <= res["linear_probe"] <= 1
    toy = ganforge.load(train_tiny())
    with pytest.raises(EvalError, match="metric 'test_acc' needs a semi-supervised model, whose D classifies"):
        evaluate(toy, metrics="test_acc", n=20)


def test_classify_cli(run, tmp_path, capsys, train_tiny):
    from torchvision.utils import save_image
    folder = tmp_path / "imgs"
    folder.mkdir()
    x, y = _images(6, 9)
    for i in range(6):
        save_image(x[i].float() / 255, str(folder / f"{i}.png"))
    assert main(["classify", str(run), str(folder)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and all(len(ln.split("\t")) == 4 for ln in lines)
    assert {ln.split("\t")[2] for ln in lines} <= {"dark", "mid", "bright"}
    out = tmp_path / "pred.csv"
    assert main(["classify", str(run), str(folder / "0.png"), str(folder / "1.png"), "-o", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["file"] for r in rows] == [str(folder / "0.png"), str(folder / "1.png")]
    m = ganforge.load(run)
    x01 = (x[:2].float() / 255 * 255).round().div(127.5).sub(1)  # what the PNGs decode to
    want = m.task.classify(m, x01)[0].argmax(1).tolist()
    assert [int(r["class"]) for r in rows] == want
    capsys.readouterr()
    # one-line errors
    assert main(["classify", str(run), str(tmp_path / "missing.png")]) == 2
    assert capsys.readouterr().err.strip() == f"error: input not found: {tmp_path / 'missing.png'}"
    (tmp_path / "bad.png").write_text("not an image")
    assert main(["classify", str(run), str(tmp_path / "bad.png")]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot read {tmp_path / 'bad.png'}")
    toy = train_tiny()
    assert main(["classify", str(toy), str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: this is a noise-to-sample model") and err.endswith("not `classify`")


def test_exact_resume(tmp_path, blobs):
    extra = ("train.deterministic=true", "train.log_every=3")
    full = ganforge.train(tiny(tmp_path / "a", blobs, *extra, "train.steps=6"), quiet=True)
    half = ganforge.train(tiny(tmp_path / "b", blobs, *extra, "train.steps=3"), quiet=True)
    resume(half, ["train.steps=6"], quiet=True)
    a, _, _ = load_checkpoint(latest_checkpoint(full / "checkpoints"))
    b, _, _ = load_checkpoint(latest_checkpoint(half / "checkpoints"))
    for net in ("G", "D"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k}"


# -- the sgan family ---------------------------------------------------------------------------------

def test_sgan_family_builds_with_the_datasets_classes_and_trains():
    from ganforge.config import ModelConfig
    from ganforge.nets import NETS, build_nets
    fam = NETS.get("sgan")
    assert fam.class_nets == "d" and not fam.conditional and fam.task == "semi"
    cfg = ModelConfig(arch="sgan", z_dim=4, g={"width": 4}, d={"width": 4})
    G, D, g_args, d_args = build_nets(cfg, (1, 28, 28), num_classes=5)
    assert d_args["num_classes"] == 5 and "num_classes" not in g_args
    logits, feats = D(G(torch.randn(3, 4)))
    assert logits.shape == (3, 5) and feats.shape == (3, D.feature_dim)
    with pytest.raises(ConfigError, match="needs labelled data"):
        build_nets(cfg, (1, 28, 28), num_classes=0)
    with pytest.raises(ConfigError, match="set by the data"):
        build_nets(ModelConfig(arch="sgan", d={"num_classes": 3}), (1, 28, 28), num_classes=5)
    opt = torch.optim.Adam(D.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in D.parameters()]
    F.cross_entropy(D(torch.rand(3, 1, 28, 28) * 2 - 1)[0], torch.tensor([0, 1, 4])).backward()
    opt.step()
    assert all(not torch.equal(p, q) for p, q in zip(D.parameters(), before))


def test_gaussian_noise_acts_in_training_only_with_the_asked_std():
    from ganforge.nets.ssl import GaussianNoise
    x = torch.zeros(20000)
    layer = GaussianNoise(0.3)
    torch.manual_seed(0)
    noisy = layer(x)
    assert noisy.std().item() == pytest.approx(0.3, rel=0.03) and abs(noisy.mean().item()) < 0.01
    assert torch.equal(layer.eval()(x), x)  # eval mode: the identity
    plain = SSLDiscriminator(in_shape=(1, 8, 8), num_classes=K, width=4, dropout=0.0)
    torch.manual_seed(0)
    D = SSLDiscriminator(in_shape=(1, 8, 8), num_classes=K, width=4, dropout=0.0, noise_in=0.3, noise=0.5)
    with torch.no_grad():  # same weights (the noise layers have none; they shift the stage indices)
        for p, q in zip(D.parameters(), plain.parameters(), strict=True):
            p.copy_(q)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    assert not torch.allclose(D(x)[0], plain(x)[0])  # training mode: noise on the input and every stage
    assert not torch.allclose(D(x)[0], D(x)[0])
    D.eval(), plain.eval()
    assert torch.equal(D(x)[0], plain(x)[0])  # eval mode: exactly the noise-free net
    with pytest.raises(ValueError, match="noise stds must be >= 0"):
        SSLDiscriminator(in_shape=(1, 8, 8), num_classes=K, width=4, noise=-0.1)
    from ganforge.config import ModelConfig
    from ganforge.nets import build_nets
    with pytest.raises(ConfigError, match="noise stds must be >= 0"):  # the user's mistake, as a config error
        build_nets(ModelConfig(arch="sgan", z_dim=4, d={"noise": -1.0}), (1, 28, 28), num_classes=5)


def test_mlp_body_with_weight_norm_is_the_authors_mnist_d():
    """arch=mlp: dense layers of the given widths, features = the last one's activations (read before
    the noise that follows them), weight normalisation with g = ||v|| after initialisation, and
    the user's mistakes as config errors."""
    from ganforge.config import ModelConfig
    from ganforge.nets import build_nets, init_weights_
    D = SSLDiscriminator(in_shape=(1, 8, 8), num_classes=K, arch="mlp", hidden=(12, 6), dropout=0.0,
                         weight_norm=True, noise_in=0.3, noise=0.5, act="relu")
    torch.manual_seed(0)
    init_weights_(D, "normal", 0.05)
    dense = [m for m in D.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in dense] == [(64, 12), (12, 6), (6, K)]
    for m in dense:  # w = g v / ||v|| with g = ||v||: the effective weight is the drawn v
        v = m.parametrizations.weight.original1
        assert torch.allclose(m.weight, v, atol=1e-6) and 0.02 < v.std().item() < 0.08
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    D.eval()
    logits, feats = D(x)
    with torch.no_grad():  # by hand: flatten, relu(W1 x + b1), relu(W2 h + b2), then the linear head
        h = F.relu(F.linear(F.relu(F.linear(x.flatten(1), dense[0].weight, dense[0].bias)),
                            dense[1].weight, dense[1].bias))
    assert feats.shape == (5, 6) and D.feature_dim == 6
    assert torch.allclose(feats, h, atol=1e-6)
    assert torch.allclose(logits, F.linear(h, dense[2].weight, dense[2].bias), atol=1e-6)
    D.train()
    assert not torch.allclose(D(x)[1], feats)  # training mode: the input noise reaches the features
    one = SSLDiscriminator(in_shape=(1, 8, 8), num_classes=K, arch="mlp", hidden=6, dropout=0.0, noise=0.5)
    clean_logits, clean_feats = one.eval()(x)
    noisy_logits, noisy_feats = one.train()(x)  # the noise after the last dense layer is not in the features
    assert torch.equal(noisy_feats, clean_feats) and not torch.allclose(noisy_logits, clean_logits)
    # the gain g is a parameter of its own: a step changes it
    opt = torch.optim.SGD(D.parameters(), lr=0.1)
    g = dense[0].parametrizations.weight.original0.detach().clone()
    F.cross_entropy(D(x)[0], torch.tensor([0, 1, 2, 0, 1])).backward()
    opt.step()
    assert not torch.equal(dense[0].parametrizations.weight.original0, g)
    for bad, msg in (({"arch": "rnn"}, "arch must be conv or mlp"), ({"sn": True, "weight_norm": True}, "not both"),
                     ({"arch": "mlp", "hidden": []}, "positive widths"),
                     ({"arch": "mlp", "norm": "bn"}, "no norm layer")):
        with pytest.raises(ConfigError, match=msg):
            build_nets(ModelConfig(arch="sgan", z_dim=4, d=bad), (1, 8, 8), num_classes=K)


def test_mlp_sgan_trains_and_resumes_exactly(tmp_path, blobs):
    extra = ("model.d.arch=mlp", "model.d.hidden=[10,6]", "model.d.weight_norm=true", "model.d.noise=0.5",
             "model.d.noise_in=0.3", "model.d.dropout=0", "train.deterministic=true", "train.log_every=3")
    full = ganforge.train(tiny(tmp_path / "a", blobs, *extra, "train.steps=6"), quiet=True)
    half = ganforge.train(tiny(tmp_path / "b", blobs, *extra, "train.steps=3"), quiet=True)
    resume(half, ["train.steps=6"], quiet=True)
    a, _, _ = load_checkpoint(latest_checkpoint(full / "checkpoints"))
    b, _, _ = load_checkpoint(latest_checkpoint(half / "checkpoints"))
    assert any("original0" in k for k in a["D"])
    for net in ("G", "D"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k}"
    out = evaluate(ganforge.load(full), metrics="test_acc,linear_probe", progress=False)["results"]
    assert 0.0 <= out["test_acc"] <= 1.0
