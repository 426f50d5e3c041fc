"""Training speed: useful FLOP/s against a ceiling measured in the same run on the same
convolution shapes, and ganforge's overhead against a minimal hand-written PyTorch loop.

    python -m benchmarks.speed --threads 1

Cases are ``PRESET`` or ``PRESET@SIZE`` (``data.image_size=SIZE``), on fashion-mnist, batch 64.

(a) Useful FLOPs. One ganforge training iteration (n_critic D steps + one G step) is run under a
dispatch mode that records every convolution (forward and ``convolution_backward``) and matrix
product that torch actually executes, with its arguments. Each op's FLOPs are counted
analytically: 2 x (multiply-adds of the taps that hit real input), i.e. a convolution's taps on
zero padding are not charged, and a transposed convolution is charged only for the input
contributions that land inside its (cropped) output -- the FLOPs of the forward convolution it is
the gradient of. A backward op is charged once per gradient it computes (input, weight; bias
gradients, normalisations, activations, losses and optimizers are not counted). Backward ops are
thus counted explicitly as executed, not as "3 x forward": the D phase computes no input gradient
for its first layer, the G phase no weight gradients for the frozen D, and the gradient penalty's
double backward is counted op by op. Ops that torch runs on an all-zero operand (the gradient
penalty's double backward sends zeros through the LeakyReLU derivatives) are executed work but
not useful work: they are listed separately and kept out of the useful count. The torch FLOP
counter convention (every tap, padding included) is printed beside it for comparison.

The ceiling: every recorded useful op is replayed alone on random tensors of the same shapes,
with the same arguments, at this process's thread count, and timed (best of several timings of
>= 30 ms of CPU each). The ceiling time of an iteration is the sum of those isolated times; the
ceiling rate is useful FLOPs / ceiling time, and % of ceiling = ceiling time / measured time per
iteration. It cannot exceed 100 % unless the isolated ops run slower than the same ops inside the
iteration.

(b) Overhead. ganforge's ``train_step`` against :class:`HandLoop`: the same G and D modules
(built by ganforge's net factories with the same seed, hence the same init), the same batch, the
same in-memory uint8 images converted per batch the same way, the same loss maths written out,
the same optimizers (Adam, same hyperparameters). Blocks of steps alternate between the two
(ABBA order) in one process, timed in process CPU seconds; ratio = ganforge steps/s / hand steps/s
per pair of blocks; median, min and max over the pairs.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from .common import Reporter, build_state, cli, finish, header, make_parser, optimizer_kernel, resolve, train_step

aten = torch.ops.aten
CONV = {aten.convolution.default, aten._convolution.default}
CONV_BACKWARD = aten.convolution_backward.default
MATMUL = {aten.mm.default, aten.addmm.default, aten.bmm.default}


# -- counting ----------------------------------------------------------------------------------

def taps_1d(n_in: int, n_out: int, k: int, s: int, p: int, d: int) -> int:
    """Pairs (output position o, tap j) of a 1-D convolution from ``n_in`` to ``n_out`` positions
    whose input position o*s - p + j*d lies inside [0, n_in): the taps that hit real input."""
    return sum(1 for o in range(n_out) for j in range(k) if 0 <= o * s - p + j * d < n_in)


def conv_flops(x_shape, w_shape, y_shape, stride, padding, dilation, transposed) -> tuple[int, int]:
    """(useful, all-taps) FLOPs of one convolution from ``x_shape`` to ``y_shape`` (N, C, *spatial).

    A transposed convolution is the input gradient of the convolution from its output to its
    input, so its useful taps are that convolution's. weight is (Cout, Cin/g, *k) for a
    convolution and (Cin, Cout/g, *k) for a transposed one: either way one tap is one
    multiply-add per batch row and weight.shape[0] * weight.shape[1] channel pairs."""
    B, ks = x_shape[0], w_shape[2:]
    useful = all_taps = 2 * B * w_shape[0] * w_shape[1]
    src, dst = (y_shape[2:], x_shape[2:]) if transposed else (x_shape[2:], y_shape[2:])
    for i, k in enumerate(ks):
        useful *= taps_1d(src[i], dst[i], k, stride[i], padding[i], dilation[i])
        all_taps *= k * dst[i]  # the counter's convention: every tap of every output position
    return useful, all_taps


class OpLog(TorchDispatchMode):
    """Records every convolution (forward, backward) and matrix product torch executes."""

    def __init__(self):
        super().__init__()
        self.ops: list[dict] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in CONV:
            x, w, b, stride, padding, dilation, transposed, out_pad, groups = args[:9]
            useful, all_taps = conv_flops(x.shape, w.shape, out.shape, stride, padding, dilation, transposed)
            self.ops.append({"kind": "conv", "x": tuple(x.shape), "w": tuple(w.shape), "bias": b is not None,
                             "args": (list(stride), list(padding), list(dilation), bool(transposed),
                                      list(out_pad), int(groups)),
                             "useful": useful, "all": all_taps, "zero": _zero(x) or _zero(w)})
        elif func is CONV_BACKWARD:
            gy, x, w, bias_sizes, stride, padding, dilation, transposed, out_pad, groups, mask = args[:11]
            useful, all_taps = conv_flops(x.shape, w.shape, gy.shape, stride, padding, dilation, transposed)
            n = int(mask[0]) + int(mask[1])  # input and weight gradients (the bias gradient is a sum)
            self.ops.append({"kind": "conv_backward", "x": tuple(x.shape), "w": tuple(w.shape),
                             "gy": tuple(gy.shape), "bias_sizes": bias_sizes,
                             "args": (list(stride), list(padding), list(dilation), bool(transposed),
                                      list(out_pad), int(groups), list(mask)),
                             "useful": n * useful, "all": n * all_taps, "zero": _zero(gy)})
        elif func in MATMUL:
            a, b = (args[1], args[2]) if func is aten.addmm.default else (args[0], args[1])
            flops = 2 * a.numel() * b.shape[-1]
            self.ops.append({"kind": func.__name__.split(".")[0], "a": tuple(a.shape), "b": tuple(b.shape),
                             "useful": flops, "all": flops, "zero": _zero(a) or _zero(b)})
        return out


def _zero(t) -> bool:
    return bool(t.numel() > 0 and not t.any())


def record(step) -> list[dict]:
    """The ops of one call of ``step()``."""
    with OpLog() as log:
        step()
    return log.ops


def op_key(op: dict) -> tuple:
    return tuple((k, str(v)) for k, v in sorted(op.items()) if k not in ("useful", "all", "zero"))


def op_runner(op: dict):
    """A function that runs ``op`` alone on random tensors of its shapes with its arguments."""
    if op["kind"] == "conv":
        stride, padding, dilation, transposed, out_pad, groups = op["args"]
        x, w = torch.randn(op["x"]), torch.randn(op["w"])
        b = torch.randn(op["w"][1] * groups if transposed else op["w"][0]) if op["bias"] else None
        return lambda: aten.convolution(x, w, b, stride, padding, dilation, transposed, out_pad, groups)
    if op["kind"] == "conv_backward":
        stride, padding, dilation, transposed, out_pad, groups, mask = op["args"]
        gy, x, w = torch.randn(op["gy"]), torch.randn(op["x"]), torch.randn(op["w"])
        return lambda: aten.convolution_backward(gy, x, w, op["bias_sizes"], stride, padding, dilation, transposed,
                                                 out_pad, groups, mask)
    a, b = torch.randn(op["a"]), torch.randn(op["b"])
    return (lambda: torch.bmm(a, b)) if op["kind"] == "bmm" else (lambda: a @ b)


def cpu_time_of(fn, reps: int = 5, min_s: float = 0.03) -> float:
    """Best CPU seconds per call of ``fn`` over ``reps`` timings of >= ``min_s`` CPU seconds each."""
    fn()
    t0 = time.process_time()
    fn()
    inner = max(1, int(min_s / max(time.process_time() - t0, 1e-6)))
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        for _ in range(inner):
            fn()
        best = min(best, (time.process_time() - t0) / inner)
    return best


def ceiling(ops: list[dict]) -> dict:
    """Useful and all-tap FLOPs of the recorded ops, FLOPs on all-zero operands, and the CPU time
    of the useful ops each run alone (each distinct op timed once, times its count)."""
    useful = [op for op in ops if not op["zero"]]
    counts: dict[tuple, list] = {}
    for op in useful:
        counts.setdefault(op_key(op), [op, 0])[1] += 1
    t = sum(n * cpu_time_of(op_runner(op)) for op, n in counts.values())
    return {"useful": sum(op["useful"] for op in useful), "all": sum(op["all"] for op in ops),
            "zero": sum(op["useful"] for op in ops if op["zero"]), "ops": len(ops), "distinct": len(counts),
            "ceiling_s": t}


# -- the hand-written loop ---------------------------------------------------------------------

class HandLoop:
    """The minimal PyTorch GAN loop for the non-saturating (DCGAN) and Wasserstein + gradient
    penalty (WGAN-GP) presets: no statistics, no schedulers, no hooks, written as a user would."""

    def __init__(self, cfg, G, D, images: torch.Tensor, seed: int = 0):
        c, o = cfg, cfg.optim
        if o.name != "adam" or c.train.ema or c.loss.terms or c.loss.clip or c.loss.smooth or \
                c.augment.policy or c.model.conditional or set(c.loss.penalties) - {"gp"} or c.loss.penalty_every != 1:
            raise ValueError("the hand-written loop covers unconditional Adam presets with the ns or "
                             "wasserstein loss and at most a gradient penalty, without extras")
        self.G, self.D, self.images = G, D, images
        # torch's fused Adam kernel where the framework uses it too: the same update work on both sides
        pg, pd = list(G.parameters()), list(D.parameters())
        self.opt_g = torch.optim.Adam(pg, lr=o.lr_g, betas=tuple(o.betas), weight_decay=o.weight_decay,
                                      **optimizer_kernel(pg, fused=True))
        self.opt_d = torch.optim.Adam(pd, lr=o.lr_d, betas=tuple(o.betas), weight_decay=o.weight_decay,
                                      **optimizer_kernel(pd, fused=True))
        self.B, self.n_critic, self.z_dim = c.train.batch_size, c.train.n_critic, c.model.z_dim
        self.wasserstein, self.gp = c.loss.name == "wasserstein", float(c.loss.penalties.get("gp", 0.0))
        self.gen = torch.Generator().manual_seed(seed)
        self.perm, self.pos = torch.randperm(len(images), generator=self.gen), 0

    def real(self) -> torch.Tensor:
        if self.pos + self.B > len(self.perm):
            self.perm, self.pos = torch.randperm(len(self.images), generator=self.gen), 0
        idx = self.perm[self.pos:self.pos + self.B]
        self.pos += self.B
        return self.images[idx].float().div_(127.5).sub_(1.0)  # (B, C, H, W) in [-1, 1]

    def z(self) -> torch.Tensor:
        return torch.randn(self.B, self.z_dim, generator=self.gen)

    def d_loss(self, real_out, fake_out):
        if self.wasserstein:
            return fake_out.mean() - real_out.mean()
        return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()

    def g_loss(self, fake_out):
        return -fake_out.mean() if self.wasserstein else F.softplus(-fake_out).mean()

    def step(self) -> None:
        G, D = self.G, self.D
        D.requires_grad_(True)
        for _ in range(self.n_critic):
            x = self.real()
            with torch.set_grad_enabled(self.n_critic == 1):  # DCGAN reuses this batch for G
                fake = G(self.z())
            loss = self.d_loss(D(x), D(fake.detach()))
            if self.gp:
                alpha = torch.rand(self.B, 1, 1, 1, generator=self.gen)
                x_hat = (alpha * x + (1 - alpha) * fake.detach()).requires_grad_(True)
                (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
                loss = loss + self.gp * (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
            self.opt_d.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_d.step()
        D.requires_grad_(False)
        if self.n_critic > 1:
            fake = G(self.z())
        loss = self.g_loss(D(fake))
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()


# -- the benchmark -------------------------------------------------------------------------------

def parse_case(case: str) -> tuple[str, list[str]]:
    preset, _, size = case.partition("@")
    return preset, ([f"data.image_size={int(size)}"] if size else [])


def block(step, n: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per step over ``n`` steps."""
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        step()
    return (time.process_time() - c0) / n, (time.perf_counter() - w0) / n


