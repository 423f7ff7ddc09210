"""LLC estimation by SGLD: the kernel (sgld), the estimator (llc), diagnostics, calibration, plots."""
from slt.sampling.calibrate import CalibrationResult, CalibrationRow, Extrapolation, calibrate_sgld, extrapolate_to_zero
from slt.sampling.diagnostics import ess, fraction_below, mala_acceptance, rhat
from slt.sampling.llc import (
    LLCDiagnostics,
    LLCResult,
    LLCWarning,
    SGLDDivergenceError,
    estimate_llc,
    estimate_llc_copies,
    regression_mse,
)
from slt.sampling.plots import plot_calibration, plot_trace
from slt.sampling.quadratic_approx import HessianSpectrum, QuadraticPrediction, hessian_spectrum, predict_llc

__all__ = [
    "LLCDiagnostics", "LLCResult", "LLCWarning", "SGLDDivergenceError", "estimate_llc",
    "estimate_llc_copies", "regression_mse", "ess", "fraction_below", "mala_acceptance", "rhat",
    "CalibrationResult", "CalibrationRow", "Extrapolation", "calibrate_sgld", "extrapolate_to_zero",
    "plot_calibration", "plot_trace", "HessianSpectrum", "QuadraticPrediction", "hessian_spectrum", "predict_llc",
]
