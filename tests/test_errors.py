"""Every bad input raises an ``mc.MTLError`` subclass whose message names the argument and the fix.

Errors are mtlcvx's own (never a raw NumPy/CVXPY traceback), derive from the built-in a
caller expects, and are raised before CVXPY is called when they can be.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from conftest import installed_backends

import mtlcvx as mc

T, D, N = 3, 4, 6


def _arrays(rng, T=T, d=D, n=N):
    Xs = [rng.standard_normal((n, d)) for _ in range(T)]
    ys = [rng.standard_normal(n) for _ in range(T)]
    return Xs, ys


@pytest.fixture
def data(rng):
    return mc.MultiTaskData(*_arrays(rng))


def _raises(exc, fn, *fragments, builtin=None):
    """Call ``fn``; check the exception type, that it is mtlcvx's, and its message."""
    with pytest.raises(exc) as info:
        fn()
    err = info.value
    assert isinstance(err, mc.MTLError), f"{type(err).__name__} is not an MTLError"
    assert type(err).__module__.startswith("mtlcvx"), type(err)
    if builtin is not None:
        assert isinstance(err, builtin)
    msg = str(err)
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in message: {msg!r}"
    return err


# --------------------------------------------------------------------------- hierarchy
def test_hierarchy_matches_design():
    assert issubclass(mc.DataError, mc.MTLError) and issubclass(mc.DataError, ValueError)
    assert issubclass(mc.PenaltyError, mc.MTLError) and issubclass(mc.PenaltyError, ValueError)
    assert issubclass(mc.IncompatibleBackend, mc.MTLError)
    assert issubclass(mc.IncompatibleBackend, ValueError)
    assert issubclass(mc.BackendUnavailable, mc.MTLError)
    assert issubclass(mc.BackendUnavailable, ImportError)
    assert issubclass(mc.SolverFailed, mc.MTLError) and issubclass(mc.SolverFailed, RuntimeError)
    assert issubclass(mc.ConvergenceWarning, UserWarning)
    assert issubclass(mc.MTLError, Exception)


# --------------------------------------------------------------------------- DataError
def test_number_of_tasks_mismatch(rng):
    Xs, ys = _arrays(rng)
    _raises(mc.DataError, lambda: mc.MultiTaskData(Xs, ys[:2]),
            "X has 3 tasks", "y has 2", "one y_t per X_t", builtin=ValueError)


def test_number_of_rows_mismatch(rng):
    Xs, ys = _arrays(rng)
    ys[1] = ys[1][:-1]
    _raises(mc.DataError, lambda: mc.MultiTaskData(Xs, ys),
            "X[1] has 6 rows", "y[1] has 5", builtin=ValueError)


@pytest.mark.parametrize("shape", [(N,), (N, D, 2)])
def test_X_not_2d(rng, shape):
    Xs, ys = _arrays(rng)
    Xs[2] = rng.standard_normal(shape)
    _raises(mc.DataError, lambda: mc.MultiTaskData(Xs, ys), "X[2]", "2 dimension",
            str(shape), builtin=ValueError)


def test_one_dimensional_descriptors_get_the_reshape(rng):
    z = rng.standard_normal(T)
    _raises(mc.DataError, lambda: mc.relations.outer(z), "Z must have 2 dimension",
            "Z.reshape(-1, 1)")
    _raises(mc.DataError, lambda: mc.TaskRelation.from_factor(z), "R.reshape(-1, 1)")
    # the reshaped descriptor gives the outer product itself
    np.testing.assert_array_equal(mc.relations.outer(z.reshape(-1, 1)), np.outer(z, z))


def test_differing_feature_counts(rng):
    Xs, ys = _arrays(rng)
    Xs[1] = rng.standard_normal((N, D - 1))
    _raises(mc.DataError, lambda: mc.MultiTaskData(Xs, ys),
            "X[1] has 3 features", "X[0] has 4", "same features", builtin=ValueError)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["X", "y"])
@pytest.mark.parametrize("layout", ["equal", "unequal", "one X object"])
def test_non_finite_values(rng, bad, where, layout):
    # the three ways tasks are stored (one (T, n, d) block, stacked rows, per-array
    # copies) are checked in bulk: the error still names the first task at fault
    Xs, ys = _arrays(rng)
    if layout == "unequal":
        Xs[0], ys[0] = Xs[0][:-1], ys[0][:-1]
    elif layout == "one X object":
        Xs = [Xs[0]] * len(Xs)
    bad_task = 0 if layout == "one X object" and where == "X" else 1
    if where == "X":
        Xs[bad_task][2, 3] = bad
    else:
        ys[1][4] = bad
        ys[2][0] = bad
    _raises(mc.DataError, lambda: mc.MultiTaskData(Xs, ys),
            f"{where}[{bad_task}] contains 1 NaN", "impute", builtin=ValueError)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix's own
