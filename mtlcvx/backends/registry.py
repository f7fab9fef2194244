"""Backend registry: capabilities, availability and selection (docs/backends.md)."""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .._restricted import RestrictedSolve
from ..compile import is_compiled
from ..exceptions import BackendUnavailable, IncompatibleBackend
from ..first_order import splitting

if TYPE_CHECKING:
    from ..problem import Problem
    from ..solution import Solution

__all__ = ["Backend", "BackendInfo", "BACKENDS", "register", "available_backends",
           "default_backend", "default_route", "Route", "conic_nnz", "conic_seconds",
           "fista_iterations", "certified_status", "resolve_backend", "status_message"]


class BackendInfo(NamedTuple):
    """What :func:`available_backends` reports for one backend."""

    installed: bool
    cones: frozenset[str]
    extra: str | None


class Backend:
    """A solver behind a uniform interface.

    Subclasses set :attr:`name`, :attr:`modules` (import names checked with
    ``importlib.util.find_spec``, never imported here), :attr:`extra` (the pip extra
    that installs them, or None when they come with the core) and :attr:`cones`, and
    implement :meth:`incompatibility` and :meth:`solve`.
    """

    name: str = ""
    modules: tuple[str, ...] = ()
    extra: str | None = None
    cones: frozenset[str] = frozenset()

    def is_installed(self) -> bool:
        """True when every required module is imported or can be found."""
        return all(sys.modules.get(m) is not None or importlib.util.find_spec(m) is not None
                   for m in self.modules)

    def incompatibility(self, problem: Problem) -> str | None:
        """Why this backend cannot solve ``problem`` (None when it can)."""
        missing = problem.cones - self.cones
        if not missing:
            return None
        needs = [
            f"{p.label} needs the {', '.join(repr(c) for c in sorted(p.cones & missing))}"
            f" cone"
            for p in problem.penalties
            if p.cones & missing
        ]
        return (f"{'; '.join(needs)}, which backend {self.name!r} does not support "
                f"(it supports: {', '.join(sorted(self.cones))})")

    def solve(self, problem: Problem, *, tol: float, max_iter: int | None, verbose: bool,
              **solver_opts: Any) -> Solution:
        """Solve ``problem``; see :meth:`mtlcvx.Problem.solve`."""
        raise NotImplementedError

    def install_hint(self) -> str:
        """How to install this backend."""
        if self.extra is None:
            return f"reinstall mtlcvx (pip install mtlcvx) to get {', '.join(self.modules)}"
        return f"pip install 'mtlcvx[{self.extra}]'"


#: name -> Backend, in preference order.
BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    """Add ``backend`` to the registry under ``backend.name``."""
    BACKENDS[backend.name] = backend
    return backend


def available_backends() -> dict[str, BackendInfo]:
    """Every known backend: ``name -> BackendInfo(installed, cones, extra)``.

    "direct" and "fista" declare the structure they need instead of cones:
    ``{"quadratic"}`` (squared loss and quadratic penalties only) and ``{"proximable"}``
    (an exact prox for every non-smooth term, no constraints).
    """
    return {name: BackendInfo(b.is_installed(), b.cones, b.extra) for name, b in BACKENDS.items()}


def _capable(problem: Problem) -> str:
    names = []
    for name, b in BACKENDS.items():
        if b.incompatibility(problem) is None:
            names.append(name if b.is_installed() else f"{name} ({b.install_hint()})")
    return ", ".join(names) if names else "none"


