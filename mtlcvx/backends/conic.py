"""Conic backends through CVXPY: Clarabel, SCS, ECOS, OSQP."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..certificates import certify
from ..compile import refresh
from ..exceptions import MTLError, SolverFailed
from ..penalties.base import CONES
from ..solution import Solution
from .registry import Backend, certified_status, register

if TYPE_CHECKING:
    from ..problem import Problem

__all__ = ["ConicBackend"]


class ConicBackend(Backend):
    """A CVXPY solver with one ``tol``/``max_iter`` translated into its own options.

    Parameters
    ----------
    name : str
        mtlcvx's name for it.
    solver : str
        CVXPY's solver name.
    modules : tuple of str
        Python modules the solver needs.
    extra : str or None
        pip extra that installs it (None: it comes with cvxpy).
    cones : frozenset of str
        Cones it supports (names in ``mtlcvx.penalties.CONES``).
    options : callable
        ``options(tol, max_iter) -> dict`` of solver settings.
    hint : str
        Advice printed when it fails or stops early ("raise max_iter" is prepended only
        when the solver stopped on its iteration cap).
    """

    def __init__(self, name: str, solver: str, modules: tuple[str, ...], extra: str | None,
                 cones: frozenset[str], options: Callable[[float, int | None], dict[str, Any]],
                 hint: str):
        self.name = name
        self.solver = solver
        self.modules = modules
        self.extra = extra
        self.cones = cones
        self.options = options
        self.hint = hint

    def solve(self, problem: Problem, *, tol: float, max_iter: int | None, verbose: bool,
              **solver_opts: Any) -> Solution:
        import cvxpy as cp

        start = time.perf_counter()
        compiled = refresh(problem)  # built once, Parameters refreshed
        cvx, W = compiled["problem"], compiled["W"]
        build_time = time.perf_counter() - start
        options = self.options(tol, max_iter)
        options.update(solver_opts)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():  # the certificate judges accuracy, not cvxpy
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                cvx.solve(solver=self.solver, verbose=verbose, **options)
        except cp.error.SolverError as err:
            hint = self.hint
            if "cannot solve this problem" in str(err):
                hint = ("the compiled problem needs a cone this backend lacks: a Custom term "
                        "must declare every cone its expression needs (Custom(..., cones="
                        "{...})); backend='clarabel' supports them all")
            raise SolverFailed(
                f"backend {self.name!r} failed: {str(err).rstrip('.')}. Hint: {hint}"
            ) from err
        except TypeError as err:
            raise MTLError(
                f"backend {self.name!r} rejected an option ({err}); check the solver options "
                f"you passed: {sorted(solver_opts)}"
            ) from err
        except cp.error.DCPError as err:
            raise MTLError(f"the problem is not DCP: {err}") from err
        elapsed = time.perf_counter() - start
        compile_time = float(getattr(cvx, "compilation_time", None) or 0.0)
        status = cvx.status
        stats = cvx.solver_stats
        iters = getattr(stats, "num_iters", None)
        cap = options.get("max_iter", options.get("max_iters"))
        at_cap = status == cp.USER_LIMIT or (iters is not None and cap is not None
                                             and iters >= cap)
        hint = ("raise max_iter, or " if at_cap else "") + self.hint
        if W.value is None or status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE, cp.USER_LIMIT):
            what = f"status {status!r}"
            if problem.constraints is None and "infeasible" in status:
                # an unconstrained problem is always feasible: this is a numerical failure
                what = (f"a numerical failure (the solver said {status!r}, which cannot be "
                        "true of this unconstrained problem)")
            raise SolverFailed(
                f"backend {self.name!r} returned no solution ({what}). Hint: {hint}"
            )
        W_val = np.array(W.value, dtype=float)
        intercept = problem.optimal_intercept(W_val) if problem.fit_intercept else None
        solver_objective = (float(cvx.value) + problem.cvxpy_offset
                            if cvx.value is not None else None)
        parts = {name: np.array(var.value, dtype=float)
                 for name, var in compiled["parts"].items() if var.value is not None}
        certificate = certify(problem, W_val, parts=parts)
        mapped = certified_status(certificate, tol)
        return Solution(
            W=W_val,
            intercept=intercept,
            objective=certificate.objective,  # F(W) in NumPy, profiled intercepts
            solver_objective=solver_objective,
            status=mapped,
            backend=self.name,
            compile_time=build_time + compile_time,
            solve_time=max(elapsed - compile_time, 0.0),
            iterations=iters,
            certificate=certificate,
            parts=parts,
            info={"solver_status": status, "options": options,
                  **({"hint": hint} if mapped != "optimal" else {})},
        )


def _clarabel(tol: float, max_iter: int | None) -> dict[str, Any]:
    # Clarabel's own gap is measured on the compiled problem; a tenth of tol leaves room for
    # the certificate, which is computed on the original data from W alone.
    inner = tol / 10.0
    opts = {"tol_gap_abs": inner, "tol_gap_rel": inner, "tol_feas": tol}
    if max_iter is not None:
        opts["max_iter"] = max_iter
    return opts


def _scs(tol: float, max_iter: int | None) -> dict[str, Any]:
    return {"eps_abs": tol, "eps_rel": tol, "max_iters": 100_000 if max_iter is None else max_iter}


def _ecos(tol: float, max_iter: int | None) -> dict[str, Any]:
    opts = {"abstol": tol, "reltol": tol, "feastol": tol}
    if max_iter is not None:
        opts["max_iters"] = max_iter
    return opts


def _osqp(tol: float, max_iter: int | None) -> dict[str, Any]:
    return {"eps_abs": tol, "eps_rel": tol, "polishing": True,
            "max_iter": 100_000 if max_iter is None else max_iter}


register(ConicBackend(
    "clarabel", "CLARABEL", ("clarabel",), None, CONES, _clarabel,
    "loosen tol; for large SDP-class problems try backend='scs'",
))
register(ConicBackend(
    "scs", "SCS", ("scs",), None, CONES, _scs,
    "SCS is first-order: loosen tol, or use backend='clarabel'",
))
register(ConicBackend(
    "ecos", "ECOS", ("ecos",), "ecos", CONES - {"psd"},
    _ecos, "ECOS is known to stop early on badly scaled problems; try backend='clarabel'",
))
register(ConicBackend(
    "osqp", "OSQP", ("osqp",), None, frozenset({"zero", "nonneg", "quadratic"}), _osqp,
    "OSQP is first-order: use backend='clarabel'",
))
