r"""The problem restricted to a settled support, solved by Newton: a near-optimal dual point.

A residual-based dual point built from an iterate ``W_k`` is off by
``O(√(F(W_k) − F*))``. Once the support of a sparse iterate has settled, the non-smooth
terms are smooth on it (each term says so through its ``support`` oracle: L1 with fixed
signs is linear, L21 on nonzero rows is smooth), so

.. math::

    \min_{W:\ W_{ij} = 0 \text{ off } S} f(W) + h(W) + g(W)

is a smooth problem that Newton's method solves to machine precision in a few steps.
When ``S`` is the optimal support its solution ``W̃`` is ``W*`` itself, and the dual
point built from ``W̃`` is (nearly) optimal, so ``F(W_k) − D(θ(W̃))`` is (nearly) the
true suboptimality of ``W_k``. ``W̃`` is only a candidate: its dual value comes from
:func:`~mtlcvx.certify`, which bounds ``F*`` from below whatever ``W̃`` is.

Newton's system ``(∇²(f + h) + ∇²g) D = −∇F`` on the support is solved by conjugate
gradients, preconditioned per task: the diagonal block ``∇²(f + h)_{tt}`` of each task
on its support (probed with one Hessian product per support row) plus the diagonal of
``∇²g``. The smooth part must be quadratic (the squared loss and quadratic terms), so
its Hessian products are exact differences of gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .certificates import certify
from .oracles import coupling, smooth_terms
from .penalties.base import Support

if TYPE_CHECKING:
    from .problem import Problem

__all__ = ["RestrictedSolve", "restricted_dual"]

#: Newton steps per solve (quadratic convergence from a near-optimal start).
_NEWTON_STEPS = 12
#: Corrections of the support by the long prox-gradient step (see ``settle``).
_CORRECTIONS = 3
#: The fixed cost of a NumPy call in flops (some 20 µs), for :func:`_solve_cost`.
_CALL_FLOPS = 1e5
#: Conjugate-gradient iterations per Newton step.
_CG_ITERATIONS = 100


def restricted_dual(problem: Problem, W: np.ndarray) -> float | None:
    """The certified dual value at the solution restricted to the support of ``W``.

    The support is read off the long prox-gradient step from ``W`` (see
    :meth:`RestrictedSolve.settle`), so the tiny entries of an interior-point solution
    do not count. A lower bound on ``F*`` (from :func:`~mtlcvx.certify`), or None when a
    term has no ``support`` oracle, the smooth part is not quadratic, or the support is
    empty.
    """
    solver = RestrictedSolve(problem)
    if not solver.available:
        return None
    start = solver.probe(W)
    mask = np.asarray(solver.model(start).mask)
    W_tilde = solver.settle(np.where(mask, W, start), mask)[0] if mask.any() else None
    return None if W_tilde is None else certify(problem, W_tilde,
                                                gradient_mapping=False).dual_objective


class RestrictedSolve:
    """Candidates ``W̃`` from the problem restricted to the support of an iterate.

    ``candidate(W, budget)`` solves the restricted problem when the support of ``W``
    is the one seen at the previous call (settled) and has not been solved yet, and
    when the part of its cost that grows with the support (:func:`_solve_cost`, in
    gradients of the smooth part) is within ``budget``; Newton adds a few dozen Hessian
    products (about 50 on School). ``available`` is False when a non-smooth term has no
    ``support`` oracle or the smooth part is not quadratic.
    """

    def __init__(self, problem: Problem):
        self.terms = [p for p in problem.nonsmooth_penalties() if p.active]
        self.available = self.applies(problem)
        self.smooth = problem.smooth_oracle() if self.available else None
        self.prox = problem.prox_operator() if self.available else None
        self.Kt = coupling(problem)[0] if self.available else None
        self._previous: np.ndarray | None = None
        #: True once the support has been the same at two consecutive calls
        self.settled = False
        #: packed mask -> True once solved, else the budget of the last try
        self._solved: dict[bytes, bool | float] = {}

    @staticmethod
    def applies(problem: Problem) -> bool:
        """True when every active non-smooth term answers ``support`` and the smooth part
        is quadratic (the squared loss and quadratic terms)."""
        terms = [p for p in problem.nonsmooth_penalties() if p.active]
        return bool(terms) and not smooth_terms(problem) and all(
            p.provides("support") for p in terms)

    # ------------------------------------------------------------------ the terms
    def model(self, W: np.ndarray) -> Support:
        """The sum of the non-smooth terms on their common support at ``W``."""
        models = [p.support(W) for p in self.terms]
        if len(models) == 1:
            return models[0]
        mask = np.logical_and.reduce([m.mask for m in models])

        def hessian(D: np.ndarray) -> np.ndarray:
            return sum(m.hessian(D) for m in models) * mask

        return Support(mask, sum(m.gradient for m in models) * mask, hessian,
                       sum(m.diagonal for m in models) * mask)

    def candidate(self, W: np.ndarray, budget: float) -> np.ndarray | None:
        """``W̃`` when the support of ``W`` has settled and is new, else None."""
        if not self.available:
            return None
        mask = np.asarray(self.model(W).mask)
        settled = self._previous is not None and np.array_equal(mask, self._previous)
        self._previous = mask
        self.settled = self.settled or settled
        key = np.packbits(mask).tobytes()
        # a support is solved once; one where Newton stopped short (started too far
        # away) is tried again once the budget has doubled
        tried = self._solved.get(key, 0.0)
        if not settled or not mask.any() or tried is True or budget < 2.0 * tried or (
                _solve_cost(mask) > budget):
            return None
        W_tilde, solved = self.settle(W, mask)
        if solved is not None:
            self._solved[np.packbits(solved).tobytes()] = True
        if self._solved.get(key) is not True:
            self._solved[key] = budget
        return W_tilde

    def settle(self, W: np.ndarray, mask: np.ndarray
               ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Solve on ``mask``, then correct the support if the solution says so; returns
        the last solution and the support it solved exactly (None if Newton stopped
        short, see :meth:`solve`).

        A row (entry) the iterate has not yet dropped goes to 0 only in the limit of the
        restricted solve, and one it has not yet picked up stays 0. The prox-gradient
        point ``prox_g(W̃ − τ∇(f + h)(W̃), τ)`` with the long step
        ``τ = ‖W̃‖/‖∇(f + h)(W̃)‖`` keeps every row where ``W̃`` satisfies the optimality
        conditions (``∇_j(f + h) = −α u_j`` keeps ``‖w_j + ταu_j‖ > τα``) and drops those
        where ``‖∇_j(f + h)‖ < α`` by more than ``‖w_j‖/τ``; its support is solved
        again when it differs (up to three times: an L1 entry the linear model drives
        through zero may take more than one).
        """
        W_tilde, converged = self.solve(W, mask)
        for _ in range(_CORRECTIONS):
            if W_tilde is None:
                break
            probe = self.probe(W_tilde)
            better = np.asarray(self.model(probe).mask)
            if not better.any() or np.array_equal(better, mask):
                break
            again, converged_again = self.solve(np.where(mask, W_tilde, probe), better)
            if again is None:
                break
            W_tilde, mask, converged = again, better, converged_again
        return W_tilde, (mask if converged else None)

    def probe(self, W: np.ndarray) -> np.ndarray:
        """``prox_g(W − τ∇(f + h)(W), τ)`` with ``τ = ‖W‖/‖∇(f + h)(W)‖``."""
        grad = self.smooth(W, True)[1]
        tau = float(np.linalg.norm(W)) / max(float(np.linalg.norm(grad)),
                                             np.finfo(float).tiny)
        return self.prox(W - tau * grad, tau)

    # ------------------------------------------------------------------ Newton
    def solve(self, W0: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray | None, bool]:
        """Newton on the problem restricted to ``mask``, from ``W0``: ``(W̃, converged)``,
        ``converged`` when the gradient on the support is below 1e-10 of the terms' own
        (``W̃`` None if the solve broke down). The gradient, not the Newton decrement,
        decides: the dual point's error is first order in it, and an ill-conditioned
        support (collinear features) has a tiny decrement long before a tiny gradient.
        """
        W = np.where(mask, W0, 0.0)
        scale = float(np.linalg.norm(W))
        if not scale > 0:
            return None, False
        g_zero = self.smooth(np.zeros_like(W), True)[1]

        def hess_f(D: np.ndarray) -> np.ndarray:
            # exact for a quadratic smooth part; D scaled to the size of W so that the
            # difference of gradients loses no more digits than a gradient does
            size = float(np.linalg.norm(D))
            if size == 0:
                return np.zeros_like(D)
            s = scale / size
            return (self.smooth(s * D, True)[1] - g_zero) * (mask / s)

        rows = np.flatnonzero(mask.any(axis=1))
        sub = mask[rows].T  # (T, r): free entries of each task among the support rows
        # one preconditioner per solve: the steps barely move the norm's Hessian diagonal
        inverse = _block_inverse(self._task_blocks(hess_f, mask, rows),
                                 self.model(W).diagonal[rows].T, sub)

        def precondition(R: np.ndarray) -> np.ndarray:
            Z = np.zeros_like(R)
            Z[rows] = np.einsum("tij,jt->it", inverse, R[rows])
            return Z * mask

        def residual(W: np.ndarray) -> tuple[Support, np.ndarray, float, bool]:
            """The terms' model at W, the gradient on the support, its norm, and whether
            that is below 1e-10 of the terms' own gradient (converged)."""
            model = self.model(W)
            grad = (self.smooth(W, True)[1] + model.gradient) * mask
            size = float(np.linalg.norm(grad))
            return model, grad, size, size <= 1e-10 * float(np.linalg.norm(model.gradient))

        first = previous = None
        damped = 0
        for _ in range(_NEWTON_STEPS):
            model, grad, size, converged = residual(W)
            if not np.isfinite(size):
                return None, False
            if converged:
                return W, True
            if first is not None and size >= previous:
                break  # no progress: at the rounding floor of the gradient
            first = size if first is None else first
            previous = size

            def apply(D: np.ndarray, model: Support = model) -> np.ndarray:
                return hess_f(D) + model.hessian(D) * mask

            # inexact Newton: a relative residual ∝ ‖∇‖ keeps the convergence quadratic
            step = _pcg(apply, -grad, precondition, rtol=max(min(0.1, size / first), 1e-12))
            slope = float(np.sum(grad * step))
            W, t = self._line_search(W, step, slope)
            if W is None:
                return None, False
            damped += t < 1.0
            if t == 0.0 or damped > 2:
                break  # outside Newton's region (too far, or not the optimum's support)
        return W, False

    def _value(self, W: np.ndarray) -> float:
        return self.smooth(W, False)[0] + sum(p.value(W) for p in self.terms)

    def _line_search(self, W: np.ndarray, step: np.ndarray, slope: float
                     ) -> tuple[np.ndarray | None, float]:
        """``(W + t·step, t)`` with the first of ``t = 1, ½, ¼`` that decreases the
        restricted objective enough (Armijo; a slack of 1e-10·|F| absorbs the rounding of
        ``F``), ``(W, 0)`` if none does, ``(None, 0)`` if the step is not finite."""
        if not np.all(np.isfinite(step)):
            return None, 0.0
        value = self._value(W)
        slack = 1e-10 * abs(value)
        for t in (1.0, 0.5, 0.25):
            trial = W + t * step
            if self._value(trial) <= value + 1e-4 * t * slope + slack:
                return trial, t
        return W, 0.0

    def _task_blocks(self, hess_f: Callable[[np.ndarray], np.ndarray], mask: np.ndarray,
                     rows: np.ndarray) -> np.ndarray:
        """``B[t]`` (r×r): the smooth Hessian's block of task t on the support rows.

        One product per support row ``j`` with the direction ``E_j`` that is 1 on the
        free entries of row j: the loss is separate across tasks, so column t of the
        product is column j of task t's block, except that the task-side coupling
        ``W K_t`` puts ``Σ_s E_js K_st`` on row j where the block has ``K_tt``; that
        difference is put right on the diagonal.
        """
        B = np.empty((mask.shape[1], rows.size, rows.size))
        for i, j in enumerate(rows):
            E = np.zeros(mask.shape)
            E[j] = mask[j]
            B[:, :, i] = hess_f(E)[rows].T
        if not self.Kt.is_zero:
            shift = self.Kt.diagonal()[None, :] - self.Kt.apply(mask.astype(float))[rows]
            idx = np.arange(rows.size)
            B[:, idx, idx] += shift.T
        return B


