"""Validation and quarantine of extraction sheets: every problem the messy NMA sheet's SOURCE.md
lists is found by the pipeline (one test each), every row is accounted for, and config errors
name the file and key."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.errors import ConfigError, InputFileError
from pipeline.review.config import load_review_config
from pipeline.review.validate import validate_review

AGG = Path("../shared/aggregate_data")
BELAVY = AGG / "belavy_clbp_nma_extraction"
PLESSEN = AGG / "plessen_digital_selfmanagement_cbp"


@pytest.fixture(scope="module")
def belavy():
    config = load_review_config("data/raw/belavy-clbp-nma/review.yaml", BELAVY)
    return validate_review(config)


def _all(v) -> pd.DataFrame:
    kept = v.trial_results.assign(reason="")
    return pd.concat([kept, v.quarantine[[*kept.columns.drop("reason").tolist(), "reason"]]])


def _flagged(frame: pd.DataFrame, flag: str) -> pd.Series:
    return frame["flags"].astype(str).str.split(";").apply(lambda f: flag in f)


def test_every_row_accounted_for(belavy) -> None:
    raw = pd.read_csv(BELAVY / "belavy_arm_long.csv")
    report = belavy.report
    assert report["rows_in"] == len(raw) == 410
    assert report["rows_kept"] + report["rows_quarantined"] == len(raw)
    assert len(belavy.trial_results) + len(belavy.quarantine) == len(raw)
    assert sum(report["quarantine_reasons"].values()) == report["rows_quarantined"]
    rows = sorted(_all(belavy)["row"].astype(int))
    assert rows == list(range(2, len(raw) + 2))


def test_imputed_baseline_sds_are_flagged(belavy) -> None:
    """SOURCE.md: 30 of 96 baseline SDs are exactly 1.8 or 11.8 (imputed)."""
    rows = _all(belavy)
    base = rows[rows["is_baseline"].astype(str) == "True"]
    imputed = base[base["sd"].astype(float).isin([1.8, 11.8])]
    assert len(imputed) >= 30
    share = _flagged(imputed, "sd_repeated_across_studies").mean()
    assert share >= 0.9, f"only {share:.0%} of the 1.8/11.8 baseline SDs flagged"


def test_identical_sds_across_arms_flagged_arguisuelas(belavy) -> None:
    tr = belavy.trial_results
    arg = tr[
        (tr["citation"] == "Arguisuelas 2017") & (tr["outcome"] == "pain") & ~tr["is_baseline"]
    ]
    pair = arg[arg["sd"] == 26.1]
    assert len(pair) == 2
    assert _flagged(pair, "sd_identical_across_arms").all()


def test_vas_mm_means_below_10_quarantined(belavy) -> None:
    q = belavy.quarantine
    for study in ("Paolucci 2012", "Zheng 2012"):
        rows = q[(q["citation"] == study) & (q["instrument_label"] == "VAS (0-100mm)")]
        assert len(rows) >= 2, study
        assert set(rows["reason"]) == {"scale_label_mismatch"}
    tr = belavy.trial_results
    assert not ((tr["instrument_label"] == "VAS (0-100mm)") & (tr["mean"] < 10)).any()


def test_lamb_other_tool_change_scores_quarantined(belavy) -> None:
    q = belavy.quarantine
    lamb = q[(q["citation"] == "Lamb 2010") & (q["instrument_label"] == "Other")]
    assert len(lamb) == 8
    assert set(lamb["reason"]) == {"unknown_instrument"}
    # its other outcomes look like change scores too: SD impossible for a bounded scale, or mean < 0
    rest = q[(q["citation"] == "Lamb 2010") & (q["instrument_label"] != "Other")]
    assert set(rest["reason"]) >= {"sd_impossible_for_range", "mean_outside_range"}
    tr = belavy.trial_results
    assert not ((tr["citation"] == "Lamb 2010") & (tr["outcome"] == "pain")).any()


def test_repeated_author_year_labels_flagged(belavy) -> None:
    tr = belavy.trial_results
    for label in ("Wang 2005", "Zhang 2010"):
        rows = tr[tr["citation"] == label]
        assert rows["trial_id"].nunique() == 2
        assert _flagged(rows, "citation_label_repeats").all()
    assert not _flagged(tr[tr["citation"] == "Akhtar 2017"], "citation_label_repeats").any()


def test_crossover_trials_flagged(belavy) -> None:
    tr = belavy.trial_results
    flagged = tr[_flagged(tr, "crossover_design")]["trial_id"].nunique()
    study = pd.read_csv(BELAVY / "belavy_study_level.csv")
    crossover = study["Study_Design"].str.contains("cross", case=False).sum()
    assert crossover == 3
    assert 1 <= flagged <= 3


def test_n_below_1_quarantined(belavy) -> None:
    q = belavy.quarantine
    assert (q.loc[q["reason"] == "n_below_1", "n"].astype(float) < 1).all()
    assert (q["reason"] == "n_below_1").sum() >= 1
    assert (belavy.trial_results.loc[~belavy.trial_results["is_baseline"], "n"] >= 1).all()


def test_tool_placeholder_zero_found_in_the_xlsx(tmp_path: Path) -> None:
    """SOURCE.md: tool cells coded 0 as placeholders. They are in the xlsx (the derived long CSV
    drops arms without numbers), so the xlsx is read directly, back pain at baseline."""
    review = {
        "review_id": "belavy-xlsx-baseline",
        "title": "Belavy xlsx, back pain baseline",
        "citation": "Belavy et al. BMJ Open 2021",
        "sheet": {"file": "CollatedData_2020_10_09_same int_removed_imputed_MBNMA.xlsx"},
        "columns": {
            "trial_id": "INFO_Covidence.ID",
            "citation": "INFO_Author.Year",
            "arm": "INTERVENTION.COMPARATOR_Label",
            "arm_class": "COMPARATOR_SHORT_HAND",
            "outcome": "=back_pain",
            "instrument": "Back.pain.or.Pain_Tool",
            "timepoint_weeks": "=0",
            "n": "POPULATION_N.enrolled",
            "mean": "Baseline.Back.Pain_Mean",
            "sd": "Baseline.Back.Pain_SD",
        },
        "arm_classes": yaml.safe_load(Path("data/raw/belavy-clbp-nma/review.yaml").read_text())[
            "arm_classes"
        ],
        "outcomes": {"back_pain": "pain"},
        "instruments": {"VAS (0-10cm)": {"registry": "vas_cm"}},
        "questions": [],
    }
    path = tmp_path / "review.yaml"
    path.write_text(yaml.safe_dump(review))
    v = validate_review(load_review_config(path, BELAVY))
    q = v.quarantine
    placeholders = q[q["reason"] == "instrument_placeholder"]
    assert sorted(placeholders["citation"]) == ["Grob 1995", "Grob 1995", "Ma 2016", "Weil 2017"]
    assert v.report["rows_in"] == 101 == v.report["rows_kept"] + v.report["rows_quarantined"]


def test_plessen_rows_without_numbers_quarantined() -> None:
    v = validate_review(
        load_review_config("data/raw/plessen-digital-self-management/review.yaml", PLESSEN)
    )
    assert v.report["rows_in"] == 54
    q = v.quarantine
    assert set(q.loc[q["trial_id"] == "Zheng, 2022a", "reason"]) == {"no_mean"}
    assert set(q.loc[q["instrument_label"] == "pi stress", "reason"]) == {"unknown_instrument"}


def test_sd_from_se_and_median_iqr_recorded(tmp_path: Path) -> None:
    sheet = pd.DataFrame(
        {
            "trial": ["A", "A", "B", "B"],
            "arm": ["t", "c", "t", "c"],
            "cls": ["Exercise", "Usual care", "Exercise", "Usual care"],
            "n": [25, 25, 50, 50],
            "mean": [3.0, 4.0, None, None],
            "se": [0.4, 0.5, None, None],
            "median": [None, None, 3.0, 4.0],
            "q1": [None, None, 2.0, 3.0],
            "q3": [None, None, 5.0, 6.0],
        }
    )
    sheet.to_csv(tmp_path / "sheet.csv", index=False)
    review = {
        "review_id": "derived",
        "title": "t",
        "citation": "c",
        "sheet": {"file": "sheet.csv"},
        "columns": {
            "trial_id": "trial",
            "arm": "arm",
            "arm_class": "cls",
            "outcome": "=pain",
            "instrument": "=NPRS",
            "timepoint_weeks": "=8",
            "n": "n",
            "mean": "mean",
            "se": "se",
            "median": "median",
            "q1": "q1",
            "q3": "q3",
        },
        "arm_classes": {"Exercise": "exercise", "Usual care": "usual_care"},
        "outcomes": {"pain": "pain"},
        "instruments": {"NPRS": {"registry": "nprs"}},
        "questions": [],
    }
    (tmp_path / "review.yaml").write_text(yaml.safe_dump(review))
    tr = validate_review(load_review_config(tmp_path / "review.yaml")).trial_results
    assert tr.loc[0, "sd"] == pytest.approx(2.0)  # 0.4 x sqrt(25)
    assert tr.loc[0, "sd_rule"].startswith("from SE")
    assert tr.loc[2, "mean"] == pytest.approx(10 / 3)
    assert "Wan" in tr.loc[2, "sd_rule"]
    assert all("sd_derived" in f for f in tr["flags"])


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    text = Path("data/raw/plessen-digital-self-management/review.yaml").read_text()
    data = yaml.safe_load(text)
    data["arm_classes"]["CBT"] = "cognitive"
    path = tmp_path / "review.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"review.yaml.*arm_classes.CBT.*unknown arm class"):
        load_review_config(path, PLESSEN)
    data = yaml.safe_load(text)
    data["colums"] = {}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"colums: unknown key"):
        load_review_config(path, PLESSEN)
    data = yaml.safe_load(text)
    data["columns"]["mean"] = "post_mean"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputFileError, match=r"plessen_arm_long.csv.*'post_mean'.*columns.mean"):
        validate_review(load_review_config(path, PLESSEN))
