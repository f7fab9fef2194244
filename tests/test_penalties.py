"""Penalties: NumPy values, CVXPY terms, gradients, proxes, relation helpers, DPP re-solves."""

from __future__ import annotations

import copy
import pickle
import warnings

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone

import mtlcvx as mc
from mtlcvx import relations

T, D = 5, 4


@pytest.fixture
def data(rng):
    sizes = [12, 3, 7, 20, 4]  # tall (compressed) and short tasks
    Xs = [rng.standard_normal((n, D)) for n in sizes]
    ys = [rng.standard_normal(n) for n in sizes]
    return mc.MultiTaskData(Xs, ys)


def _random_adjacency(rng, T=T):
    A = rng.random((T, T)) * (rng.random((T, T)) < 0.6)
    A = np.triu(A, 1)
    return A + A.T


def _dense_pd(rng, n, ridge=0.3):
    Z = rng.standard_normal((n, n))
    return Z @ Z.T / n + ridge * np.eye(n)


def _col_norms(W):
    return cp.sum(cp.norm(W, 2, axis=0))


# --------------------------------------------------------------------------- values
def _penalty_cases(rng):
    """(penalty, independent NumPy formula of its value) pairs."""
    K = _dense_pd(rng, T)
    Z = rng.standard_normal((T, 2))
    A = _random_adjacency(rng)
    A_loops = A + np.diag(rng.random(T))  # self-loops are ignored
    Dm = _dense_pd(rng, D)

    def graph(W, A, a):
        total = 0.0
        for s in range(T):
            for t in range(T):
                total += A[s, t] * np.sum((W[:, s] - W[:, t]) ** 2)
        return 0.25 * a * total

    def mean_reg(W, a):
        mean = sum(W[:, t] for t in range(T)) / T
        return 0.5 * a * sum(np.sum((W[:, t] - mean) ** 2) for t in range(T))

    def svals(W):  # square roots of the eigenvalues of the smaller Gram matrix
        gram = W @ W.T if W.shape[0] <= W.shape[1] else W.T @ W
        return np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0, None))

    return [
        ("Ridge", mc.Ridge(0.7), lambda W: 0.35 * np.sum(W**2)),
        ("TaskRelation_dense", mc.TaskRelation(K, 0.3),
         lambda W: 0.5 * 0.3 * np.trace(W @ K @ W.T)),
        ("TaskRelation_outer", mc.TaskRelation(relations.outer(Z), 1.1),
         lambda W: 0.5 * 1.1 * np.sum((W @ Z) ** 2)),
        ("TaskRelation_laplacian", mc.TaskRelation(relations.laplacian(A), 0.9),
         lambda W: graph(W, A, 0.9)),
        ("GraphLaplacian", mc.GraphLaplacian(A, 0.6), lambda W: graph(W, A, 0.6)),
        ("GraphLaplacian_loops", mc.GraphLaplacian(A_loops, 0.6), lambda W: graph(W, A, 0.6)),
        ("MeanRegularized", mc.MeanRegularized(1.3), lambda W: mean_reg(W, 1.3)),
        ("FeatureRelation", mc.FeatureRelation(Dm, 0.4),
         lambda W: 0.5 * 0.4 * np.trace(W.T @ Dm @ W)),
        ("FeatureRelation_diag", mc.FeatureRelation(np.diag([1.0, 2.0, 0.0, 3.0]), 0.4),
         lambda W: 0.2 * np.sum(np.array([1.0, 2.0, 0.0, 3.0])[:, None] * W**2)),
        ("L1", mc.L1(0.25), lambda W: 0.25 * sum(abs(x) for x in W.ravel())),
        ("L21", mc.L21(0.5),
         lambda W: 0.5 * sum(np.sqrt(np.sum(W[j] ** 2)) for j in range(W.shape[0]))),
        ("TraceNorm", mc.TraceNorm(0.8), lambda W: 0.8 * svals(W).sum()),
        ("SquaredTraceNorm", mc.SquaredTraceNorm(0.6), lambda W: 0.3 * svals(W).sum() ** 2),
        ("Custom", mc.Custom(_col_norms, cones={"soc"}, alpha=0.45),
         lambda W: 0.45 * np.linalg.norm(W, axis=0).sum()),
        ("Custom_value", mc.Custom(_col_norms, cones={"soc"}, alpha=0.45,
                                   value=lambda W: np.linalg.norm(W, axis=0).sum()),
         lambda W: 0.45 * np.linalg.norm(W, axis=0).sum()),
    ]


