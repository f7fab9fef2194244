r"""Decomposition penalties: ``W = P + Q`` with one norm per part.

Each term is the infimal convolution

.. math::

    g(W) = \min_{P + Q = W}\ g_1(P) + g_2(Q),

written with the parts as auxiliary variables: the conic backends solve for ``P`` and
``W``, the "fista" backend iterates on ``(P, Q)`` stacked with the loss seen through
``W = P + Q``, and both report the parts in ``sol.parts``. The objective and the
certificate are evaluated at the parts (``prob.objective(W, parts=sol.parts)``);
without parts only :class:`Dirty` has a closed form (its rows separate).

Dual side: the conjugate of an infimal convolution is the sum of the conjugates, so a
dual point must satisfy one dual-norm constraint per part,
``s = min(1, min_i α_i / Ω_i°(V))``; :class:`SparsePlusLowRank` has
``g*(V) = ι{max|V| ≤ γ} + τ σ_max(V)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .._linalg import spectral_norm_bound
from .._optional import cp
from ..exceptions import PenaltyError
from . import _prox
from .base import Penalty, Term, check_strength

__all__ = ["Decomposition", "Dirty", "RobustMTL", "RobustFeatureLearning",
           "SparsePlusLowRank"]


def _several_strengths(doc: str, value: Callable[[Any], float]) -> property:
    """An ``alpha`` for a term with one strength per part: reads ``value(self)``; setting
    it (a path over ``alpha``) is refused with the names of the real strengths."""

    def refuse(self: Penalty, new: float) -> None:
        names = ", ".join(n for n in self._params if n.startswith("alpha") or n == "trace_bound")
        raise PenaltyError(f"{self.label} has one strength per part ({names}): set those "
                           f"instead of alpha, e.g. {self.label}.set_params({names.split(', ')[0]}"
                           f"={new!r})")

    return property(value, refuse, doc=doc)


@dataclass(frozen=True)
class _Norm:
    """One part's unit norm: value, prox of ``t·Ω``, dual norm, CVXPY atom, cones."""

    formula: str
    value: Callable[[np.ndarray], float]
    prox: Callable[[np.ndarray, float], np.ndarray]
    dual: Callable[[np.ndarray], float]
    atom: Callable[[Any], Any]
    cones: frozenset[str]


_ROWS_LINF = _Norm(
    "Σ_j ‖p^j‖_∞",
    lambda P: float(np.abs(P).max(axis=1, initial=0.0).sum()),
    _prox.prox_linf_rows,
    lambda V: float(np.abs(V).sum(axis=1).max(initial=0.0)),
    lambda P: cp.mixed_norm(P, "inf", 1),
    frozenset({"nonneg"}),
)
_ROWS_L2 = _Norm(
    "Σ_j ‖p^j‖₂",
    lambda P: float(np.linalg.norm(P, axis=1).sum()),
    _prox.shrink_rows,
    lambda V: float(np.linalg.norm(V, axis=1).max(initial=0.0)),
    lambda P: cp.mixed_norm(P, 2, 1),
    frozenset({"soc"}),
)
_ENTRIES = _Norm(
    "‖Q‖₁",
    lambda Q: float(np.abs(Q).sum()),
    _prox.soft_threshold,
    lambda V: float(np.abs(V).max(initial=0.0)),
    lambda Q: cp.sum(cp.abs(Q)),
    frozenset({"nonneg"}),
)
_COLUMNS = _Norm(
    "Σ_t ‖q_t‖₂",
    lambda Q: float(np.linalg.norm(Q, axis=0).sum()),
    _prox.shrink_cols,
    lambda V: float(np.linalg.norm(V, axis=0).max(initial=0.0)),
    lambda Q: cp.sum(cp.norm(Q, 2, axis=0)),
    frozenset({"soc"}),
)
_NUCLEAR = _Norm(
    "‖L‖_*",
    lambda L: float(np.linalg.svd(L, compute_uv=False).sum()) if L.size else 0.0,
    _prox.svt,
    spectral_norm_bound,
    lambda L: cp.normNuc(L),
    frozenset({"psd"}),
)


