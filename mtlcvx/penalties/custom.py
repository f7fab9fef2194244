"""User-defined regularizers written as CVXPY expressions."""

from __future__ import annotations

import os
import traceback
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .._optional import cp
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


_NUMPY_HINT = ("Write expression with CVXPY atoms (cp.abs, cp.norm, cp.sum, cp.sum_squares, "
               "…), not NumPy functions: W is a cvxpy.Variable there. A NumPy version of the "
               "same function may be given as value=")


def _numpy_involved(err: BaseException) -> bool:
    """True when NumPy raised ``err`` or CVXPY refused a NumPy function."""
    numpy_dir = os.path.dirname(np.__file__)
    frames = traceback.extract_tb(err.__traceback__)
    return "NumPy" in str(err) or any(f.filename.startswith(numpy_dir) for f in frames)


class _OracleCheck:
    """Compare a Custom term's oracles with its CVXPY expression (see :meth:`Custom.verify`)."""

    #: Relative tolerances: value (exact arithmetic), Clarabel-solved references.
    VALUE_RTOL = 1e-9
    SOLVED_TOL = 1e-6

    def __init__(self, pen: Custom, d: int, T: int):
        self.pen, self.shape = pen, (d, T)
        rng = np.random.default_rng(0)
        self.points = [rng.standard_normal((d, T)) * scale for scale in (1.0, 0.3, 3.0)]
        self.directions = [rng.standard_normal((d, T)) for _ in self.points]
        self.name = pen.label

    def fail(self, oracle: str, what: str) -> PenaltyError:
        return PenaltyError(f"{self.name}: the {oracle} oracle disagrees with the expression: "
                            f"{what}")

    def expr_value(self, W: np.ndarray) -> float:
        return float(self.pen.expression(cp.Constant(W)).value)

    def run(self) -> None:
        pen = self.pen
        for oracle, check in (("value", self.value), ("gradient", self.gradient),
                              ("lipschitz", self.lipschitz), ("prox", self.prox),
                              ("dual_norm", self.dual_norm), ("conjugate", self.conjugate)):
            if pen.__dict__[_ATTRS[oracle]] is not None:
                check()

    def value(self) -> None:
        for W in self.points:
            got, want = float(self.pen.value_fn(W)), self.expr_value(W)
            if not np.isfinite(got) or abs(got - want) > self.VALUE_RTOL * max(abs(want), 1e-300):
                raise self.fail("value", f"value(W) = {got!r} but the expression gives "
                                         f"{want!r} at a random W (seed 0); value must return "
                                         "e(W) without alpha")

    def gradient(self) -> None:
        for W, D in zip(self.points, self.directions, strict=True):
            g = np.asarray(self.pen.gradient_fn(W), dtype=float)
            if g.shape != W.shape or not np.all(np.isfinite(g)):
                raise self.fail("gradient", f"gradient(W) has shape {g.shape} (expected "
                                            f"{W.shape}) or non-finite entries")
            h = 1e-5 * max(1.0, float(np.abs(W).max()))
            fd = (self.expr_value(W + h * D) - self.expr_value(W - h * D)) / (2 * h)
            slope = float(np.sum(g * D))
            scale = max(abs(fd), float(np.linalg.norm(g) * np.linalg.norm(D)), 1e-12)
            if abs(fd - slope) > 1e-5 * scale:
                raise self.fail("gradient", f"the directional derivative along a random "
                                            f"direction is {fd:.6e} by central differences "
                                            f"but ⟨gradient(W), D⟩ = {slope:.6e}")

    def lipschitz(self) -> None:
        pen = self.pen
        if pen.gradient_fn is None:
            raise PenaltyError(f"{self.name}: lipschitz given without a gradient")
        L = pen.lipschitz_fn
        L = float(L(*self.shape) if callable(L) else L)
        for W1, W2 in zip(self.points, self.directions, strict=True):
            diff = np.linalg.norm(np.asarray(pen.gradient_fn(W1)) - np.asarray(pen.gradient_fn(W2)))
            bound = L * np.linalg.norm(W1 - W2)
            if diff > bound * (1 + 1e-9) + 1e-12:
                raise self.fail("lipschitz", f"‖∇e(W₁) − ∇e(W₂)‖ = {diff:.6e} exceeds "
                                             f"L‖W₁ − W₂‖ = {bound:.6e} at random points")

    def _solve(self, objective: Any, constraints: list[Any]) -> cp.Problem:
        prob = cp.Problem(objective, constraints)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10,
                       tol_feas=1e-10)
        return prob

    def prox(self) -> None:
        for V, step in zip(self.points, (0.7, 0.1, 2.0), strict=True):
            got = np.asarray(self.pen.prox_fn(V, step), dtype=float)
            W = cp.Variable(self.shape)
            self._solve(cp.Minimize(step * self.pen.expression(W)
                                    + 0.5 * cp.sum_squares(W - V)), [])
            err = float(np.abs(got - W.value).max()) if got.shape == V.shape else np.inf
            if not err <= self.SOLVED_TOL * max(1.0, float(np.abs(V).max())):
                raise self.fail("prox", f"prox(V, {step}) differs from argmin_W {step}·e(W) + "
                                        f"½‖W − V‖² (solved by Clarabel) by {err:.3e} at a "
                                        "random V (the package passes step already "
                                        "multiplied by alpha)")

    def dual_norm(self) -> None:
        pen = self.pen
        squared = pen.structure == "squared_norm"
        for V, W in zip(self.points, self.directions, strict=True):
            dn = float(pen.dual_norm_fn(V))
            e = self.expr_value(W)
            omega = np.sqrt(max(2.0 * e, 0.0)) if squared else e
            inner = float(np.sum(V * W))
            if not np.isfinite(dn) or inner > omega * dn * (1 + 1e-9) + 1e-12:
                raise self.fail("dual_norm", f"⟨V, W⟩ = {inner:.6e} > Ω(W)·Ω°(V) = "
                                             f"{omega * dn:.6e} at random V, W")
            X = cp.Variable(self.shape)
            limit = 0.5 if squared else 1.0  # ½Ω² ≤ ½  ⇔  Ω ≤ 1
            prob = self._solve(cp.Maximize(cp.sum(cp.multiply(V, X))),
                               [pen.expression(X) <= limit])
            want = float(prob.value)
            if abs(dn - want) > self.SOLVED_TOL * max(1.0, abs(want)):
                raise self.fail("dual_norm", f"dual_norm(V) = {dn:.9e} but max{{⟨V, W⟩ : Ω(W) ≤ "
                                             f"1}} = {want:.9e} (solved by Clarabel) at a "
                                             "random V")

    def conjugate(self) -> None:
        for V in self.points:
            got = float(self.pen.conjugate_fn(V))
            X = cp.Variable(self.shape)
            prob = self._solve(cp.Maximize(cp.sum(cp.multiply(V, X)) - self.pen.expression(X)),
                               [])
            unbounded = prob.status in (cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE)
            want = np.inf if unbounded else float(prob.value)
            ok = (got == np.inf) if unbounded else (
                np.isfinite(got) and abs(got - want) <= self.SOLVED_TOL * max(1.0, abs(want)))
            if not ok:
                raise self.fail("conjugate", f"conjugate(V) = {got!r} but sup_W ⟨V, W⟩ − e(W) = "
                                             f"{want!r} (solved by Clarabel) at a random V")


