"""Tests for pipeline.analysis.effect_sizes (Hedges' g).

Reference values: the worked example of Borenstein, Hedges, Higgins & Rothstein (2009),
*Introduction to Meta-Analysis*, section 4.2 (means 103 vs 100, SDs 5.5 vs 4.5, n 50/50:
d = 0.5970, V_d = 0.0418, J = 0.9923, g = 0.5924, V_g = 0.0411), re-derived by hand below;
closed forms of the exact correction J; and direct numpy computations on simulated data.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.effect_sizes import fit_hedges_g, hedges_g
from pipeline.analysis.tidy import ESTIMATE_COLUMNS

Z_975 = 1.959963984540054  # standard normal 97.5% quantile (tables: 1.95996)


def test_borenstein_worked_example_by_hand() -> None:
    # Hand calculation, Borenstein et al. (2009) eqs 4.18-4.24:
    # S_within = sqrt((49 * 5.5^2 + 49 * 4.5^2) / 98) = sqrt((30.25 + 20.25) / 2) = sqrt(25.25)
    s_within = math.sqrt(25.25)  # 5.02494
    d = 3.0 / s_within  # 0.59702
    var_d = 100 / 2500 + d**2 / 200  # 0.04 + 0.35643 / 200 = 0.041782
    j = 1 - 3 / 391  # 1 - 3 / (4 * 98 - 1) = 0.992327
    g = j * d  # 0.59244
    var_g = j**2 * var_d  # 0.041143

    result = hedges_g(103, 5.5, 50, 100, 4.5, 50)

    # The book's printed (4-decimal) values.
    assert result["d"] == pytest.approx(0.5970, abs=5e-5)
    assert result["var_d"] == pytest.approx(0.0418, abs=5e-5)
    assert result["j"] == pytest.approx(0.9923, abs=5e-5)
    assert result["g"] == pytest.approx(0.5924, abs=5e-5)
    assert result["var_g"] == pytest.approx(0.0411, abs=5e-5)
    # The unrounded hand calculation.
    assert result["sd_pooled"] == pytest.approx(s_within, rel=1e-12)
    assert result["d"] == pytest.approx(d, rel=1e-12)
    assert result["var_d"] == pytest.approx(var_d, rel=1e-12)
    assert result["j"] == pytest.approx(j, rel=1e-12)
    assert result["g"] == pytest.approx(g, rel=1e-12)
    assert result["var_g"] == pytest.approx(var_g, rel=1e-12)
    assert result["se"] == pytest.approx(math.sqrt(var_g), rel=1e-12)
    assert result["ci_low"] == pytest.approx(g - Z_975 * math.sqrt(var_g), rel=1e-9)
    assert result["ci_high"] == pytest.approx(g + Z_975 * math.sqrt(var_g), rel=1e-9)
    # Two-sided p from the normal tail: z = g / se = 2.9207; 2 * (1 - Phi(2.9207)) = 0.00349.
    assert result["p_value"] == pytest.approx(math.erfc(g / math.sqrt(var_g) / math.sqrt(2)))


@pytest.mark.parametrize(
    ("n_t", "n_c", "expected_j"),
    [
        # df = 2: Gamma(1) / (1 * Gamma(1/2)) = 1 / sqrt(pi)
        (2, 2, 1 / math.sqrt(math.pi)),
        # df = 4: Gamma(2) / (sqrt(2) Gamma(3/2)) = 1 / (sqrt(2) sqrt(pi) / 2) = sqrt(2 / pi)
        (3, 3, math.sqrt(2 / math.pi)),
        # df = 10: Gamma(5) / (sqrt(5) Gamma(9/2)); Gamma(9/2) = 105 sqrt(pi) / 16
        (6, 6, 24 / (math.sqrt(5) * 105 * math.sqrt(math.pi) / 16)),
    ],
)
def test_exact_correction_matches_closed_form(n_t: int, n_c: int, expected_j: float) -> None:
    result = hedges_g(1.0, 1.0, n_t, 0.0, 1.0, n_c, correction="exact")
    assert result["j"] == pytest.approx(expected_j, rel=1e-12)
    assert result["g"] == pytest.approx(expected_j * 1.0, rel=1e-12)  # d = 1 with SDs of 1


def test_exact_and_approximate_corrections_agree_for_moderate_samples() -> None:
    # Hedges (1981): the approximation is accurate to < 1e-4 once df >= 10 or so.
    exact = hedges_g(103, 5.5, 50, 100, 4.5, 50, correction="exact")["j"]
    approximate = hedges_g(103, 5.5, 50, 100, 4.5, 50)["j"]
    assert abs(exact - approximate) < 1e-5


def test_fit_matches_direct_numpy_computation() -> None:
    rng = np.random.default_rng(20240611)
    treated = rng.normal(30.0, 12.0, size=37)
    control = rng.normal(36.0, 10.0, size=41)
    frame = pd.DataFrame(
        {
            "arm": ["etmi"] * 37 + ["usual_care"] * 41 + ["other"] * 3,
            "odi": np.concatenate([treated, control, [1000.0, -1000.0, 0.0]]),
        }
    )
    # Direct computation, independent of the module.
    df = 37 + 41 - 2
    sp = np.sqrt((36 * treated.var(ddof=1) + 40 * control.var(ddof=1)) / df)
    d = (treated.mean() - control.mean()) / sp
    j = 1 - 3 / (4 * df - 1)
    var_g = j**2 * ((37 + 41) / (37 * 41) + d**2 / (2 * (37 + 41)))

    row = fit_hedges_g(frame, "odi", "arm", "etmi", "usual_care").iloc[0]

    assert row["estimate"] == pytest.approx(j * d, rel=1e-12)
    assert row["se"] == pytest.approx(np.sqrt(var_g), rel=1e-12)
    assert row["ci_low"] == pytest.approx(j * d - Z_975 * np.sqrt(var_g), rel=1e-9)
    assert row["estimate"] < 0  # treatment mean lower: negative g
    assert row["n_treated"] == 37
    assert row["n_control"] == 41
    assert row["cohen_d"] == pytest.approx(d, rel=1e-12)
    assert row["sd_pooled"] == pytest.approx(sp, rel=1e-12)


def test_fit_returns_one_tidy_row_with_standard_columns_first() -> None:
    frame = pd.DataFrame({"arm": ["a", "a", "a", "b", "b"], "y": [1.0, 2.0, 4.0, 0.0, 1.0]})
    result = fit_hedges_g(frame, "y", "arm", "a", "b")
    assert len(result) == 1
    assert tuple(result.columns[: len(ESTIMATE_COLUMNS)]) == ESTIMATE_COLUMNS
    row = result.iloc[0]
    assert row["method"] == "hedges_g"
    assert row["effect_measure"] == "hedges_g"
    assert row["estimand"] == "ATE"
    assert row["term"] == "a vs b"
    assert bool(row["converged"]) is True
    assert row["warning"] == ""
    assert np.isnan(row["n_clusters"])


def test_missing_outcomes_are_dropped_and_counted() -> None:
    frame = pd.DataFrame(
        {
            "arm": ["a", "a", "a", "a", "b", "b", "b"],
            "y": [1.0, np.nan, 3.0, np.nan, 2.0, 4.0, np.nan],
        }
    )
    row = fit_hedges_g(frame, "y", "arm", "a", "b").iloc[0]
    # Complete cases: a = [1, 3], b = [2, 4]; both SD sqrt(2), means 2 and 3, d = -1/sqrt(2).
    j = 1 - 3 / (4 * 2 - 1)
    assert row["estimate"] == pytest.approx(j * (-1 / math.sqrt(2)), rel=1e-12)
    assert (row["n_treated"], row["n_control"]) == (2, 2)
    assert (row["n_missing_treated"], row["n_missing_control"]) == (2, 1)
    assert "3 row(s) with missing y dropped" in row["warning"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outcome": "pain"}, r"column\(s\) \['pain'\] not in the analysis frame"),
        ({"arm": "group"}, r"column\(s\) \['group'\] not in the analysis frame"),
        ({"treatment": "surgery"}, 'treatment arm "surgery" not found in column "arm"'),
        ({"control": "waitlist"}, 'control arm "waitlist" not found in column "arm"'),
        ({"treatment": "b", "control": "b"}, "give two different arms"),
        ({"outcome": "label"}, 'outcome column "label" has dtype object, not numeric'),
        ({"alpha": 1.5}, "alpha must be a number between 0 and 1"),
    ],
)
def test_fit_rejects_bad_inputs_with_clear_messages(kwargs: dict, message: str) -> None:
    frame = pd.DataFrame(
        {"arm": ["a", "a", "b", "b"], "y": [1.0, 2.0, 3.0, 5.0], "label": list("wxyz")}
    )
    arguments = {"outcome": "y", "arm": "arm", "treatment": "a", "control": "b"} | kwargs
    with pytest.raises(ValueError, match=message):
        fit_hedges_g(frame, **arguments)


def test_fit_needs_two_non_missing_values_per_arm() -> None:
    frame = pd.DataFrame({"arm": ["a", "a", "b", "b"], "y": [1.0, np.nan, 3.0, 5.0]})
    with pytest.raises(ValueError, match=r'arm "a" has 1 non-missing value\(s\) of "y"'):
        fit_hedges_g(frame, "y", "arm", "a", "b")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1.0, 1.0, 1, 0.0, 1.0, 5), "n_t must be a whole number of at least 2"),
        ((1.0, 1.0, 5, 0.0, 1.0, 2.5), "n_c must be a whole number of at least 2"),
        ((1.0, -1.0, 5, 0.0, 1.0, 5), "sd_t must be a finite standard deviation"),
        ((1.0, 0.0, 5, 0.0, 0.0, 5), "both standard deviations are 0"),
        ((np.nan, 1.0, 5, 0.0, 1.0, 5), "mean_t must be a finite number"),
    ],
)
def test_summary_statistics_are_validated(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hedges_g(*args)


def test_unknown_correction_is_refused() -> None:
    with pytest.raises(ValueError, match='correction must be "approximate" or "exact"'):
        hedges_g(1.0, 1.0, 5, 0.0, 1.0, 5, correction="bessel")  # type: ignore[arg-type]


def test_fit_does_not_modify_the_input_frame() -> None:
    frame = pd.DataFrame(
        {"arm": ["a", "a", "a", "b", "b", "c"], "y": [1.0, np.nan, 3.0, 2.0, 5.0, 9.0]},
        index=[10, 11, 12, 13, 14, 15],
    )
    before = frame.copy(deep=True)
    fit_hedges_g(frame, "y", "arm", "a", "b")
    pd.testing.assert_frame_equal(frame, before)
