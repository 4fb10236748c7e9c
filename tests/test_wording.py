"""Plain-language rules on hand-made estimates: every certainty level, magnitude band and edge case."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.summarise.certainty import Certainty, Evidence, interval_case, rate_certainty
from pipeline.summarise.claims import DEMO_PREFIX, NamingRules, build_claims, claim_id
from pipeline.summarise.lint import lint_claim
from pipeline.summarise.wording import Names, Numbers, render_effect, render_responders, size_words

NAMES = Names("Exercise", "usual care", "daily function", 100)
PAIN = Names("Exercise", "usual care", "back pain", 10)


def certain(level: str) -> Certainty:
    return Certainty(level=level, start="high")


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (
            "high",
            "Exercise improves daily function noticeably compared with usual care (about 8 points out of 100).",
        ),
        (
            "moderate",
            "Exercise probably improves daily function noticeably compared with usual care (about 8 points out of 100).",
        ),
        (
            "low",
            "Exercise may improve daily function noticeably compared with usual care (about 8 points out of 100).",
        ),
        (
            "very_low",
            "We are uncertain whether Exercise improves daily function noticeably compared with usual care (about 8 points out of 100).",
        ),
    ],
)
def test_each_certainty_level_has_its_verb(level, expected):
    numbers = Numbers(8.0, 5.0, 11.0, mcid=5.0, higher_is_better=True)
    sentence = render_effect(numbers, NAMES, certain(level))
    assert sentence == expected
    assert lint_claim(sentence, level) == []


@pytest.mark.parametrize(
    ("estimate", "ci", "words"),
    [
        (6.0, (4.0, 8.0), "noticeably"),  # at least the MCID of 5
        (3.0, (1.0, 5.0), "a little"),  # half to one MCID
        (1.5, (0.5, 2.5), "slightly"),  # under half the MCID
    ],
)
def test_magnitude_bands_against_the_mcid(estimate, ci, words):
    numbers = Numbers(estimate, *ci, mcid=5.0, higher_is_better=True)
    assert size_words(numbers) == words
    assert f"improves daily function {words} compared" in render_effect(
        numbers, NAMES, certain("high")
    )


def test_interval_within_the_mcid_is_little_or_no_difference():
    numbers = Numbers(0.3, -1.0, 1.6, mcid=2.0, higher_is_better=False)
    sentence = render_effect(numbers, PAIN, certain("moderate"))
    assert sentence.startswith(
        "Exercise probably makes little or no difference to back pain compared with usual care"
    )


def test_wide_interval_crossing_zero_is_never_no_effect():
    # CI fits both no difference and an important benefit: the claim must say we are uncertain
    evidence = Evidence("randomised", 2.0, -1.0, 9.0, 0.0, 5.0, n_analysed=400, n_in_arms=400)
    assert interval_case(evidence) == "unclear"
    certainty = rate_certainty(evidence)
    assert certainty.level == "low"  # high, minus two for serious imprecision
    frame = _estimates(estimate=2.0, ci_low=-1.0, ci_high=9.0)
    claim = build_claims(frame, _participants(), NamingRules()).iloc[0]
    assert claim["certainty"] == "very_low"
    assert claim["sentence"].startswith("We are uncertain whether")
    assert "no difference" not in claim["sentence"] and "no effect" not in claim["sentence"]


def test_harmful_direction_is_worded_as_harm():
    numbers = Numbers(-6.0, -9.0, -3.0, mcid=5.0, higher_is_better=True)
    assert "worsens daily function noticeably" in render_effect(numbers, NAMES, certain("high"))
    pain = Numbers(1.2, 0.4, 2.0, mcid=2.0, higher_is_better=False)  # higher pain = worse
    assert "may increase back pain a little" in render_effect(pain, PAIN, certain("low"))


def test_benefit_on_a_lower_is_better_scale_is_a_reduction():
    pain = Numbers(-2.5, -3.0, -2.1, mcid=2.0, higher_is_better=False)
    assert "probably reduces back pain noticeably" in render_effect(pain, PAIN, certain("moderate"))


def test_observational_design_starts_low_and_missing_data_lowers_it():
    evidence = Evidence("cohort", 4.0, 3.0, 5.0, 0.0, 10.0, n_analysed=300, n_in_arms=1000)
    certainty = rate_certainty(evidence)
    assert certainty.start == "low" and certainty.level == "very_low"
    assert any("missing" in reason for reason in certainty.reasons)


def test_small_trial_and_disagreeing_sensitivity_analysis_lower_certainty():
    evidence = Evidence(
        "randomised",
        8.0,
        6.0,
        10.0,
        0.0,
        5.0,
        n_analysed=60,
        n_in_arms=60,
        sensitivity_agrees=False,
    )
    certainty = rate_certainty(evidence)
    assert certainty.level == "low"
    assert len(certainty.reasons) == 2


def test_heterogeneity_across_studies_lowers_certainty():
    base = {
        "design": "randomised",
        "estimate": 0.8,
        "ci_low": 0.6,
        "ci_high": 1.0,
        "null": 0.0,
        "mcid": 0.5,
        "n_analysed": 500,
        "n_in_arms": 500,
    }
    assert rate_certainty(Evidence(**base, i2=60)).level == "moderate"
    assert rate_certainty(Evidence(**base, i2=90)).level == "low"


def test_responder_sentence_in_tens_and_small_counts_hidden():
    sentence = render_responders(0.62, 0.38, (31, 19), NAMES, certain("moderate"), "excludes_null")
    assert sentence.endswith("compared with usual care (6 vs 4 in 10).")
    assert "probably increases how many people improve" in sentence
    hidden = render_responders(0.06, 0.02, (3, 1), NAMES, certain("high"), "excludes_null")
    assert "too few people improved to give numbers" in hidden and "in 10" not in hidden


def test_claim_ids_are_stable_and_citable():
    assert (
        claim_id("etmi-reference", "etmi_function", "effect")
        == "C-etmi-reference-etmi-function-effect"
    )
    first = build_claims(_estimates(), _participants(), NamingRules())
    again = build_claims(_estimates(), _participants(), NamingRules())
    assert first["claim_id"].tolist() == again["claim_id"].tolist() == ["C-demo-cmp-effect"]


def test_synthetic_claims_say_demonstration_data():
    claim = build_claims(_estimates(synthetic=True), _participants(), NamingRules()).iloc[0]
    assert claim["sentence"].startswith(DEMO_PREFIX) and claim["synthetic"]


def test_every_generated_sentence_passes_the_linter():
    for estimate, low, high in [(8, 6, 10), (3, 1, 5), (0.2, -1, 1.5), (2, -1, 9), (-6, -9, -3)]:
        for design in ("randomised", "cohort"):
            claims = build_claims(
                _estimates(estimate=estimate, ci_low=low, ci_high=high, design=design),
                _participants(),
                NamingRules(),
            )
            for _, claim in claims.iterrows():
                assert lint_claim(claim["sentence"], claim["certainty"]) == [], claim["sentence"]


def _estimates(
    estimate: float = 8.0,
    ci_low: float = 6.0,
    ci_high: float = 10.0,
    synthetic: bool = False,
    design: str = "randomised",
) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "comparison_id": "cmp",
                "study_id": "demo",
                "method": "ancova",
                "estimand": "conditional",
                "effect_measure": "mean_difference",
                "term": "exercise vs usual_care",
                "estimate": estimate,
                "ci_low": ci_low,
                "ci_high": ci_high,
                "n_treated": 200,
                "n_control": 200,
                "is_primary": True,
                "treatment": "exercise",
                "control": "usual_care",
                "outcome": "function",
                "timepoint": "week_12",
                "domain": "function",
                "mcid": 5.0,
                "higher_is_better": True,
                "design": design,
                "synthetic": synthetic,
                "instrument": "odi",
                "input_data_sha256": "abc",
            }
        ]
    )


def _participants() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "participant_id": [f"p{i}" for i in range(400)],
            "arm": ["exercise"] * 200 + ["usual_care"] * 200,
        }
    )
