"""Propensity-score weighting: weights, balance, ESS, overlap, IPW and AIPW.

Where the expected values come from:

* the tiny hand-built frame: arithmetic written out in the tests (fractions of the weights
  below, no code under test involved);
* the small simulated frame: an independent numpy / statsmodels re-implementation in this
  file (propensity from ``statsmodels`` GLM Binomial rather than the Logit the module uses,
  Hajek ratios, HC1 / CR1 sandwiches and AIPW influence functions coded by hand);
* the reference cohort: the true effects realised in the simulation (both potential
  outcomes are known for every patient).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from pipeline.analysis.tidy import ESTIMATE_COLUMNS
from pipeline.analysis.weighting import (
    BALANCE_COLUMNS,
    IPWResult,
    balance_table,
    check_overlap,
    compute_weights,
    effective_sample_size,
    fit_aipw,
    fit_ipw,
    fit_propensity,
    weight_summary,
)
from pipeline.simulate.cohort import CohortSpec, simulate_cohort

TRUE_CONFOUNDERS = [
    "age",
    "depression_anxiety",
    "log_symptom_years",
    "fabq_pa_baseline",
    "function_baseline",
]
SMALL_COVARIATES = ["x1", "x2", "site"]


# ---------------------------------------------------------------------------------------------
# Fixtures and independent reference implementations
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def tiny() -> pd.DataFrame:
    """Six units with propensities chosen so every weight is a simple fraction."""
    return pd.DataFrame(
        {
            "treated": [True, True, True, False, False, False],
            "e": [0.5, 0.8, 0.2, 0.5, 0.2, 0.6],
            "x": [2.0, 4.0, 6.0, 1.0, 3.0, 8.0],
            "b": [True, False, True, False, True, True],
            "site": ["a", "b", "a", "b", "b", "a"],
        },
        index=[10, 11, 12, 13, 14, 15],
    )


def simulate_small(n: int = 500, seed: int = 3, effect: float = 2.0) -> pd.DataFrame:
    """A confounded data set with a continuous, a bool and a 3-level categorical covariate."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(0, 1, n)
    x2 = rng.random(n) < 0.4
    site = rng.choice(np.array(["a", "b", "c"]), n)
    logit = -0.7 + 0.8 * x1 - 0.6 * x2 + 0.5 * (site == "c")
    treated = rng.random(n) < 1 / (1 + np.exp(-logit))
    y = 10 + 3 * x1 + 2 * x2 - 1.5 * (site == "b") + effect * treated + rng.normal(0, 2, n)
    return pd.DataFrame(
        {
            "y": y,
            "treated": treated,
            "x1": x1,
            "x2": x2,
            "site": site,
            "clinic": rng.integers(0, 25, n),
        }
    )


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return simulate_small()


def reference_design(data: pd.DataFrame) -> np.ndarray:
    """Intercept, x1, x2, site=b, site=c, built by hand."""
    site = data["site"].to_numpy()
    return np.column_stack(
        [
            np.ones(len(data)),
            data["x1"].to_numpy(),
            data["x2"].to_numpy(dtype=float),
            (site == "b").astype(float),
            (site == "c").astype(float),
        ]
    )


def glm_propensity(data: pd.DataFrame) -> np.ndarray:
    """Propensities from statsmodels GLM Binomial (IRLS), not the Logit used by the module."""
    X = reference_design(data)
    fit = sm.GLM(data["treated"].to_numpy(dtype=float), X, family=sm.families.Binomial()).fit(
        tol=1e-12
    )
    return fit.fittedvalues


def reference_aipw(
    data: pd.DataFrame, estimand: str, cluster: str | None = None
) -> tuple[float, float]:
    """AIPW estimate and influence-function SE, coded from Lunceford & Davidian (2004) / Hahn (1998)."""
    X = reference_design(data)
    y = data["y"].to_numpy()
    T = data["treated"].to_numpy(dtype=float)
    t = T == 1
    e = glm_propensity(data)
    m1 = X @ np.linalg.lstsq(X[t], y[t], rcond=None)[0]
    m0 = X @ np.linalg.lstsq(X[~t], y[~t], rcond=None)[0]
    n = len(y)
    if estimand == "ATE":
        psi = m1 - m0 + T * (y - m1) / e - (1 - T) * (y - m0) / (1 - e)
        tau = psi.mean()
        influence = psi - tau
    else:
        odds = e / (1 - e)
        tau = (np.sum(T * (y - m0)) - np.sum((1 - T) * odds * (y - m0))) / T.sum()
        influence = (T * (y - m0 - tau) - (1 - T) * odds * (y - m0)) / T.mean()
    if cluster is None:
        return tau, np.sqrt(np.sum(influence**2)) / n
    sums = pd.Series(influence).groupby(data[cluster].to_numpy()).sum().to_numpy()
    g = len(sums)
    return tau, np.sqrt(g / (g - 1) * np.sum(sums**2)) / n


