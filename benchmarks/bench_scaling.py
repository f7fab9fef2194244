"""Structure at scale: mtlcvx against hand-written NumPy/SciPy and scikit-learn.

Usage::

    python benchmarks/bench_scaling.py            # full run (T in 100, 1000, 5000; 5 pairs)
    python benchmarks/bench_scaling.py --quick    # smoke run (T in 100, 1000; 1 pair)
    python benchmarks/bench_scaling.py --cases tasks_chain,l21 --repeats 3

Cases (every one solved to a certified relative gap ≤ 1e-8 by both sides):

* ``shared_chain``  one design X (n = d = 50) for all tasks, ``½Σ_t‖X w_t − y_t‖²`` +
  ``GraphLaplacian(chain(T), 1) + Ridge(0.1)``. Hand: eigenbasis of ``XᵀX`` and d
  tridiagonal LAPACK ``dptsv`` solves.
* ``tasks_chain``   per-task designs (n_t = 20, d = 10), same chain penalty. Hand: banded
  Cholesky (``solveh_banded``, bandwidth d) of the dT×dT system, task Grams by batched
  ``matmul``.
* ``tasks_lowrank`` per-task designs, ``K = Z Zᵀ + 0.1·I`` given by its factor Z (T×5).
  Hand: Woodbury on the factor (T block inverses, one (5d)×(5d) capacitance system).
* ``l21``           shared design n = 2000, d = 500, T = 50, ``(1/2n)‖XW − Y‖² + α‖W‖₂,₁``
  (α = 0.1·α_max). Baseline: scikit-learn ``MultiTaskLasso`` with its ``tol`` set so its
  duality gap reaches 1e-8·F (its tol is relative to ‖Y‖²_F/n).
* ``trace``         shared design n = 1000, d = 200, T = 500, ``TraceNorm`` (α = 0.2·‖XᵀY/n‖₂).
  Hand: FISTA with singular-value thresholding and the same duality-gap stopping test.
* ``school_ridge``  independent ridge on School (139 tasks, 28 columns, MALSAR's scaling):
  ``Ridge(1)`` by ``backend="direct"``. Hand: T batched 28×28 solves.

``--build`` (on by default) also times building the penalties from sparse T×T matrices at
T = 5000, each proven PSD on the way (median of 5 in this process): ``GraphLaplacian`` of a
chain, ``TaskRelation`` of a chain Laplacian + 0.1·I (diagonally dominant: Gershgorin) and of
``B Bᵀ + I`` with B random with 2 non-zeros per column (not diagonally dominant: a sparse
``LDLᵀ`` proves it); target ≤ 0.1 s.

"mtlcvx s" times ``mc.Problem(data, ...)`` with its penalties and ``.solve(...)`` (the
certificate included) on a ``MultiTaskData`` built just before; "data s" is that build
(checks and read-only copies of every task's arrays), reported beside it and not in the
ratio. The hand baselines start from the raw arrays and include their own duality-gap
computation (the same dual point: the scaled residual). Every run is a
fresh subprocess (``--worker``) with ``OPENBLAS_NUM_THREADS`` set (default 1, recorded);
an untimed tiny solve of the same kind runs first. Peak RSS is ``ru_maxrss`` of the child,
read before anything else is imported; "ΔRSS" is that peak minus the RSS before the timed
call (the solve's own memory, without interpreter and imports). mtlcvx and its baseline
run alternately ``--repeats`` times; the table reports medians and the median of the
per-pair time ratios. The growth exponent is the least-squares slope of log(time) against
log(T). Each hand result is re-certified with ``mc.certify`` after its RSS is read.

Results go to ``benchmarks/results/bench_scaling.json`` (``bench_scaling_quick.json`` with
``--quick``; ``--out`` elsewhere), merged into what the file already holds: a row replaces
the row of the same case and T, the others stay, and each row records when it was
measured (``measured_at``, UTC; ``run_seconds``, the wall time of its paired runs) and
under what (``threads``, ``load_average``; and ``repeats``, the paired runs), so a
``--cases`` run updates its rows without dropping the rest. The growth exponents are
refitted from the merged rows; the build times are replaced only by a run that times
them.

Targets: quadratic rows ≤ 2× the hand time and ≤ 1.5× its peak RSS, growth ≤ 1.15 for
the sparse and factor rows; ``l21`` ≤ 1.5× scikit-learn; ``trace`` ≤ 1.5× hand FISTA.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _harness import run_child

TOL = 1e-8
HERE = Path(__file__).resolve().parent
CASES = ("shared_chain", "tasks_chain", "tasks_lowrank", "l21", "trace", "school_ridge")
SCALING = ("shared_chain", "tasks_chain", "tasks_lowrank")
BASELINE = {"l21": "sklearn", "trace": "hand FISTA"}


# ------------------------------------------------------------------------ data (NumPy only)
def make_data(case: str, T: int, quick: bool) -> dict[str, Any]:
    rng = np.random.default_rng(CASES.index(case) * 7919 + T)
    if case == "shared_chain":
        n = d = 50
        X = rng.standard_normal((n, d))
        W0 = np.cumsum(rng.standard_normal((d, T)) * 0.01, axis=1)
        return {"X": X, "Y": X @ W0 + rng.standard_normal((n, T)), "alpha": 1.0, "ridge": 0.1}
    if case in ("tasks_chain", "tasks_lowrank"):
        n, d = 20, 10
        Xs = rng.standard_normal((T, n, d))
        W0 = np.cumsum(rng.standard_normal((d, T)) * 0.01, axis=1)
        ys = np.einsum("tnd,dt->tn", Xs, W0) + rng.standard_normal((T, n))
        out = {"Xs": Xs, "ys": ys, "alpha": 1.0, "ridge": 0.1}
        if case == "tasks_lowrank":
            out.update(Z=rng.standard_normal((T, 5)), ridge=0.1)
        return out
    if case == "l21":
        n, d, T = (400, 100, 20) if quick else (2000, 500, 50)
        X = rng.standard_normal((n, d))
        W0 = np.zeros((d, T))
        W0[: d // 25] = rng.standard_normal((d // 25, T))
        Y = X @ W0 + 0.5 * rng.standard_normal((n, T))
        return {"X": X, "Y": Y, "alpha": 0.1 * np.linalg.norm(X.T @ Y / n, axis=1).max()}
    if case == "trace":
        n, d, T = (300, 60, 100) if quick else (1000, 200, 500)
        X = rng.standard_normal((n, d))
        W0 = rng.standard_normal((d, 5)) @ rng.standard_normal((5, T))
        Y = X @ W0 + rng.standard_normal((n, T))
        return {"X": X, "Y": Y, "alpha": 0.2 * np.linalg.norm(X.T @ Y / n, 2)}
    import scipy.io

    mat = scipy.io.loadmat(HERE.parent / "mtlcvx" / "school.mat")
    return {"Xs": [np.asarray(x, float) for x in mat["X"][0]],
            "ys": [np.asarray(y, float).ravel() for y in mat["Y"][0]], "alpha": 1.0}


def case_sizes(case: str, quick: bool) -> list[int]:
    if case in SCALING:
        return [100, 1000] if quick else [100, 1000, 5000]
    return [0]


# ------------------------------------------------------------------------ hand baselines
def _chain_band(T: int, alpha: float, ridge: float) -> np.ndarray:
    """Lower band storage (2, T) of ``alpha·L_chain + ridge·I``."""
    deg = np.full(T, 2.0)
    deg[[0, -1]] = 1.0
    return np.vstack([alpha * deg + ridge, np.r_[-alpha * np.ones(T - 1), 0.0]])


def _quadratic_gap(F: float, a: float, b: float, conj: float) -> float:
    """F − max_s (a s − (b + conj) s²): the rung-4 dual bound at the scaled residual."""
    q = b + conj
    s = max(a / (2 * q), 0.0)
    return F - (a * s - q * s * s)


def hand_shared_chain(D: dict[str, Any]) -> tuple[np.ndarray, float]:
    from scipy.linalg import eigh
    from scipy.linalg.lapack import dptsv  # tridiagonal SPD solve, no band copy

    X, Y, T = D["X"], D["Y"], D["Y"].shape[1]
    band = _chain_band(T, D["alpha"], D["ridge"])
    off = band[1, :-1]
    s, V = eigh(X.T @ X)
    Bh = V.T @ (X.T @ Y)
    Wh = np.empty_like(Bh)
    for i in range(len(s)):
        Wh[i] = dptsv(band[0] + s[i], off, Bh[i])[2]
    W = V @ Wh
    R = X @ W - Y  # gap: θ = −R, V = Xᵀθ, K⁻¹ by the same tridiagonal solves
    WK = W * band[0]
    WK[:, :-1] += W[:, 1:] * off
    WK[:, 1:] += W[:, :-1] * off
    F = 0.5 * float(np.sum(R * R)) + 0.5 * float(np.sum(WK * W))
    Vd = -X.T @ R
    conj = 0.5 * float(np.sum(Vd * dptsv(band[0], off, Vd.T)[2].T))
    return W, _quadratic_gap(F, float(np.sum(-R * Y)), 0.5 * float(np.sum(R * R)), conj) / F


def _task_gap(D: dict[str, Any], W: np.ndarray, WK: np.ndarray, Kinv) -> float:
    Xs, ys = D["Xs"], D["ys"]
    R = (Xs @ W.T[:, :, None])[:, :, 0] - ys  # batched matmul: einsum is ~7x slower here
    F = 0.5 * float(np.sum(R * R)) + 0.5 * float(np.sum(WK * W))
    Vd = -(R[:, None, :] @ Xs)[:, 0, :].T
    conj = 0.5 * float(np.sum(Vd * Kinv(Vd)))
    return _quadratic_gap(F, float(np.sum(-R * ys)), 0.5 * float(np.sum(R * R)), conj) / F


def hand_tasks_chain(D: dict[str, Any]) -> tuple[np.ndarray, float]:
    from scipy.linalg import solveh_banded
    from scipy.linalg.lapack import dptsv

    Xs, ys = D["Xs"], D["ys"]
    T, _, d = Xs.shape
    band = _chain_band(T, D["alpha"], D["ridge"])
    Xt = Xs.transpose(0, 2, 1)
    H = Xt @ Xs
    ab = np.zeros((d + 1, d * T))  # lower band of blkdiag(H_t) + K ⊗ I_d, task-major
    for k in range(d):
        ab[k].reshape(T, d)[:, : d - k] = np.diagonal(H, -k, axis1=1, axis2=2)
    ab[0] += np.repeat(band[0], d)
    ab[d, : d * (T - 1)] = np.repeat(band[1, :-1], d)
    rhs = (Xt @ ys[:, :, None]).ravel()
    W = solveh_banded(ab, rhs, lower=True, overwrite_ab=True).reshape(T, d).T
    WK = W * band[0]
    WK[:, :-1] += W[:, 1:] * band[1, :-1]
    WK[:, 1:] += W[:, :-1] * band[1, :-1]
    return W, _task_gap(D, W, WK, lambda V: dptsv(band[0], band[1, :-1], V.T)[2].T)


def hand_tasks_lowrank(D: dict[str, Any]) -> tuple[np.ndarray, float]:
    Xs, ys, Z, c = D["Xs"], D["ys"], D["Z"], D["ridge"]
    T, _, d = Xs.shape
    p = Z.shape[1]
    Xt = Xs.transpose(0, 2, 1)
    Pinv = np.linalg.inv(Xt @ Xs + c * np.eye(d))
    x = (Pinv @ (Xt @ ys[:, :, None]))[:, :, 0]
    cap = np.einsum("ta,tb,tij->aibj", Z, Z, Pinv, optimize=True).reshape(p * d, p * d)
    cap += np.eye(p * d)
    y = np.linalg.solve(cap, (Z.T @ x).ravel()).reshape(p, d)
    W = (x - (Pinv @ (Z @ y)[:, :, None])[:, :, 0]).T
    WK = (W @ Z) @ Z.T + c * W

    def Kinv(V: np.ndarray) -> np.ndarray:  # Woodbury on the T×T matrix Z Zᵀ + cI
        return V / c - ((V @ Z) @ np.linalg.inv(c * np.eye(p) + Z.T @ Z)) @ Z.T / c

    return W, _task_gap(D, W, WK, Kinv)


def hand_school_ridge(D: dict[str, Any]) -> tuple[np.ndarray, float]:
    Xs, ys, a = D["Xs"], D["ys"], D["alpha"]
    d = Xs[0].shape[1]
    H = np.stack([x.T @ x for x in Xs]) + a * np.eye(d)
    W = np.linalg.solve(H, np.stack([x.T @ y for x, y in zip(Xs, ys, strict=True)])[:, :, None])
    W = W[:, :, 0].T
    Rs = [x @ W[:, t] - y for t, (x, y) in enumerate(zip(Xs, ys, strict=True))]
    F = 0.5 * sum(float(r @ r) for r in Rs) + 0.5 * a * float(np.sum(W * W))
    Vd = -np.stack([x.T @ r for x, r in zip(Xs, Rs, strict=True)], axis=1)
    a_ = sum(float(-r @ y) for r, y in zip(Rs, ys, strict=True))
    b_ = 0.5 * sum(float(r @ r) for r in Rs)
    return W, _quadratic_gap(F, a_, b_, 0.5 * float(np.sum(Vd * Vd)) / a) / F


def _singular_values(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(s, Q)``: the singular values of M (d × T, d ≤ T) and its left singular vectors,
    from the eigendecomposition of the d × d Gram ``M Mᵀ`` (a third of an SVD's cost)."""
    lam, Q = np.linalg.eigh(M @ M.T)
    return np.sqrt(np.maximum(lam, 0.0)), Q


