"""Tests for pipeline.analysis.models (the statsmodels adapter).

Independent reference values:

* point estimates: ``numpy.linalg.lstsq`` (OLS) and a direct maximisation of the Poisson
  log-likelihood with ``scipy.optimize.minimize`` (GLM);
* HC3, HC0 and CR1 covariance matrices: sandwiches coded here with numpy from their textbook
  definitions (MacKinnon & White 1985 for HC3; Cameron & Miller, J Hum Resour 2015;50:317-372,
  eq. 11 and section VI.B for CR1 with the G/(G-1) x (N-1)/(N-K) factor and t on G-1 df);
* t and normal quantiles: printed table values (e.g. t_{0.975, 10} = 2.228139).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize

from pipeline.analysis.models import Fit, capture, design, fit_glm, fit_ols

Z_975 = 1.959963984540054  # standard normal 97.5% quantile (tables: 1.95996)
T_975_DF10 = 2.228138851986274  # t quantile, 10 df (tables: 2.2281)
T_975_DF7 = 2.364624251592785  # t quantile, 7 df (tables: 2.3646)


def _regression_data(n: int = 40, seed: int = 1) -> tuple[pd.Series, pd.DataFrame, pd.Series]:
    """y, a design with an intercept and three regressors, and 8 clusters of unequal size."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "const": 1.0,
            "treated": rng.integers(0, 2, n).astype(float),
            "baseline": rng.normal(6, 2, n),
            "age": rng.normal(45, 12, n),
        }
    )
    cluster = pd.Series(
        np.repeat([f"t{g}" for g in range(8)], [2, 3, 4, 5, 5, 6, 7, 8]), name="cluster"
    )
    effect = cluster.map({f"t{g}": rng.normal(0, 1) for g in range(8)}).to_numpy()
    # heteroscedastic errors so HC3 differs visibly from the classical covariance
    noise = rng.normal(0, 1, n) * (0.5 + X["baseline"].abs() / 4)
    y = pd.Series(
        2 - 1.5 * X["treated"] + 0.6 * X["baseline"] + 0.02 * X["age"] + effect + noise, name="y"
    )
    return y, X, cluster


