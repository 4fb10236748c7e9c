"""Partitioned Parquet for registry scale: canonical tables bucketed by a hash of the participant.

Layout of a partitioned study ``ROOT``::

    ROOT/scale_meta.json                      categories, present levels, bucket count
    ROOT/participants/bucket=<k>/*.parquet    canonical participants table, string columns
    ROOT/outcomes/bucket=<k>/*.parquet        canonical outcomes table, string columns

Every row of one participant (its participants row and all its outcome rows) lands in the same
bucket, so the per-participant analysis row is built inside one partition with no shuffle. The
category order and the levels present in the *whole* table are kept in ``scale_meta.json``,
so every partition encodes a categorical covariate with the same indicator columns as the
in-memory path (:func:`pipeline.analysis.frame.build_analysis_frame`) does on the full table.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.errors import ConfigError

TABLES = ("participants", "outcomes")
META_FILE = "scale_meta.json"
BATCH_ROWS = 1_000_000


@dataclass(frozen=True)
class ScaleSpec:
    """One comparison as the scale engine reads it (a subset of ``ComparisonSpec``).

    ``outcome`` at ``timepoint`` is the continuous outcome (ANCOVA, mixed model), adjusted for
    its own baseline, ``adjust_for`` participant columns and the baselines of
    ``adjust_for_baselines``; ``count`` is the participant column of the count model;
    ``cluster`` the participant column of the clusters (e.g. ``therapist``).
    """

    outcome: str
    timepoint: str
    treatment: str
    control: str
    adjust_for: tuple[str, ...] = ()
    adjust_for_baselines: tuple[str, ...] = ()
    cluster: str | None = None
    count: str = "sessions"

    @classmethod
    def from_comparison(cls, comparison: Any) -> ScaleSpec:
        """From a :class:`pipeline.analysis.spec.ComparisonSpec`."""
        return cls(
            outcome=comparison.outcome,
            timepoint=comparison.timepoint,
            treatment=comparison.treatment,
            control=comparison.control,
            adjust_for=tuple(comparison.adjust_for),
            adjust_for_baselines=tuple(comparison.adjust_for_baselines),
            cluster=comparison.cluster,
        )


@dataclass(frozen=True)
class ScaleMeta:
    """What every partition must agree on: category order and globally present levels."""

    buckets: int
    categories: dict[str, dict[str, list[str]]]
    present: dict[str, list[str]] = field(default_factory=dict)

    @property
    def baseline_timepoint(self) -> str:
        """The study's baseline: the first timepoint category (as the in-memory path)."""
        return self.categories["outcomes"]["timepoint"][0]

    def to_json(self) -> str:
        return json.dumps(
            {"buckets": self.buckets, "categories": self.categories, "present": self.present},
            indent=2,
            sort_keys=True,
        )


def read_meta(root: Path) -> ScaleMeta:
    """The ``scale_meta.json`` of a partitioned study, with a clear error when absent."""
    path = Path(root) / META_FILE
    if not path.is_file():
        raise ConfigError(
            f"{path}: not a partitioned study (run `backpain scale partition` to make one)"
        )
    raw = json.loads(path.read_text())
    return ScaleMeta(
        buckets=int(raw["buckets"]), categories=raw["categories"], present=raw["present"]
    )


def bucket_of(ids: pa.Array | pd.Series | np.ndarray, buckets: int) -> np.ndarray:
    """Bucket of each raw participant id: a stable 64-bit hash (pandas' SipHash) mod ``buckets``."""
    values = np.asarray(pd.Series(ids).astype(str).to_numpy(dtype=object))
    return (pd.util.hash_array(values) % np.uint64(buckets)).astype(np.int32)


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Dictionary columns decoded to plain strings (each file then needs no shared dictionary)."""
    arrays = [
        col.dictionary_decode() if pa.types.is_dictionary(col.type) else col
        for col in batch.columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _categories(path: Path) -> dict[str, list[str]]:
    schema = pq.read_schema(path)
    names = [f.name for f in schema if pa.types.is_dictionary(f.type)]
    if not names:
        return {}
    frame = pq.read_table(path, columns=names).to_pandas()
    return {n: [str(c) for c in frame[n].cat.categories] for n in names}


def write_buckets(
    batches: Iterator[pa.RecordBatch], out: Path, buckets: int, schema: pa.Schema
) -> None:
    """Stream record batches into ``out/bucket=<k>/`` (hive layout), bucketed by participant."""

    def tagged() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            plain = _plain(batch)
            keys = bucket_of(plain.column("participant_id").to_numpy(zero_copy_only=False), buckets)
            yield plain.append_column("bucket", pa.array(keys, pa.int32()))

    plain_schema = pa.schema(
        [
            pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
            for f in schema
        ]
        + [pa.field("bucket", pa.int32())]
    )
    ds.write_dataset(
        tagged(),
        out,
        schema=plain_schema,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("bucket", pa.int32())]), flavor="hive"),
        existing_data_behavior="delete_matching",
        max_rows_per_group=BATCH_ROWS,
        max_partitions=max(1024, buckets),
    )


def partition_study(processed: Path, out: Path, buckets: int) -> ScaleMeta:
    """Re-bucket the canonical tables of ``backpain ingest`` (``processed``) into ``out``.

    Streams each table in batches of :data:`BATCH_ROWS` rows, so memory stays bounded whatever
    the table's size. Returns the metadata written to ``out/scale_meta.json``.
    """
    processed, out = Path(processed), Path(out)
    if buckets < 1:
        raise ConfigError(f"--buckets must be at least 1, got {buckets}")
    shutil.rmtree(out / ".scale_cache", ignore_errors=True)  # rows of the previous data
    categories: dict[str, dict[str, list[str]]] = {}
    present: dict[str, set[str]] = {}
    for table in TABLES:
        path = processed / f"{table}.parquet"
        if not path.is_file():
            raise ConfigError(f"{path}: missing (run `backpain ingest` first)")
        categories[table] = _categories(path)
        source = pq.ParquetFile(path)
        cats = list(categories[table]) if table == "participants" else []

        def batches(source: pq.ParquetFile = source, cats: list[str] = cats):
            for batch in source.iter_batches(batch_size=BATCH_ROWS):
                for name in cats:
                    col = batch.column(name)
                    present.setdefault(name, set()).update(
                        pd.unique(col.to_pandas().dropna().astype(str))
                    )
                yield batch

        write_buckets(batches(), out / table, buckets, source.schema_arrow)
    meta = ScaleMeta(
        buckets=buckets,
        categories=categories,
        present={
            n: [c for c in categories["participants"][n] if c in present.get(n, set())]
            for n in categories["participants"]
        },
    )
    (out / META_FILE).write_text(meta.to_json())
    return meta


def read_bucket(root: Path, bucket: int, meta: ScaleMeta) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Participants and outcomes of one bucket, categoricals restored to the study's order."""
    frames = []
    for table in TABLES:
        folder = Path(root) / table / f"bucket={bucket}"
        if folder.is_dir():
            frame = pq.read_table(folder).to_pandas()
        else:  # an empty bucket
            frame = pq.read_table(next((Path(root) / table).glob("bucket=*"))).to_pandas().iloc[:0]
        for name, cats in meta.categories[table].items():
            if name in frame:
                frame[name] = pd.Categorical(frame[name], categories=cats)
        frames.append(frame.drop(columns=["bucket"], errors="ignore"))
    return frames[0], frames[1]


