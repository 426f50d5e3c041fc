"""Training speed per preset: iterations/s, real images/s, FLOPs per iteration and GFLOP/s against
an honest fp32 matmul ceiling, and sampling throughput.

    python -m benchmarks.speed --presets dcgan,hinge,wgan-gp,projection-dcgan --threads 1
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .common import Reporter, build_state, cli, finish, header, make_parser, resolve, seeded_sampler, train_step


def speed(presets, batch: int = 64, steps: int = 20, repeats: int = 5, data: str = "fashion-mnist",
          gen_batch: int = 256) -> list[dict]:
    """Training iterations/s, FLOPs and GFLOP/s against an honest matmul ceiling, and sampling
    throughput (G alone, eval mode, ``gen_batch`` images per call), per preset.

    The ceiling is the best fp32 matmul rate at this process's thread count over square products
    and over the GEMM shapes that the preset's convolutions and linear layers amount to (im2col
    view: forward, weight-gradient and input-gradient products), so a preset cannot beat it by
    running shapes the square products do not represent."""
    def gemm_shapes(state, top: int = 6) -> list[tuple[int, int, int]]:
        """(M, K, N) of the products behind one training iteration's layers, by FLOPs, largest first."""
        flops: dict[tuple[int, int, int], int] = {}

        def hook(m, inputs, out):
            x = inputs[0]
            if isinstance(m, nn.Linear):
                mkn = (x.numel() // x.shape[-1], m.in_features, m.out_features)
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and x.dim() == 4:
                area = m.kernel_size[0] * m.kernel_size[1]
                if isinstance(m, nn.Conv2d):  # (B*Ho*Wo, Cin/g*k*k) @ (Cin/g*k*k, Cout)
                    mkn = (out.shape[0] * out.shape[2] * out.shape[3], m.in_channels // m.groups * area, m.out_channels)
                else:  # (B*H*W, Cin/g) @ (Cin/g, Cout*k*k), then col2im
                    mkn = (x.shape[0] * x.shape[2] * x.shape[3], m.in_channels // m.groups, m.out_channels * area)
            else:
                return
            M, K, N = mkn
            for shape in ((M, K, N), (K, M, N), (M, N, K)):  # forward, weight gradient, input gradient
                flops[shape] = flops.get(shape, 0) + 2 * M * K * N

        handles = [m.register_forward_hook(hook) for net in (state.G, state.D) for m in net.modules()]
        try:
            train_step(state, Reporter())
        finally:
            for h in handles:
                h.remove()
        return sorted(flops, key=flops.get, reverse=True)[:top]

    def matmul_rate(M: int, K: int, N: int, reps: int = 5, min_s: float = 0.02) -> float:
        """Best fp32 GFLOP/s of (M, K) @ (K, N) over ``reps`` timings of >= ``min_s`` each."""
        a, b = torch.randn(M, K), torch.randn(K, N)
        t0 = time.perf_counter()
        a @ b  # warm-up, and the size of one timing
        inner = max(1, int(min_s / max(time.perf_counter() - t0, 1e-7)))
        best = 0.0
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(inner):
                a @ b
            best = max(best, 2 * M * K * N * inner / (time.perf_counter() - t0) / 1e9)
        return best

    def ceiling(shapes) -> tuple[float, str]:
        rates = {f"{M}x{K}x{N}": matmul_rate(M, K, N) for M, K, N in shapes}
        best = max(rates, key=rates.get)
        return rates[best], best

    @torch.no_grad()
    def sampling_rate(state, cfg) -> float:
        """Images/s of G alone in eval mode (latents and labels drawn per call), median of repeats."""
        net = state.sampler_net
        net.eval()
        try:
            sample = seeded_sampler(net, cfg, state.device, state.data.num_classes)
            sample(gen_batch, 0)  # warm-up
            rates = []
            for r in range(repeats):
                t0 = time.perf_counter()
                for i in range(3):
                    sample(gen_batch, 1 + 3 * r + i)
                rates.append(3 * gen_batch / (time.perf_counter() - t0))
            return statistics.median(rates)
        except (RuntimeError, TypeError, ValueError):  # image-to-image G: no latent-only sampling
            return float("nan")
        finally:
            net.train()

    threads = torch.get_num_threads()
    square, square_shape = ceiling([(n, n, n) for n in (512, 1024, 2048, 4096)])
    print(f"fp32 matmul ceiling, square products at {threads} threads: {square:.1f} GFLOP/s ({square_shape})",
          flush=True)
    rows = []
    for preset in presets:
        cfg = resolve(preset, overrides=[f"data.name={data}", f"train.batch_size={batch}",
                                         "train.progress=false"])
        state = build_state(cfg)
        rep = Reporter()
        for _ in range(3):  # warm-up
            train_step(state, rep)
        try:
            with FlopCounterMode(display=False) as fc:
                train_step(state, rep)
            flops = fc.get_total_flops()
        except RuntimeError:  # the counter cannot follow autograd.grad (gradient penalties)
            flops = float("nan")
        rates = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(steps):
                train_step(state, rep)
            rep.flush()
            dt = time.perf_counter() - t0
            rates.append(steps / dt)
        it_s = statistics.median(rates)
        img_s = it_s * batch * cfg.train.n_critic
        gen_s = sampling_rate(state, cfg)
        layer, layer_shape = ceiling(gemm_shapes(state))
        ceil, ceil_shape = (layer, layer_shape) if layer > square else (square, square_shape)
        row = {"preset": preset, "batch": batch, "n_critic": cfg.train.n_critic, "iter_per_s": it_s,
               "real_img_per_s": img_s, "gen_batch": gen_batch, "gen_img_per_s": gen_s,
               "gflop_per_iter": flops / 1e9, "gflop_s": flops * it_s / 1e9, "threads": threads,
               "ceiling_gflop_s": ceil, "ceiling_shape": ceil_shape, "square_ceiling_gflop_s": square,
               "layer_ceiling_gflop_s": layer, "layer_ceiling_shape": layer_shape,
               "fraction_of_ceiling": flops * it_s / 1e9 / ceil}
        rows.append(row)
        print(f"{preset:10s} {it_s:6.2f} it/s, {img_s:7.0f} real img/s, {flops / 1e9:.2f} GFLOP/iter, "
              f"{row['gflop_s']:.1f} GFLOP/s ({100 * row['fraction_of_ceiling']:.0f} % of the {ceil:.0f} GFLOP/s "
              f"ceiling, {ceil_shape}; its layers' own GEMM shapes reach {layer:.0f}); "
              f"sampling {gen_s:.0f} img/s at batch {gen_batch}", flush=True)
    return rows


def speed_table(rows) -> str:
    lines = ["| preset | batch | n_critic | iterations/s | real images/s | GFLOP / iteration | GFLOP/s | "
             "matmul ceiling GFLOP/s (shape) | % of ceiling | sampling images/s (batch) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        counted = r["gflop_per_iter"] == r["gflop_per_iter"]  # NaN where the counter cannot follow
        ceiling = f"{r['ceiling_gflop_s']:.0f} ({r['ceiling_shape']})"
        flops = (f"{r['gflop_per_iter']:.2f} | {r['gflop_s']:.1f} | {ceiling} | {100 * r['fraction_of_ceiling']:.0f} %"
                 if counted else f"not countable (autograd.grad) | – | {ceiling} | –")
        gen = r.get("gen_img_per_s", float("nan"))
        gen = f"{gen:.0f} ({r.get('gen_batch', '')})" if gen == gen else "–"
        lines.append(f"| {r['preset']} | {r['batch']} | {r['n_critic']} | {r['iter_per_s']:.2f} | "
                     f"{r['real_img_per_s']:.0f} | {flops} | {gen} |")
    return "\n".join(lines)



def main(args) -> int:
    presets = (args.presets or "dcgan,wgan-gp,hinge").split(",")
    steps = args.steps or 20
    header(args, f"batch 64, fashion-mnist, {steps} iterations x 5 repeats after 3 warm-up; median; "
                 f"sampling: G alone in eval mode, batch 256, 3 calls x 5 repeats; matmul ceiling: best fp32 rate "
                 f"at {torch.get_num_threads()} threads over squares 512..4096 and each preset's layer GEMM shapes")
    rows = speed(presets, steps=steps)
    return finish(args, rows, speed_table(rows))


parser = make_parser("speed", __doc__.split("\n\n")[0], presets="comma-separated presets (default dcgan,wgan-gp,hinge)",
                     steps="timed iterations per repeat (default 20)")

if __name__ == "__main__":
    cli(parser, main)
