"""SGLD protocols at the checkpoints of the exact-lambda claim (issue 12, Deliver 4 and 5).

Which SGLD reading does the published LLC curve come from, and can local SGLD stand in for the exact lambda? At
the checkpoints that claim 7 (:mod:`slt.checks.claims.exact_trajectory`) chooses, each protocol below estimates

    lambda_hat = n_beta (E[L(w)] - L(w*)),   w ~ exp(-n_beta L(w) - gamma/2 |w - w*|^2)   (Lau et al. 2023, eq. 8),

and prints the chains' reach rms(w - w*) / rms(w*) (:func:`slt.sampling.llc.displacement_ratio`): a reach near or
above 1 means the chains left the neighbourhood of w* and the number describes a region, not the point.

Protocols (:class:`SGLDProtocol`):
  * PAPER_APPH: the grokking-LLC paper's App. H numbers: eps 1e-4, n_beta 30, gamma 5, 3 chains, 100 burn-in,
    600 draws, at the trained checkpoint as saved (full batch, so no minibatch noise is added);
  * DEVINTERP: the same with their code's inverse temperature, devinterp's default n_beta = b / log b, b the
    batch size (128 per step, minibatches);
  * LOCAL: the local recipe of issue 12 (experiments/local_sgld, sections 3 and 5): at the POLISHED checkpoint (the
    same float64 Levenberg-Marquardt polish as the exact claim, so the same point), n_beta 1e10, gamma 1e4,
    automatic eps at step_scale 0.5, 4 chains x (10,000 + 10,000) steps. Why n_beta / gamma = 1e6: under the
    quadratic approximation the estimator counts a Hessian eigenvalue h by n_beta h / (n_beta h + gamma)
    (slt.sampling.quadratic_approx, eq. 1), and the nonzero spectrum of a grokked p = 23 net reaches down to
    h ~ 1e-6 (5 decades below its top, 0.137): at n_beta / gamma = 1e4 (the earlier recipe, n_beta 1e8) the
    soft count is 2,962 of rank/2 = 3,488.5 (-15%) and SGLD gave 2,974; at 1e6 it is 3,451 (-1.1%). The flat
    directions then need ~n_beta h_max / gamma steps to relax, hence 20,000 steps;
  * LOCAL_QUICK: the earlier recipe (n_beta 1e8, 500 + 500 steps) for the quick profile's small nets: it counts
    only the Hessian directions with h >~ 1e-4, so expect it 3-15% below rank/2.

Claims (``local_llc``), per protocol P:
  * local/P/peak_before_jump: the estimate falls from its peak by >= 5% (the paper's ~5% fall) before the test
    accuracy jumps: lag = grokking step - drop step (:func:`slt.checks.timing.llc_drop_step` with the estimates'
    SE) > 0 across seeds (:func:`slt.checks.verdict.compare_sign`);
  * local/P/vs_exact/step S: the seed-mean estimate at checkpoint S against the seed-mean exact lambda
    (:func:`slt.checks.verdict.compare_value`, z with the SGLD SE; diagnostics = relaxed and reach < 0.1), only
    where every seed's lambda is exact.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from slt.checks.report import ClaimResult
from slt.checks.timing import MIN_REL_DROP, lag_stats, llc_drop_step
from slt.checks.verdict import INCONCLUSIVE, Verdict, compare_sign, compare_value

KEYS = ("local_llc",)
TITLE = "SGLD protocols (paper App. H, devinterp, local) at the exact claim's checkpoints"
_KEY_VERSION = 1
REACH_LOCAL = 0.1  # issue 12: a local measurement keeps rms(w - w*) / rms(w*) below 0.1


@dataclass(frozen=True)
class SGLDProtocol:
    """One SGLD setting, named. ``n_beta`` None means devinterp's default b / log b (b the batch size, or the
    number of training rows for the full batch); ``at`` "checkpoint" samples the trained weights as saved,
    "polished" the float64 LM-polished critical point next to them (slt.theory.polish, as claim 7)."""

    name: str
    n_beta: float | None
    gamma: float
    eps: float | None  # None: automatic (step_scale / top curvature, slt.sampling.llc.auto_eps)
    chains: int
    burnin: int
    draws: int
    batch_size: int | None = None
    step_scale: float = 0.05
    precondition: str | None = None
    at: str = "checkpoint"

    def __post_init__(self):
        if self.at not in ("checkpoint", "polished"):
            raise ValueError(f"at must be 'checkpoint' or 'polished', got {self.at!r}")
        if self.n_beta is not None and not (math.isfinite(self.n_beta) and self.n_beta > 0):
            raise ValueError(f"n_beta must be None (b / log b) or a finite number > 0, got {self.n_beta!r}")

    def n_beta_for(self, n: int) -> float:
        if self.n_beta is not None:
            return float(self.n_beta)
        b = n if self.batch_size is None else min(self.batch_size, n)
        return b / math.log(b)

    def label(self) -> str:
        nb = "b/log b" if self.n_beta is None else f"{self.n_beta:g}"
        eps = "auto" if self.eps is None else f"{self.eps:g}"
        batch = "full" if self.batch_size is None else str(self.batch_size)
        return (f"{self.name}: n_beta {nb}, gamma {self.gamma:g}, eps {eps}, {self.chains} chains x ({self.burnin} + "
                f"{self.draws}), batch {batch}, at the {self.at} point")


PAPER_APPH = SGLDProtocol("paper-apph", n_beta=30.0, gamma=5.0, eps=1e-4, chains=3, burnin=100, draws=600)
DEVINTERP = SGLDProtocol("devinterp", n_beta=None, gamma=5.0, eps=1e-4, chains=3, burnin=100, draws=600, batch_size=128)
LOCAL = SGLDProtocol("local", n_beta=1e10, gamma=1e4, eps=None, chains=4, burnin=10_000, draws=10_000, step_scale=0.5,
                     at="polished")
LOCAL_QUICK = replace(LOCAL, name="local-quick", n_beta=1e8, burnin=500, draws=500)
PROTOCOLS = {p.name: p for p in (PAPER_APPH, DEVINTERP, LOCAL, LOCAL_QUICK)}


@dataclass(frozen=True)
class LocalLLCSpec:
    """The protocols to run at the checkpoints of ``exact`` (a :class:`slt.checks.profiles.ExactSpec`: its run,
    its checkpoint choice and its exact values are reused, through the same cache)."""

    exact: object  # ExactSpec
    protocols: tuple[SGLDProtocol, ...] = (PAPER_APPH, DEVINTERP, LOCAL)
    seed: int = 1


def _net_from_points(points, p: int, width: int, tied: bool, n_out: int, device: str = "cpu"):
    """A float64 QuadraticNet whose copies are the given (U, V or None, A) arrays."""
    import torch

    from slt.models import QuadraticNet

    net = QuadraticNet(p, width, n_copies=len(points), tied=tied, n_out=n_out, dtype=torch.float64, device=device)
    with torch.no_grad():
        net.U.copy_(torch.as_tensor(np.stack([u for u, _, _ in points])))
        if not tied:
            net.V.copy_(torch.as_tensor(np.stack([v for _, v, _ in points])))
        net.A.copy_(torch.as_tensor(np.stack([a for _, _, a in points])))
    return net


def sgld_at_checkpoint(model, data, loss_name: str, protocol: SGLDProtocol, seed: int = 1, device: str = "cpu") -> dict:
    """Every copy (seed) of a checkpoint's net under ``protocol``: plain numbers per copy (llc, se, reach, R-hat,
    relaxed, flags, eps) and, at="polished", how far the polish moved each copy and whether it reached a critical
    point (a copy that is not polished to a critical point is sampled where the polish stopped, and says so)."""
    import warnings

    import torch

    from slt.losses import get_loss
    from slt.sampling import estimate_llc_copies
    from slt.theory.jacobian import point_from_net
    from slt.theory.polish import polish

    a, b, y = data.train()
    S = model.n_copies
    polish_info = [None] * S
    if protocol.at == "polished":
        an, bn, yn = (t.cpu().numpy() for t in (a, b, y))
        pts = []
        for s in range(S):
            # the exact claim's polish (slt.checks.claims.exact_trajectory.exact_at_checkpoint): the same point
            pol = polish(*point_from_net(model, s), an, bn, yn, centred=loss_name == "centred_mse", max_iter=20,
                         newton_iter=0, device=device)
            pts.append((pol.U, pol.V, pol.A))
            polish_info[s] = {"critical": pol.critical, "kind": pol.kind, "rel_distance": pol.rel_distance}
        net = _net_from_points(pts, model.config.p, model.config.width, model.tied, model.config.out_dim, device)
    else:
        net = model.double().to(device)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = estimate_llc_copies(net, get_loss(loss_name), (a, b, y), n_beta=protocol.n_beta_for(int(a.numel())),
                                  gamma=protocol.gamma, eps=protocol.eps, num_chains=protocol.chains,
                                  num_burnin=protocol.burnin, num_draws=protocol.draws, batch_size=protocol.batch_size,
                                  step_scale=protocol.step_scale, precondition=protocol.precondition, seed=seed)
    del caught  # the numbers below carry the same information per copy
    return {"llc": [r.llc for r in res], "se": [r.llc_se for r in res],
            "reach": [r.extra["displacement_ratio"] for r in res], "rhat": [r.diagnostics.rhat for r in res],
            "relaxed": [bool(r.diagnostics.relaxed) for r in res], "flags": [list(r.diagnostics.flags) for r in res],
            "eps": [r.eps for r in res], "n_beta": res[0].n_beta, "polish": polish_info,
            "seconds": time.perf_counter() - t0}


def _key(cfg: dict, step: int, protocol: SGLDProtocol, seed: int) -> dict:
    return {"run": cfg, "step": step, "protocol": asdict(protocol), "seed": seed, "version": _KEY_VERSION}


def _protocol_point(ctx, cfg: dict, run_dir, step: int, protocol: SGLDProtocol, seed: int) -> dict:
    from slt.checks import backend

    def compute() -> dict:
        _, (cp,) = backend.load_checkpoints(run_dir, [step], device="cpu")
        return {"step": step, **sgld_at_checkpoint(cp.model, cp.data, cfg["loss"], protocol, seed, ctx.device)}

    return ctx.cache.get_or_compute("local-llc", _key(cfg, step, protocol, seed), compute)


def units(ctx, prof, want) -> list:
    """Units of work for the task layer (:mod:`slt.checks.claims`): the exact claim's training run, then per
    selected checkpoint its exact point (the same cache key as claim 7, so shared) and one point per protocol.
    Reads ``prof.local_llc`` (a :class:`LocalLLCSpec`, or None / absent: nothing to do)."""
    from slt.checks.claims.common import Unit, _ckpt_schedule, train_unit
    from slt.checks.claims.exact_trajectory import _exact_key, _exact_point, _exact_steps

    spec = getattr(prof, "local_llc", None)
    if spec is None:
        return []
    ex = spec.exact

    def after_train(cfg: dict, run_dir, summary: dict) -> list:
        steps, _ = _exact_steps(run_dir, ex, summary)
        out = [Unit("exact", f"exact step {st}", "exact", _exact_key(cfg, st), _exact_point,
                    (cfg, str(run_dir), st, ex.device, ex.n_probe), device=ex.device) for st in steps]
        out += [Unit("sample", f"{pr.name} step {st}", "local-llc", _key(cfg, st, pr, spec.seed), _protocol_point,
                     (cfg, str(run_dir), st, pr, spec.seed), device=ctx.device) for st in steps for pr in spec.protocols]
        return out

    return [train_unit(ctx, "exact", ex.train, _ckpt_schedule(ex.train, ex.n_checkpoints), after_train)]


def verdict(ctx, prof, want) -> list[ClaimResult]:
    spec = getattr(prof, "local_llc", None)
    return [] if spec is None else claim_protocol_trajectory(ctx, spec)


def run_protocols(ctx, spec: LocalLLCSpec) -> dict:
    """The exact claim's run and checkpoints (:func:`slt.checks.claims.exact_trajectory.run_exact_trajectory`,
    cached) and every protocol of ``spec`` at each of those checkpoints (one cached point per (step, protocol))."""
    from slt.checks.claims.exact_trajectory import run_exact_trajectory

    traj = run_exact_trajectory(ctx, spec.exact)
    cfg, run_dir = traj["config"], traj["run_dir"]
    steps = [r["step"] for r in traj["rows"]]
    out = {}
    for proto in spec.protocols:
        t0 = time.perf_counter()
        rows = []
        for st in steps:
            row = _protocol_point(ctx, cfg, run_dir, st, proto, spec.seed)
            rows.append(row)
            ctx.log(f"  {proto.name} step {st}: LLC {[round(v, 1) for v in row['llc']]}, reach "
                    f"{[round(v, 3) for v in row['reach']]}")
        out[proto.name] = {"protocol": asdict(proto), "label": proto.label(), "rows": rows,
                           "wall_s": time.perf_counter() - t0}
    return {"exact": traj, "protocols": out, "steps": steps}


def _peak_verdict(name: str, steps, rows, grok, S: int) -> tuple[Verdict, dict]:
    drops, peaks, falls = [], [], []
    t = np.asarray(steps, float)
    for s in range(S):
        y = np.array([r["llc"][s] for r in rows], float)
        se = np.array([r["se"][s] for r in rows], float)
        d = llc_drop_step(t, y, np.where(np.isfinite(se), se, 0.0), min_rel_drop=MIN_REL_DROP) if len(t) >= 2 else None
        drops.append(None if d is None else d.step)
        i = int(np.nanargmax(y))
        peaks.append(float(t[i]))
        g = grok[s]
        before = [j for j in range(len(t)) if g is not None and i <= j and t[j] <= g]
        falls.append(float((y[i] - y[before[-1]]) / y[i]) if before else math.nan)
    lag = lag_stats(grok, drops)
    st = (f"under protocol {name} the LLC falls from its peak by >= {MIN_REL_DROP:.0%} before test accuracy jumps "
          "(the paper's peak-before-jump)")
    det = {"grokking_step": grok, "drop_step": drops, "peak_step": peaks, "fall_before_jump": falls, "lags": list(lag.lags)}
    if lag.n == 0:
        v = Verdict(f"local/{name}/peak_before_jump", st, INCONCLUSIVE, math.nan, math.nan, math.nan, math.nan, math.nan,
                    "agree if lag > 3 SE across seeds", "no seed has both a drop of the estimate and a grokking step", det)
    else:
        v = compare_sign(f"local/{name}/peak_before_jump", st, lag.mean, lag.se if lag.n > 1 else math.nan, details=det)
    return v, det


def _basin_verdict(name: str, rows, exact_rows, S: int) -> Verdict:
    """llc(memorising checkpoint) - llc(grokked checkpoint) > 0 under the protocol, at the checkpoints the exact
    claim compares (first with train acc >= 0.99 and test acc < 0.5; last with test acc >= 0.95), with the exact
    difference beside it where both exact values are known. SE: the chains' SEs of the two estimates (quadrature),
    pooled over the seeds that have both checkpoints."""
    from slt.checks.claims.exact_trajectory import GROKKED, MEMORISED, NOT_GENERALISED

    diffs, ses, exact_d = [], [], []
    for s in range(S):
        tr = [r["train_acc"][s] for r in exact_rows]
        te = [r["test_acc"][s] for r in exact_rows]
        i_mem = next((i for i in range(len(rows)) if tr[i] >= MEMORISED and te[i] < NOT_GENERALISED), None)
        i_grk = next((i for i in range(len(rows) - 1, -1, -1) if te[i] >= GROKKED), None)
        if i_mem is None or i_grk is None:
            continue
        diffs.append(rows[i_mem]["llc"][s] - rows[i_grk]["llc"][s])
        ses.append(math.hypot(rows[i_mem]["se"][s], rows[i_grk]["se"][s]))
        lm, lg = exact_rows[i_mem]["seeds"][s].get("lam"), exact_rows[i_grk]["seeds"][s].get("lam")
        exact_d.append(None if lm is None or lg is None else lm - lg)
    st = f"under protocol {name}: LLC(memorising checkpoint) > LLC(grokked checkpoint)"
    det = {"differences": diffs, "se": ses, "exact_differences": exact_d}
    if not diffs:
        return Verdict(f"local/{name}/basin_order", st, INCONCLUSIVE, math.nan, math.nan, math.nan, math.nan, math.nan,
                       "agree if the mean difference > 3 SE", "no seed has both a memorising and a grokked checkpoint "
                       "among the exact claim's checkpoints", det)
    m = float(np.mean(diffs))
    se = float(math.sqrt(sum(x * x for x in ses)) / len(ses))
    return compare_sign(f"local/{name}/basin_order", st, m, se, details=det)


def _plot(path, name: str, label: str, steps, rows, exact_rows, curves, grok, S: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from slt.runio import atomic_write

    fig, (ax, axr) = plt.subplots(2, 1, figsize=(7.5, 6.4), sharex=True, height_ratios=(3, 2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for s in range(S):
        c = colors[s % len(colors)]
        y = [r["llc"][s] for r in rows]
        e = [r["se"][s] for r in rows]
        ax.errorbar(steps, y, yerr=e, color=c, marker="o", ms=3, capsize=2, label=f"SGLD seed {s}")
        lam = [np.nan if x["seeds"][s].get("lower") is None else x["seeds"][s]["lower"] for x in exact_rows]
        ax.plot(steps, lam, color=c, ls="--", marker="x", label=f"exact rank/2 seed {s}")
        axr.plot(steps, [r["reach"][s] for r in rows], color=c, marker="o", ms=3)
        if grok[s] is not None:
            ax.axvline(grok[s], color=c, ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_ylabel("LLC")
    ax.set_title(label, fontsize=8)
    if curves:
        tw = ax.twinx()
        for s in range(S):
            try:
                cs = np.asarray(curves["step"], float)
                keep = cs > 0  # log axis
                tw.plot(cs[keep], np.asarray(curves["test_acc"])[keep, s], color=colors[s % len(colors)], lw=0.8,
                        alpha=0.5)
            except (KeyError, IndexError, TypeError):
                pass
        tw.set_ylabel("test accuracy (thin)")
    ax.legend(fontsize=6, loc="lower left")
    axr.axhline(REACH_LOCAL, color="k", lw=0.8, ls=":")
    axr.set_yscale("log")
    axr.set_ylabel("reach rms(w - w*)/rms(w*)")
    axr.set_xscale("log")
    axr.set_xlabel("training step")
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)


def claim_protocol_trajectory(ctx, spec: LocalLLCSpec) -> list[ClaimResult]:
    """One ClaimResult per protocol of ``spec`` (module docstring): peak-before-jump and, where the exact lambda
    is known at a checkpoint, the estimate against it; a figure per protocol."""
    res = run_protocols(ctx, spec)
    traj, steps = res["exact"], res["steps"]
    grok = traj["summary"]["grokking_step"]
    S = len(traj["config"]["seeds"])
    out = []
    for name, pr in res["protocols"].items():
        t0 = time.perf_counter()
        rows = pr["rows"]
        if not rows:
            v = Verdict(f"local/{name}/peak_before_jump", "peak before jump", INCONCLUSIVE, math.nan, math.nan, math.nan,
                        math.nan, math.nan, "needs checkpoints", "the exact claim chose no checkpoint", {})
            out.append(ClaimResult(f"local_llc/{name}", f"SGLD protocol {name}", (v,), wall_s=0.0))
            continue
        verdicts = []
        v, det = _peak_verdict(name, steps, rows, grok, S)
        verdicts.append(v)
        table = []
        for st, r, ex in zip(steps, rows, traj["rows"]):
            lam = [x.get("lam") for x in ex["seeds"]]
            lower = [x.get("lower") for x in ex["seeds"]]
            z = [(r["llc"][s] - lam[s]) / r["se"][s] if lam[s] is not None and r["se"][s] > 0 else None for s in range(S)]
            table.append({"step": st, "llc": r["llc"], "se": r["se"], "reach": r["reach"], "rhat": r["rhat"],
                          "relaxed": r["relaxed"], "exact": lam, "exact_lower": lower, "z_vs_exact": z,
                          "rel_vs_exact": [(r["llc"][s] - lam[s]) / lam[s] if lam[s] else None for s in range(S)],
                          "test_acc": ex["test_acc"], "polish": r.get("polish")})
            if all(x is not None for x in lam):
                est, se = float(np.mean(r["llc"])), float(math.sqrt(sum(e * e for e in r["se"])) / S)
                ok = all(r["relaxed"]) and max(r["reach"]) < REACH_LOCAL
                verdicts.append(compare_value(f"local/{name}/vs_exact/step{st}", f"protocol {name} at step {st} "
                                              "estimates the exact lambda (seed means)", est, se, float(np.mean(lam)),
                                              diagnostics_ok=ok, diagnostics_note=f"relaxed {r['relaxed']}, reach "
                                              f"{[round(x, 3) for x in r['reach']]} (local needs < {REACH_LOCAL})",
                                              details={"per_seed": table[-1]}))
        verdicts.append(_basin_verdict(name, rows, traj["rows"], S))
        fig = f"local_llc_{name}.png"
        _plot(ctx.out / fig, name, pr["label"], steps, rows, traj["rows"], traj["summary"].get("metrics"), grok, S)
        reach = [x for r in rows for x in r["reach"]]
        notes = (f"Protocol {pr['label']}.",
                 "Per step (seed 0): " + "; ".join(
                     f"{t['step']}: {t['llc'][0]:.4g} ± {t['se'][0]:.2g}, reach {t['reach'][0]:.3f}, exact "
                     f"{t['exact'][0] if t['exact'][0] is not None else '>= %s' % t['exact_lower'][0]}" for t in table),
                 f"Reach rms(w - w*)/rms(w*) {min(reach):.3g}-{max(reach):.3g} (local: < {REACH_LOCAL}); peak steps "
                 f"{det['peak_step']}, fall from the peak before the jump {det['fall_before_jump']}, grokking {grok}.",
                 f"Sampling wall time {pr['wall_s']:.0f} s (cached after).")
        out.append(ClaimResult(f"local_llc/{name}", f"SGLD protocol {name} at the exact claim's checkpoints",
                               tuple(verdicts), data={"rows": table, "steps": steps, "protocol": pr["protocol"],
                                                      "grokking_step": grok, "peak": det},
                               figures=(fig,), notes=notes, wall_s=time.perf_counter() - t0))
    return out

