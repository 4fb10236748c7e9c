"""Tests for pipeline.analysis.frame (the analysis frame) and pipeline.analysis.spec.

Every expected value is read off the tiny hand-made canonical tables below (six participants,
two outcomes, three timepoints): participant p3 is in a third arm and must be left out, p4 has
no smoking status, p5 has no therapist and no pain value at discharge. MCIDs and directions
come from ``pipeline/registry/instruments.yaml`` (nprs: 2 points, pain, higher is worse;
foto_lumbar_fs: 5 points, function, higher is better; odi: 10 points on the raw scale).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from pipeline.analysis.frame import build_analysis_frame, repeated_frame
from pipeline.analysis.spec import ComparisonSpec, load_settings
from pipeline.errors import ConfigError

TIMEPOINTS = ["baseline", "6w", "discharge"]
DAYS = {"baseline": 0, "6w": 42, "discharge": 84}
NAN = np.nan

# participant: arm, age, sex, smoker, severity, therapist, site, sessions
PEOPLE = {
    "p1": ("etmi", 30.0, "female", "yes", "mild", "t1", "s1", 5),
    "p2": ("usual_care", 40.0, "male", "no", "severe", "t1", "s1", 6),
    "p3": ("advice", 50.0, "female", "no", "mild", "t2", "s1", 7),
    "p4": ("etmi", 60.0, "male", None, "severe", "t2", "s2", 8),
    "p5": ("usual_care", 70.0, "female", "yes", "mild", None, "s2", 9),
    "p6": ("etmi", 80.0, "male", "no", "mild", "t3", "s2", 10),
}
# outcome values on the canonical scale by timepoint (NaN = no row in the outcomes table)
PAIN = {
    "baseline": [7, 6, 8, 5, 9, 4],
    "6w": [5, 6, 7, 4, 8, 2],
    "discharge": [3, 5, 4, 2, NAN, 1],
}
FUNCTION = {"baseline": [40, 50, 45, 60, 35, 55], "6w": [50, 52, 50, 70, 40, 60]}


def make_tables(shuffle: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical ``participants`` and ``outcomes`` shaped as ingest writes them."""
    ids = list(PEOPLE)
    columns = list(zip(*PEOPLE.values(), strict=True))
    participants = pd.DataFrame(
        {
            "study_id": pd.Categorical(["demo"] * len(ids)),
            "participant_id": pd.array(ids, dtype="string[pyarrow]"),
            "arm": pd.Categorical(columns[0], categories=["etmi", "usual_care", "advice"]),
            "age": np.array(columns[1], dtype=float),
            "sex": pd.Categorical(columns[2], categories=["female", "male"]),
            "smoker": pd.Categorical(columns[3], categories=["yes", "no"]),  # ingest order
            "severity": pd.Categorical(columns[4], categories=["none", "mild", "severe"]),
            "therapist": pd.Categorical(columns[5]),
            "site": pd.Categorical(columns[6]),
            "sessions": np.array(columns[7], dtype=float),
        }
    )
    rows = []
    for outcome, instrument, domain, table in (
        ("pain", "nprs", "pain", PAIN),
        ("function", "foto_lumbar_fs", "function", FUNCTION),
    ):
        for timepoint, values in table.items():
            for pid, value in zip(ids, values, strict=True):
                if not np.isnan(value):
                    rows.append(
                        {
                            "participant_id": pid,
                            "outcome": outcome,
                            "domain": domain,
                            "instrument": instrument,
                            "timepoint": timepoint,
                            "days": DAYS[timepoint],
                            "raw_value": float(value),
                            "value": float(value),
                        }
                    )
    outcomes = pd.DataFrame(rows)
    if shuffle:  # rows in no particular order: values must be matched by participant id
        outcomes = outcomes.sample(frac=1.0, random_state=7).reset_index(drop=True)
    outcomes = outcomes.assign(
        participant_id=outcomes["participant_id"].astype("string[pyarrow]"),
        outcome=pd.Categorical(outcomes["outcome"]),
        timepoint=pd.Categorical(outcomes["timepoint"], categories=TIMEPOINTS),
    )
    return participants, outcomes


def spec(**overrides) -> ComparisonSpec:
    values = {
        "id": "demo-pain",
        "outcome": "pain",
        "timepoint": "discharge",
        "treatment": "etmi",
        "control": "usual_care",
        "methods": ["ancova"],
    }
    return ComparisonSpec(**(values | overrides))