def test_matrix_inputs_are_plain_arrays(rng):
    # np.matrix stays 2-D under indexing and stacking: it is converted like any array-like
    Xs, ys = _arrays(rng)
    data = mc.MultiTaskData([np.asmatrix(X) for X in Xs],
                            [np.asmatrix(y).T for y in ys])
    for X, Xm, y, ym in zip(Xs, data.X, ys, data.y, strict=True):
        assert not isinstance(Xm, np.matrix) and np.array_equal(Xm, X)
        assert ym.shape == y.shape and np.array_equal(ym, y)


def test_empty_task(rng):
    Xs, ys = _arrays(rng)
    Xs[1], ys[1] = np.zeros((0, D)), np.zeros(0)
    _raises(mc.DataError, lambda: mc.MultiTaskData(Xs, ys, tasks=["a", "b", "c"]),
            "'b'", "X[1]", "no samples", "drop it", builtin=ValueError)


@pytest.mark.parametrize("bad", [
    [["a", "b", "c", "d"]] * N,                                  # strings
    np.array([[1.0, None, 2.0, 3.0]] * N, dtype=object),         # object array
    np.array([["1", "2", "3", "4"]] * N),                        # numeric-looking strings
])
def test_non_numeric_X(rng, bad):
    Xs, ys = _arrays(rng)
    Xs[0] = bad
    _raises(mc.DataError, lambda: mc.MultiTaskData(Xs, ys),
            "X[0] must be numeric", "dtype=float", builtin=ValueError)


def test_non_numeric_y(rng):
    Xs, ys = _arrays(rng)
    ys[2] = np.array(["x"] * N, dtype=object)
    _raises(mc.DataError, lambda: mc.MultiTaskData(Xs, ys), "y[2] must be numeric",
            builtin=ValueError)


def test_ragged_X(rng):
    Xs, ys = _arrays(rng)
    Xs[0] = [[1.0, 2.0], [3.0]]
    _raises(mc.DataError, lambda: mc.MultiTaskData(Xs, ys), "X[0]", "numeric array",
            builtin=ValueError)


def test_no_task():
    _raises(mc.DataError, lambda: mc.MultiTaskData([], []), "at least one task",
            builtin=ValueError)


def test_y_two_columns(rng):
    Xs, ys = _arrays(rng)
    ys[0] = rng.standard_normal((N, 2))
    _raises(mc.DataError, lambda: mc.MultiTaskData(Xs, ys),
            "y[0]", "(n_t,) or (n_t, 1)", "(6, 2)", "MultiTaskData.shared", builtin=ValueError)


def test_single_ndarray_instead_of_list(rng):
    X = rng.standard_normal((N, D))
    Y = rng.standard_normal((N, T))
    _raises(mc.DataError, lambda: mc.MultiTaskData(X, Y),
            "one array per task", "from_stacked", "MultiTaskData.shared", builtin=ValueError)
    _raises(mc.DataError, lambda: mc.MultiTaskData(X, [Y[:, 0]]), "from_stacked")
    _raises(mc.DataError, lambda: mc.MultiTaskData([X], Y[:, 0]), "from_stacked")


def test_wrong_number_of_task_labels(rng):
    Xs, ys = _arrays(rng)
    _raises(mc.DataError, lambda: mc.MultiTaskData(Xs, ys, tasks=["a"]),
            "tasks has 1 labels", "3 tasks")


def test_from_stacked_and_shared_length_mismatch(rng):
    X = rng.standard_normal((10, D))
    y = rng.standard_normal(10)
    _raises(mc.DataError, lambda: mc.MultiTaskData.from_stacked(X, y, np.zeros(9)),
            "one label per row", builtin=ValueError)
    _raises(mc.DataError, lambda: mc.MultiTaskData.from_stacked(X, y[:9], np.zeros(10)),
            "one label per row")
    _raises(mc.DataError, lambda: mc.MultiTaskData.shared(X, rng.standard_normal((9, 2))),
            "X has 10 rows", "Y has 9")
    _raises(mc.DataError, lambda: mc.MultiTaskData.shared(X, np.full((10, 2), np.nan)),
            "Y", "NaN")


