"""benchmarks/bench_first_call.py: every part of the timed call is found and timed once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_parts_are_found_and_add_up_to_at_most_the_whole_call(tmp_path):
    # one fresh process of the per-task chain against this tree; the whole call is timed by
    # its own clock around bench_scaling's timed function, and the parts (each counted in
    # the outermost part it runs in) are disjoint pieces of it
    out = tmp_path / "first_call.json"
    subprocess.run([sys.executable, str(BENCHMARKS / "bench_first_call.py"), "--runs", "1",
                    "--out", str(out)], check=True, timeout=120, capture_output=True)
    parts = json.loads(out.read_text())["cases"]["tasks_chain"]["runs_us"]["this"][0]
    expected = {"chain", "GraphLaplacian", "Ridge", "Problem", "dispatch", "coupling", "band",
                "grams", "route", "certify", "direct rest", "default_backend", "total"}
    assert expected <= parts.keys()
    assert all(value >= 0 for value in parts.values())
    exclusive = sum(value for name, value in parts.items() if name not in ("band", "total"))
    assert exclusive <= parts["total"] and parts["band"] <= parts["coupling"]
