"""Core benchmark: build/compile and solve time per backend, and the core performance targets.

Usage::

    python benchmarks/bench_core.py             # full run (a few minutes)
    python benchmarks/bench_core.py --quick     # smoke run (reduced sizes, well under a minute)
    python benchmarks/bench_core.py --out r.json --budget 60 --blas-threads 1

Part 1, for each size (T, d, n_t): the quadratic problem ``½Σ_t‖X_t w_t − y_t‖²
+ (α/2) tr(W K Wᵀ)`` with a dense positive definite ``K = Z Zᵀ + 0.1·I`` (``Z`` (T, 5)
random task descriptors, α = 1, ``SquaredLoss(scale="sum")``) on every backend. Times
are relative to "direct" and objectives are compared with direct's (both recomputed by
the package on the original data).

Part 2, the targets, each printed PASS/FAIL with the measured number:

(a) L21 + GraphLaplacian of a 10-nearest-neighbour task graph at (1000, 50, 50): building
    ``prob.cvxpy`` and compiling it for Clarabel (``get_problem_data``) take ≤ 2 s;
(b) "direct" on School with a dense K is no slower than SciPy's dense Cholesky
    (``cho_factor`` + ``cho_solve``, factor+solve only) of the same system, assembled
    independently here (``blkdiag(c_t X_tᵀX_t) + kron(αK, I_d)``);
(c) "direct" at (1000, 50, 50) with a dense K reaches relative residual ≤ 1e-12 (computed
    here, matrix-free, on the original data) in ≤ 10 s;
(d) Clarabel build+solve on School with a chain Laplacian takes ≤ 1 s (the dense-K time is
    reported beside it).

Method. Every measurement runs in a fresh subprocess of this script (``--worker``) under a
time budget: a solve that would take longer is killed and reported as a timeout instead of
stalling the run. Each worker first solves (or compiles) a tiny problem of the same kind
with the same backend, untimed, so CVXPY's and the solvers' first-call imports are not
counted. "total" is wall-clock time from constructing the penalties and the
:class:`~mtlcvx.Problem` (data generation excluded, compression included) to ``solve``
returning; "build+compile" adds the Problem construction to ``sol.compile_time``,
"solve" is ``sol.solve_time`` and "post" is the rest (the objective on the original data
and the optimality certificate computed inside ``solve``). A run is repeated (fresh
Problem and data object; up to ``--repeats`` times while the repeats fit in half the
budget) and the fastest repeat is reported. "direct" is never skipped; conic backends
are skipped at a size when they exceeded the budget at a smaller size, or when even a
linear extrapolation of their time at the previous size by the estimated number of
non-zeros of the compiled problem exceeds the budget; the reason is printed. The machine
may be shared and noisy: compare ratios from one run, not absolute times across runs; the
load average and BLAS thread settings are recorded in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from _harness import run_child

ALPHA = 1.0  # strength of every penalty
N_DESCRIPTORS = 5  # columns of the task descriptors Z
KNN = 10  # neighbours in the task graph of target (a)
SEED = 0
TOL = 1e-8
CONIC = ("clarabel", "scs", "ecos", "osqp")
BACKENDS = ("direct", *CONIC)
TARGET_TIMEOUT = 300.0  # seconds; direct runs and targets are never skipped

FULL_SIZES = [
    {"name": "10x20x50", "T": 10, "d": 20, "n": 50},
    {"name": "50x50x100", "T": 50, "d": 50, "n": 100},
    {"name": "school", "T": 139, "d": 28, "n": None},
    {"name": "1000x50x50", "T": 1000, "d": 50, "n": 50},
]
QUICK_SIZES = [FULL_SIZES[0]]
SCHOOL = FULL_SIZES[2]
BIG = FULL_SIZES[3]
QUICK_A = {"name": "100x20x20", "T": 100, "d": 20, "n": 20}
QUICK_B = {"name": "30x28x40", "T": 30, "d": 28, "n": 40}
QUICK_C = {"name": "400x20x20", "T": 400, "d": 20, "n": 20}  # d·T = 8000: CG path

THRESHOLD_A = 2.0
THRESHOLD_B = 1.0
THRESHOLD_C_TIME = 10.0
THRESHOLD_C_RES = 1e-12
THRESHOLD_D = 1.0


# ====================================================================== worker side
def _data(size: dict[str, Any]):
    import mtlcvx as mc

    if size["name"] == "school":
        return mc.datasets.load_school()
    return mc.datasets.make_related_tasks(n_tasks=size["T"], n_features=size["d"],
                                          n_samples=size["n"], random_state=SEED)


def _penalty_factory(kind: str, T: int):
    """``(make_penalties, task_side_matrix)``; the matrices are built here, untimed.

    ``task_side_matrix`` is ``α·K`` (or ``α·L``) for quadratic problems, else None.
    """
    import mtlcvx as mc
    from mtlcvx import relations

    Z = np.random.default_rng(SEED + 1).standard_normal((T, N_DESCRIPTORS))
    if kind == "dense_K":
        K = relations.outer(Z) + 0.1 * np.eye(T)
        return (lambda: [mc.TaskRelation(K, alpha=ALPHA)]), ALPHA * K
    if kind == "chain":
        A = relations.chain(T)
        L = np.diag(A.sum(axis=1)) - A
        return (lambda: [mc.GraphLaplacian(A, alpha=ALPHA)]), ALPHA * L
    if kind == "l21_knn":
        A = relations.knn_graph(Z, KNN)
        return (lambda: [mc.L21(alpha=ALPHA), mc.GraphLaplacian(A, alpha=ALPHA)]), None
    raise ValueError(f"unknown problem kind {kind!r}")


def _loss():
    import mtlcvx as mc

    return mc.SquaredLoss(scale="sum")


def _fresh(data):
    """A new data object over the same arrays (so the compression cache starts empty)."""
    import mtlcvx as mc

    return mc.MultiTaskData(data.X, data.y)


def _tiny(kind: str):
    import mtlcvx as mc

    data = mc.datasets.make_related_tasks(n_tasks=KNN + 2, n_features=3, n_samples=5,
                                          random_state=SEED)
    make, _ = _penalty_factory(kind, data.n_tasks)
    return mc.Problem(data, _loss(), penalties=make())


def _relative_residual(data, c: np.ndarray, Kt: np.ndarray, W: np.ndarray) -> float:
    """‖[c_t X_tᵀ(X_t w_t − y_t)]_t + W Kt‖_F / ‖[c_t X_tᵀ y_t]_t‖_F on the original data."""
    grad = np.stack([ct * (Xt.T @ (Xt @ W[:, t] - yt))
                     for t, (ct, Xt, yt) in enumerate(zip(c, data.X, data.y, strict=True))],
                    axis=1)
    grad += W @ Kt
    rhs = np.stack([ct * (Xt.T @ yt) for ct, Xt, yt in zip(c, data.X, data.y, strict=True)],
                   axis=1)
    return float(np.linalg.norm(grad) / np.linalg.norm(rhs))


def _work_solve(spec: dict[str, Any]) -> dict[str, Any]:
    """Solve one problem with one backend (best of up to ``repeats``)."""
    import mtlcvx as mc

    backend = spec["backend"]
    _tiny(spec["problem"]).solve(backend=backend, tol=spec["tol"])  # warm-up, untimed
    data0 = _data(spec["size"])
    make, Kt = _penalty_factory(spec["problem"], data0.n_tasks)
    runs = []
    started = time.perf_counter()
    sol = None
    for _ in range(spec["repeats"]):
        data = _fresh(data0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", mc.ConvergenceWarning)
            t0 = time.perf_counter()
            prob = mc.Problem(data, _loss(), penalties=make())
            t1 = time.perf_counter()
            sol = prob.solve(backend=backend, tol=spec["tol"])
            t2 = time.perf_counter()
        runs.append({
            "total": t2 - t0,
            "build_compile": (t1 - t0) + sol.compile_time,
            "solve": sol.solve_time,
            "problem_init": t1 - t0,
            "post": (t2 - t0) - ((t1 - t0) + sol.compile_time) - sol.solve_time,
            "objective": float(sol.objective),
            "cert_rel_gap": getattr(sol.certificate, "relative_gap", None),
            "status": sol.status,
            "iterations": sol.iterations,
            "method": sol.info.get("method", sol.info.get("solver_status")),
            "warnings": sorted({str(w.message).split(".")[0] for w in caught
                                if issubclass(w.category, mc.ConvergenceWarning)}),
        })
        if time.perf_counter() - started + runs[-1]["total"] > spec["repeat_until"]:
            break  # another repeat would overrun the share of the budget
    best = min(runs, key=lambda r: r["total"])
    best["repeats"] = len(runs)
    best["all_totals"] = [r["total"] for r in runs]
    if Kt is not None and sol is not None:
        best["relres"] = _relative_residual(data0, prob.loss_weights(), Kt, sol.W)
    return best


def _work_compile(spec: dict[str, Any]) -> dict[str, Any]:
    """Target (a): build ``prob.cvxpy`` and compile it for Clarabel (best of ``repeats``)."""
    import cvxpy as cp

    import mtlcvx as mc

    _tiny(spec["problem"]).cvxpy.get_problem_data(cp.CLARABEL)  # warm-up, untimed
    data0 = _data(spec["size"])
    make, _ = _penalty_factory(spec["problem"], data0.n_tasks)
    runs = []
    for _ in range(spec["repeats"]):
        data = _fresh(data0)
        t0 = time.perf_counter()
        prob = mc.Problem(data, _loss(), penalties=make())
        cvx = prob.cvxpy
        t1 = time.perf_counter()
        pdata, _chain, _inv = cvx.get_problem_data(cp.CLARABEL)
        t2 = time.perf_counter()
        runs.append({"build": t1 - t0, "compile": t2 - t1, "total": t2 - t0})
    best = min(runs, key=lambda r: r["total"])
    best["all_totals"] = [r["total"] for r in runs]
    best["is_dpp"] = bool(cvx.is_dpp())
    best["n_variables"] = int(pdata["A"].shape[1])
    best["n_constraint_rows"] = int(pdata["A"].shape[0])
    best["nnz_A"] = int(pdata["A"].nnz)
    best["nnz_P"] = int(pdata["P"].nnz) if pdata.get("P") is not None else 0
    best["nnz_X"] = int(sum(np.count_nonzero(Xt) for Xt in data0.X))
    return best


def _assemble(data, c: np.ndarray, Kt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``blkdiag(c_t X_tᵀ X_t) + kron(Kt, I_d)`` and ``[c_t X_tᵀ y_t]`` (vec(W) order)."""
    d, T = data.n_features, data.n_tasks
    M = np.kron(Kt, np.eye(d))
    rhs = np.empty(d * T)
    for t, (ct, Xt, yt) in enumerate(zip(c, data.X, data.y, strict=True)):
        M[t * d:(t + 1) * d, t * d:(t + 1) * d] += ct * (Xt.T @ Xt)
        rhs[t * d:(t + 1) * d] = ct * (Xt.T @ yt)
    return M, rhs


