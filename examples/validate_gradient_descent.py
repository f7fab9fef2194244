r"""Validate your own gradient method against the exact optimum, on School
======================================================================

The setting: someone has written a gradient method for a
multi-task problem and wants to know how good its iterates are. mtlcvx supplies the
reference (the exact optimum with its own certificate) and the scoring
(:func:`mtlcvx.validation.validate`); the method itself is plain NumPy written here from
the formula, without any of the package's oracles.

**The problem.** School (139 schools = tasks, 27 z-scored attributes,
``mc.datasets.load_school(standardize=True)``), an unpenalised intercept per school and
the mean squared loss, with a fixed task relation built from simple task descriptors:

* descriptor of school ``t``: its mean (standardized) feature vector
  ``z_t = mean over its students of x``, so ``Z`` is 139 × 27;
* graph: each school joined to its 5 nearest schools in that descriptor space
  (``mc.relations.knn_graph(Z, 5)``, symmetrised), Laplacian ``Lap``;
* penalties ``(α_K/2) tr(W Lap Wᵀ) + (α_R/2)‖W‖²_F`` with ``α_K = 0.1``, ``α_R = 0.01``
  (the ridge makes the problem strongly convex: three schools have fewer students than
  features, and the Laplacian is singular along ``w_1 = … = w_T``).

So ``F(W) = Σ_t 1/(2n_t)‖X_t w_t + b_t − y_t‖² + (α_K/2) tr(W Lap Wᵀ) + (α_R/2)‖W‖²``,
with ``b_t`` profiled out (centring ``X_t`` and ``y_t`` within each school gives the best
intercepts for any ``W``). Gradient, written by hand:

    ∇F(W)[:, t] = X̃_tᵀ(X̃_t w_t − ỹ_t)/n_t + α_K (W Lap)[:, t] + α_R w_t,

Lipschitz constant ``L = max_t λ_max(X̃_tᵀX̃_t)/n_t + α_K λ_max(Lap) + α_R`` and a
strong-convexity lower bound ``μ = min_t λ_min(X̃_tᵀX̃_t)/n_t + α_R`` (``λ_min(Lap) = 0``).

**The methods.** Plain gradient descent with step ``1/L`` (rate ``1 − μ/L``), and
Nesterov's constant-momentum method for strongly convex functions,
``Y = W_k + β(W_k − W_{k−1})``, ``W_{k+1} = Y − ∇F(Y)/L`` with
``β = (1 − √(μ/L))/(1 + √(μ/L))`` (rate ``1 − √(μ/L)``). Both start from ``W = 0``.

**The validation.** The exact optimum comes from the "direct" backend (a dense Cholesky
solve) with its certificate; :func:`~mtlcvx.validation.validate` runs each method as a
``step(W) -> W`` callable, records every iterate and its wall time, and reports the
relative suboptimality ``(F(W_k) − F*)/max(1, |F*|)``, the relative distance to ``W*``
(the problem is strongly convex), the certificate of the last iterate and when each
threshold was first reached. Both curves are drawn with
:func:`~mtlcvx.plotting.plot_convergence` into a PNG.

Run ``python examples/validate_gradient_descent.py``; ``run(quick=True)`` does 200
iterations instead of 3000 and writes the figure into a temporary directory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

import mtlcvx as mc
from mtlcvx.plotting import plot_convergence
from mtlcvx.validation import ValidationReport, validate

#: Strength of the task-relation (graph Laplacian) penalty.
ALPHA_RELATION = 0.1
#: Strength of the ridge penalty (makes the problem strongly convex).
ALPHA_RIDGE = 0.01
#: Neighbours per school in the descriptor graph.
NEIGHBOURS = 5


def school_problem() -> tuple[mc.Problem, np.ndarray, np.ndarray]:
    """The School problem with a fixed descriptor-graph task relation.

    Returns
    -------
    problem : Problem
        ``SquaredLoss("mean")``, ``TaskRelation(Lap, α_K) + Ridge(α_R)``, intercepts.
    Z : ndarray (139, 27)
        Task descriptors: each school's mean standardized feature vector.
    Lap : ndarray (139, 139)
        Laplacian of the symmetrised 5-nearest-neighbour graph on ``Z``.
    """
    data = mc.datasets.load_school(standardize=True)
    Z = np.array([X.mean(axis=0) for X in data.X])
    Lap = mc.relations.laplacian(mc.relations.knn_graph(Z, NEIGHBOURS))
    problem = mc.Problem(
        data,
        loss=mc.SquaredLoss(scale="mean"),
        penalties=[mc.TaskRelation(Lap, alpha=ALPHA_RELATION), mc.Ridge(alpha=ALPHA_RIDGE)],
        fit_intercept=True,
    )
    return problem, Z, Lap


class UserModel:
    """The user's own objective and gradient, in plain NumPy on the original data.

    Each school's data are centred once (the intercepts are profiled out); the
    gradient of the loss is one pass over the stacked students, summed per school.

    Parameters
    ----------
    Xs, ys : list of ndarray
        Per-school designs (n_t, d) and targets (n_t,).
    Lap : ndarray (T, T)
        The task-relation matrix.
    alpha_relation, alpha_ridge : float
    """

    def __init__(self, Xs: list[np.ndarray], ys: list[np.ndarray], Lap: np.ndarray,
                 alpha_relation: float, alpha_ridge: float):
        self.n = np.array([len(y) for y in ys])
        self.Xc = np.vstack([X - X.mean(axis=0) for X in Xs])  # centred, stacked (N, d)
        self.yc = np.concatenate([y - y.mean() for y in ys])  # (N,)
        self.task = np.repeat(np.arange(len(ys)), self.n)  # school of each student
        self.starts = np.concatenate([[0], np.cumsum(self.n)[:-1]])
        self.weight = (1.0 / self.n)[self.task]  # c_t = 1/n_t for each student
        self.Lap = Lap
        self.alpha_relation = alpha_relation
        self.alpha_ridge = alpha_ridge
        grams = [Xt.T @ Xt / nt for Xt, nt in zip(np.split(self.Xc, self.starts[1:]), self.n,
                                                  strict=True)]
        eig = np.array([np.linalg.eigvalsh(G)[[0, -1]] for G in grams])
        lap_eig = np.linalg.eigvalsh(Lap)
        #: Lipschitz constant of the gradient.
        self.L = float(eig[:, 1].max() + alpha_relation * lap_eig[-1] + alpha_ridge)
        #: Lower bound on the strong-convexity modulus.
        self.mu = float(max(eig[:, 0].min(), 0.0) + alpha_relation * max(lap_eig[0], 0.0)
                        + alpha_ridge)

    def residual(self, W: np.ndarray) -> np.ndarray:
        """``X̃_t w_t − ỹ_t`` for every student."""
        return np.einsum("nd,nd->n", self.Xc, W.T[self.task]) - self.yc

    def objective(self, W: np.ndarray) -> float:
        """``F(W)`` with the best intercepts."""
        r = self.residual(W)
        return float(0.5 * np.sum(self.weight * r * r)
                     + 0.5 * self.alpha_relation * np.sum((W @ self.Lap) * W)
                     + 0.5 * self.alpha_ridge * np.sum(W * W))

    def gradient(self, W: np.ndarray) -> np.ndarray:
        """``∇F(W)`` (d, T)."""
        r = self.residual(W) * self.weight
        loss_grad = np.add.reduceat(self.Xc * r[:, None], self.starts, axis=0).T
        return loss_grad + self.alpha_relation * (W @ self.Lap) + self.alpha_ridge * W


def gradient_step(model: UserModel) -> Callable[[np.ndarray], np.ndarray]:
    """One step of plain gradient descent, ``W ← W − ∇F(W)/L``."""

    def step(W: np.ndarray) -> np.ndarray:
        return W - model.gradient(W) / model.L

    return step


def nesterov_step(model: UserModel) -> Callable[[np.ndarray], np.ndarray]:
    """One step of Nesterov's constant-momentum method (remembers the previous iterate)."""
    q = np.sqrt(model.mu / model.L)
    beta = (1.0 - q) / (1.0 + q)
    previous: list[np.ndarray] = []

    def step(W: np.ndarray) -> np.ndarray:
        W_prev = previous[0] if previous else W
        Y = W + beta * (W - W_prev)
        previous[:] = [W]
        return Y - model.gradient(Y) / model.L

    return step


