"""Learned task relations on School: time and peak memory to a certified relative gap ≤ 1e-8.

Usage::

    python benchmarks/bench_relations.py            # full run (a few minutes)
    python benchmarks/bench_relations.py --quick    # smoke run (shorter limits, no repeats)
    python benchmarks/bench_relations.py --out r.json --problems cmtl --routes joint,naive

Problems.

* ``mtrl``: MTRL on standardized School (``load_school(standardize=True)``,
  ``fit_intercept=True``, ``SquaredLoss("mean")``), ``Ridge(0.1)`` plus the learned task
  covariance with α = 1: ``mc.learn_relation(prob, "task_covariance", 1.0)``.
* ``cmtl``: MALSAR's ``Least_CMTL(ρ₁ = 10, ρ₂ = 0.1, k = 3)`` on School as MALSAR ships it
  (raw 28 columns with the bias column, no intercept, ``SquaredLoss("sum")``):
  ``mc.learn_relation(prob, "clusters", alpha=2ρ₁η(1 + η), k=3, eta=η)``, ``η = ρ₂/ρ₁``.

Routes.

* ``alternate``: ``learn_relation`` as shipped (warm-started CG W-steps, closed-form
  matrix steps, ε-continuation for MTRL, then the certified FISTA polish).
* ``joint``: ``method="joint"`` (the reduced problem by FISTA; for clusters with the loss in
  the prox).
* ``naive``: the textbook alternation written here in NumPy/SciPy: each W-step assembles the
  dT×dT normal equations and factors them with ``scipy.linalg.cho_factor`` (no warm start),
  the matrix step is the closed form (MTRL's ``(WᵀW + εI)^{1/2}/tr`` with ε = 1e-8 fixed,
  as in MTRL's code; the clustered step by bisection). It runs until its W is certified
  (``mc.certify`` on the reduced problem, *not* timed), 300 iterations, or the time limit.
* ``scs``: ``method="joint", backend="scs"`` (the SDP: squared nuclear norm for MTRL, the
  matrix-fractional form for clusters) at ``tol = 1e-8``.
* ``malsar-rule`` (cmtl only): MALSAR's ``Least_CMTL`` algorithm emulated here from its
  description: accelerated projected gradient on (W, M) jointly from ``W = 0``,
  ``M = (k/T) I``, its M-gradient ``−c WᵀW (ηI + M)⁻²`` (the exact one is
  ``−c (ηI + M)⁻¹ WᵀW (ηI + M)⁻¹``), the eigenvalue projection onto
  ``{0 ⪯ M ⪯ I, tr M = k}``, step ``1/γ`` doubled until the quadratic bound holds, and its
  default stopping rule (relative objective change ≤ 1e-4, at most 1000 iterations).
  ``malsar-tight`` is the same with tolerance 1e-10 and 10 000 iterations. Their objective
  is MALSAR's at its own (W, M); the certified gap is that of W (with M minimised out).

Method. Every run is a fresh subprocess of this script (``--worker``) under ``RLIMIT_AS``
(6 GB) and a wall-clock limit (120 s full, 40 s quick), every route with the BLAS threads
mtlcvx uses (``MTLCVX_BLAS_THREADS``, default 1); "time" is the wall clock of the
route alone (data loading, Problem construction and the certification of routes that do
not certify themselves are excluded; an untimed run of the same route on 5 schools comes
first so first-call imports are not counted). "peak RSS" is the child's ``VmHWM``. Routes
that reach the target in under 10 s are repeated (3 runs full, 1 quick): fastest time,
largest peak RSS. "rel subopt" is ``(F − F_ref)/|F_ref|`` with ``F_ref`` the lowest
objective of a route that reached the target. Results go to
``benchmarks/results/bench_relations.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
from _harness import TOL, fmt, limit_memory, peak_rss_mb, repeated, write_json

RHO1, RHO2, K = 10.0, 0.1, 3
PROBLEMS = ("mtrl", "cmtl")
ROUTES = ("alternate", "joint", "naive", "scs", "malsar-rule", "malsar-tight")
LABELS = {"mtrl": "MTRL Ridge(.1)+TaskCov(1)", "cmtl": "CMTL rho=(10,.1), k=3"}


# ====================================================================== problems
def _setup(name: str, n_tasks: int | None = None):
    """(prob, kind, kwargs) of a benchmark problem, on the first ``n_tasks`` schools."""
    import mtlcvx as mc

    if name == "mtrl":
        data = mc.datasets.load_school(standardize=True)
        loss, fit, kw = mc.SquaredLoss("mean"), True, {"kind": "task_covariance", "alpha": 1.0}
        penalties = [mc.Ridge(0.1)]
    else:
        data = mc.datasets.load_school()
        eta = RHO2 / RHO1
        loss, fit, penalties = mc.SquaredLoss("sum"), False, []
        kw = {"kind": "clusters", "alpha": 2 * RHO1 * eta * (1 + eta), "k": K, "eta": eta}
    if n_tasks is not None:
        data = mc.MultiTaskData(data.X[:n_tasks], data.y[:n_tasks])
    return mc.Problem(data, loss, penalties, fit_intercept=fit), kw


def _reduced(prob, kw):
    """The reduced problem (matrix minimised out) that every W is certified on."""
    import mtlcvx as mc

    term = (mc.SquaredTraceNorm(kw["alpha"]) if kw["kind"] == "task_covariance"
            else mc.LearnedClusters(kw["alpha"], kw["k"], kw["eta"]))
    return mc.Problem(prob.data, prob.loss, (*prob.penalties, term),
                      fit_intercept=prob.fit_intercept)


# ====================================================================== baselines
def _cluster_eigenvalues(sigma: np.ndarray, k: float, eta: float) -> np.ndarray:
    """Bisection on κ for Σ clip(κσ − η, 0, 1) = k (the textbook clustered M-step)."""
    if np.sum(sigma > 0) <= k:
        return (sigma > 0).astype(float)
    lo, hi = 0.0, (1.0 + eta) / sigma[sigma > 0].min()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.clip(mid * sigma - eta, 0, 1).sum() < k else (lo, mid)
    return np.clip(hi * sigma - eta, 0.0, 1.0)


def naive_alternation(prob, kw, reduced, max_iter: int, deadline: float):
    """Textbook alternation: dense Cholesky W-steps from scratch, closed-form matrix steps.

    Returns (W, iterations, reached, certify_seconds)."""
    from mtlcvx import certify

    comp = prob.data.compressed(prob.fit_intercept)
    c = prob.loss_weights()
    d, T = prob.n_features, prob.n_tasks
    Kt0, _ = prob.quadratic_coupling()
    alpha = kw["alpha"]
    rhs = np.concatenate([ct * (At.T @ zt) for ct, At, zt in zip(c, comp.A, comp.z, strict=True)])
    covariance = kw["kind"] == "task_covariance"
    C = np.eye(T) * T if covariance else np.eye(T) / (kw["eta"] + kw["k"] / T)
    W = np.zeros((d, T))
    cert_time, reached, it = 0.0, False, 0
    while it < max_iter and time.perf_counter() < deadline:
        it += 1
        S = np.kron(Kt0 + alpha * C, np.eye(d))  # the assembled system, task-major blocks
        for t, (ct, At) in enumerate(zip(c, comp.A, strict=True)):
            S[t * d:(t + 1) * d, t * d:(t + 1) * d] += ct * (At.T @ At)
        W = scipy.linalg.cho_solve(scipy.linalg.cho_factor(S), rhs).reshape(T, d).T
        lam, E = np.linalg.eigh(W.T @ W)
        sigma = np.sqrt(np.maximum(lam, 0.0))
        if covariance:
            root = np.sqrt(np.maximum(lam, 0.0) + 1e-8)
            C = (E * (root.sum() / root)) @ E.T
        else:
            C = (E / (kw["eta"] + _cluster_eigenvalues(sigma, kw["k"], kw["eta"]))) @ E.T
        t0 = time.perf_counter()
        cert = certify(reduced, W)
        cert_time += time.perf_counter() - t0
        if cert.relative_gap is not None and cert.relative_gap <= TOL:
            reached = True
            break
    return W, it, reached, cert_time


def _capped_simplex(v: np.ndarray, k: float) -> np.ndarray:
    """Euclidean projection of ``v`` onto {0 ≤ m ≤ 1, Σ m = k} (bisection on the shift)."""
    lo, hi = v.min() - 1.0, v.max()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.clip(v - mid, 0, 1).sum() > k else (lo, mid)
    return np.clip(v - 0.5 * (lo + hi), 0.0, 1.0)


def malsar_cmtl(prob, tol: float, max_iter: int, deadline: float):
    """MALSAR's Least_CMTL algorithm (see the module docstring). Returns (W, M, iters, rule)."""
    eta = RHO2 / RHO1
    c = RHO1 * eta * (1 + eta)
    T, d = prob.n_tasks, prob.n_features
    loss = prob.smooth_oracle()  # ½Σ‖X_t w_t − y_t‖², value and gradient
    eye = np.eye(T)

    def objective(W, M):
        return loss(W, False)[0] + c * float(np.trace(W @ np.linalg.pinv(eta * eye + M) @ W.T))

    def project(Msp):
        """MALSAR's projection: real parts of a general eigendecomposition (the step makes
        M non-symmetric), eigenvalues onto the capped simplex; also returns the "inverse"
        P diag(1/(η + m)) Pᵀ its line search evaluates the objective with."""
        vals, vecs = np.linalg.eig(Msp)
        P = np.real(vecs)
        m = _capped_simplex(np.real(vals), K)
        return (P * m) @ P.T, (P / (eta + m)) @ P.T

    W = W_old = np.zeros((d, T))
    M = M_old = eye * K / T
    t, t_old, gamma = 1.0, 0.0, 1.0
    values: list[float] = []
    rule = "max_iter"
    for _ in range(max_iter):
        a = (t_old - 1.0) / t
        Ws, Ms = W + a * (W - W_old), M + a * (M - M_old)
        inv = np.linalg.pinv(eta * eye + Ms)
        fs, gs = loss(Ws, True)
        fs += c * float(np.trace(Ws @ inv @ Ws.T))
        gW = gs + 2.0 * c * Ws @ inv
        gM = -c * (Ws.T @ Ws @ inv @ inv)
        while True:
            Wz = Ws - gW / gamma
            Mz, inv_z = project(Ms - gM / gamma)
            Fz = loss(Wz, False)[0] + c * float(np.trace(Wz @ inv_z @ Wz.T))
            dW, dM = Wz - Ws, Mz - Ms
            r_sum = 0.5 * (float(np.sum(dW * dW)) + float(np.sum(dM * dM)))
            if r_sum <= 1e-20 or Fz <= fs + float(np.sum(dW * gW) + np.sum(dM * gM)) \
                    + gamma * r_sum:
                break
            gamma *= 2.0
        W_old, W, M_old, M = W, Wz, M, Mz
        values.append(Fz)
        if r_sum <= 1e-20:
            rule = "small step"
            break
        if len(values) >= 3 and abs(values[-1] - values[-2]) <= tol * values[-2]:
            rule = f"rel. change <= {tol:g}"
            break
        if time.perf_counter() > deadline:
            rule = "time limit"
            break
        t_old, t = t, 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
    return W, M, len(values), rule, objective(W, M)


