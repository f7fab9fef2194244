"""Where bench_scaling's timed call spends its first call, part by part, and A/B of two trees.

Usage::

    python benchmarks/bench_first_call.py                        # this tree, tasks_chain
    python benchmarks/bench_first_call.py --base /tmp/base --runs 20 --cases tasks_chain
    git worktree add --detach /tmp/base <commit>                 # (a tree to compare with)

bench_scaling's quadratic rows time one call per process, after one warm-up solve at
T = 20: ``mtlcvx_solve`` (penalties, ``Problem``, ``solve`` with its certificate, then
``default_backend``). At T = 100 that call is about a millisecond, and most of it is
Python and NumPy code running for the second time in its process: each part costs
several times what it costs warm, so it is timed here in the state the benchmark
times it. Each run is a fresh process that warms up as bench_scaling's worker does,
builds the T = 100 data (untimed, as there), then makes the same timed call with every
part wrapped in a CPU-time clock (``time.process_time_ns``; the wrappers add about
0.2 µs each). The parts:

* ``chain``, ``GraphLaplacian``, ``Ridge``, ``from_factor``, ``Problem``: building the
  problem (``SquaredLoss`` is in ``Problem``'s share);
* ``dispatch``: ``Problem.solve`` minus the backend's ``solve`` (argument checks, BLAS
  thread limit, backend resolution, status);
* ``coupling``, ``grams`` (the task Gram matrices or the shared design's Gram),
  ``route`` (the structured solve; the banded and Woodbury routes write their Gram
  products in their own arrays), ``certify``, ``direct rest``: the backend's solve;
* ``band``: ``GraphLaplacian``'s band, read inside ``coupling`` (and counted there);
* ``default_backend``: asked by the timed call after the solve;
* ``total``: the whole timed call.

A part called inside another part counts in that one (the task Gram matrices a
certificate reads count in ``certify``), so the parts other than ``band`` add up to at
most ``total``.

With ``--base TREE`` (a source tree of the package, for example a ``git worktree`` of
another commit) the runs alternate between TREE and this tree, both timed by this tree's
bench_scaling, and the table gives medians and their ratio (this tree / base). Results
go to ``benchmarks/results/bench_first_call.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _harness import machine, run_child, write_json

HERE = Path(__file__).resolve().parent
TREE = HERE.parent
CASES = ("shared_chain", "tasks_chain", "tasks_lowrank")


def worker(spec: dict[str, Any], out: str) -> None:
    sys.path.insert(0, spec["tree"])  # the package of the tree under test
    import bench_scaling as bs

    import mtlcvx as mc
    from mtlcvx import oracles, relations
    from mtlcvx.backends import direct
    from mtlcvx.data import MultiTaskData

    if Path(spec["tree"]).resolve() not in Path(mc.__file__).resolve().parents:
        raise SystemExit(f"mtlcvx came from {mc.__file__}, not from the tree {spec['tree']}")
    clock = time.process_time_ns
    spent: dict[str, float] = {}
    inside = [0]  # parts running: a part called inside another counts in that one

    def wrap(owner: Any, name: str, label: str, nested: bool = False) -> None:
        """Time ``owner.name`` as ``label``; ``nested``: a container (``Problem.solve``,
        the backend's ``solve``) or a part shown inside another (``band``)."""
        inner = getattr(owner, name, None)
        if inner is None:  # a part the tree does not have
            return

        def timed(*args: Any, **kwargs: Any) -> Any:
            if inside[0] and not nested:
                return inner(*args, **kwargs)
            inside[0] += not nested
            start = clock()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + (clock() - start) / 1e3
                inside[0] -= not nested

        # a static or class method is read bound (or plain): the wrapper must not bind again
        raw = vars(owner).get(name) if isinstance(owner, type) else None
        setattr(owner, name, staticmethod(timed)
                if isinstance(raw, (staticmethod, classmethod)) else timed)

    wrap(relations, "chain", "chain")
    wrap(mc.GraphLaplacian, "__init__", "GraphLaplacian")
    wrap(mc.Ridge, "__init__", "Ridge")
    wrap(mc.TaskRelation, "from_factor", "from_factor")
    wrap(mc.Problem, "__init__", "Problem")
    wrap(mc.Problem, "solve", "Problem.solve", nested=True)
    wrap(direct.DirectBackend, "solve", "direct", nested=True)
    wrap(oracles, "coupling", "coupling")
    wrap(mc.GraphLaplacian, "_compute_band", "band", nested=True)
    wrap(MultiTaskData, "task_grams", "grams")
    wrap(MultiTaskData, "gram", "grams")
    wrap(direct.DirectBackend, "_structured", "route")  # (its name in older --base trees)
    wrap(direct.DirectBackend, "_per_task_blocks", "route")
    wrap(direct.DirectBackend, "_sparse_system", "route")  # (these two called alone)
    wrap(direct.DirectBackend, "_woodbury", "route")
    wrap(direct.DirectBackend, "_sylvester", "route")
    wrap(direct, "certify", "certify")
    wrap(mc.backends, "default_backend", "default_backend")

    small = bs.make_data(spec["case"], 20, True)
    bs.mtlcvx_solve(spec["case"], small, bs.mtlcvx_data(small))  # bench_scaling's warm-up
    D = bs.make_data(spec["case"], spec["T"], False)
    data = bs.mtlcvx_data(D)
    spent.clear()
    start = clock()
    bs.mtlcvx_solve(spec["case"], D, data)
    spent["total"] = (clock() - start) / 1e3
    spent["dispatch"] = spent.pop("Problem.solve") - spent["direct"]
    spent["direct rest"] = spent.pop("direct") - sum(
        spent.get(k, 0.0) for k in ("coupling", "grams", "route", "certify"))
    Path(out).write_text(json.dumps({"outcome": "ok", "parts_us": spent}))


ORDER = ("chain", "GraphLaplacian", "Ridge", "from_factor", "Problem", "dispatch",
         "coupling", "band", "grams", "route", "certify", "direct rest", "default_backend",
         "total")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="tasks_chain", help=f"some of {', '.join(CASES)}")
    parser.add_argument("--T", type=int, default=100)
    parser.add_argument("--runs", type=int, default=12, help="fresh processes per tree")
    parser.add_argument("--quick", action="store_true", help="3 runs per tree")
    parser.add_argument("--base", default=None, help="a source tree to compare with")
    parser.add_argument("--threads", default="1", help="OPENBLAS_NUM_THREADS of the runs")
    parser.add_argument("--out", default=str(HERE / "results" / "bench_first_call.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker), args.result)
        return
    if args.quick:
        args.runs = 3
    if args.base and not (Path(args.base) / "mtlcvx" / "__init__.py").is_file():
        parser.error(f"--base {args.base} holds no mtlcvx package (a source tree's root)")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": args.threads}
    trees = {"base": args.base, "this": str(TREE)} if args.base else {"this": str(TREE)}
    report: dict[str, Any] = {"meta": {**machine(), "runs": args.runs, "T": args.T,
                                       "trees": trees}, "cases": {}}
    for case in args.cases.split(","):
        runs: dict[str, list[dict[str, float]]] = {side: [] for side in trees}
        for _ in range(args.runs):
            for side, tree in trees.items():  # alternating, so both see the same load
                r = run_child(__file__, {"case": case, "T": args.T, "tree": tree}, 120, env)
                if r.get("outcome") != "ok":
                    raise SystemExit(f"{case} ({side}): {r.get('outcome')}: {r.get('error')}")
                runs[side].append(r["parts_us"])
        medians = {side: {k: statistics.median(r.get(k, 0.0) for r in rs)
                          for k in ORDER if any(k in r for r in rs)}
                   for side, rs in runs.items()}
        report["cases"][case] = {"medians_us": medians, "runs_us": runs}
        print(f"\n{case}, T = {args.T}: first call after the warm-up, CPU µs, medians of "
              f"{args.runs} fresh processes" + (" alternating base / this tree" if args.base
                                                 else ""))
        head = "| part | base | this | this / base |" if args.base else "| part | µs |"
        print(head)
        print("|---" * (head.count("|") - 1) + "|")
        for k in medians["this"]:
            if args.base:
                a, b = medians["base"].get(k, 0.0), medians["this"][k]
                print(f"| {k} | {a:.1f} | {b:.1f} | {b / a:.2f} |" if a else
                      f"| {k} | – | {b:.1f} | |")
            else:
                print(f"| {k} | {medians['this'][k]:.1f} |")
    write_json(args.out, report)


if __name__ == "__main__":
    main()
