"""Tests for pipeline.analysis.meta (random-effects meta-analysis).

Reference values: R metafor on the BCG vaccine data (``dat.bcg``, 13 trials), log risk ratios
from ``escalc(measure = "RR")``:

* REML, ``rma(yi, vi, data = dat)``, as printed in the metafor documentation and vignettes:
  estimate -0.7145, SE 0.1798, CI -1.0669 to -0.3622, tau^2 0.3132, tau 0.5597,
  I^2 92.22%, Q(df = 12) = 152.2330.
* DL and fixed effect, metafor's test file
  ``tests/testthat/test_misc_metan_vs_rma.uni_with_dat.bcg.r`` (values cross-checked against
  Stata ``metan``): DL estimate -0.7141, CI -1.0644 to -0.3638, z -3.9952, tau^2 0.3088,
  I^2 92.1173; back-transformed RR 0.4896 (0.3449 to 0.6950). Fixed effect -0.4303
  (-0.5097 to -0.3509), z -10.6247; RR 0.6503 (0.6007 to 0.7040).
* Paule-Mandel: no published value used; tau^2 (about 0.3181) is recomputed here by solving
  the generalised-Q estimating equation with scipy's root finder.

The REML tau^2 is also recomputed independently with the Fisher-scoring fixed point of
Viechtbauer (2005), and the DL tau^2 with its closed form.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from pipeline.analysis.meta import fit_random_effects
from pipeline.analysis.tidy import ESTIMATE_COLUMNS

# dat.bcg: (tpos, tneg, cpos, cneg) for the 13 trials, in metafor's order.
BCG = [
    (4, 119, 11, 128),
    (6, 300, 29, 274),
    (3, 228, 11, 209),
    (62, 13536, 248, 12619),
    (33, 5036, 47, 5761),
    (180, 1361, 372, 1079),
    (8, 2537, 10, 619),
    (505, 87886, 499, 87892),
    (29, 7470, 45, 7232),
    (17, 1699, 65, 1600),
    (186, 50448, 141, 27197),
    (5, 2493, 3, 2338),
    (27, 16886, 29, 17825),
]
T_975_DF11 = 2.200985160082949  # Student t 97.5% quantile, 11 df (tables: 2.201)
Z_975 = 1.959963984540054


def _bcg_log_rr() -> tuple[np.ndarray, np.ndarray]:
    """yi and vi as metafor's escalc(measure = "RR")."""
    counts = np.array(BCG, dtype=float)
    tpos, tneg, cpos, cneg = counts.T
    yi = np.log((tpos / (tpos + tneg)) / (cpos / (cpos + cneg)))
    vi = 1 / tpos - 1 / (tpos + tneg) + 1 / cpos - 1 / (cpos + cneg)
    return yi, vi


def _bcg_frame(ratio: bool = False) -> pd.DataFrame:
    yi, vi = _bcg_log_rr()
    frame = pd.DataFrame(
        {
            "study_id": [f"trial_{i + 1:02d}" for i in range(len(yi))],
            "estimate": np.exp(yi) if ratio else yi,
            "se": np.sqrt(vi),
        }
    )
    if ratio:
        frame["effect_measure"] = "risk_ratio"
    return frame


def _pool(y: np.ndarray, v: np.ndarray, tau2: float) -> tuple[float, float]:
    w = 1 / (v + tau2)
    return float(np.sum(w * y) / np.sum(w)), float(1 / np.sqrt(np.sum(w)))


def _reml_fixed_point(y: np.ndarray, v: np.ndarray) -> float:
    """REML fixed point (Viechtbauer 2005): tau2 <- sum w^2 ((y - mu)^2 - v) / sum w^2 + 1 / sum w."""
    tau2 = 0.0
    for _ in range(10_000):
        w = 1 / (v + tau2)
        mu = np.sum(w * y) / np.sum(w)
        new = max(0.0, np.sum(w**2 * ((y - mu) ** 2 - v)) / np.sum(w**2) + 1 / np.sum(w))
        if abs(new - tau2) < 1e-14:
            break
        tau2 = new
    return float(tau2)