_CASE_IDS = [c[0] for c in _penalty_cases(np.random.default_rng(0))]


def _cvxpy_objective(prob, W):
    """The compiled objective at ``W`` (auxiliary mean variables at their optimum)."""
    cvx = prob.cvxpy
    var = prob.cvxpy_variable
    var.value = W
    for v in cvx.variables():
        if v is not var:
            assert v.name() == "task_mean", v.name()
            v.value = W.mean(axis=1, keepdims=True)
    return cvx.objective.value + prob.cvxpy_offset


@pytest.mark.parametrize("index", range(len(_CASE_IDS)), ids=_CASE_IDS)
def test_value_matches_formula_and_cvxpy(rng, data, index):
    _, pen, formula = _penalty_cases(rng)[index]
    for _ in range(3):
        W = rng.standard_normal((D, T))
        assert pen.value(W) == pytest.approx(formula(W), rel=1e-11, abs=1e-13)
    assert pen.value(np.zeros((D, T))) == 0.0
    for fit_intercept in (False, True):
        prob = mc.Problem(data, penalties=[pen], fit_intercept=fit_intercept)
        for _ in range(2):
            W = rng.standard_normal((D, T))
            assert _cvxpy_objective(prob, W) == pytest.approx(prob.objective(W), rel=1e-9)
        loss = mc.Problem(data, fit_intercept=fit_intercept).objective(W)
        assert prob.objective(W) == pytest.approx(loss + formula(W), rel=1e-12)


def test_mean_regularized_aux_variable_is_minimised_out(data, rng):
    pen = mc.MeanRegularized(2.0)
    prob = mc.Problem(data, penalties=[pen])
    W = rng.standard_normal((D, T))
    var = prob.cvxpy_variable
    (aux,) = [v for v in prob.cvxpy.variables() if v is not var]
    var.value = W
    aux.value = W.mean(axis=1, keepdims=True) + 0.1  # any other m is worse
    worse = prob.cvxpy.objective.value + prob.cvxpy_offset
    assert worse > prob.objective(W)


# --------------------------------------------------------------------------- gradients
def _smooth_cases(rng):
    return [c for c in _penalty_cases(rng) if c[1].is_smooth] + [
        ("Custom_gradient", mc.Custom(lambda W: cp.sum_squares(W) / 2, cones={"quadratic"},
                                      alpha=0.7, gradient=lambda W: W), None),
    ]


_SMOOTH_IDS = [c[0] for c in _smooth_cases(np.random.default_rng(0))]


@pytest.mark.parametrize("index", range(len(_SMOOTH_IDS)), ids=_SMOOTH_IDS)
def test_gradient_matches_finite_differences(rng, index):
    _, pen, _ = _smooth_cases(rng)[index]
    W = rng.standard_normal((D, T))
    G = pen.gradient(W)
    assert G.shape == (D, T)
    h = 1e-5
    num = np.zeros_like(W)
    for i in range(D):
        for j in range(T):
            E = np.zeros_like(W)
            E[i, j] = h
            num[i, j] = (pen.value(W + E) - pen.value(W - E)) / (2 * h)
    np.testing.assert_allclose(G, num, rtol=1e-7, atol=1e-8)


def test_problem_gradient_of_quadratic_is_alpha_W_K(rng):
    K = _dense_pd(rng, T)
    pen = mc.TaskRelation(K, alpha=0.4)
    W = rng.standard_normal((D, T))
    np.testing.assert_allclose(pen.gradient(W), 0.4 * W @ K)