@pytest.fixture(scope="module")
def reference_patients() -> pd.DataFrame:
    """The reference cohort at its default seed, with log symptom duration in years."""
    p = simulate_cohort(CohortSpec()).patients
    return p.assign(log_symptom_years=np.log(p["symptom_months"] / 12))


@pytest.fixture(scope="module")
def complete_cases(reference_patients) -> pd.DataFrame:
    return reference_patients[reference_patients["complete"]]


# ---------------------------------------------------------------------------------------------
# Weights, balance, ESS and summaries on the hand-built frame
# ---------------------------------------------------------------------------------------------


class TestWeightsByHand:
    """Treated e = 0.5, 0.8, 0.2; control e = 0.5, 0.2, 0.6; marginal P(T=1) = 3/6 = 0.5."""

    def test_ate_weights_unstabilised_are_inverse_probabilities(self, tiny):
        w = compute_weights(tiny["e"], tiny["treated"], "ATE", stabilise=False)
        # treated 1/e = 1/0.5, 1/0.8, 1/0.2; control 1/(1-e) = 1/0.5, 1/0.8, 1/0.4
        np.testing.assert_allclose(w, [2.0, 1.25, 5.0, 2.0, 1.25, 2.5], rtol=1e-12)
        assert w.index.equals(tiny.index)

    def test_ate_weights_stabilised_multiply_by_marginal_probability(self, tiny):
        w = compute_weights(tiny["e"], tiny["treated"], "ATE", stabilise=True)
        np.testing.assert_allclose(w, [1.0, 0.625, 2.5, 1.0, 0.625, 1.25], rtol=1e-12)

    def test_att_weights_are_one_and_odds(self, tiny):
        w = compute_weights(tiny["e"], tiny["treated"], "ATT", stabilise=False)
        # control odds e/(1-e) = 0.5/0.5, 0.2/0.8, 0.6/0.4
        np.testing.assert_allclose(w, [1, 1, 1, 1.0, 0.25, 1.5], rtol=1e-12)

    def test_att_stabilised_control_weights_sum_to_control_count(self, tiny):
        w = compute_weights(tiny["e"], tiny["treated"], "ATT", stabilise=True)
        # odds sum to 2.75; rescaled by 3 / 2.75 = 12/11
        np.testing.assert_allclose(w, [1, 1, 1, 12 / 11, 3 / 11, 18 / 11], rtol=1e-12)

    def test_trimming_zeroes_units_outside_inclusive_bounds(self, tiny):
        w = compute_weights(tiny["e"], tiny["treated"], "ATE", trim=(0.2, 0.7))
        # Kept: e in [0.2, 0.7] (bounds included) -> treated 10 (0.5), 12 (0.2) and controls
        # 13 (0.5), 14 (0.2), 15 (0.6); trimmed: 11 (0.8). P(T=1) among the kept = 2/5.
        expected = [0.4 / 0.5, 0.0, 0.4 / 0.2, 0.6 / 0.5, 0.6 / 0.8, 0.6 / 0.4]
        np.testing.assert_allclose(w, expected, rtol=1e-12)
        assert list(w.index[w == 0]) == [11]

    def test_weighted_means_smd_and_variance_ratios(self, tiny):
        w = compute_weights(tiny["e"], tiny["treated"], "ATE")  # 1, .625, 2.5 | 1, .625, 1.25
        table = balance_table(tiny, "treated", ["x", "b", "site"], w).set_index("covariate")
        assert list(table.index) == ["x", "b", "site=a", "site=b"]
        assert tuple(table.reset_index().columns) == BALANCE_COLUMNS

        x = table.loc["x"]
        wt, wc = 1 + 0.625 + 2.5, 1 + 0.625 + 1.25  # 4.125, 2.875
        mean_t_after = (1 * 2 + 0.625 * 4 + 2.5 * 6) / wt  # 52/11
        mean_c_after = (1 * 1 + 0.625 * 3 + 1.25 * 8) / wc  # 103/23
        var_t, var_c = (4 + 0 + 4) / 2, (9 + 1 + 16) / 2  # (2,4,6) and (1,3,8), both mean 4
        pooled_sd = np.sqrt((var_t + var_c) / 2)
        assert x["mean_treated_before"] == pytest.approx(4.0)
        assert x["mean_control_before"] == pytest.approx(4.0)
        assert x["mean_treated_after"] == pytest.approx(52 / 11)
        assert x["mean_control_after"] == pytest.approx(103 / 23)
        assert x["smd_before"] == pytest.approx(0.0, abs=1e-12)
        assert x["smd_after"] == pytest.approx((mean_t_after - mean_c_after) / pooled_sd)
        assert x["variance_ratio_before"] == pytest.approx(4 / 13)
        # Reliability-weighted variance: sum(w) / (sum(w)^2 - sum(w^2)) * sum(w (x - m)^2)
        ss_t = 1 * (2 - 52 / 11) ** 2 + 0.625 * (4 - 52 / 11) ** 2 + 2.5 * (6 - 52 / 11) ** 2
        ss_c = 1 * (1 - 103 / 23) ** 2 + 0.625 * (3 - 103 / 23) ** 2 + 1.25 * (8 - 103 / 23) ** 2
        wvar_t = wt / (wt**2 - (1 + 0.625**2 + 2.5**2)) * ss_t
        wvar_c = wc / (wc**2 - (1 + 0.625**2 + 1.25**2)) * ss_c
        assert x["variance_ratio_after"] == pytest.approx(wvar_t / wvar_c)
        assert x["kind"] == "continuous"

        b = table.loc["b"]  # treated 1,0,1; control 0,1,1: both 2/3, variance p(1-p) = 2/9
        assert b["kind"] == "binary"
        assert b["mean_treated_after"] == pytest.approx((1 + 2.5) / wt)  # 28/33
        assert b["mean_control_after"] == pytest.approx((0.625 + 1.25) / wc)  # 15/23
        assert b["smd_before"] == pytest.approx(0.0, abs=1e-12)
        assert b["smd_after"] == pytest.approx((28 / 33 - 15 / 23) / np.sqrt(2 / 9))
        assert np.isnan(b["variance_ratio_after"])

        site_a = table.loc["site=a"]  # treated a,b,a (2/3); control b,b,a (1/3)
        sd = np.sqrt((2 / 9 + 2 / 9) / 2)
        assert site_a["smd_before"] == pytest.approx((2 / 3 - 1 / 3) / sd)
        assert site_a["smd_after"] == pytest.approx(((1 + 2.5) / wt - 1.25 / wc) / sd)
        assert bool(site_a["flag_imbalanced"]) is True
        assert table.loc["site=b", "smd_after"] == pytest.approx(-site_a["smd_after"])

    def test_effective_sample_size_is_kish(self, tiny):
        w = compute_weights(tiny["e"], tiny["treated"], "ATE")
        ess = effective_sample_size(w, tiny["treated"])
        assert ess["treated"] == pytest.approx(4.125**2 / (1 + 0.625**2 + 2.5**2))  # 2.2270
        assert ess["control"] == pytest.approx(2.875**2 / (1 + 0.625**2 + 1.25**2))  # 2.7989

    def test_weight_summary_percentiles_and_top_share(self):
        treated = np.r_[np.ones(102, bool), np.zeros(3, bool)]
        weights = np.r_[np.ones(99), 101.0, 0.0, 0.0, 1.0, 2.0, 3.0]
        summary = weight_summary(weights, treated).set_index("arm")
        arm = summary.loc["treated"]
        assert arm["n"] == 102 and arm["n_zero_weight"] == 2
        assert arm["min"] == 1 and arm["max"] == 101 and arm["median"] == 1
        # p99 of 100 positive weights: position 0.99 * 99 = 98.01 between 1 and 101
        assert arm["p99"] == pytest.approx(1 + 0.01 * 100)
        # top 1% of 100 positive weights = the single 101, of a total of 99 + 101 = 200
        assert arm["top1pct_share"] == pytest.approx(101 / 200)
        assert summary.loc["control", "top1pct_share"] == pytest.approx(3 / 6)


