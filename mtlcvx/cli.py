"""The ``mtlcvx`` command line: ``solve``, ``validate``, ``demo``, ``backends`` and ``malsar``.

``mtlcvx solve spec.toml [--out DIR]`` solves the problem a TOML spec file describes (data,
loss, penalties by name, backend and tolerance; docs/cli.md has the format) and
``mtlcvx validate spec.toml iterates.npz`` scores a method's iterates against its optimum.

``mtlcvx malsar Least_L21 school.mat --rho1 500 [--out DIR]`` solves MALSAR's formulation on a
MALSAR data file (cell arrays ``X`` and ``Y``) to a certified optimum.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import importlib.util
import json
import multiprocessing
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import datasets, malsar, relations
from .backends import BACKENDS, available_backends
from .exceptions import ConvergenceWarning, MTLError, SolverFailed, SpecError
from .penalties import Ridge, TaskRelation
from .problem import Problem
from .spec import load_spec
from .validation import validate


@contextlib.contextmanager
def _progress(total: int, desc: str, enabled: bool) -> Iterator[Any]:
    """A tqdm bar on stderr (the ``progress`` extra), shown only on a terminal and only
    after half a second; yields None when off or tqdm is not installed. Always closed."""
    bar = None
    if enabled and importlib.util.find_spec("tqdm") is not None:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False, disable=None,
                   delay=0.5)
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


def _advance(bar: Any, stage: str) -> None:
    """Mark a stage done on ``bar`` (if any) and name the next one."""
    if bar is not None:
        bar.update()
        bar.set_description_str(stage)


def _demo_problem(n_tasks: int, n_features: int, seed: int) -> Problem:
    rng = np.random.default_rng(seed)
    n_samples = rng.integers(20, 80, size=n_tasks)
    data, truth = datasets.make_related_tasks(n_tasks, n_features, n_samples, n_clusters=3,
                                              random_state=seed, return_truth=True)
    K = relations.laplacian(truth["adjacency"])
    return Problem(data, penalties=[TaskRelation(K, alpha=0.5), Ridge(alpha=0.01)],
                   fit_intercept=True)


def _demo_child(conn: Any, backend: str, n_tasks: int, n_features: int, seed: int) -> None:
    """Solve the demo problem with one backend in a child process; send the outcome."""
    prob = _demo_problem(n_tasks, n_features, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        try:
            sol = prob.solve(backend=backend)
        except MTLError as err:
            conn.send(("failed", " ".join(str(err).split())))
            return
    conn.send(("solved", sol.status, sol.objective, sol.certificate.relative_gap,
               time.perf_counter() - start))


def _run_limited(backend: str, args: tuple[int, int, int], time_limit: float) -> tuple:
    """Run :func:`_demo_child` in a process killed after ``time_limit`` seconds."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_demo_child, args=(sender, backend, *args), daemon=True)
    proc.start()
    sender.close()
    try:
        if receiver.poll(time_limit):
            return receiver.recv()
        return ("skipped", f"over the {time_limit:g} s time limit")
    except EOFError:
        proc.join()
        return ("failed", f"the solver process exited with code {proc.exitcode}")
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        receiver.close()


