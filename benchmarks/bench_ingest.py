"""Ingesting the simulated export at 1,000,000 patients vs a bare ``pyarrow.csv.read_csv`` of the same file.

Both run in fresh child processes in the same run, so wall time and peak memory compare like
for like. Targets from the ingestion issue: at most 3x the bare read time, peak memory under
4x the file size.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from benchmarks._harness import record, run_measured

N_PATIENTS = 1_000_000
BARE_READ = "import sys, pyarrow.csv as c; t = c.read_csv(sys.argv[1]); print(t.num_rows)"


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "study"
        run_measured(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "simulate",
                "--n-patients",
                str(N_PATIENTS),
                "--out",
                str(study),
            ]
        )
        csv = study / "patients.csv"
        size_mib = csv.stat().st_size / 2**20
        bare = run_measured([sys.executable, "-c", BARE_READ, str(csv)])
        env = {**os.environ, "BACKPAIN_PSEUDONYM_KEY": "benchmark-key-" + "0" * 32}
        ingest = run_measured(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "ingest",
                str(study / "study.yaml"),
                "--out",
                str(Path(tmp) / "processed"),
                "--quiet",
            ],
            env=env,
        )
    results = {
        "n_patients": N_PATIENTS,
        "csv_mib": round(size_mib, 1),
        "bare_read": bare,
        "ingest": ingest,
        "time_ratio": round(ingest["wall_s"] / bare["wall_s"], 2),
        "memory_ratio_to_file": round(ingest["peak_mib"] / size_mib, 2),
        "targets": {"time_ratio": 3.0, "memory_ratio_to_file": 4.0},
    }
    record("ingest_1m", results)
    return results


if __name__ == "__main__":
    run()
