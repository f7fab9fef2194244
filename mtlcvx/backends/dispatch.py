"""``solve(problem, ...)``: argument checks, backend choice, refinement and warnings."""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any

from .._checks import check_count, check_tol
from .._threads import blas_limited
from ..exceptions import ConvergenceWarning
from .fista import refine as _refine
from .registry import resolve_backend, status_message

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
        Target certified relative gap ``gap / |F(W)|``; conic backends translate it
        into their own settings. ``status`` is "optimal" only with a certified gap
        ``<= tol·|F(W)|``; "inaccurate" with a larger gap; "unverified" when no
        certificate gives a gap (``certificate.reason`` says why; both with a
        ConvergenceWarning saying what would help).
    max_iter : int, optional
        Iteration cap (1 to 2**31 − 1), translated likewise (solver default when None).
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
    ArgumentError
        ``tol`` or ``max_iter`` invalid (an ``MTLError`` and a ``ValueError``).
    IncompatibleBackend
        The backend lacks a cone or structure a term needs (raised before CVXPY runs).
    BackendUnavailable
        The backend is not installed; the message names the pip extra.
    SolverFailed
        No solution came back (infeasible, unbounded, solver error).
    """
    tol = check_tol(tol)
    if max_iter is not None:
        max_iter = check_count(max_iter, "max_iter")
    problem.check_shapes()
    impl = resolve_backend(problem, backend)
    start = time.perf_counter()
    sol = impl.solve(problem, tol=tol, max_iter=max_iter, verbose=verbose, **solver_opts)
    sol.feature_names, sol.tasks = problem.data.feature_names, problem.data.tasks
    if refine and sol.status == "inaccurate" and problem.proximable and problem.constraints is None:
        sol = _refine(problem, sol, tol)
    sol.info.setdefault("wall_time", time.perf_counter() - start)
    message = status_message(sol, tol)
    if message is not None:
        warnings.warn(message, ConvergenceWarning, stacklevel=3)
    return sol
