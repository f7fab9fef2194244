"""Shared numerics: the round-off rule for eigenvalues of PSD matrices."""

from __future__ import annotations

import numpy as np

__all__ = ["lambda_min"]


def lambda_min(lam: np.ndarray) -> np.ndarray:
    """Smallest of ascending eigenvalues ``lam`` (..., n) of PSD matrices, round-off set to 0.

    An eigenvalue counts as positive only above ``n·1e-14·max(1, λ_max)``.
    """
    low = lam[..., 0]
    return np.where(low > lam.shape[-1] * 1e-14 * np.maximum(1.0, lam[..., -1]), low, 0.0)