class Decomposition(Penalty):
    """Base of the terms ``min_{P+Q=W} g_1(P) + g_2(Q)`` with named parts.

    Subclasses name the parts (:attr:`part_names`), say how to evaluate and prox each
    part (:meth:`part_values`, :meth:`prox_parts`) and write the CVXPY term with the
    first part as a variable and the second as ``W − P``.
    """

    structure: ClassVar[str] = "other"
    #: Names of the two parts, first then second (``sol.parts`` keys).
    part_names: ClassVar[tuple[str, str]] = ("P", "Q")

    def part_values(self, first: np.ndarray, second: np.ndarray) -> float:
        """``g_1(first) + g_2(second)`` (strengths included)."""
        raise NotImplementedError

    def prox_parts(self, Z: np.ndarray, step: float) -> np.ndarray:
        """Separable prox of ``step·(g_1 + g_2)`` on the stacked parts ``Z`` (2, d, T)."""
        raise NotImplementedError

    def split(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """An optimal split ``(P, W − P)`` of ``W`` where it has a closed form, else None."""
        return None

    def value(self, W: np.ndarray) -> float:
        """``g(W)``, the infimal convolution, where it has a closed form.

        Raises
        ------
        PenaltyError
            When it has none: evaluate the term at its parts instead.
        """
        split = self.split(W)
        if split is None:
            raise PenaltyError(
                f"{type(self).__name__}'s value at W alone is a minimisation over the split "
                f"W = {' + '.join(self.part_names)} without a closed form; evaluate it at the "
                "parts: prob.objective(W, parts=sol.parts) or mc.certify(prob, W, "
                "parts=sol.parts)")
        return self.part_values(*split)

    def value_at(self, W: np.ndarray, parts: Mapping[str, np.ndarray]) -> float:
        """The term at the given parts, after checking that they are present and sum to ``W``."""
        missing = [name for name in self.part_names if name not in parts]
        if missing:
            raise PenaltyError(
                f"parts is missing {', '.join(map(repr, missing))} for {type(self).__name__}; "
                f"pass the dict sol.parts (keys {', '.join(map(repr, self.part_names))})")
        first, second = (np.asarray(parts[n], dtype=float) for n in self.part_names)
        if first.shape != W.shape or second.shape != W.shape:
            raise PenaltyError(f"parts {self.part_names} must have the shape of W, {W.shape}")
        err = float(np.abs(first + second - W).max(initial=0.0))
        if err > 1e-9 * max(1.0, float(np.abs(W).max(initial=0.0))):
            raise PenaltyError(
                f"parts {' + '.join(self.part_names)} differ from W by {err:.2e}; pass the "
                "parts that belong to this W")
        return self.part_values(first, second)

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Term:
        first = cp.Variable(W.shape, name=self.part_names[0])
        second = W - first
        expr, constraints = self._cvxpy_parts(first, second, params)
        return Term(expr, tuple(constraints), {self.part_names[0]: first,
                                                self.part_names[1]: second})

    def _cvxpy_parts(self, first: Any, second: Any, params: dict[str, Any]
                     ) -> tuple[Any, list[Any]]:
        raise NotImplementedError


class _InfConv(Decomposition):
    """``α_1 Ω_1(P) + α_2 Ω_2(Q)`` over ``P + Q = W``, both Ω norms.

    The infimal convolution of two norms is a norm with dual norm
    ``max(Ω_1°(V)/α_1, Ω_2°(V)/α_2)``: the term answers as a norm of strength 1 (the
    strengths live inside it), so the certificate scales the dual point by
    ``s = min(1, min_i α_i/Ω_i°(V))``.
    """

    structure: ClassVar[str] = "norm"
    _strengths: ClassVar[tuple[str, str]] = ("alpha_1", "alpha_2")

    def _norms(self) -> tuple[_Norm, _Norm]:
        raise NotImplementedError

    alpha = _several_strengths("1.0: the strengths are part of the norm (see :meth:`dual_norm`).",
                              lambda self: 1.0)

    @property
    def cones(self) -> frozenset[str]:  # type: ignore[override]
        first, second = self._norms()
        return first.cones | second.cones

    def _pair(self) -> tuple[float, float]:
        return getattr(self, self._strengths[0]), getattr(self, self._strengths[1])

    def cvxpy_parameters(self, n_features: int, n_tasks: int) -> dict[str, Any]:
        return dict(zip(self._strengths, self._pair(), strict=True))

    def _cvxpy_parts(self, first: Any, second: Any, params: dict[str, Any]
                     ) -> tuple[Any, list[Any]]:
        n1, n2 = self._norms()
        a1, a2 = (params[name] for name in self._strengths)
        return a1 * n1.atom(first) + a2 * n2.atom(second), []

    def part_values(self, first: np.ndarray, second: np.ndarray) -> float:
        n1, n2 = self._norms()
        a1, a2 = self._pair()
        return a1 * n1.value(first) + a2 * n2.value(second)

    def prox_parts(self, Z: np.ndarray, step: float) -> np.ndarray:
        n1, n2 = self._norms()
        a1, a2 = self._pair()
        return np.stack([n1.prox(Z[0], step * a1), n2.prox(Z[1], step * a2)])

    def dual_norm(self, V: np.ndarray) -> float:
        """``max(Ω_1°(V)/α_1, Ω_2°(V)/α_2)`` (``inf`` for a zero strength and ``V ≠ 0``)."""
        ratios = []
        for norm, a in zip(self._norms(), self._pair(), strict=True):
            dn = norm.dual(V)
            ratios.append(0.0 if dn == 0 else (np.inf if a == 0 else dn / a))
        return max(ratios)



class Dirty(_InfConv):
    r"""Dirty model (Jalali et al., NIPS 2010): row-sparse plus entry-sparse.

    .. math::

        \min_{P + Q = W}\ \alpha_{rows} \sum_j \lVert p^j\rVert_\infty
        + \alpha_{entries} \lVert Q\rVert_1

    (``rows="linf"``, Jalali's L1/L∞ and MALSAR's ``Least_Dirty``), or with
    ``Σ_j ‖p^j‖₂`` for ``rows="l2"`` (MuTaR's ``DirtyModel``). Rows are features across
    tasks. Parts ``"P"`` (shared rows) and ``"Q"`` (entries). The rows separate, so the
    value at ``W`` alone has a closed form (a sort per row). Cones: LP for "linf" (every
    backend, OSQP included), SOC for "l2".

    Parameters
    ----------
    alpha_rows, alpha_entries : float ≥ 0
    rows : {"linf", "l2"}, default "linf"
    """

    _params: ClassVar[tuple[str, ...]] = ("alpha_rows", "alpha_entries", "rows")
    _strengths: ClassVar[tuple[str, str]] = ("alpha_rows", "alpha_entries")

    def __init__(self, alpha_rows: float = 1.0, alpha_entries: float = 1.0,
                 rows: str = "linf"):
        self.alpha_rows = alpha_rows
        self.alpha_entries = alpha_entries
        self.rows = rows

    def _validate(self, name: str, value: Any) -> Any:
        if name == "rows":
            if value not in ("linf", "l2"):
                raise PenaltyError(f"rows must be 'linf' (Jalali's L1/L∞) or 'l2' (MuTaR's "
                                   f"L1/L2), got {value!r}")
            return value
        return super()._validate(name, value)

    def _norms(self) -> tuple[_Norm, _Norm]:
        return (_ROWS_LINF if self.rows == "linf" else _ROWS_L2), _ENTRIES

    def split(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The optimal split, row by row in closed form."""
        _, P = _prox.row_l1_infconv(W, self.alpha_rows, self.alpha_entries, self.rows)
        return P, W - P

    def value(self, W: np.ndarray) -> float:
        return float(_prox.row_l1_infconv(W, self.alpha_rows, self.alpha_entries,
                                          self.rows)[0].sum())


class RobustMTL(_InfConv):
    r"""Robust multi-task learning (Chen, Zhou & Ye, KDD 2011): low rank plus outlier tasks.

    .. math::

        \min_{L + S = W}\ \alpha_{lowrank} \lVert L\rVert_* + \alpha_{tasks} \sum_t
        \lVert s_t\rVert_2

    Parts ``"L"`` (shared low-rank structure) and ``"S"`` (column-sparse: the outlier
    tasks). MALSAR's ``Least_RMTL(ρ₁, ρ₂)`` is ``alpha_lowrank=ρ₁, alpha_tasks=ρ₂`` with
    ``SquaredLoss(scale="sum")`` and the loss doubled. Needs the PSD cone (SCS,
    Clarabel) or the "fista" backend (SVT on L, column shrink on S).

    Parameters
    ----------
    alpha_lowrank, alpha_tasks : float ≥ 0
    """

    _params: ClassVar[tuple[str, ...]] = ("alpha_lowrank", "alpha_tasks")
    _strengths: ClassVar[tuple[str, str]] = ("alpha_lowrank", "alpha_tasks")
    part_names: ClassVar[tuple[str, str]] = ("L", "S")

    def __init__(self, alpha_lowrank: float = 1.0, alpha_tasks: float = 1.0):
        self.alpha_lowrank = alpha_lowrank
        self.alpha_tasks = alpha_tasks

    def _norms(self) -> tuple[_Norm, _Norm]:
        return _NUCLEAR, _COLUMNS


class RobustFeatureLearning(_InfConv):
    r"""Robust multi-task feature learning, rMTFL (Gong, Ye & Zhang, KDD 2012).

    .. math::

        \min_{P + Q = W}\ \alpha_{rows} \sum_j \lVert p^j\rVert_2 + \alpha_{tasks}
        \sum_t \lVert q_t\rVert_2

    Parts ``"P"`` (shared features: row-sparse) and ``"Q"`` (outlier tasks:
    column-sparse). Needs the second-order cone, or "fista" (row and column shrinks).

    Parameters
    ----------
    alpha_rows, alpha_tasks : float ≥ 0
    """

    _params: ClassVar[tuple[str, ...]] = ("alpha_rows", "alpha_tasks")
    _strengths: ClassVar[tuple[str, str]] = ("alpha_rows", "alpha_tasks")

    def __init__(self, alpha_rows: float = 1.0, alpha_tasks: float = 1.0):
        self.alpha_rows = alpha_rows
        self.alpha_tasks = alpha_tasks

    def _norms(self) -> tuple[_Norm, _Norm]:
        return _ROWS_L2, _COLUMNS


class SparsePlusLowRank(Decomposition):
    r"""Sparse plus low rank with a trace-norm ball (Chen, Liu & Ye, KDD 2010).

    .. math::

        \min_{P + Q = W}\ \alpha_{sparse} \lVert P\rVert_1
        \quad\text{s.t.}\quad \lVert Q\rVert_* \le \tau

    Parts ``"P"`` (sparse) and ``"Q"`` (low rank, in the trace ball of radius
    ``trace_bound``). MALSAR's ``Least_SparseTrace(ρ₁, ρ₂)`` is ``alpha_sparse=ρ₁,
    trace_bound=ρ₂`` with the loss doubled (MALSAR's code thresholds at 2τ and stays
    above this optimum). Needs the PSD cone, or "fista" (soft-threshold on P, projection
    onto the trace ball on Q). Conjugate ``g*(V) = ι{max|V_ij| ≤ α} + τ σ_max(V)``.

    Parameters
    ----------
    alpha_sparse : float ≥ 0
    trace_bound : float ≥ 0
    """

    _params: ClassVar[tuple[str, ...]] = ("alpha_sparse", "trace_bound")
    cones: ClassVar[frozenset[str]] = frozenset({"nonneg", "psd"})

    def __init__(self, alpha_sparse: float = 1.0, trace_bound: float = 1.0):
        self.alpha_sparse = alpha_sparse
        self.trace_bound = trace_bound

    def _validate(self, name: str, value: Any) -> Any:
        if name == "trace_bound":
            return check_strength(value, name)
        return super()._validate(name, value)

    alpha = _several_strengths("The strength of the sparse part, ``alpha_sparse``.",
                              lambda self: self.alpha_sparse)

    def cvxpy_parameters(self, n_features: int, n_tasks: int) -> dict[str, Any]:
        return {"alpha_sparse": self.alpha_sparse, "trace_bound": self.trace_bound}

    def _cvxpy_parts(self, first: Any, second: Any, params: dict[str, Any]
                     ) -> tuple[Any, list[Any]]:
        return (params["alpha_sparse"] * cp.sum(cp.abs(first)),
                [cp.normNuc(second) <= params["trace_bound"]])

    def part_values(self, first: np.ndarray, second: np.ndarray) -> float:
        """``α‖P‖₁`` at the feasible split nearest to the given parts.

        ``Q`` is projected onto the trace ball first (no change when it is inside) and the
        excess moves to ``P``, so a conic solver's ``Q`` a round-off outside the ball is
        scored at a feasible split of the same ``W``.
        """
        inside = _prox.project_nuclear_ball(second, self.trace_bound)
        return self.alpha_sparse * _ENTRIES.value(first + second - inside)

    def prox_parts(self, Z: np.ndarray, step: float) -> np.ndarray:
        return np.stack([_prox.soft_threshold(Z[0], step * self.alpha_sparse),
                         _prox.project_nuclear_ball(Z[1], self.trace_bound)])

    def conjugate(self, V: np.ndarray) -> float:
        """``g*(V) = τ σ_max(V)`` when ``max|V_ij| ≤ α``, else ``inf``."""
        if _ENTRIES.dual(V) > self.alpha_sparse:
            return np.inf
        return self.trace_bound * _NUCLEAR.dual(V)