def hand_trace(D: dict[str, Any]) -> tuple[np.ndarray, float]:
    """FISTA with SVT on the Gram matrix, adaptive restart, gap every 10 iterations; the
    thresholding and the dual's spectral norm from the d × d Gram (d ≤ T) instead of an
    SVD."""
    X, Y, alpha = D["X"], D["Y"], D["alpha"]
    n = X.shape[0]
    G, B = X.T @ X / n, X.T @ Y / n
    L = float(np.linalg.eigvalsh(G)[-1])
    W = np.zeros_like(B)
    Yk, t = W.copy(), 1.0
    gap = np.inf
    for k in range(1, 100_000):
        V = Yk - (G @ Yk - B) / L
        s, Q = _singular_values(V)
        shrink = np.where(s > alpha / L, 1.0 - alpha / (L * np.where(s > 0, s, 1.0)), 0.0)
        Wn = (Q * shrink) @ (Q.T @ V)
        if float(np.sum((Yk - Wn) * (Wn - W))) > 0:
            t, Yk = 1.0, Wn.copy()
        else:
            tn = 0.5 * (1 + np.sqrt(1 + 4 * t * t))
            Yk, t = Wn + (t - 1) / tn * (Wn - W), tn
        W = Wn
        if k % 10 == 0:
            R = X @ W - Y
            theta = -R / n
            Vd = X.T @ theta
            scale = min(1.0, alpha / float(_singular_values(Vd)[0][-1]))
            # the nuclear norm by an SVD: the Gram's square roots put ~1e-8·σ_max on every
            # zero singular value, far above the 1e-8 gap
            F = 0.5 / n * float(np.sum(R * R)) + alpha * float(
                np.linalg.svd(W, compute_uv=False).sum())
            a_, b_ = float(np.sum(theta * Y)), 0.5 * n * float(np.sum(theta * theta))
            gap = (F - max(a_ * scale - b_ * scale * scale, 0.0)) / F
            if gap <= TOL:
                break
    return W, gap


