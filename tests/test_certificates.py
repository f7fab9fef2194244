"""Certificates (the ladder of docs/certificates.md) and the certified first-order backend.

Optimal values come from closed forms computed here (denoising designs ``X_t = I``:
soft-thresholding, singular-value thresholding, the squared-norm rule), from the dense
Kronecker reference, or from a different solver; never from the code under test.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from reference import quadratic_optimum

import mtlcvx as mc
from mtlcvx import first_order


def _denoising(Y):
    """X_t = I_d, y_t = Y[:, t]: with scale="sum" the loss is ½‖W − Y‖²_F."""
    d, T = Y.shape
    return mc.MultiTaskData([np.eye(d)] * T, [Y[:, t] for t in range(T)])


def _soft(Y, a):
    return np.sign(Y) * np.maximum(np.abs(Y) - a, 0)


def _row_shrink(Y, a):
    n = np.linalg.norm(Y, axis=1, keepdims=True)
    return Y * np.maximum(1 - a / np.maximum(n, 1e-300), 0)


def _svt(Y, a):
    U, s, Vt = np.linalg.svd(Y, full_matrices=False)
    return (U * np.maximum(s - a, 0)) @ Vt


def _squared_nuclear(Y, a):
    # s_i = max(σ_i − a·S, 0), S = Σ s_i: try every active-set size r (brute force)
    U, sig, Vt = np.linalg.svd(Y, full_matrices=False)
    best = None
    for r in range(1, sig.size + 1):
        S = sig[:r].sum() / (1 + a * r)
        s = np.maximum(sig - a * S, 0)
        if np.count_nonzero(s) == r and abs(s.sum() - S) < 1e-12:
            best = s
    return (U * best) @ Vt


def _half_sq(W, Y):
    return 0.5 * float(np.sum((W - Y) ** 2))


RNG = np.random.default_rng(7)
Y0 = RNG.standard_normal((6, 5)) * 2


def _closed_form_cases():
    Y = Y0
    nuc = np.linalg.svd
    return [
        ("L1", [mc.L1(0.7)], _soft(Y, 0.7),
         lambda W: _half_sq(W, Y) + 0.7 * np.abs(W).sum()),
        ("L21", [mc.L21(1.5)], _row_shrink(Y, 1.5),
         lambda W: _half_sq(W, Y) + 1.5 * np.linalg.norm(W, axis=1).sum()),
        ("TraceNorm", [mc.TraceNorm(2.0)], _svt(Y, 2.0),
         lambda W: _half_sq(W, Y) + 2.0 * nuc(W, compute_uv=False).sum()),
        ("SquaredTraceNorm", [mc.SquaredTraceNorm(0.3)], _squared_nuclear(Y, 0.3),
         lambda W: _half_sq(W, Y) + 0.15 * nuc(W, compute_uv=False).sum() ** 2),
        ("Ridge+L1", [mc.Ridge(0.5), mc.L1(0.4)], _soft(Y, 0.4) / 1.5,
         lambda W: _half_sq(W, Y) + 0.25 * np.sum(W * W) + 0.4 * np.abs(W).sum()),
        ("Ridge+L21", [mc.Ridge(1.0), mc.L21(1.0)], _row_shrink(Y, 1.0) / 2.0,
         lambda W: _half_sq(W, Y) + 0.5 * np.sum(W * W) + np.linalg.norm(W, axis=1).sum()),
    ]


@pytest.mark.parametrize("case", _closed_form_cases(), ids=lambda c: c[0])
def test_certificate_tight_at_optimum_and_valid_after_perturbation(case):
    name, pens, W_star, F = case
    prob = mc.Problem(_denoising(Y0), mc.SquaredLoss(scale="sum"), pens)
    F_star = F(W_star)
    assert prob.objective(W_star) == pytest.approx(F_star, rel=1e-13)
    cert = mc.certify(prob, W_star)
    assert cert.gap is not None and cert.relative_gap <= 1e-8, (name, cert)
    rng = np.random.default_rng(0)
    for scale in (1e-6, 1e-3, 1e-1, 1.0):
        for _ in range(5):
            W = W_star + scale * rng.standard_normal(W_star.shape)
            true_gap = F(W) - F_star
            c = mc.certify(prob, W)
            assert c.gap >= true_gap - 1e-12 * max(1, abs(F_star)), (name, scale, c, true_gap)
            if c.distance_bound is not None:
                assert c.distance_bound >= np.linalg.norm(W - W_star) - 1e-9


def test_quadratic_certificate_against_kronecker_reference(rng):
    n = rng.integers(3, 15, size=5)
    Xs = [rng.standard_normal((k, 4)) for k in n]
    ys = [rng.standard_normal(k) for k in n]
    data = mc.MultiTaskData(Xs, ys)
    Z = rng.standard_normal((5, 2))
    K = Z @ Z.T + 0.2 * np.eye(5)
    prob = mc.Problem(data, penalties=[mc.TaskRelation(K, 0.5)])
    W_star, _, F_star = quadratic_optimum(Xs, ys, 1.0 / n, 0.5 * K)
    assert mc.certify(prob, W_star).relative_gap <= 1e-10
    for scale in (1e-4, 1e-2, 1.0):
        W = W_star + scale * rng.standard_normal(W_star.shape)
        c = mc.certify(prob, W)
        assert c.method.startswith("quadratic conjugate")
        assert c.gap >= prob.objective(W) - F_star - 1e-12


def test_distance_bound_read_later_is_the_problem_as_certified(rng):
    # per-task designs: μ = min_t λ_min(X_tᵀX_t) + λ_min(K) is computed when the bound is
    # first read; it is checked against dense eigenvalues and the Kronecker optimum, and
    # changing the problem after certify must not reach a bound read afterwards
    import pickle

    Xs = [rng.standard_normal((12, 4)) for _ in range(6)]
    ys = [rng.standard_normal(12) for _ in range(6)]
    ridge = mc.Ridge(0.3)
    prob = mc.Problem(mc.MultiTaskData(Xs, ys), mc.SquaredLoss("sum"),
                      [mc.GraphLaplacian(mc.relations.chain(6, sparse=True), 0.5), ridge])
    K = 0.5 * mc.relations.laplacian(mc.relations.chain(6)) + 0.3 * np.eye(6)
    W_star, _, F_star = quadratic_optimum(Xs, ys, np.ones(6), K)
    mu = min(np.linalg.eigvalsh(X.T @ X)[0] for X in Xs) + np.linalg.eigvalsh(K)[0]
    W = W_star + 1e-3 * rng.standard_normal(W_star.shape)
    cert, same = mc.certify(prob, W), mc.certify(prob, W)
    ridge.alpha = 0.0  # μ of the changed problem would be smaller
    assert cert.gap >= prob.objective(W) + 0.15 * np.sum(W * W) - F_star - 1e-12
    assert cert.distance_bound == pytest.approx(np.sqrt(2 * cert.gap / mu), rel=1e-9)
    assert cert.distance_bound >= np.linalg.norm(W - W_star)
    assert pickle.loads(pickle.dumps(same)) == cert  # pickling reads the bound first


def test_rung3_and_rung7_valid_against_clarabel(rng):
    data = mc.datasets.make_related_tasks(5, 4, [12, 8, 20, 15, 10], random_state=3)
    cases = {
        "Laplacian+L1 (rung 3)": [mc.GraphLaplacian(mc.relations.chain(5), 1.0), mc.L1(0.05)],
        "Ridge+SquaredTraceNorm (rung 3)": [mc.Ridge(0.1), mc.SquaredTraceNorm(0.5)],
        "L1+SquaredTraceNorm (rung 7)": [mc.L1(0.02), mc.SquaredTraceNorm(0.5)],
    }
    for name, pens in cases.items():
        prob = mc.Problem(data, penalties=pens, fit_intercept=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mc.ConvergenceWarning)
            ref = prob.solve(backend="clarabel", tol=1e-10)
        F_star = ref.objective  # an upper bound on F*, so F(W) − F_star ≤ the true gap
        for scale in (1e-3, 1e-1):
            W = ref.W + scale * rng.standard_normal(ref.W.shape)
            c = mc.certify(prob, W)
            assert c.gap is not None, name
            assert c.gap >= prob.objective(W) - F_star, (name, scale)


def test_constrained_problem_has_no_gap():
    prob = mc.Problem(_denoising(Y0), penalties=[mc.L1(0.1)], constraints=lambda W: [W >= 0])
    c = mc.certify(prob, np.zeros_like(Y0))
    assert c.gap is None and c.reason == "constrained problem"


@pytest.mark.parametrize("case", _closed_form_cases(), ids=lambda c: c[0])
def test_fista_reaches_closed_form(case):
    name, pens, W_star, F = case
    prob = mc.Problem(_denoising(Y0), mc.SquaredLoss(scale="sum"), pens)
    tr = first_order.fista(prob, tol=1e-10, record_every=5)
    assert tr.converged
    assert F(tr.W) - F(W_star) <= 1e-9 * max(1, F(W_star))
    assert set(tr.history) >= {"iteration", "time", "objective", "gap"}
    assert len({len(v) for v in tr.history.values()}) == 1
    sol = prob.solve(backend="fista", tol=1e-10)
    assert sol.status == "optimal" and sol.certificate.relative_gap <= 1e-10
    np.testing.assert_allclose(sol.W, W_star, atol=1e-4)


def test_fista_backend_matches_direct_on_quadratic(rng):
    data = mc.datasets.make_related_tasks(6, 5, 30, random_state=1)
    prob = mc.Problem(data, penalties=[mc.GraphLaplacian(mc.relations.chain(6), 0.5),
                                       mc.Ridge(0.1)], fit_intercept=True)
    ref = prob.solve(backend="direct")
    sol = prob.solve(backend="fista", tol=1e-10)
    assert sol.objective == pytest.approx(ref.objective, rel=1e-10)
    assert np.linalg.norm(sol.W - ref.W) <= np.sqrt(2 * sol.certificate.gap /
                                                    prob.strong_convexity()) + 1e-12


def test_gradient_descent_converges(rng):
    prob = mc.Problem(_denoising(Y0), mc.SquaredLoss(scale="sum"), [mc.L21(1.5)])
    tr = first_order.gradient_descent(prob, max_iter=500, tol=1e-12)
    np.testing.assert_allclose(tr.W, _row_shrink(Y0, 1.5), atol=1e-10)


def test_conic_stopped_early_is_flagged_and_refined():
    data = mc.datasets.make_related_tasks(8, 6, 40, random_state=2)
    prob = mc.Problem(data, penalties=[mc.L21(0.05)])
    with pytest.warns(mc.ConvergenceWarning, match="not certified optimal"):
        sol = prob.solve(backend="scs", max_iter=5)
    assert sol.status == "inaccurate"
    assert sol.certificate.relative_gap > 1e-8
    with warnings.catch_warnings():
        warnings.simplefilter("error", mc.ConvergenceWarning)
        fixed = prob.solve(backend="scs", max_iter=5, refine=True)
    assert fixed.status == "optimal" and fixed.certificate.relative_gap <= 1e-8
    ref = prob.solve(backend="clarabel")
    assert fixed.objective == pytest.approx(ref.objective, rel=1e-7)


def test_default_backend_rule():
    # X_t = I: perfectly conditioned, fista certifies in ~10 iterations (Clarabel 4-40x slower)
    small = mc.Problem(_denoising(Y0), penalties=[mc.L21(0.1)])
    assert mc.backends.default_backend(small) == "fista"
    assert mc.backends.default_backend(mc.Problem(_denoising(Y0), penalties=[mc.Ridge(1)])) \
        == "direct"
    assert mc.backends.default_backend(
        mc.Problem(_denoising(Y0), penalties=[mc.TraceNorm(1)])) == "fista"
    # T·d > 2000 but 5 samples per task: no strong convexity, Clarabel measured 4-7x faster
    big = mc.datasets.make_related_tasks(50, 41, 5, random_state=0)
    assert mc.backends.default_backend(mc.Problem(big, penalties=[mc.L1(0.1)])) == "clarabel"
    # a tall shared design: well conditioned, and its compiled loss has T·d² non-zeros
    rng = np.random.default_rng(0)
    tall = mc.MultiTaskData.shared(rng.standard_normal((2000, 100)),
                                   rng.standard_normal((2000, 50)))
    assert mc.backends.default_backend(mc.Problem(tall, penalties=[mc.L21(0.1)])) == "fista"
    sol = mc.Problem(_denoising(Y0), penalties=[mc.TraceNorm(1)]).solve()
    assert sol.backend == "fista"


def test_fista_refuses_sum_without_exact_prox():
    prob = mc.Problem(_denoising(Y0), penalties=[mc.L1(0.1), mc.TraceNorm(0.1)])
    with pytest.raises(mc.IncompatibleBackend, match="no exact"):
        prob.solve(backend="fista")


def test_learned_clusters_dual_in_closed_form_of_degree_two():
    # denoising (X_t = I, "sum"): the dual point at W is V = Y − W scaled by s, and with
    # φ*(sV) = s²φ*(V) the best scale gives D* = ⟨Y, V⟩² / (4(½‖V‖² + φ*(V))), φ* the
    # Ky Fan conjugate (η‖V‖² + Σ_{i≤k} λ_i(VᵀV))/(2α), computed here from eigvalsh
    rng = np.random.default_rng(4)
    Y = rng.standard_normal((4, 7))
    phi = mc.LearnedClusters(alpha=0.8, k=2.5, eta=0.2)
    prob = mc.Problem(_denoising(Y), mc.SquaredLoss("sum"), [phi])
    W = 0.5 * Y + 0.1 * rng.standard_normal(Y.shape)
    V = Y - W

    def ky_fan_conjugate(V):
        lam = np.sort(np.linalg.eigvalsh(V.T @ V))[::-1]
        top = lam[0] + lam[1] + 0.5 * lam[2]  # k = 2.5
        return (0.2 * np.sum(V * V) + top) / (2 * 0.8)

    assert phi.conjugate_degree == 2
    for s in (0.3, 2.5):
        assert phi.conjugate(s * V) == pytest.approx(s * s * ky_fan_conjugate(V), rel=1e-12)
    best = np.sum(Y * V) ** 2 / (4 * (0.5 * np.sum(V * V) + ky_fan_conjugate(V)))
    calls = []
    conjugate = phi.conjugate
    phi.conjugate = lambda U: calls.append(1) or conjugate(U)
    cert = mc.certify(prob, W)
    assert cert.dual_objective == pytest.approx(best, rel=1e-12)
    assert len(calls) == 1  # one SVD, where the search over s took 35 (on School, half the solve)
