"""School: choose each model's strength by cross-validation, the literature's protocol
===================================================================================

The School data (139 schools, 15,362 students, 27 standardized attributes; predict the
exam score) is the standard multi-task benchmark. Its protocol (Argyriou, Evgeniou &
Pontil 2008 and most papers since): 10 random splits, 75 % of every school's students
to train and 25 % to test, and the explained variance

    r2_pooled = 1 − Σ_t SSE_t / Σ_t Σ_i (y_ti − ȳ)²      (ȳ: mean of all test scores)

averaged over the splits, reported ± its standard deviation. Per-task R² (averaged over
schools) is printed beside it.

Models, each with an unpenalised intercept per school and the mean loss
``Σ_t 1/(2n_t)‖X_t w_t + b_t − y_t‖²``:

* independent ridge        ``Ridge(α)``: ``(α/2)‖W‖²_F`` (every school on its own);
* mean-regularized         ``MeanRegularized(α)``: ``(α/2) Σ_t ‖w_t − w̄‖²`` (Evgeniou &
  Pontil 2004: schools pulled towards their mean);
* L21 (joint features)     ``L21(α)``: ``α Σ_j ‖W_j,:‖₂``;
* trace norm (low rank)    ``TraceNorm(α)``: ``α ‖W‖_*``.

For each, :func:`mtlcvx.cross_validate` runs one warm-started, certified path per split
over a grid (the norms' grids start at ``alpha_max``, the quadratic terms get a fixed
grid) with ``mc.TaskShuffleSplit(10, test_size=0.25, random_state=0)`` and picks the
strength with the best mean r2_pooled. One table gives each model's chosen strength and
its score ± std. The figure (``school_cv.png``) shows the cross-validation curves of the
two norms and the L21 path on all the schools: the norm of every feature's row of ``W``
against the strength, the chosen strength marked.

Run ``python examples/school_cross_validation.py``; ``run(quick=True)`` uses 10 schools,
2 splits and 3 strengths (down to ``alpha_max/100`` instead of ``/1000``). The figure goes
to a temporary directory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import mtlcvx as mc

#: name -> (penalty, grid, backend). The mean-regularized path runs on warm-started FISTA:
#: its coupling I − 11ᵀ/T ties all 139 schools, and the "direct" solve of that coupled
#: system costs about 15 s per strength on School, the warm-started path 0.3 s.
MODELS = {
    "independent ridge": (mc.Ridge, "fixed", None),
    "mean-regularized": (mc.MeanRegularized, "fixed", "fista"),
    "L21": (mc.L21, "alpha_max", None),
    "trace norm": (mc.TraceNorm, "alpha_max", None),
}


def school(quick: bool) -> mc.MultiTaskData:
    data = mc.datasets.load_school(standardize=True)
    if quick:  # the first 10 schools
        data = mc.MultiTaskData(data.X[:10], data.y[:10], data.tasks[:10])
    return data


def cross_validate_one(name: str, quick: bool = False, n_jobs: int | None = None,
                       data: mc.MultiTaskData | None = None) -> mc.CVResult:
    """Cross-validate one model of :data:`MODELS` with the School protocol."""
    data = school(quick) if data is None else data
    kind, grid, backend = MODELS[name]
    prob = mc.Problem(data, penalties=[kind()], fit_intercept=True)
    n_alphas = 3 if quick else 12
    if grid == "fixed":
        alphas = np.geomspace(1e3, 1e-3, n_alphas)
    else:
        top = mc.alpha_max(prob)
        alphas = np.geomspace(top, (1e-2 if quick else 1e-3) * top, n_alphas)
    splits = mc.TaskShuffleSplit(n_splits=2 if quick else 10, test_size=0.25, random_state=0)
    return mc.cross_validate(prob, alphas, cv=splits, scoring="r2_pooled", n_jobs=n_jobs,
                             backend=backend)


def figure(rows: dict[str, dict], data: mc.MultiTaskData, out_dir: Path) -> Path:
    """CV curves of the norms, and the L21 path on all the data; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in ("L21", "trace norm"):
        res = rows[name]["result"]
        left.errorbar(res.alphas, res.mean_score, yerr=res.std_score, marker="o",
                      capsize=3, label=f"{name} (best α = {res.best_alpha:.3g})")
    left.set_xscale("log")
    left.set_xlabel("alpha")
    left.set_ylabel("r2_pooled, mean ± std over splits")
    left.set_title("cross-validation on School")
    left.legend()
    best = rows["L21"]["result"]
    path = mc.regularization_path(mc.Problem(data, penalties=[mc.L21()], fit_intercept=True),
                                  alphas=best.alphas)
    mc.plotting.plot_path(path, ax=right)
    right.axvline(best.best_alpha, color="grey", linestyle=":")
    right.set_title(f"L21 path on all {data.n_tasks} schools (dotted: CV choice)")
    fig.tight_layout()
    png = out_dir / "school_cv.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    print(f"figure written to {png}")
    return png


def run(quick: bool | None = None, n_jobs: int | None = None) -> dict[str, dict]:
    """Cross-validate every model; print and return one row per model."""
    quick = mc.datasets.quick_mode(quick)
    data = school(quick)
    rows: dict[str, dict] = {}
    for name in MODELS:
        res = cross_validate_one(name, quick, n_jobs, data)
        i = res.best_index
        r2 = res.per_task[i].mean(axis=1)  # per-task R² averaged over schools, per split
        rows[name] = {"alpha": res.best_alpha, "r2_pooled": res.mean_score[i],
                      "r2_pooled_std": res.std_score[i], "r2": float(r2.mean()),
                      "r2_std": float(r2.std()), "result": res}
    print(f"School, {data.n_tasks} schools, {res.scores.shape[1]} random 75/25 splits within "
          "every school")
    print(f"{'model':<20} {'alpha':>10} {'r2_pooled':>18} {'per-task r2':>18}")
    for name, r in rows.items():
        print(f"{name:<20} {r['alpha']:>10.3g} {r['r2_pooled']:>10.4f} ± {r['r2_pooled_std']:.4f}"
              f" {r['r2']:>10.4f} ± {r['r2_std']:.4f}")
    out_dir = Path(tempfile.mkdtemp(prefix="mtlcvx_school_cv_")) if quick else Path(".")
    figure(rows, data, out_dir)
    return rows


if __name__ == "__main__":
    run()
