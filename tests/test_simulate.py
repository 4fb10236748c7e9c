"""The reference cohort: calibration, confounding, missingness, determinism and planted defects."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
import yaml

from pipeline.simulate import (
    CohortSpec,
    ExportSpec,
    simulate_study,
    specs_from_params,
    write_study,
)
from pipeline.simulate.cohort import simulate_cohort

# A large cohort makes sampling error small enough for tight calibration checks.
LARGE_N = 60_000


@pytest.fixture(scope="module")
def large_cohort():
    return simulate_cohort(CohortSpec(n_patients=LARGE_N, seed=7))


@pytest.fixture(scope="module")
def many_therapists_cohort():
    """Many therapists, so that chance differences between the therapists who deliver ETMI and
    the others (a real, finite-sample confounder at the default 128) average out."""
    return simulate_cohort(
        CohortSpec(
            n_patients=LARGE_N,
            n_therapists=3000,
            n_therapists_trained=2500,
            n_therapists_delivering=1640,
            seed=7,
        )
    )


def read_export(folder) -> pd.DataFrame:
    return pd.read_csv(folder / "patients.csv", dtype=str, keep_default_na=False)


def binomial_tolerance(p: float, n: int, z: float = 4.0) -> float:
    return z * np.sqrt(p * (1 - p) / n)


class TestCalibration:
    """Marginals match the published ETMI study within sampling tolerance."""

    def test_shares_match_targets(self, large_cohort):
        p = large_cohort.patients
        spec = large_cohort.spec
        assert p["etmi"].mean() == pytest.approx(
            spec.etmi_share, abs=binomial_tolerance(0.17, LARGE_N)
        )
        assert p["complete"].mean() == pytest.approx(
            spec.complete_share, abs=binomial_tolerance(0.39, LARGE_N)
        )
        assert p["female"].mean() == pytest.approx(0.585, abs=binomial_tolerance(0.585, LARGE_N))

    def test_age_is_adult_with_published_mean_and_sd(self, large_cohort):
        age = large_cohort.patients["age"]
        assert age.min() >= 18 and age.max() <= 95
        assert age.mean() == pytest.approx(56.3, abs=4 * 16.7 / np.sqrt(LARGE_N))
        assert age.std() == pytest.approx(16.7, abs=0.3)

    def test_complete_cases_by_arm_near_published_split(self, large_cohort):
        p = large_cohort.patients
        # Published: 259 of 711 ETMI (36.4%) and 1365 of 3482 usual care (39.2%) complete.
        assert p.loc[p["etmi"], "complete"].mean() == pytest.approx(259 / 711, abs=0.03)
        assert p.loc[~p["etmi"], "complete"].mean() == pytest.approx(1365 / 3482, abs=0.03)

    def test_sessions_fewer_with_etmi(self, large_cohort):
        p = large_cohort.patients
        assert p.loc[~p["etmi"], "sessions"].mean() == pytest.approx(5.1, abs=0.25)
        assert p.loc[p["etmi"], "sessions"].mean() == pytest.approx(3.5, abs=0.4)

    def test_therapist_structure(self):
        cohort = simulate_cohort(CohortSpec(n_patients=2000))
        t, p = cohort.therapists, cohort.patients
        assert len(t) == 128 and t["clinic_index"].nunique() == 13
        assert t["trained"].sum() == 109 and t["delivering"].sum() == 70
        assert not (t["delivering"] & ~t["trained"]).any()
        delivering = t.set_index("therapist_index")["delivering"]
        assert delivering.loc[p.loc[p["etmi"], "therapist_index"]].all()

    def test_baseline_outcomes_stay_on_their_scales(self, large_cohort):
        p = large_cohort.patients
        assert p["function_baseline"].between(0, 100).all()
        assert p["pain_baseline"].between(0, 10).all()
        assert p["fabq_pa_baseline"].between(0, 24).all()
        items = p.filter(regex=r"^fabq_pa_item\d_baseline$")
        assert items.shape[1] == 4 and items.isin(range(7)).all().all()


class TestTruthAndConfounding:
    def test_realised_effects_equal_potential_outcome_differences(self, large_cohort):
        p = large_cohort.patients
        diff = p["function_if_etmi"] - p["function_if_usual"]
        assert diff.mean() == pytest.approx(4.0, abs=0.1)  # clipping at 0/100 moves it slightly
        fear = p["fear_avoidance_if_etmi"] - p["fear_avoidance_if_usual"]
        assert fear.mean() == pytest.approx(-6.0, abs=0.6)  # item rounding and clipping at 0
        assert (p["pain_if_etmi"] == p["pain_if_usual"]).all()

    def test_naive_difference_is_biased_and_adjusted_recovers_truth(self, many_therapists_cohort):
        p = many_therapists_cohort.patients
        cc = p[p["complete"]].assign(
            change=lambda d: d["function_discharge"] - d["function_baseline"],
            log_duration=lambda d: np.log(d["symptom_months"] / 12),
            etmi_int=lambda d: d["etmi"].astype(int),
            dep_anx=lambda d: d["depression_anxiety"].astype(int),
        )
        truth = (cc["function_if_etmi"] - cc["function_if_usual"]).mean()
        naive = cc.loc[cc["etmi"], "change"].mean() - cc.loc[~cc["etmi"], "change"].mean()
        adjusted = smf.ols(
            "function_discharge ~ etmi_int + function_baseline + age + dep_anx + log_duration"
            " + fabq_pa_baseline + female",
            data=cc,
        ).fit(cov_type="cluster", cov_kwds={"groups": cc["therapist_index"]})
        # Clustered errors: ETMI is delivered by some therapists only, so the therapists'
        # own (random) effects add between-therapist uncertainty to the comparison.
        low, high = adjusted.conf_int().loc["etmi_int"]
        assert abs(naive - truth) > 1.0, "the naive comparison should be confounded"
        assert low < truth < high

    def test_discharge_missingness_depends_on_observed_covariates(self, large_cohort):
        p = large_cohort.patients.assign(
            complete_int=lambda d: d["complete"].astype(int),
            dep_anx=lambda d: d["depression_anxiety"].astype(int),
        )
        fit = smf.logit("complete_int ~ age + dep_anx + function_baseline", data=p).fit(disp=0)
        assert fit.pvalues[["age", "dep_anx", "function_baseline"]].max() < 1e-6

    def test_truth_json_records_assumptions_and_effects(self, reference_dir):
        truth = json.loads((reference_dir / "truth.json").read_text())
        assert truth["synthetic"] is True
        assert truth["true_effects"]["structural"]["function"] == 4.0
        assert truth["true_effects"]["structural"]["fear_avoidance"] == -6.0
        assert "propensity" in truth["assumptions"]["structural_model"]
        assert set(truth["files"]) == {"patients.csv", "therapists.xlsx"}


class TestDeterminism:
    def test_same_seed_gives_identical_bytes(self, tmp_path, reference_dir):
        spec = CohortSpec()
        write_study(simulate_study(spec, ExportSpec()), tmp_path)
        for name in ("patients.csv", "therapists.xlsx", "truth.json", "study.yaml", "README.md"):
            assert (tmp_path / name).read_bytes() == (reference_dir / name).read_bytes(), name

    def test_different_seed_gives_different_data(self, tmp_path, reference_dir):
        write_study(simulate_study(CohortSpec(seed=1), ExportSpec()), tmp_path)
        assert (tmp_path / "patients.csv").read_bytes() != (
            reference_dir / "patients.csv"
        ).read_bytes()


@pytest.fixture(scope="module")
def export(reference_dir):
    return read_export(reference_dir)


@pytest.fixture(scope="module")
def defects(reference_dir):
    return json.loads((reference_dir / "truth.json").read_text())["defects"]


class TestPlantedDefects:
    """Every defect counted in truth.json is really in the files, and nothing more."""

    def test_row_count(self, export, defects):
        assert len(export) == defects["rows_exported"]
        assert defects["rows_exported"] == (
            defects["patients_simulated"]
            + defects["exact_duplicate_rows"]
            + defects["conflicting_duplicate_ids"]
        )

    def test_exact_duplicates(self, export, defects):
        assert export.duplicated().sum() == defects["exact_duplicate_rows"] > 0

    def test_conflicting_duplicates(self, export, defects):
        distinct = export.drop_duplicates()
        with_id = distinct[distinct["patient_id"] != ""]
        repeated = with_id[with_id["patient_id"].duplicated(keep=False)]
        assert repeated["patient_id"].nunique() == defects["conflicting_duplicate_ids"] > 0
        assert len(repeated) == defects["conflicting_duplicate_rows"]

    def test_missing_ids_and_unknown_arms(self, export, defects):
        assert (export["patient_id"] == "").sum() == defects["missing_id_rows"] > 0
        unknown = export["treatment_group"].isin(defects["unknown_arm_labels"])
        assert unknown.sum() == defects["unknown_arm_rows"] > 0

    def test_missing_codes(self, export, defects):
        code = str(defects["missing_code"])
        found = {
            c: int((export[c] == code).sum()) for c in export.columns if (export[c] == code).any()
        }
        assert found == defects["missing_code_values"]

    def test_out_of_range_values(self, export, defects):
        limits = {"nprs": (0, 10), "foto_fs": (0, 100), "fabq": (0, 6), "n_sessions": (0, 100)}
        found = {}
        for column in export.columns:
            prefix = next((k for k in limits if column.startswith(k)), None)
            if prefix is None:
                continue
            values = pd.to_numeric(export[column], errors="coerce")
            values = values[values != defects["missing_code"]]
            low, high = limits[prefix]
            bad = int(((values < low) | (values > high)).sum())
            if bad:
                found[column] = bad
        assert found == defects["out_of_range_values"]

    def test_not_numeric_values(self, export, defects):
        numeric_columns = [
            c for c in export.columns if re.match(r"(nprs|foto|fabq|bmi|symptom|n_sess)", c)
        ]
        found = {}
        for column in numeric_columns:
            text = export[column]
            bad = int((pd.to_numeric(text, errors="coerce").isna() & (text != "")).sum())
            if bad:
                found[column] = bad
        assert found == defects["not_numeric_values"]

    def test_unparseable_dates(self, export, defects):
        found = {}
        for column in ("baseline_date", "discharge_date", "date_of_birth"):
            text = export[column]
            parsed = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
            bad = int((parsed.isna() & (text != "")).sum())
            if bad:
                found[column] = bad
        assert found == defects["unparseable_date_values"]

    def test_fabq_blank_items(self, export, defects):
        distinct = export.drop_duplicates(subset="patient_id")
        items = distinct[[f"fabq{k}_baseline" for k in (2, 3, 4, 5)]]
        blanks = (items == "").sum(axis=1)
        assert (blanks == 1).sum() == defects["fabq_pa_baseline_one_item_blank"]
        assert (blanks == 3).sum() == defects["fabq_pa_baseline_three_items_blank"]

    def test_arm_label_spellings_are_inconsistent_and_counted(self, export, defects):
        distinct = export.drop_duplicates()
        distinct = distinct[
            ~distinct["patient_id"].duplicated(keep=False) & (distinct["patient_id"] != "")
        ]
        distinct = distinct[~distinct["treatment_group"].isin(defects["unknown_arm_labels"])]
        counted = {
            label: n for labels in defects["arm_labels"].values() for label, n in labels.items()
        }
        assert distinct["treatment_group"].value_counts().to_dict() == counted
        assert len(counted) > 4

    def test_identifiers_present_in_the_export(self, export, defects):
        for column in defects["identifier_columns"]:
            assert column in export.columns
        assert export["email"].str.endswith("@example.org").all()
        assert export["national_id"].str.fullmatch(r"\d{9}").all()


class TestSyntheticLabels:
    def test_every_file_says_synthetic(self, reference_dir):
        export = read_export(reference_dir)
        assert export["data_note"].str.startswith("SYNTHETIC").all()
        roster = pd.read_excel(reference_dir / "therapists.xlsx", sheet_name="roster")
        assert len(roster) == 128 and roster["data_note"].str.startswith("SYNTHETIC").all()
        assert "SYNTHETIC" in (reference_dir / "README.md").read_text()
        assert yaml.safe_load((reference_dir / "study.yaml").read_text())["synthetic"] is True


class TestParams:
    def test_params_yaml_section_builds_specs(self):
        section = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())[
            "simulate"
        ]
        study_id, cohort, export = specs_from_params(section)
        assert study_id == "etmi-reference" and cohort.n_patients == 4193
        assert cohort.effect_function == 4.0 and export.missing_code == -99

    def test_unknown_key_is_rejected(self):
        with pytest.raises(ValueError, match=r"unknown keys.*n_patiens"):
            specs_from_params({"n_patiens": 10})

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"n_patients": 10}, "at least 50"),
            ({"etmi_share": 1.5}, "etmi_share"),
            ({"n_therapists_delivering": 200}, "n_therapists_delivering"),
        ],
    )
    def test_invalid_specs_are_rejected(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            CohortSpec(**kwargs)
