"""The ``ganforge`` command line: thin parsing over the library.

User mistakes (bad config keys or values, missing data, a folder that is not a run) end with a
one-line ``error: ...`` and exit status 2, never a stack trace.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .rundir import output_file, output_folder


_RUN_HELP = "run folder, model folder (ganforge save-model) or hf://user/name[@revision]"
_TRUNCATION_HELP = ("truncation trick: psi in w for style-based models (1: none, 0: the average w; e.g. 0.7), "
                    "otherwise redraw latent coordinates beyond this value (e.g. 0.7)")


def _default_dir(run_dir: str) -> Path:
    """Where outputs go by default: the run (or model) folder; the current folder for hf:// models."""
    return Path.cwd() if str(run_dir).startswith("hf://") else Path(run_dir)


def cmd_presets(args) -> int:
    from .config import DEFAULT_PRESET, PRESETS, describe_sizes
    width = max(map(len, PRESETS))
    for name, (desc, _) in PRESETS.items():
        mark = " (default)" if name == DEFAULT_PRESET else ""
        print(f"{name:<{width}}  {desc}{mark}")
        print(f"{'':<{width}}    sizes: {describe_sizes(name)}")
    print("\nmodel.size=auto (the default) picks cpu unless the run trains on CUDA; set model.size=cpu or "
          "model.size=paper to choose. Keys you set yourself win over either size.")
    return 0


def _registries() -> dict:
    """What `ganforge list` shows: every registry a user picks names from."""
    from . import augment, losses, nets, optim, regularizers
    from .data import DATASETS
    from .evaluation import METRICS
    from .features import FEATURES
    from .objectives import TERMS
    from .tasks import TASKS
    return {"losses": losses.LOSSES, "penalties": regularizers.REGULARIZERS, "terms": TERMS, "nets": nets.NETS,
            "inits": nets.INITS, "optimizers": optim.OPTIMIZERS, "datasets": DATASETS, "metrics": METRICS,
            "features": FEATURES, "tasks": TASKS, "augmentations": augment.AUGMENTATIONS}


LISTS = ("losses", "penalties", "terms", "nets", "inits", "optimizers", "datasets", "metrics", "features", "tasks",
         "augmentations")


def cmd_list(args) -> int:
    from .data import DATASETS
    for title, reg in _registries().items():
        if args.what in (None, title):
            print(f"{title}:")
            for k in reg.keys():
                shown = DATASETS.get(k).shown(k) if reg is DATASETS else k
                print(f"  {shown:<16} {reg.help(k)}")
    return 0


def _resolve(args):
    from .config import resolve
    cfg = resolve(args.preset, args.config, args.set or [])  # types and ranges: no torch needed yet
    from .validation import validate
    return validate(cfg)


def cmd_train(args) -> int:
    if args.resume:
        if args.preset or args.config:
            print("error: --resume continues a run with its own config; use --set to change steps",
                  file=sys.stderr)
            return 2
        from .session import resume
        resume(args.resume, args.set or [])
        return 0
    cfg = _resolve(args)  # a config mistake is reported before the training machinery is imported
    if args.dry_run:
        print(cfg.to_yaml(), end="")
        return 0
    from .session import train
    train(cfg)
    return 0


