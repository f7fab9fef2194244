r"""The "direct" backend: exact linear solve of quadratic problems.

With squared loss and quadratic penalties the optimality condition is linear,

.. math::

    c_t A_t^\top A_t w_t + K_f w_t + (W K_t)_{:,t} = c_t A_t^\top z_t \quad (t = 1..T),

where ``A_t, z_t`` are the compressed task data, ``K_t = Σ α K`` the task-side and
``K_f = Σ α D`` the feature-side matrices. It is solved by

* **eigen/Sylvester** for a shared design (two symmetric eigendecompositions and an
  elementwise divide);
* **dense Cholesky** of the assembled dT×dT system while ``d·T ≤ dense_limit``
  (pseudo-inverse through ``eigh`` when it is only semidefinite);
* **matrix-free preconditioned CG** above that: the operator applies
  ``W ↦ [c_t H_t w_t] + K_f W + W K_t`` without ever forming ``kron(K_t, I_d)``,
  preconditioned by the block-Jacobi blocks ``c_t H_t + K_f + (K_t)_tt I``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla

from ..certificates import certify
from ..exceptions import MTLError, SolverFailed
from ..solution import Solution
from .registry import Backend, certified_status, register

if TYPE_CHECKING:
    from ..problem import Problem

__all__ = ["DirectBackend"]

_QUADRATIC = "Ridge, TaskRelation, GraphLaplacian, MeanRegularized, FeatureRelation"


def _pinv_solve_sym(M: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimum-norm solution of ``M x = b`` for a symmetric PSD ``M``."""
    lam, V = scipy.linalg.eigh(M)
    cutoff = max(lam.max(initial=0.0), 1.0) * M.shape[0] * np.finfo(float).eps
    inv = np.where(lam > cutoff, 1.0 / np.where(lam > cutoff, lam, 1.0), 0.0)
    return V @ (inv[:, None] * (V.T @ b)) if b.ndim == 2 else V @ (inv * (V.T @ b))


