"""Spectral penalties: the trace (nuclear) norm and its square."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._linalg import psd_cutoff, spectral_norm_bound
from .._optional import cp
from . import _prox
from .base import Penalty, Term

__all__ = ["TraceNorm", "SquaredTraceNorm", "squared_norm_shrink"]


def squared_norm_shrink(sigma: np.ndarray, c: float) -> np.ndarray:
    """Prox of ``(c/2)(Σ_i σ_i)²`` on non-negative magnitudes ``sigma``.

    ``s_i = max(σ_i − θ, 0)`` with ``θ = c Σ_{i≤k} σ_i / (1 + c k)``, k the largest
    index (σ sorted descending) with ``σ_k > θ`` (:func:`_squared_norm_threshold`). Also
    the prox of the squared L21 norm when ``sigma`` are row norms.
    """
    return np.maximum(sigma - _squared_norm_threshold(sigma, c), 0.0)


def _squared_norm_threshold(sigma: np.ndarray, c: float) -> float:
    """The ``θ`` of :func:`squared_norm_shrink` (0 when ``c ≤ 0``; ``max σ`` when every
    magnitude goes to 0)."""
    if c <= 0 or sigma.size == 0:
        return 0.0
    order = np.sort(sigma)[::-1]
    theta = c * np.cumsum(order) / (1.0 + c * np.arange(1, order.size + 1))
    active = np.flatnonzero(order > theta)
    return float(theta[active[-1]]) if active.size else float(order[0])


class TraceNorm(Penalty):
    r"""Trace (nuclear) norm :math:`\alpha \lVert W\rVert_* = \alpha \sum_i \sigma_i(W)`.

    Needs the PSD cone: SCS or Clarabel.

    Parameters
    ----------
    alpha : float ≥ 0, default 1.0
    """

    cones: ClassVar[frozenset[str]] = frozenset({"psd"})
    structure: ClassVar[str] = "norm"

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Term:
        return Term(params["alpha"] * cp.normNuc(W))

    def value(self, W: np.ndarray) -> float:
        return self.alpha * float(np.linalg.svd(W, compute_uv=False).sum())

    def prox(self, V: np.ndarray, step: float) -> np.ndarray:
        """Singular-value soft-thresholding at ``step·α`` (:func:`~mtlcvx.penalties._prox.svt`)."""
        return _prox.svt(V, step * self.alpha)

    def dual_norm(self, V: np.ndarray) -> float:
        """Spectral norm ``σ_max(V)``, rounded up (an upper bound tight to rounding)."""
        return spectral_norm_bound(V)


class SquaredTraceNorm(Penalty):
    r"""Squared trace norm :math:`\frac{\alpha}{2} \lVert W\rVert_*^2`.

    MTRL's and MTFL's learned-covariance penalty after the covariance is minimised out
    (Zhang & Yeung 2010): ``min_{Ω ⪰ 0, tr Ω = 1} tr(W Ω⁻¹ Wᵀ) = ‖W‖²_*``. Needs the PSD cone.

    Parameters
    ----------
    alpha : float ≥ 0, default 1.0
    """

    cones: ClassVar[frozenset[str]] = frozenset({"psd"})
    structure: ClassVar[str] = "squared_norm"

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Term:
        return Term(params["alpha"] / 2.0 * cp.square(cp.normNuc(W)))

    def value(self, W: np.ndarray) -> float:
        return 0.5 * self.alpha * float(np.linalg.svd(W, compute_uv=False).sum()) ** 2

    def prox(self, V: np.ndarray, step: float) -> np.ndarray:
        """The exact :func:`squared_norm_shrink` of the singular values
        (:func:`~mtlcvx.penalties._prox.spectral_shrink`)."""
        c = step * self.alpha
        return _prox.spectral_shrink(V, lambda s: _squared_norm_threshold(s, c))

    def dual_norm(self, V: np.ndarray) -> float:
        """Spectral norm ``σ_max(V)`` (the dual of the trace norm), rounded up."""
        return spectral_norm_bound(V)

    def gradient(self, W: np.ndarray) -> np.ndarray:
        """A subgradient ``α ‖W‖_* U Vᵀ`` (thin SVD, singular values above round-off,
        :func:`~mtlcvx._linalg.psd_cutoff`)."""
        U, s, Vt = np.linalg.svd(W, full_matrices=False)
        keep = s > psd_cutoff(s.max(initial=0.0), max(W.shape))
        return self.alpha * s.sum() * (U[:, keep] @ Vt[keep])