# ---------------------------------------------------------------------------------------------
# Overlap and trimming
# ---------------------------------------------------------------------------------------------


class TestOverlap:
    def test_flags_arms_without_overlap(self):
        e = np.r_[np.linspace(0.6, 0.9, 20), np.linspace(0.1, 0.4, 30)]
        treated = np.r_[np.ones(20, bool), np.zeros(30, bool)]
        overlap = check_overlap(e, treated)
        assert overlap["adequate"] is False
        assert overlap["share_treated_outside_control_range"] == 1.0
        assert overlap["share_control_outside_treated_range"] == 1.0
        assert overlap["treated_min"] == pytest.approx(0.6)
        assert overlap["control_max"] == pytest.approx(0.4)
        assert overlap["message"].startswith("Poor propensity overlap")

    def test_counts_units_outside_the_other_arms_range(self):
        # Treated range [0.3, 0.9], control range [0.1, 0.8].
        e = np.r_[[0.3] * 5, [0.5] * 40, [0.9] * 5, [0.1] * 6, [0.5] * 50, [0.8] * 4]
        treated = np.r_[np.ones(50, bool), np.zeros(60, bool)]
        overlap = check_overlap(e, treated)
        assert overlap["share_treated_outside_control_range"] == pytest.approx(5 / 50)  # 0.9s
        assert overlap["share_control_outside_treated_range"] == pytest.approx(6 / 60)  # 0.1s
        assert overlap["adequate"] is False  # 10% > 5% default tolerance
        assert check_overlap(e, treated, tolerance=0.1)["adequate"] is True
        assert check_overlap(e, treated, tolerance=0.1)["message"].startswith(
            "Propensity overlap adequate"
        )

    def test_one_sided_lack_of_overlap_is_enough_to_flag(self):
        # Every treated unit sits inside the control range, but a third of the controls
        # (propensity 0.05) lie below the lowest treated propensity (0.3).
        e = np.r_[[0.3] * 10, [0.6] * 10, [0.05] * 20, [0.45] * 38, [0.6] * 2]
        treated = np.r_[np.ones(20, bool), np.zeros(60, bool)]
        overlap = check_overlap(e, treated)
        assert overlap["share_treated_outside_control_range"] == 0.0
        assert overlap["share_control_outside_treated_range"] == pytest.approx(20 / 60)
        assert overlap["adequate"] is False

    def test_separated_data_fit_warns_and_flags_the_estimate(self):
        data = pd.DataFrame(
            {
                "y": np.arange(40, dtype=float),
                "treated": np.r_[np.zeros(20, bool), np.ones(20, bool)],
                "x": np.r_[np.arange(20.0), np.arange(20.0) + 30],
            }
        )
        with pytest.warns(UserWarning, match="propensity model"):
            e = fit_propensity(data, "treated", ["x"])
        assert check_overlap(e, data["treated"])["adequate"] is False
        row = fit_ipw(data, "y", "treated", ["x"]).estimates.iloc[0]
        assert not row["converged"]
        assert "Poor propensity overlap" in row["warning"]

    def test_fit_ipw_trimming_excludes_units_outside_range(self, small):
        low, high = 0.25, 0.6
        result = fit_ipw(small, "y", "treated", SMALL_COVARIATES, trim=(low, high))
        e = glm_propensity(small)
        t = small["treated"].to_numpy()
        outside = (e < low) | (e > high)
        assert outside.any() and (~outside).any()
        np.testing.assert_array_equal(result.weights.to_numpy() == 0, outside)
        assert result.n_trimmed == {
            "treated": int((outside & t).sum()),
            "control": int((outside & ~t).sum()),
        }
        row = result.estimates.iloc[0]
        assert row["n_treated"] == int((~outside & t).sum())
        assert row["n_control"] == int((~outside & ~t).sum())
        kept_t, kept_c = ~outside & t, ~outside & ~t
        y = small["y"].to_numpy()
        hajek = np.average(y[kept_t], weights=1 / e[kept_t]) - np.average(
            y[kept_c], weights=1 / (1 - e[kept_c])
        )
        assert row["estimate"] == pytest.approx(hajek, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Propensity model and IPW against independent computations
# ---------------------------------------------------------------------------------------------


class TestIPW:
    def test_propensity_matches_glm_binomial(self, small):
        e = fit_propensity(small, "treated", SMALL_COVARIATES)
        np.testing.assert_allclose(e.to_numpy(), glm_propensity(small), rtol=1e-7)
        assert e.index.equals(small.index)

    @pytest.mark.parametrize("estimand", ["ATE", "ATT"])
    def test_estimate_is_the_hajek_ratio(self, small, estimand):
        e = glm_propensity(small)
        t = small["treated"].to_numpy()
        y = small["y"].to_numpy()
        w = 1 / e if estimand == "ATE" else np.ones_like(e)
        v = 1 / (1 - e) if estimand == "ATE" else e / (1 - e)
        hajek = np.sum(w[t] * y[t]) / np.sum(w[t]) - np.sum(v[~t] * y[~t]) / np.sum(v[~t])
        row = fit_ipw(small, "y", "treated", SMALL_COVARIATES, estimand=estimand).estimates
        assert row["estimate"].iloc[0] == pytest.approx(hajek, rel=1e-7)

    def test_stabilising_does_not_change_the_estimate(self, small):
        rows = [
            fit_ipw(small, "y", "treated", SMALL_COVARIATES, stabilise=s).estimates.iloc[0]
            for s in (True, False)
        ]
        assert rows[0]["estimate"] == pytest.approx(rows[1]["estimate"], rel=1e-10)

    def test_wls_equals_glm_gaussian_with_var_weights_and_hand_hc1(self, small):
        result = fit_ipw(small, "y", "treated", SMALL_COVARIATES, variance="robust_wls")
        row = result.estimates.iloc[0]
        w = result.weights.to_numpy()
        y = small["y"].to_numpy()
        X = np.column_stack([np.ones(len(y)), small["treated"].to_numpy(dtype=float)])
        glm = sm.GLM(y, X, family=sm.families.Gaussian(), var_weights=w).fit()
        assert row["estimate"] == pytest.approx(glm.params[1], rel=1e-10)
        # HC1 sandwich by hand: n/(n-k) (X'WX)^-1 [sum w_i^2 u_i^2 x_i x_i'] (X'WX)^-1
        beta = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * y))
        u = y - X @ beta
        bread = np.linalg.inv(X.T @ (w[:, None] * X))
        meat = (X * (w * u)[:, None]).T @ (X * (w * u)[:, None])
        n, k = X.shape
        cov = n / (n - k) * bread @ meat @ bread
        assert row["se"] == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-8)
        z = stats.norm.ppf(0.975)
        assert row["ci_low"] == pytest.approx(beta[1] - z * np.sqrt(cov[1, 1]), rel=1e-8)
        assert np.isnan(row["n_clusters"])

    def test_cluster_robust_se_is_cr1(self, small):
        result = fit_ipw(
            small, "y", "treated", SMALL_COVARIATES, cluster="clinic", variance="robust_wls"
        )
        row = result.estimates.iloc[0]
        w = result.weights.to_numpy()
        y = small["y"].to_numpy()
        X = np.column_stack([np.ones(len(y)), small["treated"].to_numpy(dtype=float)])
        bread = np.linalg.inv(X.T @ (w[:, None] * X))
        u = y - X @ (bread @ (X.T @ (w * y)))
        scores = pd.DataFrame(X * (w * u)[:, None]).groupby(small["clinic"].to_numpy()).sum()
        meat = scores.to_numpy().T @ scores.to_numpy()
        n, k, g = len(y), 2, small["clinic"].nunique()
        cov = g / (g - 1) * (n - 1) / (n - k) * bread @ meat @ bread
        assert row["se"] == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-8)
        assert row["n_clusters"] == g

    def test_result_is_frozen_and_complete(self, small):
        result = fit_ipw(small, "y", "treated", SMALL_COVARIATES, estimand="ATT")
        assert isinstance(result, IPWResult)
        with pytest.raises(AttributeError):
            result.weights = None  # type: ignore[misc]
        est = result.estimates
        assert tuple(est.columns[: len(ESTIMATE_COLUMNS)]) == ESTIMATE_COLUMNS
        assert est["method"].tolist() == ["ipw"] and est["estimand"].tolist() == ["ATT"]
        assert set(result.ess) == {"treated", "control"}
        assert list(result.weights_summary["arm"]) == ["treated", "control"]
        assert result.propensity.index.equals(small.index)


