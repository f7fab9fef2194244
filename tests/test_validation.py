"""``validate`` and ``plot_convergence`` checked against independent computations.

The optimum of the quadratic problem is solved here from dense Kronecker normal
equations, the objectives are written out literally, and the gradient methods are
plain loops written in this file, so nothing below trusts the package's own oracles
except the one under test.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import mtlcvx as mc
from mtlcvx.exceptions import DataError
from mtlcvx.first_order import fista
from mtlcvx.plotting import plot_convergence
from mtlcvx.validation import ValidationReport, validate

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
THRESHOLDS = (1e-2, 1e-4, 1e-6, 1e-8)


def _load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"mtlcvx_example_{name}",
                                                  EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------- independent helpers
def _literal_objective(Xs, ys, c, W, K=None, alpha_l21=0.0):
    """Σ_t c_t/2‖X_t w_t − y_t‖² + ½ Σ_st K_st⟨w_s, w_t⟩ + α Σ_j ‖W_j,:‖, term by term."""
    T = len(Xs)
    F = sum(0.5 * c[t] * float(np.sum((Xs[t] @ W[:, t] - ys[t]) ** 2)) for t in range(T))
    if K is not None:
        F += 0.5 * sum(K[s, t] * float(W[:, s] @ W[:, t]) for s in range(T) for t in range(T))
    F += alpha_l21 * sum(float(np.sqrt(np.sum(W[j] ** 2))) for j in range(W.shape[0]))
    return F


def _kron_system(Xs, ys, c, K):
    """Hessian blkdiag(c_t X_tᵀX_t) + K ⊗ I_d and right-hand side in vec(W) (column-major)."""
    d = Xs[0].shape[1]
    T = len(Xs)
    H = np.kron(K, np.eye(d))
    g = np.zeros(d * T)
    for t in range(T):
        sl = slice(t * d, (t + 1) * d)
        H[sl, sl] += c[t] * Xs[t].T @ Xs[t]
        g[sl] = c[t] * Xs[t].T @ ys[t]
    return H, g


@pytest.fixture(scope="module")
def quad():
    """A quadratic problem with a positive definite task relation and unequal n_t."""
    rng = np.random.default_rng(7)
    T, d = 4, 5
    n = [10, 12, 15, 9]
    Xs = [rng.standard_normal((nt, d)) for nt in n]
    ys = [rng.standard_normal(nt) + 1.0 for nt in n]
    Z = rng.standard_normal((T, T))
    K = Z @ Z.T + 0.5 * np.eye(T)
    alpha = 0.3
    prob = mc.Problem(mc.MultiTaskData(Xs, ys), loss=mc.SquaredLoss(scale="mean"),
                      penalties=[mc.TaskRelation(K, alpha=alpha)])
    c = 1.0 / np.array(n, dtype=float)
    H, g = _kron_system(Xs, ys, c, alpha * K)
    W_star = np.linalg.solve(H, g).reshape(T, d).T
    lam = np.linalg.eigvalsh(H)
    L = float(lam[-1])

    def F(W):
        return _literal_objective(Xs, ys, c, W, alpha * K)

    def grad(W):
        return (H @ W.T.ravel() - g).reshape(T, d).T

    # the user's plain gradient descent, step 1/L, from zero
    iterates = [np.zeros((d, T))]
    for _ in range(200):
        iterates.append(iterates[-1] - grad(iterates[-1]) / L)
    return {"prob": prob, "Xs": Xs, "ys": ys, "c": c, "K": alpha * K, "W_star": W_star,
            "F_star": F(W_star), "F": F, "grad": grad, "L": L, "mu": float(lam[0]),
            "iterates": iterates}


def _first_reached(sub, thresholds=THRESHOLDS):
    out = {}
    for thr in thresholds:
        hits = [k for k, s in enumerate(sub) if s <= thr]
        out[thr] = hits[0] if hits else None
    return out


# ----------------------------------------------------------------- a list of iterates
def test_iterates_scored_against_the_kronecker_optimum(quad):
    its = quad["iterates"]
    rep = validate(quad["prob"], its)
    assert isinstance(rep, ValidationReport)
    F_star = quad["F_star"]
    scale = max(1.0, abs(F_star))
    expected = np.array([(quad["F"](W) - F_star) / scale for W in its])
    assert rep.reference_method == "direct"
    assert rep.reference_objective == pytest.approx(F_star, rel=1e-12)
    np.testing.assert_allclose(rep.reference_W, quad["W_star"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rep.objective, [quad["F"](W) for W in its], rtol=1e-12)
    np.testing.assert_allclose(rep.suboptimality, expected, rtol=1e-9, atol=1e-13)
    np.testing.assert_array_equal(rep.iterations, np.arange(len(its)))
    assert rep.times is None
    assert rep.gap is None
    # the thresholds first reached, found here independently
    want = _first_reached(expected)
    assert want[1e-8] is not None  # the run is long enough to reach them all
    assert rep.reached == {thr: (k, None) for thr, k in want.items()}
    # distance: strongly convex (μ = λ_min of the Hessian > 0)
    assert quad["mu"] > 0 and rep.strong_convexity > 0
    dist = [np.linalg.norm(W - quad["W_star"]) / np.linalg.norm(quad["W_star"]) for W in its]
    np.testing.assert_allclose(rep.distance, dist, rtol=1e-7, atol=1e-12)
    assert rep.final_distance == pytest.approx(dist[-1], rel=1e-7, abs=1e-12)
    # the final certificate bounds the true suboptimality
    cert = rep.certificate
    assert cert.objective == pytest.approx(quad["F"](its[-1]), rel=1e-12)
    assert cert.gap is not None and cert.gap >= expected[-1] * scale - 1e-12


def test_reference_certificate_is_tight(quad):
    rep = validate(quad["prob"], quad["W_star"])
    assert rep.reference_certificate.relative_gap is not None
    assert rep.reference_certificate.relative_gap <= 1e-8
    assert abs(rep.final_suboptimality) <= 1e-12
    assert rep.reached == {thr: (0, None) for thr in THRESHOLDS}
    np.testing.assert_array_equal(rep.iterations, [0])
    # a Solution is scored as its single W
    rep_sol = validate(quad["prob"], quad["prob"].solve(backend="direct"))
    assert abs(rep_sol.final_suboptimality) <= 1e-12
    assert len(rep_sol.suboptimality) == 1


def test_far_point_reaches_nothing(quad):
    W = np.zeros_like(quad["W_star"])
    rep = validate(quad["prob"], W, thresholds=(1e-3,))
    assert rep.reached == {1e-3: None}
    assert rep.thresholds == (1e-3,)
    assert "not reached" in str(rep)
    assert rep.final_suboptimality == pytest.approx(
        (quad["F"](W) - quad["F_star"]) / max(1.0, abs(quad["F_star"])), rel=1e-10)


def test_reference_given_as_array_or_solution(quad):
    its = quad["iterates"][:20]
    rep_array = validate(quad["prob"], its, reference=quad["W_star"])
    assert rep_array.reference_method == "given"
    sol = quad["prob"].solve(backend="direct")
    rep_sol = validate(quad["prob"], its, reference=sol)
    assert rep_sol.reference_method == "given (direct)"
    np.testing.assert_allclose(rep_array.suboptimality, rep_sol.suboptimality, atol=1e-13)
    # an (n, d, T) array is a stack of iterates
    rep_stack = validate(quad["prob"], np.stack(its), reference=quad["W_star"])
    np.testing.assert_allclose(rep_stack.suboptimality, rep_array.suboptimality, atol=0)


# ----------------------------------------------------------------- a callable step
def test_callable_step_is_run_and_timed(quad):
    grad, L = quad["grad"], quad["L"]
    calls = []

    def step(W):
        calls.append(1)
        return W - grad(W) / L

    rep = validate(quad["prob"], step, max_iter=150)
    assert len(calls) == 150
    np.testing.assert_array_equal(rep.iterations, np.arange(151))
    assert rep.times is not None and rep.times[0] == 0.0
    assert np.all(np.diff(rep.times) >= 0)
    # the same iterates as the user's list, so the same scores
    ref = validate(quad["prob"], quad["iterates"][:151])
    np.testing.assert_allclose(rep.suboptimality, ref.suboptimality, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rep.distance, ref.distance, rtol=1e-12, atol=1e-15)
    for thr, hit in rep.reached.items():
        k = ref.reached[thr][0]
        assert hit == (k, float(rep.times[k]))
    # from a given start
    W0 = np.ones_like(quad["W_star"])
    rep0 = validate(quad["prob"], step, max_iter=3, W0=W0)
    expected = (quad["F"](W0) - quad["F_star"]) / max(1.0, abs(quad["F_star"]))
    assert rep0.suboptimality[0] == pytest.approx(expected, rel=1e-12)


def test_in_place_step_does_not_corrupt_the_record(quad):
    grad, L = quad["grad"], quad["L"]

    def step(W):  # mutates its argument and returns it
        W -= grad(W) / L
        return W

    rep = validate(quad["prob"], step, max_iter=30)
    ref = validate(quad["prob"], quad["iterates"][:31])
    np.testing.assert_allclose(rep.suboptimality, ref.suboptimality, rtol=1e-12, atol=1e-15)


def test_diverging_step_stops_at_a_non_finite_iterate(quad):
    def step(W):
        with np.errstate(over="ignore"):
            return W * 1e200 + 1.0

    rep = validate(quad["prob"], step, max_iter=50)
    assert len(rep.iterations) < 51
    assert np.isnan(rep.final_suboptimality)
    assert rep.certificate.gap is None
    assert any("not finite" in note for note in rep.notes)
    assert "not finite" in str(rep)


def test_bad_inputs_are_refused(quad):
    with pytest.raises(DataError, match="shape"):
        validate(quad["prob"], np.zeros((3, 3)))
    with pytest.raises(DataError, match="step"):
        validate(quad["prob"], lambda W: W[:2], max_iter=2)
    with pytest.raises(TypeError):
        validate("not a problem", quad["W_star"])


# ----------------------------------------------------------------- a Trace
def test_fista_trace(quad):
    trace = fista(quad["prob"])
    rep = validate(quad["prob"], trace)
    hist = trace.history
    scale = max(1.0, abs(quad["F_star"]))
    np.testing.assert_allclose(rep.suboptimality, (hist["objective"] - quad["F_star"]) / scale,
                               rtol=1e-9, atol=1e-13)
    np.testing.assert_array_equal(rep.iterations, hist["iteration"])
    np.testing.assert_array_equal(rep.times, hist["time"])
    assert rep.final_suboptimality <= 1e-7
    # the final iterate itself, scored independently
    assert (quad["F"](trace.W) - quad["F_star"]) / scale <= 1e-7
    # the iterates are not stored: only the last distance is known
    assert np.all(np.isnan(rep.distance[:-1]))
    assert rep.distance[-1] == pytest.approx(
        np.linalg.norm(trace.W - quad["W_star"]) / np.linalg.norm(quad["W_star"]), rel=1e-6)
    assert rep.gap is not None and rep.gap.shape == rep.suboptimality.shape
    assert np.isfinite(rep.gap[-1])
    want = _first_reached((hist["objective"] - quad["F_star"]) / scale)
    assert {thr: None if hit is None else hit[0] for thr, hit in rep.reached.items()} == want


# ----------------------------------------------------------------- not strongly convex
@pytest.fixture(scope="module")
def l21():
    """L21 with n_t = 4 < d = 6 in every task: f + h is not strongly convex."""
    rng = np.random.default_rng(3)
    T, d, nt = 3, 6, 4
    Xs = [rng.standard_normal((nt, d)) for _ in range(T)]
    ys = [rng.standard_normal(nt) for _ in range(T)]
    alpha = 0.05
    prob = mc.Problem(mc.MultiTaskData(Xs, ys), loss=mc.SquaredLoss(scale="mean"),
                      penalties=[mc.L21(alpha=alpha)])
    c = np.full(T, 1.0 / nt)
    L = max(c[t] * np.linalg.norm(Xs[t], 2) ** 2 for t in range(T))

    def F(W):
        return _literal_objective(Xs, ys, c, W, alpha_l21=alpha)

    def prox_grad(W):
        G = np.column_stack([c[t] * Xs[t].T @ (Xs[t] @ W[:, t] - ys[t]) for t in range(T)])
        V = W - G / L
        norms = np.linalg.norm(V, axis=1, keepdims=True)
        return np.maximum(0.0, 1.0 - (alpha / L) / np.maximum(norms, 1e-300)) * V

    return {"prob": prob, "F": F, "prox_grad": prox_grad}


def test_not_strongly_convex_has_no_distance(l21):
    prob = l21["prob"]
    assert prob.strong_convexity() == 0.0
    rep = validate(prob, l21["prox_grad"], max_iter=200)
    assert rep.reference_method == "fista"
    assert rep.distance is None and rep.final_distance is None
    assert "n/a (not strongly convex)" in str(rep)
    assert np.all(np.isnan(rep.to_frame()["distance"]))
    # the reference: certified, and no proximal-gradient step (written here) improves it
    assert rep.reference_certificate.relative_gap <= 1e-8
    F_ref = rep.reference_objective
    assert F_ref == pytest.approx(l21["F"](rep.reference_W), rel=1e-12)
    assert l21["F"](l21["prox_grad"](rep.reference_W)) >= F_ref - 1e-10
    # scores from the literal objective
    W = np.zeros((6, 3))
    expected = [(l21["F"](W) - F_ref) / max(1.0, abs(F_ref))]
    for _ in range(200):
        W = l21["prox_grad"](W)
        expected.append((l21["F"](W) - F_ref) / max(1.0, abs(F_ref)))
    np.testing.assert_allclose(rep.suboptimality, expected, rtol=1e-9, atol=1e-13)
    assert rep.reached == {thr: None if k is None else (k, float(rep.times[k]))
                           for thr, k in _first_reached(expected).items()}


# ----------------------------------------------------------------- output
def test_to_frame_and_str(quad):
    rep = validate(quad["prob"], lambda W: W - quad["grad"](W) / quad["L"], max_iter=10)
    frame = rep.to_frame()
    assert list(frame.columns) == ["iteration", "time", "objective", "suboptimality",
                                   "distance"]
    assert len(frame) == 11
    np.testing.assert_array_equal(frame["iteration"], np.arange(11))
    np.testing.assert_allclose(frame["suboptimality"], rep.suboptimality)
    text = str(rep)
    assert "suboptimality" in text
    assert "reference" in text and "certificate" in text
    assert text.count("not reached") + sum(v is not None for v in rep.reached.values()) == 4
    list_frame = validate(quad["prob"], quad["iterates"][:3]).to_frame()
    assert np.all(np.isnan(list_frame["time"]))


def test_plot_convergence_returns_axes(quad):
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    rep = validate(quad["prob"], quad["iterates"])
    ax = plot_convergence(rep, label="gd")
    try:
        assert isinstance(ax, Axes)
        assert len(ax.get_lines()) >= 1
        assert ax.get_yscale() == "log"
        n = len(ax.get_lines())
        trace = fista(quad["prob"])
        assert plot_convergence(trace, ax=ax, label="fista", thresholds=True) is ax
        assert len(ax.get_lines()) > n + len(THRESHOLDS)  # the gap line plus thresholds
        # a report from a trace draws the suboptimality and the certified gap
        ax2 = plot_convergence(validate(quad["prob"], trace))
        assert len(ax2.get_lines()) == 2
        ax3 = plot_convergence(trace, reference_objective=quad["F_star"])
        assert len(ax3.get_lines()) == 2
    finally:
        plt.close("all")


# ----------------------------------------------------------------- the seed example
def test_seed_example_corrected_gradient_descent():
    seed = _load_example("seed_task_relation")
    # rebuilt here: seed objective = 2 × [SquaredLoss("sum") + TaskRelation(K, 0.5)]
    prob = mc.Problem(mc.MultiTaskData(seed.XS, seed.YS), loss=mc.SquaredLoss(scale="sum"),
                      penalties=[mc.TaskRelation(seed.K, alpha=0.5)])
    T, d = 3, 2
    H, g = _kron_system(seed.XS, seed.YS, 2.0 * np.ones(T), seed.K)  # the seed's own scale
    W_star = np.linalg.solve(H, g).reshape(T, d).T
    L = float(np.linalg.eigvalsh(H)[-1])

    def step(W):  # the corrected gradient: 2 X_tᵀ(X_t w_t − y_t) + (W K)_t
        G = np.column_stack([2.0 * seed.XS[t].T @ (seed.XS[t] @ W[:, t] - seed.YS[t])
                             for t in range(T)]) + W @ seed.K
        return W - G / L

    rep = validate(prob, step, max_iter=12_000)
    np.testing.assert_allclose(rep.reference_W, W_star, rtol=1e-10, atol=1e-12)
    assert rep.reference_objective == pytest.approx(seed.seed_objective(W_star) / 2, rel=1e-12)
    assert rep.reference_certificate.relative_gap <= 1e-8
    assert rep.final_suboptimality <= 1e-8
    assert rep.reached[1e-8] is not None
    assert rep.final_distance <= 1e-3
    F_star = seed.seed_objective(W_star) / 2
    sub = (seed.seed_objective(rep.W) / 2 - F_star) / max(1.0, abs(F_star))
    assert rep.final_suboptimality == pytest.approx(sub, rel=1e-6, abs=1e-15)


# ----------------------------------------------------------------- the School example
@pytest.fixture(scope="module")
def school_example():
    return _load_example("validate_gradient_descent").run(quick=True)


def test_school_example_momentum_beats_plain_gradient_descent(school_example):
    res = school_example
    gd, nest = res["reports"]["gradient descent"], res["reports"]["nesterov"]
    n = res["iterations"]
    for rep in (gd, nest):
        assert len(rep.suboptimality) == n + 1
        assert rep.final_suboptimality < 1e-2 * rep.suboptimality[0]
        assert rep.distance is not None and rep.final_distance < rep.distance[0]
        assert rep.reference_certificate.relative_gap <= 1e-10
    # step 1/L: plain gradient descent decreases the objective at every step
    assert np.all(np.diff(gd.objective) <= 1e-12 * abs(gd.objective[0]))
    assert nest.final_suboptimality < 1e-2 * gd.final_suboptimality
    assert nest.final_distance < gd.final_distance
    assert res["objective_check"] <= 1e-12
    assert res["L"] == pytest.approx(res["L_package"], rel=1e-10)
    png = Path(res["png"])
    assert png.exists() and png.stat().st_size > 1000


def test_school_example_reference_is_stationary(school_example):
    """Independent check of the exact optimum: the user's own gradient vanishes there."""
    res = school_example
    prob = res["problem"]
    data = prob.data
    W = res["reference"].W
    Lap = res["laplacian"]
    grad = np.column_stack([
        (X - X.mean(axis=0)).T @ ((X - X.mean(axis=0)) @ W[:, t] - (y - y.mean())) / len(y)
        for t, (X, y) in enumerate(zip(data.X, data.y, strict=True))
    ]) + res["alpha_relation"] * W @ Lap + res["alpha_ridge"] * W
    grad0 = np.column_stack([(X - X.mean(axis=0)).T @ (y - y.mean()) / len(y)
                             for X, y in zip(data.X, data.y, strict=True)])
    assert np.linalg.norm(grad) <= 1e-10 * np.linalg.norm(grad0)


def test_plotted_trace_gap_is_the_certificates_relative_gap():
    """With |F| < 1 the plotted gap is gap/|F| (Certificate.relative_gap), not
    gap/max(1, |F|), which would hide a large relative gap of a small objective."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 4))
    Y = 1e-3 * rng.standard_normal((30, 3))  # F(W) ~ 1e-5
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), mc.SquaredLoss(),
                      [mc.L21(1e-4)])
    trace = fista(prob, max_iter=40, check_every=5)
    ax = plot_convergence(trace)
    try:
        gap_line = ax.get_lines()[-1]
        F_last, gap_last = trace.history["objective"][-1], trace.history["gap"][-1]
        assert abs(F_last) < 1
        assert gap_line.get_ydata()[-1] == pytest.approx(gap_last / abs(F_last), rel=1e-12)
        assert gap_line.get_ydata()[-1] == pytest.approx(trace.certificate.relative_gap,
                                                         rel=1e-12)
    finally:
        plt.close("all")
