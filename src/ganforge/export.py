"""Export a trained generator to ONNX or TorchScript, verified against PyTorch before it is kept.

``export_generator(g, out, fmt="onnx")`` turns a loaded :class:`ganforge.trained.TrainedGenerator` into a
file that runs without ganforge:

- **ONNX** through ``torch.onnx.export(..., dynamo=True)`` (torch's current exporter; it needs the
  ``onnxscript`` package), with a dynamic batch dimension, the opset chosen by the caller and
  recorded in the file's ``metadata_props`` (``opset`` and a ``ganforge`` JSON record of the
  inputs, the output and the model facts);
- **TorchScript** through ``torch.jit.trace``, the same record saved as the extra file
  ``ganforge.json`` (``torch.jit.load(path, _extra_files={"ganforge.json": ""})`` reads it).

The file is written under a temporary name next to ``out``, run on seeded inputs at batch 1 and
3 (onnxruntime for ONNX, ``torch.jit.load`` for TorchScript) and compared with the PyTorch
generator; only when every output lies within ``atol`` is it renamed to ``out``. A failed check
is an :class:`ExportError` naming the largest difference, and nothing is left at ``out``.

What the exported graph takes depends on the kind of model; :func:`export_adapter` is the one
place that knows it (noise z; z and an int64 label; an image; CycleGAN's two directions).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from . import __version__
from .errors import UsageError, UserError

FORMATS = ("onnx", "torchscript")
DEFAULT_OPSET = 18  # ONNX opset: supported by onnxruntime >= 1.14 and by torch's dynamo exporter
ATOL = 1e-4  # largest |exported - PyTorch| accepted at verification (outputs lie in [-1, 1])
VERIFY_BATCHES = (1, 3)  # batch sizes the exported file is checked at (the trace uses batch 2)
INSTALL_HINT = "pip install ganforge[export]"


class ExportError(UserError, RuntimeError):
    """An export that failed or did not verify (a one-line message; nothing was written)."""


@dataclass(frozen=True)
class ModelInput:
    """One input of the exported graph."""

    name: str  # graph input name
    dtype: torch.dtype  # torch.float32 or torch.int64
    shape: tuple  # per-sample shape (without the batch dimension); () for a scalar
    description: str  # what to feed, for the metadata record and the command's output
    draw: Callable[[int, torch.Generator], Tensor]  # seeded example values for a batch of n
    batched: bool = True  # False: one value for the whole batch (e.g. a truncation psi)

    def record(self) -> dict:
        shape = (["batch"] if self.batched else []) + list(self.shape)
        return {"name": self.name, "dtype": str(self.dtype).replace("torch.", ""), "shape": shape,
                "description": self.description}


@dataclass
class ExportSpec:
    """What to export: a module whose ``forward`` takes the inputs positionally, in order."""

    module: nn.Module  # forward(*inputs) -> (B, *output_shape) in [-1, 1]; in eval mode
    inputs: tuple  # ModelInput, ...
    output_shape: tuple  # per-sample output shape
    kind: str  # noise | conditional | image-to-image (recorded in the metadata)
    output: str = "images"  # graph output name
    facts: dict = field(default_factory=dict)  # extra metadata (arch, step, latent, class names ...)


class _FromNoise(nn.Module):
    """G(z) or G(z, label) with positional graph inputs."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, z: Tensor, label: Tensor | None = None) -> Tensor:
        return self.net(z, label)  # (B, z_dim) [, (B,) int64] -> (B, C, H, W)


class _FromImage(nn.Module):
    """An image-to-image net: ``net(None, image)`` (the G(z, y) convention) or ``net(image)``."""

    def __init__(self, net: nn.Module, takes_z: bool):
        super().__init__()
        self.net, self.takes_z = net, takes_z

    def forward(self, image: Tensor) -> Tensor:
        return self.net(None, image) if self.takes_z else self.net(image)  # (B, C', H', W') -> (B, C, H, W)


