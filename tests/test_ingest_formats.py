"""Every reader gives the same canonical tables: CSV, TSV, XLSX, SPSS, Stata, Parquet, REDCap."""

from __future__ import annotations

import copy

import pandas as pd
import pyreadstat
import pytest
from ingest_helpers import MINI_COLUMNS, MINI_CONFIG, ingest_folder, mini_row, write_study

from pipeline.ingest.readers import normalise_label, parse_redcap_choices

ROWS = [
    mini_row("P1"),
    mini_row("P2", arm="B", p1="", f3="6"),
    mini_row("P3", p0="9", sex="M", n_sessions="0"),
    mini_row("P4", arm="B", p0="2", p1="2", d1=""),
]


@pytest.fixture(scope="module")
def from_csv(tmp_path_factory):
    return ingest_folder(write_study(tmp_path_factory.mktemp("csv"), ROWS))


def typed_frame() -> pd.DataFrame:
    """The rows as a typed frame (numbers as numbers), as statistics packages hold them."""
    frame = pd.DataFrame(ROWS, columns=MINI_COLUMNS)
    for column in ("p0", "p1", "f1", "f2", "f3", "f4", "n_sessions"):
        frame[column] = pd.to_numeric(frame[column].replace("", None))
    return frame


def config_for(file_entry: dict, **changes) -> dict:
    config = copy.deepcopy(MINI_CONFIG)
    config["files"] = [file_entry]
    config.update(changes)
    return config


def assert_same_tables(result, expected):
    columns = ["participant_id", "outcome", "timepoint", "days", "raw_value", "value"]
    pd.testing.assert_frame_equal(
        result.outcomes[columns].reset_index(drop=True),
        expected.outcomes[columns].reset_index(drop=True),
        check_dtype=False,
    )
    pd.testing.assert_frame_equal(
        result.participants.drop(columns=["source_file"]),
        expected.participants.drop(columns=["source_file"]),
        check_dtype=False,
    )


def test_tsv(tmp_path, from_csv):
    study = write_study(
        tmp_path, ROWS, config_for({"name": "main", "path": "data.tsv", "format": "tsv"})
    )
    pd.DataFrame(ROWS, columns=MINI_COLUMNS).to_csv(tmp_path / "data.tsv", sep="\t", index=False)
    assert_same_tables(ingest_folder(study), from_csv)


def test_xlsx_with_numbers_as_numbers(tmp_path, from_csv):
    typed_frame().to_excel(tmp_path / "data.xlsx", sheet_name="export", index=False)
    study = write_study(
        tmp_path,
        ROWS,
        config_for({"name": "main", "path": "data.xlsx", "format": "xlsx", "sheet": "export"}),
    )
    assert_same_tables(ingest_folder(study), from_csv)


def test_parquet(tmp_path, from_csv):
    typed_frame().to_parquet(tmp_path / "data.parquet")
    study = write_study(
        tmp_path, ROWS, config_for({"name": "main", "path": "data.parquet", "format": "parquet"})
    )
    assert_same_tables(ingest_folder(study), from_csv)


@pytest.mark.parametrize(
    ("extension", "writer"), [("sav", pyreadstat.write_sav), ("dta", pyreadstat.write_dta)]
)
def test_spss_and_stata_with_value_labels(tmp_path, from_csv, extension, writer):
    frame = typed_frame()
    frame["arm"] = frame["arm"].map({"A": 1, "B": 2}).astype(float)  # coded, labelled in the file
    writer(
        frame, str(tmp_path / f"data.{extension}"), variable_value_labels={"arm": {1: "A", 2: "B"}}
    )
    study = write_study(
        tmp_path,
        ROWS,
        config_for({"name": "main", "path": f"data.{extension}", "format": extension}),
    )
    assert_same_tables(ingest_folder(study), from_csv)


def test_spss_codes_can_be_mapped_directly(tmp_path, from_csv):
    frame = typed_frame()
    frame["arm"] = frame["arm"].map({"A": 1, "B": 2}).astype(float)
    pyreadstat.write_sav(frame, str(tmp_path / "data.sav"))
    arms = {"column": "arm", "treatment": "a", "control": "b", "labels": {"a": [1], "b": [2]}}
    study = write_study(
        tmp_path, ROWS, config_for({"name": "main", "path": "data.sav", "format": "sav"}, arms=arms)
    )
    assert_same_tables(ingest_folder(study), from_csv)


def test_redcap_records_with_events_and_dictionary(tmp_path):
    records = pd.DataFrame(
        {
            "record_id": ["1", "1", "2", "2", "3"],
            "redcap_event_name": [
                "baseline_arm_1",
                "month_3_arm_1",
                "baseline_arm_1",
                "month_3_arm_1",
                "baseline_arm_1",
            ],
            "redcap_repeat_instrument": ["", "", "", "", ""],
            "redcap_repeat_instance": ["", "", "", "", ""],
            "group": ["1", "", "2", "", "2"],  # the arm is recorded on the first event only
            "nprs": ["7", "4", "6", "6", "5"],
        }
    )
    records.to_csv(tmp_path / "records.csv", index=False)
    pd.DataFrame(
        {
            "Variable / Field Name": ["record_id", "group", "nprs"],
            "Form Name": ["enrolment", "enrolment", "pain"],
            "Field Type": ["text", "radio", "text"],
            "Field Label": ["Record ID", "Randomised group", "Pain now"],
            "Choices, Calculations, OR Slider Labels": [
                "",
                "1, Pain education | 2, Usual care",
                "",
            ],
        }
    ).to_csv(tmp_path / "dictionary.csv", index=False)
    config = {
        "study_id": "redcap-demo",
        "title": "REDCap demo",
        "design": "randomised",
        "source": {"citation": "test"},
        "files": [
            {
                "name": "records",
                "path": "records.csv",
                "format": "redcap",
                "data_dictionary": "dictionary.csv",
            }
        ],
        "layout": "long",
        "participant_id": "record_id",
        "arms": {
            "column": "group",
            "treatment": "education",
            "control": "usual_care",
            "labels": {"education": ["Pain education"], "usual_care": ["Usual care"]},
        },
        "timepoints": {
            "baseline": {"days": 0, "raw": ["baseline_arm_1"]},
            "month_3": {"days": 91, "raw": ["month_3_arm_1"]},
        },
        "outcomes": {"pain": {"instrument": "nprs", "column": "nprs"}},
    }
    import yaml

    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    result = ingest_folder(tmp_path / "study.yaml")
    assert result.participants["arm"].tolist() == ["education", "usual_care", "usual_care"]
    assert result.quarantine.empty
    pain = result.outcomes.merge(result.participants[["participant_id", "arm"]])
    assert pain.groupby(["arm", "timepoint"], observed=True)["value"].mean().to_dict() == {
        ("education", "baseline"): 7.0,
        ("education", "month_3"): 4.0,
        ("usual_care", "baseline"): 5.5,
        ("usual_care", "month_3"): 6.0,
    }
    assert set(pain["days"]) == {0.0, 91.0}


def test_redcap_choice_parsing():
    assert parse_redcap_choices("1, PRT | 2, Placebo, saline | 3 , Usual care") == {
        "1": "PRT",
        "2": "Placebo, saline",
        "3": "Usual care",
    }


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("E.T.M.I.", "etmi", True),
        ("Usual Care ", "usual care", True),
        ("1.0", "1", True),
        (1.0, "1", True),
        ("-1", "1", False),
        ("2.50", "2.5", True),
        ("UC", "usual care", False),
    ],
)
def test_label_normalisation(a, b, same):
    assert (normalise_label(a) == normalise_label(b)) is same