def test_reml_matches_metafor_bcg() -> None:
    row = fit_random_effects(_bcg_frame(), method="REML").iloc[0]
    assert row["estimate"] == pytest.approx(-0.7145, abs=5e-5)
    assert row["se"] == pytest.approx(0.1798, abs=5e-5)
    assert row["ci_low"] == pytest.approx(-1.0669, abs=5e-5)
    assert row["ci_high"] == pytest.approx(-0.3622, abs=5e-5)
    assert row["tau2"] == pytest.approx(0.3132, abs=5e-5)
    assert row["tau"] == pytest.approx(0.5597, abs=5e-5)
    assert row["i2"] == pytest.approx(92.22, abs=5e-3)
    assert row["q"] == pytest.approx(152.2330, abs=5e-5)
    assert row["q_df"] == 12
    assert row["k"] == 13
    assert row["method"] == "meta_reml"
    assert bool(row["converged"]) is True


def test_reml_matches_independent_fixed_point_iteration() -> None:
    yi, vi = _bcg_log_rr()
    tau2 = _reml_fixed_point(yi, vi)
    mu, se = _pool(yi, vi, tau2)
    row = fit_random_effects(_bcg_frame(), method="REML").iloc[0]
    assert row["tau2"] == pytest.approx(tau2, rel=1e-7)
    assert row["estimate"] == pytest.approx(mu, rel=1e-8)
    assert row["se"] == pytest.approx(se, rel=1e-8)
    # Prediction interval, Higgins et al. (2009): mu -/+ t_{k-2} sqrt(tau2 + se^2).
    half = T_975_DF11 * math.sqrt(tau2 + se**2)
    assert row["pi_low"] == pytest.approx(mu - half, rel=1e-7)
    assert row["pi_high"] == pytest.approx(mu + half, rel=1e-7)


def test_dl_matches_metafor_bcg_and_closed_form() -> None:
    yi, vi = _bcg_log_rr()
    w = 1 / vi
    mu_fe = np.sum(w * yi) / np.sum(w)
    q = np.sum(w * (yi - mu_fe) ** 2)
    tau2 = (q - 12) / (np.sum(w) - np.sum(w**2) / np.sum(w))  # DerSimonian & Laird (1986)
    mu, se = _pool(yi, vi, tau2)

    row = fit_random_effects(_bcg_frame(), method="DL").iloc[0]

    assert row["estimate"] == pytest.approx(-0.7141, abs=5e-5)
    assert row["ci_low"] == pytest.approx(-1.0644, abs=5e-5)
    assert row["ci_high"] == pytest.approx(-0.3638, abs=5e-5)
    assert row["estimate"] / row["se"] == pytest.approx(-3.9952, abs=5e-4)
    assert row["tau2"] == pytest.approx(0.3088, abs=5e-5)
    assert row["i2"] == pytest.approx(92.1173, abs=5e-4)
    assert row["tau2"] == pytest.approx(tau2, rel=1e-10)
    assert row["estimate"] == pytest.approx(mu, rel=1e-10)
    assert row["se"] == pytest.approx(se, rel=1e-10)
    assert row["i2"] == pytest.approx(100 * (q - 12) / q, rel=1e-10)  # equals Higgins' (Q-df)/Q
    assert row["method"] == "meta_dl"


def test_pm_solves_its_estimating_equation() -> None:
    yi, vi = _bcg_log_rr()

    def q_gen(tau2: float) -> float:
        w = 1 / (vi + tau2)
        mu = np.sum(w * yi) / np.sum(w)
        return float(np.sum(w * (yi - mu) ** 2))

    tau2 = optimize.brentq(lambda t: q_gen(t) - 12, 0.0, 10.0, xtol=1e-15)
    mu, se = _pool(yi, vi, tau2)

    row = fit_random_effects(_bcg_frame(), method="PM").iloc[0]

    assert tau2 == pytest.approx(0.3181, abs=5e-5)  # the value quoted for metafor's PM fit
    assert row["tau2"] == pytest.approx(tau2, rel=1e-7)
    assert row["estimate"] == pytest.approx(mu, rel=1e-8)
    assert row["se"] == pytest.approx(se, rel=1e-8)
    assert row["method"] == "meta_pm"
    assert row["warning"] == ""


