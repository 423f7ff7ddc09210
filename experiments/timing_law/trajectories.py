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
    # key frequencies from the final net, per seed; then the split along the trajectory
    Q, freq = dft_basis(cfg.p)
    freq = np.array(freq)
    out = {"optimizer": opt_name, "lr": lr, "wd": wd, "steps": rec["step"], "wall_s": wall, "seeds": []}
    for c, seed in enumerate(cfg.seeds):
        fin = rec["params"][-1]
        U, V, A = (fin[n][0][c].double().numpy() for n in names)
        pw = spectra(U, V, A, Q)
        per_k = np.array([pw[freq == k].sum() for k in range(1, (cfg.p - 1) // 2 + 1)])
        order = np.argsort(per_k)[::-1]
        cum = np.cumsum(per_k[order]) / per_k.sum()
        keys = sorted(int(k) + 1 for k in order[: int(np.searchsorted(cum, 0.9)) + 1])
        mask = np.isin(freq, keys)
        nF, nM, nT, k_pred, x_med = [], [], [], [], []
        for snap in rec["params"]:
            Ut, Vt, At = (snap[n][0][c].double() for n in names)
            F = fourier_parts(Ut, Vt, At, Q, mask)
            M = [w - f for w, f in zip((Ut, Vt, At), F)]
            nf2 = sum(float((f ** 2).sum()) for f in F)
            nm2 = sum(float((m ** 2).sum()) for m in M)
            nF.append(math.sqrt(nf2))
            nM.append(math.sqrt(nm2))
            nT.append(math.sqrt(nf2 + nm2))
            if opt_name == "adam" and snap["U"][1] is not None:
                num, xs = 0.0, []
                for n, m in zip(names, M):
                    w, den = snap[n][0][c].double(), snap[n][1][c].double()
                    num += float((m * w / den).sum())
                    xs.append((wd * w.abs() / den).flatten())
                k_pred.append(lr * wd * num / nm2)
                x_med.append(float(torch.cat(xs).median()))
            elif opt_name == "adamw":
                k_pred.append(-math.log(1 - lr * wd))
                x_med.append(None)
            else:
                k_pred.append(None)
                x_med.append(None)
        tr = [r[c] for r in rec["train_acc"]]
        te = [r[c] for r in rec["test_acc"]]
        mem = next((s for s, v in zip(rec["step"], tr) if v >= 0.99), None)
        j50 = next((s for s, v in zip(rec["step"], te) if v >= 0.5), None)
        j95 = next((s for s, v in zip(rec["step"], te) if v >= 0.95), None)
        fit = None
        if mem is not None and j50 is not None and j50 - mem >= 3 * RECORD:
            i0, i1 = rec["step"].index(mem), rec["step"].index(j50)
            xs_ = np.array(rec["step"][i0:i1 + 1], float)
            ys_ = -np.log(np.array(nM[i0:i1 + 1]))
            slope = float(np.polyfit(xs_, ys_, 1)[0])
            kp = [k for k in k_pred[i0:i1 + 1] if k is not None]
            fit = {"measured_rate": slope, "predicted_rate": float(np.mean(kp)) if kp else None,
                   "eta_lambda": lr * wd,
                   "ratio_F_over_M_at_mem": nF[i0] / nM[i0], "ratio_F_over_M_at_j50": nF[i1] / nM[i1],
                   "norm_M_mem": nM[i0], "norm_M_j50": nM[i1], "norm_F_mem": nF[i0], "norm_F_j50": nF[i1],
                   "median_x_at_mem": x_med[i0], "median_x_at_j50": x_med[i1]}
        out["seeds"].append({"seed": seed, "key_frequencies": keys, "memorisation": mem, "jump50": j50, "jump95": j95,
                             "norm_F": nF, "norm_M": nM, "norm_total": nT, "predicted_rate": k_pred,
                             "median_x": x_med, "test_acc": te, "train_acc": tr, "decay_fit": fit})
    return out


def main() -> int:
    torch.set_num_threads(1)
    path = HERE / "trajectories.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    for opt_name, lr, wd in CASES:
        key = f"{opt_name}_lr{lr:g}_wd{wd:g}"
        if key in done:
            continue
        done[key] = run_case(opt_name, lr, wd)
        atomic_write_json(path, done)
        for s in done[key]["seeds"]:
            f = s["decay_fit"] or {}
            print(f"{key} seed {s['seed']}: keys {s['key_frequencies']} mem {s['memorisation']} j50 {s['jump50']} "
                  f"rate measured {f.get('measured_rate')} predicted {f.get('predicted_rate')} "
                  f"|F|/|M| {f.get('ratio_F_over_M_at_mem')} -> {f.get('ratio_F_over_M_at_j50')}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
