"""Regularization paths and cross-validation, checked against scikit-learn and hand loops."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from sklearn.linear_model import Lasso, MultiTaskLasso
from sklearn.metrics import explained_variance_score, mean_squared_error, r2_score
from sklearn.model_selection import KFold

import mtlcvx as mc
from mtlcvx.certificates import _use_shift, certify_path


def _shared(rng, n=60, d=8, T=4):
    X = rng.normal(size=(n, d))
    W = np.zeros((d, T))
    W[:3] = rng.normal(size=(3, T))
    Y = X @ W + 0.5 * rng.normal(size=(n, T)) + 2.0
    return X, Y


def _unequal(rng, T=3, d=5):
    Xs = [rng.normal(size=(20 + 7 * t, d)) for t in range(T)]
    w = rng.normal(size=d)
    ys = [X @ (w + 0.3 * rng.normal(size=d)) + rng.normal(size=len(X)) for X in Xs]
    return mc.MultiTaskData(Xs, ys)


# ----------------------------------------------------------------------------- paths
def test_l21_path_matches_sklearn_multitask_lasso(rng):
    X, Y = _shared(rng)
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[mc.L21(alpha=0.7)],
                      fit_intercept=True)
    path = mc.regularization_path(prob, n_alphas=8)
    assert path.backend == "fista-gram"
    assert prob.penalties[0].alpha == 0.7  # restored
    assert path.W.shape == (8, 8, 4) and path.intercept.shape == (8, 4)
    # default grid: sklearn's alpha_max for MultiTaskLasso, max_j ‖X̃_jᵀỸ‖₂ / n
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    top = np.linalg.norm(Xc.T @ Yc, axis=1).max() / len(X)
    np.testing.assert_allclose(path.alphas, np.geomspace(top, 1e-3 * top, 8), rtol=1e-12)
    assert not path.W[0].any()
    for i, a in enumerate(path.alphas):
        assert path.status[i] == "optimal"
        assert path.certificates[i].relative_gap <= 1e-8
        sk = MultiTaskLasso(alpha=a, tol=1e-14, max_iter=100_000).fit(X, Y)
        prob.penalties[0].alpha = a
        f_sk = prob.objective(sk.coef_.T, sk.intercept_)
        assert abs(path.objective[i] - f_sk) <= 2e-8 * f_sk  # both within the gap
        np.testing.assert_allclose(path.W[i], sk.coef_.T, atol=1e-3)
        np.testing.assert_allclose(path.intercept[i], sk.intercept_, atol=1e-3)


@pytest.mark.parametrize("center", [False, True])
def test_single_precision_iterations_reach_sklearns_objectives(rng, monkeypatch, center):
    """FISTA's products in single precision (large, well-conditioned shared designs; the
    size threshold lowered here): every point still certified, objectives sklearn's."""
    import mtlcvx.path as mp

    monkeypatch.setattr(mp, "_SINGLE_PRODUCT", 0)
    X, Y = _shared(rng, n=200, d=30, T=5)
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[mc.L21()],
                      fit_intercept=center)
    assert mp._GramRoute(prob, prob.penalties[0]).G_single is not None
    lasso = mc.Problem(prob.data, penalties=[mc.L1()])  # no polish: double precision
    assert mp._GramRoute(lasso, lasso.penalties[0]).G_single is None
    path = mc.regularization_path(prob, n_alphas=10)
    for i, a in enumerate(path.alphas):
        assert path.status[i] == "optimal"
        sk = MultiTaskLasso(alpha=a, fit_intercept=center, tol=1e-14, max_iter=100_000)
        sk.fit(X, Y)
        prob.penalties[0].alpha = a
        f_sk = prob.objective(sk.coef_.T, sk.intercept_ if center else None)
        assert abs(path.objective[i] - f_sk) <= 2e-8 * f_sk


def test_gram_route_with_a_prox_that_returns_its_argument(rng, monkeypatch):
    """A term whose prox shrinks its argument in place and returns it (allowed by the
    protocol) must not have its result overwritten by FISTA's next step: objectives
    sklearn's, with and without screening and single precision, and the iterations those
    of L21's own prox (the same arithmetic; overwritten iterates need many more)."""
    import mtlcvx.path as mp
    from mtlcvx.penalties._prox import row_norms

    class InPlaceL21(mc.L21):
        def prox(self, V, step):
            t = step * self.alpha
            V *= np.maximum(1.0 - t / np.maximum(row_norms(V), t), 0.0)[:, None]
            return V

    monkeypatch.setattr(mp, "_SINGLE_PRODUCT", 0)
    X, Y = _shared(rng, n=200, d=30, T=5)
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[InPlaceL21()])
    assert mp._GramRoute(prob, prob.penalties[0]).G_single is not None
    path = mc.regularization_path(prob, n_alphas=10)
    assert path.backend == "fista-gram" and path.info["screened"].max() > 0
    stock = mc.regularization_path(mc.Problem(prob.data, penalties=[mc.L21()]), n_alphas=10)
    np.testing.assert_array_equal(path.info["iterations"], stock.info["iterations"])
    for i, a in enumerate(path.alphas):
        assert path.status[i] == "optimal"
        sk = MultiTaskLasso(alpha=a, fit_intercept=False, tol=1e-14,
                            max_iter=100_000).fit(X, Y)
        prob.penalties[0].alpha = a
        f_sk = prob.objective(sk.coef_.T)
        assert abs(path.objective[i] - f_sk) <= 2e-8 * f_sk


