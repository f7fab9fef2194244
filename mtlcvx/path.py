r"""Regularization paths and cross-validation, on one machine or a joblib/Dask cluster.

* :func:`regularization_path`: solve a problem for a grid of strengths of one penalty,
  warm-starting each point from the previous one and certifying every point.
* :func:`cross_validate`: folds inside every task, one warm-started path per fold, folds
  in parallel through joblib (so any joblib backend runs them: loky processes, Dask,
  Ray); returns the scores and the chosen strength.
* :class:`TaskShuffleSplit`: random train/test splits within every task (the School
  protocol).

The default route (``backend=None``) for a penalty with an exact prox is warm-started
FISTA. With a single entry- or row-separable norm (L1, L21) it runs on the Gram
matrices ``X_tᵀX_t`` (one for a shared design) with Gap Safe screening (Ndiaye,
Fercoq, Gramfort & Salmon, JMLR 2017); the derivation for this package's loss scaling
is in ``docs/paths.md``.
Every point is certified by :func:`mtlcvx.certify` (from the original data: its
residuals, or ``XᵀX`` and ``XᵀY`` of a shared design), whatever route produced it.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import scipy

from ._checks import check_count, check_tol
from ._io import Saved
from ._optional import require
from ._threads import blas_limited
from .backends.registry import certified_status
from .certificates import Certificate, certify, certify_path
from .data import MultiTaskData, as_float_array
from .exceptions import ArgumentError, ConvergenceWarning, DataError, MTLError
from .oracles import gram_extremes, lipschitz
from .penalties._prox import row_norms
from .penalties.base import Penalty
from .problem import Problem

__all__ = ["PathResult", "regularization_path", "CVResult", "cross_validate",
           "TaskShuffleSplit", "SCORINGS"]

#: Scorings accepted by :func:`cross_validate`; "mse" is the only one where lower is better.
SCORINGS = ("r2", "r2_pooled", "explained_variance", "mse")


# ----------------------------------------------------------------------------- helpers
def _penalty_index(prob: Problem, penalty: int | Penalty) -> int:
    if isinstance(penalty, Penalty):
        for i, pen in enumerate(prob.penalties):
            if pen is penalty:
                return i
        raise ArgumentError(f"penalty {penalty!r} is not one of the problem's penalties; "
                            "pass the object from prob.penalties or its index")
    if isinstance(penalty, (int, np.integer)) and not isinstance(penalty, bool):
        if -len(prob.penalties) <= penalty < len(prob.penalties):
            return int(penalty) % len(prob.penalties)
    raise ArgumentError(f"penalty must be an index into prob.penalties (0 … "
                        f"{len(prob.penalties) - 1}) or one of its penalty objects, "
                        f"got {penalty!r}")


def alpha_max(prob: Problem, penalty: int | Penalty = 0) -> float:
    """Smallest strength of ``penalty`` with ``W = 0`` optimal.

    Asks the term's ``alpha_max(G)`` oracle with ``G`` the gradient at ``W = 0`` of the
    smooth part (loss with intercepts profiled out, plus smooth penalties). Other
    non-smooth terms are left out, so with several of them the value is an upper bound
    (they only make zero more attractive).

    Raises
    ------
    MTLError
        The term has no ``alpha_max`` oracle (quadratic and squared-norm terms never
        make ``W = 0`` optimal at a finite strength): pass an explicit grid.
    """
    i = _penalty_index(prob, penalty)
    pen = prob.penalties[i]
    if not pen.provides("alpha_max"):
        raise MTLError(
            f"{type(pen).__name__} has no alpha_max oracle (a quadratic or squared-norm term "
            "is never zero at a finite strength), so there is no default grid: pass "
            "alphas=np.geomspace(hi, lo, n)"
        )
    saved = pen.alpha
    try:
        pen.alpha = 0.0
        _, G = prob.smooth_value_and_gradient(np.zeros((prob.n_features, prob.n_tasks)))
    finally:
        pen.alpha = saved
    return float(pen.alpha_max(G))


def _check_alphas(alphas: Any, name: str = "alphas") -> np.ndarray:
    arr = as_float_array(alphas, name, 1)
    if arr.size == 0 or np.any(arr < 0):
        raise ArgumentError(f"{name} must be a non-empty 1-D array of strengths ≥ 0, "
                            f"got {arr}")
    return arr


def _grid(prob: Problem, index: int, alphas: Any, n_alphas: int, eps: float) -> np.ndarray:
    if alphas is not None:
        return _check_alphas(alphas)
    n_alphas = check_count(n_alphas, "n_alphas", maximum=None)
    if not (isinstance(eps, (int, float, np.floating)) and 0 < eps < 1):
        raise ArgumentError(f"eps must be in (0, 1) (the grid ends at eps·alpha_max), "
                            f"got {eps!r}")
    top = alpha_max(prob, index)
    if not top > 0:
        raise MTLError("alpha_max is 0 (the gradient at W = 0 vanishes, e.g. y = 0): every "
                       "strength gives W = 0; pass alphas=... explicitly")
    return np.geomspace(top, eps * top, n_alphas)


# ----------------------------------------------------------------------------- results
@dataclass
class PathResult(Saved):
    """A regularization path.

    Attributes
    ----------
    alphas : ndarray (n_alphas,)
        Strengths of the swept penalty, in the order given (default grid: decreasing).
    W : ndarray (n_alphas, d, T)
        Coefficients at every strength.
    intercept : ndarray (n_alphas, T) or None
        Profiled intercepts when the problem fits them.
    objective : ndarray (n_alphas,)
        ``F(W)`` recomputed in NumPy by :func:`mtlcvx.certify`.
    certificates : list of Certificate
        :func:`mtlcvx.certify` at every point (on the "fista-gram" route with ``tol``
        and without the gradient mapping: ``grad_mapping`` is None, the gap decides;
        there computed for all points in one pass by
        :func:`mtlcvx.certificates.certify_path`, equal to rounding).
    status : list of str
        "optimal" (certified relative gap ≤ tol), "inaccurate" or "unverified".
    times : ndarray (n_alphas,)
        Seconds spent on every point (solve and certificate; on the "fista-gram" route
        the points are certified in one batched pass whose time is shared equally).
    backend : str
        What ran: "fista-gram" (Gram route with screening), "fista", or a backend name.
    penalty : int
        Index of the swept penalty in ``prob.penalties``.
    info : dict
        Per-point extras: ``iterations``, ``screened`` (fraction of groups discarded by
        Gap Safe screening, Gram route only).
    """

    alphas: np.ndarray
    W: np.ndarray
    intercept: np.ndarray | None
    objective: np.ndarray
    certificates: list[Certificate]
    status: list[str]
    times: np.ndarray
    backend: str
    penalty: int
    info: dict[str, np.ndarray] = field(default_factory=dict)

    def to_frame(self):
        """One row per strength: alpha, objective, gap, relative_gap, status, time,
        n_nonzero_rows (needs the ``pandas`` extra)."""
        pd = require("pandas", "pandas", "PathResult.to_frame")
        certs = self.certificates
        return pd.DataFrame({
            "alpha": self.alphas,
            "objective": self.objective,
            "gap": [np.nan if c.gap is None else c.gap for c in certs],
            "relative_gap": [np.nan if c.relative_gap is None else c.relative_gap
                             for c in certs],
            "status": self.status,
            "time": self.times,
            "n_nonzero_rows": np.count_nonzero(np.any(self.W != 0, axis=2), axis=1),
        })


# ----------------------------------------------------------------------------- Gram route
def _top_eigenvalue(M: np.ndarray) -> float:
    """``λ_max`` of a PSD matrix: dense below 100 rows, else Lanczos (ARPACK, relative
    accuracy 1e-10) with a 1e-8 relative margin so the FISTA step stays below ``1/L``."""
    if M.shape[0] < 100:
        return float(np.linalg.eigvalsh(M)[-1])
    from scipy.sparse.linalg import eigsh

    top = eigsh(M, k=1, which="LA", tol=1e-10, return_eigenvectors=False)[0]
    return float(top) * (1.0 + 1e-8)


class _Factor(NamedTuple):
    """What :meth:`_GramRoute._polish` keeps per support ``S``: ``factor`` (the upper
    Cholesky factor of ``G_SS`` of a shared design, ``G_t,SS⁻¹`` stacked per task, or
    None when ``G_SS`` is singular) with its rows in the order ``order`` (``S`` itself, or
    a permutation of it after an extension), ``B`` in that order, the rows ``rest`` off
    ``S`` and ``G[rest, order]`` (None below half the rows)."""

    factor: np.ndarray | None
    order: np.ndarray
    B: np.ndarray
    rest: np.ndarray
    off: np.ndarray | None
    inverse: bool = False  # factor is G⁻¹ (upper triangle), not a Cholesky factor


class _GramRoute:
    r"""Warm-started FISTA on Gram matrices with Gap Safe screening.

    Applies when there are no constraints, the swept penalty is the only active term and
    declares itself ``separable`` over "entries" (L1) or "rows" (L21), and the Gram
    matrices are no bigger than the data: a shared design with more samples than
    features (one ``G = X̃ᵀX̃``, :meth:`MultiTaskData.gram`), or per-task designs with
    ``T·d ≤ 4·Σ_t m_t`` (one ``G_t = ÃᵀÃ`` per task from the compressed data, ``m_t``
    its rows). The smooth part is ``Σ_t (c_t/2)(‖ỹ_t‖² − 2 w_tᵀb_t + w_tᵀ G_t w_t)``,
    exact, centred when the problem fits intercepts.
    """

    def __init__(self, prob: Problem, pen: Penalty):
        self.pen = pen
        self.c = c = prob.loss_weights()
        self.rows = pen.separable == "rows"
        self.data, self.center = prob.data, prob.fit_intercept
        gram = prob.data.gram(prob.fit_intercept)
        self.shared = gram is not None
        if gram is not None:  # shared design: one d × d matrix
            self.G, self.B, self.yy = gram.G, gram.B, gram.yy  # X̃ᵀX̃, X̃ᵀỸ, ‖ỹ_t‖²
            col = np.sqrt(np.diag(self.G))[:, None]
        else:  # one d × d matrix per task, stacked (T, d, d)
            comp = prob.data.compressed(prob.fit_intercept)
            Apad, Zpad = comp.padded
            self.G = np.matmul(Apad.transpose(0, 2, 1), Apad)
            self.B = np.einsum("tmd,tm->dt", Apad, Zpad)
            self.yy = np.einsum("tm,tm->t", Zpad, Zpad) + comp.offset
            col = np.sqrt(np.diagonal(self.G, axis1=1, axis2=2)).T
        # √c_t ‖x̃_tj‖ (d, T): how far V_jt can move inside the Gap Safe sphere per unit radius
        self.reach = col * np.sqrt(c)[None, :]
        self.reach_rows = self.reach.max(axis=1)  # the same for a row's norm (L21)
        self.Bc, self.cyy = self.B * c, float(c @ self.yy)  # [c_t b_t], Σ_t c_t ‖ỹ_t‖²
        # the problem's own Lipschitz bound (cached with the spectra the certificates and
        # cold solves also read); the swept term is the only active one, so it is the loss's
        known = lipschitz(prob)
        self.L_full = self._lipschitz(self.G) if known is None else known
        self.G_single = self._single_precision(prob)
        self._lipschitz_seen: list[tuple[np.ndarray, float, int]] = []  # (rows, L, |rows|)
        # support S -> its _Factor, for _polish (the supports of the last few checks)
        self._factors: dict[bytes, _Factor] = {}
        self._every = np.arange(self.B.shape[0])  # S when it holds every row
        self._gathers: dict[np.dtype, np.ndarray] = {}  # dtype -> work array of _gather

    def _single_precision(self, prob: Problem) -> np.ndarray | None:
        """``G`` in single precision for FISTA's products, or None.

        For L21 on a large shared design (``d²T`` at least :data:`_SINGLE_PRODUCT`, where
        the time is in the products, not in the calls) whose ``G`` is well conditioned,
        ``κ√d·u ≤`` :data:`_SINGLE_ROUNDING` with ``κ = λ_max/λ_min`` and ``u = 2⁻²⁴``:
        FISTA's fixed point then moves by about ``κ√d·u`` relative, and the polish on the
        support (in double precision) makes the gap second order in that. Only the
        iterations run in single precision: every gap, polish and certificate is
        computed in double precision from the original statistics. Not for L1, which has
        no polish: its gap is that of the iterate, first order in that error (the
        benchmark's design with L1, 20 strengths: 628 iterations in double precision,
        5250 in single before falling back).
        """
        extremes = gram_extremes(prob)
        if not self.rows or extremes is None or self.G.size * prob.n_tasks < _SINGLE_PRODUCT:
            return None
        low, high = extremes
        if not (low > 0 and high * math.sqrt(self.G.shape[0]) * 2.0 ** -24
                <= _SINGLE_ROUNDING * low):
            return None
        return self.G.astype(np.float32)

    @staticmethod
    def applies(prob: Problem, pen: Penalty) -> bool:
        """See the class docstring."""
        if (prob.constraints is not None or pen.separable not in ("rows", "entries")
                or any(p is not pen and p.alpha > 0 for p in prob.penalties)):
            return False
        data = prob.data
        if data.is_shared:
            return data.gram(prob.fit_intercept) is not None
        m = sum(A.shape[0] for A in data.compressed(prob.fit_intercept).A)
        return data.n_tasks * data.n_features <= 4 * m

    def _lipschitz(self, G: np.ndarray) -> float:
        """``max_t c_t λ_max(G_t)`` for the (sub)matrix ``G`` (one or stacked)."""
        if G.ndim == 2:
            return float(self.c.max() * _top_eigenvalue(G))
        return float(np.max(self.c * np.linalg.eigvalsh(G)[:, -1]))

    def _lipschitz_on(self, act: np.ndarray) -> tuple[float, int]:
        """``(L, |A|)``: the Lipschitz constant on rows ``A ⊇ act`` with ``|A| < 2|act|``,
        from an earlier point when one was computed there (a principal submatrix's top
        eigenvalue is no larger), else on ``act`` itself."""
        size = int(act.sum())
        for mask, L, n in self._lipschitz_seen:
            if n < 2 * size and not np.any(act & ~mask):
                return L, n
        L = self._lipschitz(self._sub(act, act))
        self._lipschitz_seen.append((act.copy(), L, size))
        return L, size

    def _sub(self, rows: Any, cols: np.ndarray) -> np.ndarray:
        """The block ``G[rows, cols]`` (of every task's matrix)."""
        if self.G.ndim == 2:
            return self.G[rows][:, cols]
        return self.G[:, rows][:, :, cols]

    def _gather(self, act: np.ndarray, G: np.ndarray) -> np.ndarray:
        """``G[act, act]`` of a shared design's ``G`` (d, d) (or its single-precision
        copy), written into a work array kept for the path, ``2d²`` entries: the rows
        ``G[act]`` in its first half, the result in its second. Valid until the next
        gather of the same precision. A fresh ``G[act][:, act]`` at every screening
        (18 per 2000 × 500 × 50 path, up to 2 MB each) faulted about 2,800 pages per path;
        a ``G`` below :data:`_FRESH_BYTES` takes the fresh one.
        """
        if G.nbytes < _FRESH_BYTES:  # from the allocator's free lists: no faults
            return G[act][:, act]  # (and twice as fast as the two gathers below)
        d, m = G.shape[0], int(np.count_nonzero(act))
        work = self._gathers.get(G.dtype)
        if work is None:
            work = self._gathers[G.dtype] = np.empty(2 * d * d, G.dtype)
        rows = np.compress(act, G, axis=0, out=work[:m * d].reshape(m, d))
        return np.compress(act, rows, axis=1, out=work[d * d:d * d + m * m].reshape(m, m))

    @staticmethod
    def _mul(G: np.ndarray, W: np.ndarray) -> np.ndarray:
        """``[G_t w_t]_t`` (p, T) for ``G`` (p, q) or (T, p, q) and ``W`` (q, T)."""
        if G.ndim == 2:
            return G @ W
        return np.matmul(G, W.T[:, :, None])[:, :, 0].T

    def _product(self, W: np.ndarray, view: tuple[np.ndarray, Any, np.ndarray]) -> np.ndarray:
        """``[G_t w_t]_t`` (d, T) for ``W`` zero outside the active rows of ``view``; on a
        shared design by :meth:`MultiTaskData.gram_product` (the product the certificate
        takes)."""
        if self.shared:
            return self.data.gram_product(W, self.center, keep=False)
        return self._mul(view[1], W[view[0]])

    def _gap(self, W: np.ndarray, GW: np.ndarray,
             alpha: float) -> tuple[float, float, float, np.ndarray, Any, Any]:
        """``(F(W), gap, rounding floor of the gap, V₀, s, ‖V₀_j‖₂)``: ``V₀ = [X̃_tᵀθ₀_t]``
        (d × T) for the dual point ``θ₀_t = c_t (ỹ_t − X̃_t w_t)`` of ``W``, the scale ``s``
        (a float for L21; one per task, (T,), for L1) of the feasible dual point
        ``θ = s·θ₀`` the gap is taken at, and the row norms of ``V₀`` (d,) for L21 (None
        for L1). ``GW = [G_t w_t]_t`` (:meth:`_product`, or a polished point's from
        :meth:`_polish`); ``W`` is zero outside the active rows."""
        V = self.B - GW
        V *= self.c  # = X̃ᵀθ₀
        # W is zero off the active rows: sums over all rows are sums over the active ones
        F = self.pen.value(W)
        if self.rows:  # one scale s ≤ α / max_j ‖V_j‖₂ maximising a·s − b·s²
            # Σ_t c_t w_tᵀb_t, and Σ_t c_t w_tᵀG_t w_t = Σ_t c_t w_tᵀb_t − ⟨W, V⟩
            wb = float(np.vdot(W, self.Bc))
            wGw = wb - float(np.vdot(W, V))
            b = 0.5 * (self.cyy - 2.0 * wb + wGw)  # = ‖θ₀‖²_c / 2, the loss
            a = self.cyy - wb  # = Σ_t θ₀_tᵀ ỹ_t
            F += b
            vn = row_norms(V)
            dn = float(vn.max(initial=0.0))
            s_max = alpha / dn if dn > 0 else math.inf
            if b > 0:
                s = min(max(a, 0.0) / (2.0 * b), s_max)
            else:
                s = s_max if math.isfinite(s_max) else 0.0
            return F, F - (a * s - b * s * s), self._floor(wb, wGw), V, s, vn
        # separable across tasks too: s_t ≤ α / max_j |V_jt|
        wb_t = np.einsum("jt,jt->t", W, self.B)
        wGw_t = np.einsum("jt,jt->t", W, GW)
        loss_t = 0.5 * self.c * (self.yy - 2.0 * wb_t + wGw_t)  # = ‖θ₀_t‖²/(2c_t)
        a_t = self.c * (self.yy - wb_t)  # = θ₀_tᵀ ỹ_t
        F += float(loss_t.sum())
        dn_t = np.abs(V).max(axis=0)
        s_max_t = np.where(dn_t > 0, alpha / np.where(dn_t > 0, dn_t, 1.0), np.inf)
        s_free = np.maximum(a_t, 0.0) / (2.0 * np.where(loss_t > 0, loss_t, 1.0))
        s_t = np.where(loss_t > 0, np.minimum(s_free, s_max_t),
                       np.where(np.isfinite(s_max_t), s_max_t, 0.0))
        floor = self._floor(float(self.c @ np.abs(wb_t)), float(self.c @ np.abs(wGw_t)))
        return F, F - float(np.sum(a_t * s_t - loss_t * s_t * s_t)), floor, V, s_t, None

    def _floor(self, wb: float, wGw: float) -> float:
        """The rounding floor of the Gram-form gap from ``wb = Σ_t c_t w_tᵀb_t`` and
        ``wGw = Σ_t c_t w_tᵀG_tw_t`` (or the sums of their absolute values):
        ``‖ỹ‖² − 2wᵀb + wᵀGw`` cancels near a good fit, and its rounding error bounds what
        the inner gap can resolve (the certificate recomputes the residual directly)."""
        return 1e-14 * (self.cyy + 2.0 * abs(wb) + abs(wGw))

    def _polish(self, X: np.ndarray, V: np.ndarray, act: np.ndarray,
                alpha: float) -> tuple[np.ndarray, np.ndarray | None] | None:
        r"""L21: the point with the support ``S`` and row directions ``u_j`` of ``X`` that
        meets the optimality conditions on ``S`` exactly,

        .. math:: c_t (G_{t,SS} w_t − b_{t,S}) + α u_{t} = 0 \quad (u_t = [u_{jt}]_{j∈S}),

        one solve with ``G_SS`` per task (the factors of the last few supports are kept). Then
        ``V_j = α u_j`` on ``S``, so the dual point of the result is feasible at scale 1
        there and its gap ``α Σ_j ‖w_j‖(1 − cos∠(w_j, u_j))`` is second order in the
        error of the directions, where the gap of ``X`` itself is first order.

        ``S`` is the non-zero rows of ``X`` (``u_j = x_j/‖x_j‖``) and the active zero rows
        that violate their dual constraint, ``‖V_j‖₂ > α`` with ``V = [X̃_tᵀθ₀_t]`` of
        ``X``: those enter with ``u_j = V_j/‖V_j‖`` (at the optimum ``V_j = α u_j``).

        Returns ``(W̃, G W̃)`` with ``G W̃`` None unless ``S`` holds half the rows or more;
        then its rows on ``S`` are the right-hand side solved for, ``b_t,S − (α/c_t)u_t``,
        and only the rows off ``S`` take a product (``G_{S̄S} w̃_S``: the full product for
        the gap of a dense point would cost ``d/|S̄|`` times more). None when ``S`` is
        empty or ``G_SS`` is singular.
        """
        norms = row_norms(X)
        on = norms > 0
        rows = X  # the rows whose directions u_j are taken, and their norms
        every = bool(on.all())  # S holds every row: nothing enters, nothing is gathered
        if not every:
            zero = np.flatnonzero(act > on)  # active zero rows: they may enter
            Vz = V[zero]
            vz_norms = row_norms(Vz)
            inside = vz_norms > alpha
            if inside.any():
                enter = zero[inside]
                rows, on = X.copy(), on.copy()
                rows[enter], norms[enter], on[enter] = Vz[inside], vz_norms[inside], True
                every = bool(on.all())
        S = self._every if every else np.flatnonzero(on)
        if S.size == 0:
            return None
        key = S.tobytes()
        entry = self._factors.get(key)
        if entry is None:
            entry = self._factor(S, on)
            if len(self._factors) >= 8:  # the supports of the last few checks
                del self._factors[next(iter(self._factors))]
            self._factors[key] = entry
        factor, order, B_S, rest, off = entry[:5]
        if factor is None:
            return None
        natural = every and order is S  # every row, in their own order: nothing to gather
        U_S = rows / norms[:, None] if natural else rows[order] / norms[order, None]
        U_S *= -alpha / self.c
        rhs = np.add(B_S, U_S, out=U_S)  # b_t,S − (α/c_t) u_t
        if entry.inverse:  # G⁻¹ itself (upper triangle): one symmetric product
            solved = scipy.linalg.blas.dsymm(1.0, factor, rhs, lower=False)
        elif factor.ndim == 2:
            solved = scipy.linalg.lapack.dpotrs(factor, rhs, lower=False)[0]
        else:
            solved = self._mul(factor, rhs)
        if natural:
            return solved, rhs  # no rows off S
        out = np.zeros(X.shape)
        out[order] = solved
        if off is None:
            return out, None
        GW = np.empty_like(X)
        GW[order] = rhs
        if rest.size:
            GW[rest] = self._mul(off, solved)
        return out, GW

    def _factor(self, S: np.ndarray, on: np.ndarray) -> _Factor:
        r"""The :class:`_Factor` of the support ``S`` (sorted; ``on`` its mask).

        On a shared design, a support that holds one seen before (of at least half its
        size) extends that factor by a block rather than factoring ``G_SS`` anew: with
        ``P`` the old rows, ``E`` the new ones and ``G_PP = UᵀU``,

        .. math:: G_{[P,E],[P,E]} = \begin{bmatrix} U & Z \\ 0 & U_E \end{bmatrix}^\top
                  \begin{bmatrix} U & Z \\ 0 & U_E \end{bmatrix},\quad
                  Z = U^{-\top} G_{PE},\quad U_E^\top U_E = G_{EE} − Z^\top Z,

        a triangular solve and a Cholesky factor of the ``|E| × |E|`` Schur complement; the
        rows are then in the order ``[P, E]``. Along a path the support mostly grows
        (2000 × 500 × 50 benchmark: 212 → 420 → 487 → 498 → 500 rows), and a fresh factor
        of ``G_SS`` at 500 rows costs 6–8 ms here, mostly first touches of its fresh
        memory, against 0.3 ms to extend one by 2–11 rows. Below :data:`_EXTEND_ROWS` rows a
        fresh factor is the cheaper one.

        The support of every row keeps ``G⁻¹`` itself (upper triangle, from one Cholesky
        factor of ``G``): once the support is full it usually stays so to the end of the
        path, and a symmetric product with ``G⁻¹`` costs less than the two triangular
        solves at every size (one BLAS thread, 20 columns: 1.4 / 4.8 / 14 µs against 2.4 /
        12 / 31 µs at 10 / 50 / 100 rows; 0.59 against 0.91 ms at 500 rows and 50
        columns), so ``G⁻¹`` (0.07 ms at 100 rows, 5 ms at 500) is repaid within a few
        polishes. Its solution is less accurate than the factor's where ``G`` is
        ill-conditioned (the residual ``G w̃ − rhs``, which the gap of a dense polished
        point takes to be 0, grows with ``κ(G)·ε`` instead of ``ε``), but a polished
        point is only a candidate: the certificate recomputes ``G W̃`` from the data.
        """
        order, factor = S, None
        if self.G.ndim == 3:  # G_t⁻¹ = L_t⁻ᵀ L_t⁻¹ (T, s, s), Cholesky as the definiteness test
            try:
                Linv = np.linalg.inv(np.linalg.cholesky(self._sub(S, S)))
                factor = np.matmul(Linv.transpose(0, 2, 1), Linv)
            except np.linalg.LinAlgError:
                pass
        elif S.size == on.size:  # every row: G⁻¹ (see below)
            upper, info = scipy.linalg.lapack.dpotrf(self.G, lower=False, clean=False)
            if info == 0:
                factor, info = scipy.linalg.lapack.dpotri(upper, lower=False, overwrite_c=True)
            return _Factor(factor if info == 0 else None, S, self.B, S[:0], self.G[:0],
                           inverse=True)
        else:  # upper Cholesky factor, None unless positive definite
            base = None if S.size < _EXTEND_ROWS else max(
                (e for e in self._factors.values() if e.factor is not None
                 and not e.inverse and 2 * e.order.size >= S.size and on[e.order].all()),
                key=lambda e: e.order.size, default=None)
            if base is None:
                upper, info = scipy.linalg.lapack.dpotrf(self._sub(S, S), lower=False,
                                                         clean=False)
                factor = upper if info == 0 else None
            else:
                seen = np.zeros_like(on)
                seen[base.order] = True
                new = np.flatnonzero(on & ~seen)
                Z = scipy.linalg.lapack.dtrtrs(base.factor, self.G[np.ix_(base.order, new)],
                                               lower=False, trans=1)[0]
                schur = self.G[np.ix_(new, new)] - Z.T @ Z
                corner, info = scipy.linalg.lapack.dpotrf(schur, lower=False, clean=False)
                if info == 0:  # dpotrs reads the upper triangle only
                    p = base.order.size
                    factor = np.empty((S.size, S.size), order="F")
                    factor[:p, :p] = base.factor
                    factor[:p, p:] = Z
                    factor[p:, p:] = corner
                    order = np.concatenate([base.order, new])
        rest = np.flatnonzero(~on)
        off = self._sub(rest, order) if 2 * S.size >= on.size else None  # G[S̄, S]
        return _Factor(factor, order, self.B[order], rest, off)

    def solve(self, W: np.ndarray, alpha: float, tol: float, V: np.ndarray | None = None,
              max_iter: int = 100_000,
              first: int = 0, single: bool = False
              ) -> tuple[np.ndarray, np.ndarray | None, int, float, np.ndarray | None, bool]:
        """FISTA from ``W`` until the inner gap is ≤ ``tol·|F|/2`` (or its rounding floor);
        returns ``(W, V, iterations, fraction of groups screened, G W, single)`` with
        ``V = −∇f(W)`` as computed for the last gap (None when screening emptied every row),
        ``G W`` the product :meth:`_product` took for that gap (None when it came from the
        polish, whose ``G W̃`` is not a computed product, or when every row was screened),
        and ``single`` whether the iterations still run in single precision at the end.

        ``single``: FISTA's products in single precision (``G_single``, when there is
        one). After :data:`_SINGLE_PATIENCE` times the previous point's iterations the
        solve goes on in double precision and returns ``single`` False: the caller keeps
        the rest of the path in double precision.

        ``V``, when given, stands in for ``−∇f(W)`` at the first check (a prediction from
        earlier points: :class:`_WarmStart`), saving a product; it only steers the polish
        (which rows enter) and the choice of restart point, never a gap.

        A check comes before the first iteration (for L21 only when ``first`` is below
        :data:`_SKIP_FIRST_CHECK`), then after ``max(check_every, first)`` iterations
        (``first``: the previous point's count less two), then after every
        ``max(check_every, k // 10)`` more (``k`` run so far; ``check_every`` 3 for L21,
        10 for L1). For L1 it is the
        gap of the iterate. For L21 it is the gap of the polished point
        (:meth:`_polish`, entering rows read off ``V = −∇f`` of the iterate, one product):
        returned when it meets the target, else the new start (momentum reset) when its
        objective is below the iterate's (read off ``V``); the iterate's own gap only
        when there is nothing to polish. Screening uses the dual point of the gap taken.
        """
        d, T = W.shape
        c, pen = self.c, self.pen
        check_every = 3 if self.rows else 10
        act = np.ones(d, dtype=bool)
        keep = np.ones((d, T)) if not self.rows else None  # entries not screened (L1)
        L, sized = self.L_full, d  # step 1/L for the active rows; |A| when L was computed
        X = W.copy()
        Y = X.copy()
        t = 1.0
        k = 0
        view = (act.copy(), self.G, self.B)  # (act, G[:, act], B[act]) for _gap
        Ga = self.G  # G[act, act] (None while single precision runs on a gathered one)
        # G[act, act] in single precision, or None (see __init__)
        Glow = self.G_single if single else None

        def product(M: np.ndarray) -> np.ndarray:
            """``G[act, act] M`` for FISTA, in single precision where that applies."""
            if Glow is not None:
                return self._mul(Glow, M.astype(np.float32)).astype(np.float64)
            return self._mul(Ga, M)

        hint = V  # V = −∇f of the iterate (predicted, or left by FISTA's iterations)
        grad_P = None  # ∇f on the active rows at the restart point P, read off its gap

        def certified(result: tuple[float, float, float, np.ndarray, Any, Any]) -> bool:
            return result[1] <= max(0.5 * tol * abs(result[0]), result[2])

        # after a point that needed many iterations the warm start's polish rarely
        # certifies: the first check waits for the first run of iterations
        check = not (self.rows and first >= _SKIP_FIRST_CHECK)
        while True:
            if check:
                P = GP = None
                if self.rows:  # V of the iterate: after iterations, the product they left
                    V = hint if hint is not None else (self.B - self._product(X, view)) * c
                    polished = self._polish(X, V, act, alpha)
                    if polished is not None:
                        P, GP = polished
                if P is not None:
                    GX = self._product(P, view) if GP is None else None
                    # its dual point serves the screening
                    checked = self._gap(P, GP if GX is None else GX, alpha)
                    if certified(checked) or k >= max_iter:
                        X = P
                        break
                    # F(X) from V = c∘(B − GX), Σ_t c_t(‖ỹ_t‖² − 2x_tᵀb_t + x_tᵀG_tx_t)
                    # = Σ_t c_t ‖ỹ_t‖² − ⟨X, c∘B⟩ − ⟨X, V⟩: restart from P if it is lower
                    loss = 0.5 * (self.cyy - float(np.vdot(X, self.Bc)) - float(np.vdot(X, V)))
                    if checked[0] < loss + pen.value(X):
                        X, Y, t = P, P.copy(), 1.0
                        grad_P = -checked[3][act]
                else:
                    GX = self._product(X, view)
                    checked = self._gap(X, GX, alpha)
                    if certified(checked) or k >= max_iter:
                        break
                _, gap, _, V, s, vn = checked  # the dual point of the gap is s·V
                if Glow is not None and k >= _SINGLE_PATIENCE * max(first + _FIRST_LESS, 10):
                    # far more iterations than the last point: perhaps single precision's
                    # floor, so double precision from now on
                    Glow = None
                    if Ga is None:
                        Ga = self._gather(act, self.G)
                # Gap Safe sphere: ‖θ* − θ‖_c ≤ √(2 gap), ‖θ‖²_c = Σ_t ‖θ_t‖²/c_t
                # (see docs/paths.md)
                r = math.sqrt(2.0 * max(gap, 0.0))
                if self.rows:
                    drop = s * vn + r * self.reach_rows < alpha
                else:
                    zero = np.abs(V * s) + r * self.reach < alpha
                    keep[zero] = 0.0
                    drop = ~np.any(keep > 0, axis=1)
                drop &= act
                if drop.any():
                    grad_P = None
                    act &= ~drop
                    view = (act.copy(), None if self.shared else self._sub(slice(None), act),
                            self.B[act])
                    if Glow is not None:
                        Ga, Glow = None, self._gather(act, self.G_single)
                    else:
                        Ga = self._gather(act, self.G) if self.shared else self._sub(act, act)
                    X[drop] = 0.0
                    Y[drop] = 0.0
                    if act.any() and act.sum() < 0.5 * sized:  # a smaller L: longer steps
                        L, sized = self._lipschitz_on(act)
                if keep is not None:
                    X *= keep
                    Y *= keep
                if not act.any():  # every group is zero at the optimum: W = 0
                    return X, None, k, 1.0, None, Glow is not None
            check = True
            every = bool(act.all())  # nothing screened: the rows need no gathering
            Xa, Ya = (X, Y) if every else (X[act], Y[act])
            ka = keep[act] if keep is not None else None
            cL = c / L  # ∇f/L = (G_t y_t − b_t)·c_t/L per task
            BcL = view[2] * cL
            # the first run of iterations as long as the last point's, less two: points
            # in a row need about as many, and each check skipped saves a polish and a gap
            block = max(check_every, k // 10, first if k == 0 else 0)
            for _ in range(block):
                k += 1
                if grad_P is None:
                    Z = product(Ya)
                    Z *= cL
                    Z -= BcL
                else:
                    Z, grad_P = grad_P / L, None
                Xn = pen.prox(np.subtract(Ya, Z, out=Z), 1.0 / L)
                if ka is not None:
                    Xn *= ka
                D = Xn - Xa
                if np.vdot(Ya - Xn, D) > 0:  # adaptive restart
                    t, Ya = 1.0, Xn  # never edited in place: Xn, Xa and Ya may be one array
                else:
                    tn = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
                    D *= (t - 1.0) / tn
                    Ya = np.add(Xn, D, out=D)
                    t = tn
                Xa = Xn
            if every:
                X, Y = Xa, Ya
            else:
                X[act], Y[act] = Xa, Ya
            if self.rows and Glow is None:  # V of the iterate, for the rows that enter
                hint = (self.B - self._product(X, view)) * c
            elif self.rows:  # on the active rows (the polish reads no other)
                hint = np.zeros_like(X)
                hint[act] = (view[2] - product(Xa)) * c
        screened = 1.0 - (np.count_nonzero(act) if self.rows else np.count_nonzero(keep)) / (
            act.size if self.rows else keep.size)
        return X, checked[3], k, screened, GX, Glow is not None


# ----------------------------------------------------------------------------- path
@blas_limited
def regularization_path(
    prob: Problem,
    penalty: int | Penalty = 0,
    alphas: Any = None,
    n_alphas: int = 30,
    eps: float = 1e-3,
    backend: str | None = None,
    tol: float = 1e-8,
    progress: bool = False,
) -> PathResult:
    r"""Solve ``prob`` for a grid of strengths of one penalty, every point certified.

    Parameters
    ----------
    prob : Problem
    penalty : int or Penalty, default 0
        The swept term: an index into ``prob.penalties`` or the object itself.
    alphas : array_like (n_alphas,), optional
        Strengths to solve for. Default: ``n_alphas`` values geometrically spaced from
        ``alpha_max`` (the smallest strength with ``W = 0`` optimal, the dual norm of
        the gradient of the rest at 0) down to ``eps·alpha_max``. Quadratic and
        squared-norm terms have no ``alpha_max`` and need a given grid. The points are
        solved in decreasing order of strength (best for warm starts) and returned in
        the order given.
    n_alphas : int, default 30
    eps : float, default 1e-3
    backend : str, optional
        None: warm-started FISTA when every non-smooth term has an exact prox (on the
        Gram matrices with Gap Safe screening when L1 or L21 is the only term), the
        "direct" solve for quadratic problems, otherwise the default backend. A named
        backend is honoured: the compiled problem is re-solved with the new strength
        (its strengths are CVXPY Parameters, so nothing is rebuilt; "fista" gets the
        previous point as ``W0``).
    tol : float, default 1e-8
        Target certified relative gap at every point.
    progress : bool
        Show a tqdm progress bar (needs the ``progress`` extra).

    Returns
    -------
    PathResult
        ``W`` is (n_alphas, d, T). The penalty's strength is restored afterwards.

    Warns
    -----
    ConvergenceWarning
        Once, listing the points whose certificate does not meet ``tol``.

    Examples
    --------
    >>> import mtlcvx as mc
    >>> data = mc.datasets.make_related_tasks(n_tasks=3, n_features=6, n_samples=30,
    ...                                       random_state=0)
    >>> path = mc.regularization_path(mc.Problem(data, penalties=[mc.L21()]), n_alphas=5)
    >>> path.W.shape, path.status[-1]
    ((5, 6, 3), 'optimal')
    """
    index = _penalty_index(prob, penalty)
    pen = prob.penalties[index]
    grid = _grid(prob, index, alphas, n_alphas, eps)
    tol = check_tol(tol)
    order = np.argsort(-grid, kind="stable")
    d, T = prob.n_features, prob.n_tasks
    n = grid.size
    Ws = np.zeros((n, d, T))
    intercepts = np.zeros((n, T)) if prob.fit_intercept else None
    objective = np.zeros(n)
    certs: list[Certificate | None] = [None] * n
    status = [""] * n
    times = np.zeros(n)
    iterations = np.zeros(n, dtype=int)
    screened = np.zeros(n)
    saved = pen.alpha
    bar = require("tqdm", "progress", "progress=True").tqdm(total=n) if progress else None
    try:
        pen.alpha = float(grid[order[0]])
        route = _route(prob, pen, backend)
        gram = _GramRoute(prob, pen) if route == "fista-gram" else None
        W, V = np.zeros((d, T)), None
        predict = _WarmStart(d, T)
        floor, its = 0.0, 0
        products: list[np.ndarray | None] = [None] * n  # G W of the last check
        shared = gram is not None and gram.shared and not prob.fit_intercept
        # FISTA's products in single precision until a point falls back to double
        single = gram is not None and gram.G_single is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for i in order:
                start = time.perf_counter()
                pen.alpha = float(grid[i])
                if gram is not None:  # certified after the loop, all points at once
                    W0, V0 = predict(pen.alpha) if predict.alphas else (W, V)
                    W, V, its, screened[i], GW, single = gram.solve(
                        W0, pen.alpha, tol, V0, first=its - _FIRST_LESS, single=single)
                    iterations[i] = its
                    predict.add(pen.alpha, W, V)
                    if shared:
                        products[i] = GW
                else:
                    W, cert, iterations[i] = _solve_point(prob, route, W, tol, floor)
                    floor = _rounding_floor(cert)
                    certs[i] = cert
                Ws[i] = W
                times[i] = time.perf_counter() - start
                if bar is not None and gram is None:
                    bar.update(1)
            if gram is not None:
                _certify_points(prob, pen, grid, order, Ws, certs, times, iterations, tol,
                                products, bar)
        for i in range(n):
            objective[i] = certs[i].objective
            status[i] = certified_status(certs[i], tol)
            if intercepts is not None:
                intercepts[i] = prob.optimal_intercept(Ws[i])
    finally:
        pen.alpha = saved
        if bar is not None:
            bar.close()
    bad = [i for i in range(n) if status[i] != "optimal"]
    if bad:
        floors = [_rounding_floor(certs[i]) for i in bad]
        hint = (f"; the certificate's bound on its own rounding error is {max(floors):.1e} "
                "(relative) there, so no iterate can be certified below it: ask for a tol "
                "above it" if max(floors) > tol else "; see path.certificates")
        warnings.warn(f"{len(bad)} of {n} path points are not certified to tol={tol:g} "
                      f"(alpha = {', '.join(f'{grid[i]:.3g}' for i in bad)}){hint}",
                      ConvergenceWarning, stacklevel=3)  # past the BLAS-limit wrapper
    return PathResult(grid, Ws, intercepts, objective, certs, status, times, route, index,
                      info={"iterations": iterations, "screened": screened})


class _WarmStart:
    """Warm starts ``(W, V)`` from the last points ``(α_i, W_i, V_i)`` (up to
    :data:`_PREDICT_POINTS`, ``V_i = −∇f(W_i)``): the polynomial through them in ``α``
    (a solution is smooth in α while its support stays; a Lasso's is piecewise linear),
    evaluated at the next strength, ``W`` on the support of the last one (zeros stay zero).
    ``V`` is affine in ``W`` and the weights sum to one, so the same combination of the
    ``V_i`` is ``−∇f`` of the combined ``W`` (up to the zeros kept; None when a ``V_i``
    is unknown). The last point itself when a strength repeats. The points are kept in
    one array (slots reused in turn, ``W_i`` and ``V_i`` side by side), so a combination
    is one product with the weights."""

    def __init__(self, d: int, T: int):
        self.WV = np.zeros((_PREDICT_POINTS, 2, d, T))  # [W_i, V_i] per slot
        self.alphas: list[float] = []  # per slot in use
        self.known: list[bool] = []  # V_i given, per slot in use
        self.last = -1  # the slot of the last point

    def add(self, alpha: float, W: np.ndarray, V: np.ndarray | None) -> None:
        """Keep the point ``(alpha, W, V)`` in place of the oldest."""
        slot = (self.last + 1) % _PREDICT_POINTS
        if slot == len(self.alphas):
            self.alphas.append(alpha)
            self.known.append(V is not None)
        else:
            self.alphas[slot], self.known[slot] = alpha, V is not None
        self.WV[slot, 0] = W
        if V is not None:
            self.WV[slot, 1] = V
        self.last = slot

    def __call__(self, alpha: float) -> tuple[np.ndarray, np.ndarray | None]:
        """``(W, V)`` at ``alpha`` (arrays owned by the caller except for a repeated
        strength, which returns the last point's, to be read only)."""
        x, m = self.alphas, len(self.alphas)
        W_last, V_last = self.WV[self.last]
        if alpha in x or len(set(x)) < m:
            return W_last, V_last if self.known[self.last] else None
        weights = []  # the Lagrange basis at alpha
        for i, xi in enumerate(x):
            w = 1.0
            for j, xj in enumerate(x):
                if j != i:
                    w *= (alpha - xj) / (xi - xj)
            weights.append(w)
        W, V = (np.array(weights) @ self.WV[:m].reshape(m, -1)).reshape(self.WV.shape[1:])
        W[W_last == 0] = 0.0
        return W, V if all(self.known) else None


#: The polish extends an earlier factor for supports of at least this many rows (where
#: ``G_SS`` is over 128 KB, the allocator's threshold for fresh memory maps whose pages
#: fault on first touch); below, a fresh factor costs less than the extension's calls
#: (one BLAS thread, 100-row design: a fresh factor of 10 / 64 / 94 rows 3 / 18 / 35 µs,
#: the extension 55-90 µs; 500-row design: 200 / 400 rows 0.2 / 1 ms warm, 6-8 ms for
#: 500 fresh rows on the path).
_EXTEND_ROWS = 128

#: Arrays below this many bytes come from the allocator's free lists (glibc's default
#: mmap threshold, 128 KB); larger ones may be fresh pages that fault on first touch.
_FRESH_BYTES = 1 << 17

#: FISTA's products in single precision (``_GramRoute._single_precision``) from this many
#: multiply-adds ``d²T`` (the 2000 × 500 × 50 benchmark has 12.5 M; the 500 × 100 × 20
#: one 0.2 M, where the time is in the calls), for designs with ``κ√d·2⁻²⁴`` at most
#: ``_SINGLE_ROUNDING``. AR(1) designs 2000 × 500 × 50, 50-point paths, CPU in double /
#: single precision: κ = 54: 748 / 516 ms (809 / 868 iterations), κ = 102: 1397 / 879 ms,
#: κ = 244: 2350 / 1421 ms (2938 / 2948); at κ = 1010 single precision stalls (8186 /
#: 26721 iterations), hence the bound (κ ≤ 225 at d = 500).
_SINGLE_PRODUCT = 1 << 21
_SINGLE_ROUNDING = 3e-4
#: A point that has run this many times the previous point's iterations (at least 10)
#: in single precision goes on in double precision, and so does the rest of the path: a
#: safety net should single precision's floor be above the target.
_SINGLE_PATIENCE = 10

#: The first run of FISTA iterations of a point is the previous point's count less this
#: (A/B on the three benchmark paths, CPU time, against checks after 3, 6, 9, …
#: iterations: per-task 25.6 → 22.1 ms, 2000×500×50 275 → 245 ms, 500×100×20 28.7 →
#: 27.5 ms; less 1: 22 / 245 / 27 ms with more iterations, less 3: 22.6 / 260 / 27.6 ms).
_FIRST_LESS = 2

#: The first check of a point waits for its first run of iterations when that run is at
#: least this long (CPU, fastest of 5, medians of four alternating runs: 500×100×20
#: 24.9 → 23.7 ms, 2000×500×50 239 → 224 ms, per-task 21.0 → 19.5 ms; from 4: more
#: iterations on the large path and 245 → 245 ms there).
_SKIP_FIRST_CHECK = 6

#: Points the warm start extrapolates from: a parabola in α (on the 50-point paths of the
#: 500×100×20 and 2000×500×50 benchmarks, 135 and 144 FISTA iterations in all, 22 and 24
#: points certified before any iteration; a cubic in α 144 and 159, the cubic in log α
#: used before 165 and 189 with 14 and 15, a line in α 168 and 192).
_PREDICT_POINTS = 3


def _route(prob: Problem, pen: Penalty, backend: str | None) -> str:
    from .backends import resolve_backend
    from .backends.registry import default_backend

    if backend is not None:
        return resolve_backend(prob, backend).name
    if prob.is_quadratic:
        return default_backend(prob)
    if prob.constraints is None and prob.has_prox:
        return "fista-gram" if _GramRoute.applies(prob, pen) else "fista"
    return resolve_backend(prob, None).name


def _certify_points(prob: Problem, pen: Penalty, grid: np.ndarray, order: np.ndarray,
                    Ws: np.ndarray, certs: list[Certificate | None], times: np.ndarray,
                    iterations: np.ndarray, tol: float, products: list[np.ndarray | None],
                    bar: Any) -> None:
    """The Gram route's points, certified in one batched pass
    (:func:`mtlcvx.certificates.certify_path`, its time shared equally among them); a
    point it leaves out is certified alone, and one whose certificate misses ``tol``
    is polished by FISTA on the full data (:func:`_refine`). Fills ``certs``, updates
    ``Ws``, ``times`` and ``iterations`` in place."""
    start = time.perf_counter()
    batch = certify_path(prob, pen, grid, Ws, tol, products)
    times += (time.perf_counter() - start) / grid.size
    floor = 0.0  # the rounding floor of the point before, as the solve order meets them
    for i in order:
        start = time.perf_counter()
        cert = batch[i]
        if cert is None or certified_status(cert, tol) != "optimal":  # alone, at its strength
            pen.alpha = float(grid[i])
            cert = cert or certify(prob, Ws[i], gradient_mapping=False, tol=tol)
            computed = np.inf if cert.gap is None else cert.gap - cert.rounding  # F − D
            if certified_status(cert, tol) != "optimal" and computed > tol * abs(cert.objective):
                # rare: the inner gap is stricter than the certificate
                Ws[i], cert, its = _refine(prob, Ws[i], tol, max(floor, _rounding_floor(cert)))
                iterations[i] += its
        certs[i] = cert
        floor = _rounding_floor(cert)
        times[i] += time.perf_counter() - start
        if bar is not None:
            bar.update(1)


def _refine(prob: Problem, W: np.ndarray, tol: float,
            floor: float) -> tuple[np.ndarray, Certificate, int]:
    """FISTA on the full problem from ``W`` until its certified gap is ≤ ``tol`` (or twice
    the relative rounding floor ``floor``, below which iterating is futile)."""
    from .first_order import fista

    trace = fista(prob, tol=max(tol, 2.0 * floor), W0=W, record_every=_NO_RECORD)
    return trace.W, trace.certificate, trace.iterations


def _solve_point(prob: Problem, route: str, W: np.ndarray, tol: float,
                 floor: float) -> tuple[np.ndarray, Certificate, int]:
    """One point from the warm start ``W`` on a route other than the Gram route:
    (W, certificate, iterations). ``floor`` is the previous point's relative rounding
    floor (:func:`_rounding_floor`)."""
    if route == "fista":
        return _refine(prob, W, tol, floor)
    sol = prob.solve(backend=route, tol=tol)
    return sol.W, sol.certificate or certify(prob, sol.W), sol.iterations or 0


def _rounding_floor(cert: Certificate) -> float:
    """The part of ``cert.relative_gap`` that is the certificate's bound on its own
    rounding error (``cert.rounding``, relative): no iterate can be certified below it."""
    if cert.rounding is None or cert.objective == 0:
        return 0.0
    return cert.rounding / abs(cert.objective)


_NO_RECORD = 1 << 40  # record_every for fista: only the first and last points


# ----------------------------------------------------------------------------- splits
Split = tuple[list[np.ndarray], list[np.ndarray]]  # (train rows per task, test rows per task)


class TaskShuffleSplit:
    """Random train/test splits inside every task (the School protocol).

    Each split draws, for every task ``t``, ``ceil(test_size·n_t)`` test rows (or
    ``test_size`` rows when it is an int) at random; the rest train. On a shared design
    every task uses the same rows (they are the same samples).

    Parameters
    ----------
    n_splits : int, default 10
    test_size : float in (0, 1) or int ≥ 1, default 0.25
    random_state : int or None
        Seed of ``numpy.random.default_rng``; splits are drawn task by task, in task order.
    """

    def __init__(self, n_splits: int = 10, test_size: float = 0.25,
                 random_state: int | None = None):
        n_splits = check_count(n_splits, "n_splits", maximum=None)
        is_int = isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool)
        if not ((is_int and test_size >= 1) or (not is_int and isinstance(test_size, float)
                                                and 0 < test_size < 1)):
            raise ArgumentError("test_size must be a fraction in (0, 1) or a number of rows "
                                f"≥ 1, got {test_size!r}")
        self.n_splits = n_splits
        self.test_size = test_size
        self.random_state = random_state

    def _n_test(self, n: int) -> int:
        if isinstance(self.test_size, float):
            return math.ceil(self.test_size * n)
        return int(self.test_size)

    def split(self, data: MultiTaskData) -> list[Split]:
        """``n_splits`` pairs of per-task row indices ``(train, test)``."""
        for t, n in enumerate(data.n_samples):
            if not 1 <= self._n_test(int(n)) < n:
                raise DataError(
                    f"task {data.tasks[t]!r} has {n} samples: test_size={self.test_size!r} "
                    "leaves no training or no test row; drop the task or change test_size")
        rng = np.random.default_rng(self.random_state)
        out = []
        for _ in range(self.n_splits):
            perms = _per_task(data, rng.permutation)
            tests = [p[: self._n_test(len(p))] for p in perms]
            trains = [np.sort(p[self._n_test(len(p)):]) for p in perms]
            out.append((trains, [np.sort(te) for te in tests]))
        return out

    def __repr__(self) -> str:
        return (f"TaskShuffleSplit(n_splits={self.n_splits}, test_size={self.test_size!r}, "
                f"random_state={self.random_state!r})")


def _per_task(data: MultiTaskData, draw: Callable[[int], np.ndarray]) -> list[np.ndarray]:
    """``draw(n_t)`` for every task; one draw shared by all tasks on a shared design."""
    if data.is_shared:
        return [draw(int(data.n_samples[0]))] * data.n_tasks
    return [draw(int(n)) for n in data.n_samples]


def _kfold(data: MultiTaskData, k: int, random_state: int | None) -> list[Split]:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ArgumentError(f"cv must be an int ≥ 2 or a TaskShuffleSplit, got {k!r}")
    for t, n in enumerate(data.n_samples):
        if n < k:
            raise DataError(f"task {data.tasks[t]!r} has {n} samples, fewer than cv={k} folds; "
                            "use fewer folds or drop the task")
    if random_state is None:
        orders = _per_task(data, np.arange)
    else:
        orders = _per_task(data, np.random.default_rng(random_state).permutation)
    chunks = [np.array_split(o, k) for o in orders]  # contiguous, sizes differ by ≤ 1
    out = []
    for f in range(k):
        tests = [np.sort(ch[f]) for ch in chunks]
        trains = [np.sort(np.concatenate(ch[:f] + ch[f + 1:])) for ch in chunks]
        out.append((trains, tests))
    return out


def _subset(data: MultiTaskData, rows: list[np.ndarray]) -> MultiTaskData:
    """The given rows of every task (labels and feature names kept; a shared design stays
    shared when every task takes the same rows)."""
    names = data.feature_names
    if data.is_shared and all(r is rows[0] or np.array_equal(r, rows[0]) for r in rows):
        X = data.X[0][rows[0]]
        return MultiTaskData([X] * data.n_tasks, [y[rows[0]] for y in data.y], data.tasks,
                             feature_names=names)
    return MultiTaskData([X[r] for X, r in zip(data.X, rows, strict=True)],
                         [y[r] for y, r in zip(data.y, rows, strict=True)], data.tasks,
                         feature_names=names)


# ----------------------------------------------------------------------------- scoring
def _scores(scoring: str, ys: list[np.ndarray], preds: list[np.ndarray]) -> tuple[float,
                                                                                np.ndarray]:
    """(fold score, per-task scores) for one fit; "r2_pooled" reports per-task R²."""
    def ratio(num: float, den: float) -> float:  # scikit-learn's force_finite rule
        if den > 0:
            return 1.0 - num / den
        return 1.0 if num == 0 else 0.0

    sse = np.array([float(np.sum((y - p) ** 2)) for y, p in zip(ys, preds, strict=True)])
    sst = np.array([float(np.sum((y - y.mean()) ** 2)) for y in ys])
    if scoring == "mse":
        per = sse / np.array([y.size for y in ys])
        return float(per.mean()), per
    if scoring == "explained_variance":
        per = np.array([ratio(float(np.var(y - p)), float(np.var(y)))
                        for y, p in zip(ys, preds, strict=True)])
        return float(per.mean()), per
    per = np.array([ratio(a, b) for a, b in zip(sse, sst, strict=True)])
    if scoring == "r2":
        return float(per.mean()), per
    y_all = np.concatenate(ys)  # r2_pooled
    return ratio(float(sse.sum()), float(np.sum((y_all - y_all.mean()) ** 2))), per


def _fold_job(build: Any, from_factory: bool, index: int, alphas: np.ndarray,
              train: MultiTaskData, test: MultiTaskData, scoring: str,
              backend: str | None, tol: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Worker: build the fold problem from plain objects, run its path, score it."""
    prob = build(train) if from_factory else build.with_data(train)
    if not isinstance(prob, Problem):
        raise ArgumentError(f"the factory returned a {type(prob).__name__}, not a Problem")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        path = regularization_path(prob, index, alphas=alphas, backend=backend, tol=tol)
    fold = np.zeros(alphas.size)
    per = np.zeros((alphas.size, test.n_tasks))
    for i in range(alphas.size):
        b = None if path.intercept is None else path.intercept[i]
        fold[i], per[i] = _scores(scoring, test.y, test.predict(path.W[i], b))
    return fold, per, path.status


class _Recipe:
    """What a worker needs to rebuild a problem on its fold: loss, penalties, intercept
    flag and constraints (plain objects; never the compiled CVXPY problem)."""

    def __init__(self, prob: Problem):
        self.loss = prob.loss
        self.penalties = prob.penalties
        self.fit_intercept = prob.fit_intercept
        self.constraints = prob.constraints

    def with_data(self, data: MultiTaskData) -> Problem:
        """As :meth:`Problem.with_data`: copies, so threads never share a penalty."""
        return Problem(data, copy.deepcopy(self.loss), copy.deepcopy(self.penalties),
                       fit_intercept=self.fit_intercept, constraints=self.constraints)


# ----------------------------------------------------------------------------- CV
@dataclass
class CVResult(Saved):
    """Cross-validation scores over a grid of strengths.

    Attributes
    ----------
    alphas : ndarray (n_alphas,)
    scores : ndarray (n_alphas, n_folds)
        The fold score (see :func:`cross_validate` for each scoring's formula).
    per_task : ndarray (n_alphas, n_folds, T)
        Per-task scores (R² for "r2" and "r2_pooled").
    mean_score, std_score : ndarray (n_alphas,)
        Mean and standard deviation (``ddof=0``) over folds.
    best_index : int
        Index of the best mean score (highest; lowest for "mse"); ties go to the first.
    best_alpha : float
    scoring : str
    status : list of list of str
        Certificate status of every fold's path points, ``status[fold][i]``.

    A result read back by :func:`mtlcvx.load` has every attribute but no problem to
    :meth:`refit`.
    """

    _saved = ("alphas", "scores", "per_task", "scoring", "status", "penalty", "_backend",
              "_tol")

    alphas: np.ndarray
    scores: np.ndarray
    per_task: np.ndarray
    scoring: str
    status: list[list[str]]
    penalty: int
    _source: Any = field(repr=False)
    _data: MultiTaskData = field(repr=False)
    _backend: str | None = None
    _tol: float = 1e-8

    @property
    def mean_score(self) -> np.ndarray:
        """Mean fold score per strength (n_alphas,)."""
        return self.scores.mean(axis=1)

    @property
    def std_score(self) -> np.ndarray:
        """Standard deviation (``ddof=0``) of the fold scores per strength (n_alphas,)."""
        return self.scores.std(axis=1)

    @property
    def best_index(self) -> int:
        """Index of the best mean score (lowest for "mse"); ties go to the first."""
        m = self.mean_score
        return int(np.argmin(m) if self.scoring == "mse" else np.argmax(m))

    @property
    def best_alpha(self) -> float:
        """The strength at :attr:`best_index`."""
        return float(self.alphas[self.best_index])

    def to_frame(self):
        """One row per strength: alpha, mean_score, std_score, then one column per fold
        (needs the ``pandas`` extra)."""
        pd = require("pandas", "pandas", "CVResult.to_frame")
        frame = pd.DataFrame({"alpha": self.alphas, "mean_score": self.mean_score,
                              "std_score": self.std_score})
        for f in range(self.scores.shape[1]):
            frame[f"fold_{f}"] = self.scores[:, f]
        return frame

    def refit(self):
        """The problem at ``best_alpha`` on all the data, solved (a new Problem; the
        one passed to :func:`cross_validate` is left alone). Returns its Solution."""
        if self._source is None:
            raise MTLError("this CVResult was read by mtlcvx.load and holds no problem: "
                           "build the problem, set the penalty's alpha to best_alpha "
                           f"({self.best_alpha!r}) and solve it")
        if isinstance(self._source, Problem):
            prob = self._source.with_data(self._data)
        else:
            prob = self._source(self._data)
        prob.penalties[self.penalty].alpha = self.best_alpha
        return prob.solve(backend=self._backend, tol=self._tol)


def cross_validate(
    prob_or_factory: Problem | Callable[[MultiTaskData], Problem],
    alphas: Any,
    penalty: int | Penalty = 0,
    cv: int | TaskShuffleSplit = 5,
    scoring: str = "r2",
    n_jobs: int | None = None,
    random_state: int | None = None,
    progress: bool = False,
    data: MultiTaskData | None = None,
    *,
    backend: str | None = None,
    tol: float = 1e-8,
) -> CVResult:
    r"""Cross-validate the strength of one penalty, with folds inside every task.

    Parameters
    ----------
    prob_or_factory : Problem or callable
        A Problem (rebuilt on every training fold with :meth:`Problem.with_data`), or
        ``factory(data) -> Problem`` for problems that cannot rebuild themselves (then
        ``data`` is required).
    alphas : array_like (n_alphas,) or None
        Strengths to score; None takes :func:`regularization_path`'s default grid on
        the full data.
    penalty : int or Penalty, default 0
        The swept term (index into the problem's penalties, or the object of a Problem).
    cv : int or TaskShuffleSplit, default 5
        An int ``k`` splits every task's rows into ``k`` contiguous folds (sizes differ
        by at most one), in the given order when ``random_state`` is None, after a
        per-task shuffle with ``numpy.random.default_rng(random_state)`` otherwise. On a
        shared design every task uses the same rows. Every task appears in every fold.
    scoring : {"r2", "r2_pooled", "explained_variance", "mse"}
        Per test fold: "r2" is the mean over tasks of ``1 − SSE_t/SST_t``; "r2_pooled"
        is ``1 − Σ_t SSE_t / Σ_t Σ_i (y_ti − ȳ)²`` with ``ȳ`` the mean of all test
        targets (the explained variance of the School literature); "explained_variance"
        the mean over tasks of ``1 − Var(y_t − ŷ_t)/Var(y_t)`` (scikit-learn's);
        "mse" the mean over tasks of ``SSE_t/n_t`` (lower is better). A zero denominator
        gives 1 for a perfect fit and 0 otherwise, as in scikit-learn.
    n_jobs : int or None
        Folds run in parallel through ``joblib.Parallel(n_jobs)``; None follows the
        active joblib backend (one job by default), so
        ``with joblib.parallel_backend("dask"):`` runs them on a Dask cluster. Each
        fold's path runs sequentially, warm-started. Workers receive arrays and penalty
        objects (plain floats and arrays) and build their problems with
        :meth:`Problem.with_data`, never a pickled CVXPY object.
    random_state : int or None
        Shuffle seed for an int ``cv``.
    progress : bool
        tqdm progress bar over folds (needs the ``progress`` extra).
    data : MultiTaskData, optional
        The data for a factory (a Problem brings its own).
    backend, tol
        Passed to :func:`regularization_path` on every fold and to :meth:`CVResult.refit`.

    Returns
    -------
    CVResult

    Raises
    ------
    DataError
        A task has fewer samples than folds (the message names it).
    """
    if scoring not in SCORINGS:
        raise ArgumentError(f"scoring must be one of {', '.join(map(repr, SCORINGS))}, "
                            f"got {scoring!r}")
    from_factory = not isinstance(prob_or_factory, Problem)
    if from_factory:
        if not callable(prob_or_factory):
            raise ArgumentError("prob_or_factory must be a Problem or a callable "
                                f"data -> Problem, got {type(prob_or_factory).__name__}")
        if not isinstance(data, MultiTaskData):
            raise DataError("a factory needs data=MultiTaskData(...) to split")
        full = prob_or_factory(data)
        build: Any = prob_or_factory
    else:
        full = prob_or_factory
        data = full.data if data is None else data
        build = _Recipe(full)
    index = _penalty_index(full, penalty)
    grid = (_grid(full, index, None, 30, 1e-3) if alphas is None else _check_alphas(alphas))
    if isinstance(cv, TaskShuffleSplit):
        splits = cv.split(data)
    else:
        splits = _kfold(data, cv, random_state)
    jobs = [(build, from_factory, index, grid, _subset(data, tr), _subset(data, te), scoring,
             backend, tol) for tr, te in splits]
    try:
        import joblib
    except ImportError:
        if n_jobs not in (None, 1):
            require("joblib", "parallel", f"cross_validate(n_jobs={n_jobs})")
        results: Any = map(lambda job: _fold_job(*job), jobs)
    else:
        results = joblib.Parallel(n_jobs=n_jobs, return_as="generator")(
            joblib.delayed(_fold_job)(*job) for job in jobs)
    if progress:
        results = require("tqdm", "progress", "progress=True").tqdm(results, total=len(jobs))
    out = list(results)
    scores = np.stack([o[0] for o in out], axis=1)
    per_task = np.stack([o[1] for o in out], axis=1)
    return CVResult(grid, scores, per_task, scoring, [o[2] for o in out], index,
                    prob_or_factory, data, backend, float(tol))