def cmd_sample(args) -> int:
    import torch

    from .errors import UsageError
    from .loading import load
    from .viz import save_grid
    g = load(args.run_dir, args.checkpoint, ema=False if args.no_ema else None)
    if args.class_ is not None and not g.conditional:
        raise UsageError("--class needs a class-conditional model (the run had model.conditional=false)")
    nrow = args.nrow
    if g.conditional and args.class_ is None and not args.separate:
        # a class-by-sample grid: one row per class, n // classes samples in each
        per = max(1, args.n // g.num_classes)
        labels = torch.arange(g.num_classes).repeat_interleave(per)
        x = g.sample(len(labels), seed=args.seed, labels=labels, truncation=args.truncation)
        nrow = nrow or per
    else:
        x = g.sample(args.n, seed=args.seed, labels=args.class_, truncation=args.truncation)
    tag = (f"-class{args.class_}" if args.class_ is not None else "") + \
        (f"-trunc{args.truncation:g}" if args.truncation is not None else "")
    out = Path(args.out) if args.out else _default_dir(args.run_dir) / f"sample-step{g.step}-seed{args.seed}{tag}.png"
    if args.separate:
        if x.dim() != 4:
            print("error: --separate needs an image model", file=sys.stderr)
            return 2
        from .imagefiles import write_image
        output_folder(out, "ganforge sample --separate")
        for i, img in enumerate(x):
            write_image(img, out / f"{i:05d}.png")
        print(f"wrote {len(x)} images to {out}/ (step {g.step}{', EMA' if g.ema else ''})")
        return 0
    output_file(out, "ganforge sample")
    if x.dim() == 4:
        save_grid(x, out, nrow=nrow)
    else:
        g.task.save_samples(x, out)
    print(f"wrote {out} ({len(x)} samples, step {g.step}{', EMA' if g.ema else ''}, seed {args.seed})")
    return 0


def cmd_interpolate(args) -> int:
    from .errors import UsageError
    from .interpolate import interpolation_frames, save_strip_and_gif
    from .loading import load
    g = load(args.run_dir, args.checkpoint, ema=False if args.no_ema else None)
    g.task.require("interpolate")
    classes = None
    if args.classes:
        try:
            classes = tuple(int(c) for c in args.classes.split(","))
        except ValueError:
            classes = ()
        if len(classes) != 2:
            raise UsageError(f"--classes takes two class numbers like 3,7, got {args.classes!r}")
    frames = interpolation_frames(g, steps=args.steps, rows=args.rows, seed=args.seed, mode=args.mode,
                                  classes=classes, truncation=args.truncation)
    stem = Path(args.out) if args.out else _default_dir(args.run_dir) / (
        f"interp-step{g.step}-seed{args.seed}-{args.mode}" + (f"-classes{classes[0]}-{classes[1]}" if classes else ""))
    output_folder(stem.parent, "ganforge interpolate")
    png, gif = stem.with_suffix(".png"), stem.with_suffix(".gif")
    save_strip_and_gif(frames, png, gif)
    print(f"wrote {png} and {gif} ({args.rows} walks x {args.steps} steps, {args.mode}, step {g.step})")
    return 0


def _translate(args, expect: str) -> int:
    from .errors import UsageError
    from .imagefiles import describe_skipped, translate_files
    from .tasks.translate import PairedTask
    from .loading import load
    g = load(args.run_dir, args.checkpoint, ema=False if args.no_ema else None)
    g.task.require("translate")
    if expect == "upscale" and not (isinstance(g.task, PairedTask) and g.task.is_upscaler(g.args)):
        raise UsageError(f"{args.run_dir} is not a super-resolution model; use `ganforge translate`")
    out = output_folder(args.out, f"ganforge {expect}")
    done = translate_files(g, args.inputs, out, direction=getattr(args, "direction", "ab"),
                           side_by_side=args.side_by_side)
    for line in describe_skipped(done.skipped):
        print(f"warning: {line}" if not line.startswith(" ") else line, file=sys.stderr)
    print(f"wrote {len(done.written)} images to {out}/ (step {g.step}{', EMA' if g.ema else ''})")
    return 0


def cmd_translate(args) -> int:
    return _translate(args, "translate")


def cmd_upscale(args) -> int:
    return _translate(args, "upscale")


def cmd_classify(args) -> int:
    import csv

    import torch

    from .imagefiles import input_files, read_image
    from .loading import load
    g = load(args.run_dir, args.checkpoint, ema=False if args.no_ema else None)
    g.task.require("classify")
    files = input_files(args.inputs)
    logits = torch.cat([g.task.classify(g, torch.stack([read_image(p, g.data_shape) for p in files[i:i + 64]]))[0]
                        for i in range(0, len(files), 64)])
    probs = logits.softmax(1)
    names = g.task.class_names(g.cfg)
    rows = [(str(p), int(k), names[int(k)] if int(k) < len(names) else str(int(k)), float(probs[i, k]))
            for i, (p, k) in enumerate(zip(files, probs.argmax(1)))]
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "class", "name", "probability"])
            w.writerows((p, k, n, f"{q:.6f}") for p, k, n, q in rows)
        print(f"wrote {out} ({len(rows)} images, step {g.step})")
    else:
        for p, k, n, q in rows:
            print(f"{p}\t{k}\t{n}\t{q:.4f}")
    return 0


def cmd_synthesize(args) -> int:
    from .data import dataset
    from .synthesize import synthesize
    from .loading import load
    g = load(args.run_dir, args.checkpoint, ema=False if args.no_ema else None)
    g.task.require("synthesize")
    names = list(dataset(g.cfg.data.name).classes) or None
    counts = synthesize(g, args.per_class, args.out, seed=args.seed, truncation=args.truncation, class_names=names)
    print(f"wrote {sum(counts.values())} images in {len(counts)} class folders to {args.out}/ (step {g.step})")
    return 0


