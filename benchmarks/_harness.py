"""Helpers shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["MEM_LIMIT_BYTES", "REPEAT_BELOW", "TOL", "best_of", "fmt", "limit_memory",
           "machine", "peak_rss_mb", "reached", "repeated", "run_child", "write_json"]

#: The certified relative gap a route must reach.
TOL = 1e-8
#: Address-space limit (``RLIMIT_AS``) of a worker that calls :func:`limit_memory`.
MEM_LIMIT_BYTES = 6 * 1024**3
#: Seconds: a run faster than this is repeated (see :func:`repeated`); a slower one runs once.
REPEAT_BELOW = 10.0


def limit_memory() -> None:
    """Cap this process's address space at :data:`MEM_LIMIT_BYTES` (a worker calls it first),
    so that a solver running out of memory fails in its own process."""
    resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT_BYTES, MEM_LIMIT_BYTES))


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


def run_child(script: str, spec: dict[str, Any], timeout: float,
              env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script --worker SPEC --result FILE`` in a fresh process under a wall-clock limit
    (with environment ``env``, default this process's).

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
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err_fh, env=env,
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


def reached(r: dict[str, Any]) -> bool:
    """True when run ``r`` ended "ok" with a certified relative gap ≤ :data:`TOL`."""
    return (r.get("outcome") == "ok" and r.get("relative_gap") is not None
            and r["relative_gap"] <= TOL)


def repeated(script: str, spec: dict[str, Any], timeout: float, repeats: int, *,
             baseline: bool = False) -> dict[str, Any]:
    """:func:`best_of` the runs of ``script``'s worker on ``spec``, with ``reached`` set.

    The worker runs once; when that run ended "ok" in under :data:`REPEAT_BELOW` seconds
    and :func:`reached` the target (a ``baseline`` whatever its gap, since its time is
    what the routes are compared with), it runs ``repeats − 1`` more times.
    """
    runs = [run_child(script, spec, timeout)]
    first = runs[0]
    if (first.get("outcome") == "ok" and first["time"] < REPEAT_BELOW
            and (baseline or reached(first))):
        runs += [run_child(script, spec, timeout) for _ in range(repeats - 1)]
    best = best_of(runs)
    best["reached"] = reached(best)
    return best


def machine() -> dict[str, Any]:
    """Where and when a benchmark ran: Python, platform, CPUs, load average (now), BLAS
    thread settings and the local time, for the ``meta`` of its JSON."""
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "load_average_end": os.getloadavg(),
            "blas_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS",
                                                        "OPENBLAS_NUM_THREADS",
                                                        "MKL_NUM_THREADS")},
            "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    """Write a benchmark's ``payload`` to ``path`` as JSON (folders created, NumPy scalars
    as floats) and say so."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=float))
    print(f"wrote {out}")


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