def run_sklearn_l21(D: dict[str, Any]) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import MultiTaskLasso

    X, Y, alpha = D["X"], D["Y"], D["alpha"]
    # sklearn stops at gap ≤ tol·‖Y‖²_F in its n-scaled objective: tol for a gap of 1e-8·F
    W = MultiTaskLasso(alpha=alpha, fit_intercept=False, tol=1e-8 * D["F_ref"] * X.shape[0]
                       / float(np.sum(Y * Y)), max_iter=100_000).fit(X, Y).coef_.T
    return W, float("nan")


# ------------------------------------------------------------------------ mtlcvx side
def mtlcvx_data(D: dict[str, Any]) -> Any:
    """The :class:`mtlcvx.MultiTaskData` of a case (checked, read-only copies)."""
    import mtlcvx as mc

    if "X" in D:
        return mc.MultiTaskData.shared(D["X"], D["Y"])
    return mc.MultiTaskData(list(D["Xs"]), list(D["ys"]))


def mtlcvx_solve(case: str, D: dict[str, Any], data: Any) -> tuple[np.ndarray, float, str, str]:
    import mtlcvx as mc

    if case in ("shared_chain", "tasks_chain", "tasks_lowrank"):
        T = data.n_tasks
        if case == "tasks_lowrank":
            pens = [mc.TaskRelation.from_factor(D["Z"], ridge=D["ridge"], alpha=D["alpha"])]
        else:
            pens = [mc.GraphLaplacian(mc.relations.chain(T, sparse=True), D["alpha"]),
                    mc.Ridge(D["ridge"])]
        prob, backend = mc.Problem(data, mc.SquaredLoss("sum"), pens), "direct"
    elif case == "school_ridge":
        prob = mc.Problem(data, mc.SquaredLoss("sum"), [mc.Ridge(D["alpha"])])
        backend = "direct"
    else:
        pen = mc.L21(D["alpha"]) if case == "l21" else mc.TraceNorm(D["alpha"])
        prob, backend = mc.Problem(data, penalties=[pen]), "fista"
    sol = prob.solve(backend, tol=TOL)
    return sol.W, sol.certificate.relative_gap, sol.info.get("method", backend), \
        mc.backends.default_backend(prob)