def test_one_row_per_participant_of_the_two_arms_with_values_matched_by_id() -> None:
    participants, outcomes = make_tables()
    frame = build_analysis_frame(participants, outcomes, spec())
    data = frame.data
    # p3 (advice) is left out; values read from PAIN above
    assert list(data["participant_id"]) == ["p1", "p2", "p4", "p5", "p6"]
    assert list(data["treated"]) == [1, 0, 1, 0, 1]
    np.testing.assert_array_equal(data["y"], [3, 5, 2, NAN, 1])
    np.testing.assert_array_equal(data["baseline"], [7, 6, 5, 9, 4])
    assert frame.baseline_timepoint == "baseline"
    assert frame.covariates == [] and frame.adjustment == ["baseline"]
    # complete cases drop p5 (no discharge pain)
    assert list(frame.complete_cases()["participant_id"]) == ["p1", "p2", "p4", "p6"]


def test_swapping_the_arms_flips_the_treated_indicator() -> None:
    participants, outcomes = make_tables()
    frame = build_analysis_frame(
        participants, outcomes, spec(treatment="usual_care", control="advice")
    )
    assert list(frame.data["participant_id"]) == ["p2", "p3", "p5"]
    assert list(frame.data["treated"]) == [1, 0, 1]


@pytest.mark.parametrize(
    ("outcome", "instrument", "domain", "higher_is_better", "mcid"),
    [
        ("pain", "nprs", "pain", False, 2.0),  # registry: nprs mcid_raw 2, scale 1
        ("function", "foto_lumbar_fs", "function", True, 5.0),  # mcid_raw 5, scale 1
        ("function", "odi", "function", True, 10.0),  # mcid_raw 10, |scale| 1
    ],
)
def test_instrument_direction_and_mcid_come_from_the_registry(
    outcome, instrument, domain, higher_is_better, mcid
) -> None:
    participants, outcomes = make_tables()
    outcomes = outcomes.assign(
        instrument=np.where(outcomes["outcome"] == outcome, instrument, outcomes["instrument"])
    )
    frame = build_analysis_frame(participants, outcomes, spec(outcome=outcome, timepoint="6w"))
    assert frame.instrument == instrument
    assert frame.domain == domain
    assert frame.higher_is_better is higher_is_better
    assert frame.mcid == pytest.approx(mcid)


def test_baseline_is_the_first_category_not_the_first_row_or_smallest_label() -> None:
    participants, outcomes = make_tables()
    # Categories in study order "pre" < "mid" < "end": alphabetical order would pick "end";
    # rows sorted so that the first row is at "end".
    renamed = {"baseline": "pre", "6w": "mid", "discharge": "end"}
    outcomes = outcomes.assign(
        timepoint=pd.Categorical(
            outcomes["timepoint"].astype(str).map(renamed), categories=["pre", "mid", "end"]
        )
    ).sort_values("timepoint", ascending=False)
    frame = build_analysis_frame(participants, outcomes, spec(timepoint="end"))
    assert frame.baseline_timepoint == "pre"
    np.testing.assert_array_equal(frame.data["baseline"], [7, 6, 5, 9, 4])


