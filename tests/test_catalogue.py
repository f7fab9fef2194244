"""Catalogue of known answers (tiny hand-solved problems, the MTRL reduction, the MALSAR
objectives), closed forms, scikit-learn and the seeds.

Every expected number here is computed independently of mtlcvx: by hand (the values are
derived in the comments), from a textbook closed form evaluated in NumPy, from
scikit-learn, or from a normal-equation / proximal-gradient solve written in this file. The
package is never compared with itself, except where two *solvers* are asked to agree.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from conftest import installed_backends
from sklearn.linear_model import Lasso, MultiTaskLasso

import mtlcvx as mc


class Tol(NamedTuple):
    F: float  # relative error on the objective
    W: float  # max-abs error on W, relative to max(1, max|W*|)


#: Per-backend tolerances at ``solve(tol=1e-8)``. Largest errors measured on this file
#: (CVXPY 1.9.3, Clarabel 0.11.1, ECOS 2.0.14, SCS 3.3.1, OSQP 1.1.3), F relative / W:
#: direct 1e-16 / 2e-13, osqp 2e-16 / 9e-14, scs 3e-9 / 1e-8, clarabel 1e-9 / 4e-6,
#: ecos 9e-9 / 7e-5. The interior-point W errors are ~sqrt of their objective errors
#: (for a strongly convex F, ‖W − W*‖ ≲ sqrt(2·(F − F*)/μ)); tightening ``tol`` to 1e-10
#: makes Clarabel stop "inaccurate" (a ConvergenceWarning) on these small problems.
TOL = {
    "direct": Tol(F=1e-12, W=1e-9),
    "clarabel": Tol(F=1e-7, W=3e-5),
    "osqp": Tol(F=1e-7, W=1e-5),
    "ecos": Tol(F=1e-7, W=3e-4),
    "scs": Tol(F=1e-5, W=1e-4),
    # stops at certified relative gap 1e-8; with μ = 1 here ‖W − W*‖ ≤ sqrt(2·gap)
    "fista": Tol(F=1e-8, W=3e-4),
}

#: Tolerance passed to ``solve``; SCS is first order but 1e-8 is cheap at these sizes
#: and none of the solves below raises a ConvergenceWarning at it.
SOLVE_TOL = {"direct": 1e-8, "clarabel": 1e-8, "osqp": 1e-8, "ecos": 1e-8, "scs": 1e-8,
             "fista": 1e-8}

INSTALLED = installed_backends()


def _cones(penalties) -> frozenset[str]:
    cones = {"quadratic"}
    for p in penalties:
        cones |= p.cones
    return frozenset(cones)


def _capable(penalties, among=None) -> list[str]:
    """Installed backends whose declared cones cover the problem's (direct: {"quadratic"};
    fista: every non-smooth term has a prox)."""
    info = mc.available_backends()
    need = _cones(penalties)
    proximable = all(p.is_smooth or p.provides("prox") for p in penalties)
    return [b for b in (among or INSTALLED) if b in INSTALLED
            and (need <= info[b].cones or (b == "fista" and proximable))]


def _solve(prob, backend):
    sol = prob.solve(backend=backend, tol=SOLVE_TOL[backend])
    assert sol.backend == backend
    # ECOS stops ~1e-5 from the optimum in W: its certificate may not meet 1e-8 (see TOL).
    assert sol.status == "optimal" or backend == "ecos"
    return sol


def _check(backend, sol_W, sol_F, W_ref, F_ref, label=""):
    """Assert W and F within the backend's tolerance."""
    tol = TOL[backend]
    W_ref = np.asarray(W_ref, dtype=float)
    w_err = float(np.abs(sol_W - W_ref).max()) / max(1.0, float(np.abs(W_ref).max()))
    f_err = abs(sol_F - F_ref) / max(abs(F_ref), 1e-300)
    assert f_err <= tol.F, f"{label} {backend}: F={sol_F!r} vs {F_ref!r} (rel {f_err:.2e})"
    assert w_err <= tol.W, f"{label} {backend}: W error {w_err:.2e}\n{sol_W}\nvs\n{W_ref}"


def _identity_data(Y) -> mc.MultiTaskData:
    """``X_t = I_d`` and ``y_t = Y[:, t]``: the loss is ½‖W − Y‖²_F with scale="sum"."""
    Y = np.asarray(Y, dtype=float)
    return mc.MultiTaskData.shared(np.eye(Y.shape[0]), Y)


