from slt.sampling import calibrate_sgld, estimate_llc  # noqa: E402,F401  (LLC by SGLD, issue 3)
