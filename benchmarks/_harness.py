"""Helpers shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["best_of", "fmt", "peak_rss_mb", "run_child"]


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process in MB (``VmHWM``), None where unavailable."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


_OOM_SIGNS = ("memory allocation", "memoryerror", "cannot allocate", "out of memory",
              "bad_alloc")


def run_child(script: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``script --worker SPEC --result FILE`` in a fresh process under a wall-clock limit.

    The worker writes its result as JSON to FILE. Returns that result (with ``child_wall``
    and, when the worker did not report one, the child's ``peak_rss_mb`` from the kernel),
    or an ``outcome`` of "timeout" (the process group is killed), "out of memory" or
    "crashed" with the end of the worker's stderr.
    """
    with tempfile.TemporaryDirectory(prefix="bench_") as tmp:
        result = os.path.join(tmp, "result.json")
        err_path = os.path.join(tmp, "stderr.txt")
        cmd = [sys.executable, os.path.abspath(script), "--worker", json.dumps(spec),
               "--result", result]
        start = time.perf_counter()
        timed_out = False
        with open(err_path, "w") as err_fh:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err_fh,
                                    start_new_session=True)
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - start > timeout:
                    timed_out = True
                    os.killpg(proc.pid, signal.SIGKILL)
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        child_rss = usage.ru_maxrss / 1024.0  # KiB on Linux
        if timed_out:
            return {"outcome": "timeout", "error": f"killed after {timeout:.0f} s",
                    "time": None, "peak_rss_mb": child_rss, "child_wall": wall,
                    "limit_s": timeout}
        if os.path.exists(result):
            out = json.loads(Path(result).read_text())
            out["child_wall"] = wall
            if out.get("peak_rss_mb") is None:
                out["peak_rss_mb"] = child_rss
            return out
        stderr = Path(err_path).read_text(errors="replace")
        oom = any(sign in stderr.lower() for sign in _OOM_SIGNS)
        return {"outcome": "out of memory" if oom else "crashed",
                "error": f"exit {proc.returncode}: " + stderr.strip()[-300:],
                "time": None, "peak_rss_mb": child_rss, "child_wall": wall}


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run whose outcome is "ok" (else the first run), a copy, with
    ``peak_rss_mb`` the largest over all runs and ``times`` every run's time."""
    ok = [r for r in runs if r.get("outcome") == "ok"]
    best = dict(min(ok, key=lambda r: r["time"])) if ok else dict(runs[0])
    rss = [r["peak_rss_mb"] for r in runs if r.get("peak_rss_mb") is not None]
    best["peak_rss_mb"] = max(rss) if rss else None
    best["times"] = [r.get("time") for r in runs]
    return best


def fmt(x: Any, spec: str) -> str:
    """``x`` formatted with ``spec``, or "-" for None."""
    return "-" if x is None else format(x, spec)
