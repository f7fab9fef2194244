"""User-defined regularizers written as CVXPY expressions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import cvxpy as cp
import numpy as np

from ..exceptions import PenaltyError
from .base import CONES, STRUCTURES, Penalty, Term, check_strength

__all__ = ["Custom"]


def _dcp_reason(problem: cp.Problem) -> str:
    """CVXPY's own explanation of why ``problem`` is not DCP."""
    try:
        from cvxpy.utilities.debug_tools import build_non_disciplined_error_msg

        return build_non_disciplined_error_msg(problem, "DCP")
    except Exception:  # private helper moved: fall back to the generic sentence
        return "the expression does not follow CVXPY's DCP rules"


#: Constructor argument -> the attribute holding it (the names ``value``, ``prox``, …
#: are the penalty's own methods, which apply α).
_STRUCTURES_CUSTOM = tuple(s for s in STRUCTURES if s != "quadratic")
_ATTRS = {"value": "value_fn", "prox": "prox_fn", "gradient": "gradient_fn",
          "lipschitz": "lipschitz_fn", "dual_norm": "dual_norm_fn",
          "conjugate": "conjugate_fn", "structure": "declared_structure"}


class Custom(Penalty):
    r"""A user's regularizer :math:`\alpha \cdot e(W)` with ``e = expression(W)``.

    Supplied oracles buy certificates and first-order solves (see docs/certificates.md,
    "Your own regularizer"); each is checked against the CVXPY expression when the
    :class:`~mtlcvx.Problem` is made.

    Parameters
    ----------
    expression : callable
        ``expression(W) -> cvxpy.Expression``: a convex, scalar CVXPY expression of the
        variable ``W`` (d, T), written with CVXPY atoms (``cp.norm``, ``cp.abs``, …, not
        NumPy functions) and without CVXPY Parameters. It is checked with CVXPY's DCP
        rules when the :class:`~mtlcvx.Problem` is made.
    cones : iterable of str
        Cones a conic backend needs for it, among ``"zero", "nonneg", "soc", "psd",
        "exp", "quadratic"`` (for example ``{"soc"}`` for a norm).
    alpha : float ≥ 0, default 1.0
        Strength; a CVXPY Parameter in the compiled problem (changes re-solve without
        a rebuild).
    value : callable, optional
        ``value(W) -> float``, NumPy value of ``e(W)`` (not multiplied by α). Default:
        CVXPY evaluates the expression at ``W``.
    prox : callable, optional
        ``prox(V, step) -> W``: ``argmin_W step·e(W) + ½‖W − V‖²``; the package calls it
        with ``step`` already multiplied by α.
    gradient : callable, optional
        ``gradient(W) -> (d, T)``, the gradient of ``e`` when it is smooth.
    lipschitz : float or callable, optional
        Lipschitz constant of ``gradient`` (without α), or ``lipschitz(d, T) -> float``.
        With it, first-order methods take the step ``1/L`` instead of backtracking.
    dual_norm : callable, optional
        ``dual_norm(V) -> float``, ``Ω°(V)`` for ``structure="norm"`` (``e = Ω``) or
        ``"squared_norm"`` (``e = ½Ω²``).
    conjugate : callable, optional
        ``conjugate(V) -> float``, the convex conjugate ``e*(V)`` of ``e`` (without α;
        may be ``inf``). The package uses ``(αe)*(V) = α·e*(V/α)``.
    structure : {"smooth", "norm", "squared_norm", "other"}, optional
        What ``e`` is; default "smooth" when a gradient is given, else "other".

    Examples
    --------
    >>> import cvxpy as cp, numpy as np, mtlcvx as mc
    >>> col_groups = mc.Custom(lambda W: cp.sum(cp.norm(W, 2, axis=0)), cones={"soc"},
    ...                        alpha=0.1, structure="norm",
    ...                        dual_norm=lambda V: np.linalg.norm(V, axis=0).max())
    >>> col_groups.provides("dual_norm"), col_groups.provides("alpha_max")
    (True, True)
    """

    _params = ("expression", "cones", "alpha", "value", "prox", "gradient", "lipschitz",
               "dual_norm", "conjugate", "structure")

    def __init__(
        self,
        expression: Callable[[Any], Any],
        cones: Iterable[str],
        alpha: float = 1.0,
        value: Callable[[np.ndarray], float] | None = None,
        prox: Callable[[np.ndarray, float], np.ndarray] | None = None,
        gradient: Callable[[np.ndarray], np.ndarray] | None = None,
        lipschitz: float | Callable[[int, int], float] | None = None,
        dual_norm: Callable[[np.ndarray], float] | None = None,
        conjugate: Callable[[np.ndarray], float] | None = None,
        structure: str | None = None,
    ):
        self.expression = expression
        self.cones = cones
        self.alpha = alpha
        self.value_fn = value
        self.prox_fn = prox
        self.gradient_fn = gradient
        self.lipschitz_fn = lipschitz
        self.dual_norm_fn = dual_norm
        self.conjugate_fn = conjugate
        self.declared_structure = structure

    # -------------------------------------------------------------- parameters
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _ATTRS.values():
            value = self._validate(name, value)
        super().__setattr__(name, value)
        if name in ("declared_structure", "dual_norm_fn") and {
                "declared_structure", "dual_norm_fn"} <= self.__dict__.keys():
            self._check_structure()

    @property
    def structure(self) -> str:  # type: ignore[override]
        """The declared structure; default "smooth" with a gradient, else "other"."""
        if self.declared_structure is not None:
            return self.declared_structure
        return "smooth" if self.gradient_fn is not None else "other"

    def _validate(self, name: str, value: Any) -> Any:
        if name == "cones":
            cones = frozenset([value] if isinstance(value, str) else value)
            unknown = cones - CONES
            if unknown:
                raise PenaltyError(
                    f"Custom: unknown cone(s) {sorted(unknown)}; use a subset of {sorted(CONES)}"
                )
            return cones
        if name == "expression" and not callable(value):
            raise PenaltyError("Custom: expression must be a callable W -> cvxpy.Expression")
        if name == "declared_structure" and value is not None and value not in _STRUCTURES_CUSTOM:
            raise PenaltyError(f"Custom: structure must be one of {', '.join(_STRUCTURES_CUSTOM)} "
                               f"(or None), got {value!r}")
        if name == "lipschitz_fn" and value is not None and not callable(value):
            return check_strength(value, "Custom: lipschitz")
        if name in _ATTRS.values() and name != "declared_structure" and value is not None \
                and not callable(value):
            arg = name.removesuffix("_fn")
            raise PenaltyError(f"Custom: {arg} must be a callable or None")
        return super()._validate(name, value)

    def _check_structure(self) -> None:
        if self.dual_norm_fn is not None and self.structure not in ("norm", "squared_norm"):
            raise PenaltyError("Custom: dual_norm needs structure='norm' (expression = Ω(W)) "
                               "or structure='squared_norm' (expression = ½Ω(W)²)")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {k: self.__dict__[_ATTRS.get(k, k)] for k in self._params}

    def set_params(self, **params: Any) -> Custom:
        for key, value in params.items():
            if key not in self._params:
                raise PenaltyError(f"Custom has no parameter {key!r}; valid parameters: "
                                   f"{', '.join(self._params)}")
            setattr(self, _ATTRS.get(key, key), value)
        return self

    def __repr__(self) -> str:
        name = getattr(self.expression, "__name__", "expression")
        return f"Custom({name}, cones={sorted(self.cones)}, alpha={self.alpha!r})"

    @property
    def label(self) -> str:
        return f"Custom({getattr(self.expression, '__name__', 'expression')})"

    # -------------------------------------------------------------- the protocol
    def _implements(self, oracle: str) -> bool:
        attr = _ATTRS.get(oracle)
        return attr is not None and self.__dict__[attr] is not None

    def value(self, W: np.ndarray) -> float:
        if self.value_fn is not None:
            return self.alpha * float(self.value_fn(W))
        return self.alpha * float(self.expression(cp.Constant(W)).value)

    def prox(self, V: np.ndarray, step: float) -> np.ndarray:
        if self.prox_fn is None:
            raise self._missing("prox")
        return np.asarray(self.prox_fn(V, step * self.alpha), dtype=float)

    def gradient(self, W: np.ndarray) -> np.ndarray:
        if self.gradient_fn is None:
            raise self._missing("gradient")
        return self.alpha * np.asarray(self.gradient_fn(W), dtype=float)

    def lipschitz(self, n_features: int, n_tasks: int) -> float:
        L = self.lipschitz_fn
        if L is None:
            raise self._missing("lipschitz")
        return self.alpha * float(L(n_features, n_tasks) if callable(L) else L)

    def dual_norm(self, V: np.ndarray) -> float:
        if self.dual_norm_fn is None:
            raise self._missing("dual_norm")
        return float(self.dual_norm_fn(V))

    def conjugate(self, V: np.ndarray) -> float:
        if self.conjugate_fn is None:
            return super().conjugate(V)
        if self.alpha == 0:
            return 0.0 if not np.any(V) else np.inf
        return self.alpha * float(self.conjugate_fn(V / self.alpha))

    def verify(self, n_features: int, n_tasks: int) -> None:
        W = cp.Variable((n_features, n_tasks))
        try:
            expr = self.expression(W)
        except Exception as err:
            raise PenaltyError(
                f"Custom: expression(W) raised {type(err).__name__}: {err} "
                f"(W is a cvxpy.Variable of shape ({n_features}, {n_tasks}))"
            ) from err
        if not isinstance(expr, cp.Expression):
            raise PenaltyError(
                f"Custom: expression(W) must return a cvxpy.Expression, got {type(expr).__name__}"
            )
        if expr.size != 1:
            raise PenaltyError(f"Custom: expression(W) must be scalar, got shape {expr.shape}")
        if expr.parameters():
            raise PenaltyError(
                "Custom: expression(W) must not contain cvxpy Parameters; the Problem owns "
                "the strength alpha as its own Parameter"
            )
        if not expr.is_convex():
            reason = _dcp_reason(cp.Problem(cp.Minimize(expr)))
            raise PenaltyError(f"Custom: the expression is not convex under DCP rules. {reason}")

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Term:
        return Term(params["alpha"] * self.expression(W))
