"""The examples run (``run(quick=True)``) and their numbers agree with independent ones.

Each example is imported from ``examples/`` by path. The checks recompute what matters
here, the textbook way (dense Kronecker normal equations, literal formulas from the
seed articles, per-task normal equations), rather than trusting the example's own
numbers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import BACKEND_RTOL, installed_backends
from reference import quadratic_optimum

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"mtlcvx_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quickstart():
    return _load("quickstart").run(quick=True)


@pytest.fixture(scope="module")
def seed_relation():
    return _load("seed_task_relation").run(quick=True)


@pytest.fixture(scope="module")
def seed_features():
    return _load("seed_task_features").run(quick=True)


# ---------------------------------------------------------------- quickstart
def test_quickstart_every_backend_reaches_the_kronecker_optimum(quickstart):
    data, truth = quickstart["data"], quickstart["truth"]
    Adj = truth["adjacency"]
    lap = np.diag(Adj.sum(axis=1)) - Adj
    K = 0.5 * lap + 0.01 * np.eye(data.n_tasks)  # GraphLaplacian(0.5) + Ridge(0.01)
    c = 1.0 / np.array([len(y) for y in data.y])
    W_ref, _, F_ref = quadratic_optimum(data.X, data.y, c, K)
    assert quickstart["auto_backend"] == "direct"
    results = quickstart["results"]
    assert set(installed_backends()) <= set(results)
    for name in installed_backends():
        r = results[name]
        if name == "ecos":  # ECOS's W is ~1e-5 off: the certificate may refuse 1e-8, and says so
            assert r["status"] == "optimal" or r["warnings"], (name, r)
        else:
            assert r["status"] == "optimal", (name, r)
            assert not r["warnings"], name
        assert r["objective"] == pytest.approx(F_ref, rel=BACKEND_RTOL[name]), name
    np.testing.assert_allclose(results["direct"]["W"], W_ref, rtol=1e-9, atol=1e-11)
    assert quickstart["reference"].objective == pytest.approx(F_ref, rel=1e-12)


def test_quickstart_l21_refused_by_direct_and_osqp_and_optimal_elsewhere(quickstart):
    res = quickstart["results_l21"]
    assert quickstart["auto_backend_l21"] == "clarabel"
    assert res["direct"]["status"] == "refused" and "not quadratic" in res["direct"]["error"]
    if "osqp" in installed_backends():
        assert res["osqp"]["status"] == "refused" and "'soc'" in res["osqp"]["error"]
    # optimality of the Clarabel point, checked from first principles: proximal-gradient
    # steps (exact L21 prox) started there must not lower the objective, and the L21
    # subgradient condition must hold
    data, truth = quickstart["data"], quickstart["truth"]
    Adj = truth["adjacency"]
    K = 0.5 * (np.diag(Adj.sum(axis=1)) - Adj) + 0.01 * np.eye(data.n_tasks)
    c = 1.0 / np.array([len(y) for y in data.y])

    def grad(W):
        return np.column_stack([c[t] * X.T @ (X @ W[:, t] - y) for t, (X, y)
                                in enumerate(zip(data.X, data.y, strict=True))]) + W @ K

    def F(W):
        fit = sum(c[t] / 2 * np.sum((X @ W[:, t] - y) ** 2)
                  for t, (X, y) in enumerate(zip(data.X, data.y, strict=True)))
        return fit + 0.5 * np.trace(W @ K @ W.T) + 0.05 * np.linalg.norm(W, axis=1).sum()

    W0 = quickstart["reference_l21"].W
    assert quickstart["reference_l21"].objective == pytest.approx(F(W0), rel=1e-12)
    Lf = max(c[t] * np.linalg.eigvalsh(X.T @ X)[-1] for t, X in enumerate(data.X))
    Lf += np.linalg.eigvalsh(K)[-1]
    W = W0.copy()
    for _ in range(300):
        V = W - grad(W) / Lf
        rn = np.linalg.norm(V, axis=1, keepdims=True)
        W = V * np.maximum(1 - 0.05 / Lf / np.maximum(rn, 1e-300), 0)
    assert F(W) <= F(W0) + 1e-12
    assert F(W0) - F(W) <= 1e-9 * max(1.0, F(W))
    G = grad(W)
    norms = np.linalg.norm(W, axis=1)
    active = norms > 1e-8
    assert np.abs(G[active] + 0.05 * W[active] / norms[active, None]).max() < 1e-6
    assert np.all(np.linalg.norm(G[~active], axis=1) <= 0.05 + 1e-9)
    for name in ("clarabel", "ecos", "scs"):
        if name in installed_backends():
            assert res[name]["status"] == "optimal" or name == "ecos", name
            assert res[name]["rel_objective_diff"] < BACKEND_RTOL[name], name


# ---------------------------------------------------------------- seed 000
SEED000_X = [np.array([[1, 2], [3, 4], [5, 6]], float), np.array([[2, 3], [4, 5], [6, 7]], float),
             np.array([[3, 4], [5, 6], [7, 8]], float)]
SEED000_Y = [np.array([1, 2, 3], float), np.array([2, 3, 4], float), np.array([3, 4, 5], float)]
SEED000_K = 0.1 * np.ones((3, 3))


def _seed000_objective(W):
    fit = sum(np.sum((X @ W[:, t] - y) ** 2)
              for t, (X, y) in enumerate(zip(SEED000_X, SEED000_Y, strict=True)))
    return fit + 0.5 * np.trace(W @ SEED000_K @ W.T)


def _seed000_normal_equations():
    """(blkdiag(2 X_tᵀX_t) + K ⊗ I) vec(W) = [2 X_tᵀ y_t]: the seed objective's optimum."""
    H = np.kron(SEED000_K, np.eye(2))
    g = np.zeros(6)
    for t, (X, y) in enumerate(zip(SEED000_X, SEED000_Y, strict=True)):
        H[2 * t:2 * t + 2, 2 * t:2 * t + 2] += 2 * X.T @ X
        g[2 * t:2 * t + 2] = 2 * X.T @ y
    return np.linalg.solve(H, g).reshape(3, 2).T, H


