"""Exactness at the edges: status rules, nothing stale, one matrix, inputs that slipped through.

References are independent of the code under test: the dense Kronecker solve of
``tests/reference.py`` (lstsq, explicit intercepts, the matrix as the test writes it),
closed forms, or a fresh problem built from scratch.
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest
from reference import objective as ref_objective
from reference import quadratic_optimum

import mtlcvx as mc
from mtlcvx import first_order


def _tasks(rng, sizes, d):
    Xs = [rng.standard_normal((n, d)) for n in sizes]
    ys = [rng.standard_normal(n) for n in sizes]
    return Xs, ys


def _true_gap(Xs, ys, c, W, K, D=None, fit_intercept=False):
    """F(W) − F* from the reference solve (intercepts profiled out as the package does)."""
    _, _, F_star = quadratic_optimum(Xs, ys, c, K, D, fit_intercept)
    if fit_intercept:
        b = np.array([np.mean(y - X @ W[:, t])
                      for t, (X, y) in enumerate(zip(Xs, ys, strict=True))])
    else:
        b = None
    return ref_objective(Xs, ys, c, W, b, K, D) - F_star, F_star


# ----------------------------------------------------------------------------- status
def test_custom_without_prox_is_unverified_not_optimal(rng):
    Xs, ys = _tasks(rng, [6, 7, 5], 4)
    data = mc.MultiTaskData(Xs, ys)
    col = mc.Custom(lambda W: cp.sum(cp.norm(W, 2, axis=0)), cones={"soc"}, alpha=0.1)
    prob = mc.Problem(data, penalties=[col, mc.L1(0.05)])
    with pytest.warns(mc.ConvergenceWarning, match="no certificate can verify") as rec:
        sol = prob.solve(backend="clarabel")
    assert sol.status == "unverified"
    assert sol.info["solver_status"] == "optimal"  # the solver's word is kept, not used
    assert sol.certificate.gap is None and sol.certificate.reason
    assert "unverified" in str(rec[0].message) and "optimal" in sol.summary()
    assert "unverified" in sol.summary()


def test_relative_gap_is_scale_invariant(rng):
    # y scaled by 1e-5: F(0) ~ 1e-10 is far from optimal relatively; max(1, |F|) hid that
    Xs, ys = _tasks(rng, [8, 9, 7], 3)
    ys = [1e-5 * y for y in ys]
    data = mc.MultiTaskData(Xs, ys)
    prob = mc.Problem(data, loss=mc.SquaredLoss("sum"), penalties=[mc.Ridge(0.5)])
    zero = np.zeros((3, 3))
    true, F_star = _true_gap(Xs, ys, np.ones(3), zero, 0.5 * np.eye(3))
    cert = mc.certify(prob, zero)
    assert cert.gap >= true * (1 - 1e-9)
    assert cert.relative_gap == pytest.approx(cert.gap / cert.objective, rel=1e-12)
    assert cert.relative_gap > 1e-2  # so W = 0 is not "optimal" at tol=1e-8
    sol = prob.solve(backend="direct")
    assert sol.status == "optimal"
    assert sol.objective == pytest.approx(F_star, rel=1e-9)


def test_zero_objective_has_zero_relative_gap():
    data = mc.MultiTaskData([np.eye(2)], [np.zeros(2)])
    cert = mc.certify(mc.Problem(data, penalties=[mc.Ridge(1.0)]), np.zeros((2, 1)))
    assert cert.gap == 0.0 and cert.relative_gap == 0.0


def _smooth_custom_problem(Xs, ys):
    """The tasks with ``0.3‖W‖²_F`` written as a Custom with a gradient and nothing else
    (no Lipschitz constant or modulus of its own): the same term as ``Ridge(0.6)``."""
    smooth = mc.Custom(lambda W: cp.sum_squares(W), cones={"quadratic"}, alpha=0.3,
                       gradient=lambda W: 2.0 * W)
    return mc.Problem(mc.MultiTaskData(Xs, ys), penalties=[smooth])


def test_fista_stops_on_a_smooth_custom_with_only_a_gradient(rng):
    # a smooth Custom with gradient= and no Lipschitz constant: fista used to run to
    # max_iter even at the optimum. n_t < d: no strong convexity, so no gap -> "unverified"
    Xs, ys = _tasks(rng, [2, 3], 5)
    prob = _smooth_custom_problem(Xs, ys)
    with pytest.warns(mc.ConvergenceWarning, match="no certificate can verify"):
        sol = prob.solve(backend="fista", tol=1e-6, max_iter=50_000)
    assert sol.iterations < 50_000 and sol.info["solver_status"] == "gradient mapping converged"
    # 0.3‖W‖² is Ridge(0.6): the reference optimum
    _, _, F_star = quadratic_optimum(Xs, ys, 1.0 / np.array([2, 3]), 0.6 * np.eye(2))
    assert sol.objective == pytest.approx(F_star, rel=1e-6)
    assert sol.status == "unverified"


def test_fista_smooth_custom_with_strong_convexity_gets_a_gap(rng):
    Xs, ys = _tasks(rng, [9, 8], 3)
    prob = _smooth_custom_problem(Xs, ys)
    sol = prob.solve(backend="fista", tol=1e-9)
    W_ref, _, F_star = quadratic_optimum(Xs, ys, 1.0 / np.array([9, 8]), 0.6 * np.eye(2))
    assert sol.status == "optimal"
    assert sol.certificate.gap >= sol.objective - F_star - 1e-15
    np.testing.assert_allclose(sol.W, W_ref, atol=1e-4)


# ----------------------------------------------------------------------------- gaps
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_graph_laplacian_alone_gets_a_valid_gap(rng, fit_intercept):
    # not strictly convex (n_t < d, Laplacian singular): every convex quadratic has a gap
    Xs, ys = _tasks(rng, [2, 3, 2, 4], 5)
    data = mc.MultiTaskData(Xs, ys)
    A = mc.relations.chain(4)
    prob = mc.Problem(data, penalties=[mc.GraphLaplacian(A, 0.7)], fit_intercept=fit_intercept)
    sol = prob.solve(backend="direct")
    assert sol.status == "optimal" and sol.certificate.gap is not None
    c = 1.0 / np.array([2, 3, 2, 4])
    K = 0.7 * (np.diag(A.sum(1)) - A)
    for scale in (1e-6, 1e-3, 1e-1):
        W = sol.W + scale * rng.standard_normal(sol.W.shape)
        true, _ = _true_gap(Xs, ys, c, W, K, fit_intercept=fit_intercept)
        cert = mc.certify(prob, W)
        assert cert.gap >= true - 1e-13 * abs(cert.objective)


def test_rank_deficient_feature_relation_with_intercept_via_fista(rng):
    Xs, ys = _tasks(rng, [3, 4, 6], 5)
    data = mc.MultiTaskData(Xs, ys)
    Z = rng.standard_normal((5, 2))
    D = Z @ Z.T
    prob = mc.Problem(data, penalties=[mc.FeatureRelation(D, 0.3)], fit_intercept=True)
    sol = prob.solve(backend="fista", tol=1e-8)
    assert sol.status == "optimal"
    true, F_star = _true_gap(Xs, ys, 1.0 / np.array([3, 4, 6]), sol.W, np.zeros((3, 3)),
                             0.3 * prob.penalties[0].D, fit_intercept=True)
    assert sol.certificate.gap >= true - 1e-14 * abs(F_star)
    assert true <= 1e-8 * abs(F_star)


# ----------------------------------------------------------------------------- stale
def test_changing_loss_scale_and_intercept_rebuilds_the_compiled_problem(rng):
    Xs, ys = _tasks(rng, [6, 8, 7], 3)
    ys = [y + 3.0 for y in ys]
    data = mc.MultiTaskData(Xs, ys)
    K = np.array([[2.0, -1, 0], [-1, 2, -1], [0, -1, 2]])
    prob = mc.Problem(data, penalties=[mc.TaskRelation(K, 0.2)])
    prob.solve(backend="clarabel")
    prob.loss.set_params(scale="sum")
    sol = prob.solve(backend="clarabel")
    _, _, F_sum = quadratic_optimum(Xs, ys, np.ones(3), 0.2 * K)
    assert sol.objective == pytest.approx(F_sum, rel=1e-7)
    prob.fit_intercept = True
    sol = prob.solve(backend="osqp")
    _, _, F_icpt = quadratic_optimum(Xs, ys, np.ones(3), 0.2 * K, fit_intercept=True)
    assert sol.objective == pytest.approx(F_icpt, rel=1e-7)
    assert sol.status == "optimal"


def test_in_place_edits_raise(rng):
    Xs, ys = _tasks(rng, [5, 6], 3)
    data = mc.MultiTaskData(Xs, ys)
    Xs[0][0, 0] = 1e6  # the caller's arrays stay theirs: data holds copies
    assert data.X[0][0, 0] != 1e6
    with pytest.raises(ValueError):
        data.X[0][0, 0] = 5.0
    with pytest.raises(ValueError):
        data.y[1] *= 2
    pen = mc.TaskRelation(np.eye(2), 0.5)
    with pytest.raises(ValueError):
        pen.K *= 10
    loss = mc.SquaredLoss(task_weights=[1.0, 2.0])
    with pytest.raises(ValueError):
        loss.task_weights[0] = 3.0


def test_tiny_task_weights_are_not_rounded_together(rng):
    # a shared design with weights [1e-9, 5e-9]: np.allclose called them equal
    X = rng.standard_normal((10, 3))
    Y = rng.standard_normal((10, 2))
    data = mc.MultiTaskData.shared(X, Y)
    w = np.array([1e-9, 5e-9])
    loss = mc.SquaredLoss("sum", task_weights=w)
    prob = mc.Problem(data, loss=loss, penalties=[mc.Ridge(1e-9)])
    W_ref, _, F_star = quadratic_optimum([X, X], [Y[:, 0], Y[:, 1]], w, 1e-9 * np.eye(2))
    for backend in ("direct", "clarabel"):
        sol = prob.solve(backend=backend)
        assert sol.objective == pytest.approx(F_star, rel=1e-6), backend
        np.testing.assert_allclose(sol.W, W_ref, rtol=1e-4, atol=1e-6)


def test_loss_weights_follow_every_change_of_scale_and_task_weights(rng):
    # c_t = ω_t/n_t ("mean") or ω_t ("sum"), by hand, after each change; kept read-only
    data = mc.MultiTaskData([rng.standard_normal((k, 2)) for k in (3, 5)],
                            [rng.standard_normal(k) for k in (3, 5)])
    loss = mc.SquaredLoss()
    np.testing.assert_array_equal(loss.weights(data), [1 / 3, 1 / 5])
    loss.task_weights = [2.0, 4.0]
    np.testing.assert_array_equal(loss.weights(data), [2 / 3, 4 / 5])
    loss.set_params(scale="sum")
    np.testing.assert_array_equal(loss.weights(data), [2.0, 4.0])
    loss.task_weights = None
    c = loss.weights(data)
    np.testing.assert_array_equal(c, [1.0, 1.0])
    with pytest.raises(ValueError):
        c[0] = 3.0
    prob = mc.Problem(data, loss=loss, penalties=[mc.Ridge(0.5)])
    loss.task_weights = [1.0, 0.0]  # a solve reads the weights as they are now
    X, y = data.X[0], data.y[0]
    w0 = np.linalg.solve(X.T @ X + 0.5 * np.eye(2), X.T @ y)
    np.testing.assert_allclose(prob.solve("direct").W[:, 0], w0, rtol=1e-10)


# ----------------------------------------------------------------------------- one matrix
def test_psd_band_matrix_is_clipped_once_and_used_everywhere(rng):
    # K = diag(1, -0.99e-10) is accepted inside the band; everything must use diag(1, 0)
    X = np.zeros((4, 2))
    X[:, 0] = rng.standard_normal(4)  # feature 1 never seen: only K acts on it
    Y = rng.standard_normal((4, 2))
    data = mc.MultiTaskData([X, X], [Y[:, 0], Y[:, 1]])
    pen = mc.TaskRelation(np.diag([1.0, -0.99e-10]), 1.0)
    assert np.linalg.eigvalsh(pen.K).min() >= 0.0
    W = rng.standard_normal((2, 2))
    assert pen.value(W) == pytest.approx(0.5 * np.sum(W[:, 0] ** 2), rel=1e-12)
    prob = mc.Problem(data, penalties=[pen])
    _, _, F_star = quadratic_optimum([X, X], [Y[:, 0], Y[:, 1]], np.full(2, 0.25),
                                     np.diag([1.0, 0.0]))
    for backend in ("direct", "clarabel", "osqp"):
        sol = prob.solve(backend=backend)
        assert sol.objective == pytest.approx(F_star, rel=1e-7), backend
        assert sol.certificate.gap >= sol.objective - F_star - 1e-14
    # along the unseen direction the objective stays bounded below
    W = np.zeros((2, 2))
    W[1, 1] = 1e8
    assert prob.objective(W) >= 0.0


def test_matrix_outside_the_band_is_refused():
    with pytest.raises(mc.PenaltyError, match="nearest_psd"):
        mc.TaskRelation(np.diag([1.0, -1e-8]))


# ----------------------------------------------------------------------------- inputs
@pytest.fixture
def small(rng):
    Xs, ys = _tasks(rng, [6, 5], 3)
    return mc.Problem(mc.MultiTaskData(Xs, ys), penalties=[mc.Ridge(0.1)])


@pytest.mark.parametrize("tol", [np.inf, True, -1.0, "1e-8", np.nan])
def test_bad_tol_is_an_argument_error(small, tol):
    with pytest.raises(mc.ArgumentError, match="tol") as err:
        small.solve(backend="direct", tol=tol)
    assert isinstance(err.value, ValueError) and isinstance(err.value, mc.MTLError)


def test_numpy_float32_tol_is_accepted(small):
    sol = small.solve(backend="direct", tol=np.float32(1e-8))
    assert sol.status == "optimal"


@pytest.mark.parametrize("max_iter", [True, 2**31, 0])
def test_bad_max_iter_is_an_argument_error(small, max_iter):
    with pytest.raises(mc.ArgumentError, match="max_iter"):
        small.solve(backend="clarabel", max_iter=max_iter)


def test_first_order_arguments_are_checked(small):
    with pytest.raises(mc.ArgumentError, match="check_every") as err:
        first_order.fista(small, check_every=0)
    assert isinstance(err.value, ValueError)
    with pytest.raises(mc.ArgumentError, match="tol"):
        first_order.fista(small, tol=np.inf)
    with pytest.raises(mc.ArgumentError, match="bogus"):
        small.solve(backend="fista", bogus=3)


@pytest.mark.parametrize("task", [[0, 1, np.nan, 0, 1, 1], [1, "a", 1, "a", 1, "a"],
                                  np.array([0.0, 1.0, np.nan, 0.0, 1.0, 1.0])])
def test_bad_stacked_task_labels(rng, task):
    with pytest.raises(mc.DataError, match="task"):
        mc.MultiTaskData.from_stacked(rng.standard_normal((6, 2)), rng.standard_normal(6), task)


def test_dataframe_with_its_task_column_is_refused(rng):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(rng.standard_normal((6, 2)), columns=["a", "b"])
    df["school"] = [0, 1, 0, 1, 0, 1]
    with pytest.raises(mc.DataError, match="drop"):
        mc.MultiTaskData.from_stacked(df, rng.standard_normal(6), df["school"])


def test_constraints_returning_non_constraints(small):
    prob = mc.Problem(small.data, penalties=[mc.L1(0.1)], constraints=lambda W: [W])
    with pytest.raises(mc.MTLError, match="constraints"):
        prob.solve(backend="clarabel")


@pytest.mark.parametrize("oracle", [
    {"value": lambda W: 1 / 0},
    {"value": lambda W: np.ones(3)},
    {"gradient": lambda W: np.ones((2, 2))},
    {"gradient": lambda W: W.T @ W @ np.eye(99)},
])
def test_custom_oracles_that_raise_or_have_the_wrong_shape(small, oracle):
    pen = mc.Custom(lambda W: cp.sum_squares(W), cones={"quadratic"}, **oracle)
    with pytest.raises(mc.PenaltyError, match="Custom"):
        mc.Problem(small.data, penalties=[pen])


def test_huge_strength_is_refused():
    with pytest.raises(mc.PenaltyError, match="alpha"):
        mc.Ridge(1e308)


def test_wrong_cones_hint_does_not_say_raise_max_iter(small):
    pen = mc.Custom(lambda W: cp.norm(W, "fro"), cones={"quadratic"}, alpha=0.1)
    prob = mc.Problem(small.data, penalties=[pen])
    with pytest.raises(mc.SolverFailed) as err:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prob.solve(backend="osqp")
    assert "max_iter" not in str(err.value) and "cones" in str(err.value)


def test_validate_uses_the_reference_dual_value(rng):
    # L21 denoising (X_t = I, scale "sum"): W* is the row shrink of Y, F* in closed form
    Y = rng.standard_normal((5, 4)) * 2
    data = mc.MultiTaskData([np.eye(5)] * 4, [Y[:, t] for t in range(4)])
    prob = mc.Problem(data, loss=mc.SquaredLoss("sum"), penalties=[mc.L21(1.5)])
    norms = np.linalg.norm(Y, axis=1, keepdims=True)
    W_star = Y * np.maximum(1 - 1.5 / norms, 0)

    def F(W):
        return 0.5 * np.sum((W - Y) ** 2) + 1.5 * np.linalg.norm(W, axis=1).sum()

    W = W_star + 1e-4 * rng.standard_normal(W_star.shape)
    true = F(W) - F(W_star)
    rep = mc.validate(prob, W, reference=W_star)
    own = mc.certify(prob, W)
    assert true <= rep.certificate.gap <= true + 1e-9 * F(W_star)
    assert rep.certificate.gap < own.gap  # the residual-based gap alone is looser


def test_fista_dual_point_rederives_its_certificate(rng):
    # the gap fista reports may use an earlier or extrapolated dual point: anyone can
    # re-derive it from trace.info["dual_point"], and it is never below the true gap
    Y = rng.standard_normal((6, 5)) * 2
    data = mc.MultiTaskData([np.eye(6)] * 5, [Y[:, t] for t in range(5)])
    prob = mc.Problem(data, loss=mc.SquaredLoss("sum"), penalties=[mc.TraceNorm(2.0)])
    U, s, Vt = np.linalg.svd(Y, full_matrices=False)
    W_star = (U * np.maximum(s - 2.0, 0)) @ Vt
    F_star = 0.5 * np.sum((W_star - Y) ** 2) + 2.0 * np.maximum(s - 2.0, 0).sum()
    trace = first_order.fista(prob, tol=1e-10)
    lower = mc.certify(prob, trace.info["dual_point"], tol=1e-10).dual_objective
    assert lower <= F_star + 1e-12 * F_star
    again = mc.certify(prob, trace.W, dual_lower=lower, tol=1e-10)
    assert again.gap == pytest.approx(trace.certificate.gap, rel=1e-6)
    assert again.gap >= trace.certificate.objective - F_star - 1e-13 * F_star
