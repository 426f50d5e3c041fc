"""Feature extractors for evaluating generators: ``FEATURES`` maps a name to an extractor class.

An extractor turns a batch of images in [-1, 1] (the range GAN images use) into
``(features, probs)``: ``features`` feed distribution metrics (FID, KID, precision/recall),
``probs`` are class probabilities for classifier-based metrics (Inception Score, mode counts).
The metric maths lives elsewhere and only sees these tensors.

``fmnist`` is a small CNN (:class:`FmnistNet`, 242k parameters, 0.97 MB) trained on
Fashion-MNIST by ``scripts/train_fmnist_classifier.py`` (93.0 % test accuracy). Its features are
the 128-d penultimate layer, ``ReLU(Linear(flatten(conv trunk)))`` (non-negative); its
probabilities the softmax of the 10 logits. The weights ship in ``ganforge/weights`` as
safetensors (never pickle) beside a JSON record holding their SHA-256, the test accuracy and the
training command; the checksum is verified at every load (a mismatch is a :class:`WeightsError`).

Example::

    fx = FEATURES.get("fmnist")(device="cpu")
    feats, probs = fx(images)               # one batch: (B, 128), (B, 10) on fx.device
    feats, probs = fx.extract(many_images)  # any N, batched, with a progress bar; on the CPU
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import torch
import torch.nn as nn
from torch import Tensor

from .errors import WeightsError
from .extractor import FEATURES, FeatureExtractor

#: Folder of the shipped weights and their JSON records.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file given as bytes (8-byte length + JSON header)."""
    if len(data) < 8:
        raise WeightsError("not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8:8 + n])
    except (ValueError, UnicodeDecodeError):
        raise WeightsError("not a safetensors file (bad header)") from None
    return header.get("__metadata__") or {}


def load_verified_state(path: str | Path, sha256: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Read a safetensors file, check its SHA-256, return ``(tensors, metadata)``.

    The bytes that are hashed are the bytes that are parsed, so the check cannot be raced.
    """
    from safetensors.torch import load as st_load

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights not found: {path}")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256.lower():
        raise WeightsError(
            f"checksum mismatch for {path}: sha256 {actual}, expected {sha256}; the file is "
            f"corrupted or was replaced (reinstall ganforge or re-run the training script)"
        )
    try:
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own error types
        raise WeightsError(f"cannot read {path} as safetensors: {e}") from None
    return tensors, _safetensors_metadata(data)


# -- the Fashion-MNIST classifier ------------------------------------------------------------

def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True), nn.MaxPool2d(2)]


class FmnistNet(nn.Module):
    """A small CNN for 28x28 grayscale images in [-1, 1].

    ``(B, 1, 28, 28)`` -> three [conv3x3 -> BN -> ReLU -> maxpool2] blocks (28 -> 14 -> 7 -> 3)
    -> flatten ``(B, widths[-1] * 9)`` -> linear -> ReLU = **features** ``(B, feature_dim)``
    -> dropout -> linear = logits ``(B, num_classes)``.
    """

    def __init__(self, widths: tuple[int, ...] | list[int] = (32, 64, 128),  # conv channels per block
                 feature_dim: int = 128,  # size of the penultimate layer (the features)
                 num_classes: int = 10,  # Fashion-MNIST classes
                 dropout: float = 0.3):  # dropout before the last layer (training only)
        super().__init__()
        self.model_args = {"widths": list(widths), "feature_dim": feature_dim,
                           "num_classes": num_classes, "dropout": dropout}
        layers: list[nn.Module] = []
        c = 1
        for w in widths:
            layers += _conv_block(c, w)
            c = w
        self.trunk = nn.Sequential(*layers)
        side = 28
        for _ in widths:
            side //= 2
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, feature_dim),
                                   nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"FmnistNet expects (B, 1, 28, 28), got {tuple(x.shape)}")
        f = self.embed(self.trunk(x))  # (B, feature_dim)
        return f, self.head(f)  # (B, feature_dim), (B, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.features_and_logits(x)[1]


# -- extractors ------------------------------------------------------------------------------

@FEATURES.register("fmnist")
class FmnistFeatures(FeatureExtractor):
    """Fashion-MNIST CNN classifier: 128-d penultimate features and 10 class probabilities.

    Input: ``(B, C, H, W)`` in [-1, 1] (or uint8); RGB is averaged to gray, other sizes are
    resized to 28x28. ``weights`` defaults to the shipped ``fmnist_classifier.safetensors``;
    its SHA-256 is read from the JSON record beside it (``sha256`` overrides) and checked.
    """

    name = "fmnist"
    input_size = 28
    input_channels = 1
    WEIGHTS = "fmnist_classifier.safetensors"

    def __init__(self, device: str | torch.device = "cpu", *, weights: str | Path | None = None,
                 sha256: str | None = None):
        super().__init__(device)
        path = Path(weights) if weights is not None else WEIGHTS_DIR / self.WEIGHTS
        if sha256 is None:
            record_path = path.with_suffix(".json")
            try:
                self.record = json.loads(record_path.read_text())
                sha256 = self.record["sha256"]
            except (OSError, ValueError, KeyError) as e:
                raise WeightsError(f"cannot read the checksum record {record_path}: {e}") from None
        else:
            self.record = {}
        tensors, meta = load_verified_state(path, sha256)
        try:
            model_args = json.loads(meta["model_args"])
            net = FmnistNet(**model_args)
            net.load_state_dict(tensors, strict=True)
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise WeightsError(f"{path} does not hold FmnistNet weights: {e}") from None
        self.net = net.eval().requires_grad_(False).to(self.device)
        self.sha256 = sha256
        self.path = path
        self.dim = net.model_args["feature_dim"]
        self.num_classes = net.model_args["num_classes"]

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f, logits = self.net.features_and_logits(x)
        return f, logits.softmax(1)

    @torch.no_grad()
    def logits(self, images: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)`` for one batch (e.g. to measure accuracy)."""
        return self.net(self.preprocess(images))


def get_feature_extractor(name: str, device: str | torch.device = "cpu") -> FeatureExtractor:
    """``FEATURES.get(name)(device=device)``, for callers that hold a name."""
    return FEATURES.get(name)(device=device)


__all__ = ["FEATURES", "FeatureExtractor", "FmnistFeatures", "FmnistNet", "WEIGHTS_DIR",
           "WeightsError", "get_feature_extractor", "load_verified_state", "sha256_file"]

from . import inception as _inception  # noqa: E402,F401  (registers "inception")