def certify_hand(case: str, D: dict[str, Any], W: np.ndarray) -> float:
    import mtlcvx as mc

    data = mtlcvx_data(D)
    T = data.n_tasks
    if case == "l21":
        prob = mc.Problem(data, penalties=[mc.L21(D["alpha"])])
    elif case == "trace":
        prob = mc.Problem(data, penalties=[mc.TraceNorm(D["alpha"])])
    elif case == "school_ridge":
        prob = mc.Problem(data, mc.SquaredLoss("sum"), [mc.Ridge(D["alpha"])])
    elif case == "tasks_lowrank":
        prob = mc.Problem(data, mc.SquaredLoss("sum"), [mc.TaskRelation.from_factor(
            D["Z"], ridge=D["ridge"], alpha=D["alpha"])])
    else:
        prob = mc.Problem(data, mc.SquaredLoss("sum"), [
            mc.GraphLaplacian(mc.relations.chain(T, sparse=True), D["alpha"]),
            mc.Ridge(D["ridge"])])
    return mc.certify(prob, W).relative_gap


HAND = {"shared_chain": hand_shared_chain, "tasks_chain": hand_tasks_chain,
        "tasks_lowrank": hand_tasks_lowrank, "school_ridge": hand_school_ridge,
        "trace": hand_trace, "l21": run_sklearn_l21}


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(spec: dict[str, Any], out: str) -> None:
    case, impl, T, quick = spec["case"], spec["impl"], spec["T"], spec["quick"]
    D = make_data(case, T, quick)
    small = make_data(case, 20, True)
    if impl == "mtlcvx":
        mtlcvx_solve(case, small, mtlcvx_data(small))  # warm-up (imports, first calls)
    elif case == "l21":  # sklearn's tol is set from F* (a tight untimed run, same memory)
        from sklearn.linear_model import MultiTaskLasso

        X, Y, alpha = D["X"], D["Y"], D["alpha"]
        W = MultiTaskLasso(alpha=alpha, fit_intercept=False, tol=1e-12,
                           max_iter=100_000).fit(X, Y).coef_.T
        R = X @ W - Y
        D["F_ref"] = 0.5 / X.shape[0] * float(np.sum(R * R)) + alpha * float(
            np.linalg.norm(W, axis=1).sum())
    else:
        HAND[case](small)
    rss0 = _rss_mb()
    data_time = 0.0
    if impl == "mtlcvx":
        start = time.perf_counter()
        data = mtlcvx_data(D)
        data_time = time.perf_counter() - start
    start = time.perf_counter()
    if impl == "mtlcvx":
        W, gap, method, default = mtlcvx_solve(case, D, data)
    else:
        W, gap = HAND[case](D)
        method, default = BASELINE.get(case, "hand"), ""
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    certified = gap if impl == "mtlcvx" else certify_hand(case, D, W)
    Path(out).write_text(json.dumps({
        "case": case, "impl": impl, "T": T, "time": elapsed, "data_time": data_time,
        "peak_rss_mb": peak,
        "delta_rss_mb": peak - rss0, "gap": gap, "certified_gap": certified,
        "method": method, "default_backend": default,
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
    }))


