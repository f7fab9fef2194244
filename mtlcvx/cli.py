"""The ``mtlcvx`` command line: ``python -m mtlcvx demo`` and ``python -m mtlcvx backends``."""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence

import numpy as np

from . import datasets, relations
from .backends import BACKENDS, available_backends
from .exceptions import ConvergenceWarning, MTLError
from .penalties import Ridge, TaskRelation
from .problem import Problem


def demo(n_tasks: int = 20, n_features: int = 30, seed: int = 0) -> int:
    """Solve one synthetic related-tasks problem with every installed backend."""
    rng = np.random.default_rng(seed)
    n_samples = rng.integers(20, 80, size=n_tasks)
    data, truth = datasets.make_related_tasks(n_tasks, n_features, n_samples, n_clusters=3,
                                              random_state=seed, return_truth=True)
    K = relations.laplacian(truth["adjacency"])
    prob = Problem(data, penalties=[TaskRelation(K, alpha=0.5), Ridge(alpha=0.01)],
                   fit_intercept=True)
    print(f"demo: {data!r}")
    print("penalties: TaskRelation(planted cluster Laplacian, alpha=0.5) + Ridge(alpha=0.01), "
          "per-task mean squared loss, intercepts")
    ref = prob.solve(backend="direct")
    header = (f"{'backend':<10} {'status':<11} {'objective':>20} {'rel. diff vs direct':>20} "
              f"{'certified rel. gap':>19} {'time [s]':>9}")
    print(header)
    print("-" * len(header))
    for name, info in available_backends().items():
        if not info.installed:
            print(f"{name:<10} not installed ({BACKENDS[name].install_hint()})")
            continue
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            try:
                sol = prob.solve(backend=name)
            except MTLError as err:
                print(f"{name:<10} failed: {err}")
                continue
        elapsed = time.perf_counter() - start
        rel = abs(sol.objective - ref.objective) / max(1.0, abs(ref.objective))
        gap = sol.certificate.relative_gap
        gap_text = "n/a" if gap is None else f"{gap:.2e}"
        print(f"{name:<10} {sol.status:<11} {sol.objective:>20.12f} {rel:>20.2e} "
              f"{gap_text:>19} {elapsed:>9.3f}")
    print("status is 'optimal' when the certified relative gap, a bound on "
          "(F(W) - F*)/max(1, |F(W)|) computed from W alone, is <= tol = 1e-8")
    return 0


def backends() -> int:
    """Print every backend, whether it is installed and what it supports."""
    for name, info in available_backends().items():
        state = "installed" if info.installed else f"missing ({BACKENDS[name].install_hint()})"
        print(f"{name:<10} {state:<40} {', '.join(sorted(info.cones))}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mtlcvx`` / ``python -m mtlcvx``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="mtlcvx", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="solve a synthetic problem with every backend")
    p_demo.add_argument("--tasks", type=int, default=20)
    p_demo.add_argument("--features", type=int, default=30)
    p_demo.add_argument("--seed", type=int, default=0)
    sub.add_parser("backends", help="list backends and the cones they support")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.tasks, args.features, args.seed)
    return backends()
