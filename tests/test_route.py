"""``backend=None``: the route by estimated cost, and fista tried first where its cost is unknown.

Solutions are checked against an independent CVXPY model written here; no timed asserts
(the budgets are set through the module's share so every outcome is deterministic).
"""

from __future__ import annotations

import sys

import cvxpy as cp
import numpy as np
import pytest

import mtlcvx as mc
from mtlcvx import first_order
from mtlcvx.backends import registry


def _lasso(T=10, d=8, n=6, alpha=0.5):
    """n < d samples per task: the smooth part is not strongly convex (μ = 0)."""
    data = mc.datasets.make_related_tasks(n_tasks=T, n_features=d, n_samples=n,
                                          random_state=0)
    return mc.Problem(data, mc.SquaredLoss("sum"), [mc.L1(alpha)])


def _cvxpy_optimum(prob: mc.Problem, alpha: float) -> float:
    """min ½Σ_t‖X_t w_t − y_t‖² + α‖W‖₁, written from the raw arrays."""
    Xs, ys = prob.data.X, prob.data.y
    W = cp.Variable((Xs[0].shape[1], len(Xs)))
    loss = sum(0.5 * cp.sum_squares(X @ W[:, t] - y)
               for t, (X, y) in enumerate(zip(Xs, ys, strict=True)))
    ref = cp.Problem(cp.Minimize(loss + alpha * cp.sum(cp.abs(W))))
    ref.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12)
    return ref.value


def test_route_attempts_fista_only_where_its_cost_is_unknown():
    prob = _lasso()
    route = registry.default_route(prob)
    # T·Σ min(n_t, d)·d + d·T = 10·6·8 + 80 = 560 compiled non-zeros: C = 0.15·(560/1.1e5)^1.5
    # plus 7 ms to compile the problem (not compiled yet)
    C = 0.15 * (560 / 1.1e5) ** 1.5 + 0.007
    assert route.backend == "clarabel" == mc.backends.default_backend(prob)
    assert route.attempt == pytest.approx((0.3 * C, 1.3 * C))
    # a small ridge makes it strongly convex, but the rate 2√(L/μ)·ln(1e8) knows nothing of
    # the restricted polish (School's TGL: 70 iterations where it predicts 22 000): attempt
    ridge = mc.Problem(prob.data, mc.SquaredLoss("sum"), [mc.L1(0.5), mc.Ridge(1e-6)])
    top = max(np.linalg.eigvalsh(X.T @ X)[-1] for X in prob.data.X)
    rate = 2 * np.sqrt((top + 1e-6) / 1e-6) * np.log(1e8)  # n = 6 < d = 8: λ_min = 0
    assert min(rate, 20_000) * 2 * 10 * 8 * 8 / 2e9 > C  # the model alone would say Clarabel
    assert registry.default_route(ridge) == ("clarabel", (0.3 * C, 1.3 * C))
    # no support oracle over a decomposition's parts: no restricted polish, no attempt
    dirty = mc.Problem(prob.data, mc.SquaredLoss("sum"), [mc.Dirty(0.3, 0.08)])
    assert registry.default_route(dirty) == ("clarabel", None)
    assert registry.default_route(
        mc.Problem(prob.data, penalties=[mc.Ridge(1.0)])) == ("direct", None)
    assert registry.default_route(
        mc.Problem(prob.data, penalties=[mc.TraceNorm(1.0)])) == ("fista", None)


def _tiny_ridge_l1():
    """T = 5 tasks, d = 10, n = 12: strongly convex through the ridge, L/μ in the hundreds."""
    data = mc.datasets.make_related_tasks(n_tasks=5, n_features=10, n_samples=12,
                                          random_state=1)
    return mc.Problem(data, mc.SquaredLoss("sum"), [mc.L1(0.1), mc.Ridge(0.1)])


def test_route_counts_cvxpy_fixed_costs(monkeypatch):
    prob = _tiny_ridge_l1()
    # fista's model: 2√(L/μ)·ln(1e8) iterations of 2·T·d² = 1,000 flops at 2e9 flop/s
    Xs = prob.data.X
    eig = np.array([np.linalg.eigvalsh(X.T @ X) for X in Xs])
    L, mu = eig[:, -1].max() + 0.1, eig[:, 0].min() + 0.1
    fista = 2 * np.sqrt(L / mu) * np.log(1e8) * 1e3 / 2e9
    solve = 0.15 * ((5 * 10 * 10 + 50) / 1.1e5) ** 1.5
    assert solve < fista < solve + 0.007  # the compile decides
    assert registry.default_route(prob) == ("fista", None)
    sol = prob.solve("clarabel")  # compiled now: a re-solve costs Clarabel's solve alone
    # (L1 answers the support oracle: fista is tried first, and abandoned at its first
    # check, which comes after 1.3 × Clarabel's 53 µs)
    assert registry.default_route(prob) == ("clarabel", (0.3 * solve, 1.3 * solve))
    assert prob.solve().backend == "clarabel"
    assert prob.solve("fista").objective == pytest.approx(sol.objective, rel=1e-8)
    # a process that has not imported CVXPY pays for the import too: fista, which never needs it
    monkeypatch.delitem(sys.modules, "cvxpy")
    assert registry.default_route(prob) == ("fista", None)


