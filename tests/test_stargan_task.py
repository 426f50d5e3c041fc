"""The multi-domain (StarGAN) task: StarObjective against hand-computed losses, a tiny fmnist-domains
run (preview grid, `ganforge translate --to`), the metrics on an oracle translator and an identity
one, and multidomain:PATH folders."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ganforge
from ganforge.cli import main
from ganforge.config import resolve
from ganforge.data import images as gi
from ganforge.data import load_reference
from ganforge.data.multidomain import from_domain, to_domain
from ganforge.errors import ConfigError, EvalError, UsageError
from ganforge.evaluation import evaluate
from ganforge.nets.stargan import StarDiscriminator, StarGenerator
from ganforge.objectives import StarObjective
from ganforge.trained import TrainedGenerator
from ganforge.validation import validate

pytestmark = pytest.mark.usefixtures("one_thread")
needs_fmnist = pytest.mark.skipif(not (gi.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                                  reason="Debian package dataset-fashion-mnist not installed")

K = 3
TINY = ("model.g.width=4", "model.d.width=4", "model.g.n_blocks=1", "train.batch_size=4", "train.n_critic=1",
        "train.steps=2", "train.sample_every=0", "train.ckpt_every=0", "train.progress=false", "train.device=cpu",
        "train.threads=1", "data.download=false")


# -- the objective ----------------------------------------------------------------------------------

def _objective(*extra):
    cfg = resolve("stargan", overrides=["loss.penalties={}", "loss.terms.cls=2", "loss.terms.rec=5", *extra])
    torch.manual_seed(0)
    G = StarGenerator(out_shape=(1, 8, 8), num_classes=K, width=4, n_blocks=1)
    D = StarDiscriminator(in_shape=(1, 8, 8), num_classes=K, width=4, n_layers=2)
    return StarObjective(cfg, generator=torch.Generator().manual_seed(3)), G, D


def _batch(attributes: bool = False):
    g = torch.Generator().manual_seed(7)
    x = torch.rand(6, 1, 8, 8, generator=g) * 2 - 1
    c = torch.randint(0, 2, (6, K), generator=g).float() if attributes else torch.tensor([0, 1, 2, 2, 1, 0])
    return x, c


def test_losses_by_hand():
    obj, G, D = _objective()
    x, c = batch = _batch()
    loss_d, stats, (fake, trg) = obj.d_loss(G, D, batch, d_step=0, keep_fake=True)
    assert trg.shape == (6,) and trg.dtype == torch.int64 and 0 <= trg.min() and trg.max() < K
    with torch.no_grad():
        real_adv, real_cls = D(x)
        assert torch.equal(fake, G(x, trg))  # translations to the drawn targets
        want_d = D(fake)[0].mean() - real_adv.mean() + 2 * F.cross_entropy(real_cls, c)  # WGAN critic + 2 x cls
    assert torch.allclose(loss_d.detach(), want_d, atol=1e-5)
    loss_g, stats = obj.g_loss(G, D, batch, fake=(fake, trg))
    with torch.no_grad():
        fake_adv, fake_cls = D(fake)
        want_g = -fake_adv.mean() + 2 * F.cross_entropy(fake_cls, trg) + 5 * (x - G(fake, c)).abs().mean()
    assert torch.allclose(loss_g.detach(), want_g, atol=1e-5)
    assert set(stats) == {"loss/G/adv", "loss/G/cls", "loss/G/rec", "loss/G"}
    loss_g.backward()
    assert all(p.grad is not None for p in G.parameters())


def test_targets_are_seeded_and_attributes_are_multi_hot():
    a, _, _ = _objective()
    b, _, _ = _objective()
    x, c = _batch()
    assert torch.equal(a.targets(c, K), b.targets(c, K))
    assert not torch.equal(a.targets(c, K), a.targets(c, K))  # the generator moves on
    obj, G, D = _objective()
    xa, ca = batch = _batch(attributes=True)
    t = obj.targets(ca, K)
    assert t.shape == (6, K) and t.dtype == torch.float32 and set(t.unique().tolist()) <= {0.0, 1.0}
    loss, _, (fake, trg) = obj.d_loss(G, D, batch, d_step=0, keep_fake=True)
    with torch.no_grad():
        real_adv, real_cls = D(xa)
        bce = F.binary_cross_entropy_with_logits(real_cls, ca, reduction="sum") / 6
        assert torch.allclose(loss.detach(), D(fake)[0].mean() - real_adv.mean() + 2 * bce, atol=1e-5)


def test_config_refusals():
    with pytest.raises(ConfigError, match="multi-domain image-to-image"):
        validate(resolve("stargan", overrides=["data.name=fashion-mnist"]))
    with pytest.raises(ConfigError, match="class-conditional"):
        validate(resolve("stargan", overrides=["model.conditional=true"]))


# -- a tiny fmnist-domains run --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if not (gi.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs")
    return ganforge.train("stargan", [f"out={out}", "data.limit=32", *TINY], quiet=True)


def test_preview_has_a_column_per_domain(run):
    from PIL import Image
    img = Image.open(run / "samples" / "step-0000002.png")
    assert img.size == (5 * 30 + 2, 8 * 30 + 2)  # input + 4 domains per row, 8 inputs (28 px, padding 2)


def test_translate_cli_to_a_domain(run, tmp_path, capsys):
    from torchvision.utils import save_image
    sp = load_reference("fmnist-domains:test", limit=3)
    for i in range(3):
        save_image(sp.images[i].float() / 255, str(tmp_path / f"{i}.png"))
    m = ganforge.load(run)
    x = sp.images.float().div(127.5).sub(1)
    for to, k in (("rotated", 2), ("3", 3)):
        assert main(["translate", str(run), str(tmp_path / "0.png"), "-o", str(tmp_path / to), "--to", to]) == 0
        from ganforge.imagefiles import read_image
        got = read_image(tmp_path / to / "0.png", (1, 28, 28))
        with torch.no_grad():
            want = m.net(x[:1], torch.tensor([k]))[0]
        assert (got - want).abs().max() <= 1.5 / 127.5  # the PNG's 8-bit rounding
    both = m.translate(x, direction="rotated,flipped")  # several: a multi-hot target
    with torch.no_grad():
        assert torch.allclose(both, m.net(x, torch.tensor([[0.0, 0, 1, 1]] * 3)))
    capsys.readouterr()
    assert main(["translate", str(run), str(tmp_path / "0.png"), "-o", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == ("error: give the target domain with --to (original, inverted, "
                                               "rotated, flipped or an index 0..3)")
    assert main(["translate", str(run), str(tmp_path / "0.png"), "-o", str(tmp_path / "o"), "--to", "sideways"]) == 2
    assert "unknown target domain 'sideways'" in capsys.readouterr().err
    with pytest.raises(UsageError, match="index 0..3"):
        m.translate(x, direction="4")
    with pytest.raises(UsageError, match="not `sample`"):
        m.sample(2)


class _Oracle(nn.Module):
    """A perfect translator for the first images of a reference split: undo the source domain (known
    here), show the image in the target domain."""

    def __init__(self, sources):
        super().__init__()
        self.sources = sources

    def forward(self, x, c):
        return to_domain(from_domain(x, self.sources[:len(x)]), c)


class _Identity(nn.Module):
    def forward(self, x, c):
        return x


def _model(net, run):
    cfg = ganforge.load(run).cfg
    return TrainedGenerator(net, cfg, args={"out_shape": [1, 28, 28], "num_classes": 4})


def test_metrics_tell_a_perfect_translator_from_an_identity(run):
    n = 200  # one evaluation batch, so the oracle sees the sources in order
    sources = load_reference("fmnist-domains:test", limit=n).labels
    oracle = evaluate(_model(_Oracle(sources), run), n=n, metrics="domain_acc,content_acc")["results"]
    identity = evaluate(_model(_Identity(), run), n=n, metrics="domain_acc,content_acc")["results"]
    # the judges themselves work on real images
    assert oracle["domain_accuracy_real"] > 0.9 and oracle["content_accuracy_real"] > 0.8
    assert oracle["domain_accuracy"] > 0.85 and oracle["content_accuracy"] == oracle["content_accuracy_real"]
    assert identity["domain_accuracy"] < 0.5  # the source domain equals the random target 1 time in 4
    assert identity["content_accuracy"] < oracle["content_accuracy"] - 0.2


def test_metrics_of_a_tiny_run(run):
    m = ganforge.load(run)
    res = evaluate(m, n=80)["results"]
    per = [res[f"fid_{d}"] for d in ("original", "inverted", "rotated", "flipped")]
    assert res["fid_domains"] == pytest.approx(sum(per) / 4) and all(v > 0 for v in per)
    assert 0 <= res["domain_accuracy"] <= 1 and 0 <= res["content_accuracy"] <= 1
    with pytest.raises(EvalError, match=r"fid_domains: domain \d has \d reference images and \d translations"):
        evaluate(m, n=4, metrics="fid_domains")


# -- multidomain:PATH -----------------------------------------------------------------------------------

def test_folder_of_domains_trains_and_translates(tmp_path, capsys):
    from torchvision.utils import save_image
    g = torch.Generator().manual_seed(0)
    for d, level in (("day", 0.8), ("night", 0.1)):
        (tmp_path / "data" / d).mkdir(parents=True)
        for i in range(6):
            save_image(torch.rand(3, 16, 16, generator=g) * 0.2 + level, str(tmp_path / "data" / d / f"{i}.png"))
    run = ganforge.train("stargan", [f"out={tmp_path}", f"data.name=multidomain:{tmp_path / 'data'}",
                                     "data.image_size=16", "model.d.n_layers=2", *TINY], quiet=True)
    m = ganforge.load(run)
    assert m.task.domain_names(m.cfg) == ("day", "night") and m.task.metrics_for(m) == "domain_acc,fid_domains"
    assert main(["translate", str(run), str(tmp_path / "data" / "day"), "-o", str(tmp_path / "o"), "--to", "night"]) == 0
    assert len(list((tmp_path / "o").iterdir())) == 6
    res = evaluate(m, n=12, metrics="domain_acc")
    assert res["provenance"]["reference"] == f"multidomain:{tmp_path / 'data'}:train"
    assert res["results"]["domain_accuracy_real"] == 1.0  # bright vs dark: trivially separable
    with pytest.raises(EvalError, match="needs a multi-domain model trained on data whose content is known"):
        evaluate(m, n=12, metrics="content_acc")


def test_attribute_file_trains_and_translates_to_several(tmp_path):
    from torchvision.utils import save_image
    g = torch.Generator().manual_seed(0)
    (tmp_path / "img").mkdir()
    rows = ["file,bright,striped"]
    for i in range(8):
        bright, striped = i % 2, (i // 2) % 2
        x = torch.rand(1, 16, 16, generator=g) * 0.2 + 0.7 * bright
        x[:, ::4] += 0.3 * striped
        save_image(x.clamp(0, 1), str(tmp_path / "img" / f"{i}.png"))
        rows.append(f"img/{i}.png,{bright},{striped}")
    (tmp_path / "attrs.csv").write_text("\n".join(rows))
    run = ganforge.train("stargan", [f"out={tmp_path}", f"data.name=multidomain:{tmp_path / 'attrs.csv'}",
                                     "data.image_size=16", "model.d.n_layers=2", *TINY], quiet=True)
    m = ganforge.load(run)
    assert m.task.domain_names(m.cfg) == ("bright", "striped") and m.task.metrics_for(m) == "domain_acc,fid"
    x = load_reference(f"multidomain:{tmp_path / 'attrs.csv'}:train", image_size=16).images.float() / 127.5 - 1
    with torch.no_grad():
        assert torch.allclose(m.translate(x, direction="bright,striped"), m.net(x, torch.ones(8, 2)))
    res = evaluate(m, n=8, metrics=m.task.metrics_for(m))["results"]
    assert 0 <= res["domain_accuracy"] <= 1 and res["fid"] > 0