def test_problem_needs_multitaskdata(rng):
    Xs, ys = _arrays(rng)
    _raises(mc.DataError, lambda: mc.Problem((Xs, ys)), "MultiTaskData", builtin=ValueError)


@pytest.mark.parametrize("given", ["list", "penalty"])
def test_penalties_passed_as_the_loss(data, given):
    pen = mc.L21(0.1)
    _raises(mc.MTLError, lambda: mc.Problem(data, [pen] if given == "list" else pen),
            "loss must be a SquaredLoss", "penalties=[...]")


def test_loss_settings(data):
    _raises(mc.DataError, lambda: mc.SquaredLoss(scale="median"), "scale", "'mean' or 'sum'")
    _raises(mc.DataError, lambda: mc.SquaredLoss(task_weights=[1.0, -1.0, 1.0]),
            "task_weights", "non-negative")
    loss = mc.SquaredLoss(task_weights=[1.0, 2.0])
    _raises(mc.DataError, lambda: mc.Problem(data, loss), "task_weights", f"({T},)")


def test_objective_W_wrong_shape(data, rng):
    prob = mc.Problem(data, penalties=[mc.Ridge(0.1)])
    _raises(mc.DataError, lambda: prob.objective(rng.standard_normal((T, D))),
            "W has shape (3, 4)", "(n_features, n_tasks) = (4, 3)", ".T", builtin=ValueError)
    _raises(mc.DataError, lambda: prob.objective(rng.standard_normal(D * T)), "W", "2 dimension")
    W = np.zeros((D, T))
    W[0, 0] = np.nan
    _raises(mc.DataError, lambda: prob.objective(W), "W", "NaN")


def test_intercept_without_fit_intercept(data):
    prob = mc.Problem(data, penalties=[mc.Ridge(0.1)])
    W = np.zeros((D, T))
    _raises(mc.DataError, lambda: prob.objective(W, np.zeros(T)),
            "intercept", "fit_intercept=False", builtin=ValueError)


def test_intercept_wrong_shape(data):
    prob = mc.Problem(data, penalties=[mc.Ridge(0.1)], fit_intercept=True)
    _raises(mc.DataError, lambda: prob.objective(np.zeros((D, T)), np.zeros(T + 1)),
            "intercept has shape (4,)", "(3,)")


# --------------------------------------------------------------------------- PenaltyError
def _all_penalties(T=T, d=D):
    return [
        lambda **kw: mc.Ridge(**kw),
        lambda **kw: mc.TaskRelation(np.eye(T), **kw),
        lambda **kw: mc.GraphLaplacian(mc.relations.chain(T), **kw),
        lambda **kw: mc.MeanRegularized(**kw),
        lambda **kw: mc.FeatureRelation(np.eye(d), **kw),
        lambda **kw: mc.L1(**kw),
        lambda **kw: mc.L21(**kw),
        lambda **kw: mc.TraceNorm(**kw),
        lambda **kw: mc.SquaredTraceNorm(**kw),
        lambda **kw: mc.Custom(lambda W: cp.sum(cp.abs(W)), cones={"nonneg"}, **kw),
    ]


PEN_IDS = ["Ridge", "TaskRelation", "GraphLaplacian", "MeanRegularized", "FeatureRelation",
           "L1", "L21", "TraceNorm", "SquaredTraceNorm", "Custom"]


@pytest.mark.parametrize("make", _all_penalties(), ids=PEN_IDS)
def test_negative_alpha_everywhere(make):
    _raises(mc.PenaltyError, lambda: make(alpha=-1.0), "alpha", "≥ 0", "-1.0",
            builtin=ValueError)
    pen = make(alpha=0.5)
    _raises(mc.PenaltyError, lambda: pen.set_params(alpha=-1), "alpha", "≥ 0")
    assert pen.alpha == 0.5  # refused values are not stored

    def assign():
        pen.alpha = -1

    _raises(mc.PenaltyError, assign, "alpha", "≥ 0", "alpha=0")
    assert pen.alpha == 0.5


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, np.float64(np.nan)])
@pytest.mark.parametrize("make", _all_penalties(), ids=PEN_IDS)
def test_non_finite_alpha(make, bad):
    _raises(mc.PenaltyError, lambda: make(alpha=bad), "alpha", "finite")
    pen = make(alpha=1.0)
    _raises(mc.PenaltyError, lambda: pen.set_params(alpha=bad), "alpha", "finite")