def _latent_draw(latent: str, z_dim: int):
    def draw(n: int, gen: torch.Generator) -> Tensor:
        if latent == "uniform":
            return torch.rand(n, z_dim, generator=gen) * 2 - 1
        return torch.randn(n, z_dim, generator=gen)
    return draw


def _image_draw(shape: tuple):
    return lambda n, gen: torch.rand(n, *shape, generator=gen) * 2 - 1


def _plain_copy(net: nn.Module) -> nn.Module:
    """A CPU float32 eval-mode copy with parametrizations (spectral norm) baked into the weights.

    ``parametrize.remove_parametrizations`` cannot be used on a deep copy: it deletes the
    property from the ``Parametrized*`` class, which the copy shares with the original net."""
    net = copy.deepcopy(net).cpu().float().eval()
    with torch.no_grad():
        for m in list(net.modules()):
            if not parametrize.is_parametrized(m):
                continue
            values = {name: getattr(m, name).detach().clone() for name in m.parametrizations}  # eval: no power step
            del m._modules["parametrizations"]
            m.__class__ = m.__class__.__bases__[0]  # Parametrized<Layer> -> <Layer>
            for name, v in values.items():
                m.register_parameter(name, nn.Parameter(v))
    for p in net.parameters():
        p.requires_grad_(False)
    return net


# ==============================================================================================
# MODEL-KIND ADAPTER: the only code in this module that depends on the kind of model.
# It decides what the exported graph takes (z; z + label; an image; which CycleGAN direction).
# When the task layer lands, replace the body with the task's own answer (e.g.
# ``task.export_spec(g, direction)``); everything below it only sees the ExportSpec.
# A style-based G adds one more ModelInput here:
#     ModelInput("truncation", torch.float32, (), "psi in (0, 1]: 1 = no truncation",
#                lambda n, gen: torch.tensor(0.7), batched=False)
# and a wrapper that passes it on (``net(z, y, truncation=psi)``); the export, verification
# and metadata code already handle unbatched scalar inputs.
# ==============================================================================================
def export_adapter(g, direction: str | None = None) -> ExportSpec:
    """The ExportSpec of a loaded generator ``g`` (``direction`` "ab"/"ba": image-to-image only)."""
    from .model_folder import model_facts
    facts = model_facts(g)
    net = g.net
    if g.task.takes_images:
        direction = direction or "ab"
        if direction not in ("ab", "ba"):
            raise UsageError(f"direction must be 'ab' or 'ba', got {direction!r}")
        if direction == "ba" and not hasattr(net, "ba"):
            raise UsageError("only CycleGAN models translate in the 'ba' direction (--direction ba)")
        in_shape = tuple(g.input_shape(direction))
        out_shape = tuple(g.args["cond_shape"] if direction == "ba" else g.args["out_shape"])
        if hasattr(net, "ab"):  # CycleGAN: export one direction's own generator
            module = _FromImage(net.ba if direction == "ba" else net.ab, takes_z=False)
        else:
            module = _FromImage(net, takes_z=True)
        image = ModelInput("image", torch.float32, in_shape,
                           f"input images (B, {', '.join(map(str, in_shape))}) in [-1, 1]", _image_draw(in_shape))
        return ExportSpec(module, (image,), out_shape, "image-to-image", facts={**facts, "direction": direction})
    if direction is not None:
        raise UsageError("--direction is for image-to-image models; this one generates from noise")
    law = "uniform on [-1, 1]" if g.cfg.model.latent == "uniform" else "standard normal"
    z = ModelInput("z", torch.float32, (g.z_dim,), f"latent z (B, {g.z_dim}), {law}",
                   _latent_draw(g.cfg.model.latent, g.z_dim))
    out_shape = tuple(g.args["out_shape"])
    if g.conditional:
        k = g.num_classes
        label = ModelInput("label", torch.int64, (), f"class labels (B,) int64 in 0..{k - 1}",
                           lambda n, gen: torch.randint(k, (n,), generator=gen))
        return ExportSpec(_FromNoise(net), (z, label), out_shape, "conditional", facts=facts)
    output = "images" if len(g.data_shape) == 3 else "samples"  # toy data: (B, D) points
    return ExportSpec(_FromNoise(net), (z,), out_shape, "noise", output=output, facts=facts)
