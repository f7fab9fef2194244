"""Shared numerics: the round-off rules for eigenvalues of PSD matrices, pseudo-inverses."""

from __future__ import annotations

import numpy as np

__all__ = ["lambda_min", "block_pinv", "pinv_solve_psd"]


def lambda_min(lam: np.ndarray) -> np.ndarray:
    """Smallest of ascending eigenvalues ``lam`` (..., n) of PSD matrices, round-off set to 0.

    An eigenvalue counts as positive only above ``n·1e-14·max(1, λ_max)``.
    """
    low = lam[..., 0]
    return np.where(low > lam.shape[-1] * 1e-14 * np.maximum(1.0, lam[..., -1]), low, 0.0)


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