def test_plain_text_timepoints_are_ordered_by_their_days() -> None:
    participants, outcomes = make_tables()
    # "baseline" sorts after "6w" as text; the days (0 < 42 < 84) decide
    outcomes = outcomes.assign(timepoint=outcomes["timepoint"].astype(str))
    frame = build_analysis_frame(participants, outcomes, spec(timepoint="6w"))
    assert frame.baseline_timepoint == "baseline"
    np.testing.assert_array_equal(frame.data["y"], [5, 6, 4, 8, 2])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"treatment": "placebo"}, "treatment arm 'placebo' is not in the data"),
        ({"control": "waitlist"}, "control arm 'waitlist' is not in the data"),
        ({"outcome": "disability"}, "outcome 'disability' is not in the data"),
        ({"timepoint": "week_52"}, "timepoint 'week_52' not in the data"),
        ({"timepoint": "baseline"}, "timepoint 'baseline' is the baseline"),
        ({"adjust_for": ["bmi"]}, "adjust_for 'bmi' is not a participant column"),
        ({"adjust_for": ["arm"]}, "adjust_for 'arm' is not a participant column"),
        ({"cluster": "clinician"}, "cluster 'clinician' is not a participant column"),
        ({"clinic": "hospital"}, "clinic 'hospital' is not a participant column"),
        (
            {"adjust_for_baselines": ["fear_avoidance"]},
            "adjust_for_baselines 'fear_avoidance' is not an outcome of the study",
        ),
        (
            {"effect_modifier": "depression", "methods": ["effect_modification"]},
            "effect_modifier 'depression' is not a participant column",
        ),
        (
            {"effect_modifier": "site", "methods": ["effect_modification"], "control": "advice"},
            "effect modifier 'site' has fewer than 2 levels",  # every etmi/advice one in s1
        ),
    ],
)
def test_names_not_in_the_data_are_refused_with_a_config_error(overrides, message) -> None:
    participants, outcomes = make_tables()
    if overrides.get("effect_modifier") == "site":
        # etmi (p1, p4, p6) and advice (p3): make every one of them site s1
        participants = participants.assign(
            site=pd.Categorical(["s1", "s2", "s1", "s1", "s2", "s1"])
        )
    with pytest.raises(ConfigError, match=re.escape(f"comparison demo-pain: {message}")):
        build_analysis_frame(participants, outcomes, spec(**overrides))


def test_unknown_names_error_lists_what_is_available() -> None:
    participants, outcomes = make_tables()
    with pytest.raises(ConfigError, match=r"\(arms: \['advice', 'etmi', 'usual_care'\]\)"):
        build_analysis_frame(participants, outcomes, spec(treatment="placebo"))
    with pytest.raises(ConfigError, match=r"\(outcomes: \['function', 'pain'\]\)"):
        build_analysis_frame(participants, outcomes, spec(outcome="odi"))
    with pytest.raises(ConfigError, match=r"available: \[.*'age'.*'smoker'.*\]"):
        build_analysis_frame(participants, outcomes, spec(adjust_for=["bmi"]))


def test_covariates_numeric_as_is_categories_as_indicators_first_level_reference() -> None:
    participants, outcomes = make_tables()
    frame = build_analysis_frame(
        participants, outcomes, spec(adjust_for=["age", "sex", "smoker", "severity"])
    )
    data = frame.data  # rows p1, p2, p4, p5, p6
    # sex: categories female, male -> one column sex=male (female = reference)
    # smoker: ingest writes categories [yes, no]; binary yes/no is coded 1 = yes
    # severity: declared none, mild, severe; "none" is absent, so "mild" is the reference
    assert frame.covariates == ["age", "sex=male", "smoker=yes", "severity=severe"]
    np.testing.assert_array_equal(data["age"], [30, 40, 60, 70, 80])
    np.testing.assert_array_equal(data["sex=male"], [0, 1, 1, 0, 1])
    np.testing.assert_array_equal(data["smoker=yes"], [1, 0, NAN, 1, 0])  # p4 missing
    np.testing.assert_array_equal(data["severity=severe"], [0, 1, 1, 0, 0])
    assert frame.adjustment == ["baseline", *frame.covariates]
    # complete cases drop p4 (smoker) and p5 (outcome)
    assert list(frame.complete_cases()["participant_id"]) == ["p1", "p2", "p6"]


def test_text_and_boolean_covariates_are_encoded_like_categories() -> None:
    participants, outcomes = make_tables()
    participants = participants.assign(
        smoker=participants["smoker"].astype(object),  # plain text yes/no with a None
        sex=participants["sex"].astype(str),  # text: levels sorted, first = reference
        working=[True, False, True, True, False, False],
    )
    frame = build_analysis_frame(
        participants, outcomes, spec(adjust_for=["smoker", "sex", "working"])
    )
    assert frame.covariates == ["smoker=yes", "sex=male", "working=True"]
    np.testing.assert_array_equal(frame.data["smoker=yes"], [1, 0, NAN, 1, 0])
    np.testing.assert_array_equal(frame.data["working=True"], [1, 0, 1, 0, 0])