# ====================================================================== child side
def _route(route: str, prob, kw, limit: float) -> dict[str, Any]:
    """Run one route; returns W and what the route reports (certificate if it has one)."""
    import warnings

    import mtlcvx as mc

    deadline = time.perf_counter() + limit
    reduced = _reduced(prob, kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if route in ("alternate", "joint", "scs"):
            extra = {"method": "joint", "backend": "scs"} if route == "scs" else (
                {"method": route})
            res = mc.learn_relation(prob, **kw, tol=TOL, **extra)
            its = sum(v for key, v in res.info.items() if key.endswith("iterations")
                      and key != "w_step_iterations")
            return {"W": res.W, "objective": res.objective, "certificate": res.certificate,
                    "iterations": its, "solver_status": res.status}
        if route == "naive":
            W, its, reached, cert_time = naive_alternation(prob, kw, reduced, 300, deadline)
            return {"W": W, "iterations": its, "untimed": cert_time,
                    "solver_status": "certified" if reached else "stopped uncertified"}
        tol, max_iter = (1e-4, 1000) if route == "malsar-rule" else (1e-10, 10_000)
        W, M, its, rule, F = malsar_cmtl(prob, tol, max_iter, deadline)
        return {"W": W, "objective": F, "iterations": its, "solver_status": rule}


def _work(spec: dict[str, Any]) -> dict[str, Any]:
    limit_memory()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(os.environ.get("MTLCVX_BLAS_THREADS", "1")),
                           user_api="blas"):
        return _work_limited(spec)


