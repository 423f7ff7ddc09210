"""Exact lambda (slt.theory.llc_at_point, dense float64 Jacobian SVD) at the polished nets -> nets/<name>.exact.json"""
import json, sys, time, os
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch
from slt.theory import llc_at_point
for name in sys.argv[1:]:
    d = torch.load(f"nets/{name}.pt")
    t0 = time.time()
    r = llc_at_point(d["U"].numpy(), d["V"].numpy(), d["A"].numpy(), d["a"].numpy(), d["b"].numpy(), d["y"].numpy(), centred=True)
    out = {k: (float(v) if hasattr(v, "__float__") and not isinstance(v, (bool, int)) else v) for k, v in vars(r).items()
           if isinstance(v, (int, float, bool, str)) or hasattr(v, "__float__")}
    out["elapsed_s"] = time.time() - t0
    print(name, out)
    json.dump(out, open(f"nets/{name}.exact.json", "w"), default=str)
