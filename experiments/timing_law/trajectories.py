"""Check the derivation's steps on measured trajectories: the Fourier / memorising split of the weights and the
decay rate of the memorising part against what each optimiser predicts (derivations/grokking_time.py).

    OMP_NUM_THREADS=1 python experiments/timing_law/trajectories.py     (-> trajectories.json, ~5 min)

The loop is slt.training's (same data split, init, minibatch order and optimiser for the same config), run by
hand so that the optimiser state can be read every RECORD steps. Fourier part theta_F: every embedding column
(U[:, unit], V[:, unit] over the token a in Z_p) and readout row (A[unit, :] over the output class) projected on
the real DFT basis vectors cos(2 pi k a/p), sin(2 pi k a/p) of the key frequencies k; the key frequencies are the
fewest that hold >= 90% of the final (grokked) net's non-constant spectral power, summed over U, V, A.
Memorising part theta_M = theta - theta_F. Predicted decay rate of |theta_M| per step from the weight-decay term
alone (H2 of the derivation: no mean data force on theta_M):
    AdamW:  -ln(1 - eta lambda) ~ eta lambda;
    Adam (coupled):  eta lambda <theta_M, theta / (sqrt(v_hat) + eps)> / |theta_M|^2, v_hat Adam's bias-corrected
    second moment read from the optimiser;
measured: the slope of -ln |theta_M| against step between memorisation and the 0.5 jump.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from slt.losses import accuracy, get_loss
from slt.runio import atomic_write_json
from slt.tasks import make_data
from slt.training import TrainConfig
from slt.training.checkpoints import build_model
from slt.training.loop import MinibatchSampler, make_optimizer

HERE = Path(__file__).resolve().parent
RECORD = 50
CASES = [("adam", 1e-3, 6e-5), ("adam", 1e-3, 2.4e-4), ("adamw", 1e-3, 1.2)]


def dft_basis(p: int) -> tuple[np.ndarray, list[int]]:
    """Orthonormal real DFT basis (p, p) as rows, and the frequency of each row (0 for the constant)."""
    a = np.arange(p)
    rows, freq = [np.ones(p) / math.sqrt(p)], [0]
    for k in range(1, (p - 1) // 2 + 1):
        rows += [np.cos(2 * np.pi * k * a / p) * math.sqrt(2 / p), np.sin(2 * np.pi * k * a / p) * math.sqrt(2 / p)]
        freq += [k, k]
    return np.array(rows), freq


def spectra(U, V, A, Q) -> np.ndarray:
    """Power per DFT row, summed over units and over U, V (token axis) and A (output axis): (p,)."""
    return ((Q @ U) ** 2).sum(1) + ((Q @ V) ** 2).sum(1) + ((Q @ A.T) ** 2).sum(1)


def fourier_parts(U, V, A, Q, mask) -> tuple:
    """theta_F of each tensor (projection on the DFT rows in mask), as tensors shaped like the inputs."""
    Qk = Q[mask]
    P = torch.as_tensor(Qk.T @ Qk, dtype=U.dtype)  # (p, p) projector on the key-frequency subspace
    return P @ U, P @ V, (P @ A.T).T


def run_case(opt_name: str, lr: float, wd: float, seeds=(0, 1), max_steps: int = 8000) -> dict:
    cfg = TrainConfig(p=53, width=512, train_fraction=0.4, seeds=tuple(seeds), optimizer=opt_name, lr=lr,
                      weight_decay=wd, batch_size=128, loss="centred_mse", steps=max_steps)
    data = make_data(cfg.p, cfg.op, cfg.train_fraction, cfg.data_seed)
    a_tr, b_tr, y_tr = data.train()
    a_te, b_te, y_te = data.test()
    model = build_model(cfg, torch.device("cpu"))
    opt = make_optimizer(cfg, model.parameters())
    loss_fn = get_loss(cfg.loss)
    sampler = MinibatchSampler(cfg.seeds, data.n_train, cfg.batch_size)
    names = ["U", "V", "A"]
    rec: dict[str, list] = {"step": [], "train_acc": [], "test_acc": [], "params": []}
    t0 = time.time()
    for step in range(max_steps + 1):
        if step % RECORD == 0:
            with torch.no_grad():
                tr = accuracy(model(a_tr, b_tr), y_tr).tolist()
                te = accuracy(model(a_te, b_te), y_te).tolist()
                st = {n: opt.state.get(getattr(model, n), {}) for n in names}
                snap = {}
                for n in names:
                    w = getattr(model, n).detach().clone()
                    s = st[n]
                    if "exp_avg_sq" in s:
                        k = int(s["step"])
                        vhat = s["exp_avg_sq"] / (1 - cfg.betas[1] ** k)
                        snap[n] = (w, vhat.sqrt() + 1e-8)
                    else:
                        snap[n] = (w, None)
            rec["step"].append(step)
            rec["train_acc"].append(tr)
            rec["test_acc"].append(te)
            rec["params"].append(snap)
            if min(te) >= 0.99:
                break
        idx = sampler.next()
        per_copy = loss_fn(model(a_tr[idx], b_tr[idx]), y_tr[idx])
        opt.zero_grad(set_to_none=True)
        per_copy.sum().backward()
        opt.step()
    wall = time.time() - t0
    # per snapshot and seed: the spectral power P_k of theta at each frequency k (k = 0: the constant) and, for Adam,
    # c_k = <P_k theta, theta / (sqrt(v_hat) + eps)>; any Fourier / memorising split is then a sum over k (the DFT
    # projectors are orthogonal), chosen afterwards by key_frequencies()
    Q, freq = dft_basis(cfg.p)
    freq = np.array(freq)
    K = (cfg.p - 1) // 2 + 1
    out = {"optimizer": opt_name, "lr": lr, "wd": wd, "steps": rec["step"], "wall_s": wall, "seeds": []}
    # group the DFT rows by frequency: G (K, p) sums squared coefficients of the rows of frequency k
    G = torch.as_tensor(np.stack([(freq == k).astype(float) for k in range(K)]))
    Qt = torch.as_tensor(Q)

    def unit_power(ws):
        """(K, m): power of each unit's (U column, V column, A row) at each frequency."""
        return sum(G @ (Qt @ w) ** 2 for w in ws)

    def unit_cross(ws, dens):
        """(K, m): <P_k w_unit, (w / den)_unit> summed over the three tensors."""
        return sum(G @ ((Qt @ w) * (Qt @ (w / d))) for w, d in zip(ws, dens))

    for c, seed in enumerate(cfg.seeds):
        def tensors(snap):
            ws = [snap[n][0][c].double() for n in names]
            ws = [ws[0], ws[1], ws[2].T]  # token / class axis first: (p, m) each
            dens = None
            if snap["U"][1] is not None:
                ds = [snap[n][1][c].double() for n in names]
                dens = [ds[0], ds[1], ds[2].T]
            return ws, dens

        wf, _ = tensors(rec["params"][-1])
        Pf = unit_power(wf)  # (K, m) at the end (grokked)
        key = Pf[1:].argmax(0) + 1  # each unit's own key frequency (Gromov: one frequency per unit)
        share_final = (Pf[key, torch.arange(Pf.shape[1])] / Pf.sum(0)).tolist()
        nF, nT, cF, cT, Xm, share = [], [], [], [], [], []
        for snap in rec["params"]:
            ws, dens = tensors(snap)
            P = unit_power(ws)
            pF = P[key, torch.arange(P.shape[1])]
            nF.append(float(pF.sum()))
            nT.append(float(P.sum()))
            share.append(float(torch.median(pF / P.sum(0))))
            if dens is not None:
                C = unit_cross(ws, dens)
                cF.append(float(C[key, torch.arange(C.shape[1])].sum()))
                cT.append(float(C.sum()))
                Xm.append(float(torch.cat([(wd * w.abs() / d).flatten() for w, d in zip(ws, dens)]).median()))
            else:
                cF.append(None)
                cT.append(None)
                Xm.append(None)
        tr = [r[c] for r in rec["train_acc"]]
        te = [r[c] for r in rec["test_acc"]]
        out["seeds"].append({"seed": seed, "F2": nF, "T2": nT, "cF": cF, "cT": cT, "x_median": Xm,
                             "median_unit_key_share": share, "final_unit_key_share_median": float(np.median(share_final)),
                             "n_distinct_keys": int(len(set(key.tolist()))), "test_acc": te, "train_acc": tr,
                             "memorisation": next((s for s, v in zip(rec["step"], tr) if v >= 0.99), None),
                             "jump50": next((s for s, v in zip(rec["step"], te) if v >= 0.5), None),
                             "jump95": next((s for s, v in zip(rec["step"], te) if v >= 0.95), None)})
    return out


