"""Learned relations: known answers, independent CVXPY SDPs, certificates, MALSAR's formula."""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest

import mtlcvx as mc

I2 = np.eye(2)


def _identity_tasks(Y):
    """X_t = I (2×2), y_t = column t of Y: loss ½‖W − Y‖² with scale="sum"."""
    return mc.MultiTaskData([I2, I2], [Y[:, 0], Y[:, 1]])


def _random_problem(rng, T=5, d=4, penalties=(), fit_intercept=False, scale="mean"):
    Xs = [rng.standard_normal((int(n), d)) for n in rng.integers(6, 14, size=T)]
    W = rng.standard_normal((d, 2)) @ rng.standard_normal((2, T))  # low rank: Ω* singular
    ys = [X @ W[:, t] + 0.3 * rng.standard_normal(X.shape[0]) + 1.0 for t, X in enumerate(Xs)]
    data = mc.MultiTaskData(Xs, ys)
    return mc.Problem(data, mc.SquaredLoss(scale), list(penalties), fit_intercept=fit_intercept)


def _sdp_optimum(prob, kind, alpha, k=None, eta=None, ridge=0.0, nuclear=False):
    """The jointly convex problem as one matrix-fractional SDP, written independently:
    explicit intercepts (a column of ones, unpenalised), each task's least squares reduced
    by its own QR factor (‖[X 1]θ − y‖² = ‖Rθ − Qᵀy‖² + ‖y‖² − ‖Qᵀy‖²), Clarabel.

    ``nuclear=True`` writes a covariance kind as ``(α/2)‖W‖²_*`` instead (the closed-form
    minimum over the covariance); Clarabel stops "inaccurate" on the matrix-fractional
    form when the optimal covariance is singular at School's scale."""
    data = prob.data
    d, T = prob.n_features, prob.n_tasks
    c = prob.loss.weights(data)
    W = cp.Variable((d, T))
    b = cp.Variable(T) if prob.fit_intercept else None
    loss, const = 0, 0.0
    for t in range(T):
        X, y = data.X[t], data.y[t]
        if b is not None:
            X = np.hstack([X, np.ones((X.shape[0], 1))])
        Q, R = np.linalg.qr(X)
        z = Q.T @ y
        theta = W[:, t] if b is None else cp.hstack([W[:, t], b[t:t + 1]])
        loss = loss + c[t] / 2 * cp.sum_squares(R @ theta - z)
        const += c[t] / 2 * (y @ y - z @ z)
    side_task = not kind.startswith("feature")
    n = T if side_task else d
    M = cp.Variable((n, n), PSD=True)
    X = W.T if side_task else W
    if kind.endswith("covariance"):
        A, cons = M, [cp.trace(M) == 1]
    else:
        A, cons = eta * np.eye(n) + M, [np.eye(n) - M >> 0, cp.trace(M) == k]
    term = cp.square(cp.normNuc(W)) if nuclear else cp.matrix_frac(X, A)
    obj = loss + ridge / 2 * cp.sum_squares(W) + alpha / 2 * term
    problem = cp.Problem(cp.Minimize(obj), [] if nuclear else cons)
    problem.solve(solver="CLARABEL")  # tighter settings make Clarabel stop "inaccurate"
    assert problem.status == "optimal"
    return problem.value + const


# ------------------------------------------------------------------ hand-solved tiny cases
@pytest.mark.parametrize("method", ["alternate", "joint"])
def test_mtrl_singular(method):
    prob = mc.Problem(_identity_tasks(np.diag([3.0, 1.0])), mc.SquaredLoss("sum"))
    res = mc.learn_relation(prob, "task_covariance", 1.0, method=method)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(2.75, rel=1e-9)
    np.testing.assert_allclose(res.W, np.diag([1.5, 0.0]), atol=1e-7)
    np.testing.assert_allclose(res.matrix, np.diag([1.0, 0.0]), atol=1e-7)
    assert res.certificate.gap >= res.objective - 2.75 - 1e-12


@pytest.mark.parametrize("method", ["alternate", "joint"])
def test_mtrl_full(method):
    prob = mc.Problem(_identity_tasks(np.diag([4.0, 2.0])), mc.SquaredLoss("sum"), [mc.Ridge(1.0)])
    res = mc.learn_relation(prob, "task_covariance", 0.5, method=method)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(6.5, rel=1e-9)
    np.testing.assert_allclose(res.W, np.diag([1.5, 0.5]), atol=1e-7)
    np.testing.assert_allclose(res.matrix, np.diag([0.75, 0.25]), atol=1e-7)


