"""``backpain scale``: partition a processed study and fit it on Dask (local or remote cluster)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError


def add_scale_parser(commands: Any) -> None:
    """Add ``backpain scale partition`` and ``backpain scale analyse``."""
    scale = commands.add_parser(
        "scale",
        help="registry scale: partitioned Parquet and Dask fits by sufficient statistics",
        description="Partition the canonical tables of a study by a hash of the participant id, "
        "then fit ANCOVA/CR1, PS weighting + balance, NB2 and the random-intercept model on Dask.",
    )
    sub = scale.add_subparsers(dest="scale_command", required=True)
    part = sub.add_parser(
        "partition", help="re-bucket data/processed/<study> into partitioned Parquet"
    )
    part.add_argument(
        "processed", type=Path, help="folder with participants.parquet, outcomes.parquet"
    )
    part.add_argument(
        "out", type=Path, help="folder for the partitioned study (shared storage for a cluster)"
    )
    part.add_argument(
        "--buckets", type=int, default=64, help="number of buckets (default: %(default)s)"
    )
    part.set_defaults(handler=_run_partition)
    fit = sub.add_parser("analyse", help="fit one comparison of params.yaml on a partitioned study")
    fit.add_argument("root", type=Path, help="a folder written by `backpain scale partition`")
    fit.add_argument("--study", required=True, help="study id under analyse.studies in PARAMS")
    fit.add_argument("--comparison", required=True, help="comparison id")
    fit.add_argument("--params", default=Path("params.yaml"), type=Path)
    fit.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:8786)")
    fit.add_argument("--workers", type=int, default=2, help="local workers when no --scheduler")
    fit.add_argument(
        "--memory-limit", default="4GiB", help="per local worker (default: %(default)s)"
    )
    fit.add_argument("--out", type=Path, help="write the results as JSON here")
    fit.set_defaults(handler=_run_analyse)


def _run_partition(args: argparse.Namespace) -> int:
    from pipeline.scale.partitioned import partition_study

    meta = partition_study(args.processed, args.out, args.buckets)
    print(f"partitioned {args.processed} into {meta.buckets} buckets under {args.out}")
    return 0


def _run_analyse(args: argparse.Namespace) -> int:
    from distributed import Client, LocalCluster

    from pipeline.analysis.spec import load_settings
    from pipeline.params import load_section
    from pipeline.scale import fit as scale
    from pipeline.scale.partitioned import ScaleSpec

    settings = load_settings(load_section("analyse", args.params))
    found = [c for c in settings.comparisons(args.study) if c.id == args.comparison]
    if not found:
        raise ConfigError(
            f"{args.params}: no comparison '{args.comparison}' in study '{args.study}'"
        )
    study = scale.open_study(args.root, ScaleSpec.from_comparison(found[0]))
    if args.scheduler:
        client = Client(args.scheduler)
        cluster = None
    else:
        cluster = LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            memory_limit=args.memory_limit,
            dashboard_address=None,
        )
        client = Client(cluster)
    try:
        results = scale.analyse(
            scale.dask_mapper(study, client=client), study, alpha=settings.alpha
        )
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    for name, row in results.items():
        if "estimate" in row:
            print(f"  {name}: {row['estimate']:.4f} (SE {row['se']:.4f}) in {row['seconds']:.1f} s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    return 0