def _forced_pcg(prob, c, Kt, W_ref, repeats: int) -> dict[str, Any] | None:
    """Diagnostic: "direct" with its matrix-free CG path forced (``dense_limit=0``)."""
    try:
        from mtlcvx.backends.direct import DirectBackend

        backend = DirectBackend(dense_limit=0)
        times = []
        for _ in range(max(1, repeats)):
            t = time.perf_counter()
            sol = backend.solve(prob, tol=TOL, max_iter=None, verbose=False)
            times.append(time.perf_counter() - t)
    except Exception as err:  # internal API: report, do not fail the benchmark
        return {"error": f"{type(err).__name__}: {err}"[:200]}
    return {"total": min(times), "iterations": sol.iterations,
            "max_abs_diff": float(np.abs(sol.W - W_ref).max()),
            "relres": _relative_residual(prob.data, c, Kt, sol.W)}


def _work_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Median time of a 400×400 Cholesky: flags BLAS thread oversubscription."""
    import scipy.linalg

    rng = np.random.default_rng(SEED)
    B = rng.standard_normal((400, 400))
    M = B @ B.T + 400 * np.eye(400)
    times = []
    for _ in range(7):
        t = time.perf_counter()
        scipy.linalg.cho_factor(M, check_finite=False)
        times.append(time.perf_counter() - t)
    return {"cho_factor_400_ms": 1e3 * float(np.median(times)),
            "cho_factor_400_ms_all": [1e3 * x for x in times]}


def _work_cholesky(spec: dict[str, Any]) -> dict[str, Any]:
    """Target (b): "direct" against SciPy's dense Cholesky, interleaved repeats."""
    import scipy.linalg

    import mtlcvx as mc

    data = _data(spec["size"])
    make, Kt = _penalty_factory("dense_K", data.n_tasks)
    prob = mc.Problem(data, _loss(), penalties=make())
    c = prob.loss_weights()
    t0 = time.perf_counter()
    M, rhs = _assemble(data, c, Kt)
    assemble_time = time.perf_counter() - t0

    def run_direct():
        t = time.perf_counter()
        sol = prob.solve(backend="direct")
        return time.perf_counter() - t, sol

    def run_scipy():
        t = time.perf_counter()
        factor = scipy.linalg.cho_factor(M, check_finite=False)
        w = scipy.linalg.cho_solve(factor, rhs, check_finite=False)
        return time.perf_counter() - t, w

    run_direct()  # warm-up, untimed
    run_scipy()
    direct, scipy_times, pairs = [], [], []
    sol = w = None
    for r in range(spec["repeats"]):
        order = (run_direct, run_scipy) if r % 2 == 0 else (run_scipy, run_direct)
        out = {f.__name__: f() for f in order}
        (td, sol), (ts, w) = out["run_direct"], out["run_scipy"]
        direct.append({"total": td, "assemble": sol.compile_time, "factor_solve": sol.solve_time,
                       "method": sol.info.get("method")})
        scipy_times.append(ts)
        pairs.append(td / ts)
    W_scipy = w.reshape(data.n_tasks, data.n_features).T
    best = min(direct, key=lambda r: r["total"])
    pcg = _forced_pcg(prob, c, Kt, W_scipy, spec["repeats"])
    return {
        "direct_forced_pcg": pcg,
        "dT": int(M.shape[0]),
        "direct_total": best["total"],
        "direct_assemble": best["assemble"],
        "direct_factor_solve": best["factor_solve"],
        "direct_method": best["method"],
        "direct_all": [r["total"] for r in direct],
        "scipy": min(scipy_times),
        "scipy_all": scipy_times,
        "scipy_assemble": assemble_time,
        "ratio": best["total"] / min(scipy_times),
        "ratio_factor_solve_only": best["factor_solve"] / min(scipy_times),
        "ratio_median_pairs": float(np.median(pairs)),
        "max_abs_diff": float(np.abs(sol.W - W_scipy).max()),
        "max_abs_W": float(np.abs(W_scipy).max()),
        "relres_direct": _relative_residual(data, c, Kt, sol.W),
        "relres_scipy": _relative_residual(data, c, Kt, W_scipy),
    }


