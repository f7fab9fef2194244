"""Property: "optimal" is never claimed at a point whose true relative gap exceeds tol.

Hypothesis draws small problems over shapes (T = 1 included, n_t < d, one-sample tasks,
duplicate tasks), penalties, strengths from 1e-10 to 1e10, scaled targets, intercepts and
backends. Each solve must end "optimal" with a gap that is at least the true gap and at
most tol·|F|, or honestly "inaccurate"/"unverified", or raise an MTLError. The true gap is
computed independently: in exact rational arithmetic for quadratic problems
(``reference.exact_quadratic_optimum``), and against an independent CVXPY model solved by
Clarabel for the non-smooth penalties (``F(W) − F_ref ≤ F(W) − F*`` since ``F_ref ≥ F*``).
Bounded (``max_examples``) to keep the suite short.
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import cvxpy as cp
import numpy as np
import pytest
from reference import exact_objective, exact_quadratic_optimum

import mtlcvx as mc

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

QUADRATIC = ("ridge", "outer", "laplacian", "mean", "feature")
NONSMOOTH = ("l1", "l21", "trace")
TOL = 1e-8


@st.composite
def cases(draw):
    T = draw(st.integers(1, 3))
    d = draw(st.integers(1, 4))
    sizes = [draw(st.integers(1, 6)) for _ in range(T)]
    seed = draw(st.integers(0, 2**16))
    kind = draw(st.sampled_from(QUADRATIC + NONSMOOTH))
    log_alpha = draw(st.sampled_from([-10, -5, -2, 0, 2, 5, 10]))
    log_scale = draw(st.sampled_from([-5, 0, 3]))
    duplicate = T > 1 and draw(st.booleans())
    fit_intercept = draw(st.booleans())
    backends = (["direct", "clarabel", "osqp", "scs", "ecos", "fista"] if kind in QUADRATIC
                else ["clarabel", "scs", "ecos", "fista"])
    backend = draw(st.sampled_from(backends))
    return T, d, sizes, seed, kind, 10.0 ** log_alpha, 10.0 ** log_scale, duplicate, \
        fit_intercept, backend


def _build(T, d, sizes, seed, kind, alpha, scale, duplicate):
    rng = np.random.default_rng(seed)
    Xs = [rng.standard_normal((n, d)) for n in sizes]
    ys = [scale * rng.standard_normal(n) for n in sizes]
    if duplicate:
        Xs[1], ys[1] = Xs[0].copy(), ys[0].copy()
    z = rng.standard_normal((T, 1)) * np.pi
    pen = {
        "ridge": lambda: mc.Ridge(alpha),
        "outer": lambda: mc.TaskRelation(mc.relations.outer(z), alpha),
        "laplacian": lambda: mc.GraphLaplacian(mc.relations.chain(T), alpha),
        "mean": lambda: mc.MeanRegularized(alpha),
        "feature": lambda: mc.FeatureRelation(mc.relations.outer(rng.standard_normal((d, 1))),
                                              alpha),
        "l1": lambda: mc.L1(alpha),
        "l21": lambda: mc.L21(alpha),
        "trace": lambda: mc.TraceNorm(alpha),
    }[kind]()
    return Xs, ys, pen


def _exact_matrices(pen, kind, d, T, alpha):
    """α·K (task) and α·D (feature) as exact rationals, from the matrices the penalty holds."""
    zero = [[Fraction(0)] * T for _ in range(T)]
    if kind == "feature":
        M = pen.matrix(d, T)
        return zero, [[Fraction(alpha) * Fraction(v) for v in row] for row in M.tolist()]
    M = pen.matrix(d, T)
    M = M.toarray() if hasattr(M, "toarray") else np.asarray(M)
    if kind == "mean":  # I − 11ᵀ/T exactly
        M = [[Fraction(int(i == j)) - Fraction(1, T) for j in range(T)] for i in range(T)]
        return [[Fraction(alpha) * v for v in row] for row in M], None
    return [[Fraction(alpha) * Fraction(v) for v in row] for row in M.tolist()], None


def _cvxpy_reference(Xs, ys, c, kind, alpha, fit_intercept):
    T, d = len(Xs), Xs[0].shape[1]
    W = cp.Variable((d, T))
    b = cp.Variable(T) if fit_intercept else None
    loss = sum(c[t] / 2 * cp.sum_squares(Xs[t] @ W[:, t] + (b[t] if b is not None else 0)
                                         - ys[t]) for t in range(T))
    reg = {"l1": lambda: cp.sum(cp.abs(W)), "l21": lambda: cp.sum(cp.norm(W, 2, axis=1)),
           "trace": lambda: cp.normNuc(W)}[kind]()
    prob = cp.Problem(cp.Minimize(loss + alpha * reg))
    prob.solve(solver="CLARABEL")
    return W.value, None if b is None else b.value


def _numpy_objective(Xs, ys, c, kind, alpha, W, fit_intercept):
    T = len(Xs)
    total = 0.0
    for t in range(T):
        r = Xs[t] @ W[:, t] - ys[t]
        if fit_intercept:
            r = r - r.mean()
        total += c[t] / 2 * float(r @ r)
    reg = {"l1": lambda: np.abs(W).sum(), "l21": lambda: np.linalg.norm(W, axis=1).sum(),
           "trace": lambda: np.linalg.svd(W, compute_uv=False).sum()}[kind]()
    return total + alpha * reg


@hypothesis.settings(max_examples=30, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(cases())
def test_optimal_only_within_tol_of_the_true_optimum(case):
    T, d, sizes, seed, kind, alpha, scale, duplicate, fit_intercept, backend = case
    Xs, ys, pen = _build(T, d, sizes, seed, kind, alpha, scale, duplicate)
    c = 1.0 / np.array([len(y) for y in ys], dtype=float)
    try:
        prob = mc.Problem(mc.MultiTaskData(Xs, ys), penalties=[pen],
                          fit_intercept=fit_intercept)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mc.ConvergenceWarning)
            sol = prob.solve(backend=backend, tol=TOL, max_iter=3000)
    except mc.MTLError:
        return  # refused or failed, loudly: allowed
    assert sol.status in ("optimal", "inaccurate", "unverified")
    cert = sol.certificate
    if sol.status == "unverified":
        assert cert.gap is None and cert.reason
        return
    assert cert.gap is not None
    if kind in QUADRATIC:
        K, D = _exact_matrices(pen, kind, d, T, alpha)
        F_star = exact_quadratic_optimum(Xs, ys, c, K, D, fit_intercept)
        b = prob.optimal_intercept(sol.W) if fit_intercept else None
        true = exact_objective(Xs, ys, c, sol.W, b, K, D) - F_star
        # the intercept is profiled in float64: its own rounding is part of F(W, b)
        assert Fraction(cert.gap) >= true - Fraction(1e-15) * abs(F_star), (case, cert)
        if sol.status == "optimal":
            assert true <= Fraction(TOL) * abs(F_star) + Fraction(1e-15) * abs(F_star)
    else:
        W_ref, _ = _cvxpy_reference(Xs, ys, c, kind, alpha, fit_intercept)
        if W_ref is None:
            return
        F_ref = _numpy_objective(Xs, ys, c, kind, alpha, W_ref, fit_intercept)
        F = _numpy_objective(Xs, ys, c, kind, alpha, sol.W, fit_intercept)
        lower = F - F_ref  # ≤ F(W) − F*
        slack = 1e-12 * max(abs(F), abs(F_ref))
        assert cert.gap >= lower - slack, (case, cert, lower)
        if sol.status == "optimal":
            assert lower <= TOL * abs(F) + slack
