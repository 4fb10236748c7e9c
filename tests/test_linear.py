"""Tests for pipeline.analysis.linear (naive difference, ANCOVA with adjusted means, effect
modification).

Independent reference values, computed here from the simulated raw values (not from the
analysis frame):

* coefficients: ``numpy.linalg.lstsq`` on a design built by hand;
* HC3 and CR1 covariances: sandwiches coded with numpy from their definitions (MacKinnon &
  White 1985; Cameron & Miller 2015, CR1 = G/(G-1) (N-1)/(N-K) with t on G-1 df);
* the HC3 SE of a difference of two means in closed form: with leverages 1/n_arm,
  sum u^2 / (1 - 1/n)^2 / n^2 = SS / (n - 1)^2, so SE = sqrt(s_t^2/(n_t-1) + s_c^2/(n_c-1));
* ANCOVA adjusted means: the mean prediction with everyone set to one arm (emmeans'
  counterfactual means), computed from the lstsq coefficients;
* effect modification without covariates: stratum effects are differences of cell means, and
  the interaction Wald F statistic is b' V^-1 b / q with the hand sandwich V.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.analysis.frame import build_analysis_frame
from pipeline.analysis.linear import fit_ancova, fit_effect_modification, fit_naive
from pipeline.analysis.spec import ComparisonSpec

SEVERITY = ["mild", "moderate", "severe"]


def simulate_raw(n: int = 90, seed: int = 11) -> pd.DataFrame:
    """One row per participant: arm, covariates, therapist, pain at baseline and discharge."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(["etmi", "usual_care", "advice"], size=n, p=[0.45, 0.45, 0.10])
    therapist = rng.choice([f"t{i}" for i in range(9)], size=n)
    severity = rng.choice(SEVERITY, size=n)
    baseline = rng.uniform(3, 9, n)
    age = rng.normal(45, 12, n)
    male = rng.integers(0, 2, n)
    therapist_effect = dict(zip(sorted(set(therapist)), rng.normal(0, 0.7, 9), strict=True))
    effect = np.where(arm == "etmi", -1.0, 0.0) * np.select(
        [severity == "mild", severity == "moderate"], [0.5, 1.0], 2.0
    )
    y = (
        1.0
        + 0.55 * baseline
        + 0.02 * age
        + 0.3 * male
        + effect
        + np.array([therapist_effect[t] for t in therapist])
        + rng.normal(0, 1, n) * (0.5 + baseline / 6)  # heteroscedastic
    )
    raw = pd.DataFrame(
        {
            "participant_id": [f"p{i:03d}" for i in range(n)],
            "arm": arm,
            "age": age,
            "sex": np.where(male == 1, "male", "female"),
            "severity": severity,
            "therapist": therapist.astype(object),
            "baseline": baseline,
            "y": y,
        }
    )
    raw.loc[[3, 17, 40, 41, 66], "y"] = np.nan  # lost to follow-up
    raw.loc[[8, 52], "age"] = np.nan
    raw.loc[[5, 29], "therapist"] = None
    return raw