def test_mtfl():
    prob = mc.Problem(_identity_tasks(np.diag([3.0, 1.0])), mc.SquaredLoss("sum"))
    res = mc.learn_relation(prob, "feature_covariance", 1.0)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(2.75, rel=1e-9)
    np.testing.assert_allclose(res.matrix, np.diag([1.0, 0.0]), atol=1e-7)
    assert res.matrix.shape == (2, 2) and res.labels is None


def test_ccmtl_identity(rng):
    """ρ₁η(1+η) tr(W(ηI + FFᵀ)⁻¹Wᵀ) = ρ₁(tr WᵀW − tr FᵀWᵀWF) + ρ₂ tr WᵀW for a hard
    clustering F; M is pinned to FFᵀ through k_constraints, W comes from the alternation."""
    rho1, rho2 = 2.0, 0.5
    eta = rho2 / rho1
    prob = _random_problem(rng, T=4, scale="sum")
    F = np.zeros((4, 2))
    F[[0, 1], 0] = F[[2, 3], 1] = 1 / np.sqrt(2)
    with pytest.warns(mc.ConvergenceWarning, match="k_constraints"):
        res = mc.learn_relation(prob, "clusters", 2 * rho1 * eta * (1 + eta), k=2, eta=eta,
                                k_step="sdp", k_constraints=lambda M: [M == F @ F.T],
                                max_iter=3)
    assert res.status == "unverified"
    np.testing.assert_allclose(res.matrix, F @ F.T, atol=1e-7)
    W = res.W
    G = W.T @ W
    rhs = rho1 * (np.trace(G) - np.trace(F.T @ G @ F)) + rho2 * np.trace(G)
    loss = sum(0.5 * np.sum((prob.data.X[t] @ W[:, t] - prob.data.y[t]) ** 2) for t in range(4))
    assert res.objective == pytest.approx(loss + rhs, rel=1e-6)


def test_malsar_cmtl_objective_at_the_same_point(rng):
    """MALSAR's Least_CMTL objective ½Σ‖X_t w_t − y_t‖² + ρ₁η(1+η) tr(W(ηI + M)⁻¹Wᵀ),
    evaluated by hand at (res.W, res.matrix), is res.objective under the documented
    conversion alpha = 2ρ₁η(1+η), eta = ρ₂/ρ₁."""
    rho1, rho2, k = 3.0, 0.3, 2
    eta = rho2 / rho1
    prob = _random_problem(rng, T=6, scale="sum")
    res = mc.learn_relation(prob, "clusters", 2 * rho1 * eta * (1 + eta), k=k, eta=eta)
    W, M = res.W, res.matrix
    np.testing.assert_allclose(np.linalg.eigvalsh(M).clip(-1e-9, 1 + 1e-9),
                               np.linalg.eigvalsh(M), atol=0)
    assert np.trace(M) == pytest.approx(k)
    loss = sum(0.5 * np.sum((prob.data.X[t] @ W[:, t] - prob.data.y[t]) ** 2) for t in range(6))
    malsar = loss + rho1 * eta * (1 + eta) * np.trace(W @ np.linalg.inv(eta * np.eye(6) + M) @ W.T)
    assert res.objective == pytest.approx(malsar, rel=1e-12)


# ------------------------------------------------------------------ against the SDP
@pytest.mark.parametrize("kind,k,eta", [("task_covariance", None, None),
                                        ("feature_covariance", None, None),
                                        ("clusters", 2, 0.2),
                                        ("feature_clusters", 1.5, 0.3)])
def test_alternation_joint_and_sdp_agree(rng, kind, k, eta):
    prob = _random_problem(rng, penalties=[mc.Ridge(0.05)], fit_intercept=True)
    alpha = 0.8
    F_star = _sdp_optimum(prob, kind, alpha, k, eta, ridge=0.05)
    alt = mc.learn_relation(prob, kind, alpha, k=k, eta=eta)
    joint = mc.learn_relation(prob, kind, alpha, k=k, eta=eta, method="joint")
    for res in (alt, joint):
        assert res.status == "optimal"
        # the SDP's own accuracy (~1e-9) plus the certificate
        assert abs(res.objective - F_star) <= res.certificate.gap + 1e-7 * abs(F_star)
    # every iterate of the alternation: the certified gap is never below the true gap
    hist = alt.history
    assert np.all(hist["gap"] >= hist["objective"] - F_star - 1e-7 * abs(F_star))
    assert np.isfinite(hist["gap"]).sum() >= 2