def _worker(spec: dict[str, Any], result: str) -> int:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    kind = spec["kind"]
    fn = {"solve": _work_solve, "compile": _work_compile, "cholesky": _work_cholesky,
          "probe": _work_probe}[kind]
    try:
        out = fn(spec)
        out["ok"] = True
    except Exception as err:  # reported in the table, never hidden
        out = {"ok": False, "error": f"{type(err).__name__}: {err}"[:300]}
    try:
        from threadpoolctl import threadpool_info

        out["blas"] = [{k: i.get(k) for k in ("internal_api", "num_threads", "version")}
                       for i in threadpool_info()]
    except ImportError:
        pass
    Path(result).write_text(json.dumps(out, default=_jsonable))
    return 0


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


# ====================================================================== parent side
def _run(spec: dict[str, Any], timeout: float, env: dict[str, str]) -> dict[str, Any]:
    """One worker subprocess under ``timeout`` seconds (:func:`_harness.run_child`); never
    raises. A worker that wrote nothing (killed at the limit, out of memory, crashed) gives
    ``ok`` False, its ``error``, and ``timeout`` True when it was killed at the limit."""
    out = run_child(__file__, spec, timeout, env)
    if "ok" not in out:
        out.update(ok=False, timeout=out["outcome"] == "timeout")
    return out


