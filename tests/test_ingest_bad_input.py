"""Broken input: each kind gets a clear fatal error (file, column, problem) or a named quarantine reason.

Fatal problems stop with :class:`UserError` (exit code 2 from the CLI, one line, no traceback);
problems in single rows or values go to the quarantine and lose nothing else.
"""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from ingest_helpers import MINI_CONFIG, config_with, ingest_folder, mini_row, write_study

from pipeline.errors import ConfigError, InputFileError, UserError

# ---------------------------------------------------------------------------------------------
# Fatal: the file, the config or the mapping is unusable


def test_missing_file(tmp_path):
    study = write_study(tmp_path, [mini_row("P1")])
    (tmp_path / "data.csv").unlink()
    with pytest.raises(InputFileError, match=r"data\.csv: file not found"):
        ingest_folder(study)


def test_empty_file(tmp_path):
    study = write_study(tmp_path, [mini_row("P1")])
    (tmp_path / "data.csv").write_bytes(b"")
    with pytest.raises(InputFileError, match=r"data\.csv: file is empty"):
        ingest_folder(study)


def test_header_only(tmp_path):
    study = write_study(tmp_path, [])
    with pytest.raises(InputFileError, match=r"data\.csv: no data rows"):
        ingest_folder(study)


def test_binary_junk(tmp_path):
    study = write_study(tmp_path, [mini_row("P1")])
    (tmp_path / "data.csv").write_bytes(bytes(range(256)) * 20)
    with pytest.raises(InputFileError, match=r"data\.csv: .*(binary|not valid)"):
        ingest_folder(study)


def test_wrong_encoding(tmp_path):
    study = write_study(tmp_path, [mini_row("P1")])
    text = (tmp_path / "data.csv").read_text().replace("P1,A", "Pé1,A")
    (tmp_path / "data.csv").write_bytes(text.encode("latin-1"))
    with pytest.raises(InputFileError, match=r"not valid utf-8.*encoding"):
        ingest_folder(study)


def test_declared_encoding_reads_latin1(tmp_path):
    config = config_with(files=[{**MINI_CONFIG["files"][0], "encoding": "latin-1"}])
    study = write_study(tmp_path, [mini_row("P1"), mini_row("P2", arm="B")], config)
    text = (tmp_path / "data.csv").read_text().replace("P1,A", "Pé1,A")
    (tmp_path / "data.csv").write_bytes(text.encode("latin-1"))
    assert len(ingest_folder(study).participants) == 2


def test_ragged_row(tmp_path):
    study = write_study(tmp_path, [mini_row("P1")])
    with open(tmp_path / "data.csv", "a") as handle:
        handle.write("P2,A,2022-01-01,,1,2,3,4,5,6,7,1970-01-01,F,x@y.org,EXTRA\n")
    with pytest.raises(InputFileError, match=r"data\.csv: cannot parse.*(columns|Expected)"):
        ingest_folder(study)


def test_mapped_column_absent(tmp_path):
    columns = [c for c in __import__("ingest_helpers").MINI_COLUMNS if c != "p1"]
    study = write_study(tmp_path, [mini_row("P1")], columns=columns)
    with pytest.raises(
        InputFileError, match=r"column 'p1' \(mapped in study\.yaml\) is not in data\.csv"
    ):
        ingest_folder(study)


def test_repeated_header_names(tmp_path):
    study = write_study(tmp_path, [mini_row("P1")])
    lines = (tmp_path / "data.csv").read_text().splitlines()
    lines[0] = lines[0].replace("email", "sex")
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError, match=r"repeats column names \['sex'\]"):
        ingest_folder(study)


def test_malformed_study_yaml(tmp_path):
    study = write_study(tmp_path, [mini_row("P1")])
    study.write_text("study_id: mini\nfiles: [unclosed\n")
    with pytest.raises(ConfigError, match=r"study\.yaml line \d+: not valid YAML"):
        ingest_folder(study)


def test_study_yaml_unknown_key(tmp_path):
    study = write_study(tmp_path, [mini_row("P1")], config_with(layuot="wide"))
    with pytest.raises(ConfigError, match=r"layuot: unknown key"):
        ingest_folder(study)


def test_study_yaml_wrong_type(tmp_path):
    study = write_study(tmp_path, [mini_row("P1")], config_with(design="observational"))
    with pytest.raises(
        ConfigError, match=r"design: .*'randomised' or 'cohort'.*got 'observational'"
    ):
        ingest_folder(study)


