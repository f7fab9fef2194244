"""The ``mtlcvx`` command line: ``demo``, ``backends`` and ``malsar``.

``mtlcvx malsar Least_L21 school.mat --rho1 500 [--out DIR]`` solves MALSAR's formulation on a
MALSAR data file (cell arrays ``X`` and ``Y``) to a certified optimum.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import datasets, malsar, relations
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


_MALSAR_PARAMS = ("rho1", "rho2", "rho3", "k")


def _load_mat(path: str, what: str) -> dict[str, Any]:
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        return scipy.io.loadmat(path)
    except FileNotFoundError:
        raise MTLError(f"{what} file {path!r} does not exist") from None
    except (OSError, ValueError, TypeError, MatReadError) as err:
        raise MTLError(f"cannot read {what} file {path!r} as a .mat file ({err})") from None


def run_malsar(args: argparse.Namespace) -> int:
    """``mtlcvx malsar NAME DATA.mat --rho1 …``: solve, print, optionally save and compare."""
    import scipy.io

    form = malsar._lookup(args.name)
    mat = _load_mat(args.data, "data")
    params: dict[str, Any] = {p: getattr(args, p) for p in _MALSAR_PARAMS
                              if getattr(args, p) is not None}
    if args.R is not None:
        if args.R in ("chain", "mean"):
            params["R"] = args.R
        elif args.R in mat:
            params["R"] = mat[args.R]
        else:
            raise MTLError(f"--R must be 'chain', 'mean' or a variable of {args.data}; "
                           f"{args.R!r} is none of these")
    missing = [p for p in form.parameters if p not in params]
    extra = [p for p in params if p not in form.parameters]
    if missing or extra:
        wrong = (f"needs --{', --'.join(missing)}" if missing
                 else f"takes no --{', --'.join(extra)}")
        raise MTLError(f"{form.name} {wrong} (its parameters: --{', --'.join(form.parameters)})")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if args.compare is not None:
            W = _load_mat(args.compare, "--compare").get("W")
            if W is None:
                raise MTLError(f"--compare file {args.compare!r} has no variable 'W'")
            report = malsar.compare(form.name, mat, W, backend=args.backend, tol=args.tol,
                                    **params)
            sol = report.solution
            print(report.summary())
        else:
            report = None
            prob = malsar.problem(form.name, mat, **params)
            sol = prob.solve(backend=args.backend, tol=args.tol)
            print(sol.summary())
    elapsed = time.perf_counter() - start
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(out / f"{form.name}.mat", {"W": sol.W, **sol.parts})
        cert = sol.certificate
        summary = {
            "formulation": form.name, "objective_text": form.objective, "data": args.data,
            "parameters": {k: v for k, v in params.items() if k != "R"},
            "R": args.R, "status": sol.status, "backend": sol.backend,
            "objective": sol.objective, "certified_gap": cert.gap,
            "certified_relative_gap": cert.relative_gap, "time_s": elapsed,
        }
        if report is not None:
            summary["compare"] = {"objective": report.objective, "excess": report.excess,
                                  "excess_bound": report.excess_bound,
                                  "relative_excess": report.relative_excess}
        text = json.dumps(summary, indent=2, ensure_ascii=False)
        (out / f"{form.name}.json").write_text(text + "\n")
        print(f"wrote {out / (form.name + '.mat')} (W) and {out / (form.name + '.json')}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mtlcvx`` / ``python -m mtlcvx``; returns the exit code.

    Bad input to ``malsar`` prints one line ``mtlcvx malsar: error: …`` on stderr and
    returns 2.
    """
    parser = _Parser(prog="mtlcvx", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="solve a synthetic problem with every backend")
    p_demo.add_argument("--tasks", type=int, default=20)
    p_demo.add_argument("--features", type=int, default=30)
    p_demo.add_argument("--seed", type=int, default=0)
    sub.add_parser("backends", help="list backends and the cones they support")
    names = ", ".join(f.name for f in malsar.formulations())
    p_mal = sub.add_parser(
        "malsar", help="solve a MALSAR formulation on a MALSAR .mat file, certified",
        description=f"Solve MALSAR's NAME ({names}) on DATA (a .mat file with cell arrays "
        "X and Y, as MALSAR's) with MALSAR's objective, to a certified optimum.")
    p_mal.add_argument("name", help="MALSAR solver, e.g. Least_L21")
    p_mal.add_argument("data", help="MALSAR .mat data file with cell arrays X and Y")
    for p in _MALSAR_PARAMS:
        p_mal.add_argument(f"--{p}", type=float, default=None)
    p_mal.add_argument("--R", default=None,
                       help="Least_SRMTL's R: 'chain', 'mean' or a variable of the data file")
    p_mal.add_argument("--backend", default=None, help="backend (default: the package's rule)")
    p_mal.add_argument("--tol", type=float, default=1e-8, help="certified relative gap")
    p_mal.add_argument("--compare", default=None, metavar="W.mat",
                       help="a .mat file with MALSAR's W: report how far above the optimum")
    p_mal.add_argument("--out", default=None, metavar="DIR",
                       help="write DIR/NAME.mat (W) and DIR/NAME.json (summary)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.tasks, args.features, args.seed)
    if args.command == "malsar":
        try:
            return run_malsar(args)
        except MTLError as err:
            print(f"mtlcvx malsar: error: {' '.join(str(err).split())}", file=sys.stderr)
            return 2
    return backends()
