r"""Structured sparsity: the fused task graph and the sparse-group norm.

* :class:`FusedL1`: ``α Σ_{s<t} A_st ‖w_s − w_t‖₁`` over the edges of a task graph. On a
  chain (more generally, a graph whose components are paths) its prox is exact: per row,
  the 1-D total-variation prox along the path.
* :class:`SparseGroup`: ``α₁‖W‖₁ + α₂ Σ_j ‖w^j‖₂``, one exact prox (soft-threshold, then
  the row shrink) and an exact dual test per row.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy

from .. import relations
from .._optional import cp
from ..exceptions import PenaltyError
from . import _prox
from .base import Penalty
from .decomposition import _several_strengths
from .sparse import L1, L21

__all__ = ["FusedL1", "SparseGroup"]


def _path_order(n: int, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Tasks ordered along the paths of a linear forest and the edge index between
    consecutive tasks (−1 between paths); None when some node has degree > 2 or a cycle."""
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for e, (s, t) in enumerate(edges):
        nbrs[s].append(e)
        nbrs[t].append(e)
    if any(len(x) > 2 for x in nbrs):
        return None
    order: list[int] = []
    links: list[int] = []
    seen = np.zeros(n, dtype=bool)
    for start in [v for v in range(n) if len(nbrs[v]) < 2] + list(range(n)):
        if seen[start]:
            continue
        if len(nbrs[start]) == 2:  # every remaining node has degree 2: a cycle
            return None
        if order:
            links.append(-1)
        node, prev_edge = start, -1
        while True:
            seen[node] = True
            order.append(node)
            nxt = [e for e in nbrs[node] if e != prev_edge]
            if not nxt:
                break
            prev_edge = nxt[0]
            s, t = edges[prev_edge]
            node = t if s == node else s
            links.append(prev_edge)
    return np.asarray(order), np.asarray(links, dtype=int)


class FusedL1(Penalty):
    r"""Fused lasso over a task graph :math:`\alpha \sum_{s<t} A_{st}\lVert w_s - w_t\rVert_1`.

    Every undirected edge counts once. With ``A = mc.relations.chain(T)`` and L1 and L21
    beside it this is MALSAR's ``Least_CFGLasso``. LP-representable (every backend).
    When the graph's components are paths (a chain, say) the prox is exact: per row,
    the 1-D total-variation prox along each path, vectorised over the rows; on any other
    graph there is no exact prox and ``backend=None`` picks a conic backend.

    Parameters
    ----------
    A : array_like or sparse (T, T)
        Symmetric non-negative edge weights; the diagonal is ignored.
    alpha : float ≥ 0, default 1.0
    """

    structure: ClassVar[str] = "norm"
    cones: ClassVar[frozenset[str]] = frozenset({"nonneg"})
    _params: ClassVar[tuple[str, ...]] = ("A", "alpha")

    def __init__(self, A: Any, alpha: float = 1.0):
        self.A = A
        self.alpha = alpha

    def _validate(self, name: str, value: Any) -> Any:
        if name != "A":
            return super()._validate(name, value)
        M = relations.check_adjacency(value).copy()
        upper = scipy.sparse.triu(scipy.sparse.coo_matrix(M), k=1).tocoo()
        keep = upper.data > 0
        edges = np.stack([upper.row[keep], upper.col[keep]], axis=1).astype(int)
        weights = upper.data[keep].copy()
        self.__dict__["_graph"] = (M.shape[0], edges, weights, _path_order(M.shape[0], edges))
        self.__dict__.pop("_warm", None)
        if isinstance(M, np.ndarray):
            M.setflags(write=False)  # the graph above is derived from it: no in-place edits
        return M

    def check_shape(self, n_features: int, n_tasks: int) -> None:
        n = self._graph[0]
        if n != n_tasks:
            raise PenaltyError(f"FusedL1's A is {n}x{n} but the problem has {n_tasks} tasks")

    @property
    def label(self) -> str:
        """"FusedL1", naming the graph when it is not a chain (no prox, no dual test)."""
        return "FusedL1" if self.is_chain else "FusedL1 (graph not a union of paths)"

    @property
    def is_chain(self) -> bool:
        """True when every component of the graph is a path (then the prox is exact)."""
        return self._graph[3] is not None

    def incidence(self) -> scipy.sparse.csc_matrix:
        """Weighted incidence ``B`` (T, E), columns ``A_st (e_s − e_t)``: the term is
        ``α ‖W B‖₁``."""
        n, edges, weights, _ = self._graph
        E = len(weights)
        rows = edges.T.ravel()
        cols = np.concatenate([np.arange(E), np.arange(E)])
        vals = np.concatenate([weights, -weights])
        return scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(n, E))

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Any:
        return params["alpha"] * cp.sum(cp.abs(W @ self.incidence()))

    def value(self, W: np.ndarray) -> float:
        _, edges, weights, _ = self._graph
        if len(weights) == 0:
            return 0.0
        diffs = np.abs(W[:, edges[:, 0]] - W[:, edges[:, 1]]).sum(axis=0)
        return self.alpha * float(diffs @ weights)

    def provides(self, oracle: str) -> bool:
        """``prox`` on a graph whose components are paths; nothing else in closed form."""
        if oracle == "prox":
            return self.is_chain
        return super().provides(oracle)

    def prox(self, V: np.ndarray, step: float) -> np.ndarray:
        """Per row, the exact weighted 1-D total-variation prox along each path.

        Raises
        ------
        PenaltyError
            On a graph that is not a union of paths (no exact prox; use a conic backend).
        """
        n, _, weights, chain = self._graph
        if chain is None:
            raise PenaltyError("FusedL1 has an exact prox only on a graph whose components "
                               "are paths (a chain); use backend='clarabel'")
        order, links = chain
        lam = np.where(links >= 0, step * self.alpha * weights[np.maximum(links, 0)], 0.0)
        warm = self.__dict__.get("_warm")
        U0 = warm[1] if warm is not None and warm[0] == V.shape else None
        X, U = _prox.tv_prox_rows(V[:, order], lam, U0)
        self.__dict__["_warm"] = (V.shape, U)
        out = np.empty_like(X)
        out[:, order] = X
        return out

    def prox_composes_with(self, other: Penalty) -> bool:
        """The chain's prox, then soft-thresholding and/or the row shrink, is the exact prox
        of the sum (Friedman et al. 2007 for L1; any row-wise seminorm before a row-group
        norm): FusedL1 goes first before L1, L21 and SparseGroup."""
        return self.is_chain and isinstance(other, (L1, L21, SparseGroup))