def test_single_precision_only_for_well_conditioned_designs(rng, monkeypatch):
    """The gate reads κ(XᵀX) (compared here with NumPy's condition number), and a design
    let through against it (bound raised) falls back to double precision: every point
    certified all the same."""
    import mtlcvx.path as mp

    monkeypatch.setattr(mp, "_SINGLE_PRODUCT", 0)
    X, Y = _shared(rng, n=200, d=30, T=5)
    X[:, 1] = X[:, 0] + 1e-3 * X[:, 1]  # nearly collinear: κ about 1e7
    kappa = np.linalg.cond(X.T @ X)
    assert kappa * np.sqrt(30) * 2.0 ** -24 > mp._SINGLE_ROUNDING
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[mc.L21()])
    assert mp._GramRoute(prob, prob.penalties[0]).G_single is None
    monkeypatch.setattr(mp, "_SINGLE_ROUNDING", 1e9)
    assert mp._GramRoute(prob, prob.penalties[0]).G_single is not None
    flags = []  # (single asked, single at the end) per point, in solve order
    solve = mp._GramRoute.solve

    def spy(self, *args, **kwargs):
        out = solve(self, *args, **kwargs)
        flags.append((kwargs["single"], out[-1]))
        return out

    monkeypatch.setattr(mp._GramRoute, "solve", spy)
    path = mc.regularization_path(prob, n_alphas=10)
    assert all(s == "optimal" for s in path.status)
    # the first point with many iterations falls back, and the rest of the path follows
    fell = next(i for i, (asked, kept) in enumerate(flags) if asked and not kept)
    assert all(asked for asked, _ in flags[:fell + 1])
    assert not any(asked for asked, _ in flags[fell + 1:])
    for i, a in enumerate(path.alphas):
        sk = MultiTaskLasso(alpha=a, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X, Y)
        prob.penalties[0].alpha = a
        f_sk = prob.objective(sk.coef_.T)
        assert abs(path.objective[i] - f_sk) <= 2e-8 * f_sk


def test_l1_path_is_one_lasso_per_task(rng):
    X, Y = _shared(rng, T=3)
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[mc.L1()])
    alphas = [0.3, 0.1, 0.03, 0.01]
    path = mc.regularization_path(prob, alphas=alphas)
    for i, a in enumerate(alphas):
        for t in range(3):
            sk = Lasso(alpha=a, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X, Y[:, t])
            np.testing.assert_allclose(path.W[i][:, t], sk.coef_, atol=1e-4)


def test_alphas_returned_in_given_order_and_explicit_backend(rng):
    data = _unequal(rng)
    prob = mc.Problem(data, penalties=[mc.L21(alpha=0.05)], fit_intercept=True)
    alphas = [0.01, 0.2, 0.05]
    fast = mc.regularization_path(prob, alphas=alphas)
    assert fast.backend == "fista-gram"  # one Gram matrix per task
    conic = mc.regularization_path(prob, alphas=alphas, backend="clarabel")
    assert conic.backend == "clarabel"
    # independent CVXPY model of each point
    for i, a in enumerate(alphas):
        W = cp.Variable((5, 3))
        b = cp.Variable(3)
        loss = sum(cp.sum_squares(X @ W[:, t] + b[t] - y) / (2 * len(y))
                   for t, (X, y) in enumerate(zip(data.X, data.y, strict=True)))
        ref = cp.Problem(cp.Minimize(loss + a * cp.mixed_norm(W, 2, 1)))
        ref.solve(solver="CLARABEL")
        assert abs(fast.objective[i] - ref.value) <= 1e-7 * ref.value
        assert abs(conic.objective[i] - ref.value) <= 1e-7 * ref.value
    assert prob.penalties[0].alpha == 0.05


