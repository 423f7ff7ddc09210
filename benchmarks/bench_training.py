"""Training throughput: slt's gather + square + matmul network against a naive dense one-hot PyTorch loop,
and seeds batched on the copy axis against one seed at a time. Run on demand (not a test):

    OMP_NUM_THREADS=1 python benchmarks/bench_training.py [--threads 1] [--quick]

Part 1 (issue 2, target >= 5x): p = 97, width 512, 40% of pairs, full batch, Adam, centred MSE.
  naive: x = [e_a; e_b] as a dense (N, 2p) matrix, nn.Linear(2p, K, bias=False) -> square ->
  nn.Linear(K, p, bias=False), dense one-hot targets, same data, same initial weights, same optimiser.
  The two runs are checked to follow the same trajectory before their speed is compared.
Part 4 (issue 15, target >= 80%): seconds per training step of the grokking preset against the FLOP-and-bandwidth
  bound measured on this machine (training_roofline), B = 1, 10, 100 seeds, and where a step's time goes (the three
  products as slt calls them, Adam, the rest: step_breakdown).
Part 2 (target: 100 seeds of the grokking preset trained to grokking in < 15 min on 2 cores):
  steps/s of the preset's minibatch training with B seeds on the copy axis, against B = 1; the 100-seed
  wall time is extrapolated as (steps to grokking of the preset) x (seconds per step of the chosen layout).
``--device cuda`` runs parts 2-4 on the GPU (part 4's roofline then takes cuBLAS's bmm and the GPU's bandwidth).
All timings are medians of several repeats in this process; the load average is printed beside them
because the machine may be shared.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from slt.losses import centred_mse, get_loss
from slt.models.quadratic import QuadraticNet
from slt.tasks import make_data
from slt.training import TrainConfig, build_model, default_config
from slt.execution import tune_malloc
from slt.training.loop import MinibatchSampler, make_optimizer, make_train_step

from roofline import median_time, step_gemm_seconds, synchronize, time_products, timed  # benchmarks/roofline.py


def load() -> str:
    try:
        return "load avg %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load avg n/a"


# ---------------------------------------------------------------------------------------------- part 1

def naive_model(net: QuadraticNet) -> nn.Sequential:
    """The same network as copy 0 of ``net`` written the textbook way, on dense one-hot inputs."""
    p, m = net.config.p, net.config.width

    class Square(nn.Module):
        def forward(self, x):
            return x * x

    seq = nn.Sequential(nn.Linear(2 * p, m, bias=False), Square(), nn.Linear(m, p, bias=False))
    with torch.no_grad():
        seq[0].weight.copy_(torch.cat([net.U[0], net.V[0]], 0).T)  # (m, 2p)
        seq[2].weight.copy_(net.A[0].T)  # (p, m)
    return seq


def part1(p: int, width: int, frac: float, n: int, repeats: int) -> float:
    data = make_data(p, "add", frac, 0)
    a, b, y = data.train()
    cfg = TrainConfig(p=p, width=width, train_fraction=frac, batch_size=None, lr=1e-3, weight_decay=1e-5)
    net = build_model(cfg)
    ref = naive_model(net)
    opt = make_optimizer(cfg, net.parameters())
    opt_ref = torch.optim.Adam(ref.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    X = torch.cat([nn.functional.one_hot(a, p), nn.functional.one_hot(b, p)], 1).float()  # (N, 2p)
    Y = nn.functional.one_hot(y, p).float()  # (N, p)

    def step_slt():
        loss = centred_mse(net(a, b), y).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def step_naive():
        R = Y - ref(X)
        R = R - R.mean(0, keepdim=True)
        loss = 0.5 * R.pow(2).sum() / len(y)
        opt_ref.zero_grad(set_to_none=True)
        loss.backward()
        opt_ref.step()

    for _ in range(5):  # same trajectory: the comparison is between two implementations of one computation
        step_slt()
        step_naive()
    diff = (net(a, b)[0] - ref(X)).abs().max().item()
    scale = ref(X).abs().max().item()
    print(f"  same trajectory after 5 steps: max |f_slt - f_naive| = {diff:.2e} (outputs up to {scale:.2e})")
    assert diff <= 1e-3 * scale, "slt and the naive loop disagree: the benchmark would compare different things"

    t_slt = median_time(step_slt, n, repeats)
    t_naive = median_time(step_naive, n, repeats)
    ratio = t_naive / t_slt
    print(f"  N = {len(y)} training pairs, width {width}: slt {1 / t_slt:8.1f} steps/s | naive one-hot "
          f"{1 / t_naive:8.1f} steps/s | ratio {ratio:.2f}x (target >= 5x)   [{load()}]")
    # matmul work per step, in multiply-adds: readout forward + 2 backward = 3 N K p for both; the naive
    # loop adds the one-hot layer, forward and weight gradient = 2 N (2p) K = 4 N K p
    print(f"  matmul work per step: slt 3NKp, naive 7NKp -> ideal ratio from arithmetic alone ~ {7 / 3:.2f}x")
    return ratio


# ---------------------------------------------------------------------------------------------- part 2

def training_step(cfg: TrainConfig):
    """(step, optimiser): one call of ``step()`` is one step of the training loop (minibatch, closed-form
    gradient, fused Adam) for ``cfg``; the loop calls ``optimiser.step`` through the attribute, so it can be timed."""
    data = make_data(cfg.p, cfg.op, cfg.train_fraction, cfg.data_seed)
    a_tr, b_tr, y_tr = (t.to(cfg.device) for t in data.train())
    net = build_model(cfg, cfg.device)
    opt = make_optimizer(cfg, net.parameters())
    full = cfg.batch_size is None or cfg.batch_size >= data.n_train
    sampler = None if full else MinibatchSampler(cfg.seeds, data.n_train, cfg.batch_size)
    train_step = make_train_step(cfg, net, opt)  # the training loop's own step (closed-form gradient, fused Adam)
    tune_malloc()  # as slt.training.train does

    def step():
        if full:
            a, b, y = a_tr, b_tr, y_tr
        else:
            idx = sampler.next().to(cfg.device)
            a, b, y = a_tr[idx], b_tr[idx], y_tr[idx]
        train_step(a, b, y)

    return step, opt


def seconds_per_step(cfg: TrainConfig, n: int, repeats: int) -> float:
    return median_time(training_step(cfg)[0], n, repeats, cfg.device)


def step_breakdown(cfg: TrainConfig, n: int) -> dict[str, float]:
    """Seconds per step (mean of ``n`` after 5 warm-up steps) in the three products as slt calls them
    (roofline.time_products), in the optimiser's step, and in everything else (minibatch, gathers, square,
    residual, scatter, zeroed gradients, Python)."""
    step, opt = training_step(cfg)
    spent = {"seconds": 0.0, "calls": 0}
    opt.step = timed(opt.step, spent, cfg.device)
    for _ in range(5):
        step()
    spent["seconds"] = 0.0
    with time_products(cfg.device) as prod:
        synchronize(cfg.device)
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        synchronize(cfg.device)
        total = (time.perf_counter() - t0) / n
    out = dict(total=total, products=prod["seconds"] / n, optimizer=spent["seconds"] / n)
    out["other"] = total - out["products"] - out["optimizer"]
    return out


def part2(preset: TrainConfig, steps_to_grok: int, batch_sizes: list[int], n: int, repeats: int) -> None:
    print(f"  preset: p={preset.p} width={preset.width} batch={preset.batch_size} lr={preset.lr:g} "
          f"wd={preset.weight_decay:g}; steps to grokking (all seeds, from the preset run) = {steps_to_grok}")
    per_seed = {}
    for B in batch_sizes:
        t = seconds_per_step(preset.replace(seeds=tuple(range(B))), n, repeats)
        per_seed[B] = t / B
        runs = 100 / B
        total = runs * steps_to_grok * t
        print(f"  B = {B:3d} seeds per run: {1 / t:8.1f} steps/s, {B / t:8.0f} seed-steps/s -> 100 seeds to "
              f"step {steps_to_grok}: {total / 60:6.1f} min ({runs:g} run(s))   [{load()}]")
    b1 = per_seed.get(1)
    if b1:
        for B, t in per_seed.items():
            if B > 1:
                print(f"  batched B = {B} vs one seed at a time: {b1 / t:.2f}x seed-steps/s")


# ---------------------------------------------------------------------------------------------- part 4

def training_roofline(cfg: TrainConfig, B: int, repeats: int = 5) -> float:
    """Seconds per training step that this machine cannot beat for ``cfg`` with B seeds, measured here:

        FLOPs:  3 matmuls of 2 b m q per seed (forward s A, backward G A^T and s^T G), each timed with every
                float32 GEMM torch offers here (MKL's bmm, oneDNN) and counted at the fastest
                (benchmarks/roofline.py);
        memory: 8 passes of d = (2p + q) m floats per seed (the gradient written once; a fused Adam reads
                w, g, m, v and writes w, m, v) and 6 of the b x m activations (gather h, square s, G A^T,
                2 h G A^T, the scatter of it), at the bandwidth of a large elementwise add;
        bound = FLOP time + memory time (no overlap assumed, which flatters the bound less than max()).
    The per-step Python and kernel-launch overheads, the minibatch gathers of indices and the loss are free."""
    p, m, q, b = cfg.p, cfg.width, cfg.p, cfg.batch_size or 1
    gemm = step_gemm_seconds(B, b, m, q, repeats, cfg.device)
    d = (2 * p + q) * m
    buf = torch.randn(B, d, device=cfg.device)
    out = torch.empty_like(buf)
    bw = 3 * 4 * buf.numel() / median_time(lambda: torch.add(buf, buf, out=out), 10, repeats, cfg.device)
    t_flop = gemm["best"]
    t_mem = 4 * B * (8 * d + 6 * b * m) / bw
    print(f"  roofline B = {B}: matmul {gemm['best_rate'] / 1e9:.1f} GFLOP/s at the fastest GEMM for each product "
          f"(torch's bmm alone {gemm['torch_rate'] / 1e9:.1f}), bandwidth {bw / 1e9:.1f} GB/s -> {t_flop * 1e3:.2f} ms "
          f"FLOPs + {t_mem * 1e3:.2f} ms memory = {(t_flop + t_mem) * 1e3:.2f} ms per step")
    return t_flop + t_mem


def part4(preset: TrainConfig, batch_sizes: list[int], n: int, repeats: int, rounds: int = 3) -> None:
    """``rounds`` paired rounds per B, each measuring the roofline and then the step back to back: the machine's
    speed drifts by up to 30% within a minute, so the fraction is taken within a round and the median printed."""
    for B in batch_sizes:
        cfg = preset.replace(seeds=tuple(range(B)))
        pairs = [(training_roofline(cfg, B, repeats), seconds_per_step(cfg, n, repeats)) for _ in range(rounds)]
        frac = [bound / t for bound, t in pairs]
        t = statistics.median(t for _, t in pairs)
        print(f"  B = {B:3d}: measured {t * 1e3:.2f} ms per step (median of {rounds} rounds) -> "
              f"{statistics.median(frac):.0%} of the roofline (rounds: {', '.join(f'{f:.0%}' for f in frac)})"
              f"   [{load()}]")
        bound_s = statistics.median(b for b, _ in pairs)
        parts = step_breakdown(cfg, n)
        print(f"    where a step's {parts['total'] * 1e3:.2f} ms go: the three products as slt calls them "
              f"{parts['products'] * 1e3:.2f} ms ({parts['products'] / bound_s:.0%} of the whole bound by themselves), "
              f"Adam {parts['optimizer'] * 1e3:.2f} ms, the rest {parts['other'] * 1e3:.2f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--rounds", type=int, default=3, help="paired roofline/step rounds per B in part 4 (default 3)")
    ap.add_argument("--steps-to-grok", type=int, default=None,
                    help="override the steps-to-grokking used in the extrapolation (default: the preset's "
                         "`steps`, an upper bound chosen from the sweep)")
    ap.add_argument("--paper", action="store_true", help="also extrapolate the paper's hyperparameters")
    ap.add_argument("--parts", default="1,2,4", help="comma-separated parts to run (default 1,2,4; --paper adds 3)")
    ap.add_argument("--device", default="cpu",
                    help="device of parts 2, 3 and 4 (default cpu; e.g. cuda). Part 1 (against the naive loop) runs on "
                         "the CPU")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available in this torch ({torch.__version__})")
    parts = {x.strip() for x in args.parts.split(",")}
    torch.set_num_threads(args.threads)
    n, rep = (10, 3) if args.quick else (20, 5)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} cores visible")
    preset = default_config("grokking").replace(device=args.device)
    if args.device != "cpu":
        print(f"parts 2-4 on {args.device}: {torch.cuda.get_device_name(args.device)}")
    if "1" in parts:
        print("Part 1: slt vs naive dense one-hot loop (p = 97, width 512, fraction 0.4, full batch, Adam)")
        part1(97, 512, 0.4, n, rep)
        print("Part 1b: the paper's setting size (p = 53, width 1024, fraction 0.4, full batch)")
        part1(53, 1024, 0.4, n, rep)
    if "2" in parts:
        print("Part 2: seeds on the copy axis vs one at a time (grokking preset, minibatch)")
        part2(preset, args.steps_to_grok or preset.steps, [1, 10, 100], 4 * n, rep)
    if "4" in parts:
        print("Part 4: training step against its roofline (grokking preset, minibatch, fused Adam)")
        part4(preset, [1, 10, 100], 2 * n, rep, args.rounds)
    if args.paper:
        print("Part 3: the paper's own hyperparameters (width 1024, lr 1e-4, wd 1e-5), grokking by ~15,000 steps")
        paper = preset.replace(width=1024, lr=1e-4, weight_decay=1e-5)
        part2(paper, 15_000, [1, 10, 100], 2 * n, rep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
