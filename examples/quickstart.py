"""Quick start: one related-tasks problem, every backend, the same optimum
=======================================================================

A synthetic set of regression tasks with two planted clusters of similar weight vectors
(``mc.datasets.make_related_tasks``) is declared once as a convex program ::

    F(W) = Σ_t 1/(2 n_t) ‖X_t w_t − y_t‖²                  (SquaredLoss("mean"))
         + (α/2) Σ_{s<t} A_st ‖w_s − w_t‖²                   (GraphLaplacian(A, α))
         + (ρ/2) ‖W‖²_F                                      (Ridge(ρ))

with ``A`` the planted same-cluster graph and ``W`` of shape (n_features, n_tasks), and
solved by every installed backend. The problem is quadratic, so "direct" (an exact
linear solve) is the reference and every conic backend (Clarabel, SCS, ECOS, OSQP
through CVXPY) must land on the same objective and the same ``W``.

A second table adds an L21 term ``β Σ_j ‖W_{j,:}‖₂``: the problem now needs the
second-order cone, so "direct" and "osqp" refuse it up front with
:class:`mtlcvx.IncompatibleBackend` (before CVXPY runs) and ``backend=None`` picks
"clarabel" instead of "direct".

The figure (``quickstart.png``) shows the exact ``W`` (tasks ordered by planted cluster)
and, for each backend, the certified relative gap ``gap / |F(W)|`` of what it returned
and its true distance to the exact optimum ``|F(W) − F*| / max(1, |F*|)`` (zeros drawn at
the bottom of the axis): every certified gap is an upper bound on the true one.

Run ``python examples/quickstart.py``; ``run(quick=True)`` uses a smaller problem and
writes the figure to a temporary directory.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import mtlcvx as mc


def _solve_all(prob: mc.Problem, reference: mc.Solution | None) -> dict[str, dict]:
    """Solve ``prob`` with every installed backend; record what happened."""
    out: dict[str, dict] = {}
    for name, info in mc.available_backends().items():
        if not info.installed:
            out[name] = {"status": "not installed", "extra": info.extra}
            continue
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", mc.ConvergenceWarning)
            try:
                sol = prob.solve(backend=name, tol=1e-8)
            except mc.IncompatibleBackend as err:
                out[name] = {"status": "refused", "error": str(err)}
                continue
        wall = time.perf_counter() - start
        entry = {
            "status": sol.status,
            "objective": sol.objective,
            "solver_objective": sol.solver_objective,
            "W": sol.W,
            "compile_time": sol.compile_time,
            "solve_time": sol.solve_time,
            "wall_time": wall,
            "iterations": sol.iterations,
            "relative_gap": sol.certificate.relative_gap,
            "warnings": [str(w.message) for w in caught],
        }
        if reference is not None:
            entry["rel_objective_diff"] = (abs(sol.objective - reference.objective)
                                           / max(1.0, abs(reference.objective)))
            entry["max_abs_W_diff"] = float(np.abs(sol.W - reference.W).max())
        out[name] = entry
    return out


def _print_table(results: dict[str, dict], ref_name: str) -> None:
    header = (f"{'backend':<9} {'status':<10} {'objective':>18} {'|ΔF| vs ' + ref_name:>14} "
              f"{'max|ΔW|':>9} {'compile s':>9} {'solve s':>8} {'iters':>6}")
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        if r["status"] == "not installed":
            print(f"{name:<9} not installed (pip extra {r['extra']!r})")
            continue
        if r["status"] == "refused":  # first sentence of the IncompatibleBackend message
            print(f"{name:<9} refused    {r['error'].split('. ')[0]}")
            continue
        its = "-" if r["iterations"] is None else str(r["iterations"])
        print(f"{name:<9} {r['status']:<10} {r['objective']:>18.12f} "
              f"{r.get('rel_objective_diff', 0.0):>14.2e} {r.get('max_abs_W_diff', 0.0):>9.1e} "
              f"{r['compile_time']:>9.4f} {r['solve_time']:>8.4f} {its:>6}")


def figure(reference: mc.Solution, results: dict[str, dict], labels: np.ndarray,
           out_dir: Path) -> Path:
    """The exact W, and every backend's certified and true relative gaps; returns the PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    order = np.argsort(labels, kind="stable")
    top = float(np.abs(reference.W).max())
    image = left.imshow(reference.W[:, order], cmap="RdBu_r", vmin=-top, vmax=top,
                        aspect="auto")
    fig.colorbar(image, ax=left)
    left.set_xticks(range(len(order)), [str(t) for t in order])
    left.set_xlabel("task (ordered by planted cluster)")
    left.set_ylabel("feature")
    left.set_title('exact W ("direct")')
    solved = {name: r for name, r in results.items()
              if r["status"] not in ("not installed", "refused")}
    x = np.arange(len(solved))
    floor = 1e-17  # zeros drawn at the bottom of the log axis
    certified = [max(r["relative_gap"] or np.nan, floor) for r in solved.values()]
    true = [max(r["rel_objective_diff"], floor) for r in solved.values()]
    right.bar(x - 0.2, certified, width=0.4, label="certified gap / |F(W)|")
    right.bar(x + 0.2, true, width=0.4, label="true |F(W) − F*| / max(1, |F*|)")
    right.set_xticks(x, list(solved))
    right.set_yscale("log")
    right.axhline(1e-8, color="grey", linestyle=":", label="tol = 1e-8")
    right.set_title("what each backend returned")
    right.legend(fontsize=8)
    fig.tight_layout()
    png = out_dir / "quickstart.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    print(f"figure written to {png}")
    return png


