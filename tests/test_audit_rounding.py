"""Audit of the rounding module's least-squares solve (the moved dual point, far below
``alpha_max``): tasks whose Gram matrix is exactly singular sit beside usable ones."""

from __future__ import annotations

import cvxpy as cp
import numpy as np

import mtlcvx as mc


def test_a_single_row_task_beside_full_rank_ones_is_certified(rng):
    # Task 0 has one row [1, 2]: its G = [[1, 2], [2, 4]] is exactly singular in float64.
    # Far below alpha_max the dual point is moved through every usable task's G⁻¹, and the
    # batched solve over all tasks raised LinAlgError: certify (and fista) crashed.
    Xs = [np.array([[1.0, 2.0]]), rng.standard_normal((4, 2)), rng.standard_normal((3, 2))]
    ys = [np.array([1.0]), rng.standard_normal(4), rng.standard_normal(3)]
    lam = 1e-6
    prob = mc.Problem(mc.MultiTaskData(Xs, ys), mc.SquaredLoss("sum"), [mc.L21(lam)])
    # an independent optimum: the same objective written in CVXPY, solved by Clarabel
    W = cp.Variable((2, 3))
    objective = sum(0.5 * cp.sum_squares(X @ W[:, t] - y)
                    for t, (X, y) in enumerate(zip(Xs, ys, strict=True)))
    cp.Problem(cp.Minimize(objective + lam * cp.sum(cp.norm(W, 2, axis=1)))).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12)
    W_ref = W.value

    def value(W):
        return (sum(0.5 * float(np.sum((X @ w - y) ** 2)) for X, y, w in zip(Xs, ys, W.T,
                                                                           strict=True))
                + lam * float(np.sum(np.linalg.norm(W, axis=1))))

    F_ref = value(W_ref)  # ≥ F*
    for W in (W_ref, 0.5 * W_ref, np.zeros((2, 3))):
        cert = mc.certify(prob, W)
        assert cert.dual_objective <= F_ref * (1 + 1e-15), (cert, F_ref)
        assert cert.gap >= value(W) - F_ref - 1e-15 * F_ref, (cert, value(W) - F_ref)
    assert mc.certify(prob, W_ref).relative_gap <= 1e-6