@pytest.mark.parametrize("bad", ["0.1", None, [0.1, 0.2], True, 1j])
def test_alpha_not_a_number(bad):
    _raises(mc.PenaltyError, lambda: mc.L1(alpha=bad), "alpha", "real number")


def test_alpha_accepts_numpy_scalars():
    assert mc.L1(alpha=np.float32(0.5)).alpha == 0.5
    assert mc.L1(alpha=np.array(0.25)).alpha == 0.25
    assert mc.L1(alpha=2).alpha == 2.0


def test_K_not_symmetric():
    K = np.eye(T)
    K[0, 1] = 0.5
    _raises(mc.PenaltyError, lambda: mc.TaskRelation(K), "K is not symmetric",
            "(K + K.T) / 2", builtin=ValueError)
    pen = mc.TaskRelation(np.eye(T))
    _raises(mc.PenaltyError, lambda: pen.set_params(K=K), "K is not symmetric")
    np.testing.assert_array_equal(pen.K, np.eye(T))


def test_K_not_psd():
    K = np.diag([1.0, -2.0, 3.0])
    err = _raises(mc.PenaltyError, lambda: mc.TaskRelation(K), "K is not positive semidefinite",
                  "λ_min", "-2", "nearest_psd", builtin=ValueError)
    assert "mtlcvx.relations.nearest_psd(K)" in str(err)
    # the advertised fix works
    mc.TaskRelation(mc.relations.nearest_psd(K))
    pen = mc.TaskRelation(np.eye(T))

    def assign():
        pen.K = K

    _raises(mc.PenaltyError, assign, "λ_min", "nearest_psd")


def test_K_psd_tolerance_band():
    # λ_min ≥ −1e-10·max(1, λ_max) passes, below it fails
    V = np.linalg.qr(np.random.default_rng(0).standard_normal((T, T)))[0]
    ok = V @ np.diag([-1e-12, 1.0, 2.0]) @ V.T
    mc.TaskRelation((ok + ok.T) / 2)
    bad = V @ np.diag([-1e-6, 1.0, 2.0]) @ V.T
    _raises(mc.PenaltyError, lambda: mc.TaskRelation((bad + bad.T) / 2), "λ_min")


def test_D_not_psd_or_symmetric():
    _raises(mc.PenaltyError, lambda: mc.FeatureRelation(-np.eye(D)),
            "D is not positive semidefinite", "nearest_psd(D)")
    D_ = np.eye(D)
    D_[1, 0] = 1.0
    _raises(mc.PenaltyError, lambda: mc.FeatureRelation(D_), "D is not symmetric")


def test_K_not_square():
    _raises(mc.PenaltyError, lambda: mc.TaskRelation(np.ones((3, 4))), "K must be square",
            "(3, 4)")


def test_K_wrong_shape_for_data(data):
    pen = mc.TaskRelation(np.eye(T + 2), alpha=0.1)  # fine on its own
    _raises(mc.PenaltyError, lambda: mc.Problem(data, penalties=[pen]),
            "TaskRelation", "K has shape (5, 5)", "3 tasks", "K must be (3, 3)",
            builtin=ValueError)


def test_D_wrong_shape_for_data(data):
    pen = mc.FeatureRelation(np.eye(D + 1))
    _raises(mc.PenaltyError, lambda: mc.Problem(data, penalties=[pen]),
            "FeatureRelation", "D has shape (5, 5)", "4 features", "D must be (4, 4)")


def test_A_wrong_shape_for_data(data):
    pen = mc.GraphLaplacian(mc.relations.chain(T + 1))
    _raises(mc.PenaltyError, lambda: mc.Problem(data, penalties=[pen]),
            "GraphLaplacian", "A has shape (4, 4)", "A must be (3, 3)")


@pytest.mark.parametrize("backend", ["direct", "clarabel", "objective"])
def test_K_replaced_with_wrong_shape_after_problem(data, backend):
    pen = mc.TaskRelation(np.eye(T), alpha=0.1)
    prob = mc.Problem(data, penalties=[pen])
    pen.K = np.eye(T + 2)
    if backend == "objective":
        fn = lambda: prob.objective(np.zeros((D, T)))  # noqa: E731
    else:
        fn = lambda: prob.solve(backend=backend)  # noqa: E731
    _raises(mc.PenaltyError, fn, "K has shape (5, 5)")