def summarise(d: dict) -> list[dict]:
    """Per seed: |theta_F| (each unit's power at its own key frequency, the one it ends with), |theta_M| (the rest),
    and the decay-rate fit of |theta_M| between memorisation and the 0.5 jump against the rate predicted from the
    weight-decay term alone."""
    lr, wd, steps = d["lr"], d["wd"], d["steps"]
    out = []
    for sd in d["seeds"]:
        nF = [math.sqrt(x) for x in sd["F2"]]
        nT = [math.sqrt(x) for x in sd["T2"]]
        nM = [math.sqrt(max(t - f, 0.0)) for t, f in zip(sd["T2"], sd["F2"])]
        kp = []
        for f2, t2, cf, ct in zip(sd["F2"], sd["T2"], sd["cF"], sd["cT"]):
            if d["optimizer"] == "adamw":
                kp.append(-math.log(1 - lr * wd))
            elif ct is not None:
                kp.append(lr * wd * (ct - cf) / (t2 - f2))
            else:
                kp.append(None)
        mem, j50 = sd["memorisation"], sd["jump50"]
        fit = None
        if mem is not None and j50 is not None and j50 - mem >= 3 * RECORD:
            i0, i1 = steps.index(mem), steps.index(j50)
            slope = float(np.polyfit(np.array(steps[i0:i1 + 1], float), -np.log(np.array(nM[i0:i1 + 1])), 1)[0])
            kpp = [k for k in kp[i0:i1 + 1] if k is not None]
            # |theta_M| first keeps growing after memorisation; its decay phase runs from its peak to the jump
            ip = i0 + int(np.argmax(nM[i0:i1 + 1]))
            late = (float(np.polyfit(np.array(steps[ip:i1 + 1], float), -np.log(np.array(nM[ip:i1 + 1])), 1)[0])
                    if i1 - ip >= 3 else None)
            kpl = [k for k in kp[ip:i1 + 1] if k is not None]
            fit = {"peak_M_step": steps[ip], "norm_M_peak": nM[ip], "norm_F_at_peak_M": nF[ip],
                   "measured_rate_from_peak": late, "predicted_rate_from_peak": float(np.mean(kpl)) if kpl else None,
                   "measured_rate": slope, "predicted_rate": float(np.mean(kpp)) if kpp else None, "eta_lambda": lr * wd,
                   "ratio_F_over_M_at_mem": nF[i0] / nM[i0], "ratio_F_over_M_at_j50": nF[i1] / nM[i1],
                   "norm_M_mem": nM[i0], "norm_M_j50": nM[i1], "norm_F_mem": nF[i0], "norm_F_j50": nF[i1],
                   "norm_total_mem": nT[i0], "norm_total_j50": nT[i1],
                   "median_x_at_mem": sd["x_median"][i0], "median_x_at_j50": sd["x_median"][i1],
                   "unit_key_share_mem": sd["median_unit_key_share"][i0],
                   "unit_key_share_j50": sd["median_unit_key_share"][i1]}
        out.append({"seed": sd["seed"], "n_distinct_keys": sd["n_distinct_keys"],
                    "final_unit_key_share_median": sd["final_unit_key_share_median"], "memorisation": mem,
                    "jump50": j50, "jump95": sd["jump95"], "norm_F": nF, "norm_M": nM, "norm_total": nT,
                    "predicted_rate": kp, "decay_fit": fit, "test_acc": sd["test_acc"], "train_acc": sd["train_acc"],
                    "median_unit_key_share": sd["median_unit_key_share"], "x_median": sd["x_median"]})
    return out


def main() -> int:
    torch.set_num_threads(1)
    path = HERE / "trajectories_units.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    for opt_name, lr, wd in CASES:
        key = f"{opt_name}_lr{lr:g}_wd{wd:g}"
        if key in done:
            continue
        done[key] = run_case(opt_name, lr, wd)
        atomic_write_json(path, done)
        for s in summarise(done[key]):
            f = s["decay_fit"] or {}
            print(f"{key} seed {s['seed']}: {s['n_distinct_keys']} key freqs, unit share {s['final_unit_key_share_median']:.2f}; mem {s['memorisation']} j50 {s['jump50']} "
                  f"rate measured {f.get('measured_rate')} predicted {f.get('predicted_rate')} "
                  f"|F|/|M| {f.get('ratio_F_over_M_at_mem')} -> {f.get('ratio_F_over_M_at_j50')}", flush=True)
    atomic_write_json(HERE / "trajectories.json",
                      {k: {**{a: b for a, b in d.items() if a != "seeds"}, "seeds": summarise(d)} for k, d in done.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