# ---------------------------------------------------------------------------------------
# 1. Tiny hand-solved problems, X_t = I, loss ½‖W − Y‖²_F (scale="sum").
#
# T-Lap: d = 1, T = 2, y = (1, −1); (1/2) tr(W L Wᵀ) = ½(w₁ − w₂)². Stationarity with
#   w₂ = −w₁: (w₁ − 1) + 2w₁ = 0 → w₁ = 1/3; F = ½·(4/9)·2 + ½·(2/3)² = 2/3.
# T-EP: E&P with λ₁ = λ₂ = 2, T = 2 gives ρ₁ = ρ₂ = λ₁λ₂/(T(λ₁+λ₂)) = λ₁²/(T(λ₁+λ₂)) = ½
#   (docs/conventions.md) on the un-halved loss; halving everything: ½Σ(w−y)² + ¼Σw² + ¼Σ(w−w̄)²
#   = Ridge(0.5) + MeanRegularized(0.5). Stationarity: (w_t − y_t) + ½w_t + ½(w_t − w̄) = 0,
#   i.e. 2w_t − ½w̄ = y_t; summing, 3w̄ = 4 → w̄ = 4/3, w_t = (y_t + 2/3)/2 = (5/6, 11/6).
#   F = ½(1/36 + 49/36) + ¼(25/36 + 121/36) + ¼(¼ + ¼) = (25 + 36.5 + 4.5)/36 = 11/6.
# T-L21: row norms of Y are 5 and 0.5; group shrink at 1: row 0 → (1 − 1/5)(3, 4) =
#   (2.4, 3.2), row 1 → 0. F = ½(0.36 + 0.64 + 0.09 + 0.16) + 1·4 = 4.625.
# T-Nuc: σ(Y) = (3, 1), soft-threshold at 1.5 → (1.5, 0); F = ½(2.25 + 1) + 1.5·1.5 = 3.875.
# T-MTRL-full: MTRL reduced (docs/relations.md) is ½‖W−Y‖² + (λ₁/2)‖W‖²_F + (λ₂/2)‖W‖²_*, and
#   SquaredTraceNorm(α) = (α/2)‖W‖²_*, so λ₁ = 1 → Ridge(1) and λ₂ = 0.5 → alpha = 0.5
#   (NOT 1). Derivation: with W = U diag(s) Vᵀ sharing Y's singular vectors, the
#   stationarity on s_i > 0 is (s_i − σ_i) + λ₁ s_i + λ₂ S = 0, S = Σ s_i, so
#   s_i = max(σ_i − λ₂S, 0)/(1 + λ₁). σ = (4, 2), both active:
#   S = 6/(1 + λ₁ + 2λ₂) = 6/3 = 2, s = ((4−1)/2, (2−1)/2) = (1.5, 0.5) ✓.
#   F = ½(2.5² + 1.5²) + ½(1.5² + 0.5²) + ¼·2² = 4.25 + 1.25 + 1 = 6.5.
#   (alpha = 1 would give S = 6/4, s = (1.25, 0.25): a different answer.)
# T-MTRL-singular: λ₁ = 0, λ₂ = 1, σ = (3, 1): r = 1 → S = 3/2, s = (1.5, 0) (1 − 1.5 < 0);
#   F = ½(1.5² + 1²) + ½·1.5² = 2.75.
# ---------------------------------------------------------------------------------------

TINY = {
    "T-Lap": ([[1.0, -1.0]], lambda: [mc.GraphLaplacian([[0.0, 1.0], [1.0, 0.0]], alpha=1.0)],
              [[1 / 3, -1 / 3]], 2 / 3),
    "T-EP": ([[1.0, 3.0]], lambda: [mc.Ridge(0.5), mc.MeanRegularized(0.5)],
             [[5 / 6, 11 / 6]], 11 / 6),
    "T-L21": ([[3.0, 4.0], [0.3, 0.4]], lambda: [mc.L21(1.0)],
              [[2.4, 3.2], [0.0, 0.0]], 4.625),
    "T-Nuc": (np.diag([3.0, 1.0]), lambda: [mc.TraceNorm(1.5)], np.diag([1.5, 0.0]), 3.875),
    "T-MTRL-full": (np.diag([4.0, 2.0]), lambda: [mc.Ridge(1.0), mc.SquaredTraceNorm(0.5)],
                    np.diag([1.5, 0.5]), 6.5),
    "T-MTRL-singular": (np.diag([3.0, 1.0]), lambda: [mc.SquaredTraceNorm(1.0)],
                        np.diag([1.5, 0.0]), 2.75),
}

