"""Rungs 4 and 3's certified gaps on quadratic problems (and with an L1 term): at the exact
solution and near it.

Usage::

    python benchmarks/bench_quadratic_gaps.py            # ~1 min
    python benchmarks/bench_quadratic_gaps.py --quick    # without the T = 1000 dense K

Problems (``SquaredLoss("sum")``, ``mc.datasets.make_related_tasks``): a dense
``K = ZZᵀ + 0.1·I`` (``Z`` T × 5, mixed signs) at T = 100 and at bench_core's
1000 × 50 × 50; the same ``K`` given by its factor; ``1e8·zzᵀ + 0.01·I`` given by its
factor (``z`` 500 × 2: strong coupling, ``Wz`` cancels at the optimum); a sparse chain
``GraphLaplacian(5) + Ridge(0.01)``, also with intercepts; ``Ridge(1)``;
``MeanRegularized(2) + Ridge(0.1)``; a feature-side ``FeatureRelation(D)`` with a dense
``K``; and ``TaskRelation(outer(z), α = 1e10) + Ridge(1)``, where the magnitude
``Σ|W||K|∘|W|`` is far above ``tr(WKWᵀ)``. With ``L1(0.5)`` beside the quadratic terms
(rung 3: they join the dual point as blocks), on standard normal data (T = 100, d = 5,
n_t = 20, ``SquaredLoss("mean")``): ``a·zzᵀ + 0.01·I`` from its factor (``z`` 100 × 2) at
``a = 1e4`` and ``1e8``, and a chain ``GraphLaplacian(5) + Ridge(0.01)``.

Each quadratic problem is solved by ``backend="direct"``; each L1 problem exactly, by hand:
the support and signs of a Clarabel solve, then the normal equations restricted to them,
refined with residuals in extended precision until the optimality conditions hold. Each
is certified with ``mc.certify`` at its solution ``W*`` and at
``W* + σ·max|W*|·N(0, 1)`` for σ in 1e-8 … 1e-2 (one seed). Reported: the
certified relative gap, its rounding part ``certificate.rounding / |F|``, the rung's
method, and the median time of 20 certificates at ``W*`` (one BLAS thread). The gap is an
upper bound on ``F(W) − F*``; smaller is tighter. To compare two versions run the script
from each checkout (the gaps are deterministic). Writes JSON to
``benchmarks/results/bench_quadratic_gaps.json``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Iterator

import numpy as np
from _harness import machine, write_json
from threadpoolctl import threadpool_limits

import mtlcvx as mc
from mtlcvx import relations

SCALES = (0.0, 1e-8, 1e-6, 1e-4, 1e-2)


def _data(T: int, d: int, n: int) -> mc.MultiTaskData:
    return mc.datasets.make_related_tasks(n_tasks=T, n_features=d, n_samples=n, random_state=0)


def _l1_exact(prob: mc.Problem, K: np.ndarray, lam: float) -> np.ndarray:
    """The minimiser of ``prob`` (squared loss, quadratic terms with the task-side ``K``
    (T, T) in ``np.longdouble``, ``L1(lam)``): the support and signs of a Clarabel solve,
    then the restricted normal equations solved in float64 and refined with residuals in
    extended precision; an entry that breaks the optimality conditions (a sign, or
    ``|g − Hw| > lam`` off the support) moves in or out and the system is solved again."""
    Xs, ys = prob.data.X, prob.data.y
    T, d = len(Xs), Xs[0].shape[1]
    c = prob.loss_weights()
    H = np.kron(K, np.eye(d, dtype=np.longdouble))
    g = np.zeros(d * T, dtype=np.longdouble)
    for t, (X, y) in enumerate(zip(Xs, ys, strict=True)):
        Xl = X.astype(np.longdouble)
        H[t * d:(t + 1) * d, t * d:(t + 1) * d] += c[t] * Xl.T @ Xl
        g[t * d:(t + 1) * d] = c[t] * Xl.T @ y.astype(np.longdouble)
    guess = prob.solve("clarabel").W.T.ravel()
    sign = np.where(np.abs(guess) > 1e-6 * np.abs(guess).max(), np.sign(guess), 0.0)
    for _ in range(50):
        S = np.flatnonzero(sign)
        HS, rhs = H[np.ix_(S, S)], g[S] - lam * sign[S]
        x = np.linalg.solve(HS.astype(float), rhs.astype(float))
        for _ in range(4):
            x += np.linalg.solve(HS.astype(float), (rhs - HS @ x.astype(np.longdouble))
                                 .astype(float))
        w = np.zeros(d * T)
        w[S] = x
        flipped = S[np.sign(x) != sign[S]]
        if flipped.size:
            sign[flipped] = 0.0
            continue
        excess = np.abs(g - H @ w.astype(np.longdouble)) - lam
        excess[S] = -1.0
        if excess.max() <= 0:
            return w.reshape(T, d).T
        j = int(np.argmax(excess))
        sign[j] = float(np.sign(g[j] - H[j] @ w.astype(np.longdouble)))
    raise RuntimeError("no exact L1 optimum")


def _normal_data(rng: np.random.Generator) -> mc.MultiTaskData:
    """100 tasks, 20 rows, 5 features, standard normal."""
    return mc.MultiTaskData([rng.standard_normal((20, 5)) for _ in range(100)],
                            [rng.standard_normal(20) for _ in range(100)])


def cases(quick: bool) -> Iterator[tuple[str, mc.Problem]]:
    """``(name, problem)`` of every quadratic row."""
    rng = np.random.default_rng(1)
    loss = mc.SquaredLoss("sum")
    for T, d in ((100, 20),) if quick else ((100, 20), (1000, 50)):
        Z = np.random.default_rng(1).standard_normal((T, 5))
        yield (f"dense ZZt + 0.1I, T = {T}",
               mc.Problem(_data(T, d, 50), loss, [mc.TaskRelation(relations.outer(Z)
                                                                  + 0.1 * np.eye(T))]))
    T = 300
    Z = rng.standard_normal((T, 5))
    yield ("factor ZZt + 0.1I, T = 300",
           mc.Problem(_data(T, 10, 20), loss, [mc.TaskRelation.from_factor(Z, ridge=0.1)]))
    # strongly coupled: λ_max/λ_min ≈ 5e12, WZ cancels at the optimum
    z = np.random.default_rng(3).standard_normal((500, 2)) * 1e4
    yield ("factor 1e8 zzt + 0.01I, T = 500",
           mc.Problem(_data(500, 5, 20), loss, [mc.TaskRelation.from_factor(z, ridge=0.01)]))
    chain = [mc.GraphLaplacian(relations.chain(T, sparse=True), 5.0), mc.Ridge(0.01)]
    yield "chain + ridge, T = 300", mc.Problem(_data(T, 10, 20), loss, chain)
    yield ("chain + ridge, intercepts", mc.Problem(_data(T, 10, 20), loss, chain,
                                                   fit_intercept=True))
    yield "ridge, T = 300", mc.Problem(_data(T, 10, 20), loss, [mc.Ridge(1.0)])
    yield ("mean + ridge, T = 300",
           mc.Problem(_data(T, 10, 20), loss, [mc.MeanRegularized(2.0), mc.Ridge(0.1)]))
    D = rng.standard_normal((10, 10))
    K = relations.outer(rng.standard_normal((100, 3))) + 0.05 * np.eye(100)
    yield ("feature D + dense K, T = 100",
           mc.Problem(_data(100, 10, 20), loss, [mc.FeatureRelation(D @ D.T / 10),
                                                 mc.TaskRelation(K)]))
    z = rng.standard_normal((50, 1)) * np.pi
    yield ("outer(z) 1e10 + ridge, T = 50",
           mc.Problem(_data(50, 5, 10), loss, [mc.TaskRelation(relations.outer(z), 1e10),
                                               mc.Ridge(1.0)]))


def l1_cases() -> Iterator[tuple[str, mc.Problem, np.ndarray]]:
    """``(name, problem, K)`` of every row with ``L1(0.5)``, ``K`` the task side's matrix
    (α included) in extended precision."""
    rng = np.random.default_rng(0)
    loss = mc.SquaredLoss()  # "mean": the problem docs/certificates.md measures
    data = _normal_data(rng)
    z = rng.standard_normal((100, 2))
    for a, name in ((1e4, "1e4"), (1e8, "1e8")):
        R = z * np.sqrt(a)
        Rl = R.astype(np.longdouble)
        yield (f"factor {name} zzt + 0.01I + L1",
               mc.Problem(data, loss, [mc.TaskRelation.from_factor(R, ridge=0.01), mc.L1(0.5)]),
               Rl @ Rl.T + 0.01 * np.eye(100, dtype=np.longdouble))
    A = relations.chain(100)
    yield ("chain + ridge + L1, T = 100",
           mc.Problem(data, loss, [mc.GraphLaplacian(A, 5.0), mc.Ridge(0.01), mc.L1(0.5)]),
           (5.0 * (np.diag(A.sum(axis=1)) - A) + 0.01 * np.eye(100)).astype(np.longdouble))


def measure(prob: mc.Problem, K: np.ndarray | None = None) -> dict:
    """The row's gaps; ``K`` given: an L1 row, solved by :func:`_l1_exact`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.ConvergenceWarning)
        W_star = (prob.solve("direct", tol=1e-8).W if K is None
                  else _l1_exact(prob, K, prob.penalties[-1].alpha))
    noise = np.random.default_rng(5).standard_normal(W_star.shape) * np.abs(W_star).max()
    points = {}
    for scale in SCALES:
        cert = mc.certify(prob, W_star + scale * noise)
        points[f"{scale:g}"] = {"relative_gap": cert.relative_gap,
                                "rounding": cert.rounding / abs(cert.objective),
                                "method": cert.method}
    times = []
    for _ in range(20):
        start = time.perf_counter()
        mc.certify(prob, W_star, gram=False)
        times.append(time.perf_counter() - start)
    return {"points": points, "certify_ms": 1e3 * float(np.median(times))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="without the T = 1000 dense K")
    parser.add_argument("--out", default="benchmarks/results/bench_quadratic_gaps.json")
    args = parser.parse_args()
    threadpool_limits(1)
    rows = {name: measure(prob) for name, prob in cases(args.quick)}
    rows.update({name: measure(prob, K) for name, prob, K in l1_cases()})
    print(f"{'problem':<31}" + "".join(f"{'σ = ' + format(s, 'g'):>11}" for s in SCALES)
          + f"{'certify ms':>12}  method at W*")
    for name, row in rows.items():
        gaps = "".join(f"{p['relative_gap']:>11.2e}" for p in row["points"].values())
        print(f"{name:<31}{gaps}{row['certify_ms']:>12.2f}  {row['points']['0']['method']}")
    write_json(args.out, {"meta": machine(), "scales": SCALES, "rows": rows})


if __name__ == "__main__":
    main()
