"""What fista's checks cost, and that the cheaper evaluations stay valid bounds.

Spectral norms rounded up (checked against exact rank-one values and LAPACK's SVD), and
the check schedule predicted from the gaps' linear rate (closed forms).
"""

from __future__ import annotations

import numpy as np
import pytest

import mtlcvx as mc
from mtlcvx import first_order
from mtlcvx._linalg import spectral_norm_bound


@pytest.mark.parametrize("shape", [(40, 120), (120, 40), (7, 1), (1, 9), (30, 30)])
def test_spectral_norm_bound_is_above_the_svd_and_tight(rng, shape):
    V = rng.standard_normal(shape)
    exact = np.linalg.svd(V, compute_uv=False)[0]
    bound = spectral_norm_bound(V)
    assert exact <= bound <= exact * (1 + 1e-9)


def test_spectral_norm_bound_of_an_exact_rank_one_matrix():
    u, v = np.arange(1.0, 6.0), np.array([2.0, -1.0, 2.0])  # ‖u‖ = √55, ‖v‖ = 3
    bound = spectral_norm_bound(np.outer(u, v))
    assert 3.0 * np.sqrt(55.0) <= bound <= 3.0 * np.sqrt(55.0) * (1 + 1e-12)
    assert spectral_norm_bound(np.zeros((3, 0))) == 0.0


def test_next_check_follows_the_linear_rate():
    # gaps 1e-3 at 10 and 1e-6 at 20 fall 0.3 decades per iteration, so 1e-8 comes
    # 2/0.3 = 6.7 iterations after 20: the check at 27, predicted to certify
    assert first_order._next_check(20, 10, [(10, 1e-3), (20, 1e-6)], 1e-8) == (27, True)
    # too slow to land before the regular check (every k // 10 = 10 iterations later)
    assert first_order._next_check(20, 10, [(10, 1e-3), (20, 1e-4)], 1e-8) == (30, False)
    # a gap that grew, or a single gap: the regular schedule
    assert first_order._next_check(20, 10, [(10, 1e-5), (20, 1e-4)], 1e-8) == (30, False)
    assert first_order._next_check(10, 10, [(10, 1e-5)], 1e-8) == (20, False)


def test_fista_checks_skip_the_gradient_mapping_but_certify(rng):
    # ½‖W − Y‖² + 2‖W‖_* (identity design): W* is Y's singular values shrunk by 2
    Y = rng.standard_normal((6, 5)) * 2
    prob = mc.Problem(mc.MultiTaskData.shared(np.eye(6), Y), mc.SquaredLoss("sum"),
                      [mc.TraceNorm(2.0)])
    s = np.linalg.svd(Y, compute_uv=False)
    F_star = 0.5 * float(np.sum(np.minimum(s, 2.0) ** 2)) + 2.0 * float(
        np.maximum(s - 2.0, 0.0).sum())
    trace = first_order.fista(prob, tol=1e-9)
    assert trace.converged and trace.certificate.relative_gap <= 1e-9
    assert trace.certificate.grad_mapping is None
    assert -1e-13 * F_star <= trace.certificate.objective - F_star <= trace.certificate.gap
    assert mc.certify(prob, trace.W).grad_mapping is not None


def _longdouble_loss(X, Y, W, c):
    R = X.astype(np.longdouble) @ W.astype(np.longdouble) - Y.astype(np.longdouble)
    return float(np.sum(c.astype(np.longdouble) * np.sum(R * R, axis=0)) / 2)


@pytest.mark.parametrize("loss, pen", [
    (mc.SquaredLoss(), mc.L21(0.05)),
    (mc.SquaredLoss("sum", task_weights=[1.0, 0.5, 0.0, 2.0]), mc.TraceNorm(3.0)),
])
def test_gram_route_certificate_bounds_the_true_gap(rng, loss, pen):
    """The Gram route (no residuals): its loss is within its rounding bound of the loss in
    extended precision, its gap within its share of the residual route's, and never below
    the true suboptimality against an independent Clarabel optimum."""
    from mtlcvx import certificates

    X = rng.standard_normal((80, 6))
    Y = X @ rng.standard_normal((6, 4)) + 0.3 * rng.standard_normal((80, 4))
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), loss, penalties=[pen])
    c = prob.loss_weights()
    ref = prob.solve("clarabel", tol=1e-8)
    F_star = min(ref.objective, prob.objective(ref.W))
    W_opt = first_order.fista(prob, tol=1e-11).W
    for delta in (1e-1, 1e-3, 1e-5):
        W = W_opt + delta * rng.standard_normal(W_opt.shape)
        route = certificates._gram_route(prob, W)
        assert route is not None
        loss_error = float(np.sum(route.bound.loss_error(route.bound.losses)))
        assert abs(route.value - _longdouble_loss(X, Y, W, c)) <= loss_error
        gram = certificates._certify(prob, W, None, None, None, False, route, None)
        direct = certificates._certify(prob, W, None, None, None, False, None, None)
        assert gram.objective == pytest.approx(direct.objective, rel=1e-12)
        assert gram.gap <= direct.gap * (1 + 2 * certificates._GRAM_SHARE)
        assert gram.objective - F_star <= gram.gap
        assert gram.rounding <= certificates._GRAM_SHARE * gram.gap