def test_quadratic_penalty_needs_a_grid_and_uses_the_direct_solve(rng):
    data = _unequal(rng)
    prob = mc.Problem(data, penalties=[mc.Ridge(alpha=1.0)])
    with pytest.raises(mc.MTLError, match="alphas="):
        mc.regularization_path(prob)
    path = mc.regularization_path(prob, alphas=[1.0, 0.1])
    assert path.backend == "direct"
    for i, a in enumerate([1.0, 0.1]):  # closed form per task: (XᵀX/n + αI) w = Xᵀy/n
        for t, (X, y) in enumerate(zip(data.X, data.y, strict=True)):
            w = np.linalg.solve(X.T @ X / len(y) + a * np.eye(5), X.T @ y / len(y))
            np.testing.assert_allclose(path.W[i][:, t], w, rtol=1e-8, atol=1e-10)


def test_trace_norm_default_grid_starts_at_zero(rng):
    X, Y = _shared(rng, d=5, T=4)
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[mc.TraceNorm()])
    top = np.linalg.norm(X.T @ Y / len(X), 2)  # spectral norm of the gradient at 0
    assert mc.alpha_max(prob) == pytest.approx(top, rel=1e-12)
    path = mc.regularization_path(prob, n_alphas=3, eps=0.1)
    assert not path.W[0].any() and path.W[1].any()
    assert all(s == "optimal" for s in path.status)


def test_gram_route_screens_safely_with_task_weights(rng):
    X, Y = _shared(rng, n=80, d=12, T=3)
    loss = mc.SquaredLoss(task_weights=[1.0, 3.0, 0.5])  # unequal c_t enter the sphere radius
    for pen in (mc.L21(), mc.L1()):
        prob = mc.Problem(mc.MultiTaskData.shared(X, Y), loss, [pen], fit_intercept=True)
        path = mc.regularization_path(prob, n_alphas=5, eps=0.01, progress=True)
        assert path.backend == "fista-gram" and path.info["screened"][1:3].max() > 0.5
        for i, a in enumerate(path.alphas):  # an independent CVXPY model of each point
            W, b = cp.Variable((12, 3)), cp.Variable(3)
            fit = sum(w / (2 * len(X)) * cp.sum_squares(X @ W[:, t] + b[t] - Y[:, t])
                      for t, w in enumerate([1.0, 3.0, 0.5]))
            reg = cp.mixed_norm(W, 2, 1) if pen.separable == "rows" else cp.sum(cp.abs(W))
            ref = cp.Problem(cp.Minimize(fit + a * reg))
            ref.solve(solver="CLARABEL")
            assert path.objective[i] == pytest.approx(ref.value, rel=1e-7)
            np.testing.assert_allclose(path.W[i], W.value, atol=2e-4)