# ---------------------------------------------------------------------------------------------
# AIPW
# ---------------------------------------------------------------------------------------------


class TestAIPW:
    def test_equals_g_computation_when_propensity_is_constant(self):
        # Controls carry every treated covariate pattern twice, so the arms have equal
        # covariate means and the logistic MLE has zero slopes: e = 1/3 for everyone.
        rng = np.random.default_rng(11)
        x1, x2 = rng.normal(0, 1, 40), rng.random(40) < 0.5
        data = pd.DataFrame(
            {
                "x1": np.tile(x1, 3),
                "x2": np.tile(x2, 3),
                "treated": np.r_[np.ones(40, bool), np.zeros(80, bool)],
                "y": rng.normal(0, 1, 120),
            }
        )
        data["y"] += 2 * data["x1"] + data["treated"] * (1 + data["x1"])
        e = fit_propensity(data, "treated", ["x1", "x2"])
        assert np.ptp(e.to_numpy()) < 1e-10 and e.iloc[0] == pytest.approx(1 / 3)

        X = np.column_stack([np.ones(120), data["x1"], data["x2"].astype(float)])
        t = data["treated"].to_numpy()
        y = data["y"].to_numpy()
        m1 = X @ np.linalg.lstsq(X[t], y[t], rcond=None)[0]
        m0 = X @ np.linalg.lstsq(X[~t], y[~t], rcond=None)[0]
        ate = fit_aipw(data, "y", "treated", ["x1", "x2"], estimand="ATE")
        att = fit_aipw(data, "y", "treated", ["x1", "x2"], estimand="ATT")
        assert ate["estimate"].iloc[0] == pytest.approx(np.mean(m1 - m0), abs=1e-8)
        assert att["estimate"].iloc[0] == pytest.approx(np.mean(y[t] - m0[t]), abs=1e-8)

    @pytest.mark.parametrize("estimand", ["ATE", "ATT"])
    @pytest.mark.parametrize("cluster", [None, "clinic"])
    def test_matches_independent_influence_function_implementation(self, small, estimand, cluster):
        tau, se = reference_aipw(small, estimand, cluster)
        row = fit_aipw(small, "y", "treated", SMALL_COVARIATES, estimand, cluster=cluster).iloc[0]
        assert row["estimate"] == pytest.approx(tau, rel=1e-7)
        assert row["se"] == pytest.approx(se, rel=1e-6)
        assert row["method"] == "aipw" and row["estimand"] == estimand

    @pytest.mark.parametrize("estimand", ["ATE", "ATT"])
    def test_se_agrees_with_nonparametric_bootstrap(self, estimand):
        data = simulate_small(n=400, seed=5)
        row = fit_aipw(data, "y", "treated", SMALL_COVARIATES, estimand=estimand).iloc[0]
        rng = np.random.default_rng(2024)
        replicates = [
            fit_aipw(
                data.iloc[rng.integers(0, len(data), len(data))],
                "y",
                "treated",
                SMALL_COVARIATES,
                estimand=estimand,
            )["estimate"].iloc[0]
            for _ in range(200)
        ]
        # 200 resamples: the bootstrap SD itself has ~5% Monte Carlo error, hence 15%.
        assert row["se"] == pytest.approx(np.std(replicates, ddof=1), rel=0.15)

    def test_one_unit_per_cluster_rescales_by_n_over_n_minus_1(self, small):
        data = small.assign(unit=np.arange(len(small)))
        plain = fit_aipw(data, "y", "treated", SMALL_COVARIATES).iloc[0]
        clustered = fit_aipw(data, "y", "treated", SMALL_COVARIATES, cluster="unit").iloc[0]
        n = len(data)
        assert clustered["se"] == pytest.approx(plain["se"] * np.sqrt(n / (n - 1)), rel=1e-10)


