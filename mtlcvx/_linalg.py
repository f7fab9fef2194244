"""Shared numerics: the round-off rules for eigenvalues of PSD matrices, pseudo-inverses."""

from __future__ import annotations

import numpy as np
from scipy.linalg import eigh

__all__ = ["lambda_min", "block_pinv", "pinv_solve_psd", "spectral_norm_bound"]


def lambda_min(lam: np.ndarray) -> np.ndarray:
    """Smallest of ascending eigenvalues ``lam`` (..., n) of PSD matrices, round-off set to 0.

    An eigenvalue counts as positive only above ``n·1e-14·max(1, λ_max)``.
    """
    low = lam[..., 0]
    return np.where(low > lam.shape[-1] * 1e-14 * np.maximum(1.0, lam[..., -1]), low, 0.0)


def spectral_norm_bound(V: np.ndarray) -> float:
    """An upper bound on ``σ_max(V)`` (V of shape (m, k)), tight to a few units of rounding.

    ``σ_max² = λ_max(A)`` with ``A = VVᵀ`` or ``VᵀV`` (the smaller side, p × p): one
    product and the top eigenvalue alone, a fraction of an SVD's cost. The computed
    ``A`` is off by at most ``γ_q|V||V|ᵀ`` (q the inner dimension), whose spectral norm
    is at most ``γ_q‖V‖²_F``, and the eigensolver is backward stable (``p·ε·‖A‖``), so

        σ_max(V)² ≤ λ̂_max + 2(q + p)·ε·(‖V‖²_F + |λ̂_max|),

    which is what a dual norm needs: a dual point scaled by the bound lies inside the
    ball, never just outside it.
    """
    if not V.size:
        return 0.0
    A = V @ V.T if V.shape[0] <= V.shape[1] else V.T @ V
    p, q = A.shape[0], V.size // A.shape[0]
    top = float(eigh(A, eigvals_only=True, subset_by_index=[p - 1, p - 1])[0])
    slack = 2.0 * (p + q) * np.finfo(float).eps * (float(np.sum(V * V)) + abs(top))
    return float(np.sqrt(max(top, 0.0) + slack))


def _inverse_eigenvalues(lam: np.ndarray, n: int) -> np.ndarray:
    """``1/λ`` for eigenvalues above ``n·ε·max(1, λ_max)`` (per row of ``lam``), else 0."""
    cutoff = np.maximum(lam.max(axis=-1, keepdims=True), 1.0) * n * np.finfo(float).eps
    return np.where(lam > cutoff, 1.0 / np.where(lam > cutoff, lam, 1.0), 0.0)


def block_pinv(blocks: np.ndarray) -> np.ndarray:
    """Inverses of symmetric PSD blocks (k, d, d); pseudo-inverses through their
    eigendecompositions when one is singular."""
    try:
        inv = np.linalg.inv(blocks)
        if np.all(np.isfinite(inv)):
            return inv
    except np.linalg.LinAlgError:
        pass
    lam, V = np.linalg.eigh(blocks)
    inv = _inverse_eigenvalues(lam, blocks.shape[-1])
    return np.matmul(V * inv[:, None, :], V.transpose(0, 2, 1))


def pinv_solve_psd(M: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimum-norm solution of ``M x = b`` for a symmetric PSD ``M`` (n, n); b (n,) or (n, k)."""
    import scipy.linalg

    lam, V = scipy.linalg.eigh(M)
    inv = _inverse_eigenvalues(lam, M.shape[0])
    return V @ (inv[:, None] * (V.T @ b)) if b.ndim == 2 else V @ (inv * (V.T @ b))