@pytest.mark.parametrize("shared", [True, False])
def test_polished_point_meets_stationarity_and_has_a_second_order_gap(rng, shared):
    """The Gram route's polish: on the support and row directions of a point it solves
    c_t X̃ᵀ(X̃ w_t − ỹ_t) + α u_t = 0 (checked on the raw data), and its certified gap is
    second order in the directions' error, against Clarabel's optimum."""
    weights = [1.0, 3.0, 0.5]
    if shared:
        X, Y = _shared(rng, n=80, d=12, T=3)
        data = mc.MultiTaskData.shared(X, Y)
    else:
        data = mc.MultiTaskData([rng.normal(size=(40 + 5 * t, 6)) for t in range(3)],
                                [rng.normal(size=40 + 5 * t) for t in range(3)])
    d = data.n_features
    prob = mc.Problem(data, mc.SquaredLoss(task_weights=weights), [mc.L21()],
                      fit_intercept=True)
    alpha = prob.penalties[0].alpha = 0.3 * mc.alpha_max(prob)
    W, b = cp.Variable((d, 3)), cp.Variable(3)
    fit = sum(w / (2 * len(y)) * cp.sum_squares(Xt @ W[:, t] + b[t] - y)
              for t, (w, Xt, y) in enumerate(zip(weights, data.X, data.y, strict=True)))
    ref = cp.Problem(cp.Minimize(fit + alpha * cp.mixed_norm(W, 2, 1)))
    ref.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    Wstar = np.where(np.linalg.norm(W.value, axis=1, keepdims=True) > 1e-6, W.value, 0.0)
    S = np.flatnonzero(np.any(Wstar != 0, axis=1))
    assert 0 < S.size < d
    route = mc.path._GramRoute(prob, prob.penalties[0])
    gaps = []
    for eps in (1e-2, 1e-3):
        Wp = Wstar * (1 + eps * rng.normal(size=Wstar.shape))  # same support, turned rows
        P = route._polish(Wp, np.zeros_like(Wp), np.ones(d, dtype=bool), alpha)[0]
        assert np.array_equal(np.flatnonzero(np.any(P != 0, axis=1)), S)
        U = Wp[S] / np.linalg.norm(Wp[S], axis=1, keepdims=True)
        for t, (Xt, y) in enumerate(zip(data.X, data.y, strict=True)):
            Xc, yc = Xt - Xt.mean(0), y - y.mean()
            grad = weights[t] / len(y) * Xc.T @ (Xc @ P[:, t] - yc)
            np.testing.assert_allclose(grad[S] + alpha * U[:, t], 0.0, atol=1e-12)
        cert_p, cert_w = mc.certify(prob, P), mc.certify(prob, Wp)
        assert cert_p.objective - ref.value <= cert_p.gap + 1e-9 * abs(ref.value)
        assert cert_p.gap < 0.2 * cert_w.gap
        gaps.append(cert_p.gap)
    assert gaps[1] < 0.05 * gaps[0]  # ten times smaller errors: ≥ 20× smaller gap
    # a support row missing from the point enters along its dual direction V_j/‖V_j‖
    Wp = Wstar * (1 + 1e-3 * rng.normal(size=Wstar.shape))
    small = S[np.argmin(np.linalg.norm(Wstar[S], axis=1))]
    Wp[small] = 0.0
    view = (np.ones(d, dtype=bool), route.G, route.B)
    V = route._gap(Wp, route._product(Wp, view), alpha)[3]
    assert np.linalg.norm(V[small]) > alpha  # it violates its dual constraint
    P = route._polish(Wp, V, view[0], alpha)[0]
    assert np.array_equal(np.flatnonzero(np.any(P != 0, axis=1)), S)
    assert mc.certify(prob, P).gap < 0.5 * mc.certify(prob, Wp).gap
    # over half the rows on the support: G P comes with the point, from the equations
    # solved on S and a product off S; against the centred raw data's X̃ᵀX̃ P
    Wh = rng.normal(size=(d, 3))
    Wh[: d // 3] = 0.0
    P, GP = route._polish(Wh, np.zeros_like(Wh), np.ones(d, dtype=bool), alpha)
    for t, Xt in enumerate(data.X):
        Xc = Xt - Xt.mean(0)
        np.testing.assert_allclose(GP[:, t], Xc.T @ (Xc @ P[:, t]), rtol=1e-9,
                                   atol=1e-9 * np.abs(Xc.T @ Xc).sum())


def test_polish_extends_the_factor_of_a_support_it_grows_from(rng, monkeypatch):
    """A support holding an earlier one (at least half its size) extends that Cholesky
    factor by a block (its rows then in another order; large supports only, here every
    size); the support of every row keeps G⁻¹ instead: the polished points still solve
    c X̃ᵀ(X̃ w_t − ỹ_t) + α u_t = 0 on S, and G W̃ is X̃ᵀX̃ W̃, both on the raw data."""
    monkeypatch.setattr(mc.path, "_EXTEND_ROWS", 0)
    X, Y = _shared(rng, n=80, d=12, T=3)
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[mc.L21()], fit_intercept=True)
    alpha = 0.1 * mc.alpha_max(prob)
    route = mc.path._GramRoute(prob, prob.penalties[0])
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    act = np.ones(12, dtype=bool)
    for first in (6, 3, 0):  # rows 6-11 factored, then extended by rows 3-5 and by 0-2
        S = np.arange(first, 12)
        W = rng.normal(size=(12, 3))
        W[:first] = 0.0
        P, GP = route._polish(W, np.zeros_like(W), act, alpha)
        entry = route._factors[S.tobytes()]
        assert np.array_equal(np.sort(entry.order), S)
        assert entry.inverse == (first == 0)
        # an extension's rows come in the order old, new
        assert (first == 6 or entry.inverse) == np.array_equal(entry.order, S)
        U = W[S] / np.linalg.norm(W[S], axis=1, keepdims=True)
        grad = Xc.T @ (Xc @ P - Yc) / len(X)
        np.testing.assert_allclose(grad[S] + alpha * U, 0.0, atol=1e-12)
        assert not P[:first].any()
        np.testing.assert_allclose(GP, Xc.T @ (Xc @ P), rtol=1e-9, atol=1e-9 * np.abs(Xc).sum())


