"""Registry scale on Dask: ANCOVA/CR1, PS weighting + balance, NB2 and random intercept over
partitioned Parquet of ``BENCH_SCALE_ROWS`` outcome rows (default 100M) on a LocalCluster.

The data are written bucket by bucket by a vectorised generator (4 outcome rows per
participant: function and pain at baseline and discharge) straight into the layout of
:mod:`pipeline.scale.partitioned`, under ``BENCH_SCALE_DIR`` (default a temporary folder on
/work), and deleted afterwards. Writes ``benchmarks/results/scale_<rows>.json``. Not in
``make test``: run with ``python -m benchmarks scale``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.scale import fit as scale
from pipeline.scale.partitioned import META_FILE, ScaleMeta, ScaleSpec

RESULTS = Path(__file__).parent / "results"
ROWS_PER_PARTICIPANT = 4
SPEC = ScaleSpec(
    outcome="function",
    timepoint="discharge",
    treatment="etmi",
    control="usual_care",
    adjust_for=("age", "sex", "bmi"),
    adjust_for_baselines=("pain",),
    cluster="therapist",
)


def generate(root: Path, participants: int, buckets: int, therapists: int, seed: int = 1) -> None:
    """Write a synthetic partitioned study: ``participants`` people in ``buckets`` buckets."""
    sizes = np.full(buckets, participants // buckets)
    sizes[: participants % buckets] += 1
    effects = np.random.default_rng(seed).normal(0, 3, therapists)
    start = 0
    for k, n in enumerate(sizes):
        rng = np.random.default_rng([seed, k])
        ids = np.char.add("p", np.arange(start, start + n).astype(str))
        start += n
        therapist = rng.integers(0, therapists, n)
        age = rng.normal(50, 12, n).round(1)
        male = rng.random(n) < 0.45
        bmi = rng.normal(27, 4, n).round(1)
        pain0 = rng.normal(6, 2, n).round(1)
        func0 = rng.normal(45, 12, n).round(1)
        p = 1 / (1 + np.exp(-(-0.5 + 0.02 * (age - 50) + 0.1 * (pain0 - 6))))
        treated = rng.random(n) < p
        func1 = (
            20 + 0.6 * func0 + 4 * treated - 0.05 * age + effects[therapist] + rng.normal(0, 10, n)
        ).round(1)
        pain1 = (pain0 - 1 - 0.5 * treated + rng.normal(0, 1.5, n)).round(1)
        mu = np.exp(1.8 - 0.4 * treated + 0.005 * (age - 50))
        sessions = rng.negative_binomial(4, 4 / (4 + mu)).astype(float)
        folder_p, folder_o = (
            root / "participants" / f"bucket={k}",
            root / "outcomes" / f"bucket={k}",
        )
        folder_p.mkdir(parents=True)
        folder_o.mkdir(parents=True)
        pq.write_table(
            pa.table(
                {
                    "participant_id": ids,
                    "arm": np.where(treated, "etmi", "usual_care"),
                    "therapist": np.char.add("T", therapist.astype(str)),
                    "age": age,
                    "sex": np.where(male, "male", "female"),
                    "bmi": bmi,
                    "sessions": sessions,
                }
            ),
            folder_p / "part-0.parquet",
        )
        pq.write_table(
            pa.table(
                {
                    "participant_id": np.tile(ids, 4),
                    "outcome": np.repeat(["function", "function", "pain", "pain"], n),
                    "timepoint": np.repeat(["baseline", "discharge", "baseline", "discharge"], n),
                    "value": np.concatenate([func0, func1, pain0, pain1]),
                }
            ),
            folder_o / "part-0.parquet",
        )
    meta = ScaleMeta(
        buckets=buckets,
        categories={
            "participants": {
                "arm": ["etmi", "usual_care"],
                "sex": ["female", "male"],
            },
            "outcomes": {"timepoint": ["baseline", "discharge"], "outcome": ["function", "pain"]},
        },
        present={"arm": ["etmi", "usual_care"], "sex": ["female", "male"]},
    )
    (root / META_FILE).write_text(meta.to_json())


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run() -> None:
    from distributed import Client, LocalCluster

    rows = int(os.environ.get("BENCH_SCALE_ROWS", 100_000_000))
    participants = rows // ROWS_PER_PARTICIPANT
    buckets = max(8, participants // 250_000)
    base = Path(os.environ.get("BENCH_SCALE_DIR", tempfile.gettempdir()))
    free = shutil.disk_usage(base).free / 2**30
    need = rows * 12 / 2**30  # about 12 bytes per outcome row on disk, cache included
    if free < need + 5:
        raise SystemExit(f"bench_scale: {free:.0f} GiB free under {base}, need about {need:.0f}")
    root = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=base))
    memory_limit = os.environ.get("BENCH_SCALE_MEMORY_LIMIT", "3GiB")
    try:
        started = time.perf_counter()
        generate(root, participants, buckets, therapists=max(100, participants // 500))
        generate_s = time.perf_counter() - started
        disk_gb = sum(f.stat().st_size for f in root.rglob("*.parquet")) / 1e9
        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, memory_limit=memory_limit, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            study = scale.open_study(root, SPEC)
            run_fn = scale.dask_mapper(study, client=client)
            started = time.perf_counter()
            results = scale.analyse(run_fn, study)
            total_s = time.perf_counter() - started
            workers = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        out = {
            "outcome_rows": rows,
            "participants": participants,
            "buckets": buckets,
            "parquet_gb_on_disk": round(disk_gb, 2),
            "generate_seconds": round(generate_s, 1),
            "fit_seconds_total": round(total_s, 1),
            "seconds": {k: round(v["seconds"], 1) for k, v in results.items()},
            "peak_rss_mb": {
                "client": round(_peak_mb()),
                "workers": {k: round(v) for k, v in workers.items()},
            },
            "worker_memory_limit": memory_limit,
            "cluster": "LocalCluster(n_workers=2, threads_per_worker=1)",
            "estimates": {
                k: {f: v[f] for f in ("estimate", "se") if f in v}
                for k, v in results.items()
                if k != "ipw_balance"
            },
            "max_abs_smd_after": float(
                pd.DataFrame(results["ipw_balance"]["balance"])["smd_after"].abs().max()
            ),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "note": "ancova first pass includes building the per-bucket analysis rows (cached for later passes)",
        }
        RESULTS.mkdir(exist_ok=True)
        name = "scale_100m" if rows == 100_000_000 else f"scale_{rows // 1_000_000}m"
        (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2, default=float) + "\n")
        print(json.dumps(out, indent=2, default=float))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    run()