def test_adjust_for_baselines_adds_the_baseline_of_other_outcomes_only() -> None:
    participants, outcomes = make_tables()
    frame = build_analysis_frame(
        participants, outcomes, spec(adjust_for=["age"], adjust_for_baselines=["function", "pain"])
    )
    # own outcome ("pain") is skipped: its baseline is already the "baseline" column
    assert frame.covariates == ["age", "baseline_function"]
    np.testing.assert_array_equal(frame.data["baseline_function"], [40, 50, 60, 35, 55])
    assert "baseline_pain" not in frame.data


def test_cluster_and_clinic_are_text_labels_with_missing_kept_missing() -> None:
    participants, outcomes = make_tables()
    frame = build_analysis_frame(participants, outcomes, spec(cluster="therapist", clinic="site"))
    assert list(frame.data["cluster"][[0, 1, 2, 4]]) == ["t1", "t1", "t2", "t3"]
    assert pd.isna(frame.data["cluster"][3])  # p5 has no therapist
    assert list(frame.data["clinic"]) == ["s1", "s1", "s2", "s2", "s2"]


def test_effect_modifier_levels_follow_the_category_order_of_present_levels() -> None:
    participants, outcomes = make_tables()
    frame = build_analysis_frame(
        participants,
        outcomes,
        spec(effect_modifier="severity", methods=["effect_modification"]),
    )
    assert frame.modifier_levels == ["mild", "severe"]  # "none" declared but absent
    assert list(frame.data["modifier"]) == ["mild", "severe", "severe", "mild", "mild"]


def test_sessions_are_the_outcome_without_a_baseline() -> None:
    participants, outcomes = make_tables()
    frame = build_analysis_frame(
        participants,
        outcomes,
        spec(
            outcome="sessions", timepoint=None, methods=["poisson"], adjust_for_baselines=["pain"]
        ),
    )
    np.testing.assert_array_equal(frame.data["y"], [5, 6, 8, 9, 10])
    assert "baseline" not in frame.data
    assert frame.domain == "sessions" and frame.mcid is None and frame.instrument is None
    # the pain baseline is an ordinary covariate for counts
    assert frame.adjustment == ["baseline_pain"]
    np.testing.assert_array_equal(frame.data["baseline_pain"], [7, 6, 5, 9, 4])


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"adjust_for": ["age", "sex", "smoker"], "adjust_for_baselines": ["function"]},
        {"cluster": "therapist", "clinic": "site"},
        {"effect_modifier": "smoker", "methods": ["effect_modification"]},
        {"outcome": "sessions", "timepoint": None, "methods": ["negative_binomial"]},
    ],
)
def test_input_tables_are_not_modified(overrides) -> None:
    participants, outcomes = make_tables()
    before = participants.copy(deep=True), outcomes.copy(deep=True)
    frame = build_analysis_frame(participants, outcomes, spec(**overrides))
    if frame.baseline_timepoint is not None:
        repeated_frame(participants, outcomes, frame)
    pd.testing.assert_frame_equal(participants, before[0])
    pd.testing.assert_frame_equal(outcomes, before[1])


def test_repeated_frame_has_one_row_per_participant_and_follow_up() -> None:
    participants, outcomes = make_tables()
    frame = build_analysis_frame(participants, outcomes, spec(adjust_for=["age"]))
    long = repeated_frame(participants, outcomes, frame)
    # 5 participants x 2 follow-ups, minus p5 at discharge (no value); sorted by id, time
    assert list(long["participant_id"]) == ["p1", "p1", "p2", "p2", "p4", "p4", "p5", "p6", "p6"]
    assert list(long["timepoint"].astype(str)) == ["6w", "discharge"] * 3 + ["6w"] + [
        "6w",
        "discharge",
    ]
    assert list(long["timepoint"].cat.categories) == ["6w", "discharge"]
    np.testing.assert_array_equal(long["y"], [5, 3, 6, 5, 4, 2, 8, 2, 1])
    np.testing.assert_array_equal(long["baseline"], [7, 7, 6, 6, 5, 5, 9, 4, 4])
    np.testing.assert_array_equal(long["treated"], [1, 1, 0, 0, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(long["age"], [30, 30, 40, 40, 60, 60, 70, 80, 80])


# ---------------------------------------------------------------------------------------------
# spec.py


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"control": "etmi"}, "treatment and control are the same arm"),
        ({"id": "Demo Pain"}, "id 'Demo Pain' must be lower case"),
        ({"outcome": "sessions", "methods": ["ancova"]}, "sessions are counts"),
        ({"methods": ["poisson"]}, r"\['poisson'\] are for counts"),
        ({"timepoint": None}, "give the timepoint to compare at"),
        ({"methods": ["effect_modification"]}, "effect_modification needs effect_modifier"),
        ({"missing_data": "complete_case_and_mice"}, "needs method mice"),
        ({"primary": "naive"}, "primary method naive is not among methods"),
        ({"methods": []}, "at least 1 item"),
        ({"adjust": ["age"]}, "Extra inputs are not permitted"),
    ],
)
def test_comparison_spec_refuses_inconsistent_declarations(overrides, message) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**overrides)


