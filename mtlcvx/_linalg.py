"""Shared numerics: the round-off rules for eigenvalues of PSD matrices, pseudo-inverses.

SciPy's submodules are reached as attributes of ``scipy`` (which loads them on first use),
so ``import mtlcvx`` and the routes that need NumPy alone never load ``scipy.linalg`` or
``scipy.sparse`` (about 30 MB and 0.15 s per process).
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy

__all__ = ["psd_cutoff", "lambda_min", "min_block_eigenvalue", "block_pinv", "pinv_solve_psd",
           "spectral_norm_bound", "issparse", "batches", "scratch", "SCRATCH_ENTRIES",
           "abs_product"]


#: Entries of the kept scratch buffer (:func:`scratch`): 256 KB, cache-sized.
SCRATCH_ENTRIES = 1 << 15
#: per thread: that buffer, kept between calls with its pages touched once (256 KB is
#: above the allocator's mmap threshold: a new one per call is fresh pages, and a page
#: fault costs about 1.5 µs here; the first certificate at T = 100, n = 20, d = 10 took
#: 138 µs for the design's |X| sums, 86 µs with the kept buffer)
_scratch = threading.local()


def scratch(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised array of ``shape`` in this thread's kept scratch buffer when it
    fits in :data:`SCRATCH_ENTRIES`, else a fresh one: for a temporary whose contents are
    used up before the next call (the next call returns the same memory)."""
    size = math.prod(shape)
    if size > SCRATCH_ENTRIES:
        return np.empty(shape)
    buf = getattr(_scratch, "buffer", None)
    if buf is None:
        buf = _scratch.buffer = np.empty(SCRATCH_ENTRIES)
        buf.fill(0.0)  # every page touched now, not on a later call's first use
    return buf[:size].reshape(shape)