# ==============================================================================================


def _require_onnx():
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch's dynamo exporter needs it)
    except ImportError as e:
        raise ExportError(f"ONNX export needs onnx, onnxruntime and onnxscript ({e.name} is missing): "
                          f"{INSTALL_HINT}") from None
    return onnx, onnxruntime


def example_inputs(spec: ExportSpec, n: int, seed: int) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    return tuple(inp.draw(n, gen) for inp in spec.inputs)


def record(spec: ExportSpec, fmt: str, opset: int | None) -> dict:
    """The metadata saved in the exported file."""
    return {"format_version": 1, "ganforge": __version__, "torch": torch.__version__, "format": fmt,
            "opset": opset, "kind": spec.kind, "inputs": [i.record() for i in spec.inputs],
            "output": {"name": spec.output, "shape": ["batch", *spec.output_shape], "value_range": [-1, 1]},
            **spec.facts}


def _onnx_export(spec: ExportSpec, path: Path, opset: int) -> None:
    """torch.onnx.export with a dynamic batch dimension (the function tests replace)."""
    batch = torch.export.Dim("batch", min=1)
    args = example_inputs(spec, 2, seed=12345)
    dyn = tuple({0: batch} if i.batched else {} for i in spec.inputs)
    torch.onnx.export(spec.module, args, str(path), input_names=[i.name for i in spec.inputs],
                      output_names=[spec.output], dynamic_shapes=dyn, opset_version=opset, dynamo=True,
                      external_data=False, verbose=False)


def _torchscript_export(spec: ExportSpec, path: Path, meta: dict) -> None:
    args = example_inputs(spec, 2, seed=12345)
    traced = torch.jit.trace(spec.module, args, check_trace=False)
    torch.jit.save(traced, str(path), _extra_files={"ganforge.json": json.dumps(meta)})


def _root_cause(e: BaseException) -> str:
    while e.__cause__ is not None:
        e = e.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    return f"{type(e).__name__}: {(text.splitlines() or [''])[0][:300]}"


def _write_onnx(spec: ExportSpec, tmp: Path, opset: int) -> int:
    onnx, _ = _require_onnx()
    try:
        _onnx_export(spec, tmp, opset)
    except ExportError:
        raise
    except Exception as e:  # the exporter's errors are long: the innermost cause's first line
        raise ExportError(f"torch.onnx.export failed at opset {opset}: {_root_cause(e)}") from None
    model = onnx.load(str(tmp))
    got = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    meta = record(spec, "onnx", got)
    del model.metadata_props[:]
    for k, v in (("opset", str(got)), ("ganforge", json.dumps(meta))):
        p = model.metadata_props.add()
        p.key, p.value = k, v
    model.producer_name = f"ganforge {__version__} (torch {torch.__version__})"
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp))
    return got


def _run_exported(fmt: str, path: Path, spec: ExportSpec):
    """A function inputs -> output tensor running the exported file outside PyTorch's module."""
    if fmt == "onnx":
        _, ort = _require_onnx()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, torch.get_num_threads())
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        names = [i.name for i in spec.inputs]
        return lambda *xs: torch.from_numpy(sess.run(None, {n: x.numpy() for n, x in zip(names, xs)})[0])
    loaded = torch.jit.load(str(path), map_location="cpu")
    return lambda *xs: loaded(*xs)


