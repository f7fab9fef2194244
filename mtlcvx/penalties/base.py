"""The :class:`Penalty` base class.

A penalty holds plain floats and NumPy arrays, never CVXPY objects (DESIGN §7.1): the
:class:`~mtlcvx.Problem` asks it for the current numeric values of its CVXPY
Parameters (:meth:`Penalty.cvxpy_parameters`) and for a CVXPY term written in those
Parameters (:meth:`Penalty.cvxpy_term`). Values are validated when they are set, in
``__init__`` and :meth:`set_params` alike, so ``alpha = -1`` is refused at once.
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import numpy as np

from ..exceptions import PenaltyError

__all__ = ["Penalty", "CONES"]

#: Cone names used in capability declarations (DESIGN §7.12).
CONES = frozenset({"zero", "nonneg", "soc", "psd", "exp", "quadratic"})


def check_strength(value: Any, name: str = "alpha") -> float:
    """Validate a penalty strength: a finite real number ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.item()
        else:
            raise PenaltyError(f"{name} must be a real number ≥ 0, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise PenaltyError(f"{name} must be a finite number ≥ 0, got {value}; use {name}=0 "
                           "to switch the term off")
    return value


class Penalty:
    """Base class of every penalty.

    Subclasses set :attr:`cones` (what a conic backend needs), list their constructor
    parameters in :attr:`_params`, validate them in :meth:`_validate`, and implement
    :meth:`cvxpy_term` and :meth:`value`; smooth terms add :meth:`gradient`, non-smooth
    terms with a closed-form proximal operator add :meth:`prox`.
    """

    #: Cones a conic backend needs for this term (DESIGN §7.12).
    cones: ClassVar[frozenset[str]] = frozenset()
    #: Constructor parameter names, in order (get_params / set_params / repr).
    _params: ClassVar[tuple[str, ...]] = ("alpha",)
    #: True for terms with a Lipschitz gradient (the quadratic penalties).
    smooth: ClassVar[bool] = False

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    # -------------------------------------------------------------- parameters
    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._params:
            value = self._validate(name, value)
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
        """Check data-dependent shapes (K must be T×T, D d×d); raise PenaltyError."""

    def cvxpy_parameters(self, n_features: int, n_tasks: int) -> dict[str, Any]:
        """Current numeric values of the CVXPY Parameters this term is written in.

        The :class:`~mtlcvx.Problem` creates one ``cvxpy.Parameter`` per entry (scalars
        non-negative) and refreshes their values before every solve.
        """
        return {"alpha": self.alpha}

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Any:
        """CVXPY expression of the term for the variable ``W`` (d, T), DPP in ``params``."""
        raise NotImplementedError

    # -------------------------------------------------------------- numpy oracles
    def value(self, W: np.ndarray) -> float:
        """Value of the term at ``W`` (d, T), computed in NumPy."""
        raise NotImplementedError

    @property
    def is_smooth(self) -> bool:
        """True when the term contributes a gradient (the smooth part of the problem)."""
        return self.smooth

    @property
    def has_prox(self) -> bool:
        """True when :meth:`prox` is available in closed form."""
        return type(self).prox is not Penalty.prox

    def prox(self, V: np.ndarray, step: float) -> np.ndarray:
        """``argmin_W step·g(W) + ½‖W − V‖²_F`` for this term ``g``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form prox")

    def gradient(self, W: np.ndarray) -> np.ndarray:
        """Gradient (d, T) of a smooth term at ``W``."""
        raise NotImplementedError(f"{type(self).__name__} is not smooth")