def to_tables(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical participants / outcomes tables (as ingest writes them) from the raw rows."""
    participants = pd.DataFrame(
        {
            "participant_id": pd.array(raw["participant_id"], dtype="string[pyarrow]"),
            "arm": pd.Categorical(raw["arm"], categories=["etmi", "usual_care", "advice"]),
            "age": raw["age"].to_numpy(),
            "sex": pd.Categorical(raw["sex"], categories=["female", "male"]),
            "severity": pd.Categorical(raw["severity"], categories=SEVERITY),
            "therapist": pd.Categorical(raw["therapist"]),
            "site": pd.Categorical(["s1"] * len(raw)),
            "sessions": np.full(len(raw), 6.0),
        }
    )
    long = pd.concat(
        [
            raw[["participant_id", "baseline"]]
            .rename(columns={"baseline": "value"})
            .assign(timepoint="baseline", days=0),
            raw[["participant_id", "y"]]
            .rename(columns={"y": "value"})
            .assign(timepoint="discharge", days=70),
        ]
    ).dropna(subset=["value"])
    outcomes = long.assign(
        participant_id=long["participant_id"].astype("string[pyarrow]"),
        outcome="pain",
        domain="pain",
        instrument="nprs",
        raw_value=long["value"],
        timepoint=pd.Categorical(long["timepoint"], categories=["baseline", "discharge"]),
    )
    return participants, outcomes


def make_frame(raw: pd.DataFrame, **overrides):
    values = {
        "id": "demo",
        "outcome": "pain",
        "timepoint": "discharge",
        "treatment": "etmi",
        "control": "usual_care",
        "methods": ["ancova"],
    }
    participants, outcomes = to_tables(raw)
    return build_analysis_frame(participants, outcomes, ComparisonSpec(**(values | overrides)))


def analysed(raw: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The two compared arms, complete on y and the given raw columns, with hand-coded terms."""
    data = raw[raw["arm"].isin(["etmi", "usual_care"])].dropna(subset=["y", *columns])
    return data.assign(
        treated=(data["arm"] == "etmi").astype(float),
        male=(data["sex"] == "male").astype(float),
        const=1.0,
    )


def ols_hc3(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    u = y - X @ beta
    bread = np.linalg.inv(X.T @ X)
    h = np.einsum("ij,jk,ik->i", X, bread, X)
    return beta, bread @ ((X * (u / (1 - h))[:, None] ** 2).T @ X) @ bread


def ols_cr1(X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    u = y - X @ beta
    bread = np.linalg.inv(X.T @ X)
    n, k = X.shape
    labels = np.unique(groups)
    meat = sum(
        np.outer(X[groups == g].T @ u[groups == g], X[groups == g].T @ u[groups == g])
        for g in labels
    )
    g = len(labels)
    return beta, g / (g - 1) * (n - 1) / (n - k) * bread @ meat @ bread


def one(result: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(result), dtype=bool)
    for column, value in where.items():
        mask &= (result[column] == value).to_numpy()
    assert mask.sum() == 1, f"expected one row with {where}, got {mask.sum()}"
    return result[mask].iloc[0]


# ---------------------------------------------------------------------------------------------
# naive


def test_naive_is_the_difference_of_arm_means_with_closed_form_hc3_se() -> None:
    raw = simulate_raw()
    data = analysed(raw, [])
    y_t = data.loc[data["treated"] == 1, "y"]
    y_c = data.loc[data["treated"] == 0, "y"]
    # closed form derived in the module docstring
    se = np.sqrt(y_t.var(ddof=1) / (len(y_t) - 1) + y_c.var(ddof=1) / (len(y_c) - 1))
    t = stats.t.ppf(0.975, len(data) - 2)

    row = fit_naive(make_frame(raw)).iloc[0]

    assert row["estimate"] == pytest.approx(y_t.mean() - y_c.mean(), rel=1e-10)
    assert row["se"] == pytest.approx(se, rel=1e-10)
    assert row["ci_low"] == pytest.approx(row["estimate"] - t * se, rel=1e-9)
    assert row["p_value"] == pytest.approx(
        2 * stats.t.sf(abs(row["estimate"]) / se, len(data) - 2), rel=1e-8
    )
    assert (row["n_treated"], row["n_control"]) == (len(y_t), len(y_c))
    assert row["method"] == "naive" and row["term"] == "etmi vs usual_care"


def test_naive_clustered_uses_hand_cr1_and_drops_rows_without_a_cluster() -> None:
    raw = simulate_raw()
    data = analysed(raw, ["therapist"])
    X = data[["const", "treated"]].to_numpy()
    beta, cov = ols_cr1(X, data["y"].to_numpy(), data["therapist"].to_numpy())
    g = data["therapist"].nunique()

    row = fit_naive(make_frame(raw, cluster="therapist")).iloc[0]

    assert row["estimate"] == pytest.approx(beta[1], rel=1e-10)
    assert row["se"] == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-8)
    assert row["n_clusters"] == g
    assert (row["ci_high"] - row["estimate"]) / row["se"] == pytest.approx(
        stats.t.ppf(0.975, g - 1), rel=1e-9
    )
    assert row["n_treated"] + row["n_control"] == len(data)
    assert "CR1 cluster-robust errors by therapist" in row["model"]


# ---------------------------------------------------------------------------------------------
# ANCOVA


def test_ancova_coefficient_and_hc3_se_equal_lstsq_and_hand_sandwich() -> None:
    raw = simulate_raw()
    data = analysed(raw, ["age"])
    X = data[["const", "treated", "baseline", "age", "male"]].to_numpy()
    beta, cov = ols_hc3(X, data["y"].to_numpy())
    df = len(data) - X.shape[1]

    result = fit_ancova(make_frame(raw, adjust_for=["age", "sex"]), alpha=0.1)
    row = one(result, effect_measure="mean_difference")

    assert row["estimate"] == pytest.approx(beta[1], rel=1e-10)
    assert row["se"] == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-8)
    assert row["ci_high"] == pytest.approx(beta[1] + stats.t.ppf(0.95, df) * row["se"], rel=1e-8)
    assert (row["n_treated"], row["n_control"]) == (
        int(data["treated"].sum()),
        int((1 - data["treated"]).sum()),
    )
    assert pd.isna(row["n_clusters"])  # not clustered


def test_ancova_adjusted_means_are_mean_predictions_and_differ_by_the_coefficient() -> None:
    raw = simulate_raw()
    data = analysed(raw, ["age"])
    names = ["const", "treated", "baseline", "age", "male"]
    X = data[names].to_numpy()
    beta, cov = ols_hc3(X, data["y"].to_numpy())
    expected = {}
    for arm, value in (("etmi", 1.0), ("usual_care", 0.0)):
        counterfactual = X.copy()
        counterfactual[:, 1] = value  # everyone set to this arm
        gradient = counterfactual.mean(axis=0)
        expected[arm] = (
            float(np.mean(counterfactual @ beta)),
            float(np.sqrt(gradient @ cov @ gradient)),
        )

    result = fit_ancova(make_frame(raw, adjust_for=["age", "sex"]))

    for arm, (mean, se) in expected.items():
        row = one(result, effect_measure="adjusted_mean", term=arm)
        assert row["estimate"] == pytest.approx(mean, rel=1e-10)
        assert row["se"] == pytest.approx(se, rel=1e-8)
        assert np.isnan(row["p_value"])  # "mean = 0" is not a hypothesis anyone tests
    difference = (
        one(result, effect_measure="adjusted_mean", term="etmi")["estimate"]
        - one(result, effect_measure="adjusted_mean", term="usual_care")["estimate"]
    )
    assert difference == pytest.approx(
        one(result, effect_measure="mean_difference")["estimate"], rel=1e-10
    )


def test_ancova_clustered_equals_hand_cr1_with_t_on_g_minus_1_df() -> None:
    raw = simulate_raw()
    data = analysed(raw, ["age", "therapist"])
    X = data[["const", "treated", "baseline", "age"]].to_numpy()
    beta, cov = ols_cr1(X, data["y"].to_numpy(), data["therapist"].to_numpy())
    g = data["therapist"].nunique()

    result = fit_ancova(make_frame(raw, adjust_for=["age"], cluster="therapist"))
    row = one(result, effect_measure="mean_difference")

    assert row["estimate"] == pytest.approx(beta[1], rel=1e-10)
    assert row["se"] == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-8)
    assert row["n_clusters"] == g
    assert row["p_value"] == pytest.approx(
        2 * stats.t.sf(abs(beta[1]) / np.sqrt(cov[1, 1]), g - 1), rel=1e-7
    )
    control_mean = one(result, effect_measure="adjusted_mean", term="usual_care")
    gradient = X.mean(axis=0) * np.array([1, 0, 1, 1])
    assert control_mean["se"] == pytest.approx(np.sqrt(gradient @ cov @ gradient), rel=1e-8)


