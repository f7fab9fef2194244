"""The :class:`Penalty` base class and the protocol every term answers.

A penalty holds plain floats and NumPy arrays, never CVXPY objects: the
:class:`~mtlcvx.Problem` asks it for the current numeric values of its CVXPY
Parameters (:meth:`Penalty.cvxpy_parameters`) and for a CVXPY term written in those
Parameters (:meth:`Penalty.cvxpy_term`). Values are validated when they are set, in
``__init__`` and :meth:`set_params` alike, so ``alpha = -1`` is refused at once.

The rest of the package never tests a penalty's class: it asks the term. A term states
its :attr:`~Penalty.structure` and answers the optional oracles it :meth:`~Penalty.provides`
(``prox``, ``dual_norm``, ``conjugate``, ``alpha_max``, ``gradient``, ``lipschitz``,
``strong_convexity``, ``support``); the certificate ladder, the prox of a sum, the
Lipschitz bound and the strong-convexity modulus are built from those answers alone.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ..exceptions import PenaltyError

__all__ = ["Penalty", "Term", "Support", "CONES", "STRUCTURES", "ORACLES"]

#: Cone names used in capability declarations.
CONES = frozenset({"zero", "nonneg", "soc", "psd", "exp", "quadratic"})

#: What a term can be (:attr:`Penalty.structure`).
STRUCTURES = ("quadratic", "smooth", "norm", "squared_norm", "other")

#: The optional oracles a term may answer (:meth:`Penalty.provides`).
ORACLES = ("prox", "dual_norm", "conjugate", "alpha_max", "gradient", "lipschitz",
           "strong_convexity", "prox_parts", "support")


class Term(NamedTuple):
    """What :meth:`Penalty.cvxpy_term` returns.

    Attributes
    ----------
    expr : cvxpy.Expression
        The scalar, convex term in the variable ``W`` (d, T).
    constraints : tuple of cvxpy constraints
        Constraints that come with the term (a bound such as ``‖Q‖_* ≤ τ``); compiled
        with the expression.
    parts : mapping of str to cvxpy.Variable
        Named auxiliary variables, each (d, T): the parts of a decomposition
        ``W = P + Q``. Conic backends return their values in ``sol.parts``.
    """

    expr: Any
    constraints: tuple[Any, ...] = ()
    parts: Mapping[str, Any] = MappingProxyType({})


class Support(NamedTuple):
    r"""What :meth:`Penalty.support` returns: the term near ``W`` with the entries off its
    support held at zero, where it is twice differentiable.

    Attributes
    ----------
    mask : ndarray of bool (d, T)
        The free entries (the support): nonzero entries for L1, every entry of a nonzero
        row for L21. Off the mask the entries are fixed at 0.
    gradient : ndarray (d, T)
        Gradient of the term in the free entries at ``W`` (0 off the mask).
    hessian : callable
        ``hessian(D) -> ndarray (d, T)``: the Hessian at ``W`` applied to a direction
        ``D`` that is 0 off the mask (the result is 0 off the mask).
    diagonal : ndarray (d, T)
        The Hessian's diagonal at ``W`` (0 off the mask), for preconditioners.
    """

    mask: np.ndarray
    gradient: np.ndarray
    hessian: Callable[[np.ndarray], np.ndarray]
    diagonal: np.ndarray


#: Largest strength accepted: beyond it products such as ``α·‖W‖²``, ``2α`` or ``α·λ_max``
#: leave float64's range (or its precision: ``W*`` shrinks like ``1/α``).
MAX_STRENGTH = 1e150


def check_strength(value: Any, name: str = "alpha") -> float:
    """Validate a penalty strength: a finite real number in ``[0, MAX_STRENGTH]``."""
    if type(value) is not float:  # (a float needs no test of its type against numbers.Real)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            if isinstance(value, np.ndarray) and value.size == 1:
                value = value.item()
            else:
                raise PenaltyError(f"{name} must be a real number ≥ 0, got {value!r}")
        value = float(value)
    if not math.isfinite(value) or value < 0:
        raise PenaltyError(f"{name} must be a finite number ≥ 0, got {value}; use {name}=0 "
                           "to switch the term off")
    if value > MAX_STRENGTH:
        raise PenaltyError(f"{name}={value:g} is beyond {MAX_STRENGTH:g}, where float64 "
                           "products of the strength overflow or lose W; rescale the data "
                           "(or the loss) instead")
    return value


class Penalty:
    r"""Base class of every penalty, and the protocol the rest of the package asks.

    Subclasses set :attr:`cones` (what a conic backend needs) and :attr:`structure`,
    list their constructor parameters in :attr:`_params`, validate them in
    :meth:`_validate`, and implement :meth:`cvxpy_term` and :meth:`value`. They then
    implement whichever optional oracles they can answer exactly; :meth:`provides`
    reports them (a method counts as provided when the subclass defines it).

    Structures:

    * ``"quadratic"``: ``(α/2) tr(W K Wᵀ)`` (``side = "task"``, K T×T) or
      ``(α/2) tr(Wᵀ K W)`` (``side = "feature"``, K d×d), with ``matrix(d, T)`` (K,
      without α) and ``factor(d, T)`` (R with ``R Rᵀ = K``); see
      :class:`~mtlcvx.penalties.QuadraticPenalty`.
    * ``"smooth"``: differentiable with a Lipschitz gradient (``gradient``, and
      ``lipschitz`` / ``strong_convexity`` when known).
    * ``"norm"``: ``α·Ω(W)`` with Ω a norm; ``dual_norm`` is ``Ω°``.
    * ``"squared_norm"``: ``(α/2)·Ω(W)²``; ``dual_norm`` is ``Ω°``.
    * ``"other"``: anything else convex.

    For norms and squared norms with a ``dual_norm``, :meth:`conjugate` and (norms)
    :meth:`alpha_max` come for free from the base class.
    """

    #: Cones a conic backend needs for this term.
    cones: ClassVar[frozenset[str]] = frozenset()
    #: One of :data:`STRUCTURES`.
    structure: ClassVar[str] = "other"
    #: How the term splits into a sum of independent pieces: ``"entries"`` (of each
    #: ``W_jt``, as L1), ``"rows"`` (of each feature's row, as L21), ``"columns"`` (of
    #: each task's column ``w_t``), or None. A norm separable over entries or columns has
    #: ``Ω°(V) = max_t Ω°(v_t)``, so its certificate scales the dual point per task;
    #: screening rules discard entries or rows.
    separable: ClassVar[str | None] = None
    #: ``p`` when the conjugate is positively homogeneous of degree p,
    #: ``P*(sV) = s^p·P*(V)`` for ``s ≥ 0`` (2 for LearnedClusters), else None: the
    #: certificate then scales its dual point in closed form instead of by a search.
    conjugate_degree: ClassVar[int | None] = None
    #: Names of the auxiliary (d, T) variables the term puts in ``Term.parts``.
    part_names: ClassVar[tuple[str, ...]] = ()
    #: Constructor parameter names, in order (get_params / set_params / repr).
    _params: ClassVar[tuple[str, ...]] = ("alpha",)

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    # -------------------------------------------------------------- parameters
    #: Attributes holding what was computed from the parameters other than ``alpha``
    #: (dropped when one of those is set).
    _derived: ClassVar[tuple[str, ...]] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._params:
            value = self._validate(name, value)  # first: a refused value keeps the rest
            if name != "alpha":
                for slot in self._derived:
                    self.__dict__.pop(slot, None)
        super().__setattr__(name, value)

    def _validate(self, name: str, value: Any) -> Any:
        if name.startswith("alpha"):
            return check_strength(value, name)
        return value

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters as a dict (scikit-learn convention)."""
        return {name: getattr(self, name) for name in self._params}

    def set_params(self, **params: Any) -> Penalty:
        """Set constructor parameters; each value is validated as in ``__init__``."""
        for key, value in params.items():
            if key not in self._params:
                raise PenaltyError(
                    f"{type(self).__name__} has no parameter {key!r}; "
                    f"valid parameters: {', '.join(self._params)}"
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        def fmt(v: Any) -> str:
            if isinstance(v, np.ndarray):
                return f"<array {v.shape}>"
            return repr(v)

        args = ", ".join(f"{k}={fmt(getattr(self, k))}" for k in self._params)
        return f"{type(self).__name__}({args})"

    # -------------------------------------------------------------- problem hooks
    def check_shape(self, n_features: int, n_tasks: int) -> None:
        """Check data-dependent shapes (K must be T×T, D d×d); raise PenaltyError.

        Cheap: called before every solve, since matrices may be set after the Problem is
        made.
        """

    def verify(self, n_features: int, n_tasks: int) -> None:
        """Checks run once when a :class:`~mtlcvx.Problem` is made; raise PenaltyError.

        Default :meth:`check_shape`; a term whose checks are costly (building a CVXPY
        expression, testing user oracles) does them here.
        """
        self.check_shape(n_features, n_tasks)

    def cvxpy_parameters(self, n_features: int, n_tasks: int) -> dict[str, Any]:
        """Current numeric values of the CVXPY Parameters this term is written in.

        The :class:`~mtlcvx.Problem` creates one ``cvxpy.Parameter`` per entry (scalars
        non-negative) and refreshes their values before every solve.
        """
        return {"alpha": self.alpha}

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Term | Any:
        """The term for the CVXPY variable ``W`` (d, T), DPP in ``params``.

        Returns a :class:`Term` (expression, constraints, parts); a bare CVXPY
        expression is accepted too.
        """
        raise NotImplementedError

    # -------------------------------------------------------------- numpy oracles
    def value(self, W: np.ndarray) -> float:
        """Value of the term at ``W`` (d, T), α included, computed in NumPy."""
        raise NotImplementedError

    def value_at(self, W: np.ndarray, parts: Mapping[str, np.ndarray]) -> float:
        """Value with the term's parts (:attr:`part_names`) fixed at ``parts``.

        Decomposition terms ``min_{P + Q = W} …`` override it to evaluate at the given
        parts (an upper bound on :meth:`value`); the default is ``value(W)``.
        """
        return self.value(W)

    @property
    def active(self) -> bool:
        """False when every strength (each parameter named ``alpha…``) is 0."""
        strengths = False
        for name in self._params:  # (a loop: asked per term by every solve and certificate)
            if name.startswith("alpha"):
                if getattr(self, name) > 0:
                    return True
                strengths = True
        return not strengths

    @property
    def label(self) -> str:
        """Name of the term in messages and certificate reasons."""
        return type(self).__name__

    def _implements(self, oracle: str) -> bool:
        """True when the term itself answers ``oracle`` (here: its class defines it)."""
        return getattr(type(self), oracle) is not getattr(Penalty, oracle)

    def provides(self, oracle: str) -> bool:
        """True when the optional oracle ``oracle`` (one of :data:`ORACLES`) is available.

        ``conjugate`` is also available for a norm or squared norm with a ``dual_norm``,
        and ``alpha_max`` for a norm with a ``dual_norm``.
        """
        if oracle not in ORACLES:
            raise PenaltyError(f"unknown oracle {oracle!r}; the oracles are {', '.join(ORACLES)}")
        if self._implements(oracle):
            return True
        if oracle == "conjugate":
            return self.structure in ("norm", "squared_norm") and self._implements("dual_norm")
        if oracle == "alpha_max":
            return self.structure == "norm" and self._implements("dual_norm")
        return False

    @property
    def is_smooth(self) -> bool:
        """True when the term belongs to the smooth part (structure quadratic or smooth)."""
        return self.structure in ("quadratic", "smooth")

    @property
    def has_prox(self) -> bool:
        """Shorthand for ``provides("prox")``."""
        return self.provides("prox")

    def _missing(self, oracle: str) -> NotImplementedError:
        return NotImplementedError(f"{self.label} does not provide {oracle!r}")

    def prox(self, V: np.ndarray, step: float) -> np.ndarray:
        r"""Exact proximal operator ``argmin_W step·P(W) + ½‖W − V‖²_F`` (P with α)."""
        raise self._missing("prox")

    def prox_parts(self, Z: np.ndarray, step: float) -> np.ndarray:
        r"""Decomposition terms ``min_{P+Q=W} g_1(P) + g_2(Q)``: the exact prox of
        ``step·(g_1(P) + g_2(Q))`` at the parts stacked in ``Z`` (k, d, T), in the order of
        :attr:`part_names` (separable: one prox per part)."""
        raise self._missing("prox_parts")

    def dual_norm(self, V: np.ndarray) -> float:
        r"""``Ω°(V) = max{⟨V, W⟩ : Ω(W) ≤ 1}``, the dual of the unit norm Ω.

        For ``"norm"`` terms ``P = α·Ω``, for ``"squared_norm"`` terms ``P = (α/2)·Ω²``.
        """
        raise self._missing("dual_norm")

    def conjugate(self, V: np.ndarray) -> float:
        r"""Exact convex conjugate ``P*(V) = sup_W ⟨V, W⟩ − P(W)`` (α included; may be inf).

        Norms: 0 when ``Ω°(V) ≤ α``, else inf. Squared norms: ``Ω°(V)²/(2α)``.
        """
        if self.structure == "norm" and self._implements("dual_norm"):
            return 0.0 if self.dual_norm(V) <= self.alpha else np.inf
        if self.structure == "squared_norm" and self._implements("dual_norm"):
            dn = self.dual_norm(V)
            if self.alpha > 0:
                return dn * dn / (2.0 * self.alpha)
            return 0.0 if dn == 0 else np.inf
        raise self._missing("conjugate")

    def alpha_max(self, G: np.ndarray) -> float:
        """Smallest strength for which ``W = 0`` is optimal, ``G`` the gradient of the rest at 0.

        For a norm: ``Ω°(G)``.
        """
        if self.structure == "norm" and self._implements("dual_norm"):
            return self.dual_norm(G)
        raise self._missing("alpha_max")

    def gradient(self, W: np.ndarray) -> np.ndarray:
        """Gradient (d, T) of the term at ``W`` (α included)."""
        raise self._missing("gradient")

    def support(self, W: np.ndarray) -> Support:
        r"""The term on its support at ``W`` (α included): which entries are free, and
        the gradient and Hessian there with the other entries held at 0.

        On its support a sparsity norm is smooth (L1 with the signs of ``W`` is linear;
        L21 is smooth on nonzero rows), so the problem restricted to it is smooth and a
        few Newton steps solve it; fista uses the residual of that solution as a
        near-optimal dual point (see docs/certificates.md).
        """
        raise self._missing("support")

    def lipschitz(self, n_features: int, n_tasks: int) -> float:
        """Lipschitz constant of :meth:`gradient` on (d, T) matrices (α included)."""
        raise self._missing("lipschitz")

    def strong_convexity(self, n_features: int, n_tasks: int) -> float:
        """Strong-convexity modulus ``μ ≥ 0`` of the term on (d, T) matrices (α included)."""
        raise self._missing("strong_convexity")

    # -------------------------------------------------------------- sums of terms
    def merge(self, other: Penalty) -> Penalty | None:
        """One term equal to ``self + other``, or None.

        Default: two terms of the same class whose only parameter is ``alpha`` merge into
        one with the strengths added (``α₁Ω + α₂Ω = (α₁ + α₂)Ω``).
        """
        if type(other) is type(self) and self._params == ("alpha",):
            return type(self)(alpha=self.alpha + other.alpha)
        return None

    def prox_composes_with(self, other: Penalty) -> bool:
        """True when ``prox_{self + other} = prox_other ∘ prox_self`` exactly (self first).

        Default False; for example the L1 prox (soft-thresholding) followed by the L21
        row shrink is the exact prox of their sum (sparse group lasso).
        """
        return False