def _solve_cost(mask: np.ndarray) -> float:
    """The part of a restricted solve's cost that grows with the support, in gradients of
    the smooth part (``2d²T`` flops each): one per support row ``r`` (the probes) and
    ``T`` eigendecompositions of ``r × r`` blocks (``10r³T`` flops), each side with the
    fixed cost of a NumPy call, which dominates small problems."""
    d, T = mask.shape
    rows = np.count_nonzero(mask.any(axis=1))
    return rows + (10.0 * rows ** 3 * T + _CALL_FLOPS) / (2.0 * d * d * T + _CALL_FLOPS)


def _block_inverse(blocks: np.ndarray, diagonal: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Pseudo-inverses of ``blocks[t] + diag(diagonal[t])`` on the free entries of each
    task (symmetrised; entries that are not free get 0).

    A block can be singular (a task with fewer samples than free entries, or collinear
    features, under L1, whose Hessian on the support is 0): eigenvalues below ``1e-10``
    of the largest count as 0, so conjugate gradients work in the range of the blocks
    instead of amplifying rounding errors along their null space.
    """
    M = 0.5 * (blocks + blocks.transpose(0, 2, 1))
    M = M * (free[:, :, None] & free[:, None, :])
    idx = np.arange(M.shape[1])
    M[:, idx, idx] += np.where(free, diagonal, 1.0)
    lam, Q = np.linalg.eigh(M)
    top = np.maximum(lam[:, -1:], np.finfo(float).tiny)
    keep = lam > 1e-10 * top
    inv = np.einsum("tij,tj,tkj->tik", Q, np.where(keep, 1.0 / np.where(keep, lam, 1.0), 0.0),
                    Q)
    return inv * (free[:, :, None] & free[:, None, :])


def _pcg(apply: Callable[[np.ndarray], np.ndarray], b: np.ndarray,
         precondition: Callable[[np.ndarray], np.ndarray], rtol: float) -> np.ndarray:
    """Preconditioned conjugate gradients for ``apply(x) = b`` (both (d, T) arrays)."""
    x = np.zeros_like(b)
    r = b.copy()
    z = precondition(r)
    p = z.copy()
    rz = float(np.sum(r * z))
    stop = rtol * float(np.linalg.norm(b))
    for _ in range(_CG_ITERATIONS):
        if float(np.linalg.norm(r)) <= stop or rz <= 0:
            break
        Ap = apply(p)
        curvature = float(np.sum(p * Ap))
        if not curvature > 0:
            break
        a = rz / curvature
        x += a * p
        r -= a * Ap
        z = precondition(r)
        rz, rz_old = float(np.sum(r * z)), rz
        p = z + (rz / rz_old) * p
    return x