def _est_nnz(size: dict[str, Any], n_samples: np.ndarray) -> int:
    """Rough non-zeros of the compiled dense-K problem: compressed design + d·T·rank(K)."""
    d, T = size["d"], size["T"]
    return int(np.minimum(n_samples, d).sum() * d + d * T * T)


def _fmt(x: Any, spec: str = ".3f") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def _table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'size':<11}{'T':>5}{'d':>4}{'dT':>7}  {'backend':<9}{'build+comp':>11}"
            f"{'solve':>9}{'post':>8}{'total':>9}{'xdirect':>9}{'rel.obj.diff':>14}"
            f"{'iters':>7}  note")
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = _fmt(r.get("ratio"), ".2f")
        diff = r.get("rel_obj_diff")
        diff = "-" if diff is None else ("0" if diff == 0 else f"{diff:+.1e}")
        lines.append(
            f"{r['size']:<11}{r['T']:>5}{r['d']:>4}{r['dT']:>7}  {r['backend']:<9}"
            f"{_fmt(r.get('build_compile')):>11}{_fmt(r.get('solve')):>9}{_fmt(r.get('post')):>8}"
            f"{_fmt(r.get('total')):>9}{ratio:>9}{diff:>14}{_fmt(r.get('iterations')):>7}"
            f"  {r.get('note', '')}"
        )
    return "\n".join(lines)


