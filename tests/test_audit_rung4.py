"""Adversarial audit of rung 4 (quadratic problems): the certified gap is never below the
exact gap ``F(W) − F*`` and the reported dual value never above ``F*``.

``F`` and ``F*`` are computed here in exact rational arithmetic (``fractions``): the float64
inputs are exact rationals, every quadratic term's matrix is rebuilt from what the term
defines (``R Rᵀ + ridge·I`` from the factor, the Laplacian from the adjacency), the
intercepts are profiled (``F(W)`` from data centred exactly, ``F*`` and ``W*`` from
``reference.exact_quadratic_solution``, the intercepts as unpenalised columns of normal
equations solved by Gauss-Jordan elimination). Nothing here calls the package's solvers or
certificate code to build the reference. The cases aim at the conjugate taken at ``X = W``
(the computed ``h(W)`` entering ``F`` and ``D`` as one float): mixed-sign dense and sparse
``K`` with large cancellation (``Σ|W||K||W| ≫ tr(WKWᵀ)``), a feature side beside a task
side, data scaled by ``1e±50`` and down to ``W ~ 1e-156`` (``W∘W`` subnormal, times ``α ~
1e116``), points ``sW*`` with ``s`` far from 1 (the weight ``|1 − s²|`` of the value's
bound), huge components along ``K``'s small eigenvectors, intercepts, task weights.
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from reference import exact_quadratic_solution

import mtlcvx as mc

AT_W = "quadratic conjugate at W (rung 4)"


def _exact_matrix(pen, d, T):
    """``α·K`` in rationals, as the term defines it."""
    n = T if pen.side == "task" else d
    low = pen.low_rank()
    if low is not None:
        R = low[0].toarray() if sp.issparse(low[0]) else np.asarray(low[0])
        Rf = [[Fraction(v) for v in row] for row in R.tolist()]
        K = [[sum(a * b for a, b in zip(Rf[i], Rf[j], strict=True))
              + (Fraction(low[1]) if i == j else 0) for j in range(n)] for i in range(n)]
    else:
        M = pen.matrix(d, T)
        M = M.toarray() if sp.issparse(M) else np.asarray(M)
        K = [[Fraction(v) for v in row] for row in M.tolist()]
    return [[Fraction(pen.alpha) * v for v in row] for row in K]


class _Exact:
    """``F`` and ``F*`` of a quadratic problem in rationals (small sizes only)."""

    def __init__(self, prob):
        data, d, T = prob.data, prob.n_features, prob.n_tasks
        self.d, self.T = d, T
        self.c = [Fraction(v) for v in prob.loss_weights().tolist()]
        Y = data.shared_targets().T if data.is_shared else data.y
        self.Xs, self.ys = [], []
        for t in range(T):
            X = [[Fraction(v) for v in row] for row in np.asarray(data.X[0 if data.is_shared
                                                                          else t]).tolist()]
            y = [Fraction(v) for v in np.asarray(Y[t]).tolist()]
            if prob.fit_intercept:  # profiled intercepts: centre exactly
                mx = [sum(r[j] for r in X) / len(y) for j in range(d)]
                my = sum(y) / len(y)
                X = [[v - m for v, m in zip(r, mx, strict=True)] for r in X]
                y = [v - my for v in y]
            self.Xs.append(X)
            self.ys.append(y)
        self.Kt = [[Fraction(0)] * T for _ in range(T)]
        self.Kf = [[Fraction(0)] * d for _ in range(d)]
        for pen in prob.penalties:
            target = self.Kt if pen.side == "task" else self.Kf
            for i, row in enumerate(_exact_matrix(pen, d, T)):
                for j, v in enumerate(row):
                    target[i][j] += v
        raw = [np.asarray(data.X[0 if data.is_shared else t]) for t in range(T)]
        self.F_star, self.W_star = exact_quadratic_solution(
            raw, [np.asarray(Y[t]) for t in range(T)], self.c, self.Kt, self.Kf,
            prob.fit_intercept)

    def objective(self, W):
        d, T = self.d, self.T
        Wf = [[Fraction(v) for v in row] for row in W.tolist()]
        val = Fraction(0)
        for t in range(T):
            for row, y in zip(self.Xs[t], self.ys[t], strict=True):
                r = sum(a * Wf[i][t] for i, a in enumerate(row)) - y
                val += self.c[t] * r * r / 2
        val += sum(self.Kt[s][t] * sum(Wf[i][s] * Wf[i][t] for i in range(d))
                   for s in range(T) for t in range(T)) / 2
        val += sum(self.Kf[i][j] * sum(Wf[i][t] * Wf[j][t] for t in range(T))
                   for i in range(d) for j in range(d)) / 2
        return val


def _assert_valid(prob, points, exact):
    """Every certificate at ``points``: gap ≥ the exact gap, dual value ≤ F*."""
    methods = set()
    for W in points:
        true = exact.objective(W) - exact.F_star
        for gram in (True, False) if prob.data.is_shared else (True,):
            cert = mc.certify(prob, W, gram=gram)
            methods.add(cert.method)
            assert cert.gap is not None and np.isfinite(cert.gap), cert
            assert Fraction(cert.gap) >= true, (cert, float(true))
            assert Fraction(cert.dual_objective) <= exact.F_star, (cert, float(exact.F_star))
    return methods


# ----------------------------------------------------------------------------- the cases
def _coupling(rng, kind, d, T, alpha):
    """Quadratic terms whose exact sum is positive definite (a ridge far above ε‖K‖)."""
    z = rng.standard_normal((T, 2)) * np.pi  # inexact entries: mixed signs, WZ cancels
    cancel = mc.TaskRelation(mc.relations.outer(z), alpha)
    A = rng.standard_normal((T, T)) * np.e
    mixed = A @ A.T  # dense, mixed signs, full rank
    terms = {
        "cancel": [cancel],
        "mixed": [mc.TaskRelation(mixed, alpha)],
        "sparse": [mc.TaskRelation(sp.csr_matrix(mixed), alpha)],
        "two": [cancel, mc.TaskRelation(sp.csr_matrix(mixed), 0.3 * alpha)],
        "feature": [cancel, mc.FeatureRelation(np.full((d, d), -0.4) + 1.7 * np.eye(d), alpha)],
        "factor": [cancel, mc.TaskRelation.from_factor(z, ridge=0.1, alpha=alpha)],
    }[kind]
    return terms + [mc.Ridge(1e-6 * alpha)]


def _problem(rng, kind, scale, intercept, weights, shared=False):
    T, d = 4, 3
    xs, ys = scale
    if shared:
        X, Y = rng.standard_normal((6, d)) * xs, (rng.standard_normal((6, T)) + 2.0) * ys
        data = mc.MultiTaskData.shared(X, Y)
    else:
        ns = (5, 2, 4, 3)
        data = mc.MultiTaskData([rng.standard_normal((n, d)) * xs for n in ns],
                                [(rng.standard_normal(n) + 2.0) * ys for n in ns])
    loss = mc.SquaredLoss("mean", task_weights=[0.3, 2.0, 1.0, 0.7]) if weights else \
        mc.SquaredLoss("sum")
    return mc.Problem(data, loss, _coupling(rng, kind, d, T, xs * xs),
                      fit_intercept=intercept)


def _points(rng, prob, exact):
    """The exact optimum rounded, the direct solve, ``sW*`` for s from 0.1 to 10, a huge
    component along the smallest eigenvectors of the task side, and small noise."""
    Ws = exact.W_star
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        solved = prob.solve(backend="direct").W
    K = sum(p.alpha * (p.matrix(*Ws.shape).toarray() if sp.issparse(p.matrix(*Ws.shape))
                       else p.matrix(*Ws.shape)) for p in prob.penalties if p.side == "task")
    low = np.linalg.eigh(K)[1][:, :2]  # where tr(WKWᵀ) ≪ Σ|W||K||W|
    big = np.abs(Ws).max()
    return [Ws, solved, 0.1 * Ws, 0.5 * Ws, 1.5 * Ws, 10.0 * Ws,
            Ws + 1e3 * big * rng.standard_normal((Ws.shape[0], 2)) @ low.T,
            Ws + 1e-9 * big * rng.standard_normal(Ws.shape)]


@pytest.mark.parametrize("kind", ["cancel", "mixed", "sparse", "two", "feature", "factor"])
@pytest.mark.parametrize("scale", [(1.0, 1.0), (1e-50 * np.pi, 1e40 * np.e),
                                   (1e50 / 3.0, 1e-30), (1e58 / 3.0, 1e-98)])
@pytest.mark.parametrize("intercept,weights", [(False, False), (True, True)])
def test_rung4_gap_is_never_below_the_exact_gap(rng, kind, scale, intercept, weights):
    prob = _problem(rng, kind, scale, intercept, weights)
    exact = _Exact(prob)
    methods = _assert_valid(prob, _points(rng, prob, exact), exact)
    if kind in ("cancel", "two"):  # the mixed-sign terms' magnitude bound dominates
        assert AT_W in methods, methods


@pytest.mark.parametrize("kind", ["cancel", "sparse"])
def test_rung4_on_a_shared_design_by_the_gram_route_and_the_residuals(rng, kind):
    prob = _problem(rng, kind, (1.0, 1.0), False, False, shared=True)
    exact = _Exact(prob)
    _assert_valid(prob, _points(rng, prob, exact), exact)


def test_gram_loss_computed_below_zero_gives_a_finite_gap():
    # An exact fit on a shared design at extreme scales: XᵀX and XᵀY give one task's loss
    # as −3e-213 (cancellation). The residuals' loss bound took its square root: NaN,
    # carried by np.maximum into the floor and reported as the gap.
    h = float.fromhex
    X = np.array([[h("-0x1.1b1dc2a3386b6p+179")]])
    Y = np.array([[h("0x1.4e56a6b8cde16p-326"), h("-0x1.a1d1e347ce376p-327"),
                   h("0x1.140d8060146dep-326")]])
    K = np.array([[h("0x1.e7d9486cda284p+1"), h("-0x1.7e57a902496c2p+1"),
                   h("-0x1.971ac732a1dd9p-2")],
                  [h("-0x1.7e57a902496c2p+1"), h("0x1.54b6e325fc98ap+2"),
                   h("-0x1.ee37ddcef8e32p-1")],
                  [h("-0x1.971ac732a1dd9p-2"), h("-0x1.ee37ddcef8e32p-1"),
                   h("0x1.6194ae5e29544p+1")]])
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), mc.SquaredLoss("sum"),
                      [mc.TaskRelation(K, h("0x1.4893fd8adc842p+322")),
                       mc.Ridge(h("0x1.21053526ade6ep+279"))])
    W = np.array([[h("-0x1.2e50f7956e37bp-505"), h("0x1.79cd504dd0b23p-506"),
                   h("-0x1.f339dd4aa55a1p-506")]])
    exact = _Exact(prob)
    _assert_valid(prob, [W, exact.W_star], exact)


def test_norms_of_rounding_bounds_below_1e_minus_154_are_not_lost_to_underflow():
    # Intercepts, X ~ 1e-57, y ~ 1e-92, α ~ 1e-126: the bound e on V's rounding has
    # entries ~1e-165, whose squares underflow, so NumPy's norm (no rescaling) gave
    # ‖e‖ ≈ 0 and the certified gap 4.3e-210 was below the exact 1.0e-208
    h = float.fromhex
    X = np.array([[h("0x1.2a54521345ce3p-190"), h("0x1.1237f4dbdcdc4p-190")],
                  [h("0x1.e7285e07eb946p-190"), h("0x1.25b4c95688819p-189")]])
    Y = np.array([[h("0x1.86d15424daf57p-306"), h("0x1.c24033d9bcf3cp-306")],
                  [h("-0x1.ddb0bfd728e74p-308"), h("0x1.e0f355d586c5bp-306")]])
    K = np.array([[h("0x1.bd5fc0d0eea2bp-2"), h("0x1.fba581c1b9ea9p-2")],
                  [h("0x1.fba581c1b9ea9p-2"), h("0x1.21501fa01fb48p-1")]])
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), mc.SquaredLoss("sum"),
                      [mc.TaskRelation(K, h("0x1.5a956e225d672p-419")),
                       mc.Ridge(h("0x1.62e6d72d6dfb0p-429"))], fit_intercept=True)
    W = np.array([[h("-0x1.70d5416f2f8e9p-117"), h("0x1.630f5aad103d5p-121")],
                  [h("-0x1.31e03eb6b8a55p-116"), h("0x1.2676135b241a3p-120")]])
    exact = _Exact(prob)
    _assert_valid(prob, [W, exact.W_star], exact)


@pytest.mark.parametrize("term", [mc.GraphLaplacian(np.array([[0.0, 1.0], [1.0, 0.0]]), 10.0),
                                  mc.MeanRegularized(0.01)])
def test_singular_coupling_far_from_an_interpolating_optimum(term):
    # Intercepts and tasks of 1 and 2 rows in d = 2: F* = 0 (exactly), 𝒬 singular, F not
    # strongly convex. At W = 0 the curvature-corrected θ is rounding noise (~1e-19) and
    # its best scale (~1e15) made a dual value of 5e-4 > F*, which fista then kept as its
    # best dual: "optimal" with a certified 3e-16 at a true gap of 2e-4.
    rng = np.random.default_rng(1)
    Xs = [rng.standard_normal((1, 2)), rng.standard_normal((2, 2))]
    ys = [rng.standard_normal(1) + 3.0, rng.standard_normal(2) + 3.0]
    prob = mc.Problem(mc.MultiTaskData(Xs, ys), mc.SquaredLoss("mean"), [term],
                      fit_intercept=True)
    exact = _Exact(prob)
    assert exact.F_star == 0
    for W in (np.zeros((2, 2)), 0.01 * exact.W_star, exact.W_star, 3.0 * exact.W_star):
        cert = mc.certify(prob, W)
        assert Fraction(cert.gap) >= exact.objective(W) - exact.F_star, cert
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        sol = prob.solve(backend="fista", tol=1e-8)
    assert Fraction(sol.certificate.gap) >= exact.objective(sol.W) - exact.F_star, (
        sol.certificate, float(exact.objective(sol.W)))


@pytest.mark.parametrize("layout", ["rows", "shared", "intercepts"])
@pytest.mark.parametrize("scale", [1.0, 2.0 ** -500])
@pytest.mark.parametrize("alpha", [1e-6, 1.0, 1e6])
def test_laplacian_alone_without_strong_convexity_is_never_above_f_star(layout, scale, alpha):
    """A chain ``GraphLaplacian`` alone, T = 4, with a singular Hessian (μ = 0: one row
    per task in d = 5, a shared design of 3 rows in d = 4, centred tasks of 1 to 3 rows):
    the curvature-corrected dual's null components ν are bounded through the modulus the
    loss has on the Laplacian's null space (a proof for any ``W``, in
    ``mtlcvx._quadratic_dual``), not through ``‖W‖``. At ``W = 0`` of these interpolating
    problems (``F* = 0``) the corrected θ is rounding noise and the dual value was above
    ``F*`` (2e-15 of ``F(0)`` at unit scale); at data scaled by ``2⁻⁵⁰⁰`` a conjugate's
    ``Vr²/λ`` and ``‖ν‖`` underflowed to 0 as well. Before, 5 of these 18 cases had a
    dual value above ``F*`` or a gap below the exact one (in rationals; 55 of 648
    certificates over four seeds); none now."""
    rng = np.random.default_rng(int(np.log2(scale)) % 7 + int(np.log10(alpha)) + 7)
    T = 4
    if layout == "shared":
        X, Y = rng.standard_normal((3, 4)) * scale, rng.standard_normal((3, T)) * scale
        data = mc.MultiTaskData.shared(X, Y)
    else:
        sizes = (1, 1, 1, 1) if layout == "rows" else (3, 2, 1, 3)
        d = 5 if layout == "rows" else 2
        Xs = [rng.standard_normal((n, d)) * scale for n in sizes]
        data = mc.MultiTaskData(Xs, [(rng.standard_normal(n) + 3.0) * scale for n in sizes])
    prob = mc.Problem(data, mc.SquaredLoss("sum"),
                      [mc.GraphLaplacian(mc.relations.chain(T, sparse=True), alpha)],
                      fit_intercept=layout == "intercepts")
    assert mc.oracles.deferred_strong_convexity(prob)() == 0.0
    exact = _Exact(prob)
    W_star = exact.W_star
    noise = rng.standard_normal(W_star.shape) * np.abs(W_star).max()
    points = [W_star, np.zeros_like(W_star), 0.5 * W_star, 1.5 * W_star] + [
        W_star + step * noise for step in (1e-12, 1e-8, 1e-4, 1e-1, 1e3)]
    methods = _assert_valid(prob, points, exact)
    assert "curvature-corrected quadratic conjugate (rung 4)" in methods, methods


# ------------------------------------------------- the gradient bound taken with a tolerance
STRONG = "gradient norm + strong convexity of the quadratic terms (rung 5)"
STRONG_LOSS = "gradient norm + strong convexity of the loss and the quadratic terms (rung 5)"


@pytest.mark.parametrize("kind", ["cancel", "mixed", "sparse", "two", "feature", "factor"])
@pytest.mark.parametrize("scale", [(1.0, 1.0), (1e-50 * np.pi, 1e40 * np.e),
                                   (1e50 / 3.0, 1e-30), (1e58 / 3.0, 1e-98),
                                   (2.0 ** -300, 2.0 ** -700)])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("shared", [False, True])
def test_gradient_bound_with_a_tolerance_is_never_below_the_exact_gap(rng, kind, scale,
                                                                      weights, shared):
    """With ``tol``, a quadratic problem with positive definite terms is certified by
    ``‖∇F(W)‖²/(2λ)`` plus the objective's rounding when that meets ``tol``: never below
    the exact ``F(W) − F*`` (rationals), at the direct solve's point, the rounded exact
    optimum, and points far from it (where it exceeds any ``tol`` and the ladder answers).
    Both ways of bounding the design's size: from the Gram statistics' diagonals the
    direct solve left on the data, and from the data's own norms (the same problem on a
    fresh copy of the data)."""
    prob = _problem(rng, kind, scale, False, weights, shared=shared)
    exact = _Exact(prob)
    points = _points(rng, prob, exact)  # (the direct solve computes the Gram statistics)
    methods = {"gram": set(), "norms": set()}
    for W in points:
        value = exact.objective(W)
        for tol in (1e-8, 1e6):
            fresh = _fresh(prob)
            assert fresh.data._gram_diagonals() is None
            for route, problem in (("gram", prob), ("norms", fresh)):
                methods[route].add(_checked_certificate(problem, W, tol, value, exact))
    # (elsewhere rung 4 answers: a dense K stored sparse has Gershgorin's λ_min bound 0, and
    # mixed-sign terms that cancel have tighter rung-4 bounds)
    if scale == (1.0, 1.0) and kind == "mixed":
        assert STRONG in methods["gram"] and STRONG in methods["norms"], methods


def _checked_certificate(problem, W, tol, value, exact):
    """``certify(problem, W, tol=tol)``'s method, its gap checked against the exact gap
    ``value − F*`` (``value`` = F(W) in rationals) and, for the gradient bound, the
    objective it reports against ``value``: within its rounding bound."""
    cert = mc.certify(problem, W, tol=tol)
    true = value - exact.F_star
    assert cert.gap is not None and np.isfinite(cert.gap), cert
    assert Fraction(cert.gap) >= true, (cert, float(true))
    if cert.method in (STRONG, STRONG_LOSS):
        assert cert.rounding <= cert.gap
        assert abs(Fraction(cert.objective) - value) <= Fraction(cert.rounding), cert
    return cert.method


def _fresh(prob):
    """``prob`` on a fresh copy of its data (no solver statistics computed)."""
    data = prob.data
    fresh = (mc.MultiTaskData.shared(data.X[0], data.shared_targets()) if data.is_shared
             else mc.MultiTaskData(list(data.X), list(data.y)))
    return mc.Problem(fresh, prob.loss, prob.penalties, fit_intercept=prob.fit_intercept)


@pytest.mark.parametrize("kind", ["chain", "lowrank", "mixed", "feature"])
@pytest.mark.parametrize("scale", [(1.0, 1.0), (1e-50 * np.pi, 1e40 * np.e),
                                   (1e50 / 3.0, 1e-30), (2.0 ** -300, 2.0 ** -700)])
@pytest.mark.parametrize("weights", [False, True])
def test_gradient_bound_from_equal_sized_tasks_grams(rng, kind, scale, weights):
    """Tasks of one size (the residuals and the gradient in batched products, the design's
    size from the Gram statistics' diagonals): the certificate never below the exact gap,
    its objective within its rounding bound."""
    T, d, n = 4, 3, 5
    xs, ys = scale
    data = mc.MultiTaskData([rng.standard_normal((n, d)) * xs for _ in range(T)],
                            [(rng.standard_normal(n) + 2.0) * ys for _ in range(T)])
    alpha = xs * xs
    terms = {"chain": lambda: [mc.GraphLaplacian(mc.relations.chain(T, sparse=True),
                                                 np.pi * alpha), mc.Ridge(0.1 * alpha)],
             "lowrank": lambda: [mc.TaskRelation.from_factor(  # K = ZZᵀ + ridge·I, a factor
                 rng.standard_normal((T, 2)) * np.e, ridge=0.1, alpha=alpha)],
             }.get(kind, lambda: _coupling(rng, kind, d, T, alpha))()
    loss = mc.SquaredLoss("mean", task_weights=[0.3, 2.0, 1.0, 0.7]) if weights else \
        mc.SquaredLoss("sum")  # (unit weights: the residuals' products unscaled)
    prob = mc.Problem(data, loss, terms)
    exact = _Exact(prob)
    points = _points(rng, prob, exact)
    assert prob.data._gram_diagonals() is not None
    methods = [_checked_certificate(prob, W, 1e-8, exact.objective(W), exact) for W in points]
    # (the dense terms' magnitude bounds may send it to rung 4; at 2⁻³⁰⁰ the losses, below
    # 2⁻¹⁰⁷⁴, are lost to underflow)
    if kind in ("chain", "lowrank") and xs > 1e-60:
        assert methods[:2] == [STRONG, STRONG], methods  # the rounded optimum, the solve's


def test_direct_solve_takes_the_gradient_bound_and_certify_without_tol_the_dual():
    rng = np.random.default_rng(3)
    T, d = 30, 4
    data = mc.MultiTaskData([rng.standard_normal((8, d)) for _ in range(T)],
                            [rng.standard_normal(8) for _ in range(T)])
    prob = mc.Problem(data, mc.SquaredLoss("sum"),
                      [mc.GraphLaplacian(mc.relations.chain(T, sparse=True), 1.0),
                       mc.Ridge(0.1)])
    sol = prob.solve(backend="direct", tol=1e-8)
    assert sol.status == "optimal" and sol.certificate.method == STRONG
    # against the dual route on the same point (an independent bound): both hold the exact
    # gap, which is at the rounding level here, and both are at that level
    ladder = mc.certify(prob, sol.W)
    assert ladder.method.startswith("quadratic conjugate")
    assert sol.certificate.relative_gap < 1e-12 and ladder.relative_gap < 1e-12
    assert sol.objective == pytest.approx(prob.objective(sol.W), rel=1e-14)
    # far from the optimum the gradient bound misses a tight tol: the ladder answers
    far = mc.certify(prob, sol.W + 0.1, tol=1e-8)
    assert far.method.startswith("quadratic conjugate")


def _layout_data(rng, layout, scale, d, T):
    xs, ys = scale
    if layout == "shared":
        return mc.MultiTaskData.shared(rng.standard_normal((6, d)) * xs,
                                       (rng.standard_normal((6, T)) + 2.0) * ys)
    ns = (5,) * T if layout == "equal" else (5, 2, 4, 3)
    return mc.MultiTaskData([rng.standard_normal((n, d)) * xs for n in ns],
                            [(rng.standard_normal(n) + 2.0) * ys for n in ns])


def _edge_problem(rng, layout, case, scale):
    """T = 4, d = 3 on ``layout`` (:func:`_layout_data`): a factor-given term with a task of
    weight 0 and a chain ("zero weight"), a factor of 9 > d + 3 columns ("wide factor"), or
    a factor beside a feature-side term ("factor+feature")."""
    T, d = 4, 3
    data = _layout_data(rng, layout, scale, d, T)
    alpha = scale[0] ** 2
    z = rng.standard_normal((T, 9 if case == "wide factor" else 2)) * np.pi
    terms = [mc.TaskRelation.from_factor(z, ridge=0.1, alpha=alpha)]
    if case == "zero weight":
        terms.append(mc.GraphLaplacian(mc.relations.chain(T, sparse=True), np.e * alpha))
    elif case == "factor+feature":
        terms.append(mc.FeatureRelation(np.full((d, d), -0.4) + 1.7 * np.eye(d), alpha))
    loss = mc.SquaredLoss("mean", task_weights=[0.0, 2.0, 1.0, 0.7]) if case == "zero weight" \
        else mc.SquaredLoss("sum")
    return mc.Problem(data, loss, terms)


@pytest.mark.parametrize("layout", ["shared", "equal", "unequal"])
@pytest.mark.parametrize("case", ["zero weight", "wide factor", "factor+feature"])
@pytest.mark.parametrize("scale", [(1.0, 1.0), (1e-50 * np.pi, 1e40 * np.e),
                                   (2.0 ** -300, 2.0 ** -700)])
def test_gradient_bound_zero_weights_wide_factors_and_factor_beside_feature(rng, layout,
                                                                           case, scale):
    """The gradient certificate where the other audits do not reach, on every data layout:
    a task of weight ``c_t = 0`` (its residual counts in neither the loss nor the gradient),
    a factor wider than ``d + 3`` columns (``WR``'s ``T`` products then ``(WR)Rᵀ``'s ``p``)
    and a factor-given term beside a feature-side term: never below the exact gap
    (rationals), its objective within its rounding bound."""
    prob = _edge_problem(rng, layout, case, scale)
    exact = _Exact(prob)
    methods = []
    for W in _points(rng, prob, exact):
        value = exact.objective(W)
        for problem in (prob, _fresh(prob)):  # the Gram statistics' diagonals, the norms
            methods.append(_checked_certificate(problem, W, 1e-8, value, exact))
    if scale[0] > 1e-60:  # (at 2⁻³⁰⁰ the losses, below 2⁻¹⁰⁷⁴, are lost to underflow)
        assert STRONG in methods[:4], methods  # the rounded optimum, the solve's


def _exact_gradients(exact, W):
    """``f(W)``, ``∇f(W)`` and ``∇h(W) = WK_t + K_fW`` in rationals (d × T lists)."""
    d, T = exact.d, exact.T
    Wf = [[Fraction(v) for v in row] for row in W.tolist()]
    loss, grad_f = Fraction(0), [[Fraction(0)] * T for _ in range(d)]
    for t in range(T):
        for row, y in zip(exact.Xs[t], exact.ys[t], strict=True):
            r = sum(a * Wf[i][t] for i, a in enumerate(row)) - y
            loss += exact.c[t] * r * r / 2
            for i, a in enumerate(row):
                grad_f[i][t] += exact.c[t] * a * r
    grad_h = [[sum(Wf[i][s] * exact.Kt[s][t] for s in range(T))
               + sum(exact.Kf[i][j] * Wf[j][t] for j in range(d)) for t in range(T)]
              for i in range(d)]
    return loss, grad_f, grad_h


def _distance_squared(computed, exact):
    return sum((Fraction(v) - e) ** 2 for row, erow in zip(computed.tolist(), exact, strict=True)
               for v, e in zip(row, erow, strict=True))


@pytest.mark.parametrize("layout", ["shared", "equal", "unequal"])
@pytest.mark.parametrize("case", ["zero weight", "wide factor", "factor+feature"])
@pytest.mark.parametrize("scale", [(1.0, 1.0), (1e50 / 3.0, 1e-30), (2.0 ** -300, 2.0 ** -700)])
def test_gradient_bound_parts_hold_in_rationals(rng, layout, case, scale):
    """Each part of the gradient certificate's bound against its exact value (the gap's
    check elsewhere can hardly see the gradient's: it enters squared): the loss's value and
    gradient from the residuals, ``|f̂ − f(W)| ≤ E_f`` and ``‖∇̂f − ∇f(W)‖_F ≤ E_∇f``, both
    with the design's size from the Gram statistics' diagonals and from the data's norms;
    and the merged coupling's ``‖Ĥ − ∇h(W)‖_F ≤ E_h``."""
    from mtlcvx import oracles
    from mtlcvx._rounding import Rounding, norm_up
    from mtlcvx.certificates import _h_gradient, _residual_loss

    prob = _edge_problem(rng, layout, case, scale)
    exact = _Exact(prob)
    Kt, Kf = oracles.coupling(prob)
    for W in _points(rng, prob, exact):  # (the direct solve leaves the Gram statistics)
        value, grad_f, grad_h = _exact_gradients(exact, W)
        for problem in (prob, _fresh(prob)):
            part = _residual_loss(problem, W)
            assert abs(Fraction(part.value) - value) <= Fraction(part.error)
            assert _distance_squared(part.gradient, grad_f) <= Fraction(part.gradient_error) ** 2
        e_h = Rounding(prob, W, None).quadratic_gradient_norm_error(norm_up(W))
        assert _distance_squared(_h_gradient(Kt, Kf, W), grad_h) <= Fraction(e_h) ** 2


@pytest.mark.parametrize("kind", ["cancel", "mixed", "sparse", "two", "feature", "factor"])
@pytest.mark.parametrize("scale", [(1.0, 1.0), (1e-50 * np.pi, 1e40 * np.e),
                                   (1e58 / 3.0, 1e-98), (2.0 ** -300, 2.0 ** -700)])
def test_coupling_gradient_bounds_hold_in_rationals(rng, kind, scale):
    """The merged coupling's ``∇h(W)`` within its bounds of the exact ``WK_t + K_fW`` on
    the audit's terms (mixed signs that cancel, a dense ``K`` stored sparse and read as a
    band, whose ``|K|`` row sums come from its largest entry per lag, a feature side, a
    factor): in norm (:meth:`quadratic_gradient_norm_error`, the gradient certificate's
    ``E_h``) and entry by entry (:meth:`quadratic_gradient_error`)."""
    from mtlcvx import oracles
    from mtlcvx._rounding import Rounding, norm_up
    from mtlcvx.certificates import _h_gradient

    prob = _problem(rng, kind, scale, False, False)
    exact = _Exact(prob)
    Kt, Kf = oracles.coupling(prob)
    for W in _points(rng, prob, exact):
        grad_h = _exact_gradients(exact, W)[2]
        H = _h_gradient(Kt, Kf, W)
        bound = Rounding(prob, W, None)
        assert _distance_squared(H, grad_h) <= Fraction(
            bound.quadratic_gradient_norm_error(norm_up(W))) ** 2
        entry = bound.quadratic_gradient_error()
        assert all(abs(Fraction(h) - e) <= Fraction(b) for hrow, erow, brow in zip(
            H.tolist(), grad_h, entry.tolist(), strict=True)
            for h, e, b in zip(hrow, erow, brow, strict=True))


def test_coupling_gradient_bound_through_a_wide_factor():
    """``(WR)Rᵀ`` sums ``T`` products, then ``p``: with ``R``'s rows ``[1, 2⁻²⁷, …, 2⁻²⁷]``
    each ``2⁻⁵⁴`` added to 1 rounds away, so the computed ``∇h`` is off by about ``pε/4`` of
    ``|W||R||R|ᵀ`` (above ``γ_{d+T+3}`` once ``p`` is large): the entrywise bound and the
    norm bound against the exact ``WRRᵀ`` in rationals."""
    from mtlcvx import oracles
    from mtlcvx._rounding import Rounding, norm_up
    from mtlcvx.certificates import _h_gradient

    T, d, p = 2, 1, 2000
    R = np.full((T, p), 2.0 ** -27)
    R[:, 0] = 1.0
    data = mc.MultiTaskData([np.ones((2, d))] * T, [np.ones(2)] * T)
    prob = mc.Problem(data, mc.SquaredLoss("sum"), [mc.TaskRelation.from_factor(R, ridge=0.0)])
    W = np.ones((d, T))
    H = _h_gradient(*oracles.coupling(prob), W)
    exact = Fraction(1) + (p - 1) * Fraction(2) ** -54  # every entry of RRᵀ, W = 1
    bound = Rounding(prob, W, None)
    entry = bound.quadratic_gradient_error()
    assert all(abs(Fraction(h) - T * exact) <= Fraction(b)
               for h, b in zip(H.ravel().tolist(), entry.ravel().tolist(), strict=True))
    assert sum((Fraction(h) - T * exact) ** 2 for h in H.ravel().tolist()) <= Fraction(
        bound.quadratic_gradient_norm_error(norm_up(W))) ** 2


@pytest.mark.parametrize("layout", ["shared", "equal", "unequal"])
@pytest.mark.parametrize("scale", [(1.0, 1.0), (1e-50 * np.pi, 1e40 * np.e),
                                   (1e50 / 3.0, 1e-30), (2.0 ** -300, 2.0 ** -700)])
@pytest.mark.parametrize("weights", [False, True])
def test_gradient_bound_from_the_loss_curvature_for_a_laplacian_alone(rng, layout, scale,
                                                                      weights):
    """A graph Laplacian alone (``λ_min`` 0: no ridge) on tasks that pin their weights down
    (every ``n_t ≥ d = 2``): ``F`` is ``μ``-strongly convex with ``μ = min_t
    c_tλ_min(X_tᵀX_t)``, and the gradient bound with that ``μ`` is never below the exact
    gap, from the Gram statistics the direct solve left and on a fresh copy of the data; its
    objective within its rounding bound; at unit scale it is the certificate taken."""
    T, d = 4, 2
    data = _layout_data(rng, layout, scale, d, T)
    loss = mc.SquaredLoss("mean", task_weights=[0.3, 2.0, 1.0, 0.7]) if weights else \
        mc.SquaredLoss("sum")
    prob = mc.Problem(data, loss, [mc.GraphLaplacian(mc.relations.chain(T, sparse=True),
                                                     np.e * scale[0] ** 2)])
    exact = _Exact(prob)
    points = _points(rng, prob, exact)
    methods = set()
    for W in points:
        value = exact.objective(W)
        for problem in (prob, _fresh(prob)):
            methods.add(_checked_certificate(problem, W, 1e-8, value, exact))
    if scale == (1.0, 1.0):
        assert STRONG_LOSS in methods, methods