def abs_product(v: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``v @ |W|`` for ``v`` (d,) and ``W`` (d, T) or a batch (P, d, T), ``|W|`` taken a few
    points at a time in the kept :func:`scratch` buffer (all of a large batch's ``|W|`` at
    once is a fresh array whose pages fault on first touch every time)."""
    if W.ndim == 2:
        return v @ np.abs(W)
    P, d, T = W.shape
    out = np.empty((P, T))
    step = max(1, SCRATCH_ENTRIES // (d * T))
    for p0 in range(0, P, step):
        block = W[p0:p0 + step]
        np.matmul(v, np.abs(block, out=scratch(block.shape)), out=out[p0:p0 + step])
    return out


def issparse(x: Any) -> bool:
    """``scipy.sparse.issparse(x)`` without loading ``scipy.sparse`` when nothing has.

    An object can only be a SciPy sparse matrix or array once ``scipy.sparse`` is imported.
    """
    module = sys.modules.get("scipy.sparse")
    return module is not None and module.issparse(x)


#: ``p(n)/n`` in the eigensolver's backward error ``p(n)·ε·‖A‖₂`` (see :func:`psd_cutoff`).
_EIGEN_ERROR = 64.0
#: float64's machine epsilon ``2⁻⁵²`` (``np.finfo`` is a Python-level lookup per call)
_EPS = float(np.finfo(float).eps)


def column_dot(A: np.ndarray, B: np.ndarray) -> float:
    """``Σ A∘B`` for (d, T) arrays, summed down each column and then across the columns.

    No reduction adds more than ``max(d, T)`` terms, so the computed sum is within
    ``γ_{d+T}·Σ|A∘B|`` of the exact one whatever order NumPy or BLAS adds in (one
    ``vdot`` over all ``d·T`` terms is only guaranteed within ``γ_{dT}``): the order the
    certificates' bounds on quadratic values assume.
    """
    return float(np.einsum("dt,dt->t", A, B).sum())


def psd_cutoff(top: Any, n: int) -> Any:
    """``64·n·ε·|top|``: how far a computed eigenvalue of a symmetric matrix (n × n, largest
    eigenvalue ``top``), or a computed singular value (largest ``top``, n the larger
    dimension), may be from the exact one. The package's one round-off rule for spectra.

    LAPACK's symmetric eigensolvers and SVDs are backward stable: they return the exact
    spectrum of ``A + E`` with ``‖E‖₂ ≤ p(n)·ε·‖A‖₂``, ``p(n)`` a modest function of n, so
    by Weyl's inequality every value is within that of its exact one. ``p(n) = 64n`` is a
    generous choice (LAPACK's own error estimates take ``p(n) = 1``). Hence an eigenvalue
    at or below the cutoff may be 0 (a null direction: pseudo-inverses drop it), and
    ``λ̂_min − cutoff`` is a lower bound on ``λ_min`` (:func:`lambda_min`). The rounding
    in forming ``A`` (a Gram ``XᵀX``, a sum of terms) is not included: the loss's rounding
    bounds cover it, a strong-convexity modulus from a computed Gram does not (a
    first-order part, docs/certificates.md).
    """
    return _EIGEN_ERROR * n * _EPS * np.abs(top)


def lambda_min(lam: np.ndarray) -> np.ndarray:
    """A lower bound on the smallest eigenvalue of PSD matrices from their computed
    ascending eigenvalues ``lam`` (..., n): ``max(λ̂_min − psd_cutoff(λ̂_max, n), 0)``."""
    return np.maximum(lam[..., 0] - psd_cutoff(lam[..., -1], lam.shape[-1]), 0.0)


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
    top = float(scipy.linalg.eigh(A, eigvals_only=True, subset_by_index=[p - 1, p - 1])[0])
    slack = 2.0 * (p + q) * np.finfo(float).eps * (float(np.sum(V * V)) + abs(top))
    return float(np.sqrt(max(top, 0.0) + slack))


#: Fewer blocks than this go straight to ``eigvalsh`` in :func:`min_block_eigenvalue`
#: (below it the n-step sweeps cost more than eigvalsh of every block).
_FEW_BLOCKS = 512
#: Entries per batch of :func:`batches` (1 MB).
_BATCH_ENTRIES = 2 ** 17


def batches(k: int, n: int) -> Iterator[slice]:
    """Slices of ``range(k)`` for batched LAPACK calls on k (n, n) blocks a few at a time:
    their shifted copies and outputs stay near 1 MB instead of the size of all the blocks."""
    step = max(1, _BATCH_ENTRIES // (n * n))
    for start in range(0, k, step):
        yield slice(start, start + step)


def _cholesky_sweep(L: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(L Lᵀ)⁻¹ x`` for lower-triangular ``L`` (k, n, n), ``x`` (k, n): one forward and
    one backward substitution, vectorised over the k blocks (n steps each)."""
    n = L.shape[-1]
    y = np.empty_like(x)
    for i in range(n):
        y[:, i] = (x[:, i] - np.einsum("kj,kj->k", L[:, i, :i], y[:, :i])) / L[:, i, i]
    z = np.empty_like(x)
    for i in range(n - 1, -1, -1):
        z[:, i] = (y[:, i] - np.einsum("kj,kj->k", L[:, i + 1:, i], z[:, i + 1:])) / L[:, i, i]
    return z


def min_block_eigenvalue(H: np.ndarray, c: np.ndarray) -> float:
    """``min_t c_t·λ_min(H_t)`` of symmetric PSD blocks ``H`` (k, n, n), weights ``c ≥ 0``,
    as :func:`lambda_min` would give it from ``eigvalsh`` of every block, without that
    cost (``eigvalsh`` of many small blocks costs more than a direct solve with them).

    Two steps of inverse iteration from two start vectors, vectorised over the blocks
    through one batched Cholesky, give Rayleigh quotients ``ρ_t ≥ λ_min(H_t)``; only blocks with
    ``c_t ρ_t ≤ 2·min c ρ`` (those that can hold the minimum) are passed to
    ``eigvalsh``, which gives ``m``. A batched Cholesky of ``H_t − ((m − 2e)/c_t)·I`` then
    proves every ``c_t λ_min(H_t) ≥ m − 3e``: a Cholesky that completes in floating point
    is exact for ``A + E`` with ``‖E‖₂ ≤ γ_{n+1}·tr(A)`` (Higham, Thm. 10.3), and
    ``e = 2γ_{n+1}·max_t c_t tr(H_t)`` bounds that (the rest of the margin lets the block
    holding the minimum pass). When a Cholesky fails (a singular block, or a block the
    iteration missed) every block goes to ``eigvalsh``.
    """
    k, n, _ = H.shape
    if k < _FEW_BLOCKS or not np.all(c > 0):
        return float((c * lambda_min(np.linalg.eigvalsh(H))).min())
    try:
        L = np.linalg.cholesky(H)
        # two start vectors, so that one nearly orthogonal to a block's bottom
        # eigenvector does not hide that block
        rho = np.full(k, np.inf)
        for start in (np.ones(n), np.random.default_rng(0).standard_normal(n)):
            x = np.broadcast_to(start, (k, n))
            for _ in range(2):
                x = _cholesky_sweep(L, x)
                x /= np.linalg.norm(x, axis=1, keepdims=True)
            rho = np.minimum(rho, np.einsum("ki,ki->k", x, np.matmul(H, x[:, :, None])[:, :, 0]))
        rho *= c
        few = np.flatnonzero(rho <= 2.0 * rho.min())
        m = float((c[few] * lambda_min(np.linalg.eigvalsh(H[few]))).min())
        gam = (n + 1) * np.finfo(float).eps / (1.0 - (n + 1) * np.finfo(float).eps)
        err = 2.0 * gam * float((c * np.einsum("kii->k", H)).max())
        if m - 3.0 * err <= 0.0:
            return 0.0
        del L
        shift = (m - 2.0 * err) / c
        for part in batches(k, n):
            shifted = H[part].copy()
            np.einsum("kii->ki", shifted)[...] -= shift[part, None]
            np.linalg.cholesky(shifted)
        return m - 3.0 * err
    except np.linalg.LinAlgError:
        return float((c * lambda_min(np.linalg.eigvalsh(H))).min())


def _inverse_eigenvalues(lam: np.ndarray, n: int) -> np.ndarray:
    """``1/λ`` for eigenvalues above :func:`psd_cutoff` (per row of ``lam``), else 0."""
    cutoff = psd_cutoff(lam.max(axis=-1, keepdims=True), n)
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
    lam, V = scipy.linalg.eigh(M)
    inv = _inverse_eigenvalues(lam, M.shape[0])
    return V @ (inv[:, None] * (V.T @ b)) if b.ndim == 2 else V @ (inv * (V.T @ b))