def run(quick: bool | None = None) -> dict:
    """Solve the quick-start problem with every backend and print two tables.

    Parameters
    ----------
    quick : bool, optional
        None reads the ``MTLCVX_QUICK`` environment variable (the docs gallery sets it).
        Use a smaller problem (5 tasks, 8 features) so the run takes well under a second.

    Returns
    -------
    dict
        ``"data"`` (MultiTaskData), ``"truth"`` (planted structure), ``"problem"`` and
        ``"problem_l21"`` (the two :class:`mtlcvx.Problem`), ``"reference"`` (the
        "direct" :class:`mtlcvx.Solution`), ``"results"`` and ``"results_l21"``
        (backend name -> dict with ``status``, ``objective``, ``W``, timings,
        ``rel_objective_diff``/``max_abs_W_diff`` against the reference, or ``error``
        when the backend refused), ``"auto_backend"`` / ``"auto_backend_l21"`` (what
        ``backend=None`` picked).
    """
    quick = mc.datasets.quick_mode(quick)
    n_tasks, n_features = (5, 8) if quick else (12, 25)
    rng = np.random.default_rng(0)
    n_samples = rng.integers(15, 40, size=n_tasks) if quick else rng.integers(20, 80, n_tasks)
    data, truth = mc.datasets.make_related_tasks(
        n_tasks=n_tasks, n_features=n_features, n_samples=n_samples, n_clusters=2,
        spread=0.1, noise=0.5, random_state=0, return_truth=True,
    )
    print(f"data: {data!r}, planted clusters {truth['labels'].tolist()}")

    # -- 1. a quadratic problem: every backend, "direct" the exact reference ---------------
    graph = mc.GraphLaplacian(truth["adjacency"], alpha=0.5)
    prob = mc.Problem(data, loss=mc.SquaredLoss(scale="mean"),
                      penalties=[graph, mc.Ridge(alpha=0.01)])
    reference = prob.solve(backend="direct")
    auto = prob.solve(backend=None).backend
    print("\n1. SquaredLoss('mean') + GraphLaplacian(planted graph, alpha=0.5) + Ridge(0.01)")
    print(f"   quadratic problem: backend=None runs {auto!r} "
          f"(method {reference.info['method']!r})")
    results = _solve_all(prob, reference)
    _print_table(results, "direct")

    # -- 2. add L21: needs the second-order cone -------------------------------------------
    prob_l21 = mc.Problem(data, loss=mc.SquaredLoss(scale="mean"),
                          penalties=[graph, mc.Ridge(alpha=0.01), mc.L21(alpha=0.05)])
    ref_l21 = prob_l21.solve(backend="clarabel")
    auto_l21 = prob_l21.solve(backend=None).backend
    print("\n2. the same + L21(alpha=0.05): needs the 'soc' cone")
    print(f"   backend=None runs {auto_l21!r}; differences are against clarabel")
    results_l21 = _solve_all(prob_l21, ref_l21)
    _print_table(results_l21, "clarabel")

    out_dir = Path(tempfile.mkdtemp(prefix="mtlcvx_quickstart_")) if quick else Path.cwd()
    figure(reference, results, truth["labels"], out_dir)
    return {
        "data": data,
        "truth": truth,
        "problem": prob,
        "problem_l21": prob_l21,
        "reference": reference,
        "reference_l21": ref_l21,
        "results": results,
        "results_l21": results_l21,
        "auto_backend": auto,
        "auto_backend_l21": auto_l21,
    }


if __name__ == "__main__":
    run()
