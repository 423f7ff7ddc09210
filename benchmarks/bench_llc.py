"""Benchmark: slt.estimate_llc against devinterp 1.3.2 and devinterp 2.0.1, side by side in one run.

For each regime the SAME model, data and SGLD settings (eps, gamma, n_beta, chains, draws, burn-in,
batch size) go to
  * slt.estimate_llc (in this process); in the paper's regime twice, with each Gaussian source
    (noise="torch", the default, and noise="counter", slt.sampling.noise; the latter's warm-up call, which
    holds its one-time compile, is timed and printed),
  * devinterp 1.3.2 estimate_learning_coeff_with_summary with its SGLD optimizer,
  * devinterp 2.0.1 devinterp.slt.llc.llc with sampling_method="sgmcmc_sgld", and again with
    "rmsprop_sgld" (a second line: preconditioned, so only its per-step cost is comparable),
and the script prints chain-steps per second (chains x (burn-in + draws) / wall time of the whole
estimate call), the ratio slt / each, the estimates, and for the paper's setting this machine's
matmul FLOP/s, Gaussian draws/s (torch.randn and the counter source) and memory bandwidth with the roofline
bound and slt's fraction of it.

devinterp 2.0.1 calls gc.collect() before and after every chain (devinterp/slt/sampler.py,
_gc_and_empty_cache). The worker wraps that module's gc.collect in a timer (it still collects) and
reports both the wall time as is and the wall time minus the time spent in those calls.

The two devinterp versions cannot be imported into one interpreter, and devinterp is NEVER a dependency
of slt: each runs in its own virtual environment (reusing the project's CPU torch), installed by

    bash benchmarks/install_devinterp.sh        # from the repository root -> ../devinterp-1.3.2, ../devinterp-2.0.1

This script then runs each devinterp version in a subprocess with that venv's python
(``--worker devinterp-X``); the parent passes the problem (model parameters and data, via a temporary
torch.save file) and the settings, and gets back JSON with the wall times and estimates. For each regime
slt runs first in the parent, then the workers, back to back, one process at a time, on the same machine:
compare them on an otherwise idle machine. This repeats in --repeats paired rounds (default 3); each ratio is
taken within a round, and the median over rounds is printed with every round's value. Only the estimate call is timed (not interpreter start-up or
imports), and every library first makes one untimed warm-up call (2 chains, 3 steps) on the same problem
in the same process, so that one-time costs (lazy imports, first-op set-up: ~0.8 s for devinterp 1.3.2
in a fresh process) do not count against the workers, which start fresh for every regime. The workers
import torch and devinterp only (not slt), so their heaps, and hence the cost of
devinterp's gc.collect(), are what a devinterp user's process would have.

    python benchmarks/bench_llc.py [--quick] [--regime small|paper|all] [--threads N] [--repeats N]
                                   [--devinterp-venvs ../devinterp-1.3.2,../devinterp-2.0.1] [--json OUT]

Without the venvs the script times slt alone and says so.

SGLD conventions (checked in the installed sources): all three take the step
    w' = w - (eps/2) (n_beta grad L_batch(w) + gamma (w - w*)) + sqrt(eps) N(0, I)
with L_batch the mean per-sample loss of the minibatch: devinterp's lr = eps, localization = gamma,
nbeta (1.3.2) / n_beta (2.0.1) = n_beta, noise_level 1. The estimates differ in what they average:
slt and 1.3.2 average the loss over the draws after burn-in; 2.0.1's llc_mean averages over EVERY step
including burn-in, and its L(w*) is the mean over num_init_loss_batches=32 minibatches; the script
prints 2.0.1's value and also the draws-only value recomputed from its loss_trace. 2.0.1 needs a
HuggingFace dataset with an "input_ids" column and a per-token loss (batch, seq - 1): here input_ids are
(i, i) with i the example index, and the loss is the per-example loss of example i (its batch mean is
exactly the slt loss, centring over the minibatch included for the centred MSE). 2.0.1 also writes every
step's per-example losses and input ids to a zarr store (a temporary directory, inside the timed call).

Timings depend on the machine and its load: the development machine has 2 cores shared with other jobs,
so absolute numbers there are measured under contention (the load average is printed); use an idle one.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass

import torch
from torch import nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_VENVS = "../devinterp-1.3.2,../devinterp-2.0.1"
RESULT_TAG = "BENCH_RESULT "  # prefixes the worker's JSON line on stdout (anything else there is ignored)
V2_METHODS = ("sgmcmc_sgld", "rmsprop_sgld")


# ---------------------------------------------------------------------------------------------------
# Problems: built in the parent (slt needed for the quadratic network and its data), shipped to the
# workers as plain tensors so the workers need only torch and devinterp.
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """SGLD settings shared by all libraries; batch None = full batch."""

    eps: float
    gamma: float
    n_beta: float
    chains: int
    draws: int
    burnin: int
    batch: int | None
    repeats: int = 1  # paired rounds (compare): each library timed once per round, medians reported
    device: str = "cpu"  # where every library runs (the problem is built on the CPU and moved there)

    @property
    def chain_steps(self) -> int:
        return self.chains * (self.draws + self.burnin)


class QuadSingle(nn.Module):
    """One copy of the quadratic network as a plain module (input x = (N, 2) index pairs) for devinterp:
    f(a, b) = ((U_a + V_b) ** 2) A."""

    def __init__(self, U: torch.Tensor, V: torch.Tensor, A: torch.Tensor):
        super().__init__()
        self.U, self.V, self.A = (nn.Parameter(t.detach().clone()) for t in (U, V, A))

    def forward(self, x):
        h = self.U[x[:, 0]] + self.V[x[:, 1]]
        return (h * h) @ self.A


def per_example_loss(kind: str, out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per-example loss (N,) whose mean over the minibatch is the loss slt uses on that minibatch.

    rrr: (1/2)|out_i - t_i|^2; mse: (1/2)|e_{t_i} - out_i|^2; centred_mse: (1/2)|R_i - mean_batch R|^2
    with R_i = e_{t_i} - out_i (the mean of these is slt.losses.centred_mse of the minibatch).
    """
    if kind == "rrr":
        return 0.5 * (out - t).pow(2).sum(-1)
    r = nn.functional.one_hot(t, out.shape[-1]).to(out.dtype) - out
    if kind == "centred_mse":
        r = r - r.mean(0)
    elif kind != "mse":
        raise ValueError(f"unknown loss kind {kind!r}")
    return 0.5 * r.pow(2).sum(-1)


