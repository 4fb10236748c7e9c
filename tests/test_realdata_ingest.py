"""The three real trials ingest into canonical tables that reproduce their published numbers.

Published values are those listed in each dataset's README under ../shared/realdata (from the
papers' tables); the data are read from there, never copied into the repository.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from ingest_helpers import TEST_KEY, ingest_folder

from pipeline.ingest.privacy import pseudonymise

pytestmark = pytest.mark.realdata
STUDIES = Path(__file__).resolve().parents[1] / "data" / "raw"


def by_arm(result, outcome: str, timepoint: str, column: str = "raw_value") -> pd.DataFrame:
    values = result.outcomes.query("outcome == @outcome and timepoint == @timepoint")
    values = values.merge(result.participants[["participant_id", "arm"]], on="participant_id")
    return values.groupby("arm", observed=True)[column].agg(["mean", "std", "count"])


def check_mean_sd(table: pd.DataFrame, expected: dict[str, tuple[float, float]]) -> None:
    for arm, (mean, sd) in expected.items():
        assert table.loc[arm, "mean"] == pytest.approx(mean, abs=0.005), arm
        assert table.loc[arm, "std"] == pytest.approx(sd, abs=0.005), arm


@pytest.fixture(scope="module")
def prt2022(realdata):
    return ingest_folder(STUDIES / "boulder-prt-2022" / "study.yaml")


@pytest.fixture(scope="module")
def prt5yr(realdata):
    return ingest_folder(STUDIES / "boulder-prt-5yr" / "study.yaml")


@pytest.fixture(scope="module")
def stops(realdata):
    return ingest_folder(STUDIES / "stops" / "study.yaml")


class TestBoulder2022:
    def test_randomised_arms_and_accounting(self, prt2022):
        assert prt2022.report["participants_by_arm"] == {"placebo": 51, "prt": 50, "usual_care": 50}
        rows = prt2022.report["files"]["outcomes"]["rows"]
        assert rows["filtered"] == 54  # healthy controls
        assert rows["quarantined_by_reason"] == {"missing_arm": 1}  # id 1004, not randomised
        assert rows["balanced"] and prt2022.report["files"]["outcomes"]["cells"]["balanced"]

    def test_post_treatment_pain_odi_tsk_match_the_paper(self, prt2022):
        # Table 2 / eTable 6 of Ashar et al. 2022, post-treatment mean (SD)
        check_mean_sd(
            by_arm(prt2022, "pain", "post_treatment"),
            {"prt": (1.18, 1.24), "placebo": (2.84, 1.64), "usual_care": (3.13, 1.45)},
        )
        check_mean_sd(
            by_arm(prt2022, "function", "post_treatment"),
            {"prt": (10.14, 10.63), "placebo": (19.00, 11.07), "usual_care": (20.68, 10.68)},
        )
        check_mean_sd(
            by_arm(prt2022, "fear_avoidance", "post_treatment"),
            {"prt": (16.41, 5.37), "placebo": (22.16, 4.94), "usual_care": (22.51, 6.30)},
        )

    def test_canonical_function_is_reversed_odi(self, prt2022):
        function = prt2022.outcomes.query("outcome == 'function'")
        assert ((function["value"] - (100 - function["raw_value"])).abs() < 1e-9).all()

    def test_pain_free_or_nearly_counts(self, prt2022):
        post = prt2022.outcomes.query("outcome == 'pain' and timepoint == 'post_treatment'")
        post = post.merge(prt2022.participants[["participant_id", "arm"]])
        assert (post["value"] <= 1).groupby(post["arm"], observed=True).sum().to_dict() == {
            "placebo": 10,
            "prt": 33,
            "usual_care": 5,
        }

    def test_table1_age_and_sex_by_arm(self, prt2022):
        p = prt2022.participants.set_index("arm")
        age = p.groupby(level=0, observed=True)["age"].agg(["mean", "std"])
        assert age.loc["prt", "mean"] == pytest.approx(42.6, abs=0.05)
        assert age.loc["placebo", "mean"] == pytest.approx(39.4, abs=0.05)
        assert age.loc["usual_care", "mean"] == pytest.approx(41.3, abs=0.05)
        female = (p["sex"] == "female").groupby(level=0, observed=True).sum().to_dict()
        assert female == {"placebo": 25, "prt": 29, "usual_care": 27}


class TestBoulder5yr:
    def test_baseline_matches_the_paper(self, prt5yr):
        check_mean_sd(
            by_arm(prt5yr, "pain", "baseline"),
            {"prt": (4.22, 1.21), "placebo": (4.16, 1.33), "usual_care": (3.91, 1.24)},
        )
        check_mean_sd(
            by_arm(prt5yr, "function", "baseline"),
            {"prt": (23.70, 10.70), "placebo": (23.06, 10.14), "usual_care": (23.26, 9.67)},
        )
        check_mean_sd(
            by_arm(prt5yr, "fear_avoidance", "baseline"),
            {"prt": (23.62, 5.46), "placebo": (23.10, 4.62), "usual_care": (23.93, 4.68)},
        )

    def test_five_year_means_from_items_match_the_authors_table(self, prt5yr):
        # All_outcomes_at_5_years.csv: pain_avg 1.87 (2.12) / 3.10 (1.86) / 2.53 (1.84); ODI 13.42 / 20.31 / 16.94
        check_mean_sd(
            by_arm(prt5yr, "pain", "five_years"),
            {"prt": (1.87, 2.12), "placebo": (3.10, 1.86), "usual_care": (2.53, 1.84)},
        )
        odi = by_arm(prt5yr, "function", "five_years")
        assert odi["mean"].round(2).to_dict() == {
            "placebo": 20.31,
            "prt": 13.42,
            "usual_care": 16.94,
        }
        assert odi["count"].to_dict() == {"placebo": 39, "prt": 38, "usual_care": 36}

    def test_item_scored_totals_equal_the_authors_totals(self, prt5yr, realdata):
        authors = pd.read_csv(realdata / "boulder_prt_5yr" / "5yr_scale_scores_only.csv")
        authors["participant_id"] = pseudonymise(
            pa.chunked_array([authors["id"].astype(str).tolist()]), TEST_KEY, "boulder-prt-5yr"
        )
        five = prt5yr.outcomes.query("timepoint == 'five_years'").pivot(
            index="participant_id", columns="outcome", values="raw_value"
        )
        merged = authors.set_index("participant_id").join(five, how="inner", rsuffix="_ours")
        assert len(merged) == 113
        for ours, theirs in [
            ("function", "odi"),
            ("fear_avoidance", "tsk11"),
            ("pain_severity", "bpi_intensity"),
            ("pain_interference", "bpi_interference"),
        ]:
            pd.testing.assert_series_equal(
                merged[ours], merged[theirs].astype(float), check_names=False, atol=1e-9
            )

    def test_nearly_pain_free_at_five_years(self, prt5yr):
        five = prt5yr.outcomes.query("outcome == 'pain' and timepoint == 'five_years'")
        five = five.merge(prt5yr.participants[["participant_id", "arm"]])
        assert (five["value"] <= 1).groupby(five["arm"], observed=True).sum().to_dict() == {
            "placebo": 10,
            "prt": 21,
            "usual_care": 13,
        }

    def test_lookup_join_accounted(self, prt5yr):
        files = prt5yr.report["files"]
        assert files["baseline"]["rows"]["filtered"] == 113  # the 5-year rows of the long file
        assert files["five_years"]["rows"]["kept"] == 113
        assert files["five_years"]["join"]["main_rows_without_match"] == 151 - 113


class TestStops:
    def test_arms(self, stops):
        assert stops.report["participants_by_arm"] == {"advice": 144, "individualised_physio": 156}

    def test_baseline_means(self, stops):
        odi = by_arm(stops, "function", "baseline")["mean"]
        pain = by_arm(stops, "pain", "baseline")["mean"]
        assert odi["advice"] == pytest.approx(29.62, abs=0.005)
        assert odi["individualised_physio"] == pytest.approx(29.19, abs=0.005)
        assert pain["advice"] == pytest.approx(5.45, abs=0.005)
        assert pain["individualised_physio"] == pytest.approx(5.27, abs=0.005)

    @pytest.mark.parametrize(
        ("outcome", "timepoint", "difference"),
        [
            ("function", "week_10", 5.27),
            ("function", "week_26", 5.91),
            ("function", "week_52", 4.55),
            ("pain", "week_10", 1.51),
            ("pain", "week_26", 1.04),
            ("leg_pain", "week_10", 1.26),
            ("leg_pain", "week_26", 1.14),
        ],
    )
    def test_unadjusted_complete_case_differences(self, stops, outcome, timepoint, difference):
        # README: advice minus physiotherapy on the raw (ODI / NRS) scale
        means = by_arm(stops, outcome, timepoint)["mean"]
        assert means["advice"] - means["individualised_physio"] == pytest.approx(
            difference, abs=0.005
        )

    def test_real_data_error_is_quarantined(self, stops):
        q = stops.quarantine
        bad = q[q["reason"] == "out_of_range"]
        assert bad["column"].tolist() == ["wk26_oreb_q18"] and bad["raw_value"].tolist() == ["19.0"]