def test_seed_relation_K_is_only_semidefinite(seed_relation):
    eig = np.sort(seed_relation["K_eigenvalues"])
    np.testing.assert_allclose(eig, [0.0, 0.0, 0.3], atol=1e-12)
    assert abs(eig[0]) < 1e-12  # smallest eigenvalue ~ 0: not positive definite
    assert seed_relation["K_is_psd"] is True
    assert seed_relation["K_is_pd"] is False


def test_seed_relation_exact_optimum_matches_normal_equations(seed_relation):
    W_ref, H = _seed000_normal_equations()
    F_ref = _seed000_objective(W_ref)
    np.testing.assert_allclose(seed_relation["W_exact"], W_ref, rtol=1e-10, atol=1e-12)
    assert seed_relation["objective_exact"] == pytest.approx(F_ref, rel=1e-12)
    # seed objective = 2 × (SquaredLoss("sum") + TaskRelation(K, alpha=0.5))
    assert seed_relation["objective_mtlcvx"] == pytest.approx(F_ref / 2, rel=1e-12)
    assert seed_relation["conversion_max_rel_diff"] < 1e-12
    for name, (F, dW) in seed_relation["cross_check"].items():
        assert F == pytest.approx(F_ref, rel=1e-9), name
        assert dW < 1e-6, name
    # constants used by the gradient method
    eigH = np.linalg.eigvalsh(H)
    assert seed_relation["mu"] == pytest.approx(eigH[0], rel=1e-10)
    assert seed_relation["L"] >= eigH[-1]  # a valid Lipschitz bound
    L_ref = 2 * max(np.linalg.eigvalsh(X.T @ X)[-1] for X in SEED000_X) + 0.3
    assert seed_relation["L"] == pytest.approx(L_ref, rel=1e-12)


def test_seed_relation_corrected_gd_converges_to_the_exact_optimum(seed_relation):
    W_ref, _ = _seed000_normal_equations()
    F_ref = _seed000_objective(W_ref)
    F_gd = _seed000_objective(seed_relation["W_gd"])
    assert F_gd == pytest.approx(seed_relation["objective_gd"], rel=1e-14)
    rel = (F_gd - F_ref) / max(1.0, abs(F_ref))
    assert -1e-13 <= rel <= 1e-6
    assert np.linalg.norm(seed_relation["W_gd"] - W_ref) / np.linalg.norm(W_ref) < 1e-3
    hist = seed_relation["history"]
    assert len({len(v) for v in hist.values()}) == 1
    assert hist["iteration"][0] == 0 and hist["iteration"][-1] == seed_relation["iterations_gd"]
    assert np.all(np.diff(hist["objective"]) <= 1e-14)  # GD with step 1/L is monotone
    assert np.all(hist["bound"] >= hist["suboptimality"] - 1e-14)  # the certificate holds
    # the article's code fails, and its step size diverges even with the right gradient
    assert seed_relation["article_error"].startswith("ValueError")
    assert seed_relation["article_step_objective"] > 1e10


