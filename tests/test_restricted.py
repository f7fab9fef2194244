"""The problem restricted to a settled support: its solution, and the gaps it gives fista.

References are independent: CVXPY models written here (Clarabel at tight tolerances) for
the optima, central differences of ``value`` for the ``support`` oracle.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

import mtlcvx as mc
from mtlcvx import first_order
from mtlcvx._restricted import RestrictedSolve
from mtlcvx.penalties.base import Penalty, Support, Term

T, D, N = 4, 10, 30
# Clarabel stops near 1e-10 on these raw scales; the tests allow for its accuracy
pytestmark = pytest.mark.filterwarnings("ignore:Solution may be inaccurate")


def _problem(rng, penalties, fit_intercept, shared=False):
    W0 = np.zeros((D, T))
    W0[:3] = rng.standard_normal((3, T))
    W0[3, 1] = 2.0  # a row used by one task only (L1 keeps it sparse within the row)
    scales = np.exp(rng.uniform(-1.5, 1.5, D))  # raw, unscaled features
    Xs = [rng.standard_normal((N, D)) * scales for _ in range(1 if shared else T)] * (
        T if shared else 1)
    ys = [X @ W0[:, t] / scales.mean() + 0.3 * rng.standard_normal(N) + 1.0
          for t, X in enumerate(Xs)]
    data = (mc.MultiTaskData.shared(Xs[0], np.stack(ys, axis=1)) if shared
            else mc.MultiTaskData(Xs, ys))
    return mc.Problem(data, mc.SquaredLoss("sum"), penalties, fit_intercept=fit_intercept), Xs, ys


def _cvxpy_optimum(Xs, ys, l1, l21, fit_intercept, graph=0.0):
    """The optimum written from scratch: intercepts as unknowns, Clarabel at tight tol;
    ``graph`` weighs ``½ Σ_t ‖w_t − w_{t+1}‖²`` (a chain over the tasks)."""
    W = cp.Variable((D, T))
    b = cp.Variable(T) if fit_intercept else None
    loss = sum(0.5 * cp.sum_squares(X @ W[:, t] + (b[t] if fit_intercept else 0) - y)
               for t, (X, y) in enumerate(zip(Xs, ys, strict=True)))
    pen = l1 * cp.sum(cp.abs(W)) + l21 * cp.sum(cp.norm(W, 2, axis=1))
    pen = pen + 0.5 * graph * cp.sum_squares(W[:, 1:] - W[:, :-1])
    prob = cp.Problem(cp.Minimize(loss + pen))
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10,
               tol_ktratio=1e-9, max_iter=500)
    return W.value, prob.value


CASES = {"L21": (0.0, 8.0), "L1": (3.0, 0.0), "L1+L21": (2.0, 4.0)}


def _penalties(l1, l21, graph=0.0):
    return ([mc.L1(l1)] if l1 else []) + ([mc.L21(l21)] if l21 else []) + (
        [mc.GraphLaplacian(mc.relations.chain(T), graph)] if graph else [])


@pytest.mark.parametrize("case", [*CASES, "L21+graph"])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_restricted_solution_is_the_optimum_on_the_right_support(rng, case, fit_intercept):
    # with a graph over the tasks the preconditioner's task blocks are only approximate
    l1, l21 = CASES[case.removesuffix("+graph")]
    graph = 5.0 if case.endswith("+graph") else 0.0
    prob, Xs, ys = _problem(rng, _penalties(l1, l21, graph), fit_intercept)
    W_star, F_star = _cvxpy_optimum(Xs, ys, l1, l21, fit_intercept, graph)
    big = np.abs(W_star) > 1e-6 * np.abs(W_star).max()
    mask = big if l1 else np.broadcast_to(big.any(axis=1, keepdims=True), big.shape)
    assert 0 < mask.sum() < mask.size  # a proper support
    # from 5 % off in every entry, as a first-order iterate whose support has settled
    start = np.where(mask, W_star * (1 + 0.05 * rng.standard_normal(W_star.shape)), 0.0)
    W_tilde, converged = RestrictedSolve(prob).solve(start, mask)
    assert converged
    np.testing.assert_allclose(W_tilde, np.where(mask, W_star, 0.0), rtol=0,
                               atol=1e-5 * np.abs(W_star).max())  # Clarabel's accuracy
    # at least as good as Clarabel's optimum, on the objective recomputed from scratch
    F = _cvxpy_objective(Xs, ys, l1, l21, fit_intercept, W_tilde, graph)
    assert F <= F_star + 1e-9 * abs(F_star)


def _cvxpy_objective(Xs, ys, l1, l21, fit_intercept, W, graph=0.0):
    F = 0.5 * graph * float(np.sum((W[:, 1:] - W[:, :-1]) ** 2))
    for t, (X, y) in enumerate(zip(Xs, ys, strict=True)):
        r = X @ W[:, t] - y
        if fit_intercept:
            r = r - r.mean()
        F += 0.5 * r @ r
    return F + l1 * np.abs(W).sum() + l21 * np.linalg.norm(W, axis=1).sum()


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("shared", [False, True], ids=["per-task", "shared"])
def test_fista_gaps_track_the_true_suboptimality(rng, case, shared, monkeypatch):
    """Along fista's run the certified gap is within 3x the true suboptimality (from the
    CVXPY optimum) once that is below 1e-4, it is never below it, and the first
    certified 1e-8 comes within 1.25x the iterations of the first true 1e-8 (the iterates
    followed to the end: no primal polish)."""
    monkeypatch.setattr(first_order, "_POLISH", False)
    l1, l21 = CASES[case]
    prob, Xs, ys = _problem(rng, _penalties(l1, l21), True, shared)
    _, F_star = _cvxpy_optimum(Xs, ys, l1, l21, True)
    trace = first_order.fista(prob, tol=1e-8, record_every=1, check_every=1)
    assert trace.converged
    h = trace.history
    F = np.array([_cvxpy_objective(Xs, ys, l1, l21, True, W) for W in [trace.W]])
    assert F[0] == pytest.approx(h["objective"][-1], rel=1e-12)
    sub = (h["objective"] - F_star) / abs(F_star)
    gap = h["gap"] / abs(F_star)
    checked = ~np.isnan(gap)
    assert np.all(gap[checked] >= sub[checked] - 1e-11)  # valid (Clarabel's F* to ~1e-12)
    tight = checked & (sub >= 1e-7) & (sub <= 1e-4)
    assert tight.sum() >= 2
    assert np.all(gap[tight] <= 3.0 * sub[tight])
    first_true = h["iteration"][np.argmax(sub <= 1e-8)]
    assert trace.iterations <= 1.25 * first_true


@pytest.mark.parametrize("pen", [mc.L1(0.7), mc.L21(0.7)], ids=["L1", "L21"])
def test_support_oracle_matches_central_differences(rng, pen):
    W = rng.standard_normal((5, 3))
    W[1] = 0.0
    W[3, 2] = 0.0
    sup = pen.support(W)
    expected = (W != 0) if pen.separable == "entries" else np.broadcast_to(
        np.linalg.norm(W, axis=1, keepdims=True) > 0, W.shape)
    np.testing.assert_array_equal(sup.mask, expected)
    h = 1e-5
    D = np.where(sup.mask, rng.standard_normal(W.shape), 0.0)
    # gradient: the directional derivative of value along D
    slope = (pen.value(W + h * D) - pen.value(W - h * D)) / (2 * h)
    assert float(np.sum(sup.gradient * D)) == pytest.approx(slope, rel=1e-7)
    # Hessian: the second directional derivative, and the symmetric bilinear form
    curvature = (pen.value(W + h * D) - 2 * pen.value(W) + pen.value(W - h * D)) / h ** 2
    assert float(np.sum(D * sup.hessian(D))) == pytest.approx(curvature, rel=1e-4, abs=1e-4)
    E = np.where(sup.mask, rng.standard_normal(W.shape), 0.0)
    assert float(np.sum(E * sup.hessian(D))) == pytest.approx(
        float(np.sum(D * sup.hessian(E))), rel=1e-12, abs=1e-14)
    # the diagonal: e_i' H e_i
    i = tuple(np.argwhere(sup.mask)[0])
    e = np.zeros(W.shape)
    e[i] = 1.0
    assert sup.hessian(e)[i] == pytest.approx(sup.diagonal[i], rel=1e-12, abs=1e-15)
    assert not np.any(sup.gradient[~sup.mask]) and not np.any(sup.diagonal[~sup.mask])


def test_terms_without_the_oracle_get_no_restricted_solve(rng):
    prob, _, _ = _problem(rng, [mc.L21(1.0), mc.TraceNorm(1.0)], False)
    assert mc.L21(1.0).provides("support") and not mc.TraceNorm(1.0).provides("support")
    assert not RestrictedSolve(prob).available


def test_validate_certifies_a_rounded_reference_by_its_support(rng):
    """A reference with every entry perturbed by 1e-9 (as an interior-point solution has
    no exact zeros): its gap from the restricted dual is its true suboptimality (against
    the CVXPY optimum), where its own scaled residual is orders of magnitude looser."""
    prob, Xs, ys = _problem(rng, _penalties(0.0, 8.0), True)
    W_star, F_star = _cvxpy_optimum(Xs, ys, 0.0, 8.0, True)
    W_ref = W_star + 1e-9 * rng.standard_normal(W_star.shape)
    report = mc.validate(prob, np.zeros_like(W_star), reference=W_ref)
    F_ref = _cvxpy_objective(Xs, ys, 0.0, 8.0, True, W_ref)
    true_gap = F_ref - F_star
    gap = report.reference_certificate.gap  # Clarabel's F* is good to ~1e-10·|F*|
    assert true_gap - 1e-10 * abs(F_star) <= gap <= 1.2 * true_gap + 1e-10 * abs(F_star)
    assert mc.certify(prob, W_ref).gap > 20 * gap  # its own dual point: 28x looser here


class ColumnL2(Penalty):
    """α Σ_t ‖w_t‖₂, written here: a norm mtlcvx knows nothing about."""

    cones = frozenset({"soc"})
    structure = "norm"

    def cvxpy_term(self, W, params):
        return Term(params["alpha"] * cp.sum(cp.norm(W, 2, axis=0)))

    def value(self, W):
        return self.alpha * float(np.linalg.norm(W, axis=0).sum())

    def prox(self, V, step):
        n = np.linalg.norm(V, axis=0, keepdims=True)
        return V * np.maximum(1.0 - step * self.alpha / np.maximum(n, 1e-300), 0.0)

    def dual_norm(self, V):
        return float(np.linalg.norm(V, axis=0).max(initial=0.0))


class ColumnL2WithSupport(ColumnL2):
    def support(self, W):
        n = np.linalg.norm(W, axis=0, keepdims=True)
        inv = np.where(n > 0, self.alpha / np.where(n > 0, n, 1.0), 0.0)
        U = W * inv / self.alpha

        def hessian(D):
            return inv * (D - U * np.sum(U * D, axis=0, keepdims=True))

        return Support(np.broadcast_to(n > 0, W.shape), self.alpha * U, hessian,
                       inv * (1.0 - U * U))


def test_a_new_norm_with_the_support_oracle_gets_tight_gaps(rng, monkeypatch):
    """The restricted solve goes by the protocol: the same norm, written outside mtlcvx,
    gets gaps that track the truth (from an independent CVXPY model) once it answers
    ``support``, and loose ones without it."""
    monkeypatch.setattr(first_order, "_POLISH", False)
    prob, Xs, ys = _problem(rng, [ColumnL2WithSupport(3.0)], False)
    W = cp.Variable((D, T))
    ref = cp.Problem(cp.Minimize(
        sum(0.5 * cp.sum_squares(X @ W[:, t] - y)
            for t, (X, y) in enumerate(zip(Xs, ys, strict=True)))
        + 3.0 * cp.sum(cp.norm(W, 2, axis=0))))
    ref.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    ratios = {}
    for pen in (ColumnL2WithSupport(3.0), ColumnL2(3.0)):
        prob.penalties = [pen]
        h = first_order.fista(prob, tol=1e-9, record_every=1, check_every=1).history
        sub = (h["objective"] - ref.value) / abs(ref.value)
        gap = h["gap"] / abs(ref.value)
        window = ~np.isnan(gap) & (sub >= 1e-7) & (sub <= 1e-4)
        assert window.sum() >= 2 and np.all(gap[~np.isnan(gap)] >= sub[~np.isnan(gap)] - 1e-11)
        ratios[type(pen).__name__] = float(np.max(gap[window] / sub[window]))
    assert ratios["ColumnL2WithSupport"] <= 1.01 < 3.0 < ratios["ColumnL2"], ratios


@pytest.mark.parametrize("shared", [False, True], ids=["per-task", "shared"])
@pytest.mark.parametrize("case", list(CASES))
def test_fista_returns_the_certified_restricted_solution(rng, case, shared, monkeypatch):
    """The primal polish: fista returns the restricted solution once its own certificate
    meets tol, in fewer iterations than following the iterates, and that point is within
    tol of the CVXPY optimum (its certificate never below the true gap)."""
    l1, l21 = CASES[case]
    prob, Xs, ys = _problem(rng, _penalties(l1, l21), True, shared)
    _, F_star = _cvxpy_optimum(Xs, ys, l1, l21, True)
    polished = first_order.fista(prob, tol=1e-8)
    monkeypatch.setattr(first_order, "_POLISH", False)
    followed = first_order.fista(prob, tol=1e-8)
    assert polished.converged and polished.info["polished"]
    assert not followed.info["polished"]
    assert polished.iterations < followed.iterations
    F = _cvxpy_objective(Xs, ys, l1, l21, True, polished.W)
    assert F == pytest.approx(polished.certificate.objective, rel=1e-12)
    true_gap = (F - F_star) / abs(F_star)
    assert true_gap <= 1e-8 + 1e-11  # Clarabel's F* to ~1e-12
    assert polished.certificate.relative_gap >= true_gap - 1e-11
    assert polished.certificate.relative_gap <= 1e-8
