"""Measuring wall time and peak memory of commands, and recording the results."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.io import write_json
from pipeline.provenance import git_commit, software_versions

RESULTS = Path(__file__).parent / "results"


def run_measured(command: list[str], **kwargs: Any) -> dict[str, float]:
    """Run a command in a child process; wall seconds and peak resident memory (MiB) of that child.

    Each measurement runs in a fresh child (through a tiny wrapper) so ``ru_maxrss`` is the
    peak of this command alone, not of earlier children.
    """
    wrapper = (
        "import resource, subprocess, sys, time, json;"
        "t = time.perf_counter();"
        "rc = subprocess.run(sys.argv[1:]).returncode;"
        "wall = time.perf_counter() - t;"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024;"
        "print(json.dumps({'rc': rc, 'wall_s': wall, 'peak_mib': peak}), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *command], capture_output=True, text=True, **kwargs
    )
    result = json.loads(done.stderr.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise RuntimeError(f"{command} failed:\n{done.stdout}\n{done.stderr}")
    return {"wall_s": round(result["wall_s"], 3), "peak_mib": round(result["peak_mib"], 1)}


def time_call(function: Any, *args: Any, repeat: int = 1, **kwargs: Any) -> tuple[float, Any]:
    """Best wall time (s) over ``repeat`` calls, and the last result."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        best = min(best, time.perf_counter() - started)
    return best, result


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def record(name: str, results: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the machine and software it ran on."""
    payload = {
        "benchmark": name,
        "results": results,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "software": software_versions(),
        "git_commit": git_commit(),
    }
    path = write_json(RESULTS / f"{name}.json", payload)
    print(f"[{name}] {json.dumps(results)}")
    return path
