"""Ingesting the reference cohort finds exactly the defects planted by ``simulate``, and leaks nothing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from ingest_helpers import TEST_KEY, run_folder

from pipeline.ingest.privacy import pseudonymise


@pytest.fixture(scope="module")
def ingested(reference_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("processed")
    monkeypatch = pytest.MonkeyPatch()
    try:
        run = run_folder(reference_dir / "study.yaml", out, monkeypatch)
    finally:
        monkeypatch.undo()
    return run, out


@pytest.fixture(scope="module")
def truth(reference_dir):
    return json.loads((reference_dir / "truth.json").read_text())


@pytest.fixture(scope="module")
def raw_export(reference_dir):
    return pd.read_csv(reference_dir / "patients.csv", dtype=str, keep_default_na=False)


def test_rows_accounted_exactly(ingested, truth):
    run, _ = ingested
    rows = run.result.report["files"]["patients"]["rows"]
    expected = truth["defects"]["expected_ingest"]
    defects = truth["defects"]
    assert rows["in"] == defects["rows_exported"]
    assert rows["kept"] == expected["participants"]
    assert rows["collapsed"] == expected["rows_collapsed"]
    assert rows["quarantined"] == expected["rows_quarantined"]
    assert rows["quarantined_by_reason"] == {
        "missing_id": defects["missing_id_rows"],
        "unknown_arm": defects["unknown_arm_rows"],
        "conflicting_duplicate": defects["conflicting_duplicate_rows"],
    }
    assert rows["balanced"]


def test_participants_by_arm(ingested, truth):
    run, _ = ingested
    expected = truth["defects"]["expected_ingest"]
    assert run.result.report["participants_by_arm"] == {
        "etmi": expected["participants_etmi"],
        "usual_care": expected["participants_usual_care"],
    }


def test_value_defects_found_exactly(ingested, truth):
    run, _ = ingested
    defects = truth["defects"]
    q = run.result.quarantine
    values = q[q["column"] != ""]

    def found(reason: str) -> dict[str, int]:
        return values[values["reason"] == reason]["column"].value_counts().sort_index().to_dict()

    assert found("out_of_range") == defects["out_of_range_values"]
    assert found("not_numeric") == defects["not_numeric_values"]
    assert found("unparseable_date") == defects["unparseable_date_values"]
    # three of four FABQ items blank: the one answered item of each such row is quarantined
    assert (
        len(values[values["reason"] == "too_many_missing_items"])
        == defects["fabq_pa_baseline_three_items_blank"]
    )
    assert set(values["reason"]) == {
        "out_of_range",
        "not_numeric",
        "unparseable_date",
        "too_many_missing_items",
    }


def test_missing_value_codes_counted(ingested, truth):
    run, _ = ingested
    cells = run.result.report["files"]["patients"]["cells"]
    # codes in rows that were later collapsed or quarantined are counted in the file, not in kept rows
    assert {k: v for k, v in cells["missing_value_codes"].items() if v} == truth["defects"][
        "missing_code_values"
    ]


def test_cells_balance_in_every_file(ingested):
    run, _ = ingested
    for entry in run.result.report["files"].values():
        cells = entry["cells"]
        assert cells["balanced"]
        assert (
            cells["in"]
            == cells["kept"]
            + cells["missing"]
            + cells["collapsed"]
            + cells["filtered"]
            + cells["quarantined"]
        )
        for column, counts in cells["by_column"].items():
            assert sum(counts.values()) == entry["rows"]["in"], column


def test_prorated_fabq_scores(ingested, truth):
    run, _ = ingested
    fear = run.result.outcomes.query("outcome == 'fear_avoidance' and timepoint == 'baseline'")
    defects = truth["defects"]
    # one blank item, or one item quarantined as out of range: three answered, total prorated
    prorated = (
        defects["fabq_pa_baseline_one_item_blank"]
        + defects["out_of_range_values"]["fabq3_baseline"]
    )
    assert (fear["items_answered"] == 3).sum() == prorated
    assert (
        len(fear)
        == defects["expected_ingest"]["participants"]
        - defects["fabq_pa_baseline_three_items_blank"]
    )
    assert fear["value"].between(0, 100).all()
    assert np.allclose(fear["value"], fear["raw_value"] * 100 / 24)


def test_arm_label_spellings_all_resolved(ingested, truth):
    run, _ = ingested
    spellings = truth["defects"]["arm_labels"]
    assert len(run.result.participants) == sum(sum(v.values()) for v in spellings.values())


def test_days_from_baseline_and_age(ingested, truth):
    run, _ = ingested
    outcomes = run.result.outcomes
    discharge = outcomes.query("timepoint == 'discharge' and outcome == 'function'")
    assert (discharge["days"].dropna() >= 7).all()
    # no nominal day for discharge: an unparseable discharge date leaves the day unknown
    assert (
        discharge["days"].isna().sum()
        <= truth["defects"]["unparseable_date_values"]["discharge_date"]
    )
    baseline = outcomes.query("timepoint == 'baseline'")
    assert (baseline["days"] == 0).all()
    ages = run.result.participants["age"]
    assert ages.between(18, 95.1).all() and ages.mean() == pytest.approx(56.3, abs=1.5)


def test_pseudonyms_are_keyed_and_stable(ingested, raw_export):
    run, _ = ingested
    import pyarrow as pa

    kept_rows = run.result.participants["source_row"].to_numpy() - 1
    raw_ids = raw_export["patient_id"].iloc[kept_rows]
    expected = pseudonymise(pa.chunked_array([raw_ids.tolist()]), TEST_KEY, "etmi-reference")
    assert (run.result.participants["participant_id"].to_numpy() == expected).all()
    other = pseudonymise(
        pa.chunked_array([raw_ids.tolist()]), b"another-key-" * 4, "etmi-reference"
    )
    assert not (other == expected).any()


def test_no_identifier_value_anywhere_in_processed_data(ingested, raw_export, truth, reference_dir):
    _, out = ingested
    identifier_columns = [*truth["defects"]["identifier_columns"], "patient_id"]
    values = set()
    for column in identifier_columns:
        values |= {v for v in raw_export[column] if len(v) >= 5}
    roster = pd.read_excel(reference_dir / "therapists.xlsx", sheet_name="roster")
    values |= set(roster["therapist_name"])
    assert len(values) > 20_000
    leaked = sorted(strings_in_folder(out) & values)
    assert leaked == [], f"identifier values found in processed data: {leaked[:5]}"


def test_leak_scan_can_fail(tmp_path):
    pd.DataFrame({"raw_record": ['{"x": "noa.cohen1@example.org"}'], "v": [1]}).to_parquet(
        tmp_path / "q.parquet"
    )
    (tmp_path / "r.json").write_text('{"k": ["Yael Tal"]}')
    assert strings_in_folder(tmp_path) & {"noa.cohen1@example.org", "Yael Tal"} == {
        "noa.cohen1@example.org",
        "Yael Tal",
    }


def strings_in_folder(folder) -> set[str]:
    """Every text cell of the Parquet files and every string inside JSON (files or cells) in a folder."""
    found: set[str] = set()
    for path in sorted(folder.iterdir()):
        if path.suffix == ".parquet":
            for row in pd.read_parquet(path).astype("string").itertuples(index=False):
                for cell in row:
                    if isinstance(cell, str):
                        found |= {cell, *_json_strings(cell)}
        elif path.suffix == ".json":
            found |= set(_json_strings(path.read_text()))
    return found


def _json_strings(text: str) -> list[str]:
    """Every string (keys and values) inside a JSON text; [] when the text is not JSON."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    out: list[str] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out += [str(k) for k in item]
            stack += list(item.values())
        elif isinstance(item, list):
            stack += item
        elif item is not None:
            out.append(str(item))
    return out


