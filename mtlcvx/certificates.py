r"""Solver-independent optimality certificates: the certificate ladder.

Split ``F = f + h + g``: ``f`` the loss (intercepts profiled out by centring each task),
``h = ½ tr(W K_t Wᵀ) + ½ tr(Wᵀ K_f W)`` the quadratic terms, ``g`` the rest. For any
dual point ``θ = (θ_t ∈ R^{n_t})`` weak duality gives

.. math::

    F^\star \ge D(\theta) = \sum_t \Big(\theta_t^\top y_t
    - \frac{\lVert\theta_t\rVert^2}{2 c_t}\Big)
    - (h + g)^*(V), \qquad V = [X_1^\top\theta_1, \dots, X_T^\top\theta_T],

and ``θ_t = s·c_t (y_t − X_t w_t)`` is the dual point built from ``W`` (the scale ``s`` is
chosen to make ``D`` as large as possible). ``cert.gap = F(W) − D(θ) ≥ F(W) − F*`` is
then a bound that trusts no solver. Everything is computed in float64 from the original
data: on the residuals, or on a shared design from ``XᵀX`` and ``XᵀY`` where the bound on
that route's rounding (``Certificate.rounding``) is small enough.

The ladder asks the terms (their ``structure`` and the oracles they provide), never
their classes. The rungs, first that applies:

1. ``g`` a norm, or a sum of norms, ``h = 0``: scale θ into the dual ball, by the dual
   norm, or by bisection with the exact prox of the sum (``V`` is in the dual ball iff
   ``prox_g(V) = 0``).
2. ``g`` one squared norm ``(α/2)Ω²``: ``g*(V) = Ω°(V)²/(2α)``.
3. ``h ≠ 0`` with ``g`` of rung 1, 2 or 6: the quadratic terms join the dual as extra
   data blocks, ``V = −∇(f + h)(W)``; a factor-given term's block is the computed ``WR``
   itself (also tried aligned to the norm's gradient on its support), so ``V``'s rounding
   is first order in it (see docs/certificates.md).
4. ``g = 0``: ``h*(V) = ½⟨V, Q⁻¹V⟩`` when ``Q = K_t ⊕ K_f ≻ 0`` (from a solve, or at
   ``X = W`` where the quadratic value's magnitude bound dominates: the computed ``h(W)``
   then enters ``F`` and ``D`` as one float, see docs/certificates.md), else the
   strong-convexity bound ``‖∇F‖²/(2μ)``, else no gap.
5. Anything else with an exact prox: the gradient mapping ``G_τ``; with ``μ > 0``
   ``F(W) − F* ≤ F(W) − F(W⁺) + 2‖G_τ‖²/μ``, else only ``‖G_τ‖``.
6. ``g`` one term with a ``conjugate``: ``D = Σ_t(…) − g*(V)`` at ``s = 1``.
7. A norm part plus terms ``φ_j`` with conjugates:
   ``(g + Σφ_j)*(V) ≤ g*(U) + Σ φ_j*(R_j)`` for every split ``U + Σ R_j = V``; the split
   is searched for, and every split gives a valid bound.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ._checks import check_tol
from ._io import record
from ._linalg import column_dot, issparse
from ._quadratic_dual import quadratic_dual
from ._rounding import (
    _EPS,
    _ETA,
    _SAFETY,
    GramRounding,
    QuadraticBlocks,
    Rounding,
    WeightSums,
    _design_norms,
    gamma,
    gram_shift,
    half_square_over,
    least_squares,
    norm_up,
    weight_sums,
)
from ._threads import blas_limited
from .coupling import TaskCoupling
from .data import as_float_array
from .exceptions import ArgumentError, DataError
from .losses import LossDual, SquaredLoss
from .oracles import (
    coupling,
    coupling_bottom,
    coupling_top,
    deferred_strong_convexity,
    gram_extremes,
    merge_terms,
    prox_chain,
)
from .penalties.base import MAX_STRENGTH, check_strength

if TYPE_CHECKING:
    from .penalties.base import Penalty
    from .problem import Problem

__all__ = ["Certificate", "certify", "certify_path"]


class _ReadOnce:
    """A field of a frozen dataclass that may be given as a function of no arguments: it
    is called when the field is first read, and its value kept (a bound that costs more
    than the rest of the certificate is only computed for a caller who reads it)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> float | None:
        if obj is None:  # read on the class: the field has no default
            raise AttributeError(self.name)
        value = obj.__dict__[self.name]
        if callable(value):
            value = obj.__dict__[self.name] = value()
        return value

    def __set__(self, obj: object, value: float | Callable[[], float | None] | None) -> None:
        obj.__dict__[self.name] = value