def _part1(sizes, args, env) -> list[dict[str, Any]]:
    import mtlcvx as mc

    rows: list[dict[str, Any]] = []
    last_ok: dict[str, tuple[str, float, int]] = {}
    timed_out: dict[str, str] = {}
    for size in sizes:
        n_samples = (mc.datasets.load_school().n_samples if size["name"] == "school"
                     else np.full(size["T"], size["n"]))
        nnz = _est_nnz(size, n_samples)
        ref = None
        for backend in BACKENDS:
            row = {"size": size["name"], "T": size["T"], "d": size["d"],
                   "dT": size["d"] * size["T"], "backend": backend, "problem": "dense_K",
                   "est_nnz": nnz}
            rows.append(row)
            skip = None
            if backend == "direct":
                pass  # the reference: never skipped
            elif backend in timed_out:
                skip = f"skipped: exceeded the {args.budget:.0f} s budget at {timed_out[backend]}"
            elif backend in last_ok:
                prev, t_prev, nnz_prev = last_ok[backend]
                pred = t_prev * nnz / nnz_prev
                if pred > args.budget:
                    skip = (f"skipped: predicted >= {pred:.0f} s > {args.budget:.0f} s budget "
                            f"({t_prev:.2f} s at {prev} x {nnz / nnz_prev:.0f}x est. nnz; the "
                            f"dense K factor alone is d*T*rank = {size['d'] * size['T'] ** 2:,})")
            if skip:
                row["note"] = skip
                row["skipped"] = True
                print(f"  {size['name']:<11} {backend:<9} {skip}", flush=True)
                continue
            spec = {"kind": "solve", "size": size, "problem": "dense_K", "backend": backend,
                    "tol": TOL, "repeats": args.repeats, "repeat_until": args.budget / 2}
            timeout = TARGET_TIMEOUT if backend == "direct" else args.budget
            out = _run(spec, timeout, env)
            row["worker"] = out
            if not out["ok"]:
                row["note"] = out["error"]
                if out.get("timeout"):
                    timed_out[backend] = size["name"]
                print(f"  {size['name']:<11} {backend:<9} {out['error']}", flush=True)
                continue
            for key in ("build_compile", "solve", "post", "total", "iterations", "objective",
                        "status", "relres", "cert_rel_gap"):
                row[key] = out.get(key)
            notes = [str(out.get("method"))] if out.get("method") else []
            if out["status"] != "optimal":
                notes.append(out["status"])
            if out.get("relres") is not None:
                notes.append(f"relres {out['relres']:.1e}")
            if out.get("cert_rel_gap") is not None:
                notes.append(f"cert.gap {out['cert_rel_gap']:.0e}")
            notes.append(f"best of {out['repeats']}")
            row["note"] = ", ".join(notes)
            if backend == "direct":
                ref = out
                row["ratio"] = 1.0
            elif ref is not None:
                row["ratio"] = out["total"] / ref["total"]
                row["rel_obj_diff"] = (out["objective"] - ref["objective"]) / abs(ref["objective"])
            last_ok[backend] = (size["name"], out["total"], nnz)
            print(f"  {size['name']:<11} {backend:<9} total {out['total']:.3f} s", flush=True)
    return rows


