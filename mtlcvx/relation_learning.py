r"""Learning the task (or feature) relation matrix jointly with ``W``, certified.

:func:`learn_relation` solves the jointly convex problems

.. math::

    \min_{W, M \in \mathcal{M}}\ \ell(W) + \sum_i P_i(W)
    + \frac{\alpha}{2}\operatorname{tr}\big(W A(M)^{-1} W^\top\big)

(``tr(Wᵀ A(M)⁻¹ W)`` for the feature-side kinds), with ``ℓ + Σ P_i`` the problem the user
declared and the learned matrix one of

==================== =========================== ============================== ================
kind                 matrix ``M``                 ``A(M)``, set ``𝓜``             reduced term
==================== =========================== ============================== ================
"task_covariance"    Ω, T×T (MTRL)                Ω ⪰ 0, tr Ω = 1                 ``(α/2)‖W‖²_*``
"feature_covariance" D, d×d (MTFL)                D ⪰ 0, tr D ≤ 1                 ``(α/2)‖W‖²_*``
"clusters"           M, T×T (cCMTL)               ηI + M, 0 ⪯ M ⪯ I, tr M = k     LearnedClusters
"feature_clusters"   M, d×d (cASO)                ηI + M, 0 ⪯ M ⪯ I, tr M = k     LearnedClusters
==================== =========================== ============================== ================

Two routes. ``method="alternate"`` (the default) alternates exact W-steps (the problem
with the current coupling ``A(M)⁻¹`` as a fixed :class:`~mtlcvx.TaskRelation` or
:class:`~mtlcvx.FeatureRelation`) with closed-form matrix steps, the covariance kinds
through ε-continuation (``A = (WᵀW + εI)^{1/2}/tr``, ε divided by 10 per stage down to
``eps``), then polishes the last ``W`` with FISTA on the reduced problem (the matrix
minimised out) until the certified relative gap is at most ``tol``. ``method="joint"``
solves the reduced problem directly. Either way the certificate is the Fenchel duality
gap of the reduced problem, whose learned term has the conjugate
``φ*(V) = (1/2α) max_{M ∈ 𝓜} ⟨VᵀV, A(M)⟩`` (``σ_max(V)²/(2α)`` for the covariance kinds,
a Ky Fan sum for the cluster kinds).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._io import Saved, record
from ._linalg import block_pinv, psd_cutoff
from ._optional import require
from ._threads import blas_limited
from .certificates import Certificate, certify
from .exceptions import ConvergenceWarning, IncompatibleBackend, MTLError
from .first_order import fista
from .penalties.base import Penalty, check_strength
from .penalties.learned import LearnedClusters, cluster_eigenvalues
from .penalties.quadratic import FeatureRelation, QuadraticPenalty, TaskRelation
from .penalties.spectral import SquaredTraceNorm
from .problem import Problem
from .solution import Reported, coefficients_frame

__all__ = ["KINDS", "History", "RelationResult", "learn_relation"]

#: The learned-relation kinds.
KINDS = ("task_covariance", "feature_covariance", "clusters", "feature_clusters")

_HISTORY_KEYS = ("iteration", "stage", "objective", "objective_smoothed", "eps", "gap",
                 "matrix_change", "time")


@record
class History(dict):
    """Equal-length NumPy arrays, one entry per recorded iteration, with :meth:`to_frame`."""

    def to_frame(self):
        """The history as a pandas DataFrame (needs the ``pandas`` extra)."""
        pd = require("pandas", "pandas", "History.to_frame")
        return pd.DataFrame(dict(self))


@dataclass
class RelationResult(Saved, Reported):
    """Result of :func:`learn_relation`.

    Attributes
    ----------
    W : ndarray (d, T)
    intercept : ndarray (T,) or None
        Per-task intercepts when the problem fits them.
    objective : float
        The joint objective at ``(W, matrix)``, recomputed in NumPy on the original data.
    matrix : ndarray
        The learned matrix at ``W`` (ε = 0): Ω (T×T, trace 1), D (d×d, trace 1) or M
        (T×T or d×d, ``0 ⪯ M ⪯ I``, trace k). The exact minimiser for this ``W``.
    coupling : ndarray
        The PSD matrix the last W-step used: ``(Ω + …)⁻¹`` of the last ε stage, or
        ``(ηI + M)⁻¹``; for ``method="joint"`` the coupling of ``matrix``.
    labels : ndarray of int or None
        Cluster of each task (feature, for "feature_clusters"): k-means with a fixed seed
        on the top ⌈k⌉ eigenvectors of ``matrix``; None for the covariance kinds.
    history : History
        Arrays ``iteration``, ``stage`` ("alternate", "polish" or "joint"),
        ``objective`` (the true objective at the iterate, matrix minimised out),
        ``objective_smoothed`` (the ε-smoothed objective the alternation decreases),
        ``eps``, ``gap`` (certified gap, NaN where not computed), ``matrix_change``
        (relative Frobenius change of the matrix, NaN outside the alternation), ``time``.
    certificate : Certificate
        Certified bound on ``objective − F*`` (duality gap of the reduced problem).
    status : str
        "optimal" (certified relative gap ≤ tol), "inaccurate" (a gap above tol), or
        "unverified" (no gap: user constraints on the matrix, or a term without a dual).
    kind, method : str
    info : dict
        Iteration counts and timings per stage, and ``dual_point``: the (d, T) point
        whose residual gave the certificate's lower bound on ``F*`` (``W`` itself unless
        the FISTA polish kept a better dual point of its run), so
        ``mc.certify(reduced, dual_point).dual_objective`` re-derives that bound (pass it
        to ``mc.certify`` as ``dual_lower``).
    """

    W: np.ndarray
    intercept: np.ndarray | None
    objective: float
    matrix: np.ndarray
    coupling: np.ndarray
    labels: np.ndarray | None
    history: History
    certificate: Certificate
    status: str
    kind: str
    method: str
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """A short human-readable report."""
        n = self.matrix.shape[0]
        lam = np.linalg.eigvalsh(self.matrix)
        rank = int(np.sum(lam > 1e-8 * max(1.0, lam.max())))
        lines = [
            f"  certificate: {self.certificate}",
            f"  matrix: {n}x{n}, trace {np.trace(self.matrix):.6g}, rank {rank}",
        ]
        if self.labels is not None:
            sizes = np.bincount(self.labels)
            lines.append(f"  clusters: {sizes.size} of sizes {', '.join(map(str, sizes))}")
        return self._report(f"mtlcvx learned relation ({self.kind}, method={self.method!r}): "
                            f"status {self.status}", [], lines)

    def to_frame(self, feature_names: list[Any] | None = None, tasks: list[Any] | None = None):
        """``W`` as a pandas DataFrame (features × tasks); needs the ``pandas`` extra."""
        return coefficients_frame(self.W, self.intercept, feature_names, tasks,
                                  "RelationResult.to_frame")


# ---------------------------------------------------------------------- the kinds
class _Relation:
    """One learned-relation kind at fixed parameters: matrix steps and reduced term."""

    def __init__(self, kind: str, alpha: float, k: float | None, eta: float | None,
                 n_features: int, n_tasks: int):
        self.alpha = alpha
        self.k = k
        self.eta = eta
        self.side = "feature" if kind.startswith("feature") else "task"
        self.covariance = kind.endswith("covariance")
        self.n = n_features if self.side == "feature" else n_tasks
        if self.covariance:
            self.term: Penalty = SquaredTraceNorm(alpha=alpha)
        else:
            self.term = LearnedClusters(alpha=alpha, k=k, eta=eta, side=self.side)

    # -- spectra --------------------------------------------------------------
    def gram_basis(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Orthonormal eigenbasis E (n, n) of the Gram matrix and the singular values of
        ``W`` padded with zeros to n, aligned with E's columns."""
        U, s, Vt = np.linalg.svd(W, full_matrices=True)
        E = Vt.T if self.side == "task" else U
        return E, np.concatenate([s, np.zeros(self.n - s.size)])

    def gram(self, W: np.ndarray) -> np.ndarray:
        """``WᵀW`` (task side) or ``WWᵀ`` (feature side)."""
        return W.T @ W if self.side == "task" else W @ W.T

    # -- closed-form matrix step ---------------------------------------------------
    def step(self, W: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """``(matrix, coupling)`` minimising the (ε-smoothed) objective for fixed ``W``.

        Covariance: ``Ω = (G + εI)^{1/2}/tr(·)``, coupling ``Ω⁻¹`` (``Ω⁺`` when ε = 0).
        Clusters: ``M = E diag(m) Eᵀ`` (:func:`cluster_eigenvalues`), coupling
        ``(ηI + M)⁻¹``.
        """
        E, s = self.gram_basis(W)
        if self.covariance:
            root = np.sqrt(s * s + eps)
            total = root.sum()
            if total == 0:  # W = 0: any Ω with trace 1; keep the centre of the set
                root, total = np.ones(self.n), float(self.n)
            keep = root > psd_cutoff(root.max(), self.n)
            inv = np.where(keep, total / np.where(keep, root, 1.0), 0.0)
            return (E * (root / total)) @ E.T, (E * inv) @ E.T
        m = cluster_eigenvalues(s, self.k, self.eta, self.n)
        return (E * m) @ E.T, (E / (self.eta + m)) @ E.T

    def initial(self) -> tuple[np.ndarray, np.ndarray]:
        """Ω₀ = I/n (coupling nI), M₀ = (k/n)·I (coupling I/(η + k/n))."""
        eye = np.eye(self.n)
        if self.covariance:
            return eye / self.n, eye * self.n
        m0 = self.k / self.n
        return eye * m0, eye / (self.eta + m0)

    def coupling_of(self, matrix: np.ndarray) -> np.ndarray:
        """``A(matrix)⁺`` for a matrix from the SDP step (eigenvalues clipped to the set)."""
        lam, E = np.linalg.eigh(0.5 * (matrix + matrix.T))
        if not self.covariance:
            return (E / (self.eta + np.clip(lam, 0.0, 1.0))) @ E.T
        lam = np.maximum(lam, 0.0)
        keep = lam > psd_cutoff(lam.max(), self.n)
        return (E * np.where(keep, 1.0 / np.where(keep, lam, 1.0), 0.0)) @ E.T

    # -- values ----------------------------------------------------------------
    def smoothed_value(self, W: np.ndarray, coupling: np.ndarray, eps: float) -> float:
        """``(α/2)[tr(W C Wᵀ) + ε tr C]`` (task side; feature side transposed)."""
        G = self.gram(W)
        return 0.5 * self.alpha * (float(np.sum(coupling * G)) + eps * float(np.trace(coupling)))

    def joint_value(self, W: np.ndarray, matrix: np.ndarray) -> float:
        """``(α/2) tr(W A(matrix)⁺ Wᵀ)``, ``inf`` when W leaves the range of ``A``."""
        A = matrix if self.covariance else self.eta * np.eye(self.n) + matrix
        lam, E = np.linalg.eigh(0.5 * (A + A.T))
        P = W @ E if self.side == "task" else E.T @ W
        weight = np.sum(P * P, axis=0 if self.side == "task" else 1)
        inside = lam > psd_cutoff(lam.max(), self.n)
        outside = float(weight[~inside].sum())
        if outside > (self.n * np.finfo(float).eps) ** 2 * max(float(weight.sum()), 1e-300):
            return np.inf
        return 0.5 * self.alpha * float(np.sum(weight[inside] / lam[inside]))

    # -- the matrix step over the PSD cone -----------------------------------------
    def sdp_step(self, W: np.ndarray, eps: float,
                 constraints: Callable[[Any], list[Any]] | None) -> np.ndarray:
        """The matrix step solved by CVXPY over the PSD cone, with the user's constraints.

        Minimises ``tr(A(M)⁻¹ (G + εI))`` (``G`` the Gram matrix of ``W``) over the kind's
        set as ``matrix_frac(L, A(M))`` with ``L Lᵀ = G + εI``.
        """
        import cvxpy as cp

        n = self.n
        lam, E = np.linalg.eigh(self.gram(W))
        L = E * np.sqrt(np.maximum(lam, 0.0) + eps)
        M = cp.Variable((n, n), PSD=True, name="matrix")
        if self.covariance:
            A = M
            cons = [cp.trace(M) == 1] if self.side == "task" else [cp.trace(M) <= 1]
        else:
            A = self.eta * np.eye(n) + M
            cons = [np.eye(n) - M >> 0, cp.trace(M) == self.k]
        if constraints is not None:
            try:
                cons += list(constraints(M))
            except Exception as err:
                raise MTLError(f"k_constraints(M) raised {type(err).__name__}: {err}; it must "
                               "return a list of CVXPY constraints on the matrix "
                               f"variable ({n}×{n})") from err
        problem = cp.Problem(cp.Minimize(cp.matrix_frac(L, A)), cons)
        solver = "CLARABEL" if "CLARABEL" in cp.installed_solvers() else "SCS"
        try:
            problem.solve(solver=solver)
        except cp.SolverError as err:
            raise MTLError(f"the matrix step (k_step='sdp', {solver}) failed: {err}") from err
        if M.value is None:
            raise MTLError(f"the matrix step (k_step='sdp', {solver}) returned no matrix "
                           f"(status {problem.status!r}); check k_constraints for infeasibility")
        return 0.5 * (M.value + M.value.T)

    # -- W-step penalty ------------------------------------------------------------
    def penalty(self, coupling: np.ndarray) -> QuadraticPenalty:
        """The coupling as a fixed quadratic term ``(α/2) tr(W C Wᵀ)`` (or feature side)."""
        if self.side == "task":
            return TaskRelation(coupling, alpha=self.alpha)
        return FeatureRelation(coupling, alpha=self.alpha)

    def labels(self, matrix: np.ndarray) -> np.ndarray | None:
        """k-means (fixed seeds) on the rows of the top ⌈k⌉ eigenvectors of ``matrix``."""
        if self.covariance:
            return None
        n_clusters = min(max(1, math.ceil(self.k)), self.n)
        _, E = np.linalg.eigh(matrix)
        return _kmeans(E[:, -n_clusters:], n_clusters)


def _kmeans(X: np.ndarray, n_clusters: int, n_init: int = 10) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding (seeds 0..n_init−1), best inertia kept;
    labels renumbered by first appearance so the result does not depend on the seed."""
    best, best_inertia = None, np.inf
    for seed in range(n_init):
        rng = np.random.default_rng(seed)
        centres = X[[rng.integers(X.shape[0])]]
        while centres.shape[0] < n_clusters:
            dist = np.min(((X[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
            prob = dist / dist.sum() if dist.sum() > 0 else np.full(X.shape[0], 1 / X.shape[0])
            centres = np.vstack([centres, X[rng.choice(X.shape[0], p=prob)]])
        labels = np.full(X.shape[0], -1)
        for _ in range(100):
            new = ((X[:, None, :] - centres[None]) ** 2).sum(-1).argmin(axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
            centres = np.stack([X[labels == j].mean(0) if np.any(labels == j) else centres[j]
                                for j in range(n_clusters)])
        inertia = float(((X - centres[labels]) ** 2).sum())
        if inertia < best_inertia - 1e-12:
            best, best_inertia = labels, inertia
    _, first = np.unique(best, return_index=True)
    order = np.argsort(first)
    return np.argsort(order)[best]


# ---------------------------------------------------------------------- W-steps
class _QuadraticRest:
    """The loss and the quadratic terms on the compressed data: per-task Hessian blocks
    ``H_t = c_t A_tᵀA_t`` (T, d, d), ``B = [c_t A_tᵀ z_t]`` (d, T) and the couplings
    ``K_t`` (T×T) and ``K_f`` (d×d) of the problem's quadratic penalties."""

    def __init__(self, prob: Problem):
        comp = prob.data.compressed(prob.fit_intercept)
        c = prob.loss_weights()
        self.Hs = np.stack([ct * (At.T @ At) for ct, At in zip(c, comp.A, strict=True)])
        self.B = np.stack([ct * (At.T @ zt) for ct, At, zt in zip(c, comp.A, comp.z,
                                                                    strict=True)], axis=1)
        Kt, Kf = prob.quadratic_coupling()
        d = prob.n_features
        self.Kt = Kt
        self.Kf = np.zeros((d, d)) if Kf is None else Kf

    def apply(self, X: np.ndarray, Kt: np.ndarray, Kf: np.ndarray) -> np.ndarray:
        """``[H_t x_t]_t + K_f X + X K_t``."""
        return np.matmul(self.Hs, X.T[:, :, None])[:, :, 0].T + Kf @ X + X @ Kt


class _CoupledCG:
    """Exact W-steps for a quadratic rest, by warm-started preconditioned CG.

    Solves ``[c_t A_tᵀA_t w_t]_t + K_f W + W K_t = [c_t A_tᵀ z_t]_t`` (the optimality
    condition of loss + quadratic terms, the coupling folded into ``K_t`` or ``K_f``) on
    the compressed data. Preconditioner for the covariance kinds: block-diagonal in the
    eigenbasis ``K_t = UΛUᵀ``, blocks ``Σ_t U_ti² c_t A_tᵀA_t + K_f + λ_i I``, which
    absorbs the coupling's large eigenvalues (ε-smoothing puts them near ``1/√ε``) and is
    exact when every task has the same ``c_t A_tᵀA_t``. For the cluster kinds, whose
    coupling ``(ηI + M)⁻¹`` has eigenvalues within ``[1/(1+η), 1/η]``: block Jacobi per
    task, ``c_t A_tᵀA_t + K_f + (K_t)_tt I``, exact however different the tasks are.
    """

    def __init__(self, rest: _QuadraticRest, relation: _Relation):
        self.rest = rest
        self.relation = relation
        self.iterations = 0

    def __call__(self, coupling: np.ndarray, W0: np.ndarray) -> np.ndarray:
        rest, alpha = self.rest, self.relation.alpha
        Kt, Kf = rest.Kt, rest.Kf
        if self.relation.side == "task":
            Kt = Kt + alpha * coupling
        else:
            Kf = Kf + alpha * coupling
        Hs = rest.Hs
        T, d = Hs.shape[:2]
        if self.relation.covariance:
            lam, U = np.linalg.eigh(Kt)
            blocks = ((U * U).T @ Hs.reshape(T, d * d)).reshape(T, d, d)
        else:
            lam, U, blocks = np.diag(Kt).copy(), None, Hs.copy()
        blocks += Kf + lam[:, None, None] * np.eye(d)
        Pinv = block_pinv(blocks)

        def op(X: np.ndarray) -> np.ndarray:
            return rest.apply(X, Kt, Kf)

        def pre(R: np.ndarray) -> np.ndarray:
            if U is None:
                return np.matmul(Pinv, R.T[:, :, None])[:, :, 0].T
            return np.matmul(Pinv, (R @ U).T[:, :, None])[:, :, 0].T @ U.T

        X = W0.copy()
        R = rest.B - op(X)
        bnorm = max(float(np.linalg.norm(rest.B)), 1e-300)
        Z = pre(R)
        P = Z.copy()
        rz = float(np.sum(R * Z))
        for _ in range(10 * d * Kt.shape[0]):
            if np.linalg.norm(R) <= 1e-12 * bnorm or rz <= 0:
                break
            AP = op(P)
            step = rz / float(np.sum(P * AP))
            X += step * P
            R -= step * AP
            Z = pre(R)
            rz_new = float(np.sum(R * Z))
            P = Z + (rz_new / rz) * P
            rz = rz_new
            self.iterations += 1
        return X


class _BackendStep:
    """W-steps by a backend: the W-step problem is built once and its coupling updated
    (a DPP Parameter for the conic backends); fista starts from the previous W."""

    def __init__(self, prob: Problem, relation: _Relation, backend: str | None,
                 coupling: np.ndarray):
        self.pen = relation.penalty(coupling)
        self.name = "K" if relation.side == "task" else "D"
        self.problem = Problem(prob.data, prob.loss, (*prob.penalties, self.pen),
                               fit_intercept=prob.fit_intercept)
        if backend is None and self.problem.has_prox:
            backend = "fista"
        self.backend = backend
        self.iterations = 0

    def __call__(self, coupling: np.ndarray, W0: np.ndarray) -> np.ndarray:
        self.pen.set_params(**{self.name: coupling})
        with warnings.catch_warnings():  # inner solves: the final certificate decides
            warnings.simplefilter("ignore", ConvergenceWarning)
            if self.backend == "fista":
                trace = fista(self.problem, tol=1e-10, W0=W0)
                self.iterations += trace.iterations
                return trace.W
            sol = self.problem.solve(backend=self.backend, tol=1e-10)
        self.iterations += sol.iterations or 0
        return sol.W


def _polish(reduced: Problem, W: np.ndarray, tol: float, on_check: Callable[..., None]
            ) -> tuple[np.ndarray, Certificate, int, str, np.ndarray | None]:
    """FISTA on the reduced problem from ``W`` until the certificate meets ``tol``.

    FISTA picks its splitting (:func:`mtlcvx.first_order.splitting`): for the cluster
    kinds with a quadratic rest (diagonal on the task side) the learned term takes the
    gradient steps and the loss and quadratic terms the prox, so the rate depends on
    ``(1 + η)/η`` alone, not on the conditioning of the data (raw School:
    ``λ_max(XᵀX)`` in the millions). ``on_check(k, W, (objective, gap), when)`` records
    every certificate check (``when`` a ``time.perf_counter()`` reading). Returns
    ``(W, certificate, iterations, method, dual_point)`` (see ``RelationResult.info``).
    """
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        trace = fista(reduced, tol=tol, W0=W, record_every=10)
    hist = trace.history
    for k, gap, obj, when in zip(hist["iteration"], hist["gap"], hist["objective"],
                                 hist["time"], strict=True):
        if k > 0 and np.isfinite(gap):
            on_check(int(k), None, (float(obj), float(gap)), start + when)
    method = ("FISTA, loss and quadratic terms in the prox"
              if trace.info["splitting"] == "loss_prox" else "FISTA")
    return trace.W, trace.certificate, trace.iterations, method, trace.info["dual_point"]


# ---------------------------------------------------------------------- driver
def _check_args(prob, kind, alpha, k, eta, method, backend, k_step, k_constraints, max_iter,
                tol, eps, W0):
    if not isinstance(prob, Problem):
        raise MTLError(f"prob must be a mtlcvx.Problem, got {type(prob).__name__}; build one "
                       "with mc.Problem(data, loss, penalties)")
    if prob.constraints is not None:
        raise IncompatibleBackend("learn_relation does not take a Problem with constraints= "
                                  "(the W-steps and the polish are unconstrained); put "
                                  "constraints on the matrix with k_step='sdp', "
                                  "k_constraints=...")
    if kind not in KINDS:
        raise MTLError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    alpha = check_strength(alpha, "alpha")
    if kind.endswith("covariance"):
        if k is not None or eta is not None:
            raise MTLError(f"kind={kind!r} takes no k or eta (they belong to the cluster "
                           "kinds); drop them")
    else:
        if k is None or eta is None:
            raise MTLError(f"kind={kind!r} needs k (the number of clusters, trace of M) and "
                           "eta > 0 (A = eta*I + M); for MALSAR's Least_CMTL(rho1, rho2, k) "
                           "use eta = rho2/rho1, alpha = 2*rho1*eta*(1 + eta)")
        LearnedClusters(alpha=alpha, k=k, eta=eta).check_shape(prob.n_features, prob.n_tasks)
    if method not in ("alternate", "joint"):
        raise MTLError(f"method must be 'alternate' or 'joint', got {method!r}")
    if k_step not in ("closed_form", "sdp"):
        raise MTLError(f"k_step must be 'closed_form' or 'sdp', got {k_step!r}")
    if k_constraints is not None:
        if not callable(k_constraints):
            raise MTLError("k_constraints must be a callable M -> list of CVXPY constraints")
        if k_step != "sdp" or method != "alternate":
            raise MTLError("k_constraints needs k_step='sdp' and method='alternate' (the "
                           "closed-form step and the joint route know no constraints)")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise MTLError(f"max_iter must be a positive integer, got {max_iter!r}")
    for name, value in (("tol", tol), ("eps", eps)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise MTLError(f"{name} must be a positive number, got {value!r}")
    if backend is not None and not isinstance(backend, str):
        raise IncompatibleBackend(f"backend must be a backend name or None, got {backend!r}")
    if W0 is not None:
        W0 = prob.check_W(W0, "W0").copy()
    return alpha, W0


def learn_relation(prob: Problem, kind: str, alpha: float, *, k: float | None = None,
                   eta: float | None = None, method: str = "alternate",
                   backend: str | None = None, k_step: str = "closed_form",
                   k_constraints: Callable[[Any], list[Any]] | None = None,
                   max_iter: int = 500, tol: float = 1e-8, eps: float = 1e-8,
                   W0: Any = None, progress: bool = False) -> RelationResult:
    r"""Learn the relation matrix jointly with ``W`` and certify the result.

    Minimises ``F(W) + (α/2) tr(W A(M)⁻¹ Wᵀ)`` jointly over ``W`` and the matrix (see the
    module docstring for the four kinds), ``F`` the problem ``prob`` declares. ``prob`` is
    never modified.

    Parameters
    ----------
    prob : Problem
        Data, loss, penalties and ``fit_intercept``; no ``constraints``.
    kind : {"task_covariance", "feature_covariance", "clusters", "feature_clusters"}
        ``"task_covariance"``: MTRL, ``(α/2) tr(W Ω⁻¹ Wᵀ)``, Ω (T×T) ⪰ 0, tr Ω = 1.
        ``"feature_covariance"``: MTFL, ``(α/2) tr(Wᵀ D⁻¹ W)``, D (d×d) ⪰ 0, tr D ≤ 1.
        ``"clusters"``: convex clustered MTL, ``(α/2) tr(W (ηI + M)⁻¹ Wᵀ)``, M (T×T),
        ``0 ⪯ M ⪯ I``, ``tr M = k``. ``"feature_clusters"``: the same with M (d×d) on
        the feature side, ``(α/2) tr(Wᵀ (ηI + M)⁻¹ W)``.
    alpha : float ≥ 0
        Strength. MALSAR's ``Least_CMTL(ρ₁, ρ₂, k)`` (and ``Least_CASO``) is
        ``alpha = 2ρ₁η(1 + η)``, ``eta = ρ₂/ρ₁`` with ``SquaredLoss(scale="sum")``; MTRL's
        ``λ₂`` is ``alpha = λ₂/2`` with ``scale="mean"`` and ``fit_intercept=True``.
    k : float, cluster kinds only
        Trace of M (the number of clusters); may be fractional, ``0 ≤ k ≤ n``.
    eta : float > 0, cluster kinds only
    method : {"alternate", "joint"}
        "alternate": W-steps and closed-form (or SDP) matrix steps, then a FISTA polish of
        the reduced problem until the certificate meets ``tol``. "joint": the reduced
        problem solved directly, by FISTA (``backend=None`` or "fista") or by a conic
        backend ("clarabel", "scs": the matrix-fractional or squared-trace-norm SDP; for
        small problems only).
    backend : str or None
        "alternate": the solver of the W-steps. None: warm-started preconditioned CG when
        the rest of the problem is quadratic, else warm-started FISTA; a backend name
        re-solves the W-step problem with that backend (the coupling is a Parameter, so a
        conic backend re-solves the compiled problem). "joint": see ``method``.
    k_step : {"closed_form", "sdp"}
        The matrix step: in closed form, or solved by CVXPY over the PSD cone (Clarabel).
    k_constraints : callable, optional
        ``k_constraints(M) -> list`` of CVXPY constraints on the matrix variable (needs
        ``k_step="sdp"``). The result then has no certificate (``status="unverified"``):
        the polish and the gap apply to the unconstrained problem.
    max_iter : int, default 500
        Cap on the alternation's iterations over all ε stages together (the polish runs
        FISTA up to 20 000 further iterations).
    tol : float, default 1e-8
        Target certified relative gap (``certificate.relative_gap``, from
        :func:`mtlcvx.certify` on the reduced problem).
    eps : float, default 1e-8
        Final ε of the covariance kinds' continuation (added to ``WᵀW`` before the square
        root, as in MTRL's code); stages start at ``10⁻²·‖W₁‖²_F/n`` and divide by 10.
    W0 : array_like (d, T), optional
        Starting point (default zeros; the alternation then starts from the W-step with
        the initial matrix Ω₀ = I/n or M₀ = (k/n)·I).
    progress : bool
        Show a progress bar (needs the ``progress`` extra: tqdm).

    Returns
    -------
    RelationResult

    Raises
    ------
    MTLError
        Bad arguments (before any solver runs).
    IncompatibleBackend
        A problem with ``constraints``, or a backend that cannot solve the steps.

    Examples
    --------
    >>> import mtlcvx as mc
    >>> data = mc.datasets.make_related_tasks(n_tasks=6, n_features=4, n_samples=30,
    ...                                       random_state=0)
    >>> res = mc.learn_relation(mc.Problem(data), kind="clusters", alpha=0.5, k=2, eta=0.1)
    >>> res.status, res.matrix.shape
    ('optimal', (6, 6))
    """
    alpha, W0 = _check_args(prob, kind, alpha, k, eta, method, backend, k_step,
                            k_constraints, max_iter, tol, eps, W0)
    return _learn(prob, kind, alpha, k, eta, method, backend, k_step, k_constraints,
                  max_iter, tol, eps, W0, progress)


@blas_limited  # small LAPACK calls (SVDs of W, T×T eigendecompositions): one BLAS thread
def _learn(prob, kind, alpha, k, eta, method, backend, k_step, k_constraints, max_iter, tol,
           eps, W0, progress) -> RelationResult:
    start = time.perf_counter()
    d, T = prob.n_features, prob.n_tasks
    relation = _Relation(kind, alpha, k, eta, d, T)
    base = Problem(prob.data, prob.loss, prob.penalties, fit_intercept=prob.fit_intercept)
    reduced = Problem(prob.data, prob.loss, (*prob.penalties, relation.term),
                      fit_intercept=prob.fit_intercept)
    rows: dict[str, list[Any]] = {key: [] for key in _HISTORY_KEYS}
    bar = require("tqdm", "progress", "learn_relation(progress=True)").tqdm(
        desc=f"learn_relation({kind})") if progress else None

    def record(it: int, stage: str, W: np.ndarray | None, smoothed: float, eps_k: float,
               cert: Certificate | tuple[float, float] | None, change: float,
               when: float | None = None) -> None:
        """One history row; ``cert`` may be a bare ``(objective, gap)`` pair, ``when`` a
        ``time.perf_counter()`` reading (default now)."""
        if isinstance(cert, tuple):
            obj, gap = cert
        else:
            obj = cert.objective if cert is not None else reduced.objective(W)
            gap = np.nan if cert is None or cert.gap is None else cert.gap
        for key, val in (("iteration", it), ("stage", stage), ("objective", obj),
                         ("objective_smoothed", smoothed), ("eps", eps_k), ("gap", gap),
                         ("matrix_change", change),
                         ("time", (time.perf_counter() if when is None else when) - start)):
            rows[key].append(val)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(objective=f"{obj:.6g}", stage=stage)

    def certificate(W: np.ndarray) -> Certificate:
        return certify(reduced, W)

    def met(cert: Certificate) -> bool:
        return cert.relative_gap is not None and cert.relative_gap <= tol

    if method == "joint" and backend in (None, "fista") and not reduced.has_prox:
        raise IncompatibleBackend(
            f"method='joint' by FISTA needs an exact prox of the non-smooth terms, and "
            f"{' + '.join(p.label for p in reduced.nonsmooth_penalties())} has none; use "
            "method='joint', backend='clarabel' (or 'scs') for small problems, or "
            "method='alternate'")
    info: dict[str, Any] = {}
    W = np.zeros((d, T)) if W0 is None else W0
    matrix, coupling = relation.initial()
    cert: Certificate | None = None
    it = 0
    if method == "alternate":
        solver = (_CoupledCG(_QuadraticRest(base), relation)
                  if backend is None and base.is_quadratic
                  else _BackendStep(base, relation, backend, coupling))

        def matrix_step(W: np.ndarray, eps_k: float) -> tuple[np.ndarray, np.ndarray]:
            if k_step == "closed_form":
                return relation.step(W, eps_k)
            new = relation.sdp_step(W, eps_k, k_constraints)
            return new, relation.coupling_of(new)

        if W0 is not None:
            matrix, coupling = matrix_step(W, eps if relation.covariance else 0.0)
        W = solver(coupling, W)
        it += 1
        if relation.covariance:
            eps_k = max(eps, 1e-2 * float(np.sum(W * W)) / relation.n)
        else:
            eps_k = 0.0
        # every ε stage gets a share of max_iter; a stage also ends when it stalls
        n_stages = 1 + (math.ceil(math.log10(eps_k / eps)) if eps_k > eps else 0)
        stage_cap = max(3, max_iter // n_stages)
        prev, stage_start, prev_gap = np.inf, it, None
        can_polish = k_constraints is None and reduced.has_prox
        while True:
            new_matrix, coupling = matrix_step(W, eps_k)
            change = float(np.linalg.norm(new_matrix - matrix)) / max(
                float(np.linalg.norm(matrix)), 1e-300)
            matrix = new_matrix
            smoothed = base.objective(W) + relation.smoothed_value(W, coupling, eps_k)
            cert = None if k_constraints is not None else certificate(W)
            record(it, "alternate", W, smoothed, eps_k, cert, change)
            if (cert is not None and met(cert)) or it >= max_iter:
                break
            # a stage ends when it stalls, when its share of max_iter is used, or (when a
            # polish can follow) when the certified gap shrinks less than 2× per iteration:
            # then the next stage, or the polish, which converges linearly, is faster
            slow = (can_polish and cert is not None and prev_gap is not None
                    and cert.gap > 0.5 * prev_gap)
            prev_gap = None if cert is None else cert.gap
            if (slow or prev - smoothed <= 1e-6 * abs(smoothed)
                    or it - stage_start >= stage_cap):
                if eps_k <= eps:
                    break
                eps_k = max(eps_k / 10.0, eps)
                prev, stage_start = np.inf, it
            else:
                prev = smoothed
            W = solver(coupling, W)
            it += 1
        info["alternation_iterations"] = it
        info["w_step_iterations"] = solver.iterations
        info["alternation_time"] = time.perf_counter() - start
    else:
        coupling = None

    polish = k_constraints is None and (cert is None or not met(cert))
    if polish and method == "joint" and backend not in (None, "fista"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sol = reduced.solve(backend=backend, tol=tol)
        W = sol.W
        cert = certificate(W)
        record(1, "joint", W, np.nan, 0.0, cert, np.nan)
        info["solver_status"] = sol.info.get("solver_status", sol.status)
        polish = False
    if polish and not reduced.has_prox:
        polish = False
        info["polish"] = "skipped: the non-smooth terms have no exact joint prox"
    if polish:
        polish_start = time.perf_counter()
        stage = "polish" if method == "alternate" else "joint"
        cert = certificate(W) if cert is None else cert
        if method == "joint":
            record(it, stage, W, np.nan, 0.0, cert, np.nan)
        (W, cert, info["polish_iterations"], info["polish_method"],
         info["dual_point"]) = _polish(
            reduced, W, tol,
            lambda k, X, c, when=None: record(it + k, stage, X, np.nan, 0.0, c, np.nan, when))
        info["polish_time"] = time.perf_counter() - polish_start
    if bar is not None:
        bar.close()

    # the result: the exact matrix at W, the true objective at (W, matrix)
    if k_constraints is not None:
        matrix = relation.sdp_step(W, 0.0, k_constraints)
    else:
        matrix, exact_coupling = relation.step(W, 0.0)
        coupling = exact_coupling if coupling is None else coupling
    objective = base.objective(W) + relation.joint_value(W, matrix)
    if cert is None or k_constraints is not None:
        reason = ("k_constraints restrict the matrix, and no certificate covers the "
                  "constrained problem" if k_constraints is not None else "no certificate")
        cert = Certificate(objective, None, None, None, None, "none", reason)
    status = ("unverified" if cert.gap is None else "optimal" if met(cert) else "inaccurate")
    if status != "optimal":
        found = (cert.reason if cert.gap is None
                 else f"certified relative gap {cert.relative_gap:.2e} > tol={tol:g}")
        hint = ("raise max_iter, or use method='joint'" if reduced.has_prox else
                "the polish needs an exact prox of the non-smooth terms; raise max_iter, or "
                "use method='joint', backend='clarabel' for small problems")
        warnings.warn(f"learn_relation({kind!r}) returned a point that is not certified "
                      f"optimal ({found}). Hint: {hint}", ConvergenceWarning, stacklevel=4)
    history = History({key: np.asarray(val) for key, val in rows.items()})
    if info.get("dual_point") is None:
        info["dual_point"] = W
    info["time"] = time.perf_counter() - start
    return RelationResult(
        W=W, intercept=prob.optimal_intercept(W) if prob.fit_intercept else None,
        objective=objective, matrix=matrix, coupling=coupling, labels=relation.labels(matrix),
        history=history, certificate=cert, status=status, kind=kind, method=method, info=info)
