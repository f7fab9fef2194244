"""School benchmark: time and peak memory to a *certified* relative gap ≤ 1e-8.

Usage::

    python benchmarks/bench_school.py              # full run (several minutes)
    python benchmarks/bench_school.py --quick      # smoke run (shorter budgets)
    python benchmarks/bench_school.py --out r.json --problems lasso,trace
    python benchmarks/bench_school.py --profile graph   # cProfile of fista, no benchmark
    python benchmarks/bench_school.py --routes default,fista,clarabel   # backend=None

Problems. School as shipped (``mc.datasets.load_school()``: 139 tasks in file order, the
raw 28 columns including MALSAR's bias column, no intercept), with
``mc.SquaredLoss(scale="sum")``, i.e. MALSAR's ``½Σ_t‖X_t w_t − y_t‖²``:

* ``lasso``  ``L1(50)``                                  (``Least_Lasso``, ρ₁ = 50)
* ``l21``    ``L21(500)``                                (``Least_L21``, ρ₁ = 500)
* ``trace``  ``TraceNorm(1000)``                         (``Least_Trace``, ρ₁ = 1000)
* ``srmtl``  ``MeanRegularized(20) + L1(20)``            (``Least_SRMTL``, R = I − 11ᵀ/T,
  ρ₁ = 10, ρ₂ = 20)
* ``graph``  ``GraphLaplacian(chain(139), 20) + L1(20)`` (``Least_SRMTL`` with R_chain,
  ρ₁ = 10, ρ₂ = 20)
* ``mtrl``   the MTRL reduced problem on standardized School
  (``load_school(standardize=True)``, ``fit_intercept=True``, ``scale="mean"``,
  ``Ridge(0.1) + SquaredTraceNorm(1.0)``).
* ``cmtl``   clustered MTL with the cluster matrix minimised out,
  ``mc.malsar.problem("Least_CMTL", school, rho1=10, rho2=0.1, k=3)``
  (``LearnedClusters(alpha=2ρ₁η(1+η), k=3, eta=ρ₂/ρ₁)``).

Routes. ``default``: ``prob.solve(tol=1e-8)`` with ``backend=None``, the package's own
choice (the backend that produced the point, and any abandoned fista attempt, are in
its row; never counted as the "fastest route", it is compared with it).
``fista``: :func:`mtlcvx.first_order.fista` with ``tol = 1e-8`` (it stops on its
own certified relative gap). ``clarabel``, ``scs``, ``ecos``, ``osqp``:
``prob.solve(backend=b, tol=1e-8)`` for every installed backend whose cones cover the
problem (ECOS has no PSD cone, OSQP neither SOC nor PSD); the others are listed as n/a.
``learn`` (``cmtl`` only): ``mc.malsar.learn("Least_CMTL", ...)``, the alternation
with closed-form matrix steps and its certified polish, scored as the reduced problem.
``malsar-rule``, for context only (never the "fastest route"): plain FISTA in MALSAR's
form (backtracking from L = 1 doubling, no restart, start at zero) stopped by MALSAR's
default rule, relative objective change ≤ 1e-4 or 1000 iterations (not run for
``cmtl``: MALSAR's ``Least_CMTL`` iterates on ``(W, M)``, see ``bench_malsar.py``).

Every returned ``W`` is certified with :func:`mtlcvx.certificates.certify`
on the original data, outside the timed region (for fista with the dual value re-derived
here from the best dual point of its run, ``trace.info["dual_point"]``, passed as
``dual_lower``); a route "reaches" the target when that
certified relative gap is ≤ 1e-8. Beside the certified gap (an upper bound) the tables
give "rel subopt" ``(F(W) − F_ref)/max(1, |F_ref|)``, ``F_ref`` the lowest objective among
the routes that reached the target (so within 1e-8 relatively of ``F*``): the actual
distance in objective, which the certified gap can overstate far from the optimum.

Method. Every run is a fresh subprocess of this script (``--worker``). "time" is the wall
clock of the route call alone: ``fista(...)`` or ``prob.solve(...)`` (CVXPY build,
compilation, solver, and the certificate that ``solve`` attaches) — data loading and the
Problem construction are excluded, and an untimed tiny solve of the same kind with the
same route runs first so first-call imports are not counted. "peak RSS" is the child's
``VmHWM`` (high-water resident set of the whole process: interpreter, NumPy/CVXPY imports,
data, solver), or, for a child that died, ``ru_maxrss`` from ``os.wait4``. Conic children
run under ``RLIMIT_AS`` (6 GB) and a wall-clock limit (120 s full, 30 s quick) and are
reported as "out of memory" / "timeout"; FISTA gets a longer limit. A route that reached
the target in under 10 s is repeated (fresh subprocess; 3 runs full, 1 quick) and the
fastest time and the largest peak RSS are reported. The machine may be shared and noisy;
the load average is recorded in the JSON.

Targets (PASS/FAIL on the fastest route that reaches the certified gap): time ≤ 5 s per
problem, ≤ 3 s for ``trace`` and ``mtrl``; peak RSS ≤ 1 GB; ``default`` within 1.5× the
time of the fastest certified route.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _harness import (
    MEM_LIMIT_BYTES,
    TOL,
    fmt,
    limit_memory,
    machine,
    peak_rss_mb,
    repeated,
    run_child,
    write_json,
)

MALSAR_TOL = 1e-4
MALSAR_MAX_ITER = 1000
PROBLEMS = ("lasso", "l21", "trace", "srmtl", "graph", "mtrl", "cmtl")
LABELS = {
    "lasso": "Lasso L1(50)",
    "l21": "L21(500)",
    "trace": "TraceNorm(1000)",
    "srmtl": "MeanReg(20)+L1(20)",
    "graph": "Graph(chain,20)+L1(20)",
    "mtrl": "MTRL Ridge(.1)+SqTrace(1)",
    "cmtl": "CMTL(10, 0.1, k=3)",
}
#: MALSAR's School parameters of Least_CMTL (``mc.malsar`` lists them)
CMTL = {"rho1": 10.0, "rho2": 0.1, "k": 3.0}
CONIC = ("clarabel", "scs", "ecos", "osqp")
ROUTES = ("default", "fista", "learn", *CONIC, "malsar-rule")
#: (problem, route) pairs not run, and why
NOT_RUN = {**{(name, "learn"): "learn is for the learned-relation problem"
              for name in PROBLEMS if name != "cmtl"},
           ("cmtl", "malsar-rule"): "MALSAR's Least_CMTL iterates on (W, M): bench_malsar.py"}
#: not candidates for the fastest certified route (the default is compared with it)
NOT_ROUTES = ("default", "malsar-rule")
DEFAULT_RATIO_TARGET = 1.5
TIME_TARGET = {"trace": 3.0, "mtrl": 3.0}  # seconds; others DEFAULT_TIME_TARGET
DEFAULT_TIME_TARGET = 5.0
RSS_TARGET_MB = 1024.0
FULL = {"conic_timeout": 120.0, "fista_timeout": 300.0, "fista_max_iter": 100_000,
        "repeats": 3}
QUICK = {"conic_timeout": 30.0, "fista_timeout": 60.0, "fista_max_iter": 20_000,
         "repeats": 1}


# ====================================================================== worker side
def _problem(name: str, data=None):
    """The benchmark problem ``name`` (on ``data``, default School as specified)."""
    import mtlcvx as mc

    if name == "mtrl":
        data = mc.datasets.load_school(standardize=True) if data is None else data
        return mc.Problem(data, mc.SquaredLoss(scale="mean"),
                          [mc.Ridge(0.1), mc.SquaredTraceNorm(1.0)], fit_intercept=True)
    data = mc.datasets.load_school() if data is None else data
    if name == "cmtl":
        return mc.malsar.problem("Least_CMTL", data, **CMTL)
    T = data.n_tasks
    penalties = {
        "lasso": lambda: [mc.L1(50.0)],
        "l21": lambda: [mc.L21(500.0)],
        "trace": lambda: [mc.TraceNorm(1000.0)],
        "srmtl": lambda: [mc.MeanRegularized(20.0), mc.L1(20.0)],
        "graph": lambda: [mc.GraphLaplacian(mc.relations.chain(T), 20.0), mc.L1(20.0)],
    }[name]()
    return mc.Problem(data, mc.SquaredLoss(scale="sum"), penalties)


def _tiny(name: str):
    """A small problem of the same kind (for the untimed warm-up)."""
    import mtlcvx as mc

    data = mc.datasets.make_related_tasks(n_tasks=6, n_features=4, n_samples=12,
                                          random_state=0)
    return _problem(name, data)


def malsar_fista(prob, tol: float = MALSAR_TOL, max_iter: int = MALSAR_MAX_ITER):
    """Accelerated proximal gradient as MALSAR's ``Least_*`` solvers run it.

    Nesterov/FISTA momentum without restart, step ``1/γ`` with ``γ`` starting at 1 and
    doubled until the quadratic upper bound holds (never decreased), start at zero, and
    MALSAR's default stopping rule ``tFlag = 1``: ``|F_k − F_{k−1}| ≤ tol·F_{k−1}``, or
    ``max_iter`` iterations. Returns ``(W, iterations, stopped_by_rule)``.
    """
    import numpy as np

    W = np.zeros((prob.n_features, prob.n_tasks))
    W_old = W.copy()
    t, t_old = 1.0, 0.0
    gamma = 1.0
    values: list[float] = []
    by_rule = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        S = W + ((t_old - 1.0) / t) * (W - W_old)
        fS, gS = prob.smooth_value_and_gradient(S)
        flat = False
        while True:
            Wz = prob.prox(S - gS / gamma, 1.0 / gamma)
            fz, _ = prob.smooth_value_and_gradient(Wz)
            D = Wz - S
            r_sum = float(np.sum(D * D))
            if r_sum <= 1e-20:
                flat = True
                break
            if fz <= fS + float(np.sum(D * gS)) + 0.5 * gamma * r_sum:
                break
            gamma *= 2.0
        W_old, W = W, Wz
        values.append(fz + prob.nonsmooth_value(W))
        if flat:
            by_rule = True
            break
        if len(values) >= 2 and abs(values[-1] - values[-2]) <= tol * values[-2]:
            by_rule = True
            break
        t_old, t = t, 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
    return W, it, by_rule


def _call(route: str, prob, spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``route`` on ``prob``; returns W plus route-specific fields."""
    if route == "fista":
        from mtlcvx.first_order import fista

        tr = fista(prob, max_iter=spec["max_iter"], tol=TOL,
                   record_every=max(spec["max_iter"], 1))
        return {"W": tr.W, "iterations": tr.iterations, "dual_point": tr.info["dual_point"],
                "solver_status": "converged" if tr.converged else "max_iter reached"}
    if route == "learn":
        import mtlcvx as mc

        res = mc.malsar.learn("Least_CMTL", prob.data, **CMTL)
        return {"W": res.W, "iterations": len(res.history["iteration"]),
                "dual_point": res.info["dual_point"], "solver_status": res.status}
    if route == "malsar-rule":
        W, its, by_rule = malsar_fista(prob)
        return {"W": W, "iterations": its,
                "solver_status": "rel. change <= 1e-4" if by_rule else "max_iter reached"}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = prob.solve(backend=None if route == "default" else route, tol=TOL)
    out = {"W": sol.W, "iterations": sol.iterations,
           "solver_status": str(sol.info.get("solver_status", sol.status)),
           "status": sol.status, "compile_time": sol.compile_time,
           "solve_time": sol.solve_time, "backend": sol.backend,
           "dual_point": sol.info.get("dual_point")}  # fista's, as for the fista route
    tried = sol.info.get("abandoned")
    if route == "default":
        out["solver_status"] = f"backend={sol.backend}" + (
            "" if tried is None else f" after fista abandoned at {tried['iterations']} "
            f"iterations, {tried['seconds']:.3f} s")
        out["abandoned"] = tried
    return out