def rrr_problem(n: int = 1024, seed: int = 0) -> dict:
    """Reduced-rank regression 5 -> 3 -> 5 with n noisy samples of a random teacher (which is w*)."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 3, bias=False), nn.Linear(3, 5, bias=False))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    x = torch.randn(n, 5, generator=g)
    with torch.no_grad():
        y = model(x) + 0.1 * torch.randn(n, 5, generator=g)
    return dict(kind="rrr", params={k: v.detach().clone() for k, v in model.state_dict().items()}, x=x, y=y)


def quad_problem(p: int, width: int, frac: float, loss_name: str, seed: int = 0) -> dict:
    """The quadratic network on (a + b) mod p with a training fraction frac (slt's data and init)."""
    from slt.models import QuadraticNet
    from slt.tasks import make_data

    net = QuadraticNet(p, width, generator=torch.Generator().manual_seed(seed))
    a, b, y = make_data(p, "add", frac, seed).train()
    params = {k: getattr(net, k).detach()[0].clone() for k in "UVA"}
    return dict(kind=loss_name, params=params, x=torch.stack([a, b], 1), y=y, net=net)


def theirs_model(problem: dict, device: str = "cpu") -> nn.Module:
    """A fresh plain module at w* for devinterp, on ``device``."""
    if problem["kind"] == "rrr":
        model = nn.Sequential(nn.Linear(5, 3, bias=False), nn.Linear(3, 5, bias=False))
        model.load_state_dict(problem["params"])
        return model.to(device)
    return QuadSingle(*(problem["params"][k] for k in "UVA")).to(device)


def ours_inputs(problem: dict, device: str = "cpu"):
    """(model, loss_fn, data) for slt.estimate_llc, on ``device``."""
    from slt.losses import centred_mse, mse

    x, y = problem["x"].to(device), problem["y"].to(device)
    if problem["kind"] == "rrr":
        loss = lambda out, t: per_example_loss("rrr", out, t).mean()  # noqa: E731
        return theirs_model(problem, device), loss, (x, y)
    lf = {"mse": mse, "centred_mse": centred_mse}[problem["kind"]]
    return problem["net"].to(device), lf, (x[:, 0], x[:, 1], y)


def check_losses_agree(problem: dict) -> None:
    """The per-example losses given to devinterp average to slt's loss (guards the comparison)."""
    if problem["kind"] == "rrr":
        return
    model, lf, (a, b, y) = ours_inputs(problem)
    with torch.no_grad():
        ref = float(lf(model(a, b), y)[0])
        mine = float(per_example_loss(problem["kind"], theirs_model(problem)(problem["x"]), y).mean())
    if not math.isclose(ref, mine, rel_tol=1e-4, abs_tol=1e-6):
        raise AssertionError(f"per-example loss mean {mine} != slt loss {ref}")


# ---------------------------------------------------------------------------------------------------
# The timed calls
# ---------------------------------------------------------------------------------------------------


def warmup_settings(s: Settings) -> Settings:
    """A tiny run of the same problem, done untimed before each timed call by every library."""
    return dataclasses.replace(s, chains=min(s.chains, 2), draws=2, burnin=1, repeats=1)


def run_slt(problem: dict, s: Settings, noise: str = "torch") -> list[dict]:
    """slt.estimate_llc at the settings with the Langevin noise source ``noise``; wall time of the whole call."""
    from slt.sampling import LLCWarning, estimate_llc

    model, loss, data = ours_inputs(problem, s.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LLCWarning)
        t0 = time.perf_counter()
        res = estimate_llc(model, loss, data, eps=s.eps, gamma=s.gamma, n_beta=s.n_beta, num_chains=s.chains,
                           num_draws=s.draws, num_burnin=s.burnin, batch_size=s.batch, seed=0, noise=noise)
        dt = time.perf_counter() - t0
    return [dict(method="slt" if noise == "torch" else f"slt noise={noise}", seconds=dt,
                 chain_steps_per_s=s.chain_steps / dt, llc=res.llc, llc_se=res.llc_se)]


def run_devinterp_1(problem: dict, s: Settings) -> list[dict]:
    """devinterp 1.x: estimate_learning_coeff_with_summary with SGLD(lr=eps, localization=gamma, nbeta)."""
    from devinterp.optim.sgld import SGLD
    from devinterp.slt.sampler import estimate_learning_coeff_with_summary

    model, kind = theirs_model(problem, s.device), problem["kind"]
    x, y = problem["x"].to(s.device), problem["y"].to(s.device)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=s.batch or len(y),
                                         shuffle=True)
    evaluate = lambda m, data: per_example_loss(kind, m(data[0]), data[1]).mean()  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        out = estimate_learning_coeff_with_summary(
            model, loader, evaluate=evaluate, sampling_method=SGLD,
            optimizer_kwargs=dict(lr=s.eps, localization=s.gamma, nbeta=s.n_beta),
            num_chains=s.chains, num_draws=s.draws, num_burnin_steps=s.burnin, num_steps_bw_draws=1,
            seed=0, device=s.device, verbose=False, online=False,
        )
        dt = time.perf_counter() - t0
    return [dict(method="sgld", seconds=dt, chain_steps_per_s=s.chain_steps / dt, llc=float(out["llc/mean"]),
                 llc_se=float(out["llc/std"]) / math.sqrt(s.chains))]