# ------------------------------------------------------------------------ building penalties
def build_times(T: int = 5000, repeats: int = 5) -> list[dict[str, Any]]:
    """Seconds to build the quadratic penalties from sparse T×T matrices (PSD checks included)."""
    import scipy.sparse as sp

    import mtlcvx as mc

    rng = np.random.default_rng(T)
    chain = mc.relations.chain(T, sparse=True)
    B = sp.csr_matrix((rng.standard_normal(2 * T), (rng.integers(0, T, 2 * T),
                                                    np.repeat(np.arange(T), 2))), shape=(T, T))
    dominant = (mc.relations.laplacian(chain) + 0.1 * sp.identity(T)).tocsr()
    gram = (B @ B.T + sp.identity(T)).tocsr()
    cases = {
        "GraphLaplacian(chain)": lambda: mc.GraphLaplacian(chain, 1.0),
        "TaskRelation(chain Laplacian + 0.1 I)": lambda: mc.TaskRelation(dominant, 1.0),
        "TaskRelation(B Bᵀ + I), 2 non-zeros per column of B": lambda: mc.TaskRelation(
            gram, 1.0),
    }
    rows = []
    for name, build in cases.items():
        build()  # untimed first call
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            build()
            times.append(time.perf_counter() - start)
        rows.append({"penalty": name, "T": T, "seconds": _median(times)})
    return rows