# --------------------------------------------------------------------------- proxes
def _prox_reference(term, V, step):
    W = cp.Variable(V.shape)
    cp.Problem(cp.Minimize(step * term(W) + 0.5 * cp.sum_squares(W - V))).solve(
        solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    return W.value


_PROX = {
    "L1": (lambda a: mc.L1(a), lambda a: lambda W: a * cp.sum(cp.abs(W)),
           lambda a: lambda W: a * np.abs(W).sum()),
    "L21": (lambda a: mc.L21(a), lambda a: lambda W: a * cp.mixed_norm(W, 2, 1),
            lambda a: lambda W: a * np.linalg.norm(W, axis=1).sum()),
    "TraceNorm": (lambda a: mc.TraceNorm(a), lambda a: lambda W: a * cp.normNuc(W),
                  lambda a: lambda W: a * np.linalg.svd(W, compute_uv=False).sum()),
    "SquaredTraceNorm": (lambda a: mc.SquaredTraceNorm(a),
                         lambda a: lambda W: a / 2 * cp.square(cp.normNuc(W)),
                         lambda a: lambda W: a / 2 * np.linalg.svd(W, compute_uv=False).sum()
                         ** 2),
}


@pytest.mark.parametrize("step", [0.05, 0.4, 1.5])
@pytest.mark.parametrize("name", list(_PROX))
def test_prox_solves_its_problem(rng, name, step):
    make, term, value = (f(0.8) for f in _PROX[name])
    pen = make
    V = rng.standard_normal((D, 3)) * 1.5
    V[1] *= 0.05  # a row / entries that get shrunk to zero
    P = pen.prox(V, step)
    ref = _prox_reference(term, V, step)
    np.testing.assert_allclose(P, ref, atol=2e-6)

    def obj(W):
        return step * value(W) + 0.5 * np.sum((W - V) ** 2)

    assert obj(P) <= obj(ref) + 1e-10
    assert pen.value(P) == pytest.approx(value(P), rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("name", list(_PROX))
def test_prox_edge_cases(rng, name):
    pen = _PROX[name][0](0.5)
    V = rng.standard_normal((D, 3))
    np.testing.assert_allclose(pen.prox(V, 0.0), V, atol=1e-12)  # zero step: identity
    np.testing.assert_array_equal(pen.prox(np.zeros((D, 3)), 1.0), 0.0)
    # huge step: shrunk to zero (the squared norm only to σ_max / (1 + step·α))
    big = pen.prox(V, 1e6)
    assert np.linalg.norm(big) <= np.linalg.norm(V, 2) / (1e6 * 0.5)
    if name != "SquaredTraceNorm":
        np.testing.assert_array_equal(big, 0.0)


def test_l21_prox_zero_row_and_custom_prox(rng):
    V = rng.standard_normal((D, 3))
    V[2] = 0.0
    P = mc.L21(0.3).prox(V, 1.0)
    assert np.all(np.isfinite(P)) and np.all(P[2] == 0)
    seen = {}

    def user_prox(V, step):
        seen["step"] = step
        return np.sign(V) * np.maximum(np.abs(V) - step, 0)

    custom = mc.Custom(lambda W: cp.sum(cp.abs(W)), cones={"nonneg"}, alpha=0.3, prox=user_prox)
    assert custom.has_prox
    np.testing.assert_allclose(custom.prox(V, 2.0), mc.L1(0.3).prox(V, 2.0))
    assert seen["step"] == pytest.approx(0.6)  # step already multiplied by alpha


# --------------------------------------------------------------------------- relations
def test_laplacian_identity(rng):
    A = _random_adjacency(rng)
    L = relations.laplacian(A)
    np.testing.assert_allclose(L, np.diag(A.sum(axis=1)) - A)
    np.testing.assert_allclose(L.sum(axis=1), 0.0, atol=1e-14)
    W = rng.standard_normal((D, T))
    rhs = 0.5 * sum(A[s, t] * np.sum((W[:, s] - W[:, t]) ** 2)
                    for s in range(T) for t in range(T))
    assert np.trace(W @ L @ W.T) == pytest.approx(rhs, rel=1e-12)
    # self-loops ignored
    np.testing.assert_allclose(relations.laplacian(A + np.eye(T)), L)


def test_chain():
    A = relations.chain(4)
    expected = np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]], float)
    np.testing.assert_array_equal(A, expected)
    np.testing.assert_array_equal(relations.chain(1), np.zeros((1, 1)))
    for T, sparse in ((0, False), (-1, True), (2.5, True), ("3", False), (True, False)):
        with pytest.raises(mc.PenaltyError, match="T must be a positive integer"):
            relations.chain(T, sparse=sparse)
    np.testing.assert_array_equal(relations.chain(np.int64(4), sparse=True).toarray(), expected)