def test_warm_start_prediction_is_exact_for_a_parabola_in_alpha(rng):
    C = rng.normal(size=(3, 5, 3))
    C[:, 1] = 0.0  # a row that is zero at the last point stays zero
    D = rng.normal(size=(3, 5, 3))  # V: no zeros kept

    def parabola(C, a):
        return C[0] + C[1] * a + C[2] * a ** 2

    alphas = np.geomspace(2.0, 0.3, 5)

    def warm_start(points):
        predict = mc.path._WarmStart(5, 3)
        for a, W, V in points:
            predict.add(a, W, V)
        return predict

    points = [(a, parabola(C, a), parabola(D, a)) for a in alphas]
    for used in (points[1:4], points[:4]):  # three points; four (the first slot reused)
        W, V = warm_start(used)(alphas[4])
        np.testing.assert_allclose(W, parabola(C, alphas[4]), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(V, parabola(D, alphas[4]), rtol=1e-10, atol=1e-10)
    assert warm_start(points[:2] + [(alphas[2], points[2][1], None)])(alphas[3])[1] is None
    W, V = warm_start(points[:1])(alphas[3])
    np.testing.assert_array_equal(W, points[0][1])
    W, V = warm_start(points[:3])(alphas[1])  # a strength that repeats: the last point
    np.testing.assert_array_equal(W, points[2][1])
    np.testing.assert_array_equal(V, points[2][2])


def test_certify_with_tol_keeps_a_valid_gram_certificate(rng):
    """certify(tol=...) may keep the certificate from XᵀX, XᵀY when it meets tol: it is
    still an upper bound on the true suboptimality (scikit-learn's optimum at 1e-14)."""
    X, Y = _shared(rng, n=200, d=10, T=3)
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[mc.L21(alpha=0.05)])
    sk = MultiTaskLasso(alpha=0.05, fit_intercept=False, tol=1e-14, max_iter=100_000)
    f_star = prob.objective(sk.fit(X, Y).coef_.T)
    for eps in (1e-3, 1e-5, 0.0):
        W = sk.coef_.T * (1 + eps * rng.normal(size=(10, 3)))
        plain, kept = mc.certify(prob, W), mc.certify(prob, W, tol=1e-8)
        for cert in (plain, kept):
            assert cert.objective - f_star <= cert.gap + 1e-13 * f_star
        if plain.relative_gap <= 1e-8:
            assert kept.relative_gap <= 1e-8


def _batch_and_single(prob, alphas, Ws, tol=1e-8):
    """certify_path's certificates and certify's at every point (strength restored)."""
    pen = prob.penalties[0]
    batch = certify_path(prob, pen, alphas, Ws, tol)
    saved, single = pen.alpha, []
    for a, W in zip(alphas, Ws, strict=True):
        pen.alpha = a
        single.append(mc.certify(prob, W, gradient_mapping=False, tol=tol))
    pen.alpha = saved
    return batch, single


def _same_certificate(b, c):
    assert b.method == c.method and b.grad_mapping is None
    scale = abs(c.objective)
    for field in ("objective", "gap", "dual_objective", "rounding"):
        assert abs(getattr(b, field) - getattr(c, field)) <= 1e-13 * scale, field
    assert b.relative_gap == pytest.approx(c.relative_gap, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("design", ["shared", "per-task intercepts", "shared intercepts",
                                    "per-task equal sizes"])
def test_certify_path_equals_certify_point_by_point(rng, design, monkeypatch):
    """The batched certificates are certify's, to rounding: on a shared design from XᵀX
    (expanded around 0 at large strengths and around the least-squares solution at small
    ones, both met here), and from the residuals (per-task designs, centred tasks; tasks
    of equal size in one batched product)."""
    if design == "shared":  # a near fit: the expansion around 0 cancels at small strengths
        X = rng.normal(size=(120, 15))
        Y = X @ rng.normal(size=(15, 4)) + 1e-3 * rng.normal(size=(120, 4))
        data, center = mc.MultiTaskData.shared(X, Y), False
    elif design == "shared intercepts":
        X, Y = _shared(rng, n=40, d=6, T=3)
        data, center = mc.MultiTaskData.shared(X, Y), True
    elif design == "per-task equal sizes":  # one batched product for all points
        Xs = [rng.normal(size=(25, 6)) for _ in range(4)]
        data = mc.MultiTaskData(Xs, [X @ rng.normal(size=6) + rng.normal(size=25) for X in Xs])
        center = False
    else:
        data, center = _unequal(rng, T=4, d=6), True
    prob = mc.Problem(data, penalties=[mc.L21(alpha=0.3)], fit_intercept=center)
    path = mc.regularization_path(prob, n_alphas=15, eps=1e-4)
    # path points (certified) and perturbed ones (gaps far above tol)
    Ws = np.concatenate([path.W, path.W * (1 + 1e-3 * rng.normal(size=path.W.shape))])
    alphas = np.concatenate([path.alphas, path.alphas])
    if design == "shared":
        values = [mc.L21(alpha=a).value(W) for a, W in zip(alphas, Ws, strict=True)]
        shifted, _ = _use_shift(prob, Ws, 1e-8, np.array(values))
        assert shifted.any() and not shifted.all()  # both expansions
    # chunks of 7 points (the last one shorter), as a large problem's batch goes through
    monkeypatch.setattr(mc.certificates, "_BATCH_ENTRIES", 7 * Ws[0].size)
    monkeypatch.setattr(mc.certificates, "_BATCH_POINTS", 7)
    batch, single = _batch_and_single(prob, alphas, Ws)
    assert sum(b is not None for b in batch) >= len(alphas) - 2
    for b, c in zip(batch, single, strict=True):
        if b is not None:
            _same_certificate(b, c)


def test_certify_path_bounds_the_true_gap(rng):
    """Every batched gap is at least F(W) − F* with F* from independent solves:
    scikit-learn's MultiTaskLasso at tol 1e-14 (shared design) and an independent CVXPY
    model solved by Clarabel (per-task designs)."""
    X, Y = _shared(rng, n=150, d=12, T=3)
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[mc.L21()])
    alphas = np.array([0.5, 0.1, 0.01, 0.001])
    Ws, f_star = [], []
    for a in alphas:
        sk = MultiTaskLasso(alpha=a, fit_intercept=False, tol=1e-14, max_iter=100_000)
        W = sk.fit(X, Y).coef_.T
        prob.penalties[0].alpha = a
        f_star.append(prob.objective(W))
        Ws.append(W * (1 + 1e-4 * rng.normal(size=W.shape)))
    certs = certify_path(prob, prob.penalties[0], alphas, np.array(Ws), 1e-8)
    for cert, f in zip(certs, f_star, strict=True):
        assert cert is not None and cert.objective - f <= cert.gap + 1e-13 * f

    data = _unequal(rng, T=3, d=5)
    prob = mc.Problem(data, penalties=[mc.L21()], fit_intercept=True)
    Wv, b = cp.Variable((5, 3)), cp.Variable(3)
    a_par = cp.Parameter(nonneg=True)
    loss = sum(cp.sum_squares(X @ Wv[:, t] + b[t] - y) / (2 * len(y))
               for t, (X, y) in enumerate(zip(data.X, data.y, strict=True)))
    model = cp.Problem(cp.Minimize(loss + a_par * cp.sum(cp.norm(Wv, 2, axis=1))))
    Ws, f_star = [], []
    for a in (0.3, 0.03, 0.003):
        a_par.value = a
        model.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
        f_star.append(model.value)
        Ws.append(Wv.value + 1e-4 * rng.normal(size=(5, 3)))
    certs = certify_path(prob, prob.penalties[0], [0.3, 0.03, 0.003], np.array(Ws), 1e-8)
    for cert, f in zip(certs, f_star, strict=True):
        # F* ≤ Clarabel's value (+ its own small error): the bound holds above it
        assert cert is not None and cert.objective - f <= cert.gap + 1e-9 * f