# ------------------------------------------------------------------------ driver
def run_one(case: str, impl: str, T: int, quick: bool, threads: str) -> dict[str, Any]:
    """One worker run (:func:`_harness.run_child`, 30 min limit); raises when it fails."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads,
           "MKL_NUM_THREADS": threads,
           "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    spec = {"case": case, "impl": impl, "T": T, "quick": quick}
    out = run_child(__file__, spec, 1800.0, env)
    if "outcome" in out:  # the worker wrote no result
        raise RuntimeError(f"{case}:{impl}:{T} {out['outcome']}: {out['error']}")
    return out


def _median(values: list[float]) -> float:
    return float(np.median(values))


def summarise(case: str, T: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    ours = [r for r in runs if r["impl"] == "mtlcvx"]
    theirs = [r for r in runs if r["impl"] == "baseline"]
    pair = [a["time"] / b["time"] for a, b in zip(ours, theirs, strict=True)]
    return {
        "case": case, "T": T, "method": ours[0]["method"],
        "default_backend": ours[0]["default_backend"], "baseline": theirs[0]["method"],
        "time": _median([r["time"] for r in ours]),
        "data_time": _median([r["data_time"] for r in ours]),
        "baseline_time": _median([r["time"] for r in theirs]),
        "time_ratio": _median(pair),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in ours),
        "baseline_peak_rss_mb": max(r["peak_rss_mb"] for r in theirs),
        "delta_rss_mb": max(r["delta_rss_mb"] for r in ours),
        "baseline_delta_rss_mb": max(r["delta_rss_mb"] for r in theirs),
        "gap": max(r["certified_gap"] for r in ours),
        "baseline_gap": max(r["certified_gap"] for r in theirs),
        "repeats": len(pair),
    }


def _stamp(row: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """``row`` with the time it was measured (UTC, to the second) and the run's settings."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {**row, "measured_at": when, **settings}


def merge_results(old: dict[str, Any], rows: list[dict[str, Any]],
                  builds: list[dict[str, Any]]) -> dict[str, Any]:
    """The results file's content after this run: ``old`` (the file's earlier content, {}
    if none) with ``rows`` in place of its rows of the same ``(case, T)`` and, when this run
    timed them, ``builds`` in place of its build times. Rows of an earlier file without
    their own settings take that file's. Rows in ``CASES`` order, then by T; growth
    exponents refitted from the merged rows."""
    settings = {"threads": old.get("OPENBLAS_NUM_THREADS"),
                "load_average": old.get("load_average")}
    new = {(r["case"], r["T"]) for r in rows}
    kept = [{**settings, **r} for r in old.get("rows", []) if (r["case"], r["T"]) not in new]
    merged = sorted(kept + rows, key=lambda r: (
        CASES.index(r["case"]) if r["case"] in CASES else len(CASES), r["T"]))
    growths = {}
    for case in SCALING:
        case_rows = [r for r in merged if r["case"] == case]
        if len(case_rows) > 1:
            growths[case] = (growth(case_rows, "time"), growth(case_rows, "baseline_time"))
    return {"rows": merged, "growth": growths, "build": builds or old.get("build", []),
            "python": platform.python_version(), "cpu_count": os.cpu_count()}