def test_gram_route_only_where_its_bound_holds(rng):
    """No Gram route with intercepts, a rank-deficient design or n < d."""
    from mtlcvx import certificates

    X = rng.standard_normal((30, 4))
    Y = rng.standard_normal((30, 3))
    W = rng.standard_normal((4, 3))
    assert certificates._gram_route(mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[
        mc.L21(0.1)], fit_intercept=True), W) is None
    Xd = np.hstack([X, X[:, :1]])  # a repeated column: XᵀX singular
    assert certificates._gram_route(mc.Problem(mc.MultiTaskData.shared(Xd, Y), penalties=[
        mc.L21(0.1)]), np.vstack([W, W[:1]])) is None
    Xw = rng.standard_normal((3, 5))
    assert certificates._gram_route(mc.Problem(mc.MultiTaskData.shared(Xw, Y[:3]), penalties=[
        mc.L21(0.1)]), rng.standard_normal((5, 3))) is None


def test_gram_route_falls_back_to_the_residuals(rng, monkeypatch):
    """Where the Gram route's rounding bound exceeds its share of the gap (share 0 here),
    the certificate is the one computed on the residuals, unless the Gram route's gap is
    smaller still; both bound the suboptimality against an independent Clarabel optimum."""
    from mtlcvx import certificates

    X = rng.standard_normal((40, 5))
    Y = X @ rng.standard_normal((5, 3)) + 0.1 * rng.standard_normal((40, 3))
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[mc.L21(0.01)])
    W = first_order.fista(prob, tol=1e-6).W
    direct = certificates._certify(prob, W, None, None, None, True, None, None)
    monkeypatch.setattr(certificates, "_GRAM_SHARE", 0.0)
    with pytest.raises(certificates._CoarseRoute) as coarse:
        certificates._certify(prob, W, None, None, None, True,
                              certificates._gram_route(prob, W), None)
    gram = coarse.value.args[0]
    best = gram if gram.gap < direct.gap else direct
    assert mc.certify(prob, W) == best
    # the Gram route's gap is kept when it meets what the caller needs (fista's tol)
    assert mc.certify(prob, W, tol=1e-16) == best
    met = mc.certify(prob, W, tol=1.0)
    assert met == gram and met.objective == pytest.approx(direct.objective, rel=1e-12)
    ref = prob.solve("clarabel", tol=1e-8)
    f_star = min(ref.objective, prob.objective(ref.W))
    assert min(met.gap, direct.gap) >= met.objective - f_star


@pytest.mark.parametrize("seed", range(4))
def test_gram_route_on_badly_scaled_designs_stays_above_the_true_gap(seed):
    """Columns scaled over 1e-2..1e2 and n close to d: wherever the Gram route is taken
    (with tol it is kept when it meets it) the gap bounds the true suboptimality against
    an independent Clarabel optimum, at and near fista's point."""
    from mtlcvx import certificates

    rng = np.random.default_rng(100 + seed)
    n, d, T = rng.integers(9, 14), 8, 3
    X = rng.standard_normal((n, d)) * np.logspace(-2, 2, d)[rng.permutation(d)]
    Y = X @ rng.standard_normal((d, T)) * 0.1 + rng.standard_normal((n, T))
    pen = mc.L21(0.3) if seed % 2 else mc.TraceNorm(0.3)
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[pen])
    ref = prob.solve("clarabel", tol=1e-8)
    F_star = min(ref.objective, prob.objective(ref.W))
    W = first_order.fista(prob, tol=1e-7, max_iter=200_000).W
    assert certificates._gram_route(prob, W) is not None
    for delta in (0.0, 1e-6, 1e-3):
        Wp = W + delta * rng.standard_normal(W.shape)
        for tol in (None, 1e-8, 1.0):
            cert = mc.certify(prob, Wp, tol=tol)
            assert cert.objective - F_star <= cert.gap
