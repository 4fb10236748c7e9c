"""How long ``backpain simulate --n-patients 1000000`` takes, and its peak memory."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from benchmarks._harness import record, run_measured

N_PATIENTS = 1_000_000


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "study"
        measured = run_measured(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "simulate",
                "--n-patients",
                str(N_PATIENTS),
                "--out",
                str(out),
            ]
        )
        size_mb = (out / "patients.csv").stat().st_size / 1e6
    results = {"n_patients": N_PATIENTS, "csv_mb": round(size_mb, 1), **measured}
    record("simulate_1m", results)
    return results


if __name__ == "__main__":
    run()