@pytest.mark.parametrize("fit", [fit_naive, fit_ancova, fit_effect_modification])
def test_linear_fits_do_not_modify_the_frame(fit) -> None:
    frame = make_frame(
        simulate_raw(),
        adjust_for=["age", "sex"],
        cluster="therapist",
        effect_modifier="severity",
        methods=["ancova", "effect_modification"],
    )
    before = frame.data.copy(deep=True)
    fit(frame)
    pd.testing.assert_frame_equal(frame.data, before)


@pytest.mark.parametrize("fit", [fit_naive, fit_ancova])
def test_an_arm_without_outcomes_is_refused_not_reported_as_zero_effect(fit) -> None:
    raw = simulate_raw()
    raw.loc[raw["arm"] == "usual_care", "y"] = np.nan  # no control has a discharge value
    frame = make_frame(raw)
    try:
        row = fit(frame).iloc[0]
    except ValueError:  # the analyse stage turns ValueError into a NaN row with the reason
        return
    assert np.isnan(row["estimate"])


# ---------------------------------------------------------------------------------------------
# effect modification


def modified_frame(raw: pd.DataFrame, baseline: bool, **overrides):
    frame = make_frame(
        raw, effect_modifier="severity", methods=["effect_modification"], **overrides
    )
    if not baseline:  # an outcome without a baseline: stratum effects are cell-mean contrasts
        frame = dataclasses.replace(frame, data=frame.data.drop(columns=["baseline"]))
    return frame


def test_effect_modification_without_covariates_gives_cell_mean_differences() -> None:
    raw = simulate_raw()
    data = analysed(raw, [])
    cells = data.groupby(["severity", "treated"])["y"].mean()
    effects = {s: cells[(s, 1.0)] - cells[(s, 0.0)] for s in SEVERITY}

    result = fit_effect_modification(modified_frame(raw, baseline=False))

    for level in SEVERITY:
        row = one(result, effect_measure="mean_difference", term=f"severity={level}")
        assert row["estimate"] == pytest.approx(effects[level], rel=1e-9)
        stratum = data[data["severity"] == level]
        assert (row["n_treated"], row["n_control"]) == (
            int(stratum["treated"].sum()),
            int((1 - stratum["treated"]).sum()),
        )
        # a saturated cell-means model: HC3 SE of a difference of two cell means in closed form
        y_t = stratum.loc[stratum["treated"] == 1, "y"]
        y_c = stratum.loc[stratum["treated"] == 0, "y"]
        se = np.sqrt(y_t.var(ddof=1) / (len(y_t) - 1) + y_c.var(ddof=1) / (len(y_c) - 1))
        assert row["se"] == pytest.approx(se, rel=1e-8)


