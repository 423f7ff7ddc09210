"""Shared helpers for the local-SGLD experiments: load a polished net as a float64 QuadraticNet."""
import torch
from slt.models import QuadraticNet


def load(name: str, copies: int = 1):
    d = torch.load(f"nets/{name}.pt")
    U, V, A = d["U"], d["V"], d["A"]
    p, m = U.shape
    net = QuadraticNet(p, m, n_copies=copies, dtype=torch.float64)
    with torch.no_grad():
        net.U.copy_(U.expand(copies, -1, -1)); net.V.copy_(V.expand(copies, -1, -1)); net.A.copy_(A.expand(copies, -1, -1))
    return net, (d["a"], d["b"], d["y"]), d["meta"]