def test_compile_cost_counted_until_built_for_the_current_data():
    prob = _tiny_ridge_l1()
    solve = 0.15 * ((5 * 10 * 10 + 50) / 1.1e5) ** 1.5  # as above, without the compile
    assert registry.conic_seconds(prob) == pytest.approx(solve + 0.007)
    prob.solve("clarabel")
    assert registry.conic_seconds(prob) == pytest.approx(solve)
    # task weights are baked into the compiled loss: the next conic solve builds again
    prob.loss.task_weights = np.full(5, 2.0)
    assert registry.conic_seconds(prob) == pytest.approx(solve + 0.007)
    builds = prob.n_builds
    prob.solve("clarabel")
    assert prob.n_builds == builds + 1
    assert registry.conic_seconds(prob) == pytest.approx(solve)


def test_abandoned_attempt_falls_back_and_says_so(monkeypatch):
    prob = _lasso()
    monkeypatch.setattr(registry, "_ATTEMPT_SHARE", 0.0)  # budget (0, C): over at check 1
    monkeypatch.setattr(registry, "_COMPILE_SECONDS", 0.0)  # C = 54 µs
    sol = prob.solve()
    assert sol.backend == "clarabel" and sol.status == "optimal"
    tried = sol.info["abandoned"]
    assert tried["backend"] == "fista" and tried["iterations"] == 10
    assert tried["seconds"] > 0 and tried["relative_gap"] > 1e-8
    assert "not certified within" in tried["reason"]
    assert sol.objective == pytest.approx(_cvxpy_optimum(prob, 0.5), rel=1e-7)
    # options for the solver skip the attempt (they are meant for the default backend)
    assert "abandoned" not in prob.solve(max_iter=200, tol_feas=1e-9).info


def test_attempt_that_certifies_is_returned(monkeypatch):
    prob = _lasso()
    monkeypatch.setattr(registry, "_ATTEMPT_SHARE", 1e9)  # all the time fista needs
    sol = prob.solve()
    assert sol.backend == "fista" and sol.status == "optimal"
    assert "abandoned" not in sol.info
    assert sol.certificate.relative_gap <= 1e-8
    F_ref = _cvxpy_optimum(prob, 0.5)
    assert sol.objective == pytest.approx(F_ref, rel=1e-7)
    assert sol.certificate.gap >= sol.objective - F_ref - 1e-9  # the gap bounds the truth


def test_fista_gives_up_only_outside_its_budget():
    abandon = first_order._abandon
    slow = [(10, 2.0), (20, 1.0), (30, 0.9)]  # log-gap −0.0105/iteration: 1,738 more to 1e-8
    assert abandon((2.0, 10.0), 1.0, 30, slow, 1e-8, settled=False) is None  # before `after`
    why = abandon((0.0, 10.0), 1.0, 30, slow, 1e-8, settled=False)
    assert "predicts tol=1e-08 at 58.9 s" in why  # 1 s + 1,738 × (1/30) s
    assert abandon((0.0, 10.0), 1.0, 30, slow, 1e-8, settled=True) is None  # polish in play
    assert abandon((0.0, 10.0), 1.0, 20, slow[:2], 1e-8, settled=False) is None  # 2 gaps
    assert "within 10 s" in abandon((0.0, 10.0), 10.0, 30, slow, 1e-8, settled=True)
    fast = [(10, 1.0), (20, 1.0), (30, 1e-4)]  # 10 more iterations: 1 s + 1/3 s ≤ 10 s
    assert abandon((0.0, 10.0), 1.0, 30, fast, 1e-8, settled=False) is None
    rising = [(10, 0.4), (20, 0.5), (30, 0.6)]
    assert "never" in abandon((0.0, 10.0), 1.0, 30, rising, 1e-8, settled=False)


def test_fista_give_up_is_reported_and_checked():
    prob = _lasso()
    trace = first_order.fista(prob, give_up=(0.0, 0.0))
    assert not trace.converged and trace.iterations == 10
    assert trace.info["abandoned"].startswith("not certified within")
    assert first_order.fista(prob).info["abandoned"] is None
    for bad in ((1.0, 0.5), 5.0, ("a", 1.0), (0.0, 1.0, 2.0), (np.nan, 1.0)):
        with pytest.raises(mc.ArgumentError, match="give_up must be a pair"):
            first_order.fista(prob, give_up=bad)
    assert np.isfinite(trace.certificate.relative_gap)


