"""Tests for pipeline.analysis.mixed (therapist / clinic random intercepts; repeated measures).

Independent reference values:

* balanced designs: REML equals the ANOVA (method-of-moments) estimators when they are
  positive (Searle, Casella & McCulloch, *Variance Components*, 1992, sections 3.3-3.6 and
  6.7). One-way, G clusters of n: sigma2_e = MSW, sigma2_u = (MSB - MSW) / n, where the fixed
  effects are removed in their own stratum (a cluster-level treatment from the between-cluster
  mean square on G - 2 df; a within-cluster treatment from the within mean square). Nested
  clinic / therapist / patient (a x b x n): sigma2_e = MSE, sigma2_t = (MS_T - MSE) / n,
  sigma2_c = (MS_C - MS_T) / (b n). The treatment effect and its variance follow in closed
  form (difference of means; variance MS_stratum / n x (1/G_t + 1/G_c) or similar, derived
  at each test);
* unbalanced designs: REML from its definition (Harville, JASA 1977;72:320-338), profiled
  over the single variance ratio and minimised by a fixed grid then bounded Brent (no
  starting value or iteration limit that could stop early on another CPU), and the fixed
  effects as the GLS estimate (X'V^-1 X)^-1 X'V^-1 y coded with numpy;
* repeated measures with complete data and time-specific intercepts, treatment and baseline
  effects: every timepoint has the same regressors, so GLS equals per-timepoint OLS for any
  covariance matrix (Zellner's seemingly-unrelated-regressions result, JASA 1962;57:348-368);
  the contrast at each timepoint is the per-timepoint ANCOVA coefficient from lstsq.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from pipeline.analysis.frame import build_analysis_frame, repeated_frame
from pipeline.analysis.mixed import fit_mixed, fit_repeated_measures
from pipeline.analysis.spec import ComparisonSpec

# ---------------------------------------------------------------------------------------------
# helpers: canonical tables, REML and GLS written from their definitions


def to_tables(people: pd.DataFrame, values: dict[str, np.ndarray]):
    """Canonical tables from one row per participant and pain values by timepoint (NaN = none)."""
    participants = pd.DataFrame(
        {
            "participant_id": pd.array(people["participant_id"], dtype="string[pyarrow]"),
            "arm": pd.Categorical(people["arm"], categories=["etmi", "usual_care"]),
            "age": people["age"].to_numpy(dtype=float),
            "therapist": pd.Categorical(people["therapist"]),
            "site": pd.Categorical(people["site"]),
            "sessions": np.full(len(people), 6.0),
        }
    )
    timepoints = list(values)
    pieces = [
        pd.DataFrame(
            {"participant_id": people["participant_id"], "value": v, "timepoint": tp, "days": 7 * i}
        )
        for i, (tp, v) in enumerate(values.items())
    ]
    long = pd.concat(pieces).dropna(subset=["value"])
    outcomes = long.assign(
        participant_id=long["participant_id"].astype("string[pyarrow]"),
        outcome="pain",
        domain="pain",
        instrument="nprs",
        raw_value=long["value"],
        timepoint=pd.Categorical(long["timepoint"], categories=timepoints),
    )
    return participants, outcomes


def comparison(**overrides) -> ComparisonSpec:
    values = {
        "id": "demo",
        "outcome": "pain",
        "timepoint": "discharge",
        "treatment": "etmi",
        "control": "usual_care",
        "methods": ["mixed"],
        "cluster": "therapist",
    }
    return ComparisonSpec(**(values | overrides))


def _group_sums(y: np.ndarray, X: np.ndarray, groups: np.ndarray):
    labels = np.unique(groups)
    rows = [groups == g for g in labels]
    return (
        np.array([r.sum() for r in rows]),
        np.array([X[r].T @ X[r] for r in rows]),  # X_g'X_g
        np.array([X[r].sum(axis=0) for r in rows]),  # X_g'1
        np.array([X[r].T @ y[r] for r in rows]),  # X_g'y_g
        np.array([y[r].sum() for r in rows]),  # 1'y_g
        np.array([y[r] @ y[r] for r in rows]),  # y_g'y_g
    )


def _gls_pieces(sums, s2u: float, s2e: float):
    """X'V^-1X, X'V^-1y, y'V^-1y and log|V| with V_g = s2e I + s2u 11' (Woodbury)."""
    n, XtX, sx, Xty, sy, yty = sums
    c = s2u / (s2e + n * s2u)
    XtViX = (XtX.sum(axis=0) - np.einsum("g,gi,gj->ij", c, sx, sx)) / s2e
    XtViy = (Xty.sum(axis=0) - np.einsum("g,gi->i", c * sy, sx)) / s2e
    ytViy = (yty.sum() - np.sum(c * sy**2)) / s2e
    logdet = np.sum((n - 1) * np.log(s2e) + np.log(s2e + n * s2u))
    return XtViX, XtViy, ytViy, logdet


def gls_by_hand(y, X, groups, s2u: float, s2e: float) -> tuple[np.ndarray, np.ndarray]:
    """GLS coefficients and their covariance (X'V^-1X)^-1 for given variance components."""
    XtViX, XtViy, _, _ = _gls_pieces(_group_sums(y, X, groups), s2u, s2e)
    cov = np.linalg.inv(XtViX)
    return cov @ XtViy, cov


def reml_by_hand(y, X, groups) -> tuple[float, float]:
    """(sigma2_u, sigma2_e) maximising the REML log-likelihood, profiled over one ratio.

    With gamma = sigma2_u / sigma2_e and H = V / sigma2_e, the residual variance has the closed
    form sigma2_e = r'H^-1 r / (N - p) at the GLS residual r, which leaves the 1-D criterion
    -2 l_R(gamma) = (N - p) log(r'H^-1 r) + log|H| + log|X'H^-1 X| (+ const)
    (Harville 1977, eq. 5.3 profiled; the same profiling as lme4, Bates et al. 2015, sec. 3.4).
    It is minimised over log(gamma) by a fixed grid (the bracket: no starting value, no
    iteration limit) and then bounded Brent to 1e-12 within the grid cell holding the minimum:
    deterministic and converged on any CPU, unlike a 2-D Nelder-Mead with a maxiter.
    """
    sums = _group_sums(y, X, groups)
    dof = len(y) - X.shape[1]

    def criterion(log_gamma: float) -> float:
        XtHiX, XtHiy, ytHiy, logdet = _gls_pieces(sums, float(np.exp(log_gamma)), 1.0)
        quadratic = ytHiy - XtHiy @ np.linalg.solve(XtHiX, XtHiy)
        return dof * np.log(quadratic) + logdet + np.linalg.slogdet(XtHiX)[1]

    grid = np.arange(-15.0, 8.0 + 1e-9, 0.05)
    values = np.array([criterion(g) for g in grid])
    best = int(np.argmin(values))
    assert 0 < best < len(grid) - 1, "REML optimum at the edge of the grid (variance ~ 0)"
    result = optimize.minimize_scalar(
        criterion,
        bounds=(grid[best - 1], grid[best + 1]),
        method="bounded",
        options={"xatol": 1e-12, "maxiter": 1000},
    )
    assert result.success
    gamma = float(np.exp(result.x))
    XtHiX, XtHiy, ytHiy, _ = _gls_pieces(sums, gamma, 1.0)
    s2e = float((ytHiy - XtHiy @ np.linalg.solve(XtHiX, XtHiy)) / dof)
    return gamma * s2e, s2e


# ---------------------------------------------------------------------------------------------
# fit_mixed: one random intercept


def balanced_one_way(treatment: str, seed: int = 5, clusters: int = 30, per: int = 20):
    """30 therapists x 20 patients; treatment by therapist (between) or half of each (within)."""
    rng = np.random.default_rng(seed)
    therapist = np.repeat([f"t{g:02d}" for g in range(clusters)], per)
    if treatment == "between":
        treated = np.repeat(np.arange(clusters) % 2 == 0, per)
    else:
        treated = np.tile(np.arange(per) % 2 == 0, clusters)
    y = (
        5
        - 1.2 * treated
        + np.repeat(rng.normal(0, 1.0, clusters), per)
        + rng.normal(0, 1.5, clusters * per)
    )
    people = pd.DataFrame(
        {
            "participant_id": [f"p{i:04d}" for i in range(clusters * per)],
            "arm": np.where(treated, "etmi", "usual_care"),
            "age": 50.0,
            "therapist": therapist,
            "site": "s1",
        }
    )
    return people, y


@pytest.mark.parametrize("treatment", ["between", "within"])
def test_mixed_balanced_one_way_equals_anova_estimators(treatment) -> None:
    people, y = balanced_one_way(treatment)
    G, n = 30, 20
    table = pd.DataFrame({"g": people["therapist"], "t": people["arm"] == "etmi", "y": y})
    cluster_mean = table.groupby("g")["y"].transform("mean")
    if treatment == "between":
        # within stratum: no fixed effect; between stratum: cluster means around arm means
        msw = np.sum((y - cluster_mean) ** 2) / (G * (n - 1))
        means = table.groupby("g").agg(y=("y", "mean"), t=("t", "first"))
        arm_mean = means.groupby("t")["y"].transform("mean")
        msb = n * np.sum((means["y"] - arm_mean) ** 2) / (G - 2)
        # difference of arm means; var = (s2u + s2e/n)(1/15 + 1/15) = MSB/n (2/15)
        effect = means.loc[means["t"], "y"].mean() - means.loc[~means["t"], "y"].mean()
        se = np.sqrt(msb / n * (2 / 15))
    else:
        # within stratum: residuals from cluster x arm cell means, one df for the treatment
        shift = table.groupby("t")["y"].transform("mean") - table["y"].mean()
        resid = y - cluster_mean - shift.to_numpy()
        msw = np.sum(resid**2) / (G * (n - 1) - 1)
        msb = n * np.sum((table.groupby("g")["y"].mean() - y.mean()) ** 2) / (G - 1)
        effect = y[table["t"]].mean() - y[~table["t"]].mean()
        se = np.sqrt(msw * (2 / (G * n / 2)))  # s2e (1/300 + 1/300)
    s2e, s2u = msw, (msb - msw) / n
    assert s2u > 0  # the ANOVA estimate is a REML estimate only when positive

    values = {"baseline": np.full(G * n, 6.0), "discharge": y}
    participants, outcomes = to_tables(people, values)
    frame = build_analysis_frame(participants, outcomes, comparison())
    frame = dataclasses.replace(frame, data=frame.data.drop(columns=["baseline"]))
    row = fit_mixed(frame).iloc[0]

    assert row["variance_residual"] == pytest.approx(s2e, rel=1e-3)
    assert row["variance_therapist"] == pytest.approx(s2u, rel=1e-3)
    assert row["estimate"] == pytest.approx(effect, rel=1e-6)
    assert row["se"] == pytest.approx(se, rel=1e-3)
    assert row["n_clusters"] == G and (row["n_treated"], row["n_control"]) == (300, 300)
    assert row["converged"]


def unbalanced_people(seed: int = 8):
    """25 therapists of 3-25 patients, baseline and age, treatment varying within therapists."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 26, 25)
    therapist = np.repeat([f"t{g:02d}" for g in range(25)], sizes)
    n = len(therapist)
    p_treated = np.repeat(rng.uniform(0.2, 0.8, 25), sizes)
    treated = rng.uniform(size=n) < p_treated
    baseline = rng.uniform(2, 9, n)
    age = rng.normal(50, 10, n)
    y = (
        2
        + 0.5 * baseline
        + 0.03 * age
        - 1.0 * treated
        + np.repeat(rng.normal(0, 0.9, 25), sizes)
        + rng.normal(0, 1.3, n)
    )
    y[rng.choice(n, 12, replace=False)] = np.nan  # missing outcomes
    people = pd.DataFrame(
        {
            "participant_id": [f"p{i:04d}" for i in range(n)],
            "arm": np.where(treated, "etmi", "usual_care"),
            "age": age,
            "therapist": therapist,
            "site": "s1",
        }
    )
    return people, baseline, y


def test_mixed_unbalanced_equals_hand_reml_and_hand_gls() -> None:
    people, baseline, y = unbalanced_people()
    keep = ~np.isnan(y)
    X = np.column_stack(
        [np.ones(keep.sum()), people["arm"][keep] == "etmi", baseline[keep], people["age"][keep]]
    ).astype(float)
    groups = people["therapist"].to_numpy()[keep]
    s2u, s2e = reml_by_hand(y[keep], X, groups)

    participants, outcomes = to_tables(people, {"baseline": baseline, "discharge": y})
    frame = build_analysis_frame(participants, outcomes, comparison(adjust_for=["age"]))
    row = fit_mixed(frame).iloc[0]

    # Both sides minimise the same smooth 1-D profile; near its minimum the criterion is flat
    # (quadratic), so rounding of ~1e-15 in the criterion moves the argmin by ~sqrt(1e-15)
    # relative, ~3e-8, times the curvature scale: observed 3e-7, hence 2e-6.
    assert row["variance_therapist"] == pytest.approx(s2u, rel=2e-6)
    assert row["variance_residual"] == pytest.approx(s2e, rel=2e-6)
    # fixed effects and SEs: GLS with the variances the code reports (lme4 convention
    # (X'V^-1X)^-1 sigma2, no cross terms with the variance parameters): rounding only
    beta, cov = gls_by_hand(y[keep], X, groups, row["variance_therapist"], row["variance_residual"])
    assert row["estimate"] == pytest.approx(beta[1], rel=1e-8)
    assert row["se"] == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-8)
    beta_ours, cov_ours = gls_by_hand(y[keep], X, groups, s2u, s2e)
    assert row["estimate"] == pytest.approx(beta_ours[1], rel=1e-6)
    assert row["se"] == pytest.approx(np.sqrt(cov_ours[1, 1]), rel=1e-6)
    # z interval (model-based errors, normal theory)
    assert (row["ci_high"] - row["estimate"]) / row["se"] == pytest.approx(1.959964, rel=1e-6)
    assert row["n_clusters"] == 25
    assert row["n_treated"] + row["n_control"] == keep.sum()


def test_mixed_needs_a_cluster() -> None:
    people, baseline, y = unbalanced_people()
    participants, outcomes = to_tables(people, {"baseline": baseline, "discharge": y})
    frame = build_analysis_frame(participants, outcomes, comparison(cluster=None))
    with pytest.raises(ValueError, match="method mixed needs a cluster"):
        fit_mixed(frame)


# ---------------------------------------------------------------------------------------------
# fit_mixed: clinic and therapist-within-clinic


def balanced_nested(seed: int = 21, reuse_labels: bool = False):
    """6 clinics x 4 therapists x 8 patients; 2 treated therapists in every clinic."""
    a, b, n = 6, 4, 8
    rng = np.random.default_rng(seed)
    clinic = np.repeat([f"c{c}" for c in range(a)], b * n)
    slot = np.tile(np.repeat(np.arange(b), n), a)
    therapist = (
        np.array([f"t{s}" for s in slot])
        if reuse_labels
        else np.array([f"{c}-t{s}" for c, s in zip(clinic, slot, strict=True)])
    )
    treated = slot < 2
    y = (
        5
        - 1.0 * treated
        + np.repeat(rng.normal(0, 2.0, a), b * n)
        + np.repeat(rng.normal(0, 1.4, a * b), n)
        + rng.normal(0, 2.0, a * b * n)
    )
    people = pd.DataFrame(
        {
            "participant_id": [f"p{i:04d}" for i in range(a * b * n)],
            "arm": np.where(treated, "etmi", "usual_care"),
            "age": 50.0,
            "therapist": therapist,
            "site": clinic,
        }
    )
    return people, y


def nested_anova(people: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    a, b, n = 6, 4, 8
    key = people["site"] + "/" + pd.Series(np.tile(np.repeat(np.arange(b), n), a)).astype(str)
    table = pd.DataFrame({"c": people["site"], "k": key, "t": people["arm"] == "etmi", "y": y})
    mse = np.sum((y - table.groupby("k")["y"].transform("mean")) ** 2) / (a * b * (n - 1))
    # therapist stratum: therapist means on clinic indicators + treatment, residual df ab-a-1
    means = table.groupby("k").agg(y=("y", "mean"), c=("c", "first"), t=("t", "first"))
    Z = np.column_stack([pd.get_dummies(means["c"]).to_numpy(float), means["t"].astype(float)])
    coef = np.linalg.lstsq(Z, means["y"].to_numpy(), rcond=None)[0]
    ms_t = n * np.sum((means["y"].to_numpy() - Z @ coef) ** 2) / (a * b - a - 1)
    # clinic stratum: the treatment is balanced within clinics, so clinic means around the mean
    ms_c = b * n * np.sum((table.groupby("c")["y"].mean() - y.mean()) ** 2) / (a - 1)
    return {
        "residual": mse,
        "therapist": (ms_t - mse) / n,
        "site": (ms_c - ms_t) / (b * n),
        "effect": y[table["t"]].mean() - y[~table["t"]].mean(),
        # per clinic: mean of 2 treated minus 2 control therapist means, var s2t + s2e/n;
        # averaged over a clinics: MS_T / (n a)
        "se": np.sqrt(ms_t / (n * a)),
    }


def test_mixed_nested_clinic_therapist_equals_balanced_anova() -> None:
    people, y = balanced_nested()
    expected = nested_anova(people, y)
    assert expected["therapist"] > 0 and expected["site"] > 0

    participants, outcomes = to_tables(people, {"baseline": np.full(len(y), 6.0), "discharge": y})
    frame = build_analysis_frame(participants, outcomes, comparison(clinic="site"))
    frame = dataclasses.replace(frame, data=frame.data.drop(columns=["baseline"]))
    row = fit_mixed(frame).iloc[0]

    assert row["variance_residual"] == pytest.approx(expected["residual"], rel=1e-3)
    assert row["variance_therapist"] == pytest.approx(expected["therapist"], rel=1e-3)
    assert row["variance_site"] == pytest.approx(expected["site"], rel=1e-3)
    assert row["estimate"] == pytest.approx(expected["effect"], rel=1e-6)
    assert row["se"] == pytest.approx(expected["se"], rel=1e-3)
    assert row["n_clusters"] == 24


def test_mixed_nested_rows_in_any_order_give_the_same_fit() -> None:
    # The variance-component matrices are built per clinic in sorted order; shuffled input
    # rows must not change the fit.
    people, y = balanced_nested()
    order = np.random.default_rng(0).permutation(len(y))
    participants, outcomes = to_tables(
        people.iloc[order].reset_index(drop=True),
        {"baseline": np.full(len(y), 6.0), "discharge": y[order]},
    )
    frame = build_analysis_frame(participants, outcomes, comparison(clinic="site"))
    frame = dataclasses.replace(frame, data=frame.data.drop(columns=["baseline"]))
    row = fit_mixed(frame).iloc[0]
    expected = nested_anova(people, y)
    assert row["variance_therapist"] == pytest.approx(expected["therapist"], rel=1e-3)
    assert row["variance_site"] == pytest.approx(expected["site"], rel=1e-3)


def test_mixed_nested_counts_therapists_within_clinics() -> None:
    people, y = balanced_nested(reuse_labels=True)
    participants, outcomes = to_tables(people, {"baseline": np.full(len(y), 6.0), "discharge": y})
    frame = build_analysis_frame(participants, outcomes, comparison(clinic="site"))
    frame = dataclasses.replace(frame, data=frame.data.drop(columns=["baseline"]))
    row = fit_mixed(frame).iloc[0]
    expected = nested_anova(people, y)
    # the variance components are right (indicators are built within each clinic) ...
    assert row["variance_therapist"] == pytest.approx(expected["therapist"], rel=1e-3)
    # ... but the count of therapists is not
    assert row["n_clusters"] == 24


# ---------------------------------------------------------------------------------------------
# fit_repeated_measures

FOLLOW_UPS = ["w6", "w12", "w26"]


def repeated_people(seed: int = 13, n: int = 80):
    rng = np.random.default_rng(seed)
    treated = np.arange(n) % 2 == 0
    baseline = rng.uniform(3, 9, n)
    person = rng.normal(0, 1.0, n)
    values = {"baseline": baseline}
    for k, tp in enumerate(FOLLOW_UPS):
        values[tp] = (
            1
            + 0.3 * k
            + (0.6 - 0.1 * k) * baseline
            - (0.5 + 0.4 * k) * treated
            + person
            + rng.normal(0, 1.2, n)
        )
    people = pd.DataFrame(
        {
            "participant_id": [f"p{i:03d}" for i in range(n)],
            "arm": np.where(treated, "etmi", "usual_care"),
            "age": rng.normal(50, 10, n),
            "therapist": "t1",
            "site": "s1",
        }
    )
    return people, values


def repeated_design(people: pd.DataFrame, values: dict, covariate: bool):
    """Long y, the hand-built design (treated, baseline, [age], time, arm x time, baseline x
    time) and the participant of each row."""
    rows = []
    for k, tp in enumerate(FOLLOW_UPS):
        for i in range(len(people)):
            if not np.isnan(values[tp][i]):
                rows.append((i, k, values[tp][i]))
    person, time, y = (np.array(c) for c in zip(*rows, strict=True))
    treated = (people["arm"].to_numpy() == "etmi")[person].astype(float)
    baseline = values["baseline"][person]
    columns = [np.ones(len(y)), treated, baseline]
    if covariate:
        columns.append(people["age"].to_numpy()[person])
    for k in (1, 2):
        columns += [(time == k) * 1.0, (time == k) * treated, (time == k) * baseline]
    return y, np.column_stack(columns), person, time


def rm_frame(people, values, **overrides):
    participants, outcomes = to_tables(people, values)
    frame = build_analysis_frame(
        participants, outcomes, comparison(timepoint="w26", cluster=None, **overrides)
    )
    return repeated_frame(participants, outcomes, frame), frame


def test_repeated_measures_complete_data_contrasts_equal_per_timepoint_ancova() -> None:
    people, values = repeated_people()
    treated = (people["arm"] == "etmi").to_numpy(float)
    X1 = np.column_stack([np.ones(len(people)), treated, values["baseline"]])
    per_time = {
        tp: np.linalg.lstsq(X1, values[tp], rcond=None)[0][1] for tp in FOLLOW_UPS
    }  # Zellner: identical regressors at every timepoint, so GLS = OLS
    y, X, person, _ = repeated_design(people, values, covariate=False)
    s2u, s2e = reml_by_hand(y, X, person)
    _, cov = gls_by_hand(y, X, person, s2u, s2e)
    weights = {"w6": [1], "w12": [1, 4], "w26": [1, 7]}  # column positions in repeated_design

    long, frame = rm_frame(people, values, methods=["repeated_measures"])
    result = fit_repeated_measures(long, frame)

    assert list(result["term"]) == [f"etmi vs usual_care at {tp}" for tp in FOLLOW_UPS]
    assert list(result["timepoint"]) == FOLLOW_UPS
    for tp in FOLLOW_UPS:
        row = result[result["timepoint"] == tp].iloc[0]
        w = np.zeros(X.shape[1])
        w[weights[tp]] = 1.0
        assert row["estimate"] == pytest.approx(per_time[tp], rel=1e-6)
        assert row["se"] == pytest.approx(np.sqrt(w @ cov @ w), rel=1e-3)
        assert (row["n_treated"], row["n_control"]) == (40, 40)


def test_repeated_measures_with_dropout_and_covariate_equals_hand_reml_gls() -> None:
    people, values = repeated_people(seed=17)
    rng = np.random.default_rng(3)
    # monotone dropout, more likely after a high 6-week value (missing at random)
    values["w12"] = np.where(
        rng.uniform(size=80) < 0.1 + 0.04 * values["w6"], np.nan, values["w12"]
    )
    values["w26"] = np.where(
        np.isnan(values["w12"]) | (rng.uniform(size=80) < 0.15), np.nan, values["w26"]
    )
    y, X, person, time = repeated_design(people, values, covariate=True)
    s2u, s2e = reml_by_hand(y, X, person)
    beta, cov = gls_by_hand(y, X, person, s2u, s2e)
    weights = {"w6": [1], "w12": [1, 5], "w26": [1, 8]}  # after const, treated, baseline, age

    long, frame = rm_frame(people, values, methods=["repeated_measures"], adjust_for=["age"])
    result = fit_repeated_measures(long, frame)

    for k, tp in enumerate(FOLLOW_UPS):
        row = result[result["timepoint"] == tp].iloc[0]
        w = np.zeros(X.shape[1])
        w[weights[tp]] = 1.0
        assert row["estimate"] == pytest.approx(w @ beta, rel=1e-3, abs=1e-4)
        assert row["se"] == pytest.approx(np.sqrt(w @ cov @ w), rel=1e-3)
        at = person[time == k]
        assert row["n_treated"] == int(np.sum(people["arm"].to_numpy()[at] == "etmi"))
        assert row["n_treated"] + row["n_control"] == len(at)
    assert result["converged"].all()
