"""The penalty protocol: terms written here, outside mtlcvx, get the same certificates.

Every optimum is checked against an independent CVXPY model written in this file and
solved by Clarabel at tight tolerances; the closed-form proxes below are written here
from their definitions, not taken from mtlcvx.
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest

import mtlcvx as mc
from mtlcvx.penalties.base import Penalty, Term

SCALES = (1e-8, 1e-6, 1e-4, 1e-2, 1.0)
#: solver settings that let each conic solver reach the optimum these tests certify
TIGHT = {"scs": {"eps_abs": 1e-12, "eps_rel": 1e-12},
         "ecos": {"abstol": 1e-12, "reltol": 1e-12, "feastol": 1e-12}}


# ----------------------------------------------------------------------------- new terms
def _column_shrink(V, a):
    n = np.linalg.norm(V, axis=0, keepdims=True)
    return V * np.maximum(1.0 - a / np.maximum(n, 1e-300), 0.0)


def _squared_sum_shrink(sig, c):
    """prox of (c/2)(Σ σ_i)² on magnitudes σ: try every active-set size (brute force)."""
    order = np.sort(sig)[::-1]
    for r in range(order.size, 0, -1):
        theta = c * order[:r].sum() / (1 + c * r)
        if order[r - 1] > theta:
            return np.maximum(sig - theta, 0.0)
    return np.zeros_like(sig)


class ColumnL2(Penalty):
    """α Σ_t ‖w_t‖₂: one group per task (column)."""

    cones = frozenset({"soc"})
    structure = "norm"
    separable = "columns"

    def cvxpy_term(self, W, params):
        return Term(params["alpha"] * cp.sum(cp.norm(W, 2, axis=0)))

    def value(self, W):
        return self.alpha * float(np.linalg.norm(W, axis=0).sum())

    def prox(self, V, step):
        return _column_shrink(V, step * self.alpha)

    def dual_norm(self, V):
        return float(np.linalg.norm(V, axis=0).max(initial=0.0))


class SquaredColumnL2(Penalty):
    """(α/2)(Σ_t ‖w_t‖₂)²."""

    cones = frozenset({"soc"})
    structure = "squared_norm"

    def cvxpy_term(self, W, params):
        return params["alpha"] / 2 * cp.square(cp.sum(cp.norm(W, 2, axis=0)))  # bare expr

    def value(self, W):
        return 0.5 * self.alpha * float(np.linalg.norm(W, axis=0).sum()) ** 2

    def prox(self, V, step):
        n = np.linalg.norm(V, axis=0)
        new = _squared_sum_shrink(n, step * self.alpha)
        return V * (new / np.maximum(n, 1e-300))[None, :]

    def dual_norm(self, V):
        return float(np.linalg.norm(V, axis=0).max(initial=0.0))


def _col_norms(W):
    return cp.sum(cp.norm(W, 2, axis=0))


def _half_squared_col_norms(W):
    return cp.square(cp.sum(cp.norm(W, 2, axis=0))) / 2


def _custom_norm(alpha):
    return mc.Custom(_col_norms, cones={"soc"}, alpha=alpha, structure="norm",
                     prox=_column_shrink,
                     dual_norm=lambda V: np.linalg.norm(V, axis=0).max(initial=0.0))


def _custom_conjugate(alpha):
    # e(W) = ½(Σ_t ‖w_t‖)², e*(V) = ½ max_t ‖v_t‖²: declared "other", only a conjugate
    def prox(V, step):
        n = np.linalg.norm(V, axis=0)
        return V * (_squared_sum_shrink(n, step) / np.maximum(n, 1e-300))[None, :]

    return mc.Custom(_half_squared_col_norms, cones={"soc"}, alpha=alpha, prox=prox,
                     conjugate=lambda V: 0.5 * np.linalg.norm(V, axis=0).max(initial=0.0) ** 2)


def _reference(data, expr_of_W, fit_intercept):
    """Independent CVXPY model: Σ_t (1/2n_t)‖X_t w_t + b_t − y_t‖² + expr(W), Clarabel."""
    d, T = data.n_features, data.n_tasks
    W = cp.Variable((d, T))
    b = cp.Variable(T) if fit_intercept else np.zeros(T)
    loss = sum(cp.sum_squares(data.X[t] @ W[:, t] + b[t] - data.y[t]) / (2 * data.n_samples[t])
               for t in range(T))
    prob = cp.Problem(cp.Minimize(loss + expr_of_W(W)))
    _tight_clarabel(prob)
    return W.value, prob.value


def _tight_clarabel(prob):
    with warnings.catch_warnings():  # at 1e-12 Clarabel may call its answer "inaccurate"
        warnings.simplefilter("ignore", UserWarning)
        prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-10)


#: name -> (penalties, the same objective term written in CVXPY, the rung expected)
CASES = {
    "ColumnL2 class": (lambda: [ColumnL2(0.08)], lambda W: 0.08 * _col_norms(W),
                       "dual-norm scaling per task (rung 1)"),
    "SquaredColumnL2 class": (lambda: [SquaredColumnL2(0.3)],
                              lambda W: 0.15 * cp.square(_col_norms(W)),
                              "squared-norm conjugate (rung 2)"),
    "Custom norm with dual_norm": (lambda: [_custom_norm(0.08)],
                                   lambda W: 0.08 * _col_norms(W), "dual-norm scaling (rung 1)"),
    "Custom with conjugate": (lambda: [_custom_conjugate(0.3)],
                              lambda W: 0.15 * cp.square(_col_norms(W)),
                              "Fenchel conjugate (rung 6)"),
    "Ridge + ColumnL2 (augmented)": (lambda: [mc.Ridge(0.05), ColumnL2(0.08)],
                                     lambda W: 0.025 * cp.sum_squares(W)
                                     + 0.08 * _col_norms(W),
                                     "dual-norm scaling per task (rung 1) + quadratic blocks"),
    "ColumnL2 + L1 (dual ball by splitting)": (lambda: [ColumnL2(0.06), mc.L1(0.01)],
                                               lambda W: 0.06 * _col_norms(W)
                                               + 0.01 * cp.sum(cp.abs(W)),
                                               "dual-norm scaling (rung 1)"),
    "L1 + SquaredColumnL2 (split)": (lambda: [mc.L1(0.01), SquaredColumnL2(0.3)],
                                     lambda W: 0.01 * cp.sum(cp.abs(W))
                                     + 0.15 * cp.square(_col_norms(W)),
                                     "conjugate split (rung 7)"),
}


@pytest.fixture(scope="module")
def data():
    return mc.datasets.make_related_tasks(4, 6, [9, 14, 5, 20], random_state=11)


@pytest.mark.parametrize("name", list(CASES))
def test_new_terms_certified_and_never_below_true_gap(data, name):
    make, expr, rung = CASES[name]
    prob = mc.Problem(data, penalties=make(), fit_intercept=True)
    W_ref, F_ref = _reference(data, expr, True)
    assert prob.objective(W_ref) == pytest.approx(F_ref, rel=1e-9)
    cert = mc.certify(prob, W_ref)
    assert cert.relative_gap <= 1e-8 and cert.method.startswith(rung), (name, cert)
    rng = np.random.default_rng(5)
    for scale in SCALES:
        for _ in range(3):
            W = W_ref + scale * rng.standard_normal(W_ref.shape)
            c = mc.certify(prob, W)
            # F_ref ≥ F*, so F(W) − F_ref is at most the true gap
            assert c.gap >= prob.objective(W) - F_ref - 1e-13 * abs(F_ref), (name, scale, c)


@pytest.mark.parametrize("name", list(CASES))
def test_new_terms_optimal_on_fista_and_conic_backends(data, name):
    make, expr, _ = CASES[name]
    prob = mc.Problem(data, penalties=make(), fit_intercept=True)
    _, F_ref = _reference(data, expr, True)
    capable = [b for b in ("fista", "clarabel", "scs", "ecos")
               if mc.backends.BACKENDS[b].incompatibility(prob) is None]
    assert {"clarabel", "scs", "ecos"} <= set(capable)
    for backend in capable:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mc.ConvergenceWarning)
            sol = prob.solve(backend=backend, tol=1e-8, **TIGHT.get(backend, {}))
        cert = sol.certificate
        assert cert.gap >= sol.objective - F_ref - 1e-13 * abs(F_ref), (name, backend)
        assert sol.objective == pytest.approx(F_ref, rel=1e-6), (name, backend)
        if backend == "ecos":  # ECOS may stop short of 1e-8; then the certificate says so
            assert (sol.status == "optimal") == (cert.relative_gap <= 1e-8)
            continue
        assert sol.status == "optimal" and cert.relative_gap <= 1e-8, (name, backend, cert)


def test_protocol_answers_of_new_classes():
    norm, sq = ColumnL2(0.5), SquaredColumnL2(0.5)
    G = np.random.default_rng(0).standard_normal((3, 4))
    col_max = np.linalg.norm(G, axis=0).max()
    assert norm.provides("alpha_max") and norm.alpha_max(G) == col_max
    assert norm.provides("conjugate") and norm.conjugate(G) == np.inf
    assert norm.conjugate(G * 0.5 / col_max) == 0.0
    assert sq.conjugate(G) == pytest.approx(col_max ** 2 / (2 * 0.5), rel=1e-15)
    assert not sq.provides("alpha_max") and not norm.provides("gradient")
    with pytest.raises(NotImplementedError, match="ColumnL2 does not provide 'gradient'"):
        norm.gradient(G)
    with pytest.raises(mc.PenaltyError, match="unknown oracle"):
        norm.provides("hessian")


def test_missing_oracles_are_named(data):
    class ProxOnlyNorm(ColumnL2):
        dual_norm = Penalty.dual_norm  # no dual norm: rung 1 by bisection on the prox

    class Opaque(ColumnL2):
        structure = "other"
        prox = Penalty.prox
        dual_norm = Penalty.dual_norm

    # only a prox: the Moreau bisection still certifies
    prob = mc.Problem(data, penalties=[ProxOnlyNorm(0.08)], fit_intercept=True)
    W_ref, F_ref = _reference(data, lambda W: 0.08 * _col_norms(W), True)
    assert mc.certify(prob, W_ref).relative_gap <= 1e-8
    W = W_ref + 1e-2
    assert mc.certify(prob, W).gap >= prob.objective(W) - F_ref
    # a sum whose proxes nobody declared to compose: no gap, and the reason says why
    two = mc.Problem(data, penalties=[ProxOnlyNorm(0.08), mc.L1(0.01)], fit_intercept=True)
    cert = mc.certify(two, np.zeros((6, 4)))
    assert cert.gap is None
    assert "ProxOnlyNorm + L1: no exact prox of the sum" in cert.reason
    with pytest.raises(mc.IncompatibleBackend, match="ProxOnlyNorm \\+ L1: no exact prox"):
        two.solve(backend="fista")
    # a term that answers nothing: the reason names it and the oracle to add
    cert = mc.certify(mc.Problem(data, penalties=[Opaque(0.1)]), np.zeros((6, 4)))
    assert cert.gap is None and "Opaque (other): give it a conjugate" in cert.reason


def test_sum_of_one_kind_merges_and_l1_l21_compose(data):
    prob = mc.Problem(data, penalties=[ColumnL2(0.03), ColumnL2(0.05)])
    W_ref, _ = _reference(data, lambda W: 0.08 * _col_norms(W), False)
    assert mc.certify(prob, W_ref).relative_gap <= 1e-8
    sgl = mc.Problem(data, penalties=[mc.L21(0.05), mc.L1(0.01)])
    V = np.random.default_rng(1).standard_normal((6, 4))
    # prox of the sum: soft-threshold first, then the row shrink (sparse group lasso)
    soft = np.sign(V) * np.maximum(np.abs(V) - 0.01, 0)
    rows = np.linalg.norm(soft, axis=1, keepdims=True)
    expected = soft * np.maximum(1 - 0.05 / np.maximum(rows, 1e-300), 0)
    np.testing.assert_allclose(sgl.prox(V, 1.0), expected, rtol=1e-14)


# ----------------------------------------------------------------------------- parts
class Dirty(Penalty):
    """min_{P + Q = W} a_P‖P‖₁ + a_Q‖Q‖_{2,1}: a norm with dual max(‖V‖∞/a_P, ‖V‖_{2,∞}/a_Q)."""

    cones = frozenset({"soc"})
    structure = "norm"
    part_names = ("P", "Q")
    _params = ("alpha_P", "alpha_Q")
    alpha = 1.0  # the strengths live inside Ω

    def __init__(self, alpha_P, alpha_Q):
        self.alpha_P = alpha_P
        self.alpha_Q = alpha_Q

    def cvxpy_term(self, W, params):
        P = cp.Variable(W.shape, name="P")
        Q = cp.Variable(W.shape, name="Q")
        expr = params["alpha_P"] * cp.sum(cp.abs(P)) + params["alpha_Q"] * cp.mixed_norm(Q, 2, 1)
        return Term(expr, (P + Q == W,), {"P": P, "Q": Q})

    def cvxpy_parameters(self, d, T):
        return {"alpha_P": self.alpha_P, "alpha_Q": self.alpha_Q}

    def value_at(self, W, parts):
        P, Q = parts["P"], parts["Q"]
        assert np.allclose(P + Q, W, atol=1e-8)
        return (self.alpha_P * np.abs(P).sum()
                + self.alpha_Q * np.linalg.norm(Q, axis=1).sum())

    def value(self, W):
        Q = cp.Variable(W.shape)
        prob = cp.Problem(cp.Minimize(self.alpha_P * cp.sum(cp.abs(W - Q))
                                      + self.alpha_Q * cp.mixed_norm(Q, 2, 1)))
        _tight_clarabel(prob)
        return prob.value

    def dual_norm(self, V):
        return max(np.abs(V).max() / self.alpha_P,
                   np.linalg.norm(V, axis=1).max() / self.alpha_Q)


def test_decomposition_parts_come_back_and_objective_uses_them(data):
    prob = mc.Problem(data, penalties=[Dirty(0.02, 0.05)], fit_intercept=True)
    sol = prob.solve(backend="clarabel")
    assert set(sol.parts) == {"P", "Q"}
    np.testing.assert_allclose(sol.parts["P"] + sol.parts["Q"], sol.W, atol=1e-8)
    assert sol.objective == prob.objective(sol.W, parts=sol.parts)
    # independent reference: the same model written directly in CVXPY
    _, F_ref = _reference(data, lambda W: _dirty_expr(W, 0.02, 0.05), True)
    assert sol.objective == pytest.approx(F_ref, rel=1e-8)
    assert sol.status == "optimal" and sol.certificate.method.startswith("dual-norm scaling")
    assert sol.certificate.gap >= sol.objective - F_ref - 1e-12
    with pytest.raises(mc.DataError, match="belong to no term"):
        prob.objective(sol.W, parts={"R": sol.W})
    with pytest.raises(mc.DataError, match="missing"):
        prob.objective(sol.W, parts={"P": sol.W})


def _dirty_expr(W, a, b):
    P = cp.Variable(W.shape)
    return a * cp.sum(cp.abs(P)) + b * cp.mixed_norm(W - P, 2, 1)


# ----------------------------------------------------------------------------- Custom checks
def _col_shrink_weightless(V, step):
    return _column_shrink(V, 0.5 * step)  # forgets a weight


WRONG = {
    "prox": dict(prox=_col_shrink_weightless),
    "value": dict(value=lambda W: 2 * np.linalg.norm(W, axis=0).sum()),
    "value nan": dict(value=lambda W: np.nan),
    "dual_norm": dict(structure="norm", dual_norm=lambda V: np.abs(V).max()),
    "conjugate": dict(conjugate=lambda V: 0.0),
}


@pytest.mark.parametrize("oracle", list(WRONG))
def test_custom_with_a_wrong_oracle_is_refused(data, oracle):
    pen = mc.Custom(_col_norms, cones={"soc"}, alpha=0.1, **WRONG[oracle])
    with pytest.raises(mc.PenaltyError, match=f"the {oracle.split()[0]} oracle disagrees"):
        mc.Problem(data, penalties=[pen])


def test_custom_oracle_replaced_later_is_checked_before_solving(data):
    pen = _custom_norm(0.08)
    prob = mc.Problem(data, penalties=[pen])
    pen.set_params(prox=_col_shrink_weightless)
    with pytest.raises(mc.PenaltyError, match="the prox oracle disagrees"):
        prob.solve(backend="fista")


def test_custom_smooth_oracles_checked_and_used(data):
    def half_sq(W):
        return cp.sum_squares(W) / 2

    with pytest.raises(mc.PenaltyError, match="gradient oracle disagrees"):
        mc.Problem(data, penalties=[mc.Custom(half_sq, cones={"quadratic"},
                                              gradient=lambda W: 2 * W)])
    with pytest.raises(mc.PenaltyError, match="lipschitz oracle disagrees"):
        mc.Problem(data, penalties=[mc.Custom(half_sq, cones={"quadratic"},
                                              gradient=lambda W: W, lipschitz=0.5)])
    # gradient + lipschitz: fista steps 1/L without backtracking; conjugate: a gap
    pen = mc.Custom(half_sq, cones={"quadratic"}, alpha=0.2, gradient=lambda W: W,
                    lipschitz=1.0, conjugate=lambda V: 0.5 * float(np.sum(V * V)))
    prob = mc.Problem(data, penalties=[pen, mc.L21(0.05)])
    trace = mc.first_order.fista(prob, tol=1e-9)
    assert trace.converged and trace.info["lipschitz_bound"] is not None
    _, F_ref = _reference(data, lambda W: 0.1 * cp.sum_squares(W)
                          + 0.05 * cp.mixed_norm(W, 2, 1), False)
    assert trace.certificate.objective == pytest.approx(F_ref, rel=1e-8)
    assert trace.certificate.gap >= trace.certificate.objective - F_ref - 1e-13


@pytest.mark.filterwarnings("ignore:\\s*This use of ``\\*`` has resulted in matrix multiplication")
def test_numpy_expression_is_explained(data):
    for numpy_expr in (lambda W: np.sum(np.abs(W)), lambda W: np.linalg.norm(W)):
        with pytest.raises(mc.PenaltyError, match="CVXPY atoms .* not NumPy functions"):
            mc.Problem(data, penalties=[mc.Custom(numpy_expr, cones={"soc"})])
