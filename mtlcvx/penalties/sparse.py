"""Sparsity-inducing norms: entrywise L1, row-group L21 and its square."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._optional import cp
from ._prox import row_norms, shrink_rows, soft_threshold
from .base import Penalty, Support, Term
from .spectral import squared_norm_shrink

__all__ = ["L1", "L21", "SquaredL21"]


class L1(Penalty):
    r"""Entrywise lasso :math:`\alpha \sum_{j,t} |W_{jt}|`.

    LP-representable: every backend, OSQP included, can solve it.

    Parameters
    ----------
    alpha : float ≥ 0, default 1.0
    """

    cones: ClassVar[frozenset[str]] = frozenset({"nonneg"})
    structure: ClassVar[str] = "norm"
    #: The norm is a sum of ``|W_jt|`` over entries: Gap Safe screening discards entries.
    separable: ClassVar[str] = "entries"

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Term:
        return Term(params["alpha"] * cp.sum(cp.abs(W)))

    def value(self, W: np.ndarray) -> float:
        return self.alpha * float(np.abs(W).sum())

    def prox(self, V: np.ndarray, step: float) -> np.ndarray:
        """Soft-thresholding at ``step·α``."""
        return soft_threshold(V, step * self.alpha)

    def dual_norm(self, V: np.ndarray) -> float:
        """``max |V_jt|``."""
        return float(np.abs(V).max(initial=0.0))

    def support(self, W: np.ndarray) -> Support:
        """The nonzero entries; there the term is ``α Σ sign(W_jt) W_jt``: linear."""
        zero = np.zeros_like(W)
        return Support(W != 0, self.alpha * np.sign(W), lambda D: zero, zero)

    def prox_composes_with(self, other: Penalty) -> bool:
        """Soft-thresholding, then the L21 row shrink, is the prox of L1 + L21 (sparse group)."""
        return isinstance(other, L21)


class L21(Penalty):
    r"""Joint feature selection :math:`\alpha \sum_j \lVert W_{j,:}\rVert_2`.

    Rows are features across tasks (one group per feature).

    Needs the second-order cone: ECOS, SCS, Clarabel (not OSQP).

    Parameters
    ----------
    alpha : float ≥ 0, default 1.0
    """

    cones: ClassVar[frozenset[str]] = frozenset({"soc"})
    structure: ClassVar[str] = "norm"
    #: The norm is a sum of ``‖W_j,:‖₂`` over rows: Gap Safe screening discards rows.
    separable: ClassVar[str] = "rows"

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Term:
        return Term(params["alpha"] * cp.mixed_norm(W, 2, 1))

    def value(self, W: np.ndarray) -> float:
        return self.alpha * float(row_norms(W).sum())

    def prox(self, V: np.ndarray, step: float) -> np.ndarray:
        """Row-wise group shrinkage ``w^j ← max(0, 1 − step·α/‖v^j‖) v^j``."""
        return shrink_rows(V, step * self.alpha)

    def dual_norm(self, V: np.ndarray) -> float:
        """``max_j ‖V_{j,:}‖₂``."""
        return float(row_norms(V).max(initial=0.0))

    def support(self, W: np.ndarray) -> Support:
        r"""The nonzero rows, where ``α‖w_j‖`` has gradient ``α u_j`` (``u_j = w_j/‖w_j‖``)
        and Hessian ``(α/‖w_j‖)(I − u_j u_jᵀ)``."""
        norms = np.linalg.norm(W, axis=1, keepdims=True)
        nonzero = norms > 0
        safe = np.where(nonzero, norms, 1.0)
        U = W / safe  # zero rows stay 0
        inv = np.where(nonzero, self.alpha / safe, 0.0)  # α/‖w_j‖

        def hessian(D: np.ndarray) -> np.ndarray:
            return inv * (D - U * np.sum(U * D, axis=1, keepdims=True))

        return Support(np.broadcast_to(nonzero, W.shape), self.alpha * U, hessian,
                       inv * (1.0 - U * U))


class SquaredL21(Penalty):
    r"""Squared row-group norm :math:`\frac{\alpha}{2}\big(\sum_j \lVert W_{j,:}\rVert_2\big)^2`.

    MTFL's feature-selection variant after the diagonal feature covariance is minimised
    out (Argyriou, Evgeniou & Pontil 2008). Needs the second-order cone.

    Parameters
    ----------
    alpha : float ≥ 0, default 1.0
    """

    cones: ClassVar[frozenset[str]] = frozenset({"soc"})
    structure: ClassVar[str] = "squared_norm"

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Term:
        return Term(params["alpha"] / 2.0 * cp.square(cp.mixed_norm(W, 2, 1)))

    def value(self, W: np.ndarray) -> float:
        return 0.5 * self.alpha * float(np.linalg.norm(W, axis=1).sum()) ** 2

    def prox(self, V: np.ndarray, step: float) -> np.ndarray:
        """:func:`~mtlcvx.penalties.spectral.squared_norm_shrink` applied to the row norms."""
        norms = np.linalg.norm(V, axis=1)
        new = squared_norm_shrink(norms, step * self.alpha)
        return V * (new / np.maximum(norms, np.finfo(float).tiny))[:, None]

    def dual_norm(self, V: np.ndarray) -> float:
        """``max_j ‖V_{j,:}‖₂`` (the dual of the L21 norm)."""
        return float(np.linalg.norm(V, axis=1).max(initial=0.0))

    def gradient(self, W: np.ndarray) -> np.ndarray:
        """A subgradient ``α Ω(W) ∂Ω(W)``, Ω the L21 norm (zero rows get 0)."""
        norms = np.linalg.norm(W, axis=1)
        return self.alpha * norms.sum() * (W / np.where(norms > 0, norms, 1.0)[:, None])
