"""``solve(problem, ...)``: argument checks, backend choice, refinement and warnings."""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any

from .._checks import check_count, check_tol
from .._threads import blas_limited
from ..exceptions import ConvergenceWarning
from .fista import refine as _refine
from .registry import BACKENDS, default_route, resolve_backend, status_message

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
        ``None`` follows :func:`~mtlcvx.backends.registry.default_route`
        (docs/backends.md): "direct" for quadratic problems; "fista" when every
        non-smooth term has an exact prox and the problem needs the PSD cone; otherwise
        the cheaper by estimated cost of "fista" and "clarabel", where fista is tried
        first within a share of Clarabel's estimated time when its own cost cannot be
        estimated (its restricted polish may certify long before its rate predicts) and
        falls back to Clarabel when its certified gaps do not fall fast enough.
        ``sol.backend`` says what produced the point; ``sol.info["abandoned"]`` what an
        abandoned attempt did (``iterations``, ``seconds``, ``relative_gap``,
        ``reason``).
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
    route = default_route(problem) if backend is None else None
    impl = resolve_backend(problem, backend if route is None else route.backend)
    start = time.perf_counter()
    tried = None
    if route is not None and route.attempt is not None and not solver_opts:
        # fista first where the cost model cannot predict it (docs/backends.md)
        tried = BACKENDS["fista"].attempt(problem, tol=tol, max_iter=max_iter,
                                          give_up=route.attempt)
    if tried is None or isinstance(tried, dict):
        sol = impl.solve(problem, tol=tol, max_iter=max_iter, verbose=verbose, **solver_opts)
        if tried is not None:
            sol.info["abandoned"] = tried
    else:
        sol = tried
    sol.feature_names, sol.tasks = problem.data.feature_names, problem.data.tasks
    if refine and sol.status == "inaccurate" and problem.proximable and problem.constraints is None:
        sol = _refine(problem, sol, tol)
    sol.info.setdefault("wall_time", time.perf_counter() - start)
    message = status_message(sol, tol)
    if message is not None:
        warnings.warn(message, ConvergenceWarning, stacklevel=3)
    return sol