def _work(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["limit_memory"]:
        limit_memory()
    from mtlcvx.certificates import certify

    name, route = spec["problem"], spec["route"]
    # untimed warm-up of every backend the timed call may run (imports, first calls): for
    # backend=None those of the School problem's route (a fista attempt, then its backend),
    # which the tiny problem's own route need not be
    warm_up = (route,)
    if route == "default":
        from mtlcvx.backends.registry import default_route

        plan = default_route(_problem(name))
        warm_up = ("fista",) * (plan.attempt is not None) + (plan.backend,)
    for warm in warm_up:
        try:
            _call(warm, _tiny(name), {**spec, "max_iter": 50})
        except Exception:  # noqa: BLE001 - the timed call reports the real failure
            pass
    prob = _problem(name)
    start = time.perf_counter()
    try:
        out = _call(route, prob, spec)
    except MemoryError:
        return {"outcome": "out of memory", "time": time.perf_counter() - start,
                "peak_rss_mb": peak_rss_mb()}
    except Exception as err:  # noqa: BLE001 - reported, not raised
        msg = f"{type(err).__name__}: {err}"
        oom = "memory" in msg.lower()
        return {"outcome": "out of memory" if oom else "failed", "error": msg[:300],
                "time": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}
    elapsed = time.perf_counter() - start
    W = out.pop("W")
    # fista's certificate keeps the best dual point of its run; its dual value is
    # re-derived here from that point, never taken from the solver's own number
    dual_point = out.pop("dual_point", None)
    lower = None if dual_point is None else certify(prob, dual_point).dual_objective
    cert = certify(prob, W, dual_lower=lower)
    return {"outcome": "ok", "time": elapsed, "peak_rss_mb": peak_rss_mb(),
            "objective": cert.objective, "gap": cert.gap, "relative_gap": cert.relative_gap,
            "certificate_method": cert.method, **out}


def _plan() -> dict[str, Any]:
    """Installed conic backends that can solve each problem (and why not the others)."""
    from mtlcvx.backends.registry import BACKENDS

    plan: dict[str, Any] = {}
    for name in PROBLEMS:
        prob = _tiny(name)
        plan[name] = {}
        for b in CONIC:
            backend = BACKENDS.get(b)
            if backend is None:
                plan[name][b] = "not registered"
            elif not backend.is_installed():
                plan[name][b] = "not installed"
            else:
                why = backend.incompatibility(prob)
                plan[name][b] = None if why is None else "n/a: " + ", ".join(
                    sorted(prob.cones - backend.cones)) + " cone"
    return plan


def _worker(spec: dict[str, Any], result: str) -> int:
    out = _plan() if spec.get("plan") else _work(spec)
    Path(result).write_text(json.dumps(out, default=float))
    return 0


# ====================================================================== parent side
def _measure(problem: str, route: str, cfg: dict[str, Any], log) -> dict[str, Any]:
    conic = route in CONIC
    spec: dict[str, Any] = {"problem": problem, "route": route,
                            "max_iter": cfg["fista_max_iter"],
                            "limit_memory": conic or route == "default"}
    timeout = cfg["conic_timeout"] if conic else cfg["fista_timeout"]
    best = repeated(__file__, spec, timeout, cfg["repeats"])
    best.update(problem=problem, route=route)
    log(_row(best))
    return best


HEADER = (f"{'problem':<26} {'route':<12} {'outcome':<14} {'iters':>7} {'time[s]':>8} "
          f"{'cert. rel gap':>13} {'rel subopt':>10} {'RSS[MB]':>8}  ≤1e-8  solver status")


def _row(r: dict[str, Any]) -> str:
    status = r.get("solver_status") or r.get("error") or ""
    if r["outcome"] == "timeout":
        status = f"killed after {r['limit_s']:.0f} s"
    elif r["outcome"] == "out of memory" and "error" in r:
        status = r["error"][:60].replace("\n", " ")
    return (f"{LABELS[r['problem']]:<26} {r['route']:<12} {r['outcome']:<14} "
            f"{fmt(r.get('iterations'), 'd'):>7} {fmt(r.get('time'), '.2f'):>8} "
            f"{fmt(r.get('relative_gap'), '.2e'):>13} {fmt(r.get('rel_subopt'), '.1e'):>10} "
            f"{fmt(r.get('peak_rss_mb'), '.0f'):>8}"
            f"  {'yes' if r.get('reached') else 'no':<5}  {status}")


def _add_suboptimality(problems: list[str], results: list[dict[str, Any]]) -> None:
    """``rel_subopt = (F(W) − F_ref)/max(1, |F_ref|)`` with ``F_ref`` the lowest objective
    among the routes that reached the certified gap (itself within 1e-8 of ``F*``)."""
    for name in problems:
        rows = [r for r in results if r["problem"] == name]
        ref = [r["objective"] for r in rows if r["reached"]]
        if not ref:
            continue
        F_ref = min(ref)
        for r in rows:
            if r.get("objective") is not None:
                r["rel_subopt"] = (r["objective"] - F_ref) / max(1.0, abs(F_ref))


def _pairs(problem: str, route: str, cfg: dict[str, Any], n: int) -> dict[str, Any]:
    """``n`` alternating fresh runs of ``default`` and ``route`` on ``problem``: the median
    of the per-pair time ratios default / route, and every run's time."""
    import statistics

    times: dict[str, list[float]] = {"default": [], route: []}
    ran = []  # the backend that produced the default's point, run by run
    for _ in range(n):
        for r in times:
            spec = {"problem": problem, "route": r, "max_iter": cfg["fista_max_iter"],
                    "limit_memory": r != "fista"}
            run = run_child(__file__, spec, cfg["fista_timeout"])
            times[r].append(run["time"] if run.get("outcome") == "ok" else float("nan"))
            if r == "default":
                ran.append(run.get("backend"))
    ratios = [a / b for a, b in zip(times["default"], times[route], strict=True)]
    return {"route": route, "times": times, "ratios": ratios, "default_backends": ran,
            "median_ratio": statistics.median(ratios)}


def _summary(problems: list[str], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for name in problems:
        rows = [r for r in results if r["problem"] == name]
        reaching = [r for r in rows if r["reached"] and r["route"] not in NOT_ROUTES]
        best = min(reaching, key=lambda r: r["time"]) if reaching else None
        malsar = next((r for r in rows if r["route"] == "malsar-rule"), None)
        default = next((r for r in rows if r["route"] == "default"), None)
        target = TIME_TARGET.get(name, DEFAULT_TIME_TARGET)
        entry: dict[str, Any] = {
            "problem": name, "label": LABELS[name], "time_target_s": target,
            "rss_target_mb": RSS_TARGET_MB,
            "fastest_route": None if best is None else best["route"],
            "time": None if best is None else best["time"],
            "peak_rss_mb": None if best is None else best["peak_rss_mb"],
            "relative_gap": None if best is None else best["relative_gap"],
        }
        entry["time_pass"] = best is not None and best["time"] <= target
        entry["rss_pass"] = (best is not None and best["peak_rss_mb"] is not None
                             and best["peak_rss_mb"] <= RSS_TARGET_MB)
        if default is not None:
            ratio = (default["time"] / best["time"] if best is not None and default["reached"]
                     else None)
            entry["default"] = {"backend": default.get("backend"), "time": default.get("time"),
                                "reached": default["reached"], "ratio": ratio,
                                "abandoned": default.get("abandoned"),
                                "pass": ratio is not None and ratio <= DEFAULT_RATIO_TARGET}
        if malsar is not None:
            entry["malsar_rule"] = {k: malsar.get(k) for k in
                                    ("outcome", "time", "iterations", "relative_gap",
                                     "rel_subopt", "solver_status")}
        out.append(entry)
    return out


def _summary_table(summary: list[dict[str, Any]]) -> str:
    lines = [f"{'':<26} {'':<24} {'':>8} {'':>7} {'':<5} {'':>8} {'':<5} | MALSAR default rule",
             f"{'problem':<26} {'fastest certified route':<24} {'time[s]':>8} {'target':>7} "
             f"{'time':<5} {'RSS[MB]':>8} {'RSS':<5} | {'time[s]':>7} "
             f"{'iters':>6} {'cert. rel gap':>13} {'rel. subopt':>11}"]
    for s in summary:
        m = s.get("malsar_rule") or {}
        lines.append(
            f"{s['label']:<26} {s['fastest_route'] or 'none reached 1e-8':<24} "
            f"{fmt(s['time'], '.2f'):>8} {s['time_target_s']:>6.0f}s "
            f"{'PASS' if s['time_pass'] else 'FAIL':<5} {fmt(s['peak_rss_mb'], '.0f'):>8} "
            f"{'PASS' if s['rss_pass'] else 'FAIL':<5} | "
            f"{fmt(m.get('time'), '.3f'):>7} {fmt(m.get('iterations'), 'd'):>6} "
            f"{fmt(m.get('relative_gap'), '.2e'):>13} {fmt(m.get('rel_subopt'), '.2e'):>11}")
    if any("default" in s for s in summary):
        lines += ["", f"backend=None against the fastest certified route (target ≤ "
                      f"{DEFAULT_RATIO_TARGET:g}×):",
                  f"{'problem':<26} {'backend=None ran':<30} {'time[s]':>8} "
                  f"{'fastest certified route':<24} {'time[s]':>8} {'ratio':>6}"
                  f"  (paired: median ratio, pairs)"]
        for s in summary:
            d = s.get("default")
            if d is None:
                continue
            tried = d["abandoned"]
            ran = (f"{d['backend']}" if tried is None else
                   f"{d['backend']} (fista gave up: {tried['iterations']} it)")
            paired = d.get("paired")
            lines.append(f"{s['label']:<26} {ran:<30} {fmt(d['time'], '.3f'):>8} "
                         f"{s['fastest_route'] or '-':<24} {fmt(s['time'], '.3f'):>8} "
                         f"{fmt(d['ratio'], '.2f'):>6}  {'PASS' if d['pass'] else 'FAIL'}"
                         + ("" if paired is None else
                            f"  ({paired['median_ratio']:.2f}, {len(paired['ratios'])})"))
    return "\n".join(lines)


def _profile(problem: str, max_iter: int) -> None:
    """cProfile of ``fista`` on one problem (in this process); prints the top costs."""
    import cProfile
    import pstats

    from mtlcvx.first_order import fista

    prob = _problem(problem)
    fista(_tiny(problem), max_iter=20)  # warm-up
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.enable()
    tr = fista(prob, max_iter=max_iter, tol=TOL, record_every=max_iter)
    prof.disable()
    elapsed = time.perf_counter() - start
    print(f"fista on {LABELS[problem]}: {tr.iterations} iterations in {elapsed:.2f} s "
          f"(profiled) = {1e3 * elapsed / max(tr.iterations, 1):.3f} ms/iteration; "
          f"certified relative gap {tr.certificate.relative_gap}")
    stats = pstats.Stats(prof).strip_dirs()
    stats.sort_stats("tottime").print_stats(15)
    stats.sort_stats("cumulative").print_stats(20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="shorter budgets (30 s conic, 60 s FISTA), no repeats")
    parser.add_argument("--out", default="benchmarks/results/bench_school.json",
                        help="JSON output path (its directory is created)")
    parser.add_argument("--problems", default=",".join(PROBLEMS),
                        help=f"comma-separated subset of {','.join(PROBLEMS)}")
    parser.add_argument("--routes", default=",".join(ROUTES),
                        help=f"comma-separated subset of {','.join(ROUTES)}")
    parser.add_argument("--pairs", type=int, default=0,
                        help="with the default route: this many alternating fresh runs of "
                             "it and the fastest certified route; the median ratio decides")
    parser.add_argument("--profile", metavar="PROBLEM", choices=PROBLEMS,
                        help="only profile fista on PROBLEM with cProfile and exit")
    parser.add_argument("--profile-iter", type=int, default=20_000,
                        help="fista iteration cap for --profile")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        return _worker(json.loads(args.worker), args.result)
    if args.profile:
        _profile(args.profile, args.profile_iter)
        return 0
    problems = [p for p in args.problems.split(",") if p]
    routes = [r for r in args.routes.split(",") if r]
    unknown = sorted(set(problems) - set(PROBLEMS)) + sorted(set(routes) - set(ROUTES))
    if unknown:
        parser.error(f"unknown problem/route: {', '.join(unknown)}")
    cfg = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    print(f"bench_school ({'quick' if args.quick else 'full'}): target certified relative "
          f"gap ≤ {TOL:g}; conic limits {cfg['conic_timeout']:.0f} s / "
          f"{MEM_LIMIT_BYTES / 1024**3:.0f} GB address space; load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    plan = run_child(__file__, {"plan": True}, 120.0)

    def log(line: str) -> None:
        print(line, flush=True)

    print(HEADER, flush=True)
    results: list[dict[str, Any]] = []
    for name in problems:
        for route in routes:
            if (name, route) in NOT_RUN:
                r = {"problem": name, "route": route, "outcome": "n/a",
                     "solver_status": NOT_RUN[name, route], "reached": False}
                log(_row(r))
                results.append(r)
                continue
            if route in CONIC:
                why = plan.get(name, {}).get(route, "plan failed")
                if why is not None:
                    r = {"problem": name, "route": route, "outcome": why.split(":")[0],
                         "solver_status": why, "reached": False}
                    log(_row(r))
                    results.append(r)
                    continue
            results.append(_measure(name, route, cfg, log))
    _add_suboptimality(problems, results)
    summary = _summary(problems, results)
    for s in summary:
        d = s.get("default")
        if args.pairs > 0 and d is not None and s["fastest_route"] is not None:
            d["paired"] = _pairs(s["problem"], s["fastest_route"], cfg, args.pairs)
            d["pass"] = d["paired"]["median_ratio"] <= DEFAULT_RATIO_TARGET
    total = time.perf_counter() - t0
    print("\nAll routes (rel subopt = (F − F_ref)/max(1, |F_ref|), F_ref the best certified "
          "objective):")
    print(HEADER)
    for r in results:
        print(_row(r))
    print()
    print(_summary_table(summary))
    n_pass = sum(s["time_pass"] and s["rss_pass"] for s in summary)
    print(f"\n{n_pass}/{len(summary)} problems meet both targets; total runtime {total:.0f} s")
    meta = {
        "mode": "quick" if args.quick else "full", "tol": TOL, "config": cfg,
        "mem_limit_bytes": MEM_LIMIT_BYTES, "total_runtime_s": total, **machine(),
    }
    write_json(args.out, {"meta": meta, "results": results, "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