def test_abs_product_of_a_batch_in_slices(rng, monkeypatch):
    """``v @ |W|`` of a batch a few points at a time through the kept scratch buffer
    (slices of 2 here, the last one shorter) against NumPy's sums point by point."""
    from mtlcvx._linalg import abs_product

    P, d, T = 7, 9, 4
    W, v = rng.normal(size=(P, d, T)), rng.uniform(1.0, 2.0, size=d)
    monkeypatch.setattr(mc._linalg, "SCRATCH_ENTRIES", 2 * d * T)
    got = abs_product(v, W)
    for p in range(P):
        expected = (v[:, None] * np.abs(W[p])).sum(axis=0)
        np.testing.assert_allclose(got[p], expected, rtol=1e-14)
        np.testing.assert_allclose(abs_product(v, W[p]), expected, rtol=1e-14)


def test_weight_sums_of_a_batch_in_slices(rng, monkeypatch):
    """The sums over rows the batched bounds read, a few points at a time through the kept
    scratch buffer (slices of 2 here, the last one shorter), against NumPy's sums point
    by point; around 0 and around a reference R."""
    from mtlcvx._rounding import weight_sums

    P, d, T = 7, 9, 4
    W = rng.normal(size=(P, d, T))
    W[:, :3] = 0.0  # zero rows, as on a path
    col, R = rng.uniform(1.0, 2.0, size=d), rng.normal(size=(d, T))
    monkeypatch.setattr(mc._rounding, "SCRATCH_ENTRIES", 2 * d * T)
    for ref in (None, R):
        sums = weight_sums(W, col, ref)
        for p in range(P):
            D = np.abs(W[p] if ref is None else W[p] - ref)
            np.testing.assert_allclose(sums.col[p], (col[:, None] * D).sum(axis=0),
                                       rtol=1e-14)
            np.testing.assert_allclose(sums.abs[p], D.sum(axis=0), rtol=1e-14)
            if ref is None:  # (the squares of W itself, only around 0)
                np.testing.assert_allclose(sums.sq[p], (W[p] ** 2).sum(axis=0), rtol=1e-14)
            else:
                assert sums.sq is None
            one = weight_sums(W[p], col, ref)  # a single point: no slices
            for got, batch in zip(one, sums, strict=True):
                if batch is not None:
                    np.testing.assert_allclose(got, batch[p], rtol=1e-14)