# ---------------------------------------------------------------- seed 004
def test_seed_features_A_is_rank_p_psd(seed_features):
    Z = seed_features["Z"]
    A = Z @ Z.T
    np.testing.assert_allclose(seed_features["A"], A, rtol=1e-14, atol=1e-14)
    eig = np.linalg.eigvalsh(A)
    assert seed_features["A_rank"] == Z.shape[1] == int(np.sum(eig > 1e-10 * eig[-1]))
    assert eig[0] > -1e-10 * eig[-1]
    assert seed_features["A_is_psd"] is True
    assert seed_features["article_A_shape"] == (2, 2)  # the seed's d×d matrix, not T×T
    assert seed_features["article_error"].startswith("ValueError")


def test_seed_features_exact_optimum_matches_kronecker_solution(seed_features):
    train = seed_features["balanced"]["train"]
    Z, lam = seed_features["Z"], seed_features["lam"]
    n = np.array([len(y) for y in train.y])
    W_ref, _, F_ref = quadratic_optimum(train.X, train.y, 1.0 / n, lam * Z @ Z.T)
    np.testing.assert_allclose(seed_features["W_coupled"], W_ref, rtol=1e-8, atol=1e-10)
    assert seed_features["objective_mtlcvx"] == pytest.approx(F_ref, rel=1e-12)
    np.testing.assert_allclose(seed_features["W_clarabel"], W_ref, rtol=1e-5, atol=1e-7)
    # the seed's objective, written literally, is twice mtlcvx's
    W = seed_features["W_coupled"]
    seed = sum(np.mean((X @ W[:, t] - y) ** 2)
               for t, (X, y) in enumerate(zip(train.X, train.y, strict=True)))
    seed += lam * np.trace(W @ Z @ Z.T @ W.T)
    assert seed_features["objective_seed"] == pytest.approx(seed, rel=1e-12)
    assert seed == pytest.approx(2 * F_ref, rel=1e-12)
    assert seed_features["conversion_max_rel_diff"] < 1e-12