def _work_limited(spec: dict[str, Any]) -> dict[str, Any]:
    from mtlcvx import certify

    name, route = spec["problem"], spec["route"]
    try:
        _route(route, *_setup(name, 5), limit=10.0)  # warm-up, untimed
    except Exception:  # noqa: BLE001 - the timed call reports the real failure
        pass
    prob, kw = _setup(name)
    start = time.perf_counter()
    try:
        out = _route(route, prob, kw, spec["limit"])
    except MemoryError:
        return {"outcome": "out of memory", "peak_rss_mb": peak_rss_mb()}
    except Exception as err:  # noqa: BLE001 - reported, not raised
        return {"outcome": "failed", "error": f"{type(err).__name__}: {err}"[:300],
                "peak_rss_mb": peak_rss_mb()}
    elapsed = time.perf_counter() - start - out.pop("untimed", 0.0)
    cert = out.pop("certificate", None) or certify(_reduced(prob, kw), out["W"])
    out.pop("W")
    objective = out.pop("objective", cert.objective)
    return {"outcome": "ok", "time": elapsed, "peak_rss_mb": peak_rss_mb(),
            "objective": objective, "gap": cert.gap, "relative_gap": cert.relative_gap,
            **out}


# ====================================================================== parent side
def _measure(problem: str, route: str, cfg: dict[str, Any], log) -> dict[str, Any]:
    spec = {"problem": problem, "route": route, "limit": cfg["limit"]}
    best = repeated(__file__, spec, cfg["limit"] + 60.0, cfg["repeats"])
    best.update(problem=problem, route=route)
    log(_row(best))
    return best


