"""Tests for pipeline.analysis.imputation: Rubin's rules, MICE and the complete-case fit.

Expected values come from hand arithmetic written out below (exact fractions), the printed
example of R ``mice::pool.scalar()``, sandwich formulas written out in numpy, and the known
potential outcomes of the simulated reference cohort -- never from the code under test.
"""

from __future__ import annotations

import inspect
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats
from statsmodels.imputation.mice import MICEData

from pipeline.analysis.imputation import (
    _MainEffectsMICEData,
    fit_complete_case,
    fit_mice,
    pool_rubin,
)
from pipeline.analysis.tidy import ESTIMATE_COLUMNS
from pipeline.simulate.cohort import CohortSpec, simulate_cohort

REFERENCE_COVARIATES = [
    "age",
    "female",
    "depression_anxiety",
    "log_symptom_years",
    "function_baseline",
    "fabq_pa_baseline",
]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    """The 4193-patient reference cohort (clean values) with a log symptom duration column."""
    patients = simulate_cohort(CohortSpec(n_patients=4193, seed=20260123)).patients
    return patients.assign(log_symptom_years=np.log(patients["symptom_months"] / 12))


@pytest.fixture(scope="module")
def reference_mice(reference) -> pd.DataFrame:
    """MICE fit of discharge function on the reference cohort, CR1 errors by therapist."""
    return fit_mice(
        reference,
        "function_discharge",
        "etmi",
        REFERENCE_COVARIATES,
        seed=20260123,
        m=20,
        cluster="therapist_index",
    )