@torch.no_grad()
def verify_export(fmt: str, path: Path, spec: ExportSpec, *, atol: float = ATOL,
                  batches=VERIFY_BATCHES, seed: int = 0) -> float:
    """Largest |exported - PyTorch| over seeded inputs at each batch size; ExportError beyond atol."""
    run = _run_exported(fmt, path, spec)
    param = next(spec.module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")  # the reference may sit on a GPU
    worst = 0.0
    for b in batches:
        xs = example_inputs(spec, b, seed=seed + b)
        ref = spec.module(*(x.to(device) for x in xs)).float().cpu()
        try:
            got = run(*xs)
        except Exception as e:
            raise ExportError(f"verification failed: the exported {fmt} file does not run at batch {b}: "
                              f"{_root_cause(e)[:200]}") from None
        if tuple(got.shape) != tuple(ref.shape):
            raise ExportError(f"verification failed: the exported {fmt} file gives shape {tuple(got.shape)} at "
                              f"batch {b}, PyTorch {tuple(ref.shape)}")
        diff = (got.float() - ref.float()).abs().max().item()
        if not diff <= atol:  # NaN fails too
            raise ExportError(f"verification failed: the exported {fmt} file differs from PyTorch by up to "
                              f"{diff:.3g} at batch {b} (tolerance {atol:g})")
        worst = max(worst, diff)
    return worst


def export_spec(spec: ExportSpec, out: str | Path, fmt: str = "onnx", *, opset: int = DEFAULT_OPSET,
                atol: float = ATOL) -> dict:
    """Write ``spec`` to ``out`` atomically after verification; returns what was done."""
    if fmt not in FORMATS:
        raise UsageError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name like model.{'onnx' if fmt == 'onnx' else 'pt'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    t0 = time.perf_counter()
    # the file is made from a plain copy (spectral norm baked in) and checked against the original
    baked = dataclasses.replace(spec, module=_plain_copy(spec.module))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and exporter chatter; the verification decides
            if fmt == "onnx":
                got = _write_onnx(baked, tmp, opset)
            else:
                got = None
                _torchscript_export(baked, tmp, record(baked, "torchscript", None))
            seconds = time.perf_counter() - t0
            diff = verify_export(fmt, tmp, spec, atol=atol)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the bytes are on disk before the name points at them
        finally:
            os.close(fd)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    if fmt == "onnx":
        import onnxruntime
        checker = f"onnxruntime {onnxruntime.__version__}"
    else:
        checker = f"torch.jit.load (torch {torch.__version__})"
    return {"path": str(out), "format": fmt, "opset": got, "kind": spec.kind, "bytes": out.stat().st_size,
            "seconds": seconds, "max_diff": diff, "atol": atol, "batches": list(VERIFY_BATCHES),
            "checked_with": checker, "inputs": [i.record() for i in spec.inputs],
            "output": ["batch", *spec.output_shape], "output_name": spec.output}


def export_generator(g, out: str | Path, fmt: str = "onnx", *, direction: str | None = None,
                     opset: int = DEFAULT_OPSET, atol: float = ATOL) -> dict:
    """Export a loaded generator (see the module docstring); returns a summary dict."""
    if fmt == "onnx":
        _require_onnx()  # fail before any work when the packages are missing
    return export_spec(export_adapter(g, direction), out, fmt, opset=opset, atol=atol)


def describe(result: dict) -> str:
    """One line for the command's output."""
    ins = ", ".join(f"{i['name']} ({', '.join(map(str, i['shape']))}) {i['dtype']}" for i in result["inputs"])
    fmt = f"ONNX opset {result['opset']}" if result["format"] == "onnx" else "TorchScript"
    return (f"wrote {result['path']} ({fmt}, {result['bytes'] / 1e6:.2f} MB, {result['seconds']:.1f}s): "
            f"{ins} -> {result['output_name']} ({', '.join(map(str, result['output']))}) in [-1, 1]; verified with "
            f"{result['checked_with']} at batch {' and '.join(map(str, result['batches']))}: "
            f"max |diff| {result['max_diff']:.2g} <= {result['atol']:g}")


__all__ = ["ExportError", "ExportSpec", "ModelInput", "export_adapter", "export_generator", "export_spec",
           "verify_export", "describe", "FORMATS", "DEFAULT_OPSET", "ATOL"]