def run(quick: bool | None = None, path: str | Path | None = None) -> dict:
    """Validate plain and accelerated gradient descent on School against the exact optimum.

    Parameters
    ----------
    quick : bool, optional
        None reads the ``MTLCVX_QUICK`` environment variable (the docs gallery sets it).
        200 iterations per method instead of 3000, and the figure goes to a temporary
        directory.
    path : str or Path, optional
        Where to write the convergence plot (default ``validate_gradient_descent.png``,
        or a temporary directory when ``quick``).

    Returns
    -------
    dict
        ``problem``, ``Z`` (task descriptors), ``laplacian``, ``alpha_relation``,
        ``alpha_ridge``, ``L`` / ``mu`` (the user's
        constants), ``L_package`` (``problem.lipschitz()``, for comparison),
        ``objective_check`` (largest relative difference between the user's objective and
        ``problem.objective`` at random W), ``reference`` (the "direct" Solution),
        ``reports`` (``{"gradient descent": ValidationReport, "nesterov": ...}``),
        ``iterations``, ``png`` (Path of the figure).
    """
    quick = mc.datasets.quick_mode(quick)
    from matplotlib.figure import Figure

    n_iter = 200 if quick else 3000
    if path is None:
        name = "validate_gradient_descent.png"
        path = Path(tempfile.mkdtemp(prefix="mtlcvx_")) / name if quick else Path(name)
    path = Path(path)

    problem, Z, Lap = school_problem()
    data = problem.data
    print(f"School: {data.n_tasks} schools, {int(sum(data.n_samples))} students, "
          f"{data.n_features} standardized attributes, intercept per school")
    print(f"task relation: Laplacian of the {NEIGHBOURS}-NN graph of the schools' mean "
          f"feature vectors ({int(np.trace(Lap)) // 2} edges); "
          f"α_K = {ALPHA_RELATION}, ridge α_R = {ALPHA_RIDGE}")

    # -- the user's own model, checked against the package's objective -----------------
    model = UserModel(list(data.X), list(data.y), Lap, ALPHA_RELATION, ALPHA_RIDGE)
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(3):
        W = rng.standard_normal((data.n_features, data.n_tasks))
        F_pkg = problem.objective(W)
        diffs.append(abs(model.objective(W) - F_pkg) / abs(F_pkg))
    check = float(max(diffs))
    print(f"user objective vs problem.objective at 3 random W: max relative difference "
          f"{check:.1e}")
    print(f"user constants: L = {model.L:.4f} (problem.lipschitz() = "
          f"{problem.lipschitz():.4f}), μ ≥ {model.mu:.4g}, condition number "
          f"L/μ ≤ {model.L / model.mu:.0f}")

    # -- the exact optimum, computed once and shared by both validations ---------------
    reference = problem.solve(backend="direct")
    print(f"exact optimum (backend 'direct', {reference.info.get('method')}): "
          f"F* = {reference.objective:.12f}")

    # -- the two methods, each run by validate for n_iter steps from W = 0 -------------
    reports: dict[str, ValidationReport] = {}
    for name, make in (("gradient descent", gradient_step), ("nesterov", nesterov_step)):
        reports[name] = validate(problem, make(model), reference, max_iter=n_iter)
        print(f"\n{name} (step 1/L, {n_iter} iterations)")
        print(reports[name])

    # -- the convergence plot ------------------------------------------------------------
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for i, (name, rep) in enumerate(reports.items()):
        plot_convergence(rep, ax=ax, label=name, thresholds=i == len(reports) - 1)
    ax.set_title("School, Laplacian task relation: user methods vs the exact optimum",
                 fontsize="medium")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    print(f"\nconvergence plot written to {path}")

    return {
        "problem": problem,
        "Z": Z,
        "laplacian": Lap,
        "alpha_relation": ALPHA_RELATION,
        "alpha_ridge": ALPHA_RIDGE,
        "L": model.L,
        "mu": model.mu,
        "L_package": problem.lipschitz(),
        "objective_check": check,
        "reference": reference,
        "reports": reports,
        "iterations": n_iter,
        "png": path,
    }


if __name__ == "__main__":
    run()
