"""bench_path.py's paths against their 50 cold default solves, timed by CPU in one process.

Usage::

    python benchmarks/bench_path_cpu.py                   # the three paths, 9 pairs each
    python benchmarks/bench_path_cpu.py --cases small --pairs 15

The same problems, calls and tolerance as :mod:`bench_path` (``shared_problem``,
``unequal_problem``, ``mc.regularization_path(prob, n_alphas=50, tol=1e-8)`` and
``prob.solve(tol=1e-8)`` at each of its 50 strengths), but each pair (the path, then
the 50 cold solves) is timed with ``time.process_time`` in one process and the medians
over the pairs are compared. On a machine shared with other jobs the wall-clock ratios
of :mod:`bench_path` scatter by ±20 % from run to run; CPU time of one single-threaded
process (``OPENBLAS_NUM_THREADS=1``) is what both sides cost, whatever else runs.
Results go to ``benchmarks/results/bench_path_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
from bench_path import N_ALPHAS, TOL, shared_problem, unequal_problem

import mtlcvx as mc

CASES = {
    "small": ("shared L21 n=500 d=100 T=20", lambda: shared_problem(500, 100, 20)[2]),
    "large": ("shared L21 n=2000 d=500 T=50", lambda: shared_problem(2000, 500, 50)[2]),
    "unequal": ("unequal L21 T=20 d=20 n_t=50", lambda: unequal_problem(20, 20, 50)),
}


def cpu_pairs(prob, pairs: int) -> dict:
    """Medians over ``pairs`` of (path, 50 cold solves), CPU seconds."""
    mc.certify(prob, np.zeros((prob.n_features, prob.n_tasks)))  # first-call caches
    path = mc.regularization_path(prob, n_alphas=N_ALPHAS, tol=TOL)
    pen = prob.penalties[0]
    t_path, t_cold = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        for _ in range(pairs):
            start = time.process_time()
            mc.regularization_path(prob, n_alphas=N_ALPHAS, tol=TOL)
            t_path.append(time.process_time() - start)
            start = time.process_time()
            for a in path.alphas:
                pen.alpha = float(a)
                prob.solve(tol=TOL)
            t_cold.append(time.process_time() - start)
    pen.alpha = 1.0
    p, c = float(np.median(t_path)), float(np.median(t_cold))
    return {"path_cpu_s": p, "cold_cpu_s": c, "speedup_vs_cold": c / p,
            "all_optimal": all(s == "optimal" for s in path.status)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="small,large,unequal",
                        help="comma-separated subset of " + ", ".join(CASES))
    parser.add_argument("--pairs", type=int, default=9)
    parser.add_argument("--out",
                        default=str(Path(__file__).parent / "results" / "bench_path_cpu.json"))
    args = parser.parse_args(argv)
    rows = []
    for key in args.cases.split(","):
        name, build = CASES[key]
        row = {"case": name, **cpu_pairs(build(), args.pairs)}
        rows.append(row)
        print(f"{name:<32} path {1e3 * row['path_cpu_s']:8.1f} ms CPU | 50 cold solves "
              f"{1e3 * row['cold_cpu_s']:8.1f} ms CPU | speed-up {row['speedup_vs_cold']:5.2f}×"
              f"{'' if row['all_optimal'] else ' (not every point certified)'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "pairs": args.pairs,
                               "loadavg": os.getloadavg()}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
