"""The "fista" backend: certified accelerated proximal gradient.

The scalable exact route for SDP-class problems (trace norms, MTRL) where interior-point
solvers run out of memory and SCS stops early: it stops only when the certified
relative gap (docs/certificates.md) is at most ``tol``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exceptions import ArgumentError
from ..oracles import prox_plan
from ..solution import Solution
from .registry import Backend, certified_status, register

if TYPE_CHECKING:
    from ..first_order import Trace
    from ..problem import Problem

__all__ = ["FistaBackend", "refine"]

_OPTIONS = frozenset({"check_every", "record_every", "restart", "W0"})


class FistaBackend(Backend):
    """:func:`mtlcvx.first_order.fista` behind the backend interface.

    Solver options: ``check_every`` (certify every so many iterations, default 10),
    ``record_every`` (history interval, default 10), ``restart`` (default True),
    ``W0`` (warm start).
    """

    name = "fista"
    modules = ("numpy",)
    extra = None
    cones = frozenset({"proximable"})

    def incompatibility(self, problem: Problem) -> str | None:
        if problem.constraints is not None:
            return "backend 'fista' cannot handle constraints (a conic backend can)"
        if not problem.proximable:
            return f"{prox_plan(problem)}, which backend 'fista' needs"
        return None

    def solve(self, problem: Problem, *, tol: float, max_iter: int | None, verbose: bool,
              **solver_opts: Any) -> Solution:
        from ..first_order import fista

        unknown = sorted(set(solver_opts) - _OPTIONS)
        if unknown:
            raise ArgumentError(f"backend 'fista' has no option(s) {', '.join(unknown)}; its "
                                f"options are {', '.join(sorted(_OPTIONS))}")
        opts = {"record_every": 10, **solver_opts}
        trace = fista(problem, max_iter=100_000 if max_iter is None else max_iter, tol=tol,
                      **opts)
        return self.solution(trace, tol)

    def attempt(self, problem: Problem, *, tol: float, max_iter: int | None,
                give_up: tuple[float, float]) -> Solution | dict[str, Any]:
        """fista within the budget ``give_up`` (see :func:`mtlcvx.first_order.fista`):
        its Solution when the run stopped on its certificate, else what the abandoned
        run did: ``{"backend", "iterations", "seconds", "relative_gap", "reason"}``."""
        from ..first_order import fista

        trace = fista(problem, max_iter=100_000 if max_iter is None else max_iter, tol=tol,
                      record_every=10, give_up=give_up)
        if trace.converged:
            return self.solution(trace, tol)
        return {"backend": self.name, "iterations": trace.iterations,
                "seconds": trace.info["time"],
                "relative_gap": (None if trace.certificate.relative_gap is None
                                 else float(trace.certificate.relative_gap)),
                "reason": trace.info["abandoned"] or "max_iter reached"}

    def solution(self, trace: Trace, tol: float) -> Solution:
        """The Solution of a fista run."""
        cert = trace.certificate
        return Solution(
            W=trace.W, intercept=trace.intercept, objective=cert.objective,
            solver_objective=float(trace.history["objective"][-1]),
            status=certified_status(cert, tol),
            backend=self.name, compile_time=0.0, solve_time=trace.info["time"],
            iterations=trace.iterations, certificate=cert, history=trace.history,
            parts=trace.parts,
            info={"solver_status": ("max_iter reached" if not trace.converged else
                                    "converged" if cert.gap is not None else
                                    "gradient mapping converged"),
                  "final_step": trace.info["final_step"],
                  "dual_point": trace.info["dual_point"]},
        )


def refine(problem: Problem, sol: Solution, tol: float) -> Solution:
    """Polish ``sol`` with warm-started FISTA from ``sol.W`` until the certificate meets ``tol``.

    Updates and returns ``sol``: its point, objective, certificate and history become
    FISTA's, ``solve_time`` grows by FISTA's time, ``info["refined_iterations"]`` counts
    its iterations, and ``status`` follows the new certificate (:func:`certified_status`).
    """
    from ..first_order import fista

    trace = fista(problem, tol=tol, W0=sol.W, record_every=10)
    sol.W, sol.intercept, sol.parts = trace.W, trace.intercept, trace.parts
    sol.objective = trace.certificate.objective
    sol.certificate = trace.certificate
    sol.history = trace.history
    sol.solve_time += trace.info["time"]
    sol.info["refined_iterations"] = trace.iterations
    sol.status = certified_status(trace.certificate, tol)
    return sol


register(FistaBackend())
