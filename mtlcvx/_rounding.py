r"""A bound on the floating-point error of a certificate's own arithmetic.

``gap = F(W) − D(θ)`` is a difference of two float64 evaluations. Each is a sum of
products, and the standard bound for a sum of ``n`` products evaluated in floating point
(Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1) is

.. math::

    |\mathrm{fl}(\textstyle\sum_i a_i b_i) - \sum_i a_i b_i|
    \le \gamma_n \sum_i |a_i b_i|, \qquad \gamma_n = \frac{n\varepsilon}{1 - n\varepsilon},

so the error of ``F(W)`` is at most ``γ_κ · M_F`` where ``M_F`` is ``F`` evaluated on
absolute values (the *magnitude*), and ``κ`` the longest chain of sums and products
(a residual ``x_nᵀw_t − y_n``: d + 1 terms; its square; the sum over a task's n_t rows;
the sum over T tasks; a quadratic form ``wᵀKw``: T or d more). The magnitudes are

* loss: ``Σ_t (c_t/2) Σ_n (|x_n|ᵀ|w_t| + |y_n| + |b_t|)²``;
* quadratic terms: ``(α/2) Σ |W| |K| ∘ |W|`` (this is where an inexact, rank-deficient
  ``K`` at ``α = 1e10`` makes the floor large: the float value of ``(α/2)tr(WKWᵀ)`` is
  only known to ``ε·α·|W||K||W|``, far above its true size near the optimum);
* every other term: its value (a norm is a sum of non-negative terms).

The dual objective is built from the same residuals, so its magnitude is at most
``2·M_F + |D|``. Conjugates computed through an eigendecomposition or a linear solve add
the backward error of that solve: with ``𝒬`` replaced by ``𝒬 + E``, ``‖E‖ ≤ γ_n‖𝒬‖``,
``|h*_𝒬(V) − h*_{𝒬+E}(V)| ≤ ‖E‖‖𝒬⁺V‖² ≤ γ_n·cond(𝒬)·2h*(V)`` to first order. The
certificate adds

.. math::

    \rho = \gamma_\kappa\,(4 M_F + |D|) + \text{(conjugate term)}

to every gap, and a point whose gap is below ``ρ`` is certified only to ``ρ``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from .problem import Problem

__all__ = ["chain_length", "gamma", "objective_magnitude"]

_EPS = np.finfo(float).eps


def gamma(n: int) -> float:
    """``γ_n = nε/(1 − nε)``, with a factor 2 of headroom for the chains counted loosely."""
    n = 2 * max(int(n), 1)
    return n * _EPS / max(1.0 - n * _EPS, 0.5)


def chain_length(problem: Problem) -> int:
    """Longest chain of float operations in ``F(W)`` and ``D(θ)`` (see the module docstring)."""
    d, T = problem.n_features, problem.n_tasks
    return d + int(problem.data.n_samples.max()) + 2 * T + d + 8


def _abs_rows(problem: Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``|X|`` stacked (N, d), ``|y|`` (N,) and the row offsets of each task (T + 1,),
    cached on the data (read-only, so the cache cannot go stale)."""
    data = problem.data
    cache = data.__dict__.get("_abs_rows")
    if cache is None:
        X, y, _ = data.stacked()  # rows are grouped by task, in task order
        cache = (np.abs(X), np.abs(y), np.concatenate([[0], np.cumsum(data.n_samples)]))
        data.__dict__["_abs_rows"] = cache
    return cache


def objective_magnitude(problem: Problem, W: np.ndarray, objective: float,
                        intercept: np.ndarray | None = None) -> float:
    """``M_F``: the objective evaluated on absolute values (see the module docstring).

    Non-quadratic terms (norms, decompositions at their parts) enter through
    ``|objective|``, which bounds their values.
    """
    data = problem.data
    absW = np.abs(W)
    if data.is_shared:  # the design once: |X||W| + |Y| (n, T), never stacked T times
        R = np.abs(data.X[0]) @ absW + np.abs(data.shared_targets())
        if problem.fit_intercept:
            R += R.mean(axis=0) if intercept is None else np.abs(intercept)
        sq = np.einsum("nt,nt->t", R, R)
    elif data.equal_blocks() is not None:  # equal task sizes: one batched product
        X3, Y = data.equal_blocks()
        R = np.matmul(np.abs(X3), absW.T[:, :, None])[:, :, 0] + np.abs(Y)  # (T, n)
        if problem.fit_intercept:
            R += R.mean(axis=1, keepdims=True) if intercept is None else np.abs(intercept)[:, None]
        sq = np.einsum("tn,tn->t", R, R)
    else:
        absX, absy, offsets = _abs_rows(problem)
        r = np.concatenate([absX[a:b] @ absW[:, t]
                            for t, (a, b) in enumerate(zip(offsets[:-1], offsets[1:],
                                                           strict=True))]) + absy
        if problem.fit_intercept:  # the profiled b_t = mean(y_t − X_t w_t) is no larger
            task = data.stacked()[2]
            b = data.task_sums(r) / data.n_samples if intercept is None else np.abs(intercept)
            r = r + b[task]
        sq = data.task_sums(r * r)
    M = 0.5 * float(problem.loss_weights() @ sq) + abs(objective)
    d, T = W.shape
    for pen in problem.penalties:
        if pen.structure == "quadratic" and pen.active and pen.low_rank() is not None:
            R, ridge = pen.low_rank()  # evaluated as ‖W R‖² + ridge‖W‖²: no T×T matrix
            WR = np.asarray(absW @ abs(R))
            M += 0.5 * pen.alpha * (float(np.sum(WR * WR)) + ridge * float(np.sum(W * W)))
        elif pen.structure == "quadratic" and pen.active:
            K = pen.matrix(d, T)
            K = abs(K) if sp.issparse(K) else np.abs(K)
            prod = (absW @ K) if pen.side == "task" else (K @ absW)
            M += 0.5 * pen.alpha * float(np.sum(np.asarray(prod) * absW))
    return M
