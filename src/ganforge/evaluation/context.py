"""What a metric is computed from: the model, its outputs, the feature extractor and the
reference, each made once per evaluation and shared by every metric that needs it."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import torch
from torch import Tensor

from .._version import __version__
from ..errors import EvalError

PREPROCESSING = "v1: uint8 [0,255] -> [-1,1] float; extractor resizes/converts channels itself"


def cache_dir() -> Path:
    return Path(os.environ.get("GANFORGE_CACHE", "~/.cache/ganforge")).expanduser() / "refstats"


def environment() -> dict:
    import numpy
    return {"ganforge": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def reference_features(ref: str, extractor, *, n: int = 0, image_size: int = 0, channels: int = 0,
                       root: str | Path | None = None, cache: bool = True) -> tuple[Tensor, Tensor, dict]:
    """(features, probs, provenance) of a registered dataset's split, cached on disk by everything
    that determines them (dataset, split, n, size, channels, extractor name and SHA-256,
    preprocessing). Datasets read from user folders are never cached (their files may change)."""
    from safetensors.torch import load_file, save_file

    from ..data import dataset, load_reference, parse_ref
    from ..data.registry import split_classes
    name, split = parse_ref(ref)
    classes = split_classes(ref)[1]
    cache = cache and not dataset(name).scheme
    prov = {"dataset": name, "split": split, "n": int(n), "image_size": image_size, "channels": channels,
            "extractor": extractor.name, "extractor_sha256": extractor.sha256, "preprocessing": PREPROCESSING}
    if classes:  # only then: the keys of existing whole-split caches stay valid
        prov["classes"] = list(classes)
    key = hashlib.sha256(json.dumps(prov, sort_keys=True).encode()).hexdigest()[:16]
    tag = f"-c{'_'.join(map(str, classes))}" if classes else ""  # -c5_7: classes 5 and 7
    path = cache_dir() / f"{name}-{split}{tag}-{extractor.name}-{key}.safetensors"
    if cache and path.is_file():
        try:
            t = load_file(str(path))
            return t["features"], t["probs"], {**prov, "cache": str(path)}
        except Exception:  # a damaged cache is recomputed, never trusted
            path.unlink(missing_ok=True)
    images = load_reference(ref, root=root, image_size=image_size, channels=channels, limit=n).images
    feats, probs = extractor.extract(images)
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            save_file({"features": feats.contiguous(), "probs": probs.contiguous()}, str(tmp),
                      metadata={"provenance": json.dumps(prov)})
            tmp.replace(path)
        except Exception:  # a cache that cannot be written costs time later, not this result
            cache = False
    return feats, probs, {**prov, "cache": str(path) if cache else None}


class EvalContext:
    """One evaluation of one model: ``n`` outputs with ``seed`` against the reference ``ref``.

    ``model`` is a :class:`ganforge.trained.TrainedGenerator`; its task says which images are
    compared with the reference (:meth:`ganforge.tasks.Task.outputs`).
    """

    def __init__(self, model, *, n: int, seed: int = 0, ref: str | None = None, features: str = "fmnist",
                 extractor=None, device="cpu", progress: bool | None = None, ref_n: int = 0):
        if n < 2:
            raise EvalError(f"--n must be at least 2, got {n}")
        self.model, self.n, self.seed = model, int(n), int(seed)
        self.task = model.task
        self._ref = ref  # None: the task's default, looked up when a metric needs a reference
        self.ref_n = int(ref_n)  # > 0: only the first ref_n reference images
        self.features, self.device, self.progress = features, device, progress
        self._extractor = extractor
        self._cache: dict = {}
        self.notes: dict[str, str] = {}  # provenance strings metrics add (e.g. the distance PPL used)

    # -- shared pieces, made on first use -------------------------------------------------------
    @property
    def ref(self) -> str:
        if self._ref is None:  # a run trained on some classes (data.classes) is compared with those classes
            from ..data.registry import with_classes
            cfg = self.model.cfg
            self._ref = with_classes(self.task.default_ref(cfg), getattr(cfg.data, "classes", ()))
        return self._ref

    def extractor(self):
        if self._extractor is None:
            from ..features import get_feature_extractor
            self._extractor = get_feature_extractor(self.features, device=self.device)
        return self._extractor

    def _once(self, key: str, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def split(self):
        """The reference split (images, labels, inputs) as uint8 tensors."""
        from ..data import load_reference
        return self._once("split", lambda: load_reference(self.ref, **self._ref_options()))

    def _ref_options(self) -> dict:
        return self.task.reference_options(self.model.cfg, self.ref)

    def reference(self) -> tuple[Tensor, Tensor, dict]:
        """(features, probs, provenance) of the reference images."""
        limit = self.n if self.task.takes_images else self.ref_n  # translation: the targets of the n inputs used
        return self._once("reference", lambda: reference_features(self.ref, self.extractor(), n=limit,
                                                                   **self._ref_options()))

    def outputs(self) -> Tensor:
        """All outputs in one tensor (for metrics that compare them image by image)."""
        return self._once("outputs", lambda: torch.cat([x.cpu() for x in self.task.outputs(self)]))

    def fake_features(self) -> tuple[Tensor, Tensor]:
        """(features, probs) of the model's ``n`` outputs."""
        def make():
            from tqdm.auto import tqdm
            ext = self.extractor()
            batches = [self.outputs()] if "outputs" in self._cache else self.task.outputs(self)
            feats, probs = [], []
            show = self.progress if self.progress is not None else self.n > 2000
            with tqdm(total=self.n, desc="generating + features", unit="img", disable=not show, leave=False) as bar:
                for x in batches:
                    if x.dim() != 4:
                        raise EvalError("feature metrics need image samples; use --metrics modes for vector data")
                    for i in range(0, len(x), 500):
                        f, p = ext(x[i:i + 500])
                        feats.append(f.cpu())
                        probs.append(p.cpu())
                        bar.update(len(x[i:i + 500]))
            return torch.cat(feats), torch.cat(probs)
        return self._once("fake", make)

    def provenance(self) -> dict:
        ext, ref = self._extractor, self._cache.get("reference")
        return {"extractor": ext.name if ext else "-", "extractor_sha256": ext.sha256 if ext else "-",
                "n": self.n, "reference": self._ref or "-", "reference_n": len(ref[0]) if ref else 0,
                "reference_cache": ref[2].get("cache") if ref else None, "seed": self.seed, **self.notes,
                **environment()}


__all__ = ["EvalContext", "PREPROCESSING", "cache_dir", "environment", "reference_features"]