def cmd_data(args) -> int:
    from .config import resolve
    from .data import build_dataset, validate_config
    cfg = resolve(overrides=[f"data.name={args.name}"] + [f"data.root={args.root}"] * bool(args.root)
                  + [o if o.startswith("data.") else f"data.{o}" for o in args.set or ()])
    validate_config(cfg)
    src = build_dataset(cfg)
    print(f"{args.name}: {src.description} (root {cfg.data_root})")
    return 0


def cmd_eval(args) -> int:
    from .atomic import write_json_atomic
    from .evaluation import evaluate_run, format_table
    # checked first: a read-only run folder fails now, not after the evaluation's minutes
    if args.out:
        output_file(args.out, "ganforge eval --out")
    else:
        output_folder(_default_dir(args.run_dir),
                      "ganforge eval (it writes its JSON into the run folder; or give --out)")
    out = evaluate_run(args.run_dir, checkpoint=args.checkpoint, ema=False if args.no_ema else None,
                       metrics=args.metrics, features=args.features, n=args.n, ref=args.ref,
                       seed=args.seed, device=args.device)
    p = out["provenance"]
    against = (f" vs {p['reference']} ({p['reference_n']} images)" if p.get("reference_n") else "")
    feats = (f", features {p['extractor']} sha256 {p['extractor_sha256'][:12]}"
             if p.get("extractor") not in (None, "", "-") else "")
    print(f"{p['run']} step {p['step']}{' (EMA)' if p['ema'] else ''}: {p['n']} samples{against}{feats}, "
          f"seed {p['seed']}")
    print(format_table(out["results"]))
    dest = Path(args.out) if args.out else _default_dir(args.run_dir) / f"eval-step{p['step']}.json"
    write_json_atomic(dest, out)
    print(f"wrote {dest}")
    return 0


def cmd_export(args) -> int:
    from .errors import UsageError
    from .loading import load
    from .export import DEFAULT_OPSET, describe, export_generator
    fmt = args.format
    if fmt is None:
        suffix = Path(args.out).suffix.lower()
        fmt = "onnx" if suffix == ".onnx" else "torchscript" if suffix in (".pt", ".ts", ".torchscript") else None
        if fmt is None:
            raise UsageError(f"cannot tell the format from {args.out!r}: give --format onnx or --format torchscript")
    if fmt == "torchscript" and args.opset is not None:
        raise UsageError("--opset is for ONNX exports")
    output_folder(Path(args.out).parent, "ganforge export")
    g = load(args.run_dir, args.checkpoint, ema=False if args.no_ema else None)
    result = export_generator(g, args.out, fmt, direction=args.direction, opset=args.opset or DEFAULT_OPSET,
                              atol=args.atol)
    print(describe(result) + f" (step {g.step}{', EMA' if g.ema else ''})")
    return 0


def cmd_save_model(args) -> int:
    from .model_folder import save_model_folder
    output_folder(Path(args.out).parent, "ganforge save-model")
    out = save_model_folder(args.run_dir, args.out, checkpoint=args.checkpoint, ema=False if args.no_ema else None,
                            license=args.license, seed=args.seed)
    print(f"wrote model folder {out}/ (model.safetensors, config.yaml, model.json, README.md"
          f"{', sample.png' if (out / 'sample.png').is_file() else ''})")
    return 0


def cmd_push(args) -> int:
    from .model_folder import push
    url = push(args.folder, args.repo_id, private=args.private, revision=args.revision)
    print(f"pushed {args.folder} to {args.repo_id}: {url}")
    return 0


