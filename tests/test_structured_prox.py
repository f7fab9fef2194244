"""The exact proximal operators behind the structured penalties, against CVXPY models
written here (each prox is the minimiser of its own small problem)."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from mtlcvx.penalties import _prox

TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}


def _prox_objective(x, v, penalty):
    return 0.5 * float(np.sum((x - v) ** 2)) + penalty(x)


def _cvxpy_prox(v, penalty_expr, constraints=lambda x: []):
    x = cp.Variable(v.shape)
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - v) + penalty_expr(x)),
                      constraints(x))
    prob.solve(solver="CLARABEL", **TIGHT)
    return x.value


@pytest.mark.parametrize("scale", [0.05, 1.0, 20.0])
def test_tv_prox_matches_cvxpy_on_random_rows(rng, scale):
    r, m = 5, 25
    V = scale * rng.standard_normal((r, m))
    lam = rng.uniform(0.0, 1.5, m - 1)
    lam[[3, 11]] = 0.0  # cut edges
    X, _ = _prox.tv_prox_rows(V, lam)

    def tv(x):
        return float(lam @ np.abs(np.diff(x)))

    for i in range(r):
        ref = _cvxpy_prox(V[i], lambda x: cp.sum(cp.multiply(lam, cp.abs(cp.diff(x)))))
        ours, theirs = _prox_objective(X[i], V[i], tv), _prox_objective(ref, V[i], tv)
        assert ours <= theirs + 1e-12 * max(1.0, theirs)  # never worse than the solver
        # strongly convex prox objective: the minimiser is unique, Clarabel's to ~1e-6
        np.testing.assert_allclose(X[i], ref, atol=1e-6 * max(1.0, scale))


def test_tv_prox_is_exact_by_optimality_conditions(rng):
    """x = v − Dᵀu with |u_i| ≤ λ_i and u_i = λ_i sign(Dx)_i where (Dx)_i ≠ 0."""
    V = np.cumsum(rng.standard_normal((40, 139)), axis=1)
    lam = np.full(138, 2.0)
    X, U = _prox.tv_prox_rows(V, lam)
    recon = V.copy()
    recon[:, :-1] += U
    recon[:, 1:] -= U
    np.testing.assert_allclose(X, recon, atol=1e-12)
    assert np.all(np.abs(U) <= lam + 1e-12)
    jumps = np.diff(X, axis=1)
    moving = np.abs(jumps) > 1e-9
    np.testing.assert_allclose(U[moving], (lam * np.sign(jumps))[moving], atol=1e-12)
    # a warm start from a nearby point lands on the same exact answer
    X2, _ = _prox.tv_prox_rows(V, lam, U0=U + 0.1 * rng.standard_normal(U.shape))
    np.testing.assert_allclose(X2, X, atol=1e-11)


def test_tv_prox_of_a_constant_step_closed_form():
    # v = (0, 0, 1, 1): one jump of height 1 shrinks by 2λ/2 on each side: λ = 0.2
    X, _ = _prox.tv_prox_rows(np.array([[0.0, 0.0, 1.0, 1.0]]), np.full(3, 0.2))
    np.testing.assert_allclose(X[0], [0.1, 0.1, 0.9, 0.9], atol=1e-15)
    # λ large: everything fuses to the mean
    X, _ = _prox.tv_prox_rows(np.array([[0.0, 3.0, 1.0, 4.0]]), np.full(3, 10.0))
    np.testing.assert_allclose(X[0], np.full(4, 2.0), atol=1e-14)


def test_projections_match_cvxpy(rng):
    V = rng.standard_normal((4, 7))
    P = _prox.project_l1_rows(V, 1.3)
    for i in range(4):
        ref = _cvxpy_prox(V[i], lambda x: 0, lambda x: [cp.norm1(x) <= 1.3])
        np.testing.assert_allclose(P[i], ref, atol=1e-7)
    assert np.allclose(_prox.project_l1_rows(0.01 * V, 1.3), 0.01 * V)  # inside: unchanged
    M = rng.standard_normal((5, 6))
    Q = _prox.project_nuclear_ball(M, 2.0)
    ref = _cvxpy_prox(M, lambda x: 0, lambda x: [cp.normNuc(x) <= 2.0])
    np.testing.assert_allclose(Q, ref, atol=1e-6)
    assert np.linalg.svd(Q, compute_uv=False).sum() == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize("shape", [(5, 9), (9, 5)])
def test_spectral_proxes_agree_with_an_svd_to_round_off(rng, shape):
    # a spread spectrum, including singular values far below the threshold
    U, _ = np.linalg.qr(rng.standard_normal((shape[0], shape[0])))
    Vt, _ = np.linalg.qr(rng.standard_normal((shape[1], shape[1])))
    k = min(shape)
    s = np.array([10.0, 3.0, 1.0, 1e-3, 1e-7][:k])
    M = (U[:, :k] * s) @ Vt[:k]
    for t in (0.5, 2.0, 1e-5):
        np.testing.assert_allclose(_prox.svt(M, t), (U[:, :k] * np.maximum(s - t, 0)) @ Vt[:k],
                                   atol=1e-13 * s[0])
    # ‖M‖_* ≈ 14.001 > 4: Σ max(s − θ, 0) = 4 at θ = 6 (only 10 − θ is left)
    theta = 6.0
    np.testing.assert_allclose(_prox.project_nuclear_ball(M, 4.0),
                               (U[:, :k] * np.maximum(s - theta, 0)) @ Vt[:k],
                               atol=1e-13 * s[0])
    assert np.array_equal(_prox.project_nuclear_ball(M, 20.0), M)


@pytest.mark.parametrize("name, expr", [
    ("prox_linf_rows", lambda x: cp.sum(cp.max(cp.abs(x), axis=1))),
    ("shrink_rows", lambda x: cp.mixed_norm(x, 2, 1)),
    ("shrink_cols", lambda x: cp.sum(cp.norm(x, 2, axis=0))),
    ("svt", cp.normNuc),
    ("soft_threshold", lambda x: cp.sum(cp.abs(x))),
])
def test_norm_proxes_match_cvxpy(rng, name, expr):
    V = rng.standard_normal((5, 6))
    t = 0.7
    ours = getattr(_prox, name)(V, t)
    ref = _cvxpy_prox(V, lambda x: t * expr(x))
    np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("name, axis", [("shrink_rows", 1), ("shrink_cols", 0)])
def test_group_shrink_edge_cases_closed_form(name, axis):
    """Rows (columns) of norms 0, exactly t = 1 and 5 (a 3-4-5 triangle): shrunk to 0, 0
    and (1 − 1/5)·v; t = 0 returns V itself."""
    rows = np.array([[0.0, 0.0], [0.0, -1.0], [3.0, 4.0]])
    V = rows if axis == 1 else rows.T
    shrink = getattr(_prox, name)
    expected = np.array([[0.0, 0.0], [0.0, 0.0], [2.4, 3.2]])
    np.testing.assert_allclose(shrink(V, 1.0), expected if axis == 1 else expected.T,
                               rtol=1e-15, atol=0)
    np.testing.assert_array_equal(shrink(V, 0.0), V)
    np.testing.assert_array_equal(_prox.row_norms(rows), [0.0, 1.0, 5.0])


@pytest.mark.parametrize("rows", ["linf", "l2"])
@pytest.mark.parametrize("a_rows, a_entries", [(1.0, 0.3), (0.5, 0.6), (3.0, 0.2),
                                               (0.1, 2.0)])
def test_dirty_infimal_convolution_closed_forms(rng, rows, a_rows, a_entries):
    W = rng.standard_normal((4, 6)) * rng.uniform(0.1, 3.0, (4, 1))
    values, P = _prox.row_l1_infconv(W, a_rows, a_entries, rows)
    norm = (lambda x: cp.norm(x, "inf")) if rows == "linf" else (lambda x: cp.norm(x, 2))
    npnorm = (lambda x: np.abs(x).max()) if rows == "linf" else np.linalg.norm
    for i in range(4):
        p = cp.Variable(6)
        prob = cp.Problem(cp.Minimize(a_rows * norm(p) + a_entries * cp.norm1(W[i] - p)))
        prob.solve(solver="CLARABEL", **TIGHT)
        assert values[i] == pytest.approx(prob.value, rel=1e-8, abs=1e-10)
        # the returned split attains the value
        at_split = a_rows * npnorm(P[i]) + a_entries * np.abs(W[i] - P[i]).sum()
        assert at_split == pytest.approx(values[i], rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("rows", ["linf", "l2"])
def test_infimal_convolution_with_a_zero_strength_costs_nothing(rng, rows):
    # hand-solved: a free norm takes all of w (p = w), a free ‖q‖₁ takes all of it (p = 0)
    W = rng.standard_normal((3, 5))
    for a_rows, a_entries, P_expected in ((0.0, 0.3, W), (1.0, 0.0, np.zeros_like(W))):
        values, P = _prox.row_l1_infconv(W, a_rows, a_entries, rows)
        np.testing.assert_array_equal(values, np.zeros(3))
        np.testing.assert_array_equal(P, P_expected)
    values, P = _prox.row_l1_infconv(np.zeros((3, 0)), 1.0, 0.3, rows)
    assert values.shape == (3,) and not values.any() and P.shape == (3, 0)


def test_row_test_scale_is_the_edge_of_the_sparse_group_dual_ball(rng):
    V = rng.standard_normal((6, 5))
    a1, a2 = 0.4, 0.9
    s = _prox.row_test_scale(V, a1, a2)

    def worst(scale):
        excess = np.maximum(np.abs(scale * V) - a1, 0.0)
        return np.linalg.norm(excess, axis=1).max()

    assert worst(s) <= a2
    assert worst(s * (1 + 1e-9)) > a2 * (1 - 1e-12)
    # and the edge of the ball: prox of the sum (soft, then shrink) vanishes exactly there
    inside = _prox.shrink_rows(_prox.soft_threshold(s * V, a1), a2)
    outside = _prox.shrink_rows(_prox.soft_threshold(1.01 * s * V, a1), a2)
    assert not inside.any() and outside.any()
    assert _prox.row_test_scale(np.zeros((3, 4)), a1, a2) == np.inf


def test_tv_prox_warm_started_along_a_sequence_with_tiny_weights(rng):
    """As inside FISTA on School's CFGLasso: piecewise-constant rows, nearby inputs, the
    previous dual as warm start, weights far below the jumps (many dual variables sit at
    their bounds with tiny gradients; a pure projected Newton method stalls there)."""
    V = np.repeat(rng.standard_normal((8, 10)), 14, axis=1)[:, :139]
    V = V + 1e-5 * rng.standard_normal(V.shape)
    lam = np.full(138, 3e-5)
    U = None
    for _ in range(20):
        V = V + 1e-6 * rng.standard_normal(V.shape)
        X, U = _prox.tv_prox_rows(V, lam, U0=U)
        cold, _ = _prox.tv_prox_rows(V, lam)
        np.testing.assert_allclose(X, cold, atol=1e-14)
        assert np.all(np.abs(U) <= lam)
