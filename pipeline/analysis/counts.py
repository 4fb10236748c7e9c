"""Count outcomes (treatment sessions): Poisson and negative binomial regression, rate ratios."""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from pipeline.analysis.frame import OUTCOME, TREATED, AnalysisFrame, arm_counts
from pipeline.analysis.models import capture, design, fit_glm
from pipeline.analysis.tidy import estimate_row, estimates_frame


def fit_poisson(frame: AnalysisFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Poisson regression (log link) of the count on arm + covariates; rate ratio with robust errors.

    Robust (sandwich) or CR1 cluster-robust errors keep the interval honest when the counts are
    overdispersed. ``estimate`` is the rate ratio; ``se`` is the SE of its log.
    Checked in ``tests/test_counts.py``: with arm as the only term the rate ratio equals the
    ratio of the arm means exactly.
    """
    data, cluster = frame.model_data(frame.covariates)
    X = design(data, [TREATED, *frame.covariates])
    fit = fit_glm(data[OUTCOME], X, sm.families.Poisson(), cluster)
    row = _rate_ratio(fit.estimate(TREATED, alpha))
    return estimates_frame(
        [
            estimate_row(
                method="poisson",
                estimand="conditional",
                effect_measure="rate_ratio",
                term=frame.term,
                **row,
                **arm_counts(data),
                n_clusters=fit.n_clusters,
                model=_words(frame, "Poisson regression (log link)", "robust sandwich"),
                converged=fit.converged,
                warning=fit.warning,
                extra={
                    "mean_treated": float(data.loc[data[TREATED] == 1, OUTCOME].mean()),
                    "mean_control": float(data.loc[data[TREATED] == 0, OUTCOME].mean()),
                },
            )
        ]
    )


def fit_negative_binomial(frame: AnalysisFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Negative binomial (NB2, dispersion estimated by maximum likelihood) regression; rate ratio.

    statsmodels ``NegativeBinomial`` with model-based errors, or CR1 cluster-robust errors when
    clustered. Extra column ``dispersion_alpha`` (variance = mu + alpha mu^2). Checked in
    ``tests/test_counts.py`` against a direct maximisation of the NB2 likelihood with scipy.
    """
    data, cluster = frame.model_data(frame.covariates)
    X = design(data, [TREATED, *frame.covariates])
    model = sm.NegativeBinomial(data[OUTCOME].to_numpy(dtype=float), X, loglike_method="nb2")
    fit_kwargs = {"disp": 0, "maxiter": 200, "method": "newton"}
    if cluster is not None:
        codes = pd.factorize(cluster)[0]
        result, converged, warning = capture(
            lambda: model.fit(cov_type="cluster", cov_kwds={"groups": codes}, **fit_kwargs)
        )
        n_clusters = int(codes.max() + 1)
    else:
        result, converged, warning = capture(lambda: model.fit(**fit_kwargs))
        n_clusters = None
    params = pd.Series(np.asarray(result.params), index=[*X.columns, "alpha"])
    cov = pd.DataFrame(np.asarray(result.cov_params()), index=params.index, columns=params.index)
    b, se = float(params[TREATED]), float(np.sqrt(cov.loc[TREATED, TREATED]))
    z = stats.norm.ppf(1 - alpha / 2)
    row = _rate_ratio(
        {
            "estimate": b,
            "se": se,
            "ci_low": b - z * se,
            "ci_high": b + z * se,
            "p_value": float(2 * stats.norm.sf(abs(b / se))),
        }
    )
    return estimates_frame(
        [
            estimate_row(
                method="negative_binomial",
                estimand="conditional",
                effect_measure="rate_ratio",
                term=frame.term,
                **row,
                **arm_counts(data),
                n_clusters=n_clusters,
                model=_words(frame, "negative binomial (NB2) regression", "model-based"),
                converged=converged,
                warning=warning,
                extra={
                    "dispersion_alpha": float(params["alpha"]),
                    "mean_treated": float(data.loc[data[TREATED] == 1, OUTCOME].mean()),
                    "mean_control": float(data.loc[data[TREATED] == 0, OUTCOME].mean()),
                },
            )
        ]
    )


def _rate_ratio(log_scale: dict[str, float]) -> dict[str, float]:
    return {
        "estimate": float(np.exp(log_scale["estimate"])),
        "se": log_scale["se"],
        "ci_low": float(np.exp(log_scale["ci_low"])),
        "ci_high": float(np.exp(log_scale["ci_high"])),
        "p_value": log_scale["p_value"],
    }


def _words(frame: AnalysisFrame, model: str, errors: str) -> str:
    adjusted = f" + {', '.join(frame.spec.adjust_for)}" if frame.spec.adjust_for else ""
    clustering = (
        f"CR1 cluster-robust errors by {frame.spec.cluster}"
        if frame.spec.cluster
        else f"{errors} errors"
    )
    return f"{model} of {frame.spec.outcome} on arm{adjusted}; {clustering}"