def _blocks(comp, c, Kf) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal blocks ``c_t A_tᵀA_t + K_f`` (T, d, d) and right side ``c_t A_tᵀz_t`` (d, T)."""
    Hs = np.stack([ct * (At.T @ At) for ct, At in zip(c, comp.A, strict=True)])
    if Kf is not None:
        Hs += Kf
    B = np.stack([ct * (At.T @ zt) for ct, At, zt in zip(c, comp.A, comp.z, strict=True)],
                 axis=1)
    return Hs, B


def _apply(Hs: np.ndarray, Kt: np.ndarray, W: np.ndarray) -> np.ndarray:
    """The system operator ``W ↦ [H_t w_t]_t + W K_t`` (never forms ``kron(K_t, I_d)``)."""
    return np.matmul(Hs, W.T[:, :, None])[:, :, 0].T + W @ Kt


class DirectBackend(Backend):
    """Exact solve of quadratic problems (see the module docstring).

    Parameters
    ----------
    dense_limit : int
        Largest ``d·T`` for which the dense Cholesky path is used.
    """

    name = "direct"
    modules = ("scipy",)
    extra = None
    cones = frozenset({"quadratic"})

    def __init__(self, dense_limit: int = 6000):
        self.dense_limit = dense_limit

    def incompatibility(self, problem: Problem) -> str | None:
        if problem.constraints is not None:
            return ("backend 'direct' cannot handle constraints (a constrained problem needs a "
                    "conic backend)")
        bad = [p.label for p in problem.penalties if p.structure != "quadratic"]
        if bad:
            return (f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not quadratic: "
                    f"backend 'direct' solves squared loss + {_QUADRATIC} only")
        return None

    def solve(self, problem: Problem, *, tol: float, max_iter: int | None, verbose: bool,
              **solver_opts: Any) -> Solution:
        if solver_opts:
            raise MTLError(f"backend 'direct' takes no solver options, got {sorted(solver_opts)}")
        start = time.perf_counter()
        comp = problem.data.compressed(problem.fit_intercept)
        c = problem.loss_weights()
        Kt, Kf = problem.quadratic_coupling()
        uniform = bool(np.allclose(c, c[0]))
        prep_time = time.perf_counter() - start
        if comp.shared and c[0] > 0 and (uniform or Kf is None) and np.all(c > 0):
            method = "sylvester"
            W, compile_time, solve_time, iters = self._sylvester(comp, c, Kt, Kf, uniform)
        elif problem.n_features * problem.n_tasks <= self.dense_limit:
            method = "cholesky"
            W, compile_time, solve_time, method = self._dense(comp, c, Kt, Kf)
            iters = 1
        else:
            method = "pcg"
            W, compile_time, solve_time, iters = self._pcg(comp, c, Kt, Kf, tol, max_iter)
        compile_time += prep_time
        intercept = problem.optimal_intercept(W) if problem.fit_intercept else None
        certificate = certify(problem, W)
        return Solution(
            W=W, intercept=intercept, objective=certificate.objective,
            solver_objective=problem.smooth_oracle()(W, False)[0],
            status=certified_status(certificate, tol, True),
            backend=self.name, compile_time=compile_time, solve_time=solve_time,
            iterations=iters, certificate=certificate, info={"method": method},
        )

    # ------------------------------------------------------------------ paths
    @staticmethod
    def _sylvester(comp, c, Kt, Kf, uniform):
        t0 = time.perf_counter()
        A = comp.A[0]
        Z = np.stack(comp.z, axis=1)
        H = A.T @ A
        B = A.T @ Z
        if uniform and Kf is not None:
            H = H + Kf / c[0]
        sc = np.sqrt(c)
        Q = Kt / np.outer(sc, sc)
        t1 = time.perf_counter()
        s, V = scipy.linalg.eigh(H)
        lam, U = scipy.linalg.eigh(Q)
        denom = s[:, None] + lam[None, :]
        cutoff = max(np.abs(denom).max(), 1.0) * max(denom.shape) * np.finfo(float).eps
        safe = np.where(denom > cutoff, denom, 1.0)
        What = V @ np.where(denom > cutoff, (V.T @ (B * sc) @ U) / safe, 0.0) @ U.T
        W = What / sc
        return W, t1 - t0, time.perf_counter() - t1, 1

    @staticmethod
    def _dense(comp, c, Kt, Kf):
        t0 = time.perf_counter()
        Hs, B = _blocks(comp, c, Kf)
        T, d, _ = Hs.shape
        rhs = B.T.ravel()

        def assemble() -> np.ndarray:
            M = np.zeros((d * T, d * T))
            M4 = M.reshape(T, d, T, d)
            for i in range(d):
                M4[:, i, :, i] = Kt
            for t in range(T):
                M4[t, :, t, :] += Hs[t]
            return M

        M = assemble()
        t1 = time.perf_counter()
        method = "cholesky"
        try:
            # M is symmetric: its transpose is a Fortran-ordered view LAPACK factors in place.
            factor = scipy.linalg.cho_factor(M.T, lower=True, overwrite_a=True,
                                             check_finite=False)
            w = scipy.linalg.cho_solve(factor, rhs, check_finite=False)
            # A PSD-singular M can still factor with tiny pivots; check the residual.
            resid = _apply(Hs, Kt, w.reshape(T, d).T).T.ravel() - rhs
            if not np.all(np.isfinite(w)) or (
                np.linalg.norm(resid) > 1e-9 * max(np.linalg.norm(rhs), 1e-300)
            ):
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:
            method = "eigh (semidefinite system)"
            w = _pinv_solve_sym(assemble(), rhs)
        return w.reshape(T, d).T.copy(), t1 - t0, time.perf_counter() - t1, method

    @staticmethod
    def _pcg(comp, c, Kt, Kf, tol, max_iter):
        t0 = time.perf_counter()
        Hs, B = _blocks(comp, c, Kf)
        T, d, _ = Hs.shape
        blocks = Hs + np.diag(Kt)[:, None, None] * np.eye(d)
        try:
            Pinv = np.linalg.inv(blocks)
            if not np.all(np.isfinite(Pinv)):
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:  # a singular block: pseudo-inverse through eigh
            lam, V = np.linalg.eigh(blocks)
            cutoff = np.maximum(lam.max(axis=1, keepdims=True), 1.0) * d * np.finfo(float).eps
            inv = np.where(lam > cutoff, 1.0 / np.where(lam > cutoff, lam, 1.0), 0.0)
            Pinv = np.matmul(V * inv[:, None, :], V.transpose(0, 2, 1))

        def matvec(x: np.ndarray) -> np.ndarray:
            return _apply(Hs, Kt, x.reshape(T, d).T).T.ravel()

        def precond(x: np.ndarray) -> np.ndarray:
            return np.matmul(Pinv, x.reshape(T, d)[:, :, None]).ravel()

        n = d * T
        op = spla.LinearOperator((n, n), matvec=matvec, dtype=float)
        pre = spla.LinearOperator((n, n), matvec=precond, dtype=float)
        b = B.T.ravel()
        iters = 0

        def count(_: np.ndarray) -> None:
            nonlocal iters
            iters += 1

        t1 = time.perf_counter()
        rtol = min(tol, 1e-12)
        w, info = spla.cg(op, b, rtol=rtol, atol=0.0, M=pre, callback=count,
                          maxiter=max_iter if max_iter is not None else 20 * n)
        if info != 0:
            resid = np.linalg.norm(matvec(w) - b) / max(np.linalg.norm(b), 1e-300)
            raise SolverFailed(
                f"backend 'direct' (preconditioned CG) did not reach relative residual "
                f"{rtol:g} in {iters} iterations (reached {resid:.2e}). Hint: raise max_iter, "
                "or add a Ridge term to improve the conditioning"
            )
        return w.reshape(T, d).T.copy(), t1 - t0, time.perf_counter() - t1, iters


register(DirectBackend())
