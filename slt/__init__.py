from slt.sampling import calibrate_sgld, estimate_llc  # noqa: E402,F401  (LLC by SGLD, issue 3)
from slt.theory.exact_scale import ExactLLC, exact_llc, exact_llc_net  # noqa: E402,F401  (exact lambda at scale, issue 11)
from slt.theory.polish import PolishResult, polish, polish_net  # noqa: E402,F401  (checkpoint -> critical point)
from slt.timing_law import JumpPrediction, predict_jump_step  # noqa: E402,F401  (grokking time law, issue 14)