@record
@dataclass(frozen=True)
class Certificate:
    """How far a point is from the optimum, with bounds that trust no solver.

    Attributes
    ----------
    objective : float
        ``F(W)`` recomputed in NumPy in float64 from the original data: on the residuals,
        or on a shared design from ``XᵀX`` and ``XᵀY`` (the Gram route); its rounding error
        is bounded in ``rounding``.
    gap : float or None
        Guaranteed upper bound on ``F(W) − F*`` (None when no rung gives one; see
        ``reason``).
    relative_gap : float or None
        ``gap / |F(W)|`` (``0/0 = 0``): invariant to scaling ``y`` or the loss; this is
        what ``tol`` is compared with.
    grad_mapping : float or None
        Norm of the gradient mapping ``‖G_τ(W)‖_F`` with ``τ = 1/L`` (``‖∇F(W)‖`` for a
        smooth problem); zero iff ``W`` is optimal.
    distance_bound : float or None
        Bound on ``‖W − W*‖_F``, ``√(2·gap/μ)``, when a strong-convexity modulus ``μ > 0``
        is known. Computed when first read (``μ`` of per-task designs costs more than
        the rest of a quadratic problem's certificate); may be given as a function.
    method : str
        The rung of the certificate ladder that produced the gap.
    reason : str or None
        Why there is no gap, when there is none: names the term and the oracle it lacks.
    dual_objective : float or None
        ``D(θ)`` less the bound on its own rounding error: a lower bound on ``F*`` that
        holds in exact arithmetic (rungs 1–4, 6 and 7; or the ``dual_lower`` given).
    rounding : float or None
        The part of ``gap`` that bounds the certificate's own floating-point error
        (absolute, see docs/certificates.md): no point of this problem can be certified
        much below it. With an earlier ``dual_lower`` taken, it is this point's own (the
        earlier value already has its bound subtracted).
    """

    objective: float
    gap: float | None
    relative_gap: float | None
    grad_mapping: float | None
    distance_bound: float | None = _ReadOnce()
    method: str
    reason: str | None = None
    dual_objective: float | None = None
    rounding: float | None = None

    def __getstate__(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # every field read

    def __str__(self) -> str:
        if self.gap is None:
            gm = "n/a" if self.grad_mapping is None else f"{self.grad_mapping:.3e}"
            return f"no gap ({self.reason}); gradient mapping {gm} [{self.method}]"
        return f"gap {self.gap:.3e} (relative {self.relative_gap:.3e}) [{self.method}]"


# ---------------------------------------------------------------------- the norm part
class _NormPart:
    """The dual ball of ``g = Σ α_i Ω_i`` (norm terms), asked through their oracles.

    ``scale(V)`` is the largest ``s`` with ``sV`` in the ball (a lower bound on it for two
    norms whose proxes do not compose); ``project(Z)`` a point of the ball near ``Z`` (the
    Euclidean projection when a prox is known).
    """

    def __init__(self, terms: list[Penalty]):
        self.terms = merge_terms(terms)
        self.single = self.terms[0] if len(self.terms) == 1 else None
        chain = prox_chain(self.terms)
        self.prox = None if isinstance(chain, str) else chain
        self.reason: str | None = None
        if self.single is not None and self.single.provides("dual_norm"):
            return
        self.split = self.prox is None and len(self.terms) == 2 and all(
            p.provides("dual_norm") and p.provides("prox") for p in self.terms)
        if self.prox is None and not self.split:
            if len(self.terms) == 1:
                self.reason = f"{self.single.label}: give the norm a dual_norm or a prox"
            else:
                self.reason = (f"{' + '.join(p.label for p in self.terms)}: no exact prox of "
                               "the sum, so no test of its dual ball; give two terms dual "
                               "norms and proxes, or declare prox_composes_with where one "
                               "prox composes with the other")

    def _prox(self, Z: np.ndarray) -> np.ndarray:
        for pen in self.prox:
            Z = pen.prox(Z, 1.0)
        return Z

    def scale(self, V: np.ndarray, W: np.ndarray | None = None,
              enough: float = np.inf) -> float:
        if self.single is not None and self.single.provides("dual_norm"):
            return _column_scale(self.single, V)
        if self.split:
            return self._split_scale(V, W, enough)

        # sV is in the dual ball iff prox_g(sV) = 0 (Moreau): bisection on s
        def inside(s: float) -> bool:
            return not np.any(self._prox(s * V))

        lo, hi = 0.0, 1.0
        while inside(hi):
            lo, hi = hi, 2.0 * hi
            if hi > 1e12:
                return np.inf
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if inside(mid) else (lo, mid)
        return lo

    def _split_scale(self, V: np.ndarray, W: np.ndarray | None, enough: float,
                     rounds: int = 1000) -> float:
        """``max s`` over splits ``V = U + R``: ``sV = sU + sR`` lies in ``α₁B₁° + α₂B₂°``
        whenever ``s ≤ min(α₁/Ω₁°(U), α₂/Ω₂°(R))``, so every split gives a valid scale.

        The split is searched by ADMM on ``U ∈ α₁B₁°, R ∈ α₂B₂°, U + R = V`` (projections
        by Moreau with each term's prox), warm-started with the multiplier ``−W``; the best
        scale seen is kept, and the search stops once it reaches ``enough`` or stalls for
        100 rounds.
        """
        first, second = self.terms

        def ball(pen: Penalty, Z: np.ndarray) -> np.ndarray:
            return Z - pen.prox(Z, 1.0)

        def split_scale(U: np.ndarray) -> float:
            return min(_column_scale(first, U), _column_scale(second, V - U))

        # proportional split: U = λV with λ ∝ α₁/Ω₁°(V)
        s1, s2 = _column_scale(first, V), _column_scale(second, V)
        if not np.isfinite(s1) or not np.isfinite(s2):
            return max(s1, s2)
        best = s1 + s2
        if W is None:
            return best
        rho = float(np.linalg.norm(W)) / max(float(np.linalg.norm(V)), np.finfo(float).tiny)
        rho = rho if np.isfinite(rho) and rho > 0 else 1.0
        U, R, Y = (s1 / best) * V, (s2 / best) * V, -W
        last_gain = 0
        for k in range(rounds):
            U = ball(first, V - R - Y / rho)
            R = ball(second, V - U - Y / rho)
            Y = Y + rho * (U + R - V)
            s = split_scale(U)
            if s > best * (1 + 1e-15):
                best, last_gain = s, k
            if best >= enough or k - last_gain > 100:
                break
        return best

    def gauge(self, E: np.ndarray) -> float:
        """An upper bound on the gauge of the dual ball at ``E``: the smallest ``δ`` with
        ``E ∈ δ·ball`` (all of ``E`` in one term's part: ``Ω_i°(E)/α_i``)."""
        known = [p.dual_norm(E) / p.alpha for p in self.terms if p.provides("dual_norm")]
        return min(known) if known else 1.0 / self.scale(E)

    def project(self, Z: np.ndarray) -> np.ndarray:
        if self.prox is not None:
            return Z - self._prox(Z)  # Moreau: Z − prox_g(Z) = Π_ball(Z)
        return Z * min(1.0, self.scale(Z))

    def separable_tasks(self) -> bool:
        return (self.single is not None and self.single.separable in ("entries", "columns")
                and self.single.provides("dual_norm"))


def _classify(terms: list[Penalty]) -> tuple[list[Penalty], list[Penalty], list[str]]:
    """Split non-quadratic terms into norms, terms with a conjugate, and what is missing."""
    norms, conj, missing = [], [], []
    for p in terms:
        if p.structure == "norm" and (p.provides("dual_norm") or p.provides("prox")):
            norms.append(p)
        elif p.provides("conjugate"):
            conj.append(p)
        elif p.structure == "norm":
            missing.append(f"{p.label}: give the norm a dual_norm or a prox")
        elif p.structure == "squared_norm":
            missing.append(f"{p.label}: give the squared norm a dual_norm")
        else:
            missing.append(f"{p.label} ({p.structure}): give it a conjugate")
    return norms, conj, missing


# ---------------------------------------------------------------------- shared pieces
class _Pieces:
    """Primal/dual quantities at ``W`` (the loss's part from ``loss_dual`` when given,
    else on the original data; ``coupled`` the problem's :func:`~mtlcvx.oracles.coupling`
    when the caller has it)."""

    def __init__(self, problem: Problem, W: np.ndarray, loss_dual: LossDual | None = None,
                 coupled: tuple[TaskCoupling, np.ndarray | None] | None = None):
        a, b, V = loss_dual or problem.loss.dual(problem.data, W, problem.fit_intercept)
        Kt, Kf = coupled or coupling(problem)
        self.Kt, self.Kf = Kt, Kf
        self.a_task = a  # per-task linear coefficients of D(s)
        self.q_task = b  # per-task ‖θ_t‖²/(2c_t), the loss part of the quadratic coefficient
        self.a = float(a.sum())
        self.b = float(b.sum())  # quadratic coefficient (loss part)
        self.V_loss = V  # −∇f(W)
        self.W = W

    @cached_property
    def grad_h(self) -> np.ndarray:
        """``∇h(W) = WK_t + K_fW`` (rung 4's conjugate at ``W``; rung 3 has its blocks)."""
        return self._h_gradient()

    def _h_gradient(self) -> np.ndarray:
        return _h_gradient(self.Kt, self.Kf, self.W)

    def gradient_norm(self) -> float:
        """``‖∇F(W)‖ = ‖∇h(W) − (−∇f(W))‖`` (g = 0), in one array that is not kept: the
        certificate seldom reads ``∇h(W)`` again, and each array a first call at a new size
        allocates beyond the memory already in use costs a page fault per 4 KB."""
        if "grad_h" in self.__dict__:
            return float(np.linalg.norm(self.grad_h - self.V_loss))
        G = self._h_gradient()
        G -= self.V_loss
        return float(np.linalg.norm(G))

    @cached_property
    def b_task(self) -> np.ndarray:
        """Per-task quadratic coefficients, the quadratic terms' values included (rung 1
        per task: a diagonal ``K_t``, whose blocks are per task)."""
        return self.q_task + 0.5 * np.einsum("dt,dt->t", self.grad_h, self.W)


def _h_gradient(Kt: TaskCoupling, Kf: np.ndarray | None, W: np.ndarray) -> np.ndarray:
    """``∇h(W) = WK_t + K_fW`` through the merged coupling, a new array."""
    WK = Kt.apply(W)
    if Kf is not None:
        WK += Kf @ W
    return WK


class _GramRoute(NamedTuple):
    """The loss at ``W``, its dual pieces and their rounding bounds from a shared
    design's Gram statistics (see :class:`mtlcvx._rounding.GramRounding`)."""

    value: float
    dual: LossDual
    bound: GramRounding


#: The Gram route is used when its whole rounding bound stays below this fraction of the
#: gap; otherwise (near the rounding level) the certificate is computed on the residuals.
_GRAM_SHARE = 0.25


class _CoarseRoute(Exception):
    """The Gram route's rounding bound is too large for this gap (its certificate is the
    argument: kept when the residuals' gap is no smaller)."""


def _gram_ready(problem: Problem):
    """The least-squares solution of a shared design when the Gram route applies to this
    problem (n ≥ d, no intercepts, ``X`` of full column rank: ``λ̂_min(G)`` above its
    rounding), else None."""
    data = problem.data
    if problem.fit_intercept or not data.is_shared or data.X[0].shape[0] < data.n_features:
        return None
    ls = least_squares(data, False, gram_extremes(problem))
    return ls if ls.sigma2[0] > 0 else None


def _use_shift(problem: Problem, W: np.ndarray, tol: float | None,
               values: np.ndarray | float | None = None, sums: WeightSums | None = None
               ) -> tuple[np.ndarray | bool, WeightSums | None]:
    """Whether the Gram route expands around the least-squares solution at ``W`` (d, T)
    (a bool) or at each of a batch (P, d, T) of points (P,): see :func:`_gram_route`; and
    :func:`weight_sums` of ``W`` around that solution when they were needed for the choice
    (else None). ``values``: the terms' values at ``W`` (P,), computed here for one point
    if needed; ``sums``: :func:`weight_sums` of ``W`` (around 0), computed here if None."""
    data = problem.data
    gram = data.gram(False)
    col, y = _design_norms(data).col[:, 0], np.sqrt(gram.yy)
    m0 = (weight_sums(W, col) if sums is None else sums).col + y
    far = np.any(m0 > 2.0 * y, axis=-1)
    if not np.any(far):
        return far, None
    shift = gram_shift(data, least_squares(data, False))
    c = problem.loss_weights()
    expanded = weight_sums(W, col, shift.R)
    m1 = expanded.col + np.sqrt(shift.ee)
    coarse = gamma(data.X[0].shape[0] + data.n_features + 2) * (m0 * m0) @ c
    needed = _SHIFT_SHARE * (1e-8 if tol is None else tol) * float(c @ shift.ee)
    far &= (coarse > needed) & (4.0 * np.einsum("...t,...t->...", m1, m1)
                                < np.einsum("...t,...t->...", m0, m0))
    if np.any(far):  # F ≥ the least-squares loss + the terms' values
        if values is None:
            values = sum(p.value(W) for p in problem.penalties)
        far &= coarse > needed + _SHIFT_SHARE * (1e-8 if tol is None else tol) * 2.0 * values
    return far, expanded


#: The Gram route expands around the least-squares solution where the bound around 0 on
#: the loss is over this share of ``tol`` relative to a lower bound on ``F`` (the
#: least-squares loss plus the terms' values). On the 2000 × 500 × 50 benchmark path the
#: bound around 0 then stays within 1.7e-9 of ``F`` (points 13–24, whose products ``G W``
#: come from the solver, skip a dense product ``G(W − R)`` each); relative to the
#: least-squares loss alone (a tenth), 37 of 50 points took the shift.
_SHIFT_SHARE = 0.05


def _gram_route(problem: Problem, W: np.ndarray,
                tol: float | None = None) -> _GramRoute | None:
    """The loss's part of a certificate from ``XᵀX``, ``XᵀY`` (d²T operations instead of
    three n·d·T products), or None: only for a shared design with n ≥ d, no intercepts,
    ``X`` of full column rank (``λ̂_min(G)`` above its rounding) and a non-zero residual.

    The expansion is around 0, or around the least-squares solution (:func:`gram_shift`)
    where the bound around 0 on the loss, ``γ Σ_t c_t m_t²/2``, is over a twentieth of
    ``tol`` (1e-8 without one) relative to a lower bound on ``F``, the least-squares loss
    plus the terms' values (:data:`_SHIFT_SHARE`), and the shift makes ``Σ_t m_t²`` four
    times smaller or more: dense ``W`` at small strengths, where ``Σ_j ‖x_j‖|w_jt|`` is
    many times ``‖r_t‖``. ``W − R`` is dense, so
    the shift costs a full ``d²T`` product (no zero rows to skip, none shared with a
    solver's check).
    """
    ls = _gram_ready(problem)
    if ls is None:
        return None
    sums = weight_sums(W, _design_norms(problem.data).col[:, 0])  # the choice and bounds
    far, expanded = _use_shift(problem, W, tol, sums=sums)
    shift = gram_shift(problem.data, ls) if far else None
    got = problem.loss.gram_dual(problem.data, W, False, shift)
    if got is None or not got[1].quadratic.sum() > 0:
        return None
    value, dual, m = got
    return _GramRoute(value, dual, GramRounding(problem, W, dual.quadratic, m, ls, shift,
                                                sums=sums, expanded=expanded))


def _best_scale(a: float, b: float, s_max: float = np.inf) -> tuple[float, float]:
    """Maximise ``D(s) = a·s − b·s²`` over ``0 ≤ s ≤ s_max``; return (s, D)."""
    if b <= 0:
        s = s_max if np.isfinite(s_max) and a > 0 else 0.0
        return s, a * s
    s = min(max(a / (2.0 * b), 0.0), s_max)
    return s, a * s - b * s * s


def _quadratic_conjugate(Kt: TaskCoupling, Uf: np.ndarray | None, lf: np.ndarray,
                         V: np.ndarray) -> np.ndarray | None:
    """``Q⁻¹V`` as computed for ``Q(W) = W K_t + K_f W`` (``K_f = U_f diag(l_f) U_fᵀ``,
    ``Uf`` None without one) when Q is positive definite, else None.

    In the eigenbasis of ``K_f`` (d×d) this is d shifted solves with ``K_t`` in its
    structure (sparse, factor-given or dense).
    """
    if Uf is None:
        return Kt.solve_shifted(V)
    X = Kt.solve_shifted(Uf.T @ V, lf)
    return None if X is None else Uf @ X


#: Largest T (and d) for which rung 4 eigendecomposes a singular coupling densely.
_DENSE_TASKS = 2000


def _distance(gap: float, mu: Callable[[], float]) -> Callable[[], float | None]:
    """``distance_bound`` ``√(2·gap/μ)`` (None unless ``μ > 0``), ``μ`` read when it is."""
    def distance() -> float | None:
        m = mu()
        # (rounded up: the quotient may underflow, η/2, and round, γ)
        return float(np.sqrt(2.0 * gap / m * (1.0 + gamma(4)) + _ETA)) if m > 0 else None

    return distance


def _relative(gap: float, objective: float) -> float:
    """``gap / |F(W)|`` with ``0/0 = 0`` (and ``inf`` for a positive gap at ``F(W) = 0``)."""
    if gap == 0.0:
        return 0.0
    return gap / abs(objective) if objective != 0.0 else np.inf


class _Reuse(NamedTuple):
    """What a failed gradient-bound attempt computed that the ladder reads again (the
    quadratic terms' ``∇h(W)`` through the merged coupling and the rounding bounds at
    ``W``)."""

    grad_h: np.ndarray
    bound: Rounding


class _LossPart(NamedTuple):
    """The loss's part of the gradient certificate at ``W`` as one route computed it."""

    gradient: np.ndarray  # ∇̂f(W) (d, T) as computed
    value: float  # f(W) as computed (the per-task losses summed)
    error: float  # ≥ |value − f(W)|
    gradient_error: float  # ≥ ‖∇̂f(W) − ∇f(W)‖_F


def _residual_loss(problem: Problem, W: np.ndarray) -> _LossPart:
    r"""The loss's part of :func:`_strongly_convex`'s certificate from the residuals
    (:meth:`~mtlcvx.losses.SquaredLoss.residual_gradient`), with the design's size ``σ_t ≥
    ‖X_t‖_F`` read off the Gram statistics' diagonals a solver left on the data (else the
    data's norms, one pass kept on the data).

    As computed: ``r̂_t = fl(fl(X_tw_t) − y_t)``, ``ŝ_t = fl(‖r̂_t‖²)``, ``θ̂_t =
    fl(c_tr̂_t)``, ``∇̂_t = fl(X_tᵀθ̂_t)`` and the loss ``f̂ = fl(½·fl(Σ_t c_tŝ_t))``; the
    exact gradient ``∇_t = c_tX_tᵀr_t``. With ``ε`` the machine epsilon, ``η = 2⁻¹⁰⁷⁴``
    (a product that underflows is off by up to ``η/2``; sums are exact there; every η/2
    counted twice), ``n`` the largest task's rows (one ``γ`` for every task) and Higham's
    bounds for sums of products:

    * ``M_t = σ_t‖w_t‖ + ‖y_t‖ ≥ ‖|X_t||w_t| + |y_t|‖`` (``‖|X_t|‖₂ ≤ ‖X_t‖_F``), the size
      of the products each residual sums: ``‖r̂_t − r_t‖ ≤ Δ_t = γ_{d+3}M_t + √n(d + 2)η``;
    * ``ρ_t ≥ ‖r̂_t‖`` from ``ŝ_t`` (less ``γ_n`` and ``nη/2``), ``‖θ̂_t‖ ≤ (1 + ε)c_tρ_t +
      √nη/2`` and ``‖θ̂_t − c_tr_t‖ ≤ εc_tρ_t + √nη/2 + c_tΔ_t``, so ``‖∇̂_t − ∇_t‖ ≤
      σ_t(c_t(γ_{n+2}ρ_t + Δ_t) + √nη) + √d·nη`` (the product's ``γ_n|X_t|ᵀ|θ̂_t|``, then
      ``‖X_tᵀ(θ̂_t − c_tr_t)‖``);
    * ``|‖r̂_t‖² − ‖r_t‖²| ≤ Δ_t(2ρ_t + Δ_t)``, so ``f̂`` is within ``Σ_t (c_t/2)(Δ_t(2ρ_t +
      Δ_t) + γ_{n+2}ρ_t² + nη) + γ_T f̂ + Tη`` of ``Σ_t (c_t/2)‖r_t‖²`` (the sum of ``T``
      products, then the halving).

    ``σ_t² = (Σ_j fl(‖x_tj‖²) + dnη)(1 + γ_{n+d+4})`` from the diagonals (each sum of
    squares less ``γ_n`` and ``nη/2``, their sum ``γ_d``), ``‖y_t‖`` likewise from
    ``fl(‖y_t‖²)`` and ``‖w_t‖`` from ``fl(‖w_t‖²)``. ``Σ_j‖x_tj‖|w_jt|`` would bound
    ``M_t`` a little more tightly, at the price of ``|W|`` and a pass over it. (Reductions
    by the ufuncs themselves: their Python wrappers cost more than the sums on a first
    call.)
    """
    data = problem.data
    c = problem.loss_weights()
    d, T = W.shape
    n = data.X[0].shape[0] if data.is_shared else int(np.maximum.reduce(data.n_samples))
    known = data._gram_diagonals()
    if known is not None:  # (a shared design's: one σ for every task)
        sigma = np.sqrt((np.add.reduce(known[0], axis=1) + d * n * _ETA)
                        * (1.0 + gamma(n + d + 4)))
        y_norm = np.sqrt((known[1] + n * _ETA) * (1.0 + gamma(n + 4)))
    else:
        norms = _design_norms(data)
        sigma = norms.frobenius * (1.0 + gamma(n * d + d + 2)) + math.sqrt(n * d * _ETA)
        y_norm = norms.y * (1.0 + gamma(n + 4)) + math.sqrt(n * _ETA)
    w_norm = np.sqrt((np.add.reduce(W * W, axis=0) + d * _ETA) * (1.0 + gamma(d + 4)))
    M = (sigma * w_norm + y_norm) * (1.0 + gamma(3))
    squares, gradient = problem.loss.residual_gradient(data, W)
    loss = 0.5 * float(c @ squares)
    root_n = math.sqrt(n)
    apart = gamma(d + 3) * M + root_n * (d + 2) * _ETA  # Δ_t
    rho = np.sqrt((squares + n * _ETA) * (1.0 + gamma(n + 4)))  # ≥ ‖r̂_t‖
    g_n = gamma(n + 2)
    gradient_error = norm_up(sigma * (c * (g_n * rho + apart) + root_n * _ETA)) + math.sqrt(
        d * T) * n * _ETA
    error = 0.5 * float(c @ ((2.0 * rho + apart) * apart + g_n * (rho * rho) + n * _ETA)) \
        + T * _ETA + gamma(T) * loss
    return _LossPart(gradient, loss, error, gradient_error)


def _strongly_convex(problem: Problem, W: np.ndarray,
                     tol: float) -> tuple[Certificate | None, _Reuse | None]:
    r"""The certificate of a quadratic problem at a near-exact point from its gradient, in
    one pass over the data, and what it computed for the ladder: the certificate is None
    unless it applies and meets ``tol``.

    With the quadratic terms positive definite, ``λ ≤ λ_min(K_t ⊕ K_f)`` with ``λ > 0``
    (:func:`~mtlcvx.oracles.coupling_bottom`), ``F`` is ``λ``-strongly convex (the loss is
    convex), so ``F(W) − F* ≤ ‖∇F(W)‖²/(2λ)``; where they are only semidefinite (a graph
    Laplacian alone), with ``λ`` the problem's strong-convexity modulus instead,
    ``min_t c_tλ_min(X_tᵀX_t)`` plus theirs (:func:`~mtlcvx.oracles.strong_convexity`:
    positive where every task pins its weights down). No dual point and no solve: at an exact
    solve's point ``‖∇F(W)‖`` is at the rounding level, and what is left is the bound
    ``E_F`` on the objective's own rounding, added to the gap as on every rung. Away from
    the optimum ``‖∇F‖²/(2λ)`` can be far above the dual gap, so it is taken only when
    it meets ``tol``; and not where rung 4 bounds the rounding more tightly: terms whose
    magnitude bound ``½‖W‖E_h`` is over four times the loss's (rung 4's conjugate at ``W``
    cancels it).

    Uncentred squared loss (``c_t ≥ 0``; the three data layouts of
    :meth:`~mtlcvx.losses.SquaredLoss.dual`): with ``r_t = X_tw_t − y_t`` exact,
    ``∇F(W) = ∇h(W) + ∇f(W)``, ``∇f(W)_t = c_tX_tᵀr_t``; the loss ``f̂`` and ``∇̂f`` as
    computed, and their bounds, are :func:`_residual_loss`'s. With ``Ĥ`` the merged
    coupling's ``∇h(W)``, ``‖Ĥ − ∇h(W)‖_F ≤ E_h``
    (:meth:`~mtlcvx._rounding.Rounding.quadratic_gradient_norm_error`), ``ĝ = fl(Ĥ + ∇̂f)``
    within ``ε‖ĝ‖`` of ``Ĥ + ∇̂f``, and the objective ``F̂ = fl(f̂ + ½⟨W, Ĥ⟩)`` (``h(W) =
    ½⟨W, ∇h(W)⟩`` for quadratic terms) within the loss's bound ``+ ½(‖W‖E_h +
    γ_{d+T}‖W‖‖Ĥ‖ + dTη) + η + 2ε|F̂|``. With a term given by its factor ``K = RRᵀ +
    ridge·I``, ``h(W)`` is instead the terms' own values summed (a factor's ``(α/2)(‖WR‖²
    + ridge‖W‖²)``, a sum of squares), within
    :meth:`~mtlcvx._rounding.Rounding.quadratic_value_error` (first order in ``WR``) and
    ``γ_k`` of their sum; and the certificate is kept only where the gradient's part
    ``(‖ĝ‖ + E)²/(2λ)`` is at most that rounding (see :func:`_gradient_certificate`).
    """
    if (problem.fit_intercept or not problem.is_quadratic
            or not isinstance(problem.loss, SquaredLoss)):
        return None, None
    coupled = coupling(problem)
    Kt, Kf = coupled
    mu = deferred_strong_convexity(problem, coupled)
    lam, method = coupling_bottom(Kt, None if Kf is None else np.linalg.eigvalsh(Kf)), _STRONG
    if not lam > 0:  # (no ridge) the loss's own curvature, where the tasks pin their
        lam, method = mu(), _STRONG_LOSS  # weights down: min_t c_tλ_min(X_tᵀX_t) + the terms'
        if not lam > 0:
            return None, None
    bound = Rounding(problem, W, None)
    H = _h_gradient(Kt, Kf, W)
    w_norm = norm_up(W)
    e_h = bound.quadratic_gradient_norm_error(w_norm)
    if bound.factor_given:  # h(W) from the terms' own values: a factor-given term's is a
        # sum of squares of fl(WR), its rounding first order in WR, where ½⟨W, Ĥ⟩'s would
        # carry ½‖W‖E_h, growing with α‖R‖² wherever WR cancels
        values = [p.value(W) for p in bound.quadratic]
        h_value = sum(values)
        value_error = bound.quadratic_value_error() + gamma(len(values)) * sum(map(abs, values))
    else:
        h_value = 0.5 * column_dot(W, H)
        value_error = 0.5 * (w_norm * e_h + gamma(sum(W.shape)) * w_norm * norm_up(H)
                             + W.size * _ETA)
    fast = _gradient_certificate(lam, _residual_loss(problem, W), H, h_value, e_h,
                                 value_error, tol, bound.factor_given, mu, method)
    return (fast, None) if fast is not None else (None, _Reuse(H, bound))


#: :func:`_strongly_convex`'s method: ``λ`` from the quadratic terms alone, or (no ridge)
#: from the loss's curvature beside them.
_STRONG = "gradient norm + strong convexity of the quadratic terms (rung 5)"
_STRONG_LOSS = "gradient norm + strong convexity of the loss and the quadratic terms (rung 5)"


def _gradient_certificate(lam: float, part: _LossPart, H: np.ndarray, h_value: float,
                          e_h: float, value_error: float, tol: float, factor_given: bool,
                          mu: Callable[[], float], method: str) -> Certificate | None:
    """:func:`_strongly_convex`'s certificate from the loss's part, or None where it does
    not apply or does not meet ``tol``; with a term given by its factor also where the
    gradient's part outweighs the objective's rounding (``E_h`` grows with ``α‖R‖²``
    wherever ``WR`` cancels, where rung 4's conjugate is first order in ``WR``). ``mu``:
    the problem's strong convexity when read (its ``distance_bound``)."""
    G = np.add(H, part.gradient).ravel()  # ∇F(W) as computed
    g = math.sqrt(float(G.dot(G)))  # ‖ĝ‖ as computed (the gradient mapping reported)
    grad = ((g * (1.0 + gamma(G.size)) + math.sqrt(G.size * _ETA)) * (1.0 + _EPS) + e_h
            + part.gradient_error) * (1.0 + gamma(4))  # (norm_up of G from the same sum)
    objective = part.value + h_value
    if not (math.isfinite(objective) and math.isfinite(grad)):
        return None
    if value_error > 4.0 * part.error:  # the terms' magnitude bound dominates: rung 4's
        return None  # conjugate at W, where the computed h(W) cancels, does better
    error = _SAFETY * (part.error + value_error + _ETA + 2.0 * _EPS * abs(objective))
    bare = half_square_over(g, lam)
    gradient_part = half_square_over(grad, lam)
    gap = gradient_part + error
    if not (math.isfinite(gap) and _relative(gap, objective) <= tol):
        return None
    if factor_given and gradient_part > error:
        return None
    return Certificate(objective, gap, _relative(gap, objective), g, _distance(gap, mu),
                       method, rounding=gap - bare)


# ---------------------------------------------------------------------- certify
@blas_limited
def certify(problem: Problem, W: np.ndarray, intercept: np.ndarray | None = None,
            parts: dict[str, np.ndarray] | None = None,
            dual_lower: float | None = None, *, gradient_mapping: bool = True,
            tol: float | None = None, gram: bool = True) -> Certificate:
    """Certify how close ``W`` is to the optimum of ``problem``.

    Parameters
    ----------
    problem : Problem
    W : array_like (d, T)
        Any coefficient matrix, for example from your own gradient method.
    intercept : array_like (T,), optional
        For a problem with intercepts; None profiles them out (uses the best ``b`` for
        this ``W``). A given intercept adds its excess ``F(W, b) − F(W, b*(W))`` to the gap.
    parts : dict of str to ndarray (d, T), optional
        The parts of decomposition terms (as in ``sol.parts``); their excess over the
        best parts for ``W`` is added to the gap likewise.
    dual_lower : float, optional
        A lower bound on ``F*`` already certified, such as the ``dual_objective`` of an
        earlier certificate of the same problem (every dual value is one). The gap uses
        the larger of it and this point's own dual value, so a method's gaps can keep
        the best dual point seen so far; without a rung it still gives a gap.
    gradient_mapping : bool, default True
        Compute ``grad_mapping`` (one gradient and one prox at ``W``) also when a rung
        gives a gap; False leaves it None then (fista's checks, which stop on the gap).
    tol : float, optional
        The relative gap the caller needs. On a shared design the loss's part is taken
        from ``XᵀX`` and ``XᵀY`` unless that route's rounding bound is over a quarter of
        the gap (then the residuals give a tighter one); with ``tol`` a gap from ``XᵀX``
        that meets it is kept all the same (a regularization path's points). A quadratic
        problem whose quadratic terms are positive definite first tries ``‖∇F(W)‖²/(2λ)``
        (``λ`` a proven lower bound on their smallest eigenvalue) plus the objective's
        rounding, kept when it meets ``tol``: cheaper than the dual at an exact solve's
        point, where the gradient is at the rounding level (see docs/certificates.md).
    gram : bool, default True
        Try that route first; False goes to the residuals at once, as an exact solve's
        point needs (its gap is at the rounding level, where the route's bound is always
        over its share, so trying it would only add its cost).

    Returns
    -------
    Certificate
        ``gap`` is a guaranteed upper bound on ``F(W) − F*`` (or None with ``reason``).
    """
    W = problem.check_W(W)
    if tol is not None:
        tol = check_tol(tol)
    if dual_lower is not None and (isinstance(dual_lower, (bool, np.bool_))
                                   or not isinstance(dual_lower, numbers.Real)):
        raise ArgumentError(f"dual_lower must be a real number (a certified lower bound on "
                            f"F*, such as an earlier certificate's dual_objective) or None, "
                            f"got {dual_lower!r}")
    reuse = None
    if tol is not None and intercept is None and not parts and dual_lower is None:
        fast, reuse = _strongly_convex(problem, W, tol)
        if fast is not None:
            return fast
    route = _gram_route(problem, W, tol) if gram and intercept is None and not parts else None
    if route is not None:
        try:
            return _certify(problem, W, intercept, parts, dual_lower, gradient_mapping, route,
                            tol)
        except _CoarseRoute as coarse:  # the residuals' gap, unless the Gram one is smaller
            residual = _certify(problem, W, intercept, parts, dual_lower, gradient_mapping,
                                None, reuse=reuse)
            gram_cert = coarse.args[0]
            return gram_cert if residual.gap is None or gram_cert.gap < residual.gap else residual
    return _certify(problem, W, intercept, parts, dual_lower, gradient_mapping, None,
                    reuse=reuse)


@blas_limited
def certify_path(problem: Problem, penalty: Penalty, alphas: np.ndarray, Ws: np.ndarray,
                 tol: float | None = None,
                 products: list[np.ndarray | None] | None = None) -> list[Certificate | None]:
    r"""Certificates of many points of one problem at strengths ``alphas`` of ``penalty``
    (a regularization path), in one batched pass.

    Each is the certificate :func:`certify` gives, ``certify(problem, Ws[i],
    gradient_mapping=False, tol=tol)`` with ``penalty.alpha = alphas[i]`` (equal to
    rounding: the same formulas and rounding bounds, evaluated with a leading axis over
    the points, so the products are one ``G [W_1 … W_P]`` or ``Xᵀ[θ_1 … θ_P]`` and the
    bounds cost O(PdT) in a few dozen array operations instead of some 500 per point).
    It applies to the rung the path's problems reach: ``penalty`` a norm with a
    ``dual_norm`` that does not separate over tasks (one scale per point, as L21),
    the only active term, no quadratic terms, no constraints. Elsewhere, and for points
    that rung would not certify alone (no finite gap; the Gram route's rounding over a
    quarter of a gap above ``tol``, where :func:`certify` compares it with the
    residuals'), the entry is None: certify those singly.

    Parameters
    ----------
    problem : Problem
    penalty : Penalty
        One of ``problem.penalties``; its strength is restored afterwards.
    alphas : ndarray (P,)
    Ws : ndarray (P, d, T)
    tol : float, optional
        As for :func:`certify`.
    products : list of (ndarray (d, T) or None), optional
        ``G W_i`` of a shared design as :meth:`MultiTaskData.gram_product` computes it,
        where a solver already has it.

    Returns
    -------
    list of (Certificate or None), one per point
    """
    alphas = as_float_array(alphas, "alphas", 1)
    Ws = as_float_array(Ws, "Ws", 3)
    P = alphas.size
    expected = (P, problem.n_features, problem.n_tasks)
    if Ws.shape != expected:
        raise DataError(f"Ws has shape {Ws.shape}, expected (len(alphas), n_features, "
                        f"n_tasks) = {expected}: one (d, T) coefficient matrix per strength")
    if not any(p is penalty for p in problem.penalties):
        raise ArgumentError(f"penalty {penalty!r} is not one of the problem's penalties; "
                            "pass the object from problem.penalties")
    if products is not None and len(products) != P:
        raise ArgumentError(f"products has {len(products)} entries for {P} strengths; "
                            "give one (G W_i or None) per point, or leave it None")
    out: list[Certificate | None] = [None] * P
    if (problem.constraints is not None or penalty.structure != "norm"
            or not penalty.provides("dual_norm") or penalty.separable in ("entries", "columns")
            or any(p is not penalty and p.active for p in problem.penalties)):
        return out
    if tol is not None:
        tol = check_tol(tol)
    bad = ~((alphas >= 0) & (alphas <= MAX_STRENGTH))  # (NaN too)
    if bad.any():
        check_strength(float(alphas[bad][0]))  # raises the strength's PenaltyError
    saved = penalty.alpha
    try:  # the terms' values: the norm's α·Ω(W) (the others are off), Ω once per point
        penalty.alpha = 1.0
        values = alphas * np.array([penalty.value(W) for W in Ws])
    finally:
        penalty.alpha = saved
    mu = deferred_strong_convexity(problem)
    ls = _gram_ready(problem)
    points = np.flatnonzero(alphas > 0)
    size = Ws[0].size
    step = max(1, _BATCH_ENTRIES // size, min(_BATCH_POINTS, _BATCH_LIMIT // size))
    if ls is not None and points.size:
        _certify_gram(problem, penalty, alphas, Ws, values, points, out, mu, ls, tol,
                      products, step)
        points = np.array([i for i in points if out[i] is None], dtype=int)
    for start in range(0, points.size, step):
        _certify_residuals(problem, penalty, alphas, Ws, values, points[start:start + step],
                           out, mu, tol)
    return out


#: Entries (P·d·T) of one chunk of :func:`certify_path`'s arrays: 128 KB, glibc's default
#: threshold for fresh memory maps, or :data:`_BATCH_POINTS` points when that is more (up to
#: :data:`_BATCH_LIMIT` entries). Larger temporaries can cost a page fault per 4 KB each
#: time they are allocated (measured: ``|W − R|`` over 50 points of 100 × 20 took 670 µs
#: in one piece, 50 µs in chunks of 8). With points of 200 KB (500 × 50) a batch of 8 pays
#: less per point in calls than it loses to faults: the 2000 × 500 × 50 benchmark path's
#: 50 certificates take 54 ms one point at a time, 46 / 44 / 43 / 43 ms in chunks of 2 / 4
#: / 8 / 16 points and 61 ms in one chunk.
_BATCH_ENTRIES = 1 << 14
_BATCH_POINTS = 8
_BATCH_LIMIT = 1 << 22


def _certify_gram(problem: Problem, penalty: Penalty, alphas: np.ndarray, Ws: np.ndarray,
                  values: np.ndarray, todo: np.ndarray, out: list[Certificate | None],
                  mu: Callable[[], float], ls, tol: float | None,
                  products: list[np.ndarray | None] | None, step: int) -> None:
    """:func:`certify_path` on the Gram route for the points ``todo`` (``values``: the
    terms' values): the loss's pieces ``step`` points at a time (their products ``G Δ_i``,
    ``V`` and its dual norm: arrays of ``step`` points), the sums of ``|W|`` through
    :func:`weight_sums`, and the rounding bounds once for all points (a few hundred
    operations on (P, T) arrays, not a few hundred per chunk)."""
    data = problem.data
    W = Ws if todo.size == Ws.shape[0] else Ws[todo]  # (P, d, T), a view for every point
    sums = weight_sums(W, _design_norms(data).col[:, 0])
    shifted, expanded = _use_shift(problem, W, tol, values[todo], sums)
    shifted = np.broadcast_to(shifted, todo.shape)
    shift = gram_shift(data, ls) if shifted.any() else None
    P, T = W.shape[0], W.shape[-1]
    value, dn = np.empty(P), np.empty(P)
    linear, quadratic, m = np.empty((P, T)), np.empty((P, T)), np.empty((P, T))
    # the chunks' Δ_i and products G Δ_i (then their V): one array for the whole pass (a
    # fresh (step, d, T) array per chunk faults its pages each time: 2000 × 500 × 50
    # path, 1.6 MB per chunk)
    work = None
    for start in range(0, P, step):
        chunk = np.arange(start, min(start + step, P))
        for group, around in ((chunk[~shifted[chunk]], None), (chunk[shifted[chunk]], shift)):
            if not group.size:
                continue
            if work is None:
                work = np.empty((2, step) + W.shape[1:])
            product = None  # G Δ_i: one product for the shifted (dense) points; the others
            if around is None:  # skip their zero rows, or come from the solver
                known = [None] * group.size if products is None else [
                    products[todo[j]] for j in group]
                product = np.stack([data.gram_product(W[j], False, keep=False) if g is None
                                    else g for j, g in zip(group, known, strict=True)],
                                   out=work[1, :group.size])
            # a chunk with no shifted point is a view, no copy
            points = W[chunk[0]:chunk[-1] + 1] if group.size == chunk.size else W[group]
            value[group], dual, m[group] = problem.loss.gram_dual(
                data, points, False, around, product, work[:, :group.size])
            linear[group], quadratic[group] = dual.linear, dual.quadratic
            dn[group] = [penalty.dual_norm(v) for v in dual.V]
    live = quadratic.sum(axis=-1) > 0  # else the residuals (as certify)
    if not live.all():  # (rare: an exact fit) the others only
        todo, W, shifted, value, dn, linear, quadratic, m = (
            x[live] for x in (todo, W, shifted, value, dn, linear, quadratic, m))
        sums = WeightSums(*(x[live] for x in sums))
        expanded = None if expanded is None else WeightSums(
            expanded.col[live], expanded.abs[live], None)
        if not todo.size:
            return
    bound = GramRounding(problem, W, quadratic, m, ls, shift, shifted, sums, expanded)
    _norm_batch(out, todo, penalty, alphas, values[todo] + value, linear, quadratic, dn,
                bound, mu, tol, gram=True)


def _certify_residuals(problem: Problem, penalty: Penalty, alphas: np.ndarray,
                       Ws: np.ndarray, values: np.ndarray, todo: np.ndarray,
                       out: list[Certificate | None], mu: Callable[[], float],
                       tol: float | None) -> None:
    """:func:`certify_path` from the residuals for the points ``todo`` (a chunk)."""
    data, loss_fn = problem.data, problem.loss
    if not data.is_shared and data.equal_blocks() is not None and not problem.fit_intercept:
        dual = loss_fn.dual(data, Ws[todo], False)  # one batched product for all points
        loss = loss_fn.value(data, Ws[todo])
    else:  # the loss as certify computes it, point by point
        duals = [loss_fn.dual(data, Ws[i], problem.fit_intercept) for i in todo]
        dual = LossDual(*(np.stack(x) for x in zip(*duals, strict=True)))
        loss = np.array([loss_fn.value(data, Ws[i], problem._intercept_for(Ws[i], None))
                         for i in todo])
    bound = Rounding(problem, Ws[todo], None)
    _norm_batch(out, todo, penalty, alphas, loss + values[todo], dual.linear, dual.quadratic,
                np.array([penalty.dual_norm(v) for v in dual.V]), bound, mu, tol, gram=False)


def _norm_batch(out: list[Certificate | None], index: np.ndarray, penalty: Penalty,
                alphas: np.ndarray, objective: np.ndarray, a_task: np.ndarray,
                q_task: np.ndarray, dn: np.ndarray, bound: Rounding,
                mu: Callable[[], float], tol: float | None, gram: bool) -> None:
    """Rung 1 with one scale per point for the points ``index`` (see :func:`certify_path`):
    the loss's pieces ``a_task``, ``q_task`` (P, T), the dual norms ``dn`` (P,) of their
    ``V`` and the rounding ``bound`` come with a leading axis over them. Fills ``out``
    where the certificate is the one :func:`certify` would return."""
    d, T = bound.W.shape[-2:]
    alpha = alphas[index]
    a, b = a_task.sum(axis=-1), q_task.sum(axis=-1)
    s_max = np.where(dn == 0, np.inf, alpha / np.where(dn == 0, 1.0, dn))
    s, lower = np.array([_best_scale(*args) for args in zip(a, b, s_max, strict=True)]).T
    g_solve = gamma(d + T + 8)

    def total(E: np.ndarray | None) -> np.ndarray:
        """``E_D`` of ``ball_error`` in :func:`certify` (rung 1), per point (``E`` None:
        zero, whose gauge is 0)."""
        shrink = 0.0 if E is None else s * np.array([penalty.dual_norm(x) for x in E]) / alpha
        return bound.dual(s, a_task, q_task, b, delta=shrink + g_solve)

    # no quadratic terms: V is the loss's (on the Gram route V̂ is Xᵀθ' exactly: e = 0)
    e = None if gram else bound.v_error(q_task)
    moving = np.zeros(index.size, dtype=bool) if e is None else e.any(axis=(1, 2))
    if moving.any():
        error = total(e)
        moving &= error > 2.0 * total(None)
    else:
        error = total(None)
    if moving.any():  # the point moved for tasks of full column rank, where cheaper
        cost, moved = bound.shift(q_task, s)
        moved = np.broadcast_to(moved, cost.shape)  # per task: the same for every point
        moving &= moved.any(axis=-1)
        if moving.any():
            alt = total(e - bound.v_error(q_task) * moved[:, None, :]) + cost.sum(axis=-1)
            error = np.where(moving, np.minimum(error, alt), error)
    floor = bound.primal(objective, bound.task_losses(q_task)) + bound.primal_value_error()
    gap = objective - lower + error
    own = np.maximum(gap, 0.0) + floor
    rounding = floor + error
    for j, i in enumerate(index):
        if not np.isfinite(gap[j]):
            continue
        g, F = float(own[j]), float(objective[j])
        rel = _relative(g, F)
        if gram and rounding[j] > _GRAM_SHARE * g and not (tol is not None and rel <= tol):
            continue  # certify compares it with the residuals' gap
        out[i] = Certificate(F, g, rel, None, _distance(g, mu), "dual-norm scaling (rung 1)",
                             None, float(lower[j] - error[j]), float(rounding[j]))


def _certify(problem: Problem, W: np.ndarray, intercept: np.ndarray | None,
             parts: dict[str, np.ndarray] | None, dual_lower: float | None,
             gradient_mapping: bool, route: _GramRoute | None,
             tol: float | None = None, reuse: _Reuse | None = None) -> Certificate:
    """:func:`certify` with the loss's part from ``route`` (raises :class:`_CoarseRoute`
    when its rounding bound exceeds ``_GRAM_SHARE`` of the gap and the relative gap is
    above ``tol``) or, without one, from the residuals on the original data (``reuse``:
    ``∇h(W)`` and the rounding bounds when a gradient-bound attempt computed them)."""
    # F(W, parts) ≥ F(W): the gap is taken from F at the parts (a decomposition's value
    # at W alone may have no closed form); only a given intercept's excess is split off
    values = None  # the terms' values, summed into the very floats F(W) holds
    if parts:
        objective = problem.objective(W, intercept, parts=parts)
        profiled = problem.objective(W, parts=parts) if intercept is not None else objective
    else:
        problem.check_shapes()
        values = [p.value(W) for p in problem.penalties]
        penalties = sum(values)

        def loss(b: np.ndarray | None) -> float:
            return problem.loss.value(problem.data, W, problem._intercept_for(W, b))

        objective = (route.value if route is not None else loss(intercept)) + penalties
        profiled = loss(None) + penalties if intercept is not None else objective
    excess = objective - profiled
    coupled = coupling(problem)  # (its cache key costs a pass over the terms: once)
    mu = deferred_strong_convexity(problem, coupled)  # costly for per-task designs: when read
    # bounds on the certificate's own rounding error (see mtlcvx._rounding)
    if route is not None:
        bound = route.bound
    elif reuse is not None:  # (built uncentred, without an intercept: as this would be)
        bound = reuse.bound
    else:
        bound = Rounding(problem, W, intercept if problem.fit_intercept else None)
    loss_dual = route and route.dual
    pieces: _Pieces | None = None  # the loss's dual pieces, once computed
    quadratic = problem.is_quadratic
    if quadratic:
        # g = 0: the gradient mapping is ∇F = ∇h − (−∇f) for every step, read off the
        # dual pieces on the original data (no Lipschitz bound, no second product)
        pieces = _Pieces(problem, W, loss_dual, coupled)
        if reuse is not None:
            pieces.__dict__["grad_h"] = reuse.grad_h
        mapping = (pieces.gradient_norm(), None, True) if gradient_mapping else None
    else:
        mapping = _gradient_mapping(problem, W) if gradient_mapping else None

    def rung5(missing: str) -> Certificate:
        nonlocal mapping
        mapping = mapping or _gradient_mapping(problem, W)
        return _rung5(problem, *mapping, profiled, mu(), done, missing)

    floors: list[float] = []

    def primal_floor(quadratic: bool = True) -> float:
        """``E_F`` (computed once), without the quadratic terms' value error unless
        ``quadratic``."""
        if not floors:
            floors.append(bound.primal(objective, bound.task_losses(
                None if pieces is None else pieces.q_task)))
        return floors[0] + (bound.primal_value_error() if quadratic else 0.0)

    def done(gap: float | None, method: str, reason: str | None = None,
             dual: float | None = None, dual_error: float = 0.0,
             evaluations: int = 1, paired: float | None = None) -> Certificate:
        """``dual`` as computed and ``dual_error`` its rounding bound; a gap without a
        dual point (rung 5) from ``evaluations`` objective values. ``paired``: the bound
        on ``fl(F(W)) − fl(D) − (F(W) − D)`` less the primal's other errors, for a dual
        that holds the same computed quadratic value as ``F(W)`` (rung 4 at ``X = W``):
        its rounding then cancels but for a weight ``|1 − s²|``, and the primal floor
        leaves it out."""
        own_error = dual_error if paired is None else paired
        if dual is not None:
            gap = profiled - dual + own_error
            dual -= dual_error  # a lower bound on F* in exact arithmetic
        if gap is not None and not np.isfinite(gap):
            gap, reason = None, f"{method}: the dual bound is not finite at this point"
            method, dual = "none", None
        def floor(quadratic: bool) -> float:
            return evaluations * primal_floor(quadratic)

        own = None if gap is None else max(gap, 0.0) + floor(paired is None)
        if dual_lower is not None and np.isfinite(dual_lower) and (
                gap is None or dual is None or dual_lower > dual):
            earlier = max(profiled - dual_lower, 0.0) + floor(True)
            if own is None or earlier < own:
                method = "best dual value seen so far" if gap is None else (
                    method + " + best dual value seen so far")
                # the earlier dual's own error is inside dual_lower; the rounding reported
                # stays this point's (what its own dual point could resolve)
                own, dual, reason = earlier, dual_lower, None
        rounding = None
        if own is not None:
            rounding = floor(paired is None) + (own_error if dual is not None else 0.0)
            gap = own + excess
            rel = _relative(gap, objective)
            dist = _distance(gap, mu)
        else:
            gap = rel = dist = None
        cert = Certificate(objective, gap, rel, mapping and mapping[0], dist, method, reason,
                           dual, rounding)
        if route is not None and gap is not None and rounding > _GRAM_SHARE * gap and not (
                tol is not None and rel <= tol):
            raise _CoarseRoute(cert)
        return cert

    if problem.constraints is not None:
        return done(None, "none", "constrained problem")
    if not math.isfinite(objective):
        return done(None, "none", f"the objective is {objective} at this point")
    terms = [] if quadratic else [p for p in problem.penalties
                                  if p.active and p.structure != "quadratic"]
    norms, conj, missing = _classify(terms)
    norm_part = _NormPart(norms) if norms else None
    if norm_part is not None and norm_part.reason is not None:
        missing.append(norm_part.reason)
    if missing:
        return rung5("; ".join(missing))

    pieces = pieces or _Pieces(problem, W, loss_dual, coupled)
    d, T = W.shape
    g_solve = gamma(d + T + 8)  # dual norms, solves and eigendecompositions
    if not norms and not conj:  # rung 4: quadratic problem
        Uf, lf = None, None
        if pieces.Kf is not None:
            lf, Uf = np.linalg.eigh(pieces.Kf)
        bottom = coupling_bottom(pieces.Kt, lf)

        def top() -> float:  # (an eigenvalue problem for a factor-given K: when read)
            return coupling_top(pieces.Kt, lf)

        en = norm_up(bound.v_error(pieces.q_task))

        def conjugate_dual(conj_h: float, qv: float,
                           solve_error: float) -> tuple[float, float, float]:
            """``(s, D(s), E_D)`` for ``h*(V) ≤ conj_h + solve_error``, ``‖𝒬⁻¹V‖ ≤ qv``."""
            s, dual = _best_scale(pieces.a, pieces.b + conj_h)
            conj_error = s * s * (qv * en + (half_square_over(en, bottom) if bottom > 0 else 0.0)
                                  + solve_error)
            return s, dual, bound.dual(s, pieces.a_task, pieces.q_task, pieces.b,
                                       conj=s * s * conj_h, conj_error=conj_error)

        at_point = None  # done's arguments for the conjugate at X = W
        worth = bottom > 0 and bound.magnitude_bound and values is not None
        if worth:  # where the magnitude bounds of the value and of a solve's backward
            # error dominate the loss's own floor (else it costs more than it gains)
            floor = primal_floor(quadratic=False)
            w_norm = float(np.linalg.norm(W))
            worth = bound.quadratic_value_error() + g_solve * top() * w_norm * w_norm > 4 * floor
        if worth:
            # the conjugate at X = W (r = V − ∇h(W) = −∇F(W)): the computed h(W) enters
            # F and D as one float, its magnitude bound with weight |1 − s²| only
            conj = bound.quadratic_conjugate(pieces.V_loss, W, bottom, pieces.grad_h, penalties)
            value_error = conj.value_err + gamma(len(values)) * sum(abs(v) for v in values)
            s, dual, error = conjugate_dual(conj.c, conj.q, conj.err)
            at_point = dict(dual=dual, dual_error=error + s * s * value_error,
                            paired=error + abs(1.0 - s * s) * value_error)
            at_gap = max(profiled - dual + at_point["paired"], 0.0) + floor
            # the solve's gap is at least its primal floor, which holds the value's bound
            # whole; and it is below this one by at most what this one has and the solve's
            # has not (½‖r‖²/λ_min, ⟨V, W⟩'s rounding, the weight 2(s² − 1) past s = 1)
            # less the solve's backward error (a non-factor K; ‖𝒬⁻¹V‖ ≥ ‖W‖ − r/λ_min)
            q_low = max(w_norm - conj.r / bottom, 0.0)
            extra = s * s * (conj.rr + conj.err) + 2.0 * max(s * s - 1.0, 0.0) * value_error
            if at_gap <= floor + value_error or (
                    not bound.factor_given and extra <= s * s * g_solve * top() * q_low * q_low):
                return done(None, "quadratic conjugate at W (rung 4)", **at_point)
        # every quadratic term a task-side factor or diagonal: split V along the factors,
        # no solve (whose a-posteriori bound holds fl(X̂RRᵀ)'s rounding, not first order
        # where X̂R cancels)
        split = (bound.factor_conjugate(pieces.V_loss, bottom)
                 if bottom > 0 and Uf is None and pieces.Kt.kind == "low-rank" else None)
        solved = None if split is not None else _quadratic_conjugate(
            pieces.Kt, Uf, lf, pieces.V_loss)
        if split is not None:
            conj_h, qv, solve_error = split
        elif solved is not None and bottom > 0 and bound.factor_given:
            # a-posteriori, from the solve's residual
            conj = bound.quadratic_conjugate(pieces.V_loss, solved, bottom)
            conj_h, qv, solve_error = conj.c, conj.q, conj.err + conj.value_err
        elif solved is not None:  # the solve's backward error (first order): no λ_min
            # bound, or h(X)'s own bound is no smaller (the magnitude bound of a non-factor K)
            conj_h, qv = 0.5 * column_dot(pieces.V_loss, solved), norm_up(solved)
            solve_error = g_solve * top() * qv * qv
        if split is not None or solved is not None:
            _, dual, error = conjugate_dual(conj_h, qv, solve_error)
            solved = dict(dual=dual, dual_error=error)
            if at_point is not None and at_gap < max(profiled - dual + error, 0.0) + floor \
                    + value_error:  # the smaller gap of the two
                return done(None, "quadratic conjugate at W (rung 4)", **at_point)
        elif at_point is not None:
            return done(None, "quadratic conjugate at W (rung 4)", **at_point)
        if solved is not None:
            return done(None, "quadratic conjugate (rung 4)", **solved)
        large = problem.n_tasks > _DENSE_TASKS or problem.n_features > _DENSE_TASKS
        if large and mu() > 0:
            # singular 𝒬 too large for the corrected dual below, F μ-strongly convex (the
            # loss pins every task down): F(W) − F* ≤ ‖∇F(W)‖²/(2μ), with the computed
            # gradient's rounding bound added to its norm (V̂'s, and θ̂'s distance from the
            # exact scaled residual through the design)
            V = pieces.V_loss - pieces.grad_h  # −∇F(W)
            apart, f = bound.residual_distance(pieces.q_task)
            g = norm_up(V) + norm_up(bound.augmented_v_error(
                pieces.q_task, V, bound.quadratic_gradient_error())) + norm_up(f * apart)
            return done(half_square_over(g, mu()), "gradient norm + strong convexity (rung 5)")
        # singular 𝒬: the loss's curvature corrects the dual point into range(𝒬)
        corrected = (quadratic_dual(problem, W, pieces.Kt.to_dense(), pieces.Kf)
                     if not large else f"the quadratic terms are singular and too large (T = "
                          f"{problem.n_tasks}, d = {problem.n_features}) for the dense "
                          "curvature-corrected dual; a small Ridge term gives a gap")
        if isinstance(corrected, str):
            return done(None, "none (rung 4)", corrected)
        linear, quad, conj_h, sensitivity, null_residue, qv, mu_null = corrected
        # Rounding leaves null components ν in V (‖ν‖ ≤ null_residue + en): at the
        # minimiser W* nearest W, h*(sV) costs up to s⟨ν, W*⟩ more, at most E(‖W‖ + ‖Δ_ν‖)
        # with E = 2max(s, 1)‖ν‖, Δ_ν the part of W − W* that ν sees: ‖Δ_ν‖ ≤ (2g/m)^{1/2}
        # for the true gap g, with m the strong-convexity modulus μ or, for any F, the
        # modulus μ_ν of what the null components see (see mtlcvx._quadratic_dual). So g ≤
        # G + E‖W‖ + E(2g/m)^{1/2} (G the rest of the gap), √g ≤ u = (a + (a² + 4(G +
        # E‖W‖))^{1/2})/2, a = E(2/m)^{1/2}. ‖W‖ alone (no m) held only near the optimum:
        # at W = 0 of an interpolating problem (F* = 0) the corrected θ is rounding noise,
        # scaled up into a dual value above F* (5e-4 at s ~ 1e15, 2e-15 at s ≤ 2)
        m = max(mu(), mu_null)
        if not m > 0:
            return done(None, "none (rung 4)",
                        "the quadratic terms are singular and no positive curvature of the "
                        "loss on their null space is proven (the rounding of the dual point "
                        "there is unbounded); a small Ridge term gives a gap")
        s, dual = _best_scale(linear, quad + conj_h)
        en = bound.frobenius_v_error(quad)
        conj_error = s * s * (qv * en + g_solve * sensitivity)
        E = 2.0 * max(s, 1.0) * (null_residue + en)
        null_term = E * norm_up(W)
        if E > 0 and np.isfinite(m):
            rest = profiled - dual + bound.dual_corrected(
                s, linear, quad, quad + conj_h, conj_error + null_term) + primal_floor()
            a = E * np.sqrt(2.0 / m)
            null_term += a * (a + np.sqrt(a * a + 4.0 * max(rest, 0.0))) / 2.0
        return done(None, "curvature-corrected quadratic conjugate (rung 4)", dual=dual,
                    dual_error=bound.dual_corrected(s, linear, quad, quad + conj_h,
                                                    conj_error + null_term))

    # the quadratic terms join θ as blocks U of the dual point: V = Xᵀθ − Σ√α·USᵀ (−∇(f +
    # h)(W) at U = √α·WS), their ½‖U‖² enter with weight 1; a factor-given term's U is the
    # computed fl(WR) itself, so V's rounding is first order in it (see quadratic_blocks)
    def augmented(blk: QuadraticBlocks) -> tuple[np.ndarray, float, np.ndarray]:
        """``(V, b, e)`` with the blocks ``blk``: ``V``, the quadratic coefficient and the
        entrywise bound on ``V``'s rounding."""
        V = pieces.V_loss - blk.gradient
        return (V, pieces.b + blk.value,
                bound.augmented_v_error(pieces.q_task, V, blk.gradient_error))

    blocks = bound.quadratic_blocks()
    V, b, e = augmented(blocks)
    aug = (" + quadratic blocks (rung 3)" if not pieces.Kt.is_zero or pieces.Kf is not None
           else "")
    w_norm = norm_up(W)

    def dual_error(s: float, conj: float = 0.0, conj_error: float = 0.0,
                   delta: float = 0.0) -> float:
        return bound.dual(s, pieces.a_task, pieces.q_task, b, conj=conj, delta=delta,
                          conj_error=conj_error, blocks=blocks.value_error)

    def ball_error(s: np.ndarray | float, B: np.ndarray | float,
                   shrink: Callable[[np.ndarray], np.ndarray | float],
                   e: np.ndarray = e, blk: QuadraticBlocks = blocks) -> float:
        """``E_D`` of a dual point scaled into a norm's ball: the scale shrunk by
        ``shrink(e)`` (V's rounding), or, cheaper where V's rounding is large against the
        ball, the point moved so the computed V is exact for tasks of full column rank."""
        def total(E: np.ndarray) -> float:
            return bound.dual(s, pieces.a_task, pieces.q_task, B, delta=shrink(E) + g_solve,
                              blocks=blk.value_error)

        err = total(e)
        # the shrink is not what dominates (nothing to shrink: V is exact on the Gram route)
        if not e.any() or err <= 2.0 * total(np.zeros_like(e)):
            return err
        cost, moved = bound.shift(pieces.q_task, s)  # (a least-squares solve, once per data)
        if moved.any():
            err = min(err, total(e - bound.v_error(pieces.q_task) * moved) + float(cost.sum()))
        return err

    if norm_part is not None and not conj:
        if norm_part.separable_tasks() and pieces.Kt.is_diagonal:
            # Separable across tasks (task side diagonal): one scale per task.
            pen = norm_part.single
            s_max = [_column_scale(pen, V[:, [t]]) for t in range(T)]
            best = np.array([_best_scale(at, bt, st) for at, bt, st in
                             zip(pieces.a_task, pieces.b_task, s_max, strict=True)])
            s = best[:, 0]
            # b_task's quadratic part is ½Σ(WK)∘W from the merged coupling, whose entries'
            # underflow the blocks' bound (the terms' own values) does not hold
            merged = blocks._replace(value_error=blocks.value_error + 0.5 * (
                bound.coupling_error() * w_norm * w_norm))
            return done(None, "dual-norm scaling per task (rung 1)" + aug,
                        dual=float(best[:, 1].sum()),
                        dual_error=ball_error(s, pieces.b_task, lambda E: s * np.array(
                            [pen.dual_norm(E[:, [t]]) for t in range(T)]) / pen.alpha,
                            blk=merged))
        def scale(V: np.ndarray, b: float) -> float:
            return norm_part.scale(V, W, enough=_best_scale(pieces.a, b)[0])

        def scaled(s_max: float, b: float, e: np.ndarray,
                   blk: QuadraticBlocks) -> tuple[float, float]:
            """``(D, E_D)``: the dual point with blocks ``blk`` scaled into the ball."""
            s, dual = _best_scale(pieces.a, b, s_max)
            return dual, ball_error(s, b, lambda E: s * norm_part.gauge(E), e, blk)

        s_max = scale(V, b)
        if s_max == 0 and pieces.a > 0:
            labels = " + ".join(p.label for p in norm_part.terms)
            return rung5(f"{labels}: only the trivial dual point (s = 0) lies in the dual "
                         "ball (a seminorm that vanishes on some W, such as FusedL1 alone, "
                         "needs L1 beside it for a gap)")
        dual, error = scaled(s_max, b, e, blocks)
        # (not where the gap is at its rounding level already: nothing left to gain)
        aligned = _aligned_blocks(bound, V, norm_part) if profiled - dual > error else None
        if aligned is not None:  # every dual point is a lower bound: keep the better one
            V2, b2, e2 = augmented(aligned)
            s2 = scale(V2, b2)
            other, other_error = scaled(s2, b2, e2, aligned) if s2 > 0 else (-np.inf, 0.0)
            if other - other_error > dual - error:
                dual, error = other, other_error
        return done(None, "dual-norm scaling (rung 1)" + aug, dual=dual, dual_error=error)
    if norm_part is None and len(conj) == 1:
        phi = conj[0]
        if phi.structure == "squared_norm" and phi.provides("dual_norm") and phi.alpha > 0:
            # rung 2: g*(sV) = s²Ω°(V)²/(2α), D(s) = a s − s²(b + Ω°(V)²/(2α))
            dn, de = phi.dual_norm(V), phi.dual_norm(e)
            s, dual = _best_scale(pieces.a, b + dn * dn / (2.0 * phi.alpha))
            scale = s * s / (2.0 * phi.alpha)
            # (and Ω°(V)²'s underflow over 2α, the division's: η/2 each, counted twice)
            conj_error = scale * (de * (2.0 * dn + de) + 2.0 * g_solve * dn * dn) \
                + ((scale + s * s) * _ETA if dn else 0.0)
            return done(None, "squared-norm conjugate (rung 2)" + aug, dual=dual,
                        dual_error=dual_error(s, scale * dn * dn, conj_error))
        s, dual = _conjugate_dual(phi, pieces.a, b, V)
        conj_h = pieces.a * s - b * s * s - dual
        # first order: the conjugate's gradient at the optimum is W
        conj_error = s * w_norm * norm_up(e) + gamma(d * T + 8) * abs(conj_h)
        return done(None, "Fenchel conjugate (rung 6)" + aug, dual=dual,
                    dual_error=dual_error(s, conj_h, conj_error))
    # rung 7: a norm part and/or several conjugate terms; every split gives a bound
    conj_sum = _split_conjugate(norm_part, conj, V, W)
    dual = pieces.a - b - conj_sum
    # first order, as rung 6, plus a projection onto the ball off by γ‖V‖
    conj_error = (w_norm * (norm_up(e) + g_solve * norm_up(V))
                  + gamma(d * T + 8) * abs(conj_sum))
    return done(None, "conjugate split (rung 7)" + aug, dual=dual,
                dual_error=dual_error(1.0, conj_sum, conj_error))


def _aligned_blocks(bound: Rounding, V: np.ndarray,
                    norm_part: _NormPart) -> QuadraticBlocks | None:
    """Rung 3's blocks of the factor-given terms moved so that ``V`` equals the norm's
    gradient on its support (where it does at the optimum), or None (no factor-given
    term, or a norm without the ``support`` oracle).

    At a rounded optimum ``W*`` the blocks ``fl(W*R)`` are off by ``(W − W*)R``, which
    ``V`` takes times ``αRᵀ`` (up to ``ε·α‖R‖²|W|``, more than the rounding where
    ``α‖R‖²`` is large), and the scale into the ball pays for it. That error lies in the
    rows of ``Sᵀ`` (``S`` the factors ``√α_iR_i`` side by side), so per row ``j`` of
    ``W`` the change ``ΔY_j`` of the blocks ``Y = [√α_iP_i]`` that best matches
    ``V_jt − ∇g(W)_jt`` on the support's tasks, ``S_M ΔY_jᵀ ≈ r_{j,M}``, removes it (the
    minimum-norm least-squares solution, by the normal equations of every row at once).
    Any blocks give a valid dual point; the certificate keeps the better of the two.
    """
    pen = norm_part.single
    products = bound.factor_products()
    if pen is None or not pen.provides("support") or all(P is None for P in products):
        return None
    support = pen.support(bound.W)
    lows = [(p.alpha, p.low_rank()[0]) for p, P in zip(bound.quadratic, products, strict=True)
            if P is not None]
    S = np.hstack([np.sqrt(a) * (R.toarray() if issparse(R) else np.asarray(R))
                   for a, R in lows])
    mask = support.mask.astype(float)
    r = mask * (V - support.gradient)
    # per row: (S_Mᵀ S_M) ΔY_jᵀ = S_Mᵀ r_{j,M}, with the pseudo-inverse where |M| < p
    normal = np.einsum("jt,tp,tq->jpq", mask, S, S)
    dY = np.einsum("jpq,jq->jp", np.linalg.pinv(normal), r @ S)
    moved, start = [], 0
    for (a, R), P in zip(lows, (P for P in products if P is not None), strict=True):
        moved.append(P + dY[:, start:start + R.shape[1]] / np.sqrt(a))
        start += R.shape[1]
    it = iter(moved)
    return bound.quadratic_blocks([None if P is None else next(it) for P in products])


def _conjugate_dual(phi: Penalty, a: float, b: float, V: np.ndarray) -> tuple[float, float]:
    """``max_{s ≥ 0} a·s − b·s² − φ*(sV)``: the dual point scaled by ``s``; returns
    ``(s, D(s))``.

    ``D(s)`` is concave and every ``s`` gives a valid bound. A conjugate of degree 2
    (``phi.conjugate_degree == 2``: ``φ*(sV) = s²φ*(V)``) gives the closed form
    ``D(s) = a·s − (b + φ*(V))·s²``, one evaluation. Otherwise ``φ* ≥ 0`` (φ ≥ 0 with
    ``φ(0) = 0``) bounds the maximiser by ``a/b``; the domain of ``φ*`` along ``V`` (an
    interval from 0, e.g. ``max|sV| ≤ γ`` for SparsePlusLowRank) is found by bisection,
    then ``D`` is maximised by golden section. The best value seen is returned.
    """
    if phi.conjugate_degree == 2:
        c = phi.conjugate(V)
        if np.isfinite(c) and b + c > 0:
            return _best_scale(a, b + c)
    seen: list[tuple[float, float]] = []

    def D(s: float) -> float:
        value = a * s - b * s * s - phi.conjugate(s * V)
        seen.append((value, s))
        return value

    D(0.0), D(1.0)
    hi = a / b if b > 0 else 1.0
    if hi > 0:
        if not np.isfinite(phi.conjugate(hi * V)):
            lo = 0.0
            for _ in range(52):  # to the last bit: the maximum often sits at this edge
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if np.isfinite(phi.conjugate(mid * V)) else (lo, mid)
            hi = lo
        ratio = 0.5 * (np.sqrt(5.0) - 1.0)
        lo = 0.0
        x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        f1, f2 = D(x1), D(x2)
        for _ in range(30):  # an interior maximum is flat: 0.618^30 in s is ~1e-13 in D
            if f1 < f2:
                lo, x1, f1 = x1, x2, f2
                x2 = lo + ratio * (hi - lo)
                f2 = D(x2)
            else:
                hi, x2, f2 = x2, x1, f1
                x1 = hi - ratio * (hi - lo)
                f1 = D(x1)
        D(hi)
    value, s = max(seen)
    return s, value


def _column_scale(pen: Penalty, v: np.ndarray) -> float:
    """``α/Ω°(v)``: the largest scale putting ``v`` in the term's dual ball."""
    dn = pen.dual_norm(v)
    return np.inf if dn == 0 else pen.alpha / dn


def _split_conjugate(norm_part: _NormPart | None, conj: list[Penalty], V: np.ndarray,
                     W: np.ndarray, rounds: int = 200) -> float:
    """An upper bound on ``(g + Σφ_j)*(V)`` from splits ``V = U + Σ R_j``, ``U`` in g's ball.

    The bound ``Σ φ_j*(R_j)`` (``g*(U) = 0``) holds for every split. The search starts at
    ``R_j = ∇φ_j(W)`` where the terms give gradients (tight at the optimum when they are
    differentiable there), then runs ADMM on ``min ι_ball(U) + φ*(R)``, ``U + R = V``
    (one term ``φ`` with a prox), warm-started with the multiplier ``−W``; the best split
    seen is kept.
    """
    grads = [p.gradient(W) if p.provides("gradient") else None for p in conj]
    known = [g for g in grads if g is not None]
    base = V - sum(known) if known else V.copy()
    U = norm_part.project(base) if norm_part is not None else np.zeros_like(V)
    best = np.inf

    def bound(U: np.ndarray) -> float:
        rest = V - U
        # split the rest: gradients where known, the remainder shared equally
        free = rest - sum(known) if known else rest
        share = free / len(conj)
        total = 0.0
        for p, g in zip(conj, grads, strict=True):
            total += p.conjugate(share if g is None else g + share)
        return total

    best = bound(U)
    if norm_part is None or len(conj) != 1 or not conj[0].provides("prox"):
        return best
    phi = conj[0]
    prox_conj = _conjugate_prox(phi)
    rho = float(np.linalg.norm(W)) / max(float(np.linalg.norm(V)), np.finfo(float).tiny)
    rho = rho if np.isfinite(rho) and rho > 0 else 1.0
    R = V - U
    Y = -W  # the optimal multiplier is −W*
    for _ in range(rounds):
        U = norm_part.project(V - R - Y / rho)
        R = prox_conj(V - U - Y / rho, 1.0 / rho)
        Y = Y + rho * (U + R - V)
        best = min(best, phi.conjugate(V - U))
    return best


def _conjugate_prox(phi: Penalty) -> Callable[[np.ndarray, float], np.ndarray]:
    """``prox_{λφ*}(Z) = Z − λ·prox_{φ/λ}(Z/λ)`` (Moreau) from the prox of ``φ``."""

    def prox(Z: np.ndarray, lam: float) -> np.ndarray:
        return Z - lam * phi.prox(Z / lam, 1.0 / lam)

    return prox


def _gradient_mapping(problem: Problem,
                      W: np.ndarray) -> tuple[float | None, np.ndarray | None, bool]:
    """``(‖G_τ(W)‖, W⁺, proven)`` with ``τ = 1/L``, or Nones when there is no exact prox.

    ``L`` is the problem's proven Lipschitz bound (``proven=True``); without one (a smooth
    term that states no constant) ``τ`` is found by backtracking until the
    sufficient-decrease test holds at ``W``, which makes ``G_τ`` a stationarity measure
    (zero iff ``W`` is optimal) but no basis for the strong-convexity gap of rung 5
    (``proven=False``).
    """
    if problem.constraints is not None or not problem.has_prox:
        return None, None, False
    L = problem.lipschitz()
    proven = L is not None
    smooth = problem.smooth_oracle()
    prox = problem.prox_operator()
    value, grad = smooth(W, True)
    L = max(L, np.finfo(float).tiny) if proven else 1.0
    while True:
        W_plus = prox(W - grad / L, 1.0 / L)
        if proven:
            break
        D = W_plus - W
        model = value + float(np.sum(grad * D)) + 0.5 * L * float(np.sum(D * D))
        if smooth(W_plus, False)[0] <= model + 1e-12 * abs(value) or L > 1e300:
            break
        L *= 2.0
    return float(np.linalg.norm(W - W_plus)) * L, W_plus, proven


def _rung5(problem: Problem, grad_mapping: float | None, W_plus: np.ndarray | None,
           proven: bool, profiled: float, mu: float, done: Callable[..., Certificate],
           missing: str) -> Certificate:
    if grad_mapping is None:
        return done(None, "none", f"{missing}; no gradient mapping either (it needs an "
                                  "exact prox of the non-smooth part)")
    if mu > 0 and not any(p.active for p in problem.nonsmooth_penalties()):
        # a smooth problem: G_τ = ∇F whatever τ is, so no Lipschitz bound is needed
        return done(half_square_over(grad_mapping, mu),
                    "gradient norm + strong convexity (rung 5)")
    if mu > 0 and proven:
        gap = profiled - problem.objective(W_plus) + 4.0 * half_square_over(grad_mapping, mu)
        return done(gap, "gradient mapping + strong convexity (rung 5)", evaluations=2)
    why = ("not strongly convex" if mu <= 0 else
           "no proven Lipschitz constant for the smooth part")
    return done(None, "gradient mapping (rung 5)",
                f"{missing}; {why}: only the gradient-mapping norm is a stationarity measure")