def _verdict(ok: bool, full: bool) -> str:
    if not full:
        return "n/a (quick: reduced size)"
    return "PASS" if ok else "FAIL"


def _find(rows, size_name, backend):
    for r in rows:
        if r["size"] == size_name and r["backend"] == backend and r.get("total") is not None:
            return r
    return None


def _part2(rows, args, env) -> dict[str, Any]:
    quick = args.quick
    targets: dict[str, Any] = {}

    # (a) compile time of L21 + kNN GraphLaplacian at (1000, 50, 50)
    size = QUICK_A if quick else BIG
    out = _run({"kind": "compile", "size": size, "problem": "l21_knn",
                "repeats": 1 if quick else 3}, TARGET_TIMEOUT, env)
    if out["ok"]:
        ok = out["total"] <= THRESHOLD_A
        text = (f"build {out['build']:.2f} s + compile {out['compile']:.2f} s = "
                f"{out['total']:.2f} s (<= {THRESHOLD_A:g} s); compiled: "
                f"{out['n_variables']:,} variables, nnz(A) = {out['nnz_A']:,}, "
                f"nnz(P) = {out['nnz_P']:,}, nnz(X) = {out['nnz_X']:,}, DPP {out['is_dpp']}")
    else:
        ok, text = False, out["error"]
    targets["a"] = {"size": size["name"], "measured": out, "threshold_s": THRESHOLD_A,
                    "verdict": _verdict(ok, not quick), "text": text,
                    "title": f"L21 + GraphLaplacian(knn_graph(Z, {KNN})) build+compile "
                             f"(Clarabel) at {size['name']}"}

    # (b) direct vs SciPy dense Cholesky on School with a dense K
    size = QUICK_B if quick else SCHOOL
    out = _run({"kind": "cholesky", "size": size, "repeats": 2 if quick else 5},
               TARGET_TIMEOUT, env)
    if out["ok"]:
        ok = out["ratio"] <= THRESHOLD_B
        text = (f"direct {out['direct_total']:.3f} s (assembly {out['direct_assemble']:.3f} + "
                f"factor/solve {out['direct_factor_solve']:.3f}, {out['direct_method']}) vs "
                f"scipy cho_factor+cho_solve {out['scipy']:.3f} s: ratio {out['ratio']:.2f} "
                f"(<= {THRESHOLD_B:g}; factor/solve part only {out['ratio_factor_solve_only']:.2f}"
                f", median of paired repeats {out['ratio_median_pairs']:.2f}); "
                f"max|W_direct - W_scipy| = {out['max_abs_diff']:.1e} (max|W| = "
                f"{out['max_abs_W']:.1f}); relres direct {out['relres_direct']:.1e}, "
                f"scipy {out['relres_scipy']:.1e}; dT = {out['dT']}")
        pcg = out.get("direct_forced_pcg") or {}
        if "total" in pcg:
            text += (f"; diagnostic: direct with its CG path forced (dense_limit=0) "
                     f"{pcg['total']:.3f} s, {pcg['iterations']} iterations, relres "
                     f"{pcg['relres']:.1e}, max|W - W_scipy| = {pcg['max_abs_diff']:.1e}")
    else:
        ok, text = False, out["error"]
    targets["b"] = {"size": size["name"], "measured": out, "threshold_ratio": THRESHOLD_B,
                    "verdict": _verdict(ok, not quick), "text": text,
                    "title": f"direct vs scipy dense Cholesky, dense K, {size['name']}"}

    # (c) direct at (1000, 50, 50) with a dense K: residual 1e-12 within 10 s
    size = QUICK_C if quick else BIG
    row = _find(rows, size["name"], "direct")
    if row is not None:
        out = row["worker"]
    else:
        out = _run({"kind": "solve", "size": size, "problem": "dense_K", "backend": "direct",
                    "tol": TOL, "repeats": 1, "repeat_until": 0.0}, TARGET_TIMEOUT, env)
    if out["ok"]:
        ok = out["total"] <= THRESHOLD_C_TIME and out["relres"] <= THRESHOLD_C_RES
        its = out["iterations"] or 1
        prep = out["build_compile"] - out["problem_init"]
        text = (f"total {out['total']:.2f} s (<= {THRESHOLD_C_TIME:g} s), relres "
                f"{out['relres']:.2e} (<= {THRESHOLD_C_RES:g}); Problem() "
                f"{out['problem_init']:.2f} s, prep {prep:.2f} s, {out['method']} "
                f"{out['solve']:.2f} s for {out['iterations']} iterations "
                f"({1e3 * out['solve'] / its:.1f} ms/iteration), after the solve "
                f"(objective, certificate) {out['post']:.2f} s")
    else:
        ok, text = False, out["error"]
    targets["c"] = {"size": size["name"], "measured": out, "threshold_s": THRESHOLD_C_TIME,
                    "threshold_relres": THRESHOLD_C_RES, "verdict": _verdict(ok, not quick),
                    "text": text, "title": f"direct, dense K, {size['name']}: relres 1e-12"}

    # (d) Clarabel on School: chain Laplacian vs dense K
    chain = _run({"kind": "solve", "size": SCHOOL, "problem": "chain", "backend": "clarabel",
                  "tol": TOL, "repeats": 3, "repeat_until": 5.0}, TARGET_TIMEOUT, env)
    row = _find(rows, "school", "clarabel")
    dense = row["worker"] if row is not None else _run(
        {"kind": "solve", "size": SCHOOL, "problem": "dense_K", "backend": "clarabel",
         "tol": TOL, "repeats": 3, "repeat_until": 5.0}, TARGET_TIMEOUT, env)
    if chain["ok"]:
        ok = chain["total"] <= THRESHOLD_D
        text = (f"chain {chain['total']:.3f} s (build+compile {chain['build_compile']:.3f} + "
                f"solve {chain['solve']:.3f}; <= {THRESHOLD_D:g} s)")
    else:
        ok, text = False, f"chain: {chain['error']}"
    text += (f"; dense K {dense['total']:.3f} s (build+compile {dense['build_compile']:.3f} + "
             f"solve {dense['solve']:.3f})" if dense["ok"] else f"; dense K: {dense['error']}")
    targets["d"] = {"size": "school", "measured": {"chain": chain, "dense_K": dense},
                    "threshold_s": THRESHOLD_D, "verdict": _verdict(ok, True), "text": text,
                    "title": "Clarabel build+solve, School, chain Laplacian"}
    return targets


