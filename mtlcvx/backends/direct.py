r"""The "direct" backend: exact linear solve of quadratic problems, by structure.

With squared loss and quadratic penalties the optimality condition is linear,

.. math::

    c_t A_t^\top A_t w_t + K_f w_t + (W K_t)_{:,t} = c_t A_t^\top z_t \quad (t = 1..T),

where ``A_t, z_t`` are the compressed task data, ``K_t = Σ α K`` the task-side and
``K_f = Σ α D`` the feature-side matrices. ``kron(K_t, I_d)`` is never formed densely;
the route follows the structure (``sol.info["method"]`` names it, ``sol.info["coupling"]``
the structure of ``K_t``):

* **shared design** (Sylvester): the eigenbasis ``XᵀX = V S Vᵀ`` (one d×d eigenproblem)
  turns the system into d independent T×T systems ``ŵ_i (K_t + s_i I) = b̂_i``, solved
  by the structure of ``K_t``: a divide (diagonal), banded Cholesky (a chain or other
  narrow band), a sparse ``LDLᵀ`` (sparse), Woodbury (``Z Zᵀ`` + diagonal) or one
  eigendecomposition (dense ``K_t``); rows solved at a condition above ``1/√ε`` are
  refined (:func:`_refine`);
* **per-task blocks** when ``K_t`` is diagonal: T independent d×d solves;
* **banded Cholesky / sparse LDLᵀ** of the sparse SPD system
  ``blkdiag(c_t A_tᵀA_t + K_f) + K_t ⊗ I_d`` when ``K_t`` is sparse (task-major order:
  a chain gives bandwidth d), refined (:func:`_refined`) where its condition bound is
  above ``1/√ε``;
* **Woodbury** when ``K_t = U Uᵀ + diagonal`` is given by a factor: T block solves and
  one ``(p·d)×(p·d)`` capacitance system;
* **dense Cholesky** of the assembled system while ``d·T ≤ dense_limit``; where it breaks
  down or its residual is large, the lowest objective of Cholesky's solution, the
  pseudo-inverse through ``eigh`` (a semidefinite system) and that refined by conjugate
  gradients in extended precision preconditioned by a symmetric-indefinite ``LDLᵀ`` (a
  ridge beside a strong ``αK``: definite but too ill-conditioned for float64 alone);
* **matrix-free preconditioned CG** otherwise, multiplying by ``K_t`` in its structure,
  preconditioned by the block-Jacobi blocks ``c_t H_t + K_f + (K_t)_tt I``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy

from .. import oracles
from .._linalg import (
    SCRATCH_ENTRIES,
    block_pinv,
    issparse,
    pinv_solve_psd,
    psd_cutoff,
    scratch,
)
from ..certificates import certify
from ..coupling import DENSE_LIMIT, TaskCoupling
from ..exceptions import MTLError, SolverFailed
from ..relations import _sparse_ldl
from ..solution import Solution
from .registry import Backend, certified_status, register

if TYPE_CHECKING:
    from ..problem import Problem

__all__ = ["DirectBackend"]

_QUADRATIC = "Ridge, TaskRelation, GraphLaplacian, MeanRegularized, FeatureRelation"
#: Largest band storage (entries) for the banded Cholesky of the per-task system.
_MAX_BAND_ENTRIES = 50_000_000


def _blocks(grams, c, Kf) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal blocks ``c_t X_tᵀX_t + K_f`` (T, d, d) and right side ``c_t X_tᵀy_t`` (d, T):
    the cached, read-only ``X_tᵀX_t`` and ``X_tᵀy_t`` themselves when every ``c_t = 1``
    and there is no ``K_f`` (a copy would be the route's largest temporary; a route that
    hands the right side to LAPACK to overwrite copies it first)."""
    if Kf is None and (c == 1.0).all():
        return grams.H, grams.B
    Hs = grams.H * c[:, None, None]
    if Kf is not None:
        Hs += Kf
    return Hs, grams.B * c


#: Unit roundoff of ``np.longdouble`` (float64's where long double is float64).
_EPS_LD = float(np.finfo(np.longdouble).eps)