TINY_CASES = [(name, b) for name, case in TINY.items() for b in _capable(case[1]())]
TINY_REFUSED = [(name, b) for name, case in TINY.items() for b in INSTALLED
                if b not in _capable(case[1]())]


@pytest.mark.parametrize(("name", "backend"), TINY_CASES)
def test_math_catalogue_tiny(name, backend):
    Y, pens, W_star, F_star = TINY[name]
    prob = mc.Problem(_identity_data(Y), mc.SquaredLoss(scale="sum"), pens())
    assert prob.cones <= mc.available_backends()[backend].cones
    sol = _solve(prob, backend)
    _check(backend, sol.W, sol.objective, W_star, F_star, name)
    _check(backend, sol.W, sol.solver_objective, W_star, F_star, name + " (solver's F)")


def test_tiny_catalogue_covers_every_backend():
    covered = {b for _, b in TINY_CASES}
    assert covered == set(INSTALLED)
    # OSQP has no SOC/PSD, ECOS no PSD, direct only quadratic penalties.
    expected = {"T-L21": {"osqp", "direct"}, "T-Nuc": {"osqp", "ecos", "direct"}}
    for name, refused in expected.items():
        assert {b for n, b in TINY_REFUSED if n == name} == refused & set(INSTALLED)


@pytest.mark.parametrize(("name", "backend"), TINY_REFUSED)
def test_math_catalogue_refused_backends_raise(name, backend):
    Y, pens, _, _ = TINY[name]
    prob = mc.Problem(_identity_data(Y), mc.SquaredLoss(scale="sum"), pens())
    with pytest.raises(mc.IncompatibleBackend):
        prob.solve(backend=backend)


# ---------------------------------------------------------------------------------------
# 2. Random denoising problems against closed forms. Two designs with the same W*:
#    "shared": X_t = I_d;  "rotated": X_t = Q_t (n_t × d, orthonormal columns) and
#    y_t = Q_t Y[:, t] + r_t with r_t ⟂ range(Q_t), so ½‖Q_t w − y_t‖² = ½‖w − Y_t‖² + ½‖r_t‖²
#    (exercises the per-task path and the constant offset).
# ---------------------------------------------------------------------------------------

D_RAND, T_RAND = 6, 4


def _denoising(Y, design, rng):
    d, T = Y.shape
    if design == "shared":
        return _identity_data(Y), 0.0
    Xs, ys, offset = [], [], 0.0
    for t in range(T):
        n_t = d + 2 + t
        Q, _ = np.linalg.qr(rng.standard_normal((n_t, n_t)))
        Xt, perp = Q[:, :d], Q[:, d:]
        r = perp @ rng.standard_normal(n_t - d)
        Xs.append(Xt)
        ys.append(Xt @ Y[:, t] + r)
        offset += 0.5 * r @ r
    data = mc.MultiTaskData(Xs, ys)
    assert not data.is_shared
    return data, offset


def _group_soft_threshold(Y, lam):
    norms = np.sqrt((Y**2).sum(axis=1))
    return Y * np.maximum(0.0, 1.0 - lam / norms)[:, None]


def _svt(Y, lam):
    U, s, Vt = np.linalg.svd(Y, full_matrices=False)
    return U @ np.diag(np.maximum(s - lam, 0.0)) @ Vt


def _soft_threshold(Y, lam):
    return np.sign(Y) * np.maximum(np.abs(Y) - lam, 0.0)


def _random_l21(rng):
    lam = 1.2
    radii = np.array([3.0, 2.5, 0.6, 1.9, 0.3, 4.0])  # rows 2 and 4 are zeroed
    U = rng.standard_normal((D_RAND, T_RAND))
    Y = U / np.linalg.norm(U, axis=1, keepdims=True) * radii[:, None]
    W = _group_soft_threshold(Y, lam)
    pen = lam * np.linalg.norm(W, axis=1).sum()
    assert np.count_nonzero(np.abs(W).sum(axis=1) == 0) == 2
    return Y, [mc.L21(lam)], W, pen


