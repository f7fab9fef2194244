r"""Solver-independent optimality certificates (MATH §6.2, the certificate ladder).

Split ``F = f + h + g``: ``f`` the loss (intercepts profiled out by centring each task),
``h = ½ tr(W K_t Wᵀ) + ½ tr(Wᵀ K_f W)`` the quadratic penalties, ``g`` the rest. For any
dual point ``θ = (θ_t ∈ R^{n_t})`` weak duality gives

.. math::

    F^\star \ge D(\theta) = \sum_t \Big(\theta_t^\top y_t
    - \frac{\lVert\theta_t\rVert^2}{2 c_t}\Big)
    - (h + g)^*(V), \qquad V = [X_1^\top\theta_1, \dots, X_T^\top\theta_T],

and ``θ_t = s·c_t (y_t − X_t w_t)`` is the dual point built from ``W`` (the scale ``s`` is
chosen to make ``D`` as large as possible). ``cert.gap = F(W) − D(θ) ≥ F(W) − F*`` is
then a bound that trusts no solver. Everything is computed in float64 on the original
(uncompressed) data. The rungs, first that applies:

1. ``g`` a norm (or a sum of norms with an exact prox), ``h = 0``: scale θ into the dual ball.
2. ``g`` one squared norm ``(α/2)Ω²``: ``g*(V) = Ω°(V)²/(2α)``.
3. ``h ≠ 0`` with ``g`` of rung 1 or 2: the quadratic terms join the dual as extra data
   blocks, ``V = −∇(f + h)(W)``.
4. ``g = 0``: ``h*(V) = ½⟨V, Q⁻¹V⟩`` when ``Q = K_t ⊕ K_f ≻ 0``, else the
   strong-convexity bound ``‖∇F‖²/(2μ)``, else no gap.
5. Anything else with a prox: the gradient mapping ``G_τ``; with ``μ > 0``
   ``F(W) − F* ≤ F(W) − F(W⁺) + 2‖G_τ‖²/μ``, else only ``‖G_τ‖``.
7. A norm plus one squared norm ``φ``: ``(g + φ)*(V) ≤ g*(U) + φ*(V − U)`` with ``U``
   the projection of ``V − ∇φ(W)`` onto the dual ball of ``g``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .penalties.base import Penalty
from .penalties.quadratic import QuadraticPenalty
from .penalties.sparse import L1, L21, SquaredL21
from .penalties.spectral import SquaredTraceNorm, TraceNorm

if TYPE_CHECKING:
    from .problem import Problem

__all__ = ["Certificate", "certify"]

_NORMS = (L1, L21, TraceNorm)
_SQUARED = {SquaredTraceNorm: TraceNorm, SquaredL21: L21}  # squared norm -> its norm


@dataclass(frozen=True)
class Certificate:
    """How far a point is from the optimum, with bounds that trust no solver.

    Attributes
    ----------
    objective : float
        ``F(W)`` recomputed in NumPy on the original data.
    gap : float or None
        Guaranteed upper bound on ``F(W) − F*`` (None when no rung gives one; see
        ``reason``).
    relative_gap : float or None
        ``gap / max(1, |F(W)|)``.
    grad_mapping : float or None
        Norm of the gradient mapping ``‖G_τ(W)‖_F`` with ``τ = 1/L`` (``‖∇F(W)‖`` for a
        smooth problem); zero iff ``W`` is optimal.
    distance_bound : float or None
        Bound on ``‖W − W*‖_F``, ``√(2·gap/μ)``, when a strong-convexity modulus ``μ > 0``
        is known.
    method : str
        The rung of MATH §6.2 that produced the gap.
    reason : str or None
        Why there is no gap, when there is none.
    dual_objective : float or None
        ``D(θ)``, the certified lower bound on ``F*`` (rungs 1–4 and 7).
    """

    objective: float
    gap: float | None
    relative_gap: float | None
    grad_mapping: float | None
    distance_bound: float | None
    method: str
    reason: str | None = None
    dual_objective: float | None = None

    def __str__(self) -> str:
        if self.gap is None:
            gm = "n/a" if self.grad_mapping is None else f"{self.grad_mapping:.3e}"
            return f"no gap ({self.reason}); gradient mapping {gm} [{self.method}]"
        return f"gap {self.gap:.3e} (relative {self.relative_gap:.3e}) [{self.method}]"


def _dual_norm(kind: type[Penalty], V: np.ndarray) -> float:
    return kind.dual_norm(V)  # type: ignore[attr-defined]


def _norm_prox(norms: list[Penalty], Z: np.ndarray) -> np.ndarray:
    """Exact ``prox_g(Z, 1)`` of the norm part ``g = Σ α_i Ω_i``.

    Strengths of one kind add up; L1 + L21 compose (soft-threshold, then the row shrink).
    """
    for kind in sorted({type(p) for p in norms}, key=lambda k: k is L21):
        Z = kind(alpha=sum(p.alpha for p in norms if type(p) is kind)).prox(Z, 1.0)
    return Z


def _norm_prox_exact(norms: list[Penalty]) -> bool:
    kinds = {type(p) for p in norms}
    return len(kinds) <= 1 or kinds == {L1, L21}


def _max_feasible_scale(norms: list[Penalty], V: np.ndarray) -> float:
    """Largest ``s`` with ``sV`` in the dual ball of the norm part ``g``."""
    kinds = {type(p) for p in norms}
    if len(kinds) == 1:
        dn = _dual_norm(kinds.pop(), V)
        return np.inf if dn == 0 else sum(p.alpha for p in norms) / dn

    # A sum of norms with an exact prox: sV is in the dual ball iff prox_g(sV) = 0 (Moreau).
    def inside(s: float) -> bool:
        return not np.any(_norm_prox(norms, s * V))

    lo, hi = 0.0, 1.0
    while inside(hi):
        lo, hi = hi, 2.0 * hi
        if hi > 1e12:
            return np.inf
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if inside(mid) else (lo, mid)
    return lo


def _squared_norm_gradient(pen: Penalty, W: np.ndarray) -> np.ndarray:
    """A (sub)gradient of ``(α/2)Ω(W)²``: ``α Ω(W) ∂Ω(W)``."""
    if isinstance(pen, SquaredTraceNorm):
        U, s, Vt = np.linalg.svd(W, full_matrices=False)
        keep = s > s.max(initial=0.0) * 1e-12
        return pen.alpha * s.sum() * (U[:, keep] @ Vt[keep])
    norms = np.linalg.norm(W, axis=1)
    direction = W / np.where(norms > 0, norms, 1.0)[:, None]
    return pen.alpha * norms.sum() * direction


def _quadratic_conjugate(Kt: np.ndarray, Kf: np.ndarray | None, V: np.ndarray) -> float | None:
    """``½⟨V, Q⁻¹V⟩`` for ``Q(W) = W K_t + K_f W`` when Q is positive definite, else None."""
    lt, Ut = np.linalg.eigh(Kt)
    if Kf is None:
        lf, Uf = np.zeros(V.shape[0]), None
    else:
        lf, Uf = np.linalg.eigh(Kf)
    denom = lf[:, None] + lt[None, :]
    scale = max(1.0, float(np.abs(denom).max()))
    if denom.min() <= max(denom.shape) * 1e-13 * scale:
        return None
    Vr = (V if Uf is None else Uf.T @ V) @ Ut
    return 0.5 * float(np.sum(Vr * Vr / denom))


class _Pieces:
    """Primal/dual quantities at ``W`` on the original data."""

    def __init__(self, problem: Problem, W: np.ndarray):
        a, b, V = problem.loss.dual(problem.data, W, problem.fit_intercept)
        Kt, Kf = problem.quadratic_coupling()
        self.Kt, self.Kf = Kt, Kf
        self.a_task = a  # per-task linear coefficients of D(s)
        self.a = float(a.sum())
        self.b = float(b.sum())  # quadratic coefficient (loss part)
        self.V_loss = V  # −∇f(W)
        h_task = 0.5 * np.sum((W @ Kt) * W, axis=0) + (
            0.0 if Kf is None else 0.5 * np.sum((Kf @ W) * W, axis=0))
        self.b_task = b + h_task  # per-task quadratic coefficients, quadratic blocks included
        self.h_value = float(h_task.sum())
        self.grad_h = W @ Kt + (0.0 if Kf is None else Kf @ W)


def _best_scale(a: float, b: float, s_max: float = np.inf) -> tuple[float, float]:
    """Maximise ``D(s) = a·s − b·s²`` over ``0 ≤ s ≤ s_max``; return (s, D)."""
    if b <= 0:
        s = s_max if np.isfinite(s_max) and a > 0 else 0.0
        return s, a * s
    s = min(max(a / (2.0 * b), 0.0), s_max)
    return s, a * s - b * s * s


def certify(problem: Problem, W: np.ndarray, intercept: np.ndarray | None = None) -> Certificate:
    """Certify how close ``W`` is to the optimum of ``problem``.

    Parameters
    ----------
    problem : Problem
    W : array_like (d, T)
        Any coefficient matrix, for example from your own gradient method.
    intercept : array_like (T,), optional
        For a problem with intercepts; None profiles them out (uses the best ``b`` for
        this ``W``). A given intercept adds its excess ``F(W, b) − F(W, b*(W))`` to the gap.

    Returns
    -------
    Certificate
        ``gap`` is a guaranteed upper bound on ``F(W) − F*`` (or None with ``reason``).
    """
    W = problem.check_W(W)
    objective = problem.objective(W, intercept)
    profiled = problem.objective(W) if intercept is not None else objective
    excess = objective - profiled
    mu = problem.strong_convexity()
    grad_mapping, W_plus = _gradient_mapping(problem, W)

    def done(gap: float | None, method: str, reason: str | None = None,
             dual: float | None = None) -> Certificate:
        if gap is not None:
            gap = max(gap, 0.0) + excess
            rel = gap / max(1.0, abs(objective))
            dist = float(np.sqrt(2.0 * gap / mu)) if mu > 0 else None
        else:
            rel = dist = None
        return Certificate(objective, gap, rel, grad_mapping, dist, method, reason, dual)

    if problem.constraints is not None:
        return done(None, "none", "constrained problem")
    nonsmooth = [p for p in problem.nonsmooth_penalties() if p.alpha > 0]
    others = [p for p in problem.smooth_penalties() if not isinstance(p, QuadraticPenalty)]
    norms = [p for p in nonsmooth if isinstance(p, _NORMS)]
    squared = [p for p in nonsmooth if type(p) in _SQUARED]
    others += [p for p in nonsmooth if p not in norms and p not in squared]
    if others or len(squared) > 1 or not _norm_prox_exact(norms):
        return _rung5(problem, grad_mapping, W_plus, profiled, mu, done, others)

    pieces = _Pieces(problem, W)
    has_h = bool(np.any(pieces.Kt)) or pieces.Kf is not None
    if not norms and not squared:  # rung 4: quadratic problem
        conj = _quadratic_conjugate(pieces.Kt, pieces.Kf, pieces.V_loss)
        if conj is not None:
            _, dual = _best_scale(pieces.a, pieces.b + conj)
            return done(profiled - dual, "quadratic conjugate (rung 4)", dual=dual)
        if mu > 0:
            grad = -pieces.V_loss + pieces.grad_h
            return done(float(np.sum(grad * grad)) / (2.0 * mu), "strong convexity (rung 4)")
        return done(None, "gradient norm (rung 4)", "not strictly convex")

    V = pieces.V_loss - pieces.grad_h  # = −∇(f + h)(W)
    b = pieces.b + pieces.h_value  # the augmented blocks enter with weight 1
    aug = " + quadratic blocks (rung 3)" if has_h else ""
    if norms and not squared:
        if all(isinstance(p, L1) for p in norms) and not np.any(pieces.Kt - np.diag(
                np.diag(pieces.Kt))):
            # Separable across tasks (L1, task side diagonal): one scale per task.
            alpha = sum(p.alpha for p in norms)
            col_max = np.abs(V).max(axis=0)
            s_max = np.where(col_max > 0, alpha / np.where(col_max > 0, col_max, 1.0), np.inf)
            dual = sum(_best_scale(at, bt, st)[1]
                       for at, bt, st in zip(pieces.a_task, pieces.b_task, s_max, strict=True))
            return done(profiled - dual, "dual-norm scaling per task (rung 1)" + aug,
                        dual=dual)
        s_max = _max_feasible_scale(norms, V)
        _, dual = _best_scale(pieces.a, b, s_max)
        return done(profiled - dual, "dual-norm scaling (rung 1)" + aug, dual=dual)
    phi = squared[0]
    dual_norm_kind = _SQUARED[type(phi)]
    if not norms:  # rung 2: g* = Ω°(V)²/(2α), D(s) = a s − s²(b + Ω°(V)²/(2α))
        conj = _dual_norm(dual_norm_kind, V) ** 2 / (2.0 * phi.alpha)
        _, dual = _best_scale(pieces.a, b + conj)
        return done(profiled - dual, "squared-norm conjugate (rung 2)" + aug,
                    dual=dual)
    # rung 7: a norm g plus the squared norm φ; U in g's dual ball, φ*(V − U)
    conj = _split_conjugate(norms, phi, dual_norm_kind, V, W)
    dual = pieces.a - b - conj
    return done(profiled - dual, "conjugate split (rung 7)" + aug, dual=dual)


def _split_conjugate(norms, phi, dual_norm_kind, V, W, rounds: int = 200) -> float:
    """``min_U φ*(V − U)`` over ``U`` in the dual ball of the norm part (approximately).

    Starts from ``U = Π(V − ∇φ(W))`` (tight at the optimum when φ is differentiable there)
    and alternates projections between the dual ball and ``{U: Ω°(V − U) ≤ α Ω(W)}``
    (the set the optimal split lies in); every ``U`` in the ball gives a valid bound, so
    the best one is kept.
    """
    radius = phi.alpha * (phi.value(W) * 2.0 / phi.alpha) ** 0.5 if phi.alpha > 0 else 0.0
    Z = V - _squared_norm_gradient(phi, W)
    best = np.inf
    for _ in range(rounds):
        U = Z - _norm_prox(norms, Z)  # Moreau: projection onto the dual ball of g
        R = V - U
        best = min(best, _dual_norm(dual_norm_kind, R) ** 2 / (2.0 * phi.alpha))
        # project R onto the dual-norm ball of radius α Ω(W) (Moreau with the norm's prox)
        R_clipped = R - dual_norm_kind(alpha=radius).prox(R, 1.0)
        Z = V - R_clipped
    return best


def _gradient_mapping(problem: Problem,
                      W: np.ndarray) -> tuple[float | None, np.ndarray | None]:
    """``(‖G_τ(W)‖, W⁺)`` with ``τ = 1/L``, or Nones when unavailable."""
    if problem.constraints is not None or not problem.has_prox:
        return None, None
    L = problem.lipschitz()
    if L is None:
        return None, None
    tau = 1.0 / max(L, np.finfo(float).tiny)
    _, grad = problem.smooth_value_and_gradient(W)
    W_plus = problem.prox(W - tau * grad, tau)
    return float(np.linalg.norm(W - W_plus)) / tau, W_plus


def _rung5(problem, grad_mapping, W_plus, profiled, mu, done, others) -> Certificate:
    names = ", ".join(sorted({type(p).__name__ for p in others})) or "this sum of terms"
    if grad_mapping is None:
        return done(None, "none", f"{names}: no exact prox or Lipschitz constant, so no "
                                  "gradient mapping")
    if mu > 0:
        gap = profiled - problem.objective(W_plus) + 2.0 * grad_mapping ** 2 / mu
        return done(gap, "gradient mapping + strong convexity (rung 5)")
    return done(None, "gradient mapping (rung 5)",
                "not strongly convex: only the gradient-mapping norm is a stationarity measure")