def test_adjacency_negative():
    A = mc.relations.chain(T)
    A[0, 1] = A[1, 0] = -0.5
    _raises(mc.PenaltyError, lambda: mc.GraphLaplacian(A), "A must be non-negative",
            "-0.5", builtin=ValueError)
    _raises(mc.PenaltyError, lambda: mc.relations.laplacian(A), "non-negative")


def test_adjacency_asymmetric():
    A = mc.relations.chain(T)
    A[0, 2] = 1.0
    _raises(mc.PenaltyError, lambda: mc.GraphLaplacian(A), "A must be symmetric",
            "(A + A.T) / 2")
    _raises(mc.PenaltyError, lambda: mc.GraphLaplacian(np.ones((2, 3))), "square")


def test_unknown_set_params_key():
    pen = mc.TaskRelation(np.eye(T), alpha=0.1)
    _raises(mc.PenaltyError, lambda: pen.set_params(beta=1.0),
            "TaskRelation has no parameter 'beta'", "valid parameters: K, alpha",
            builtin=ValueError)
    _raises(mc.PenaltyError, lambda: mc.L21().set_params(lam=1.0), "'lam'", "alpha")


@pytest.mark.parametrize("expr", [
    lambda W: -cp.sum_squares(W),
    lambda W: cp.sqrt(cp.sum(W)),
], ids=["neg_sum_squares", "sqrt_sum"])
def test_custom_non_convex(data, expr):
    pen = mc.Custom(expr, cones={"soc"})
    err = _raises(mc.PenaltyError, lambda: mc.Problem(data, penalties=[pen]),
                  "Custom", "not convex", "DCP", builtin=ValueError)
    # cvxpy's own explanation is included (it says the function is concave)
    assert "concave" in str(err)


def test_custom_unknown_cone():
    _raises(mc.PenaltyError, lambda: mc.Custom(lambda W: cp.norm(W, "fro"), cones={"sdp"}),
            "unknown cone", "'sdp'", "'psd'", "'soc'")
    _raises(mc.PenaltyError, lambda: mc.Custom(lambda W: cp.norm(W, "fro"), cones="cone"),
            "'cone'")


def test_custom_non_scalar(data):
    pen = mc.Custom(lambda W: cp.abs(W), cones={"nonneg"})
    _raises(mc.PenaltyError, lambda: mc.Problem(data, penalties=[pen]),
            "must be scalar", "(4, 3)")


def test_custom_bad_expressions(data):
    not_expr = mc.Custom(lambda W: 1.0, cones=set())
    _raises(mc.PenaltyError, lambda: mc.Problem(data, penalties=[not_expr]),
            "must return a cvxpy.Expression", "float")
    raising = mc.Custom(lambda W: cp.norm(W[:, 10]), cones={"soc"})
    _raises(mc.PenaltyError, lambda: mc.Problem(data, penalties=[raising]),
            "expression(W) raised", "(4, 3)")
    gamma = cp.Parameter(nonneg=True, value=1.0)
    with_param = mc.Custom(lambda W: gamma * cp.norm(W, "fro"), cones={"soc"})
    _raises(mc.PenaltyError, lambda: mc.Problem(data, penalties=[with_param]),
            "must not contain cvxpy Parameters", "alpha")
    _raises(mc.PenaltyError, lambda: mc.Custom("cp.norm(W)", cones={"soc"}), "callable")
    _raises(mc.PenaltyError, lambda: mc.Custom(cp.norm, cones={"soc"}, prox=3), "prox",
            "callable")


def test_penalties_must_be_penalties(data):
    W = cp.Variable((D, T))
    _raises(mc.PenaltyError, lambda: mc.Problem(data, penalties=[cp.norm(W, "fro")]),
            "penalties[0]", "mc.Custom")


# --------------------------------------------------------------------------- IncompatibleBackend
def _check_not_compiled(prob):
    assert prob._compiled is None
    assert prob.n_builds == 0


def test_osqp_cannot_do_L21(data):
    prob = mc.Problem(data, penalties=[mc.L21(0.1), mc.Ridge(0.1)])
    err = _raises(mc.IncompatibleBackend, lambda: prob.solve(backend="osqp"),
                  "L21", "'soc'", "osqp", "clarabel", "scs", builtin=ValueError)
    capable = str(err).split("can solve this problem:")[1]
    assert "osqp" not in capable
    assert "Ridge" not in str(err)  # only the term that needs the missing cone is named
    _check_not_compiled(prob)


