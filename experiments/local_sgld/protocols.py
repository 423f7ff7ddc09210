"""Issue 12 Deliver 4 and 5: the SGLD protocols of slt.checks.local_llc at the exact claim's checkpoints.

    python protocols.py quick|default|full [protocol names...]   -> protocols_<profile>/ (report figures, JSON)

Runs claim 7's training run and exact values (the same cache key as `slt check`, so a check output folder can
be reused with OUT=...), then PAPER_APPH, DEVINTERP and LOCAL (LOCAL_QUICK for the quick profile) at the same
checkpoints, and writes one figure per protocol plus protocols_<profile>.json with every number.
"""
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

torch.set_num_threads(1)
from slt.checks.cache import PointCache  # noqa: E402
from slt.checks.claims import Context  # noqa: E402
from slt.checks.local_llc import PROTOCOLS, LocalLLCSpec, claim_protocol_trajectory  # noqa: E402
from slt.checks.profiles import profile  # noqa: E402

HERE = Path(__file__).resolve().parent
name = sys.argv[1] if len(sys.argv) > 1 else "quick"
wanted = sys.argv[2:] or (["paper-apph", "devinterp", "local-quick" if name == "quick" else "local"])
out = Path(os.environ.get("OUT", HERE / f"protocols_{name}"))
out.mkdir(parents=True, exist_ok=True)
ctx = Context(out, PointCache(out / "cache"))
spec = LocalLLCSpec(profile(name).exact, tuple(PROTOCOLS[w] for w in wanted))
t0 = time.perf_counter()
claims = claim_protocol_trajectory(ctx, spec)
wall = time.perf_counter() - t0
for c in claims:
    print(f"\n== {c.title}")
    for n in c.notes:
        print(n)
    for v in c.verdicts:
        print(f"  {v.claim}: {v.status} (est {v.estimate:.4g} ± {v.se:.2g}, theory {v.theory:.4g}, z {v.z:.1f}) {v.reason}")
print(f"total {wall:.0f} s")
json.dump({"profile": name, "wall_s": wall, "claims": [c.to_dict() for c in claims]},
          open(HERE / f"protocols_{name}.json", "w"), indent=1, default=float)