def _random_trace(rng):
    lam = 1.0
    U, _ = np.linalg.qr(rng.standard_normal((D_RAND, T_RAND)))
    V, _ = np.linalg.qr(rng.standard_normal((T_RAND, T_RAND)))
    Y = U @ np.diag([5.0, 3.0, 1.5, 0.4]) @ V.T
    W = _svt(Y, lam)
    pen = lam * np.linalg.svd(W, compute_uv=False).sum()
    assert np.linalg.matrix_rank(W, tol=1e-8) == 3
    return Y, [mc.TraceNorm(lam)], W, pen


def _random_l1(rng):
    lam = 0.5
    Y = rng.standard_normal((D_RAND, T_RAND))
    Y[np.abs(np.abs(Y) - lam) < 0.05] += 0.2  # keep entries away from the kink
    W = _soft_threshold(Y, lam)
    assert 0 < np.count_nonzero(W) < W.size
    return Y, [mc.L1(lam)], W, lam * np.abs(W).sum()


RANDOM = {"L21": (_random_l21, ["clarabel", "scs", "ecos"]),
          "TraceNorm": (_random_trace, ["clarabel", "scs"]),
          "L1": (_random_l1, ["clarabel", "scs", "ecos", "osqp"])}
RANDOM_CASES = [(name, b) for name, (make, among) in RANDOM.items()
                for b in _capable(make(np.random.default_rng(0))[1], among)]


@pytest.mark.parametrize("design", ["shared", "rotated"])
@pytest.mark.parametrize(("name", "backend"), RANDOM_CASES)
def test_denoising_closed_forms(name, backend, design):
    rng = np.random.default_rng(2024)
    Y, pens, W_star, pen_star = RANDOM[name][0](rng)
    data, offset = _denoising(Y, design, rng)
    F_star = 0.5 * np.sum((W_star - Y) ** 2) + pen_star + offset
    prob = mc.Problem(data, mc.SquaredLoss(scale="sum"), pens)
    sol = _solve(prob, backend)
    _check(backend, sol.W, sol.objective, W_star, F_star, f"{name}/{design}")
    _check(backend, sol.W, sol.solver_objective, W_star, F_star, f"{name}/{design} solver F")


def _lasso_tasks(rng):
    d, n = 5, [15, 22, 30]
    w_true = np.array([[1.5, 0.0, -2.0, 0.0, 0.7], [1.2, 0.3, -1.8, 0.0, 0.0],
                       [0.0, 0.0, -2.2, 0.5, 0.9]]).T
    Xs = [rng.standard_normal((k, d)) for k in n]
    ys = [X @ w_true[:, t] + 0.5 * rng.standard_normal(X.shape[0]) for t, X in enumerate(Xs)]
    return Xs, ys


@pytest.mark.parametrize("backend", _capable([mc.L1(1.0)], ["clarabel", "scs", "ecos", "osqp"]))
def test_l1_per_task_matches_sklearn_lasso(backend):
    # Lasso: 1/(2n)‖y − Xw‖² + α‖w‖₁ = the t-th term of scale="mean" + α Σ|W| (separable).
    alpha = 0.08
    Xs, ys = _lasso_tasks(np.random.default_rng(7))
    cols = []
    for X, y in zip(Xs, ys, strict=True):
        model = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=1_000_000)
        cols.append(model.fit(X, y).coef_)
    W_sk = np.stack(cols, axis=1)
    assert 0 < np.count_nonzero(W_sk) < W_sk.size
    F_sk = sum(np.sum((y - X @ W_sk[:, t]) ** 2) / (2 * len(y))
               for t, (X, y) in enumerate(zip(Xs, ys, strict=True))) + alpha * np.abs(W_sk).sum()
    prob = mc.Problem(mc.MultiTaskData(Xs, ys), mc.SquaredLoss(scale="mean"), [mc.L1(alpha)])
    sol = _solve(prob, backend)
    _check(backend, sol.W, sol.objective, W_sk, F_sk, "lasso")


# ---------------------------------------------------------------------------------------
# 3. L21 on a shared design = scikit-learn MultiTaskLasso:
#    (1/(2n))‖Y − XW − 1bᵀ‖²_F + α Σ_j ‖W_j,:‖₂ = scale="mean" (n_t = n for all t) + L21(α).
# ---------------------------------------------------------------------------------------

