"""Exact learning coefficients (RLCTs) and the theory of the quadratic network.

Public API (kept current; ``slt check`` reads it). lambda values are exact SymPy numbers unless marked.

General results, ``slt.theory.exact`` -> (lambda: sympy.Rational, m: int):
    regular(d)                          lambda = d/2, m = 1
    normal_crossing(k, h=None)          K = prod w_j^(2 k_j), prior prod |w_j|^(h_j): min_j (h_j+1)/(2k_j)
    rrr(M, H, N, r)                     reduced-rank regression (Aoyagi-Watanabe 2005), all four cases
    dln(widths, r) -> sympy.Rational    deep linear network (Aoyagi 2024 Thm 1), lambda only (no m)
``slt.theory.newton``:
    newton_rlct(K, variables=None) -> NewtonResult(lam, m, exact, t, face, nondegenerate, note)
        Newton-polyhedron lambda = 1/t (diagonal meets the polyhedron at (t,..,t)); exact=False (an upper
        bound) unless K is verified non-degenerate on every compact face.
``slt.theory.volume``:
    volume_scaling(K_fn, dim, center=None, radius=1.0, n=2000, levels=10, rho=0.2, fit_levels=5, m=1,
                   n_mcmc=10, replicates=8, seed=0) -> VolumeEstimate(lam, se, slopes, log_eps, log_vol)
        slope of log Vol{K < eps} vs log eps by subset simulation (float, SE across replicates)

Quadratic network f(a,b) = A (U[:,a] + V[:,b])^2 on modular-arithmetic inputs, ``slt.theory.quadratic``:
    quadratic_llc(p, width, n_train, tied=False, centred=False) -> sympy number
        generic interpolating point: (1/2) min(p N', r_unit K, K (p + N' - K) [K < N']),
        r_unit = 3p - 2 untied / 2p - 1 tied, N' = n_train - [centred]; tied: n_train = distinct
        unordered pairs. Assumes a connected support graph and every first-layer row in >= width/p
        training inputs (true at the paper's scale); ValueError if n_train < min_train_size(p, tied).
        For an actual training set prefer quadratic_llc_data, which checks all of this exactly.
    quadratic_llc_expr(tied=False, centred=False) -> sympy.Piecewise in symbols p_sym, K_sym, N_sym
    quadratic_llc_data(p, width, a, b, tied=False, centred=False, n_out=None, verify=True, seed=0)
        -> DataLLC(lam, bound, data_cap, support_dim, verified_rank, exact)  for a GIVEN training set
    rank_formula(q, width, n_eff, D, degrees=None) -> int;  support_dim, support_graph, vertex_degrees,
    distinct_inputs, min_train_size, unit_rank_expr
    lazy_llc(p, width, n_train, centred=False) -> Rational      readout-only model: (p/2) min(K, N')
``slt.theory.paper`` (the paper's formulas as stated, arXiv 2603.01192 v3):
    cor_5_4(p, K) = K(3p-1)/2;  cor_4_2(p, K, d=None) = (1/2) min(K(p+d-1), p d(d+1)/2), d = 2p;
    lazy(p, l, K) = (p/2) min(l, K);  memorisation_bracket(p, K) = (p(2p-1)/2, pK/2);  PAPER_SCALE
``slt.theory.jacobian`` (lambda at a GIVEN parameter):
    llc_at_point(U, V, A, a, b, y, centred=False, n_probe=3, step=1e-3, seed=0) -> PointLLC(rank, lam,
        lower, upper, morse_bott, nearby_ranks, upper_nearby, sv_gap, residual, interpolating, n_params,
        method);  lam = rank/2 only if Morse-Bott, else None with lower <= lambda <= upper.
    llc_at_net(net, a, b, y, copy=0, centred=False, **kw) -> PointLLC     same, on a QuadraticNet copy
    point_from_net(net, copy=0) -> (U, V or None, A) float64 numpy
    quadratic_jacobian(U, V, A, a, b, centred=False, integer=False) -> (N q, d) array
    exact_rank_at(U, V, A, a, b, centred=False) -> int (integer params; exact over F_P, P = 2^31 - 1)
    rank_mod_prime(M, prime=PRIME), random_integer_point(p, m, q=None, tied=False, seed=0),
    numerical_rank(J, rtol=None) -> (rank, singular values, gap)
``slt.theory.polish`` (a trained checkpoint -> the critical point its LLC refers to; also ``slt.polish``):
    polish(U, V, A, a, b, y, centred=False, weight_decay=0.0, max_iter=30, lsqr_iter=2000, newton_iter=50,
           device='cpu') -> PolishResult(U, V, A, critical, kind ('interpolating'|'stationary'|'none'),
           objective ('data'|'data+wd'), grad_norm_before/after, loss_before/after, rel_residual, grad_cos,
           rel_distance, iterations, lsqr_iterations, seconds, message)   float64 Levenberg-Marquardt + LSQR;
    polish_net(net, a, b, y, copy=0, centred=False, weight_decay=0.0, **kw);  NotCriticalError
``slt.theory.exact_scale`` (lambda at a critical point at the paper's scale; also ``slt.exact_llc``):
    exact_llc(U, V, A, a, b, y, centred=False, device='cpu', max_gram=20000, max_dense_hessian=12000)
        -> ExactLLC(rank, lam (Rational or None), lower, upper, morse_bott, reason, route, rows, n_params,
           orbit_dim, rank_squares, rank_embedding, gram, sv_gap, gaps, reliable, residual, grad_cos, seconds,
           timings, device);  y labels (N,) or real targets (N, q).  rank J = q rank(S2) + rank M (science.md
        sec. 9); exact when rank = the number of independent equations of {R = 0} ((q-1)N' + rank S2 for the
        centred loss on one-hot labels, which forces A 1 = 0) or = d - dim(symmetry orbit).
    exact_llc_net(net, a, b, y, copy=0, centred=False, **kw)
``slt.theory.basins`` (constructed solutions, float64 arrays U (p,m), V (p,m), A (m,p)):
    fourier_solution(p, centred=True, frequencies=None), fourier_width(p, centred=True),
    memorising_solution(p, width, a, b, y, centred=False, tied=False, seed=0),
    pad_units(U, V, A, extra, kind='dead'|'readout_dead'|'duplicate', seed=0)
    fourier_llc(p, a, b, y, width=None, centred=True, pad='dead', **kw) -> PointLLC   (Fourier basin)
    memorising_llc(p, width, a, b, y, centred=False, tied=False, seed=0, **kw) -> PointLLC
Any polynomial network on finite inputs (``slt.models.polynomial.PolyNet``: activation t^k, k = 1..4, 1-3
hidden layers, optional biases, tied or untied one-hot embeddings or dense inputs; the quadratic net is
``quadratic_instance(p, K, tied)``), ``slt.theory.polynomial``:
    generic_rank(spec, inputs, centred=False, seed=0, n_points=1, numerical=True, probe=False) -> GenericRank(
        rank, numerical_rank, sv_gap, n_params, n_inputs, n_distinct, data_cap, function_dim, symmetry_bound,
        symmetries, upper, exact, unexplained_kernel, lam, morse_bott, wall_s): rank = exact rank of J over F_P
        at random integer points (rigorous lower bound), upper = min(data cap, d - named-symmetry orbit)
        (rigorous), exact = they meet (proved); lam = rank/2 (generic point: constant rank, Morse-Bott)
    poly_jacobian(spec, params, inputs, centred=False, prime=None), exact_rank, data_cap, symmetry_generators,
    morse_bott_probe(spec, params, inputs, centred=False, n_probe=3, step=1e-3, seed=0), quadratic_instance
``slt.theory.families`` (closed forms for families of instances (p, K)):
    FAMILIES (cubic, deep2, dihedral, parity); fit_family(fam) -> FittedForm(formula, terms, term_kind,
        cap_formula, symmetry_formula, fit_rows, fit_misses, held_out, held_out_ok, all_proved, wall_s)
    fit_min_linear(rows, key="rank") -> (sympy Min of <= 3 exact linear terms, terms, misses)
    derive_generic(task, activation, depth, p_values, widths, ...) -> dict   (``slt derive generic``)
"""
from slt.theory.exact import dln, normal_crossing, regular, rrr
from slt.theory.jacobian import PointLLC, exact_rank_at, llc_at_net, llc_at_point, point_from_net, quadratic_jacobian
from slt.theory.newton import NewtonResult, newton_rlct
from slt.theory.volume import VolumeEstimate, volume_scaling
from slt.theory.paper import PAPER_SCALE, cor_4_2, cor_5_4, lazy, memorisation_bracket
from slt.theory.quadratic import DataLLC, lazy_llc, quadratic_llc, quadratic_llc_data, quadratic_llc_expr
from slt.theory.polynomial import GenericRank, generic_rank, quadratic_instance
from slt.theory.families import FAMILIES, FittedForm, derive_generic, fit_family

__all__ = [
    "regular",
    "normal_crossing",
    "rrr",
    "dln",
    "newton_rlct",
    "NewtonResult",
    "volume_scaling",
    "VolumeEstimate",
    "quadratic_llc",
    "quadratic_llc_expr",
    "quadratic_llc_data",
    "DataLLC",
    "lazy_llc",
    "llc_at_point",
    "llc_at_net",
    "point_from_net",
    "PointLLC",
    "exact_rank_at",
    "quadratic_jacobian",
    "PAPER_SCALE",
    "cor_5_4",
    "cor_4_2",
    "lazy",
    "memorisation_bracket",
    "generic_rank",
    "GenericRank",
    "quadratic_instance",
    "fit_family",
    "FittedForm",
    "FAMILIES",
    "derive_generic",
]