def _small_frame(n: int = 300, seed: int = 7, missing: bool = True) -> pd.DataFrame:
    """y = 1 + 2 t + x1 - 0.5 x2 + e, with ~40% of y missing at random given x1 (if asked)."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    t = rng.random(n) < special.expit(0.5 * x1)
    y = 1 + 2 * t + x1 - 0.5 * x2 + rng.normal(size=n)
    if missing:
        y = np.where(rng.random(n) < special.expit(-0.5 + x1), np.nan, y)
    return pd.DataFrame(
        {"y": y, "t": t, "x1": x1, "x2": x2, "site": rng.integers(0, 15, n)},
        index=pd.Index(np.arange(n) * 3 + 11, name="pid"),  # a non-default index on purpose
    )


def _ols_hc3_cr1(y, t, x, groups=None):
    """Treatment coefficient and its HC3 (or CR1) variance, by the textbook sandwich formulas."""
    X = np.column_stack([np.ones(len(y)), t, x])
    n, k = X.shape
    bread = np.linalg.inv(X.T @ X)
    beta = bread @ X.T @ y
    e = y - X @ beta
    if groups is None:
        # MacKinnon & White (1985) HC3: residuals inflated by 1 / (1 - h_ii)^2.
        h = np.einsum("ij,jk,ik->i", X, bread, X)
        meat = (X * (e**2 / (1 - h) ** 2)[:, None]).T @ X
        cov = bread @ meat @ bread
    else:
        # CR1 (Cameron & Miller 2015, eq. 11 with the Stata factor G/(G-1) (N-1)/(N-K)).
        labels = np.unique(groups)
        g = len(labels)
        meat = np.zeros((k, k))
        for label in labels:
            s = X[groups == label].T @ e[groups == label]
            meat += np.outer(s, s)
        cov = (g / (g - 1)) * ((n - 1) / (n - k)) * bread @ meat @ bread
    return beta[1], cov[1, 1]


# --------------------------------------------------------------------------- pool_rubin


def test_pool_rubin_matches_hand_worked_example_with_barnard_rubin_df():
    # m = 3, Q = (10, 12, 14), U = (3, 4, 5), complete-data n = 20 with k = 2 parameters.
    m = 3
    qbar = Fraction(10 + 12 + 14, 3)  # 12
    w = Fraction(3 + 4 + 5, 3)  # 4
    b = Fraction((10 - 12) ** 2 + 0**2 + (14 - 12) ** 2, m - 1)  # 4
    t = w + (1 + Fraction(1, m)) * b  # 4 + 16/3 = 28/3
    r = (1 + Fraction(1, m)) * b / w  # 4/3
    lam = (1 + Fraction(1, m)) * b / t  # 4/7
    df_old = (m - 1) / lam**2  # 49/8
    df_com = 20 - 2
    df_obs = Fraction(df_com + 1, df_com + 3) * df_com * (1 - lam)  # 342/49
    df = df_old * df_obs / (df_old + df_obs)  # 16758/5137
    fmi = (r + 2 / (df + 3)) / (1 + r)
    assert (qbar, w, b, t, r, lam) == (12, 4, 4, Fraction(28, 3), Fraction(4, 3), Fraction(4, 7))
    assert (df_old, df_obs, df) == (Fraction(49, 8), Fraction(342, 49), Fraction(16758, 5137))

    pooled = pool_rubin([10.0, 12.0, 14.0], [3.0, 4.0, 5.0], n_obs=20, k_params=2)

    assert pooled["m"] == 3
    assert pooled["estimate"] == pytest.approx(float(qbar), abs=1e-12)
    assert pooled["within"] == pytest.approx(float(w), rel=1e-12)
    assert pooled["between"] == pytest.approx(float(b), rel=1e-12)
    assert pooled["total"] == pytest.approx(float(t), rel=1e-12)
    assert pooled["se"] == pytest.approx(math.sqrt(28 / 3), rel=1e-12)
    assert pooled["relative_increase_variance"] == pytest.approx(float(r), rel=1e-12)
    assert pooled["lambda"] == pytest.approx(float(lam), rel=1e-12)
    assert pooled["df_old"] == pytest.approx(float(df_old), rel=1e-12)
    assert pooled["df_observed"] == pytest.approx(float(df_obs), rel=1e-12)
    assert pooled["df_complete"] == 18
    assert pooled["df"] == pytest.approx(16758 / 5137, rel=1e-12)
    assert pooled["fmi"] == pytest.approx(float(fmi), rel=1e-12)
    half_width = stats.t.ppf(0.975, 16758 / 5137) * math.sqrt(28 / 3)
    assert pooled["ci_low"] == pytest.approx(12 - half_width, rel=1e-10)
    assert pooled["ci_high"] == pytest.approx(12 + half_width, rel=1e-10)
    assert pooled["p_value"] == pytest.approx(
        2 * stats.t.sf(12 / math.sqrt(28 / 3), 16758 / 5137), rel=1e-10
    )


def test_pool_rubin_without_n_obs_uses_rubins_1987_df():
    # Same inputs; v_old = (m - 1) / lambda^2 = 49/8 and fmi = (4/3 + 2/(49/8 + 3)) / (7/3)
    # = (4/3 + 16/73) * 3/7 = 340/511.
    pooled = pool_rubin([10.0, 12.0, 14.0], [3.0, 4.0, 5.0])
    assert pooled["df"] == pytest.approx(49 / 8, rel=1e-12)
    assert pooled["fmi"] == pytest.approx(340 / 511, rel=1e-12)
    assert math.isnan(pooled["df_observed"])
    assert math.isinf(pooled["df_complete"])
    half_width = stats.t.ppf(0.975, 49 / 8) * math.sqrt(28 / 3)
    assert pooled["ci_high"] - pooled["estimate"] == pytest.approx(half_width, rel=1e-10)


def test_pool_rubin_reproduces_the_mice_pool_scalar_reference_example():
    # R mice::pool.scalar() help page, mice 3.10.3 (amices/mice docs/reference/pool.scalar.html):
    # mean BMI in each of 5 imputations of nhanes, U = var / 25, pool.scalar(Q, U, n = 25, k = 1).
    q = [26.816, 26.184, 26.692, 27.076, 26.528]
    u = [0.7888227, 0.5449227, 0.7764973, 0.6764760, 0.5379173]
    pooled = pool_rubin(q, u, n_obs=25, k_params=1)
    assert pooled["estimate"] == pytest.approx(26.6592, abs=5e-5)
    assert pooled["within"] == pytest.approx(0.6649272, abs=5e-8)
    assert pooled["between"] == pytest.approx(0.1106032, abs=5e-8)
    assert pooled["total"] == pytest.approx(0.797651, abs=5e-7)
    assert pooled["df"] == pytest.approx(16.41929, abs=5e-6)
    assert pooled["relative_increase_variance"] == pytest.approx(0.1996066, abs=5e-8)
    assert pooled["fmi"] == pytest.approx(0.2522468, abs=5e-8)


def test_pool_rubin_with_identical_estimates_has_no_between_variance():
    # B = 0: r = lambda = 0; Rubin's df is infinite and fmi = 0 (normal CI); with n_obs the
    # Barnard-Rubin df is its lambda -> 0 limit v_com (v_com + 1) / (v_com + 3) (mice's
    # test-barnard.rubin.R, BARNARD-RUBIN-004) and fmi = 2 / (v + 3).
    estimate = 0.1 + 0.2  # not exactly representable: B must still be exactly 0
    pooled = pool_rubin([estimate] * 7, [0.04] * 7)
    assert pooled["between"] == 0.0
    assert pooled["lambda"] == 0.0
    assert pooled["relative_increase_variance"] == 0.0
    assert pooled["fmi"] == 0.0
    assert math.isinf(pooled["df"])
    assert pooled["ci_high"] == pytest.approx(estimate + 1.959963984540054 * 0.2, rel=1e-12)

    with_n = pool_rubin([estimate] * 7, [0.04] * 7, n_obs=103, k_params=3)
    v = 100 * 101 / 103
    assert with_n["df"] == pytest.approx(v, rel=1e-12)
    assert with_n["fmi"] == pytest.approx(2 / (v + 3), rel=1e-12)


@pytest.mark.parametrize(
    ("estimates", "variances", "kwargs", "message"),
    [
        ([1.0], [1.0], {}, "at least 2 imputations"),
        ([1.0, 2.0], [1.0], {}, "same length"),
        ([1.0, np.nan], [1.0, 1.0], {}, "finite"),
        ([1.0, 2.0], [1.0, 0.0], {}, "must be positive"),
        ([1.0, 2.0], [1.0, 1.0], {"n_obs": 3, "k_params": 3}, "n_obs - k_params"),
        ([1.0, 2.0], [1.0, 1.0], {"alpha": 1.5}, "alpha"),
    ],
)
def test_pool_rubin_rejects_bad_input(estimates, variances, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pool_rubin(estimates, variances, **kwargs)


# --------------------------------------------------------------------------- fit_complete_case


@pytest.mark.parametrize("cluster", [None, "site"])
def test_complete_case_matches_sandwich_formulas(cluster):
    data = _small_frame()
    kept = data.dropna()
    groups = None if cluster is None else kept[cluster].to_numpy()
    estimate, variance = _ols_hc3_cr1(
        kept["y"].to_numpy(), kept["t"].to_numpy(float), kept[["x1", "x2"]].to_numpy(), groups
    )
    row = fit_complete_case(data, "y", "t", ["x1", "x2"], cluster=cluster).iloc[0]

    df = len(kept) - 4 if cluster is None else kept[cluster].nunique() - 1
    half_width = stats.t.ppf(0.975, df) * math.sqrt(variance)
    assert list(row.index[: len(ESTIMATE_COLUMNS)]) == list(ESTIMATE_COLUMNS)
    assert row["method"] == "complete_case_ols"
    assert row["estimand"] == "conditional"
    assert row["estimate"] == pytest.approx(estimate, rel=1e-10)
    assert row["se"] == pytest.approx(math.sqrt(variance), rel=1e-10)
    assert row["ci_low"] == pytest.approx(estimate - half_width, rel=1e-10)
    assert row["df"] == df
    assert row["n_treated"] + row["n_control"] == len(kept)
    assert row["n_missing_outcome"] == data["y"].isna().sum()
    assert str(row["n_missing_outcome"]) in row["warning"]


# --------------------------------------------------------------------------- fit_mice


@pytest.mark.parametrize("cluster", [None, "site"])
def test_mice_without_missing_values_equals_complete_data_ols(cluster):
    data = _small_frame(n=200, missing=False)
    groups = None if cluster is None else data[cluster].to_numpy()
    estimate, variance = _ols_hc3_cr1(
        data["y"].to_numpy(), data["t"].to_numpy(float), data[["x1", "x2"]].to_numpy(), groups
    )
    row = fit_mice(data, "y", "t", ["x1", "x2"], seed=3, m=5, cluster=cluster).iloc[0]

    assert row["estimate"] == pytest.approx(estimate, rel=1e-12)
    assert row["se"] == pytest.approx(math.sqrt(variance), rel=1e-12)
    assert row["between_variance"] == 0.0
    assert row["lambda_missing"] == 0.0
    assert row["relative_increase_variance"] == 0.0
    assert row["n_missing_outcome"] == 0
    # Barnard-Rubin df at lambda = 0 is v_com (v_com + 1) / (v_com + 3); the df-adjusted fmi
    # is then 2 / (v + 3) (< 0.01 here), the value R mice::pool() reports too.
    v_com = 200 - 4 if cluster is None else data[cluster].nunique() - 1
    v = v_com * (v_com + 1) / (v_com + 3)
    assert row["df"] == pytest.approx(v, rel=1e-12)
    assert row["fmi"] == pytest.approx(2 / (v + 3), rel=1e-12)
    half_width = stats.t.ppf(0.975, v) * math.sqrt(variance)
    assert row["ci_high"] == pytest.approx(estimate + half_width, rel=1e-10)

    complete = fit_complete_case(data, "y", "t", ["x1", "x2"], cluster=cluster).iloc[0]
    assert row["estimate"] == pytest.approx(complete["estimate"], rel=1e-12)
    assert row["se"] == pytest.approx(complete["se"], rel=1e-12)


def test_mice_row_has_the_tidy_columns_and_counts():
    data = _small_frame()
    row = fit_mice(data, "y", "t", ["x1", "x2"], seed=1, m=4).iloc[0]
    assert list(row.index[: len(ESTIMATE_COLUMNS)]) == list(ESTIMATE_COLUMNS)
    assert (row["method"], row["estimand"], row["effect_measure"]) == (
        "mice",
        "conditional",
        "mean_difference",
    )
    assert row["term"] == "t: 1 vs 0"
    assert row["n_treated"] == data["t"].sum()
    assert row["n_control"] == (~data["t"]).sum()
    assert row["n_missing_outcome"] == data["y"].isna().sum() > 0
    assert row["m"] == 4
    assert 0 < row["fmi"] < 1
    assert row["ci_low"] < row["estimate"] < row["ci_high"]


def test_mice_is_reproducible_and_leaves_global_random_state_alone():
    # The legacy global numpy random API is what this test is about.
    data = _small_frame()
    np.random.seed(12345)  # noqa: NPY002
    before = np.random.get_state()  # noqa: NPY002
    first = fit_mice(data, "y", "t", ["x1", "x2"], seed=99, m=5)
    after = np.random.get_state()  # noqa: NPY002
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]

    np.random.seed(1)  # noqa: NPY002 -- a different caller state must not change the result
    again = fit_mice(data, "y", "t", ["x1", "x2"], seed=99, m=5)
    pd.testing.assert_frame_equal(first, again)

    other = fit_mice(data, "y", "t", ["x1", "x2"], seed=100, m=5)
    assert other["estimate"].iloc[0] != first["estimate"].iloc[0]
    assert other["between_variance"].iloc[0] != first["between_variance"].iloc[0]


def test_numpy_designs_give_the_same_imputations_as_stock_micedata():
    # The private subclass only replaces patsy design building; for the same random stream
    # its imputations must equal statsmodels' own MICEData bit for bit. Three incomplete
    # columns so every conditional model has imputed predictors.
    data = _small_frame(n=250).drop(columns="site").astype(float)
    data.columns = ["v0", "v1", "v2", "v3"]
    rng = np.random.default_rng(8)
    data.loc[rng.random(len(data)) < 0.3, "v2"] = np.nan
    data.loc[rng.random(len(data)) < 0.2, "v3"] = np.nan
    completed = []
    for klass in (MICEData, _MainEffectsMICEData):
        if "rng" in inspect.signature(MICEData.__init__).parameters:  # statsmodels >= 0.15
            imputer = klass(data, rng=np.random.default_rng(42))
        else:  # statsmodels 0.14 draws from the global RandomState
            np.random.seed(42)  # noqa: NPY002
            imputer = klass(data)
        imputer.update_all(4)
        completed.append(imputer.data.copy())
    assert completed[0].isna().sum().sum() == 0
    pd.testing.assert_frame_equal(completed[0], completed[1], check_exact=True)


def test_mice_imputes_missing_covariates_too():
    data = _small_frame(n=400)
    rng = np.random.default_rng(5)
    data.loc[rng.random(len(data)) < 0.2, "x2"] = np.nan
    row = fit_mice(data, "y", "t", ["x1", "x2"], seed=2, m=5).iloc[0]
    assert row["n_missing_other"] == data["x2"].isna().sum()
    assert row["n_treated"] + row["n_control"] == len(data)
    assert row["ci_low"] < 2 < row["ci_high"]  # the true effect is 2


def test_mice_ci_covers_the_true_effect_on_the_reference_cohort(reference, reference_mice):
    truth = (reference["function_if_etmi"] - reference["function_if_usual"]).mean()
    row = reference_mice.iloc[0]
    assert 3.5 < truth < 4.5  # the simulation's documented +4 points (rounded, clipped)
    assert row["ci_low"] < truth < row["ci_high"]
    assert row["n_missing_outcome"] == reference["function_discharge"].isna().sum()
    assert row["n_missing_outcome"] / len(reference) == pytest.approx(0.61, abs=0.02)
    assert row["n_clusters"] == reference["therapist_index"].nunique()
    assert row["df_complete"] == row["n_clusters"] - 1


def test_mice_fmi_is_a_fraction_and_grows_with_the_share_missing(reference, reference_mice):
    # Same cohort, but the observed-arm discharge function hidden for only 20% of patients
    # (MCAR) instead of 61%: far less information is missing.
    rng = np.random.default_rng(11)
    observed_arm = np.where(
        reference["etmi"], reference["function_if_etmi"], reference["function_if_usual"]
    )
    less_missing = reference.assign(
        function_less_missing=np.where(rng.random(len(reference)) < 0.2, np.nan, observed_arm)
    )
    row_less = fit_mice(
        less_missing,
        "function_less_missing",
        "etmi",
        REFERENCE_COVARIATES,
        seed=20260123,
        m=20,
        cluster="therapist_index",
    ).iloc[0]
    fmi_more = reference_mice["fmi"].iloc[0]
    assert 0 < row_less["fmi"] < 1
    assert 0 < fmi_more < 1
    assert fmi_more > row_less["fmi"] + 0.2


def test_auxiliary_variable_removes_complete_case_bias_under_mar():
    # y = 1 t + x + 2 z + e with z ~ N(0, 1) independent of t and x, so the coefficient of t in
    # y ~ t + x is exactly 1. Treated patients with high z and control patients with low z
    # drop out: missing at random given (t, z), but z is not in the analysis model, so the
    # complete cases under-state the treated mean and over-state the control mean.
    rng = np.random.default_rng(2024)
    n = 3000
    x = rng.normal(size=n)
    z = rng.normal(size=n)
    t = rng.random(n) < 0.5
    y = 1.0 * t + x + 2.0 * z + rng.normal(size=n)
    missing = rng.random(n) < special.expit(np.where(t, 1.5 * z, -1.5 * z))
    data = pd.DataFrame({"y": np.where(missing, np.nan, y), "t": t, "x": x, "z": z})

    complete_case = fit_complete_case(data, "y", "t", ["x"]).iloc[0]
    without_z = fit_mice(data, "y", "t", ["x"], seed=4, m=10).iloc[0]
    with_z = fit_mice(data, "y", "t", ["x"], imputation_columns=["z"], seed=4, m=10).iloc[0]

    assert complete_case["ci_high"] < 0.5  # biased well below the true 1
    assert without_z["ci_high"] < 0.5  # imputing without z cannot fix it
    assert with_z["ci_low"] < 1.0 < with_z["ci_high"]
    assert abs(with_z["estimate"] - 1.0) < 0.15
    assert "z" in with_z["model"]


@pytest.mark.parametrize(
    "fit",
    [
        lambda d: fit_mice(d, "y", "t", ["x1", "x2"], seed=1, m=3, cluster="site"),
        lambda d: fit_complete_case(d, "y", "t", ["x1", "x2"], cluster="site"),
    ],
    ids=["fit_mice", "fit_complete_case"],
)
def test_input_frame_is_not_modified(fit):
    data = _small_frame()
    data.loc[data.index[:10], "x2"] = np.nan
    before = data.copy(deep=True)
    fit(data)
    pd.testing.assert_frame_equal(data, before)


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (lambda d: d, {"outcome": "nope"}, r"\['nope'\] not in the analysis frame"),
        (lambda d: d.assign(t=d["t"] * 2), {}, "must be bool or coded 0/1"),
        (lambda d: d.assign(t=True), {}, "only one arm"),
        (lambda d: d.assign(t=d["t"].astype(float).where(d["x1"] > -2)), {}, "missing value"),
        (lambda d: d.assign(x2=d["x2"].astype(str)), {}, 'column "x2" has dtype'),
        (lambda d: d, {"covariates": ["x1", "t"]}, "more than one role"),
        (lambda d: d, {"m": 1}, "m must be a whole number >= 2"),
        (lambda d: d, {"seed": -1}, "seed must be a whole number"),
        (lambda d: d.assign(site=d["site"].where(d["x1"] > -2)), {"cluster": "site"}, "cluster"),
        (lambda d: d.assign(x2=d["x1"] * 2), {}, "rank deficient"),
    ],
)
def test_fit_mice_refuses_bad_input_with_actionable_errors(change, kwargs, message):
    arguments = {"outcome": "y", "treatment": "t", "covariates": ["x1", "x2"], "seed": 1, "m": 2}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        fit_mice(change(_small_frame()), **arguments)
