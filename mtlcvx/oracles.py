r"""NumPy oracles of a :class:`~mtlcvx.Problem`: what first-order methods and certificates ask.

Split ``F = f + h + g``: ``f`` the loss, ``h`` the smooth penalties (the quadratic
ones summed into a task-side ``K_t`` and a feature-side ``K_f``), ``g`` the rest,
handled through its proximal operator. Everything here reads the problem's current
data, weights and penalty values; the functions returning closures resolve them once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from .penalties.base import Penalty
from .penalties.quadratic import QuadraticPenalty

if TYPE_CHECKING:
    from .problem import Problem

__all__ = ["quadratic_coupling", "smooth_oracle", "prox_plan", "prox_operator", "lipschitz",
           "strong_convexity", "lambda_min"]


def lambda_min(lam: np.ndarray) -> np.ndarray:
    """Smallest of ascending eigenvalues ``lam`` (..., n) of PSD matrices, round-off set to 0."""
    low = lam[..., 0]
    return np.where(low > lam.shape[-1] * 1e-14 * np.maximum(1.0, lam[..., -1]), low, 0.0)


def quadratic_coupling(problem: Problem) -> tuple[np.ndarray, np.ndarray | None]:
    """Task-side ``Σ α K`` (T, T) and feature-side ``Σ α D`` (d, d, or None).

    Sums over the quadratic penalties, so their part of the objective is
    ``½ tr(W K_t Wᵀ) + ½ tr(Wᵀ K_f W)`` and its gradient ``W K_t + K_f W``.
    """
    d, T = problem.n_features, problem.n_tasks
    Kt = np.zeros((T, T))
    Kf = None
    for p in problem.penalties:
        if isinstance(p, QuadraticPenalty):
            M = p._cached_matrix(d, T)
            M = p.alpha * (M.toarray() if sp.issparse(M) else M)
            if p.side == "task":
                Kt += M
            else:
                Kf = M if Kf is None else Kf + M
    return Kt, Kf


def smooth_oracle(problem: Problem) -> Callable[[np.ndarray, bool],
                                                tuple[float, np.ndarray | None]]:
    """A snapshot of the smooth part ``f + h`` for iterative methods.

    Returns ``oracle(W, need_gradient) -> (value, gradient or None)`` with the data,
    weights and quadratic coupling resolved once (penalty values are read now, so make
    a new oracle after changing them). The loss is evaluated on the compressed data
    (exact: the dropped constant is added back), intercepts profiled out when the
    problem fits them.
    """
    loss = problem.loss.oracle(problem.data, problem.fit_intercept)
    Kt, Kf = quadratic_coupling(problem)
    has_task = bool(np.any(Kt))
    others = [p for p in problem.smooth_penalties() if not isinstance(p, QuadraticPenalty)]

    def oracle(W: np.ndarray, need_gradient: bool = True) -> tuple[float, np.ndarray | None]:
        value, grad = loss(W, need_gradient)
        quad = W @ Kt if has_task else None
        if Kf is not None:
            quad = Kf @ W if quad is None else quad + Kf @ W
        if quad is not None:
            value += 0.5 * float(np.sum(quad * W))
        value += sum(p.value(W) for p in others)
        if not need_gradient:
            return value, None
        if quad is not None:
            grad += quad
        for p in others:
            grad += p.gradient(W)
        return value, grad

    return oracle


def prox_plan(problem: Problem) -> list[Penalty] | str:
    """The terms whose proxes, applied in order, give the exact prox of ``g``.

    A string saying why there is none otherwise.
    """
    from .penalties.sparse import L1, L21

    terms = [p for p in problem.nonsmooth_penalties() if p.alpha > 0]
    missing = [type(p).__name__ for p in terms if not p.has_prox]
    if missing:
        return f"{', '.join(missing)} has no proximal operator (give Custom a prox=...)"
    kinds = {type(p) for p in terms}
    if len(kinds) > 1 and kinds != {L1, L21}:
        return (f"the sum {' + '.join(sorted(k.__name__ for k in kinds))} has no exact "
                "proximal operator in mtlcvx")
    merged: list[Penalty] = []
    for kind in sorted(kinds, key=lambda k: k is L21):  # L1 before L21
        same = [p for p in terms if type(p) is kind]
        if len(same) == 1:
            merged.append(same[0])
        elif kind._params == ("alpha",):  # α₁‖·‖ + α₂‖·‖ = (α₁ + α₂)‖·‖
            merged.append(kind(alpha=sum(p.alpha for p in same)))
        else:
            return f"several {kind.__name__} terms have no exact joint proximal operator"
    return merged


def prox_operator(problem: Problem) -> Callable[[np.ndarray, float], np.ndarray]:
    """``prox(V, step)`` of the non-smooth part ``g``, its plan resolved once.

    Raises NotImplementedError naming the terms when there is no exact prox.
    """
    plan = prox_plan(problem)
    if isinstance(plan, str):
        raise NotImplementedError(plan)

    def prox(V: np.ndarray, step: float) -> np.ndarray:
        for pen in plan:
            V = pen.prox(V, step)
        return V

    return prox


def _spectra(problem: Problem) -> tuple[float, float, float, float]:
    """``(max_t c_t λ_max, min_t c_t λ_min)`` of the task Hessian blocks ``c_t A_tᵀA_t``
    and ``(λ_max, λ_min)`` of the coupling ``K_t ⊕ K_f``; cached on their inputs."""
    Apad, _ = problem.data.compressed(problem.fit_intercept).padded
    c = problem.loss_weights()
    Kt, Kf = quadratic_coupling(problem)
    key = (problem.fit_intercept, c.tobytes(), hash(Kt.tobytes()),
           None if Kf is None else hash(Kf.tobytes()))
    cache = problem.__dict__.get("_spectra_cache")
    if cache is None or cache[0] != key:
        lam = np.linalg.eigvalsh(np.matmul(Apad.transpose(0, 2, 1), Apad))
        top = float((c * lam[:, -1]).max())
        low = float((c * lambda_min(lam)).min())
        lt = np.linalg.eigvalsh(Kt)
        lf = np.zeros(1) if Kf is None else np.linalg.eigvalsh(Kf)
        cache = (key, (top, low, max(lt[-1], 0.0) + max(lf[-1], 0.0),
                       float(lambda_min(lt) + lambda_min(lf))))
        problem.__dict__["_spectra_cache"] = cache
    return cache[1]


def lipschitz(problem: Problem) -> float | None:
    """Upper bound on the Lipschitz constant of ∇(f + h).

    ``max_t c_t λ_max(A_tᵀA_t) + λ_max(K_t) + λ_max(K_f)``; None when a smooth term
    states no constant (first-order methods then backtrack).
    """
    if any(not isinstance(p, QuadraticPenalty) for p in problem.smooth_penalties()):
        return None
    top, _, coupling_top, _ = _spectra(problem)
    return top + coupling_top


def strong_convexity(problem: Problem) -> float:
    """Lower bound ``μ ≥ 0`` on the strong-convexity modulus of ``f + h``.

    ``min_t c_t λ_min(X̃_tᵀX̃_t) + λ_min(K_t) + λ_min(K_f)`` (exact for a shared design
    with equal weights); 0 when nothing guarantees strong convexity.
    """
    _, low, _, coupling_low = _spectra(problem)
    return max(low + coupling_low, 0.0)
