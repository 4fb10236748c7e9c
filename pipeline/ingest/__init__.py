"""Stage ``ingest``: one study's exports + ``study.yaml`` in, canonical validated tables out.

:func:`run_ingest` reads the files, calls the pure core :func:`pipeline.ingest.core.ingest`,
validates the tables against their schemas and writes, atomically, into
``data/processed/<study>/``: ``participants.parquet``, ``outcomes.parquet`` (long),
``quarantine.parquet`` and ``ingest_report.json``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.ingest.config import StudyConfig, config_hash, load_study_config
from pipeline.ingest.core import IngestResult, identifier_columns, ingest
from pipeline.ingest.privacy import (
    key_fingerprint,
    load_or_create_key,
    pseudonymise,
    pseudonymise_arrow,
)
from pipeline.ingest.readers import RawTable, read_source
from pipeline.ingest.validation import check_tables, check_tables_pandera
from pipeline.io import sha256_file, write_json, write_parquet
from pipeline.provenance import software_versions

__all__ = ["IngestResult", "StudyConfig", "ingest", "load_study_config", "read_study", "run_ingest"]

_PROGRESS_ROWS = 100_000  # show a progress bar from this many rows


@dataclass(frozen=True)
class IngestRun:
    """What ``run_ingest`` produced: the result and where it was written."""

    config: StudyConfig
    result: IngestResult
    out_dir: Path


def read_study(config: StudyConfig) -> dict[str, RawTable]:
    """Read every file named in the study's config."""
    return {spec.name: read_source(spec, config.resolve(spec.path)) for spec in config.files}


def run_ingest(
    study_yaml: str | Path,
    out_dir: str | Path | None = None,
    key_file: str | Path = ".backpain-key",
    show_progress: bool = True,
    engine: str = "arrow",
) -> IngestRun:
    """Entry point of the ``ingest`` stage (``backpain ingest``).

    ``engine="arrow"`` (default) pseudonymises into Arrow buffers and checks the tables with
    numpy / pyarrow compute; ``engine="pandas"`` is the earlier path (one Python string per
    pseudonym, pandera schemas), kept as the reference: both write byte-identical files.
    """
    if engine not in ("arrow", "pandas"):
        raise ValueError(f"engine must be 'arrow' or 'pandas', not {engine!r}")
    study_yaml = Path(study_yaml)
    config = load_study_config(study_yaml)
    out = Path(out_dir) if out_dir else Path("data/processed") / config.study_id
    tables = read_study(config)
    key = load_or_create_key(Path(key_file))
    rows = sum(t.num_rows for t in tables.values())
    bar = _progress_bar(rows, show_progress)
    result = ingest(
        tables,
        config,
        lambda ids: (pseudonymise_arrow if engine == "arrow" else pseudonymise)(
            ids, key, config.study_id
        ),
        progress=bar.step if bar else None,
    )
    if bar:
        bar.close()
    (check_tables if engine == "arrow" else check_tables_pandera)(
        result.participants, result.outcomes, result.quarantine
    )
    report = {
        **result.report,
        "title": config.title,
        "source": config.source.model_dump(),
        "arms": {
            "treatment": config.arms.treatment,
            "control": config.arms.control,
            "all": list(config.arms.labels),
        },
        "evidence": {
            "condition": config.condition,
            "population": dict(config.population),
            "blinding": config.blinding.model_dump(),
            "randomised": dict(config.randomised),
            "analysed_population": config.analysed_population,
            "risk_of_bias": config.risk_of_bias.model_dump() if config.risk_of_bias else None,
        },
        "identifiers_removed": {
            name: identifier_columns(table, config) for name, table in tables.items()
        },
        "provenance": {
            "input_files": {
                # relative to the study folder (as in study.yaml): no path of this machine
                name: {
                    "path": Path(os.path.relpath(table.path, config.base_dir)).as_posix(),
                    "sha256": sha256_file(table.path),
                }
                for name, table in tables.items()
            },
            "study_yaml_sha256": config_hash(study_yaml),
            "package_version": __version__,
            "software": software_versions(),
            "pseudonymisation": {
                "method": "keyed BLAKE2b-80 of study_id + participant id",
                "key_fingerprint": key_fingerprint(key),
            },
        },
    }
    result = IngestResult(result.participants, result.outcomes, result.quarantine, report)
    write_parquet(out / "participants.parquet", result.participants)
    write_parquet(out / "outcomes.parquet", result.outcomes)
    write_parquet(out / "quarantine.parquet", result.quarantine)
    write_json(out / "ingest_report.json", report)
    return IngestRun(config, result, out)


def render_summary(run: IngestRun) -> str:
    """A short human-readable account of an ingest run."""
    report: dict[str, Any] = run.result.report
    lines = [f"ingested {run.config.study_id}" + (" (SYNTHETIC)" if run.config.synthetic else "")]
    for entry in report["files"].values():
        rows = entry["rows"]
        cells = entry["cells"]
        reasons = ", ".join(f"{k} {v}" for k, v in rows["quarantined_by_reason"].items()) or "none"
        lines.append(
            f"  {entry['path']}: {rows['in']:,} rows in = {rows['kept']:,} kept + {rows['collapsed']:,} "
            f"collapsed + {rows['filtered']:,} filtered + {rows['quarantined']:,} quarantined ({reasons})"
        )
        value_reasons = (
            ", ".join(f"{k} {v}" for k, v in cells["quarantined_by_reason"].items()) or "none"
        )
        lines.append(
            f"    values: {cells['in']:,} in = {cells['kept']:,} kept + {cells['missing']:,} missing "
            f"+ {cells['collapsed'] + cells['filtered']:,} in collapsed/filtered rows "
            f"+ {cells['quarantined']:,} quarantined ({value_reasons})"
        )
    arms = ", ".join(f"{arm} {n:,}" for arm, n in report["participants_by_arm"].items())
    lines.append(f"  participants: {report['participants']:,} ({arms})")
    removed = sorted({c for cols in report["identifiers_removed"].values() for c in cols})
    lines.append(f"  identifier columns removed: {', '.join(removed) or 'none'}")
    lines.append(f"  -> {run.out_dir}")
    return "\n".join(lines)


class _Bar:
    def __init__(self, total_steps: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=total_steps, desc="ingest", unit="step", file=sys.stderr, leave=False
        )

    def step(self, name: str) -> None:
        self._bar.set_postfix_str(name)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


def _progress_bar(rows: int, show: bool) -> _Bar | None:
    return _Bar(total_steps=4) if show and rows >= _PROGRESS_ROWS else None
