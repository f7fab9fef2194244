"""The :class:`Problem`: data + loss + penalties, compiled once, solved by any backend."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from .data import MultiTaskData, as_float_array
from .exceptions import ConvergenceWarning, DataError, MTLError, PenaltyError
from .losses import SquaredLoss
from .penalties.base import Penalty
from .penalties.quadratic import QuadraticPenalty

__all__ = ["Problem"]


def _lambda_min(lam: np.ndarray) -> np.ndarray:
    """Smallest of ascending eigenvalues ``lam`` (..., n) of PSD matrices, round-off set to 0."""
    low = lam[..., 0]
    return np.where(low > lam.shape[-1] * 1e-14 * np.maximum(1.0, lam[..., -1]), low, 0.0)


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
    :attr:`cvxpy` is read (DESIGN §7.2). Every strength is a ``cvxpy.Parameter``
    owned by the problem: ``penalty.alpha = 0.5`` or ``penalty.set_params(alpha=0.5)``
    takes effect at the next :meth:`solve` without a rebuild (DESIGN §7.1). A new
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
            raise MTLError(f"loss must be a SquaredLoss, got {type(loss).__name__}")
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
        self.check_shapes(include_custom=True)
        self.loss.weights(data)  # validates task_weights against the data now
        self._compiled: dict[str, Any] | None = None
        self.n_builds = 0

    # ------------------------------------------------------------------ structure
    def check_shapes(self, include_custom: bool = False) -> None:
        """Check every penalty's matrices against the data (they may be set after creation).

        Custom terms (whose check builds and DCP-analyses the expression) only when
        ``include_custom``.
        """
        from .penalties.custom import Custom

        for pen in self.penalties:
            if include_custom or not isinstance(pen, Custom):
                pen.check_shape(self.n_features, self.n_tasks)

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
        return self.constraints is None and all(
            isinstance(p, QuadraticPenalty) for p in self.penalties
        )

    def loss_weights(self) -> np.ndarray:
        """The loss factors ``c_t`` (T,)."""
        return self.loss.weights(self.data)

    # ------------------------------------------------------------------ numpy side
    def optimal_intercept(self, W: np.ndarray) -> np.ndarray:
        """Intercepts minimising the loss for fixed ``W``: ``b_t = mean(y_t − X_t w_t)``."""
        return -self.data.task_sums(self.data.stacked_residuals(W)) / self.data.n_samples

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

    def objective(self, W: Any, intercept: Any = None) -> float:
        """The objective at ``W`` (d, T) in NumPy float64 on the original data.

        With ``fit_intercept=True`` and ``intercept=None`` the intercepts are profiled
        out (set to their optimal values for this ``W``).
        """
        W = self.check_W(W)
        self.check_shapes()
        b = self._intercept_for(W, intercept)
        return self.loss.value(self.data, W, b) + sum(p.value(W) for p in self.penalties)

    # ------------------------------------------------------------------ composite split
    def smooth_penalties(self) -> tuple[Penalty, ...]:
        """Terms with a gradient: the quadratic penalties and Custom terms given a gradient."""
        return tuple(p for p in self.penalties if p.is_smooth)

    def nonsmooth_penalties(self) -> tuple[Penalty, ...]:
        """The remaining terms ``g`` (handled through their prox)."""
        return tuple(p for p in self.penalties if not p.is_smooth)

    def quadratic_coupling(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Task-side ``Σ α K`` (T, T) and feature-side ``Σ α D`` (d, d, or None).

        Sums over the quadratic penalties, so their part of the objective is
        ``½ tr(W K_t Wᵀ) + ½ tr(Wᵀ K_f W)`` and its gradient ``W K_t + K_f W``.
        """
        d, T = self.n_features, self.n_tasks
        Kt = np.zeros((T, T))
        Kf = None
        for p in self.penalties:
            if isinstance(p, QuadraticPenalty):
                M = p.alpha * p._cached_matrix(d, T)
                if p.side == "task":
                    Kt += M
                else:
                    Kf = M if Kf is None else Kf + M
        return Kt, Kf

    def _stacked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Compressed data padded to (T, m, d) and (T, m), with the weights c (T,)."""
        cache = self.__dict__.get("_stacked_cache")
        c = self.loss_weights()
        if cache is None or not np.array_equal(cache[2], c):
            comp = self.data.compressed(self.fit_intercept)
            m = max(A.shape[0] for A in comp.A)
            T, d = self.n_tasks, self.n_features
            Apad = np.zeros((T, m, d))
            Zpad = np.zeros((T, m))
            for t, (A, z) in enumerate(zip(comp.A, comp.z, strict=True)):
                Apad[t, : A.shape[0]] = A
                Zpad[t, : z.shape[0]] = z
            cache = (Apad, Zpad, c)
            self.__dict__["_stacked_cache"] = cache
        return cache

    def smooth_value_and_gradient(self, W: np.ndarray) -> tuple[float, np.ndarray]:
        """Value and gradient (d, T) of the smooth part ``f + h`` (loss + smooth penalties).

        Evaluated on the compressed data (exact: the dropped constant is added back),
        with the intercepts profiled out when the problem fits them.
        """
        return self.smooth_oracle()(W, True)

    def smooth_oracle(self) -> Callable[[np.ndarray, bool], tuple[float, np.ndarray | None]]:
        """A snapshot of the smooth part for iterative methods.

        Returns ``oracle(W, need_gradient) -> (value, gradient or None)`` with the data,
        weights and quadratic coupling resolved once (penalty values are read now, so make
        a new oracle after changing them).
        """
        Apad, Zpad, c = self._stacked()
        offset = self.cvxpy_offset
        Kt, Kf = self.quadratic_coupling()
        has_task = bool(np.any(Kt))
        others = [p for p in self.smooth_penalties() if not isinstance(p, QuadraticPenalty)]

        def oracle(W: np.ndarray, need_gradient: bool = True) -> tuple[float, np.ndarray | None]:
            R = np.matmul(Apad, W.T[:, :, None])[:, :, 0] - Zpad
            value = 0.5 * float(c @ np.einsum("tm,tm->t", R, R)) + offset
            quad = W @ Kt if has_task else None
            if Kf is not None:
                quad = Kf @ W if quad is None else quad + Kf @ W
            if quad is not None:
                value += 0.5 * float(np.sum(quad * W))
            value += sum(p.value(W) for p in others)
            if not need_gradient:
                return value, None
            grad = np.matmul((R * c[:, None])[:, None, :], Apad)[:, 0, :].T
            if quad is not None:
                grad += quad
            for p in others:
                grad += p.gradient(W)
            return value, grad

        return oracle

    def prox_operator(self) -> Callable[[np.ndarray, float], np.ndarray]:
        """``prox(V, step)`` of the non-smooth part, its plan resolved once (see :meth:`prox`)."""
        plan = self._prox_plan()
        if isinstance(plan, str):
            raise NotImplementedError(plan)

        def prox(V: np.ndarray, step: float) -> np.ndarray:
            for pen in plan:
                V = pen.prox(V, step)
            return V

        return prox

    def nonsmooth_value(self, W: np.ndarray) -> float:
        """Value of the non-smooth part ``g`` at ``W``."""
        return float(sum(p.value(W) for p in self.nonsmooth_penalties()))

    def prox(self, V: np.ndarray, step: float) -> np.ndarray:
        """Exact ``argmin_W step·g(W) + ½‖W − V‖²`` for the non-smooth part ``g``.

        Available for a single prox-able term, several terms of one kind (their
        strengths add), and L1 + L21 (sparse group lasso: soft-threshold, then the
        row shrink). Raises NotImplementedError naming the terms otherwise.
        """
        return self.prox_operator()(V, step)

    @property
    def has_prox(self) -> bool:
        """True when :meth:`prox` is exact for the non-smooth part."""
        return not isinstance(self._prox_plan(), str)

    def _prox_plan(self) -> list[Penalty] | str:
        from .penalties.sparse import L1, L21

        terms = [p for p in self.nonsmooth_penalties() if p.alpha > 0]
        missing = [type(p).__name__ for p in terms if not p.has_prox]
        if missing:
            return f"{', '.join(missing)} has no proximal operator (give Custom a prox=...)"
        kinds = {type(p) for p in terms}
        if len(kinds) > 1 and kinds != {L1, L21}:
            return (f"the sum {' + '.join(sorted(k.__name__ for k in kinds))} has no exact "
                    "proximal operator in mtlcvx")
        merged: list[Penalty] = []
        for kind in sorted(kinds, key=lambda k: k is L21):  # L1 before L21
            same = [p for p in terms if type(p) is kind]
            if len(same) == 1:
                merged.append(same[0])
            elif kind._params == ("alpha",):  # α₁‖·‖ + α₂‖·‖ = (α₁ + α₂)‖·‖
                merged.append(kind(alpha=sum(p.alpha for p in same)))
            else:
                return f"several {kind.__name__} terms have no exact joint proximal operator"
        return merged

    def _spectra(self) -> tuple[float, float, float, float]:
        """``(max_t c_t λ_max, min_t c_t λ_min)`` of the task Hessian blocks ``c_t A_tᵀA_t``
        and ``(λ_max, λ_min)`` of the coupling ``K_t ⊕ K_f``; cached on their inputs."""
        Apad, _, c = self._stacked()
        Kt, Kf = self.quadratic_coupling()
        key = (c.tobytes(), hash(Kt.tobytes()), None if Kf is None else hash(Kf.tobytes()))
        cache = self.__dict__.get("_spectra_cache")
        if cache is None or cache[0] != key:
            lam = np.linalg.eigvalsh(np.matmul(Apad.transpose(0, 2, 1), Apad))
            top = float((c * lam[:, -1]).max())
            low = float((c * _lambda_min(lam)).min())
            lt = np.linalg.eigvalsh(Kt)
            lf = np.zeros(1) if Kf is None else np.linalg.eigvalsh(Kf)
            cache = (key, (top, low, max(lt[-1], 0.0) + max(lf[-1], 0.0),
                           float(_lambda_min(lt) + _lambda_min(lf))))
            self.__dict__["_spectra_cache"] = cache
        return cache[1]

    def lipschitz(self) -> float | None:
        """Upper bound on the Lipschitz constant of ∇(f + h).

        ``max_t c_t λ_max(A_tᵀA_t) + λ_max(K_t) + λ_max(K_f)``; None when a Custom term
        supplies a gradient (its constant is unknown; first-order methods backtrack).
        """
        if any(not isinstance(p, QuadraticPenalty) for p in self.smooth_penalties()):
            return None
        top, _, coupling_top, _ = self._spectra()
        return top + coupling_top

    def strong_convexity(self) -> float:
        """Lower bound ``μ ≥ 0`` on the strong-convexity modulus of ``f + h``.

        ``min_t c_t λ_min(X̃_tᵀX̃_t) + λ_min(K_t) + λ_min(K_f)`` (exact for a shared
        design with equal weights); 0 when nothing guarantees strong convexity.
        """
        _, low, _, coupling_low = self._spectra()
        return max(low + coupling_low, 0.0)

    # ------------------------------------------------------------------ cvxpy side
    @property
    def cvxpy(self) -> cp.Problem:
        """The compiled-once CVXPY problem (built on first access); for reading."""
        self._refresh_parameters()
        return self._compiled["problem"]

    @property
    def cvxpy_variable(self) -> cp.Variable:
        """The CVXPY variable ``W`` (d, T) of :attr:`cvxpy`."""
        self._refresh_parameters()
        return self._compiled["W"]

    @property
    def cvxpy_offset(self) -> float:
        """Constant dropped from the CVXPY objective (compression, centring)."""
        comp = self.data.compressed(self.fit_intercept)
        return float(0.5 * self.loss_weights() @ comp.offset)

    def _loss_expression(self, W: cp.Variable) -> cp.Expression:
        comp = self.data.compressed(self.fit_intercept)
        c = self.loss_weights()
        if comp.shared:
            A = comp.A[0]
            Z = np.stack(comp.z, axis=1)
            resid = A @ W - Z
            if np.allclose(c, c[0]):
                return c[0] / 2.0 * cp.sum_squares(resid)
            return 0.5 * cp.sum_squares(cp.multiply(resid, np.sqrt(c)[None, :]))
        blocks = [np.sqrt(ct) * At for ct, At in zip(c, comp.A, strict=True)]
        A = sp.block_diag(blocks, format="csr")
        z = np.concatenate([np.sqrt(ct) * zt for ct, zt in zip(c, comp.z, strict=True)])
        return 0.5 * cp.sum_squares(A @ cp.vec(W, order="F") - z)

    def _parameter_values(self) -> list[dict[str, Any]]:
        d, T = self.n_features, self.n_tasks
        return [pen.cvxpy_parameters(d, T) for pen in self.penalties]

    def _build(self, values: list[dict[str, Any]]) -> None:
        d, T = self.n_features, self.n_tasks
        W = cp.Variable((d, T), name="W")
        objective = self._loss_expression(W)
        params: list[dict[str, cp.Parameter]] = []
        for pen, vals in zip(self.penalties, values, strict=True):
            ps = {
                name: cp.Parameter(np.shape(v), nonneg=np.ndim(v) == 0, value=v,
                                   name=f"{type(pen).__name__}_{name}")
                for name, v in vals.items()
            }
            params.append(ps)
            objective = objective + pen.cvxpy_term(W, ps)
        constraints = []
        if self.constraints is not None:
            try:
                constraints = list(self.constraints(W))
            except Exception as err:
                raise MTLError(f"constraints(W) raised {type(err).__name__}: {err}") from err
        problem = cp.Problem(cp.Minimize(objective), constraints)
        if not problem.is_dcp():
            raise MTLError("the problem is not DCP; check the constraints: each must be convex")
        self._compiled = {"problem": problem, "W": W, "params": params}
        self.n_builds += 1

    def _refresh_parameters(self) -> None:
        """Copy the penalties' current values into the Parameters.

        Rebuilds instead when a Parameter would change shape or a constant (sparse)
        factor was replaced, since those are baked into the compiled problem.
        """
        values = self._parameter_values()
        factors = self._constant_factors(values)
        compiled = self._compiled
        if compiled is not None:
            same_shapes = all(
                vals.keys() == ps.keys()
                and all(np.shape(v) == ps[k].shape for k, v in vals.items())
                for vals, ps in zip(values, compiled["params"], strict=True)
            )
            same_factors = all(a is b for a, b in zip(factors, compiled["factors"], strict=True))
            if same_shapes and same_factors:
                for vals, ps in zip(values, compiled["params"], strict=True):
                    for k, v in vals.items():
                        ps[k].value = v
                return
        self._build(values)
        self._compiled["factors"] = factors

    def _constant_factors(self, values: list[dict[str, Any]]) -> list[Any]:
        """Constant (sparse) factors compiled into quadratic terms, by identity.

        A dense factor is a Parameter (key ``"S"``) and is not listed; the factor
        cache of a penalty is replaced whenever its matrix is set.
        """
        return [
            None if "S" in vals else pen.__dict__.get("_factor_cache")
            for pen, vals in zip(self.penalties, values, strict=True)
        ]

    # ------------------------------------------------------------------ solving
    def solve(
        self,
        backend: str | None = None,
        tol: float = 1e-8,
        max_iter: int | None = None,
        verbose: bool = False,
        refine: bool = False,
        **solver_opts: Any,
    ):
        """Solve the problem and return a :class:`~mtlcvx.Solution`.

        Parameters
        ----------
        backend : {"clarabel", "scs", "ecos", "osqp", "direct", "fista"} or None
            ``None`` picks "direct" for quadratic problems; "fista" when every
            non-smooth term has an exact prox and the problem needs the PSD cone or has
            ``T·d > 2000``; otherwise "clarabel" (DESIGN §7.5). ``sol.backend`` says
            what ran.
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
            (:func:`mtlcvx.first_order.fista`, warm-started) until the certificate
            meets ``tol``; needs an exact prox for every non-smooth term.
        **solver_opts
            Raw options passed to the solver unchanged (they override the translated ones).

        Raises
        ------
        IncompatibleBackend
            The backend lacks a cone or structure a term needs (raised before CVXPY runs).
        BackendUnavailable
            The backend is not installed; the message names the pip extra.
        SolverFailed
            No solution came back (infeasible, unbounded, solver error).
        """
        from .backends import resolve_backend

        if not (isinstance(tol, (int, float)) and tol > 0):
            raise MTLError(f"tol must be a positive number, got {tol!r}")
        if max_iter is not None and (not isinstance(max_iter, (int, np.integer)) or max_iter < 1):
            raise MTLError(f"max_iter must be a positive integer, got {max_iter!r}")
        self.check_shapes()
        impl = resolve_backend(self, backend)
        start = time.perf_counter()
        sol = impl.solve(self, tol=float(tol), max_iter=max_iter, verbose=verbose, **solver_opts)
        if refine and sol.status == "inaccurate" and self.has_prox and self.constraints is None:
            sol = self._refine(sol, float(tol))
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
                stacklevel=2,
            )
        return sol

    def _refine(self, sol, tol: float):
        """Warm-started FISTA from ``sol.W`` until the certificate meets ``tol``."""
        from .first_order import fista

        trace = fista(self, tol=tol, W0=sol.W, record_every=10)
        sol.W, sol.intercept = trace.W, trace.intercept
        sol.objective = trace.certificate.objective
        sol.certificate = trace.certificate
        sol.history = trace.history
        sol.solve_time += trace.info["time"]
        sol.info["refined_iterations"] = trace.iterations
        if trace.converged:
            sol.status = "optimal"
        return sol

    def __repr__(self) -> str:
        pens = ", ".join(map(repr, self.penalties))
        return (f"Problem({self.data!r}, loss={self.loss!r}, penalties=[{pens}], "
                f"fit_intercept={self.fit_intercept})")
