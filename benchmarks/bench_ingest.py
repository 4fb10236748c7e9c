"""Ingesting the simulated export at 1,000,000 patients vs a bare ``pyarrow.csv.read_csv`` of the same file.

Every measurement runs in a fresh child process (wall time and peak resident memory of that
child alone). The machine is shared, so the bare read, the Arrow ingest path (default) and the
earlier pandas/pandera path (``engine="pandas"``, the "before") run **interleaved**, round
after round, and the figures are the medians of the per-round ratios. Aims from issue 11:
ingest at most 2x the bare read, peak memory at most 3x the file size.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks._harness import record, run_measured

N_PATIENTS = 1_000_000
ROUNDS = int(os.environ.get("BENCH_INGEST_ROUNDS", "3"))
BARE_READ = "import sys, pyarrow.csv as c; t = c.read_csv(sys.argv[1]); print(t.num_rows)"
INGEST = (
    "import sys; from pipeline.ingest import run_ingest; "
    "run_ingest(sys.argv[1], sys.argv[2], show_progress=False, engine=sys.argv[3])"
)


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
        env = {**os.environ, "BACKPAIN_PSEUDONYM_KEY": "benchmark-key-" + "0" * 32}
        rounds = []
        for i in range(ROUNDS):
            bare = run_measured([sys.executable, "-c", BARE_READ, str(csv)])
            measured = {"bare_read": bare}
            for engine in ("arrow", "pandas"):
                out = Path(tmp) / f"processed-{engine}-{i}"
                measured[engine] = run_measured(
                    [sys.executable, "-c", INGEST, str(study / "study.yaml"), str(out), engine],
                    env=env,
                )
            rounds.append(measured)
            print(f"[ingest_1m] round {i + 1}/{ROUNDS}: {measured}", file=sys.stderr)

    def median(engine: str, key: str, over: str | None = None) -> float:
        """Median over rounds of engine/over (or engine/file size when ``over`` is None)."""
        values = [r[engine][key] / (r[over][key] if over else size_mib) for r in rounds]
        return round(statistics.median(values), 2)

    results = {
        "n_patients": N_PATIENTS,
        "csv_mib": round(size_mib, 1),
        "rounds": rounds,
        "median_wall_s": {
            name: round(statistics.median(r[name]["wall_s"] for r in rounds), 2)
            for name in ("bare_read", "arrow", "pandas")
        },
        "median_peak_mib": {
            name: round(statistics.median(r[name]["peak_mib"] for r in rounds), 1)
            for name in ("bare_read", "arrow", "pandas")
        },
        "time_ratio_to_bare_read": {
            e: median(e, "wall_s", "bare_read") for e in ("arrow", "pandas")
        },
        "memory_ratio_to_bare_read": {
            e: median(e, "peak_mib", "bare_read") for e in ("arrow", "pandas")
        },
        "memory_ratio_to_file": {e: median(e, "peak_mib") for e in ("arrow", "pandas")},
        "targets": {"time_ratio_to_bare_read": 2.0, "memory_ratio_to_file": 3.0},
    }
    results["time_ratio"] = results["time_ratio_to_bare_read"]["arrow"]
    results["memory_ratio_to_file_arrow"] = results["memory_ratio_to_file"]["arrow"]
    record("ingest_1m", results)
    return results


if __name__ == "__main__":
    run()
