"""The FID InceptionV3 (``inception`` in ``FEATURES``): 2048-d pool3 features, 1008 class probabilities.

This is the network every published FID is computed with: the TensorFlow graph
``inception-2015-12-05`` (used by the original TTUR FID code), as ported to PyTorch by
pytorch-fid and reused by torch-fidelity. It is torchvision's InceptionV3 layout without the
auxiliary head, with three differences that matter for the numbers:

1. the classifier has **1008** outputs (the TF graph's label space), not 1000;
2. the average pool in the pool branch of the A, C and first E blocks does **not** count the
   zero padding (TF's ``avg_pool``; ``count_include_pad=False``);
3. the pool branch of the **last** E block (``Mixed_7c``) is a 3x3 **max** pool, not an
   average pool (a quirk of that TF graph that every FID implementation has to reproduce).

The blocks are torchvision's (``BasicConv2d`` with BN eps 1e-3, ``InceptionA..E``), subclassed
where the pool branch differs, so parameter names equal torchvision's ``inception_v3(
num_classes=1008, aux_logits=False)`` state dict, which is the layout of pytorch-fid's weights
file: 566 tensors, 23,850,960 parameters (2,065,392 of them in ``fc``), 94 BatchNorm layers.

**Weights** (never shipped, never fetched silently): the file ``pt_inception-2015-12-05-
6726825d.pth`` of pytorch-fid's release (:data:`FID_WEIGHTS_URL`), a plain state dict of
95,628,359 bytes with SHA-256 :data:`FID_WEIGHTS_SHA256`. Looked up in this order:

1. ``weights=PATH`` given to :class:`InceptionFeatures`;
2. ``$GANFORGE_INCEPTION_WEIGHTS``;
3. the torch hub cache, ``torch.hub.get_dir()/checkpoints/pt_inception-2015-12-05-6726825d.pth``
   (where pytorch-fid and ``torch.hub`` put it; see :func:`default_weights_path`);
4. a download into that cache with ``torch.hub.download_url_to_file``, **only** with
   ``download=True``.

Otherwise :class:`~ganforge.features.WeightsError` says where to put the file. The bytes are
hashed (the full SHA-256, not only the 8-hex prefix in the name that ``torch.hub``'s
``check_hash`` looks at) and the same bytes are parsed with ``torch.load(...,
weights_only=True)``, which refuses any pickle that would build objects other than tensors and
plain containers.

**Preprocessing** (pytorch-fid's): images ``(B, C, H, W)`` in [-1, 1] (uint8 in [0, 255] is
mapped to [-1, 1]); gray repeated to 3 channels; resized to 299 x 299 with
``F.interpolate(mode="bilinear", align_corners=False)`` *without* antialiasing (pytorch-fid's
``resize_input``; our base extractor antialiases, which would change the features of images
larger than 299). No further normalisation: the TF port expects [-1, 1]. pytorch-fid maps
[0, 1] -> [-1, 1] after resizing and we before; bilinear weights sum to 1, so the two orders
agree up to float rounding. torch-fidelity differs here: it resizes uint8 images with a
TF1.x-compatible bilinear kernel and maps with ``(x - 128) / 128``, so its features for
non-299 inputs differ slightly from pytorch-fid's (and ours).

**Outputs**: ``features`` = pool3, the 2048-d global average of ``Mixed_7c`` (pytorch-fid's
block 3, torch-fidelity's ``"2048"``), for FID/KID/PRDC. ``probs`` = softmax over **all 1008**
*unbiased* logits ``pool3 @ fc.weight.T`` (no ``fc.bias``): torch-fidelity's default Inception
Score feature ``logits_unbiased``, itself following the original Inception Score code
(improved-gan), which multiplies pool3 by the softmax weights without the bias and normalises
over the 1008 outputs (it does not cut to the first 1000). :meth:`InceptionFeatures.logits`
gives the logits with or without the bias.

Example::

    fx = FEATURES.get("inception")(device="cpu")     # or InceptionFeatures(weights="...pth")
    feats, probs = fx(images)                          # (B, 2048), (B, 1008)
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.inception import (BasicConv2d, InceptionA, InceptionB, InceptionC, InceptionD,
                                          InceptionE)

from .errors import WeightsError
from .extractor import FEATURES, FeatureExtractor

#: File name of pytorch-fid's weights (the 8 hex digits are the start of its SHA-256).
FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
#: Where pytorch-fid publishes them (converted from TF's inception-2015-12-05.tgz).
FID_WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_WEIGHTS_NAME}"
#: Full SHA-256 of that file (its first 8 hex digits are the ``6726825d`` in the name).
FID_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
#: Its size in bytes (a cheap first check before hashing).
FID_WEIGHTS_BYTES = 95_628_359
#: Environment variable naming a weights file (used when no ``weights=`` is given).
WEIGHTS_ENV = "GANFORGE_INCEPTION_WEIGHTS"

INPUT_SIZE = 299  # the network's input side
POOL3_DIM = 2048  # pool3 feature size
NUM_CLASSES = 1008  # the TF graph's classifier outputs


# -- the network -----------------------------------------------------------------------------

def _tf_avg_pool(x: Tensor) -> Tensor:
    """3x3 stride-1 average pool that, like TF, averages only over the non-padding pixels."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(InceptionA):
    """torchvision's InceptionA with TF's average pool (padding not counted) in the pool branch."""

    def _forward(self, x: Tensor) -> list[Tensor]:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_tf_avg_pool(x))
        return [b1, b5, b3, bp]


