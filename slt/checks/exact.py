"""Moved to :mod:`slt.checks.claims.exact_trajectory` (claim 7); these names stay importable from here."""
from slt.checks.claims.exact_trajectory import (EXACT_MIN_FALL, PROTOCOL, basin_references,  # noqa: F401
                                                claim_exact_trajectory, exact_at_checkpoint, run_exact_trajectory)
from slt.checks.claims.common import flatness_at_checkpoints  # noqa: F401