HEADER = (f"{'problem':<27} {'route':<13} {'outcome':<10} {'iters':>6} {'time[s]':>8} "
          f"{'cert. rel gap':>13} {'rel subopt':>10} {'RSS[MB]':>8} ≤1e-8  note")


def _row(r: dict[str, Any]) -> str:
    note = r.get("solver_status") or r.get("error") or r.get("limit_s", "")
    return (f"{LABELS[r['problem']]:<27} {r['route']:<13} {r['outcome']:<10} "
            f"{fmt(r.get('iterations'), 'd'):>6} {fmt(r.get('time'), '.2f'):>8} "
            f"{fmt(r.get('relative_gap'), '.2e'):>13} {fmt(r.get('subopt'), '.1e'):>10} "
            f"{fmt(r.get('peak_rss_mb'), '.0f'):>8} {'yes' if r.get('reached') else 'no':>5}  "
            f"{note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--routes", default=",".join(ROUTES))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        Path(args.result).write_text(json.dumps(_work(json.loads(args.worker)), default=float))
        return 0
    cfg = {"limit": 40.0 if args.quick else 120.0, "repeats": 1 if args.quick else 3}
    routes = [r for r in args.routes.split(",") if not (args.quick and r == "malsar-tight")]
    started = time.perf_counter()
    print(HEADER)
    print("-" * len(HEADER))
    results = []
    for problem in args.problems.split(","):
        for route in routes:
            if route.startswith("malsar") and problem != "cmtl":
                continue
            results.append(_measure(problem, route, cfg, lambda line: print(line, flush=True)))
    print("\nWith rel subopt (F − F_ref)/|F_ref|, F_ref the best certified objective:")
    summary = []
    for problem in args.problems.split(","):
        rows = [r for r in results if r["problem"] == problem]
        ref = min((r["objective"] for r in rows if r["reached"]), default=None)
        for r in rows:
            if ref is not None and r.get("objective") is not None:
                r["subopt"] = (r["objective"] - ref) / abs(ref)
            print(_row(r))
        default = next((r for r in rows if r["route"] == "alternate"), None)
        naive = next((r for r in rows if r["route"] == "naive"), None)
        if default and naive and default.get("time") and naive.get("time"):
            ratio = naive["time"] / default["time"]
            summary.append({"problem": problem, "default_time": default["time"],
                            "default_reached": default["reached"],
                            "default_peak_rss_mb": default["peak_rss_mb"],
                            "naive_time": naive["time"], "naive_reached": naive["reached"],
                            "naive_over_default": ratio})
    print()
    for s in summary:
        print(f"{LABELS[s['problem']]}: default route {s['default_time']:.2f} s "
              f"(certified: {s['default_reached']}, peak RSS {s['default_peak_rss_mb']:.0f} MB),"
              f" naive alternation {s['naive_time']:.2f} s (certified: {s['naive_reached']}): "
              f"naive/default = {s['naive_over_default']:.1f}x")
    total = time.perf_counter() - started
    load = os.getloadavg()[0]
    print(f"total runtime {total:.0f} s; load average {load:.2f}; {os.cpu_count()} CPUs")
    write_json(args.out or Path(__file__).parent / "results" / "bench_relations.json",
               {"results": results, "summary": summary, "quick": args.quick,
                "total_s": total, "load": load})
    return 0


if __name__ == "__main__":
    sys.exit(main())