class FIDInceptionC(InceptionC):
    """torchvision's InceptionC with TF's average pool (padding not counted) in the pool branch."""

    def _forward(self, x: Tensor) -> list[Tensor]:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7d = layer(b7d)
        bp = self.branch_pool(_tf_avg_pool(x))
        return [b1, b7, b7d, bp]


class FIDInceptionE_1(InceptionE):
    """torchvision's InceptionE (``Mixed_7b``) with TF's average pool (padding not counted)."""

    def _pool(self, x: Tensor) -> Tensor:
        return _tf_avg_pool(x)

    def _forward(self, x: Tensor) -> list[Tensor]:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], 1)
        bp = self.branch_pool(self._pool(x))
        return [b1, b3, b3d, bp]


class FIDInceptionE_2(FIDInceptionE_1):
    """The last InceptionE (``Mixed_7c``): the TF graph pools with a 3x3 *max* pool here."""

    def _pool(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class FIDInceptionV3(nn.Module):
    """The FID InceptionV3: ``(B, 3, 299, 299)`` in [-1, 1] -> pool3 ``(B, 2048)`` / logits ``(B, 1008)``.

    Attribute names (hence state-dict keys) are those of torchvision's ``Inception3`` without
    ``AuxLogits``. No preprocessing happens here (see :class:`InceptionFeatures`).
    """

    def __init__(self, num_classes: int = NUM_CLASSES):  # classifier outputs (1008 for the TF weights)
        super().__init__()
        self.model_args = {"num_classes": num_classes}
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE_1(1280)
        self.Mixed_7c = FIDInceptionE_2(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(POOL3_DIM, num_classes)

    def pool3(self, x: Tensor) -> Tensor:
        """``(B, 3, 299, 299)`` -> ``(B, 2048)``: the global average of ``Mixed_7c``."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"FIDInceptionV3 expects (B, 3, H, W), got {tuple(x.shape)}")
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (B, 64, 147, 147)
        x = self.maxpool1(x)  # (B, 64, 73, 73)
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))  # (B, 192, 35, 35)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # (B, 288, 35, 35)
        x = self.Mixed_6a(x)  # (B, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # (B, 768, 17, 17)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))  # (B, 2048, 8, 8)
        return torch.flatten(self.avgpool(x), 1)  # (B, 2048)

    def forward(self, x: Tensor) -> Tensor:
        """Logits with the bias, ``(B, num_classes)``."""
        return self.fc(self.pool3(x))


# -- weights ---------------------------------------------------------------------------------

def default_weights_path() -> Path:
    """Where the weights are looked for (and downloaded to): the torch hub checkpoint cache,
    ``torch.hub.get_dir()/checkpoints/pt_inception-2015-12-05-6726825d.pth`` (``$TORCH_HOME``
    moves it), the same file pytorch-fid uses."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_NAME


def _missing_message(hub: Path) -> str:
    return (f"the FID Inception weights are not available offline: put {FID_WEIGHTS_NAME} "
            f"(sha256 {FID_WEIGHTS_SHA256}, {FID_WEIGHTS_BYTES} bytes; from {FID_WEIGHTS_URL}) "
            f"at {hub}, or pass weights=PATH / set ${WEIGHTS_ENV}=PATH, or allow the download "
            f"with download=True")


def download_weights(dst: str | Path | None = None, *, progress: bool = True) -> Path:
    """Fetch pytorch-fid's weights into ``dst`` (default :func:`default_weights_path`).

    ``torch.hub.download_url_to_file`` writes to a temporary file and only moves it into place
    when its SHA-256 equals :data:`FID_WEIGHTS_SHA256`. Network and checksum failures raise
    :class:`WeightsError`.
    """
    dst = Path(dst) if dst is not None else default_weights_path()
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(FID_WEIGHTS_URL, str(dst), hash_prefix=FID_WEIGHTS_SHA256,
                                       progress=progress)
    except Exception as e:  # urllib, socket and hash errors: the user needs one line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"could not download {FID_WEIGHTS_URL} to {dst} ({msg}); "
                           + _missing_message(dst)) from None
    return dst


def resolve_weights(weights: str | Path | None = None, *, download: bool = False) -> Path:
    """The weights file to use: ``weights``, else ``$GANFORGE_INCEPTION_WEIGHTS``, else the
    torch hub cache, else (``download=True`` only) a fresh download into that cache.

    A path given explicitly (argument or environment) must exist: it is never replaced by
    another file silently. Raises :class:`WeightsError` naming the expected locations.
    """
    for given, origin in ((weights, "weights="), (os.environ.get(WEIGHTS_ENV) or None, f"${WEIGHTS_ENV}")):
        if given is not None:
            path = Path(given).expanduser()
            if not path.is_file():
                raise WeightsError(f"Inception weights not found at {path} (given by {origin}); "
                                   + _missing_message(default_weights_path()))
            return path
    hub = default_weights_path()
    if hub.is_file():
        return hub
    if download:
        return download_weights(hub)
    raise WeightsError(_missing_message(hub))


def load_verified_pth(path: str | Path, sha256: str) -> dict[str, Tensor]:
    """A ``.pth`` state dict whose SHA-256 is checked first, read with ``weights_only=True``.

    The bytes that are hashed are the bytes that are parsed. A file that is not a state dict
    of tensors (e.g. a pickle that would call a function) raises :class:`WeightsError`; no code
    from the file runs.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WeightsError(f"cannot read Inception weights {path}: {e}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256.lower():
        raise WeightsError(f"checksum mismatch for {path}: sha256 {actual}, expected {sha256}; "
                           f"the file is corrupted, truncated or not {FID_WEIGHTS_NAME}: delete it "
                           f"and fetch it again from {FID_WEIGHTS_URL}")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError for forbidden globals; zip/EOF/... errors for damage
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"refused to load {path}: not a plain state dict of tensors "
                           f"(torch.load weights_only=True: {first})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, Tensor)
                                              for k, v in state.items()):
        raise WeightsError(f"{path} does not hold a state dict (name -> tensor)")
    return state


def load_fid_inception(path: str | Path, sha256: str = FID_WEIGHTS_SHA256) -> FIDInceptionV3:
    """:class:`FIDInceptionV3` with the verified weights of ``path``, in eval mode, no grads.

    Every parameter and BN statistic must be in the file with the right shape; only the BN
    ``num_batches_tracked`` counters (not used in eval mode, absent from old files) may be missing.
    """
    state = load_verified_pth(path, sha256)
    net = FIDInceptionV3(num_classes=NUM_CLASSES)
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise WeightsError(f"{path} does not fit the FID InceptionV3: {e}") from None
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise WeightsError(f"{path} does not fit the FID InceptionV3: missing {missing[:5]}"
                           f"{'...' if len(missing) > 5 else ''}, unexpected "
                           f"{result.unexpected_keys[:5]}{'...' if len(result.unexpected_keys) > 5 else ''}")
    return net.eval().requires_grad_(False)


# -- the extractor ---------------------------------------------------------------------------

@FEATURES.register("inception")
class InceptionFeatures(FeatureExtractor):
    """FID InceptionV3 (TF port, pytorch-fid weights): 2048-d pool3 features, 1008 class probs.

    Args:
        device: where the network runs.
        weights: the ``.pth`` file; None = ``$GANFORGE_INCEPTION_WEIGHTS`` or the torch hub cache.
        sha256: expected SHA-256 of the file; None = :data:`FID_WEIGHTS_SHA256` (pytorch-fid's).
        download: allow fetching pytorch-fid's file into the torch hub cache when it is missing.
        chunk_size: images pushed through the network at once (bounds memory whatever the
            caller's batch size: one 299x299 image takes ~30 MB of activations).

    ``probs`` are the softmax of the unbiased logits over all 1008 classes (see the module
    docstring); ``features`` the pool3 activations.
    """

    name = "inception"
    dim = POOL3_DIM
    num_classes = NUM_CLASSES
    input_size = INPUT_SIZE
    input_channels = 3
    sha256 = FID_WEIGHTS_SHA256

    def __init__(self, device: str | torch.device = "cpu", *, weights: str | Path | None = None,
                 sha256: str | None = None, download: bool = False, chunk_size: int = 32):
        super().__init__(device)
        self.path = resolve_weights(weights, download=download)
        self.sha256 = (sha256 or FID_WEIGHTS_SHA256).lower()
        self.net = load_fid_inception(self.path, self.sha256).to(self.device)
        self.chunk_size = int(chunk_size)

    def preprocess(self, images: Tensor) -> Tensor:
        """``(B, 1 or 3, H, W)`` -> float ``(B, 3, 299, 299)`` on the device, pytorch-fid style:
        uint8 [0, 255] -> [-1, 1] (floats are taken as [-1, 1]), gray repeated to RGB, bilinear
        resize (``align_corners=False``, no antialiasing)."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"{self.name}: expected images (B, 1 or 3, H, W), got {tuple(images.shape)}")
        x = images.to(self.device)
        x = x.float().div(127.5).sub(1.0) if x.dtype == torch.uint8 else x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[2:]) != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return x  # (B, 3, 299, 299)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.net.pool3(x)  # (B, 2048)
        logits = f @ self.net.fc.weight.T  # (B, 1008), unbiased (torch-fidelity's IS feature)
        return f, logits.softmax(1)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """One batch -> ``(features (B, 2048), probs (B, 1008))``, float32 on the device,
        computed ``chunk_size`` images at a time."""
        if images.dim() != 4:
            raise ValueError(f"{self.name}: expected images (B, 1 or 3, H, W), got {tuple(images.shape)}")
        feats, probs = [], []
        for i in range(0, images.shape[0], self.chunk_size):
            f, p = self._forward(self.preprocess(images[i:i + self.chunk_size]))
            feats.append(f)
            probs.append(p)
        if not feats:
            return (torch.empty(0, self.dim, device=self.device),
                    torch.empty(0, self.num_classes, device=self.device))
        return torch.cat(feats), torch.cat(probs)

    @torch.no_grad()
    def extract(self, images: Tensor, *, batch_size: int = 100,
                progress: bool | None = None) -> tuple[Tensor, Tensor]:
        """As :meth:`FeatureExtractor.extract`, with a batch size suited to a 299x299 network."""
        return super().extract(images, batch_size=batch_size, progress=progress)

    @torch.no_grad()
    def logits(self, images: Tensor, *, bias: bool = True) -> Tensor:
        """Class logits ``(B, 1008)`` for one batch; ``bias=False`` gives the unbiased logits
        whose softmax is ``probs``."""
        f = self.net.pool3(self.preprocess(images))
        return f @ self.net.fc.weight.T + (self.net.fc.bias if bias else 0)


__all__ = ["FIDInceptionA", "FIDInceptionC", "FIDInceptionE_1", "FIDInceptionE_2", "FIDInceptionV3",
           "FID_WEIGHTS_BYTES", "FID_WEIGHTS_NAME", "FID_WEIGHTS_SHA256", "FID_WEIGHTS_URL",
           "InceptionFeatures", "WEIGHTS_ENV", "default_weights_path", "download_weights",
           "load_fid_inception", "load_verified_pth", "resolve_weights"]
