"""``solve(problem, ...)``: argument checks, backend choice, refinement and warnings."""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from .._threads import blas_limited
from ..exceptions import ConvergenceWarning, MTLError
from .fista import refine as _refine
from .registry import resolve_backend

if TYPE_CHECKING:
    from ..problem import Problem
    from ..solution import Solution

__all__ = ["solve"]


@blas_limited
def solve(problem: Problem, backend: str | None = None, tol: float = 1e-8,
          max_iter: int | None = None, verbose: bool = False, refine: bool = False,
          **solver_opts: Any) -> Solution:
    """Solve ``problem`` and return a :class:`~mtlcvx.Solution`.

    Parameters
    ----------
    problem : Problem
    backend : {"clarabel", "scs", "ecos", "osqp", "direct", "fista"} or None
        ``None`` picks "direct" for quadratic problems; "fista" when every non-smooth
        term has an exact prox and the problem needs the PSD cone or has
        ``T·d > 2000``; otherwise "clarabel". ``sol.backend`` says what ran.
    tol : float, default 1e-8
        Target certified relative gap ``gap / max(1, |F(W)|)``; conic backends
        translate it into their own settings. ``status`` is "optimal" when the
        certificate meets it, "inaccurate" (with a ConvergenceWarning) otherwise.
    max_iter : int, optional
        Iteration cap, translated likewise (solver default when None).
    verbose : bool
        Let the solver print its log.
    refine : bool
        Polish an "inaccurate" point with the certified first-order method
        (:func:`mtlcvx.first_order.fista`, warm-started) until the certificate meets
        ``tol``; needs an exact prox for every non-smooth term.
    **solver_opts
        Raw options passed to the solver unchanged (they override the translated ones).

    Raises
    ------
    MTLError
        ``tol`` or ``max_iter`` out of range.
    IncompatibleBackend
        The backend lacks a cone or structure a term needs (raised before CVXPY runs).
    BackendUnavailable
        The backend is not installed; the message names the pip extra.
    SolverFailed
        No solution came back (infeasible, unbounded, solver error).
    """
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise MTLError(f"tol must be a positive number, got {tol!r}")
    if max_iter is not None and (not isinstance(max_iter, (int, np.integer)) or max_iter < 1):
        raise MTLError(f"max_iter must be a positive integer, got {max_iter!r}")
    problem.check_shapes()
    impl = resolve_backend(problem, backend)
    start = time.perf_counter()
    sol = impl.solve(problem, tol=float(tol), max_iter=max_iter, verbose=verbose, **solver_opts)
    sol.feature_names, sol.tasks = problem.data.feature_names, problem.data.tasks
    if refine and sol.status == "inaccurate" and problem.proximable and problem.constraints is None:
        sol = _refine(problem, sol, float(tol))
    sol.info.setdefault("wall_time", time.perf_counter() - start)
    if sol.status == "inaccurate":
        cert = sol.certificate
        found = ("no certified gap" if cert is None or cert.gap is None
                 else f"certified relative gap {cert.relative_gap:.2e} > tol={tol:g}")
        warnings.warn(
            f"backend {sol.backend!r} returned a point that is not certified optimal "
            f"(solver status {sol.info.get('solver_status', 'n/a')!r}, {found}). Hint: "
            "solve(..., refine=True) polishes it with the certified first-order method; "
            + sol.info.get("hint", "or raise max_iter, or use backend='clarabel'"),
            ConvergenceWarning,
            stacklevel=3,
        )
    return sol