def _shared_regression(rng, n=30, d=6, T=4):
    X = rng.standard_normal((n, d)) * np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.0])
    W_true = np.zeros((d, T))
    W_true[[0, 2, 4]] = rng.standard_normal((3, T))
    Y = X @ W_true + 0.3 * rng.standard_normal((n, T)) + np.array([1.0, -2.0, 0.5, 3.0])
    return X, Y


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("backend", _capable([mc.L21(1.0)], ["clarabel", "ecos", "scs"]))
def test_l21_shared_design_matches_multitask_lasso(backend, fit_intercept):
    alpha = 0.3
    X, Y = _shared_regression(np.random.default_rng(11))
    n = X.shape[0]
    sk = MultiTaskLasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-12,
                        max_iter=1_000_000).fit(X, Y)
    W_sk = sk.coef_.T
    b_sk = np.asarray(sk.intercept_) if fit_intercept else np.zeros(Y.shape[1])
    assert np.count_nonzero(np.linalg.norm(W_sk, axis=1) == 0) >= 1
    F_sk = np.sum((Y - X @ W_sk - b_sk) ** 2) / (2 * n) + alpha * np.linalg.norm(W_sk,
                                                                                   axis=1).sum()
    data = mc.MultiTaskData.shared(X, Y)
    prob = mc.Problem(data, mc.SquaredLoss(scale="mean"), [mc.L21(alpha)],
                      fit_intercept=fit_intercept)
    sol = _solve(prob, backend)
    _check(backend, sol.W, sol.objective, W_sk, F_sk, f"MultiTaskLasso b={fit_intercept}")
    if fit_intercept:
        tol = TOL[backend].W * max(1.0, np.abs(b_sk).max())
        np.testing.assert_allclose(sol.intercept, b_sk, rtol=0, atol=tol)
    else:
        assert sol.intercept is None


# ---------------------------------------------------------------------------------------
# 4. The seeds' problems (conventions converted; the seeds' own code is buggy).
# ---------------------------------------------------------------------------------------

SEED0_X = [np.array([[1, 2], [3, 4], [5, 6]], float), np.array([[2, 3], [4, 5], [6, 7]], float),
           np.array([[3, 4], [5, 6], [7, 8]], float)]
SEED0_Y = [np.array([1, 2, 3], float), np.array([2, 3, 4], float), np.array([3, 4, 5], float)]


def _seed0_objective(W, K, a):
    """Seed 000 as written: Σ_i a_i‖X_i w_i − y_i‖² + ½ Σ_ij K_ij ⟨w_i, w_j⟩."""
    loss = sum(a[i] * np.sum((SEED0_X[i] @ W[:, i] - SEED0_Y[i]) ** 2) for i in range(3))
    return loss + 0.5 * sum(K[i, j] * W[:, i] @ W[:, j] for i in range(3) for j in range(3))


@pytest.mark.parametrize("weights", [None, (1.0, 2.0, 0.5)])
@pytest.mark.parametrize("backend", INSTALLED)
def test_seed000_task_relation(backend, weights):
    # Seed 000: F_seed(W) = Σ_i a_i‖X_i w_i − y_i‖² + ½ Σ_ij K_ij w_i·w_j, K = 0.1·11ᵀ
    # (a_i = 1 as the seed's code). ½ Σ_ij K_ij w_i·w_j = ½ tr(W K Wᵀ), so
    # F_seed = 2·[Σ_i (a_i/2)‖·‖² + ¼ tr(W K Wᵀ)] = 2 × (mtlcvx objective with
    # SquaredLoss("sum", task_weights=a) + TaskRelation(K, alpha=0.5)), since
    # TaskRelation(K, α) = (α/2) tr(W K Wᵀ).
    a = np.ones(3) if weights is None else np.array(weights)
    K = 0.1 * np.ones((3, 3))
    d, T = 2, 3
    assert np.linalg.matrix_rank(K) == 1  # K is only PSD ...
    assert all(np.linalg.matrix_rank(X) == d for X in SEED0_X)  # ... but each X_i has full rank
    # Independent optimum: ∇F_seed = 0 ⇔ (2·blkdiag(a_i X_iᵀX_i) + K ⊗ I_d) vec(W) = 2[a_i X_iᵀ y_i]
    H = np.zeros((d * T, d * T))
    g = np.zeros(d * T)
    for i in range(T):
        H[i * d:(i + 1) * d, i * d:(i + 1) * d] = 2 * a[i] * SEED0_X[i].T @ SEED0_X[i]
        g[i * d:(i + 1) * d] = 2 * a[i] * SEED0_X[i].T @ SEED0_Y[i]
    H += np.kron(K, np.eye(d))
    assert np.linalg.eigvalsh(H).min() > 1e-3  # strictly convex: the optimum is unique
    W_ref = np.linalg.solve(H, g).reshape(T, d).T
    F_ref = _seed0_objective(W_ref, K, a)

    loss = mc.SquaredLoss(scale="sum", task_weights=weights)
    prob = mc.Problem(mc.MultiTaskData(SEED0_X, SEED0_Y), loss, [mc.TaskRelation(K, alpha=0.5)])
    sol = _solve(prob, backend)
    _check(backend, sol.W, 2 * sol.objective, W_ref, F_ref, "seed000")
    # The package's objective is the seed's objective (halved) at the returned W.
    assert 2 * sol.objective == pytest.approx(_seed0_objective(sol.W, K, a), rel=1e-12)


