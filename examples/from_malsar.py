"""Coming from MALSAR: its least-squares formulations on School, by name, certified
================================================================================

Every formulation of ``mc.malsar.formulations()`` is built by ``mc.malsar.problem`` with
MALSAR's name and the School parameters it lists (``Formulation.school``), on the School
data as MALSAR ships it (139 schools, the raw 28 columns including MALSAR's bias column, no
intercept), so ``sol.objective`` is the number MALSAR's own objective gives. For each one the script

1. runs MALSAR's accelerated gradient with its default stopping rule (relative change of
   the objective ≤ 1e-4, at most 1000 iterations; ``mc.malsar.default_rule``), which is
   what a MALSAR user gets without touching ``opts``, and
2. hands that ``W`` to ``mc.malsar.compare``, exactly as one would a ``W`` exported from
   MATLAB: it solves the same objective to a certified relative gap of 1e-8 and reports how
   far above the optimum MALSAR stopped.

The figure (``from_malsar.png``) shows, for each formulation whose solver is emulated, how
far above the certified optimum MALSAR's default rule stopped, ``(F(W_malsar) − F*)/F*``.

Run ``python examples/from_malsar.py``; ``run(quick=True)`` runs four of the formulations
(``QUICK``) on the first 6 schools, with Clarabel for every certified solve (the package's
default route otherwise), and writes the figure to a temporary directory.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import mtlcvx as mc

#: The configurations ``run(quick=True)`` keeps: one of each kind (norm, quadratic + norm,
#: W = P + Q, learned M).
QUICK = ("Least_L21", "Least_SRMTL(R=mean)", "Least_Dirty", "Least_CMTL")


def school(quick: bool) -> mc.MultiTaskData:
    """School as MALSAR ships it (the first 6 schools when ``quick``)."""
    data = mc.datasets.load_school()
    if quick:
        data = mc.MultiTaskData(data.X[:6], data.y[:6])
    return data


def _learned(name: str, params: dict, data: mc.MultiTaskData) -> dict:
    """CMTL / CASO: W and M by ``mc.malsar.learn`` (MALSAR's own iteration on (W, M) is
    not emulated here; benchmarks/bench_relations.py does it for CMTL)."""
    start = time.perf_counter()
    res = mc.malsar.learn(name, data, **params)
    elapsed = time.perf_counter() - start
    print(f"{name:<24} {res.objective:>18.6f} {'learn':<9} {elapsed:>7.2f} "
          f"{res.certificate.relative_gap:>13.1e} | {'(W, M) not emulated':>33}")
    return {"formulation": name, "name": name, "params": params, "optimum": res.objective,
            "status": res.status, "route": "learn", "time": elapsed,
            "relative_gap": res.certificate.relative_gap, "W": res.W, "M": res.matrix,
            "malsar_W": None}


def figure(rows: list[dict], out_dir: Path) -> Path:
    """MALSAR's default rule: its objective above the certified optimum, per formulation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    compared = [r for r in rows if "relative_excess" in r]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(compared) + 1.2))
    ax.barh([r["formulation"] for r in compared],
            [100 * r["relative_excess"] for r in compared], color="tab:red")
    ax.invert_yaxis()
    ax.set_xlabel("MALSAR default rule: objective above the certified optimum F* (%)")
    ax.set_title(f"School ({rows[0]['W'].shape[1]} schools): where MALSAR's default rule stops")
    fig.tight_layout()
    png = out_dir / "from_malsar.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    print(f"figure written to {png}")
    return png


def run(quick: bool | None = None) -> list[dict]:
    """Solve every available formulation; returns one dict per row of the printed table."""
    quick = mc.datasets.quick_mode(quick)
    data = school(quick)
    backend = "clarabel" if quick else None  # interior point is fastest at the quick size
    configurations = [(f, params) for f in mc.malsar.formulations() for params in f.school
                      if not quick or mc.malsar.label(f.name, params) in QUICK]
    rows = []
    print(f"School as MALSAR ships it: {data.n_tasks} tasks, {data.n_features} features "
          "(bias column included, no intercept)")
    header = (f"{'formulation':<24} {'certified optimum':>18} {'route':<9} {'time[s]':>7} "
              f"{'cert. rel gap':>13} | {'MALSAR rule: its':>16} {'iters':>6} {'above F*':>9}")
    print(header)
    print("-" * len(header))
    for form, params in configurations:
        name = form.name
        if form.relation is not None:
            rows.append(_learned(name, params, data))
            continue
        prob = mc.malsar.problem(name, data, **params)
        malsar = mc.malsar.default_rule(prob)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mc.ConvergenceWarning)
            report = mc.malsar.compare(name, data, malsar.W, parts=malsar.parts or None,
                                       backend=backend, **params)
        elapsed = time.perf_counter() - start
        sol = report.solution
        row = {"formulation": mc.malsar.label(name, params), "name": name, "params": params,
               "optimum": report.optimum, "status": sol.status, "route": sol.backend,
               "time": elapsed, "relative_gap": sol.certificate.relative_gap,
               "W": sol.W, "malsar_W": malsar.W, "malsar_parts": malsar.parts,
               "malsar_objective": report.objective,
               "malsar_iterations": malsar.iterations, "malsar_stopped": malsar.stopped,
               "relative_excess": report.relative_excess}
        rows.append(row)
        print(f"{row['formulation']:<24} {report.optimum:>18.6f} {sol.backend:<9} "
              f"{elapsed:>7.2f} {row['relative_gap']:>13.1e} | {report.objective:>16.2f} "
              f"{malsar.iterations:>6d} {100 * report.relative_excess:>8.2f}%")
    print("'above F*' is (F(W_malsar) − F(W*)) / F(W*), with F(W*) certified within 1e-8 of "
          "the optimum.")
    figure(rows, Path(tempfile.mkdtemp(prefix="mtlcvx_malsar_")) if quick else Path.cwd())
    return rows


if __name__ == "__main__":
    run()