@pytest.mark.parametrize("kind,k,eta", [("task_covariance", None, None), ("clusters", 2, 0.2)])
def test_joint_conic_matches_fista(rng, kind, k, eta):
    prob = _random_problem(rng, T=4, d=3)
    fst = mc.learn_relation(prob, kind, 0.5, k=k, eta=eta, method="joint")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        con = mc.learn_relation(prob, kind, 0.5, k=k, eta=eta, method="joint",
                                backend="clarabel", tol=1e-6)
    assert con.objective >= fst.objective - fst.certificate.gap
    assert con.objective - fst.objective <= con.certificate.gap + 1e-12


def test_objective_smoothed_never_increases_within_a_stage(rng):
    prob = _random_problem(rng)
    # tol=1e-14 is below what float64 can certify (the certificate's rounding floor):
    # it only keeps the alternation running; the warning that says so is expected
    with pytest.warns(mc.ConvergenceWarning, match="not certified"):
        res = mc.learn_relation(prob, "task_covariance", 1.0, tol=1e-14, max_iter=60)
    hist = res.history
    alt = hist["stage"] == "alternate"
    eps, smooth = hist["eps"][alt], hist["objective_smoothed"][alt]
    assert np.unique(eps).size >= 3  # ε-continuation ran through several stages
    same = eps[1:] == eps[:-1]
    steps = np.diff(smooth)[same]
    assert np.all(steps <= 1e-12 * np.abs(smooth[1:][same]))


def test_sdp_step_reproduces_closed_form(rng):
    prob = _random_problem(rng, T=4, d=3)
    for kind, k, eta in (("task_covariance", None, None), ("clusters", 2, 0.2)):
        closed = mc.learn_relation(prob, kind, 1.0, k=k, eta=eta, max_iter=4)
        sdp = mc.learn_relation(prob, kind, 1.0, k=k, eta=eta, max_iter=4, k_step="sdp")
        a, b = (r.history["stage"] == "alternate" for r in (closed, sdp))
        np.testing.assert_allclose(sdp.history["objective_smoothed"][b],
                                   closed.history["objective_smoothed"][a], rtol=1e-6)
        np.testing.assert_allclose(sdp.matrix, closed.matrix, atol=1e-6)


def test_planted_clusters_recovered():
    data, truth = mc.datasets.make_related_tasks(n_tasks=9, n_features=6, n_samples=40,
                                                 n_clusters=3, spread=0.05, noise=0.1,
                                                 random_state=3, return_truth=True)
    res = mc.learn_relation(mc.Problem(data), "clusters", 1.0, k=3, eta=0.05)
    assert res.status == "optimal"
    # same partition (labels are numbered by first appearance, as are the planted ones)
    np.testing.assert_array_equal(res.labels, truth["labels"])


def test_clustered_objective_below_the_joint_optimum_plus_tol(rng):
    prob = _random_problem(rng, scale="sum")
    F_star = _sdp_optimum(prob, "clusters", 1.0, 2, 0.1)
    res = mc.learn_relation(prob, "clusters", 1.0, k=2, eta=0.1)
    assert res.objective <= F_star * (1 + 1e-8) + 1e-8


def test_prob_is_not_mutated_and_results_are_complete(rng):
    ridge = mc.Ridge(0.1)
    prob = _random_problem(rng, penalties=[ridge], fit_intercept=True)
    before = prob.penalties
    res = mc.learn_relation(prob, "clusters", 1.0, k=2, eta=0.5)
    assert prob.penalties is before and prob.penalties == (ridge,)
    assert res.intercept.shape == (5,)
    lengths = {len(v) for v in res.history.values()}
    assert len(lengths) == 1
    assert set(res.history) >= {"iteration", "objective", "objective_smoothed", "eps", "gap",
                                "matrix_change", "time"}
    assert "status optimal" in res.summary()
    assert res.history.to_frame().shape[0] == lengths.pop()
    assert res.to_frame().shape == (5, 5)  # 4 features + the intercept row
    # the last W-step's coupling (ηI + M)⁻¹: eigenvalues in [1/(1 + η), 1/η]
    lam = np.linalg.eigvalsh(res.coupling)
    assert lam.min() >= 1 / 1.5 - 1e-12 and lam.max() <= 2 + 1e-12