def test_certify_path_leaves_other_rungs_to_certify(rng):
    X, Y = _shared(rng, n=50, d=6, T=3)
    data = mc.MultiTaskData.shared(X, Y)
    Ws = np.zeros((2, 6, 3)) + 0.1
    for pens in ([mc.L1()], [mc.L21(), mc.Ridge(alpha=0.1)]):  # per-task scales; rung 3
        prob = mc.Problem(data, penalties=pens)
        assert certify_path(prob, pens[0], [0.1, 0.01], Ws) == [None, None]
    prob = mc.Problem(data, penalties=[mc.L21()])
    assert certify_path(prob, prob.penalties[0], [0.0, 0.1], Ws)[0] is None  # no norm at 0


def test_path_errors(rng):
    prob = mc.Problem(_unequal(rng), penalties=[mc.L21()])
    with pytest.raises(mc.MTLError, match="penalty must be an index"):
        mc.regularization_path(prob, penalty=3)
    with pytest.raises(mc.MTLError, match="alphas"):
        mc.regularization_path(prob, alphas=[-1.0])
    with pytest.raises(mc.MTLError, match="not one of the problem"):
        mc.regularization_path(prob, penalty=mc.L21())
    with pytest.raises(mc.IncompatibleBackend, match="osqp"):
        mc.regularization_path(prob, alphas=[0.3, 0.1], backend="osqp")  # no SOC cone
    assert prob.penalties[0].alpha == 1.0  # restored after the failure


def test_tol_below_the_rounding_floor_warns_instead_of_iterating_forever(rng):
    X, Y = _shared(rng)
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[mc.L21()])
    with pytest.warns(mc.ConvergenceWarning, match="bound on its own rounding error"):
        path = mc.regularization_path(prob, alphas=[0.1, 0.01], tol=1e-17)
    assert path.status == ["inaccurate", "inaccurate"]
    assert path.info["iterations"].max() < 1000
    assert all(c.relative_gap < 1e-10 for c in path.certificates)  # near its floor


def test_to_frame_and_plot_path(rng):
    X, Y = _shared(rng)
    path = mc.regularization_path(mc.Problem(mc.MultiTaskData.shared(X, Y),
                                             penalties=[mc.L21()]), n_alphas=4)
    frame = path.to_frame()
    assert list(frame["alpha"]) == list(path.alphas)
    assert frame["n_nonzero_rows"].iloc[0] == 0
    ax = mc.plotting.plot_path(path)
    assert len(ax.get_lines()) == 8  # one line per feature


# ----------------------------------------------------------------------------- with_data
def test_with_data_copies_penalties(rng):
    data = _unequal(rng)
    prob = mc.Problem(data, penalties=[mc.L21(alpha=0.3)], fit_intercept=True)
    other = _unequal(np.random.default_rng(7))
    new = prob.with_data(other)
    assert new.data is other and new.fit_intercept
    assert new.penalties[0] is not prob.penalties[0] and new.penalties[0].alpha == 0.3
    new.penalties[0].alpha = 1.0
    assert prob.penalties[0].alpha == 0.3
    W = rng.normal(size=(5, 3))
    b = rng.normal(size=3)
    hand = sum(np.sum((X @ W[:, t] + b[t] - y) ** 2) / (2 * len(y))
               for t, (X, y) in enumerate(zip(other.X, other.y, strict=True)))
    hand += 1.0 * np.linalg.norm(W, axis=1).sum()
    assert new.objective(W, b) == pytest.approx(hand, rel=1e-12)


# ----------------------------------------------------------------------------- CV
def test_cv_scores_match_a_hand_loop_on_a_shared_design(rng):
    X, Y = _shared(rng)
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[mc.L21()], fit_intercept=True)
    alphas = [0.3, 0.1, 0.03]
    metrics = {"r2": lambda y, p: r2_score(y, p),
               "explained_variance": lambda y, p: explained_variance_score(y, p),
               "mse": lambda y, p: mean_squared_error(y, p)}
    for scoring in ("r2", "r2_pooled", "explained_variance", "mse"):
        # tol=1e-12: a certified relative gap g bounds coefficient errors by ~√g only
        res = mc.cross_validate(prob, alphas, cv=3, scoring=scoring, random_state=0, tol=1e-12)
        assert res.scores.shape == (3, 3) and res.per_task.shape == (3, 3, 4)
        folds = KFold(3, shuffle=False).split(np.random.default_rng(0).permutation(len(X)))
        perm = np.random.default_rng(0).permutation(len(X))
        for f, (tr, te) in enumerate(folds):
            tr, te = np.sort(perm[tr]), np.sort(perm[te])
            for i, a in enumerate(alphas):
                sk = MultiTaskLasso(alpha=a, tol=1e-14, max_iter=100_000).fit(X[tr], Y[tr])
                P = sk.predict(X[te])
                if scoring == "r2_pooled":
                    yt = Y[te]
                    want = 1 - np.sum((yt - P) ** 2) / np.sum((yt - yt.mean()) ** 2)
                else:
                    want = np.mean([metrics[scoring](Y[te, t], P[:, t]) for t in range(4)])
                assert res.scores[i, f] == pytest.approx(want, rel=1e-6, abs=1e-8)
    assert res.best_index == int(np.argmin(res.mean_score))  # "mse": lower is better