def test_knn_graph(rng):
    Z = rng.standard_normal((9, 2))
    k = 2
    A = relations.knn_graph(Z, k)
    assert A.shape == (9, 9)
    np.testing.assert_array_equal(A, A.T)
    assert set(np.unique(A)) <= {0.0, 1.0}
    np.testing.assert_array_equal(np.diag(A), 0.0)
    dist = np.linalg.norm(Z[:, None] - Z[None], axis=2)
    expected = np.zeros((9, 9))
    for t in range(9):
        order = [s for s in np.argsort(dist[t]) if s != t][:k]
        expected[t, order] = 1.0
    expected = np.maximum(expected, expected.T)
    np.testing.assert_array_equal(A, expected)
    assert np.all(A.sum(axis=1) >= k)
    for bad in (9, 0, 1.5, "2"):
        with pytest.raises(mc.PenaltyError, match="k must be an integer"):
            relations.knn_graph(Z, bad)


def test_mean_regularizer_identity(rng):
    M = relations.mean_regularizer(T)
    np.testing.assert_allclose(M, np.eye(T) - np.ones((T, T)) / T)
    W = rng.standard_normal((D, T))
    wbar = W.mean(axis=1)
    expected = sum(np.sum((W[:, t] - wbar) ** 2) for t in range(T))
    assert np.trace(W @ M @ W.T) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("labels", [[0, 1, 0, 2, 1, 1], ["b", "a", "b", "a", "a", "c"]])
def test_from_clusters_identity(rng, labels):
    labels = np.array(labels)
    n = labels.size
    M = relations.from_clusters(labels)
    assert M.shape == (n, n)
    np.testing.assert_allclose(M, M.T)
    W = rng.standard_normal((D, n))
    expected = 0.0
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        centre = W[:, members].mean(axis=1)
        expected += sum(np.sum((W[:, t] - centre) ** 2) for t in members)
    assert np.trace(W @ M @ W.T) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(relations.from_clusters(np.zeros(n)), relations.mean_regularizer(n))
    assert relations.is_psd(M)


def test_outer_passes_psd_check_despite_round_off(rng):
    for p in (1, 2, 5):
        Z = rng.standard_normal((12, p)) * 1e3
        K = relations.outer(Z)
        np.testing.assert_allclose(K, Z @ Z.T)
        assert relations.is_psd(K)
        relations.check_psd(K)
        pen = mc.TaskRelation(K)
        R = relations.psd_factor(pen.K)
        assert R.shape == (12, p)
        np.testing.assert_allclose(R @ R.T, K, rtol=1e-9, atol=1e-9 * np.abs(K).max())


def _dense(R):
    return R.toarray() if sp.issparse(R) else R


def test_psd_factor_laplacian_is_sparse_incidence(rng):
    A = _random_adjacency(rng, 7)
    n_edges = int(np.count_nonzero(np.triu(A, 1)))
    L = relations.laplacian(A)
    R = relations.psd_factor(L)
    assert sp.issparse(R)
    assert R.shape == (7, n_edges)
    assert R.nnz == 2 * n_edges
    np.testing.assert_allclose(_dense(R) @ _dense(R).T, L, atol=1e-12)
    # chain: unweighted incidence
    R = relations.psd_factor(relations.laplacian(relations.chain(6)))
    assert sp.issparse(R) and R.nnz == 10 and R.shape == (6, 5)


