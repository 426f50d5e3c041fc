"""Multi-domain data (ganforge.data.multidomain): the fmnist-domains transforms and their inverses,
that the domains are recognisable and the content recoverable on real Fashion-MNIST, the source's
resume, the multidomain:PATH loaders, and the translation scores (ganforge.metrics.translation)."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from ganforge.data.base import DataError
from ganforge.data.multidomain import (ATTRIBUTES, DOMAINS, MultiDomainSource, fmnist_domains, from_domain,
                                       multidomain_source, to_domain)
from ganforge.metrics.translation import content_accuracy, domain_accuracy

pytestmark = pytest.mark.usefixtures("one_thread")

IMG = torch.arange(9, dtype=torch.uint8).view(1, 1, 3, 3) * 10  # rows (0 10 20) (30 40 50) (60 70 80)


def test_each_domain_by_hand():
    x = IMG.expand(4, 1, 3, 3)
    out = to_domain(x, torch.arange(4))
    assert torch.equal(out[0], IMG[0])
    assert torch.equal(out[1], 255 - IMG[0])
    # rotated 90 degrees anticlockwise: the right column becomes the top row
    assert out[2, 0].tolist() == [[20, 50, 80], [10, 40, 70], [0, 30, 60]]
    # flipped upside down
    assert out[3, 0].tolist() == [[60, 70, 80], [30, 40, 50], [0, 10, 20]]
    # floats in [-1, 1]: inversion is negation
    f = IMG.float() / 127.5 - 1
    assert torch.allclose(to_domain(f, torch.tensor([1])), -f)
    # attributes compose as flip, then rotate, then invert
    both = to_domain(IMG, torch.tensor([[1.0, 1.0, 1.0]]))
    assert torch.equal(both, 255 - torch.rot90(IMG.flip(-2), 1, (-2, -1)))


def test_from_domain_undoes_to_domain():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 1, 6, 6), generator=g, dtype=torch.uint8)
    doms = torch.randint(0, 4, (40,), generator=g)
    attrs = torch.randint(0, 2, (40, 3), generator=g).float()
    assert torch.equal(from_domain(to_domain(x, doms), doms), x)
    assert torch.equal(from_domain(to_domain(x, attrs), attrs), x)
    assert not torch.equal(to_domain(x, attrs), x)
    xf = x.float() / 127.5 - 1
    assert torch.allclose(from_domain(to_domain(xf, attrs), attrs), xf)


@pytest.fixture(scope="module")
def fmnist():
    from ganforge.data.images import load_split
    try:
        images, labels = load_split("fashion-mnist", "test", limit=1200)
    except DataError as e:
        pytest.skip(f"Fashion-MNIST not available offline: {e}")
    return images, labels


def test_fmnist_domains_recognisable_and_content_recoverable(fmnist):
    images, labels = fmnist
    x, y, content = fmnist_domains(images, labels, seed=0)
    assert torch.equal(content, labels) and x.shape == images.shape and x.dtype == torch.uint8
    assert torch.bincount(y, minlength=4).min() > 250  # balanced-ish: 1200 / 4 each
    assert torch.equal(fmnist_domains(images, labels, seed=0)[1], y)
    # recognisable: a linear classifier on raw pixels tells the 4 domains apart on held-out images
    xf = (x.float() / 127.5 - 1).flatten(1)
    torch.manual_seed(0)
    clf = torch.nn.Linear(784, 4)
    opt = torch.optim.Adam(clf.parameters(), lr=1e-2)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(clf(xf[:1000]), y[:1000])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert domain_accuracy(clf(xf[1000:]).detach(), y[1000:]) > 0.9
    # content: the shipped classifier recovers the class once the domain is undone
    from ganforge.features import FmnistFeatures
    fx = FmnistFeatures()
    undone = content_accuracy(fx.logits(from_domain(x, y)[:400]), labels[:400])
    shown = content_accuracy(fx.logits(x[:400]), labels[:400])
    assert undone > 0.85 and shown < undone - 0.2, (undone, shown)
    xa, ya, _ = fmnist_domains(images[:100], labels[:100], mode="attributes")
    assert ya.shape == (100, 3) and set(ya.unique().tolist()) == {0.0, 1.0}


def test_source_resume_is_exact():
    g = torch.Generator().manual_seed(1)
    data = torch.randint(0, 256, (30, 1, 8, 8), generator=g, dtype=torch.uint8)
    src = MultiDomainSource(data, torch.arange(30) % 4, domain_names=DOMAINS, seed=3)
    assert src.num_classes == 4 and not src.multi_label
    for _ in range(5):
        src.next(7)
    buf = io.BytesIO()
    torch.save(src.state_dict(), buf)
    expected = [src.next(7) for _ in range(3)]
    other = MultiDomainSource(data, torch.arange(30) % 4, domain_names=DOMAINS, seed=3)
    buf.seek(0)
    other.load_state_dict(torch.load(buf, weights_only=True))
    for (xa, ya), (xb, yb) in zip(expected, [other.next(7) for _ in range(3)]):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def _png(path, value, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (10, 12), value if mode == "L" else (value, 0, 0)).save(path)


def test_folder_of_domain_subfolders(tmp_path):
    for dom, v in (("blond", 200), ("black", 20)):
        for i in range(3):
            _png(tmp_path / dom / f"{i}.png", v)
    (tmp_path / "empty").mkdir()
    (tmp_path / "black" / "broken.png").write_bytes(b"not a png")
    src = multidomain_source(tmp_path, size=8)
    assert src.domain_names == ("black", "blond") and src.shape == (1, 8, 8) and len(src) == 6
    assert torch.equal(src.labels, torch.tensor([0, 0, 0, 1, 1, 1]))
    assert (src.data[src.labels == 1] == 200).all() and "1 unreadable skipped" in src.description


def test_celeba_style_and_csv_attribute_files(tmp_path):
    for i in range(3):
        _png(tmp_path / "img" / f"{i:06d}.jpg".replace(".jpg", ".png"), 50 * i, mode="RGB")
    (tmp_path / "list_attr.txt").write_text(
        "3\nBlack_Hair Blond_Hair Male Young\n"
        "000000.png  1 -1 -1  1\n000001.png -1  1  1  1\n000002.png -1 -1  1 -1\n")
    src = multidomain_source(tmp_path / "list_attr.txt", size=8, images=tmp_path / "img",
                             attributes=["Male", "Black_Hair"])
    assert src.domain_names == ("Male", "Black_Hair") and src.multi_label and src.shape == (3, 8, 8)
    assert src.labels.tolist() == [[0, 1], [1, 0], [1, 0]]
    (tmp_path / "img" / "attrs.csv").write_text("file,smiling,glasses\n000000.png,1,0\n000002.png,0,1\n")
    src = multidomain_source(tmp_path / "img" / "attrs.csv", size=8)
    assert src.labels.tolist() == [[1, 0], [0, 1]] and src.data[1, 0, 0, 0] == 100
    with pytest.raises(DataError, match="no attribute 'Bald'"):
        multidomain_source(tmp_path / "list_attr.txt", images=tmp_path / "img", attributes=["Bald"])


@pytest.mark.parametrize("content,match", [
    ("x\nA B\n", "CelebA-style"),
    ("1\nA B\nf.png 1\n", "1 values for 2 attributes"),
    ("1\nA B\nf.png 1 yes\n", "not a number"),
    ("1\nA B\nf.png 1 2\n", "1 and 0 or -1"),
])
def test_bad_attribute_files(tmp_path, content, match):
    (tmp_path / "attrs.txt").write_text(content)
    with pytest.raises(DataError, match=match):
        multidomain_source(tmp_path / "attrs.txt")


def test_bad_folders(tmp_path):
    with pytest.raises(DataError, match="not found"):
        multidomain_source(tmp_path / "nope")
    _png(tmp_path / "only" / "a.png", 3)
    with pytest.raises(DataError, match="at least 2"):
        multidomain_source(tmp_path)


def test_translation_scores_by_hand():
    logits = torch.tensor([[2.0, 0.1, -1.0], [0.0, 0.5, 0.2], [-1.0, -2.0, 3.0], [1.0, 0.0, 0.5]])
    assert domain_accuracy(logits, torch.tensor([0, 1, 1, 2])) == 0.5
    assert content_accuracy(logits, torch.tensor([0, 1, 2, 0])) == 1.0
    multi = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    # logit > 0 <-> present: predicted rows (1 1 0) (0 1 1) (0 0 1) (1 0 1); matches 2, 3, 2, 3 of 3 -> 10 / 12
    assert abs(domain_accuracy(logits, multi) - 10 / 12) < 1e-7
    assert len(ATTRIBUTES) == 3