#: Cost model of :func:`default_backend`, calibrated on this package's benchmarks
#: (docs/backends.md): Clarabel takes about 0.15 s for School's ~1.1e5 loss non-zeros and
#: grows like nnz^1.5; FISTA runs ~2e9 flop/s on its d×d Gram products.
_CONIC_SECONDS, _CONIC_NNZ, _CONIC_POWER = 0.15, 1.1e5, 1.5
#: Fixed costs of a conic solve through CVXPY: canonicalising a Problem not compiled yet
#: (about 7 ms even at T·d = 50, where the solve itself takes microseconds), and importing
#: CVXPY the first time a process needs it (about 0.6 s).
_COMPILE_SECONDS, _IMPORT_SECONDS = 0.007, 0.6
_FLOPS_PER_SECOND = 2e9
_FISTA_MAX_ITER = 20_000
#: Share of Clarabel's estimated time that fista gets first (:func:`default_route`).
_ATTEMPT_SHARE = 0.3


def conic_nnz(problem: Problem) -> float:
    """Non-zeros of the compiled loss: ``Σ_t min(n_t, d)·d`` (``T·min(n, d)·d`` shared)."""
    d = problem.n_features
    return float(np.minimum(problem.data.n_samples, d).sum() * d + d * problem.n_tasks)


def conic_seconds(problem: Problem) -> float:
    """Estimated seconds of a Clarabel solve: ``0.15 · (conic_nnz / 1.1e5)^1.5``, plus
    ``_COMPILE_SECONDS`` unless ``problem`` holds a compiled problem for its current data
    (:func:`mtlcvx.compile.is_compiled`; re-solves reuse it)."""
    seconds = _CONIC_SECONDS * (conic_nnz(problem) / _CONIC_NNZ) ** _CONIC_POWER
    return seconds + (0.0 if is_compiled(problem) else _COMPILE_SECONDS)


def fista_iterations(problem: Problem, tol: float = 1e-8) -> float:
    """Accelerated-gradient iterations to a relative gap ``tol``: ``2√(L/μ)·ln(1/tol)``,
    with ``L`` and ``μ`` of the gradient part of the split fista iterates on
    (:func:`mtlcvx.first_order.splitting`).

    ``_FISTA_MAX_ITER`` when that part is not known to be strongly convex.
    """
    split = splitting(problem)
    return _iterations(split.lipschitz, split.strong_convexity, tol)


def _iterations(L: float | None, mu: float, tol: float = 1e-8) -> float:
    if L is None or mu <= 0:
        return float(_FISTA_MAX_ITER)
    return float(min(_FISTA_MAX_ITER, 2.0 * np.sqrt(L / mu) * np.log(1.0 / tol)))


class Route(NamedTuple):
    """What ``backend=None`` runs (:func:`default_route`)."""

    #: the backend that solves the problem (or that the attempt falls back to)
    backend: str
    #: ``(after, finish_by)`` seconds of the fista attempt made first, or None
    attempt: tuple[float, float] | None = None


_DIRECT, _FISTA, _CLARABEL = Route("direct"), Route("fista"), Route("clarabel")