def _clusters(scale: float, ridge: float = 0.0, intercept: bool = False):
    """Clustered MTL (LearnedClusters, η = 0.05: L_φ/μ_φ = 21) on per-task designs whose
    first feature is multiplied by ``scale`` (the data's L/μ grows like scale²), with a
    diagonal Ridge; with ``intercept`` the loss is "mean" over tasks of 12–17 samples."""
    data = mc.datasets.make_related_tasks(n_tasks=6, n_features=3, n_samples=12,
                                          random_state=1)
    Xs = [X * [scale, 1.0, 1.0] for X in data.X]
    ys = list(data.y)
    if intercept:  # unequal task sizes: the "mean" weights 1/n_t differ
        Xs = [np.vstack([X, X[:t]]) for t, X in enumerate(Xs)]
        ys = [np.concatenate([y, y[:t] + 1.0]) for t, y in enumerate(ys)]
    pens = [mc.LearnedClusters(0.5, k=2, eta=0.05)] + ([mc.Ridge(ridge)] if ridge else [])
    loss = mc.SquaredLoss("mean" if intercept else "sum")
    return mc.Problem(mc.MultiTaskData(Xs, ys), loss, pens, fit_intercept=intercept)


def _data_condition(prob: mc.Problem) -> float:
    """L/μ of loss + Ridge + LearnedClusters from the (centred, weighted) task Grams'
    eigenvalues (numpy)."""
    center = prob.fit_intercept
    weight = [1 / len(X) if center else 1.0 for X in prob.data.X]
    lam = np.stack([c * np.linalg.eigvalsh((X - center * X.mean(0)).T @ (X - center * X.mean(0)))
                    for c, X in zip(weight, prob.data.X, strict=True)])
    ridge = sum(p.alpha for p in prob.penalties if isinstance(p, mc.Ridge))
    phi = prob.penalties[0]
    return ((lam[:, -1].max() + ridge + phi.alpha / phi.eta)
            / (lam[:, 0].min() + ridge + phi.alpha / (1 + phi.eta)))


def _matrix_frac_optimum(prob: mc.Problem) -> float:
    """The clustered-MTL objective minimised jointly over W and M by Clarabel, written
    from the raw arrays: ½Σ‖X_t w_t − y_t‖² + (α/2) tr(W (ηI + M)⁻¹ Wᵀ) + Ridge."""
    phi = prob.penalties[0]
    Xs, ys = prob.data.X, prob.data.y
    d, T = Xs[0].shape[1], len(Xs)
    W, Z, b = cp.Variable((d, T)), cp.Variable((T, T), symmetric=True), cp.Variable(T)
    ridge = sum(p.alpha for p in prob.penalties if isinstance(p, mc.Ridge))
    mean = prob.fit_intercept  # the "mean" loss with intercepts, else "sum" without
    loss = sum((0.5 / len(y) if mean else 0.5)
               * cp.sum_squares(X @ W[:, t] + (b[t] if mean else 0) - y)
               for t, (X, y) in enumerate(zip(Xs, ys, strict=True)))
    obj = loss + phi.alpha / 2 * cp.matrix_frac(W.T, Z) + ridge / 2 * cp.sum_squares(W)
    cons = [Z - phi.eta * np.eye(T) >> 0, (1 + phi.eta) * np.eye(T) - Z >> 0,
            cp.trace(Z) == T * phi.eta + phi.k]
    ref = cp.Problem(cp.Minimize(obj), cons)
    ref.solve(solver=cp.CLARABEL, tol_gap_abs=1e-9, tol_gap_rel=1e-9)
    return ref.value


@pytest.mark.parametrize("scale, ridge, intercept, kind", [
    (1.0, 0.0, False, "standard"), (100.0, 0.0, False, "loss_prox"),
    (100.0, 0.1, False, "loss_prox"), (100.0, 0.1, True, "loss_prox")])
def test_fista_splits_where_the_condition_number_is_smaller(scale, ridge, intercept, kind):
    # raw School's CMTL: the data's L/μ is ~3.6e6 against (1 + η)/η ≈ 101 for the learned
    # term, and fista on the standard split took minutes where the alternation took 0.2 s
    prob = _clusters(scale, ridge, intercept)
    phi = prob.penalties[0]
    q_phi = (phi.alpha / (1 + phi.eta)) / (phi.alpha / phi.eta)  # closed form: η/(1+η)
    assert (kind == "loss_prox") == (_data_condition(prob) > 1 / q_phi)
    split = first_order.splitting(prob)
    assert split.kind == kind
    if kind == "loss_prox":
        assert (split.lipschitz, split.strong_convexity) == pytest.approx(
            (phi.alpha / phi.eta, phi.alpha / (1 + phi.eta)))
        # the cost model counts the split's rate: 2√(L/μ)·ln(1e8), not its 20 000 cap
        assert registry.fista_iterations(prob) == pytest.approx(
            2 * np.sqrt(1 / q_phi) * np.log(1e8))
    assert registry.default_route(prob).backend == "fista"  # the PSD cone: no conic route
    sol = prob.solve(tol=1e-9)
    assert sol.backend == "fista" and sol.status == "optimal"
    assert sol.info["solver_status"] == "converged"
    ref = _matrix_frac_optimum(prob)
    assert sol.objective == pytest.approx(ref, rel=1e-7)
    if kind == "loss_prox":
        # linear rate 1 − √q with q = η/(1+η): the gap (relative ≤ 1) falls below 1e-9 in
        # ln(1e9)/√q iterations, checked every ≤ 10 % of the run
        assert sol.iterations <= 1.2 * np.log(1e9) / np.sqrt(q_phi) + 10