def cmd_studio(args) -> int:
    try:
        from .studio import serve
    except ImportError as e:
        from .errors import UsageError
        raise UsageError(f"ganforge studio needs its extra: pip install 'ganforge[studio]' ({e})") from None
    from .studio.runs import StudioError
    try:
        serve(args.runs_dir, host=args.host, port=args.port, stale_after=args.stale_after)
    except StudioError as e:  # e.g. the port is taken
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    p = argparse.ArgumentParser(prog="ganforge", description="Train, sample and evaluate GANs.")
    p.add_argument("--version", action="version", version=f"ganforge {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("presets", help="list the named presets")
    s.set_defaults(func=cmd_presets)

    s = sub.add_parser("list", help="list what is registered: " + ", ".join(LISTS))
    s.add_argument("what", nargs="?", choices=LISTS)
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("train", help="train a GAN (a preset, a YAML file, and --set overrides)")
    s.add_argument("preset", nargs="?", help="preset name (see `ganforge presets`); default dcgan")
    s.add_argument("--config", "-c", help="YAML config file")
    s.add_argument("--set", "-s", action="append", metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr_d=1e-4 (repeatable)")
    s.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    s.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its newest good checkpoint")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="generate samples from a trained run")
    s.add_argument("run_dir", help=_RUN_HELP)
    s.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", "-o", help="output PNG (or folder with --separate)")
    s.add_argument("--checkpoint", help="step number or checkpoint folder (default: newest)")
    s.add_argument("--nrow", type=int, default=None, help="images per grid row")
    s.add_argument("--separate", action="store_true", help="write one PNG per sample into --out")
    s.add_argument("--no-ema", action="store_true", help="use G's raw weights even if EMA was kept")
    s.add_argument("--class", dest="class_", type=int, default=None,
                   help="class-conditional models: only this class (default: a class-by-sample grid)")
    s.add_argument("--truncation", type=float, default=None, help=_TRUNCATION_HELP)
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("interpolate", help="latent (or class) interpolation: a PNG strip and an animated GIF")
    s.add_argument("run_dir", help=_RUN_HELP)
    s.add_argument("--steps", type=int, default=8, help="images per walk (default 8)")
    s.add_argument("--rows", type=int, default=4, help="number of walks (default 4)")
    s.add_argument("--mode", choices=["slerp", "lerp"], default="slerp")
    s.add_argument("--classes", default=None, help="conditional models: walk between two classes, e.g. 3,7")
    s.add_argument("--truncation", type=float, default=None, help=_TRUNCATION_HELP)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", "-o", help="output path without suffix (default RUN_DIR/interp-...)")
    s.add_argument("--checkpoint", help="step number or checkpoint folder (default: newest)")
    s.add_argument("--no-ema", action="store_true")
    s.set_defaults(func=cmd_interpolate)

    from .cli_style import add_commands
    add_commands(sub)  # project, style-mix, truncation

    for name, helptext, func in (("translate", "image-to-image: run a pix2pix / CycleGAN model on image files",
                                  cmd_translate),
                                 ("upscale", "super-resolution: upscale image files with an SR model", cmd_upscale)):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("run_dir", help=_RUN_HELP)
        s.add_argument("inputs", nargs="+", help="image files or folders")
        s.add_argument("--out", "-o", required=True,
                       help="output folder: outputs keep their paths relative to the input folder (or to the "
                            "inputs' common folder), as PNG: x.png -> x.png, x.jpg -> x.jpg.png")
        if name == "translate":
            s.add_argument("--direction", default="ab", help="CycleGAN: ab (A->B, default) or ba (B->A)")
            s.add_argument("--to", dest="direction", help="multi-domain (StarGAN) models: the target domain, by "
                                                          "name or index (attributes: a,b)")
        s.add_argument("--side-by-side", action="store_true", help="write input | output pairs")
        s.add_argument("--checkpoint", help="step number or checkpoint folder (default: newest)")
        s.add_argument("--no-ema", action="store_true")
        s.set_defaults(func=func)

    s = sub.add_parser("classify", help="semi-supervised models: predict the classes of image files with D")
    s.add_argument("run_dir", help="run folder (D is read from its checkpoint)")
    s.add_argument("inputs", nargs="+", help="image files or folders")
    s.add_argument("--out", "-o", default=None, help="write a CSV (file, class, name, probability) instead of printing")
    s.add_argument("--checkpoint", help="step number or checkpoint folder (default: newest)")
    s.add_argument("--no-ema", action="store_true")
    s.set_defaults(func=cmd_classify)

    s = sub.add_parser("synthesize", help="a labelled synthetic dataset (ImageFolder layout) from a conditional model")
    s.add_argument("run_dir", help=_RUN_HELP)
    s.add_argument("--per-class", type=int, required=True, help="images per class")
    s.add_argument("--out", "-o", required=True, help="output folder: OUT/<class>/NNNNN.png")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--truncation", type=float, default=None)
    s.add_argument("--checkpoint", help="step number or checkpoint folder (default: newest)")
    s.add_argument("--no-ema", action="store_true")
    s.set_defaults(func=cmd_synthesize)

    s = sub.add_parser("eval", help="evaluate a run: FID, KID, precision/recall, density/coverage, IS")
    s.add_argument("run_dir", help=_RUN_HELP)
    s.add_argument("--metrics", default=None,
                   help="comma-separated metric names (`ganforge list metrics`); default: what fits the model's task")
    s.add_argument("--features", default="fmnist", help="feature extractor (default fmnist)")
    s.add_argument("--n", type=int, default=10000, help="generated samples (default 10000)")
    s.add_argument("--ref", default=None, help="reference dataset:split[@C,C...] (e.g. fashion-mnist:test@5,7: classes 5 and 7 only; "
                        "default: the run's dataset, test split, its data.classes)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--checkpoint", help="step number or checkpoint folder (default: newest)")
    s.add_argument("--no-ema", action="store_true")
    s.add_argument("--device", default="cpu")
    s.add_argument("--out", help="JSON output (default RUN_DIR/eval-stepN.json)")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("export", help="export a run's generator to ONNX or TorchScript (verified against PyTorch)")
    s.add_argument("run_dir", help=_RUN_HELP)
    s.add_argument("--format", choices=["onnx", "torchscript"], default=None,
                   help="default: from --out (.onnx -> onnx, .pt/.ts -> torchscript)")
    s.add_argument("--out", "-o", required=True, help="output file")
    s.add_argument("--direction", choices=["ab", "ba"], default=None, help="CycleGAN: A->B (default) or B->A")
    s.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    s.add_argument("--atol", type=float, default=1e-4, help="verification tolerance (default 1e-4)")
    s.add_argument("--checkpoint", help="step number or checkpoint folder (default: newest)")
    s.add_argument("--no-ema", action="store_true", help="export G's raw weights even if EMA was kept")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("save-model", help="write a self-describing model folder (weights, config, card, sample)")
    s.add_argument("run_dir")
    s.add_argument("--out", "-o", required=True, help="a new folder")
    s.add_argument("--license", default="other", help="license of the weights for the model card (default other)")
    s.add_argument("--seed", type=int, default=0, help="seed of the card's sample picture")
    s.add_argument("--checkpoint", help="step number or checkpoint folder (default: newest)")
    s.add_argument("--no-ema", action="store_true", help="save G's raw weights even if EMA was kept")
    s.set_defaults(func=cmd_save_model)

    s = sub.add_parser("push", help="upload a model folder to the Hugging Face Hub (needs ganforge[hub])")
    s.add_argument("folder")
    s.add_argument("repo_id", help="user/name")
    s.add_argument("--private", action="store_true")
    s.add_argument("--revision", default=None, help="branch to push to (default main)")
    s.set_defaults(func=cmd_push)

    s = sub.add_parser("data", help="prepare a dataset (offline where possible) and describe it")
    s.add_argument("name", help="dataset name or folder:PATH")
    s.add_argument("--root", help="data root (default $GANFORGE_DATA or ~/.cache/ganforge/data)")
    s.add_argument("--set", "-s", action="append", metavar="KEY=VALUE",
                   help="a data.* setting, e.g. --set image_size=64 --set cache=on (builds a folder's cache now)")
    s.set_defaults(func=cmd_data)

    s = sub.add_parser("studio", help="a local web page: watch and compare runs, try trained generators, start/stop training")
    s.add_argument("runs_dir", nargs="?", default="runs", help="folder holding run folders (default runs)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=0, help="port (default 0: a free one, printed at start)")
    s.add_argument("--stale-after", type=float, default=180.0,
                   help="seconds without writes after which a run without result.json counts as stopped")
    s.set_defaults(func=cmd_studio)

    return p


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def _missing_folder(args) -> str | None:
    """The run or model folder named on the command line, when it does not exist (hf:// models are
    fetched later)."""
    for name in ("run_dir", "resume"):
        folder = getattr(args, name, None)
        if folder and not str(folder).startswith("hf://") and not Path(folder).exists():
            return f"run folder not found: {folder}"
    return None


def main(argv: list[str] | None = None) -> int:
    import warnings
    warnings.formatwarning = _one_line_warning  # a user sees "warning: ...", not source lines
    from .errors import UserError
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    if getattr(args, "n", 1) is not None and getattr(args, "n", 1) < 1:
        print("error: --n must be at least 1", file=sys.stderr)
        return 2
    missing = _missing_folder(args)
    if missing:  # before the commands import torch: a mistyped path is answered at once
        print(f"error: {missing}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # training wrote its final checkpoint first (TrainingInterrupted)
        print(str(e) or "interrupted", file=sys.stderr)
        return 130