@pytest.mark.parametrize("method", ["DL", "REML", "PM"])
def test_fixed_effect_and_q_match_metafor_bcg(method: str) -> None:
    row = fit_random_effects(_bcg_frame(), method=method).iloc[0]
    assert row["fe_estimate"] == pytest.approx(-0.4303, abs=5e-5)
    assert row["fe_ci_low"] == pytest.approx(-0.5097, abs=5e-5)
    assert row["fe_ci_high"] == pytest.approx(-0.3509, abs=5e-5)
    assert row["fe_estimate"] / row["fe_se"] == pytest.approx(-10.6247, abs=5e-4)
    assert row["q"] == pytest.approx(152.2330, abs=5e-5)
    assert row["q_p_value"] < 1e-20


def test_ratio_measure_is_pooled_on_the_log_scale_and_exponentiated() -> None:
    row = fit_random_effects(_bcg_frame(ratio=True), method="DL").iloc[0]
    # metafor predict(res, transf = exp), DL: 0.4896 (0.3449 to 0.6950); FE: 0.6503 (0.6007 to 0.7040)
    assert row["effect_measure"] == "risk_ratio"
    assert row["estimate"] == pytest.approx(0.4896, abs=5e-5)
    assert row["ci_low"] == pytest.approx(0.3449, abs=5e-5)
    assert row["ci_high"] == pytest.approx(0.6950, abs=5e-5)
    assert row["fe_estimate"] == pytest.approx(0.6503, abs=5e-5)
    assert row["fe_ci_low"] == pytest.approx(0.6007, abs=5e-5)
    assert row["fe_ci_high"] == pytest.approx(0.7040, abs=5e-5)
    # SE and tau2 stay on the log scale; the prediction interval is exponentiated.
    on_log = fit_random_effects(_bcg_frame(), method="DL").iloc[0]
    assert row["se"] == pytest.approx(on_log["se"], rel=1e-12)
    assert row["tau2"] == pytest.approx(on_log["tau2"], rel=1e-12)
    assert row["pi_low"] == pytest.approx(math.exp(on_log["pi_low"]), rel=1e-12)
    assert row["pi_high"] == pytest.approx(math.exp(on_log["pi_high"]), rel=1e-12)


def test_mean_difference_is_the_default_measure() -> None:
    row = fit_random_effects(_bcg_frame()).iloc[0]
    assert row["effect_measure"] == "mean_difference"
    assert tuple(fit_random_effects(_bcg_frame()).columns[: len(ESTIMATE_COLUMNS)]) == (
        ESTIMATE_COLUMNS
    )


def test_two_studies_have_no_prediction_interval() -> None:
    studies = pd.DataFrame({"study_id": ["a", "b"], "estimate": [0.0, 2.0], "se": [0.5, 1.0]})
    row = fit_random_effects(studies, method="DL").iloc[0]
    # By hand: w = 4, 1; mu_FE = 2/5 = 0.4; Q = 4 (0.4)^2 + 1 (1.6)^2 = 0.64 + 2.56 = 3.2;
    # C = 5 - 17/5 = 1.6; tau2 = (3.2 - 1) / 1.6 = 1.375; w* = 1/1.625, 1/2.375.
    w_star = np.array([1 / 1.625, 1 / 2.375])
    assert row["q"] == pytest.approx(3.2, rel=1e-12)
    assert row["tau2"] == pytest.approx(1.375, rel=1e-12)
    assert row["estimate"] == pytest.approx(2 * w_star[1] / w_star.sum(), rel=1e-12)
    assert row["k"] == 2
    assert np.isnan(row["pi_low"]) and np.isnan(row["pi_high"])
    assert "no prediction interval" in row["warning"]