def test_comparison_spec_is_frozen_and_primary_method_follows_the_preference_order() -> None:
    s = spec(methods=["naive", "mixed", "ancova"])
    assert s.primary_method == "ancova"
    assert spec(methods=["naive", "mixed"]).primary_method == "mixed"
    assert spec(methods=["effect_size"]).primary_method == "effect_size"
    assert spec(methods=["naive", "ancova"], primary="naive").primary_method == "naive"
    with pytest.raises(ValidationError):
        s.outcome = "function"


def test_settings_merge_study_defaults_and_name_the_failing_comparison() -> None:
    section = {
        "studies": {
            "demo": {
                "defaults": {"treatment": "etmi", "control": "usual_care", "methods": ["ancova"]},
                "comparisons": [
                    {"id": "pain", "outcome": "pain", "timepoint": "discharge"},
                    {"id": "function", "outcome": "function", "timepoint": "discharge"},
                ],
            }
        }
    }
    settings = load_settings(section)
    specs = settings.comparisons("demo")
    assert [s.id for s in specs] == ["pain", "function"]
    assert all(s.treatment == "etmi" and s.methods == ["ancova"] for s in specs)
    assert settings.alpha == 0.05 and settings.mcid_sweep == [0.5, 0.75, 1.0, 1.5, 2.0]

    bad = {"studies": {"demo": {"comparisons": [{"id": "x", "outcome": "pain"}]}}}
    with pytest.raises(
        ConfigError,
        match=r"analyse.studies.demo.comparisons\[0\] \(x\): treatment: Field required; "
        r"control: Field required; methods: Field required",
    ):
        load_settings(bad).comparisons("demo")
    with pytest.raises(ConfigError, match="has no study 'other'"):
        settings.comparisons("other")
    repeated = {"studies": {"demo": {**section["studies"]["demo"]}}}
    repeated["studies"]["demo"]["comparisons"] = [section["studies"]["demo"]["comparisons"][0]] * 2
    with pytest.raises(ConfigError, match=r"comparison ids repeated: \['pain'\]"):
        load_settings(repeated).comparisons("demo")
    with pytest.raises(ConfigError, match=r"params\.yaml: analyse: alpha"):
        load_settings({**section, "alpha": 1.5})
    with pytest.raises(ConfigError, match=r"unknown keys \['default'\]"):
        load_settings({"studies": {"demo": {"default": {}}}}).comparisons("demo")


def _without_baseline_values(outcomes: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """An outcome never measured at the study's baseline (e.g. all its baseline values quarantined)."""
    at_baseline = (outcomes["outcome"] == outcome) & (outcomes["timepoint"] == "baseline")
    return outcomes[~at_baseline]


def test_outcome_without_baseline_values_is_not_adjusted_for_a_follow_up_value() -> None:
    participants, outcomes = make_tables()
    outcomes = _without_baseline_values(outcomes, "pain")
    # The study's baseline is the first category ("baseline"); the 6w values are outcomes.
    # Acceptable: refuse, or keep "baseline" as the baseline timepoint with missing values.
    try:
        frame = build_analysis_frame(participants, outcomes, spec())
    except ConfigError:
        return
    assert frame.baseline_timepoint == "baseline"
    assert frame.data["baseline"].isna().all()


def test_adjust_for_baselines_never_uses_a_follow_up_value() -> None:
    participants, outcomes = make_tables()
    outcomes = _without_baseline_values(outcomes, "function")
    try:
        frame = build_analysis_frame(
            participants, outcomes, spec(adjust_for_baselines=["function"])
        )
    except ConfigError:
        return
    # FUNCTION["6w"] values (50, 52, 70, 40, 60) must not appear as baseline_function
    assert frame.data["baseline_function"].isna().all()
