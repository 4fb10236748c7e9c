"""Tests for pipeline.analysis.evalue (E-values, VanderWeele & Ding 2017).

Reference values:

* VanderWeele & Ding (2017), Ann Intern Med 167:268-274, worked example: RR 3.9 (95% CI 1.8
  to 8.7) gives E-values 7.26 for the estimate and 3.00 for the confidence limit; recomputed
  by hand below from E = RR + sqrt(RR (RR - 1)).
* R package EValue documentation (``?effect_measures``): ``evalue(OR(3, rare = FALSE))``
  gives RR 1.732051 (= sqrt 3) and E-value 2.85...; recomputed by hand below.
* EValue's ``evalues.MD``: RR = exp(0.91 d), interval exp(0.91 d -/+ 1.78 se_d).
* Table 2 conversions (OR -> sqrt(OR); HR -> (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR))),
  recomputed by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.evalue import (
    add_evalues,
    evalue_mean_difference,
    evalue_odds_ratio,
    evalue_rate_ratio,
    evalue_ratio,
)


def test_paper_worked_example_by_hand() -> None:
    # 3.9 + sqrt(3.9 x 2.9) = 3.9 + sqrt(11.31) = 3.9 + 3.36303 = 7.26303
    # 1.8 + sqrt(1.8 x 0.8) = 1.8 + sqrt(1.44) = 1.8 + 1.2 = 3.0
    result = evalue_ratio(3.9, 1.8, 8.7)
    assert result["evalue_estimate"] == pytest.approx(7.26, abs=5e-3)
    assert result["evalue_estimate"] == pytest.approx(3.9 + math.sqrt(11.31), rel=1e-12)
    assert result["evalue_ci"] == pytest.approx(3.00, abs=1e-12)


def test_ratio_below_one_is_inverted() -> None:
    protective = evalue_ratio(1 / 3.9, 1 / 8.7, 1 / 1.8)
    assert protective["evalue_estimate"] == pytest.approx(3.9 + math.sqrt(11.31), rel=1e-12)
    # The limit closest to 1 is now the upper one, 1/1.8.
    assert protective["evalue_ci"] == pytest.approx(3.0, rel=1e-12)


@pytest.mark.parametrize(("estimate", "low", "high"), [(1.5, 0.9, 2.5), (0.7, 0.45, 1.02)])
def test_interval_including_one_gives_one(estimate: float, low: float, high: float) -> None:
    assert evalue_ratio(estimate, low, high)["evalue_ci"] == 1.0


def test_null_estimate_gives_one() -> None:
    assert evalue_ratio(1.0, 0.8, 1.25) == pytest.approx(
        {"evalue_estimate": 1.0, "evalue_ci": 1.0, "rr": 1.0, "rr_ci_low": 0.8, "rr_ci_high": 1.25}
    )


def test_missing_limit_gives_nan_ci_evalue() -> None:
    assert np.isnan(evalue_ratio(2.0)["evalue_ci"])
    # Estimate above 1 needs the lower limit; only the upper one was given.
    assert np.isnan(evalue_ratio(2.0, None, 3.0)["evalue_ci"])
    # Estimate below 1 needs the upper limit.
    assert evalue_ratio(0.5, None, 0.8)["evalue_ci"] == pytest.approx(1.25 + math.sqrt(1.25 * 0.25))


def test_odds_ratio_common_outcome_matches_evalue_package() -> None:
    # sqrt(3) = 1.7320508; E = 1.7320508 + sqrt(1.7320508 x 0.7320508) = 1.7320508 + 1.1260325
    result = evalue_odds_ratio(3.0, rare_outcome=False)
    assert result["rr"] == pytest.approx(1.732051, abs=5e-7)
    assert result["evalue_estimate"] == pytest.approx(2.8580833, abs=1e-6)


def test_odds_ratio_rare_outcome_uses_the_odds_ratio_as_is() -> None:
    # OR 4 (2 to 8), rare: E = 4 + sqrt(12) = 7.4641; CI: 2 + sqrt(2) = 3.4142
    result = evalue_odds_ratio(4.0, 2.0, 8.0, rare_outcome=True)
    assert result["evalue_estimate"] == pytest.approx(4 + math.sqrt(12), rel=1e-12)
    assert result["evalue_ci"] == pytest.approx(2 + math.sqrt(2), rel=1e-12)
    # Common: sqrt -> RR 2 (1.41421 to 2.82843): E = 2 + sqrt(2); CI: sqrt2 + sqrt(sqrt2 (sqrt2 - 1))
    common = evalue_odds_ratio(4.0, 2.0, 8.0)
    root2 = math.sqrt(2)
    assert common["evalue_estimate"] == pytest.approx(2 + root2, rel=1e-12)
    assert common["evalue_ci"] == pytest.approx(root2 + math.sqrt(root2 * (root2 - 1)), rel=1e-12)


def test_rate_ratio_common_outcome_conversion_by_hand() -> None:
    # HR 2: (1 - 2^-sqrt(2)) / (1 - 2^-sqrt(1/2)) = (1 - 0.375214) / (1 - 0.612547) = 1.612534
    rr = (1 - 2 ** (-math.sqrt(2))) / (1 - 2 ** (-math.sqrt(0.5)))
    assert rr == pytest.approx(1.6125, abs=5e-5)
    result = evalue_rate_ratio(2.0, 1.5, 3.0)
    assert result["rr"] == pytest.approx(rr, rel=1e-12)
    assert result["evalue_estimate"] == pytest.approx(rr + math.sqrt(rr * (rr - 1)), rel=1e-12)
    # Conversion is symmetric: HR 1/2 maps to 1/1.612534.
    assert evalue_rate_ratio(0.5)["rr"] == pytest.approx(1 / rr, rel=1e-12)
    rare = evalue_rate_ratio(2.0, 1.5, 3.0, rare_outcome=True)
    assert rare["evalue_estimate"] == pytest.approx(2 + math.sqrt(2), rel=1e-12)
    assert rare["evalue_ci"] == pytest.approx(1.5 + math.sqrt(0.75), rel=1e-12)


def test_mean_difference_matches_evalue_md_formula() -> None:
    # Mean difference 5 (SE 2) with outcome SD 10: d = 0.5, se_d = 0.2.
    # EValue::evalues.MD: RR = exp(0.91 x 0.5) = exp(0.455) = 1.576173;
    # lower limit exp(0.455 - 1.78 x 0.2) = exp(0.099) = 1.104066.
    result = evalue_mean_difference(5.0, se=2.0, sd=10.0)
    rr = math.exp(0.455)
    assert result["d"] == pytest.approx(0.5)
    assert result["rr"] == pytest.approx(rr, rel=1e-12)
    assert result["evalue_estimate"] == pytest.approx(rr + math.sqrt(rr * (rr - 1)), rel=1e-12)
    # The module uses 0.91 x 1.95996 = 1.78357 rather than the rounded 1.78.
    low = math.exp(0.099)
    assert result["rr_ci_low"] == pytest.approx(low, rel=1e-3)
    assert result["evalue_ci"] == pytest.approx(low + math.sqrt(low * (low - 1)), rel=5e-3)


def test_mean_difference_uses_given_limits() -> None:
    # Limits (1, 9) with SD 10: lower RR exp(0.091).
    result = evalue_mean_difference(5.0, None, 10.0, ci_low=1.0, ci_high=9.0)
    low = math.exp(0.091)
    assert result["evalue_ci"] == pytest.approx(low + math.sqrt(low * (low - 1)), rel=1e-12)
    # A harmful (negative) difference is handled symmetrically.
    mirrored = evalue_mean_difference(-5.0, None, 10.0, ci_low=-9.0, ci_high=-1.0)
    assert mirrored["evalue_estimate"] == pytest.approx(result["evalue_estimate"], rel=1e-12)
    assert mirrored["evalue_ci"] == pytest.approx(result["evalue_ci"], rel=1e-12)
    crossing = evalue_mean_difference(2.0, None, 10.0, ci_low=-1.0, ci_high=5.0)
    assert crossing["evalue_ci"] == 1.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: evalue_ratio(0.0), "estimate must be a finite ratio > 0"),
        (lambda: evalue_ratio(2.0, 2.5, 3.0), r"ci_low \(2.5\) is above the estimate"),
        (lambda: evalue_ratio(2.0, 1.5, 1.8), r"ci_high \(1.8\) is below the estimate"),
        (lambda: evalue_ratio(2.0, -1.0, 3.0), "ci_low must be a finite ratio > 0"),
        (lambda: evalue_odds_ratio(-2.0), "estimate must be a finite ratio > 0"),
        (lambda: evalue_mean_difference(1.0, 0.5, 0.0), "sd must be a finite standard deviation"),
        (lambda: evalue_mean_difference(1.0, -0.5, 2.0), "se must be a finite number >= 0"),
        (
            lambda: evalue_mean_difference(1.0, None, 2.0, ci_low=1.5, ci_high=2.0),
            r"ci_low \(1.5\) is above the estimate",
        ),
    ],
)
def test_bad_inputs_are_refused(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def _estimates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "outcome": ["pain", "function", "recovered", "recovered", "visits", "pain", "odi"],
            "effect_measure": [
                "mean_difference",
                "hedges_g",
                "risk_ratio",
                "risk_difference",
                "rate_ratio",
                "odds_ratio",
                "mean_difference",
            ],
            "estimate": [-1.5, 0.5, 3.9, 0.1, 2.0, 4.0, 2.0],
            "ci_low": [-2.5, 0.1, 1.8, 0.02, 1.5, 2.0, 0.5],
            "ci_high": [-0.5, 0.9, 8.7, 0.18, 3.0, 8.0, 3.5],
        },
        index=[4, 8, 15, 16, 23, 42, 99],
    )


def test_add_evalues_by_effect_measure() -> None:
    result = add_evalues(_estimates(), outcome_sd={"pain": 2.0})

    # mean difference -1.5 (-2.5 to -0.5), SD 2: d = -0.75, RR = exp(-0.6825) -> inverted exp(0.6825);
    # limit closest to 1: -0.5 -> exp(-0.2275) -> inverted exp(0.2275).
    rr, rr_low = math.exp(0.6825), math.exp(0.2275)
    assert result.loc[4, "evalue_estimate"] == pytest.approx(rr + math.sqrt(rr * (rr - 1)))
    assert result.loc[4, "evalue_ci"] == pytest.approx(rr_low + math.sqrt(rr_low * (rr_low - 1)))
    # hedges_g 0.5 (0.1 to 0.9): already standardised, RR exp(0.455), limit exp(0.091).
    rr, rr_low = math.exp(0.455), math.exp(0.091)
    assert result.loc[8, "evalue_estimate"] == pytest.approx(rr + math.sqrt(rr * (rr - 1)))
    assert result.loc[8, "evalue_ci"] == pytest.approx(rr_low + math.sqrt(rr_low * (rr_low - 1)))
    # risk ratio: the paper's example.
    assert result.loc[15, "evalue_estimate"] == pytest.approx(3.9 + math.sqrt(11.31))
    assert result.loc[15, "evalue_ci"] == pytest.approx(3.0)
    # risk difference: not applicable.
    assert np.isnan(result.loc[16, "evalue_estimate"]) and np.isnan(result.loc[16, "evalue_ci"])
    # rate ratio 2, common-outcome conversion by default (1.612534, see above).
    rr = (1 - 2 ** (-math.sqrt(2))) / (1 - 2 ** (-math.sqrt(0.5)))
    assert result.loc[23, "evalue_estimate"] == pytest.approx(rr + math.sqrt(rr * (rr - 1)))
    # odds ratio 4, common outcome by default: RR 2.
    assert result.loc[42, "evalue_estimate"] == pytest.approx(2 + math.sqrt(2))
    # mean difference for an outcome with no SD given: NaN.
    assert np.isnan(result.loc[99, "evalue_estimate"])


def test_add_evalues_rare_outcome_switch() -> None:
    result = add_evalues(_estimates(), rare_outcome=True)
    assert result.loc[42, "evalue_estimate"] == pytest.approx(4 + math.sqrt(12))
    assert result.loc[23, "evalue_estimate"] == pytest.approx(2 + math.sqrt(2))
    assert result[["evalue_estimate"]].loc[[4, 99]].isna().all().all()  # no SDs given


def test_add_evalues_handles_missing_estimates_and_limits() -> None:
    estimates = pd.DataFrame(
        {
            "effect_measure": ["risk_ratio", "risk_ratio"],
            "estimate": [np.nan, 2.0],
            "ci_low": [np.nan, np.nan],
            "ci_high": [np.nan, np.nan],
        }
    )
    result = add_evalues(estimates)
    assert np.isnan(result.loc[0, "evalue_estimate"])
    assert result.loc[1, "evalue_estimate"] == pytest.approx(2 + math.sqrt(2))
    assert np.isnan(result.loc[1, "evalue_ci"])


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (_estimates().drop(columns="ci_low"), {}, r"column\(s\) \['ci_low'\] not in the estimates"),
        (_estimates().assign(evalue_ci=1.0), {}, r"\['evalue_ci'\] already present"),
        (
            _estimates().drop(columns="outcome"),
            {"outcome_sd": {"pain": 2.0}},
            'column "outcome" is not in the estimates',
        ),
        (_estimates(), {"outcome_sd": {"pain": 0.0}}, "must be finite and > 0"),
        (
            _estimates().assign(estimate=[-1.5, 0.5, -3.9, 0.1, 2.0, 4.0, 2.0]),
            {},
            r"row 15 \(risk_ratio\): estimate must be a finite ratio > 0",
        ),
    ],
)
def test_add_evalues_refuses_bad_inputs(frame: pd.DataFrame, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        add_evalues(frame, **kwargs)


def test_add_evalues_does_not_modify_the_input() -> None:
    estimates = _estimates()
    before = estimates.copy(deep=True)
    result = add_evalues(estimates, outcome_sd={"pain": 2.0})
    pd.testing.assert_frame_equal(estimates, before)
    pd.testing.assert_frame_equal(result[estimates.columns], estimates)
