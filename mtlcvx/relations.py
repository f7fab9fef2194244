"""Building task-relation matrices and factoring them.

Every helper returns a plain NumPy matrix by default: adjacencies are T×T with zero
diagonal, relation matrices are symmetric PSD. Graph helpers take ``sparse=True`` and
return a ``scipy.sparse`` CSR matrix instead; a sparse input stays sparse through
:func:`check_adjacency`, :func:`laplacian`, :func:`check_psd` and :func:`psd_factor`
(no dense T×T array and no dense eigendecomposition is ever formed for it).
:func:`psd_factor` returns the sparsest ``R`` with ``R Rᵀ = K`` that the structure of
``K`` allows.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import scipy

from ._linalg import issparse, psd_cutoff
from .data import as_float_array
from .exceptions import PenaltyError

__all__ = [
    "outer",
    "laplacian",
    "chain",
    "knn_graph",
    "mean_regularizer",
    "from_clusters",
    "nearest_psd",
    "is_psd",
    "check_psd",
    "check_adjacency",
    "psd_factor",
]

_SYM_TOL = 1e-10
_PSD_TOL = 1e-10


def outer(Z: Any) -> np.ndarray:
    """Task-descriptor outer product ``K = Z Zᵀ`` (T×T, PSD, rank ≤ p) for Z (T, p)."""
    Z = as_float_array(Z, "Z", 2)
    return Z @ Z.T


def check_adjacency(A: Any, name: str = "A") -> np.ndarray | scipy.sparse.csr_matrix:
    """Validate a graph adjacency: square, symmetric, non-negative; return it as float64.

    A ``scipy.sparse`` adjacency is returned as a CSR copy (never densified).
    """
    if issparse(A):
        A = _sparse_square(A, name)
        low = A.data.min(initial=0.0)
        if low < 0:
            raise PenaltyError(f"{name} must be non-negative (edge weights); got min {low:.3g}")
        return A
    A = as_float_array(A, name, 2)
    if A.shape[0] != A.shape[1]:
        raise PenaltyError(f"{name} must be square (T, T), got {A.shape}")
    if not np.allclose(A, A.T, rtol=0, atol=_SYM_TOL * max(1.0, np.abs(A).max())):
        raise PenaltyError(f"{name} must be symmetric; use (A + A.T) / 2 for an undirected graph")
    if np.any(A < 0):
        raise PenaltyError(f"{name} must be non-negative (edge weights); got min {A.min():.3g}")
    return A


def laplacian(A: Any) -> np.ndarray:
    """Graph Laplacian ``L = diag(A·1) − A`` of a symmetric non-negative adjacency (T, T).

    The diagonal of ``A`` (self-loops) is ignored. ``tr(W L Wᵀ) = ½ Σ_{s,t} A_st ‖w_s − w_t‖²``.
    A sparse ``A`` gives a sparse CSR ``L``.
    """
    return _laplacian_of_checked(check_adjacency(A))


def _laplacian_of_checked(
        A: np.ndarray | scipy.sparse.csr_matrix) -> np.ndarray | scipy.sparse.csr_matrix:
    """:func:`laplacian` of an adjacency :func:`check_adjacency` returned (not modified)."""
    if issparse(A):  # assembled in one go from the off-diagonal entries
        n = A.shape[0]
        rows = _rows(A)
        off = A.indices != rows
        row, col, w = rows[off], A.indices[off], A.data[off]
        deg = np.bincount(row, weights=w, minlength=n)
        tasks = np.flatnonzero(deg)  # isolated tasks have no entry
        row, col = np.concatenate([row, tasks]), np.concatenate([col, tasks])
        order = np.lexsort((col, row))
        return _csr_sorted(row[order], col[order], np.concatenate([-w, deg[tasks]])[order], n)
    A = A.copy()
    np.fill_diagonal(A, 0.0)
    return np.diag(A.sum(axis=1)) - A


#: Added to m: the columns of entries 2m and 2m + 1 of the chain's CSR (:func:`chain`).
_NEXT_THEN_SAME = np.array([1, 0], dtype=np.int32)


def chain(T: int, sparse: bool = False) -> np.ndarray | scipy.sparse.csr_matrix:
    """Adjacency (T, T) of the chain graph 0 – 1 – … – T−1 (MALSAR's ``R_chain``).

    ``sparse=True`` returns it as a ``scipy.sparse`` CSR matrix (2·(T − 1) non-zeros).
    """
    if type(T) is not int and (isinstance(T, (bool, np.bool_))
                               or not isinstance(T, numbers.Integral)) or T < 1:
        raise PenaltyError(f"T must be a positive integer (the number of tasks), got {T!r}")
    if sparse:  # row t holds t − 1 and t + 1: the columns read 1, 0 2, 1 3, …, T − 2, so
        # entries 2m, 2m + 1 hold columns m + 1, m; rows start at 0, 1, 3, 5, …
        index = _index_dtype(2 * T)
        indices = (np.arange(T - 1, dtype=index)[:, None] + _NEXT_THEN_SAME).ravel()
        indptr = np.arange(-1, 2 * T, 2, dtype=index)
        indptr[0], indptr[-1] = 0, 2 * (T - 1)
        return _csr(np.ones(indices.size), indices, indptr, T)
    A = np.zeros((T, T))
    idx = np.arange(T - 1)
    A[idx, idx + 1] = A[idx + 1, idx] = 1.0
    return A


def knn_graph(Z: Any, k: int, sparse: bool = False) -> np.ndarray | scipy.sparse.csr_matrix:
    """Symmetric 0/1 adjacency (T, T) joining each task to its ``k`` nearest tasks.

    Distances are Euclidean between rows of the task descriptors ``Z`` (T, p); an
    edge is kept when either endpoint lists the other among its k nearest.
    ``sparse=True`` returns a ``scipy.sparse`` CSR matrix (at most 2·k·T non-zeros).
    """
    from scipy.spatial import cKDTree

    Z = as_float_array(Z, "Z", 2)
    T = Z.shape[0]
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral) or not 1 <= k < T:
        raise PenaltyError(f"k must be an integer between 1 and T - 1 = {T - 1}, got {k!r}")
    _, idx = cKDTree(Z).query(Z, k=k + 1)
    rows = np.repeat(np.arange(T), k)
    cols = idx[:, 1:].ravel()
    if sparse:
        A = scipy.sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(T, T))
        A = A.maximum(A.T).tocsr()
        A.setdiag(0.0)
        A.eliminate_zeros()
        return A
    A = np.zeros((T, T))
    A[rows, cols] = 1.0
    A = np.maximum(A, A.T)
    np.fill_diagonal(A, 0.0)
    return A


def mean_regularizer(T: int) -> np.ndarray:
    """``I − 11ᵀ/T``: ``tr(W M Wᵀ) = Σ_t ‖w_t − w̄‖²``."""
    if T < 1:
        raise PenaltyError(f"T must be a positive number of tasks, got {T}")
    return np.eye(T) - np.full((T, T), 1.0 / T)


def from_clusters(labels: Any) -> np.ndarray:
    """Within-cluster deviation matrix ``M = I − Σ_c 1_c 1_cᵀ / |c|`` (T, T).

    ``tr(W M Wᵀ) = Σ_c Σ_{t ∈ c} ‖w_t − w̄_c‖²`` for cluster labels (T,).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise PenaltyError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    same = labels[:, None] == labels[None, :]
    sizes = same.sum(axis=1)
    return np.eye(labels.size) - same / sizes[:, None]


def _symmetric(K: Any, name: str) -> np.ndarray:
    K = as_float_array(K.toarray() if issparse(K) else K, name, 2)
    if K.shape[0] != K.shape[1]:
        raise PenaltyError(f"{name} must be square, got shape {K.shape}")
    scale = max(1.0, float(np.abs(K).max()))
    asym = float(np.abs(K - K.T).max())
    if asym > _SYM_TOL * scale:
        raise PenaltyError(
            f"{name} is not symmetric (max |{name} - {name}.T| = {asym:.3g}); "
            f"pass ({name} + {name}.T) / 2 if the asymmetry is round-off"
        )
    return (K + K.T) / 2


def _psd_band(eigvals: np.ndarray) -> float:
    return _PSD_TOL * max(1.0, float(eigvals.max(initial=0.0)))


def is_psd(K: Any) -> bool:
    """True when ``K`` is symmetric to 1e-10 (relative) and ``λ_min ≥ −1e-10·max(1, λ_max)``."""
    try:
        check_psd(K)
    except PenaltyError:
        return False
    return True


def check_psd(K: Any, name: str = "K") -> np.ndarray:
    """Validate a symmetric PSD matrix and return it symmetrised, as float64.

    Eigenvalues below zero but inside the tolerance band (``λ ≥ −1e-10·max(1, λ_max)``)
    are clipped to zero here, once: the returned matrix is then the problem's matrix
    everywhere (CVXPY model, direct solve, value, gradient, bounds and certificate), so
    no part of the package sees a matrix that would make the objective unbounded below.

    Raises
    ------
    PenaltyError
        Naming ``λ_min`` and :func:`nearest_psd` when ``K`` is not PSD.
    """
    if issparse(K):
        return _check_psd_sparse(K, name)
    K = _symmetric(K, name)
    lam, V = scipy.linalg.eigh(K)
    if lam[0] < -_psd_band(lam):
        raise PenaltyError(
            f"{name} is not positive semidefinite: λ_min = {lam[0]:.3g} (λ_max = {lam[-1]:.3g}); "
            f"use mtlcvx.relations.nearest_psd({name}) to project it onto the PSD cone"
        )
    if lam[0] < 0:
        K = (V * np.maximum(lam, 0.0)) @ V.T
        K = (K + K.T) / 2
    return K


def nearest_psd(K: Any) -> np.ndarray:
    """Frobenius-nearest PSD matrix: symmetrise, then clip negative eigenvalues to 0."""
    K = as_float_array(K, "K", 2)
    if K.shape[0] != K.shape[1]:
        raise PenaltyError(f"K must be square, got shape {K.shape}")
    lam, V = scipy.linalg.eigh((K + K.T) / 2)
    return (V * np.maximum(lam, 0.0)) @ V.T


def _diagonally_dominant_factor(K: np.ndarray) -> scipy.sparse.csc_matrix | None:
    """``[B, diag(√r)]`` for ``K = L(A) + diag(r)``, A ≥ 0, r ≥ 0, else None.

    ``B`` has one column ``√A_st (e_s − e_t)`` per edge ``s < t``: nnz = 2·|edges| + |r > 0|.
    """
    off = K - np.diag(np.diag(K))
    scale = max(1.0, float(np.abs(K).max()))
    if np.any(off > _SYM_TOL * scale):
        return None
    row = K.sum(axis=1)
    if np.any(row < -_SYM_TOL * scale * K.shape[0]):
        return None
    s, t = np.nonzero(np.triu(-off, 1) > 0)
    w = np.sqrt(-off[s, t])
    n_edges = s.size
    r = np.maximum(row, 0.0)
    r[r <= _SYM_TOL * scale * K.shape[0]] = 0.0
    diag_idx = np.flatnonzero(r)
    rows = np.concatenate([s, t, diag_idx])
    cols = np.concatenate([np.arange(n_edges), np.arange(n_edges),
                           n_edges + np.arange(diag_idx.size)])
    vals = np.concatenate([w, -w, np.sqrt(r[diag_idx])])
    return scipy.sparse.csc_matrix((vals, (rows, cols)),
                                   shape=(K.shape[0], n_edges + diag_idx.size))


def psd_factor(K: np.ndarray) -> np.ndarray | scipy.sparse.csc_matrix:
    """Sparsest available ``R`` with ``R Rᵀ = K`` for a validated PSD ``K`` (n, n).

    In order: the weighted incidence matrix (plus a diagonal) when ``K`` is a graph
    Laplacian plus a non-negative diagonal; a sparse Cholesky factor when ``K`` is
    positive definite and its factor is sparse (always tried for a ``scipy.sparse``
    ``K``, as ``Pᵀ L D^½`` from a symmetric sparse ``LDLᵀ``); otherwise the eigen-factor
    ``V_+ diag(√λ_+)`` (n, rank), which handles PSD-singular ``K`` (eigenvalues within
    round-off of zero, :func:`~mtlcvx._linalg.psd_cutoff`, are dropped).
    """
    if issparse(K):
        return _sparse_factor(K)
    n = K.shape[0]
    factor = _diagonally_dominant_factor(K)
    if factor is not None:
        return factor
    density = np.count_nonzero(K) / K.size
    if density < 0.25 and n > 1:
        try:
            L = np.linalg.cholesky(K)
        except np.linalg.LinAlgError:
            L = None
        if L is not None and np.count_nonzero(np.abs(L) > 0) < 0.25 * L.size:
            return scipy.sparse.csc_matrix(L)
    lam, V = scipy.linalg.eigh(K)
    keep = lam > psd_cutoff(lam[-1], n)
    return V[:, keep] * np.sqrt(lam[keep])


# ---------------------------------------------------------------------- sparse matrices
#: Largest n for which a sparse matrix that is not diagonally dominant is checked densely.
_DENSE_CHECK_LIMIT = 500


def _rows(M: scipy.sparse.csr_matrix) -> np.ndarray:
    """The row index of every stored entry of a CSR matrix, in storage order."""
    return np.arange(M.shape[0]).repeat(M.indptr[1:] - M.indptr[:-1])


_INT32_MAX = int(np.iinfo(np.int32).max)


def _index_dtype(largest: int) -> type:
    """32-bit CSR index arrays where ``largest`` (the order or the number of entries) fits:
    SciPy scans the contents of 64-bit ones, and converts them."""
    return np.int32 if largest < _INT32_MAX else np.int64


def _csr_sorted(row: np.ndarray, col: np.ndarray, val: np.ndarray,
                n: int) -> scipy.sparse.csr_matrix:
    """The CSR matrix (n, n) of entries sorted by row, then column, without duplicates:
    its index arrays are these (no conversion from COO, no sort), 32-bit where they fit
    (SciPy checks the contents of 64-bit ones, and converts them)."""
    index = _index_dtype(max(n, len(col)))
    indptr = np.zeros(n + 1, dtype=index)
    np.cumsum(np.bincount(row, minlength=n), out=indptr[1:])
    return _csr(val, col.astype(index, copy=False), indptr, n)


#: What a SciPy CSR matrix made by its constructor and flagged canonical holds; the
#: ``_``-prefixed names are SciPy's private attributes (read only by :func:`_csr`).
_CSR_ATTRIBUTES = frozenset({"_shape", "maxprint", "data", "indices", "indptr",
                             "_has_canonical_format", "_has_sorted_indices"})
#: Those attributes of a 1 × 1 matrix SciPy's constructor made, or {} when SciPy holds
#: others (then :func:`_csr` runs the constructor); set on first use.
_csr_attributes: dict[str, Any] | None = None


def _csr(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray,
         n: int) -> scipy.sparse.csr_matrix:
    """The CSR matrix (n, n) holding these arrays as they are, in canonical format (the
    caller built them sorted by row, then column, without duplicates; float64 ``data``,
    index arrays of one integer dtype that :func:`_index_dtype` picked).

    The matrix is made as SciPy's constructor makes it, without running the constructor:
    its checks (index dtype selection, ``check_format``, ``prune``), about 70 µs on a
    first call, would confirm the format the caller built. This relies on SciPy's private
    attributes: only while a matrix its constructor makes holds exactly
    :data:`_CSR_ATTRIBUTES` (checked once per process), else the constructor runs.
    """
    global _csr_attributes
    if _csr_attributes is None:
        probe = scipy.sparse.csr_matrix((np.ones(1), np.zeros(1, np.int32),
                                         np.arange(2, dtype=np.int32)), shape=(1, 1))
        probe.has_canonical_format = True
        _csr_attributes = vars(probe) if vars(probe).keys() == _CSR_ATTRIBUTES else {}
    if not _csr_attributes:
        M = scipy.sparse.csr_matrix((data, indices, indptr), shape=(n, n))
        M.has_canonical_format = True
        return M
    M = object.__new__(scipy.sparse.csr_matrix)
    vars(M).update(_csr_attributes, _shape=(int(n), int(n)), data=data, indices=indices,
                   indptr=indptr)
    return M


def _exactly_symmetric(K: scipy.sparse.csr_matrix, rows: np.ndarray) -> bool:
    """``K == Kᵀ`` entry by entry, for a CSR ``K`` in canonical format with ``rows`` its
    entries' rows (:func:`_rows`): ``Kᵀ``'s entries put in row-major order must be ``K``'s
    own (no transpose is formed; a stable sort by column keeps each column's rows in
    order)."""
    order = K.indices.argsort(kind="stable")
    return bool((K.indices[order] == rows).all() and (rows[order] == K.indices).all()
                and (K.data[order] == K.data).all())


def _sparse_square(K: Any, name: str) -> scipy.sparse.csr_matrix:
    """A float64 CSR copy of a square, finite, symmetric sparse matrix (symmetrised)."""
    shape = K.shape
    if len(shape) != 2 or shape[0] != shape[1]:
        raise PenaltyError(f"{name} must be square, got shape {shape}")
    n = shape[0]
    if K.format == "csr" and K.dtype == np.float64 and K.has_canonical_format:
        # the usual input (a graph helper's matrix): its entries copied through the one
        # mask that drops explicit zeros; nothing to convert and no duplicates to sum
        rows = _rows(K)
        if K.data.all():  # copies of its arrays as they are (32-bit indices where they fit)
            index = _index_dtype(max(n, K.indptr[-1]))
            K = _csr(K.data.copy(), K.indices.astype(index), K.indptr.astype(index), n)
        else:
            keep = K.data != 0
            rows = rows[keep]
            K = _csr_sorted(rows, K.indices[keep], K.data[keep], n)
    else:
        try:
            K = scipy.sparse.csr_matrix(K, dtype=np.float64, copy=True)
        except (TypeError, ValueError) as err:
            raise PenaltyError(f"{name} must be a real numeric sparse matrix: {err}") from err
        K.sum_duplicates()
        K.eliminate_zeros()
        rows = _rows(K)
    if not np.isfinite(K.data).all():
        raise PenaltyError(f"{name} contains NaN or infinite values; drop or impute them first")
    if _exactly_symmetric(K, rows):  # as a graph helper builds it: no arithmetic needed
        return K
    scale = max(1.0, float(np.abs(K.data).max(initial=0.0)))
    asym = float(np.abs((K - K.T).data).max(initial=0.0))
    if asym > _SYM_TOL * scale:
        raise PenaltyError(
            f"{name} is not symmetric (max |{name} - {name}.T| = {asym:.3g}); "
            f"pass ({name} + {name}.T) / 2 if the asymmetry is round-off"
        )
    return K if asym == 0.0 else ((K + K.T) * 0.5).tocsr()  # exactly symmetric: K itself


def _sparse_ldl(K: scipy.sparse.spmatrix) -> tuple[Any, np.ndarray] | None:
    """Symmetric sparse ``P K Pᵀ = L D Lᵀ`` (SuperLU with diagonal pivots), or None.

    Returns ``(lu, D)`` when every pivot is positive (``K`` positive definite), else None.
    """
    try:
        lu = scipy.sparse.linalg.splu(scipy.sparse.csc_matrix(K), permc_spec="MMD_AT_PLUS_A",
                                      diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    except RuntimeError:  # exactly singular
        return None
    D = lu.U.diagonal()
    if not np.array_equal(lu.perm_r, lu.perm_c) or not np.all(D > 0):
        return None
    return lu, D


def _check_psd_sparse(K: Any, name: str) -> scipy.sparse.csr_matrix | np.ndarray:
    """The sparse branch of :func:`check_psd`; never forms a dense matrix for n > 500.

    A diagonally dominant matrix is PSD by Gershgorin's theorem (graph Laplacians plus a
    non-negative diagonal are). Within the tolerance band a deficit on the diagonal is
    added back (``K + diag(max(0, Σ_j|K_ij| − K_ii))``, at most the band away from ``K``),
    so the returned matrix is exactly PSD and is the one used everywhere. Otherwise a
    sparse ``LDLᵀ`` proves ``K ≻ 0``, or proves ``K + band·I ≻ 0`` (then that shifted
    matrix is returned); small matrices (n ≤ 500) that fail the first test are checked
    densely.
    """
    K = _sparse_square(K, name)
    n = K.shape[0]
    diag = K.diagonal()
    deficit = np.asarray(abs(K).sum(axis=1)).ravel() - np.abs(diag) - diag
    band = _PSD_TOL * max(1.0, float(diag.max(initial=0.0)))
    worst = float(deficit.max(initial=-np.inf))
    if worst <= band:
        if worst > 0:
            K = (K + scipy.sparse.diags(np.maximum(deficit, 0.0))).tocsr()
        return K
    if _sparse_ldl(K) is not None:
        return K
    if n <= _DENSE_CHECK_LIMIT:
        dense = check_psd(K.toarray(), name)
        return K if np.array_equal(dense, K.toarray()) else dense
    shifted = (K + band * scipy.sparse.eye(n)).tocsr()
    if _sparse_ldl(shifted) is not None:
        return shifted
    lam_min = float(scipy.sparse.linalg.eigsh(K, k=1, which="SA", return_eigenvectors=False)[0])
    raise PenaltyError(
        f"{name} is not positive semidefinite: λ_min ≈ {lam_min:.3g} (sparse Lanczos "
        f"estimate); use mtlcvx.relations.nearest_psd({name}.toarray()) to project it onto "
        f"the PSD cone, or give the factor: TaskRelation.from_factor(R) for K = R Rᵀ"
    )


def _sparse_factor(K: scipy.sparse.spmatrix) -> scipy.sparse.csc_matrix | np.ndarray:
    """:func:`psd_factor` for a validated sparse PSD ``K``: incidence, then ``Pᵀ L D^½``."""
    K = scipy.sparse.csr_matrix(K)
    n = K.shape[0]
    scale = max(1.0, float(np.abs(K.data).max(initial=0.0)))
    off = (K - scipy.sparse.diags(K.diagonal())).tocoo()
    row = np.asarray(K.sum(axis=1)).ravel()
    tiny = _SYM_TOL * scale * n
    if not np.any(off.data > _SYM_TOL * scale) and not np.any(row < -tiny):
        upper = off.row < off.col
        s, t, w = off.row[upper], off.col[upper], np.sqrt(np.maximum(-off.data[upper], 0.0))
        diag_idx = np.flatnonzero(row > tiny)
        n_edges = s.size
        rows = np.concatenate([s, t, diag_idx])
        cols = np.concatenate([np.arange(n_edges), np.arange(n_edges),
                               n_edges + np.arange(diag_idx.size)])
        vals = np.concatenate([w, -w, np.sqrt(row[diag_idx])])
        return scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(n, n_edges + diag_idx.size))
    ldl = _sparse_ldl(K)
    if ldl is not None:
        lu, D = ldl
        # SuperLU's perm_c = p maps K[i, j] to row/column p_i, p_j of L D Lᵀ, so the
        # factor of K is L D^½ with its rows taken in the order p.
        L = scipy.sparse.csr_matrix(lu.L @ scipy.sparse.diags(np.sqrt(D)))
        return scipy.sparse.csc_matrix(L[lu.perm_c])
    return psd_factor(K.toarray())
