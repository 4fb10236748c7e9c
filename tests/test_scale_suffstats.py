"""Per-partition sufficient statistics combined across partitions equal the full-data fits.

References: statsmodels OLS (cov_type="cluster"), NegativeBinomial (nb2), MixedLM (REML), and
the closed-form ANOVA estimators of a balanced one-way random-effects design (Searle, Casella
& McCulloch 1992, Variance Components, section 3.5), which REML equals when they are positive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from pipeline.errors import ConfigError
from pipeline.scale import suffstats as ss
from pipeline.scale.partitioned import read_meta


def _data(n=3000, g=40, seed=1):
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, g, n)
    X = np.column_stack([np.ones(n), rng.integers(0, 2, n), rng.normal(50, 10, n)])
    y = X @ [1.0, 2.0, 0.3] + rng.normal(0, 2, g)[cluster] + rng.normal(0, 3, n)
    counts = rng.negative_binomial(2, 2 / (2 + np.exp(X @ [0.5, -0.4, 0.01])))
    parts = np.array_split(rng.permutation(n), 5)  # clusters span the five partitions
    return X, y, counts.astype(float), cluster, parts


def test_cr1_over_partitions_equals_statsmodels_cluster():
    X, y, _, cluster, parts = _data()
    moments = ss.add([ss.ols_stats(X[p], y[p]) for p in parts])
    beta = ss.solve_ols(moments)
    scores = ss.add_by_cluster(
        [ss.cluster_scores(X[p], y[p] - X[p] @ beta, cluster[p]) for p in parts]
    )
    fit = ss.solve_cr1(moments, beta, scores)
    ref = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": cluster})
    np.testing.assert_allclose(fit.params, ref.params, rtol=1e-10)
    np.testing.assert_allclose(fit.se, ref.bse, rtol=1e-10)
    assert fit.n_clusters == 40


def test_nb2_newton_over_partitions_equals_statsmodels():
    X, _, counts, _, parts = _data()

    def evaluate(p):
        return ss.add([ss.nb2_stats(X[i], counts[i], p) for i in parts])

    fit = ss.newton(evaluate, np.array([np.log(counts.mean()), 0, 0, np.log(0.5)]))
    ref = sm.NegativeBinomial(counts, X, loglike_method="nb2").fit(
        method="newton", disp=0, maxiter=200
    )
    np.testing.assert_allclose(fit.params[:-1], ref.params[:-1], rtol=1e-8)
    np.testing.assert_allclose(np.exp(fit.params[-1]), ref.params[-1], rtol=1e-8)
    np.testing.assert_allclose(fit.se[:-1], ref.bse[:-1], rtol=1e-7)
    np.testing.assert_allclose(fit.loglik, ref.llf, rtol=1e-12)


def test_nb2_analytic_derivatives_match_finite_differences():
    X, _, counts, _, _ = _data(n=400)
    p0 = np.array([0.4, -0.3, 0.01, np.log(0.7)])
    h = 1e-6
    at = ss.nb2_stats(X, counts, p0)
    grad = [
        (
            ss.nb2_stats(X, counts, p0 + h * e)["loglik"]
            - ss.nb2_stats(X, counts, p0 - h * e)["loglik"]
        )
        / (2 * h)
        for e in np.eye(4)
    ]
    hess = np.array(
        [
            (
                ss.nb2_stats(X, counts, p0 + h * e)["grad"]
                - ss.nb2_stats(X, counts, p0 - h * e)["grad"]
            )
            / (2 * h)
            for e in np.eye(4)
        ]
    )
    np.testing.assert_allclose(at["grad"], grad, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(at["hess"], hess, rtol=1e-5, atol=1e-3)


def test_logistic_newton_equals_statsmodels_logit():
    X, _, _, _, parts = _data()
    rng = np.random.default_rng(3)
    t = (rng.random(len(X)) < 1 / (1 + np.exp(-(X[:, 2] - 50) / 10))).astype(float)
    Z = X[:, [0, 2]]
    fit = ss.newton(
        lambda b: ss.add([ss.logistic_stats(Z[i], t[i], b) for i in parts]), np.zeros(2)
    )
    ref = sm.Logit(t, Z).fit(method="newton", disp=0)
    np.testing.assert_allclose(fit.params, ref.params, rtol=1e-9)
    np.testing.assert_allclose(fit.se, ref.bse, rtol=1e-8)


def test_random_intercept_balanced_equals_anova_closed_form():
    rng = np.random.default_rng(7)
    g, m = 30, 8
    cluster = np.repeat(np.arange(g), m)
    y = 10 + rng.normal(0, 2, g)[cluster] + rng.normal(0, 3, g * m)
    X = np.ones((g * m, 1))
    parts = np.array_split(rng.permutation(g * m), 4)
    moments = ss.add([ss.ols_stats(X[p], y[p]) for p in parts])
    stats = ss.add_by_cluster([ss.mixed_cluster_stats(X[p], y[p], cluster[p]) for p in parts])
    fit = ss.solve_random_intercept(moments, stats)
    means = pd.Series(y).groupby(cluster).mean().to_numpy()
    msw = ((y - means[cluster]) ** 2).sum() / (g * (m - 1))
    msb = m * ((means - y.mean()) ** 2).sum() / (g - 1)
    assert msb > msw
    np.testing.assert_allclose(fit.sigma2, msw, rtol=1e-8)
    np.testing.assert_allclose(fit.tau2, (msb - msw) / m, rtol=1e-8)
    np.testing.assert_allclose(fit.params[0], y.mean(), rtol=1e-12)
    # GLS SE of the mean in a balanced design: sqrt(MSB / (g m)).
    np.testing.assert_allclose(fit.se[0], np.sqrt(msb / (g * m)), rtol=1e-8)


def test_random_intercept_unbalanced_matches_mixedlm():
    X, y, _, cluster, parts = _data()
    moments = ss.add([ss.ols_stats(X[p], y[p]) for p in parts])
    stats = ss.add_by_cluster([ss.mixed_cluster_stats(X[p], y[p], cluster[p]) for p in parts])
    fit = ss.solve_random_intercept(moments, stats)
    ref = sm.MixedLM(y, X, groups=cluster).fit(reml=True)
    # MixedLM's own optimiser stops at a gradient tolerance: agreement to ~1e-6, not 1e-12.
    np.testing.assert_allclose(fit.params, ref.fe_params, rtol=1e-6)
    # GLS (lme4-convention) SEs at MixedLM's variance estimates, from dense V_g per cluster.
    tau2, sigma2 = float(np.asarray(ref.cov_re)[0, 0]), float(ref.scale)
    info = sum(
        X[cluster == c].T
        @ np.linalg.inv(sigma2 * np.eye((cluster == c).sum()) + tau2)
        @ X[cluster == c]
        for c in np.unique(cluster)
    )
    np.testing.assert_allclose(fit.se, np.sqrt(np.diag(np.linalg.inv(info))), rtol=1e-5)
    # MixedLM's bse_fe come from the joint Hessian (variance parameters included): close only.
    np.testing.assert_allclose(fit.se, ref.bse_fe, rtol=1e-4)
    np.testing.assert_allclose(fit.sigma2, ref.scale, rtol=1e-5)
    np.testing.assert_allclose(fit.tau2, float(np.asarray(ref.cov_re)[0, 0]), rtol=1e-4)


def test_not_partitioned_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"scale_meta.json: not a partitioned study"):
        read_meta(tmp_path)
