"""Independent reference solutions, computed the textbook way (dense Kronecker systems).

Deliberately different from the package's code paths: no QR compression, no centring,
intercepts as explicit unknowns, the Kronecker product formed densely (tests only use
small problems).
"""

from __future__ import annotations

import numpy as np


def quadratic_optimum(Xs, ys, c, K_task, D_feat=None, fit_intercept=False):
    """Minimise Σ_t c_t/2‖X_t w_t + b_t − y_t‖² + ½ tr(W K Wᵀ) + ½ tr(Wᵀ D W).

    Returns (W (d, T), b (T,) or None, F*).
    """
    T = len(Xs)
    d = Xs[0].shape[1]
    p = d + (1 if fit_intercept else 0)
    n = p * T
    H = np.zeros((n, n))
    g = np.zeros(n)
    for t in range(T):
        Xa = np.hstack([Xs[t], np.ones((Xs[t].shape[0], 1))]) if fit_intercept else Xs[t]
        sl = slice(t * p, (t + 1) * p)
        H[sl, sl] += c[t] * Xa.T @ Xa
        g[sl] += c[t] * Xa.T @ ys[t]
    # penalty on the W part only: vec over (p, T) column-major, W rows 0..d-1
    sel = np.zeros((p, p))
    sel[:d, :d] = np.eye(d)
    H += np.kron(K_task, sel)
    if D_feat is not None:
        Dp = np.zeros((p, p))
        Dp[:d, :d] = D_feat
        H += np.kron(np.eye(T), Dp)
    theta = np.linalg.lstsq(H, g, rcond=None)[0]
    Theta = theta.reshape(T, p).T
    W = Theta[:d]
    b = Theta[d] if fit_intercept else None
    F = objective(Xs, ys, c, W, b, K_task, D_feat)
    return W, b, F


def objective(Xs, ys, c, W, b, K_task, D_feat=None):
    F = 0.0
    for t in range(len(Xs)):
        r = Xs[t] @ W[:, t] - ys[t] + (0.0 if b is None else b[t])
        F += 0.5 * c[t] * r @ r
    F += 0.5 * np.trace(W @ K_task @ W.T)
    if D_feat is not None:
        F += 0.5 * np.trace(W.T @ D_feat @ W)
    return F


def solve_exact(H, g):
    """Solve ``H x = g`` on ``fractions.Fraction`` lists by Gauss-Jordan elimination.

    Free variables of a singular, consistent system are set to 0.
    """
    from fractions import Fraction

    n = len(g)
    A = [row[:] + [g[i]] for i, row in enumerate(H)]
    pivots, r = [], 0
    for col in range(n):
        piv = next((i for i in range(r, n) if A[i][col] != 0), None)
        if piv is None:
            continue
        A[r], A[piv] = A[piv], A[r]
        inv = 1 / A[r][col]
        A[r] = [v * inv for v in A[r]]
        for i in range(n):
            if i != r and A[i][col] != 0:
                f = A[i][col]
                A[i] = [a - f * b for a, b in zip(A[i], A[r], strict=True)]
        pivots.append(col)
        r += 1
    x = [Fraction(0)] * n
    for i, col in enumerate(pivots):
        x[col] = A[i][n]
    return x


def exact_quadratic_optimum(Xs, ys, c, K_task, D_feat=None, fit_intercept=False):
    """F* of the problem of :func:`quadratic_optimum` in exact rational arithmetic.

    The float64 inputs are exact rationals; the normal equations are solved by
    Gauss-Jordan elimination on ``fractions.Fraction`` (free variables of a singular,
    consistent system set to 0). Returns ``F*`` as a Fraction. Small problems only.
    """
    return exact_quadratic_solution(Xs, ys, c, K_task, D_feat, fit_intercept)[0]