class Custom(Penalty):
    r"""A user's regularizer :math:`\alpha \cdot e(W)` with ``e = expression(W)``.

    Supplied oracles buy certificates and first-order solves (see the documentation's
    :doc:`/regularizer` page); each is checked against the CVXPY expression when the
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

    def check_shape(self, n_features: int, n_tasks: int) -> None:
        """:meth:`verify` again when the expression or an oracle was replaced since."""
        self.verify(n_features, n_tasks)

    def verify(self, n_features: int, n_tasks: int) -> None:
        """Check the expression (DCP, scalar, no Parameters) and every supplied oracle.

        Each oracle is compared with the CVXPY expression at seeded random points:
        ``value`` to 1e-9 relative; ``gradient`` by central differences along random
        directions; ``prox`` against the prox subproblem solved by Clarabel (to 1e-6);
        ``dual_norm`` by ``⟨V, W⟩ ≤ Ω(W)·Ω°(V)`` and against ``max{⟨V, W⟩ : Ω(W) ≤ 1}``
        solved by Clarabel; ``conjugate`` against ``sup_W ⟨V, W⟩ − e(W)`` solved by
        Clarabel; ``lipschitz`` by ``‖∇e(W₁) − ∇e(W₂)‖ ≤ L‖W₁ − W₂‖``. Done once per
        problem size and set of oracles.

        Raises
        ------
        PenaltyError
            Naming the expression's problem or the oracle and the discrepancy found.
        """
        key = (n_features, n_tasks, self.expression,
               *(self.__dict__[a] for a in _ATTRS.values()))
        if self.__dict__.get("_verified") == key:
            return
        self._check_expression(n_features, n_tasks)
        self._check_oracles(n_features, n_tasks)
        _OracleCheck(self, n_features, n_tasks).run()
        self.__dict__["_verified"] = key

    def _check_expression(self, n_features: int, n_tasks: int) -> None:
        W = cp.Variable((n_features, n_tasks))
        try:
            expr = self.expression(W)
        except Exception as err:
            if _numpy_involved(err):
                first = str(err).strip().splitlines()[0]
                raise PenaltyError(f"Custom: expression(W) called NumPy on the variable "
                                   f"({type(err).__name__}: {first}). {_NUMPY_HINT}") from err
            raise PenaltyError(
                f"Custom: expression(W) raised {type(err).__name__}: {err} "
                f"(W is a cvxpy.Variable of shape ({n_features}, {n_tasks}))"
            ) from err
        if isinstance(expr, (np.ndarray, np.generic)):
            raise PenaltyError("Custom: expression(W) returned a NumPy value, not a "
                               f"cvxpy.Expression. {_NUMPY_HINT}")
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

    def _check_oracles(self, n_features: int, n_tasks: int) -> None:
        """Call each NumPy oracle given at a seeded random point: it must run and return a
        scalar (value) or a (d, T) array (gradient, prox); :class:`_OracleCheck` then
        compares the numbers with the expression."""
        W = np.random.default_rng(0).standard_normal((n_features, n_tasks))
        calls = {"value": (self.value_fn, (W,), ()), "gradient": (self.gradient_fn, (W,),
                 (n_features, n_tasks)), "prox": (self.prox_fn, (W, 0.5), (n_features, n_tasks))}
        for name, (fn, args, shape) in calls.items():
            if fn is None:
                continue
            try:
                out = np.asarray(fn(*args), dtype=float)
            except Exception as err:
                raise PenaltyError(
                    f"Custom: {name}{'(W)' if len(args) == 1 else '(V, step)'} raised "
                    f"{type(err).__name__}: {err} (called with a NumPy array of shape "
                    f"({n_features}, {n_tasks})); fix the callable or leave {name}=None"
                ) from err
            if out.shape != shape and not (shape == () and out.size == 1):
                want = "a scalar" if shape == () else f"shape {shape}"
                raise PenaltyError(f"Custom: {name} must return {want} for W of shape "
                                   f"({n_features}, {n_tasks}), got shape {out.shape}")

    def cvxpy_term(self, W: Any, params: dict[str, Any]) -> Term:
        return Term(params["alpha"] * self.expression(W))