# ---------------------------------------------------------------------------------------------
# The reference cohort: known true effects
# ---------------------------------------------------------------------------------------------


class TestReferenceCohort:
    @pytest.mark.parametrize("estimand", ["ATE", "ATT"])
    def test_intervals_cover_the_realised_true_effect(self, complete_cases, estimand):
        cc = complete_cases
        diff = cc["function_if_etmi"] - cc["function_if_usual"]
        truth = diff.mean() if estimand == "ATE" else diff[cc["etmi"]].mean()
        ipw = fit_ipw(
            cc,
            "function_discharge",
            "etmi",
            TRUE_CONFOUNDERS,
            estimand=estimand,
            cluster="therapist_index",
        )
        aipw = fit_aipw(
            cc,
            "function_discharge",
            "etmi",
            TRUE_CONFOUNDERS,
            estimand=estimand,
            cluster="therapist_index",
        )
        for row in (ipw.estimates.iloc[0], aipw.iloc[0]):
            assert row["ci_low"] < truth < row["ci_high"], row["method"]
        assert ipw.estimates["n_treated"].iloc[0] == cc["etmi"].sum()
        assert ipw.overlap["adequate"]

    @pytest.mark.parametrize("estimand", ["ATE", "ATT"])
    def test_weighting_balances_the_true_confounders(self, complete_cases, estimand):
        result = fit_ipw(
            complete_cases, "function_discharge", "etmi", TRUE_CONFOUNDERS, estimand=estimand
        )
        balance = result.balance
        assert (balance["smd_before"].abs() > 0.1).any()  # confounding by indication is real
        assert (balance["smd_after"].abs() < 0.1).all()
        assert not balance["flag_imbalanced"].any()

    def test_naive_difference_is_biased_and_weighting_removes_it(self):
        # Every patient with the outcome of the arm received (no dropout), in a cohort with many
        # therapists: with the default 128, chance differences between the therapists who deliver
        # ETMI and the others are a finite-sample confounder that weighting on patients cannot remove.
        cohort = simulate_cohort(
            CohortSpec(
                n_patients=20_000,
                n_therapists=2000,
                n_therapists_trained=1700,
                n_therapists_delivering=1100,
                seed=3,
            )
        ).patients
        p = cohort.assign(
            function_observed=np.where(
                cohort["etmi"], cohort["function_if_etmi"], cohort["function_if_usual"]
            ),
            log_symptom_years=np.log(cohort["symptom_months"] / 12),
        )
        truth = (p["function_if_etmi"] - p["function_if_usual"]).mean()
        treated = p["etmi"].to_numpy()
        y = p["function_observed"].to_numpy()
        naive = y[treated].mean() - y[~treated].mean()
        row = fit_ipw(
            p, "function_observed", "etmi", TRUE_CONFOUNDERS, cluster="therapist_index"
        ).estimates.iloc[0]
        assert abs(naive - truth) >= 1.5
        assert not row["ci_low"] < naive < row["ci_high"]
        assert row["ci_low"] < truth < row["ci_high"]