def _encode(column: pd.Series, name: str, levels: list[str]) -> dict[str, np.ndarray]:
    """As ``pipeline.analysis.frame._encode`` but with the levels present in the whole table."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return {name: column.astype(float).to_numpy()}
    if set(levels) == {"yes", "no"}:
        levels = ["no", "yes"]
    text = column.astype(str).to_numpy()
    missing = column.isna().to_numpy()
    out = {}
    for level in levels[1:]:
        indicator = (text == str(level)).astype(float)
        indicator[missing] = np.nan
        out[f"{name}={level}"] = indicator
    return out


def analysis_rows(
    participants: pd.DataFrame, outcomes: pd.DataFrame, spec: ScaleSpec, meta: ScaleMeta
) -> pd.DataFrame:
    """One row per participant of the two arms: ``treated``, ``y``, ``baseline``, covariate
    terms (the in-memory names: ``age``, ``sex=male``, ``baseline_pain``), ``count`` and
    ``cluster`` -- the columns of :func:`pipeline.analysis.frame.build_analysis_frame`.
    Missing values stay NaN; each estimator takes its own complete cases.
    """
    arm = participants["arm"].astype(str)
    chosen = participants[arm.isin([spec.treatment, spec.control]).to_numpy()]
    ids = chosen["participant_id"].astype(str).to_numpy()
    data: dict[str, np.ndarray] = {
        "treated": (chosen["arm"].astype(str) == spec.treatment).to_numpy().astype(float)
    }
    rows = outcomes[outcomes["outcome"].astype(str) == spec.outcome]
    base_tp = meta.baseline_timepoint
    for column, tp in (("y", spec.timepoint), ("baseline", base_tp)):
        at = rows[rows["timepoint"].astype(str) == tp].drop_duplicates("participant_id")
        data[column] = (
            at.set_index(at["participant_id"].astype(str))["value"]
            .reindex(ids)
            .to_numpy(dtype=float)
        )
    for name in spec.adjust_for:
        if name not in chosen:
            raise ConfigError(f"adjust_for '{name}' is not a participant column")
        data.update(_encode(chosen[name], name, meta.present.get(name, [])))
    for other in spec.adjust_for_baselines:
        if other == spec.outcome:
            continue
        o = outcomes[
            (outcomes["outcome"].astype(str) == other)
            & (outcomes["timepoint"].astype(str) == base_tp)
        ].drop_duplicates("participant_id")
        data[f"baseline_{other}"] = (
            o.set_index(o["participant_id"].astype(str))["value"].reindex(ids).to_numpy(dtype=float)
        )
    data["count"] = chosen[spec.count].to_numpy(dtype=float)
    frame = pd.DataFrame(data)
    if spec.cluster:
        frame["cluster"] = (
            chosen[spec.cluster].astype(str).where(chosen[spec.cluster].notna()).to_numpy()
        )
    return frame


def covariate_terms(spec: ScaleSpec, meta: ScaleMeta) -> list[str]:
    """Names of the covariate terms, in the in-memory order (categorical columns expand)."""
    terms: list[str] = []
    for name in spec.adjust_for:
        if name not in meta.categories["participants"]:
            terms.append(name)
        else:
            levels = meta.present.get(name, [])
            if set(levels) == {"yes", "no"}:
                levels = ["no", "yes"]
            terms += [f"{name}={level}" for level in levels[1:]]
    terms += [f"baseline_{o}" for o in spec.adjust_for_baselines if o != spec.outcome]
    return terms
