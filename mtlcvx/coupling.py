r"""The task-side coupling ``K_t = Σ α K`` of the quadratic penalties, kept in its structure.

``K_t = diag(k) + S + M + Σ_j R_j R_jᵀ``: a diagonal part (ridges, diagonal ``K``), a
sparse part (graph Laplacians, sparse ``K``), a dense part (dense ``K``) and low-rank
factors (``TaskRelation.from_factor``). Products, bounds on the spectrum and shifted
solves use the structure: a T×T dense matrix is formed only for a dense ``K``, and
nothing ever forms ``kron(K_t, I_d)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy

from ._linalg import issparse, psd_cutoff, scratch
from .relations import _sparse_ldl

__all__ = ["TaskCoupling", "band_of_entries", "band_product", "band_quadratic", "lower_band"]

#: Sparse factors with more columns than this are added as the sparse matrix ``R Rᵀ``.
_MAX_LOW_RANK = 64
#: Largest bandwidth for which a sparse part is solved as a banded matrix.
_MAX_BANDWIDTH = 8
#: Largest T for which a structure without a fast route falls back to a dense eigh.
DENSE_LIMIT = 3000


def lower_band(parts: list[tuple[float, Any]],
               diag: np.ndarray) -> tuple[int, np.ndarray | None]:
    """``(b, ab)`` of ``diag(diag) + Σ α M`` over ``parts`` ``(α, M)`` (symmetric CSR
    matrices, T×T): its bandwidth and lower band storage (b + 1, T), row k holding
    ``K[t + k, t]`` in column t, or None when wider than 8; read off the parts' index
    arrays (no COO copy)."""
    T = diag.shape[0]
    row = np.concatenate([np.repeat(np.arange(T), np.diff(M.indptr)) for _, M in parts])
    col = np.concatenate([M.indices for _, M in parts])
    val = np.concatenate([alpha * M.data for alpha, M in parts])
    return band_of_entries(row, col, val, diag)


def band_of_entries(row: np.ndarray, col: np.ndarray, val: np.ndarray,
                    diag: np.ndarray) -> tuple[int, np.ndarray | None]:
    """:func:`lower_band` of ``diag(diag)`` plus the symmetric matrix of entries
    ``(row, col, val)`` (both triangles given, so the largest ``row − col`` is the
    bandwidth; repeated entries add up)."""
    lag = row - col
    b = int(lag.max(initial=0))
    if b > _MAX_BANDWIDTH:
        return b, None
    ab = np.zeros((b + 1, diag.shape[0]))
    ab[0] = diag
    low = lag >= 0
    np.add.at(ab, (lag[low], col[low]), val[low])
    return b, ab


def band_product(W: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """``W K`` (k, T) for the symmetric ``K`` of lower band storage ``ab`` (b + 1, T):
    shifted products into one result and the kept scratch array (a fresh temporary per
    product costs its page faults; a sparse kernel's zeroed result too)."""
    out = np.multiply(W, ab[0])
    if ab.shape[0] > 1:
        buf = scratch((W.shape[0], W.shape[1] - 1))
        for k in range(1, ab.shape[0]):
            tmp = buf[:, : W.shape[1] - k]
            out[:, k:] += np.multiply(W[:, :-k], ab[k, :-k], out=tmp)
            out[:, :-k] += np.multiply(W[:, k:], ab[k, :-k], out=tmp)
    return out


def band_quadratic(W: np.ndarray, ab: np.ndarray) -> float:
    """``Σ (W K)∘W = tr(W K Wᵀ)`` for the symmetric ``K`` of lower band storage ``ab``,
    from the columns' inner products at each lag (no d × T product formed):
    ``Σ_t K_tt‖w_t‖² + 2 Σ_k Σ_t K_{t+k,t}⟨w_t, w_{t+k}⟩``, the same products summed in
    another order."""
    total = float(ab[0] @ np.einsum("dt,dt->t", W, W))
    for k in range(1, ab.shape[0]):
        total += 2.0 * float(ab[k, :-k] @ np.einsum("dt,dt->t", W[:, :-k], W[:, k:]))
    return total


class TaskCoupling:
    """``K_t`` (T, T) as ``diag + sparse + dense + Σ R Rᵀ``; see the module docstring."""

    def __init__(self, n_tasks: int):
        self.n_tasks = n_tasks
        self.diag = np.zeros(n_tasks)
        #: (α, M) of every sparse term: a band is read off their index arrays, and their sum
        #: is formed only when asked for (:attr:`sparse`); M may be a function of no
        #: arguments returning it, when the term gave its band (:meth:`add_band`)
        self._sparse_parts: list[tuple[float, Any]] = []
        #: (α, lower band storage) of the sparse terms that gave their band
        self._band_parts: list[tuple[float, np.ndarray]] = []
        self._sparse: scipy.sparse.csr_matrix | None = None
        self.dense: np.ndarray | None = None
        self.factors: list[np.ndarray] = []  # dense (T, p) blocks, K ∋ R Rᵀ
        self._dense_eig: tuple[np.ndarray, np.ndarray] | None = None
        #: (λ_max bound without the low-rank part, λ_min bound, the magnitude the λ_min
        #: bound was computed at)
        self._bounds: tuple[float, float, float] | None = None
        self._low_rank_top: float | None = None
        self._band: tuple[int, np.ndarray | None] | None = None

    # ------------------------------------------------------------------ building
    def add_matrix(self, M: Any, alpha: float) -> None:
        """Add ``alpha·M`` for a symmetric PSD ``M`` (dense or sparse)."""
        if alpha == 0:
            return
        if issparse(M):
            M = M.tocsr()
            diag = M.diagonal()
            if M.nnz == np.count_nonzero(diag):
                self.diag += alpha * diag
            else:
                self._sparse_parts.append((alpha, M))
                self._sparse = None
            return
        diag = np.diag(M)
        if np.count_nonzero(M) == np.count_nonzero(diag):
            self.diag += alpha * diag
        else:
            self.dense = alpha * M if self.dense is None else self.dense + alpha * M

    def add_band(self, band: np.ndarray, alpha: float, matrix: Callable[[], Any]) -> None:
        """Add ``alpha·M`` for a symmetric PSD ``M`` given by its lower band storage ``band``
        (b + 1, T); ``matrix()`` returns ``M`` itself (sparse), called only if a route
        asks for the sparse part (a band wider than the other parts' never is)."""
        if alpha == 0:
            return
        if band.shape[0] == 1:
            self.diag += alpha * band[0]
            return
        self._sparse_parts.append((alpha, matrix))
        self._band_parts.append((alpha, band))
        self._sparse = None

    def add_factor(self, R: Any, ridge: float, alpha: float) -> None:
        """Add ``alpha·(R Rᵀ + ridge·I)``."""
        if alpha == 0:
            return
        self.diag += alpha * ridge
        if issparse(R) and R.shape[1] > _MAX_LOW_RANK:
            self.add_matrix(R @ R.T, alpha)
        else:
            R = R.toarray() if issparse(R) else R
            self.factors.append(np.sqrt(alpha) * R)

    # ------------------------------------------------------------------ structure
    @property
    def sparse(self) -> scipy.sparse.csr_matrix | None:
        """The sparse part (CSR, without the diagonal part ``diag``), or None."""
        if self._sparse is None and self._sparse_parts:
            parts = self._csr_parts()
            S = sum((alpha * M for alpha, M in parts[1:]), parts[0][0] * parts[0][1])
            self._sparse = S.tocsr()
        return self._sparse

    def _csr_parts(self) -> list[tuple[float, Any]]:
        """``(α, M)`` of the sparse part, every ``M`` a CSR matrix (given ones built now)."""
        return [(alpha, M() if callable(M) else M) for alpha, M in self._sparse_parts]

    @property
    def is_zero(self) -> bool:
        return (not self.diag.any() and not self._sparse_parts and self.dense is None
                and not self.factors)

    @property
    def is_diagonal(self) -> bool:
        return not self._sparse_parts and self.dense is None and not self.factors

    @property
    def kind(self) -> str:
        """"diagonal", "sparse", "low-rank" (+ diagonal), "dense" or "mixed"."""
        sparse, dense = bool(self._sparse_parts), self.dense is not None
        low_rank = bool(self.factors)
        if sparse + dense + low_rank > 1:
            return "mixed"
        return "sparse" if sparse else "dense" if dense else "low-rank" if low_rank else "diagonal"

    def low_rank(self) -> np.ndarray:
        """All factors side by side (T, p): their part of ``K_t`` is ``U Uᵀ`` (the factor
        itself when there is one: read only)."""
        return self.factors[0] if len(self.factors) == 1 else np.hstack(self.factors)

    def scaled(self, v: np.ndarray) -> TaskCoupling:
        """The coupling ``diag(v) K_t diag(v)``."""
        out = TaskCoupling(self.n_tasks)
        out.diag = self.diag * v * v
        if self._sparse_parts:
            Dv = scipy.sparse.diags(v)
            out._sparse_parts = [(1.0, (Dv @ self.sparse @ Dv).tocsr())]
        if self.dense is not None:
            out.dense = v[:, None] * self.dense * v[None, :]
        out.factors = [v[:, None] * R for R in self.factors]
        return out

    def bandwidth(self) -> int:
        """Largest ``|s − t|`` over the non-zeros of the sparse part (0 without one)."""
        return self._banded()[0]

    def band(self) -> np.ndarray | None:
        """Lower band storage (b + 1, T) of ``diag + sparse`` (row k holds ``K[t + k, t]``
        in column t), or None without a sparse part or when wider than 8."""
        return self._banded()[1] if self._sparse_parts else None

    def _banded(self) -> tuple[int, np.ndarray | None]:
        """``(bandwidth, lower band storage of diag + sparse or None if too wide)``, once."""
        if self._band is None:
            if not self._sparse_parts:
                self._band = (0, None)
            elif len(self._band_parts) == len(self._sparse_parts):  # every part gave its band
                b = max(band.shape[0] for _, band in self._band_parts) - 1
                ab = np.zeros((b + 1, self.n_tasks))
                ab[0] = self.diag
                for alpha, band in self._band_parts:
                    ab[: band.shape[0]] += alpha * band
                self._band = (b, ab)
            else:
                self._band = lower_band(self._csr_parts(), self.diag)
        return self._band

    # ------------------------------------------------------------------ numerics
    def apply(self, W: np.ndarray) -> np.ndarray:
        """``W K_t`` for ``W`` (k, T), in ``O(k·(T + nnz + T·p))`` for the sparse parts."""
        ab = self._banded()[1]
        if ab is not None:  # diag + a narrow band: shifted products, no sparse kernel
            out = band_product(W, ab)
        else:
            out = W * self.diag
            if self.sparse is not None:  # symmetric: W S = (S Wᵀ)ᵀ, SciPy's fast direction
                out += np.asarray(self.sparse @ np.ascontiguousarray(W.T)).T
        if self.dense is not None:
            out += W @ self.dense
        for R in self.factors:
            out += (W @ R) @ R.T
        return out

    def diagonal(self) -> np.ndarray:
        """The diagonal of ``K_t`` (T,)."""
        out = self.diag.copy()
        if self.sparse is not None:
            out += self.sparse.diagonal()
        if self.dense is not None:
            out += np.diag(self.dense)
        for R in self.factors:
            out += np.einsum("tp,tp->t", R, R)
        return out

    def to_dense(self) -> np.ndarray:
        """``K_t`` as a dense (T, T) array (only for small T or a dense K)."""
        K = np.diag(self.diag)
        if self.sparse is not None:
            K += self.sparse.toarray()
        if self.dense is not None:
            K += self.dense
        for R in self.factors:
            K += R @ R.T
        return K

    def eigh(self) -> tuple[np.ndarray, np.ndarray]:
        """``(λ, U)``, ``K_t = U diag(λ) Uᵀ`` of the dense ``K_t`` (ascending ``λ``), once."""
        if self._dense_eig is None:
            self._dense_eig = scipy.linalg.eigh(self.to_dense())
        return self._dense_eig

    def bounds(self) -> tuple[float, float]:
        """``(λ_max upper bound, λ_min lower bound)`` of ``K_t``.

        Exact for a diagonal or dense coupling; Gershgorin's discs for the sparse part
        (exact at the bottom for a Laplacian plus a constant diagonal); ``‖U‖₂²`` on top
        and 0 at the bottom for the low-rank part.
        """
        top, low, _ = self._spectrum()
        return top + self._factor_top(), low

    def _factor_top(self) -> float:
        """``‖U‖₂²`` of the low-rank part (0 without one), once: only the top bound reads it
        (an eigenvalue problem the bottom and the Woodbury solves never need)."""
        if self._low_rank_top is None:
            self._low_rank_top = 0.0
            if self.factors:
                U = self.low_rank()
                G = U.T @ U if U.shape[1] <= U.shape[0] else U @ U.T
                self._low_rank_top = float(np.linalg.eigvalsh(G)[-1])
        return self._low_rank_top

    def _spectrum(self) -> tuple[float, float, float]:
        if self._bounds is None:
            self._bounds = self._compute_bounds()
        return self._bounds

    def lower_bound(self) -> float:
        """A proven lower bound ``≥ 0`` on ``λ_min(K_t)``: :meth:`bounds`'s, less the
        round-off cutoff (:func:`~mtlcvx._linalg.psd_cutoff`) of the parts it was computed
        from. A factor-given part ``R Rᵀ`` is never formed and is PSD exactly: it adds to
        ``λ_min`` at least 0 and nothing to the cutoff (so ``ridge·I + α R Rᵀ`` keeps
        ``λ_min ≥ ridge`` however large ``α‖R‖²`` is)."""
        _, low, scale = self._spectrum()
        return max(low - psd_cutoff(scale, self.n_tasks), 0.0)

    def _compute_bounds(self) -> tuple[float, float, float]:
        """``(λ_max bound without the low-rank part, λ_min bound, the magnitude the latter
        was computed at)``."""
        if self.dense is not None:  # one eigendecomposition of the whole K_t
            top, low = (float(x) for x in self.eigh()[0][[-1, 0]])
            return top, low, max(abs(top), abs(low))
        ab = self._banded()[1]
        if ab is not None:  # Gershgorin from the band: row t holds ab[k, t] and ab[k, t − k]
            radius = np.zeros(self.n_tasks)
            for k in range(1, ab.shape[0]):
                radius[:-k] += np.abs(ab[k, :-k])
                radius[k:] += np.abs(ab[k, :-k])
            top, low = float((ab[0] + radius).max()), float((ab[0] - radius).min())
        elif self.sparse is not None:
            S = self.sparse
            centre = self.diag + S.diagonal()
            radius = np.asarray(abs(S).sum(axis=1)).ravel() - np.abs(S.diagonal())
            top, low = float((centre + radius).max()), float((centre - radius).min())
        else:
            top, low = float(self.diag.max()), float(self.diag.min())
        # (the factors raise top only: _factor_top)
        return top, low, max(abs(top), abs(low))

    def solve_shifted(self, B: np.ndarray,
                      shifts: np.ndarray | None = None) -> np.ndarray | None:
        """``X`` (k, T) with ``X[i] (K_t + shifts[i]·I) = B[i]`` (``shifts`` None: all 0), or
        None.

        None when a shifted matrix is not safely positive definite or the structure has
        no fast route at this size (the caller then falls back to a general method).
        Diagonal: a divide; sparse: banded Cholesky (``solveh_banded``) or a sparse
        ``LDLᵀ``; low-rank plus diagonal: Woodbury; dense: one eigendecomposition.
        """
        T = self.n_tasks
        kind = self.kind
        if kind == "low-rank":  # (safe whenever the diagonal is: no bounds needed)
            return self._solve_woodbury(B, shifts)
        top = self.bounds()[0]
        floor = psd_cutoff(abs(top) if shifts is None
                           else abs(top) + np.abs(shifts).max(initial=0.0), T)
        if kind == "diagonal":
            denom = self.diag[None, :] if shifts is None else (self.diag[None, :]
                                                               + shifts[:, None])
            return B / denom if denom.min() > floor else None
        if kind == "sparse":
            return self._solve_sparse(B, shifts, floor)
        if kind == "dense" or T <= DENSE_LIMIT:
            lam, U = self.eigh()
            denom = lam[None, :] if shifts is None else lam[None, :] + shifts[:, None]
            if denom.min() <= floor:
                return None
            return ((B @ U) / denom) @ U.T
        return None

    def _solve_sparse(self, B: np.ndarray, shifts: np.ndarray | None,
                      floor: float) -> np.ndarray | None:
        low = self.bounds()[1]
        ab = self._banded()[1]
        if (ab is not None and shifts is not None and not np.all(shifts == shifts[0])
                and low + shifts.min() > floor):
            X = _stacked_band_solve(ab, B, shifts)  # every shift PD by Gershgorin
            if X is not None:
                return X
        K = None

        def solve(s: float, Bs: np.ndarray) -> np.ndarray | None:
            if ab is not None and low + s > floor:  # PD by Gershgorin
                if ab.shape[0] == 2:  # tridiagonal: LAPACK's dedicated solver
                    _, _, x, info = scipy.linalg.lapack.dptsv(ab[0] + s, ab[1, :-1], Bs.T)
                else:  # banded Cholesky
                    band = ab.copy()
                    band[0] += s
                    _, x, info = scipy.linalg.lapack.dpbsv(band, Bs.T, lower=1, overwrite_ab=1)
                if info == 0:
                    return x.T
            nonlocal K
            if K is None:
                K = (self.sparse + scipy.sparse.diags(self.diag)).tocsr()
            ldl = _sparse_ldl(K + s * scipy.sparse.eye(self.n_tasks))
            if ldl is None or ldl[1].min() <= floor:
                return None
            return ldl[0].solve(np.asfortranarray(Bs.T)).T

        return _by_shift(B, shifts, solve)

    def _solve_woodbury(self, B: np.ndarray, shifts: np.ndarray | None) -> np.ndarray | None:
        """Woodbury on ``D + U Uᵀ`` (``D = diag + shift``): safe whenever ``D`` is, however
        large ``‖U‖²`` (the capacitance ``I + UᵀD⁻¹U`` is then positive definite), so the
        round-off floor is ``D``'s own, not the whole matrix's."""
        U = self.low_rank()
        p = U.shape[1]

        def solve(s: float, Bs: np.ndarray) -> np.ndarray | None:
            D = self.diag + s
            if D.min() <= psd_cutoff(np.abs(D).max(), self.n_tasks):
                return None
            UD = U / D[:, None]
            cap = np.eye(p) + U.T @ UD
            BD = Bs / D
            return BD - np.linalg.solve(cap, (BD @ U).T).T @ UD.T

        return _by_shift(B, shifts, solve)


def _stacked_band_solve(ab: np.ndarray, B: np.ndarray, shifts: np.ndarray) -> np.ndarray | None:
    """``X`` (k, T) with ``X[i] (K + shifts[i]·I) = B[i]`` for the symmetric ``K`` of lower
    band storage ``ab`` (b + 1, T), in one LAPACK call, or None if it reports a pivot ≤ 0.

    The k systems are one block-diagonal banded system of order k·T: the entries that
    would couple block i to block i + 1 are exact zeros (``ab[j, T − j:]`` lies outside K),
    so the band Cholesky's factor holds exact zeros there and factors and solves every
    block as it would alone — with one call instead of k (each small LAPACK call through
    SciPy costs ~10 µs, the whole of a shared design's d solves at T = 100).
    """
    k, T = B.shape
    b = ab.shape[0]
    band = np.empty((b, k * T))
    blocks = band.reshape(b, k, T)
    blocks[...] = ab[:, None, :]  # k copies side by side
    for j in range(1, b):
        blocks[j, :, T - j:] = 0.0  # outside K: the blocks stay uncoupled
    blocks[0] += shifts[:, None]
    rhs = B.ravel()  # block i is row i of B
    if ab.shape[0] == 2:  # tridiagonal: LAPACK's dedicated solver
        _, _, x, info = scipy.linalg.lapack.dptsv(band[0], band[1, :-1], rhs,
                                                  overwrite_d=1, overwrite_e=1)
    else:  # Fortran order: factored in place
        _, x, info = scipy.linalg.lapack.dpbsv(np.asfortranarray(band), rhs, lower=1,
                                               overwrite_ab=1)
    return x.reshape(k, T) if info == 0 else None


def _by_shift(B: np.ndarray, shifts: np.ndarray | None,
              solve: Callable[[float, np.ndarray], np.ndarray | None]) -> np.ndarray | None:
    """Rows of ``B`` with equal shifts (all of them without a feature side; None: all 0)
    go to ``solve`` together: one factorisation and one multi-right-hand-side solve per
    distinct shift. None as soon as one solve is None."""
    if shifts is None:
        return solve(0.0, B)
    if np.all(shifts == shifts[0]):
        return solve(float(shifts[0]), B)
    values, which, counts = np.unique(shifts, return_inverse=True, return_counts=True)
    X = np.empty_like(B)
    groups = np.split(np.argsort(which, kind="stable"), np.cumsum(counts)[:-1])
    for s, rows in zip(values.tolist(), groups, strict=True):
        Xs = solve(s, B[rows])
        if Xs is None:
            return None
        X[rows] = Xs
    return X
