"""How tight are fista's certified gaps along its iterates? L21 on raw School.

Usage::

    python benchmarks/bench_gap_tightness.py            # full (a few minutes)
    python benchmarks/bench_gap_tightness.py --quick    # shorter reference run

Problem: School as shipped (``mc.datasets.load_school()``), ``SquaredLoss("sum")``,
``L21(500)`` (MALSAR's ``Least_L21`` with ρ₁ = 500).

Three fista runs from zero with ``tol=1e-8``, ``record_every=1``, ``check_every=1`` (the
history's gap at every check, which later comes every ``k // 10`` iterations):

* ``plain``: the certificate of each iterate alone (its scaled residual as dual point),
  as fista did before dual tracking (``first_order._TRACK_DUAL = False``);
* ``tracked``: the best dual value seen so far, including an extrapolated dual point at
  each check (Massias, Gramfort & Salmon 2018), without the restricted solve
  (``first_order._RESTRICTED = False``);
* ``restricted``: the package's default: also, once the support has settled, the
  residual of the problem restricted to it, solved by Newton, as a dual point.

The true suboptimality ``F(W_k) − F*`` uses ``F_ref``, the objective of a reference run
to a certified relative gap of 1e-11 (or its rounding floor, or 30,000 iterations; its
certificate is printed). Reported: the ratio certified gap / true suboptimality,
``gap / (F(W_k) − F_ref)``, over the checks whose true relative suboptimality lies in
[1e-8, 1e-2] (max and median), and the iteration where each run stopped (its first
certified 1e-8) divided by the first iteration whose true relative suboptimality is
≤ 1e-8. Prints a table, writes JSON to ``benchmarks/results/bench_gap_tightness.json``
and the figure ``docs/img/gap_tightness.png`` (certified and true curves).

The three runs above follow the iterates to their own first certified 1e-8
(``first_order._POLISH = False``). Then the cost: fista at its defaults (``tol=1e-8``,
``check_every=10``: the restricted solution is a dual point and, once certified, the
returned point), as a dual point only, and without the restricted solve, in turn
``--repeats`` times (medians, one BLAS thread), on the
same problem, on ``bench_school.py``'s other sparse School problems solved by fista
(Lasso, MeanRegularized + L1, chain graph + L1) and on the shared-design L21 of
``bench_scaling.py`` (n = 2000, d = 500, T = 50; ``--quick``: 400 × 100 × 20).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from bench_scaling import make_data
from bench_school import LABELS
from bench_school import _problem as school_problem
from threadpoolctl import threadpool_limits

import mtlcvx as mc
from mtlcvx import first_order


def _run(prob: mc.Problem, track: bool, restrict: bool) -> tuple[dict, float, int]:
    # the iterates followed to their own first certified 1e-8 (no primal polish)
    first_order._TRACK_DUAL, first_order._RESTRICTED = track, restrict
    first_order._POLISH = False
    try:
        start = time.perf_counter()
        trace = first_order.fista(prob, tol=1e-8, record_every=1, check_every=1,
                                  max_iter=50_000)
        return trace.history, time.perf_counter() - start, trace.iterations
    finally:
        first_order._TRACK_DUAL = first_order._RESTRICTED = first_order._POLISH = True


ROUTES = {"plain": (False, False), "tracked": (True, False), "restricted": (True, True)}


#: fista variants timed by _cost: (restricted solve, primal polish)
VARIANTS = {"without": (False, False), "dual only": (True, False), "default": (True, True)}


def _cost(problems: dict[str, mc.Problem], repeats: int) -> dict[str, dict]:
    """fista's default run (restricted solve as dual point and as primal polish) against
    the run without the restricted solve and with it as a dual point only, in turn;
    medians, and ratios to "without" from the same round."""
    out = {}
    for name, prob in problems.items():
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        stats = {}
        for _ in range(repeats):
            for variant, (restrict, polish) in VARIANTS.items():
                first_order._RESTRICTED, first_order._POLISH = restrict, polish
                try:
                    start = time.perf_counter()
                    trace = first_order.fista(prob, tol=1e-8)
                    times[variant].append(time.perf_counter() - start)
                finally:
                    first_order._RESTRICTED = first_order._POLISH = True
                stats[variant] = (trace.iterations, trace.certificate.relative_gap)
        out[name] = {f"{v}_s": float(np.median(times[v])) for v in VARIANTS}
        for v in ("dual only", "default"):
            out[name][f"ratio {v}"] = float(np.median(
                [b / a for a, b in zip(times["without"], times[v], strict=True)]))
        out[name]["iterations"] = [stats[v][0] for v in VARIANTS]
        out[name]["relative_gap"] = [stats[v][1] for v in VARIANTS]
    return out


def _summary(hist: dict, F_ref: float, stop: int) -> dict:
    F = hist["objective"]
    sub = (F - F_ref) / abs(F_ref)
    gap = hist["gap"] / abs(F_ref)  # both over |F_ref|: the ratio is gap / (F − F_ref)
    checked = ~np.isnan(gap) & (sub >= 1e-8) & (sub <= 1e-2)
    ratio = gap[checked] / sub[checked]
    first_true = int(hist["iteration"][np.argmax(sub <= 1e-8)]) if np.any(sub <= 1e-8) else -1
    return {"ratio_max": float(ratio.max()), "ratio_median": float(np.median(ratio)),
            "checks": int(checked.sum()), "stop": stop, "first_true_1e-8": first_true,
            "stop_over_first_true": stop / first_true if first_true > 0 else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter reference run")
    parser.add_argument("--out", default="benchmarks/results/bench_gap_tightness.json")
    parser.add_argument("--figure", default="docs/img/gap_tightness.png")
    parser.add_argument("--repeats", type=int, default=3, help="timing pairs per problem")
    args = parser.parse_args()
    threadpool_limits(1)

    prob = mc.Problem(mc.datasets.load_school(), loss=mc.SquaredLoss("sum"),
                      penalties=[mc.L21(500.0)])
    ref = first_order.fista(prob, tol=1e-11, max_iter=10_000 if args.quick else 30_000,
                            record_every=10**9, check_every=50)
    F_ref = ref.certificate.objective
    print(f"reference: {ref.iterations} iterations, {ref.certificate}")
    rows, curves = {}, {}
    for name, (track, restrict) in ROUTES.items():
        hist, seconds, stop = _run(prob, track, restrict)
        rows[name] = {**_summary(hist, F_ref, stop), "time_s": seconds}
        curves[name] = hist
    print(f"{'route':<10} {'ratio max':>10} {'median':>8} {'stop':>6} {'first true':>10} "
          f"{'stop/true':>9} {'time s':>7}")
    for name, r in rows.items():
        print(f"{name:<10} {r['ratio_max']:>10.4g} {r['ratio_median']:>8.4g} {r['stop']:>6} "
              f"{r['first_true_1e-8']:>10} {r['stop_over_first_true']:>9.2f} "
              f"{r['time_s']:>7.1f}")
    r0 = rows["plain"]
    for name in ("tracked", "restricted"):
        r1 = rows[name]
        print(f"ratios {name}/plain: max gap ratio {r1['ratio_max'] / r0['ratio_max']:.3g}, "
              f"time {r1['time_s'] / r0['time_s']:.2f}")
    D = make_data("l21", 0, args.quick)
    shared = mc.Problem(mc.MultiTaskData.shared(D["X"], D["Y"]), penalties=[mc.L21(D["alpha"])])
    problems = {LABELS[name]: school_problem(name) for name in ("lasso", "srmtl", "graph")}
    cost = _cost({"School L21(500)": prob, **problems, "shared L21": shared}, args.repeats)
    print(f"\nfista defaults, medians of {args.repeats} alternating pairs (one BLAS thread)")
    print("| problem | without s | dual only s (ratio) | default s (ratio) | iterations |")
    print("|---|---|---|---|---|")
    for name, c in cost.items():
        its = " / ".join(str(i) for i in c["iterations"])
        print(f"| {name} | {c['without_s']:.2f} | {c['dual only_s']:.2f} "
              f"({c['ratio dual only']:.2f}×) | {c['default_s']:.2f} "
              f"({c['ratio default']:.2f}×) | {its} |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump({"reference_certificate": str(ref.certificate), "F_ref": F_ref,
                   "rows": rows, "cost": cost, "load": os.getloadavg()}, fh, indent=2)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    hist = curves["restricted"]
    sub = (hist["objective"] - F_ref) / abs(F_ref)
    ax.semilogy(hist["iteration"], np.maximum(sub, 1e-16), color="k", lw=1,
                label="true (F − F_ref)/|F_ref|")
    for name, style in (("plain", "o"), ("tracked", "s"), ("restricted", "^")):
        h = curves[name]
        keep = ~np.isnan(h["gap"])
        ax.semilogy(h["iteration"][keep], h["gap"][keep] / np.abs(h["objective"][keep]),
                    style, ms=3, label=f"certified gap / |F|, {name}")
    ax.axhline(1e-8, color="grey", ls=":", lw=1)
    ax.set_xlabel("fista iteration")
    ax.set_ylabel("relative")
    ax.set_title("L21(500) on raw School: certified vs true")
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.figure), exist_ok=True)
    fig.savefig(args.figure, dpi=110)


if __name__ == "__main__":
    main()
