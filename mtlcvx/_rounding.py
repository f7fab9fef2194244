r"""A bound on the floating-point error of a certificate's own arithmetic.

The certificate reports ``gap = fl(F(W)) − D̲`` with ``D̲ = fl(D(θ̂)) − E_D`` and adds
``E_F``: ``E_F`` bounds ``|fl(F(W)) − F(W)|`` and ``E_D`` bounds ``|fl(D(θ̂)) − D(θ̂)|``
(plus what keeps the dual point feasible), so ``D̲ ≤ D(θ̂) ≤ F*`` is a lower bound that
holds in exact arithmetic and ``gap ≥ F(W) − F*``. ``θ̂`` is the dual point *as computed*:
weak duality holds for every θ, so only the evaluation of ``D`` at it needs a bound, never
the distance of θ̂ from the exact residual.

**Tools** (Higham, *Accuracy and Stability of Numerical Algorithms*, section 3.1). A sum of ``n``
products in any order is within ``γ_n Σ|a_i b_i|`` of the exact one, ``γ_n =
nε/(1 − nε)`` (here with a factor 2 of headroom); a sum of non-negative terms therefore
has relative error ``γ_n``. Column ``j`` of task ``t`` has norm ``‖x_tj‖`` and mean
``x̄_tj``; ``‖|X_t|‖₂ ≤ min(‖X_t‖_F, (‖X_t‖₁‖X_t‖_∞)^{1/2})``. These are cached once per
data set, so every bound below costs O(dT) (plus one product with ``|K|`` for the
quadratic terms).

**Primal loss.** The computed residual of row ``i`` is ``ρ̂_i = ρ_i + δ_i`` with
``|δ_i| ≤ γ_{d+3} m_i``, ``m = |X_t||w_t| + |y_t| + |b_t|``. With
``‖m_t‖ ≤ μ_t = min(‖|X_t|‖₂‖w_t‖, Σ_j ‖x_tj‖|w_jt|) + ‖y_t‖ (+ √n_t|b_t|)`` (a profiled
intercept ``|b̂_t| ≤ ‖m_t‖/√n_t`` doubles ``μ_t``) and Cauchy–Schwarz,

.. math::

    |\mathrm{fl}(\ell) - \ell| \le \sum_t c_t\big(\gamma_{d+3}\lVert\hat\rho_t\rVert\mu_t
    + \tfrac12\gamma_{d+3}^2\mu_t^2\big) + \gamma_{n+T+4}\,\hat\ell,

first order in the residual ``ρ`` (not ``‖m‖²``: near an optimum ``‖ρ‖ ≪ ‖m‖``).
``‖ρ̂_t‖`` comes from the dual's own ``‖θ̂_t‖²/(2c_t)`` (the same residual, up to
``3γμ_t`` when the intercept is profiled), so no pass over the data is needed.

**Quadratic terms** computed as ``(α/2)Σ(WK)∘W`` (summed down each column, then across
the columns, so that no reduction adds more than ``max(d, T)`` terms whatever order BLAS
takes; a narrow band's lag by lag, the same products in another order) keep the honest
bound: the value is
within ``γ_{2(d+T)+8} · (α/2)Σ|W||K|∘|W|`` and its gradient ``αWK`` within
``γ_{d+T+p+3}·α|W||K|`` elementwise, ``p`` the widest factor's columns, 0 without one (an
inexact, rank-deficient ``K`` at ``α = 1e10`` makes this large: the float value is only
known to ``ε·α·|W||K||W|``, far above its true size near the optimum). A factor-given
``K = RRᵀ + ridge·I`` is computed as
``(α/2)(‖WR‖² + ridge‖W‖²)``: with ``M = |W||R|`` and ``P`` a computed ``WR`` (both
evaluations of ``WR`` within ``E = γ_T M`` of the exact one),

.. math::

    |\mathrm{fl}(\lVert WR\rVert^2) - \lVert WR\rVert^2| \le \textstyle\sum E\circ(2|P| + 3E)
    + \gamma_{dp+1}\sum(|P| + 2E)^2,

first order in ``WR`` (far below ``γΣM²`` where ``WR`` cancels), plus
``γ_{dT+1}·ridge‖W‖²`` and ``γ_8`` of the term. Other terms (norms, decompositions) enter
through ``γ_{dT+d+T+8}·|value|`` with ``|value| ≤ |F| + ℓ + h``, ``h`` bounded by
``(α/2)(‖P‖² + ridge‖W‖²)`` plus the error above for a factor-given term (not by
``(α/2)ΣM²``, far above it where ``WR`` cancels).

**Dual, loss part.** ``θ̂_t = −c_t(R̂_t − mean)``; with intercepts profiled the dual of
the centred problem ``D(θ) = θᵀPy − ‖θ‖²/(2c) − (h+g)*(XᵀPθ)`` (``P`` the centring) is
valid for every θ. ``a_t = fl(θ̂_tᵀŷ_t)`` is within ``3γ_{n+3}‖θ̂_t‖‖y_t‖`` of ``θ̂_tᵀPy_t``
(``γ_{n+3}‖θ̂_t‖‖y_t‖`` uncentred) and ``q_t = fl(‖θ̂_t‖²/(2c_t))`` within ``γ_{n+3}q_t``.
``V̂ = fl(Xᵀθ̂)`` differs from ``XᵀPθ̂`` entrywise by at most

.. math::

    e_{jt} = \gamma_{n+3}\lVert x_{tj}\rVert\lVert\hat\theta_t\rVert
    + |\bar x_{tj}|\,\sqrt{n_t}\,\gamma_{n+3}(c_t\mu_t + \lVert\hat\theta_t\rVert),

the second term because the centred θ̂ sums to ``1ᵀθ̂_t ≠ 0`` in floating point
(``|1ᵀθ̂_t| ≤ c_t γ_{n+2}Σ|R̂_i| + 2εΣ|θ̂_i|/c_t``); rung 3 adds its blocks' part
(:meth:`Rounding.quadratic_blocks`: ``γ·α(|P||R|ᵀ + ridge|W|)`` for a factor-given term,
whose block is the computed ``P = fl(WR)`` itself, ``γ·α|W||K|`` for the others) and
``ε|V̂|``.

**Dual, scale and conjugate.** ``D(s) = a·s − B·s² − (h+g)*(sV)``. A norm's dual ball
test ``s·Ω°(V̂) ≤ α`` holds for ``V̂``, not for the exact ``V``: shrinking the scale to
``s/(1+δ)``, ``δ = s·Ω°(e)/α + γ_{d+T+8}``, makes the point feasible (the dual norms are
absolute or unitarily invariant, so ``Ω°(E) ≤ Ω°(e)`` for ``|E| ≤ e``: true of every
built-in norm) and costs at most ``δ·(|as − 2Bs²| + 2Bs²δ)`` (``D`` is concave and
``D'(s)s = as − 2Bs²``, small where the ball constrains ``s``). Where ``e`` is not small
against ``α`` (strengths far below ``alpha_max``) the point is moved instead, for tasks of
full column rank: ``θ'_t = θ̂_t + X̃_tG_t⁻¹ΔV_t`` has ``X̃_tᵀθ'_t = V̂_t`` exactly, and

.. math::

    |D_t(s\theta') - D_t(s\hat\theta)| \le s\,|w^{ls}_t|^\top e_t
    + s^2\big(|w^{ls}_t - w_t|^\top e_t + \lVert\delta_t\rVert\lVert e_t\rVert/\sigma_t
    + \lVert e_t\rVert^2/(2c_t\sigma_t^2)\big),

``w^{ls} = G⁻¹X̃ᵀỹ``, ``σ_t² ≤ λ_min(G_t)``, ``δ_t`` the residual's rounding (the
cheaper of the two is used; ``w^{ls}``'s own error enters to first order).
A conjugate of a squared norm changes by ``s²Ω°(e)(2Ω°(V̂) + Ω°(e))/(2α)``; ``½⟨V, 𝒬⁻¹V⟩`` by
``s²(‖𝒬⁻¹V̂‖‖e‖ + ‖e‖²/(2λ_min))``, and its value at ``V̂`` is bounded from any computed
solve ``X̂`` with ``r = V̂ − 𝒬X̂``: ``½⟨V̂, 𝒬⁻¹V̂⟩ = ⟨V̂, X̂⟩ − h(X̂) + ½⟨r, 𝒬⁻¹r⟩``
exactly (:meth:`Rounding.quadratic_conjugate`, used with a factor-given term, whose
``h(X̂)`` has a first-order bound; otherwise the solve's backward error
``γ‖𝒬‖‖𝒬⁻¹V‖²``, first order). Where the quadratic terms are task-side factors (and
diagonal terms), the split ``V = Σα_iU_iR_iᵀ + V₂`` (:meth:`Rounding.factor_conjugate`)
bounds ``h*(V)`` without forming ``X̂RRᵀ``, whose rounding ``γ_T|X̂||R||R|ᵀ`` is not first
order where ``X̂R`` cancels (strong coupling), and needs no solve: used in its place. Where a
term's value has only the magnitude bound ``E_h = γ·(α/2)Σ|W||K|∘|W|`` the identity is also
taken at ``X̂ = W`` itself, with ``r = V − ∇h(W) = −∇F(W)`` (tiny at an exact solve) and
``h̃``, the computed ``h(W)`` that ``fl(F(W))`` holds: with ``ℓ`` the loss,

.. math::

    F(W) - D(s\theta) \le \underbrace{\ell + \tilde h - a s + B s^2
    + s^2(\langle V, W\rangle - \tilde h + \lVert r\rVert^2/(2\lambda_{\min}))}_{
    \text{computed}} + (1 - s^2)(h - \tilde h) + \dots

(``F = ℓ + h``, ``h*(V) = ⟨V, W⟩ − h + ½⟨r, 𝒬⁻¹r⟩``), so ``h̃``'s error cancels but for
``|1 − s²|·E_h`` (``s → 1`` at the optimum) when the primal floor and the dual error are
accounted together: the gap takes ``|1 − s²|E_h`` in place of ``E_h + s²E_h``, while the
reported lower bound on ``F*`` keeps ``s²E_h``. That candidate is tried where ``E_h`` and
the solve's backward-error bound exceed 4× the loss's floor, and kept without a solve when
its gap is at most the solve's primal floor (``E_h`` whole) or its own extra terms
(``s²(‖r‖²/(2λ_min) + ⟨V, W⟩``'s rounding) ``+ 2(s² − 1)⁺E_h``) are below the solve's
backward-error bound; else the smaller gap of the two. ``⟨V, X̂⟩`` is summed task by
task (``γ_{d+T+2}Σ|V∘X̂|``) and ``‖r‖`` takes the gradient's error normwise,
``γ_{d+T+p+3}‖X̂‖Σα‖|K|‖₂`` (``‖|K|‖₂`` ≤ the largest row sum of ``|K|``);
other conjugates, to first order, by ``s‖W‖‖e‖`` (their gradient at the optimum is
``W``). Combining ``a·s − B·s² − conj`` adds ``γ_{T+8}(s|a| + Bs² + |conj|)``.

**Gradual underflow.** The ``γ`` bounds assume none. A product or quotient that lands
below ``2⁻¹⁰²²`` is off by up to ``η/2 = 2⁻¹⁰⁷⁵`` absolute (sums and differences are
exact there), and what multiplies it afterwards scales that error. Each bound counts
every such ``η/2`` twice: the products inside a residual (``d`` per entry, and the
centring's division) add ``√n_t(d + 2)η`` to ``‖δ_t‖``; the squares of the loss ``n_tη/2``
before ``c_t/2``; ``θ̂_tᵀŷ_t`` and ``V̂`` ``n_t`` products per entry; ``‖θ̂_t‖²/(2c_t)``
``n_tη/(2c_t)`` (a division by the weight after the products); and the *final* scalings
by a strength or a weight (``fl(α/2·y)`` of a term's value, ``fl(α·y)`` of a gradient
entry, ``c_t·S_t`` of the loss, the products of ``D(s)``), whose ``η/2`` nothing scales:
``η`` each, so that a certificate of a positive gap is positive even where every value
underflows. A quantity divided by a strength after its products (``‖r‖²/(2λ_min)``,
``Ω°(V)²/(2α)``, ``‖∇F‖²/(2μ)``) is bounded as ``(fl(x²) + η)/(2λ)`` and rounded up by
``η``.

Every bound is evaluated in float64 and multiplied by ``1 + 2⁻¹⁰``, far above the
relative error of its own evaluation. Rung 5 (gradient mapping) gaps get ``2E_F`` (for
``F(W)`` and ``F(W⁺)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import scipy

from ._linalg import _EPS, SCRATCH_ENTRIES, issparse, scratch

if TYPE_CHECKING:
    from .data import MultiTaskData
    from .problem import Problem

__all__ = ["GramRounding", "GramShift", "QuadraticBlocks", "QuadraticConjugate", "Rounding",
           "WeightSums", "gamma", "gram_shift", "half_square_over", "least_squares", "norm_up",
           "weight_sums"]

#: The smallest subnormal float64: a product that underflows is off by at most half of it.
_ETA = 2.0 ** -1074
#: Headroom for the rounding of the bound's own evaluation.
_SAFETY = 1.0 + 2.0 ** -10


#: ``γ_n`` of the scalar lengths asked for so far (a certificate asks for a dozen, the
#: same ones at every size): a dictionary read instead of the arithmetic
_GAMMAS: dict[int | float, float] = {}


def gamma(n: int | np.ndarray) -> float | np.ndarray:
    """``γ_n = nε/(1 − nε)``, with a factor 2 of headroom for the chains counted loosely
    (elementwise for an array of lengths)."""
    try:
        value = _GAMMAS.get(n)  # (a new length: None, no exception raised and caught)
    except TypeError:  # an array (unhashable)
        value = None
    if value is not None:
        return value
    if isinstance(n, (int, float, np.integer, np.floating)):  # no array round trip
        m = 2.0 * max(float(n), 1.0)
        value = m * _EPS / max(1.0 - m * _EPS, 0.5)
        if len(_GAMMAS) < 4096:
            _GAMMAS[n] = value
        return value
    n = 2.0 * np.maximum(np.asarray(n, dtype=float), 1.0)
    return n * _EPS / np.maximum(1.0 - n * _EPS, 0.5)


def norm_up(x: np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """An upper bound on ``‖x‖₂`` (along ``axis``): the computed norm rounded up by ``γ_n``
    plus ``(nη)^{1/2}``, ``η = 2⁻¹⁰⁷⁴``, for squares that underflow (each off by up to
    ``η/2`` absolute: NumPy's norm does not rescale, so a vector of entries below
    ``1e-154`` has a computed norm far below its own)."""
    if axis is None:  # NumPy's norm of a real array without its Python-level wrapper
        v = x.ravel(order="K")
        return math.sqrt(float(v.dot(v))) * (1.0 + gamma(x.size)) + math.sqrt(x.size * _ETA)
    n = x.shape[axis]
    return np.linalg.norm(x, axis=axis) * (1.0 + gamma(n)) + np.sqrt(n * _ETA)


def half_square_over(x: float, lam: float) -> float:
    """An upper bound on ``x²/(2λ)`` for ``x ≥ 0``, ``λ > 0`` (an upper bound on a norm over
    a strength or a curvature): ``fl(x²)`` may fall ``η/2`` below ``x²`` when it
    underflows, an error the division by a small ``λ`` then scales up, and the quotient
    another ``η/2``; both counted twice. ``x = 0`` (a bound: exactly 0) gives 0."""
    return _SAFETY * (x * x + _ETA) / (2.0 * lam) + _ETA if x else 0.0


def _halving_error(alpha: float) -> float:
    """``|fl(α/2) − α/2|``: 0 unless ``α/2`` is subnormal with a bit lost (``η/2``); a term's
    value ``0.5·α·x`` then carries that error times ``|x|``."""
    return 0.0 if 2.0 * (0.5 * alpha) == alpha else 0.5 * _ETA


def _per_task(s: np.ndarray | float, like: np.ndarray) -> np.ndarray | float:
    """``s`` broadcast against per-task values ``like`` (..., T): one scale per point
    (one fewer axis than ``like``) gains the task axis; per-task scales stay."""
    return np.asarray(s, dtype=float)[..., None] if np.ndim(s) < np.ndim(like) else s


def _total(x: np.ndarray) -> np.ndarray | float:
    """Sum over the task axis (the last): a float for one point, (P,) for a batch."""
    t = np.sum(x, axis=-1)
    return float(t) if np.ndim(t) == 0 else t


class WeightSums(NamedTuple):
    """Sums over the rows of ``Δ = W`` or ``W − R`` that the rounding bounds read, per task
    (T,), or per point and task (P, T) for a batch (:func:`weight_sums`; shared designs)."""

    col: np.ndarray  # Σ_j ‖x_j‖ |Δ_jt|
    abs: np.ndarray  # Σ_j |Δ_jt|
    sq: np.ndarray | None  # Σ_j W_jt² (around 0 only: None around R)


def weight_sums(W: np.ndarray, col: np.ndarray, R: np.ndarray | None = None) -> WeightSums:
    """The :class:`WeightSums` of ``W`` (d, T) or of a batch (P, d, T), expanded around
    ``R`` (d, T) when given (``Δ = W − R``), with ``col`` a shared design's column norms
    ``‖x_j‖`` (d,).

    A batch goes through this thread's kept scratch buffer a few points at a time: ``|Δ|``
    of all points at once would be a fresh array over the allocator's mmap threshold,
    whose pages fault on first touch every time (50 points of 100 × 20: 670 µs for one
    ``|W − R|`` against 50 µs in slices). The sums over rows are products with ``col``
    and with ones (BLAS: 2-3x faster than NumPy's reductions over the middle axis); sums
    of non-negative terms are within ``γ_d`` of the exact ones in any order, so neither
    the slices nor the order change a bound.
    """
    ones = np.ones(W.shape[-2])
    if W.ndim == 2:
        A = np.abs(W if R is None else W - R)
        return WeightSums(col @ A, ones @ A, None if R is not None else np.einsum("dt,dt->t", W, W))
    P, d, T = W.shape
    out = np.empty((2 if R is not None else 3, P, T))
    step = max(1, SCRATCH_ENTRIES // (d * T))
    for p0 in range(0, P, step):
        block = W[p0:p0 + step]
        A = scratch(block.shape)
        if R is None:
            np.abs(block, out=A)
        else:
            np.abs(np.subtract(block, R, out=A), out=A)
        np.matmul(col, A, out=out[0, p0:p0 + step])
        np.matmul(ones, A, out=out[1, p0:p0 + step])
        if R is None:
            np.einsum("pdt,pdt->pt", block, block, out=out[2, p0:p0 + step])
    return WeightSums(out[0], out[1], out[2] if R is None else None)


@dataclass(frozen=True)
class _DesignNorms:
    """Norms of each task's design, cached on the (read-only) data."""

    col: np.ndarray  # (d, T): ‖x_tj‖₂
    abs_bound: Callable[[], np.ndarray]  # computes abs_spectral (a pass over |X|)
    frobenius: np.ndarray  # (T,): ‖X_t‖_F
    y: np.ndarray  # (T,): ‖y_t‖₂
    n: np.ndarray  # (T,) float: n_t
    n_max: int  # max_t n_t
    g_data: np.ndarray  # (T,): γ_{n_t+3}, the sums over each task's rows
    g_max: float  # γ_{n_max+3}
    y_live: np.ndarray | None  # (T,) bool: y_t ≠ 0 (‖y_t‖ may underflow to 0); None: all
    sqrt_n: np.ndarray  # (T,): √n_t

    @cached_property
    def abs_spectral(self) -> np.ndarray:
        """(T,): an upper bound on ``‖|X_t|‖₂``, computed when first read (a pass over
        ``|X|`` that only the residual's magnitude bound μ asks for)."""
        return self.abs_bound()


def _abs_sums(X3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(‖X_t‖₁, ‖X_t‖_∞)`` (largest column and row sums of ``|X_t|``) of ``X3`` (k, n, d),
    a few tasks at a time; the sums as products with ones (BLAS: 2-3x faster than a
    reduction over an inner axis of d or n entries; sums of non-negative terms are
    within ``γ`` of the exact ones in any order)."""
    k, n, d = X3.shape
    step = max(1, SCRATCH_ENTRIES // (n * d))
    col, row = np.empty(k), np.empty(k)
    buf = scratch((min(step, k), n, d))
    ones_n, ones_d = np.ones(n), np.ones(d)
    for t0 in range(0, k, step):
        m = min(step, k - t0)
        A = np.abs(X3[t0:t0 + m], out=buf[:m])
        col[t0:t0 + m] = np.matmul(ones_n, A).max(axis=1)
        row[t0:t0 + m] = (A.reshape(m * n, d) @ ones_d).reshape(m, n).max(axis=1)
    return col, row


def _design_norms(data: MultiTaskData) -> _DesignNorms:
    cache = data.__dict__.get("_rounding_norms")
    if cache is not None:
        return cache
    d = data.n_features
    blocks = None if data.is_shared else data.equal_blocks()
    X3 = data.X[0][None] if data.is_shared else blocks and blocks[0]
    # ‖x_tj‖², ‖y_t‖² as a solver's Gram statistics summed them, when they exist: the same
    # sums of squares as the einsums below, in another order (within the same γ_n)
    known = data._gram_diagonals()
    if X3 is not None:  # a shared design (once) or tasks of one size: batched, no copy
        col = np.sqrt(np.einsum("knd,knd->kd", X3, X3) if known is None else known[0])

        def one_inf() -> np.ndarray:
            return np.sqrt(np.prod(_abs_sums(X3), axis=0))
    else:  # every task's rows at once: per-task sums over the stacked rows
        X, starts, rows = data.stacked()[0], data.task_starts(), data.task_sums
        col = np.sqrt(rows(X * X) if known is None else known[0])  # (k, d)

        def one_inf() -> np.ndarray:
            A = np.abs(X)
            return np.sqrt(rows(A).max(axis=1) * np.maximum.reduceat(np.einsum("nd->n", A),
                                                                      starts))
    frob = np.sqrt(np.einsum("kd,kd->k", col, col))
    if known is not None:
        y = np.sqrt(known[1])
    elif data.is_shared:
        Y = data.shared_targets()
        y = np.sqrt(np.einsum("nt,nt->t", Y, Y))
    elif blocks is not None:
        y = np.sqrt(np.einsum("tn,tn->t", blocks[1], blocks[1]))
    else:
        yv = data.stacked()[1]
        y = np.sqrt(data.task_sums(yv * yv))
    y_live = None  # (‖y_t‖ > 0 for every task: every y_t ≠ 0, the usual case)
    if not y.min() > 0:  # a sum of squares may underflow to 0: the exact test
        if data.is_shared:
            y_live = np.any(data.shared_targets() != 0, axis=0)
        else:  # sums of |y|: no addition underflows, so 0 only for y_t = 0
            y_live = data.task_sums(np.abs(data.stacked()[1])) > 0
        y_live = None if y_live.all() else y_live
    n_max = int(data.n_samples.max())
    T = data.n_tasks
    per_task = frob  # (1 or T,)

    def abs_bound() -> np.ndarray:
        # (n_max·d: the longest sum in any of the norms above)
        spec = np.minimum(per_task, one_inf()) * (1.0 + gamma(n_max * d))
        return np.repeat(spec, T) if data.is_shared else spec

    if data.is_shared:
        col = np.broadcast_to(col.T, (d, T))
        frob = np.repeat(frob, T)  # (T floats: no view needed)
    else:
        col = col.T
    n = data.n_samples.astype(float)
    norms = _DesignNorms(col, abs_bound, np.asarray(frob, float), y, n,
                         n_max, gamma(n + 3), gamma(n_max + 3), y_live, np.sqrt(n))
    data.__dict__["_rounding_norms"] = norms
    return norms


def _design_means(data: MultiTaskData) -> np.ndarray:
    """``|x̄_tj|`` (d, T), the column means' sizes (centred problems only), cached."""
    cache = data.__dict__.get("_rounding_means")
    if cache is None:
        if data.is_shared:
            cache = np.broadcast_to(np.abs(data.shared_means()[0])[:, None],
                                    (data.n_features, data.n_tasks))
        else:
            blocks = data.equal_blocks()
            cache = (np.abs(np.einsum("knd->dk", blocks[0])) / blocks[0].shape[1]
                     if blocks is not None
                     else np.abs(data.task_sums(data.stacked()[0])).T / data.n_samples)
        data.__dict__["_rounding_means"] = cache
    return cache


@dataclass(frozen=True)
class _LeastSquares:
    """Per task of full column rank: ``ŵ_t = fl(G_t⁻¹X̃_tᵀỹ_t)`` with ``G_t = X̃_tᵀX̃_t``
    (centred when intercepts are profiled), a lower bound ``σ_t²`` on ``λ_min(G_t)`` and a
    bound ``err_t`` on ``‖ŵ_t − w_t^{ls}‖`` (first order); ``σ_t² = 0`` where unusable."""

    W: np.ndarray  # (d, T)
    sigma2: np.ndarray  # (T,)
    err: np.ndarray  # (T,)


def least_squares(data: MultiTaskData, center: bool,
                  extremes: tuple[float, float] | None = None) -> _LeastSquares:
    """The least-squares solutions of every task, cached on the data (see
    :class:`_LeastSquares`); ``extremes``: the computed ``(λ_min, λ_max)`` of a shared
    design's ``G`` when known (the Lipschitz bound's), saving an eigendecomposition."""
    key = ("_rounding_least_squares", center)
    cache = data.__dict__.get(key)
    if cache is not None:
        return cache
    n, d, T = data.n_samples.astype(float), data.n_features, data.n_tasks
    if data.is_shared:
        gram = data.gram(center)
        H, B = gram.G[None], gram.B
    else:
        grams = data.task_grams(center)
        H, B = grams.H, grams.B
    lam = (np.array([extremes]) if data.is_shared and extremes is not None
           else np.linalg.eigvalsh(H))  # (1 or T, d), ascending; only the ends are read
    norms = _design_norms(data)
    trace = np.einsum("dt,dt->t", norms.col, norms.col)  # Σ‖x_tj‖² ≥ ‖X̃_t‖_F²
    # λ_min(G) ≥ λ̂_min − ‖fl(G) − G‖ (centring and products) − the eigensolver's error
    g = gamma(2 * n + d + 4)
    sigma2 = lam[:, 0] - 3.0 * g * trace - gamma(d) * lam[:, -1]
    kappa = lam[:, -1] / np.where(sigma2 > 0, sigma2, 1.0)
    usable = (sigma2 > 0) & (kappa * gamma(3 * d) < 0.5)
    W = np.zeros((d, T))
    if data.is_shared and usable[0]:  # one Cholesky, T columns
        W = scipy.linalg.cho_solve(scipy.linalg.cho_factor(H[0]), B)
    elif usable.any():  # the usable tasks only: another's G may be exactly singular
        # (a task with fewer rows than features), and LAPACK would raise for the batch
        W[:, usable] = np.linalg.solve(H[usable], B.T[usable, :, None])[:, :, 0].T
    w = np.linalg.norm(W, axis=0)
    safe = np.where(usable, sigma2, 1.0)
    # Cholesky/LU backward error and the rounding of G and B, over λ_min (first order)
    err = (3.0 * g * trace * w + 3.0 * g * np.sqrt(trace) * norms.y
           + gamma(3 * d) * lam[:, -1] * w) / safe
    out = _LeastSquares(W, np.where(usable, sigma2, 0.0), np.where(usable, err, np.inf))
    data.__dict__[key] = out
    return out


class GramShift(NamedTuple):
    """A reference point ``R`` for the Gram route of a shared design (no intercepts) and
    its residual ``Ê = fl(Y − XR)`` (see :meth:`mtlcvx.losses.SquaredLoss.gram_dual`)."""

    R: np.ndarray  # (d, T)
    B: np.ndarray  # (d, T): fl(XᵀÊ)
    ee: np.ndarray  # (T,): fl(‖ê_t‖²)
    ye: np.ndarray  # (T,): fl(y_tᵀê_t)
    delta: np.ndarray  # (T,): ≥ ‖ê_t − (y_t − X r_t)‖, the rounding of Ê


def gram_shift(data: MultiTaskData, ls: _LeastSquares) -> GramShift:
    """The least-squares solution as the Gram route's reference point, cached on the data.

    Near it (small strengths, where ``W`` is dense and ``Σ_j ‖x_j‖|w_jt|`` is many times
    ``‖r_t‖``) the expansion around it cancels far less than the one around 0. ``Ê`` is
    computed once (two ``n·d·T`` products); ``|Ê − (Y − XR)| ≤ γ_{d+1}(|X||R| + |Y|)``
    entrywise, so ``‖δ_t‖ ≤ γ_{d+1}(Σ_j ‖x_j‖|R_jt| + ‖y_t‖)``.
    """
    cache = data.__dict__.get("_rounding_gram_shift")
    if cache is not None:
        return cache
    X, Y = data.X[0], data.shared_targets()
    E = Y - X @ ls.W
    norms = _design_norms(data)
    # (and each entry's d products, η/2 each where they underflow, counted twice)
    delta = gamma(X.shape[1] + 1) * (norms.col[:, 0] @ np.abs(ls.W) + norms.y) \
        + np.sqrt(X.shape[0]) * (X.shape[1] + 1) * _ETA
    shift = GramShift(ls.W, X.T @ E, np.einsum("nt,nt->t", E, E), np.einsum("nt,nt->t", Y, E),
                      _SAFETY * delta)
    data.__dict__["_rounding_gram_shift"] = shift
    return shift


class QuadraticBlocks(NamedTuple):
    """The quadratic terms as blocks of rung 3's dual point (see
    :meth:`Rounding.quadratic_blocks`)."""

    value: float  # the blocks' Σ ½‖U‖², as computed
    gradient: np.ndarray  # (d, T): their part Σ √α·USᵀ of −V, as computed
    value_error: float  # ≥ |value − its exact value at the same U|
    gradient_error: np.ndarray  # (d, T): entrywise ≥ |gradient − its exact value|


class QuadraticConjugate(NamedTuple):
    """An upper bound ``c + err + value_err`` on ``h*(V)`` from a point ``X`` (see
    :meth:`Rounding.quadratic_conjugate`)."""

    c: float  # ⟨V, X⟩ − h(X) as computed, plus rr
    err: float  # the rounding of ⟨V, X⟩ and of the sums
    q: float  # ≥ ‖𝒬⁻¹V‖
    value_err: float  # ≥ |h(X) as computed − h(X)|
    r: float  # ≥ ‖V − 𝒬X‖
    rr: float  # ≥ ½⟨r, 𝒬⁻¹r⟩, inside c


class Rounding:
    """The rounding bounds of one certificate at ``W`` (see the module docstring).

    Parameters
    ----------
    problem : Problem
    W : ndarray (d, T), or (P, d, T)
        The certified point; or a batch of points of one problem without quadratic terms
        (:func:`mtlcvx.certificates.certify_path`), for which the bounds a norm's
        certificate asks for (the loss's, :meth:`primal`, :meth:`v_error`,
        :meth:`shift`, :meth:`dual` with one scale per point) come per point, (P, T) or (P,).
    intercept : ndarray (T,) or None
        The intercept the objective was evaluated at (None: profiled or not fitted).
    sums : WeightSums, optional
        :func:`weight_sums` of ``W`` (around 0), when the caller has them.
    """

    def __init__(self, problem: Problem, W: np.ndarray, intercept: np.ndarray | None,
                 sums: WeightSums | None = None):
        self.problem, self.W, self.intercept = problem, W, intercept
        self.c = problem.loss_weights()
        self.centred = problem.fit_intercept
        self._sums = sums
        self.quadratic, self.n_others = [], 0
        for p in problem.penalties:  # (each term's strengths read once)
            if p.active:
                if p.structure == "quadratic":
                    self.quadratic.append(p)
                else:
                    self.n_others += 1
        self.others = self.n_others > 0
        #: each quadratic term's (R, ridge) when given by its factor, else None
        self.lows = [p.low_rank() for p in self.quadratic]
        #: a quadratic term given by its factor: its value's bound is first order
        self.factor_given = any(low is not None for low in self.lows)
        #: a quadratic term computed as Σ(WK)∘W: its value's bound is a magnitude bound
        self.magnitude_bound = any(low is None for low in self.lows)
        self._products: list[np.ndarray | None] | None = None
        self._magnitudes: list[float] | None = None
        self._value_bounds: tuple[float, float] | None = None
        self._abs_k: float | None = None
        self._amplified: list[tuple[float, int]] | None = None
        self._w_sizes: tuple[int, float] | None = None
        self._rows: list[float] | None = None
        self._theta: tuple[np.ndarray, np.ndarray] | None = None

    @cached_property
    def half_inv_c(self) -> np.ndarray:
        """``1/(2c_t)`` (T,), 0 where ``c_t = 0`` (its ``θ_t`` is 0)."""
        c = self.c
        return 0.5 / c if c.min(initial=1.0) > 0 else np.where(
            c > 0, 0.5 / np.where(c > 0, c, 1.0), 0.0)

    @cached_property
    def norms(self) -> _DesignNorms:
        """The design's norms (:func:`_design_norms`): read only by the bounds on the loss
        (the quadratic terms' bounds need no pass over the data)."""
        return _design_norms(self.problem.data)

    @property
    def n_max(self) -> int:
        return self.norms.n_max

    @property
    def g_data(self) -> np.ndarray:
        return self.norms.g_data

    @property
    def g_max(self) -> float:
        return self.norms.g_max

    @cached_property
    def eta_task(self) -> np.ndarray | float:
        """η per task whose products can be non-zero (``w_t``, ``y_t`` or ``b_t`` non-zero),
        0 for the others: their products are exact zeros, with no underflow to count."""
        return self._etas[0]

    @cached_property
    def eta_all(self) -> np.ndarray | float:
        """η where any task's products can be non-zero (one point's float, a batch's (P,))."""
        return self._etas[1]

    @cached_property
    def _etas(self) -> tuple[np.ndarray | float, np.ndarray | float]:
        y_live = self.norms.y_live
        if y_live is None:  # (the usual case: every y_t ≠ 0)
            return _ETA, _ETA
        live = y_live | np.any(self.W != 0, axis=-2)
        if self.intercept is not None:
            live = live | (self.intercept != 0)
        eta_all = np.where(live.any(axis=-1), _ETA, 0.0)  # one point's, or a batch's (P,)
        return np.where(live, _ETA, 0.0), float(eta_all) if eta_all.ndim == 0 else eta_all

    @cached_property
    def abs_w(self) -> np.ndarray:
        """``|W|`` of the certified point (or of each point of a batch), computed once."""
        return np.abs(self.W)

    @cached_property
    def mu(self) -> np.ndarray:
        """``μ_t ≥ ‖m_t‖`` (T,) or (P, T), ``m = |X_t||w_t| + |y_t| (+ |b_t|)``: the size of
        the products each computed residual sums (see the module docstring)."""
        norms, W, intercept = self.norms, self.W, self.intercept
        if self._sums is None:
            sq = np.einsum("...dt,...dt->...t", W, W)
            col_w = np.einsum("dt,...dt->...t", norms.col, self.abs_w)
        else:  # a batch's, summed without an array of |W| for all points (weight_sums)
            sq, col_w = self._sums.sq, self._sums.col
        mu = np.minimum(norms.abs_spectral * np.sqrt(sq), col_w) + norms.y
        if self.centred:
            mu = 2.0 * mu if intercept is None else mu + np.sqrt(norms.n) * np.abs(intercept)
        return mu * (1.0 + gamma(W.shape[-2] + 3))

    # ------------------------------------------------------------------ quadratic terms
    def _abs_products(self, W: np.ndarray | None = None) -> list[tuple[float, np.ndarray]]:
        """``(α, |W||K| or |K||W|)`` per quadratic term (``|K| ≤ |R||R|ᵀ + ridge·I``), at
        ``W`` (default: the certified point)."""
        absW = self.abs_w if W is None else np.abs(W)
        return [(pen.alpha, pen.abs_product(absW)) for pen in self.quadratic]

    def quadratic_value_error(self, W: np.ndarray | None = None) -> float:
        """A bound on the error of the quadratic terms' values as their ``value`` computes
        them at ``W`` (default: the certified point, computed once): ``γ_{2(d+T)+8}·(α/2)
        Σ|W||K|∘|W|`` for ``Σ(WK)∘W``, first order in ``WR`` for a factor-given ``K = RRᵀ +
        ridge·I`` (see the module docstring)."""
        if W is None:
            return self._certified_value_bounds()[0]
        return self._value_bounds_at(W, np.abs(W), self._products_at(W),
                                     self._magnitudes_at(np.abs(W)))[0]

    def quadratic_upper(self) -> float:
        """An upper bound on the quadratic terms' exact value at the certified point: the
        value read off the computed ``fl(WR)`` plus its error for a factor-given term (not
        ``(α/2)Σ(|W||R|)²``, far above it where ``WR`` cancels), ``(α/2)Σ|W||K|∘|W|`` for
        the others."""
        return self._certified_value_bounds()[1]

    def _certified_value_bounds(self) -> tuple[float, float]:
        if self._value_bounds is None:  # (no |W| without quadratic terms: a batch's is large)
            self._value_bounds = (0.0, 0.0) if not self.quadratic else self._value_bounds_at(
                self.W, self.abs_w, self.factor_products(), self.magnitudes())
        return self._value_bounds

    def _products_at(self, W: np.ndarray) -> list[np.ndarray | None]:
        return [None if low is None else np.asarray(W @ low[0]) for low in self.lows]

    def factor_products(self) -> list[np.ndarray | None]:
        """``fl(WR)`` (d, p) of each quadratic term given by its factor at the certified
        point (None for the other terms), computed once: the value's bound and rung 3's
        blocks (:meth:`quadratic_blocks`) read the same array."""
        if self._products is None:
            self._products = self._products_at(self.W)
        return self._products

    def _magnitudes_at(self, absW: np.ndarray) -> list[float]:
        return [0.5 * p.alpha * p.abs_quadratic(absW) if low is None else 0.0
                for p, low in zip(self.quadratic, self.lows, strict=True)]

    def magnitudes(self) -> list[float]:
        """``(α/2)Σ|W||K|∘|W|`` of each quadratic term computed as ``Σ(WK)∘W`` at the
        certified point (0 for a factor-given one, whose bounds read ``fl(WR)``), computed
        once."""
        if self._magnitudes is None:
            self._magnitudes = self._magnitudes_at(self.abs_w)
        return self._magnitudes

    def _underflow(self, absW: np.ndarray, factors: bool = True) -> tuple[float, float]:
        """``(value, entry)``: bounds on what gradual underflow adds to the quadratic
        terms' values and to each entry of their gradient at ``|W|``, beyond the relative
        ``γ`` bounds (which assume none); without the factor-given terms unless
        ``factors``.

        A product that lands below the normal range is off by up to ``2⁻¹⁰⁷⁵`` absolute
        (``η = 2⁻¹⁰⁷⁴`` counted), while additions stay relatively exact. A term's products
        (``WK`` or ``WR`` with at most ``n + p`` products per entry, then ``∘W``, squares
        or lags) are each off by ``η``, and that error is multiplied afterwards by at most
        ``|W|`` or ``|K|``, ``|R|`` entries: per term ``α·η·(n + p + 2)(1 + ‖|K|‖_∞)(1 +
        ‖|R|‖_∞)(N(1 + p) + 2Σ|W|)``, ``N`` the non-zeros of ``W`` (every product has a
        factor from ``W``), ``‖·‖_∞`` the largest row sum (negligible unless
        ``W`` or the values are within a few hundred orders of ``2⁻¹⁰²²``, scaled by ``α``).
        The final products by the strength, ``fl(α/2·x)`` of a value and ``fl(α·y)`` of a
        gradient entry, add ``η`` each (``η/2`` counted twice, scaled by nothing).
        """
        d, T = absW.shape[-2:]
        # every product has a factor from W: zero entries give exact zeros
        if absW is self.abs_w:  # the certified point's, asked for up to three times
            if self._w_sizes is None:
                self._w_sizes = int(np.count_nonzero(absW)), float(absW.sum())
            nz, w1 = self._w_sizes
        else:
            nz, w1 = int(np.count_nonzero(absW)), float(absW.sum())
        if not nz:
            return 0.0, 0.0
        terms = [(p, low, a, cols) for p, low, (a, cols) in zip(
            self.quadratic, self.lows, self._amplification(), strict=True)
            if factors or low is None]
        value = sum(a * (nz * (1 + cols) + 2.0 * w1) for _, _, a, cols in terms)
        # the final fl(α/2·x) of a value and fl(α·y) of a gradient entry: η/2 each that
        # nothing scales (a factor-given term's value counts its own, _value_bounds_at);
        # with α/2 itself inexact (subnormal) its error times x ≤ Σ|W||K|∘|W| too
        final = 0.0
        for p, low, _, _ in terms:
            if low is None:
                final += _ETA
                if _halving_error(p.alpha):
                    final += 2.0 * _halving_error(p.alpha) * p.abs_quadratic(absW) * (
                        1.0 + gamma(d * T + d + T))
        return 2.0 * _ETA * value + final, self._underflow_entry(factors)

    def _amplification(self) -> list[tuple[float, int]]:
        """``(α(n + p + 2)(1 + ‖|K|‖_∞)(1 + ‖|R|‖_∞), p)`` per quadratic term (see
        :meth:`_underflow`), computed once."""
        if self._amplified is None:
            d, T = self.W.shape[-2:]
            self._amplified = []
            for p, low, rows in zip(self.quadratic, self.lows, self._row_sums(), strict=True):
                n = T if p.side == "task" else d
                cols, rsum = 0, 0.0
                if low is not None:
                    R = abs(low[0]) if issparse(low[0]) else np.abs(low[0])
                    cols, rsum = R.shape[1], float(np.max(np.asarray(R.sum(axis=1))))
                self._amplified.append(
                    (p.alpha * (n + cols + 2) * (1.0 + rows) * (1.0 + rsum), cols))
        return self._amplified

    def _underflow_entry(self, factors: bool = True) -> float:
        """:meth:`_underflow`'s bound per entry of the gradient alone: no pass over ``|W|``
        (where ``W`` is 0 it is still an upper bound)."""
        amplified = [a for (a, _), low in zip(self._amplification(), self.lows, strict=True)
                     if factors or low is None]
        return 2.0 * _ETA * sum(amplified) + _ETA * len(amplified)

    def _value_bounds_at(self, W: np.ndarray, absW: np.ndarray,
                         products: list[np.ndarray | None],
                         magnitudes: list[float]) -> tuple[float, float]:
        """``(error, upper)``: a bound on the error of the terms' computed values at ``W``
        and an upper bound on their exact value, from ``fl(WR)`` of the factor-given terms
        (``products``) and the others' ``(α/2)Σ|W||K|∘|W|`` (``magnitudes``)."""
        if not self.quadratic:
            return 0.0, 0.0
        d, T = W.shape[-2:]
        err, upper = self._underflow(absW, factors=False)[0], 0.0
        for pen, low, WR, mag in zip(self.quadratic, self.lows, products, magnitudes,
                                     strict=True):
            if WR is None:
                err += gamma(2 * (d + T) + 8) * mag
                upper += mag
                continue
            a, (R, ridge) = pen.alpha, low
            g = gamma(T)
            # |W||R| (non-negative sums: within γ_T of the exact one, rounded up)
            M = np.asarray(absW @ (abs(R) if issparse(R) else np.abs(R))) * (1.0 + g)
            # WR as computed here, within E = γ_T M + Tη of WR (each of T products off by
            # up to η/2 if it underflows, counted twice)
            P = np.abs(WR)
            E = g * M + T * _ETA
            cross, e2 = float(np.sum(P * E)), float(np.sum(E * E))
            p2, w2 = float(np.sum(P * P)), float(np.sum(absW * absW))
            # value's fl(WR) is within 2E of P: |Σ fl(WR)² − Σ(WR)²| ≤ Σ E(2P + 3E), and
            # Σ fl(WR)² ≤ Σ (P + 2E)² summed with relative error γ_{dp+1}
            sq = 2.0 * cross + 3.0 * e2
            sq += gamma(M.size + 1) * (p2 + 4.0 * cross + 4.0 * e2)
            err += 0.5 * a * (sq + ridge * gamma(d * T + 1) * w2)
            err += gamma(8) * 0.5 * a * (p2 + sq + ridge * w2)  # combining the two sums
            # underflow in the squares (dp of fl(WR), dT of W), in the products by ridge, α
            # and ½: η/2 each, counted twice
            err += _ETA * (0.5 * a * (M.size + ridge * d * T + 1) + 1.0)
            err += 2.0 * _halving_error(a) * (p2 + sq + ridge * w2) * (1.0 + gamma(8))
            # ‖WR‖² ≤ Σ(P + E)² ≤ p2 + sq and ‖W‖² ≤ w2, each exact sum within γ of its float
            upper += 0.5 * a * (p2 + sq + ridge * w2) * (1.0 + gamma(M.size + d * T + 4))
        return err, upper

    def quadratic_gradient_error(self, W: np.ndarray | None = None) -> np.ndarray:
        """Entrywise bound on the error of ``Σ α(WK + DW)`` (d, T) at ``W`` (default: the
        certified point) as the problem's merged coupling computes it
        (:meth:`coupling_error`, spread evenly over the entries: a bound in Frobenius norm,
        as its callers read it)."""
        d, T = self.W.shape
        absW = self.abs_w if W is None else np.abs(W)
        merged = self.coupling_error() * float(np.linalg.norm(absW)) / np.sqrt(d * T)
        return self._gradient_gamma() * sum((a * P for a, P in self._abs_products(W)),
                                            np.zeros((d, T))) + self._underflow_entry() + merged

    def quadratic_gradient_norm_error(self, w_norm: float) -> float:
        """A bound in Frobenius norm on the error of ``Σ α(WK + DW)`` at the certified point
        as the merged coupling computes it, without a product with ``|K|``:
        :meth:`_gradient_gamma` times ``‖|W||K|‖_F ≤ ‖W‖_F‖|K|‖₂`` (:meth:`_abs_norm`), plus
        :meth:`_underflow`'s per entry and :meth:`coupling_error` (cheaper than
        :meth:`quadratic_gradient_error` and above it); ``w_norm ≥ ‖W‖_F``."""
        d, T = self.W.shape
        return (self._gradient_gamma() * w_norm * self._abs_norm() + np.sqrt(d * T)
                * self._underflow_entry() + self.coupling_error() * w_norm) * _SAFETY

    def _gradient_gamma(self) -> float:
        """``γ_{d+T+p+3}``, ``p`` the widest factor's columns (0 without one): an entry of
        ``Σ α(WK + DW)`` sums ``T`` and ``d`` products, through a factor ``WR``'s ``T``
        then ``(WR)Rᵀ``'s ``p``, and a few additions merging the terms (the entrywise
        ``γ_{d+T+3}|W||K|`` with ``|K| ≤ |R||R|ᵀ`` is short by ``pε`` where ``p > d + 3``)."""
        d, T = self.W.shape[-2:]
        p = max((low[0].shape[1] for low in self.lows if low is not None), default=0)
        return gamma(d + T + p + 3)

    def quadratic_blocks(self, products: list[np.ndarray | None] | None = None
                         ) -> QuadraticBlocks:
        r"""The quadratic terms as blocks of rung 3's dual point at the certified point;
        ``products``: the factor-given terms' ``P`` (default :meth:`factor_products`, the
        computed ``WR``; any array serves, the bounds below hold for the one given).

        A term is ``(α/2)‖WS‖² = max_U ⟨U, WS⟩ − ½‖U‖²`` for any ``S`` with ``SSᵀ = K``
        (on its side), so with the blocks ``U`` beside θ the dual ``D(θ, U) = Σ_t(θ_tᵀy_t −
        ‖θ_t‖²/(2c_t)) − Σ ½‖U‖² − g*(Xᵀθ − Σ√α·USᵀ)`` is below ``F*`` for *every* ``U``
        (weak duality; ``g`` the other terms). The usual point ``U = √α·WS`` gives the
        blocks' value ``h(W)`` and their part ``∇h(W) = αWK`` of ``V``. For a factor-given
        ``K = RRᵀ + ridge·I`` (``S = [R, √ridge·I]``) the point is ``U = √α[P, √ridge·W]``
        with ``P = fl(WR)`` the array as computed: the dual then holds ``(α/2)(‖P‖² +
        ridge‖W‖²)`` and ``V`` the part ``α(PRᵀ + ridge·W)`` *exactly*, so only their own
        evaluation is rounded: ``γ_{p+k+3}·α(|P||R|ᵀ + ridge|W|)`` entrywise (``p`` products,
        three more operations, ``k`` terms summed), first order in ``P``, where
        ``∇h(W)``'s bound ``γα|W||R||R|ᵀ`` grows with ``α‖R‖²`` wherever ``WR`` cancels (a
        strong coupling near its optimum); the value is a sum of squares, relative error
        ``γ_{d(p+T)+k+5}``. Other terms keep their computed value and gradient, within
        ``γ_{2(d+T)+k+8}(α/2)Σ|W||K|∘|W|`` and ``γ_{d+T+k+3}α|W||K|`` (``γ_a + γ_b + γ_aγ_b
        ≤ γ_{a+b}`` for the sum of ``k`` terms), and :meth:`_underflow`'s bounds. Gradual
        underflow, beyond ``γ``: a product landing below ``2⁻¹⁰²²`` is off by up to
        ``η/2`` (``η = 2⁻¹⁰⁷⁴``), sums are not; ``P`` is the point itself, so for a factor
        only what comes after it counts: per entry of the gradient ``p`` products of
        ``PRᵀ`` and ``ridge·W`` (times ``α``) and the product by ``α``, ``(α(p + 1) +
        1)η/2``; in the value ``dp`` squares of ``P`` and ``dT`` of ``W`` (times
        ``ridge``), the products by ``ridge``, ``α`` and ½, ``(α/2)(dp + ridge·dT + 1)η/2 +
        η``. Each is counted twice here.
        """
        W, absW = self.W, self.abs_w
        d, T = W.shape
        k = len(self.quadratic)
        value, value_err = 0.0, 0.0
        grad, grad_err = np.zeros((d, T)), np.zeros((d, T))
        products = self.factor_products() if products is None else products
        for pen, low, P, mag in zip(self.quadratic, self.lows, products, self.magnitudes(),
                                    strict=True):
            a = pen.alpha
            if P is None:
                value += pen.value(W)
                grad += pen.gradient(W)
                value_err += gamma(2 * (d + T) + k + 8) * mag
                grad_err += gamma(d + T + k + 3) * a * pen.abs_product(absW)
                continue
            R, ridge = low
            absR, p = (abs(R) if issparse(R) else np.abs(R)), R.shape[1]
            x = float(np.sum(P * P)) + ridge * float(np.sum(W * W))
            v = 0.5 * a * x
            value += v
            value_err += gamma(d * (p + T) + k + 5) * v + _ETA * (
                a * (d * p + ridge * d * T + 1) + 2.0) + 2.0 * _halving_error(a) * x
            grad += a * (np.asarray(P @ R.T) + ridge * W)
            grad_err += gamma(p + k + 3) * a * (np.asarray(np.abs(P) @ absR.T) + ridge * absW) \
                + _ETA * (a * (p + 1) + 1.0)
        under_value, under_entry = self._underflow(absW, factors=False)
        return QuadraticBlocks(value, grad, _SAFETY * (value_err + under_value),
                               _SAFETY * (grad_err + under_entry))

    def quadratic_conjugate(self, V: np.ndarray, X: np.ndarray, bottom: float,
                            grad: np.ndarray | None = None,
                            value: float | None = None) -> QuadraticConjugate:
        """``h*(V) = ½⟨V, 𝒬⁻¹V⟩ ≤ c + err + value_err`` and ``‖𝒬⁻¹V‖ ≤ q`` (see
        :class:`QuadraticConjugate`) from any ``X`` (a computed solution of ``𝒬X = V``, or
        the certified point itself), ``bottom ≤ λ_min(𝒬)``.

        With ``r = V − 𝒬X``: ``h*(V) = ⟨V, X⟩ − h(X) + ½⟨r, 𝒬⁻¹r⟩`` exactly, so ``c``
        is ``⟨V, X⟩ − h(X)`` as computed (``⟨V, X⟩`` task by task: ``γ_{d+T+2}Σ|V∘X|``)
        plus ``‖r‖²/(2·bottom)``, ``‖r‖`` from ``fl(V − ∇h(X))`` and its bound
        (a-posteriori, second order in ``r``: the distance of ``X`` from ``𝒬⁻¹V``, not
        rounding), ``err`` the rounding of ``⟨V, X⟩`` and of the difference, and
        ``value_err`` the bound on ``h(X)``'s own rounding
        (:meth:`quadratic_value_error`), apart: a caller whose ``F(W)`` holds the same
        computed ``h(W)`` (``X = W``) pairs it with the primal's. ``grad`` and ``value``
        are ``∇h(X)`` and ``h(X)`` as the caller computed them (by default the terms' own
        ``gradient`` and ``value``).
        """
        merged = grad is not None  # the coupling's entries α·K, as computed
        grad = sum(p.gradient(X) for p in self.quadratic) if grad is None else grad
        hx = sum(p.value(X) for p in self.quadratic) if value is None else value
        d, T = X.shape
        VX = V * X
        vx = float(np.sum(np.einsum("dt->t", VX)))  # ≤ d + T roundings per product
        x_norm = norm_up(X)
        # ‖fl(V − ∇h) − (V − 𝒬X)‖ ≤ ε‖r̂‖ + γ_{d+T+p+3}‖Σα|X||K|‖ (:meth:`_gradient_gamma`),
        # and ‖|X||K|‖ ≤ ‖X‖‖|K|‖₂
        r_norm = norm_up(V - grad) * (1.0 + gamma(2)) \
            + self._gradient_gamma() * self._abs_norm() * x_norm \
            + np.sqrt(d * T) * self._underflow_entry() \
            + (self.coupling_error() * x_norm if merged else 0.0)
        rr = half_square_over(r_norm, bottom)  # ≥ ½⟨r, 𝒬⁻¹r⟩
        # (and the d·T products of ⟨V, X⟩: η/2 each if they underflow)
        err = gamma(d + T + 2) * float(np.sum(np.abs(VX, out=VX))) + gamma(4) * (
            abs(vx) + abs(hx) + rr) + np.count_nonzero((V != 0) & (X != 0)) * _ETA
        value_err = self.quadratic_value_error(None if X is self.W else X)
        return QuadraticConjugate(vx - hx + rr, _SAFETY * err, x_norm + r_norm / bottom,
                                  _SAFETY * value_err, r_norm, rr)

    def coupling_error(self) -> float:
        """``c`` such that a product with the problem's merged coupling
        (:func:`mtlcvx.oracles.coupling`: every term's ``α·K`` entries, a dense factor's
        ``√α·R``, a sparse one's ``α·RRᵀ``, as computed) is within ``c‖X‖_F`` (Frobenius) of
        the terms' own ``Σα XK`` beyond the ``γ`` bounds: each entry off by up to ``η/2``
        more per term (``p·η/2`` through ``RRᵀ``'s sums), ``‖E‖₂ ≤ ‖E‖_F``; through a factor
        ``F = √α·R`` (T × p) ``‖X‖(2‖E_F‖‖F‖ + ‖E_F‖²)``. Counted twice."""
        d, T = self.W.shape[-2:]
        c = 0.0
        for p, low in zip(self.quadratic, self.lows, strict=True):
            if low is None or issparse(low[0]):
                cols = 0 if low is None else low[0].shape[1]
                c += (d + T) * (1.0 + p.alpha * cols) * _ETA
                continue
            size = np.sqrt(low[0].size)
            F = np.sqrt(p.alpha) * float(np.linalg.norm(low[0])) * (1.0 + gamma(low[0].size))
            c += (T * _ETA if low[1] else 0.0) + size * _ETA * (2.0 * F + size * _ETA)
        return c

    def factor_conjugate(self, V: np.ndarray, bottom: float) -> tuple[float, float, float] | None:
        r"""``h*(V) ≤ c + err`` and ``‖𝒬⁻¹V‖ ≤ q``, as ``(c, q, err)``, when every quadratic
        term is task side and either factor-given or diagonal (a ``Ridge``), ``h(X) =
        Σ_i (α_i/2)‖XR_i‖² + ½Σ_t D_t‖x_t‖²`` with every ``D_t > 0`` (``D`` the factors'
        ``α_iρ_i`` plus the diagonal terms' ``α_j K_j[t, t]``), at least one factor; else
        None. ``bottom ≤ λ_min(𝒬)``.

        For any ``U_i`` (d, p_i), completing squares in ``⟨V, X⟩ − h(X)`` with ``V =
        Σ_i α_iU_iR_iᵀ + V₂`` gives, for every ``X``,

        .. math::

            h^*(V) \le \textstyle\sum_i \frac{\alpha_i}{2}\lVert U_i\rVert^2
            + \sum_t \frac{1}{2D_t}\big\lVert \big(V - \sum_i \alpha_i U_iR_i^\top\big)_t
            \big\rVert^2,

        with equality at ``U_i = X^*R_i`` (``X* = 𝒬⁻¹V``). ``U = VD⁻¹S(I + SᵀD⁻¹S)⁻¹``,
        ``S`` the factors ``√α_iR_i`` side by side (Woodbury's capacitance), is that point as
        computed; whatever its error, the bound holds at the computed ``U`` (its excess is
        second order in it). Unlike ``⟨V, X̂⟩ − h(X̂) + ½⟨r, 𝒬⁻¹r⟩`` it never forms
        ``X̂RRᵀ``, whose rounding ``γ_T|X̂||R||R|ᵀ`` is not first order where ``X̂R``
        cancels (strong coupling, ``α‖R‖² ≫ D``): the products here are ``|U||R|ᵀ``,
        ``U ≈ X*R`` small there. So ``V₂ = fl(V − Σα_iU_iR_iᵀ)`` is within ``e =
        γ_{p+2k+3}(|V| + Σα_i|U_i||R_i|ᵀ)`` (``p`` columns in all, ``k`` terms), and the
        second sum within ``Σ_t(2‖V̂₂,t‖‖e_t‖ + ‖e_t‖²)/(2D_t)`` plus ``γ_{d+T+2}`` of it
        (its own evaluation) and ``γ_{2k+2}`` (``D``'s sums), the first within
        ``γ_{dp+k+2}``; gradual underflow adds ``η = 2⁻¹⁰⁷⁴`` per product that can land
        below ``2⁻¹⁰²²`` (times the ``α_i`` and ``1/D_t`` that multiply it afterwards).
        ``q = (2(c + err)/bottom + η)^{1/2}``, since ``h*(V) = ½⟨𝒬X*, X*⟩ ≥
        ½λ_min‖X*‖²``.
        """
        d, T = V.shape
        lows, D = [], np.zeros(T)
        for pen in self.quadratic:
            low = pen.low_rank() if pen.side == "task" else None
            band = pen.band(d, T) if low is None and pen.side == "task" else None
            if low is not None:
                lows.append((pen.alpha, low[0].toarray() if issparse(low[0])
                             else np.asarray(low[0])))
                D += pen.alpha * low[1]
            elif band is not None and band.shape[0] == 1:
                D += pen.alpha * band[0]
            else:
                return None
        if not lows or not D.min() > 0:
            return None
        parts = [np.sqrt(a) * R for a, R in lows]
        S = parts[0] if len(parts) == 1 else np.hstack(parts)
        p, k = S.shape[1], len(self.quadratic)
        SD = S / D[:, None]
        U = np.linalg.solve(np.eye(p) + S.T @ SD, (V @ SD).T).T
        V2, M = V, np.abs(V)
        first, start = 0.0, 0
        for a, R in lows:
            Ui = U[:, start:start + R.shape[1]] / np.sqrt(a)
            start += R.shape[1]
            first += 0.5 * a * float(np.sum(Ui * Ui))
            V2 = V2 - a * (Ui @ R.T)
            M += a * (np.abs(Ui) @ np.abs(R).T) * (1.0 + gamma(R.shape[1] + 1))
        # gradual underflow: a product below 2⁻¹⁰²² is off by up to η/2 absolute (sums of
        # such stay exact), then multiplied by α_i: per entry of V₂, and in the two sums
        under = _ETA * (sum(a * (R.shape[1] + 1) for a, R in lows) + k + 1)
        e = (np.sqrt(np.einsum("dt,dt->t", M, M)) * gamma(p + 2 * k + 3) + np.sqrt(d) * under) \
            * (1.0 + gamma(d))
        v2 = np.einsum("dt,dt->t", V2, V2)
        second = 0.5 * float(np.sum(v2 / D))
        err = (0.5 * float(np.sum((2.0 * np.sqrt(v2) * e + e * e) / D))
               + gamma(d + T + 2) * second + gamma(2 * k + 2) * second
               + gamma(d * p + k + 2) * first + gamma(2) * (first + second)
               + _ETA * (sum(a * d * R.shape[1] for a, R in lows) + d * float(np.sum(1.0 / D))
                         + T + 16))
        c = first + second
        err *= _SAFETY
        return c, float(np.sqrt(2.0 * (c + err) / bottom + _ETA)) * (1.0 + gamma(4)), err

    def _abs_norm(self) -> float:
        """``Σ α‖|K|‖₂`` over the quadratic terms (either side), each ``‖|K|‖₂`` bounded by
        the largest row sum of ``|K|`` (symmetric), read off ``abs_product`` of ones (sums
        of non-negative terms: ``n`` of them, ``n + p`` through a factor of ``p`` columns)."""
        if self._abs_k is None:
            d, T = self.W.shape[-2:]
            total = 0.0
            for p, low, rows in zip(self.quadratic, self.lows, self._row_sums(), strict=True):
                n = T if p.side == "task" else d
                terms = n + (0 if low is None else low[0].shape[1]) + 1
                total += p.alpha * rows * (1.0 + gamma(terms))
            self._abs_k = total
        return self._abs_k

    def _row_sums(self) -> list[float]:
        """The largest row sum of each quadratic term's ``|K|`` as computed, computed once:
        ``abs_product`` of ones, or from a banded ``K``'s largest entry per lag (each row
        holds at most one entry per lag on either side)."""
        if self._rows is None:
            d, T = self.W.shape[-2:]
            self._rows = []
            for p, low in zip(self.quadratic, self.lows, strict=True):
                band = None if low is not None else p.band(d, T)
                if band is None:
                    rows = np.max(p.abs_product(
                        np.ones((1, T)) if p.side == "task" else np.ones((d, 1))))
                else:  # row t holds |ab[0, t]| and, per lag k, |ab[k, t]| and |ab[k, t − k]|
                    largest = np.abs(band).max(axis=1).tolist()
                    rows = largest[0] + 2.0 * sum(largest[1:])
                self._rows.append(float(rows))
        return self._rows

    # ------------------------------------------------------------------ primal
    def task_losses(self, q_task: np.ndarray | None) -> np.ndarray:
        """Upper bounds on ``(c_t/2)‖ρ̂_t‖²`` (T,), the loss per task as computed.

        From the dual's ``q_t`` (same residual; ``3γμ_t`` apart when the intercept is
        profiled) when given and the intercept was not; else one pass over the data.
        """
        if q_task is None or (self.centred and self.intercept is not None):
            data = self.problem.data
            b = (self.problem.optimal_intercept(self.W) if self.centred and
                 self.intercept is None else self.intercept)
            r = data.stacked_residuals(self.W, b)
            # (n_t squares, η/2 each where they underflow)
            return 0.5 * self.c * (data.task_sums(r * r) * (1.0 + self.g_data)
                                   + self.norms.n * self.eta_task)
        # θ̂ = fl(−c·ρ̂) is within ε|θ̂| + η/2 of −cρ̂ entrywise, so √(c/2)‖ρ̂‖ ≤ (‖θ̂‖ +
        # √n_t·η/2)/√(2c) (1 + ε), ‖θ̂‖ from q (theta_norms)
        root = (self.theta_norms(q_task) + self.norms.sqrt_n * self.eta_task) \
            * np.sqrt(self.half_inv_c) * (1.0 + gamma(2))
        if self.centred:
            root = root + np.sqrt(0.5 * self.c) * (
                3.0 * gamma(self.norms.n + self.W.shape[-2] + 3) * self.mu)
        return root * root

    def loss_error(self, losses: np.ndarray) -> np.ndarray:
        """Per task, a bound on the error of the computed residuals' part of the loss."""
        d = self.W.shape[-2]
        c = self.c
        # ‖δ_t‖: γ_{d+3}μ_t, and gradual underflow in each entry's d products and the
        # centring's division; then the n_t squares and the product by c_t (η/2 each)
        delta = gamma(d + 3) * self.mu + self.norms.sqrt_n * ((d + 2) * self.eta_task)
        return (np.sqrt(2.0 * c * losses) * delta + 0.5 * c * delta * delta
                + (0.5 * c * self.norms.n + 1.0) * self.eta_task)

    def primal(self, objective: float, losses: np.ndarray) -> float:
        """``E_F`` less the quadratic terms' value error (:meth:`primal_value_error`): with
        it, a bound on ``|fl(F(W)) − F(W)|`` given :meth:`task_losses` (apart, so a dual
        that holds the same computed value can account for it, see
        :meth:`quadratic_conjugate`)."""
        d, T = self.W.shape[-2:]
        loss_total = _total(losses)
        err = _total(self.loss_error(losses))
        err += gamma(self.n_max + T + 4) * loss_total
        if self.others:
            err += gamma(d * T + d + T + 8) * (abs(objective) + loss_total
                                               + self.quadratic_upper())
        # the loss's final ½ and each other term's final product by its strength (and a
        # halving): η/2 each, which nothing scales, counted twice
        err += self.eta_all * (1.0 + 2.0 * self.n_others)
        return _SAFETY * (err + gamma(4) * abs(objective))

    def primal_value_error(self) -> float:
        """The quadratic terms' value error, :meth:`quadratic_value_error`, as ``E_F``
        counts it (with the headroom for its own evaluation)."""
        return _SAFETY * self.quadratic_value_error()

    # ------------------------------------------------------------------ dual
    def theta_norms(self, q_task: np.ndarray) -> np.ndarray:
        """``‖θ̂_t‖ = (2c_t q_t)^{1/2}`` (T,), rounded up (kept for the last ``q_task``
        object: the scale's shrink, the dual's error and ``V``'s ask for the same)."""
        if self._theta is None or self._theta[0] is not q_task:
            # (plus n_t·η: squares of θ that underflow are each off by up to η/2; and 2c_t·η,
            # the division by 2c_t's)
            self._theta = q_task, np.sqrt(
                2.0 * self.c * q_task + (self.norms.n + 2.0 * self.c) * self.eta_task) * (
                1.0 + self.g_data)
        return self._theta[1]

    def v_error(self, q_task: np.ndarray) -> np.ndarray:
        """Entrywise bound (d, T) on ``|V̂ − XᵀPθ̂|``."""
        tn = self.theta_norms(q_task)
        # one (d, T) product; n_t products per entry, η/2 each where they underflow
        e = self.norms.col * (self.g_data * tn + self.norms.n * self.eta_task)[..., None, :]
        if self.centred:  # 1ᵀθ̂_t also gains n_t(c_t + 1)η/2 from the means' divisions
            means = _design_means(self.problem.data)
            e = e + means * (np.sqrt(self.norms.n) * self.g_data * (self.c * self.mu + tn)
                             + self.norms.n * (self.c + 1.0) * self.eta_task)[..., None, :]
        return e

    def residual_distance(self, q_task: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per task (T,): ``(Δ_t, f_t)`` with ``Δ_t ≥ ‖θ̂_t + c_tPr_t‖``, how far the computed
        dual point is from the exact scaled (centred) residual at the certified point, and
        ``f_t ≥ ‖X̃_t‖_F``, so that ``‖X̃_tᵀ(θ̂_t + c_tPr_t)‖ ≤ f_tΔ_t``.

        The dual bounds never need ``Δ`` (weak duality holds at any θ̂); a bound from the
        gradient does. ``θ̂_t = fl(−c_tρ̂_t)`` is within ``ε|θ̂_t| + η/2`` of ``−c_tρ̂_t``
        entrywise (``c_t‖ρ̂_t‖ ≤ (‖θ̂_t‖ + √n_tη/2)/(1 − ε)``), and ``‖ρ̂_t − Pr_t‖`` is
        :meth:`loss_error`'s ``δ_t`` with :attr:`mu`. ``f_t`` from the computed sums of
        squares (squares that underflow are each off by up to ``η/2``)."""
        norms, d = self.norms, self.W.shape[-2]
        eta = self.eta_task
        delta = gamma(d + 3) * self.mu + norms.sqrt_n * ((d + 2) * eta)
        tn = self.theta_norms(q_task)
        f = norms.frobenius * (1.0 + gamma(self.n_max * d + d + 2)) + np.sqrt(norms.n * d * _ETA)
        return gamma(2) * (tn + norms.sqrt_n * eta) + norms.sqrt_n * eta + self.c * delta, f

    def augmented_v_error(self, q_task: np.ndarray, V: np.ndarray,
                          gradient_error: np.ndarray) -> np.ndarray:
        """Entrywise bound (d, T) on the rounding of ``V̂ = fl(Xᵀθ̂ − G)``, ``G`` the
        quadratic terms' part computed within ``gradient_error`` (their gradient, or rung
        3's blocks): :meth:`v_error` plus that and the subtraction's ``ε|V̂|`` (none without
        quadratic terms, where ``G = 0``)."""
        e = self.v_error(q_task)
        return e + gradient_error + _EPS * np.abs(V) if self.quadratic else e

    def shift(self, q_task: np.ndarray, s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """The alternative to shrinking the scale for tasks of full column rank.

        ``θ'_t = θ̂_t + X̃_tG_t⁻¹ΔV_t`` (``ΔV_t = V̂_t − X̃_tᵀθ̂_t``, unknown but ``|ΔV| ≤ e``)
        has ``X̃_tᵀθ'_t = V̂_t`` exactly, and ``D_t(sθ') − D_t(sθ̂) = s·w^{ls}ᵀΔV − s²(2θ̂ᵀΔθ +
        ‖Δθ‖²)/(2c_t)`` with ``θ̂ᵀΔθ/c_t = (w^{ls} − w)ᵀΔV − (G⁻¹X̃ᵀδ)ᵀΔV`` (``δ`` the residual's
        rounding) and ``‖Δθ‖² ≤ ‖ΔV‖²/σ²``. Returns per task the bound on that change at
        ``s_t`` and the mask of tasks where it applies.
        """
        ls = least_squares(self.problem.data, self.centred)
        ok = ls.sigma2 > 0
        s_t = _per_task(s, q_task)
        e = self.v_error(q_task)
        en = norm_up(e, axis=-2)
        sigma = np.sqrt(np.where(ok, ls.sigma2, 1.0))
        delta = 3.0 * gamma(self.norms.n + self.W.shape[-2] + 3) * self.mu  # ≥ ‖δ_t‖
        safe_c = np.where(self.c > 0, self.c, 1.0)
        err_ls = np.where(ok, ls.err, 0.0) * en
        first = np.einsum("dt,...dt->...t", np.abs(ls.W), e) + err_ls
        second = (np.einsum("...dt,...dt->...t", np.abs(ls.W - self.W), e) + err_ls
                  + delta * en / sigma + en * en / (2.0 * safe_c * sigma * sigma))
        cost = np.where(ok & (self.c > 0), s_t * first + s_t * s_t * second, 0.0)
        return _SAFETY * cost, ok & (self.c > 0)

    def dual(self, s: np.ndarray | float, a_task: np.ndarray, q_task: np.ndarray,
             B: np.ndarray | float, conj: float = 0.0, delta: np.ndarray | float = 0.0,
             conj_error: float = 0.0, blocks: float = 0.0) -> float:
        """``E_D`` for ``D = Σ_t (s_t a_t − B_t s_t²) − conj``.

        ``s`` and ``B`` per task or one for all (``B`` then the total quadratic
        coefficient); ``blocks`` a bound on the error of the quadratic terms' values when
        they are in ``B`` (rung 3, :meth:`quadratic_blocks`);
        ``delta`` the relative shrink of the scale that keeps the dual point feasible;
        ``conj_error`` the conjugate's own bound.

        A batch of points (``a_task``, ``q_task`` (P, T) and :class:`Rounding` built on
        ``W`` (P, d, T)) takes one scale and one coefficient per point, ``s`` and ``B``
        (P,) (and ``delta`` (P,) or one), and returns ``E_D`` per point (P,).
        """
        d, T = self.W.shape[-2:]
        lead = np.ndim(a_task) - 1  # 1 for a batch of points
        if np.ndim(s) == lead and np.ndim(B) == lead:  # one scale, one coefficient (a point)
            s_t = float(s) if lead == 0 else np.asarray(s, dtype=float)
            sq = s_t ** 2
            lin, quad = s_t * _total(a_task), B * sq

            def over_tasks(x: np.ndarray | float) -> np.ndarray | float:
                return x  # already one per point
        else:
            s_t = np.broadcast_to(np.asarray(s, dtype=float), (T,))
            sq = float(np.sum(s_t * s_t)) if np.ndim(B) else float(np.max(s_t)) ** 2
            if np.ndim(B):  # one scale per task
                lin, quad = s_t * a_task, np.asarray(B) * s_t * s_t
            else:
                lin, quad = np.array(float(np.sum(s_t * a_task))), np.array(B * sq)

            def over_tasks(x: np.ndarray | float) -> np.ndarray | float:
                return float(np.sum(x))
        err = self.loss_dual_error(s_t, q_task)
        err += blocks * sq
        # shrinking s to s/(1 + δ) costs ∫ D'(σ)dσ ≤ δ·(s·D'(s) + 2Bs²δ), D'(s)s = as − 2Bs²
        slope = abs(lin - 2.0 * quad) + gamma(4) * (abs(lin) + 2.0 * quad)
        err += over_tasks(delta * (slope + 2.0 * quad * delta))
        err += gamma(T + 8) * (over_tasks(abs(lin)) + over_tasks(quad) + abs(conj))
        err += (2 * T + 8) * self.eta_all  # the products by s, s², B: η/2 each if they underflow
        return _SAFETY * (err + conj_error)

    def loss_dual_error(self, s_t: np.ndarray | float, q_task: np.ndarray) -> float:
        """A bound on the error of ``Σ_t s_t a_t − s_t² q_t`` as computed, at scales ``s_t``
        (one for all tasks, or (T,))."""
        tn = self.theta_norms(q_task)
        y_err = (3.0 if self.centred else 1.0) * self.g_data * tn * self.norms.y
        # gradual underflow: a_t's n_t products (and the centred ŷ's divisions, times |θ̂|),
        # q_t's n_t squares before the division by 2c_t, and that division
        n = self.norms.n
        y_err = y_err + (n + self.norms.sqrt_n * tn if self.centred else n) * self.eta_task
        q_err = self.g_data * q_task + (n * self.half_inv_c + 1.0) * self.eta_task
        s_t = _per_task(s_t, q_task)
        return _total(s_t * y_err + s_t * s_t * q_err)

    def _corrected_theta(self, quad_total: float) -> tuple[float, float]:
        """``(‖θ‖, u)`` for rung 4's corrected point known only through ``q = Σ‖θ_t‖²/(2c_t)``
        as computed: ``u = η·Σ_t(n_t/(2c_t) + 1)`` bounds what underflow takes from ``q``
        (each square, then the division by ``2c_t``: η/2 each, counted twice), and ``‖θ‖ ≤
        (2·max c_t·(q + u))^{1/2}``, rounded up."""
        u = self.eta_all * float(np.sum(self.norms.n * self.half_inv_c + 1.0))
        theta = np.sqrt(2.0 * float(self.c.max(initial=0.0)) * (quad_total + u))
        return theta * (1.0 + self.g_max), u

    def frobenius_v_error(self, quad_total: float) -> float:
        """``‖e‖_F`` for a dual point known only through ``Σ‖θ_t‖²/(2c_t)`` (rung 4's
        corrected point, with the design centred explicitly): relative, and per entry the
        underflow of its ``n_t`` products and of the centred design's divisions (``|θ|``
        times ``η/2`` each)."""
        theta, _ = self._corrected_theta(quad_total)
        d, T = self.W.shape[-2:]
        under = np.sqrt(d * T) * (self.n_max + np.sqrt(self.n_max) * theta) * self.eta_all
        return 3.0 * self.g_max * float(self.norms.frobenius.max()) * theta + under

    def dual_corrected(self, s: float, linear: float, quad_total: float, B: float,
                       conj_error: float) -> float:
        """``E_D`` for rung 4's curvature-corrected point (totals only), underflow included:
        ``θᵀy``'s ``N`` products and the centred ``y``'s divisions, ``s``-fold, and ``q``'s
        (:meth:`_corrected_theta`), ``s²``-fold."""
        theta, u = self._corrected_theta(quad_total)
        n = float(np.sum(self.norms.n))
        err = 3.0 * self.g_max * (s * theta * float(np.linalg.norm(self.norms.y))
                                   + s * s * quad_total)
        err += s * (n + np.sqrt(n) * theta) * self.eta_all + s * s * u
        err += gamma(self.W.shape[1] + 8) * (s * abs(linear) + B * s * s)
        return _SAFETY * (err + conj_error)


class GramRounding(Rounding):
    r"""The rounding bounds when the loss's part comes from a shared design's Gram
    statistics (no intercepts), not from residuals.

    The loss ``(c_t/2)(w_tᵀGw_t − 2w_tᵀb_t + ‖y_t‖²)``, ``a_t = c_t(‖y_t‖² − w_tᵀb_t)``
    and ``V̂ = c(B − GW)`` are sums of products whose absolute values add up to at most
    ``m_t² = (Σ_j ‖x_j‖|w_jt| + ‖y_t‖)²`` (resp. ``m_t‖y_t‖``, ``‖x_j‖m_t`` per entry;
    ``|G| ≤ |X|ᵀ|X|``, ``|B| ≤ |X|ᵀ|Y|`` and Cauchy–Schwarz), the rounding of ``G`` and
    ``B`` included: errors ``γ_{n+d+2}`` times those. This is the cancellation of the
    Gram route: not first order in the residual.

    ``V̂`` is not ``Xᵀθ̂`` for the scaled residual θ̂, so the dual point is taken to be
    ``θ' = θ̂ + XG⁻¹ΔV`` (X of full column rank), for which ``V̂ = Xᵀθ'`` exactly: no
    dual-norm shrink is needed, and ``D(sθ')`` differs from the value computed with
    ``θ̂``'s ``(a, q)`` by exactly

    .. math:: \big(s(1 - s)\,w^{ls}_t + s^2 w_t\big)^\top\Delta V_t
              - s^2\lVert XG^{-1}\Delta V_t\rVert^2/(2c_t), \qquad w^{ls} = G^{-1}B,

    bounded with ``|ΔV_jt| ≤ γ c_t‖x_j‖m_t`` and ``‖XG^{-1}ΔV_t‖ ≤ ‖ΔV_t‖/σ_min``.

    Expanded around a reference ``R`` (``shift``: :func:`gram_shift`), ``y`` and ``w``
    read ``Ê`` and ``Δ̂ = fl(W − R)``, ``m_t = Σ_j ‖x_j‖|Δ̂_jt| + ‖ê_t‖``, and θ̂ is
    ``c(Ê − XΔ̂)``. Its residual differs from the exact ``y − Xw`` by ``η = δ − X(Δ̂ −
    Δ)``, ``‖η_t‖ ≤ ‖δ_t‖ + 1.01ε m_t``: the loss gains ``c_t(‖ρ_t‖‖η_t‖ + ‖η_t‖²/2)``
    (first order in the residual ``ρ``), and ``w_t`` above becomes ``R_t + Δ̂_t −
    G⁻¹Xᵀδ_t`` (``G⁻¹XᵀÊ = w^{ls} − R + G⁻¹Xᵀδ``), bounded by ``Σ_j ‖x_j‖|w_jt| +
    1.01ε m_t`` and ``‖δ_t‖/σ_min`` times ``‖ΔV_t‖``.

    Parameters
    ----------
    problem, W
        As for :class:`Rounding` (intercepts not fitted).
    losses : ndarray (T,)
        The loss per task as computed, ``(c_t/2)‖r_t‖²``.
    magnitudes : ndarray (T,)
        ``m_t``.
    ls : _LeastSquares
        ``G⁻¹B`` as computed, a bound on its error and a lower bound on ``λ_min(XᵀX)``
        (> 0), from :func:`least_squares`.
    shift : GramShift, optional
        The reference the loss was expanded around (None: 0).
    shifted : ndarray (P,) of bool, optional
        For a batch: the points expanded around ``shift`` (the others around 0); None:
        every point, when ``shift`` is given.
    sums, expanded : WeightSums, optional
        :func:`weight_sums` of ``W`` around 0 and around ``shift.R`` when the caller has
        them (a batch's, summed without an array of ``|W|`` for all points).
    """

    def __init__(self, problem: Problem, W: np.ndarray, losses: np.ndarray,
                 magnitudes: np.ndarray, ls: _LeastSquares, shift: GramShift | None = None,
                 shifted: np.ndarray | None = None, sums: WeightSums | None = None,
                 expanded: WeightSums | None = None):
        super().__init__(problem, W, None, sums)
        self.losses = losses
        n, d = problem.data.X[0].shape
        self.g_gram = gamma(n + d + 2)
        self.m = magnitudes * (1.0 + self.g_gram)  # m_t from the computed diag(G), ‖y_t‖²
        col = self.norms.col[:, 0]
        col_norm = float(np.linalg.norm(col))
        if sums is None:  # Σ_j ‖x_j‖|w_jt| and Σ_j |w_jt|
            col_w, abs_w = col @ self.abs_w, np.einsum("...dt->...t", self.abs_w)
        else:
            col_w, abs_w = sums.col, sums.abs
        if shift is None:  # Σ_j |Δ_jt|
            around = abs_w
        else:
            around = (np.einsum("...dt->...t", np.abs(W - shift.R)) if expanded is None
                      else expanded.abs)
            if shifted is not None:
                around = np.where(shifted[:, None], around, abs_w)
        # gradual underflow, beyond γ (η/2 per product counted twice): G's and B's entries
        # n products each, then d per entry of GΔ and of Δᵀb, the products by c_t (and ½):
        # with ω_t = Σ_j|Δ_jt| + 1, the loss within c_tη(nω² + 2dω)/2 + η more, and each
        # entry of V̂ (and a_t) within u_t = c_tη(nω + d) + η more
        omega = around + 1.0
        eta = self.eta_task
        self.u_loss = eta * (0.5 * self.c * (n * omega * omega + 2.0 * d * omega) + 1.0)
        self.u_v = u = eta * (self.c * (n * omega + d) + 1.0)
        dV = self.g_gram * self.c * self.m  # |ΔV_jt| ≤ dV_t ‖x_j‖ + u_t
        dV_norm = dV * col_norm + np.sqrt(d) * u  # ≥ ‖ΔV_t‖
        # Σ_j ‖x_j‖|w^ls_jt| for the exact w^ls: the computed one plus ‖x‖_F times its error
        ls_abs = np.abs(ls.W)
        self.at_ls = dV * (col @ ls_abs + col_norm * ls.err) \
            + u * (np.sum(ls_abs, axis=0) + np.sqrt(d) * ls.err)
        self.at_w = dV * col_w + u * abs_w + (
            dV_norm * dV_norm / ls.sigma2 / (2.0 * np.where(self.c > 0, self.c, 1.0)))
        self.eta = np.zeros_like(self.m)  # ≥ ‖η_t‖: Ê's and Δ̂'s rounding (shift only)
        if shift is not None:
            eta_shift = shift.delta + 1.01 * _EPS * self.m
            at_shift = dV * 1.01 * _EPS * self.m + u * 1.01 * _EPS * (omega - 1.0) \
                + dV_norm * shift.delta / np.sqrt(ls.sigma2)
            if shifted is None:
                self.eta = eta_shift
                self.at_w += at_shift
            else:
                self.eta = np.where(shifted[:, None], eta_shift, 0.0)
                self.at_w += np.where(shifted[:, None], at_shift, 0.0)

    def task_losses(self, q_task: np.ndarray | None) -> np.ndarray:
        return self.losses + self.loss_error(self.losses)

    def loss_error(self, losses: np.ndarray) -> np.ndarray:
        gram = 0.5 * self.g_gram * self.c * self.m * self.m + self.u_loss
        # a shift's residual is off by η: c‖ρ‖‖η‖ + c‖η‖²/2, ‖ρ‖² ≤ 2(loss + gram)/c
        gram += (np.sqrt(2.0 * self.c * (losses + gram)) * self.eta
                 + 0.5 * self.c * self.eta * self.eta)
        # the residuals' bound too: rung 5 evaluates F(W⁺) on the residuals. A Gram loss
        # computed below 0 (its cancellation, at an exact fit) would make that bound NaN,
        # and np.maximum would carry the NaN into every gap: the loss is ≥ 0, so clip it
        return np.maximum(gram, super().loss_error(np.maximum(losses, 0.0)))

    def v_error(self, q_task: np.ndarray) -> np.ndarray:
        return np.zeros(self.W.shape)  # V̂ = Xᵀθ' exactly

    def loss_dual_error(self, s_t: np.ndarray | float, q_task: np.ndarray) -> float:
        s_t = _per_task(s_t, q_task)
        err = self.g_gram * self.c * self.m * (s_t * self.norms.y + 0.5 * s_t * s_t * self.m) \
            + s_t * self.u_v + s_t * s_t * self.u_loss
        point = s_t * np.abs(1.0 - s_t) * self.at_ls + s_t * s_t * self.at_w  # θ' for θ̂
        return _total(err + point)
