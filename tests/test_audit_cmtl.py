"""Audit of clustered MTL (LearnedClusters) solved by ``backend=None``: its certified
dual value is a true lower bound on ``F*`` and its gap covers its distance to two
independent optima, Clarabel's matrix-fractional SDP (written here from the raw arrays)
and :func:`mtlcvx.learn_relation`'s alternation.

``F*`` is bounded from above exactly: for any ``W`` and any ``M`` with ``0 ⪯ M ⪯ I``,
``tr M = k``, ``F(W) ≤ ℓ(W) + (α/2) tr(W (ηI + M)⁻¹ Wᵀ) + ridge``. Each reference point's
``M`` is made exactly feasible in rationals (trace fixed, shrunk by ``2⁻⁴⁴`` towards
``(k/T)·I``, both ``M`` and ``I − M`` checked positive definite by exact ``LDLᵀ``) and the
bound is evaluated in rationals.
"""

from __future__ import annotations

from fractions import Fraction

import cvxpy as cp
import numpy as np
import pytest
from reference import solve_exact

import mtlcvx as mc


def _positive_definite(A):
    """Exact LDLᵀ pivots of a rational symmetric matrix all > 0."""
    A = [row[:] for row in A]
    for k in range(len(A)):
        if A[k][k] <= 0:
            return False
        for i in range(k + 1, len(A)):
            f = A[i][k] / A[k][k]
            A[i] = [a - f * b for a, b in zip(A[i], A[k], strict=True)]
    return True


def _upper_bound(prob, W, M):
    """An exact upper bound on ``F(W)`` (so on ``F*``) from a nearly feasible ``M``."""
    phi, ridge = prob.penalties
    T = prob.n_tasks
    k, eta, t = Fraction(phi.k), Fraction(phi.eta), Fraction(1, 2 ** 44)
    Mf = [[Fraction(v) for v in row] for row in (0.5 * (M + M.T)).tolist()]
    shift = (k - sum(Mf[i][i] for i in range(T))) / T
    Mf = [[(1 - t) * (v + (shift if i == j else 0)) + (t * k / T if i == j else 0)
           for j, v in enumerate(row)] for i, row in enumerate(Mf)]
    assert _positive_definite(Mf)
    assert _positive_definite([[(1 if i == j else 0) - v for j, v in enumerate(row)]
                               for i, row in enumerate(Mf)])
    A = [[v + (eta if i == j else 0) for j, v in enumerate(row)] for i, row in enumerate(Mf)]
    Wf = [[Fraction(v) for v in row] for row in W.tolist()]
    value = sum(sum(a * b for a, b in zip(w, solve_exact(A, w), strict=True)) for w in Wf)
    value = Fraction(phi.alpha) * value + Fraction(ridge.alpha) * sum(v * v for w in Wf
                                                                      for v in w)
    for t_, (X, y) in enumerate(zip(prob.data.X, prob.data.y, strict=True)):
        for row, yv in zip(X.tolist(), y.tolist(), strict=True):
            r = sum(Fraction(a) * Wf[i][t_] for i, a in enumerate(row)) - Fraction(yv)
            value += r * r
    return value / 2


def _optimal_m(phi, W):
    """The cluster matrix minimising the term at ``W`` (from ``W``'s singular vectors)."""
    _, sigma, Vt = np.linalg.svd(W, full_matrices=True)
    T = W.shape[1]
    m = mc.penalties.learned.cluster_eigenvalues(sigma, phi.k, phi.eta, T)
    return (Vt.T * m) @ Vt


def _clarabel(prob):
    """``W`` of the joint SDP over W and M, from the raw arrays."""
    phi, ridge = prob.penalties
    Xs, ys = prob.data.X, prob.data.y
    d, T = Xs[0].shape[1], len(Xs)
    W, M = cp.Variable((d, T)), cp.Variable((T, T), symmetric=True)
    loss = sum(0.5 * cp.sum_squares(X @ W[:, t] - y)
               for t, (X, y) in enumerate(zip(Xs, ys, strict=True)))
    obj = loss + phi.alpha / 2 * cp.matrix_frac(W.T, phi.eta * np.eye(T) + M) \
        + ridge.alpha / 2 * cp.sum_squares(W)
    cp.Problem(cp.Minimize(obj), [M >> 0, np.eye(T) - M >> 0, cp.trace(M) == phi.k]).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    return W.value


@pytest.mark.parametrize("scale, ridge", [(1.0, 1e-3), (100.0, 0.1)])
def test_cmtl_by_default_route_is_certified_below_independent_optima(scale, ridge):
    data = mc.datasets.make_related_tasks(n_tasks=5, n_features=3, n_samples=10,
                                          random_state=3)
    data = mc.MultiTaskData([X * [scale, 1.0, 1.0] for X in data.X], list(data.y))
    phi = mc.LearnedClusters(0.5, k=2, eta=0.05)
    prob = mc.Problem(data, mc.SquaredLoss("sum"), [phi, mc.Ridge(ridge)])
    sol = prob.solve(tol=1e-9)
    cert = sol.certificate
    assert sol.status == "optimal" and cert.relative_gap <= 1e-9, cert
    learned = mc.learn_relation(mc.Problem(data, mc.SquaredLoss("sum"), [mc.Ridge(ridge)]),
                                "clusters", 0.5, k=2, eta=0.05, tol=1e-9)
    # each point with the best M for it (Clarabel's own M is feasible only to its tolerance)
    uppers = [_upper_bound(prob, W, _optimal_m(phi, W))
              for W in (_clarabel(prob), learned.W, sol.W)]
    best = min(uppers)
    # certified lower bounds on F* lie below every exact upper bound
    assert Fraction(cert.dual_objective) <= best, (cert, float(best))
    assert Fraction(learned.certificate.dual_objective) <= best
    # the gap covers the distance to the best reference (up to F's own rounding)
    assert Fraction(cert.gap) >= Fraction(sol.objective) - best - Fraction(1e-14) * abs(best)
    # and the references agree with the certified interval to Clarabel's accuracy
    assert float(uppers[0]) <= sol.objective + cert.gap + 1e-8 * abs(sol.objective)
    assert abs(float(uppers[2]) - sol.objective) <= 1e-12 * abs(sol.objective)
