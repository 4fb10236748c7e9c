"""Per-partition sufficient statistics and the exact solvers that combine them.

Every function here is pure numpy on the arrays of one partition (``*_stats``) or on the sums
over partitions (``solve_*``). Sums of per-partition statistics equal the full-data
statistics exactly (up to floating-point summation order), so the combined estimates equal
the in-memory ones; ``tests/test_scale_suffstats.py`` checks each against statsmodels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

Stats = dict[str, np.ndarray]


def add(parts: list[Stats]) -> Stats:
    """Element-wise sum of per-partition statistics (same keys in every part)."""
    keys = parts[0].keys()
    return {k: np.sum([np.asarray(p[k], dtype=float) for p in parts], axis=0) for k in keys}


def add_by_cluster(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Per-cluster sums across partitions: a cluster may have rows in many partitions."""
    return pd.concat(parts).groupby(level=0, sort=True).sum()


# --- least squares with CR1 errors -------------------------------------------------------------


def ols_stats(X: np.ndarray, y: np.ndarray) -> Stats:
    """``X'X``, ``X'y``, ``y'y`` and ``n`` of one partition."""
    return {"xtx": X.T @ X, "xty": X.T @ y, "yty": np.array(y @ y), "n": np.array(len(y))}


def cluster_scores(X: np.ndarray, e: np.ndarray, cluster: np.ndarray) -> pd.DataFrame:
    """Per-cluster score sums ``X_g' e_g`` of one partition (index: cluster id)."""
    return pd.DataFrame(X * e[:, None]).groupby(cluster, sort=False).sum()


@dataclass(frozen=True)
class LinearFit:
    """OLS coefficients with CR1 cluster-robust covariance (or the classical one)."""

    params: np.ndarray
    cov: np.ndarray
    n: int
    n_clusters: int | None

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))


def solve_ols(stats: Stats) -> np.ndarray:
    """Normal equations ``X'X b = X'y``."""
    return np.linalg.solve(stats["xtx"], stats["xty"])


def solve_cr1(stats: Stats, beta: np.ndarray, scores: pd.DataFrame) -> LinearFit:
    """CR1 sandwich ``c (X'X)^-1 (sum_g u_g u_g') (X'X)^-1`` with ``u_g = X_g' e_g`` and
    ``c = G/(G-1) (N-1)/(N-K)``, statsmodels' ``cov_type="cluster"`` small-sample factor."""
    n, k = int(stats["n"]), len(beta)
    g = len(scores)
    U = scores.to_numpy(dtype=float)
    bread = np.linalg.inv(stats["xtx"])
    factor = g / (g - 1) * (n - 1) / (n - k)
    return LinearFit(beta, factor * bread @ (U.T @ U) @ bread, n, g)


# --- Newton-Raphson for the GLM-type likelihoods -------------------------------------------------


def logistic_stats(X: np.ndarray, t: np.ndarray, beta: np.ndarray) -> Stats:
    """Log-likelihood, gradient and Hessian of the logistic model on one partition."""
    eta = X @ beta
    p = special.expit(eta)
    loglik = np.sum(t * eta - np.logaddexp(0, eta))
    return {"loglik": np.array(loglik), "grad": X.T @ (t - p), "hess": -(X.T * (p * (1 - p))) @ X}


def poisson_stats(X: np.ndarray, y: np.ndarray, beta: np.ndarray) -> Stats:
    """Poisson log-likelihood (without ``log y!``), gradient and Hessian (start for NB2)."""
    eta = X @ beta
    mu = np.exp(eta)
    return {
        "loglik": np.array(np.sum(y * eta - mu)),
        "grad": X.T @ (y - mu),
        "hess": -(X.T * mu) @ X,
    }


def nb2_stats(X: np.ndarray, y: np.ndarray, params: np.ndarray) -> Stats:
    """NB2 log-likelihood, gradient and Hessian in ``(beta, log alpha)`` on one partition.

    ``Var(y) = mu + alpha mu^2``; with ``r = 1/alpha`` the log-likelihood of one count is
    ``lgamma(y + r) - lgamma(r) - lgamma(y + 1) + r log r - (r + y) log(r + mu) + y log mu``
    (statsmodels ``NegativeBinomial(loglike_method="nb2")``). Derivatives analytic.
    """
    beta, log_alpha = params[:-1], params[-1]
    r = np.exp(-log_alpha)
    eta = X @ beta
    mu = np.exp(eta)
    rm = r + mu
    loglik = np.sum(
        special.gammaln(y + r)
        - special.gammaln(r)
        - special.gammaln(y + 1)
        + r * np.log(r)
        - (r + y) * np.log(rm)
        + y * eta
    )
    g_beta = X.T @ (r * (y - mu) / rm)
    d_r = special.digamma(y + r) - special.digamma(r) + np.log(r) + 1 - np.log(rm) - (r + y) / rm
    d_rr = special.polygamma(1, y + r) - special.polygamma(1, r) + 1 / r - 1 / rm - (mu - y) / rm**2
    # d log_alpha = -d log r; d/d(log r) = r d/dr.
    g_la = -np.sum(r * d_r)
    h_bb = -(X.T * (r * mu * (r + y) / rm**2)) @ X
    h_bla = -(X.T @ ((y - mu) * mu / rm**2)) * r
    h_lala = np.sum(r * d_r + r**2 * d_rr)
    k = len(beta)
    hess = np.empty((k + 1, k + 1))
    hess[:k, :k] = h_bb
    hess[:k, k] = hess[k, :k] = h_bla
    hess[k, k] = h_lala
    return {"loglik": np.array(loglik), "grad": np.append(g_beta, g_la), "hess": hess}


