"""The Arrow ingest path writes the same bytes as the earlier pandas/pandera path.

The reference is the earlier implementation itself, kept callable as ``engine="pandas"``
(Python-string pseudonyms, one ``hashlib.blake2b(key=...)`` call per id, pandera schemas);
the files are compared byte for byte, on the shipped reference cohort and on the real trials.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from ingest_helpers import TEST_KEY

from pipeline.ingest import run_ingest
from pipeline.ingest.privacy import pseudonymise, pseudonymise_arrow
from pipeline.ingest.validation import TableCheckError, check_tables, check_tables_pandera

OUTPUTS = ["participants.parquet", "outcomes.parquet", "quarantine.parquet", "ingest_report.json"]
REAL_STUDIES = ["boulder-prt-2022", "boulder-prt-5yr"]
REPO = Path(__file__).resolve().parents[1]


def _both_engines(study_yaml: Path, tmp_path: Path, monkeypatch) -> dict[str, Path]:
    monkeypatch.setenv("BACKPAIN_PSEUDONYM_KEY", TEST_KEY.decode())
    outs = {}
    for engine in ("pandas", "arrow"):
        out = tmp_path / engine
        run_ingest(
            study_yaml, out, key_file=tmp_path / "unused-key", show_progress=False, engine=engine
        )
        outs[engine] = out
    return outs


def _assert_same_bytes(outs: dict[str, Path]) -> None:
    for name in OUTPUTS:
        old = (outs["pandas"] / name).read_bytes()
        new = (outs["arrow"] / name).read_bytes()
        assert hashlib.sha256(new).hexdigest() == hashlib.sha256(old).hexdigest(), name


def test_reference_cohort_outputs_identical_byte_for_byte(reference_dir, tmp_path, monkeypatch):
    outs = _both_engines(reference_dir / "study.yaml", tmp_path, monkeypatch)
    _assert_same_bytes(outs)
    # the comparison is not vacuous: the cohort has quarantined rows and values
    report = json.loads((outs["arrow"] / "ingest_report.json").read_text())
    assert report["quarantine_rows"] > 0
    assert report["participants"] > 4000


@pytest.mark.parametrize("study", REAL_STUDIES)
def test_real_trial_outputs_identical_byte_for_byte(study, realdata, tmp_path, monkeypatch):
    study_yaml = REPO / "data" / "raw" / study / "study.yaml"
    if not study_yaml.exists():
        pytest.skip(f"{study_yaml} not in this checkout")
    monkeypatch.chdir(REPO)  # study.yaml paths point at ../shared/realdata relative to the repo
    _assert_same_bytes(_both_engines(study_yaml, tmp_path, monkeypatch))


def test_unknown_engine_is_refused(reference_dir, tmp_path):
    with pytest.raises(ValueError, match="engine must be"):
        run_ingest(reference_dir / "study.yaml", tmp_path, engine="polars")


@pytest.mark.parametrize(
    "ids",
    [
        pa.array(["P001", None, "P002", "P001", "", "ünï-cødé", "x" * 300]),
        pa.chunked_array([["a", "b"], [None, "a", "c"]]),
        pa.array([None, None], type=pa.string()),
    ],
)
def test_arrow_pseudonyms_equal_one_blake2b_call_per_id(ids):
    # independent reference: hashlib called directly on each id, as RFC 7693 keyed BLAKE2b
    expected = [
        None
        if v is None
        else "p"
        + hashlib.blake2b(
            b"study\x1f" + v.encode("utf-8"), key=TEST_KEY[:64], digest_size=10
        ).hexdigest()
        for v in ids.to_pylist()
    ]
    assert pseudonymise_arrow(ids, TEST_KEY, "study").to_pylist() == expected
    assert list(pseudonymise(ids, TEST_KEY, "study")) == expected


def _tables(reference_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKPAIN_PSEUDONYM_KEY", TEST_KEY.decode())
    run = run_ingest(reference_dir / "study.yaml", tmp_path, show_progress=False)
    return run.result.participants, run.result.outcomes, run.result.quarantine


def _break(table: str, how: str):
    def apply(frames):
        participants, outcomes, quarantine = (f.copy() for f in frames)
        if table == "participants" and how == "duplicate_id":
            ids = participants["participant_id"].to_numpy(dtype=object)
            ids[1] = ids[0]
            participants["participant_id"] = pd.array(ids, dtype="string[pyarrow]")
        elif table == "participants" and how == "bad_pseudonym":
            ids = participants["participant_id"].to_numpy(dtype=object)
            ids[3] = "P123"
            participants["participant_id"] = pd.array(ids, dtype="string[pyarrow]")
        elif table == "participants" and how == "negative_sessions":
            participants.loc[2, "sessions"] = -1.0
        elif table == "participants" and how == "missing_arm":
            participants.loc[0, "arm"] = np.nan
        elif table == "participants" and how == "wrong_dtype":
            participants["source_row"] = participants["source_row"].astype(float)
        elif table == "outcomes" and how == "out_of_domain":
            outcomes.loc[5, "value"] = 1e6
        elif table == "outcomes" and how == "repeated_key":
            outcomes = pd.concat([outcomes, outcomes.iloc[[7]]], ignore_index=True)
        elif table == "outcomes" and how == "null_value":
            outcomes.loc[4, "raw_value"] = np.nan
        elif table == "quarantine" and how == "unknown_reason":
            quarantine.loc[0, "reason"] = "because"
        elif table == "quarantine" and how == "source_row_zero":
            quarantine.loc[0, "source_row"] = 0
        elif table == "quarantine" and how == "missing_column":
            quarantine = quarantine.drop(columns="message")
        return participants, outcomes, quarantine

    return apply


BREAKS = [
    ("participants", "duplicate_id"),
    ("participants", "bad_pseudonym"),
    ("participants", "negative_sessions"),
    ("participants", "missing_arm"),
    ("participants", "wrong_dtype"),
    ("outcomes", "out_of_domain"),
    ("outcomes", "repeated_key"),
    ("outcomes", "null_value"),
    ("quarantine", "unknown_reason"),
    ("quarantine", "source_row_zero"),
    ("quarantine", "missing_column"),
]


def test_both_checks_accept_the_reference_tables(reference_dir, tmp_path, monkeypatch):
    frames = _tables(reference_dir, tmp_path, monkeypatch)
    check_tables(*frames)
    check_tables_pandera(*frames)


@pytest.mark.parametrize(("table", "how"), BREAKS)
def test_both_checks_reject_the_same_broken_tables(
    table, how, reference_dir, tmp_path, monkeypatch
):
    import pandera.errors

    frames = _break(table, how)(_tables(reference_dir, tmp_path, monkeypatch))
    with pytest.raises(TableCheckError, match=table):
        check_tables(*frames)
    with pytest.raises((pandera.errors.SchemaError, pandera.errors.SchemaErrors)):
        check_tables_pandera(*frames)
