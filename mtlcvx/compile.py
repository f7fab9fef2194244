"""Compilation of a :class:`~mtlcvx.Problem` into one CVXPY problem, reused across solves.

Every numeric value a penalty is written in (strengths, dense factors) is a
``cvxpy.Parameter`` owned by the problem; :func:`refresh` copies the penalties' current
values in before each solve and rebuilds only when a Parameter would change shape or a
constant (sparse) factor was replaced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._optional import cp
from .exceptions import MTLError, PenaltyError
from .penalties.base import Term

if TYPE_CHECKING:
    from .problem import Problem

__all__ = ["refresh", "is_compiled"]


def _parameter_values(problem: Problem) -> list[dict[str, Any]]:
    d, T = problem.n_features, problem.n_tasks
    return [pen.cvxpy_parameters(d, T) for pen in problem.penalties]


def _constant_factors(problem: Problem, values: list[dict[str, Any]]) -> list[Any]:
    """Constant (sparse) factors compiled into quadratic terms, by identity.

    A dense factor is a Parameter (key ``"S"``) and is not listed; the factor cache of a
    penalty is replaced whenever its matrix is set.
    """
    return [
        None if "S" in vals else pen.__dict__.get("_factor_cache")
        for pen, vals in zip(problem.penalties, values, strict=True)
    ]


def _build(problem: Problem, values: list[dict[str, Any]]) -> dict[str, Any]:
    d, T = problem.n_features, problem.n_tasks
    W = cp.Variable((d, T), name="W")
    objective = problem.loss.cvxpy_expression(problem.data, W, problem.fit_intercept)
    params: list[dict[str, cp.Parameter]] = []
    constraints: list[Any] = []
    parts: dict[str, cp.Variable] = {}
    for pen, vals in zip(problem.penalties, values, strict=True):
        ps = {
            name: cp.Parameter(np.shape(v), nonneg=np.ndim(v) == 0, value=v,
                               name=f"{type(pen).__name__}_{name}")
            for name, v in vals.items()
        }
        params.append(ps)
        term = pen.cvxpy_term(W, ps)
        if not isinstance(term, Term):
            term = Term(term)
        objective = objective + term.expr
        constraints.extend(term.constraints)
        clash = parts.keys() & term.parts.keys()
        if clash:
            raise PenaltyError(f"{pen.label}: part name(s) {sorted(clash)} already used by "
                               "another term; give the parts distinct names")
        parts.update(term.parts)
    if problem.constraints is not None:
        try:
            user = list(problem.constraints(W))
        except Exception as err:
            raise MTLError(f"constraints(W) raised {type(err).__name__}: {err}") from err
        bad = [type(c).__name__ for c in user if not isinstance(c, cp.constraints.Constraint)]
        if bad:
            raise MTLError(f"constraints(W) must return a list of CVXPY constraints (such as "
                           f"W >= 0 or cp.norm(W) <= 1), got {', '.join(bad)}")
        constraints.extend(user)
    compiled = cp.Problem(cp.Minimize(objective), constraints)
    if not compiled.is_dcp():
        raise MTLError("the problem is not DCP; check the constraints: each must be convex")
    return {"problem": compiled, "W": W, "params": params, "parts": parts}


def _baked_key(problem: Problem) -> tuple:
    """What the loss expression bakes in: the data, the centring and the weights (exactly)."""
    return problem.data, problem.fit_intercept, problem.loss_weights().tobytes()


def is_compiled(problem: Problem) -> bool:
    """True when ``problem`` holds a CVXPY problem compiled for its current data, centring
    and loss weights, which :func:`refresh` reuses (unless a penalty's Parameter changes
    shape or a constant factor was replaced): a conic solve then skips canonicalisation."""
    compiled = problem._compiled
    return compiled is not None and compiled["key"] == _baked_key(problem)


def refresh(problem: Problem) -> dict[str, Any]:
    """The compiled problem of ``problem`` with the penalties' current values in its Parameters.

    Builds it on first use; rebuilds when a Parameter would change shape, a constant
    (sparse) factor was replaced, or the data, ``fit_intercept`` or the loss weights
    changed, since those are baked into the compiled problem. Returns the dict
    ``{"problem", "W", "params", "parts", "factors", "key"}`` kept as
    ``problem._compiled``.
    """
    values = _parameter_values(problem)
    factors = _constant_factors(problem, values)
    key = _baked_key(problem)
    compiled = problem._compiled
    if compiled is not None and compiled["key"] == key:
        same_shapes = all(
            vals.keys() == ps.keys()
            and all(np.shape(v) == ps[k].shape for k, v in vals.items())
            for vals, ps in zip(values, compiled["params"], strict=True)
        )
        same_factors = all(a is b for a, b in zip(factors, compiled["factors"], strict=True))
        if same_shapes and same_factors:
            for vals, ps in zip(values, compiled["params"], strict=True):
                for k, v in vals.items():
                    ps[k].value = v
            return compiled
    compiled = _build(problem, values)
    compiled["factors"] = factors
    compiled["key"] = key
    problem._compiled = compiled
    problem.n_builds += 1
    return compiled