def speed_case(case: str, batch: int, data: str, repeats: int, block_s: float, seed: int = 0) -> dict:
    preset, extra = parse_case(case)
    # fp32 unless the case says otherwise: the hand-written loop below has no autocast
    cfg = resolve(preset, overrides=[f"data.name={data}", f"train.batch_size={batch}", "train.progress=false",
                                     f"seed={seed}", "train.amp=off", "train.channels_last=off", *extra])
    ours = build_state(cfg)
    twin = build_state(cfg)  # the same nets, same init (same seed)
    hand = HandLoop(cfg, twin.G, twin.D, ours.data.data, seed=seed)
    rep, log_every = Reporter(), cfg.train.log_every

    def ganforge_step():
        train_step(ours, rep)
        if ours.step % log_every == 0:  # read the statistics as the loop does at log steps
            rep.flush()

    for _ in range(3):  # warm-up
        ganforge_step()
        hand.step()
    ops = record(ganforge_step)
    hand_ops = record(hand.step)
    same_math = (sorted(map(op_key, ops)) == sorted(map(op_key, hand_ops)))
    est = block(ganforge_step, 1)[0]
    n = max(2, round(block_s / est))
    pairs = []
    for r in range(repeats):  # ABBA: ganforge first on even repeats, the hand loop first on odd ones
        order = ("ours", "hand") if r % 2 == 0 else ("hand", "ours")
        t = {who: block(ganforge_step if who == "ours" else hand.step, n) for who in order}
        pairs.append(t)
    ratios = [p["hand"][0] / p["ours"][0] for p in pairs]  # (steps/s ours) / (steps/s hand)
    wall_ratios = [p["hand"][1] / p["ours"][1] for p in pairs]
    t_ours = statistics.median(p["ours"][0] for p in pairs)
    t_hand = statistics.median(p["hand"][0] for p in pairs)
    c = ceiling(ops)
    row = {"case": case, "preset": preset, "size": cfg.data.image_size or ours.data.shape[-1], "batch": batch,
           "n_critic": cfg.train.n_critic, "threads": torch.get_num_threads(), "steps_per_block": n,
           "repeats": repeats, "cpu_s_ours": t_ours, "cpu_s_hand": t_hand,
           "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
           "wall_ratio_median": statistics.median(wall_ratios), "ratios": ratios,
           "same_ops_as_hand": same_math, "gflop_useful": c["useful"] / 1e9, "gflop_all_taps": c["all"] / 1e9,
           "gflop_on_zeros": c["zero"] / 1e9, "ops": c["ops"], "distinct_ops": c["distinct"],
           "ceiling_s": c["ceiling_s"], "ceiling_gflop_s": c["useful"] / c["ceiling_s"] / 1e9,
           "gflop_s_ours": c["useful"] / t_ours / 1e9, "gflop_s_hand": c["useful"] / t_hand / 1e9,
           "pct_ceiling_ours": 100 * c["ceiling_s"] / t_ours, "pct_ceiling_hand": 100 * c["ceiling_s"] / t_hand}
    print(f"{case:10s} ganforge {t_ours * 1e3:7.1f} ms CPU/iteration, hand loop {t_hand * 1e3:7.1f} ms; ratio "
          f"{row['ratio_median']:.3f} (min {row['ratio_min']:.3f}, max {row['ratio_max']:.3f}, {repeats} pairs of "
          f"{n} steps; wall-clock ratio {row['wall_ratio_median']:.3f}); useful {row['gflop_useful']:.3f} GFLOP/it "
          f"(all taps {row['gflop_all_taps']:.3f}, on zeros {row['gflop_on_zeros']:.3f}; {c['ops']} ops, "
          f"{c['distinct']} distinct; same ops as the hand loop: {same_math}); {row['gflop_s_ours']:.1f} GFLOP/s "
          f"= {row['pct_ceiling_ours']:.1f} % of the {row['ceiling_gflop_s']:.1f} GFLOP/s ceiling "
          f"(ops alone: {c['ceiling_s'] * 1e3:.1f} ms); hand loop {row['pct_ceiling_hand']:.1f} %", flush=True)
    return row