@dataclass(frozen=True)
class NewtonFit:
    """Maximum-likelihood estimate with the model-based covariance ``(-H)^-1``."""

    params: np.ndarray
    cov: np.ndarray
    loglik: float
    iterations: int
    converged: bool

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))


def newton(
    evaluate: Callable[[np.ndarray], Stats],
    start: np.ndarray,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> NewtonFit:
    """Newton-Raphson with step halving on summed ``loglik``/``grad``/``hess``.

    ``evaluate(params)`` returns the statistics summed over all partitions (one pass over
    the data per call). Stops when the largest Newton step is below ``tol`` (relative to
    ``max(1, |param|)``); the covariance is evaluated at the final parameters.
    """
    params = np.asarray(start, dtype=float)
    current = evaluate(params)
    for iteration in range(1, max_iter + 1):
        step = np.linalg.solve(current["hess"], -current["grad"])
        size = 1.0
        while True:
            trial = params + size * step
            candidate = evaluate(trial)
            if np.isfinite(candidate["loglik"]) and candidate["loglik"] >= current[
                "loglik"
            ] - 1e-9 * abs(current["loglik"]):
                break
            size /= 2
            if size < 1e-8:
                raise FloatingPointError(
                    "Newton step halving failed: the likelihood does not increase"
                )
        params, current = trial, candidate
        if np.max(np.abs(size * step) / np.maximum(1, np.abs(params))) < tol:
            return NewtonFit(
                params, np.linalg.inv(-current["hess"]), float(current["loglik"]), iteration, True
            )
    return NewtonFit(
        params, np.linalg.inv(-current["hess"]), float(current["loglik"]), max_iter, False
    )


# --- weighted balance -----------------------------------------------------------------------------


def ate_weights(propensity: np.ndarray, t: np.ndarray, treated_share: float) -> np.ndarray:
    """Stabilised ATE weights ``p T / e + (1 - p)(1 - T)/(1 - e)`` (as
    :func:`pipeline.analysis.weighting.compute_weights`, no trimming)."""
    return np.where(t == 1, treated_share / propensity, (1 - treated_share) / (1 - propensity))


def balance_stats(Z: np.ndarray, t: np.ndarray, w: np.ndarray) -> Stats:
    """Per-arm unweighted and weighted first and second moments of the covariates ``Z``."""
    out: Stats = {"nonbinary": ((Z != 0) & (Z != 1)).sum(axis=0)}
    for arm, mask in (("1", t == 1), ("0", t == 0)):
        z, ww = Z[mask], w[mask]
        out |= {
            f"n{arm}": np.array(mask.sum()),
            f"s{arm}": z.sum(axis=0),
            f"ss{arm}": (z**2).sum(axis=0),
            f"w{arm}": np.array(ww.sum()),
            f"ww{arm}": np.array((ww**2).sum()),
            f"ws{arm}": ww @ z,
            f"wss{arm}": ww @ z**2,
        }
    return out


def solve_balance(stats: Stats, terms: list[str]) -> pd.DataFrame:
    """Means, SMDs and variance ratios before and after weighting from summed moments, with the
    conventions of :func:`pipeline.analysis.weighting.balance_table` (pooled unweighted SD,
    ``p(1-p)`` for binary terms, reliability-weighted variances)."""
    res = {}
    for arm in ("1", "0"):
        n, w = stats[f"n{arm}"], stats[f"w{arm}"]
        mean = stats[f"s{arm}"] / n
        var = (stats[f"ss{arm}"] - n * mean**2) / (n - 1)
        wmean = stats[f"ws{arm}"] / w
        wvar = w / (w**2 - stats[f"ww{arm}"]) * (stats[f"wss{arm}"] - w * wmean**2)
        res[arm] = (mean, var, wmean, wvar)
    binary = np.asarray(stats["nonbinary"]) == 0
    (m1, v1, wm1, wv1), (m0, v0, wm0, wv0) = res["1"], res["0"]
    v1 = np.where(binary, m1 * (1 - m1), v1)
    v0 = np.where(binary, m0 * (1 - m0), v0)
    denominator = np.sqrt((v1 + v0) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame(
            {
                "covariate": terms,
                "mean_treated_before": m1,
                "mean_control_before": m0,
                "mean_treated_after": wm1,
                "mean_control_after": wm0,
                "smd_before": (m1 - m0) / denominator,
                "smd_after": (wm1 - wm0) / denominator,
                "variance_ratio_before": np.where(binary, np.nan, v1 / v0),
                "variance_ratio_after": np.where(binary, np.nan, wv1 / wv0),
            }
        )


# --- random-intercept linear mixed model ----------------------------------------------------------


def mixed_cluster_stats(X: np.ndarray, y: np.ndarray, cluster: np.ndarray) -> pd.DataFrame:
    """Per-cluster ``n_g``, ``X_g' 1`` (columns ``s0..``) and ``y_g' 1`` (``t``) of one partition.

    With ``X'X``, ``X'y``, ``y'y`` summed over all rows (:func:`ols_stats`) these are sufficient
    for the random-intercept model: ``V_g^-1 = (I - w_g 1 1') / sigma2`` with
    ``w_g = lambda / (1 + lambda n_g)``, so ``X'V^-1X = (X'X - sum_g w_g s_g s_g') / sigma2``;
    the per-cluster ``X_g'X_g`` are not needed.
    """
    frame = pd.DataFrame(X, columns=[f"s{j}" for j in range(X.shape[1])])
    frame["t"] = y
    frame["n"] = 1.0
    return frame.groupby(cluster, sort=False).sum()


@dataclass(frozen=True)
class MixedFit:
    """Random-intercept REML fit: fixed effects with GLS covariance and the variance components."""

    params: np.ndarray
    cov: np.ndarray
    sigma2: float
    tau2: float
    ratio: float
    reml_deviance: float
    n: int
    n_clusters: int

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))