def _meta(args, env) -> dict[str, Any]:
    import cvxpy

    import mtlcvx

    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "cvxpy": cvxpy.__version__, "mtlcvx": mtlcvx.__version__}
    for mod in ("scipy", "clarabel", "scs", "ecos", "osqp"):
        try:
            versions[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            versions[mod] = None
    repo = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=repo, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "../mtlcvx"],
                               capture_output=True, text=True, cwd=repo, timeout=10).stdout
        commit += f" (+{len(dirty.splitlines())} uncommitted package files)" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"quick": args.quick, "budget_s": args.budget, "repeats": args.repeats,
            "blas_threads": args.blas_threads, "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "versions": versions, "git_commit": commit,
            "loadavg_start": list(os.getloadavg()), "alpha": ALPHA, "tol": TOL,
            "seed": SEED, "loss": "SquaredLoss(scale='sum')",
            "quadratic_problem": f"TaskRelation(outer(Z) + 0.1 I, alpha={ALPHA}), Z (T, "
                                 f"{N_DESCRIPTORS}) standard normal"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: smallest size only, targets at reduced sizes")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default benchmarks/results/bench_core.json)")
    parser.add_argument("--budget", type=float, default=None,
                        help="per-solve time budget in seconds for conic backends "
                             "(default 60, quick 20)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="maximum repeats of a solve; a repeat is made only while the "
                             "repeats fit in half the budget (default 3, quick 1)")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="set OPENBLAS/OMP/MKL_NUM_THREADS in the workers")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(json.loads(args.worker), args.result)

    if args.budget is None:
        args.budget = 20.0 if args.quick else 60.0
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    out_path = args.out or Path(__file__).resolve().parent / "results" / "bench_core.json"
    env = dict(os.environ)
    if args.blas_threads is not None:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.blas_threads)
    start = time.perf_counter()
    meta = _meta(args, env)
    probe = _run({"kind": "probe"}, TARGET_TIMEOUT, env)
    meta["blas_probe"] = probe
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    print(f"bench_core: {'quick' if args.quick else 'full'} run, budget {args.budget:.0f} s per "
          f"conic solve, load average {meta['loadavg_start'][0]:.2f}, BLAS probe: 400x400 "
          f"cho_factor {probe.get('cho_factor_400_ms', float('nan')):.1f} ms (about 1-2 ms "
          f"when BLAS threads are not oversubscribed)", flush=True)
    rows = _part1(sizes, args, env)
    targets = _part2(rows, args, env)
    meta["loadavg_end"] = list(os.getloadavg())
    meta["total_runtime_s"] = time.perf_counter() - start
    blas = next((r["worker"].get("blas") for r in rows if r.get("worker")), None)
    meta["blas"] = blas

    print()
    print("Quadratic problem: SquaredLoss(scale='sum') + TaskRelation(Z Z^T + 0.1 I, alpha=1); "
          "times in seconds, best of repeats")
    print(_table(rows))
    print()
    print("Targets")
    for key, t in targets.items():
        print(f"({key}) {t['verdict']:<5} {t['title']}")
        print(f"          {t['text']}")
    print()
    threads = ", ".join(f"{b['internal_api']} {b['num_threads']} threads" for b in blas or [])
    print(f"BLAS probe (400x400 cho_factor, median of 7): "
          f"{probe.get('cho_factor_400_ms', float('nan')):.1f} ms")
    print(f"total runtime {meta['total_runtime_s']:.1f} s; load average "
          f"{meta['loadavg_start'][0]:.2f} -> {meta['loadavg_end'][0]:.2f}; BLAS: "
          f"{threads or 'unknown'}; {os.cpu_count()} CPUs")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"meta": meta, "rows": rows, "targets": targets}, indent=2,
                                   default=_jsonable))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