def speed_table(rows) -> str:
    lines = ["| case | batch | n_critic | threads | ganforge ms CPU / iteration | hand loop ms | ratio ganforge / hand "
             "(median, min–max) | useful GFLOP / iteration | all-taps GFLOP (torch counter convention) | "
             "useful GFLOP/s | ceiling GFLOP/s (same ops alone) | % of ceiling (hand loop) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['batch']} | {r['n_critic']} | {r['threads']} | {r['cpu_s_ours'] * 1e3:.1f} | "
                     f"{r['cpu_s_hand'] * 1e3:.1f} | {r['ratio_median']:.3f} ({r['ratio_min']:.3f}–{r['ratio_max']:.3f}) | "
                     f"{r['gflop_useful']:.3f} | {r['gflop_all_taps']:.3f} | {r['gflop_s_ours']:.1f} | "
                     f"{r['ceiling_gflop_s']:.1f} | {r['pct_ceiling_ours']:.1f} % ({r['pct_ceiling_hand']:.1f} %) |")
    return "\n".join(lines)


def main(args) -> int:
    cases = (args.presets or "dcgan,dcgan@64,wgan-gp").split(",")
    repeats, block_s = 8, (args.steps or 3)
    header(args, f"fashion-mnist, batch 64, seed {args.seeds[0]}; per case 3 warm-up steps each, then {repeats} "
                 f"ABBA pairs of blocks of ~{block_s} CPU-s (same step count for both loops); CPU time per step, "
                 f"median; useful FLOPs from the ops of one recorded ganforge iteration; ceiling = those ops "
                 f"alone (best of 5 x >= 30 ms CPU each) at {torch.get_num_threads()} threads", seeds=args.seeds[:1])
    rows = [speed_case(c, 64, "fashion-mnist", repeats, block_s, seed=args.seeds[0]) for c in cases]
    return finish(args, rows, speed_table(rows))


parser = make_parser("speed", __doc__.split("\n\n")[0],
                     presets="comma-separated cases PRESET or PRESET@SIZE (default dcgan,dcgan@64,wgan-gp)",
                     steps="CPU seconds per timed block (default 3)")

if __name__ == "__main__":
    cli(parser, main)
