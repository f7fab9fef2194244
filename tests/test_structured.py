"""Structured and decomposition penalties against independent CVXPY models written here.

Each reference model writes the loss and the penalty from the formulas (its own
variables, its own parts), never from the package's expressions; Clarabel solves it
tightly. Every backend's objective must match it, its parts must sum to W, and its
certificate must never be below the true gap (checked against the reference optimum,
at the solution and at perturbed points).
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

import mtlcvx as mc

TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
# the references are judged by the comparisons below, not by the solver's own flag
pytestmark = pytest.mark.filterwarnings("ignore:Solution may be inaccurate")
T, D = 5, 6


@pytest.fixture(scope="module")
def problem_data():
    rng = np.random.default_rng(7)
    sizes = [9, 12, 14, 10, 11]
    W_true = rng.standard_normal((D, T))
    W_true[:, 3] += 4.0  # an outlier task
    Xs = [rng.standard_normal((n, D)) for n in sizes]
    ys = [X @ W_true[:, t] + 0.3 * rng.standard_normal(len(X)) for t, X in enumerate(Xs)]
    return Xs, ys


def _loss_expr(Xs, ys, W):
    return sum(cp.sum_squares(X @ W[:, t] - y) / (2.0 * len(y))
               for t, (X, y) in enumerate(zip(Xs, ys, strict=True)))


def _loss_value(Xs, ys, W):
    return sum(float(np.sum((X @ W[:, t] - y) ** 2)) / (2.0 * len(y))
               for t, (X, y) in enumerate(zip(Xs, ys, strict=True)))


def _nuc(M):
    return float(np.linalg.svd(M, compute_uv=False).sum())


# name -> (penalties, reference penalty in CVXPY (W, P) -> (expr, constraints),
#          NumPy value at the parts (P, Q) or at W)
CHAIN = mc.relations.chain(T)
TRIANGLE_PLUS = np.zeros((T, T))
for s, t, w in [(0, 1, 1.0), (1, 2, 0.5), (0, 2, 2.0), (2, 3, 1.0), (3, 4, 1.5), (1, 4, 0.7)]:
    TRIANGLE_PLUS[s, t] = TRIANGLE_PLUS[t, s] = w
EDGES = [(s, t, TRIANGLE_PLUS[s, t]) for s in range(T) for t in range(s + 1, T)
         if TRIANGLE_PLUS[s, t] > 0]


def _fused_expr(W, edges, alpha):
    return alpha * sum(w * cp.norm1(W[:, s] - W[:, t]) for s, t, w in edges)


def _fused_value(W, edges, alpha):
    return alpha * sum(w * np.abs(W[:, s] - W[:, t]).sum() for s, t, w in edges)


CHAIN_EDGES = [(t, t + 1, 1.0) for t in range(T - 1)]

CASES = {
    "dirty-linf": (
        lambda: [mc.Dirty(alpha_rows=0.3, alpha_entries=0.08)],
        lambda W, P: (0.3 * sum(cp.norm(P[j, :], "inf") for j in range(D))
                      + 0.08 * cp.sum(cp.abs(W - P)), []),
        lambda P, Q: 0.3 * np.abs(P).max(axis=1).sum() + 0.08 * np.abs(Q).sum(),
    ),
    "dirty-l2": (
        lambda: [mc.Dirty(alpha_rows=0.3, alpha_entries=0.08, rows="l2")],
        lambda W, P: (0.3 * sum(cp.norm(P[j, :], 2) for j in range(D))
                      + 0.08 * cp.sum(cp.abs(W - P)), []),
        lambda P, Q: 0.3 * np.linalg.norm(P, axis=1).sum() + 0.08 * np.abs(Q).sum(),
    ),
    "robust-mtl": (
        lambda: [mc.RobustMTL(alpha_lowrank=0.4, alpha_tasks=0.5)],
        lambda W, P: (0.4 * cp.normNuc(P) + 0.5 * sum(cp.norm(W[:, t] - P[:, t], 2)
                                                      for t in range(T)), []),
        lambda L, S: 0.4 * _nuc(L) + 0.5 * np.linalg.norm(S, axis=0).sum(),
    ),
    "robust-feature": (
        lambda: [mc.RobustFeatureLearning(alpha_rows=0.2, alpha_tasks=0.5)],
        lambda W, P: (0.2 * sum(cp.norm(P[j, :], 2) for j in range(D))
                      + 0.5 * sum(cp.norm(W[:, t] - P[:, t], 2) for t in range(T)), []),
        lambda P, Q: 0.2 * np.linalg.norm(P, axis=1).sum() + 0.5 * np.linalg.norm(
            Q, axis=0).sum(),
    ),
    "sparse-plus-lowrank": (
        lambda: [mc.SparsePlusLowRank(alpha_sparse=0.05, trace_bound=3.0)],
        lambda W, P: (0.05 * cp.sum(cp.abs(P)), [cp.normNuc(W - P) <= 3.0]),
        lambda P, Q: 0.05 * np.abs(P).sum(),
    ),
    "sparse-group": (
        lambda: [mc.SparseGroup(alpha_l1=0.03, alpha_l21=0.1)],
        lambda W, P: (0.03 * cp.sum(cp.abs(W)) + 0.1 * sum(cp.norm(W[j, :], 2)
                                                           for j in range(D)), []),
        lambda W: 0.03 * np.abs(W).sum() + 0.1 * np.linalg.norm(W, axis=1).sum(),
    ),
    "cfglasso": (
        lambda: [mc.L1(0.02), mc.FusedL1(CHAIN, 0.05), mc.L21(0.1)],
        lambda W, P: (0.02 * cp.sum(cp.abs(W)) + _fused_expr(W, CHAIN_EDGES, 0.05)
                      + 0.1 * sum(cp.norm(W[j, :], 2) for j in range(D)), []),
        lambda W: (0.02 * np.abs(W).sum() + _fused_value(W, CHAIN_EDGES, 0.05)
                   + 0.1 * np.linalg.norm(W, axis=1).sum()),
    ),
    "fused-graph+l1": (
        lambda: [mc.FusedL1(TRIANGLE_PLUS, 0.05), mc.L1(0.02)],
        lambda W, P: (_fused_expr(W, EDGES, 0.05) + 0.02 * cp.sum(cp.abs(W)), []),
        lambda W: _fused_value(W, EDGES, 0.05) + 0.02 * np.abs(W).sum(),
    ),
}
DECOMPOSITIONS = {"dirty-linf", "dirty-l2", "robust-mtl", "robust-feature",
                  "sparse-plus-lowrank"}


@pytest.fixture(scope="module")
def references(problem_data):
    Xs, ys = problem_data
    out = {}
    for name, (_, ref, _) in CASES.items():
        W = cp.Variable((D, T))
        P = cp.Variable((D, T))
        expr, cons = ref(W, P)
        prob = cp.Problem(cp.Minimize(_loss_expr(Xs, ys, W) + expr), cons)
        prob.solve(solver="CLARABEL", **TIGHT)
        out[name] = (prob.value, W.value, P.value)
    return out


def _numpy_objective(name, Xs, ys, W, parts):
    value = CASES[name][2]
    if name in DECOMPOSITIONS:
        first, second = parts.values()
        return _loss_value(Xs, ys, W) + value(first, second)
    return _loss_value(Xs, ys, W) + value(W)


def _backends(name):
    return ["clarabel"] if name == "fused-graph+l1" else ["clarabel", "fista"]


@pytest.mark.parametrize("name", list(CASES))
def test_every_backend_matches_the_independent_model(problem_data, references, name):
    Xs, ys = problem_data
    F_ref = references[name][0]
    prob = mc.Problem(mc.MultiTaskData(Xs, ys), penalties=CASES[name][0]())
    for backend in _backends(name):
        if name == "fused-graph+l1":  # no rung certifies it: "unverified", with a warning
            with pytest.warns(mc.ConvergenceWarning, match="no certificate can verify"):
                sol = prob.solve(backend=backend)
            assert sol.status == "unverified"
        else:
            sol = prob.solve(backend=backend)
        assert sol.objective == pytest.approx(F_ref, rel=1e-7), backend
        # the objective at the parts, recomputed here from the formulas (a conic solver's
        # trace-ball part may sit a round-off outside the ball: the package scores the
        # nearest feasible split)
        assert _numpy_objective(name, Xs, ys, sol.W, sol.parts) == pytest.approx(
            sol.objective, rel=1e-9 if name == "sparse-plus-lowrank" else 1e-12)
        if name == "sparse-plus-lowrank":
            assert _nuc(sol.parts["Q"]) <= 3.0 * (1 + 1e-8)
        if name in DECOMPOSITIONS:
            assert len(sol.parts) == 2
            np.testing.assert_allclose(sum(sol.parts.values()), sol.W, atol=1e-12)
        else:
            assert sol.parts == {}
        cert = sol.certificate
        if name == "fused-graph+l1":  # no prox and no dual-ball test on a general graph
            assert cert.gap is None and "not a union of paths" in cert.reason
            continue
        assert sol.status == "optimal", (backend, cert)
        assert cert.gap >= sol.objective - F_ref - 1e-9 * abs(F_ref)
        assert cert.relative_gap <= 1e-8


@pytest.mark.parametrize("name", list(CASES))
def test_certificate_never_below_the_true_gap_at_perturbed_points(problem_data, references,
                                                                    name, rng):
    Xs, ys = problem_data
    F_ref, W_ref, P_ref = references[name]
    prob = mc.Problem(mc.MultiTaskData(Xs, ys), penalties=CASES[name][0]())
    term = prob.penalties[0]
    for eps in (1e-4, 1e-2, 1e-1):
        W = W_ref + eps * rng.standard_normal(W_ref.shape)
        if name in DECOMPOSITIONS:
            P = P_ref + eps * rng.standard_normal(P_ref.shape)
            if name == "sparse-plus-lowrank":  # keep the second part in the trace ball
                P = W - mc.penalties._prox.project_nuclear_ball(W - P, 3.0)
            parts = dict(zip(term.part_names, (P, W - P), strict=True))
        else:
            parts = None
        cert = mc.certify(prob, W, parts=parts)
        true_gap = _numpy_objective(name, Xs, ys, W, parts) - F_ref
        assert cert.objective == pytest.approx(true_gap + F_ref, rel=1e-12)
        if cert.gap is not None or name != "fused-graph+l1":
            assert cert.gap >= true_gap - 1e-9 * abs(F_ref), (eps, cert)


def test_dirty_without_parts_uses_the_exact_split(problem_data, references):
    Xs, ys = problem_data
    prob = mc.Problem(mc.MultiTaskData(Xs, ys), penalties=[mc.Dirty(0.3, 0.08)])
    sol = prob.solve(backend="clarabel")
    # the closed-form infimal convolution is at most the value at any parts, and equal at
    # the optimum (to the solver's accuracy)
    assert prob.objective(sol.W) <= sol.objective + 1e-12
    assert prob.objective(sol.W) == pytest.approx(references["dirty-linf"][0], rel=1e-7)
    assert mc.certify(prob, sol.W).relative_gap <= 1e-8


def test_no_closed_form_without_parts_says_so(problem_data):
    Xs, ys = problem_data
    prob = mc.Problem(mc.MultiTaskData(Xs, ys), penalties=[mc.RobustMTL(0.4, 0.5)])
    with pytest.raises(mc.PenaltyError, match="parts=sol.parts"):
        prob.objective(np.zeros((D, T)))
    with pytest.raises(mc.PenaltyError, match="differ from W"):
        prob.objective(np.ones((D, T)), parts={"L": np.zeros((D, T)), "S": np.zeros((D, T))})


def test_jalali_and_mutar_dirty_models_differ():
    """Denoising ½‖W − Y‖² (X_t = I): a row with several equally large entries is cheap for
    the L∞ rows (one number pays for them all) and dear for the L2 rows (√T of it)."""
    Y = np.array([[2.0, 2.0, 2.0, 2.0], [0.1, 3.0, -0.2, 0.0], [1.0, -1.0, 1.0, -1.0]])
    data = mc.MultiTaskData([np.eye(3)] * 4, list(Y.T))
    values = {}
    for rows, norm in [("linf", lambda p: cp.norm(p, "inf")), ("l2", lambda p: cp.norm(p, 2))]:
        W, P = cp.Variable((3, 4)), cp.Variable((3, 4))
        ref = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(W - Y) + sum(
            1.0 * norm(P[j, :]) for j in range(3)) + 0.6 * cp.sum(cp.abs(W - P))))
        ref.solve(solver="CLARABEL", **TIGHT)
        prob = mc.Problem(data, mc.SquaredLoss(scale="sum"),
                          penalties=[mc.Dirty(1.0, 0.6, rows=rows)])
        for backend in ("clarabel", "fista"):
            sol = prob.solve(backend=backend)
            assert sol.objective == pytest.approx(ref.value, rel=1e-7)
        values[rows] = sol.objective
    assert values["l2"] - values["linf"] > 0.1


def test_sparse_plus_low_rank_with_the_trace_bound_active(problem_data):
    Xs, ys = problem_data
    tau = 0.5  # far below the unconstrained ‖Q‖_*: the bound binds at the optimum
    W, P = cp.Variable((D, T)), cp.Variable((D, T))
    ref = cp.Problem(cp.Minimize(_loss_expr(Xs, ys, W) + 0.05 * cp.sum(cp.abs(P))),
                     [cp.normNuc(W - P) <= tau])
    ref.solve(solver="CLARABEL", **TIGHT)
    prob = mc.Problem(mc.MultiTaskData(Xs, ys),
                      penalties=[mc.SparsePlusLowRank(alpha_sparse=0.05, trace_bound=tau)])
    for backend in ("clarabel", "fista"):
        sol = prob.solve(backend=backend)
        assert sol.objective == pytest.approx(ref.value, rel=1e-7)
        assert _nuc(sol.parts["Q"]) == pytest.approx(tau, rel=1e-6)
        assert sol.certificate.gap >= sol.objective - ref.value - 1e-10


def test_default_backend_and_routes(problem_data):
    Xs, ys = problem_data
    data = mc.MultiTaskData(Xs, ys)
    # SDP-class decomposition: the scalable certified route over the parts
    assert mc.Problem(data, penalties=[mc.RobustMTL(0.4, 0.5)]).solve().backend == "fista"
    # FusedL1 on a graph that is not a chain has no exact prox: conic, and fista refuses
    prob = mc.Problem(data, penalties=[mc.FusedL1(TRIANGLE_PLUS, 0.05), mc.L1(0.02)])
    with pytest.warns(mc.ConvergenceWarning, match="no certificate can verify"):
        assert prob.solve().backend == "clarabel"
    with pytest.raises(mc.IncompatibleBackend, match="FusedL1"):
        prob.solve(backend="fista")
    # an LP/SOCP decomposition stays on Clarabel even when large (fista over the parts is
    # the slower route there); the PSD ones go to fista
    rng = np.random.default_rng(0)
    big = mc.MultiTaskData([rng.standard_normal((5, 41)) for _ in range(50)],
                           [rng.standard_normal(5) for _ in range(50)])
    assert mc.backends.default_backend(mc.Problem(big, penalties=[mc.Dirty()])) == "clarabel"
    assert mc.backends.default_backend(
        mc.Problem(big, penalties=[mc.SparsePlusLowRank()])) == "fista"
    # a decomposition beside another non-smooth term: no prox over the parts
    prob = mc.Problem(data, penalties=[mc.Dirty(0.3, 0.08), mc.L1(0.01)])
    with pytest.raises(mc.IncompatibleBackend):
        prob.solve(backend="fista")


def test_fused_alone_says_why_there_is_no_dual_gap(rng):
    # three samples per task for six features: not strongly convex, so no fallback gap
    Xs = [rng.standard_normal((3, D)) for _ in range(T)]
    ys = [rng.standard_normal(3) for _ in range(T)]
    prob = mc.Problem(mc.MultiTaskData(Xs, ys), penalties=[mc.FusedL1(CHAIN, 0.05)])
    cert = mc.certify(prob, np.zeros((D, T)))
    assert cert.gap is None and "trivial dual point" in cert.reason


def test_fused_counts_each_undirected_edge_once(rng):
    W = rng.standard_normal((3, T))
    pen = mc.FusedL1(TRIANGLE_PLUS, alpha=0.7)
    manual = 0.7 * sum(TRIANGLE_PLUS[s, t] * np.abs(W[:, s] - W[:, t]).sum()
                       for s in range(T) for t in range(s + 1, T))
    assert pen.value(W) == pytest.approx(manual, rel=1e-14)
    assert not pen.provides("prox") and mc.FusedL1(CHAIN).provides("prox")


def test_fused_prox_on_a_permuted_chain_matches_cvxpy(rng):
    """A path visiting the tasks out of order (3 – 0 – 4 – 1 – 2) with weights."""
    order, w = [3, 0, 4, 1, 2], [1.0, 0.5, 2.0, 0.3]
    A = np.zeros((T, T))
    for (s, t), wt in zip(zip(order[:-1], order[1:], strict=True), w, strict=True):
        A[s, t] = A[t, s] = wt
    V = rng.standard_normal((4, T))
    X = mc.FusedL1(A, alpha=0.8).prox(V, 0.5)
    Z = cp.Variable((4, T))
    edges = [(s, t, A[s, t]) for s in range(T) for t in range(s + 1, T) if A[s, t] > 0]
    cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Z - V) + 0.5 * _fused_expr(Z, edges, 0.8))
               ).solve(solver="CLARABEL", **TIGHT)
    np.testing.assert_allclose(X, Z.value, atol=1e-6)


@pytest.mark.parametrize("make, match", [
    (lambda: mc.Dirty(1.0, 1.0, rows="l3"), "rows"),
    (lambda: mc.Dirty(alpha_rows=-1.0), "alpha_rows"),
    (lambda: mc.SparsePlusLowRank(1.0, trace_bound=-2.0), "trace_bound"),
    (lambda: mc.FusedL1(np.array([[0.0, 1.0], [0.0, 0.0]])), "symmetric"),
    (lambda: mc.FusedL1(-mc.relations.chain(3)), "non-negative"),
])
def test_bad_parameters_are_refused(make, match):
    with pytest.raises(mc.PenaltyError, match=match):
        make()


def test_shape_and_duplicate_parts_are_refused(problem_data):
    Xs, ys = problem_data
    data = mc.MultiTaskData(Xs, ys)
    with pytest.raises(mc.PenaltyError, match="tasks"):
        mc.Problem(data, penalties=[mc.FusedL1(mc.relations.chain(T + 1))])
    with pytest.raises(mc.PenaltyError, match="part"):
        mc.Problem(data, penalties=[mc.Dirty(), mc.RobustFeatureLearning()]).solve(
            backend="clarabel")


def test_terms_with_several_strengths_refuse_a_single_alpha():
    for pen in (mc.Dirty(), mc.RobustMTL(), mc.SparseGroup(), mc.SparsePlusLowRank()):
        with pytest.raises(mc.PenaltyError, match="one strength per part"):
            pen.alpha = 0.5


def test_sparse_group_merges_with_l1_and_l21_beside_a_chain(problem_data, references):
    """SparseGroup + L1 + L21 merge into one SparseGroup, which composes after the chain's
    prox: the same problem as the CFGLasso case, solved by fista."""
    Xs, ys = problem_data
    prob = mc.Problem(mc.MultiTaskData(Xs, ys), penalties=[
        mc.SparseGroup(0.01, 0.04), mc.L1(0.01), mc.FusedL1(CHAIN, 0.05), mc.L21(0.06)])
    sol = prob.solve(backend="fista")
    assert sol.status == "optimal"
    assert sol.objective == pytest.approx(references["cfglasso"][0], rel=1e-7)
