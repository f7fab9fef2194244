"""MultiTaskRegressor against scikit-learn's own models, and against calling mtlcvx directly.

Usage::

    python benchmarks/bench_estimator.py            # full sizes (about 15 s)
    python benchmarks/bench_estimator.py --quick    # smoke run

Shared design X (n, d), Y (n, T) with a row-sparse truth (a third of the features
matter). Three comparisons, each pair timed alternately in this process after one
untimed warm-up of each side, medians reported (``--repeats`` pairs; 5× as many for the
millisecond Ridge fits, a third as many for the grid searches):

1. ``Ridge(alpha=a)`` (mtlcvx, exact "direct" solve) against scikit-learn's ``Ridge(alpha=n·a)``
   (the same problem: mtlcvx scales the loss by 1/(2n));
2. ``L21(alpha=a)`` (mtlcvx, the default route, certified to tol=1e-8) against
   ``MultiTaskLasso(alpha=a, tol=1e-10)`` (coordinate descent; the same objective);
3. ``GridSearchCV`` over 5 strengths × 5 folds of each of the two L21 models.

Each row reports both times, their ratio (mtlcvx / scikit-learn), the largest coefficient
difference and, for L21, each model's objective excess over the lower of the two (computed
here in NumPy). "wrapper" is the estimator's fit against ``Problem(...).solve()`` with the
same backend on the same data: the cost of the scikit-learn layer (validation, clones,
labels). The machine may be shared: compare ratios from one run. Results go to
``benchmarks/results/bench_estimator.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.linear_model import MultiTaskLasso, Ridge
from sklearn.model_selection import GridSearchCV, KFold

import mtlcvx as mc
from mtlcvx.estimators import MultiTaskRegressor


def _paired(ours, other, repeats: int) -> tuple[float, object, float, object]:
    """Median times and last results of ``ours`` and ``other``, timed alternately (a
    loaded machine slows both alike) after one untimed warm-up each."""
    out = [ours(), other()]  # warm-up: imports, first-call caches
    times: list[list[float]] = [[], []]
    for _ in range(repeats):
        for k, fn in enumerate((ours, other)):
            start = time.perf_counter()
            out[k] = fn()
            times[k].append(time.perf_counter() - start)
    return float(np.median(times[0])), out[0], float(np.median(times[1])), out[1]


def _l21_objective(X, Y, coef, intercept, alpha):
    R = X @ coef.T + intercept - Y
    return float(np.sum(R * R) / (2 * X.shape[0]) + alpha * np.sum(np.linalg.norm(coef, axis=0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"
                                             / "bench_estimator.json"))
    args = parser.parse_args()
    n, d, T = (400, 20, 5) if args.quick else (4000, 60, 20)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    W = np.zeros((d, T))
    W[: d // 3] = rng.normal(size=(d // 3, T))
    Y = X @ W + rng.normal(size=(n, T)) + rng.normal(size=T)
    a_ridge, a_l21 = 0.05, 0.05
    rows = []

    t_ours, ours, t_sk, sk = _paired(
        lambda: MultiTaskRegressor([mc.Ridge(alpha=a_ridge)]).fit(X, Y),
        lambda: Ridge(alpha=n * a_ridge).fit(X, Y), 5 * args.repeats)
    rows.append({"case": f"Ridge, n={n} d={d} T={T}", "mtlcvx_s": t_ours, "sklearn_s": t_sk,
                 "ratio": t_ours / t_sk,
                 "max_coef_diff": float(np.abs(ours.coef_ - sk.coef_).max()),
                 "backend": ours.solution_.backend, "status": ours.solution_.status})

    t_ours, ours, t_sk, sk = _paired(
        lambda: MultiTaskRegressor([mc.L21(alpha=a_l21)]).fit(X, Y),
        lambda: MultiTaskLasso(alpha=a_l21, tol=1e-10, max_iter=100_000).fit(X, Y),
        args.repeats)
    f_ours = _l21_objective(X, Y, ours.coef_, ours.intercept_, a_l21)
    f_sk = _l21_objective(X, Y, sk.coef_, sk.intercept_, a_l21)
    rows.append({"case": f"L21, n={n} d={d} T={T}", "mtlcvx_s": t_ours, "sklearn_s": t_sk,
                 "ratio": t_ours / t_sk,
                 "max_coef_diff": float(np.abs(ours.coef_ - sk.coef_).max()),
                 "excess_mtlcvx": f_ours - min(f_ours, f_sk),
                 "excess_sklearn": f_sk - min(f_ours, f_sk),
                 "certified_relative_gap": ours.certificate_.relative_gap,
                 "backend": ours.solution_.backend, "status": ours.solution_.status})

    route = ours.solution_.backend  # fresh data each time: its Gram cache is part of a fit
    t_fit, _, t_direct, _ = _paired(
        lambda: MultiTaskRegressor([mc.L21(alpha=a_l21)], backend=route).fit(X, Y),
        lambda: mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[mc.L21(alpha=a_l21)],
                           fit_intercept=True).solve(backend=route), args.repeats)
    rows.append({"case": "wrapper: L21 fit vs Problem.solve", "mtlcvx_s": t_fit,
                 "problem_s": t_direct, "ratio": t_fit / t_direct})

    alphas = list(np.geomspace(0.5, 0.005, 5))
    cv = KFold(5, shuffle=True, random_state=0)
    t_ours, g_ours, t_sk, g_sk = _paired(
        lambda: GridSearchCV(MultiTaskRegressor([mc.L21(alpha=1.0)]),
                             {"penalties__0__alpha": alphas}, cv=cv).fit(X, Y),
        lambda: GridSearchCV(MultiTaskLasso(tol=1e-10, max_iter=100_000),
                             {"alpha": alphas}, cv=cv).fit(X, Y), max(1, args.repeats // 3))
    diff = np.abs(g_ours.cv_results_["mean_test_score"] - g_sk.cv_results_["mean_test_score"])
    rows.append({"case": "GridSearchCV L21, 5 alphas x 5 folds", "mtlcvx_s": t_ours,
                 "sklearn_s": t_sk, "ratio": t_ours / t_sk, "max_score_diff": float(diff.max())})

    print(f"{'case':<40} {'mtlcvx [s]':>11} {'other [s]':>10} {'ratio':>7}  agreement")
    for r in rows:
        other = r.get("sklearn_s", r.get("problem_s"))
        agree = ", ".join(f"{k}={r[k]:.1e}" for k in ("max_coef_diff", "max_score_diff",
                                                        "excess_mtlcvx", "excess_sklearn",
                                                        "certified_relative_gap") if k in r)
        agree += f" [{r['backend']}]" if "backend" in r else ""
        print(f"{r['case']:<40} {r['mtlcvx_s']:>11.4f} {other:>10.4f} {r['ratio']:>7.2f}  {agree}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"quick": args.quick, "n": n, "d": d, "T": T,
                               "loadavg": os.getloadavg(), "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        main()