def _profile(ratio: float, xtx, xty, yty, n, ng, S, T):
    w = ratio / (1 + ratio * ng)
    A = xtx - (S.T * w) @ S
    b = xty - S.T @ (w * T)
    c = yty - np.sum(w * T**2)
    beta = np.linalg.solve(A, b)
    p = len(beta)
    rss = c - b @ beta
    sigma2 = rss / (n - p)
    _, logdet = np.linalg.slogdet(A)
    deviance = (n - p) * np.log(sigma2) + np.sum(np.log1p(ratio * ng)) + logdet
    return deviance, beta, sigma2, A


def _profile_slope(ratio: float, xtx, xty, yty, n, ng, S, T) -> float:
    """d(-2 l_R)/d lambda in closed form: with ``w_g' = 1/(1 + lambda n_g)^2``,
    ``d rss = -sum_g w_g' (t_g - s_g'beta)^2`` and ``d log|A| = -sum_g w_g' s_g'A^-1 s_g``."""
    _, beta, sigma2, A = _profile(ratio, xtx, xty, yty, n, ng, S, T)
    dw = 1 / (1 + ratio * ng) ** 2
    p = len(beta)
    d_rss = -np.sum(dw * (T - S @ beta) ** 2)
    d_logdet = -np.sum(dw * np.einsum("gi,ij,gj->g", S, np.linalg.inv(A), S))
    return float(d_rss / sigma2 + np.sum(ng / (1 + ratio * ng)) + d_logdet) if p else 0.0


def solve_random_intercept(
    stats: Stats, clusters: pd.DataFrame, max_log_ratio: float = 12.0
) -> MixedFit:
    """Profiled REML over ``lambda = tau2 / sigma2`` (bounded Brent on ``log lambda``), GLS SEs.

    ``-2 l_R = (N - p) log sigma2(lambda) + sum_g log(1 + lambda n_g) + log|A(lambda)|`` up to a
    constant, ``sigma2(lambda) = r'V^-1 r / (N - p)`` (Harville 1977; lme4's profiled
    criterion, Bates et al. 2015, J Stat Softw 67(1), eq. 42). A boundary fit (``lambda``
    below ``exp(-30)``) is reported as ``tau2 = 0``. Checked against the balanced one-way
    ANOVA estimators and statsmodels ``MixedLM`` (tests/test_scale_suffstats.py).
    """
    k = stats["xtx"].shape[0]
    S = clusters[[f"s{j}" for j in range(k)]].to_numpy(dtype=float)
    T = clusters["t"].to_numpy(dtype=float)
    ng = clusters["n"].to_numpy(dtype=float)
    args = (stats["xtx"], stats["xty"], float(stats["yty"]), float(stats["n"]), ng, S, T)
    result = optimize.minimize_scalar(
        lambda lr: _profile(np.exp(lr), *args)[0],
        bounds=(-30.0, max_log_ratio),
        method="bounded",
        options={"xatol": 1e-11, "maxiter": 500},
    )
    ratio = float(np.exp(result.x))
    # Brent's bounded search stops at ~sqrt(eps) relative; polish on the analytic slope.
    low, high = ratio * (1 - 1e-4), ratio * (1 + 1e-4)
    if _profile_slope(low, *args) < 0 < _profile_slope(high, *args):
        ratio = optimize.brentq(_profile_slope, low, high, args=args, xtol=1e-300, rtol=1e-15)
    deviance, beta, sigma2, A = _profile(ratio, *args)
    zero = _profile(0.0, *args)
    if zero[0] <= deviance:
        ratio, (deviance, beta, sigma2, A) = 0.0, zero
    return MixedFit(
        beta,
        sigma2 * np.linalg.inv(A),
        float(sigma2),
        float(ratio * sigma2),
        ratio,
        float(deviance),
        int(stats["n"]),
        len(ng),
    )