def test_cv_unequal_tasks_contiguous_folds_match_per_task_lasso(rng):
    data = _unequal(rng)
    prob = mc.Problem(data, penalties=[mc.L1()], fit_intercept=True)
    alphas = [0.2, 0.05]
    # W must match scikit-learn's to ~1e-7 for the scores to agree to 1e-6: a certified
    # objective gap of 1e-8 alone does not pin W that closely (the gap is tight now)
    res = mc.cross_validate(prob, alphas, cv=4, tol=1e-11)
    for f in range(4):
        for i, a in enumerate(alphas):
            r2 = []
            for X, y in zip(data.X, data.y, strict=True):  # L1 separates across tasks
                te = np.array_split(np.arange(len(y)), 4)[f]
                tr = np.setdiff1d(np.arange(len(y)), te)
                sk = Lasso(alpha=a, tol=1e-14, max_iter=100_000).fit(X[tr], y[tr])
                r2.append(r2_score(y[te], sk.predict(X[te])))
            np.testing.assert_allclose(res.per_task[i, f], r2, rtol=1e-6)
            assert res.scores[i, f] == pytest.approx(np.mean(r2), rel=1e-6)
    assert res.best_alpha == alphas[res.best_index]
    frame = res.to_frame()
    assert list(frame.columns[:3]) == ["alpha", "mean_score", "std_score"]
    # refit: the best strength on all the data, solved; the caller's problem untouched
    sol = res.refit()
    assert sol.status == "optimal" and prob.penalties[0].alpha == 1.0
    ref = mc.Problem(data, penalties=[mc.L1(alpha=res.best_alpha)], fit_intercept=True)
    assert sol.objective == pytest.approx(ref.objective(sol.W), rel=1e-12)


def test_factory_and_problem_give_the_same_scores(rng):
    data = _unequal(rng)
    prob = mc.Problem(data, penalties=[mc.L21()])

    def factory(d):
        return mc.Problem(d, penalties=[mc.L21()])

    a = mc.cross_validate(prob, [0.1, 0.01], cv=3, random_state=1)
    b = mc.cross_validate(factory, [0.1, 0.01], cv=3, random_state=1, data=data)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_task_shuffle_split(rng):
    data = _unequal(rng)
    splits = mc.TaskShuffleSplit(n_splits=3, test_size=0.25, random_state=0).split(data)
    assert len(splits) == 3
    for trains, tests in splits:
        for t, n in enumerate(data.n_samples):
            assert len(tests[t]) == int(np.ceil(0.25 * n))
            assert np.array_equal(np.union1d(trains[t], tests[t]), np.arange(n))
            assert not np.intersect1d(trains[t], tests[t]).size
    res = mc.cross_validate(mc.Problem(data, penalties=[mc.L21()]), [0.1],
                            cv=mc.TaskShuffleSplit(2, 0.25, random_state=0))
    assert res.scores.shape == (1, 2)


def test_cv_errors(rng):
    data = mc.MultiTaskData([rng.normal(size=(10, 3)), rng.normal(size=(3, 3))],
                            [rng.normal(size=10), rng.normal(size=3)], tasks=["a", "tiny"])
    prob = mc.Problem(data, penalties=[mc.L1()])
    with pytest.raises(mc.DataError, match="'tiny' has 3 samples"):
        mc.cross_validate(prob, [0.1], cv=5)
    with pytest.raises(mc.MTLError, match="scoring"):
        mc.cross_validate(prob, [0.1], cv=2, scoring="accuracy")
    with pytest.raises(mc.DataError, match="'tiny'"):
        mc.TaskShuffleSplit(2, test_size=3).split(data)
    with pytest.raises(mc.DataError, match="needs data"):
        mc.cross_validate(lambda d: prob, [0.1])


def test_dask_cluster_gives_the_sequential_scores(rng):
    distributed = pytest.importorskip("dask.distributed",
                                      reason="dask[distributed] is not installed")
    joblib = pytest.importorskip("joblib")
    data = _unequal(rng)
    prob = mc.Problem(data, penalties=[mc.L21()], fit_intercept=True)
    alphas = [0.2, 0.05, 0.01]
    seq = mc.cross_validate(prob, alphas, cv=3, random_state=0)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), joblib.parallel_backend("dask"):
        dist = mc.cross_validate(prob, alphas, cv=3, random_state=0)
    np.testing.assert_array_equal(dist.scores, seq.scores)
    np.testing.assert_array_equal(dist.per_task, seq.per_task)
