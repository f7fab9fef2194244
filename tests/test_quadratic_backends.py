"""Quadratic problems: every backend against an independent dense Kronecker solve."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import BACKEND_RTOL, installed_backends
from reference import quadratic_optimum

import mtlcvx as mc


def _hetero_data(rng, T=6, d=5):
    n = rng.integers(3, 25, size=T)  # some tasks shorter than d, some taller
    Xs = [rng.standard_normal((k, d)) for k in n]
    ys = [rng.standard_normal(k) for k in n]
    return mc.MultiTaskData(Xs, ys), Xs, ys


def _cases(rng):
    data, Xs, ys = _hetero_data(rng)
    T, d = data.n_tasks, data.n_features
    Z = rng.standard_normal((T, 2))
    A = (rng.random((T, T)) < 0.5).astype(float)
    A = np.triu(A, 1) + np.triu(A, 1).T
    D = rng.standard_normal((d, d))
    D = D @ D.T / d
    return data, Xs, ys, [
        ("task_relation_outer+ridge", [mc.TaskRelation(mc.relations.outer(Z), 0.7), mc.Ridge(0.05)],
         0.7 * Z @ Z.T + 0.05 * np.eye(T), None),
        ("graph_laplacian+ridge", [mc.GraphLaplacian(A, 0.4), mc.Ridge(0.1)],
         0.4 * mc.relations.laplacian(A) + 0.1 * np.eye(T), None),
        ("mean_regularized+ridge", [mc.MeanRegularized(1.3), mc.Ridge(0.02)],
         1.3 * (np.eye(T) - np.ones((T, T)) / T) + 0.02 * np.eye(T), None),
        ("feature_relation+ridge", [mc.FeatureRelation(D, 0.5), mc.Ridge(0.03)],
         0.03 * np.eye(T), 0.5 * D),
        ("dense_pd_K", [mc.TaskRelation(Z @ Z.T + 0.3 * np.eye(T), 0.2)],
         0.2 * (Z @ Z.T + 0.3 * np.eye(T)), None),
    ]


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("scale", ["mean", "sum"])
@pytest.mark.parametrize("backend", installed_backends())
def test_quadratic_matches_kronecker_reference(backend, scale, fit_intercept, rng):
    data, Xs, ys, cases = _cases(rng)
    c = 1.0 / data.n_samples if scale == "mean" else np.ones(data.n_tasks)
    for name, pens, K, D in cases:
        prob = mc.Problem(data, mc.SquaredLoss(scale=scale), pens, fit_intercept=fit_intercept)
        W_ref, b_ref, F_ref = quadratic_optimum(Xs, ys, c, K, D, fit_intercept)
        sol = prob.solve(backend=backend)
        assert sol.backend == backend
        rtol = BACKEND_RTOL[backend]
        assert sol.objective == pytest.approx(F_ref, rel=rtol), name
        if backend in ("direct", "clarabel", "osqp"):  # interior point / polished: exact W
            np.testing.assert_allclose(sol.W, W_ref, rtol=1e-5, atol=1e-6, err_msg=name)
            if fit_intercept:
                np.testing.assert_allclose(sol.intercept, b_ref, rtol=1e-5, atol=1e-6,
                                           err_msg=name)
        assert sol.solver_objective == pytest.approx(sol.objective, rel=1e-5), name


@pytest.mark.parametrize("backend", [b for b in installed_backends() if b != "direct"])
def test_conic_backends_agree_with_direct_to_1e6(backend, rng):
    data, _, _, cases = _cases(rng)
    for name, pens, _, _ in cases:
        prob = mc.Problem(data, penalties=pens, fit_intercept=True)
        ref = prob.solve(backend="direct")
        sol = prob.solve(backend=backend)
        rel = abs(sol.objective - ref.objective) / max(1.0, abs(ref.objective))
        assert rel <= 1e-6, (name, rel)


def test_shared_design_sylvester_and_weights(rng):
    n, d, T = 40, 6, 5
    X = rng.standard_normal((n, d))
    Y = rng.standard_normal((n, T))
    Z = rng.standard_normal((T, 2))
    K = Z @ Z.T + 0.1 * np.eye(T)
    D = np.diag(rng.random(d))
    data = mc.MultiTaskData.shared(X, Y)
    assert data.is_shared
    weights = np.array([1.0, 2.0, 0.5, 1.0, 3.0])
    for loss, Dfeat in [(mc.SquaredLoss(), D), (mc.SquaredLoss(task_weights=weights), None)]:
        pens = [mc.TaskRelation(K, 0.3)] + ([mc.FeatureRelation(Dfeat, 1.0)] if Dfeat is not None
                                             else [])
        prob = mc.Problem(data, loss, pens)
        sol = prob.solve(backend="direct")
        assert sol.info["method"] == "sylvester"
        c = loss.weights(data)
        W_ref, _, F_ref = quadratic_optimum([X] * T, list(Y.T), c, 0.3 * K, Dfeat)
        np.testing.assert_allclose(sol.W, W_ref, rtol=1e-9, atol=1e-11)
        assert sol.objective == pytest.approx(F_ref, rel=1e-12)


def test_direct_pcg_path_matches_dense(rng):
    data, Xs, ys = _hetero_data(rng, T=12, d=8)
    Z = rng.standard_normal((12, 3))
    pens = [mc.TaskRelation(Z @ Z.T + 0.5 * np.eye(12), 0.3), mc.FeatureRelation(np.eye(8), 0.1)]
    prob = mc.Problem(data, penalties=pens)
    dense = prob.solve(backend="direct")
    assert dense.info["method"] == "cholesky"
    backend = mc.backends.BACKENDS["direct"]
    old = backend.dense_limit
    backend.dense_limit = 10
    try:
        cg = prob.solve(backend="direct")
    finally:
        backend.dense_limit = old
    assert cg.info["method"] == "pcg" and cg.iterations > 1
    np.testing.assert_allclose(cg.W, dense.W, rtol=1e-9, atol=1e-10)


def test_direct_semidefinite_system_gives_an_optimum(rng):
    # Chain Laplacian, no ridge, tasks with n_t < d: the system is singular.
    Xs = [rng.standard_normal((2, 4)) for _ in range(3)]
    ys = [rng.standard_normal(2) for _ in range(3)]
    data = mc.MultiTaskData(Xs, ys)
    prob = mc.Problem(data, penalties=[mc.GraphLaplacian(mc.relations.chain(3), 1.0)])
    sol = prob.solve(backend="direct")
    ref = prob.solve(backend="clarabel")
    assert sol.objective == pytest.approx(ref.objective, rel=1e-7, abs=1e-9)


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(float).eps,
                    reason="long double is float64 here: no extended-precision refinement")
@pytest.mark.parametrize(("alpha", "shared", "weighted", "seed"), [
    (1e12, False, False, 12345), (1e13, False, False, 12345), (1e14, False, False, 12345),
    (1e12, True, False, 12345), (1e13, True, False, 12345), (1e14, True, False, 12345),
    (1e12, True, True, 12345), (1e13, True, True, 12345),
    # the Sylvester route's classical refinement stalled: 1.2e-2, 5.8e-3 and (equal
    # weights) 2.7e-2 of the optimum; its ill-conditioned rows that dropped no eigenvalue
    # went unrefined: 1.4e-6 (1e12) and 1.8e-8 (1e11)
    (1e14, True, True, 12345), (1e14, True, True, 0), (1e14, True, False, 2),
    (1e12, True, True, 6), (1e11, True, True, 12345),
    # the refined point's gain was below the comparison's worst-case rounding (|M||x|):
    # W 8.8e-6 off, now that rounding is the residuals' own
    (1e10, False, True, 7)])
def test_direct_keeps_a_ridge_beside_a_strong_dense_k(alpha, shared, weighted, seed):
    """``TaskRelation(outer(z), α) + Ridge(1)`` (λ_max ≈ 3α): at 1e12 Cholesky's residual
    is far above 1e-9 of the data (backward stable, ~ε‖M‖‖w‖), at 1e13 and 1e14 it breaks
    down, and the minimum-norm fallback counts the ridge's eigenvalues, within
    ``64·n·ε·λ_max`` of 0, as null: 1.3-1.8× the optimum (4.9× on bench_quadratic_gaps'
    T = 50 row at ``α = 1e10``); a float64 ``LDLᵀ`` alone was 3e-6 (1e13) and 2e-4 (1e14)
    above it. Refined by conjugate gradients with residuals in extended precision (the
    ``W·αK`` products error-free) it is within 1e-14 of the exact optimum in rationals
    (``W`` within 1e-12 of the exact minimiser), and its status is the certificate's word. On a
    shared design the Sylvester route's minimum-norm fallback dropped the same
    eigenvalues (1.2-1.4× the optimum at every α here; 1.3-1.6× with unequal task
    weights, which scale ``K``); its rows that dropped any, and those whose float64 solve
    is ill-conditioned, are refined by conjugate gradients in extended precision. (At
    ``α = 1e15`` the rounded ``outer(z)`` has eigenvalues about ``-ε|z|²`` that ``α``
    makes larger than the ridge: the problem is no longer convex.)"""
    from fractions import Fraction

    from reference import exact_objective, exact_quadratic_solution

    T, d = 8, 3
    rng = np.random.default_rng(seed)
    if shared:
        X, Y = rng.standard_normal((6, d)), rng.standard_normal((6, T))
        Xs, ys, data = [X] * T, list(Y.T), mc.MultiTaskData.shared(X, Y)
    else:
        Xs = [rng.standard_normal((5, d)) for _ in range(T)]
        ys = [rng.standard_normal(5) for _ in range(T)]
        data = mc.MultiTaskData(Xs, ys)
    z = rng.standard_normal((T, 1)) * np.pi
    c = np.linspace(0.5, 2.0, T) if weighted else np.ones(T)
    prob = mc.Problem(data, mc.SquaredLoss("sum", task_weights=c if weighted else None),
                      [mc.TaskRelation(mc.relations.outer(z), alpha), mc.Ridge(1.0)])
    K = [[Fraction(alpha) * Fraction(v) + (1 if s == t else 0) for t, v in enumerate(row)]
         for s, row in enumerate(prob.penalties[0].K.tolist())]
    c = [Fraction(v) for v in c.tolist()]
    F_star, W_star = exact_quadratic_solution(Xs, ys, c, K)
    with warnings.catch_warnings():  # certified only to 0.2-3.5: the float64 floor of WK
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        sol = prob.solve(backend="direct")
    assert sol.info["method"] == ("sylvester" if shared else "ldlt (refined)")
    true = exact_objective(Xs, ys, c, sol.W, None, K) - F_star
    assert 0 <= true <= Fraction(1e-14) * F_star, float(true / F_star)
    np.testing.assert_allclose(sol.W, W_star, rtol=0, atol=1e-12 * np.abs(W_star).max())
    assert Fraction(sol.certificate.gap) >= true
    assert sol.status != "optimal" or sol.certificate.relative_gap <= 1e-8


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(float).eps,
                    reason="long double is float64 here: no extended-precision refinement")
@pytest.mark.parametrize("seed", [0, 1])
def test_direct_strong_chain_on_a_shared_design(seed):
    """``GraphLaplacian(chain, 1e12) + Ridge(1)`` with unequal weights on a shared design:
    the structured solve (the chain's factor, condition ≈ 4e12) was 3e-12 of the optimum
    above it and ``W`` 2e-5 off; its rows are now refined with that solve as
    preconditioner. Against the exact optimum in rationals."""
    from fractions import Fraction

    from reference import exact_objective, exact_quadratic_solution

    rng = np.random.default_rng(seed)
    T, d = 8, 3
    X, Y = rng.standard_normal((6, d)), rng.standard_normal((6, T))
    c = np.linspace(0.5, 2.0, T)
    A = mc.relations.chain(T)
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), mc.SquaredLoss("sum", task_weights=c),
                      [mc.GraphLaplacian(A, 1e12), mc.Ridge(1.0)])
    L = mc.relations.laplacian(A)
    K = [[Fraction(1e12) * Fraction(float(L[s, t])) + (s == t) for t in range(T)]
         for s in range(T)]
    cf = [Fraction(v) for v in c.tolist()]
    F_star, W_star = exact_quadratic_solution([X] * T, list(Y.T), cf, K)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        sol = prob.solve(backend="direct")
    assert sol.info["method"] == "sylvester"
    true = exact_objective([X] * T, list(Y.T), cf, sol.W, None, K) - F_star
    assert 0 <= true <= Fraction(1e-14) * F_star, float(true / F_star)
    np.testing.assert_allclose(sol.W, W_star, rtol=0, atol=1e-12 * np.abs(W_star).max())
    assert sol.status != "optimal" or sol.certificate.relative_gap <= 1e-8


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(float).eps,
                    reason="long double is float64 here: no extended-precision refinement")
@pytest.mark.parametrize("alpha, sizes, weighted, route", [
    (1e9, "equal", False, "banded cholesky"), (1e9, "unequal", True, "banded cholesky"),
    (1e12, "equal", True, "banded cholesky"), (1e12, "unequal", False, "banded cholesky"),
    (1e14, "equal", False, "banded cholesky"), (1e14, "unequal", True, "banded cholesky"),
    (1e12, "unequal", True, "sparse ldl"), (1e14, "equal", False, "sparse ldl"),
    (1e9, "unequal", True, "pcg"), (1e12, "equal", False, "pcg"), (1e14, "unequal", True, "pcg")])
def test_direct_strong_sparse_chain_on_per_task_designs(alpha, sizes, weighted, route,
                                                        monkeypatch):
    """``GraphLaplacian(sparse chain, α) + Ridge(1e-3)`` on per-task designs (condition
    ≈ 4α/1e-3): the banded Cholesky and sparse ``LDLᵀ`` solves were off by ``κε``, ``W``
    up to 3e-8 (α = 1e9), 4e-5 (1e12) and 3e-3 (1e14) of the exact minimiser away and the
    objective up to 2e-10 and 5e-7 of the optimum above it (five seeds, equal and unequal
    sizes and weights). Refined by conjugate gradients
    in extended precision preconditioned by their own factor, ``W`` is within 1e-14 of the
    exact minimiser in rationals and the objective within 1e-18 of the optimum; the status
    stays the certificate's word (its float64 floor of ``W·αL`` leaves it "inaccurate"
    here from α ≈ 1e9). The matrix-free CG route (``K_t`` mixed: the chain beside a dense
    ``TaskRelation``, ``dense_limit = 0``), whose float64 iterations run to a relative
    residual of 1e-12, was already within 1.3e-13 of the exact minimiser and 5e-19 of the
    optimum (same sweep): not refined."""
    from fractions import Fraction

    import scipy.sparse
    from reference import exact_objective, exact_quadratic_solution

    from mtlcvx.backends import direct

    if route == "sparse ldl":  # no band storage: the sparse LDLᵀ of the same system
        monkeypatch.setattr(direct, "_MAX_BAND_ENTRIES", 0)
    if route == "pcg":  # no dense fallback
        monkeypatch.setattr(mc.backends.BACKENDS["direct"], "dense_limit", 0)
    T, d = 8, 3
    rng = np.random.default_rng(int(np.log10(alpha)))
    n = [5] * T if sizes == "equal" else [2, 7, 3, 9, 1, 6, 4, 5]
    Xs = [rng.standard_normal((k, d)) for k in n]
    ys = [rng.standard_normal(k) for k in n]
    c = np.linspace(0.5, 2.0, T) if weighted else np.ones(T)
    A = scipy.sparse.csr_matrix(mc.relations.chain(T))
    K2 = np.eye(T) if route != "pcg" else 0.5 * np.eye(T) + 0.1
    prob = mc.Problem(mc.MultiTaskData(Xs, ys),
                      mc.SquaredLoss("sum", task_weights=c if weighted else None),
                      [mc.GraphLaplacian(A, alpha),
                       mc.Ridge(1e-3) if route != "pcg" else mc.TaskRelation(K2, 1e-3)])
    L = np.diag(A.sum(axis=1).A.ravel()) - A.toarray()
    K = [[Fraction(alpha) * Fraction(float(L[s, t])) + Fraction(1e-3) * Fraction(K2[s, t])
          for t in range(T)] for s in range(T)]
    cf = [Fraction(v) for v in c.tolist()]
    F_star, W_star = exact_quadratic_solution(Xs, ys, cf, K)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        sol = prob.solve(backend="direct")
    assert sol.info["method"] == (route if route == "pcg" else route + " (refined)")
    true = exact_objective(Xs, ys, cf, sol.W, None, K) - F_star
    assert 0 <= true <= Fraction(1e-18) * F_star, float(true / F_star)
    atol = 1e-12 if route == "pcg" else 1e-14
    np.testing.assert_allclose(sol.W, W_star, rtol=0, atol=atol * np.abs(W_star).max())
    assert Fraction(sol.certificate.gap) >= true
    assert sol.status != "optimal" or sol.certificate.relative_gap <= 1e-8


@pytest.mark.parametrize("T", [8, 300])
def test_accurate_product_against_rationals(T, rng):
    """``X K`` where it cancels (``X ⊥ z``, ``K = zzᵀ`` at ``‖K‖ ≈ 3T`` plus a small diagonal,
    X in long double) against the exact product of the same numbers in rationals: long
    double's own product is off by ``ε_ld·|X||K|``, the error-free splitting by no more than
    float64's rounding of the result (``ε|XK|``) and 2⁻¹⁰⁰ of ``|X||K|``, and by no more
    than the error bound it returns."""
    from fractions import Fraction

    from mtlcvx.backends.direct import _accurate_product, _column_slices

    z = rng.standard_normal(T) * np.pi
    K = np.outer(z, z) + np.diag(rng.random(T) * 1e-9)
    X = rng.standard_normal((2, T)).astype(np.longdouble)
    zl = z.astype(np.longdouble)
    X -= np.outer(X @ zl, zl) / (zl @ zl)

    def exact(v):  # a long double as the sum of two floats, exactly
        hi = float(v)
        return Fraction(hi) + Fraction(float(v - np.longdouble(hi)))

    Xf = [[exact(v) for v in row] for row in X]
    Kf = [[Fraction(v) for v in row] for row in K.tolist()]
    cols = [0, T // 2, T - 1]
    ref = np.array([[sum(x * Kf[t][j] for t, x in enumerate(row)) for j in cols] for row in Xf])
    scale = float(np.abs(X).max()) * np.abs(K).max() * T
    got, bound_given = (v[:, cols] for v in _accurate_product(X, _column_slices(K)))
    err = np.array([[abs(Fraction(float(g)) + Fraction(float(g - np.longdouble(float(g))))
                         - r) for g, r in zip(grow, rrow, strict=True)]
                    for grow, rrow in zip(got, ref, strict=True)], dtype=float)
    bound = np.finfo(float).eps * np.abs(ref.astype(float)) + 2.0 ** -100 * scale
    assert np.all(err <= bound), (err / bound).max()
    assert np.all(err <= bound_given) and np.all(bound_given <= 1e-25 * scale)


@pytest.mark.parametrize("alpha", [0.3, 0.0])
def test_shared_ridge_one_cholesky_or_the_eigenbasis_when_too_weak(alpha, rng):
    # K_t = αI on a shared design: one Cholesky of cXᵀX + αI; α = 0 with a rank-deficient
    # XᵀX (a repeated column) leaves it to the eigenbasis, whose minimum-norm solution is
    # least squares' (np.linalg.lstsq)
    n, d, T = 30, 5, 4
    X = rng.standard_normal((n, d))
    X[:, 4] = X[:, 1]
    Y = rng.standard_normal((n, T))
    sol = mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[mc.Ridge(alpha)],
                     fit_intercept=False).solve(backend="direct")
    c = 1.0 / n
    ref = (np.linalg.solve(c * X.T @ X + alpha * np.eye(d), c * X.T @ Y) if alpha > 0
           else np.linalg.lstsq(X, Y, rcond=None)[0])
    np.testing.assert_allclose(sol.W, ref, rtol=1e-9, atol=1e-11)
    assert sol.status == "optimal"


@pytest.mark.parametrize("alpha,refined", [(1.0, False), (1e12, True)])
def test_ridge_free_chain_refined_only_where_the_system_is_ill_conditioned(alpha, refined):
    """A graph Laplacian alone (its ``λ_min`` bound 0) on tasks that pin their weights down
    (``X_tᵀX_t ≻ 0``): the system's ``λ_min ≥ min_t λ_min(X_tᵀX_t)``, so at α = 1 the banded
    solve is not refined (it was on every solve when the coupling's bound alone decided),
    and at α = 1e12 it is; either way ``W`` solves the normal equations (dense Kronecker
    system formed here, in extended precision)."""
    rng = np.random.default_rng(7)
    T, d = 40, 4
    Xs = [rng.standard_normal((9, d)) for _ in range(T)]
    ys = [rng.standard_normal(9) for _ in range(T)]
    prob = mc.Problem(mc.MultiTaskData(Xs, ys), mc.SquaredLoss("sum"),
                      [mc.GraphLaplacian(mc.relations.chain(T, sparse=True), alpha)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        sol = prob.solve(backend="direct")
    assert sol.info["method"] == "banded cholesky" + (" (refined)" if refined else "")
    L = 2.0 * np.eye(T) - np.eye(T, k=1) - np.eye(T, k=-1)
    L[0, 0] = L[-1, -1] = 1.0
    H = np.kron(alpha * L, np.eye(d)).astype(np.longdouble)
    b = np.zeros(d * T, dtype=np.longdouble)
    for t in range(T):
        H[t * d:(t + 1) * d, t * d:(t + 1) * d] += Xs[t].T @ Xs[t]
        b[t * d:(t + 1) * d] = Xs[t].T @ ys[t]
    w = sol.W.T.ravel().astype(np.longdouble)
    residual = np.abs(H @ w - b).max()
    scale = np.abs(H).max() * np.abs(w).max()
    assert residual <= 1e-12 * scale, float(residual / scale)
    if not refined:
        assert sol.status == "optimal"