def test_ecos_cannot_do_trace_norm(data):
    for pen in (mc.TraceNorm(0.1), mc.SquaredTraceNorm(0.1)):
        prob = mc.Problem(data, penalties=[pen])
        err = _raises(mc.IncompatibleBackend, lambda p=prob: p.solve(backend="ecos"),
                      type(pen).__name__, "'psd'", "ecos", "clarabel", "scs")
        capable = str(err).split("can solve this problem:")[1]
        assert "ecos" not in capable and "osqp" not in capable
        _check_not_compiled(prob)


def test_custom_cones_are_checked(data):
    prob = mc.Problem(data, penalties=[mc.Custom(lambda W: cp.norm(W, "fro"), cones={"soc"})])
    _raises(mc.IncompatibleBackend, lambda: prob.solve(backend="osqp"), "Custom", "'soc'")
    _check_not_compiled(prob)


def test_direct_rejects_non_quadratic(data):
    prob = mc.Problem(data, penalties=[mc.Ridge(0.1), mc.L1(0.1)])
    _raises(mc.IncompatibleBackend, lambda: prob.solve(backend="direct"),
            "L1", "not quadratic", "direct", "clarabel", "osqp")
    _check_not_compiled(prob)


def test_direct_rejects_constraints(data):
    prob = mc.Problem(data, penalties=[mc.Ridge(0.1)], constraints=lambda W: [W >= 0])
    _raises(mc.IncompatibleBackend, lambda: prob.solve(backend="direct"),
            "direct", "constraints", "conic backend")
    _check_not_compiled(prob)


def test_unknown_backend(data):
    prob = mc.Problem(data, penalties=[mc.Ridge(0.1)])
    _raises(mc.IncompatibleBackend, lambda: prob.solve(backend="gurobi"),
            "unknown backend 'gurobi'", "clarabel", "direct", "available_backends")
    _raises(mc.IncompatibleBackend, lambda: prob.solve(backend=3), "unknown backend 3")
    _check_not_compiled(prob)


# --------------------------------------------------------------------------- BackendUnavailable
def test_backend_unavailable_names_pip_extra(data, monkeypatch):
    monkeypatch.setattr(mc.backends.BACKENDS["ecos"], "modules", ("no_such_module_xyz",))
    assert mc.available_backends()["ecos"].installed is False
    prob = mc.Problem(data, penalties=[mc.L1(0.1)])
    _raises(mc.BackendUnavailable, lambda: prob.solve(backend="ecos"),
            "'ecos'", "not installed", "pip install 'mtlcvx[ecos]'", builtin=ImportError)
    _check_not_compiled(prob)
    # an incompatible request lists the uninstalled capable backend with its install hint
    prob = mc.Problem(data, penalties=[mc.L21(0.1)])
    _raises(mc.IncompatibleBackend, lambda: prob.solve(backend="osqp"),
            "ecos (pip install 'mtlcvx[ecos]')")


def test_incompatibility_checked_before_installation(data, monkeypatch):
    monkeypatch.setattr(mc.backends.BACKENDS["ecos"], "modules", ("no_such_module_xyz",))
    prob = mc.Problem(data, penalties=[mc.TraceNorm(0.1)])
    _raises(mc.IncompatibleBackend, lambda: prob.solve(backend="ecos"), "'psd'")


def test_core_backend_unavailable_hint(data, monkeypatch):
    monkeypatch.setattr(mc.backends.BACKENDS["clarabel"], "modules", ("no_such_module_xyz",))
    prob = mc.Problem(data, penalties=[mc.L1(0.1)])
    _raises(mc.BackendUnavailable, lambda: prob.solve(backend="clarabel"),
            "'clarabel'", "pip install mtlcvx")
    _check_not_compiled(prob)
    dirty = mc.Problem(data, penalties=[mc.Dirty(0.3, 0.08)])  # no prox: Clarabel's by default
    _raises(mc.BackendUnavailable, lambda: dirty.solve(), "'clarabel'")
    _check_not_compiled(dirty)