class _TimedGC:
    """Stands in for the gc module inside devinterp.slt.sampler: collects as before, and times it."""

    def __init__(self):
        self.seconds, self.calls = 0.0, 0

    def collect(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return gc.collect(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


def run_devinterp_2(problem: dict, s: Settings) -> list[dict]:
    """devinterp 2.x: devinterp.slt.llc.llc(model, dataset with input_ids (i, i), observables={},
    lr=eps, n_beta, localization=gamma, sampling_method=...) once per method in V2_METHODS."""
    import devinterp.slt.sampler as sampler_mod
    from datasets import Dataset
    from devinterp.slt.llc import llc

    x, y, kind = problem["x"].to(s.device), problem["y"].to(s.device), problem["kind"]
    n = len(y)
    idx = torch.arange(n)
    dataset = Dataset.from_dict({"input_ids": torch.stack([idx, idx], 1).tolist()}).with_format("torch")

    def loss_fn(model, input_ids):  # (batch, 2) -> (batch, 1): the per-example loss of example input_ids[:, 0]
        i = input_ids[:, 0].to(x.device)
        return per_example_loss(kind, model(x[i]), y[i])[:, None]

    timed_gc = _TimedGC()
    real_gc, sampler_mod.gc = sampler_mod.gc, timed_gc
    results = []
    try:
        for method in V2_METHODS:
            model = theirs_model(problem, s.device)
            timed_gc.seconds, timed_gc.calls = 0.0, 0
            with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                out = llc(model, dataset, {}, lr=s.eps, n_beta=s.n_beta, loss_fn=loss_fn, localization=s.gamma,
                          sampling_method=method, num_chains=s.chains, num_draws=s.draws,
                          num_burnin_steps=s.burnin, num_steps_bw_draws=1, batch_size=s.batch or n,
                          init_seed=0, device=s.device, output_path=os.path.join(tmp, "samples.zarr"))
                dt = time.perf_counter() - t0
            trace = torch.as_tensor(out.loss_trace.values, dtype=torch.float64)  # (chain, step), burn-in first
            per_chain = s.n_beta * (trace[:, s.burnin:].mean(1) - float(out.init_loss))
            results.append(dict(
                method=method, seconds=dt, chain_steps_per_s=s.chain_steps / dt,
                gc_seconds=timed_gc.seconds, gc_calls=timed_gc.calls,
                chain_steps_per_s_without_gc=s.chain_steps / (dt - timed_gc.seconds),
                llc=float(out.llc_mean), llc_se=float(out.llc_std) / math.sqrt(s.chains),
                llc_draws_only=float(per_chain.mean()),
                llc_draws_only_se=float(per_chain.std(unbiased=False)) / math.sqrt(s.chains)))
    finally:
        sampler_mod.gc = real_gc
    return results


def worker_main(name: str, problem_path: str, settings_json: str, threads: int) -> int:
    """Runs inside a devinterp venv: one JSON line tagged RESULT_TAG on stdout."""
    from importlib.metadata import version

    torch.set_num_threads(threads)
    s = Settings(**json.loads(settings_json))
    problem = torch.load(problem_path, weights_only=True)
    ver = version("devinterp")
    if name.startswith("devinterp-") and name != f"devinterp-{ver}":
        print(f"note: worker {name} found devinterp {ver}", file=sys.stderr)
    run = run_devinterp_1 if ver.startswith("1.") else run_devinterp_2
    run(problem, warmup_settings(s))  # untimed: first-call costs (lazy imports, allocator, thread pool)
    runs = run(problem, s)
    print(RESULT_TAG + json.dumps(dict(version=ver, torch=torch.__version__, threads=torch.get_num_threads(),
                                       runs=runs)), flush=True)
    return 0


def run_worker(venv: str, problem_path: str, s: Settings, threads: int) -> dict:
    """Run one devinterp version in its venv's python; its parsed JSON, or dict(error=...)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TQDM_DISABLE="1")
    cmd = [os.path.join(venv, "bin", "python"), os.path.abspath(__file__), "--worker", os.path.basename(venv),
           "--problem", problem_path, "--settings", json.dumps(dataclasses.asdict(s)), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
    return dict(error=f"exit {proc.returncode}: {tail}")


# ---------------------------------------------------------------------------------------------------
# Comparison, roofline, driver
# ---------------------------------------------------------------------------------------------------


CONVENTIONS = """\
conventions: all take w' = w - (eps/2)(n_beta grad L_batch + gamma (w - w*)) + sqrt(eps) N(0, I), devinterp's
  lr = eps, localization = gamma, nbeta/n_beta = n_beta; every library makes one untimed warm-up call first.
  devinterp 2.0.1: llc_mean averages the loss over burn-in too and takes L(w*) from 32 minibatches (a
  draws-only value is printed under it); it writes every step's losses to zarr (timed); its gc.collect()
  calls are timed inside the same run and subtracted for the 'without' line. rmsprop_sgld is preconditioned
  (alpha 0.99, eps 0.1), so at the same lr it samples differently: compare its speed, not its estimate."""


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def each(xs: list[float], unit: str = "") -> str:
    """' (rounds: a, b, c)' when there is more than one round."""
    fmt = "{:.1f}" if unit else "{:.0f}"
    return "  (rounds: " + ", ".join(fmt.format(x) + unit for x in xs) + ")" if len(xs) > 1 else ""


def fmt_llc(llc: float, se: float) -> str:
    return f"LLC {llc:9.4g} ± {se:.2g}"


def compare(name: str, problem: dict, s: Settings, venvs: list[str], tmpdir: str, bound=None,
            noises: tuple[str, ...] = ("torch",)) -> dict:
    """s.repeats paired rounds; in each, time slt here (once per noise source in ``noises``), then each devinterp
    venv in a subprocess, then (``bound``, a callable returning chain-steps/s) the roofline, back to back. The
    machine's speed drifts by up to 30% within a minute, so every ratio is taken within a round and the MEDIAN
    over rounds is printed, with each round's value beside it; one line per method. The warm-up call of each slt
    noise source is timed and printed: for "counter" it holds the one-time torch.compile."""
    print(f"{name}, chains={s.chains}, draws={s.draws}, burn-in={s.burnin}, batch={s.batch or 'full'}, "
          f"eps={s.eps:g}, gamma={s.gamma:g}, n_beta={s.n_beta:.4g}, {s.repeats} paired round(s)", flush=True)
    from roofline import time_products

    check_losses_agree(problem)
    warm = {}
    for noise in noises:
        t0 = time.perf_counter()
        run_slt(problem, warmup_settings(s), noise)
        run_slt(problem, dataclasses.replace(warmup_settings(s), chains=s.chains), noise)  # the timed row count
        warm[noise] = time.perf_counter() - t0
    one = dataclasses.replace(s, repeats=1)
    path = os.path.join(tmpdir, "problem.pt")
    if venvs:
        torch.save({k: v for k, v in problem.items() if k != "net"}, path)
    def slt_key(noise: str) -> str:  # the JSON key of slt's run with this source ("slt" for the default, as before)
        return "slt" if noise == "torch" else f"slt_{noise}"

    rounds = []
    for _ in range(max(1, s.repeats)):
        rnd = {}
        for noise in noises:
            # the quadratic network's three products as slt calls them (the full-data L(w*) included: ~4% of them at
            # 70 steps); on a GPU not measured inside the timed run (it would need a synchronisation around each)
            with (time_products() if s.device == "cpu" else contextlib.nullcontext({"seconds": math.nan})) as prod:
                rnd[slt_key(noise)] = dict(run_slt(problem, one, noise)[0], products_seconds=prod["seconds"])
        rnd["devinterp"] = {}
        for venv in venvs:
            rnd["devinterp"][os.path.basename(venv)] = run_worker(venv, path, one, torch.get_num_threads())
        if bound is not None:
            rnd["roofline_bound"] = bound()
        rounds.append(rnd)
    ours = {noise: [r[slt_key(noise)]["chain_steps_per_s"] for r in rounds] for noise in noises}
    row = dict(name=name, settings=dataclasses.asdict(s), rounds=rounds, warmup_seconds=warm)
    for noise, speeds in ours.items():
        first = rounds[0][slt_key(noise)]
        note = "" if noise == "torch" else f"  (warm-up incl. compile {warm[noise]:.1f} s, once per process)"
        print(f"  {first['method']:30s} {median(speeds):9.0f} chain-steps/s  {fmt_llc(first['llc'], first['llc_se'])}"
              f"{each(speeds)}{note}", flush=True)
        row[slt_key(noise)] = dict(first, chain_steps_per_s=median(speeds), chain_steps_per_s_rounds=speeds)
    if bound is not None:
        bounds = [r["roofline_bound"] for r in rounds]
        print(f"  roofline bound {median(bounds):.0f} chain-steps/s{each(bounds)}", flush=True)
        row.update(roofline_bound=median(bounds))
        for noise, speeds in ours.items():
            frac = [o / b for o, b in zip(speeds, bounds)]
            print(f"    {rounds[0][slt_key(noise)]['method']} reaches {median(frac):.0%} of it  "
                  f"(rounds: {', '.join(f'{f:.0%}' for f in frac)})", flush=True)
            suffix = slt_key(noise)[3:]  # "" or "_counter"
            row.update({f"roofline_fraction{suffix}": median(frac), f"roofline_fraction{suffix}_rounds": frac})
            if problem["kind"] != "rrr" and s.device == "cpu":
                # the products' time per chain-step against the bound's whole time per chain-step
                share = [r[slt_key(noise)]["products_seconds"] / s.chain_steps * b for r, b in zip(rounds, bounds)]
                print(f"      of which the three products as slt calls them alone take {median(share):.0%} of the "
                      f"bound's time (rounds: {', '.join(f'{f:.0%}' for f in share)})", flush=True)
                row[f"products_share_of_bound{suffix}"] = share
    row["devinterp"] = {}
    for venv in venvs:
        key = os.path.basename(venv)
        results = [r["devinterp"][key] for r in rounds]
        row["devinterp"][key] = results
        bad = next((res for res in results if "error" in res), None)
        if bad is not None:
            print(f"  {key:30s} FAILED {bad['error']}", flush=True)
            continue

        def ratios(speed: list[float]) -> str:
            parts = []
            for noise, speeds in ours.items():
                ratio = [o / x for o, x in zip(speeds, speed)]
                label = "slt/this" if noise == "torch" else f"{noise}/this"
                parts.append(f"{label} {median(ratio):5.1f}x{each(ratio, 'x')}")
            return "  ".join(parts)

        for k, r in enumerate(results[0]["runs"]):
            runs = [res["runs"][k] for res in results]
            speed = [x["chain_steps_per_s"] for x in runs]
            label = f"devinterp {results[0]['version']} {r['method']}"
            line = f"  {label:30s} {median(speed):9.0f} chain-steps/s  {fmt_llc(r['llc'], r['llc_se'])}  {ratios(speed)}"
            if "gc_seconds" in r:
                speed_ng = [x["chain_steps_per_s_without_gc"] for x in runs]
                line += (f"\n  {'':30s} {median(speed_ng):9.0f} chain-steps/s without its "
                         f"{r['gc_calls']} gc.collect() ({r['gc_seconds']:.2f} s of {r['seconds']:.2f} s)  "
                         f"{ratios(speed_ng)}"
                         f"\n  {'':30s} draws only: {fmt_llc(r['llc_draws_only'], r['llc_draws_only_se'])} "
                         f"(above: devinterp 2's llc_mean, burn-in included)")
            print(line, flush=True)
    return row


def roofline(p: int, width: int, batch: int, rows: int, device: str = "cpu"):
    """Measure the step's matmul time, Gaussian draws/s and copy bandwidth here; bound chain-steps/s for the
    quadratic network: 3 matmuls of 2*b*m*p FLOPs (forward, two in backward) at the FASTEST float32 GEMM this
    torch build offers for each (benchmarks/roofline.py: MKL's bmm or oneDNN), d = 3 p m Gaussian draws at the
    FASTER of torch.randn and slt's compiled counter source (slt.sampling.noise, draws only),
    ~12 passes of d floats through memory (drift, update, MALA dots) and 6 passes of the b x m activations
    (gather h, square s, G A^T, h * G A^T, its scatter into the drift): the forward and backward move them
    whatever the implementation (at the paper's setting b m = 131,072 against d = 162,816)."""
    from roofline import median_time, step_gemm_seconds

    from slt.sampling.noise import standard_normal_like

    d = 3 * p * width
    gemm = step_gemm_seconds(rows, batch, width, p, device=device)
    g = torch.Generator(device).manual_seed(0)
    buf = torch.empty(rows, d, device=device)
    y = torch.empty_like(buf)
    randn = rows * d / median_time(lambda: buf.normal_(generator=g), 5, 7, device)
    like = tuple(torch.empty(shape, device=device) for shape in ((rows, p, width), (rows, p, width), (rows, width, p)))
    counter = rows * d / median_time(lambda: standard_normal_like(like, g, "counter"), 5, 7, device)
    bw = 3 * 4 * rows * d / median_time(lambda: torch.add(buf, buf, out=y), 10, 7, device)  # bytes/s (2 reads, 1 write)
    t_flop = gemm["best"] / rows
    t_randn = d / max(randn, counter)
    t_mem = 4 * (12 * d + 6 * batch * width) / bw
    bound = 1.0 / (t_flop + t_randn + t_mem)
    print(f"roofline (rows={rows}): matmul {gemm['best_rate'] / 1e9:.1f} GFLOP/s at the fastest GEMM for each product "
          f"(torch's bmm alone: {gemm['torch_rate'] / 1e9:.1f}), draws {max(randn, counter) / 1e6:.0f} M/s (torch.randn "
          f"{randn / 1e6:.0f}, counter source {counter / 1e6:.0f}), "
          f"bandwidth {bw / 1e9:.1f} GB/s -> per chain-step {t_flop * 1e6:.0f} us FLOPs + {t_randn * 1e6:.0f} us draws "
          f"+ {t_mem * 1e6:.0f} us memory = bound {bound:.0f} chain-steps/s")
    return bound


def write_json(path: str, obj: dict) -> None:
    """Atomic write (temp file + rename), so a reader never sees half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def find_venvs(spec: str) -> tuple[list[str], list[str]]:
    """Comma-separated venv dirs (relative to the repo root) -> (usable, missing)."""
    usable, missing = [], []
    for d in filter(None, (x.strip() for x in spec.split(","))):
        full = os.path.normpath(os.path.join(REPO, d))
        (usable if os.path.exists(os.path.join(full, "bin", "python")) else missing).append(full)
    return usable, missing


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    ap.add_argument("--regime", choices=("small", "paper", "all"), default="all")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for every library (default 1: on a shared machine more threads spin)")
    ap.add_argument("--devinterp-venvs", default=DEFAULT_VENVS,
                    help=f"comma-separated devinterp venvs, relative to the repo root (default {DEFAULT_VENVS})")
    ap.add_argument("--repeats", type=int, default=3,
                    help="paired rounds per regime: every library (and the roofline) timed once a round, ratios "
                         "within a round, medians reported (default 3)")
    ap.add_argument("--json", metavar="OUT", help="also write the numbers to this JSON file")
    ap.add_argument("--device", default="cpu", help="where every library samples (default cpu; e.g. cuda)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--problem", help=argparse.SUPPRESS)
    ap.add_argument("--settings", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.problem, args.settings, args.threads)

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available in this torch ({torch.__version__})")
    sys.path.insert(0, REPO)
    torch.set_num_threads(args.threads)
    venvs, missing = find_venvs(args.devinterp_venvs)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} (1 min)")
    print("devinterp venvs: " + (", ".join(os.path.relpath(v, REPO) for v in venvs) or "none"), end="")
    print(("; NOT FOUND: " + ", ".join(os.path.relpath(v, REPO) for v in missing)
           + " (bash benchmarks/install_devinterp.sh)") if missing else "")
    if not venvs:
        print("devinterp NOT INSTALLED: slt timed alone")
    else:
        print(CONVENTIONS)
    if args.device != "cpu":
        print(f"device {args.device}: {torch.cuda.get_device_name(args.device)}")
    report = dict(torch=torch.__version__, threads=torch.get_num_threads(), cpus=os.cpu_count(), device=args.device,
                  loadavg_start=os.getloadavg(), quick=args.quick, cases=[])
    q = 4 if args.quick else 1
    with tempfile.TemporaryDirectory() as tmpdir:
        def record(row):
            report["cases"].append(row)
            if args.json:
                write_json(args.json, dict(report, loadavg_now=os.getloadavg()))

        if args.regime in ("small", "all"):
            print("== small models, 64 chains (target >= 20x) ==")
            record(compare("RRR 5x3x5, n=1024, batch 128", rrr_problem(),
                           Settings(eps=1e-4, gamma=100.0, n_beta=1024 / math.log(1024), chains=64, draws=200 // q,
                                    burnin=50 // q, batch=128, repeats=args.repeats, device=args.device), venvs, tmpdir))
            prob = quad_problem(7, 3, 0.8, "mse")
            n = len(prob["y"])
            record(compare(f"QuadNet p=7 K=3, n={n}, full batch", prob,
                           Settings(eps=1e-3, gamma=100.0, n_beta=n / math.log(n), chains=64, draws=200 // q,
                                    burnin=50 // q, batch=None, repeats=args.repeats, device=args.device), venvs,
                           tmpdir))
        if args.regime in ("paper", "all"):
            print("== paper's setting: p=53, K=1024, 40% train, batch 128, centred MSE (target >= 2x); slt with each "
                  "noise source (slt.sampling.noise) ==")
            prob = quad_problem(53, 1024, 0.4, "centred_mse")
            n = len(prob["y"])
            for chains in (3, 32):
                record(compare(f"QuadNet p=53 K=1024, n={n}, batch 128", prob,
                               Settings(eps=5e-4, gamma=5.0, n_beta=n / math.log(n), chains=chains, draws=60 // q,
                                        burnin=10 // q, batch=128, repeats=args.repeats, device=args.device),
                               venvs, tmpdir,
                               bound=lambda c=chains: roofline(53, 1024, 128, c, args.device),
                               noises=("torch", "counter")))
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