@pytest.mark.parametrize("method", ["DL", "REML", "PM"])
def test_homogeneous_studies_give_zero_heterogeneity(method: str) -> None:
    se = np.array([0.2, 0.4, 0.3, 0.25])
    studies = pd.DataFrame({"estimate": [1.5] * 4, "se": se})
    row = fit_random_effects(studies, method=method).iloc[0]
    assert row["tau2"] == 0.0
    assert row["i2"] == 0.0
    assert row["q"] == pytest.approx(0.0, abs=1e-12)
    assert row["estimate"] == pytest.approx(1.5, rel=1e-12)
    assert row["se"] == pytest.approx(1 / math.sqrt(np.sum(1 / se**2)), rel=1e-12)
    assert row["se"] == pytest.approx(row["fe_se"], rel=1e-12)
    # With tau2 = 0 the PI is mu -/+ t_2 se; t_{0.975, 2} = 4.302653 (tables: 4.303).
    assert row["pi_high"] - 1.5 == pytest.approx(4.302652729911275 * row["se"], rel=1e-9)


def test_low_heterogeneity_truncates_dl_at_zero() -> None:
    # Q < k - 1 makes the DL moment estimate negative; it must be truncated to 0.
    studies = pd.DataFrame({"estimate": [1.0, 1.1, 0.9], "se": [1.0, 1.0, 1.0]})
    for method in ("DL", "REML", "PM"):
        row = fit_random_effects(studies, method=method).iloc[0]
        assert row["tau2"] == 0.0
        assert row["estimate"] == pytest.approx(1.0, rel=1e-12)


def test_columns_copied_from_the_studies() -> None:
    studies = _bcg_frame().assign(estimand="ATE", term="bcg vs none", n_treated=100, n_control=90)
    row = fit_random_effects(studies, method="DL").iloc[0]
    assert row["estimand"] == "ATE"
    assert row["term"] == "bcg vs none"
    assert row["n_treated"] == 1300
    assert row["n_control"] == 1170
    bare = fit_random_effects(_bcg_frame(), method="DL").iloc[0]
    assert bare["term"] == "pooled"
    assert np.isnan(bare["n_treated"])


def test_alpha_changes_the_interval_level() -> None:
    row = fit_random_effects(_bcg_frame(), method="DL", alpha=0.1).iloc[0]
    z_95 = 1.6448536269514722  # standard normal 95% quantile
    assert row["ci_high"] - row["estimate"] == pytest.approx(z_95 * row["se"], rel=1e-9)


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (
            pd.DataFrame({"estimate": [1.0], "se": [0.1]}),
            {},
            "a meta-analysis needs at least 2 studies, got 1",
        ),
        (pd.DataFrame({"estimate": [1.0, 2.0]}), {}, r"column\(s\) \['se'\] not in the studies"),
        (
            pd.DataFrame({"study_id": ["a", "b"], "estimate": [1.0, np.nan], "se": [0.1, 0.2]}),
            {},
            r"missing or non-finite estimate/SE for \['b'\]",
        ),
        (
            pd.DataFrame({"estimate": [1.0, 2.0], "se": [0.1, 0.0]}),
            {},
            r"standard errors must be > 0; not so for \['row 1'\]",
        ),
        (
            pd.DataFrame({"study_id": ["a", "a"], "estimate": [1.0, 2.0], "se": [0.1, 0.2]}),
            {},
            r"study labels repeat in column 'study_id': \['a'\]",
        ),
        (
            pd.DataFrame(
                {
                    "estimate": [1.0, 2.0],
                    "se": [0.1, 0.2],
                    "effect_measure": ["risk_ratio", "odds_ratio"],
                }
            ),
            {},
            "the studies mix effect measures",
        ),
        (
            pd.DataFrame(
                {"estimate": [1.2, -0.3], "se": [0.1, 0.2], "effect_measure": "odds_ratio"}
            ),
            {},
            r"odds_ratio estimates must be > 0 \(natural scale, not logged\)",
        ),
        (pd.DataFrame({"estimate": [1.0, 2.0], "se": [0.1, 0.2]}), {"method": "HS"}, "method"),
        (pd.DataFrame({"estimate": [1.0, 2.0], "se": [0.1, 0.2]}), {"alpha": 0}, "alpha"),
    ],
)
def test_bad_inputs_are_refused(frame: pd.DataFrame, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_random_effects(frame, **kwargs)


def test_input_frame_is_not_modified() -> None:
    studies = _bcg_frame(ratio=True)
    before = studies.copy(deep=True)
    for method in ("DL", "REML", "PM"):
        fit_random_effects(studies, method=method)
    pd.testing.assert_frame_equal(studies, before)