def _seed004_data():
    # The seed's generator: np.random.seed(0); X = rand(3, 100, 2); y = rand(3, 100);
    # task i is (X[i], y[i]) (the seed's X[:, i, :] indexing is a bug).
    gen = np.random.RandomState(0)
    X = gen.rand(3, 100, 2)
    y = gen.rand(3, 100)
    Z = np.random.default_rng(4).standard_normal((3, 2))
    return [X[i] for i in range(3)], [y[i] for i in range(3)], Z


@pytest.mark.parametrize("backend", INSTALLED)
def test_seed004_outer_product_relation(backend):
    # Seed 004: F_seed(W) = Σ_i mean((y_i − X_i w_i)²) + λ tr(W A Wᵀ), A = Z Zᵀ.
    # scale="mean" is Σ_i (1/(2n_i))‖·‖², TaskRelation(A, α) is (α/2) tr(W A Wᵀ), so
    # F_seed = 2 × (mtlcvx objective with SquaredLoss("mean") + TaskRelation(A, alpha=λ)).
    lam = 0.3
    Xs, ys, Z = _seed004_data()
    T, d = 3, 2
    A = Z @ Z.T
    np.testing.assert_allclose(mc.relations.outer(Z), A, rtol=1e-15)
    assert np.linalg.matrix_rank(A) == 2  # T = 3: A is singular (PSD only)

    def seed_objective(W):
        mse = sum(np.mean((ys[i] - Xs[i] @ W[:, i]) ** 2) for i in range(T))
        return mse + lam * np.trace(W @ A @ W.T)

    # ∇F_seed = 0 ⇔ ((2/n_i) blkdiag(X_iᵀX_i) + 2λ A ⊗ I_d) vec(W) = [(2/n_i) X_iᵀ y_i]
    H = 2 * lam * np.kron(A, np.eye(d))
    g = np.zeros(d * T)
    for i in range(T):
        n_i = len(ys[i])
        H[i * d:(i + 1) * d, i * d:(i + 1) * d] += 2 / n_i * Xs[i].T @ Xs[i]
        g[i * d:(i + 1) * d] = 2 / n_i * Xs[i].T @ ys[i]
    assert np.linalg.eigvalsh(H).min() > 1e-3
    W_ref = np.linalg.solve(H, g).reshape(T, d).T
    F_ref = seed_objective(W_ref)

    prob = mc.Problem(mc.MultiTaskData(Xs, ys), mc.SquaredLoss(scale="mean"),
                      [mc.TaskRelation(mc.relations.outer(Z), alpha=lam)])
    sol = _solve(prob, backend)
    _check(backend, sol.W, 2 * sol.objective, W_ref, F_ref, "seed004")
    assert 2 * sol.objective == pytest.approx(seed_objective(sol.W), rel=1e-12)


# ---------------------------------------------------------------------------------------
# 5. Intercepts with a non-quadratic penalty: clarabel vs ecos, the reported intercept
#    against mean(y_t − X_t w_t), and both against an independent NumPy solve with the
#    intercepts as explicit unknowns (no centring, no compression): proximal gradient
#    (FISTA with gradient restart) on (W, b), the prox being the closed-form row-group
#    shrinkage of W (b unpenalised).
# ---------------------------------------------------------------------------------------

