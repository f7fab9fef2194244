"""Backend registry: capabilities, availability and selection (docs/backends.md)."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any, NamedTuple

from ..exceptions import BackendUnavailable, IncompatibleBackend

if TYPE_CHECKING:
    from ..problem import Problem
    from ..solution import Solution

__all__ = ["Backend", "BackendInfo", "BACKENDS", "register", "available_backends",
           "default_backend", "certified_status", "resolve_backend", "status_message"]


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
        """True when every required module can be found."""
        return all(importlib.util.find_spec(m) is not None for m in self.modules)

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


def default_backend(problem: Problem) -> str:
    """The default rule: "direct" for quadratic problems; "fista" when every non-smooth term
    has an exact prox and the problem needs the PSD cone or has ``T·d > 2000``;
    otherwise "clarabel". A decomposition (fista over its stacked parts) goes to "fista"
    only when it needs the PSD cone: the LP/SOCP ones (Dirty, RobustFeatureLearning) are
    20–50× faster on Clarabel at School's size."""
    if problem.is_quadratic:
        return "direct"
    large = problem.n_tasks * problem.n_features > 2000
    if problem.constraints is None and (("psd" in problem.cones and problem.proximable)
                                        or (large and problem.has_prox)):
        return "fista"
    return "clarabel"


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
        name = default_backend(problem)
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise IncompatibleBackend(
            f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)} "
            f"(see mtlcvx.available_backends())"
        )
    backend = BACKENDS[name.lower()]
    why = backend.incompatibility(problem)
    if why is not None:
        raise IncompatibleBackend(f"{why}. Backends that can solve this problem: "
                                  f"{_capable(problem)}")
    if not backend.is_installed():
        raise BackendUnavailable(
            f"backend {backend.name!r} is not installed: {backend.install_hint()}"
        )
    return backend