def demo(n_tasks: int = 20, n_features: int = 30, seed: int = 0,
         backends: Sequence[str] | None = None, time_limit: float = 60.0,
         progress: bool = True) -> int:
    """Solve one synthetic related-tasks problem with every installed backend.

    Each backend runs in its own process, killed after ``time_limit`` seconds and then
    reported as skipped, so a slow solver never hangs the demo.
    """
    names = list(available_backends()) if backends is None else list(backends)
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise MTLError(f"--backends: unknown backend {unknown[0]!r}; choose from "
                       f"{', '.join(BACKENDS)}")
    if not time_limit > 0:
        raise MTLError(f"--time-limit must be a positive number of seconds, got {time_limit}")
    prob = _demo_problem(n_tasks, n_features, seed)
    print(f"demo: {prob.data!r}")
    print("penalties: TaskRelation(planted cluster Laplacian, alpha=0.5) + Ridge(alpha=0.01), "
          "per-task mean squared loss, intercepts")
    ref = prob.solve(backend="direct")
    header = (f"{'backend':<10} {'status':<11} {'objective':>20} {'rel. diff vs direct':>20} "
              f"{'certified rel. gap':>19} {'time [s]':>9}")
    print(header)
    print("-" * len(header))
    with _progress(len(names), "demo", progress) as bar:
        for name in names:
            if bar is not None:
                bar.set_postfix_str(name)
            if not BACKENDS[name].is_installed():
                row = f"{name:<10} not installed ({BACKENDS[name].install_hint()})"
            else:
                outcome = _run_limited(name, (n_tasks, n_features, seed), time_limit)
                if outcome[0] == "solved":
                    _, status, objective, gap, elapsed = outcome
                    rel = abs(objective - ref.objective) / max(1.0, abs(ref.objective))
                    gap_text = "n/a" if gap is None else f"{gap:.2e}"
                    row = (f"{name:<10} {status:<11} {objective:>20.12f} {rel:>20.2e} "
                           f"{gap_text:>19} {elapsed:>9.3f}")
                else:
                    row = f"{name:<10} {outcome[0]} ({outcome[1]})"
            if bar is None:
                print(row)
            else:
                bar.write(row, file=sys.stdout)
                bar.update()
    print("status is 'optimal' when the certified relative gap, a bound on "
          "(F(W) - F*)/|F(W)| computed from W alone, is <= tol = 1e-8")
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
            exported = _load_mat(args.compare, "--compare")
            if "W" not in exported:
                raise MTLError(f"--compare file {args.compare!r} has no variable 'W'")
            parts = {part: exported[name] for part, name in form.part_outputs.items()
                     if name in exported}
            M = exported.get("M") if form.relation is not None else None
            report = malsar.compare(form.name, mat, exported["W"], parts=parts or None, M=M,
                                    backend=args.backend, tol=args.tol, **params)
            sol = report.solution
            print(report.summary())
        elif form.relation is not None:
            report = None
            sol = malsar.learn(form.name, mat, backend=args.backend, tol=args.tol, **params)
            print(sol.summary())
        else:
            report = None
            sol = malsar.problem(form.name, mat, **params).solve(backend=args.backend,
                                                                 tol=args.tol)
            print(sol.summary())
    elapsed = time.perf_counter() - start
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        extra = sol.parts if form.relation is None else {"M": sol.matrix}
        scipy.io.savemat(out / f"{form.name}.mat", {"W": sol.W, **extra})
        cert = sol.certificate
        summary = {
            "formulation": form.name, "objective_text": form.objective, "data": args.data,
            "parameters": {k: v for k, v in params.items() if k != "R"}, "R": args.R,
            "status": sol.status,
            "route": sol.backend if form.relation is None else f"learn ({sol.method})",
            "objective": sol.objective, "certified_gap": cert.gap,
            "certified_relative_gap": cert.relative_gap, "time_s": elapsed,
        }
        if report is not None:
            summary["compare"] = {"objective": report.objective, "excess": report.excess,
                                  "excess_bound": report.excess_bound,
                                  "relative_excess": report.relative_excess}
        text = json.dumps(summary, indent=2, ensure_ascii=False)
        (out / f"{form.name}.json").write_text(text + "\n")
        saved = ", ".join(["W", *extra])
        print(f"wrote {out / (form.name + '.mat')} ({saved}) and {out / (form.name + '.json')}")
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, default=_jsonable, ensure_ascii=False) + "\n")