def normal_equations(Xs, ys, c, K_task, D_feat=None, fit_intercept=False, dtype=None):
    """``(H, g, c0)`` of ``F(θ) = c0 − gᵀθ + ½θᵀHθ`` for the problem of
    :func:`quadratic_optimum`, as nested lists of ``dtype`` (``fractions.Fraction`` when
    None: exact; ``np.longdouble`` for extended precision). ``θ`` stacks each task's
    ``(w_t, b_t)``. ``K_task`` and ``D_feat`` may hold Fractions."""
    from fractions import Fraction

    dtype = Fraction if dtype is None else dtype
    T = len(Xs)
    d = Xs[0].shape[1]
    p = d + (1 if fit_intercept else 0)
    n = p * T
    H = [[dtype(0)] * n for _ in range(n)]
    g = [dtype(0)] * n
    c0 = dtype(0)
    for t in range(T):
        rows = [[dtype(v) for v in r] + ([dtype(1)] if fit_intercept else [])
                for r in Xs[t].tolist()]
        y = [dtype(v) for v in ys[t].tolist()]
        ct = dtype(c[t])
        c0 += ct * sum(v * v for v in y) / 2
        for i in range(p):
            g[t * p + i] = ct * sum(r[i] * yv for r, yv in zip(rows, y, strict=True))
            for j in range(p):
                H[t * p + i][t * p + j] = ct * sum(r[i] * r[j] for r in rows)
    K = [[dtype(v) for v in row] for row in np.asarray(K_task).tolist()]
    for s in range(T):
        for t in range(T):
            if K[s][t]:
                for i in range(d):
                    H[s * p + i][t * p + i] += K[s][t]
    if D_feat is not None:
        Dm = [[dtype(v) for v in row] for row in np.asarray(D_feat).tolist()]
        for t in range(T):
            for i in range(d):
                for j in range(d):
                    H[t * p + i][t * p + j] += Dm[i][j]
    return H, g, c0


def exact_quadratic_solution(Xs, ys, c, K_task, D_feat=None, fit_intercept=False):
    """``(F*, W*)``: :func:`exact_quadratic_optimum` and the minimiser it solved for,
    rounded to a float (d, T) array. ``K_task`` and ``D_feat`` may hold Fractions (a
    matrix built exactly, such as ``R Rᵀ`` from its factor)."""
    T, d = len(Xs), Xs[0].shape[1]
    p = d + (1 if fit_intercept else 0)
    H, g, c0 = normal_equations(Xs, ys, c, K_task, D_feat, fit_intercept)
    x = solve_exact(H, g)
    W = np.array([[float(x[t * p + i]) for t in range(T)] for i in range(d)])
    return c0 - sum(gi * xi for gi, xi in zip(g, x, strict=True)) / 2, W


def exact_objective(Xs, ys, c, W, b, K_task, D_feat=None, dtype=None):
    """:func:`objective` in exact rational arithmetic (a Fraction), or in ``dtype``
    (``np.longdouble`` for extended precision)."""
    from fractions import Fraction

    dtype = Fraction if dtype is None else dtype
    T, d = len(Xs), Xs[0].shape[1]
    Wf = [[dtype(v) for v in row] for row in np.asarray(W).tolist()]
    F = dtype(0)
    for t in range(T):
        bt = dtype(0) if b is None else dtype(float(b[t]))
        for row, yv in zip(Xs[t].tolist(), ys[t].tolist(), strict=True):
            r = sum(dtype(a) * Wf[i][t] for i, a in enumerate(row)) + bt - dtype(yv)
            F += dtype(c[t]) * r * r / 2
    K = np.asarray(K_task).tolist()
    for s in range(T):
        for t in range(T):
            if K[s][t]:
                F += dtype(K[s][t]) * sum(Wf[i][s] * Wf[i][t] for i in range(d)) / 2
    if D_feat is not None:
        Dm = np.asarray(D_feat).tolist()
        for t in range(T):
            F += sum(dtype(Dm[i][j]) * Wf[i][t] * Wf[j][t]
                     for i in range(d) for j in range(d) if Dm[i][j]) / 2
    return F
