"""MALSAR's formulations on School: time to a certified 1e-8, and where MALSAR's rule stops.

Usage::

    python benchmarks/bench_malsar.py              # full run
    python benchmarks/bench_malsar.py --quick      # smoke run (no repeats, shorter limits)
    python benchmarks/bench_malsar.py --only Least_L21,Least_TGL --routes auto,malsar-rule

Problems. Every configuration of ``mc.malsar.formulations()`` with the School parameters
it lists (``Formulation.school``), built by ``mc.malsar.problem`` on School as MALSAR ships
it (``mc.datasets.load_school()``: 139 tasks, the raw 28 columns with the bias column, no
intercept), so every objective is MALSAR's own.

Routes.

* ``auto``: ``prob.solve(tol=1e-8)`` with the package's default backend rule.
* ``fista``, ``clarabel``: ``prob.solve(backend=..., tol=1e-8)`` (Clarabel under a 6 GB
  address-space cap and a wall-clock limit).
* ``malsar-rule`` — the peer baseline: MALSAR's accelerated gradient with its default
  stopping rule (relative objective change ≤ 1e-4 or 1000 iterations), emulated by
  ``mc.malsar.default_rule`` (start at 0, momentum without restart, step 1/γ with γ doubled
  from 1 by backtracking; over the parts for ``W = P + Q``) — what a MALSAR user gets
  without setting ``opts``. For ``Least_CMTL`` it is ``malsar_cmtl`` of
  ``benchmarks/bench_relations.py`` (MALSAR's projected gradient on (W, M) with its
  M-gradient), scored at its own (W, M); ``Least_CASO``'s is not emulated.
* ``learn`` (CMTL and CASO only): ``mc.malsar.learn`` (the alternation and its certified
  polish), scored like the others on the reduced problem (``M`` minimised out), which
  ``auto``, ``fista`` and ``clarabel`` solve directly (Clarabel's matrix-fractional SDP
  runs out of memory on School).

Every returned ``W`` is certified with ``mc.certify`` outside the timed region; a route
"reaches" when that certified relative gap is ≤ 1e-8. "rel subopt" is
``(F(W) − F_ref)/max(1, |F_ref|)`` with ``F_ref`` the lowest objective among the routes that
reached (itself within 1e-8 of F*): the true distance above the optimum.

Method. Each run is a fresh subprocess of this script (``--worker``); "time" is the wall
clock of the route call alone (``prob.solve`` including CVXPY compilation and the attached
certificate, or the emulated MALSAR run), after an untimed tiny solve of the same kind;
"peak RSS" is the child's ``VmHWM`` (interpreter and imports included). Every route runs
under the package's BLAS thread limit (``MTLCVX_BLAS_THREADS``, default 1): on a loaded
machine a 28 × 28 ``eigh`` otherwise takes 40 ms instead of 0.1 ms. A reaching route
under 10 s is repeated (3 runs full, 1 quick) and the fastest time is kept. "ratio" is
time(fastest certified route) / time(MALSAR rule), measured in the same run. The machine is
shared (2 cores): compare ratios, not absolute times.

Targets: each configuration certified to 1e-8 in ≤ 20 s with peak RSS ≤ 1 GB; every
certified objective at or below what MALSAR's rule reaches.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _harness import TOL, fmt, limit_memory, machine, peak_rss_mb, repeated, write_json

ROUTES = ("auto", "fista", "clarabel", "learn", "malsar-rule")
TIME_TARGET = 20.0
RSS_TARGET_MB = 1024.0
FULL = {"timeout": 180.0, "repeats": 3}
QUICK = {"timeout": 60.0, "repeats": 1}


# ====================================================================== worker side
def _call(route: str, prob, name: str, params: dict[str, Any]) -> dict[str, Any]:
    import warnings

    import mtlcvx as mc

    if route == "learn" or (route == "malsar-rule" and name == "Least_CMTL"):
        return _call_learned(route, prob, name, params)
    if route == "malsar-rule":
        run = mc.malsar.default_rule(prob)
        return {"W": run.W, "parts": run.parts, "iterations": run.iterations,
                "solver_status": run.stopped}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = prob.solve(backend=None if route == "auto" else route, tol=TOL)
    return {"W": sol.W, "parts": sol.parts, "iterations": sol.iterations,
            "backend": sol.backend, "solver_status": sol.status,
            "dual_point": sol.info.get("dual_point")}


def _call_learned(route: str, prob, name: str, params: dict[str, Any]) -> dict[str, Any]:
    import mtlcvx as mc

    if route == "learn":
        res = mc.malsar.learn(name, prob.data, **params)
        return {"W": res.W, "iterations": len(res.history["iteration"]), "backend": "learn",
                "solver_status": res.status, "dual_point": res.info["dual_point"]}
    if route == "malsar-rule":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_relations import RHO1, RHO2, K, malsar_cmtl

        assert (RHO1, RHO2, K) == (params["rho1"], params["rho2"], params["k"])
        W, _, iters, rule, objective = malsar_cmtl(mc.Problem(prob.data, prob.loss), 1e-4,
                                                   1000, float("inf"))
        return {"W": W, "iterations": iters, "solver_status": rule,
                "objective_at_M": objective}
    raise ValueError(f"route {route} is not run for {name}")


def _work(spec: dict[str, Any]) -> dict[str, Any]:
    import mtlcvx as mc

    if spec["route"] == "clarabel":
        limit_memory()
    name, params, route = spec["name"], spec["params"], spec["route"]
    tiny = mc.datasets.make_related_tasks(n_tasks=6, n_features=4, n_samples=12,
                                          random_state=0)
    prob = mc.malsar.problem(name, mc.datasets.load_school(), **params)
    # untimed warm-up of every backend the timed call may run (imports, first calls): for
    # "auto" those of the School problem's route (a fista attempt, then its backend), which
    # the tiny problem's own route need not be
    warm_up = (route,)
    if route == "auto":
        from mtlcvx.backends.registry import default_route

        plan = default_route(prob)
        warm_up = ("fista",) * (plan.attempt is not None) + (plan.backend,)
    for warm in warm_up:
        try:
            _call(warm, mc.malsar.problem(name, tiny, **params), name, params)
        except Exception:  # noqa: BLE001 - the timed call reports the real failure
            pass
    from mtlcvx._threads import blas_limited

    start = time.perf_counter()
    try:
        out = blas_limited(_call)(route, prob, name, params)
    except Exception as err:  # noqa: BLE001 - reported, not raised
        msg = f"{type(err).__name__}: {err}"
        return {"outcome": "out of memory" if "memory" in msg.lower() else "failed",
                "error": msg[:300], "peak_rss_mb": peak_rss_mb()}
    elapsed = time.perf_counter() - start
    parts = out.pop("parts", None)
    # fista's certificate keeps the best dual value of its run: re-derive it here from the
    # point that gave it (never the solver's number) and certify W against it (a
    # decomposition is certified at its returned parts alone: the point has none)
    dual_point = out.pop("dual_point", None)
    lower = (None if dual_point is None or parts
             else mc.certify(prob, dual_point).dual_objective)
    cert = mc.certify(prob, out.pop("W"), parts=parts or None, dual_lower=lower)
    # CMTL's MALSAR run is scored at its own M (F(W, M) ≥ F(W) with M minimised out)
    objective = out.pop("objective_at_M", cert.objective)
    return {"outcome": "ok", "time": elapsed, "peak_rss_mb": peak_rss_mb(),
            "objective": objective, "relative_gap": cert.relative_gap, **out}


# ====================================================================== parent side
def _not_run(name: str, route: str) -> str | None:
    """Why ``route`` is not run for ``name`` (None when it is)."""
    if name not in ("Least_CMTL", "Least_CASO") and route == "learn":
        return "learn is for the formulations that learn M"
    if name == "Least_CASO" and route == "malsar-rule":
        return "MALSAR's (W, M) iteration for CASO is not emulated"
    return None


def _measure(name: str, params: dict[str, Any], route: str, cfg: dict[str, Any]):
    why = _not_run(name, route)
    if why is not None:
        return {"outcome": "n/a", "error": why, "reached": False}
    spec = {"name": name, "params": params, "route": route}
    return repeated(__file__, spec, cfg["timeout"], cfg["repeats"],
                    baseline=route == "malsar-rule")


HEADER = (f"{'formulation':<22} {'route':<11} {'outcome':<9} {'iters':>6} {'time[s]':>8} "
          f"{'cert. rel gap':>13} {'rel subopt':>10} {'RSS[MB]':>8}  status")


def _row(r: dict[str, Any]) -> str:
    status = r.get("error") or r.get("solver_status") or ""
    if r.get("backend") and r["route"] == "auto":
        status = f"{r['backend']}: {status}"
    return (f"{r['label']:<22} {r['route']:<11} {r.get('outcome', ''):<9} "
            f"{fmt(r.get('iterations'), 'd'):>6} {fmt(r.get('time'), '.3f'):>8} "
            f"{fmt(r.get('relative_gap'), '.2e'):>13} {fmt(r.get('rel_subopt'), '.2e'):>10} "
            f"{fmt(r.get('peak_rss_mb'), '.0f'):>8}  {str(status)[:60]}")


def _summarise(label: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    reaching = [r for r in rows if r["reached"] and r["route"] != "malsar-rule"]
    if reaching:
        F_ref = min(r["objective"] for r in reaching)
        for r in rows:
            if r.get("objective") is not None:
                r["rel_subopt"] = (r["objective"] - F_ref) / max(1.0, abs(F_ref))
    best = min(reaching, key=lambda r: r["time"]) if reaching else None
    auto = next((r for r in rows if r["route"] == "auto"), {})
    rule = next((r for r in rows if r["route"] == "malsar-rule"), {})
    fastest = best and (f"auto ({best['backend']})" if best["route"] == "auto" else best["route"])
    out = {"label": label, "fastest_route": fastest,
           "optimum": min((r["objective"] for r in reaching), default=None),
           "time": best and best["time"], "peak_rss_mb": best and best["peak_rss_mb"],
           "auto_backend": auto.get("backend"), "auto_time": auto.get("time"),
           "auto_reached": auto.get("reached"),
           "malsar_time": rule.get("time"), "malsar_iterations": rule.get("iterations"),
           "malsar_rel_subopt": rule.get("rel_subopt"),
           "malsar_relative_gap": rule.get("relative_gap")}
    out["ratio"] = (best["time"] / rule["time"]) if best and rule.get("time") else None
    out["pass"] = bool(best and best["time"] <= TIME_TARGET and best["peak_rss_mb"] is not None
                       and best["peak_rss_mb"] <= RSS_TARGET_MB
                       and (rule.get("rel_subopt") is None or rule["rel_subopt"] >= -TOL))
    return out


def _summary_table(summary: list[dict[str, Any]]) -> str:
    lines = [f"{'formulation':<22} {'fastest certified':<17} {'time[s]':>8} {'RSS[MB]':>8} "
             f"{'auto (backend)':<20} | {'MALSAR rule [s]':>15} {'iters':>6} "
             f"{'above F*':>9} {'ratio':>7}  targets"]
    for s in summary:
        auto = (f"{fmt(s['auto_time'], '.2f')} ({s['auto_backend']})"
                if s["auto_backend"] else "-")
        lines.append(
            f"{s['label']:<22} {s['fastest_route'] or 'none':<17} {fmt(s['time'], '.3f'):>8} "
            f"{fmt(s['peak_rss_mb'], '.0f'):>8} {auto:<20} | "
            f"{fmt(s['malsar_time'], '.3f'):>15} {fmt(s['malsar_iterations'], 'd'):>6} "
            f"{fmt(s['malsar_rel_subopt'], '.2e'):>9} {fmt(s['ratio'], '.2f'):>7}  "
            f"{'PASS' if s['pass'] else 'FAIL'}")
    return "\n".join(lines)


def _markdown(summary: list[dict[str, Any]]) -> str:
    """The summary as the Markdown table of docs/malsar.md."""
    lines = ["| formulation | certified optimum F* | fastest certified route: time, peak RSS "
             "| `backend=None`: time | MALSAR default rule: time, iterations "
             "| its objective above F* | time ratio certified / MALSAR rule |",
             "|---|---|---|---|---|---|---|"]
    for s in summary:
        above = s["malsar_rel_subopt"]
        lines.append(
            f"| {s['label']} | {fmt(s['optimum'], ',.2f')} | {s['fastest_route'] or 'none'}: "
            f"{fmt(s['time'], '.2f')} s, {fmt(s['peak_rss_mb'], '.0f')} MB | "
            f"{s['auto_backend'] or '-'}: {fmt(s['auto_time'], '.2f')} s | "
            f"{fmt(s['malsar_time'], '.2f')} s, {fmt(s['malsar_iterations'], 'd')} | "
            f"{'-' if above is None else format(100 * above, '.2f') + ' %'} | "
            f"{fmt(s['ratio'], '.1f')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/bench_malsar.json")
    parser.add_argument("--only", default="", help="comma-separated formulation names")
    parser.add_argument("--routes", default=",".join(ROUTES))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        Path(args.result).write_text(json.dumps(_work(json.loads(args.worker)), default=float))
        return 0
    import mtlcvx as mc

    routes = [r for r in args.routes.split(",") if r]
    if set(routes) - set(ROUTES):
        parser.error(f"unknown route(s): {', '.join(sorted(set(routes) - set(ROUTES)))}")
    only = {n for n in args.only.split(",") if n}
    configs = [(f.name, p) for f in mc.malsar.formulations() for p in f.school
               if not only or f.name in only]
    cfg = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    print(f"bench_malsar ({'quick' if args.quick else 'full'}): School, certified relative gap "
          f"≤ {TOL:g}; load average {os.getloadavg()[0]:.2f}", flush=True)
    print(HEADER, flush=True)
    results, summary = [], []
    for name, params in configs:
        label = mc.malsar.label(name, params)
        rows = []
        for route in routes:
            r = _measure(name, params, route, cfg)
            r.update(label=label, name=name, route=route)
            rows.append(r)
            print(_row(r), flush=True)
        summary.append(_summarise(label, rows))
        results += rows
    print("\nAll routes, with rel subopt (F − F_ref)/max(1, |F_ref|):")
    print(HEADER)
    for r in results:
        print(_row(r))
    print()
    print(_summary_table(summary))
    print()
    print(_markdown(summary))
    total = time.perf_counter() - t0
    print(f"\n{sum(s['pass'] for s in summary)}/{len(summary)} configurations meet the targets "
          f"(≤ {TIME_TARGET:.0f} s, ≤ {RSS_TARGET_MB:.0f} MB, at or below MALSAR's rule); "
          f"total {total:.0f} s")
    meta = {"mode": "quick" if args.quick else "full", "tol": TOL, "config": cfg,
            "total_runtime_s": total, **machine()}
    write_json(args.out, {"meta": meta, "results": results, "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
