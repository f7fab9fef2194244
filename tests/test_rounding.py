"""Certificates are never below the true gap in floating point either.

The true gap ``F(W) − F*`` is computed here in exact rational arithmetic (``fractions``:
the float64 inputs are exact rationals, the normal equations are solved by Gauss-Jordan
elimination on rationals) for small problems, and in extended precision
(``np.longdouble`` Gaussian elimination with iterative refinement) for raw School tasks.
Nothing here calls the package's solvers or certificate code to build the reference.
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
from reference import solve_exact

import mtlcvx as mc


# ----------------------------------------------------------------------------- references
def _normal_equations(Xs, ys, c, K, dtype):
    """``H w = g`` for ``Σ_t c_t/2‖X_t w_t − y_t‖² + ½ tr(W K Wᵀ)``, ``w = vec(W)`` by task."""
    T, d = len(Xs), Xs[0].shape[1]
    n = d * T
    H = [[dtype(0)] * n for _ in range(n)]
    g = [dtype(0)] * n
    for t in range(T):
        X = [[dtype(v) for v in row] for row in Xs[t].tolist()]
        y = [dtype(v) for v in ys[t].tolist()]
        ct = dtype(c[t])
        for i in range(d):
            g[t * d + i] = ct * sum(X[k][i] * y[k] for k in range(len(y)))
            for j in range(d):
                H[t * d + i][t * d + j] = ct * sum(X[k][i] * X[k][j] for k in range(len(y)))
    for s in range(T):
        for t in range(T):
            kst = dtype(K[s][t])
            if kst:
                for i in range(d):
                    H[s * d + i][t * d + i] += kst
    return H, g


def _objective(Xs, ys, c, K, W, dtype):
    T, d = len(Xs), Xs[0].shape[1]
    Wd = [[dtype(v) for v in row] for row in W.tolist()]
    F = dtype(0)
    for t in range(T):
        for row, yv in zip(Xs[t].tolist(), ys[t].tolist(), strict=True):
            r = sum(dtype(a) * Wd[i][t] for i, a in enumerate(row)) - dtype(yv)
            F += dtype(c[t]) * r * r / 2
    for s in range(T):
        for t in range(T):
            kst = dtype(K[s][t])
            if kst:
                F += kst * sum(Wd[i][s] * Wd[i][t] for i in range(d)) / 2
    return F


def _exact_gap(Xs, ys, c, K, W):
    H, g = _normal_equations(Xs, ys, c, K, Fraction)
    w = solve_exact(H, g)
    d, T = Xs[0].shape[1], len(Xs)
    W_star = np.array([[float(w[t * d + i]) for t in range(T)] for i in range(d)])
    # F* exactly: F(w*) = c0 − ½ gᵀw* for the normal equations, c0 = Σ c_t/2 ‖y_t‖²
    c0 = sum(Fraction(c[t]) * sum(Fraction(v) ** 2 for v in ys[t].tolist()) / 2
             for t in range(T))
    F_star = c0 - sum(gi * wi for gi, wi in zip(g, w, strict=True)) / 2
    return _objective(Xs, ys, c, K, W, Fraction) - F_star, F_star, W_star


# ----------------------------------------------------------------------------- the cases
def _rank_deficient_problem(rng, alpha, ridge):
    T, d = 4, 3
    Xs = [rng.standard_normal((n, d)) for n in (5, 2, 6, 4)]
    ys = [rng.standard_normal(n) for n in (5, 2, 6, 4)]
    z = rng.standard_normal((T, 1)) * np.pi  # inexact entries: K = zzᵀ is rounded
    K = mc.relations.outer(z)
    pens = [mc.TaskRelation(K, alpha)] + ([mc.Ridge(ridge)] if ridge else [])
    prob = mc.Problem(mc.MultiTaskData(Xs, ys), loss=mc.SquaredLoss("sum"), penalties=pens)
    # the exact problem: α·K with the matrix the penalty holds, in rationals
    K_exact = [[Fraction(alpha) * Fraction(v) + (Fraction(ridge) if i == j else 0)
                for j, v in enumerate(row)] for i, row in enumerate(prob.penalties[0].K.tolist())]
    return prob, Xs, ys, np.ones(T), K_exact


def test_issue_case_outer_z_alpha_1e10_plus_ridge(rng):
    # TaskRelation(outer(z), α=1e10) + Ridge(1): a point 5.9e-8 above the optimum got gap 0
    prob, Xs, ys, c, K = _rank_deficient_problem(rng, 1e10, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        sol = prob.solve(backend="direct")
    _, F_star, W_star = _exact_gap(Xs, ys, c, K, sol.W)
    for scale in (0.0, 1e-9, 1e-8, 3e-8, 1e-7, 1e-6):
        W = W_star + scale * rng.standard_normal(W_star.shape)
        true = _objective(Xs, ys, c, K, W, Fraction) - F_star
        cert = mc.certify(prob, W)
        assert cert.gap is not None and Fraction(cert.gap) >= true, (scale, cert, float(true))
    # "optimal" only where the exact relative gap really is within tol
    true = _objective(Xs, ys, c, K, sol.W, Fraction) - F_star
    if sol.status == "optimal":
        assert true <= Fraction(1e-8) * abs(F_star)


@pytest.mark.parametrize("alpha", [1e-10, 1e-5, 1.0, 1e5, 1e10])
@pytest.mark.parametrize("ridge", [0.0, 1e-3])
def test_gap_is_never_below_the_exact_gap(rng, alpha, ridge):
    prob, Xs, ys, c, K = _rank_deficient_problem(rng, alpha, ridge)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        sol = prob.solve(backend="direct")
    _, F_star, W_star = _exact_gap(Xs, ys, c, K, sol.W)
    for scale in (0.0, 1e-10, 1e-7, 1e-4):
        W = W_star + scale * np.abs(W_star).max() * rng.standard_normal(W_star.shape)
        true = _objective(Xs, ys, c, K, W, Fraction) - F_star
        cert = mc.certify(prob, W)
        assert cert.gap is not None and Fraction(cert.gap) >= true, (scale, cert, float(true))
        if cert.relative_gap <= 1e-8:
            assert true <= Fraction(1e-8) * abs(F_star) + Fraction(cert.gap)


# ----------------------------------------------------------------------------- raw School
def _gauss_longdouble(H, g):
    A = np.array(H, dtype=np.longdouble)
    b = np.array(g, dtype=np.longdouble)
    n = b.size
    M = np.hstack([A, b[:, None]])
    for k in range(n):
        p = k + int(np.argmax(np.abs(M[k:, k])))
        M[[k, p]] = M[[p, k]]
        M[k + 1:] -= np.outer(M[k + 1:, k] / M[k, k], M[k])
    x = np.zeros(n, dtype=np.longdouble)
    for k in range(n - 1, -1, -1):
        x[k] = (M[k, n] - M[k, k + 1:n] @ x[k + 1:]) / M[k, k]
    return x


def test_raw_school_tasks_in_extended_precision(rng):
    school = mc.datasets.load_school()
    T = 6
    Xs = [np.asarray(X) for X in school.X[:T]]
    ys = [np.asarray(y) for y in school.y[:T]]
    d = Xs[0].shape[1]
    c = np.ones(T)
    K = 0.5 * mc.relations.laplacian(mc.relations.chain(T)) + 1e-2 * np.eye(T)
    prob = mc.Problem(mc.MultiTaskData(Xs, ys), loss=mc.SquaredLoss("sum"),
                      penalties=[mc.GraphLaplacian(mc.relations.chain(T), 0.5),
                                 mc.Ridge(1e-2)])
    H, g = _normal_equations(Xs, ys, c, K.tolist(), np.longdouble)
    Hl, gl = np.array(H, dtype=np.longdouble), np.array(g, dtype=np.longdouble)
    w = _gauss_longdouble(Hl, gl)
    for _ in range(2):  # iterative refinement in extended precision
        w = w + _gauss_longdouble(Hl, gl - Hl @ w)
    c0 = sum(np.sum(np.asarray(y, dtype=np.longdouble) ** 2) / 2 for y in ys)
    F_star = c0 - (gl @ w) / 2
    W_star = np.array(w.reshape(T, d).T, dtype=float)
    sol = prob.solve(backend="direct")
    for W in (sol.W, W_star + 1e-9 * rng.standard_normal(W_star.shape),
              W_star + 1e-6 * rng.standard_normal(W_star.shape)):
        true = _objective(Xs, ys, c, K.tolist(), W, np.longdouble) - F_star
        cert = mc.certify(prob, W)
        # extended precision carries ~1e-19 relative error of its own
        assert np.longdouble(cert.gap) >= true - np.longdouble(1e-17) * abs(F_star)
    true = _objective(Xs, ys, c, K.tolist(), sol.W, np.longdouble) - F_star
    assert sol.status != "optimal" or true <= 1e-8 * abs(F_star)