def _write_solution(out: Path, sol: Any, summary: dict[str, Any]) -> list[Path]:
    """W.npz, W.csv (labelled rows and columns) and summary.json in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    d, T = sol.W.shape
    features = list(range(d)) if sol.feature_names is None else sol.feature_names
    tasks = list(range(T)) if sol.tasks is None else sol.tasks
    arrays = {"W": sol.W, "feature_names": np.asarray(features), "tasks": np.asarray(tasks)}
    if sol.intercept is not None:
        arrays["intercept"] = sol.intercept
    np.savez(out / "W.npz", **arrays)
    with open(out / "W.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["feature", *tasks])
        for name, row in zip(features, sol.W, strict=True):
            writer.writerow([name, *map(repr, row.tolist())])
        if sol.intercept is not None:
            writer.writerow(["intercept", *map(repr, sol.intercept.tolist())])
    _write_json(out / "summary.json", summary)
    return [out / "W.npz", out / "W.csv", out / "summary.json"]


def run_solve(spec_path: str, out: str | None, progress: bool) -> int:
    """``mtlcvx solve SPEC [--out DIR]``: 0 when certified optimal, 1 when not."""
    with _progress(3, "reading spec", progress) as bar:
        loaded = load_spec(spec_path)
        _advance(bar, f"solving ({loaded.backend or 'default backend'})")
        sol = loaded.solve()
        _advance(bar, "writing")
    print(sol.summary())
    if out is not None:
        cert = sol.certificate
        summary = {
            "spec": str(loaded.path), "data": repr(loaded.problem.data),
            "penalties": [repr(p) for p in loaded.problem.penalties],
            "fit_intercept": loaded.problem.fit_intercept, "status": sol.status,
            "backend": sol.backend, "objective": sol.objective,
            "solver_objective": sol.solver_objective, "compile_time": sol.compile_time,
            "solve_time": sol.solve_time, "iterations": sol.iterations,
            "certificate": None if cert is None else dataclasses.asdict(cert),
        }
        written = _write_solution(Path(out), sol, summary)
        print(f"wrote {', '.join(map(str, written))}")
    return 0 if sol.status == "optimal" else 1


def run_validate(spec_path: str, iterates: str, out: str | None, progress: bool) -> int:
    """``mtlcvx validate SPEC ITERATES.npz``: score the array ``W`` (k, d, T) or (d, T)."""
    with _progress(3, "reading spec", progress) as bar:
        loaded = load_spec(spec_path)
        _advance(bar, "reading iterates")
        W = _read_iterates(Path(iterates), loaded.problem)
        _advance(bar, "scoring (reference solve first)")
        report = validate(loaded.problem, list(W) if W.ndim == 3 else W)
    print(report)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        target = Path(out) / "validation.json"
        _write_json(target, {
            "spec": str(loaded.path), "iterates": iterates,
            "reference_objective": report.reference_objective,
            "reference_method": report.reference_method,
            "iteration": report.iterations, "objective": report.objective,
            "suboptimality": report.suboptimality, "distance": report.distance,
            "final_certificate": dataclasses.asdict(report.certificate),
        })
        print(f"wrote {target}")
    return 0


def _read_iterates(path: Path, problem: Problem) -> np.ndarray:
    """The array ``W`` of an iterates file, (k, d, T) or (d, T) for ``problem``."""
    if not path.is_file():
        raise SpecError(f"iterates file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as err:
        raise SpecError(f"cannot read {path.name} as a .npz file ({err})") from None
    if "W" not in arrays:
        raise SpecError(f"{path.name} has no array 'W' (it has {', '.join(arrays) or 'none'}); "
                        "save your iterates with np.savez(path, W=np.stack(iterates))")
    W = arrays["W"]
    d, T = problem.n_features, problem.n_tasks
    if W.ndim not in (2, 3) or W.shape[-2:] != (d, T):
        raise SpecError(f"{path.name}: W has shape {W.shape}; the spec's problem needs "
                        f"(k, {d}, {T}) iterates or one ({d}, {T}) matrix")
    return W


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mtlcvx`` / ``python -m mtlcvx``; returns the exit code.

    Bad input (a bad spec, a missing file, an unknown backend or penalty, wrong shapes)
    prints one line ``mtlcvx COMMAND: error: …`` on stderr and returns 2; a solver that
    returns no solution returns 1, as does ``solve`` when the result is not certified
    optimal.
    """
    parser = _Parser(prog="mtlcvx", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="solve a synthetic problem with every backend")
    p_demo.add_argument("--tasks", type=int, default=20)
    p_demo.add_argument("--features", type=int, default=30)
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--backends", default=None, metavar="NAME,NAME",
                        help="comma-separated backends (default: every known backend)")
    p_demo.add_argument("--time-limit", type=float, default=60.0, metavar="SECONDS",
                        help="per backend; a backend over it is killed and reported skipped")
    p_solve = sub.add_parser("solve", help="solve the problem a TOML spec file describes",
                             description="Solve the problem in SPEC (see docs/cli.md) to a "
                             "certified optimum; exit code 0 when certified optimal.")
    p_solve.add_argument("spec", help="TOML problem specification")
    p_solve.add_argument("--out", default=None, metavar="DIR",
                         help="write DIR/W.npz, DIR/W.csv (labelled) and DIR/summary.json")
    p_val = sub.add_parser("validate", help="score iterates against the spec's exact optimum",
                           description="Score the iterates W (k, d, T) saved in ITERATES "
                           "(.npz) against the exact optimum of the problem in SPEC.")
    p_val.add_argument("spec", help="TOML problem specification")
    p_val.add_argument("iterates", help=".npz file with an array W of shape (k, d, T) or (d, T)")
    p_val.add_argument("--out", default=None, metavar="DIR", help="write DIR/validation.json")
    for p in (p_demo, p_solve, p_val):
        p.add_argument("--no-progress", dest="progress", action="store_false",
                       help="no progress bar on stderr (shown by default when tqdm is installed)")
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
                       help="a .mat file with MALSAR's W (and its parts: P, Q; L_hat, S_hat; "
                       "Tp, Tq; or M): report how far above the optimum")
    p_mal.add_argument("--out", default=None, metavar="DIR",
                       help="write DIR/NAME.mat (W) and DIR/NAME.json (summary)")
    args = parser.parse_args(argv)
    commands = {
        "demo": lambda: demo(args.tasks, args.features, args.seed,
                             None if args.backends is None else args.backends.split(","),
                             args.time_limit, args.progress),
        "solve": lambda: run_solve(args.spec, args.out, args.progress),
        "validate": lambda: run_validate(args.spec, args.iterates, args.out, args.progress),
        "malsar": lambda: run_malsar(args),
        "backends": backends,
    }
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default", ConvergenceWarning)  # reported, never raised
            code = commands[args.command]()
        for warning in caught:  # one line each, without the source line warnings.warn adds
            print(f"mtlcvx {args.command}: warning: {' '.join(str(warning.message).split())}",
                  file=sys.stderr)
        return code
    except (MTLError, ImportError, OSError) as err:  # OSError: an unwritable --out
        print(f"mtlcvx {args.command}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1 if isinstance(err, SolverFailed) else 2