@pytest.mark.parametrize("kwargs,match", [
    ({"kind": "bogus", "alpha": 1.0}, "kind must be one of"),
    ({"kind": "clusters", "alpha": 1.0}, "needs k"),
    ({"kind": "clusters", "alpha": 1.0, "k": 9, "eta": 0.1}, "k must be at most 5"),
    ({"kind": "task_covariance", "alpha": 1.0, "k": 2}, "takes no k or eta"),
    ({"kind": "task_covariance", "alpha": -1.0}, "alpha must be"),
    ({"kind": "task_covariance", "alpha": 1.0, "k_constraints": lambda M: []}, "k_step='sdp'"),
    ({"kind": "task_covariance", "alpha": 1.0, "method": "both"}, "method must be"),
    ({"kind": "task_covariance", "alpha": 1.0, "W0": np.zeros((5, 4))}, "W0 has shape"),
])
def test_bad_arguments(rng, kwargs, match):
    prob = _random_problem(rng)
    with pytest.raises(mc.MTLError, match=match):
        mc.learn_relation(prob, **kwargs)


def test_learned_clusters_term(rng):
    """Value against the matrix-fractional SDP, gradient by finite differences, conjugate
    by the Fenchel–Young equality at the gradient."""
    W = rng.standard_normal((4, 6))
    term = mc.LearnedClusters(alpha=0.7, k=2.5, eta=0.3)
    M = cp.Variable((6, 6), symmetric=True)
    sdp = cp.Problem(cp.Minimize(0.35 * cp.matrix_frac(W.T, 0.3 * np.eye(6) + M)),
                     [M >> 0, np.eye(6) - M >> 0, cp.trace(M) == 2.5])
    sdp.solve(solver="CLARABEL")
    assert term.value(W) == pytest.approx(sdp.value, rel=1e-7)
    E = rng.standard_normal(W.shape)
    h = 1e-6
    fd = (term.value(W + h * E) - term.value(W - h * E)) / (2 * h)
    assert np.sum(term.gradient(W) * E) == pytest.approx(fd, rel=1e-6)
    G = term.gradient(W)
    assert term.value(W) + term.conjugate(G) == pytest.approx(np.sum(W * G), rel=1e-10)
    assert term.lipschitz(4, 6) == pytest.approx(0.7 / 0.3)
    assert term.strong_convexity(4, 6) == pytest.approx(0.7 / 1.3)
    assert term.structure == "smooth"
    assert [o for o in ("prox", "gradient", "lipschitz", "strong_convexity", "conjugate")
            if term.provides(o)] == ["gradient", "lipschitz", "strong_convexity", "conjugate"]


def test_plot_task_matrix_orders_by_cluster():
    M = np.array([[1.0, 0.1, 0.9], [0.1, 1.0, 0.2], [0.9, 0.2, 1.0]])
    ax = mc.plotting.plot_task_matrix(M, labels=[1, 0, 1])
    shown = ax.get_images()[0].get_array()
    order = [1, 0, 2]  # cluster 0 first, the original order kept inside cluster 1
    np.testing.assert_array_equal(shown, M[np.ix_(order, order)])
    assert len(ax.lines) == 2  # one horizontal and one vertical cluster boundary
    with pytest.raises(ValueError, match="square"):
        mc.plotting.plot_task_matrix(np.ones((2, 3)))


