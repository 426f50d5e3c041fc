"""The command line's latent-space tools: ``ganforge project``, ``ganforge style-mix`` and
``ganforge truncation`` (added to the parser by :func:`add_commands`)."""

from __future__ import annotations

from pathlib import Path

_RUN_HELP = "run folder, model folder (ganforge save-model) or hf://user/name[@revision]"


def _weights_options(s) -> None:
    """--checkpoint and --no-ema: which weights of the run a style command reads."""
    s.add_argument("--checkpoint", help="step number or checkpoint folder (default: newest)")
    s.add_argument("--no-ema", action="store_true")


def cmd_project(args) -> int:
    from .loading import load
    from .project_files import check_projectable, project_files
    g = load(args.run_dir, args.checkpoint, ema=False if args.no_ema else None)
    check_projectable(g, args.space, args.class_)  # before loading the perceptual network
    records = project_files(g, args.images, args.out, space=args.space, steps=args.steps, lr=args.lr,
                            perceptual_weight=args.perceptual_weight, optimize_noise=args.optimize_noise,
                            labels=args.class_, seed=args.seed, progress=not args.quiet)
    for r in records:
        print(f"{r['file']}: PSNR {r['start_psnr']:.2f} -> {r['psnr']:.2f} dB, latent {r['latent']}")
    mean = sum(r["psnr"] for r in records) / len(records)
    print(f"wrote {len(records)} projections into {args.space} to {args.out}/ (mean PSNR {mean:.2f} dB, "
          f"step {g.step}{', EMA' if g.ema else ''})")
    return 0


def cmd_style_mix(args) -> int:
    from .loading import load
    from .stylemix import style_mix_grid
    from .viz import save_grid
    g = load(args.run_dir, args.checkpoint, ema=False if args.no_ema else None)
    x, split = style_mix_grid(g, rows=args.rows, cols=args.cols, seed=args.seed, split=args.split,
                              truncation=args.truncation)
    out = Path(args.out) if args.out else (Path.cwd() if str(args.run_dir).startswith("hf://") else
                                           Path(args.run_dir)) / f"style-mix-step{g.step}-seed{args.seed}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_grid(x, out, nrow=args.cols + 1)
    print(f"wrote {out} ({args.rows} x {args.cols}: layers 0-{split - 1} from the rows, {split}-{g.net.num_ws - 1} "
          f"from the columns; step {g.step}{', EMA' if g.ema else ''}, seed {args.seed})")
    return 0


def cmd_truncation(args) -> int:
    from .loading import load
    from .truncation import parse_psi_list, truncation_grid
    from .viz import save_grid
    psi = parse_psi_list(args.psi)
    g = load(args.run_dir, args.checkpoint, ema=False if args.no_ema else None)
    x = truncation_grid(g, psi=psi, rows=args.rows, seed=args.seed)
    out = Path(args.out) if args.out else (Path.cwd() if str(args.run_dir).startswith("hf://") else
                                           Path(args.run_dir)) / f"truncation-step{g.step}-seed{args.seed}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_grid(x, out, nrow=len(psi))
    print(f"wrote {out} ({args.rows} latents x psi {', '.join(f'{p:g}' for p in psi)}; step {g.step}"
          f"{', EMA' if g.ema else ''}, seed {args.seed})")
    return 0


def add_commands(sub) -> None:
    s = sub.add_parser("project", help="find latents that make a trained generator reproduce image files")
    s.add_argument("run_dir", help=_RUN_HELP)
    s.add_argument("images", nargs="+", help="image files or folders")
    s.add_argument("--out", "-o", required=True, help="output folder (per image: latent, reconstruction, strip, GIF)")
    s.add_argument("--space", choices=["z", "w", "w+"], default="z",
                   help="latent space: z (any generator), w or w+ (style-based generators); default z")
    s.add_argument("--steps", type=int, default=300, help="optimisation steps (default 300)")
    s.add_argument("--lr", type=float, default=0.1, help="Adam learning rate (default 0.1)")
    s.add_argument("--perceptual-weight", type=float, default=1.0,
                   help="weight of the feature distance beside the pixel MSE (default 1)")
    s.add_argument("--optimize-noise", action="store_true",
                   help="style-based generators: optimise the noise planes too (regularised)")
    s.add_argument("--class", dest="class_", type=int, default=None, help="class-conditional models: the images' class")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    _weights_options(s)
    s.set_defaults(func=cmd_project)

    s = sub.add_parser("style-mix", help="style-based models: a style-mixing grid (coarse styles from rows, "
                                         "fine from columns)")
    s.add_argument("run_dir", help=_RUN_HELP)
    s.add_argument("--rows", type=int, default=4, help="row sources (default 4)")
    s.add_argument("--cols", type=int, default=4, help="column sources (default 4)")
    s.add_argument("--split", type=int, default=None,
                   help="first style layer taken from the column source (default: half of the layers)")
    s.add_argument("--truncation", type=float, default=None, help="psi in w (1: none, 0: the average w)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", "-o", help="output PNG (default RUN_DIR/style-mix-stepN-seedS.png)")
    _weights_options(s)
    s.set_defaults(func=cmd_style_mix)

    s = sub.add_parser("truncation", help="style-based models: a truncation sweep (rows: latents, columns: psi "
                                          "from 1 towards the average w)")
    s.add_argument("run_dir", help=_RUN_HELP)
    s.add_argument("--psi", default="1,0.8,0.6,0.4,0.2,0",
                   help="comma-separated psi values, one column each (default 1,0.8,0.6,0.4,0.2,0)")
    s.add_argument("--rows", type=int, default=4, help="latents, one row each (default 4)")
    s.add_argument("--seed", type=int, default=0, help="seed of the latents (as in `ganforge sample`)")
    s.add_argument("--out", "-o", help="output PNG (default RUN_DIR/truncation-stepN-seedS.png)")
    _weights_options(s)
    s.set_defaults(func=cmd_truncation)


__all__ = ["add_commands", "cmd_project", "cmd_style_mix", "cmd_truncation"]
