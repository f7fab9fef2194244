"""Exact proximal operators and dual norms shared by the structured penalties.

Everything here is vectorised over the rows (or columns) of a matrix: no Python loop
runs per row. The 1-D total-variation prox runs a primal-dual active-set method on
the dual box problem; every iteration is one symmetric positive definite tridiagonal
solve (LAPACK ``ptsv``) over all rows at once, and the method stops at the exact
solution (its active sets stop changing; the solution then satisfies the optimality
conditions up to round-off).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy

__all__ = [
    "soft_threshold", "row_norms", "shrink_rows", "shrink_cols", "project_l1_rows",
    "prox_linf_rows",
    "spectral_shrink", "svt", "project_nuclear_ball", "tv_prox_rows", "tv_values", "row_l1_infconv",
    "row_test_scale",
]

_TINY = np.finfo(float).tiny


def soft_threshold(V: np.ndarray, t: float) -> np.ndarray:
    """Entrywise ``sign(v)·max(|v| − t, 0)``, the prox of ``t‖·‖₁``."""
    return np.sign(V) * np.maximum(np.abs(V) - t, 0.0)


def row_norms(V: np.ndarray) -> np.ndarray:
    """``‖v^j‖₂`` of every row of ``V`` (r, n), as one fused sum of squares (a third of
    ``np.linalg.norm(V, axis=1)``'s call overhead on small matrices)."""
    return np.sqrt(np.einsum("jt,jt->j", V, V))


def _group_shrink_factor(norms: np.ndarray, t: float) -> np.ndarray:
    """``max(0, 1 − t/‖v‖)`` per group norm, 0 for groups with ``‖v‖ ≤ t`` (no overflow:
    ``t/max(‖v‖, t) ≤ 1``, and exactly 1 when ``‖v‖ ≤ t``)."""
    if t <= 0:
        return np.ones_like(norms)
    factor = np.maximum(norms, t)
    np.divide(t, factor, out=factor)
    return np.subtract(1.0, factor, out=factor)


def shrink_rows(V: np.ndarray, t: float) -> np.ndarray:
    """Row group shrink ``v^j ← max(0, 1 − t/‖v^j‖₂) v^j``, the prox of ``t Σ_j ‖v^j‖₂``."""
    return V * _group_shrink_factor(row_norms(V), t)[:, None]


def shrink_cols(V: np.ndarray, t: float) -> np.ndarray:
    """Column group shrink, the prox of ``t Σ_t ‖v_t‖₂``."""
    return V * _group_shrink_factor(np.linalg.norm(V, axis=0, keepdims=True), t)


def _l1_threshold(A: np.ndarray, radius: float) -> np.ndarray:
    """Per row of non-negative ``A`` (r, n), the ``θ ≥ 0`` with ``Σ max(a − θ, 0) = radius``
    (0 where the row already lies in the ball)."""
    if A.shape[1] == 0:
        return np.zeros(A.shape[0])
    U = -np.sort(-A, axis=1)
    css = np.cumsum(U, axis=1) - radius
    k = np.arange(1, A.shape[1] + 1)
    rho = np.count_nonzero(U * k > css, axis=1)  # the condition holds on a prefix
    rho = np.maximum(rho, 1)
    theta = css[np.arange(A.shape[0]), rho - 1] / rho
    return np.maximum(theta, 0.0)


def project_l1_rows(V: np.ndarray, radius: float) -> np.ndarray:
    """Project every row of ``V`` (r, n) onto the L1 ball of ``radius`` (sort-based, exact)."""
    A = np.abs(V)
    theta = _l1_threshold(A, radius)
    return np.sign(V) * np.maximum(A - theta[:, None], 0.0)


def prox_linf_rows(V: np.ndarray, t: float) -> np.ndarray:
    """Prox of ``t Σ_j ‖v^j‖_∞`` by Moreau: ``v − Π_{‖·‖₁ ≤ t}(v)`` per row."""
    return V - project_l1_rows(V, t)


def spectral_shrink(V: np.ndarray, threshold: Callable[[np.ndarray], float]) -> np.ndarray:
    """``U diag(max(s − θ, 0)) Vᵀ`` with ``θ = threshold(s)`` for the SVD ``V = U diag(s) Vᵀ``.

    Through the eigendecomposition of the smaller Gram matrix (``V = U diag(s) Vᵀ`` gives
    ``VVᵀ = U diag(s²) Uᵀ`` and the result ``U diag(max(s − θ, 0)/s) Uᵀ V``), a fraction of
    an SVD's cost. The Gram matrix resolves a singular value ``s`` to ``ε s_max²/s``, so the
    result is off by at most ``ε s_max²/(2 s_min)`` (``s_min`` the smallest kept value):
    below ``1.2e-11·s_max`` while ``s_min ≥ 1e-5·s_max``; below that the SVD is used.
    """
    wide = V.shape[0] <= V.shape[1]
    G = V @ V.T if wide else V.T @ V
    lam, U = np.linalg.eigh(G)
    s = np.sqrt(np.maximum(lam, 0.0))
    theta = threshold(s)
    if theta <= 0:
        return V.copy()
    kept = s > theta
    if not kept.any():
        return np.zeros_like(V)
    if s[kept].min() < 1e-5 * s[-1]:
        U, s, Vt = np.linalg.svd(V, full_matrices=False)
        return (U * np.maximum(s - threshold(s), 0.0)) @ Vt
    Uk = U[:, kept]
    factor = (s[kept] - theta) / s[kept]
    return (Uk * factor) @ (Uk.T @ V) if wide else (V @ Uk) @ (Uk * factor).T


def svt(V: np.ndarray, t: float) -> np.ndarray:
    """Singular-value soft-thresholding, the prox of ``t‖·‖_*``."""
    return spectral_shrink(V, lambda s: t)


def project_nuclear_ball(V: np.ndarray, tau: float) -> np.ndarray:
    """Projection onto ``{‖Q‖_* ≤ τ}``: the singular values projected onto the L1 ball."""
    return spectral_shrink(
        V, lambda s: 0.0 if s.sum() <= tau else _l1_threshold(s[None, :], tau)[0])


# ---------------------------------------------------------------------- total variation
def tv_values(V: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``Σ_i λ_i |v_{i+1} − v_i|`` for every row of ``V`` (r, m), ``weights`` (m − 1,)."""
    return np.abs(np.diff(V, axis=1)) @ weights


def tv_prox_rows(V: np.ndarray, weights: np.ndarray, U0: np.ndarray | None = None,
                 max_iter: int = 200) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact prox of the weighted 1-D total variation along every row of ``V``.

    .. math::

        x = \arg\min_x \tfrac12\lVert x - v\rVert^2 + \sum_i \lambda_i |x_{i+1} - x_i|

    for each row ``v`` of ``V`` (r, m) with ``λ = weights`` (m − 1,) ≥ 0 (a zero weight
    cuts the chain). Solved through the dual ``min_{|u_i| ≤ λ_i} ½‖Dᵀu − v‖²``,
    ``x = v − Dᵀu`` (D the forward differences), a box-constrained quadratic with the
    tridiagonal M-matrix ``DDᵀ``. Every iteration, on all rows at once:

    1. the active-set (Hintermüller–Ito–Kunisch) candidate: ``u`` fixed at the bound
       where ``u − ∇`` leaves the box, the rest solved exactly (one positive definite
       tridiagonal LAPACK solve); a row whose candidate satisfies the optimality
       conditions (inside the box, multipliers of the right sign) is finished, exactly;
    2. otherwise the candidate is taken if it lowers the dual, else a projected Newton
       step (Bertsekas) with an Armijo search along the projection arc, which always
       makes progress (the active-set step alone can cycle on box constraints).

    Descent is measured by the exact change of the quadratic (``⟨g, Δ⟩ + ½‖DᵀΔ‖²``),
    free of cancellation. A row also stops when its projected gradient is at round-off
    level or no step changes it.

    Parameters
    ----------
    V : ndarray (r, m)
    weights : ndarray (m − 1,)
    U0 : ndarray (r, m − 1), optional
        Warm start for the dual variable (e.g. the previous call's); any value is safe.
    max_iter : int
        Cap on iterations (far above what is needed: a few, fewer from a warm start).

    Returns
    -------
    X : ndarray (r, m)
        The prox.
    U : ndarray (r, m − 1)
        The dual variable (to warm-start the next call).
    """
    r, m = V.shape
    if m <= 1 or r == 0:
        return V.copy(), np.zeros((r, max(m - 1, 0)))
    lam = np.broadcast_to(np.asarray(weights, dtype=float), (r, m - 1))
    cut = lam <= 0
    # the gradient −Dx is computed from x, so its round-off scales with |v|, not with |Dv|
    scale = np.maximum(np.abs(V).max(axis=1), lam.max(axis=1)) + _TINY
    tol = (8.0 * m * np.finfo(float).eps * scale)[:, None]
    U = np.zeros((r, m - 1)) if U0 is None else np.clip(U0, -lam, lam)
    X = _primal(V, U)
    live = np.ones(r, dtype=bool)
    for _ in range(max_iter):
        G = -np.diff(X, axis=1)  # ∇ of the dual: DDᵀu − Dv = −Dx
        res = np.abs(U - np.clip(U - G, -lam, lam))
        live &= (res > tol).any(axis=1)
        if not live.any():
            break
        # 1. the active-set candidate: the exact minimiser on the face it picks
        z = U - G
        upper = (z > lam) & ~cut
        lower = (z < -lam) & ~cut
        fixed = upper | lower | cut
        face = np.where(upper, lam, np.where(lower, -lam, np.where(cut, 0.0, U)))
        cand = face + _newton_free(-np.diff(_primal(V, face), axis=1), fixed)
        Gc = -np.diff(_primal(V, cand), axis=1)
        optimal = live & np.all((np.abs(cand) <= lam + tol) & ~(upper & (Gc > tol))
                                & ~(lower & (Gc < -tol)), axis=1)
        cand = np.clip(cand, -lam, lam)
        better = live & ~optimal & (_change(G, cand - U) < 0)
        Un = np.where((optimal | better)[:, None], cand, U)
        search = live & ~optimal & ~better
        if search.any():
            # 2. projected Newton: Newton on the free set, gradient on the binding ones
            eps = np.minimum(res.max(axis=1), 1e-3 * scale)[:, None]
            binding = ((U >= lam - eps) & (G < 0)) | ((U <= -lam + eps) & (G > 0)) | cut
            D = np.where(binding, -G, _newton_free(G, binding))
            alpha = np.ones(r)
            for _ls in range(60):
                step = np.clip(U + alpha[:, None] * D, -lam, lam) - U
                lin = np.einsum("ij,ij->i", G, step)
                bad = search & (_change(G, step) > 1e-4 * lin)
                if not bad.any():
                    break
                alpha = np.where(bad, 0.5 * alpha, alpha)
            Un = np.where(search[:, None], U + step, Un)
        live &= ~optimal & np.any(Un != U, axis=1)  # no step left: at round-off level
        U = Un
        X = _primal(V, U)
    else:
        raise ArithmeticError("the total-variation prox did not converge in "
                              f"{max_iter} iterations")
    return X, U


def _change(G: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Exact change of the dual ``½‖Dᵀu − v‖²`` per row for the step ``u → u + Δ``:
    ``⟨g, Δ⟩ + ½‖DᵀΔ‖²`` (no cancellation between two nearly equal values)."""
    jump = _primal(np.zeros((step.shape[0], step.shape[1] + 1)), step)
    return np.einsum("ij,ij->i", G, step) + 0.5 * np.einsum("ij,ij->i", jump, jump)


def _primal(V: np.ndarray, U: np.ndarray) -> np.ndarray:
    """``x = v − Dᵀu`` row by row."""
    X = V.copy()
    X[:, :-1] += U
    X[:, 1:] -= U
    return X


def _newton_free(G: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Solve ``(DDᵀ)_FF d_F = −g_F`` on the free set F of every row (0 on fixed entries):
    one SPD tridiagonal system over all rows, fixed entries as identity rows."""
    r, n = G.shape
    free = ~fixed
    diag = np.where(free, 2.0, 1.0)
    off = np.where(free[:, :-1] & free[:, 1:], -1.0, 0.0)
    off = np.concatenate([off, np.zeros((r, 1))], axis=1).ravel()[:-1]  # rows do not couple
    _, _, x, info = scipy.linalg.lapack.dptsv(diag.ravel(), off, np.where(free, -G, 0.0).ravel())
    if info != 0:  # cannot happen: principal submatrices of an SPD matrix
        raise ArithmeticError(f"tridiagonal solve failed (LAPACK info {info})")
    return x.reshape(r, n)


# ---------------------------------------------------------------------- infimal convolutions
def row_l1_infconv(W: np.ndarray, a_rows: float, a_entries: float, rows: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    r"""Per row, ``min_{p+q=w} a_rows‖p‖ + a_entries‖q‖₁`` and its minimiser ``p``, with
    ``‖·‖`` the ∞-norm (``rows="linf"``) or the 2-norm (``rows="l2"``).

    A zero strength, or no columns, gives the value 0 with everything in the free part;
    otherwise the closed forms of :func:`_linf_l1` and :func:`_l2_l1`.

    Returns
    -------
    values : ndarray (r,)
    P : ndarray (r, T)
    """
    if a_entries == 0 or a_rows == 0 or W.shape[1] == 0:
        return np.zeros(W.shape[0]), (W.copy() if a_rows == 0 else np.zeros_like(W))
    return (_linf_l1 if rows == "linf" else _l2_l1)(W, a_rows, a_entries)


def _linf_l1(W: np.ndarray, a_rows: float, a_entries: float) -> tuple[np.ndarray, np.ndarray]:
    r"""``rows="linf"``: ``p = clip(w, −c, c)`` with ``c`` the ``(k+1)``-th largest
    ``|w_i|``, ``k = ⌊a_rows/a_entries⌋`` (``c = 0`` when ``k ≥ T``); the cost is
    piecewise linear in ``c`` with slope ``a_rows − a_entries·#{|w_i| > c}``."""
    A = np.abs(W)
    r, T = W.shape
    k = int(np.floor(a_rows / a_entries))
    if k >= T:
        c = np.zeros(r)
    else:
        c = -np.partition(-A, k, axis=1)[:, k]
    values = a_rows * c + a_entries * np.maximum(A - c[:, None], 0.0).sum(axis=1)
    return values, np.clip(W, -c[:, None], c[:, None])


def _l2_l1(W: np.ndarray, a_rows: float, a_entries: float) -> tuple[np.ndarray, np.ndarray]:
    r"""``rows="l2"``: by duality the value is ``max ⟨v, w⟩`` over ``‖v‖₂ ≤ a_rows``,
    ``‖v‖_∞ ≤ a_entries``: ``v_i = sign(w_i) min(a_entries, t|w_i|)`` with ``t`` set by
    ``‖v‖₂ = a_rows`` (the ``k`` largest entries capped, found by sorting), and
    ``p = v/t``."""
    A = np.abs(W)
    r, T = W.shape
    S = -np.sort(-A, axis=1)
    tail = np.cumsum((S * S)[:, ::-1], axis=1)[:, ::-1]  # tail[:, k] = Σ_{i ≥ k} S_i²
    k = np.arange(T)
    budget = a_rows ** 2 - k * a_entries ** 2  # what is left for the uncapped entries
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.sqrt(np.maximum(budget, 0.0) / tail)
        # k capped entries is consistent when S_{k-1} t ≥ a_entries > S_k t
        prev = np.concatenate([np.full((r, 1), np.inf), S[:, :-1]], axis=1)
        ok = (budget > 0) & (tail > 0) & (prev * t >= a_entries) & (S * t < a_entries)
    has = ok.any(axis=1)
    kk = np.argmax(ok, axis=1)
    t_row = np.where(has, t[np.arange(r), kk], np.inf)  # no t: the box alone fits the ball
    with np.errstate(invalid="ignore"):
        V = np.minimum(a_entries, t_row[:, None] * A)
    V = np.where(A > 0, V, 0.0)
    values = (V * A).sum(axis=1)
    P = np.where(np.isfinite(t_row)[:, None], np.sign(W) * V / np.where(
        np.isfinite(t_row), t_row, 1.0)[:, None], 0.0)
    return values, P


def row_test_scale(V: np.ndarray, a_l1: float, a_rows: float, iters: int = 60) -> float:
    r"""Largest ``s ≥ 0`` with ``‖soft(s·v^j, a_l1)‖₂ ≤ a_rows`` for every row ``j``.

    ``sV`` then lies in the dual ball of ``a_l1‖·‖₁ + a_rows Σ_j‖·^j‖₂`` (sparse group);
    the row test is monotone in ``s``, so bisection (vectorised over rows) gives the
    largest feasible ``s`` from below. ``inf`` when every ``s`` is feasible.
    """
    A = np.abs(V)
    top = A.max(axis=1, initial=0.0)
    live = top > 0
    if not live.any():
        return np.inf
    A = A[live]
    top = top[live]

    def ok(s: np.ndarray) -> np.ndarray:
        excess = np.maximum(s[:, None] * A - a_l1, 0.0)
        return np.sqrt((excess * excess).sum(axis=1)) <= a_rows

    lo = a_l1 / top  # soft(s v, a_l1) = 0 below this
    # above lo + a_rows/min-row-norm·... the excess exceeds a_rows: ‖s·a − a_l1‖ ≥ s‖a‖∞ − a_l1
    hi = (a_l1 + a_rows) / top * (1.0 + 1e-12) + _TINY
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        good = ok(mid)
        lo = np.where(good, mid, lo)
        hi = np.where(good, hi, mid)
    return float(lo.min())