# --------------------------------------------------------------------------- SolverFailed
@pytest.mark.parametrize("backend", [b for b in installed_backends() if b != "direct"])
def test_infeasible_raises_solver_failed(data, backend):
    prob = mc.Problem(data, penalties=[mc.Ridge(0.1)],
                      constraints=lambda W: [W >= 1, W <= 0])
    _raises(mc.SolverFailed, lambda: prob.solve(backend=backend),
            f"'{backend}'", "infeasible", "Hint", builtin=RuntimeError)


def test_infeasible_default_backend(data):
    prob = mc.Problem(data, constraints=lambda W: [W >= 1, W <= 0])
    err = _raises(mc.SolverFailed, lambda: prob.solve(), "'clarabel'", "infeasible")
    assert isinstance(err, RuntimeError)


def test_bad_constraints(data):
    _raises(mc.MTLError, lambda: mc.Problem(data, constraints=[1]), "constraints", "callable")
    prob = mc.Problem(data, constraints=lambda W: [W @ np.ones(5) >= 0])
    _raises(mc.MTLError, lambda: prob.solve(backend="clarabel"), "constraints(W) raised")
    prob = mc.Problem(data, constraints=lambda W: [cp.sum_squares(W) >= 1])
    _raises(mc.MTLError, lambda: prob.solve(backend="clarabel"), "not DCP", "constraints")


# --------------------------------------------------------------------------- solve() arguments
@pytest.mark.parametrize("tol", [0, -1e-6, "1e-6", None, np.nan])
def test_invalid_tol(data, tol):
    prob = mc.Problem(data, penalties=[mc.L1(0.1)])
    _raises(mc.MTLError, lambda: prob.solve(backend="clarabel", tol=tol), "tol", "positive")
    _check_not_compiled(prob)


@pytest.mark.parametrize("tol", [0, -1e-6, "1e-6", np.nan])
def test_invalid_certify_tol(data, tol):
    prob = mc.Problem(data, penalties=[mc.L1(0.1)])
    W = np.zeros((prob.n_features, prob.n_tasks))
    _raises(mc.MTLError, lambda: mc.certify(prob, W, tol=tol), "tol", "positive")
    _raises(mc.ArgumentError, lambda: mc.certify(prob, W, dual_lower=str(tol)), "dual_lower",
            "real number")


@pytest.mark.parametrize("max_iter", [0, -3, 2.5, "100"])
def test_invalid_max_iter(data, max_iter):
    prob = mc.Problem(data, penalties=[mc.L1(0.1)])
    _raises(mc.MTLError, lambda: prob.solve(backend="clarabel", max_iter=max_iter),
            "max_iter", "positive integer")
    _check_not_compiled(prob)


def test_bad_solver_options(data):
    prob = mc.Problem(data, penalties=[mc.Ridge(0.1)])
    _raises(mc.MTLError, lambda: prob.solve(backend="direct", foo=1), "direct", "foo")
    _raises(mc.MTLError, lambda: prob.solve(backend="clarabel", bogus_setting=1),
            "clarabel", "bogus_setting")


def test_bad_certify_path_arguments(data):
    from mtlcvx.certificates import certify_path

    pen = mc.L21(0.1)
    prob = mc.Problem(data, penalties=[pen])
    alphas, Ws = np.array([0.2, 0.1]), np.zeros((2, D, T))
    _raises(mc.DataError, lambda: certify_path(prob, pen, alphas, Ws[:, :, :2]),
            "Ws", "(len(alphas), n_features, n_tasks) = (2, 4, 3)")
    _raises(mc.DataError, lambda: certify_path(prob, pen, alphas[:1], Ws),
            "Ws", "expected", "(1, 4, 3)")
    _raises(mc.DataError, lambda: certify_path(prob, pen, alphas[None], Ws), "alphas",
            "1 dimension")
    _raises(mc.DataError, lambda: certify_path(prob, pen, alphas, Ws[0]), "Ws",
            "3 dimension")
    _raises(mc.DataError, lambda: certify_path(prob, pen, alphas, np.full((2, D, T), np.nan)),
            "Ws", "NaN")
    _raises(mc.ArgumentError, lambda: certify_path(prob, mc.L21(0.1), alphas, Ws),
            "penalty", "problem.penalties")
    _raises(mc.ArgumentError, lambda: certify_path(prob, pen, alphas, Ws, products=[None]),
            "products", "one (G W_i or None) per point")
    _raises(mc.PenaltyError, lambda: certify_path(prob, pen, np.array([0.1, -1.0]), Ws),
            "alpha", "≥ 0")
    assert pen.alpha == 0.1  # restored after the refused strength