def test_seed_features_coupling_versus_independent_least_squares(seed_features):
    ds = seed_features["balanced"]
    train, test, Z = ds["train"], ds["test"], seed_features["Z"]
    W_ls = np.column_stack([np.linalg.solve(X.T @ X, X.T @ y)
                            for X, y in zip(train.X, train.y, strict=True)])
    np.testing.assert_allclose(seed_features["W_independent"], W_ls, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(seed_features["W_lambda0"], W_ls, rtol=1e-8, atol=1e-10)
    W = seed_features["W_coupled"]
    mse = [np.mean((X @ W[:, t] - y) ** 2) for t, (X, y) in enumerate(zip(test.X, test.y,
                                                                              strict=True))]
    np.testing.assert_allclose(seed_features["test_mse_coupled"], mse, rtol=1e-12)
    # the penalty shrinks W Z, and with this truth (W_true Z small) that lowers test error
    assert np.linalg.norm(W @ Z) < np.linalg.norm(W_ls @ Z)
    assert (seed_features["test_mse_coupled"].mean()
            < seed_features["test_mse_independent"].mean())
    path = seed_features["path"]
    assert path["lam"][0] == 0.0
    # with weights linear in the descriptors, A = ZZᵀ hurts and the complement helps
    assert path["linear_A"][-1] > path["linear_A"][0]
    assert path["linear_complement"][-1] < path["linear_complement"][0]
    assert path["balanced_A"][-1] < path["balanced_A"][0]


# ---------------------------------------------------------------- School cross-validation
def test_school_cross_validation_matches_sklearn_ridge_per_school():
    from sklearn.linear_model import Ridge

    import mtlcvx as mc

    rows = _load("school_cross_validation").run(quick=True)
    assert set(rows) == {"independent ridge", "mean-regularized", "L21", "trace norm"}
    res = rows["independent ridge"]["result"]
    data = mc.datasets.load_school(standardize=True)
    splits = mc.TaskShuffleSplit(2, test_size=0.25, random_state=0).split(
        mc.MultiTaskData(data.X[:10], data.y[:10]))
    for f, (trains, tests) in enumerate(splits):
        for i, a in enumerate(res.alphas):
            # (1/(2n))‖y − Xw − b‖² + (α/2)‖w‖²  ⇔  scikit-learn's ‖y − Xw − b‖² + nα‖w‖²
            sse, ys = 0.0, []
            for t in range(10):
                X, y = data.X[t], data.y[t]
                tr, te = trains[t], tests[t]
                model = Ridge(alpha=len(tr) * a).fit(X[tr], y[tr])
                sse += float(np.sum((y[te] - model.predict(X[te])) ** 2))
                ys.append(y[te])
            y_all = np.concatenate(ys)
            want = 1 - sse / float(np.sum((y_all - y_all.mean()) ** 2))
            assert res.scores[i, f] == pytest.approx(want, rel=1e-7)
    for r in rows.values():
        assert r["result"].best_alpha == r["alpha"]
        assert r["r2_pooled"] == pytest.approx(r["result"].scores[r["result"].best_index].mean())


def test_robust_mtl_recovers_the_outlier_tasks():
    """The planted outliers are exactly the non-zero columns of S; the objective matches a
    CVXPY model written here (parts as its own variables), and L + S = W."""
    import cvxpy as cp

    res = _load("robust_mtl").run(quick=True)
    assert res["found"] == res["outliers"]
    data = res["data"]
    d, T = data.n_features, data.n_tasks
    L, S = cp.Variable((d, T)), cp.Variable((d, T))
    loss = sum(cp.sum_squares(X @ (L[:, t] + S[:, t]) - y) / (2 * len(y))
               for t, (X, y) in enumerate(zip(data.X, data.y, strict=True)))
    ref = cp.Problem(cp.Minimize(loss + 0.5 * cp.normNuc(L) + 0.4 * cp.sum(cp.norm(S, 2, axis=0))))
    ref.solve(solver="CLARABEL")
    for sol in res["solutions"].values():
        assert sol.status == "optimal"
        assert sol.objective == pytest.approx(ref.value, rel=1e-7)
        np.testing.assert_allclose(sol.parts["L"] + sol.parts["S"], sol.W, atol=1e-12)
    assert res["png"].exists()


# ---------------------------------------------------------------- many related tasks
def test_many_related_tasks_reach_the_kronecker_optimum():
    """The three structured solves (banded Cholesky, Woodbury on the factor, the shared
    design's eigenbasis) against the dense normal equations blkdiag(X_tᵀX_t) + K ⊗ I_d,
    formed here from the raw arrays, and the chain prior beats separate ridge fits."""
    out = _load("many_related_tasks").run(quick=True)
    T, alpha, ridge, tasks = out["T"], out["alpha"], out["ridge"], out["tasks"]
    Xs, ys, Z = tasks["Xs"], tasks["ys"], tasks["Z"]
    L = 2.0 * np.eye(T) - np.eye(T, k=1) - np.eye(T, k=-1)
    L[0, 0] = L[-1, -1] = 1.0  # the chain's Laplacian
    shared = out["problems"]["shared chain"].data
    cases = {"chain": (list(Xs), list(ys), alpha * L + ridge * np.eye(T), "banded cholesky"),
             "low-rank": (list(Xs), list(ys), Z @ Z.T + ridge * np.eye(T), "woodbury"),
             "shared chain": ([np.asarray(shared.X[0])] * T,
                              [np.asarray(y) for y in shared.y], alpha * L + ridge * np.eye(T),
                              "sylvester")}
    d = Xs.shape[2]
    for name, (Xl, yl, K, method) in cases.items():
        H = np.kron(K, np.eye(d))
        b = np.zeros(d * T)
        for t in range(T):
            H[t * d:(t + 1) * d, t * d:(t + 1) * d] += Xl[t].T @ Xl[t]
            b[t * d:(t + 1) * d] = Xl[t].T @ yl[t]
        W_ref = np.linalg.solve(H, b).reshape(T, d).T
        F_ref = 0.5 * sum(np.sum((Xl[t] @ W_ref[:, t] - yl[t]) ** 2) for t in range(T)) \
            + 0.5 * np.trace(W_ref @ K @ W_ref.T)
        sol = out["solutions"][name]
        assert sol.backend == "direct" and sol.info["method"] == method, name
        assert sol.status == "optimal" and sol.certificate.relative_gap <= 1e-8, name
        np.testing.assert_allclose(sol.W, W_ref, rtol=1e-8, atol=1e-10 * np.abs(W_ref).max())
        assert sol.objective == pytest.approx(F_ref, rel=1e-11), name
    assert out["errors"]["chain"] < 0.6 * out["errors"]["separate"]
