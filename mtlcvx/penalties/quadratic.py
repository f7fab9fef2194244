"""Quadratic penalties: ``(α/2) tr(W K Wᵀ)`` (task side), ``(α/2) tr(Wᵀ D W)`` (feature side).

Each is compiled as ``sum_squares(W @ R)`` with a factor ``R Rᵀ = K`` and never as
``kron(K, I_d)``. A dense factor is a CVXPY Parameter ``S = √(α/2)·R``
(a strength Parameter times a factor Parameter would not be DPP), so both α
and K change without a rebuild. A sparse factor (graph incidence, sparse Cholesky)
stays a constant and α is a Parameter, so the compiled size is ``d·nnz(R)`` rather
than ``d·T·rank``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import scipy

from .. import relations
from .._linalg import column_dot, issparse, lambda_min
from .._optional import cp
from ..coupling import _MAX_BANDWIDTH, band_product, band_quadratic, lower_band
from ..data import FrozenArray, as_float_array, frozen_copy
from ..exceptions import PenaltyError
from .base import Penalty, Term, check_strength

__all__ = [
    "QuadraticPenalty",
    "Ridge",
    "TaskRelation",
    "FactoredTaskRelation",
    "GraphLaplacian",
    "MeanRegularized",
    "FeatureRelation",
]


class QuadraticPenalty(Penalty):
    """Base of ``(α/2) tr(W K Wᵀ)`` (side "task") or ``(α/2) tr(Wᵀ K W)`` (side "feature")."""

    cones: ClassVar[frozenset[str]] = frozenset({"quadratic"})
    structure: ClassVar[str] = "quadratic"
    #: "task": ``(α/2) tr(W K Wᵀ)``, K T×T; "feature": ``(α/2) tr(Wᵀ K W)``, K d×d.
    side: ClassVar[str] = "task"
    _derived = ("_factor_cache", "_matrix_cache", "_eigen_cache", "_band_cache")

    def _size(self, n_features: int, n_tasks: int) -> int:
        return n_tasks if self.side == "task" else n_features

    def _compute_matrix(self, n_features: int,
                        n_tasks: int) -> np.ndarray | scipy.sparse.csr_matrix:
        raise NotImplementedError

    def low_rank(self) -> tuple[np.ndarray | scipy.sparse.csc_matrix, float] | None:
        """``(R, ridge)`` when the term is given as ``K = R Rᵀ + ridge·I``, else None."""
        return None

    def _per_size(self, slot: str, n_features: int, n_tasks: int,
                  compute: Callable[[int, int], Any]) -> Any:
        """``compute(n_features, n_tasks)`` cached in ``slot`` per problem size until a matrix
        parameter changes (a hit makes no call: bands and matrices are asked for many
        times per solve)."""
        size = n_tasks if self.side == "task" else n_features
        cache = self.__dict__.get(slot)
        if cache is None or cache[0] != size:
            cache = (size, compute(n_features, n_tasks))
            self.__dict__[slot] = cache
        return cache[1]

    def factor(self, n_features: int, n_tasks: int) -> np.ndarray | scipy.sparse.csc_matrix:
        """Sparsest ``R`` with ``R Rᵀ = matrix`` (cached until the matrix changes)."""
        return self._per_size("_factor_cache", n_features, n_tasks,
                              lambda d, T: relations.psd_factor(self.matrix(d, T)))

    def matrix(self, n_features: int, n_tasks: int) -> np.ndarray | scipy.sparse.csr_matrix:
        """The PSD matrix ``K`` (T×T, task side) or ``D`` (d×d, feature side), without α.

        A ``scipy.sparse`` matrix when the term was given one (or is sparse by
        construction, as a graph Laplacian of a sparse adjacency). Computed once per
        problem size until a matrix parameter changes.
        """
        return self._per_size("_matrix_cache", n_features, n_tasks, self._compute_matrix)

    def _eigen(self, n_features: int, n_tasks: int) -> tuple[np.ndarray, np.ndarray]:
        """Eigendecomposition ``(λ ascending, U)`` of :meth:`matrix`, cached likewise."""
        def compute(d: int, T: int) -> tuple[np.ndarray, np.ndarray]:
            M = self.matrix(d, T)
            return np.linalg.eigh(M.toarray() if issparse(M) else M)

        return self._per_size("_eigen_cache", n_features, n_tasks, compute)

    #: Name of the matrix parameter checked against the data ("K", "D", "A"), if any.
    _matrix: ClassVar[str | None] = None

    def check_shape(self, n_features: int, n_tasks: int) -> None:
        if self._matrix is None:
            return
        shape = self.__dict__["_checked_" + self._matrix].shape
        n = self._size(n_features, n_tasks)
        if shape != (n, n):
            what = "tasks" if self.side == "task" else "features"
            raise PenaltyError(
                f"{type(self).__name__}: {self._matrix} has shape {shape} but the data have "
                f"{n} {what}; {self._matrix} must be ({n}, {n})"
            )

    def _store_checked(self, name: str, value: Any, checked: np.ndarray) -> Any:
        """Hold the validated float64 matrix as a read-only copy; it is the parameter too.

        So ``pen.K *= 10`` raises instead of changing what ``get_params`` shows but not
        what the problem solves, and the matrix a problem uses is the one the user sees
        (clipped into the PSD cone when it was accepted inside the tolerance band). A
        frozen array deep-copies to itself, so scikit-learn's ``clone`` (which requires
        ``get_params()[name] is`` the object passed in) still works.
        """
        if not isinstance(checked, np.ndarray):
            # sparse (CSR or CSC): the validation's own copy (never the user's object) with
            # read-only buffers; the parameter stays the user's object (scipy's deepcopy
            # makes writable twins, which clone refuses)
            for buf in (checked.data, checked.indices, checked.indptr):
                buf.setflags(write=False)
            self.__dict__["_checked_" + name] = checked
            return value
        same = (isinstance(value, FrozenArray) and value.shape == checked.shape
                and np.array_equal(value, checked))
        checked = value if same else frozen_copy(checked)
        self.__dict__["_checked_" + name] = checked
        return checked

    def cvxpy_parameters(self, n_features: int, n_tasks: int) -> dict[str, Any]:
        R = self.factor(n_features, n_tasks)
        if issparse(R):
            return {"alpha": self.alpha}
        return {"S": np.sqrt(self.alpha / 2.0) * R}

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Term:
        if "S" in params:
            S = params["S"]
            return Term(cp.sum_squares(W @ S if self.side == "task" else S.T @ W))
        R = self.factor(W.shape[0], W.shape[1])
        prod = W @ R if self.side == "task" else R.T @ W
        return Term(params["alpha"] / 2.0 * cp.sum_squares(prod))

    def band(self, n_features: int, n_tasks: int) -> np.ndarray | None:
        """Lower band storage (b + 1, T) of a task-side ``K`` of bandwidth b ≤ 8, without α
        (row k holds ``K[t + k, t]`` in column t; a chain's Laplacian, the identity), else
        None; cached like :meth:`matrix`. Values, gradients and solves use it in place of
        the sparse matrix."""
        return self._per_size("_band_cache", n_features, n_tasks, self._compute_band)

    def _compute_band(self, n_features: int, n_tasks: int) -> np.ndarray | None:
        K = self.matrix(n_features, n_tasks)
        if self.side != "task" or not issparse(K):
            return None
        return lower_band([(1.0, K.tocsr())], np.zeros(n_tasks))[1]

    def _product(self, W: np.ndarray) -> np.ndarray:
        """``W K`` (task side) or ``K W`` (feature side); a narrow band by shifted
        products, another sparse ``K`` (symmetric) from the left, ``W K = (K Wᵀ)ᵀ``,
        SciPy's fast direction."""
        d, T = W.shape
        band = self.band(d, T)
        if band is not None:
            return band_product(W, band)
        M = self.matrix(d, T)
        if self.side != "task":
            return np.asarray(M @ W)
        return np.asarray(M @ np.ascontiguousarray(W.T)).T if issparse(M) else W @ M

    def abs_product(self, absW: np.ndarray) -> np.ndarray:
        """``|W||K|`` (task side) or ``|K||W|`` (feature side) from ``absW = |W|`` (d, T):
        bounds the products that the value and the gradient sum (their rounding)."""
        d, T = absW.shape
        band = self.band(d, T)
        if band is not None:
            return band_product(absW, np.abs(band))
        K = self.matrix(d, T)
        if issparse(K):  # |K| shares K's index arrays; K symmetric: |W||K| = (|K||W|ᵀ)ᵀ
            K = K.tocsr()
            K = scipy.sparse.csr_matrix((np.abs(K.data), K.indices, K.indptr), shape=K.shape)
            return (K @ absW.T).T if self.side == "task" else K @ absW
        K = np.abs(K)
        return absW @ K if self.side == "task" else K @ absW

    def abs_quadratic(self, absW: np.ndarray) -> float:
        """``Σ (|W||K|)∘|W|`` (task side; ``Σ (|K||W|)∘|W|`` feature side) from
        ``absW = |W|``: the size of the products the value sums."""
        d, T = absW.shape
        band = self.band(d, T)
        if band is not None:
            return band_quadratic(absW, np.abs(band))
        return column_dot(self.abs_product(absW), absW)

    def value(self, W: np.ndarray) -> float:
        d, T = W.shape
        band = self.band(d, T)
        if band is not None:  # tr(W K Wᵀ) lag by lag: no d × T product
            return 0.5 * self.alpha * band_quadratic(W, band)
        return 0.5 * self.alpha * column_dot(self._product(W), W)

    def gradient(self, W: np.ndarray) -> np.ndarray:
        """``α W K`` (task side) or ``α K W`` (feature side)."""
        return self.alpha * self._product(W)

    def lipschitz(self, n_features: int, n_tasks: int) -> float:
        """``α λ_max(K)``."""
        lam = self._eigen(n_features, n_tasks)[0]
        return self.alpha * max(float(lam[-1]), 0.0) if lam.size else 0.0

    def strong_convexity(self, n_features: int, n_tasks: int) -> float:
        """``α λ_min(K)`` (eigenvalues within round-off of 0 count as 0)."""
        lam = self._eigen(n_features, n_tasks)[0]
        return self.alpha * float(lambda_min(lam)) if lam.size else 0.0

    def conjugate(self, V: np.ndarray) -> float:
        """``½⟨V, (αK)⁻¹V⟩`` (K acting on the term's side) when ``αK ≻ 0``; inf otherwise.

        When ``αK`` is singular the exact conjugate is inf off its range and finite on it;
        inf is returned for every V, an upper bound that keeps dual bounds valid.
        """
        d, T = V.shape
        lam, U = self._eigen(d, T)
        if self.alpha <= 0 or float(lambda_min(lam)) <= 0:
            return np.inf
        Vr = V @ U if self.side == "task" else U.T @ V
        scale = lam[None, :] if self.side == "task" else lam[:, None]
        return 0.5 * float(np.sum(Vr * Vr / scale)) / self.alpha


class Ridge(QuadraticPenalty):
    r"""Ridge penalty :math:`\frac{\alpha}{2}\lVert W\rVert_F^2`.

    Parameters
    ----------
    alpha : float ≥ 0
    """

    def _compute_matrix(self, n_features: int, n_tasks: int) -> scipy.sparse.csr_matrix:
        return scipy.sparse.identity(self._size(n_features, n_tasks), format="csr")

    def _compute_band(self, n_features: int, n_tasks: int) -> np.ndarray | None:
        return np.ones((1, n_tasks)) if self.side == "task" else None

    def cvxpy_parameters(self, n_features: int, n_tasks: int) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Term:
        return Term(params["alpha"] / 2.0 * cp.sum_squares(W))

    def value(self, W: np.ndarray) -> float:
        return 0.5 * self.alpha * column_dot(W, W)

    def gradient(self, W: np.ndarray) -> np.ndarray:
        return self.alpha * W

    def abs_product(self, absW: np.ndarray) -> np.ndarray:
        return absW

    def abs_quadratic(self, absW: np.ndarray) -> float:
        return column_dot(absW, absW)


class TaskRelation(QuadraticPenalty):
    r"""Task-relation penalty :math:`\frac{\alpha}{2}\operatorname{tr}(W K W^\top)`.

    ``tr(W K Wᵀ) = Σ_{s,t} K_st ⟨w_s, w_t⟩`` couples the tasks through a fixed
    T×T PSD matrix ``K`` (for example ``relations.outer(Z)`` from task descriptors).

    Parameters
    ----------
    K : array_like or scipy.sparse matrix (T, T)
        Symmetric positive semidefinite: symmetric to 1e-10 (relative) and
        ``λ_min ≥ −1e-10·max(1, λ_max)``. A sparse ``K`` stays sparse: it is checked
        without densifying (diagonal dominance, else a sparse ``LDLᵀ``) and factored by
        its sparse incidence or Cholesky factor. For ``K = R Rᵀ (+ ridge·I)`` given by a
        factor use :meth:`from_factor`.
    alpha : float ≥ 0, default 1.0
    """

    _params = ("K", "alpha")
    _matrix = "K"

    def __init__(self, K: Any, alpha: float = 1.0):
        self.K = K
        self.alpha = alpha

    def _validate(self, name: str, value: Any) -> Any:
        if name == "K":
            return self._store_checked(name, value, relations.check_psd(value, "K"))
        return super()._validate(name, value)

    def _compute_matrix(self, n_features: int,
                        n_tasks: int) -> np.ndarray | scipy.sparse.csr_matrix:
        return self._checked_K

    @classmethod
    def from_factor(cls, R: Any, ridge: float = 0.0, alpha: float = 1.0) -> FactoredTaskRelation:
        """``(α/2) tr(W (R Rᵀ + ridge·I) Wᵀ)`` with ``K`` kept as its factor ``R`` (T, p).

        PSD by construction (no check, no T×T matrix formed); see
        :class:`FactoredTaskRelation`.
        """
        return FactoredTaskRelation(R, ridge=ridge, alpha=alpha)


class FactoredTaskRelation(TaskRelation):
    r"""Task relation given by a factor: :math:`\frac{\alpha}{2}\operatorname{tr}(W K W^\top)`
    with ``K = R Rᵀ + ridge·I``.

    ``tr(W K Wᵀ) = ‖W R‖²_F + ridge·‖W‖²_F``: value and gradient cost ``O(d·nnz(R))``,
    ``K`` is PSD by construction and is never formed unless :meth:`matrix` is asked for
    (MALSAR's SRMTL passes such an ``R``; task descriptors ``Z`` give ``K = Z Zᵀ``).
    Built by :meth:`TaskRelation.from_factor`.

    Parameters
    ----------
    R : array_like or scipy.sparse matrix (T, p)
    ridge : float ≥ 0, default 0.0
    alpha : float ≥ 0, default 1.0
    """

    _params = ("R", "ridge", "alpha")
    _matrix = None

    def __init__(self, R: Any, ridge: float = 0.0, alpha: float = 1.0):
        self.R = R
        self.ridge = ridge
        self.alpha = alpha

    def _validate(self, name: str, value: Any) -> Any:
        if name == "R":
            if issparse(value):
                if value.ndim != 2:
                    raise PenaltyError(f"R must be 2-D (T, p), got shape {value.shape}")
                R = scipy.sparse.csc_matrix(value, dtype=np.float64, copy=True)
                if not np.all(np.isfinite(R.data)):
                    raise PenaltyError("R contains NaN or infinite values")
            else:
                R = as_float_array(value, "R", 2)  # _store_checked copies it (once)
            return self._store_checked(name, value, R)
        if name == "ridge":
            return check_strength(value, "ridge")
        return super()._validate(name, value)

    def check_shape(self, n_features: int, n_tasks: int) -> None:
        shape = self._checked_R.shape
        if shape[0] != n_tasks:
            raise PenaltyError(
                f"FactoredTaskRelation: R has shape {shape} but the data have {n_tasks} "
                f"tasks; R must be ({n_tasks}, p)"
            )

    def low_rank(self) -> tuple[np.ndarray | scipy.sparse.csc_matrix, float]:
        """``(R, ridge)`` with ``K = R Rᵀ + ridge·I`` (without α)."""
        return self._checked_R, self.ridge

    def _compute_matrix(self, n_features: int,
                        n_tasks: int) -> np.ndarray | scipy.sparse.csr_matrix:
        R = self._checked_R
        if issparse(R):
            return scipy.sparse.csr_matrix(R @ R.T + self.ridge * scipy.sparse.eye(R.shape[0]))
        return R @ R.T + self.ridge * np.eye(R.shape[0])

    def _compute_band(self, n_features: int, n_tasks: int) -> None:
        return None  # never formed: the factor serves every product

    def factor(self, n_features: int, n_tasks: int) -> np.ndarray | scipy.sparse.csc_matrix:
        """``R``, or the sparse ``[R, √ridge·I]`` when ``ridge > 0``."""
        def compute(d: int, T: int) -> np.ndarray | scipy.sparse.csc_matrix:
            R = self._checked_R
            if self.ridge == 0:
                return R
            return scipy.sparse.hstack([scipy.sparse.csc_matrix(R),
                                        np.sqrt(self.ridge) * scipy.sparse.eye(R.shape[0])],
                                       format="csc")

        return self._per_size("_factor_cache", n_features, n_tasks, compute)

    def value(self, W: np.ndarray) -> float:
        WR = np.asarray(W @ self._checked_R)
        return 0.5 * self.alpha * (float(np.sum(WR * WR)) + self.ridge * float(np.sum(W * W)))

    def gradient(self, W: np.ndarray) -> np.ndarray:
        R = self._checked_R
        return self.alpha * (np.asarray((W @ R) @ R.T) + self.ridge * W)

    def abs_product(self, absW: np.ndarray) -> np.ndarray:
        """``|W|(|R||R|ᵀ + ridge·I) ≥ |W||K|``, through the factor."""
        R = self._checked_R
        R = abs(R) if issparse(R) else np.abs(R)
        return np.asarray((R @ (R.T @ absW.T)).T) + self.ridge * absW


class FeatureRelation(QuadraticPenalty):
    r"""Feature-relation penalty :math:`\frac{\alpha}{2}\operatorname{tr}(W^\top D W)`.

    Parameters
    ----------
    D : array_like or scipy.sparse matrix (d, d)
        Symmetric positive semidefinite feature-side matrix (a sparse ``D`` stays sparse).
    alpha : float ≥ 0, default 1.0
    """

    side = "feature"
    _params = ("D", "alpha")
    _matrix = "D"

    def __init__(self, D: Any, alpha: float = 1.0):
        self.D = D
        self.alpha = alpha

    def _validate(self, name: str, value: Any) -> Any:
        if name == "D":
            return self._store_checked(name, value, relations.check_psd(value, "D"))
        return super()._validate(name, value)

    def _compute_matrix(self, n_features: int,
                        n_tasks: int) -> np.ndarray | scipy.sparse.csr_matrix:
        return self._checked_D


class GraphLaplacian(QuadraticPenalty):
    r"""Graph penalty :math:`\frac{\alpha}{2}\operatorname{tr}(W L W^\top)`, ``L = diag(A·1) − A``.

    Equals ``(α/4) Σ_{s,t} A_st ‖w_s − w_t‖²`` = ``(α/2) Σ_{s<t} A_st ‖w_s − w_t‖²``
    (every undirected edge once). Compiled with the weighted incidence matrix, so its
    cost is ``d·|edges|``.

    Parameters
    ----------
    A : array_like or scipy.sparse matrix (T, T)
        Symmetric non-negative adjacency (weights); the diagonal is ignored. A sparse
        ``A`` gives a sparse Laplacian (PSD by construction, never densified).
    alpha : float ≥ 0, default 1.0
    """

    _params = ("A", "alpha")
    _matrix = "A"

    def __init__(self, A: Any, alpha: float = 1.0):
        self.A = A
        self.alpha = alpha

    def _validate(self, name: str, value: Any) -> Any:
        if name == "A":
            return self._store_checked(name, value, relations.check_adjacency(value, "A"))
        return super()._validate(name, value)

    def _compute_matrix(self, n_features: int,
                        n_tasks: int) -> np.ndarray | scipy.sparse.csr_matrix:
        return relations._laplacian_of_checked(self._checked_A)

    def _compute_band(self, n_features: int, n_tasks: int) -> np.ndarray | None:
        """Read off the adjacency's entries right of the diagonal (the checked ``A`` is
        exactly symmetric, in canonical CSR format): ``K[t + k, t] = −A[t, t + k]``, and on
        the diagonal the degrees, summed in the order of ``A``'s rows as the sparse
        Laplacian sums them (self-loops ignored). The sparse Laplacian itself is built only
        if a route asks for it."""
        A = self._checked_A
        if isinstance(A, np.ndarray):
            return None
        rows = relations._rows(A)
        lag = A.indices - rows
        b = int(lag.max(initial=0))
        if b > _MAX_BANDWIDTH:
            return None
        ab = np.zeros((b + 1, n_tasks))
        right = lag > 0
        ab[lag[right], rows[right]] = -A.data[right]
        for k in range(b, 0, -1):  # row t lists A[t, t − b], …, A[t, t − 1] first
            ab[0, k:] -= ab[k, :-k]
        for k in range(1, b + 1):  # then A[t, t + 1], …, A[t, t + b]
            ab[0] -= ab[k]
        return ab


class MeanRegularized(QuadraticPenalty):
    r"""Mean-regularized MTL :math:`\frac{\alpha}{2}\sum_t \lVert w_t - \bar w\rVert^2`.

    ``w̄ = (1/T) Σ_t w_t`` is the mean task.

    Equal to ``(α/2) tr(W (I − 11ᵀ/T) Wᵀ)`` (Evgeniou & Pontil 2004). Compiled as
    ``min_m (α/2) ‖W − m 1ᵀ‖²_F`` with an auxiliary ``m`` (d,), whose minimiser is the
    mean: ``2·d·T`` non-zeros instead of the dense ``d·T²`` of ``I − 11ᵀ/T``.

    Parameters
    ----------
    alpha : float ≥ 0, default 1.0
    """

    def _compute_matrix(self, n_features: int, n_tasks: int) -> np.ndarray:
        return relations.mean_regularizer(n_tasks)

    def cvxpy_parameters(self, n_features: int, n_tasks: int) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Term:
        d, T = W.shape
        m = cp.Variable((d, 1), name="task_mean")
        return Term(params["alpha"] / 2.0 * cp.sum_squares(W - m @ np.ones((1, T))))

    def value(self, W: np.ndarray) -> float:
        dev = W - W.mean(axis=1, keepdims=True)
        return 0.5 * self.alpha * column_dot(dev, dev)

    def gradient(self, W: np.ndarray) -> np.ndarray:
        return self.alpha * (W - W.mean(axis=1, keepdims=True))