def test_study_yaml_missing_field(tmp_path):
    config = config_with()
    del config["participant_id"]
    study = write_study(tmp_path, [mini_row("P1")], config)
    with pytest.raises(ConfigError, match=r"participant_id: required field is missing"):
        ingest_folder(study)


def test_unknown_instrument(tmp_path):
    outcomes = {"pain": {"instrument": "nprs11", "columns": {"baseline": "p0"}}}
    study = write_study(tmp_path, [mini_row("P1")], config_with(outcomes=outcomes))
    with pytest.raises(
        ConfigError, match=r"outcomes\.pain\.instrument: unknown instrument 'nprs11'"
    ):
        ingest_folder(study)


def test_wrong_number_of_items(tmp_path):
    outcomes = {
        "fear_avoidance": {"instrument": "fabq_pa", "items": {"baseline": ["f1", "f2", "f3"]}}
    }
    study = write_study(tmp_path, [mini_row("P1")], config_with(outcomes=outcomes))
    with pytest.raises(ConfigError, match=r"fabq_pa' has 4 items, 3 columns given"):
        ingest_folder(study)


def test_label_declared_for_two_arms(tmp_path):
    arms = {
        "column": "arm",
        "treatment": "a",
        "control": "b",
        "labels": {"a": ["A"], "b": ["B", "a"]},
    }
    study = write_study(tmp_path, [mini_row("P1")], config_with(arms=arms))
    with pytest.raises(ConfigError, match=r"label 'a' is given for two levels"):
        ingest_folder(study)


def test_identifier_column_mapped_as_data(tmp_path):
    covariates = {
        **MINI_CONFIG["covariates"],
        "contact": {"type": "category", "column": "email", "levels": {"x": ["y"]}},
    }
    config = config_with(covariates=covariates, identifiers=["dob"])
    study = write_study(tmp_path, [mini_row(f"P{i}") for i in range(5)], config)
    with pytest.raises(
        ConfigError, match=r"column 'email' is mapped as data but looks like it holds e-mail"
    ):
        ingest_folder(study)


def test_no_valid_rows(tmp_path):
    study = write_study(tmp_path, [mini_row("P1", arm="Z"), mini_row("P2", arm="")])
    with pytest.raises(InputFileError, match=r"data\.csv: no valid rows \(all 2 rows"):
        ingest_folder(study)


def test_xlsx_missing_sheet(tmp_path):
    pd.DataFrame([mini_row("P1")]).to_excel(
        tmp_path / "data.xlsx", sheet_name="export", index=False
    )
    config = config_with(
        files=[{"name": "main", "path": "data.xlsx", "format": "xlsx", "sheet": "Sheet9"}]
    )
    study = write_study(tmp_path, [mini_row("P1")], config)
    with pytest.raises(InputFileError, match=r"data\.xlsx: no sheet 'Sheet9' \(sheets: export\)"):
        ingest_folder(study)


def test_corrupt_xlsx(tmp_path):
    (tmp_path / "data.xlsx").write_text("this is not a spreadsheet")
    config = config_with(files=[{"name": "main", "path": "data.xlsx", "format": "xlsx"}])
    study = write_study(tmp_path, [mini_row("P1")], config)
    with pytest.raises(InputFileError, match=r"data\.xlsx: not a readable xlsx file"):
        ingest_folder(study)


