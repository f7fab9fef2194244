"""Regularization paths and cross-validation: time to a certified relative gap ≤ 1e-8.

Usage::

    python benchmarks/bench_path.py               # full run (a few minutes)
    python benchmarks/bench_path.py --quick       # smoke run (small sizes, few cold solves)
    python benchmarks/bench_path.py --cold-all    # time all 50 cold solves, not 5 scaled
    python benchmarks/bench_path.py --repeats 5   # medians of 5 timed runs, not 3

Cases.

* ``shared``: a 50-point L21 path (``mc.regularization_path(prob, n_alphas=50)``, grid
  from ``alpha_max`` down to ``1e-3·alpha_max``) on a shared design, ``n × d`` Gaussian
  ``X``, ``T`` tasks, 10 % of the rows of ``W`` non-zero, unit noise, no intercept; sizes
  (n, d, T) = (500, 100, 20) and (2000, 500, 50). Against

  - scikit-learn's ``lasso_path(X, Y, alphas=path.alphas)``: with a 2-D ``Y`` it is the
    coordinate descent of ``MultiTaskLasso``, the same objective
    ``1/(2n)‖Y − XW‖² + α Σ_j ‖W_j,:‖₂`` as mtlcvx's mean loss. Its ``tol`` stops on the
    duality gap relative to ``‖Y‖²_F`` of the unnormalised objective (``n`` times
    ours), so it is set to ``1e-8 · min_i F_i · n / ‖Y‖²_F`` and divided by 10 until
    :func:`mtlcvx.certify` certifies *every* point of its path to the largest certified
    relative gap of mtlcvx's path (1e-8, or above it where the certificate's bound on its
    own rounding error is larger; along the n = 2000 path that bound is at most about
    5e-10 of F); the tol used is reported.
  - 50 cold default solves ``prob.solve()`` (one per strength, no warm start; the
    default backend, FISTA at both sizes, is reported). Unless ``--cold-all``, 5 evenly
    spaced strengths are timed and the total is scaled by 10 (the table says "×10 of 5").

  mtlcvx's path, scikit-learn's path and the cold solves are timed in turn, 3 times
  each (``--repeats``), and the medians are compared (the machine is shared and noisy).

* ``unequal``: the same path on T = 20 tasks with their own designs (n_t = 50, d = 20),
  against cold default solves (timed in turn, 3 times each, medians).

* ``school``: ``examples/school_cross_validation.py``'s protocol for L21 (10 random 75/25
  splits within each school, 12 strengths), wall time with ``n_jobs=1`` and ``n_jobs=2``.

Each row also times the path's own certificates alone (the batched pass over its 50
points, as the path calls it, in turn with the others): their share of the path, and the speed-up
over the cold solves the path would have without them.

Every path point (mtlcvx's and scikit-learn's) is certified with :func:`mtlcvx.certify`
on the original data; the path times include mtlcvx's own certificates. Ratios are
taken within one run (the machine is shared and noisy). Results go to
``benchmarks/results/bench_path.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import mtlcvx as mc
from mtlcvx.certificates import certify_path

TOL = 1e-8
N_ALPHAS = 50


def shared_problem(n: int, d: int, T: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = np.zeros((d, T))
    k = max(1, d // 10)
    W[:k] = rng.normal(size=(k, T))
    Y = X @ W + rng.normal(size=(n, T))
    return X, Y, mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[mc.L21()])


def unequal_problem(T: int, d: int, n_t: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = np.zeros(d)
    w[: max(1, d // 5)] = rng.normal(size=max(1, d // 5))
    Xs = [rng.normal(size=(n_t, d)) for _ in range(T)]
    ys = [X @ (w + 0.3 * rng.normal(size=d) * (w != 0)) + rng.normal(size=n_t) for X in Xs]
    return mc.Problem(mc.MultiTaskData(Xs, ys), penalties=[mc.L21()])


def max_rel_gap(prob, alphas, Ws) -> float:
    """Largest certified relative gap of ``Ws[i]`` at strength ``alphas[i]``."""
    pen = prob.penalties[0]
    saved = pen.alpha
    worst = 0.0
    try:
        for a, W in zip(alphas, Ws, strict=True):
            pen.alpha = float(a)
            worst = max(worst, mc.certify(prob, W).relative_gap)
    finally:
        pen.alpha = saved
    return worst


def time_certificates(prob, path) -> float:
    """Seconds for the path's own certificates alone: the batched pass
    (:func:`mtlcvx.certificates.certify_path`) over all points as the path calls it (the
    gap decides, ``tol`` given; here it also computes the products ``G W_i`` that the path
    takes from its solver's last check, so this slightly over-states it), so
    ``path − this`` is what solving costs and ``cold / (path − this)`` the ceiling of any
    saving on certificates."""
    start = time.perf_counter()
    certify_path(prob, prob.penalties[0], path.alphas, path.W, TOL)
    return time.perf_counter() - start


def time_path(prob):
    mc.certify(prob, np.zeros((prob.n_features, prob.n_tasks)))  # first-call caches
    start = time.perf_counter()
    path = mc.regularization_path(prob, n_alphas=N_ALPHAS, tol=TOL)
    return path, time.perf_counter() - start


def time_cold(prob, alphas, cold_all: bool):
    pen = prob.penalties[0]
    idx = np.arange(len(alphas)) if cold_all else np.linspace(0, len(alphas) - 1, 5).astype(int)
    start = time.perf_counter()
    backend = ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        for i in idx:
            pen.alpha = float(alphas[i])
            backend = prob.solve(tol=TOL).backend
    pen.alpha = 1.0
    elapsed = time.perf_counter() - start
    note = "all" if cold_all else f"×{len(alphas) // len(idx)} of {len(idx)}"
    return elapsed * len(alphas) / len(idx), backend, note


def run_sklearn(X, Y, alphas, tol):
    from sklearn.linear_model import lasso_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        _, coefs, _ = lasso_path(X, Y, alphas=alphas, tol=tol, max_iter=100_000)
        elapsed = time.perf_counter() - start
    return np.transpose(coefs, (2, 1, 0)), elapsed  # (n_alphas, d, T)


def sklearn_tol(X, Y, prob, path):
    """scikit-learn's tol for the certified gap mtlcvx's path reached (1e-8, or the
    certificate's rounding floor where that is higher): (tol, max gap, objectives)."""
    target = max(TOL, max(c.relative_gap for c in path.certificates))
    tol = TOL * float(path.objective.min()) * X.shape[0] / float(np.sum(Y * Y))
    for _ in range(4):
        Ws, _ = run_sklearn(X, Y, path.alphas, tol)
        gap = max_rel_gap(prob, path.alphas, Ws)
        if gap <= target:
            break
        tol /= 10.0
    pen = prob.penalties[0]
    F = []
    for a, W in zip(path.alphas, Ws, strict=True):
        pen.alpha = float(a)
        F.append(prob.objective(W))
    pen.alpha = 1.0
    return tol, gap, np.asarray(F)


def bench_shared(sizes, cold_all: bool, repeats: int) -> list[dict]:
    rows = []
    for n, d, T in sizes:
        X, Y, prob = shared_problem(n, d, T)
        path, _ = time_path(prob)
        sk_tol, sk_gap, F_sk = sklearn_tol(X, Y, prob, path)
        t_path, t_sk, t_cold, t_cert = [], [], [], []
        for _ in range(repeats):  # alternate, compare medians
            t_path.append(time_path(prob)[1])
            t_cert.append(time_certificates(prob, path))
            t_sk.append(run_sklearn(X, Y, path.alphas, sk_tol)[1])
            cold, cold_backend, cold_note = time_cold(prob, path.alphas, cold_all)
            t_cold.append(cold)
        t_path, t_sk, t_cold, t_cert = (float(np.median(t))
                                        for t in (t_path, t_sk, t_cold, t_cert))
        rows.append({
            "case": f"shared L21 n={n} d={d} T={T}", "route": path.backend,
            "path_s": t_path, "sklearn_s": t_sk, "sklearn_tol": sk_tol,
            "ratio_vs_sklearn": t_path / t_sk,
            "max_rel_gap": float(max(c.relative_gap for c in path.certificates)),
            "sklearn_max_rel_gap": sk_gap,
            "max_rel_obj_diff": float(np.max(np.abs(path.objective - F_sk) / np.abs(F_sk))),
            "cold_s": t_cold, "cold_backend": cold_backend, "cold_note": cold_note,
            "speedup_vs_cold": t_cold / t_path, **certificate_share(t_path, t_cert, t_cold),
            "all_optimal": all(s == "optimal" for s in path.status),
            "n_certified_1e-8": sum(s == "optimal" for s in path.status),
        })
        print_row(rows[-1])
    return rows


def bench_unequal(T: int, d: int, n_t: int, cold_all: bool, repeats: int) -> dict:
    prob = unequal_problem(T, d, n_t)
    path, _ = time_path(prob)
    t_path, t_cold, t_cert = [], [], []
    for _ in range(repeats):  # alternate, compare medians
        t_path.append(time_path(prob)[1])
        t_cert.append(time_certificates(prob, path))
        cold, cold_backend, cold_note = time_cold(prob, path.alphas, cold_all)
        t_cold.append(cold)
    t_path, t_cold, t_cert = (float(np.median(t)) for t in (t_path, t_cold, t_cert))
    row = {"case": f"unequal L21 T={T} d={d} n_t={n_t}", "route": path.backend,
           "path_s": t_path, "max_rel_gap": float(max(c.relative_gap for c in path.certificates)),
           "cold_s": t_cold, "cold_backend": cold_backend, "cold_note": cold_note,
           "speedup_vs_cold": t_cold / t_path, **certificate_share(t_path, t_cert, t_cold),
           "all_optimal": all(s == "optimal" for s in path.status)}
    print_row(row)
    return row


def bench_school(quick: bool) -> list[dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import school_cross_validation as ex

    rows = []
    for n_jobs in (1, 2):
        start = time.perf_counter()
        res = ex.cross_validate_one("L21", quick=quick, n_jobs=n_jobs)
        wall = time.perf_counter() - start
        rows.append({"case": f"School CV L21 n_jobs={n_jobs}", "wall_s": wall,
                     "best_alpha": res.best_alpha,
                     "r2_pooled": float(res.mean_score[res.best_index])})
        print(f"{rows[-1]['case']:<34} wall {rows[-1]['wall_s']:8.2f} s   best alpha "
              f"{res.best_alpha:.3g}  r2_pooled {rows[-1]['r2_pooled']:.4f}")
    rows[1]["speedup_vs_n_jobs_1"] = rows[0]["wall_s"] / rows[1]["wall_s"]
    print(f"{'  n_jobs=2 speed-up':<34} {rows[1]['speedup_vs_n_jobs_1']:.2f}×")
    return rows


def certificate_share(t_path: float, t_cert: float, t_cold: float) -> dict:
    """The path's certificates (median of their own timings) against the path and the
    cold solves: their share, and the speed-up over cold solves if they cost nothing."""
    solving = max(t_path - t_cert, 1e-12)
    return {"certificates_s": t_cert, "certificate_share": t_cert / t_path,
            "speedup_vs_cold_without_certificates": t_cold / solving}


def print_row(r: dict) -> None:
    line = f"{r['case']:<34} {r['route']:<10} path {r['path_s']:7.2f} s"
    if "sklearn_s" in r:
        line += (f" | sklearn {r['sklearn_s']:7.2f} s (tol {r['sklearn_tol']:.1e}) "
                 f"ratio {r['ratio_vs_sklearn']:5.2f}× | obj diff {r['max_rel_obj_diff']:.1e}")
    line += (f" | cold {r['cold_backend']} {r['cold_s']:8.2f} s ({r['cold_note']}) "
             f"speed-up {r['speedup_vs_cold']:6.1f}× | certificates "
             f"{100 * r['certificate_share']:.0f} % of the path (without them "
             f"{r['speedup_vs_cold_without_certificates']:.1f}×) | max gap {r['max_rel_gap']:.1e}"
             f"{'' if r['all_optimal'] else ' (not all ≤ 1e-8: rounding floor)'}")
    print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cold-all", action="store_true")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs of each contender (default 3, 1 with --quick)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_path.json"))
    args = parser.parse_args(argv)
    sizes = [(200, 40, 8)] if args.quick else [(500, 100, 20), (2000, 500, 50)]
    repeats = args.repeats or (1 if args.quick else 3)
    results = {"shared": bench_shared(sizes, args.cold_all, repeats),
               "unequal": bench_unequal(*((5, 10, 30) if args.quick else (20, 20, 50)),
                                        args.cold_all, repeats),
               "school": bench_school(args.quick),
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "loadavg": os.getloadavg()},
               "quick": args.quick}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
