"""Small hand-built studies for ingestion tests: a CSV and a study.yaml written to a folder."""

from __future__ import annotations

import copy
import csv
from pathlib import Path
from typing import Any

import yaml

from pipeline.ingest import run_ingest
from pipeline.ingest.config import load_study_config
from pipeline.ingest.core import ingest
from pipeline.ingest.privacy import pseudonymise
from pipeline.ingest.readers import read_source

TEST_KEY = b"test-key-0123456789abcdef0123456789abcdef"

MINI_CONFIG: dict[str, Any] = {
    "study_id": "mini",
    "title": "A tiny hand-made study",
    "design": "randomised",
    "source": {"citation": "test fixture"},
    "files": [{"name": "main", "path": "data.csv", "format": "csv", "missing_codes": ["-99"]}],
    "layout": "wide",
    "participant_id": "pid",
    "arms": {"column": "arm", "treatment": "a", "control": "b", "labels": {"a": ["A"], "b": ["B"]}},
    "timepoints": {
        "baseline": {"days": 0, "date_column": "d0"},
        "followup": {"date_column": "d1"},
    },
    "outcomes": {
        "pain": {"instrument": "nprs", "columns": {"baseline": "p0", "followup": "p1"}},
        "fear_avoidance": {
            "instrument": "fabq_pa",
            "items": {"baseline": ["f1", "f2", "f3", "f4"]},
        },
    },
    "sessions": "n_sessions",
    "covariates": {
        "age": {"type": "age_from_birth_date", "birth_date": "dob", "at": "d0"},
        "sex": {"type": "category", "column": "sex", "levels": {"female": ["F"], "male": ["M"]}},
    },
    "identifiers": ["email", "dob"],
}

MINI_COLUMNS = [
    "pid",
    "arm",
    "d0",
    "d1",
    "p0",
    "p1",
    "f1",
    "f2",
    "f3",
    "f4",
    "n_sessions",
    "dob",
    "sex",
    "email",
]


def mini_row(participant: str, **overrides: str) -> dict[str, str]:
    """A valid participant row; keyword arguments replace cells."""
    row = {
        "pid": participant,
        "arm": "A",
        "d0": "2022-01-10",
        "d1": "2022-03-01",
        "p0": "6",
        "p1": "3",
        "f1": "4",
        "f2": "3",
        "f3": "5",
        "f4": "2",
        "n_sessions": "5",
        "dob": "1970-05-01",
        "sex": "F",
        "email": f"{participant.lower()}@example.org",
    }
    row.update(overrides)
    return row


def write_study(
    folder: Path,
    rows: list[dict[str, str]],
    config: dict[str, Any] | None = None,
    columns: list[str] | None = None,
) -> Path:
    """Write data.csv and study.yaml into ``folder``; return the study.yaml path."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = columns or MINI_COLUMNS
    with open(folder / "data.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config or MINI_CONFIG, sort_keys=False), encoding="utf-8")
    return path


def config_with(**changes: Any) -> dict[str, Any]:
    """A deep copy of the mini config with top-level keys replaced."""
    config = copy.deepcopy(MINI_CONFIG)
    config.update(changes)
    return config


def ingest_folder(study_yaml: Path):
    """Run the pure core on a study folder with the test key (no files written)."""
    config = load_study_config(study_yaml)
    tables = {spec.name: read_source(spec, config.resolve(spec.path)) for spec in config.files}
    return ingest(tables, config, lambda ids: pseudonymise(ids, TEST_KEY, config.study_id))


def run_folder(study_yaml: Path, out: Path, monkeypatch) -> Any:
    """Run the whole stage (files written) with the test key from the environment."""
    monkeypatch.setenv("BACKPAIN_PSEUDONYM_KEY", TEST_KEY.decode())
    return run_ingest(study_yaml, out, key_file=out / "unused-key", show_progress=False)