def test_fatal_error_through_cli_is_one_line_with_exit_2(tmp_path):
    study = write_study(tmp_path, [mini_row("P1")], config_with(layuot="wide"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "ingest",
            str(study),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env={"BACKPAIN_PSEUDONYM_KEY": "k" * 40, "PATH": ""},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "layuot: unknown key" in result.stderr
    assert not (tmp_path / "out").exists()


def test_every_fatal_error_is_a_user_error():
    assert issubclass(InputFileError, UserError) and issubclass(ConfigError, UserError)


# ---------------------------------------------------------------------------------------------
# Quarantine: bad rows and bad values, with the rest kept


def quarantine_of(tmp_path, rows, config=None):
    result = ingest_folder(write_study(tmp_path, rows, config))
    return result, result.quarantine.assign(reason=lambda q: q["reason"].astype(str))


@pytest.mark.parametrize(
    ("cell", "value", "reason"),
    [
        ("p0", "seven", "not_numeric"),
        ("p0", "7/10", "not_numeric"),
        ("p0", "11", "out_of_range"),
        ("p0", "-2", "out_of_range"),
        ("f2", "9", "out_of_range"),
        ("d1", "2022-02-30", "unparseable_date"),
        ("d1", "yesterday", "unparseable_date"),
        ("d1", "2021-12-01", "impossible_date"),
        ("dob", "1850-01-01", "impossible_date"),
        ("sex", "X", "unknown_level"),
        ("n_sessions", "4.5", "not_integer"),
        ("n_sessions", "-1", "out_of_range"),
    ],
)
def test_bad_value_is_quarantined_alone(tmp_path, cell, value, reason):
    result, q = quarantine_of(tmp_path, [mini_row("P1", **{cell: value}), mini_row("P2", arm="B")])
    assert len(result.participants) == 2, "a bad value must not drop the participant"
    hit = q[q["column"] == cell]
    assert hit["reason"].tolist() == [reason]
    assert hit["source_row"].tolist() == [1]
    assert cell in hit["message"].iloc[0]
    # the participant's other values are kept
    pain = result.outcomes[
        (result.outcomes["outcome"] == "pain") & (result.outcomes["source_row"] == 1)
    ]
    assert len(pain) == (2 if cell not in ("p0",) else 1)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"pid": ""}, "missing_id"),
        ({"arm": ""}, "missing_arm"),
        ({"arm": "C"}, "unknown_arm"),
    ],
)
def test_bad_row_is_quarantined_whole(tmp_path, overrides, reason):
    result, q = quarantine_of(tmp_path, [mini_row("P1", **overrides), mini_row("P2", arm="B")])
    assert len(result.participants) == 1
    assert q["reason"].tolist() == [reason] and q["column"].tolist() == [""]
    assert result.report["files"]["main"]["rows"]["quarantined_by_reason"] == {reason: 1}


def test_conflicting_duplicates_go_to_quarantine_and_exact_duplicates_collapse(tmp_path):
    rows = [
        mini_row("P1"),
        mini_row("P1"),
        mini_row("P2", arm="B"),
        mini_row("P2", arm="B", p0="2"),
        mini_row("P3"),
    ]
    result, q = quarantine_of(tmp_path, rows)
    assert sorted(result.participants["source_row"]) == [1, 5]
    rows_report = result.report["files"]["main"]["rows"]
    assert rows_report["collapsed"] == 1
    assert rows_report["quarantined_by_reason"] == {"conflicting_duplicate": 2}
    assert sorted(q["source_row"]) == [3, 4]


def test_too_many_missing_items(tmp_path):
    result, q = quarantine_of(
        tmp_path, [mini_row("P1", f2="", f3=""), mini_row("P2", arm="B", f4="")]
    )
    hits = q[q["reason"] == "too_many_missing_items"]
    assert sorted(hits["column"]) == ["f1", "f4"] and set(hits["source_row"]) == {1}
    fear = result.outcomes[result.outcomes["outcome"] == "fear_avoidance"]
    assert fear["source_row"].tolist() == [2]  # one blank of four items is prorated
    assert fear["raw_value"].iloc[0] == pytest.approx((4 + 3 + 5) * 4 / 3)


def test_missing_value_code_is_missing_not_quarantined(tmp_path):
    result, q = quarantine_of(tmp_path, [mini_row("P1", p1="-99"), mini_row("P2", arm="B")])
    assert q.empty
    cells = result.report["files"]["main"]["cells"]
    assert cells["missing_value_codes"]["p1"] == 1
    assert cells["by_column"]["p1"] == {"kept": 1, "missing": 1}


def test_unknown_timepoint_in_long_layout(tmp_path):
    config = config_with(
        layout="long",
        timepoint_column="visit",
        timepoints={
            "baseline": {"days": 0, "raw": ["v0"]},
            "followup": {"days": 42, "raw": ["v1"]},
        },
        outcomes={"pain": {"instrument": "nprs", "column": "p0"}},
        covariates={},
        sessions=None,
    )
    columns = ["pid", "arm", "visit", "p0"]
    rows = [
        {"pid": "P1", "arm": "A", "visit": "v0", "p0": "5"},
        {"pid": "P1", "arm": "A", "visit": "v9", "p0": "4"},
        {"pid": "P2", "arm": "B", "visit": "v1", "p0": "3"},
        {"pid": "P2", "arm": "A", "visit": "v0", "p0": "3"},
    ]
    result = ingest_folder(write_study(tmp_path, rows, config, columns))
    reasons = result.quarantine.set_index("source_row")["reason"].astype(str).to_dict()
    assert reasons == {2: "unknown_timepoint", 3: "inconsistent_arm", 4: "inconsistent_arm"}
    assert result.participants["source_row"].tolist() == [1]