def test_psd_factor_laplacian_plus_diagonal(rng):
    A = _random_adjacency(rng, 6)
    n_edges = int(np.count_nonzero(np.triu(A, 1)))
    r = np.array([0.5, 0.0, 2.0, 0.0, 0.1, 1.0])
    K = relations.laplacian(A) + np.diag(r)
    R = relations.psd_factor(K)
    assert sp.issparse(R)
    assert R.nnz == 2 * n_edges + 4
    np.testing.assert_allclose(_dense(R) @ _dense(R).T, K, atol=1e-12)
    R = relations.psd_factor(np.eye(6) * 3)
    np.testing.assert_allclose(_dense(R) @ _dense(R).T, 3 * np.eye(6))


def test_psd_factor_dense_pd_and_rank_deficient(rng):
    K = _dense_pd(rng, 6)
    R = _dense(relations.psd_factor(K))
    np.testing.assert_allclose(R @ R.T, K, atol=1e-12)
    Z = rng.standard_normal((8, 3))
    K = Z @ Z.T
    R = relations.psd_factor(relations.check_psd(K))
    assert R.shape == (8, 3)
    np.testing.assert_allclose(_dense(R) @ _dense(R).T, K, atol=1e-11)
    # a sparse banded PD matrix with mixed signs
    K = np.eye(30) * 3 + np.diag(np.full(29, 0.5), 1) + np.diag(np.full(29, 0.5), -1)
    R = _dense(relations.psd_factor(K))
    np.testing.assert_allclose(R @ R.T, K, atol=1e-12)


def test_psd_factor_keeps_small_eigenvalues_above_round_off(rng):
    # K = Q diag(λ) Qᵀ with λ = (0, 1e-11, 0.5, 1, 2, 3): 1e-11 is far above round-off
    # (64·6·ε·3 ≈ 2.6e-13), so the factor keeps rank 5 and reproduces K to round-off
    Q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    K = (Q * np.array([0.0, 1e-11, 0.5, 1.0, 2.0, 3.0])) @ Q.T
    R = _dense(relations.psd_factor(relations.check_psd((K + K.T) / 2)))
    assert R.shape == (6, 5)
    np.testing.assert_allclose(R @ R.T, K, rtol=0, atol=1e-14)


def test_nearest_psd(rng):
    B = rng.standard_normal((5, 5))
    P = relations.nearest_psd(B)
    assert relations.is_psd(P)
    np.testing.assert_allclose(relations.nearest_psd(P), P, atol=1e-12)
    assert not relations.is_psd(-np.eye(3))


# --------------------------------------------------------------------------- DPP + re-solves
def _quadratic_pens(rng):
    return [
        mc.TaskRelation(_dense_pd(rng, T), 0.2),
        mc.GraphLaplacian(_random_adjacency(rng, T), 0.3),
        mc.MeanRegularized(0.4),
        mc.FeatureRelation(_dense_pd(rng, D), 0.1),
        mc.Ridge(0.05),
    ]


def _every_penalty(rng):
    return _quadratic_pens(rng) + [
        mc.L1(0.01),
        mc.L21(0.02),
        mc.TraceNorm(0.03),
        mc.SquaredTraceNorm(0.01),
        mc.Custom(_col_norms, cones={"soc"}, alpha=0.02),
    ]


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_every_builtin_penalty_is_dpp(data, rng, fit_intercept):
    pens = _every_penalty(rng)
    prob = mc.Problem(data, penalties=pens, fit_intercept=fit_intercept)
    assert prob.cvxpy.is_dcp()
    assert prob.cvxpy.is_dpp()
    assert len(prob.cvxpy.parameters()) == len(pens)  # one Parameter per term here
    # the column-norm Custom has no prox and mixes with L1, L21, trace norms: no rung gives
    # a gap, so the honest status is "unverified" whatever Clarabel says
    with pytest.warns(mc.ConvergenceWarning, match="no certificate can verify"):
        sol = prob.solve(backend="clarabel")
    assert sol.status == "unverified" and sol.info["solver_status"] == "optimal"
    assert "no exact prox" in sol.certificate.reason
    assert prob.n_builds == 1
    # the compiled objective is the NumPy objective at the optimum
    assert sol.solver_objective == pytest.approx(sol.objective, rel=1e-6)


