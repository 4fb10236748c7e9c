"""Tests for pipeline.analysis.counts (Poisson and negative binomial rate ratios for sessions).

Independent reference values:

* Poisson with arm as the only term: the fitted means are the arm means, so the rate ratio is
  mean_t / mean_c exactly. The HC0 sandwich of the log rate ratio in closed form: with
  S_a = sum over arm a of y and R_a = sum over arm a of (y - mean_a)^2, the bread row of the
  arm coefficient is (-S_t, S_t + S_c) / (S_t S_c) and the meat is [[R, R_t], [R_t, R_t]],
  which multiply out to Var(log RR) = R_t / S_t^2 + R_c / S_c^2.
* Poisson with a covariate: the log-likelihood maximised directly with scipy (BFGS), HC0 and
  CR1 sandwiches coded with numpy.
* Negative binomial (NB2): the log-likelihood written with ``scipy.special.gammaln`` and
  maximised by Newton in beta profiled over alpha with a grid + bounded Brent (a different
  algorithm from statsmodels' joint Newton, and free of iteration caps). With
  arm as the only term the fitted means are again the arm means (the score of each arm's
  log-mean is sum (y - mu) / (1 + alpha mu) = 0), so the observed-information SE of the log
  rate ratio is sqrt((1 + alpha m_t) / (n_t m_t) + (1 + alpha m_c) / (n_c m_c)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

from pipeline.analysis.counts import fit_negative_binomial, fit_poisson
from pipeline.analysis.frame import build_analysis_frame
from pipeline.analysis.spec import ComparisonSpec

Z_975 = 1.959963984540054  # standard normal 97.5% quantile (tables: 1.95996)


def simulate(seed: int = 4, n: int = 120) -> pd.DataFrame:
    """Overdispersed session counts (NB2, alpha 0.4) with an age effect and therapists."""
    rng = np.random.default_rng(seed)
    arm = np.where(np.arange(n) % 2 == 0, "etmi", "usual_care")
    age = rng.normal(0, 1, n)
    mu = np.exp(np.log(8) - 0.25 * (arm == "etmi") + 0.15 * age)
    sessions = rng.negative_binomial(1 / 0.4, 1 / (1 + 0.4 * mu)).astype(float)
    sessions[[4, 9, 50]] = np.nan  # not recorded
    return pd.DataFrame(
        {
            "participant_id": [f"p{i:03d}" for i in range(n)],
            "arm": arm,
            "age": age,
            "therapist": [f"t{i % 12}" for i in range(n)],
            "sessions": sessions,
        }
    )


def make_frame(people: pd.DataFrame, **overrides):
    participants = pd.DataFrame(
        {
            "participant_id": pd.array(people["participant_id"], dtype="string[pyarrow]"),
            "arm": pd.Categorical(people["arm"], categories=["etmi", "usual_care"]),
            "age": people["age"].to_numpy(),
            "therapist": pd.Categorical(people["therapist"]),
            "site": pd.Categorical(["s1"] * len(people)),
            "sessions": people["sessions"].to_numpy(),
        }
    )
    outcomes = pd.DataFrame(
        {
            "participant_id": participants["participant_id"],
            "outcome": "pain",
            "domain": "pain",
            "instrument": "nprs",
            "timepoint": pd.Categorical(["baseline"] * len(people), categories=["baseline"]),
            "days": 0,
            "raw_value": 5.0,
            "value": 5.0,
        }
    )
    values = {
        "id": "sessions",
        "outcome": "sessions",
        "treatment": "etmi",
        "control": "usual_care",
        "methods": ["poisson", "negative_binomial"],
    }
    return build_analysis_frame(participants, outcomes, ComparisonSpec(**(values | overrides)))


def arms(people: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    kept = people.dropna(subset=["sessions"])
    return (
        kept.loc[kept["arm"] == "etmi", "sessions"].to_numpy(),
        kept.loc[kept["arm"] == "usual_care", "sessions"].to_numpy(),
    )


# ---------------------------------------------------------------------------------------------
# Poisson


def test_poisson_arm_only_rate_ratio_is_ratio_of_means_with_closed_form_hc0() -> None:
    people = simulate()
    y_t, y_c = arms(people)
    log_rr = np.log(y_t.mean() / y_c.mean())
    se = np.sqrt(
        np.sum((y_t - y_t.mean()) ** 2) / y_t.sum() ** 2
        + np.sum((y_c - y_c.mean()) ** 2) / y_c.sum() ** 2
    )  # closed form derived in the module docstring

    row = fit_poisson(make_frame(people)).iloc[0]

    assert row["estimate"] == pytest.approx(y_t.mean() / y_c.mean(), rel=1e-8)
    assert row["se"] == pytest.approx(se, rel=1e-6)
    assert row["ci_low"] == pytest.approx(np.exp(log_rr - Z_975 * se), rel=1e-6)
    assert row["ci_high"] == pytest.approx(np.exp(log_rr + Z_975 * se), rel=1e-6)
    assert row["p_value"] == pytest.approx(2 * stats.norm.sf(abs(log_rr) / se), rel=1e-5)
    assert (row["n_treated"], row["n_control"]) == (len(y_t), len(y_c))
    assert row["mean_treated"] == pytest.approx(y_t.mean())
    assert row["mean_control"] == pytest.approx(y_c.mean())
    assert row["effect_measure"] == "rate_ratio" and row["method"] == "poisson"


def _poisson_mle(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    def negloglik(b):
        eta = X @ b
        return float(np.sum(np.exp(eta) - y * eta))

    result = optimize.minimize(
        negloglik,
        np.r_[np.log(y.mean()), np.zeros(X.shape[1] - 1)],
        jac=lambda b: X.T @ (np.exp(X @ b) - y),
        method="BFGS",
        options={"gtol": 1e-11},
    )
    return result.x


def test_poisson_with_covariate_and_clusters_equals_direct_mle_and_hand_cr1() -> None:
    people = simulate()
    kept = people.dropna(subset=["sessions"])
    y = kept["sessions"].to_numpy()
    X = np.column_stack([np.ones(len(y)), kept["arm"] == "etmi", kept["age"]]).astype(float)
    beta = _poisson_mle(y, X)
    mu = np.exp(X @ beta)
    bread = np.linalg.inv((X * mu[:, None]).T @ X)
    groups = kept["therapist"].to_numpy()
    labels = np.unique(groups)
    meat = np.zeros((3, 3))
    for g in labels:
        score = X[groups == g].T @ (y - mu)[groups == g]
        meat += np.outer(score, score)
    G, N = len(labels), len(y)
    cov = G / (G - 1) * (N - 1) / (N - 3) * bread @ meat @ bread  # CR1

    row = fit_poisson(make_frame(people, adjust_for=["age"], cluster="therapist")).iloc[0]

    assert row["estimate"] == pytest.approx(np.exp(beta[1]), rel=1e-6)
    assert row["se"] == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-5)
    assert row["n_clusters"] == 12
    assert "CR1 cluster-robust errors by therapist" in row["model"]


# ---------------------------------------------------------------------------------------------
# Negative binomial


def nb2_negative_loglik(theta: np.ndarray, y: np.ndarray, X: np.ndarray) -> float:
    """-log L of NB2: Var = mu + alpha mu^2, theta = (beta..., log alpha)."""
    beta, alpha = theta[:-1], np.exp(theta[-1])
    mu = np.exp(X @ beta)
    r = 1 / alpha
    loglik = (
        special.gammaln(y + r)
        - special.gammaln(r)
        - special.gammaln(y + 1)
        + r * np.log(r / (r + mu))
        + y * np.log(mu / (r + mu))
    )
    return -float(np.sum(loglik))


def _nb2_beta(y: np.ndarray, X: np.ndarray, alpha: float) -> np.ndarray:
    """NB2 coefficients for a fixed alpha by Newton's method with step halving.

    For fixed alpha, -log L is strictly convex in beta (its Hessian is
    X' diag((y + r) r mu / (r + mu)^2) X, r = 1/alpha), so Newton converges quadratically from
    the Poisson-like start; the loop stops on a step below 1e-12, not on an iteration count.
    """
    r = 1 / alpha
    beta = np.r_[np.log(y.mean()), np.zeros(X.shape[1] - 1)]
    for _ in range(200):
        mu = np.exp(X @ beta)
        gradient = X.T @ ((y + r) * mu / (r + mu) - y)
        hessian = (X * ((y + r) * r * mu / (r + mu) ** 2)[:, None]).T @ X
        step = np.linalg.solve(hessian, gradient)
        theta = np.r_[beta, np.log(alpha)]
        while nb2_negative_loglik(np.r_[beta - step, np.log(alpha)], y, X) > (
            nb2_negative_loglik(theta, y, X) + 1e-12
        ):
            step = step / 2
        beta = beta - step
        if np.max(np.abs(step)) < 1e-12:
            return beta
    raise AssertionError("Newton did not converge")  # pragma: no cover


def nb2_mle(y: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, float]:
    """NB2 maximum likelihood, profiled over alpha.

    beta(alpha) by Newton (above); the profile -log L over log(alpha) is minimised by a fixed
    grid (the bracket) and bounded Brent to 1e-10 within the grid cell holding the minimum:
    no starting value or iteration cap that could stop early on another CPU (a 3-D
    Nelder-Mead with a maxiter could).
    """

    def profile(log_alpha: float) -> float:
        alpha = float(np.exp(log_alpha))
        return nb2_negative_loglik(np.r_[_nb2_beta(y, X, alpha), log_alpha], y, X)

    grid = np.arange(-8.0, 4.0 + 1e-9, 0.25)
    values = np.array([profile(g) for g in grid])
    best = int(np.argmin(values))
    assert 0 < best < len(grid) - 1, "NB2 alpha at the edge of the grid"
    result = optimize.minimize_scalar(
        profile,
        bounds=(grid[best - 1], grid[best + 1]),
        method="bounded",
        options={"xatol": 1e-10, "maxiter": 1000},
    )
    assert result.success
    alpha = float(np.exp(result.x))
    return _nb2_beta(y, X, alpha), alpha


def test_negative_binomial_arm_only_equals_direct_nb2_maximisation() -> None:
    people = simulate()
    y_t, y_c = arms(people)
    y = np.r_[y_t, y_c]
    X = np.column_stack([np.ones(len(y)), np.r_[np.ones(len(y_t)), np.zeros(len(y_c))]])
    beta, alpha = nb2_mle(y, X)
    # closed form of the module docstring, at the arm means and our alpha
    m_t, m_c = y_t.mean(), y_c.mean()
    se = np.sqrt((1 + alpha * m_t) / (len(y_t) * m_t) + (1 + alpha * m_c) / (len(y_c) * m_c))

    row = fit_negative_binomial(make_frame(people)).iloc[0]

    assert row["estimate"] == pytest.approx(np.exp(beta[1]), rel=1e-4)
    assert row["estimate"] == pytest.approx(m_t / m_c, rel=1e-6)  # means are the arm means
    assert row["dispersion_alpha"] == pytest.approx(alpha, rel=1e-4)
    assert row["se"] == pytest.approx(se, rel=1e-4)
    assert row["ci_low"] == pytest.approx(np.exp(np.log(m_t / m_c) - Z_975 * se), rel=1e-4)
    assert (row["n_treated"], row["n_control"]) == (len(y_t), len(y_c))
    assert row["converged"]


def test_negative_binomial_with_covariate_equals_direct_nb2_maximisation() -> None:
    people = simulate(seed=9)
    kept = people.dropna(subset=["sessions"])
    y = kept["sessions"].to_numpy()
    X = np.column_stack([np.ones(len(y)), kept["arm"] == "etmi", kept["age"]]).astype(float)
    beta, alpha = nb2_mle(y, X)
    # SE: inverse of the Hessian of our -log L by central differences (beta block does not
    # depend on how alpha is parametrised at the maximum)
    theta = np.r_[beta, np.log(alpha)]
    h = 1e-4
    k = len(theta)
    H = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            e_i, e_j = np.eye(k)[i] * h, np.eye(k)[j] * h
            H[i, j] = (
                nb2_negative_loglik(theta + e_i + e_j, y, X)
                - nb2_negative_loglik(theta + e_i - e_j, y, X)
                - nb2_negative_loglik(theta - e_i + e_j, y, X)
                + nb2_negative_loglik(theta - e_i - e_j, y, X)
            ) / (4 * h * h)
    se = np.sqrt(np.linalg.inv(H)[1, 1])

    row = fit_negative_binomial(make_frame(people, adjust_for=["age"])).iloc[0]

    assert row["estimate"] == pytest.approx(np.exp(beta[1]), rel=1e-4)
    assert row["dispersion_alpha"] == pytest.approx(alpha, rel=1e-4)
    assert row["se"] == pytest.approx(se, rel=1e-3)


def test_count_fits_leave_the_frame_unchanged() -> None:
    frame = make_frame(simulate(), adjust_for=["age"], cluster="therapist")
    before = frame.data.copy(deep=True)
    fit_poisson(frame)
    fit_negative_binomial(frame)
    pd.testing.assert_frame_equal(frame.data, before)
