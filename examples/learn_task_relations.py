"""Learning which tasks are related: planted groups recovered, then School, certified
==================================================================================

1. **Planted groups.** Twelve regression tasks whose weight vectors form three groups
   (``mc.datasets.make_related_tasks``). Convex clustered MTL (``kind="clusters"``, k = 3)
   learns the T×T cluster matrix M jointly with W; ``res.labels`` (k-means on M's top
   eigenvectors) recovers the groups, and the task covariance Ω of MTRL
   (``kind="task_covariance"``) shows the same block structure. Both matrices are saved as
   heatmaps (``learned_relations.png``).
2. **School.** MTRL on standardized School (per-task mean loss, intercepts, ``Ridge(0.1)``
   plus the learned task covariance with α = 1) and clustered MTL with MALSAR's
   ``Least_CMTL(ρ₁ = 10, ρ₂ = 0.1, k = 3)`` on School as MALSAR ships it
   (``alpha = 2ρ₁η(1 + η)``, ``eta = ρ₂/ρ₁``, ``SquaredLoss("sum")``). Each result is
   certified optimal to a relative gap of 1e-8; the script prints the status, the time,
   the rank of Ω and the cluster sizes.

Run ``python examples/learn_task_relations.py``; ``run(quick=True)`` uses the first 5
schools and writes the PNG to a temporary directory.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

import mtlcvx as mc

#: MALSAR's Least_CMTL parameters used on School.
RHO1, RHO2, K = 10.0, 0.1, 3


def planted(out_dir: Path) -> dict:
    """Three planted groups of four tasks: learn M and Ω, save both heatmaps."""
    data, truth = mc.datasets.make_related_tasks(
        n_tasks=12, n_features=8, n_samples=40, n_clusters=3, spread=0.05, noise=0.2,
        random_state=7, return_truth=True)
    prob = mc.Problem(data)
    clusters = mc.learn_relation(prob, "clusters", alpha=1.0, k=3, eta=0.05)
    covariance = mc.learn_relation(prob, "task_covariance", alpha=0.5)
    agree = bool(np.array_equal(clusters.labels, truth["labels"]))
    print(f"planted groups {truth['labels'].tolist()}")
    print(f"learned labels {clusters.labels.tolist()}  (same partition: {agree}; "
          f"status {clusters.status}, {clusters.certificate})")
    print(f"MTRL task covariance: status {covariance.status}, {covariance.certificate}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    mc.plotting.plot_task_matrix(clusters.matrix, clusters.labels, ax=axes[0])
    axes[0].set_title("cluster matrix M (clusters, k = 3)")
    mc.plotting.plot_task_matrix(covariance.matrix, clusters.labels, ax=axes[1])
    axes[1].set_title("task covariance Ω (MTRL)")
    fig.tight_layout()
    png = out_dir / "learned_relations.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    print(f"heatmaps written to {png}")
    return {"data": data, "truth": truth, "clusters": clusters, "covariance": covariance,
            "png": png}


def school(quick: bool) -> dict:
    """MTRL on standardized School and MALSAR's CMTL on raw School."""
    std, raw = mc.datasets.load_school(standardize=True), mc.datasets.load_school()
    if quick:
        std = mc.MultiTaskData(std.X[:5], std.y[:5])
        raw = mc.MultiTaskData(raw.X[:5], raw.y[:5])
    mtrl_prob = mc.Problem(std, mc.SquaredLoss("mean"), [mc.Ridge(0.1)], fit_intercept=True)
    start = time.perf_counter()
    mtrl = mc.learn_relation(mtrl_prob, "task_covariance", alpha=1.0)
    mtrl_time = time.perf_counter() - start
    lam = np.linalg.eigvalsh(mtrl.matrix)
    print(f"School ({std.n_tasks} schools), MTRL: status {mtrl.status} in {mtrl_time:.2f} s, "
          f"objective {mtrl.objective:.10g}, rank of Ω {int(np.sum(lam > 1e-6 * lam[-1]))}, "
          f"{mtrl.certificate}")

    eta = RHO2 / RHO1
    cmtl_prob = mc.Problem(raw, mc.SquaredLoss("sum"))
    start = time.perf_counter()
    cmtl = mc.learn_relation(cmtl_prob, "clusters", alpha=2 * RHO1 * eta * (1 + eta), k=K,
                             eta=eta)
    cmtl_time = time.perf_counter() - start
    sizes = np.bincount(cmtl.labels).tolist()
    print(f"School ({raw.n_tasks} schools), Least_CMTL(rho1={RHO1:g}, rho2={RHO2:g}, k={K}): "
          f"status {cmtl.status} in {cmtl_time:.2f} s, objective {cmtl.objective:.10g}, "
          f"cluster sizes {sizes}, {cmtl.certificate}")
    return {"mtrl_problem": mtrl_prob, "mtrl": mtrl, "cmtl_problem": cmtl_prob, "cmtl": cmtl}


def run(quick: bool | None = None) -> dict:
    """Both parts; returns their results (the PNG goes to a temporary directory if quick)."""
    quick = mc.datasets.quick_mode(quick)
    out_dir = Path(tempfile.mkdtemp(prefix="mtlcvx_relations_")) if quick else Path.cwd()
    return {**planted(out_dir), **school(quick)}


if __name__ == "__main__":
    run()