# ---------------------------------------------------------------------------------------------
# Inputs: never modified, validated with actionable messages
# ---------------------------------------------------------------------------------------------


CALLS = {
    "fit_propensity": lambda d: fit_propensity(d, "treated", SMALL_COVARIATES),
    "compute_weights": lambda d: compute_weights(d["x1"].abs() / 5 + 0.05, d["treated"]),
    "balance_table": lambda d: balance_table(
        d, "treated", SMALL_COVARIATES, pd.Series(1.0, index=d.index)
    ),
    "effective_sample_size": lambda d: effective_sample_size(d["x1"].abs(), d["treated"]),
    "check_overlap": lambda d: check_overlap(d["x1"].abs() / 5 + 0.05, d["treated"]),
    "weight_summary": lambda d: weight_summary(d["x1"].abs(), d["treated"]),
    "fit_ipw": lambda d: fit_ipw(
        d, "y", "treated", SMALL_COVARIATES, estimand="ATT", cluster="clinic", trim=(0.05, 0.95)
    ),
    "fit_aipw": lambda d: fit_aipw(d, "y", "treated", SMALL_COVARIATES, cluster="clinic"),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_input_frame_is_unchanged(name):
    data = simulate_small(n=200, seed=9).assign(site=lambda d: d["site"].astype("category"))
    before = copy.deepcopy(data)
    CALLS[name](data)
    pd.testing.assert_frame_equal(data, before)


class TestValidation:
    def test_missing_outcome_names_the_column(self, small):
        data = small.assign(y=small["y"].where(small.index > 2))
        with pytest.raises(ValueError, match=r'"y" \(3 of 500\).*complete cases'):
            fit_ipw(data, "y", "treated", SMALL_COVARIATES)

    def test_missing_covariate_column(self, small):
        with pytest.raises(ValueError, match='covariates column "bmi" not in data'):
            fit_aipw(small, "y", "treated", ["x1", "bmi"])

    def test_non_binary_treatment(self, small):
        with pytest.raises(ValueError, match='"treatment column site" must be bool or 0/1'):
            fit_propensity(small, "site", ["x1"])

    def test_single_arm(self, small):
        with pytest.raises(ValueError, match="has no control units"):
            fit_propensity(small.assign(treated=True), "treated", ["x1"])

    def test_constant_covariate(self, small):
        with pytest.raises(ValueError, match='covariate "k" takes a single value'):
            fit_propensity(small.assign(k=1.0), "treated", ["x1", "k"])

    def test_collinear_covariates(self, small):
        with pytest.raises(ValueError, match="collinear"):
            fit_propensity(small.assign(x3=2 * small["x1"] + 1), "treated", ["x1", "x3"])

    def test_unknown_estimand(self, tiny):
        with pytest.raises(ValueError, match='estimand must be "ATE" or "ATT"'):
            compute_weights(tiny["e"], tiny["treated"], estimand="ATC")  # type: ignore[arg-type]

    @pytest.mark.parametrize("trim", [(0.9, 0.1), (-0.1, 0.5), (0.1,)])
    def test_bad_trim(self, tiny, trim):
        with pytest.raises(ValueError, match="trim must"):
            compute_weights(tiny["e"], tiny["treated"], trim=trim)

    def test_infinite_weight_is_refused(self, tiny):
        e = tiny["e"].where(tiny.index != 10, 0.0)  # a treated unit with propensity 0
        with pytest.raises(ValueError, match="weights are infinite"):
            compute_weights(e, tiny["treated"], "ATE")
        # ... which the ATT does not divide by, and trimming removes.
        assert compute_weights(e, tiny["treated"], "ATT").loc[10] == 1.0
        assert compute_weights(e, tiny["treated"], "ATE", trim=(0.1, 0.9)).loc[10] == 0.0

    def test_propensity_out_of_range(self, tiny):
        with pytest.raises(ValueError, match="propensity must lie in"):
            compute_weights(tiny["e"] * 2, tiny["treated"])

    def test_weights_must_be_aligned_with_data(self, tiny):
        w = pd.Series(1.0, index=range(6))
        with pytest.raises(ValueError, match="not indexed like data"):
            balance_table(tiny, "treated", ["x"], w)


class TestMEstimationVariance:
    """The default IPW standard error accounts for the estimated propensity score."""

    @staticmethod
    def _data(seed: int = 5, n: int = 800) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        x1, x2 = rng.normal(size=n), rng.binomial(1, 0.4, n).astype(float)
        treated = rng.random(n) < 1 / (1 + np.exp(-(-0.4 + 0.9 * x1 - 0.6 * x2)))
        y = 2.0 * treated + 1.5 * x1 + 1.0 * x2 + rng.normal(0, 1.5, n)
        return pd.DataFrame({"y": y, "treated": treated, "x1": x1, "x2": x2})

    @pytest.mark.parametrize("estimand", ["ATE", "ATT"])
    def test_se_agrees_with_a_bootstrap_that_refits_the_propensity(self, estimand):
        data = self._data()
        row = fit_ipw(data, "y", "treated", ["x1", "x2"], estimand=estimand).estimates.iloc[0]
        rng = np.random.default_rng(11)
        boot = []
        for _ in range(250):
            sample = data.iloc[rng.integers(0, len(data), len(data))].reset_index(drop=True)
            boot.append(
                fit_ipw(sample, "y", "treated", ["x1", "x2"], estimand=estimand).estimates.iloc[0][
                    "estimate"
                ]
            )
        assert row["se"] == pytest.approx(np.std(boot, ddof=1), rel=0.15)

    def test_ate_se_is_not_larger_than_treating_the_propensity_as_known(self):
        # Lunceford & Davidian 2004: estimating the propensity score cannot increase the
        # asymptotic variance of the ATE estimator
        row = fit_ipw(self._data(), "y", "treated", ["x1", "x2"], estimand="ATE").estimates.iloc[0]
        assert row["se_m_estimation"] <= row["se_robust_wls"] * 1.01

    def test_unknown_variance_option_is_refused(self):
        with pytest.raises(ValueError, match="variance must be"):
            fit_ipw(self._data(), "y", "treated", ["x1"], variance="bootstrap")