def _assert_same_optimum(sol, ref, rtol=1e-7, atol=1e-5):
    assert sol.objective == pytest.approx(ref.objective, rel=rtol)
    np.testing.assert_allclose(sol.W, ref.W, atol=atol)


@pytest.mark.parametrize("how", ["attribute", "set_params"])
def test_alpha_change_resolves_without_rebuild_quadratic(data, rng, how):
    pens = _quadratic_pens(rng)
    prob = mc.Problem(data, penalties=pens)
    first = prob.solve(backend="clarabel")
    assert prob.n_builds == 1
    for pen, new in zip(pens, [2.0, 0.01, 1.5, 0.7, 0.3], strict=True):
        if how == "attribute":
            pen.alpha = new
        else:
            assert pen.set_params(alpha=new) is pen
    sol = prob.solve(backend="clarabel")
    assert prob.n_builds == 1
    ref = mc.Problem(data, penalties=[copy.deepcopy(p) for p in pens]).solve(backend="direct")
    _assert_same_optimum(sol, ref)
    assert abs(sol.objective - first.objective) > 1e-3  # it really is a new optimum
    # switching a term off is a valid strength too
    pens[0].alpha = 0.0
    sol = prob.solve(backend="clarabel")
    assert prob.n_builds == 1
    _assert_same_optimum(sol, mc.Problem(data, penalties=pens).solve(backend="direct"))


@pytest.mark.parametrize("how", ["attribute", "set_params"])
def test_alpha_change_resolves_without_rebuild_sparse(data, rng, how):
    pens = [mc.L21(0.05), mc.L1(0.02), mc.TaskRelation(_dense_pd(rng, T), 0.1),
            mc.Custom(_col_norms, cones={"soc"}, alpha=0.01)]
    prob = mc.Problem(data, penalties=pens, fit_intercept=True)
    # no rung certifies this sum (the Custom has no prox): "unverified", with a warning
    warnings.filterwarnings("ignore", message="backend .* no certificate can verify",
                            category=mc.ConvergenceWarning)
    first = prob.solve(backend="clarabel")
    for pen, new in zip(pens, [0.2, 0.005, 0.5, 0.1], strict=True):
        if how == "attribute":
            pen.alpha = new
        else:
            pen.set_params(alpha=new)
    sol = prob.solve(backend="clarabel")
    assert sol.status == first.status == "unverified"
    assert prob.n_builds == 1
    ref = mc.Problem(data, penalties=pens, fit_intercept=True).solve(backend="ecos")
    assert sol.objective == pytest.approx(ref.objective, rel=1e-6)
    np.testing.assert_allclose(sol.W, ref.W, atol=1e-4)
    assert abs(sol.objective - first.objective) > 1e-3


def test_alpha_change_spectral(data, rng):
    pens = [mc.TraceNorm(0.05), mc.SquaredTraceNorm(0.02), mc.Ridge(0.01)]
    prob = mc.Problem(data, penalties=pens)
    first = prob.solve(backend="clarabel")
    pens[0].alpha = 0.3
    pens[1].set_params(alpha=0.1)
    sol = prob.solve(backend="clarabel")
    assert prob.n_builds == 1
    ref = mc.Problem(data, penalties=[copy.deepcopy(p) for p in pens]).solve(backend="clarabel")
    assert sol.objective == pytest.approx(ref.objective, rel=1e-7)
    assert sol.objective != pytest.approx(first.objective, rel=1e-3)
    np.testing.assert_allclose(sol.W, ref.W, atol=1e-5)


