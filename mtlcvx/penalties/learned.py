r"""Learned-coupling terms: a PSD matrix learned jointly with ``W``, minimised out.

The learned-relation models minimise ``ℓ(W) + (α/2) tr(W A(M)⁻¹ Wᵀ)`` jointly over ``W``
and a matrix ``M`` in a convex set; the objective is jointly convex (a matrix-fractional
function of an affine ``A(M)``). Minimising ``M`` out leaves an ordinary convex penalty of
``W`` alone, which is what this module provides:

* the covariance kinds (MTRL's task covariance ``Ω``, ``tr Ω = 1``; MTFL's feature
  covariance ``D``, ``tr D ≤ 1``) reduce to the squared trace norm ``(α/2)‖W‖²_*``
  (:class:`~mtlcvx.SquaredTraceNorm`);
* convex clustered MTL (``A = ηI + M``, ``0 ⪯ M ⪯ I``, ``tr M = k``) reduces to the smooth
  term :class:`LearnedClusters`.

:func:`cluster_eigenvalues` is the closed-form matrix step shared by both sides.
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import numpy as np

from .._linalg import psd_cutoff
from .._optional import cp
from ..exceptions import PenaltyError
from .base import Penalty, Term

__all__ = ["LearnedClusters", "cluster_eigenvalues", "ky_fan"]


def cluster_eigenvalues(sigma: np.ndarray, k: float, eta: float, n: int) -> np.ndarray:
    r"""Eigenvalues ``m`` (n,) of the optimal ``M`` for singular values ``sigma``.

    Solves ``min Σ_i σ_i²/(η + m_i)`` over ``0 ≤ m_i ≤ 1``, ``Σ_i m_i = k`` exactly:
    ``m_i = clip(κσ_i − η, 0, 1)`` with ``κ`` the root of the piecewise-linear equation
    ``Σ_i m_i = k``, found between consecutive breakpoints and interpolated. ``sigma``
    holds the singular values of ``W`` (at most n); missing entries are zeros. When fewer
    than ``k`` singular values are positive they all get ``m_i = 1`` and the rest of the
    trace is spread evenly over the zero directions (where it does not change the value).

    Parameters
    ----------
    sigma : ndarray (r,), r ≤ n
        Non-negative singular values, in any order.
    k : float, 0 ≤ k ≤ n
    eta : float > 0
    n : int
        Size of ``M`` (T on the task side, d on the feature side).

    Returns
    -------
    ndarray (n,)
        ``m`` aligned with ``sigma`` followed by ``n − r`` entries for the zero directions.
    """
    sigma = np.asarray(sigma, dtype=float)
    m = np.zeros(n)
    pos = sigma > psd_cutoff(sigma.max(initial=0.0), n)
    n_pos = int(pos.sum())
    if k <= 0:
        return m
    if n_pos <= k:
        m[: sigma.size][pos] = 1.0
        rest = np.ones(n, bool)
        rest[: sigma.size][pos] = False
        m[rest] = (k - n_pos) / max(n - n_pos, 1)
        return m
    s = sigma[pos]
    knots = np.unique(np.concatenate([eta / s, (1.0 + eta) / s]))
    total = np.clip(knots[:, None] * s[None, :] - eta, 0.0, 1.0).sum(axis=1)
    j = int(np.searchsorted(total, k))  # total[j-1] < k ≤ total[j]; total[0] = 0 < k
    lo, hi = knots[j - 1], knots[j]
    kappa = lo + (hi - lo) * (k - total[j - 1]) / (total[j] - total[j - 1])
    m[: sigma.size][pos] = np.clip(kappa * s - eta, 0.0, 1.0)
    return m


def ky_fan(lam: np.ndarray, k: float) -> float:
    """Sum of the ``k`` largest entries of ``lam`` (``k`` may be fractional).

    ``Σ_{i≤⌊k⌋} λ_i + (k − ⌊k⌋)·λ_{⌊k⌋+1}`` with ``lam`` sorted descending; missing
    entries count as zeros. This is ``max ⟨diag(λ), M⟩`` over ``0 ⪯ M ⪯ I``, ``tr M = k``.
    """
    lam = np.sort(np.asarray(lam, dtype=float))[::-1]
    whole = int(np.floor(k))
    value = float(lam[:whole].sum())
    if whole < lam.size:
        value += (k - whole) * float(lam[whole])
    return value


class LearnedClusters(Penalty):
    r"""Convex clustered MTL with the cluster matrix minimised out.

    .. math::

        \varphi(W) = \min_{0 \preceq M \preceq I,\ \operatorname{tr} M = k}
        \frac{\alpha}{2}\operatorname{tr}\big(W (\eta I + M)^{-1} W^\top\big)
        \quad\text{(side="task", M is T×T)}

    or ``(α/2) tr(Wᵀ (ηI + M)⁻¹ W)`` with ``M`` d×d (side="feature", clustered
    alternating structure optimisation). With ``W = U diag(σ) Vᵀ`` the optimal ``M`` shares
    ``W``'s singular vectors and has eigenvalues ``m_i = clip(κσ_i − η, 0, 1)``
    (:func:`cluster_eigenvalues`), so ``φ(W) = (α/2) Σ_i σ_i²/(η + m_i)``.

    ``φ`` is smooth: its gradient ``α W (ηI + M*)⁻¹ = α U diag(σ_i/(η + m_i)) Vᵀ`` is
    ``α/η``-Lipschitz, and ``φ`` is ``α/(1 + η)``-strongly convex. Its conjugate is the
    Ky Fan sum (:func:`ky_fan`)

    .. math::

        \varphi^*(V) = \frac{1}{2\alpha}\Big(\eta \lVert V\rVert_F^2
        + \sum_{i \le k} \lambda_i(V^\top V)\Big).

    MALSAR's ``Least_CMTL(ρ₁, ρ₂, k)`` penalty ``ρ₁η(1+η) tr(W (ηI + M)⁻¹ Wᵀ)`` with
    ``η = ρ₂/ρ₁`` is ``LearnedClusters(alpha=2ρ₁η(1+η), k=k, eta=ρ₂/ρ₁)``; for a hard
    clustering ``M = FFᵀ`` it equals ``ρ₁(tr WᵀW − tr FᵀWᵀWF) + ρ₂ tr WᵀW``.

    Parameters
    ----------
    alpha : float ≥ 0
    k : float
        Trace of ``M``, ``0 ≤ k ≤ n`` (n = T or d); the number of clusters, and may be
        fractional.
    eta : float > 0
        Ridge part of ``A(M) = ηI + M``.
    side : {"task", "feature"}, default "task"

    Notes
    -----
    The CVXPY form is the jointly convex matrix-fractional program
    ``(α/2) matrix_frac(Wᵀ, ηI + M)`` with ``M`` a variable under ``0 ⪯ M ⪯ I``,
    ``tr M = k``, written in ``Z = ηI + M``: the PSD cone (SCS or Clarabel), with a PSD
    block of size ``n + d`` or ``n + T``, so it is for small problems.
    """

    structure: ClassVar[str] = "smooth"
    cones: ClassVar[frozenset[str]] = frozenset({"psd"})
    conjugate_degree: ClassVar[int] = 2
    _params = ("alpha", "k", "eta", "side")

    def __init__(self, alpha: float = 1.0, k: float = 1.0, eta: float = 1.0,
                 side: str = "task"):
        self.alpha = alpha
        self.k = k
        self.eta = eta
        self.side = side

    def _validate(self, name: str, value: Any) -> Any:
        if name in ("k", "eta"):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise PenaltyError(f"{name} must be a real number, got {value!r}")
            value = float(value)
            if not np.isfinite(value) or value < 0 or (name == "eta" and value == 0):
                need = "> 0" if name == "eta" else "≥ 0 (the number of clusters)"
                raise PenaltyError(f"{name} must be finite and {need}, got {value}")
            return value
        if name == "side":
            if value not in ("task", "feature"):
                raise PenaltyError(f"side must be 'task' or 'feature', got {value!r}")
            return value
        return super()._validate(name, value)

    def size(self, n_features: int, n_tasks: int) -> int:
        """Size ``n`` of ``M``: T on the task side, d on the feature side."""
        return n_tasks if self.side == "task" else n_features

    def check_shape(self, n_features: int, n_tasks: int) -> None:
        n = self.size(n_features, n_tasks)
        if self.k > n:
            what = "tasks" if self.side == "task" else "features"
            raise PenaltyError(f"LearnedClusters: k={self.k:g} exceeds the {n} {what}; "
                               f"k must be at most {n} (the trace of M, {n}×{n}, 0 ⪯ M ⪯ I)")

    # ----------------------------------------------------------------- numpy oracles
    def _spectrum(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Thin SVD ``U, σ, Vᵀ`` of ``W`` and the optimal eigenvalues ``m`` (n,)."""
        U, s, Vt = np.linalg.svd(W, full_matrices=False)
        n = self.size(*W.shape)
        return U, s, Vt, cluster_eigenvalues(s, self.k, self.eta, n)

    def value(self, W: np.ndarray) -> float:
        if self.alpha == 0:
            return 0.0
        _, s, _, m = self._spectrum(W)
        return 0.5 * self.alpha * float(np.sum(s * s / (self.eta + m[: s.size])))

    def gradient(self, W: np.ndarray) -> np.ndarray:
        """``α W (ηI + M*)⁻¹`` (task side) or ``α (ηI + M*)⁻¹ W`` (feature side)."""
        if self.alpha == 0:
            return np.zeros_like(W)
        U, s, Vt, m = self._spectrum(W)
        return self.alpha * (U * (s / (self.eta + m[: s.size]))) @ Vt

    def lipschitz(self, n_features: int, n_tasks: int) -> float:
        """Lipschitz constant ``α/η`` of the gradient (independent of the problem size)."""
        return self.alpha / self.eta

    def strong_convexity(self, n_features: int, n_tasks: int) -> float:
        """Strong-convexity modulus ``α/(1 + η)``."""
        return self.alpha / (1.0 + self.eta)

    def conjugate(self, V: np.ndarray) -> float:
        """``(η‖V‖²_F + Σ_{i≤k} λ_i(VᵀV))/(2α)``; ``inf`` for ``α = 0`` unless ``V = 0``."""
        if self.alpha == 0:
            return 0.0 if not np.any(V) else np.inf
        s = np.linalg.svd(V, compute_uv=False)
        lam = s * s
        return (self.eta * float(lam.sum()) + ky_fan(lam, self.k)) / (2.0 * self.alpha)

    # ----------------------------------------------------------------- cvxpy
    def cvxpy_parameters(self, n_features: int, n_tasks: int) -> dict[str, Any]:
        return {"alpha": self.alpha, "k": self.k, "eta": self.eta}

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Term:
        """``(α/2) matrix_frac(Wᵀ, Z)`` over ``Z = ηI + M``: ``ηI ⪯ Z ⪯ (1 + η)I``,
        ``tr Z = nη + k`` (``Z`` is the variable so that the form stays DPP in α, η, k)."""
        d, T = W.shape
        n = self.size(d, T)
        Z = cp.Variable((n, n), symmetric=True, name="cluster_coupling")
        eye = np.eye(n)
        X = W.T if self.side == "task" else W
        eta, k = params["eta"], params["k"]
        return Term(params["alpha"] / 2.0 * cp.matrix_frac(X, Z),
                    (Z - eta * eye >> 0, (1 + eta) * eye - Z >> 0,
                     cp.trace(Z) == n * eta + k))