def _slices(A: np.ndarray, bits: int, axis: int,
            count: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` float64 slices of ``A`` (any float dtype), largest first, and ``e``: slice k
    holds the integer multiples of ``2^(e − bits·(k + 1))`` that ``A`` less the earlier
    slices rounds to, ``2^e > max|A|`` along ``axis`` (each slice exact, below ``2^(e −
    bits·k)(1 + 2^−bits)``; what they leave is below ``2^(e − bits·count)``)."""
    top = np.max(np.abs(A), axis=axis, keepdims=True)
    e = np.frexp(np.where(top > 0, top, 1.0).astype(float))[1]
    out = []
    for k in range(count):
        scale = e - bits * (k + 1)
        S = np.ldexp(np.round(np.ldexp(A, -scale)), scale)
        out.append(S.astype(float))
        A = A - S
    return out, e


def _column_slices(K: np.ndarray, levels: int = 6) -> tuple[list[np.ndarray], np.ndarray, int]:
    """``K`` (T, m) float64 split for :func:`_accurate_product`: its column slices, their
    exponents and the slices' bits ``b = ⌊(51 − ⌈log₂T⌉)/2⌋`` (18 at T = 3000)."""
    bits = (51 - int(np.ceil(np.log2(max(K.shape[0], 2))))) // 2
    return (*_slices(K, bits, 0, levels), bits)


def _accurate_product(X: np.ndarray,
                      split: tuple[list[np.ndarray], np.ndarray, int]) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """``X K`` (X (k, T), any float dtype; ``split`` = :func:`_column_slices` of K (T, m)) in
    ``np.longdouble``, and a bound on its error entrywise: ``ε_ld|XK| + T·2^(e_x + e_k)
    (512ε² + (2L + 4)·2^(−bL))`` (``2^e`` above a row's of ``|X|`` and a column's of
    ``|K|``, L the number of slices): far below long double's own ``ε_ld|X||K|`` where
    ``XK`` cancels (``W·αK`` at the optimum: ``Wz ≈ 0`` beside ``α‖zzᵀ‖ ≈ 1e15``).

    Ozaki's error-free splitting: ``X`` by rows and ``K`` by columns into slices of ``b``
    bits, so that every slice product, ``T`` terms on one grid below ``2^53`` units, sums
    exactly in float64 BLAS; the products down to L levels are added with Knuth's TwoSum
    (their rounding kept in a second float64)."""
    ks, ek, bits = split
    levels, T = len(ks), ks[0].shape[0]
    xs, ex = _slices(X, bits, 1, levels)
    hi = np.zeros((X.shape[0], ks[0].shape[1]))
    lo = np.zeros_like(hi)
    for level in range(levels):
        for i in range(level + 1):
            P = xs[i] @ ks[level - i]
            total = hi + P
            part = total - hi
            lo += (hi - (total - part)) + (P - part)
            hi = total
    out = hi.astype(np.longdouble) + lo
    eps = np.finfo(float).eps
    left = 512.0 * eps * eps + (2 * levels + 4) * 2.0 ** (-bits * levels)
    return out, _EPS_LD * np.abs(out).astype(float) + T * left * np.ldexp(1.0, ex + ek)


def _extended_coupling(problem: Problem) -> Callable[[np.ndarray],
                                                     tuple[np.ndarray, np.ndarray]]:
    """``W ↦ (Σ α W K, a bound on its error)`` ((k, T) in and out) over the task-side
    quadratic terms, in ``np.longdouble``, each term's ``α`` and ``K`` (or ``R``, ``ridge``
    of a factor-given ``K``) kept apart as the term holds them: the coupling's ``α·K`` is
    rounded, ``ε·α|K|`` entrywise, which at ``α‖K‖ ≈ 1e13`` alone moves a solution's
    objective by about 1e-6 of the optimum's. A dense ``K``'s product ``WK`` and a factor's
    ``WR`` are :func:`_accurate_product`'s (long double's own rounding, ``ε_ld·α|W||K|``,
    is 1e-3 of ``|W|`` at ``α‖K‖ ≈ 1e16``); a sparse ``K``'s is long double's. (Extended
    precision where the platform's long double has it, 64-bit mantissas on x86; elsewhere
    float64, and the refinement it serves gains less.)"""
    d, T = problem.n_features, problem.n_tasks
    terms: list = []  # (α, R, ridge) of a factor, (α, K, None) of a matrix: on first use

    def apply(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not terms:  # (converted once: most solves never ask)
            for p in problem.penalties:
                if not (p.active and p.structure == "quadratic" and p.side == "task"):
                    continue
                low = p.low_rank()
                M = p.matrix(d, T) if low is None else low[0]
                if low is not None or not issparse(M):  # dense K or a factor: split once
                    M = np.asarray(M.toarray() if issparse(M) else M, dtype=float)
                    M = (M, _column_slices(M))
                terms.append((np.longdouble(p.alpha), M,
                              None if low is None else np.longdouble(low[1])))
        Wl = W.astype(np.longdouble)
        size = np.abs(Wl).astype(float)
        out, err = np.zeros_like(Wl), np.zeros(Wl.shape)
        for a, M, ridge in terms:
            if ridge is not None:  # a factor R: W R Rᵀ + ridge·W
                R, split = M
                WR, e = _accurate_product(Wl, split)
                part = WR @ R.T + ridge * Wl
                e = e @ np.abs(R.T) + 2 * R.shape[1] * _EPS_LD * (
                    np.abs(WR).astype(float) @ np.abs(R.T) + float(ridge) * size)
            elif issparse(M):
                part = (M @ Wl.T).T
                e = (np.diff(M.tocsr().indptr).max(initial=1) + 1) * _EPS_LD * (
                    abs(M) @ size.T).T
            else:
                part, e = _accurate_product(Wl, M[1])
            out += a * part
            err += float(a) * e + 2 * _EPS_LD * np.abs(out).astype(float)
        return out, err

    return apply


#: Most conjugate-gradient steps of the extended-precision refinement (each one product by
#: the system in long double; a step below float64's resolution of the solution ends it).
_REFINE_STEPS = 100


def _lower(X: np.ndarray, R: np.ndarray, EX: np.ndarray, Y: np.ndarray, S: np.ndarray,
           EY: np.ndarray) -> np.ndarray:
    """Per row, whether ``x`` (residual ``r = Ax − b``, computed within ``EX`` entrywise)
    has a lower objective ``½xᵀAx − bᵀx`` than ``y`` (residual ``s``, within ``EY``) by
    more than the rounding of their difference ``(x − y)ᵀ(r + s)/2``: ``|x − y|ᵀ(EX +
    EY)/2`` and that product's own (a difference, not two objectives: its rounding scales
    with ``|x − y|``, far below ``ε|x|ᵀ|A||x|`` where ``A`` is ill-conditioned)."""
    step = X - Y
    size = np.abs(step).astype(float)
    noise = np.sum(size * ((EX + EY) / 2.0 + 2 * X.shape[1] * _EPS_LD * np.abs(R + S).astype(
        float)), axis=1)
    gain = np.sum(step * (R + S), axis=1).astype(float) / 2.0
    return np.isfinite(X).all(axis=1) & (gain + noise < 0.0)


def _residual(apply: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
              V: np.ndarray, rows: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(A_i v_i − b_i, a bound on its error)`` for those rows (``apply`` as in
    :func:`_refine`, ``B`` their right sides): ``apply``'s bound plus the subtraction's."""
    AV, E = apply(V, rows)
    R = AV - B
    return R, E + _EPS_LD * np.abs(R).astype(float)


def _refine(apply: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
            precondition: Callable[[np.ndarray, np.ndarray], np.ndarray], B: np.ndarray,
            first: np.ndarray, compare: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``x_i`` of the positive (semi)definite systems ``A_i x_i = b_i`` (B (k, n)) by
    conjugate gradients from ``first`` with residuals in extended precision, each kept in
    place of ``first``'s row where its objective ``½xᵀA_ix − b_iᵀx`` is lower beyond
    rounding (:func:`_lower`). Returns ``(X, R, refined)``: the rows, their residuals
    ``A_ix_i − b_i`` (``np.longdouble``) and which rows were replaced.

    ``apply(V, rows)``: ``(A_i v_i, a bound on its error)`` for those rows, in
    ``np.longdouble`` (each term's ``α`` and ``K`` kept apart: forming the system in
    float64 is itself a perturbation of about ``ε‖A‖``); ``precondition(R, rows)``: an
    approximate ``A_i⁻¹ r_i`` in float64 (a factorization or an eigenbasis of the float64
    system, keeping what ``first`` dropped as round-off); ``compare`` (k,): rows that go on
    past the first step only where it lowered the objective beyond rounding (a genuine
    null direction's tiny pivot or eigenvalue gives a step this does not single out: such
    rows cost one step).

    A float64 factorization is exact for a system about ``ε‖A‖`` away, so where
    ``λ_min(A)`` is not far above that (a ridge beside ``αK`` at ``α‖K‖ ≈ 1e15``) the
    classical refinement ``x ← x − P⁻¹r`` barely contracts, or diverges. Conjugate
    gradients with the same ``P`` converge whatever its error, each step an exact line
    search of the objective (a descent even where ``P`` is indefinite; none along a
    direction of no curvature); they stop where a step is below float64's resolution of
    ``x``."""
    Bl = B.astype(np.longdouble)

    def residual(V: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _residual(apply, V, rows, Bl[rows])

    every = np.arange(B.shape[0])
    X = first.astype(np.longdouble)
    R0, E0 = residual(X, every)
    R = -R0  # b − Ax: the direction of descent
    Z = precondition(R.astype(float), every)
    P = Z.astype(np.longdouble)
    rz = np.sum(R * Z, axis=1)
    active = np.isfinite(rz) & (rz != 0)
    tiny = np.finfo(float).eps ** 2
    for k in range(_REFINE_STEPS):
        idx = np.flatnonzero(active)
        if not idx.size:
            break
        Pi = P[idx]
        AP, EP = apply(Pi, idx)
        curvature = np.sum(Pi * AP, axis=1)
        ok = curvature > 0
        slope = np.sum(R[idx] * Pi, axis=1)
        a = np.where(ok, slope / np.where(ok, curvature, 1), 0)
        if k == 0:  # rows to compare whose step's gain a·slope/2 is within its rounding: left
            size, n = np.abs(Pi).astype(float), 2 * B.shape[1] * _EPS_LD
            noise = np.abs(a) * np.sum(size * (E0[idx] + n * np.abs(R[idx]).astype(float)), axis=1)
            noise += a * a / 2 * np.sum(size * (EP + n * np.abs(AP).astype(float)), axis=1)
            ok &= ~compare[idx] | (a * slope / 2 > noise)
            a = np.where(ok, a, 0)
        step = a[:, None] * Pi
        X[idx] += step
        R[idx] -= a[:, None] * AP
        stop = ~ok | (np.sum(step * step, axis=1) <= tiny * np.sum(X[idx] * X[idx], axis=1))
        Z = precondition(R[idx].astype(float), idx)
        rz_new = np.sum(R[idx] * Z, axis=1)
        P[idx] = Z + (rz_new / rz[idx])[:, None] * Pi
        rz[idx] = rz_new
        active[idx[stop | (rz_new == 0) | ~np.isfinite(rz_new)]] = False
    X = X.astype(float)
    moved = np.flatnonzero(np.any(X != first, axis=1))
    R, E = R0.copy(), E0.copy()
    if moved.size:
        R[moved], E[moved] = residual(X[moved].astype(np.longdouble), moved)
    better = _lower(X, R, E, first, R0, E0)
    return np.where(better[:, None], X, first), np.where(better[:, None], R, R0), better


def _system(Hs: np.ndarray, extended: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
            ) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``apply(V, rows)`` of :func:`_refine` for the per-task system ``blkdiag(Hs) + K_t ⊗
    I_d`` on task-major vectors (rows of V (k, T·d)): ``M v`` in extended precision and a
    bound on its error, the blocks ``Hs`` (T, d, d) in long double beside ``extended``'s
    products by the task-side terms (:func:`_extended_coupling`)."""
    T, d, _ = Hs.shape
    H, absH = Hs.astype(np.longdouble), np.abs(Hs)

    def apply(V: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out, err = [], []
        for v in V:
            X = v.reshape(T, d)
            XK, E = extended(X.T)
            Mv = np.matmul(H, X[:, :, None])[:, :, 0] + XK.T
            out.append(Mv.ravel())
            err.append((E.T + 2 * (d + 1) * _EPS_LD * (np.matmul(
                absH, np.abs(X).astype(float)[:, :, None])[:, :, 0] + np.abs(Mv).astype(
                    float))).ravel())
        return np.stack(out), np.stack(err)

    return apply


def _ill_conditioned(diagonal: np.ndarray, Kt: TaskCoupling, T: int,
                     strong: Callable[[], float]) -> bool:
    """Whether the per-task system ``blkdiag(c_t H_t + K_f) + K_t ⊗ I_d`` (``diagonal``
    its diagonal in task-major order) may be conditioned above ``1/√ε``: ``λ_max ≤ max_t
    (its block's trace) + λ_max(K_t)`` (the blocks PSD, ``(K_t)_tt ≥ 0``), ``λ_min ≥
    λ_min(K_t)`` (bounds of :meth:`TaskCoupling.bounds`), O(dT). Where that bound alone
    says nothing (no ridge: ``λ_min(K_t)`` bounded by 0), ``λ_min ≥`` ``strong()``, the
    problem's strong convexity (:func:`~mtlcvx.oracles.strong_convexity`: ``min_t
    c_tλ_min(H_t)`` plus the terms' ``λ_min``, by Weyl; cached on the problem, so the
    certificate reads it again for free): tasks that pin their weights down keep a
    ridge-free system well conditioned."""
    top, low = Kt.bounds()
    top += float(diagonal.reshape(T, -1).sum(axis=1).max())
    threshold = np.sqrt(np.finfo(float).eps) * top
    if low > threshold:
        return False
    return strong() <= threshold


def _refined(grams, c, Kf, extended: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
             w: np.ndarray, name: str,
             solve: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, str]:
    """The float64 solution ``w`` (task-major, dT) of the per-task system refined by
    :func:`_refine` (products in extended precision: :func:`_system`; ``solve(R)`` for rows
    R (k, dT), the float64 factor's solve, as preconditioner), and the route's ``name``
    (``" (refined)"`` where the refinement lowered the objective beyond rounding)."""
    Hs, B = _blocks(grams, c, Kf)
    T, d, _ = Hs.shape
    x, _, better = _refine(_system(Hs, extended), lambda R, rows: solve(R), B.T.ravel()[None],
                           w.reshape(1, -1), np.zeros(1, dtype=bool))
    return x.reshape(T, d).T.copy(), name + (" (refined)" if better[0] else "")


def _apply(Hs: np.ndarray, Kt: TaskCoupling, W: np.ndarray) -> np.ndarray:
    """The system operator ``W ↦ [H_t w_t]_t + W K_t`` (never forms ``kron(K_t, I_d)``)."""
    return np.matmul(Hs, W.T[:, :, None])[:, :, 0].T + Kt.apply(W)


#: A diagonal shift above this fraction of a block's trace makes it well conditioned
#: (condition number below its inverse) whatever the PSD rest is.
_WELL_SHIFTED = 1e-8


def _block_solve(blocks: np.ndarray, B: np.ndarray,
                 shift: np.ndarray | None = None) -> np.ndarray | None:
    """``w_t = blocks_t⁻¹ b_t`` (B is (d, T)); None if a block is not positive definite.

    ``shift`` (T,): a diagonal part of each block (the rest PSD); where every shift is
    above ``_WELL_SHIFTED`` of its block's trace the blocks are definite and well
    conditioned, and one batched LU solves them; otherwise a batched Cholesky decides.
    """
    if shift is not None and np.all(shift > _WELL_SHIFTED * np.einsum("tii->t", blocks)):
        return np.linalg.solve(blocks, B.T[:, :, None])[:, :, 0].T
    try:
        L = np.linalg.cholesky(blocks)
    except np.linalg.LinAlgError:
        return None
    y = np.linalg.solve(L, B.T[:, :, None])
    return np.linalg.solve(L.transpose(0, 2, 1), y)[:, :, 0].T


class DirectBackend(Backend):
    """Exact solve of quadratic problems (see the module docstring).

    Parameters
    ----------
    dense_limit : int
        Largest ``d·T`` for which the dense Cholesky path is used (when no structured
        route applies).
    """

    name = "direct"
    modules = ("scipy",)
    extra = None
    cones = frozenset({"quadratic"})

    def __init__(self, dense_limit: int = 6000):
        self.dense_limit = dense_limit

    def incompatibility(self, problem: Problem) -> str | None:
        if problem.constraints is not None:
            return ("backend 'direct' cannot handle constraints (a constrained problem needs a "
                    "conic backend)")
        bad = [p.label for p in problem.penalties if p.structure != "quadratic"]
        if bad:
            return (f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not quadratic: "
                    f"backend 'direct' solves squared loss + {_QUADRATIC} only")
        return None

    def solve(self, problem: Problem, *, tol: float, max_iter: int | None, verbose: bool,
              **solver_opts: Any) -> Solution:
        if solver_opts:
            raise MTLError(f"backend 'direct' takes no solver options, got {sorted(solver_opts)}")
        start = time.perf_counter()
        data = problem.data
        c = problem.loss_weights()
        Kt, Kf = oracles.coupling(problem)
        kind = Kt.kind
        W = method = None
        iters = 1
        if data.is_shared and (c > 0).all():
            uniform = bool((c == c[0]).all())
            if uniform or Kf is None:
                stats = data.gram(problem.fit_intercept)
                W = self._sylvester(stats.G, stats.B, c, Kt, Kf, uniform,
                                    _extended_coupling(problem))
                method = "sylvester"
        if W is None:
            stats = data.task_grams(problem.fit_intercept)
            if kind == "sparse":  # the band straight from the statistics
                W, method = self._sparse_system(stats, c, Kf, Kt, _extended_coupling(problem),
                                                lambda: oracles.strong_convexity(problem))
            elif kind == "low-rank":  # the shifted blocks straight from the statistics
                W, method = self._woodbury(stats, c, Kf, Kt), "woodbury"
        if W is None:
            Hs, B = _blocks(stats, c, Kf)
            if kind == "diagonal":
                W, method = self._per_task_blocks(Hs, B, Kt), "per-task blocks"
            if W is None and problem.n_features * problem.n_tasks <= self.dense_limit:
                W, method = self._dense(Hs, B, Kt, _extended_coupling(problem))
            if W is None:
                W, iters = self._pcg(Hs, B, Kt, tol, max_iter)
                method = "pcg"
        solve_time = time.perf_counter() - start
        intercept = problem.optimal_intercept(W) if problem.fit_intercept else None
        certificate = certify(problem, W, gram=False, tol=tol)
        # the solver's own value: at a solution of (cH + 𝒬)W = cB the objective is
        # ½Σ_t c_t(‖y_t‖² − w_tᵀX_tᵀy_t), O(dT) from the statistics it solved with
        solver_objective = 0.5 * float(c @ (stats.yy - np.einsum("dt,dt->t", W, stats.B)))
        return Solution(
            W=W, intercept=intercept, objective=certificate.objective,
            solver_objective=solver_objective,
            status=certified_status(certificate, tol),
            backend=self.name, compile_time=0.0, solve_time=solve_time,
            iterations=iters, certificate=certificate,
            info={"method": method, "coupling": kind},
        )

    # ------------------------------------------------------------------ routes
    @staticmethod
    def _sylvester(H, B, c, Kt: TaskCoupling, Kf, uniform,
                   extended: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
                   ) -> np.ndarray | None:
        """``c H W + K_f W + W K_t = c B`` in the eigenbasis of ``H = XᵀX``.

        A scaled identity ``K_t`` with equal weights: one Cholesky of ``cH + kI``.
        Equal weights ``c``: row i of ``Ŵ = VᵀW`` solves ``ŵ_i (K_t + c s_i I) = c b̂_i``
        with ``K_t`` as it is (its factorisations and band cached); otherwise with
        ``Q = diag(c)^{-½} K_t diag(c)^{-½}`` for ``Ŵ diag(c)^{½}``. Where a shifted ``Q``
        is not safely definite, or a dense one's condition is above ``1/√ε`` (its float64
        eigenbasis solve is off by up to ``κε``), the minimum-norm solution in both
        eigenbases. The rows whose solve dropped eigenvalues as round-off (which may be
        genuine: a ridge beside ``αK`` at ``α‖K‖ ≈ 1e12``), and those solved (in either
        way) at a condition above ``1/√ε``, are refined by conjugate gradients in extended
        precision, in ``Ŵ``'s own rows with ``K_t`` unscaled (``extended``:
        :func:`_extended_coupling`), preconditioned by the solve, where that lowers their
        objective (:func:`_refine`).
        """
        if uniform and Kf is not None:
            H = H + Kf / c[0]
        k = Kt.diag[0]
        if uniform and Kt.kind == "diagonal" and (Kt.diag == k).all() and k > psd_cutoff(
                c[0] * np.trace(H) + k, H.shape[0]):
            # K_t = k·I (Ridge): every task solves (cH + kI) w_t = c b_t, one Cholesky
            # (10x cheaper than the eigenbasis) while k keeps cH + kI safely definite
            # (the eigenbasis's test, with the trace for λ_max); else the eigenbasis
            A = c[0] * H
            A.flat[:: A.shape[0] + 1] += k
            _, W, info = scipy.linalg.lapack.dposv(A, c[0] * B, overwrite_a=1, overwrite_b=1)
            if info == 0:
                return W
        s, V = np.linalg.eigh(H)  # LAPACK's syevd without SciPy's wrapper (36 µs at d = 50)
        sc = None
        if uniform:
            Q, shifts, Bhat = Kt, c[0] * s, V.T @ (c[0] * B)
        else:
            sc = np.sqrt(c)
            Q, shifts, Bhat = Kt.scaled(1.0 / sc), s, V.T @ (B * sc)
        eps = np.finfo(float).eps
        # rows solved at a condition above 1/√ε: a float64 solve may be off by up to κε
        ill = np.zeros(len(shifts), dtype=bool)
        if Q.kind != "diagonal" and Kt.n_tasks <= DENSE_LIMIT:
            top, low = Q.bounds()
            ill = low + shifts <= np.sqrt(eps) * (top + shifts)
        # (a dense Q's solve is its eigenbasis: then straight to the one below)
        What = None if Q.kind == "dense" and ill.any() else Q.solve_shifted(Bhat, shifts)
        compare = np.zeros(len(shifts), dtype=bool)
        if What is None:  # the minimum-norm solution in both eigenbases
            if Kt.n_tasks > DENSE_LIMIT:
                return None
            lam, U = Q.eigh()
            denom = shifts[:, None] + lam[None, :]
            cutoff = psd_cutoff(np.abs(denom).max(), max(denom.shape))
            safe = np.where(denom > cutoff, denom, 1.0)
            What = np.where(denom > cutoff, (Bhat @ U) / safe, 0.0) @ U.T
            # the rows that dropped eigenvalues as round-off (which may be genuine: a ridge
            # beside αK at α‖K‖ ≈ 1e12) go on where a first step through them gains
            compare = (denom <= cutoff).any(axis=1)
            ill = compare | (denom.min(axis=1) <= np.sqrt(eps) * np.abs(denom).max(axis=1))
            # the eigenbasis keeping every eigenvalue (those at round-off floored at ε·max)
            inv = 1.0 / np.maximum(denom, eps * np.abs(denom).max())

            def solve(R: np.ndarray, idx: np.ndarray) -> np.ndarray:
                return ((R @ U) * inv[idx]) @ U.T
        else:
            def solve(R: np.ndarray, idx: np.ndarray) -> np.ndarray:
                return Q.solve_shifted(R, shifts[idx])
        rows = np.flatnonzero(ill)
        if rows.size:
            # refined in Ŵ's own rows y = x/g (g = √c, or 1 with equal weights): y (K_t +
            # s_i diag(g²)) = b̂_i g, whose products by K_t alone are exact (those by the
            # scaled Q would round y/g first); a shift within round-off of 0 (a null
            # direction of XᵀX) is 0 here: no curvature along it to follow
            g = np.ones(Kt.n_tasks) if sc is None else sc
            sh = np.where(np.abs(shifts) > psd_cutoff(np.abs(shifts).max(), len(shifts)),
                          shifts, 0.0)[rows][:, None] * (g * g)
            shl = sh.astype(np.longdouble)

            def apply(Y: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                YK, E = extended(Y)
                out = YK + shl[idx] * Y
                return out, E + 2 * _EPS_LD * (np.abs(out) + np.abs(shl[idx] * Y)).astype(float)

            What[rows] = g * _refine(apply, lambda R, idx: solve(R / g, rows[idx]) / g,
                                     Bhat[rows] * g, What[rows] / g, compare[rows])[0]
        return V @ What if sc is None else (V @ What) / sc

    @staticmethod
    def _per_task_blocks(Hs, B, Kt: TaskCoupling) -> np.ndarray:
        """``w_t = (H_t + k_t I)⁻¹ b_t`` for a diagonal ``K_t = diag(k)`` (a block that is
        not positive definite by its pseudo-inverse)."""
        blocks = Hs + Kt.diag[:, None, None] * np.eye(Hs.shape[1])
        W = _block_solve(blocks, B, Kt.diag)
        if W is None:
            W = np.matmul(block_pinv(blocks), B.T[:, :, None])[:, :, 0].T
        return W

    @staticmethod
    def _sparse_system(grams, c, Kf, Kt: TaskCoupling,
                       extended: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                       strong: Callable[[], float]) -> tuple[np.ndarray | None, str | None]:
        """``blkdiag(c_t X_tᵀX_t + K_f) + K_t ⊗ I_d`` by banded Cholesky, else a sparse
        ``LDLᵀ`` (``grams``: the task statistics, :class:`~mtlcvx.data.TaskGrams`).

        Where the system's condition bound ``(max_t tr(c_t X_tᵀX_t + K_f + (K_t)_tt I) +
        λ_max(K_t)) / λ_min(K_t)`` (the bounds of :meth:`TaskCoupling.bounds`) is above
        ``1/√ε`` (a ridge beside ``α·L`` at ``α‖L‖ ≳ 1e8``), the float64 solve, off by up
        to ``κε``, is refined by conjugate gradients in extended precision preconditioned
        by the same factor (:func:`_refine`, :func:`_refined`)."""
        d, T = grams.B.shape
        n = d * T
        unit = Kf is None and (c == 1.0).all()
        B = grams.B if unit else grams.B * c
        u = max(d, Kt.bandwidth() * d)  # lower bandwidth in task-major order (≥ d: below)
        if (u + 1) * n <= _MAX_BAND_ENTRIES:
            band = Kt.band()  # (before the band takes the scratch buffer: nothing computed
            # while it holds the buffer may use it)
            # the band, Fortran-ordered (LAPACK factors it in place: a C-ordered band is
            # copied first), and a copy of the right side (LAPACK overwrites it), in the
            # kept scratch buffer when they fit (its pages touched once: fresh arrays are a
            # page fault per 4 KB on first touch, 24 at T = 100, d = 10)
            if (u + 2) * n <= SCRATCH_ENTRIES:
                buf = scratch(((u + 2) * n,))
                ab, rhs = buf[: (u + 1) * n].reshape(n, u + 1).T, buf[(u + 1) * n:]
                ab.fill(0.0)
                rhs.reshape(T, d)[...] = B.T
            else:
                ab, rhs = np.zeros((u + 1, n), order="F"), B.T.flatten()
            # In memory ab is (T, d, u + 1), A[t, j, k] = ab[k, t·d + j] the entry k below
            # the diagonal in column t·d + j: for k < d − j the block's H_t[j + k, j] =
            # H_t[j, j + k], at t·d(u + 1) + j·u + (j + k). So the view P[t, i, l] =
            # memory t·d(u + 1) + i·u + l (one place each, as u ≥ d) takes whole blocks
            # at once: the batched X_tᵀX_t written there when the task Gram matrices are
            # not kept (no (T, d, d) array made). Their lower triangles (i > l) land in
            # column i − 1's offsets u − i + 1 … u (the coupling block's upper part and
            # diagonal), zeroed before the coupling goes in.
            A = ab.T.reshape(T, d, u + 1)
            size = ab.itemsize
            P = np.ndarray((T, d, d), buffer=ab.T, strides=(size * d * (u + 1), size * u, size))
            if unit:
                grams.write_products(P)
            else:
                P[...] = _blocks(grams, c, Kf)[0]
            for j in range(d - 1):
                A[:, j, u - j:] = 0.0
            if band is not None:  # coupling entry K[t + k, t] sits at offset k·d
                for k in range(band.shape[0]):
                    ab[k * d] += band[k].repeat(d)
            else:
                K = (Kt.sparse + scipy.sparse.diags(Kt.diag)).tocoo()  # wider than band() keeps
                ab[0] += np.repeat(K.diagonal(), d)
                low = K.row > K.col  # coupling entries: offsets (s − t)·d ≥ d, distinct
                s, t, v = K.row[low], K.col[low], K.data[low]
                ab[np.repeat((s - t) * d, d), (t[:, None] * d + np.arange(d)).ravel()] = \
                    np.repeat(v, d)
            ill = _ill_conditioned(ab[0], Kt, T, strong)
            _, w, info = scipy.linalg.lapack.dpbsv(ab, rhs, lower=1, overwrite_ab=1, overwrite_b=1)
            if info != 0:
                return None, None
            if ill:  # the factor out of the scratch buffer the refinement's products may use
                factor = ab.copy(order="F")
                return _refined(grams, c, Kf, extended, w, "banded cholesky", lambda R: (
                    scipy.linalg.lapack.dpbtrs(factor, R.T, lower=1)[0].T))
            return w.reshape(T, d).T.copy(), "banded cholesky"
        rhs = B.T.ravel()
        K = Kt.sparse + scipy.sparse.diags(Kt.diag)
        M = (scipy.sparse.block_diag(list(_blocks(grams, c, Kf)[0]), format="csr")
             + scipy.sparse.kron(K, scipy.sparse.identity(d))).tocsc()
        ldl = _sparse_ldl(M)
        if ldl is None:
            return None, None
        w = ldl[0].solve(rhs)
        if _ill_conditioned(M.diagonal(), Kt, T, strong):
            return _refined(grams, c, Kf, extended, w, "sparse ldl",
                            lambda R: ldl[0].solve(R.T).T)
        return w.reshape(T, d).T.copy(), "sparse ldl"

    @staticmethod
    def _woodbury(grams, c, Kf, Kt: TaskCoupling) -> np.ndarray | None:
        """Woodbury: ``(P + (U ⊗ I_d)(U ⊗ I_d)ᵀ)⁻¹ b`` with ``P = blkdiag(c_t X_tᵀX_t + K_f
        + k_t I)`` (``grams``: the task statistics, :class:`~mtlcvx.data.TaskGrams`).

        ``K_t = U Uᵀ + diag(k)``; None when a block is singular.
        """
        d, T = grams.B.shape
        unit = Kf is None and (c == 1.0).all()
        U = Kt.low_rank()
        p = U.shape[1]
        # the blocks P_t in the kept scratch buffer when they fit (used up by their
        # inverses), with unit weights the batched products written there directly (no
        # task Gram matrices kept), k_t added along their diagonals (one same-shape add:
        # an in-place add of a broadcast operand allocates NumPy's 64 KB buffer)
        P = scratch((T, d, d))
        if unit:
            grams.write_products(P)
        else:
            P[...] = _blocks(grams, c, Kf)[0]
        P.reshape(T, d * d)[:, :: d + 1] += Kt.diag.repeat(d).reshape(T, d)
        try:
            Pinv = np.linalg.inv(P)
        except np.linalg.LinAlgError:
            return None
        if not np.isfinite(Pinv).all():
            return None
        B = grams.B if unit else grams.B * c
        x = np.matmul(Pinv, B.T[:, :, None])[:, :, 0]  # (T, d)
        # capacitance I + (U ⊗ I)ᵀ P⁻¹ (U ⊗ I): entry ((a, i), (b, j)) = δ + Σ_t U_ta U_tb P⁻¹_t,ij
        # (one BLAS product over t, (p², T) by (T, d²): einsum's path search alone, or
        # tensordot's Python-level axis bookkeeping, costs more at T = 100)
        UU = (U[:, :, None] * U[:, None, :]).reshape(T, p * p)
        cap = (UU.T @ Pinv.reshape(T, d * d)).reshape(p, p, d, d).transpose(
            0, 2, 1, 3).reshape(p * d, p * d)
        cap.flat[:: p * d + 1] += 1.0  # the identity (a strided view: no index arrays)
        y = np.linalg.solve(cap, (U.T @ x).ravel()).reshape(p, d)
        x -= np.matmul(Pinv, (U @ y)[:, :, None])[:, :, 0]
        return x.T.copy()

    @staticmethod
    def _dense(Hs, B, Kt: TaskCoupling,
               extended: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
               ) -> tuple[np.ndarray, str]:
        """The assembled system by Cholesky; where that breaks down or leaves a residual
        above 1e-9 of the right side, the candidate of lowest objective, compared with
        residuals in extended precision (``extended``: :func:`_extended_coupling`)."""
        T, d, _ = Hs.shape
        rhs = B.T.ravel()
        Kd = Kt.to_dense()

        def assemble() -> np.ndarray:
            M = np.zeros((d * T, d * T))
            M4 = M.reshape(T, d, T, d)
            for i in range(d):
                M4[:, i, :, i] = Kd
            for t in range(T):
                M4[t, :, t, :] += Hs[t]
            return M

        apply = _system(Hs, extended)
        one = np.zeros(1, dtype=int)

        M = assemble()
        w = r = None
        try:
            # M is symmetric: its transpose is a Fortran-ordered view LAPACK factors in place.
            factor = scipy.linalg.cho_factor(M.T, lower=True, overwrite_a=True,
                                             check_finite=False)
            w = scipy.linalg.cho_solve(factor, rhs, check_finite=False)[None]
            # A PSD-singular M can still factor with tiny pivots; check the residual (once:
            # the comparison below reads it too)
            if np.all(np.isfinite(w)):
                r, e = _residual(apply, w.astype(np.longdouble), one, rhs)
                if np.linalg.norm(r.astype(float)) <= 1e-9 * max(np.linalg.norm(rhs), 1e-300):
                    return w.reshape(T, d).T.copy(), "cholesky"
        except np.linalg.LinAlgError:
            pass
        M = assemble()

        # the minimum-norm solution first: a semidefinite M's (its null space left out);
        # the refinement from it, preconditioned by a Bunch–Kaufman LDLᵀ (which does not
        # break down on a definite M too ill-conditioned for Cholesky), replaces it only
        # where its objective is lower beyond rounding (the minimum-norm solve drops
        # eigenvalues within round-off of λ_max that can be genuine, a ridge beside αK with
        # α‖K‖ ≈ 1e10; a singular M's tiny pivots give a first step that gains nothing)
        x, b = pinv_solve_psd(M, rhs)[None], rhs[None]
        lu, ipiv, info = scipy.linalg.lapack.dsytrf(M, lower=1)
        if info == 0:
            X, R, refined = _refine(
                apply, lambda V, rows: scipy.linalg.lapack.dsytrs(lu, ipiv, V.T, lower=1)[0].T,
                b, x, np.ones(1, dtype=bool))
            name = "ldlt (refined)" if refined[0] else "eigh (semidefinite system)"
        else:
            X, name = x, "eigh (semidefinite system)"
        if r is not None:
            R, E = _residual(apply, X.astype(np.longdouble), one, rhs)
            if _lower(w, r, e, X, R, E)[0]:
                X, name = w, "cholesky (ill-conditioned)"
        return X.reshape(T, d).T.copy(), name

    @staticmethod
    def _pcg(Hs, B, Kt: TaskCoupling, tol, max_iter) -> tuple[np.ndarray, int]:
        T, d, _ = Hs.shape
        Pinv = block_pinv(Hs + Kt.diagonal()[:, None, None] * np.eye(d))

        def matvec(x: np.ndarray) -> np.ndarray:
            return _apply(Hs, Kt, x.reshape(T, d).T).T.ravel()

        def precond(x: np.ndarray) -> np.ndarray:
            return np.matmul(Pinv, x.reshape(T, d)[:, :, None]).ravel()

        n = d * T
        op = scipy.sparse.linalg.LinearOperator((n, n), matvec=matvec, dtype=float)
        pre = scipy.sparse.linalg.LinearOperator((n, n), matvec=precond, dtype=float)
        b = B.T.ravel()
        iters = 0

        def count(_: np.ndarray) -> None:
            nonlocal iters
            iters += 1

        rtol = min(tol, 1e-12)
        w, info = scipy.sparse.linalg.cg(op, b, rtol=rtol, atol=0.0, M=pre, callback=count,
                          maxiter=max_iter if max_iter is not None else 20 * n)
        if info != 0:
            resid = np.linalg.norm(matvec(w) - b) / max(np.linalg.norm(b), 1e-300)
            raise SolverFailed(
                f"backend 'direct' (preconditioned CG) did not reach relative residual "
                f"{rtol:g} in {iters} iterations (reached {resid:.2e}). Hint: raise max_iter, "
                "or add a Ridge term to improve the conditioning"
            )
        return w.reshape(T, d).T.copy(), iters


register(DirectBackend())