def test_quarantine_records_withhold_identifiers_and_dates(ingested):
    run, _ = ingested
    records = [json.loads(r) for r in run.result.quarantine["raw_record"]]
    assert records
    for record in records:
        assert "patient_id" not in record and "full_name" not in record and "email" not in record
        for key in ("baseline_date", "discharge_date", "date_of_birth"):
            if key in record:
                assert record[key].startswith("<withheld")


def test_outputs_written_and_report_has_provenance(ingested, reference_dir):
    _, out = ingested
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("unused")) == [
        "ingest_report.json",
        "outcomes.parquet",
        "participants.parquet",
        "quarantine.parquet",
    ]
    report = json.loads((out / "ingest_report.json").read_text())
    assert report["synthetic"] is True
    provenance = report["provenance"]
    assert set(provenance["input_files"]) == {"patients", "therapists"}
    assert len(provenance["study_yaml_sha256"]) == 64
    assert "statsmodels" in provenance["software"]
    removed = report["identifiers_removed"]
    assert {"full_name", "email", "phone", "national_id", "date_of_birth"} <= set(
        removed["patients"]
    )
    assert "therapist_name" in removed["therapists"]


def test_roster_joined_for_site(ingested):
    run, _ = ingested
    participants = run.result.participants
    assert participants["site"].notna().all() and participants["site"].nunique() == 13
    assert set(participants["therapist_etmi_trained"].dropna()) == {"yes", "no"}


def test_same_input_same_bytes(reference_dir, tmp_path, monkeypatch, ingested):
    _, first = ingested
    run_folder(reference_dir / "study.yaml", tmp_path, monkeypatch)
    for name in (
        "participants.parquet",
        "outcomes.parquet",
        "quarantine.parquet",
        "ingest_report.json",
    ):
        assert (tmp_path / name).read_bytes() == (first / name).read_bytes(), name