@pytest.mark.parametrize("rank", [T, 2])
@pytest.mark.parametrize("how", ["attribute", "set_params"])
def test_K_change_same_rank_reuses_build(data, rng, rank, how):
    def make_K():
        Z = rng.standard_normal((T, rank))
        K = Z @ Z.T
        return K + 0.2 * np.eye(T) if rank == T else K

    pen = mc.TaskRelation(make_K(), alpha=0.5)
    prob = mc.Problem(data, penalties=[pen, mc.Ridge(0.02)])
    first = prob.solve(backend="clarabel")
    K2 = make_K()
    if how == "attribute":
        pen.K = K2
    else:
        pen.set_params(K=K2)
    sol = prob.solve(backend="clarabel")
    assert prob.n_builds == 1
    ref = mc.Problem(data, penalties=[mc.TaskRelation(K2, 0.5), mc.Ridge(0.02)]).solve(
        backend="direct")
    _assert_same_optimum(sol, ref)
    assert abs(sol.objective - first.objective) > 1e-4
    # alpha and K together
    pen.set_params(K=make_K(), alpha=0.05)
    sol = prob.solve(backend="clarabel")
    assert prob.n_builds == 1
    _assert_same_optimum(sol, mc.Problem(data, penalties=[copy.deepcopy(pen), mc.Ridge(0.02)])
                         .solve(backend="direct"))


def test_K_change_of_rank_or_sparse_factor_rebuilds_correctly(data, rng):
    pen = mc.TaskRelation(_dense_pd(rng, T), alpha=0.5)
    prob = mc.Problem(data, penalties=[pen, mc.Ridge(0.02)])
    prob.solve(backend="clarabel")
    Z = rng.standard_normal((T, 2))
    pen.K = Z @ Z.T  # factor changes shape
    sol = prob.solve(backend="clarabel")
    assert prob.n_builds == 2
    _assert_same_optimum(sol, prob.solve(backend="direct"))
    A = _random_adjacency(rng)
    graph = mc.GraphLaplacian(A, 0.3)
    prob = mc.Problem(data, penalties=[graph, mc.Ridge(0.02)])
    prob.solve(backend="clarabel")
    graph.A = _random_adjacency(rng)  # sparse factor is a compiled constant
    sol = prob.solve(backend="clarabel")
    _assert_same_optimum(sol, prob.solve(backend="direct"))
    graph.alpha = 1.0  # but its strength is a Parameter
    builds = prob.n_builds
    sol = prob.solve(backend="clarabel")
    assert prob.n_builds == builds
    _assert_same_optimum(sol, prob.solve(backend="direct"))


def test_refused_assignment_does_not_rebuild(data):
    pen = mc.GraphLaplacian(relations.chain(T), 0.3)
    prob = mc.Problem(data, penalties=[pen])
    prob.solve(backend="clarabel")
    with pytest.raises(mc.PenaltyError):
        pen.A = -np.ones((T, T))
    prob.solve(backend="clarabel")
    assert prob.n_builds == 1


@pytest.mark.parametrize("backend", ["direct", "clarabel", "osqp"])
def test_zero_coupling_matrices(data, backend):
    # e.g. from_clusters with every task alone: M = 0 (an empty factor)
    pens = [mc.TaskRelation(relations.from_clusters(np.arange(T)), 0.5),
            mc.GraphLaplacian(np.zeros((T, T)), 0.5),
            mc.FeatureRelation(np.zeros((D, D)), 0.5),
            mc.TaskRelation(relations.outer(np.zeros((T, 1))), 0.5),
            mc.Ridge(0.1)]
    sol = mc.Problem(data, penalties=pens).solve(backend=backend)
    ref = mc.Problem(data, penalties=[mc.Ridge(0.1)]).solve(backend="direct")
    _assert_same_optimum(sol, ref, rtol=1e-7, atol=1e-5)


def test_one_penalty_serves_two_problems(rng):
    pen = mc.TaskRelation(_dense_pd(rng, T), alpha=0.3)
    d1 = mc.datasets.make_related_tasks(n_tasks=T, n_features=3, n_samples=8, random_state=1)
    d2 = mc.datasets.make_related_tasks(n_tasks=T, n_features=6, n_samples=9, random_state=2)
    p1, p2 = mc.Problem(d1, penalties=[pen]), mc.Problem(d2, penalties=[pen])
    s1, s2 = p1.solve(backend="clarabel"), p2.solve(backend="clarabel")
    assert s1.W.shape == (3, T) and s2.W.shape == (6, T)
    pen.alpha = 1.0
    _assert_same_optimum(p1.solve(backend="clarabel"), p1.solve(backend="direct"))
    _assert_same_optimum(p2.solve(backend="clarabel"), p2.solve(backend="direct"))
    assert p1.n_builds == 1 and p2.n_builds == 1


