r"""Validate a gradient method against the exact optimum.

:func:`validate` scores the iterates of any method (yours or mtlcvx's) against a reference
solution ``W_ref`` carrying its own certificate:

1. The reference: the closed form ("direct") for a quadratic problem, else a long
   accelerated proximal-gradient run (:func:`mtlcvx.first_order.fista`, ``tol=1e-10``)
   when every non-smooth term has an exact prox, else a conic solve (Clarabel). Its
   certificate (:func:`mtlcvx.certificates.certify`) is attached, and
   ``F_ref = F(W_ref)`` is recomputed in NumPy on the original data.
2. Every iterate is scored by its relative suboptimality
   ``(F(W) − F_ref) / max(1, |F_ref|)``, and the final one by its own certificate.
3. The relative distance ``‖W − W_ref‖_F / ‖W_ref‖_F`` is reported only when the problem
   is strongly convex (``problem.strong_convexity() > 0``): otherwise the optimum need
   not be unique (L21 or trace-norm problems have flat directions) and a distance to one
   particular minimiser means nothing.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._optional import require
from ._restricted import restricted_dual
from .certificates import Certificate, certify
from .exceptions import ConvergenceWarning, DataError
from .problem import Problem

__all__ = ["ValidationReport", "validate"]

#: Relative suboptimality below which the reference must lie for the iterates not to beat
#: it noticeably; beyond this a note says the reference is not optimal.
_BEAT_TOLERANCE = 1e-9


@dataclass
class ValidationReport:
    """How a method's iterates approach the exact optimum of a problem.

    Attributes
    ----------
    reference_objective : float
        ``F_ref = F(W_ref)``, recomputed in NumPy on the original data.
    reference_certificate : Certificate
        Certificate of ``W_ref`` (a bound on ``F_ref − F*`` that trusts no solver).
    reference_method : str
        How the reference was obtained: ``"direct"``, ``"fista"``, ``"clarabel"``,
        ``"given"``, or ``"given (<backend>)"`` for a given Solution.
    reference_W : ndarray (d, T)
        The reference coefficients.
    iterations : ndarray of int (n,)
        Iteration number of each scored point.
    times : ndarray (n,) or None
        Wall time in seconds at each scored point (since the method started), when known.
    objective : ndarray (n,)
        ``F`` at each scored point.
    suboptimality : ndarray (n,)
        ``(F − F_ref) / max(1, |F_ref|)`` at each scored point (may be slightly negative
        at round-off level, or more when the reference is not optimal: see ``notes``).
    distance : ndarray (n,) or None
        ``‖W − W_ref‖_F / ‖W_ref‖_F`` (absolute when ``W_ref = 0``) when the problem is
        strongly convex, else None. NaN where the iterate is unknown (a Trace stores only
        its last one).
    certificate : Certificate
        Certificate of the final iterate.
    reached : dict
        ``threshold -> (iteration, time)`` of the first scored point whose relative
        suboptimality is at most ``threshold`` (``time`` None when timings are unknown),
        or ``threshold -> None`` when never reached.
    thresholds : tuple of float
        The thresholds of ``reached``, in the order given.
    strong_convexity : float
        ``problem.strong_convexity()``, the modulus ``μ ≥ 0`` used to decide on distances.
    W : ndarray (d, T)
        The final iterate.
    gap : ndarray (n,) or None
        For a :class:`~mtlcvx.first_order.Trace`, its recorded certified relative gap
        ``gap / |F|`` (NaN where not computed); None otherwise.
    notes : list of str
        Caveats (no distance, reference beaten, iteration stopped on a non-finite iterate).
    """

    reference_objective: float
    reference_certificate: Certificate
    reference_method: str
    reference_W: np.ndarray
    iterations: np.ndarray
    times: np.ndarray | None
    objective: np.ndarray
    suboptimality: np.ndarray
    distance: np.ndarray | None
    certificate: Certificate
    reached: dict[float, tuple[int, float | None] | None]
    thresholds: tuple[float, ...]
    strong_convexity: float
    W: np.ndarray
    gap: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def final_suboptimality(self) -> float:
        """Relative suboptimality of the last scored point."""
        return float(self.suboptimality[-1])

    @property
    def final_distance(self) -> float | None:
        """Relative distance of the final iterate to ``W_ref``; None when not strongly convex."""
        if self.distance is None:
            return None
        return float(self.distance[-1])

    def to_frame(self):
        """One row per scored point: iteration, time, objective, suboptimality, distance.

        ``time`` and ``distance`` are NaN where unknown or not applicable. Needs the
        ``pandas`` extra.

        Returns
        -------
        pandas.DataFrame
        """
        pd = require("pandas", "pandas", "ValidationReport.to_frame")
        n = len(self.iterations)
        nan = np.full(n, np.nan)
        return pd.DataFrame({
            "iteration": np.asarray(self.iterations, dtype=int),
            "time": nan.copy() if self.times is None else np.asarray(self.times, dtype=float),
            "objective": np.asarray(self.objective, dtype=float),
            "suboptimality": np.asarray(self.suboptimality, dtype=float),
            "distance": nan.copy() if self.distance is None else np.asarray(self.distance,
                                                                            dtype=float),
        })

    def __str__(self) -> str:
        n = len(self.iterations)
        lines = ["Validation against the exact optimum (relative suboptimality "
                 "(F − F_ref)/max(1, |F_ref|))"]
        def row(key: str, value: str) -> None:
            lines.append(f"  {key:<22}{value}")

        row("reference", f"F_ref = {self.reference_objective:.12e} [{self.reference_method}]")
        row("reference certificate", str(self.reference_certificate))
        span = f"{n} point{'s' if n != 1 else ''} (iterations {int(self.iterations[0])}"
        span += f"–{int(self.iterations[-1])})" if n > 1 else ")"
        if self.times is not None and n and np.isfinite(self.times[-1]):
            span += f", {self.times[-1]:.4g} s"
        row("scored", span)
        row("final suboptimality", f"{self.final_suboptimality:.3e}")
        if self.distance is None:
            row("relative distance", "n/a (not strongly convex)")
        else:
            fd = self.final_distance
            text = "unknown" if fd is None or not np.isfinite(fd) else f"{fd:.3e}"
            row("relative distance",
                f"{text}  (‖W − W_ref‖_F/‖W_ref‖_F, μ = {self.strong_convexity:.3e})")
        row("final certificate", str(self.certificate))
        lines.append(f"  {'threshold':>10}  {'iterations':>10}  {'time (s)':>10}")
        for thr in self.thresholds:
            hit = self.reached.get(thr)
            if hit is None:
                lines.append(f"  {thr:>10.0e}  {'not reached':>10}")
            else:
                it, t = hit
                ts = "n/a" if t is None else f"{t:.4g}"
                lines.append(f"  {thr:>10.0e}  {it:>10d}  {ts:>10}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"ValidationReport(final_suboptimality={self.final_suboptimality:.3e}, "
                f"points={len(self.iterations)}, reference={self.reference_method!r})")


# ---------------------------------------------------------------------------- reference
def _reference(problem: Problem, reference: Any) -> tuple[np.ndarray, str]:
    """``(W_ref, method)``: the given reference, else direct, certified fista or Clarabel."""
    if reference is not None:
        W_ref = getattr(reference, "W", reference)
        backend = getattr(reference, "backend", None)
        method = "given" if backend is None else f"given ({backend})"
        return problem.check_W(W_ref, "reference").copy(), method
    if problem.is_quadratic:
        return problem.solve(backend="direct").W, "direct"
    if problem.constraints is None and problem.has_prox:
        from .first_order import fista

        trace = fista(problem, tol=1e-10)
        if not trace.converged:
            warnings.warn(
                f"the reference FISTA run stopped after {trace.iterations} iterations "
                f"without meeting tol=1e-10 ({trace.certificate}); pass a tighter "
                "reference= to validate against",
                ConvergenceWarning, stacklevel=3)
        return trace.W, "fista"
    return problem.solve(backend="clarabel").W, "clarabel"


# ---------------------------------------------------------------------------- inputs
def _is_trace(obj: Any) -> bool:
    from .first_order import Trace

    return isinstance(obj, Trace) or (
        hasattr(obj, "history") and hasattr(obj, "W") and isinstance(obj.history, dict)
        and "objective" in obj.history)


def _run_step(problem: Problem, step: Callable[[np.ndarray], Any], W0: Any,
              max_iter: int, notes: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
    """Iterate ``W ← step(W)`` ``max_iter`` times, recording every iterate and wall time.

    ``times[k]`` is the wall time spent inside ``step`` for iterations 1..k (the copies
    and checks made here are not counted).
    """
    if not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise ValueError(f"max_iter must be a non-negative integer, got {max_iter!r}")
    W = (np.zeros((problem.n_features, problem.n_tasks)) if W0 is None
         else problem.check_W(W0, "W0").copy())
    iterates = [W]
    times = [0.0]
    elapsed = 0.0
    for k in range(1, max_iter + 1):
        W_in = W.copy()  # the recorded iterate stays intact if step() works in place
        start = time.perf_counter()
        out = step(W_in)
        elapsed += time.perf_counter() - start
        W = _as_iterate(problem, out, f"step(W) at iteration {k}")
        iterates.append(W)
        times.append(elapsed)
        if not np.all(np.isfinite(W)):
            notes.append(f"stopped at iteration {k}: the iterate is not finite (diverged)")
            break
    return iterates, np.asarray(times)


def _as_iterate(problem: Problem, W: Any, name: str) -> np.ndarray:
    """A (d, T) float64 copy of ``W``; unlike ``check_W``, NaN/inf are allowed (divergence)."""
    try:
        arr = np.array(W, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as err:
        raise DataError(f"{name} could not be converted to a float array: {err}") from err
    if arr.shape != (problem.n_features, problem.n_tasks):
        raise DataError(
            f"{name} has shape {arr.shape}, expected (n_features, n_tasks) = "
            f"({problem.n_features}, {problem.n_tasks}); transpose a (T, d) coef_ with .T")
    return arr


def _objective(problem: Problem, W: np.ndarray) -> float:
    if not np.all(np.isfinite(W)):
        return math.nan
    with np.errstate(over="ignore", invalid="ignore"):
        return problem.objective(W)


def _distance(W: np.ndarray, W_ref: np.ndarray, ref_norm: float) -> float:
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.linalg.norm(W - W_ref)) / ref_norm


# ---------------------------------------------------------------------------- validate
def validate(
    problem: Problem,
    W_or_iterates_or_trace: Any,
    reference: Any = None,
    *,
    max_iter: int = 1000,
    W0: np.ndarray | None = None,
    thresholds: Sequence[float] = (1e-2, 1e-4, 1e-6, 1e-8),
) -> ValidationReport:
    """Score a method's iterates against the exact optimum.

    Parameters
    ----------
    problem : Problem
        The problem the iterates are meant to minimise.
    W_or_iterates_or_trace : ndarray, sequence of ndarray, Trace or callable
        What to score:

        * one coefficient matrix ``W`` (d, T), or anything with a ``.W`` such as a
          :class:`~mtlcvx.Solution` (scored as that single point);
        * a sequence of iterates, each (d, T) (or an array (n, d, T)), scored as
          iterations 0, 1, …, n − 1 (no timings);
        * a :class:`~mtlcvx.first_order.Trace`: its recorded ``history`` (objective,
          iteration, time) is scored, and its final ``W`` certified (the iterates are
          not stored, so the distance is known for the last one only);
        * a callable ``step(W) -> W`` (one iteration of your method): run ``max_iter``
          times from ``W0``, recording every iterate and the cumulative wall time spent
          inside ``step`` (the scoring happens afterwards and is not timed). ``step``
          gets a copy, so it may work in place. The run stops early at a non-finite
          iterate.
    reference : Solution, array_like (d, T) or None
        The reference optimum: anything with a ``.W`` (a Solution, a Trace) or a
        coefficient matrix. None computes one: the "direct" backend for a quadratic
        problem, else :func:`~mtlcvx.first_order.fista` with ``tol=1e-10`` when every
        non-smooth term has an exact prox (a ConvergenceWarning if it stops short),
        else the "clarabel" backend.
    max_iter : int, default 1000
        Number of steps when a callable is given.
    W0 : ndarray (d, T), optional
        Start of the callable's run (default zeros).
    thresholds : sequence of float
        Relative suboptimality levels whose first crossing is reported.

    Returns
    -------
    ValidationReport
        ``suboptimality`` per point, ``distance`` (strongly convex problems only),
        ``certificate`` of the final iterate, ``reference_certificate``, ``reached``.

    Notes
    -----
    Only the intercept-profiled objective is scored: with ``fit_intercept=True``,
    ``F(W)`` uses the best intercepts for ``W``, as :meth:`Problem.objective` does.

    Examples
    --------
    >>> import numpy as np, mtlcvx as mc
    >>> from mtlcvx.validation import validate
    >>> data = mc.datasets.make_related_tasks(n_tasks=3, n_features=4, random_state=0)
    >>> prob = mc.Problem(data, penalties=[mc.Ridge(alpha=0.1)])
    >>> L = prob.lipschitz()
    >>> rep = validate(prob, lambda W: W - prob.smooth_value_and_gradient(W)[1] / L,
    ...                max_iter=500)
    >>> rep.final_suboptimality < 1e-8
    True
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be an mtlcvx Problem, got {type(problem).__name__}")
    thresholds = tuple(float(t) for t in thresholds)
    notes: list[str] = []
    obj = W_or_iterates_or_trace
    times: np.ndarray | None = None
    gap: np.ndarray | None = None
    iterates: list[np.ndarray] | None = None

    if _is_trace(obj):
        hist = obj.history
        objective = np.asarray(hist["objective"], dtype=float)
        if objective.size == 0:
            raise DataError("the trace has an empty history")
        iterations = np.asarray(hist.get("iteration", np.arange(objective.size)), dtype=int)
        times = (np.asarray(hist["time"], dtype=float) if "time" in hist else None)
        if "gap" in hist:
            with np.errstate(divide="ignore", invalid="ignore"):  # gap / |F|, 0/0 = 0
                raw = np.asarray(hist["gap"], dtype=float)
                gap = np.where(raw == 0.0, 0.0, raw / np.abs(objective))
        W_final = _as_iterate(problem, obj.W, "trace.W")
        last_known = iterations[-1] == getattr(obj, "iterations", iterations[-1])
    elif hasattr(obj, "W") and not callable(obj):  # a Solution or the like: its W
        iterates = [_as_iterate(problem, obj.W, "W")]
        iterations = np.arange(1)
    elif callable(obj):
        iterates, times = _run_step(problem, obj, W0, max_iter, notes)
        iterations = np.arange(len(iterates))
    else:
        try:
            arr = np.asarray(obj, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataError(
                "W_or_iterates_or_trace must be a (d, T) array, a sequence of (d, T) "
                "iterates, a Trace or a callable step(W) -> W") from err
        if arr.ndim == 2:
            iterates = [_as_iterate(problem, arr, "W")]
        elif arr.ndim == 3:
            iterates = [_as_iterate(problem, a, f"iterate {k}") for k, a in enumerate(arr)]
        else:
            raise DataError(
                f"expected one W (d, T) or iterates (n, d, T), got an array of shape "
                f"{arr.shape}")
        if not iterates:
            raise DataError("no iterates to validate")
        iterations = np.arange(len(iterates))

    W_ref, method = _reference(problem, reference)
    # the dual point of the problem restricted to the reference's support (when its
    # terms answer `support`) is near-optimal: the reference's gap is then its true one
    ref_cert = certify(problem, W_ref, dual_lower=restricted_dual(problem, W_ref))
    F_ref = problem.objective(W_ref)
    scale = max(1.0, abs(F_ref))

    if iterates is not None:
        objective = np.array([_objective(problem, W) for W in iterates])
        W_final = iterates[-1]
    # the reference's dual value is a certified lower bound on F*: the final iterate's gap
    # uses the best dual value seen, its own or the reference's
    final_cert = (certify(problem, W_final, dual_lower=ref_cert.dual_objective)
                  if np.all(np.isfinite(W_final))
                  else Certificate(math.nan, None, None, None, None, "none",
                                   "the final iterate is not finite"))
    suboptimality = (objective - F_ref) / scale

    mu = problem.strong_convexity()
    distance: np.ndarray | None = None
    if mu > 0:
        ref_norm = float(np.linalg.norm(W_ref))
        if ref_norm == 0.0:
            ref_norm = 1.0
            notes.append("W_ref = 0: distances are absolute, ‖W − W_ref‖_F")
        if iterates is not None:
            distance = np.array([_distance(W, W_ref, ref_norm) for W in iterates])
        else:
            distance = np.full(len(iterations), np.nan)
            if last_known:
                distance[-1] = _distance(W_final, W_ref, ref_norm)
    else:
        notes.append("no distances: without strong convexity the minimiser need not be "
                     "unique, so only objective values are compared")

    reached: dict[float, tuple[int, float | None] | None] = {}
    for thr in thresholds:
        hits = np.flatnonzero(suboptimality <= thr)
        if hits.size == 0:
            reached[thr] = None
        else:
            i = int(hits[0])
            reached[thr] = (int(iterations[i]),
                            None if times is None else float(times[i]))

    finite = suboptimality[np.isfinite(suboptimality)]
    if finite.size and finite.min() < -_BEAT_TOLERANCE:
        notes.append(f"an iterate beats the reference by {-finite.min():.2e} (relative): the "
                     f"reference is not optimal to that accuracy (its certificate: "
                     f"{ref_cert})")

    return ValidationReport(
        reference_objective=float(F_ref),
        reference_certificate=ref_cert,
        reference_method=method,
        reference_W=W_ref,
        iterations=np.asarray(iterations, dtype=int),
        times=times,
        objective=objective,
        suboptimality=suboptimality,
        distance=distance,
        certificate=final_cert,
        reached=reached,
        thresholds=thresholds,
        strong_convexity=float(mu),
        W=W_final,
        gap=gap,
        notes=notes,
    )
