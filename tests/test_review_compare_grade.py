"""Per-question comparisons (multi-arm rules, measure choice, direction) and GRADE judgements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.review.compare import question_comparisons
from pipeline.review.config import load_review_config
from pipeline.review.effect_sizes import combine_groups, hedges_g
from pipeline.review.grade import grade_evidence, optimal_information_size
from pipeline.review.validate import validate_review


def _review(tmp_path: Path, multi_arm: str, instrument: dict) -> tuple:
    sheet = pd.DataFrame(
        {
            "trial": ["T3", "T3", "T3", "T2", "T2"],
            "arm": ["ex-a", "ex-b", "uc", "ex", "uc"],
            "cls": ["exercise", "exercise", "usual", "exercise", "usual"],
            "n": [30, 20, 40, 25, 25],
            "mean": [30.0, 34.0, 40.0, 12.0, 15.0],
            "sd": [10.0, 12.0, 11.0, 5.0, 6.0],
        }
    )
    sheet.to_csv(tmp_path / "sheet.csv", index=False)
    review = {
        "review_id": "toy",
        "title": "toy",
        "citation": "toy",
        "sheet": {"file": "sheet.csv"},
        "columns": {
            "trial_id": "trial",
            "arm": "arm",
            "arm_class": "cls",
            "outcome": "=function",
            "instrument": "=ODI",
            "timepoint_weeks": "=12",
            "n": "n",
            "mean": "mean",
            "sd": "sd",
        },
        "arm_classes": {"exercise": "exercise", "usual": "usual_care"},
        "outcomes": {"function": "function"},
        "instruments": {"ODI": instrument},
        "multi_arm": multi_arm,
        "questions": [
            {
                "id": "q",
                "title": "q",
                "population": "p",
                "intervention": ["exercise"],
                "comparator": ["usual_care"],
                "outcome": "function",
                "weeks": [0, 26],
            }
        ],
    }
    (tmp_path / "review.yaml").write_text(yaml.safe_dump(review))
    config = load_review_config(tmp_path / "review.yaml")
    tr = validate_review(config).trial_results
    return question_comparisons(tr, config, config.questions[0]), config


def test_split_control_divides_shared_arm(tmp_path: Path) -> None:
    cmp, _ = _review(tmp_path, "split_control", {"registry": "odi"})
    t3 = cmp[cmp["trial_id"] == "T3"]
    assert len(t3) == 2
    assert list(t3["n_comparator"]) == [20.0, 20.0]
    assert t3["n_total"].sum() == 90  # 30 + 20 + 40: nobody counted twice
    # mean difference on the canonical function scale (ODI reversed: 100 - raw): higher = better
    assert cmp["measure"].unique().tolist() == ["MD"]
    row = t3.iloc[0]
    assert row["yi"] == pytest.approx(10.0)  # (100 - 30) - (100 - 40)
    assert row["vi"] == pytest.approx(100 / 30 + 121 / 20)


def test_combine_uses_handbook_formula(tmp_path: Path) -> None:
    cmp, _ = _review(
        tmp_path, "combine", {"domain": "function", "min": 0, "max": 100, "higher_is": "worse"}
    )
    t3 = cmp[cmp["trial_id"] == "T3"].iloc[0]
    assert cmp["measure"].unique().tolist() == ["SMD"]  # not a registry instrument
    n, m, s = combine_groups(np.array([30, 20]), np.array([30.0, 34.0]), np.array([10.0, 12.0]))
    g, v = hedges_g(m, s, n, 40.0, 11.0, 40)
    assert t3["n_total"] == 90
    assert t3["yi"] == pytest.approx(
        -g
    )  # flipped: the instrument's higher is worse, function's better
    assert t3["vi"] == pytest.approx(v)


def test_grade_domains_fire() -> None:
    base = dict(
        weights=np.ones(4),
        rob=["low"] * 4,
        indirect=np.zeros(4, bool),
        estimate=-1.0,
        ci_low=-1.5,
        ci_high=-0.6,
        i2=10.0,
        pi_low=-1.8,
        pi_high=-0.2,
        k=4,
        n_total=2000,
        mid=0.5,
        sd_for_ois=2.0,
        egger_p=None,
    )
    domains, level = grade_evidence(**base)
    assert level == "high"
    assert [d["domain"] for d in domains] == [
        "risk of bias",
        "inconsistency",
        "indirectness",
        "imprecision",
        "publication bias",
    ]
    assert domains[-1]["judgement"] == "not assessed"
    _, level = grade_evidence(**{**base, "rob": ["high", "high", "low", "low"]})
    assert level == "low"  # 50% of the weight at high risk -> very serious
    d, _ = grade_evidence(**{**base, "i2": 80.0})
    assert d[1]["judgement"] == "very serious"
    d, _ = grade_evidence(**{**base, "ci_high": 0.1})
    assert d[3]["judgement"] == "serious"
    d, _ = grade_evidence(**{**base, "ci_low": -0.7, "ci_high": 0.7})
    assert d[3]["judgement"] == "very serious"
    d, _ = grade_evidence(**{**base, "indirect": np.array([1, 1, 0, 0], bool)})
    assert d[2]["judgement"] == "serious"
    d, level = grade_evidence(
        **{
            **base,
            "k": 12,
            "egger_p": 0.03,
            "weights": np.ones(12),
            "rob": ["low"] * 12,
            "indirect": np.zeros(12, bool),
        }
    )
    assert d[4]["judgement"] == "serious"
    assert level == "moderate"
    d, level = grade_evidence(
        **{**base, "rob": ["high"] * 4, "i2": 90.0, "ci_low": -5, "ci_high": 5}
    )
    assert level == "very_low"


def test_optimal_information_size_closed_form() -> None:
    # SMD 0.2 (SD 1): 2 x 2 x (1.96 + 0.84)^2 / 0.04 = 785 participants (393 per group)
    assert optimal_information_size(0.2, 1.0) == 785


def test_one_row_per_comparison_layout(tmp_path: Path) -> None:
    from scipy import stats

    sheet = pd.DataFrame(
        {
            "trial": ["T1", "T2", "T3", "T4", "T5"],
            "exp": ["Exercise", "Usual care", "Exercise", "Exercise", "Exercise"],
            "ctl": ["Usual care", "Exercise", "Usual care", "Usual care", "Usual care"],
            "tool": ["ODI", "RMDQ", "NPRS", "ODI", "ODI"],
            "n1": [50, 40, 30, 30, 20],
            "n2": [50, 40, 30, 30, 20],
            "md": [-8.0, 2.0, -1.0, -5.0, None],
            "se": [None, 0.8, 0.3, None, 1.0],
            "lo": [-14.0, None, None, None, None],
            "hi": [-2.0, None, None, None, None],
            "p": [None, None, None, 0.04, None],
        }
    )
    sheet.to_csv(tmp_path / "sheet.csv", index=False)
    review = {
        "review_id": "toy-comparisons",
        "title": "toy",
        "citation": "toy",
        "sheet": {"file": "sheet.csv", "layout": "comparison"},
        "columns": {
            "trial_id": "trial",
            "arm_class": "exp",
            "comparator_class": "ctl",
            "outcome": "=function",
            "instrument": "tool",
            "timepoint_weeks": "=12",
            "n": "n1",
            "n_comparator": "n2",
            "effect": "md",
            "se": "se",
            "ci_low": "lo",
            "ci_high": "hi",
            "p_value": "p",
        },
        "arm_classes": {"Exercise": "exercise", "Usual care": "usual_care"},
        "outcomes": {"function": "function"},
        "instruments": {
            "ODI": {"registry": "odi"},
            "RMDQ": {"registry": "roland_morris"},
            "NPRS": {"registry": "nprs"},
        },
        "questions": [
            {
                "id": "q",
                "title": "q",
                "population": "p",
                "intervention": ["exercise"],
                "comparator": ["usual_care"],
                "outcome": "function",
                "weeks": [0, 26],
            }
        ],
    }
    (tmp_path / "review.yaml").write_text(yaml.safe_dump(review))
    config = load_review_config(tmp_path / "review.yaml")
    validated = validate_review(config)
    assert validated.report["quarantine_reasons"] == {"no_effect": 1}
    assert validated.report["se_rules"] == {
        "reported": 2,
        "from 95% CI (Handbook 6.3.1)": 1,
        "from p value (t, Handbook 6.5.2.3)": 1,
    }
    cmp = question_comparisons(validated.trial_results, config, config.questions[0]).set_index(
        "trial_id"
    )
    assert list(cmp.index) == [
        "T1",
        "T2",
        "T4",
    ]  # T3 is a pain instrument: not this question's domain
    assert cmp.loc["T1", "yi"] == pytest.approx(8.0)  # ODI reversed onto function (higher = better)
    assert cmp.loc["T1", "vi"] == pytest.approx((12 / (2 * 1.959964)) ** 2, rel=1e-6)
    assert cmp.loc["T2", "yi"] == pytest.approx(2.0 * 100 / 24)  # reported the other way round
    assert cmp.loc["T2", "intervention_class"] == "exercise"
    assert cmp.loc["T4", "vi"] == pytest.approx((5 / stats.t.ppf(0.98, 58)) ** 2, rel=1e-9)