def _fista_l21_with_intercepts(Xs, ys, c, alpha, max_iter=100_000):
    """min Σ_t c_t/2 ‖X_t w_t + b_t − y_t‖² + α Σ_j ‖W_j,:‖ over (W, b); returns W, b."""
    T, d = len(Xs), Xs[0].shape[1]
    Xa = [np.hstack([X, np.ones((X.shape[0], 1))]) for X in Xs]
    H = [c[t] * Xa[t].T @ Xa[t] for t in range(T)]
    g = [c[t] * Xa[t].T @ ys[t] for t in range(T)]
    L = max(np.linalg.eigvalsh(h).max() for h in H)
    theta = np.zeros((d + 1, T))
    z, tk = theta.copy(), 1.0
    for _ in range(max_iter):
        V = z - np.stack([H[t] @ z[:, t] - g[t] for t in range(T)], axis=1) / L
        new = V.copy()
        norms = np.linalg.norm(V[:d], axis=1, keepdims=True)
        new[:d] *= np.maximum(0.0, 1.0 - alpha / L / np.maximum(norms, 1e-300))
        if np.sum((z - new) * (new - theta)) > 0:  # O'Donoghue-Candès restart
            tk = 1.0
        tn = (1 + np.sqrt(1 + 4 * tk * tk)) / 2
        z = new + (tk - 1) / tn * (new - theta)
        step = np.abs(new - theta).max()
        theta, tk = new, tn
        if step < 1e-15:
            break
    assert step < 1e-13, f"reference FISTA did not converge (last step {step:.1e})"
    return theta[:d], theta[d]


def test_l21_intercept_clarabel_ecos_and_explicit_intercepts():
    backends = _capable([mc.L21(1.0)], ["clarabel", "ecos"])
    if len(backends) < 2:
        pytest.skip("needs clarabel and ecos")
    rng = np.random.default_rng(5)
    d, n = 5, [12, 20, 9, 16]
    T = len(n)
    Xs = [rng.standard_normal((k, d)) + rng.standard_normal(d) for k in n]  # uncentred
    W_true = np.zeros((d, T))
    W_true[[1, 3]] = rng.standard_normal((2, T))
    ys = [X @ W_true[:, t] + 2.0 * t - 1 + 0.2 * rng.standard_normal(X.shape[0])
          for t, X in enumerate(Xs)]
    alpha, weights = 0.1, np.array([1.0, 0.5, 2.0, 1.5])

    # scale="mean" with task weights ω: c_t = ω_t / n_t.
    W_ref, b_ref = _fista_l21_with_intercepts(Xs, ys, weights / np.array(n), alpha)
    F_ref = sum(weights[t] / (2 * n[t]) * np.sum((Xs[t] @ W_ref[:, t] + b_ref[t] - ys[t]) ** 2)
                for t in range(T)) + alpha * np.linalg.norm(W_ref, axis=1).sum()
    assert np.count_nonzero(np.linalg.norm(W_ref, axis=1) == 0) >= 1  # a row is selected out
    assert np.abs(b_ref).max() > 1.0  # the intercepts matter

    prob = mc.Problem(mc.MultiTaskData(Xs, ys),
                      mc.SquaredLoss(scale="mean", task_weights=weights), [mc.L21(alpha)],
                      fit_intercept=True)
    sols = {b: _solve(prob, b) for b in backends}
    for b, sol in sols.items():
        b_mean = np.array([np.mean(ys[t] - Xs[t] @ sol.W[:, t]) for t in range(T)])
        np.testing.assert_allclose(sol.intercept, b_mean, rtol=0, atol=1e-12)
        _check(b, sol.W, sol.objective, W_ref, F_ref, "L21+intercept")
        np.testing.assert_allclose(sol.intercept, b_ref, rtol=0,
                                   atol=TOL[b].W * max(1.0, np.abs(b_ref).max()))
    cl, ec = sols["clarabel"], sols["ecos"]
    assert ec.objective == pytest.approx(cl.objective, rel=TOL["ecos"].F)
    np.testing.assert_allclose(ec.W, cl.W, rtol=0, atol=TOL["ecos"].W)
    np.testing.assert_allclose(ec.intercept, cl.intercept, rtol=0,
                               atol=TOL["ecos"].W * max(1.0, np.abs(b_ref).max()))
