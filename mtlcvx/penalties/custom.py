"""User-defined regularizers written as CVXPY expressions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import cvxpy as cp
import numpy as np

from ..exceptions import PenaltyError
from .base import CONES, Penalty

__all__ = ["Custom"]


def _dcp_reason(problem: cp.Problem) -> str:
    """CVXPY's own explanation of why ``problem`` is not DCP."""
    try:
        from cvxpy.utilities.debug_tools import build_non_disciplined_error_msg

        return build_non_disciplined_error_msg(problem, "DCP")
    except Exception:  # private helper moved: fall back to the generic sentence
        return "the expression does not follow CVXPY's DCP rules"


class Custom(Penalty):
    r"""A user's regularizer :math:`\alpha \cdot e(W)` with ``e = expression(W)``.

    Parameters
    ----------
    expression : callable
        ``expression(W) -> cvxpy.Expression``: a convex, scalar CVXPY expression of the
        variable ``W`` (d, T), written without CVXPY Parameters. It is checked with
        CVXPY's DCP rules when the :class:`~mtlcvx.Problem` is made.
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
        ``gradient(W) -> (d, T)`` of ``e`` when it is smooth.

    Examples
    --------
    >>> import cvxpy as cp, mtlcvx as mc
    >>> col_groups = mc.Custom(lambda W: cp.sum(cp.norm(W, 2, axis=0)), cones={"soc"}, alpha=0.1)
    """

    _params = ("expression", "cones", "alpha", "value", "prox", "gradient")

    def __init__(
        self,
        expression: Callable[[Any], Any],
        cones: Iterable[str],
        alpha: float = 1.0,
        value: Callable[[np.ndarray], float] | None = None,
        prox: Callable[[np.ndarray, float], np.ndarray] | None = None,
        gradient: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        self.expression = expression
        self.cones = cones
        self.alpha = alpha
        self.value = value
        self.prox = prox
        self.gradient = gradient

    def _validate(self, name: str, value: Any) -> Any:
        if name == "cones":
            cones = frozenset([value] if isinstance(value, str) else value)
            unknown = cones - CONES
            if unknown:
                raise PenaltyError(
                    f"Custom: unknown cone(s) {sorted(unknown)}; use a subset of {sorted(CONES)}"
                )
            return cones
        if name in ("expression",) and not callable(value):
            raise PenaltyError("Custom: expression must be a callable W -> cvxpy.Expression")
        if name in ("value", "prox", "gradient") and value is not None and not callable(value):
            raise PenaltyError(f"Custom: {name} must be a callable or None")
        return super()._validate(name, value)

    # The user callables live under the constructor names (so get_params/clone work);
    # the package calls these wrappers, which apply alpha.
    def __getattribute__(self, name: str) -> Any:
        if name in ("value", "prox", "gradient"):
            return object.__getattribute__(self, "_bound_" + name)
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("value", "prox", "gradient"):
            value = self._validate(name, value)
            object.__setattr__(self, "_user_" + name, value)
            return
        super().__setattr__(name, value)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params = {k: object.__getattribute__(self, k) for k in ("expression", "cones", "alpha")}
        for k in ("value", "prox", "gradient"):
            params[k] = object.__getattribute__(self, "_user_" + k)
        return params

    def __repr__(self) -> str:
        name = getattr(self.expression, "__name__", "expression")
        return f"Custom({name}, cones={sorted(self.cones)}, alpha={self.alpha!r})"

    @property
    def has_prox(self) -> bool:
        return object.__getattribute__(self, "_user_prox") is not None

    @property
    def is_smooth(self) -> bool:
        """True when the user supplied a gradient."""
        return object.__getattribute__(self, "_user_gradient") is not None

    def check_shape(self, n_features: int, n_tasks: int) -> None:
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

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Any:
        return params["alpha"] * self.expression(W)

    def _bound_value(self, W: np.ndarray) -> float:
        user = object.__getattribute__(self, "_user_value")
        if user is not None:
            return self.alpha * float(user(W))
        return self.alpha * float(self.expression(cp.Constant(W)).value)

    def _bound_prox(self, V: np.ndarray, step: float) -> np.ndarray:
        user = object.__getattribute__(self, "_user_prox")
        if user is None:
            raise NotImplementedError("Custom penalty has no prox; pass prox=... to Custom")
        return np.asarray(user(V, step * self.alpha), dtype=float)

    def _bound_gradient(self, W: np.ndarray) -> np.ndarray:
        user = object.__getattribute__(self, "_user_gradient")
        if user is None:
            raise NotImplementedError("Custom penalty has no gradient; pass gradient=...")
        return self.alpha * np.asarray(user(W), dtype=float)