def growth(rows: list[dict[str, Any]], key: str) -> float | None:
    pts = [(r["T"], r[key]) for r in rows if r["T"] > 0]
    if len(pts) < 2:
        return None
    T, t = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(T, t, 1)[0])


def print_tables(rows: list[dict[str, Any]], growths: dict[str, Any], threads: str) -> None:
    print(f"\nOPENBLAS_NUM_THREADS={threads}; certified relative gaps; medians of paired runs")
    print("| case | T | mtlcvx route | default | data s | mtlcvx s | baseline | baseline s | "
          "time ratio | peak RSS MB (ratio) | ΔRSS MB mtlcvx / base | gap mtlcvx / base |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['T'] or '-'} | {r['method']} | {r['default_backend']} | "
              f"{r['data_time']:.4f} | {r['time']:.4f} | "
              f"{r['baseline']} | {r['baseline_time']:.4f} | {r['time_ratio']:.2f}× | "
              f"{r['peak_rss_mb']:.0f} / {r['baseline_peak_rss_mb']:.0f} "
              f"({r['peak_rss_mb'] / r['baseline_peak_rss_mb']:.2f}×) | "
              f"{r['delta_rss_mb']:.1f} / {r['baseline_delta_rss_mb']:.1f} | "
              f"{r['gap']:.1e} / {r['baseline_gap']:.1e} |")
    if growths:
        print("\n| case | growth in T: mtlcvx | hand |")
        print("|---|---|---|")
        for case, (g_ours, g_hand) in growths.items():
            print(f"| {case} | T^{g_ours:.2f} | T^{g_hand:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="T in 100, 1000; one pair")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--repeats", type=int, default=None, help="paired runs (default 5)")
    parser.add_argument("--threads", default="1", help="OPENBLAS_NUM_THREADS of the runs")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/)")
    parser.add_argument("--no-build", action="store_true",
                        help="skip timing the penalties' construction from sparse matrices")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker), args.result)
        return 0
    repeats = args.repeats or (1 if args.quick else 5)
    (HERE / "results").mkdir(exist_ok=True)
    rows, growths = [], {}
    for case in args.cases.split(","):
        case_rows = []
        for T in case_sizes(case, args.quick):
            runs, start = [], time.perf_counter()
            for _ in range(repeats):
                for impl in ("mtlcvx", "baseline"):
                    r = run_one(case, impl, T, args.quick, args.threads)
                    runs.append(r)
            row = _stamp(summarise(case, T, runs), threads=args.threads,
                         load_average=os.getloadavg(),
                         run_seconds=time.perf_counter() - start)
            case_rows.append(row)
            print(f"{case} T={T}: {row['time']:.4f} s vs {row['baseline_time']:.4f} s "
                  f"({row['time_ratio']:.2f}×)", flush=True)
        if case in SCALING:
            growths[case] = (growth(case_rows, "time"), growth(case_rows, "baseline_time"))
        rows += case_rows
    print_tables(rows, growths, args.threads)
    builds = [] if args.no_build else [_stamp(b) for b in build_times(
        1000 if args.quick else 5000)]
    if builds:
        print("\n| building from a sparse matrix | T | seconds (median of 5) |\n|---|---|---|")
        for b in builds:
            print(f"| {b['penalty']} | {b['T']} | {b['seconds']:.4f} |")
    out = Path(args.out) if args.out else HERE / "results" / (
        "bench_scaling_quick.json" if args.quick else "bench_scaling.json")
    old = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps(merge_results(old, rows, builds), indent=1))
    print(f"\nmerged into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