def test_example_learn_task_relations():
    """run(quick=True): the planted groups come back, and the School results (5 schools)
    match independent CVXPY models with explicit intercepts on the uncompressed data."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "learn_task_relations.py"
    spec = importlib.util.spec_from_file_location("mtlcvx_example_learn_task_relations", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.run(quick=True)
    np.testing.assert_array_equal(out["clusters"].labels, out["truth"]["labels"])
    assert out["png"].stat().st_size > 0
    mtrl, cmtl = out["mtrl"], out["cmtl"]
    assert mtrl.status == cmtl.status == "optimal"
    F_mtrl = _sdp_optimum(out["mtrl_problem"], "task_covariance", 1.0, ridge=0.1, nuclear=True)
    assert abs(mtrl.objective - F_mtrl) <= mtrl.certificate.gap + 1e-7 * F_mtrl
    eta = module.RHO2 / module.RHO1
    F_cmtl = _sdp_optimum(out["cmtl_problem"], "clusters", 2 * module.RHO1 * eta * (1 + eta),
                          module.K, eta)
    assert abs(cmtl.objective - F_cmtl) <= cmtl.certificate.gap + 1e-7 * F_cmtl


def test_mtrl_and_mtfl_conversions(rng):
    """MTRL's objective Σ_t (1/n_t)‖X_t w_t + b_t − y_t‖² + (λ₁/2)‖W‖² + (λ₂/2)tr(WΩ⁻¹Wᵀ)
    and MTFL's Σ_t‖X_t w_t − y_t‖² + γ tr(WᵀD⁺W), by hand at the returned point, are twice
    res.objective under the documented conversions."""
    lam1, lam2, gamma = 0.3, 1.4, 0.7
    prob = _random_problem(rng, penalties=[mc.Ridge(lam1 / 2)], fit_intercept=True)
    res = mc.learn_relation(prob, "task_covariance", lam2 / 2)
    X, y, W, b, Om = prob.data.X, prob.data.y, res.W, res.intercept, res.matrix
    mtrl = sum(np.sum((X[t] @ W[:, t] + b[t] - y[t]) ** 2) / len(y[t]) for t in range(5))
    mtrl += lam1 / 2 * np.sum(W * W) + lam2 / 2 * np.trace(W @ np.linalg.pinv(Om) @ W.T)
    assert 2 * res.objective == pytest.approx(mtrl, rel=1e-8)

    prob = _random_problem(rng, scale="sum")
    res = mc.learn_relation(prob, "feature_covariance", gamma)
    X, y, W, D = prob.data.X, prob.data.y, res.W, res.matrix
    assert np.trace(D) == pytest.approx(1.0)
    mtfl = sum(np.sum((X[t] @ W[:, t] - y[t]) ** 2) for t in range(5))
    mtfl += gamma * np.trace(W.T @ np.linalg.pinv(D) @ W)
    assert 2 * res.objective == pytest.approx(mtfl, rel=1e-8)


def test_no_exact_prox_is_reported_not_hidden(rng):
    """L1 + the squared trace norm has no exact joint prox: the joint FISTA route refuses
    before running, and the alternation's result is never called optimal without a gap
    that meets tol (checked against the independent SDP with the L1 term)."""
    prob = _random_problem(rng, T=4, d=3, penalties=[mc.L1(0.05)])
    with pytest.raises(mc.IncompatibleBackend, match="backend='clarabel'"):
        mc.learn_relation(prob, "task_covariance", 1.0, method="joint")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        res = mc.learn_relation(prob, "task_covariance", 1.0, max_iter=5)
    assert res.status in ("optimal", "inaccurate")
    data, c = prob.data, prob.loss.weights(prob.data)
    W = cp.Variable((3, 4))
    obj = sum(c[t] / 2 * cp.sum_squares(data.X[t] @ W[:, t] - data.y[t]) for t in range(4))
    obj += 0.05 * cp.sum(cp.abs(W)) + 0.5 * cp.square(cp.normNuc(W))
    F_star = cp.Problem(cp.Minimize(obj)).solve(solver="CLARABEL")
    assert res.certificate.gap >= res.objective - F_star - 1e-7 * F_star


@pytest.mark.parametrize("kind,kw", [("clusters", {"k": 2, "eta": 0.1}),
                                     ("task_covariance", {})])
@pytest.mark.parametrize("method", ["alternate", "joint"])
def test_zero_strength_is_the_rest_of_the_problem(rng, kind, kw, method):
    """alpha = 0 leaves the declared problem: its optimum by dense normal equations."""
    from reference import quadratic_optimum

    prob = _random_problem(rng, penalties=[mc.Ridge(0.2)], fit_intercept=True)
    _, _, F = quadratic_optimum(prob.data.X, prob.data.y, prob.loss.weights(prob.data),
                                0.2 * np.eye(5), fit_intercept=True)
    res = mc.learn_relation(prob, kind, 0.0, method=method, **kw)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(F, rel=1e-8)


@pytest.mark.parametrize("backend", ["direct", "clarabel", "fista"])
def test_w_steps_by_a_backend(rng, backend):
    """W-steps re-solved by a named backend (a conic one through the compiled problem's
    Parameters) reach the same certified optimum as the independent SDP."""
    prob = _random_problem(rng, T=4, d=3)
    F_star = _sdp_optimum(prob, "clusters", 0.5, 2, 0.2)
    res = mc.learn_relation(prob, "clusters", 0.5, k=2, eta=0.2, backend=backend, max_iter=20)
    assert res.status == "optimal"
    assert abs(res.objective - F_star) <= res.certificate.gap + 1e-7 * abs(F_star)
