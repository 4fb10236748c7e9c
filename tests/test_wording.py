"""GRADE certainty and informative statements on hand-made estimates.

Each test names the GRADE rule it checks. Thresholds (registry/grade.yaml): function 5 / 10 /
20 points, pain 0.5 / 1 / 2 points (Chou 2017), responders 5 / 10 / 20 in 100.
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.summarise.certainty import (
    Evidence,
    RiskOfBias,
    direction_word,
    optimal_information_size,
    rate_certainty,
    size_category,
    thresholds_for,
)
from pipeline.summarise.claims import (
    DEMO_PREFIX,
    NamingRules,
    StudyFacts,
    build_claims,
    claim_id,
    is_readable,
)
from pipeline.summarise.lint import lint_text
from pipeline.summarise.wording import format_number, render_range, round_half_away

PAIN = thresholds_for("pain")
FUNCTION = thresholds_for("function")
LOW_ROB = RiskOfBias("low", "well done", "RoB 2", participants_blinded=True)


def evidence(**changes) -> Evidence:
    """A large, well-done, blinded trial of pain with a precise result: high unless changed."""
    base = {
        "design": "randomised",
        "estimate": -1.5,
        "ci_low": -1.7,
        "ci_high": -1.3,
        "thresholds": PAIN,
        "se": 0.1,
        "n_analysed": 1000,
        "n_denominator": 1000,
        "denominator_is_randomised": True,
        "risk_of_bias": LOW_ROB,
    }
    return Evidence(**{**base, **changes})


def domain(certainty, name):
    return next(j for j in certainty.judgements if j.domain == name)


# ---------------------------------------------------------------------------------------------
# magnitude bands and imprecision


@pytest.mark.parametrize(
    ("estimate", "low", "high", "size"),
    [
        (0.1, -0.2, 0.4, "trivial"),  # whole interval within +/- 0.5
        (-0.7, -0.8, -0.6, "small"),
        (-1.5, -1.7, -1.3, "moderate"),
        (-2.6, -2.9, -2.3, "large"),
        (-0.3, -0.6, -0.1, "small"),  # point trivial but the interval reaches 0.6: not trivial
    ],
)
def test_size_category_from_the_bands(estimate, low, high, size):
    """GRADE partially contextualised approach: the category of the point estimate, and
    "trivial" only when the whole interval lies within +/- the small threshold."""
    assert size_category(evidence(estimate=estimate, ci_low=low, ci_high=high)) == size


def test_precise_large_trial_without_concerns_is_high():
    certainty = rate_certainty(evidence())
    assert certainty.level == "high"
    assert {j.domain for j in certainty.judgements} == {
        "risk_of_bias",
        "imprecision",
        "inconsistency",
        "indirectness",
        "publication_bias",
    }


def test_interval_crossing_one_threshold_is_rated_down_once():
    """GRADE 34: an interval spanning two categories (moderate and large) is imprecise."""
    certainty = rate_certainty(evidence(estimate=-1.8, ci_low=-2.3, ci_high=-1.3))
    assert domain(certainty, "imprecision").levels == -1
    assert certainty.level == "moderate"


@pytest.mark.parametrize("reach", [0.40, 0.45, 0.49])  # 80-99% of the 0.5 threshold
def test_trivial_interval_that_nearly_reaches_an_important_effect_is_rated_down(reach):
    """GRADE 34: an interval crossing 0 inside +/- threshold but coming close to it (80-99%)
    is not precise enough for high certainty in "little or no difference"."""
    item = evidence(estimate=0.05, ci_low=-0.1, ci_high=reach)
    certainty = rate_certainty(item)
    assert direction_word(item) == "little_or_no_difference"
    assert domain(certainty, "imprecision").levels == -1
    assert "close to an important effect" in domain(certainty, "imprecision").reason
    assert certainty.level == "moderate"


def test_trivial_interval_far_from_the_threshold_keeps_high():
    certainty = rate_certainty(evidence(estimate=0.0, ci_low=-0.15, ci_high=0.15, se=0.075))
    assert domain(certainty, "imprecision").levels == 0 and certainty.level == "high"


def test_interval_with_no_difference_and_an_important_effect_gives_no_direction():
    """An interval that includes no difference and reaches an important effect cannot give a
    direction: very low, "we are uncertain"."""
    item = evidence(estimate=-0.4, ci_low=-1.2, ci_high=0.4)
    assert direction_word(item) == "uncertain"
    assert rate_certainty(item).level == "very_low"


def test_optimal_information_size_closed_form():
    """OIS for a continuous outcome: the n whose SE is threshold / (z_0.975 + z_0.8)."""
    z = 1.959963984540054 + 0.8416212335729143
    item = evidence(se=PAIN.small / z, n_analysed=400)
    assert optimal_information_size(item, 0.05, 0.8) == pytest.approx(400, rel=1e-9)
    # twice the SE needs four times the people
    item = evidence(se=2 * PAIN.small / z, n_analysed=400)
    assert optimal_information_size(item, 0.05, 0.8) == pytest.approx(1600, rel=1e-9)


def test_dichotomous_ois_is_the_two_proportion_sample_size():
    """Control risk 0.30, threshold 5 in 100: n per arm = z^2 (p0 q0 + p1 q1) / d^2."""
    item = Evidence(
        design="randomised",
        estimate=0.10,
        ci_low=0.06,
        ci_high=0.14,
        thresholds=thresholds_for("risk_difference"),
        control_risk=0.30,
    )
    z = 1.959963984540054 + 0.8416212335729143
    per_arm = z**2 * (0.3 * 0.7 + 0.35 * 0.65) / 0.05**2
    assert optimal_information_size(item, 0.05, 0.8) == pytest.approx(2 * per_arm)


def test_below_the_ois_is_imprecise_even_inside_one_category():
    certainty = rate_certainty(evidence(estimate=0.0, ci_low=-0.15, ci_high=0.15, se=0.2))
    assert domain(certainty, "imprecision").levels == -1
    assert "fewer people" in domain(certainty, "imprecision").reason


# ---------------------------------------------------------------------------------------------
# risk of bias


def test_small_unblinded_trial_with_self_reported_outcome_is_not_high():
    """RoB 2 domain 4: participants who know their treatment and rate their own outcome
    put the result at "some concerns" at least (Boulder PRT, fear of movement)."""
    item = evidence(
        estimate=-20.0,
        ci_low=-25.0,
        ci_high=-15.0,
        thresholds=thresholds_for("fear_avoidance"),
        se=2.5,
        n_analysed=90,
        n_denominator=100,
        risk_of_bias=RiskOfBias("low", "", "RoB 2", participants_blinded=False),
    )
    certainty = rate_certainty(item)
    rob = domain(certainty, "risk_of_bias")
    assert rob.levels == -1 and "rated the outcome themselves" in rob.reason
    assert certainty.level != "high"


def test_undeclared_risk_of_bias_is_never_silently_low():
    certainty = rate_certainty(evidence(risk_of_bias=RiskOfBias(None)))
    rob = domain(certainty, "risk_of_bias")
    assert rob.judgement == "not assessed" and rob.levels == -1
    assert "not assessed" in rob.reason
    assert certainty.level == "moderate"


@pytest.mark.parametrize(("overall", "down"), [("low", 0), ("some_concerns", 1), ("high", 2)])
def test_declared_risk_of_bias_levels(overall, down):
    certainty = rate_certainty(evidence(risk_of_bias=RiskOfBias(overall, "why", "RoB 2", True)))
    assert domain(certainty, "risk_of_bias").levels == -down


def test_observational_study_with_heavy_missing_data_is_very_low():
    """GRADE 3: observational evidence starts low; missing outcomes for over 40% of the
    people (RoB 2/ROBINS-I missing data) are very serious."""
    item = evidence(
        design="cohort", n_analysed=390, n_denominator=1000, denominator_is_randomised=False
    )
    certainty = rate_certainty(item)
    assert certainty.start == "low" and certainty.level == "very_low"
    assert domain(certainty, "risk_of_bias").levels == -2
    assert "39%" in domain(certainty, "risk_of_bias").reason


def test_completers_only_export_cannot_hide_attrition():
    certainty = rate_certainty(evidence(completers_only=True, denominator_is_randomised=False))
    assert domain(certainty, "risk_of_bias").levels == -1
    assert "dropped out" in domain(certainty, "risk_of_bias").reason


# ---------------------------------------------------------------------------------------------
# indirectness, inconsistency, publication bias, rating up


def test_neck_pain_study_under_a_back_pain_question_is_indirect():
    """GRADE 8: a different condition than the question asks about lowers certainty."""
    facts = StudyFacts(condition="neck pain", question={"condition": "low back pain"})
    mismatches = facts.indirectness("exercise", "usual_care", "pain")
    certainty = rate_certainty(evidence(indirectness=mismatches))
    judgement = domain(certainty, "indirectness")
    assert judgement.levels == -1 and "neck pain" in judgement.reason
    assert certainty.level == "moderate"


def test_subacute_population_under_a_chronic_question_is_indirect():
    facts = StudyFacts(
        population={"chronicity": "subacute"},
        question={"population": {"chronicity": "chronic"}},
    )
    assert facts.indirectness("a", "b", "pain") == (
        "the study's chronicity was subacute, the question asks about chronic",
    )


@pytest.mark.parametrize(("i2", "down"), [(30, 0), (60, 1), (80, 2)])
def test_heterogeneity_across_studies(i2, down):
    """GRADE 7: I2 above 50% serious, above 75% very serious."""
    certainty = rate_certainty(evidence(k=4, i2=i2))
    assert domain(certainty, "inconsistency").levels == -down


def test_prediction_interval_reaching_both_sides_is_inconsistent():
    certainty = rate_certainty(evidence(k=5, i2=20, pi_low=-2.5, pi_high=0.8))
    assert domain(certainty, "inconsistency").levels == -1


def test_publication_bias_needs_ten_studies():
    """GRADE 5: small-study effects are tested from 10 studies; fewer is "not assessed"."""
    few = domain(rate_certainty(evidence(k=5, i2=0, egger_p=0.01)), "publication_bias")
    assert few.judgement == "not assessed" and few.levels == 0
    many = domain(rate_certainty(evidence(k=12, i2=0, egger_p=0.03)), "publication_bias")
    assert many.levels == -1
    clean = domain(rate_certainty(evidence(k=12, i2=0, egger_p=0.6)), "publication_bias")
    assert clean.levels == 0 and clean.judgement == "no serious"


def test_observational_large_ratio_is_rated_up_only_without_concerns():
    """GRADE 9: a rate ratio beyond 2 (whole interval) rates observational evidence up one."""
    ratio = thresholds_for("rate_ratio")
    item = evidence(
        design="cohort", estimate=0.3, ci_low=0.25, ci_high=0.36, thresholds=ratio, null=1.0
    )
    certainty = rate_certainty(item)
    assert domain(certainty, "rating_up").levels == 1 and certainty.level == "moderate"
    worse = rate_certainty(
        evidence(
            design="cohort",
            estimate=0.3,
            ci_low=0.25,
            ci_high=0.36,
            thresholds=ratio,
            null=1.0,
            risk_of_bias=RiskOfBias(None),
        )
    )
    assert domain(worse, "rating_up").levels == 0


# ---------------------------------------------------------------------------------------------
# wording


def test_rounding_is_half_away_from_zero():
    assert round_half_away(2.5) == 3 and round_half_away(-2.5) == -3
    assert round_half_away(0.25, 1) == 0.3 and format_number(3.5, 0) == "4"


def test_range_sentence_same_side_and_crossing():
    text, shown = render_range(4.2, 2.6, 5.8, 100)
    assert text == (
        "Scores were about 4 points higher on a 0 to 100 scale. "
        "The likely range is 3 to 6 points higher."
    )
    assert shown == ["4", "100", "3", "6"]
    text, _ = render_range(-0.4, -1.25, 0.45, 10)
    assert "1.3 points lower to 0.5 points higher" in text


def _claims(estimate, low, high, design="randomised", facts=None, synthetic=False):
    return build_claims(
        _estimates(estimate=estimate, ci_low=low, ci_high=high, design=design, synthetic=synthetic),
        _participants(),
        NamingRules(
            arms={"exercise": "exercise", "usual_care": "usual care"},
            outcomes={"function": "daily function"},
            timepoints={"week_12": ""},
        ),
        facts=facts or StudyFacts(risk_of_bias={"overall": "low", "justification": "x"}),
    )


def test_certainty_picks_the_verb_and_range_follows():
    claim = _claims(12.0, 11.0, 13.0).iloc[0]
    assert claim["certainty"] == "high"
    assert claim["sentence"].startswith(
        "Exercise improves daily function compared with usual care."
    )
    assert "The likely range is 11 to 13 points higher." in claim["sentence"]
    assert claim["direction"] == "benefit" and claim["size"] == "moderate"


def test_responder_claim_is_never_more_certain_than_a_null_continuous_claim():
    """A responder claim next to a continuous claim of little or no difference is capped at
    its certainty and says why."""
    rows = pd.concat(
        [_estimates(0.2, -0.5, 0.9, outcome="pain"), _responders(0.62, 0.40, 0.22, 0.10, 0.34)]
    )
    claims = build_claims(
        rows,
        _participants(),
        NamingRules(),
        facts=StudyFacts(risk_of_bias={"overall": "low", "justification": "x"}),
    ).set_index("kind")
    effect, responders = claims.loc["effect"], claims.loc["responders"]
    order = ["very_low", "low", "moderate", "high"]
    assert order.index(responders["certainty"]) <= order.index(effect["certainty"])
    reasons = " ".join(responders["certainty_reasons"])
    assert "average scores did not show the same" in reasons or effect["certainty"] == "very_low"
    assert "About 62 in 100 people did, vs 40 in 100." in responders["sentence"]


def test_neck_pain_study_talks_about_neck_pain_without_renaming_its_outcome():
    facts = StudyFacts(
        condition="neck pain",
        question={"condition": "neck pain"},
        risk_of_bias={"overall": "low", "justification": "x"},
    )
    naming = NamingRules(conditions={"low back pain": "back pain", "neck pain": "neck pain"})
    claim = build_claims(
        _estimates(-1.5, -1.8, -1.2, outcome="pain"), _participants(), naming, facts=facts
    ).iloc[0]
    assert "neck pain" in claim["sentence"] and "back pain" not in claim["sentence"]
    assert claim["names"]["condition"] == "neck pain"


def test_claim_ids_are_stable_and_citable():
    assert (
        claim_id("etmi-reference", "etmi_function", "effect")
        == "C-etmi-reference-etmi-function-effect"
    )
    first, again = _claims(8, 6, 10), _claims(8, 6, 10)
    assert first["claim_id"].tolist() == again["claim_id"].tolist() == ["C-demo-cmp-effect"]
    assert first["sentence_sha256"].tolist() == again["sentence_sha256"].tolist()


def test_synthetic_claims_say_demonstration_data():
    claim = _claims(8, 6, 10, synthetic=True).iloc[0]
    assert claim["sentence"].startswith(DEMO_PREFIX) and claim["synthetic"]


NAMES = st.sampled_from(
    ["exercise", "pain reprocessing therapy", "tailored physiotherapy", "ETMI", "yoga classes"]
)
CONTROLS = st.sampled_from(["usual care", "a dummy injection", "advice alone", "a waiting list"])
TIMES = st.sampled_from(
    ["", "after treatment", "five years later", "at 10 weeks", "after one year"]
)
OUTCOMES = st.sampled_from(["function", "pain", "fear_avoidance"])


@settings(max_examples=60, deadline=None)
@given(
    treatment=NAMES,
    control=CONTROLS,
    when=TIMES,
    outcome=OUTCOMES,
    estimate=st.floats(-30, 30),
    half_width=st.floats(0.05, 20),
    design=st.sampled_from(["randomised", "cohort"]),
    rob=st.sampled_from([None, "low", "some_concerns", "high"]),
    synthetic=st.booleans(),
)
def test_every_generated_claim_is_readable_and_lint_clean(
    treatment, control, when, outcome, estimate, half_width, design, rob, synthetic
):
    """Generated sentences never break the plain-language rules: at most 20 words per
    sentence, grade 6 per bullet, the certainty's wording (property-based, over names of the
    shipped length, every band and certainty)."""
    scale = 10 if outcome == "pain" else 100
    estimate, half_width = estimate * scale / 100, half_width * scale / 100
    rows = pd.concat(
        [
            _estimates(
                estimate,
                estimate - half_width,
                estimate + half_width,
                design=design,
                synthetic=synthetic,
                outcome=outcome,
            ),
            _responders(
                0.55, 0.35, 0.2 - half_width / scale, 0.2 + half_width / scale, 0.1, outcome=outcome
            ),
        ]
    )
    naming = NamingRules(
        arms={"exercise": treatment, "usual_care": control},
        timepoints={"week_12": when},
        conditions={"low back pain": "back pain"},
    )
    facts = StudyFacts(risk_of_bias={"overall": rob, "justification": "x"} if rob else None)
    claims = build_claims(rows, _participants(), naming, facts=facts)
    for _, claim in claims.iterrows():
        assert is_readable(claim["sentence"]), claim["sentence"]
        text = f"- {claim['sentence']} [{claim['claim_id']}]"
        issues = [
            i
            for i in lint_text(text, {claim["claim_id"]: claim["certainty"]})
            if i.rule != "reading_grade"
        ]
        assert issues == [], (claim["sentence"], issues)


def _estimates(
    estimate: float = 8.0,
    ci_low: float = 6.0,
    ci_high: float = 10.0,
    synthetic: bool = False,
    design: str = "randomised",
    outcome: str = "function",
) -> pd.DataFrame:
    higher_is_better = outcome == "function"
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
                "se": (ci_high - ci_low) / 3.92,
                "ci_low": ci_low,
                "ci_high": ci_high,
                "n_treated": 200,
                "n_control": 200,
                "is_primary": True,
                "treatment": "exercise",
                "control": "usual_care",
                "outcome": outcome,
                "timepoint": "week_12",
                "domain": outcome,
                "mcid": 5.0,
                "higher_is_better": higher_is_better,
                "design": design,
                "synthetic": synthetic,
                "instrument": "odi",
                "input_data_sha256": "abc",
            }
        ]
    )


def _responders(risk_t, risk_c, low, high, _unused=None, outcome="function") -> pd.DataFrame:
    base = _estimates(outcome=outcome).iloc[0].to_dict()
    rows = []
    for measure, value in (
        ("risk_difference", risk_t - risk_c),
        ("standardised_risk_difference", risk_t - risk_c),
    ):
        rows.append(
            {
                **base,
                "method": "responders",
                "estimand": "ATE",
                "effect_measure": measure,
                "term": "improved >= 5 points (MCID)",
                "definition": "MCID",
                "threshold": 5.0,
                "estimate": value,
                "ci_low": low,
                "ci_high": high,
                "se": (high - low) / 3.92,
                "is_primary": False,
                "risk_treated": risk_t,
                "risk_control": risk_c,
                "events_treated": round(risk_t * 200),
                "events_control": round(risk_c * 200),
                "nnt_text": "",
            }
        )
    return pd.DataFrame(rows)


def _participants() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "participant_id": [f"p{i}" for i in range(400)],
            "arm": ["exercise"] * 200 + ["usual_care"] * 200,
        }
    )