# --------------------------------------------------------------------------- params / clone
def _param_cases():
    """(name, factory) pairs, one per penalty class."""
    rng = np.random.default_rng(3)
    K = _dense_pd(rng, T)
    return [
        ("Ridge", lambda: mc.Ridge(0.3)),
        ("TaskRelation", lambda: mc.TaskRelation(K, 0.2)),
        ("GraphLaplacian", lambda: mc.GraphLaplacian(relations.chain(T), 0.4)),
        ("MeanRegularized", lambda: mc.MeanRegularized(0.5)),
        ("FeatureRelation", lambda: mc.FeatureRelation(np.eye(D) * 2, 0.1)),
        ("L1", lambda: mc.L1(0.1)),
        ("L21", lambda: mc.L21(0.2)),
        ("TraceNorm", lambda: mc.TraceNorm(0.3)),
        ("SquaredTraceNorm", lambda: mc.SquaredTraceNorm(0.4)),
        ("Custom", lambda: mc.Custom(_col_norms, cones={"soc"}, alpha=0.6,
                                     value=lambda W: np.linalg.norm(W, axis=0).sum())),
    ]


def _params_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k])
        else:
            assert a[k] == b[k], k


@pytest.mark.parametrize("name,make", _param_cases())
def test_get_set_params_round_trip(name, make):
    pen = make()
    params = pen.get_params()
    assert "alpha" in params and pen.get_params(deep=False).keys() == params.keys()
    rebuilt = type(pen)(**params)
    _params_equal(rebuilt.get_params(), params)
    assert pen.set_params(**params) is pen
    _params_equal(pen.get_params(), params)
    pen.set_params(alpha=0.123)
    assert pen.get_params()["alpha"] == 0.123 and pen.alpha == 0.123
    assert name in repr(pen)
    W = np.random.default_rng(0).standard_normal((D, T))
    assert rebuilt.set_params(alpha=0.123).value(W) == pytest.approx(pen.value(W))


@pytest.mark.parametrize("name,make", [
    pytest.param(name, make, id=name) for name, make in _param_cases()
])
def test_sklearn_clone(name, make):
    pen = make()
    twin = clone(pen)
    assert type(twin) is type(pen) and twin is not pen
    _params_equal(twin.get_params(), pen.get_params())
    W = np.random.default_rng(1).standard_normal((D, T))
    assert twin.value(W) == pytest.approx(pen.value(W), rel=1e-14)
    twin.alpha = 0.999
    assert pen.alpha != 0.999  # independent copies


def test_custom_clone_keeps_callables():
    def value(W):
        return float(np.abs(W).sum())

    def prox(V, step):
        return np.sign(V) * np.maximum(np.abs(V) - step, 0)

    pen = mc.Custom(lambda W: cp.sum(cp.abs(W)), cones=["nonneg"], alpha=0.2, value=value,
                    prox=prox)
    twin = clone(pen)
    params = twin.get_params()
    assert params["value"] is value and params["prox"] is prox and params["gradient"] is None
    assert params["cones"] == frozenset({"nonneg"})
    assert twin.has_prox and not twin.is_smooth
    V = np.random.default_rng(2).standard_normal((D, T))
    np.testing.assert_allclose(twin.prox(V, 1.0), mc.L1(0.2).prox(V, 1.0))


@pytest.mark.parametrize("name,make", [c for c in _param_cases() if c[0] != "Custom"])
def test_penalties_deepcopy_and_pickle(name, make):
    pen = make()
    W = np.random.default_rng(4).standard_normal((D, T))
    for other in (copy.deepcopy(pen), pickle.loads(pickle.dumps(pen))):
        assert type(other) is type(pen)
        assert other.value(W) == pytest.approx(pen.value(W), rel=1e-14)
        _params_equal(other.get_params(), pen.get_params())
