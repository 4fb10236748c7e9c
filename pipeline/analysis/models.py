"""Adapter for statsmodels: fitting on plain arrays, robust errors, warnings captured as data.

Every model in the package goes through here, so statsmodels' quirks live in one place:
design matrices come from named numeric columns (never formula strings), cluster-robust
errors use statsmodels' CR1 (G/(G-1) x (N-1)/(N-K)) with t on G-1 degrees of freedom for OLS
(normal intervals for GLMs and the negative binomial), and
convergence or other warnings are returned as text instead of being printed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats


@dataclass(frozen=True)
class Fit:
    """A fitted model reduced to what the estimators need."""

    params: pd.Series
    cov: pd.DataFrame
    df: float  # degrees of freedom for t intervals (inf = normal)
    n: int
    n_clusters: int | None
    converged: bool
    warning: str
    result: Any

    def estimate(self, term: str, alpha: float) -> dict[str, float]:
        """Estimate, SE, CI and two-sided p for one coefficient."""
        return self.contrast(pd.Series({term: 1.0}), alpha)

    def contrast(self, weights: pd.Series, alpha: float) -> dict[str, float]:
        """A linear combination of coefficients with its SE, CI and p value.

        Raises ``ValueError`` when a weighted term is not in the model (e.g. ``design`` dropped
        a constant treatment column because one arm has no data): an effect that cannot be
        estimated must never come out as 0.
        """
        missing = [
            term
            for term, weight in weights.items()
            if weight != 0 and term not in self.params.index
        ]
        if missing:
            raise ValueError(
                f"cannot estimate {missing}: not in the fitted model (no variation in the data)"
            )
        w = weights.reindex(self.params.index).fillna(0.0).to_numpy()
        estimate = float(w @ self.params.to_numpy())
        se = float(np.sqrt(w @ self.cov.to_numpy() @ w))
        critical = (
            stats.t.ppf(1 - alpha / 2, self.df)
            if np.isfinite(self.df)
            else stats.norm.ppf(1 - alpha / 2)
        )
        statistic = estimate / se if se > 0 else np.nan
        p = 2 * (
            stats.t.sf(abs(statistic), self.df)
            if np.isfinite(self.df)
            else stats.norm.sf(abs(statistic))
        )
        return {
            "estimate": estimate,
            "se": se,
            "ci_low": estimate - critical * se,
            "ci_high": estimate + critical * se,
            "p_value": float(p),
        }


def design(data: pd.DataFrame, columns: list[str], intercept: bool = True) -> pd.DataFrame:
    """A design matrix of named numeric columns (with an intercept column ``const``).

    Columns with at most one distinct non-missing value are dropped (an arm with no data, a
    constant covariate). Built as one float block (no per-column copies or hashing), so large
    designs cost one pass over the data.
    """
    values = data[columns].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        constant_mask = (
            ~(np.nanmax(values, axis=0) > np.nanmin(values, axis=0))
            if len(values)
            else np.ones(len(columns), bool)
        )
    keep = [c for c, drop in zip(columns, constant_mask, strict=True) if not drop]
    values = values[:, ~constant_mask] if constant_mask.any() else values
    if intercept:
        values = np.column_stack([np.ones(len(values)), values])
        keep = ["const", *keep]
    return pd.DataFrame(values, index=data.index, columns=keep)


def capture(fit: Callable[[], Any]) -> tuple[Any, bool, str]:
    """Run a fit, returning (result, converged, warning text)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit()
    messages = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    reported = getattr(result, "converged", None)
    mle = getattr(result, "mle_retvals", None)
    if isinstance(reported, bool | np.bool_):
        converged = bool(reported)  # the optimiser's own verdict (after any retry) decides
    elif isinstance(mle, dict) and "converged" in mle:
        converged = bool(mle["converged"])
    else:
        converged = not any("ConvergenceWarning" in m for m in messages)
    return result, converged, "; ".join(messages)


def fit_ols(y: pd.Series, X: pd.DataFrame, cluster: pd.Series | None = None) -> Fit:
    """OLS with HC3 errors, or CR1 cluster-robust errors when ``cluster`` is given."""
    model = sm.OLS(y.to_numpy(dtype=float), X.to_numpy())  # arrays: no pandas round trips
    if cluster is not None:
        codes = pd.factorize(cluster)[0]
        result, converged, warning = capture(
            lambda: model.fit(cov_type="cluster", cov_kwds={"groups": codes}, use_t=True)
        )
        n_clusters = int(codes.max() + 1)
        df = float(n_clusters - 1)
    else:
        result, converged, warning = capture(lambda: model.fit(cov_type="HC3", use_t=True))
        n_clusters = None
        df = float(result.df_resid)
    return _to_fit(result, X.columns, df, len(y), n_clusters, converged, warning)


def fit_glm(y: pd.Series, X: pd.DataFrame, family: Any, cluster: pd.Series | None = None) -> Fit:
    """A GLM with robust (HC0 sandwich) or CR1 cluster-robust errors, normal-theory intervals."""
    model = sm.GLM(y.to_numpy(dtype=float), X, family=family)
    if cluster is not None:
        codes = pd.factorize(cluster)[0]
        result, converged, warning = capture(
            lambda: model.fit(cov_type="cluster", cov_kwds={"groups": codes})
        )
        n_clusters = int(codes.max() + 1)
    else:
        result, converged, warning = capture(lambda: model.fit(cov_type="HC0"))
        n_clusters = None
    return _to_fit(result, X.columns, np.inf, len(y), n_clusters, converged, warning)


def _to_fit(
    result: Any,
    names: pd.Index,
    df: float,
    n: int,
    n_clusters: int | None,
    converged: bool,
    warning: str,
) -> Fit:
    params = pd.Series(np.asarray(result.params), index=names)
    cov = pd.DataFrame(np.asarray(result.cov_params()), index=names, columns=names)
    return Fit(params, cov, df, n, n_clusters, converged, warning, result)
