"""benchmarks/bench_scaling.py: a run of some cases merges into the results file."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))  # its _harness
    try:
        spec = importlib.util.spec_from_file_location("mtlcvx_bench_scaling",
                                                      BENCHMARKS / "bench_scaling.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def _row(case, T, time, baseline_time, **extra):
    return {"case": case, "T": T, "time": time, "baseline_time": baseline_time, **extra}


def test_a_partial_run_replaces_its_rows_and_keeps_the_others(bench):
    # an earlier file of the format without per-row settings: two chain rows, l21, builds
    old = {"rows": [_row("tasks_chain", 1000, 9.0, 9.0), _row("shared_chain", 100, 1.0, 0.5),
                    _row("l21", 50, 0.07, 0.07)],
           "growth": {"shared_chain": [0.0, 0.0]}, "build": [{"penalty": "GraphLaplacian"}],
           "OPENBLAS_NUM_THREADS": "1", "load_average": [0.5, 0.4, 0.3], "repeats": 5}
    new = [_row("shared_chain", 100, 2.0, 1.0, measured_at="2026-12-01T04:00:00Z",
                threads="2", load_average=[1.0, 1.0, 1.0]),
           _row("shared_chain", 1000, 20.0, 4.0, measured_at="2026-12-01T04:01:00Z",
                threads="2", load_average=[1.0, 1.0, 1.0])]
    out = bench.merge_results(old, new, [])
    assert [(r["case"], r["T"]) for r in out["rows"]] == [
        ("shared_chain", 100), ("shared_chain", 1000), ("tasks_chain", 1000), ("l21", 50)]
    assert out["rows"][:2] == new  # this run's rows, replacing the earlier T = 100 one
    # the kept rows carry the earlier run's settings, not this run's
    assert out["rows"][2] == {**old["rows"][0], "threads": "1", "load_average": [0.5, 0.4, 0.3]}
    assert out["rows"][3]["threads"] == "1" and "measured_at" not in out["rows"][3]
    # growth refitted through the two merged points: log(t2/t1)/log(T2/T1)
    ours, hand = out["growth"]["shared_chain"]
    assert ours == pytest.approx(math.log(20.0 / 2.0) / math.log(10.0), rel=1e-12)
    assert hand == pytest.approx(math.log(4.0 / 1.0) / math.log(10.0), rel=1e-12)
    assert "tasks_chain" not in out["growth"]  # one T only: no slope
    assert out["build"] == old["build"]  # this run did not time them
    assert bench.merge_results(out, [], [{"penalty": "x"}])["build"] == [{"penalty": "x"}]


def test_a_first_run_writes_its_own_rows(bench):
    new = [_row("trace", 500, 0.2, 0.26, measured_at="2026-12-01T04:00:00Z", threads="1",
                load_average=[0.0, 0.0, 0.0])]
    out = bench.merge_results({}, new, [])
    assert out["rows"] == new and out["growth"] == {} and out["build"] == []
