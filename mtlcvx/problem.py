"""The :class:`Problem`: data + loss + penalties, compiled once, solved by any backend."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import backends, compile, oracles
from ._optional import cp
from .data import MultiTaskData, as_float_array
from .exceptions import DataError, MTLError, PenaltyError
from .losses import SquaredLoss
from .penalties.base import Penalty

if TYPE_CHECKING:
    from .solution import Solution

__all__ = ["Problem"]


class Problem:
    r"""A multi-task regression problem.

    .. math::

        \min_{W, b}\ \sum_t \frac{c_t}{2}\lVert X_t w_t + b_t - y_t\rVert^2
        + \sum_i P_i(W)

    with ``W`` (d, T), optional unpenalised intercepts ``b`` (T,), the loss's
    ``c_t`` (:class:`~mtlcvx.SquaredLoss`) and penalties ``P_i``.

    Parameters
    ----------
    data : MultiTaskData
    loss : SquaredLoss, default ``SquaredLoss(scale="mean")``
    penalties : sequence of Penalty
    fit_intercept : bool, default False
        Fit an unpenalised intercept per task (profiled out exactly by centring each
        task; recovered as ``b_t = mean(y_t − X_t w_t)``).
    constraints : callable, optional
        ``constraints(W) -> list of cvxpy constraints`` on the variable ``W``; conic
        backends only.

    Notes
    -----
    The CVXPY problem is built lazily, once, on first use by a conic backend or when
    :attr:`cvxpy` is read. Every strength is a ``cvxpy.Parameter``
    owned by the problem: ``penalty.alpha = 0.5`` or ``penalty.set_params(alpha=0.5)``
    takes effect at the next :meth:`solve` without a rebuild. A new
    matrix (``K``, ``A``, ``D``) whose factor keeps its shape is a Parameter update
    too; one whose factor changes shape, or a sparse factor, triggers a rebuild.

    Examples
    --------
    >>> import numpy as np, mtlcvx as mc
    >>> data = mc.datasets.make_related_tasks(n_tasks=4, n_features=5, n_samples=20,
    ...                                       random_state=0)
    >>> prob = mc.Problem(data, penalties=[mc.TaskRelation(np.eye(4), alpha=0.1)])
    >>> sol = prob.solve(backend="direct")
    >>> sol.status
    'optimal'
    """

    def __init__(
        self,
        data: MultiTaskData,
        loss: SquaredLoss | None = None,
        penalties: Sequence[Penalty] = (),
        *,
        fit_intercept: bool = False,
        constraints: Callable[[Any], list[Any]] | None = None,
    ):
        if not isinstance(data, MultiTaskData):
            raise DataError(
                f"data must be a MultiTaskData, got {type(data).__name__}; build one with "
                "mc.MultiTaskData([X1, X2, ...], [y1, y2, ...])"
            )
        loss = SquaredLoss() if loss is None else loss
        if not isinstance(loss, SquaredLoss):
            given = loss[0] if isinstance(loss, (list, tuple)) and loss else loss
            hint = ("; penalties go by keyword: mc.Problem(data, penalties=[...])"
                    if isinstance(given, Penalty) else "")
            raise MTLError(f"loss must be a SquaredLoss, got {type(loss).__name__}{hint}")
        if isinstance(penalties, Penalty):
            penalties = [penalties]
        penalties = list(penalties)
        for i, pen in enumerate(penalties):
            if not isinstance(pen, Penalty):
                raise PenaltyError(
                    f"penalties[{i}] is a {type(pen).__name__}, not a Penalty; wrap a CVXPY "
                    "expression with mc.Custom(lambda W: ..., cones={...})"
                )
        if constraints is not None and not callable(constraints):
            raise MTLError("constraints must be a callable W -> list of cvxpy constraints")
        self.data = data
        self.loss = loss
        self.penalties = tuple(penalties)
        self.fit_intercept = bool(fit_intercept)
        self.constraints = constraints
        d, T = data.n_features, data.n_tasks
        for pen in self.penalties:
            pen.verify(d, T)
        self.loss.weights(data)  # validates task_weights against the data now
        self._compiled: dict[str, Any] | None = None
        self.n_builds = 0

    def with_data(self, data: MultiTaskData) -> Problem:
        """The same loss, penalties, intercept setting and constraints on other data.

        The loss and the penalties are deep copies (changing a strength on the new
        problem leaves this one alone); nothing compiled is shared, so the new problem
        builds its own CVXPY problem if a conic backend asks for one. Used for the
        training folds of :func:`mtlcvx.cross_validate`.

        Parameters
        ----------
        data : MultiTaskData
            Same number of features and tasks when a penalty's matrix is sized to them
            (``K`` is T×T, ``D`` is d×d).

        Returns
        -------
        Problem
        """
        return Problem(data, loss=copy.deepcopy(self.loss),
                       penalties=[copy.deepcopy(p) for p in self.penalties],
                       fit_intercept=self.fit_intercept, constraints=self.constraints)

    # ------------------------------------------------------------------ structure
    def check_shapes(self) -> None:
        """Check every penalty's matrices against the data (they may be set after creation)."""
        d, T = self.data.n_features, self.data.n_tasks
        for pen in self.penalties:
            pen.check_shape(d, T)

    @property
    def n_features(self) -> int:
        """Number of features d."""
        return self.data.n_features

    @property
    def n_tasks(self) -> int:
        """Number of tasks T."""
        return self.data.n_tasks

    @property
    def cones(self) -> frozenset[str]:
        """Cones a conic backend needs: ``"quadratic"`` for the loss plus each penalty's."""
        cones = {"quadratic"}
        for pen in self.penalties:
            cones |= pen.cones
        return frozenset(cones)

    @property
    def is_quadratic(self) -> bool:
        """True when every penalty is quadratic and there are no constraints."""
        if self.constraints is not None:
            return False
        for p in self.penalties:  # (a loop: asked by every default route and solve)
            if p.structure != "quadratic":
                return False
        return True

    def loss_weights(self) -> np.ndarray:
        """The loss factors ``c_t`` (T,)."""
        return self.loss.weights(self.data)

    # ------------------------------------------------------------------ numpy side
    def optimal_intercept(self, W: np.ndarray) -> np.ndarray:
        """Intercepts minimising the loss for fixed ``W``: ``b_t = mean(y_t − X_t w_t)``."""
        return -self.data.residual_means(W)

    def check_W(self, W: Any, name: str = "W") -> np.ndarray:
        """Validate a coefficient matrix of shape (d, T) and return it as float64."""
        W = as_float_array(W, name, 2)
        if W.shape != (self.n_features, self.n_tasks):
            raise DataError(
                f"{name} has shape {W.shape}, expected (n_features, n_tasks) = "
                f"({self.n_features}, {self.n_tasks}); transpose a (T, d) coef_ with .T"
            )
        return W

    def _intercept_for(self, W: np.ndarray, intercept: Any) -> np.ndarray | None:
        if not self.fit_intercept:
            if intercept is not None:
                raise DataError("intercept given but the problem has fit_intercept=False")
            return None
        if intercept is None:
            return self.optimal_intercept(W)
        b = as_float_array(intercept, "intercept", 1)
        if b.shape != (self.n_tasks,):
            raise DataError(f"intercept has shape {b.shape}, expected ({self.n_tasks},)")
        return b

    def objective(self, W: Any, intercept: Any = None, *,
                  parts: Mapping[str, Any] | None = None) -> float:
        """The objective at ``W`` (d, T) in NumPy float64 on the original data.

        With ``fit_intercept=True`` and ``intercept=None`` the intercepts are profiled
        out (set to their optimal values for this ``W``). ``parts`` (name -> (d, T)
        array, as in ``sol.parts``) evaluates decomposition terms at the given parts
        instead of at their best parts for ``W``.
        """
        W = self.check_W(W)
        self.check_shapes()
        b = self._intercept_for(W, intercept)
        if not parts:
            return self.loss.value(self.data, W, b) + sum(p.value(W) for p in self.penalties)
        known = {name for p in self.penalties for name in p.part_names}
        unknown = sorted(set(parts) - known)
        if unknown:
            raise DataError(f"parts {unknown} belong to no term; the terms' parts are "
                            f"{sorted(known) or 'none'}")
        values = 0.0
        for p in self.penalties:
            mine = {name: self.check_W(parts[name], f"parts[{name!r}]")
                    for name in p.part_names if name in parts}
            if mine and len(mine) != len(p.part_names):
                missing = sorted(set(p.part_names) - set(mine))
                raise DataError(f"parts {missing} of {p.label} are missing; give all of "
                                f"{list(p.part_names)} or none")
            values += p.value_at(W, mine) if mine else p.value(W)
        return self.loss.value(self.data, W, b) + values

    # ------------------------------------------------------------------ composite split
    def smooth_penalties(self) -> tuple[Penalty, ...]:
        """Terms with a gradient: the quadratic penalties and Custom terms given a gradient."""
        return tuple(p for p in self.penalties if p.is_smooth)

    def nonsmooth_penalties(self) -> tuple[Penalty, ...]:
        """The remaining terms ``g`` (handled through their prox)."""
        return tuple(p for p in self.penalties if not p.is_smooth)

    def quadratic_coupling(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Task-side ``Σ α K`` (T, T) and feature-side ``Σ α D`` (d, d, or None).

        Their part of the objective is ``½ tr(W K_t Wᵀ) + ½ tr(Wᵀ K_f W)``.
        """
        return oracles.quadratic_coupling(self)

    def smooth_value_and_gradient(self, W: np.ndarray) -> tuple[float, np.ndarray]:
        """Value and gradient (d, T) of the smooth part ``f + h`` (loss + smooth penalties).

        Evaluated on the compressed data (exact: the dropped constant is added back),
        with the intercepts profiled out when the problem fits them.
        """
        return oracles.smooth_oracle(self)(W, True)

    def smooth_oracle(self) -> Callable[[np.ndarray, bool], tuple[float, np.ndarray | None]]:
        """``oracle(W, need_gradient) -> (value, gradient or None)`` of ``f + h``, resolved once.

        Penalty values are read now: make a new oracle after changing them.
        """
        return oracles.smooth_oracle(self)

    def prox_operator(self) -> Callable[[np.ndarray, float], np.ndarray]:
        """``prox(V, step)`` of the non-smooth part, its plan resolved once (see :meth:`prox`)."""
        return oracles.prox_operator(self)

    def nonsmooth_value(self, W: np.ndarray) -> float:
        """Value of the non-smooth part ``g`` at ``W``."""
        return float(sum(p.value(W) for p in self.nonsmooth_penalties()))

    def prox(self, V: np.ndarray, step: float) -> np.ndarray:
        """Exact ``argmin_W step·g(W) + ½‖W − V‖²`` for the non-smooth part ``g``.

        Available for a single prox-able term, several terms of one kind (their
        strengths add), and L1 + L21 (sparse group lasso: soft-threshold, then the
        row shrink). Raises NotImplementedError naming the terms otherwise.
        """
        return oracles.prox_operator(self)(V, step)

    @property
    def has_prox(self) -> bool:
        """True when :meth:`prox` is exact for the non-smooth part."""
        return not isinstance(oracles.prox_plan(self), str)

    @property
    def proximable(self) -> bool:
        """True when a first-order method can run: :meth:`prox` is exact, or the non-smooth
        part is one decomposition term with an exact prox over its parts."""
        return self.has_prox or oracles.parts_term(self) is not None

    def lipschitz(self) -> float | None:
        """Upper bound on the Lipschitz constant of ∇(f + h).

        ``max_t c_t λ_max(A_tᵀA_t) + λ_max(K_t) + λ_max(K_f)``; None when a smooth term
        states no constant (first-order methods then backtrack).
        """
        return oracles.lipschitz(self)

    def strong_convexity(self) -> float:
        """Lower bound ``μ ≥ 0`` on the strong-convexity modulus of ``f + h``.

        ``min_t c_t λ_min(X̃_tᵀX̃_t) + λ_min(K_t) + λ_min(K_f)`` (exact for a shared
        design with equal weights); 0 when nothing guarantees strong convexity.
        """
        return oracles.strong_convexity(self)

    # ------------------------------------------------------------------ cvxpy side
    @property
    def cvxpy(self) -> cp.Problem:
        """The compiled-once CVXPY problem (built on first access); for reading."""
        return compile.refresh(self)["problem"]

    @property
    def cvxpy_variable(self) -> cp.Variable:
        """The CVXPY variable ``W`` (d, T) of :attr:`cvxpy`."""
        return compile.refresh(self)["W"]

    @property
    def cvxpy_offset(self) -> float:
        """Constant dropped from the CVXPY objective (compression, centring)."""
        return self.loss.offset(self.data, self.fit_intercept)

    # ------------------------------------------------------------------ solving
    def solve(
        self,
        backend: str | None = None,
        tol: float = 1e-8,
        max_iter: int | None = None,
        verbose: bool = False,
        refine: bool = False,
        **solver_opts: Any,
    ) -> Solution:
        """Solve the problem and return a :class:`~mtlcvx.Solution`.

        The same as ``mtlcvx.backends.solve(problem, ...)``; see there for every
        parameter. ``backend=None`` picks "direct" for quadratic problems, "fista" when
        every non-smooth term has an exact prox and the problem needs the PSD cone,
        otherwise the cheaper of "fista" and "clarabel" by estimated cost (fista tried
        first within a budget when its cost cannot be estimated; docs/backends.md);
        ``sol.backend`` says what ran; ``tol`` (default 1e-8) is the target
        certified relative gap; ``refine=True`` polishes an "inaccurate" point with the
        certified first-order method.

        Raises
        ------
        IncompatibleBackend, BackendUnavailable, SolverFailed, MTLError
            See :func:`mtlcvx.backends.solve`.
        """
        return backends.solve(self, backend, tol, max_iter, verbose, refine, **solver_opts)

    def __repr__(self) -> str:
        pens = ", ".join(map(repr, self.penalties))
        return (f"Problem({self.data!r}, loss={self.loss!r}, penalties=[{pens}], "
                f"fit_intercept={self.fit_intercept})")