def test_effect_modification_interaction_wald_f_equals_hand_statistic() -> None:
    raw = simulate_raw()
    data = analysed(raw, [])
    # cell-means design: treated, level indicators, treated x level (reference: mild)
    moderate = (data["severity"] == "moderate").astype(float)
    severe = (data["severity"] == "severe").astype(float)
    X = np.column_stack(
        [
            np.ones(len(data)),
            data["treated"],
            moderate,
            data["treated"] * moderate,
            severe,
            data["treated"] * severe,
        ]
    )
    beta, cov = ols_hc3(X, data["y"].to_numpy())
    b = beta[[3, 5]]
    V = cov[np.ix_([3, 5], [3, 5])]
    F = float(b @ np.linalg.solve(V, b)) / 2
    p = stats.f.sf(F, 2, len(data) - 6)

    result = fit_effect_modification(modified_frame(raw, baseline=False))
    row = one(result, effect_measure="interaction_test")

    assert row["p_value"] == pytest.approx(p, rel=1e-7)
    assert np.isnan(row["estimate"])  # more than two levels: no single difference
    assert row["n_treated"] + row["n_control"] == len(data)


def test_effect_modification_two_levels_difference_of_differences() -> None:
    raw = simulate_raw()
    raw["severity"] = np.where(raw["severity"] == "mild", "mild", "severe")
    data = analysed(raw, [])
    cells = data.groupby(["severity", "treated"])["y"].mean()
    difference = (cells[("severe", 1.0)] - cells[("severe", 0.0)]) - (
        cells[("mild", 1.0)] - cells[("mild", 0.0)]
    )

    result = fit_effect_modification(modified_frame(raw, baseline=False))
    row = one(result, effect_measure="interaction_test")

    assert row["estimate"] == pytest.approx(difference, rel=1e-9)
    # one interaction term: the F(1, df) p value equals the t-test p value of that term
    assert row["p_value"] == pytest.approx(
        2 * stats.t.sf(abs(row["estimate"]) / row["se"], len(data) - 4), rel=1e-7
    )
    assert row["term"] == "arm x severity"


def test_effect_modification_with_baseline_and_clusters_equals_lstsq_and_hand_cr1() -> None:
    raw = simulate_raw()
    data = analysed(raw, ["age", "therapist"])
    moderate = (data["severity"] == "moderate").astype(float)
    severe = (data["severity"] == "severe").astype(float)
    t = data["treated"]
    X = np.column_stack(
        [
            np.ones(len(data)),
            t,
            moderate,
            t * moderate,
            severe,
            t * severe,
            data["baseline"],
            data["age"],
        ]
    )
    beta, cov = ols_cr1(X, data["y"].to_numpy(), data["therapist"].to_numpy())
    g = data["therapist"].nunique()
    contrasts = {"mild": [1], "moderate": [1, 3], "severe": [1, 5]}

    # severity also listed as a covariate: its indicators must not enter the model twice
    result = fit_effect_modification(
        modified_frame(raw, baseline=True, adjust_for=["age", "severity"], cluster="therapist")
    )

    for level, terms in contrasts.items():
        w = np.zeros(X.shape[1])
        w[terms] = 1.0
        row = one(result, effect_measure="mean_difference", term=f"severity={level}")
        assert row["estimate"] == pytest.approx(w @ beta, rel=1e-9)
        assert row["se"] == pytest.approx(np.sqrt(w @ cov @ w), rel=1e-7)
        assert row["n_clusters"] == g
    b = beta[[3, 5]]
    F = float(b @ np.linalg.solve(cov[np.ix_([3, 5], [3, 5])], b)) / 2
    test = one(result, effect_measure="interaction_test")
    assert test["p_value"] == pytest.approx(stats.f.sf(F, 2, g - 1), rel=1e-7)


def test_a_stratum_without_treated_participants_gets_no_estimate() -> None:
    raw = simulate_raw()
    raw = raw[~((raw["severity"] == "severe") & (raw["arm"] == "etmi"))]
    frame = modified_frame(raw, baseline=True)
    try:
        result = fit_effect_modification(frame)
    except ValueError:  # refused with a reason: acceptable
        return
    severe = one(result, effect_measure="mean_difference", term="severity=severe")
    assert np.isnan(severe["estimate"])
