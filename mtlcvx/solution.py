"""The :class:`Solution` every backend returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._io import Saved
from ._optional import require

__all__ = ["STATUS_RULE", "Solution"]

#: The status rule, in the words the README and docs use.
STATUS_RULE = ('"optimal" only with a certified gap <= tol * |F(W)|; "inaccurate" with a '
               'larger gap; "unverified" when no certificate gives a gap')


class Reported:
    """The report of a fitted result with ``W`` (d, T), ``intercept``, ``objective`` and
    ``info`` (:class:`Solution`, :class:`~mtlcvx.RelationResult`): ``str()`` is the
    subclass's ``summary()``, which :meth:`_report` lays out."""

    W: np.ndarray
    intercept: np.ndarray | None
    objective: float
    info: dict[str, Any]

    def _report(self, title: str, labels: list[str], body: list[str]) -> str:
        """``title``, the shape of ``W``, ``labels``, the objective, ``body``, then ``info``."""
        d, T = self.W.shape
        return "\n".join([
            title,
            f"  W: {d} features x {T} tasks"
            + ("" if self.intercept is None else ", with intercepts"),
            *labels,
            f"  objective (NumPy, original data): {self.objective:.12g}",
            *body,
            *(f"  {key}: {value}" for key, value in self.info.items()),
        ])

    def __str__(self) -> str:
        return self.summary()


@dataclass
class Solution(Saved, Reported):
    """Result of :meth:`mtlcvx.Problem.solve`.

    Attributes
    ----------
    W : ndarray (d, T)
        Coefficients, column ``t`` is task ``t``.
    intercept : ndarray (T,) or None
        Per-task intercepts when the problem fits them.
    objective : float
        The objective recomputed in NumPy at the returned ``W`` from the original
        (uncompressed) data, never the solver's own number (for a shared design through
        ``XᵀX`` and ``XᵀY`` where the certificate does so; its rounding is in the gap).
    solver_objective : float or None
        What the backend reported, mapped back to the same objective (the constants
        dropped by compression added back), for comparison with ``objective``.
    status : str
        ``"optimal"`` only when the certificate's relative gap ``gap / |F(W)|`` is at
        most ``tol``; ``"inaccurate"`` when it is larger; ``"unverified"`` when no rung
        gives a gap (``certificate.reason`` says why, the solver's own word is in
        ``info["solver_status"]``). The last two come with a
        :class:`~mtlcvx.ConvergenceWarning`.
    backend : str
        The backend that produced ``W`` (``backend=None`` resolves to one; see the
        documentation's :doc:`/backends` page). Where ``backend=None`` tried fista first
        and gave it up, ``info["abandoned"]`` records that attempt.
    compile_time, solve_time : float
        Seconds spent building/compiling (CVXPY canonicalisation, or assembling the
        reduced system for "direct") and in the solver itself.
    iterations : int or None
        Solver iterations (CG iterations for "direct" in its matrix-free mode, 1 for a
        factorisation).
    certificate : object or None
        Certificate of optimality (filled by the certificates module).
    parts : dict
        Named arrays of decomposition penalties (empty otherwise).
    history : dict
        Per-iteration arrays for iterative backends (empty otherwise).
    info : dict
        Backend-specific details (method used, tolerances sent to the solver), and
        ``abandoned``: ``{"backend", "iterations", "seconds", "relative_gap", "reason"}``
        of a fista attempt that ``backend=None`` gave up before ``backend`` ran.
    feature_names : list or None
        The data's feature names (``data.feature_names``), the index of :meth:`to_frame`.
    tasks : list or None
        The data's task labels (``data.tasks``), the columns of :meth:`to_frame`.
    """

    W: np.ndarray
    intercept: np.ndarray | None
    objective: float
    solver_objective: float | None
    status: str
    backend: str
    compile_time: float
    solve_time: float
    iterations: int | None = None
    certificate: Any = None
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    history: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    feature_names: list[Any] | None = None
    tasks: list[Any] | None = None

    def summary(self) -> str:
        """A short human-readable report."""
        d, T = self.W.shape
        named = [(what, labels) for what, labels, count in
                 (("tasks", self.tasks, T), ("features", self.feature_names, d))
                 if labels is not None and list(labels) != list(range(count))]
        lines = []
        if self.solver_objective is not None:
            rel = abs(self.solver_objective - self.objective) / max(1.0, abs(self.objective))
            lines.append(f"  solver's objective: {self.solver_objective:.12g} "
                         f"(relative difference {rel:.2e})")
        lines.append(f"  compile {self.compile_time:.3f} s, solve {self.solve_time:.3f} s"
                     + ("" if self.iterations is None else f", {self.iterations} iterations"))
        if self.certificate is not None:
            lines.append(f"  certificate: {self.certificate}")
        lines.append(f"  status rule: {STATUS_RULE}")
        return self._report(
            f"mtlcvx solution ({self.backend}): status {self.status}",
            [f"  {what}: {', '.join(map(repr, labels[:6]))}" + (", …" if len(labels) > 6 else "")
             for what, labels in named], lines)

    def to_frame(self, feature_names: list[Any] | None = None, tasks: list[Any] | None = None):
        """``W`` as a pandas DataFrame (features × tasks); needs the ``pandas`` extra.

        Parameters
        ----------
        feature_names : list of length d, optional
            Row labels; default :attr:`feature_names` (the data's), else ``0 … d−1``.
        tasks : list of length T, optional
            Column labels; default :attr:`tasks` (the data's), else ``0 … T−1``.

        Returns
        -------
        pandas.DataFrame (d, T), or (d + 1, T) with a last row ``"intercept"`` when the
        problem fits intercepts.
        """
        return coefficients_frame(
            self.W, self.intercept,
            self.feature_names if feature_names is None else feature_names,
            self.tasks if tasks is None else tasks, "Solution.to_frame")


def coefficients_frame(W: np.ndarray, intercept: np.ndarray | None, feature_names: Any,
                       tasks: Any, caller: str):
    """``W`` (d, T) as a pandas DataFrame, with a last row ``"intercept"`` when given."""
    pd = require("pandas", "pandas", caller)
    frame = pd.DataFrame(W, index=feature_names, columns=tasks)
    if intercept is not None:
        frame.loc["intercept"] = intercept
    return frame