def _hc3_by_hand(y: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS by lstsq and the HC3 sandwich (X'X)^-1 X' diag(u_i^2 / (1 - h_ii)^2) X (X'X)^-1."""
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    u = y - X @ beta
    bread = np.linalg.inv(X.T @ X)
    h = np.einsum("ij,jk,ik->i", X, bread, X)
    meat = (X * (u / (1 - h))[:, None] ** 2).T @ X
    return beta, bread @ meat @ bread


def _cr1_by_hand(X: np.ndarray, u: np.ndarray, bread: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """CR1: G/(G-1) (N-1)/(N-K) bread (sum_g X_g' u_g u_g' X_g) bread."""
    n, k = X.shape
    labels = np.unique(groups)
    g = len(labels)
    meat = np.zeros((k, k))
    for label in labels:
        score = X[groups == label].T @ u[groups == label]
        meat += np.outer(score, score)
    return g / (g - 1) * (n - 1) / (n - k) * bread @ meat @ bread


def test_fit_ols_coefficients_equal_lstsq_and_hc3_equals_hand_sandwich() -> None:
    y, X, _ = _regression_data()
    beta, cov = _hc3_by_hand(y.to_numpy(), X.to_numpy())

    fit = fit_ols(y, X)

    np.testing.assert_allclose(fit.params.to_numpy(), beta, rtol=1e-10)
    np.testing.assert_allclose(fit.cov.to_numpy(), cov, rtol=1e-8)
    assert list(fit.params.index) == list(X.columns)
    assert fit.df == len(y) - X.shape[1]  # residual df for the t intervals
    assert fit.n == len(y) and fit.n_clusters is None and fit.converged


def test_fit_ols_cluster_errors_equal_hand_cr1_with_t_on_g_minus_1_df() -> None:
    y, X, cluster = _regression_data()
    Xn, yn = X.to_numpy(), y.to_numpy()
    beta = np.linalg.lstsq(Xn, yn, rcond=None)[0]
    cov = _cr1_by_hand(Xn, yn - Xn @ beta, np.linalg.inv(Xn.T @ Xn), cluster.to_numpy())

    fit = fit_ols(y, X, cluster)

    np.testing.assert_allclose(fit.params.to_numpy(), beta, rtol=1e-10)
    np.testing.assert_allclose(fit.cov.to_numpy(), cov, rtol=1e-8)
    assert fit.n_clusters == 8
    assert fit.df == 7
    row = fit.estimate("treated", 0.05)
    # CI half-width / SE is the t quantile on G - 1 = 7 df (table value 2.3646)
    assert (row["ci_high"] - row["estimate"]) / row["se"] == pytest.approx(T_975_DF7, rel=1e-9)
    assert row["se"] == pytest.approx(math.sqrt(cov[1, 1]), rel=1e-8)


def test_fit_ols_cluster_labels_of_any_type_give_the_same_result() -> None:
    # Clusters are only labels: integers, strings or categoricals must give the same sandwich.
    y, X, cluster = _regression_data()
    as_text = fit_ols(y, X, cluster)
    as_codes = fit_ols(y, X, pd.Series(pd.factorize(cluster)[0] * 7 + 3))
    as_category = fit_ols(y, X, cluster.astype("category"))
    np.testing.assert_allclose(as_codes.cov.to_numpy(), as_text.cov.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(as_category.cov.to_numpy(), as_text.cov.to_numpy(), rtol=1e-12)


def test_contrast_by_hand_with_t_and_normal_quantiles() -> None:
    # A hand-made fit: estimate = w'b, SE = sqrt(w'Vw); quantiles from printed tables.
    names = pd.Index(["const", "a", "b"])
    params = pd.Series([1.0, 2.0, -0.5], index=names)
    cov = pd.DataFrame(
        [[0.5, 0.1, 0.0], [0.1, 0.4, 0.05], [0.0, 0.05, 0.3]], index=names, columns=names
    )
    weights = pd.Series({"a": 1.0, "b": 2.0})
    estimate = 2.0 + 2 * -0.5  # 1.0
    se = math.sqrt(0.4 + 4 * 0.3 + 2 * 2 * 0.05)  # sqrt(1.8)

    t_fit = Fit(params, cov, 10.0, 20, None, True, "", None)
    row = t_fit.contrast(weights, 0.05)
    assert row["estimate"] == pytest.approx(estimate, abs=1e-12)
    assert row["se"] == pytest.approx(se, rel=1e-12)
    assert row["ci_low"] == pytest.approx(estimate - T_975_DF10 * se, rel=1e-9)
    assert row["ci_high"] == pytest.approx(estimate + T_975_DF10 * se, rel=1e-9)

    z_fit = Fit(params, cov, np.inf, 20, None, True, "", None)
    row = z_fit.contrast(weights, 0.05)
    assert row["ci_high"] == pytest.approx(estimate + Z_975 * se, rel=1e-9)

    def one_term(value: float, df: float) -> Fit:
        return Fit(
            pd.Series({"a": value}), pd.DataFrame({"a": {"a": 1.0}}), df, 12, None, True, "", None
        )

    # a statistic of exactly z_0.975 has two-sided p = 0.05; likewise t_{0.975, 10} on 10 df
    assert one_term(Z_975, np.inf).estimate("a", 0.05)["p_value"] == pytest.approx(0.05, rel=1e-9)
    assert one_term(T_975_DF10, 10.0).estimate("a", 0.05)["p_value"] == pytest.approx(
        0.05, rel=1e-9
    )


def test_design_puts_intercept_first_and_drops_constant_columns() -> None:
    data = pd.DataFrame(
        {"treated": [1, 0, 1, 0], "baseline": [5.0, 5.0, 5.0, 5.0], "age": [1, 2, 3, 4]}
    )
    X = design(data, ["treated", "baseline", "age"])
    assert list(X.columns) == ["const", "treated", "age"]  # baseline is constant: dropped
    assert (X["const"] == 1.0).all() and X.dtypes.eq(float).all()
    assert list(design(data, ["treated", "age"], intercept=False).columns) == ["treated", "age"]


def _poisson_mle(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Poisson MLE by BFGS on the negative log-likelihood sum(exp(Xb) - y Xb) (not IRLS)."""

    def negloglik(b):
        eta = X @ b
        return float(np.sum(np.exp(eta) - y * eta))

    def gradient(b):
        return X.T @ (np.exp(X @ b) - y)

    start = np.zeros(X.shape[1])
    start[0] = math.log(y.mean())
    result = optimize.minimize(
        negloglik, start, jac=gradient, method="BFGS", options={"gtol": 1e-12}
    )
    return result.x


def _count_data(seed: int = 3) -> tuple[pd.Series, pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    n = 60
    X = pd.DataFrame(
        {"const": 1.0, "treated": np.tile([1.0, 0.0], n // 2), "age": rng.normal(0, 1, n)}
    )
    mu = np.exp(1.5 - 0.3 * X["treated"] + 0.2 * X["age"])
    y = pd.Series(rng.negative_binomial(3, 3 / (3 + mu)).astype(float))
    cluster = pd.Series(np.repeat(np.arange(10), 6))
    return y, X, cluster


def test_fit_glm_poisson_hc0_equals_hand_sandwich_and_direct_mle() -> None:
    y, X, _ = _count_data()
    Xn, yn = X.to_numpy(), y.to_numpy()
    beta = _poisson_mle(yn, Xn)
    mu = np.exp(Xn @ beta)
    bread = np.linalg.inv((Xn * mu[:, None]).T @ Xn)  # (X' diag(mu) X)^-1
    meat = (Xn * ((yn - mu) ** 2)[:, None]).T @ Xn  # sum_i x_i x_i' (y_i - mu_i)^2
    cov = bread @ meat @ bread  # HC0: no small-sample factor

    fit = fit_glm(y, X, sm.families.Poisson())

    np.testing.assert_allclose(fit.params.to_numpy(), beta, rtol=1e-6)
    np.testing.assert_allclose(fit.cov.to_numpy(), cov, rtol=1e-5)
    assert np.isinf(fit.df) and fit.n_clusters is None  # normal-theory intervals
    row = fit.estimate("treated", 0.05)
    assert (row["ci_high"] - row["estimate"]) / row["se"] == pytest.approx(Z_975, rel=1e-9)


def test_fit_glm_poisson_cluster_errors_equal_hand_cr1() -> None:
    y, X, cluster = _count_data()
    Xn, yn = X.to_numpy(), y.to_numpy()
    beta = _poisson_mle(yn, Xn)
    mu = np.exp(Xn @ beta)
    bread = np.linalg.inv((Xn * mu[:, None]).T @ Xn)
    cov = _cr1_by_hand(Xn, yn - mu, bread, cluster.to_numpy())  # score of obs i: x_i (y_i - mu_i)

    fit = fit_glm(y, X, sm.families.Poisson(), cluster)

    np.testing.assert_allclose(fit.cov.to_numpy(), cov, rtol=1e-5)
    assert fit.n_clusters == 10


def test_capture_returns_warnings_as_text_and_converged_from_the_result() -> None:
    import warnings

    class Result:
        converged = False

    def noisy():
        warnings.warn("step halving failed", RuntimeWarning, stacklevel=1)
        warnings.warn("step halving failed", RuntimeWarning, stacklevel=1)  # repeated: once
        return Result()

    result, converged, text = capture(noisy)
    assert isinstance(result, Result)
    assert converged is False  # the optimiser's own verdict
    assert text == "RuntimeWarning: step halving failed"

    def warns_convergence():
        from statsmodels.tools.sm_exceptions import ConvergenceWarning

        warnings.warn("did not converge", ConvergenceWarning, stacklevel=1)
        return object()  # no converged attribute: decided from the warnings

    _, converged, text = capture(warns_convergence)
    assert converged is False and "ConvergenceWarning: did not converge" in text
    _, converged, text = capture(lambda: object())
    assert converged is True and text == ""