def default_route(problem: Problem) -> Route:
    """The route ``backend=None`` takes, by estimated cost (see docs/backends.md).

    1. "direct" for quadratic problems (a linear solve in the structure of ``K``);
    2. "fista" when the problem needs the PSD cone and has an exact prox (interior-point
       PSD solvers run out of memory at School's size);
    3. otherwise, when every non-smooth term has an exact prox, the cheaper of "fista"
       (``fista_iterations · 2·T·d²`` flops at ``_FLOPS_PER_SECOND``) and "clarabel"
       (``C =`` :func:`conic_seconds`, plus ``_IMPORT_SECONDS`` while CVXPY is not
       imported: a fista solve never imports it);
    4. "clarabel" for everything else (constraints, no exact prox, LP/SOCP decompositions).

    In rule 3, when "clarabel" wins and every non-smooth term answers the ``support``
    oracle, fista's cost cannot be predicted: the model's iterations are its linear
    rate's (or, with ``μ = 0``, its full budget), but a support that settles early lets
    fista's restricted polish certify the point in a few hundred iterations (MALSAR's
    TGL on School: 70 iterations where the rate predicts 22 000). Then ``attempt`` is
    ``(_ATTEMPT_SHARE·C, (1 + _ATTEMPT_SHARE)·C)``: fista runs first, for at least
    ``_ATTEMPT_SHARE·C`` seconds, and is abandoned at the first check after that whose
    gaps' linear rate does not predict ``tol`` by ``(1 + _ATTEMPT_SHARE)·C`` (when
    Clarabel started at ``_ATTEMPT_SHARE·C`` would be done) unless its support has
    settled (then the polish is in play and it keeps until ``(1 + _ATTEMPT_SHARE)·C``).
    A fallback costs about ``_ATTEMPT_SHARE·C`` more than Clarabel alone, up to
    ``(1 + _ATTEMPT_SHARE)·C`` more after a settled support whose polish did not certify.
    """
    if problem.is_quadratic:
        return _DIRECT
    if problem.constraints is not None:
        return _CLARABEL
    if "psd" in problem.cones and problem.proximable:
        return _FISTA
    if not problem.has_prox:
        return _CLARABEL
    d, T = problem.n_features, problem.n_tasks
    fista = fista_iterations(problem) * 2.0 * T * d * d / _FLOPS_PER_SECOND
    conic = conic_seconds(problem)
    if fista < conic + (0.0 if "cvxpy" in sys.modules else _IMPORT_SECONDS):
        return _FISTA
    if not RestrictedSolve.applies(problem):
        return _CLARABEL
    return Route("clarabel", (_ATTEMPT_SHARE * conic, (1.0 + _ATTEMPT_SHARE) * conic))


def default_backend(problem: Problem) -> str:
    """The backend ``backend=None`` solves with: ``default_route(problem).backend``."""
    return default_route(problem).backend


def certified_status(certificate: Any, tol: float) -> str:
    """The status a certificate earns: ``"optimal"`` when its relative gap is ≤ ``tol``,
    ``"inaccurate"`` when it is larger, ``"unverified"`` when no rung gives a gap.

    The solver's own word never decides the status (backends keep it in
    ``sol.info["solver_status"]``).
    """
    if certificate.relative_gap is None:
        return "unverified"
    return "optimal" if certificate.relative_gap <= tol else "inaccurate"


def status_message(sol: Solution, tol: float) -> str | None:
    """The ConvergenceWarning text for a non-"optimal" solution (None when optimal).

    "inaccurate": what the certificate found and how to polish the point;
    "unverified": why there is no gap and what would give one.
    """
    if sol.status == "optimal":
        return None
    cert = sol.certificate
    said = f"solver status {sol.info.get('solver_status', 'n/a')!r}"
    if sol.status == "unverified":
        return (f"backend {sol.backend!r} returned a point no certificate can verify ({said}): "
                f"{cert.reason}. Status is 'unverified', not 'optimal': only a certified gap "
                "<= tol * |F(W)| makes a point optimal.")
    hint = sol.info.get("hint")
    return (f"backend {sol.backend!r} returned a point that is not certified optimal ({said}, "
            f"certified relative gap {cert.relative_gap:.2e} > tol={tol:g}). Hint: "
            "solve(..., refine=True) polishes it with the certified first-order method"
            + (f"; or {hint}" if hint else ""))


def resolve_backend(problem: Problem, name: str | None) -> Backend:
    """The backend that will solve ``problem``: checked for compatibility, then installation.

    ``name=None`` follows :func:`default_backend`.
    """
    if name is None:
        name = default_route(problem).backend
    backend = BACKENDS.get(name.lower()) if isinstance(name, str) else None
    if backend is None:
        raise IncompatibleBackend(
            f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)} "
            f"(see mtlcvx.available_backends())"
        )
    why = backend.incompatibility(problem)
    if why is not None:
        raise IncompatibleBackend(f"{why}. Backends that can solve this problem: "
                                  f"{_capable(problem)}")
    if not backend.is_installed():
        raise BackendUnavailable(
            f"backend {backend.name!r} is not installed: {backend.install_hint()}"
        )
    return backend