class SparseGroup(Penalty):
    r"""Sparse-group lasso :math:`\alpha_1\lVert W\rVert_1 + \alpha_2\sum_j\lVert w^j\rVert_2`.

    Rows ``w^j`` are features across tasks. The same objective as ``L1(alpha_l1)`` plus
    ``L21(alpha_l21)``, as one term with one exact prox (soft-threshold at ``α₁``, then
    the row shrink at ``α₂``) and an exact dual test: ``V`` is in the dual ball iff
    ``‖soft(v^j, α₁)‖₂ ≤ α₂`` for every row. Needs the second-order cone.

    Parameters
    ----------
    alpha_l1, alpha_l21 : float ≥ 0
    """

    structure: ClassVar[str] = "norm"
    cones: ClassVar[frozenset[str]] = frozenset({"nonneg", "soc"})
    _params: ClassVar[tuple[str, ...]] = ("alpha_l1", "alpha_l21")

    def __init__(self, alpha_l1: float = 1.0, alpha_l21: float = 1.0):
        self.alpha_l1 = alpha_l1
        self.alpha_l21 = alpha_l21

    alpha = _several_strengths("1.0: the two strengths are part of the norm (see "
                              ":meth:`dual_norm`).", lambda self: 1.0)

    def cvxpy_parameters(self, n_features: int, n_tasks: int) -> dict[str, Any]:
        return {"alpha_l1": self.alpha_l1, "alpha_l21": self.alpha_l21}

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Any:
        return (params["alpha_l1"] * cp.sum(cp.abs(W))
                + params["alpha_l21"] * cp.mixed_norm(W, 2, 1))

    def value(self, W: np.ndarray) -> float:
        return (self.alpha_l1 * float(np.abs(W).sum())
                + self.alpha_l21 * float(np.linalg.norm(W, axis=1).sum()))

    def prox(self, V: np.ndarray, step: float) -> np.ndarray:
        """Soft-threshold at ``step·α₁``, then the row shrink at ``step·α₂`` (exact)."""
        return _prox.shrink_rows(_prox.soft_threshold(V, step * self.alpha_l1),
                                 step * self.alpha_l21)

    def merge(self, other: Penalty) -> Penalty | None:
        """L1, L21 and SparseGroup terms add their strengths into one SparseGroup."""
        if isinstance(other, SparseGroup):
            return SparseGroup(self.alpha_l1 + other.alpha_l1, self.alpha_l21 + other.alpha_l21)
        if isinstance(other, L1):
            return SparseGroup(self.alpha_l1 + other.alpha, self.alpha_l21)
        if isinstance(other, L21):
            return SparseGroup(self.alpha_l1, self.alpha_l21 + other.alpha)
        return None

    def prox_composes_with(self, other: Penalty) -> bool:
        """A further row shrink (L21) after this prox is the prox of the sum."""
        return isinstance(other, L21)

    def dual_norm(self, V: np.ndarray) -> float:
        """``1/s*`` with ``s*`` the largest ``s`` passing the row test for ``sV``."""
        s = _prox.row_test_scale(V, self.alpha_l1, self.alpha_l21)
        return 0.0 if np.isinf(s) else (np.inf if s == 0 else 1.0 / s)

