"""Responder analyses: who improved by at least the MCID (or by 30%), compared between arms.

A responder improved by at least a threshold between baseline and the timepoint, in the
domain's good direction (function up; pain and fear-avoidance down), on the canonical scale:

* ``MCID``: improvement >= the instrument's minimal clinically important difference;
* ``30%``: improvement >= 30% of the room to improve at baseline (function: 100 - baseline;
  pain and fear: baseline - 0), the relative threshold of Ostelo et al. (Spine 2008).
  Participants already at the best value at baseline cannot improve and are left out of it;
* a sweep over multiples of the MCID shows how much the threshold choice matters.

For each definition: risk difference (Newcombe interval) with the NNT (Altman's presentation
when its interval crosses zero), risk ratio, odds ratio, and the covariate-adjusted odds ratio
from logistic regression (cluster-robust when clustered).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from pipeline.analysis.frame import BASELINE, CLUSTER, OUTCOME, TREATED, AnalysisFrame
from pipeline.analysis.models import design, fit_glm
from pipeline.analysis.risk import number_needed_to_treat, risk_measures
from pipeline.analysis.tidy import estimate_row, estimates_frame
from pipeline.instruments import CANONICAL_DOMAINS


def responder_indicator(
    frame: AnalysisFrame, data: pd.DataFrame, threshold: float | None, relative: float | None = None
) -> pd.Series:
    """1 where a participant improved by at least ``threshold`` (or ``relative`` x room), else 0; NaN if not evaluable."""
    change = data[OUTCOME] - data[BASELINE]
    improvement = change if frame.higher_is_better else -change
    if relative is None:
        return (improvement >= threshold - 1e-9).astype(float)
    domain = CANONICAL_DOMAINS[frame.domain]
    best = domain["max"] if frame.higher_is_better else domain["min"]
    room = (best - data[BASELINE]).abs()
    indicator = (improvement >= relative * room - 1e-9).astype(float)
    return indicator.where(room > 0)


def fit_responders(frame: AnalysisFrame, sweep: list[float], alpha: float = 0.05) -> pd.DataFrame:
    """Responder comparisons by MCID, by 30% improvement, and over an MCID sweep.

    Returns
    -------
    pandas.DataFrame
        Tidy rows with ``effect_measure`` in ``risk_difference`` (with NNT columns),
        ``risk_ratio``, ``odds_ratio`` and ``adjusted_odds_ratio`` for the ``MCID`` and
        ``30%`` definitions (``term`` names the definition and threshold), and
        ``risk_difference`` rows with ``method="responders_sweep"`` for each multiple of the
        MCID. Extra columns: ``threshold`` (canonical points), ``definition``,
        ``risk_treated``, ``risk_control``, ``events_treated``, ``events_control``, ``nnt``,
        ``nnt_text``.
    """
    data = frame.complete_cases([BASELINE])
    if frame.spec.cluster and CLUSTER in data:
        data = data[data[CLUSTER].notna()]
    definitions: list[tuple[str, float | None, float | None]] = []
    if frame.mcid is not None:
        definitions.append(("MCID", frame.mcid, None))
    definitions.append(("30% improvement", None, 0.30))
    rows: list[dict] = []
    for name, threshold, relative in definitions:
        indicator = responder_indicator(frame, data, threshold, relative)
        label = (
            f"improved >= {threshold:.3g} points (MCID)"
            if relative is None
            else "improved >= 30% of the room to improve"
        )
        rows += _binary_rows(
            frame,
            data.assign(responder=indicator),
            label,
            name,
            threshold,
            alpha,
            adjusted=True,
            method="responders",
        )
    if frame.mcid is not None:
        for multiple in sweep:
            threshold = multiple * frame.mcid
            indicator = responder_indicator(frame, data, threshold)
            rows += _binary_rows(
                frame,
                data.assign(responder=indicator),
                f"improved >= {threshold:.3g} points",
                f"{multiple:g} x MCID",
                threshold,
                alpha,
                adjusted=False,
                method="responders_sweep",
            )
    return estimates_frame(rows)


def _binary_rows(
    frame: AnalysisFrame,
    data: pd.DataFrame,
    label: str,
    definition: str,
    threshold: float | None,
    alpha: float,
    adjusted: bool,
    method: str,
) -> list[dict]:
    data = data.dropna(subset=["responder"])
    treated = data[TREATED] == 1
    a, n_t = int(data.loc[treated, "responder"].sum()), int(treated.sum())
    c, n_c = int(data.loc[~treated, "responder"].sum()), int((~treated).sum())
    measures = risk_measures(a, n_t, c, n_c, alpha)
    nnt = number_needed_to_treat(
        measures["rd"], measures["rd_ci_low"], measures["rd_ci_high"], event_is_beneficial=True
    )
    common = {"n_treated": n_t, "n_control": n_c, "estimand": "ATE"}
    extra = {
        "threshold": np.nan if threshold is None else float(threshold),
        "definition": definition,
        "risk_treated": measures["risk_t"],
        "risk_control": measures["risk_c"],
        "events_treated": a,
        "events_control": c,
    }
    model = f"responders ({label}) at {frame.spec.timepoint}, unadjusted"
    z = measures["rd"] / measures["rd_se"] if measures["rd_se"] > 0 else np.nan
    rows = [
        estimate_row(
            method=method,
            effect_measure="risk_difference",
            term=label,
            estimate=measures["rd"],
            se=measures["rd_se"],
            ci_low=measures["rd_ci_low"],
            ci_high=measures["rd_ci_high"],
            p_value=float(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else np.nan,
            model=model + "; Newcombe hybrid score interval",
            **common,
            extra={**extra, "nnt": nnt["nnt"], "nnt_text": nnt["text"]},
        )
    ]
    if not adjusted:
        return rows
    for measure, key in (("risk_ratio", "rr"), ("odds_ratio", "or")):
        se = measures[f"log_{key}_se"]
        log_estimate = np.log(measures[key]) if measures[key] > 0 else np.nan
        p = (
            float(2 * stats.norm.sf(abs(log_estimate / se)))
            if se and np.isfinite(log_estimate)
            else np.nan
        )
        rows.append(
            estimate_row(
                method=method,
                effect_measure=measure,
                term=label,
                estimate=measures[key],
                se=se,
                ci_low=measures[f"{key}_ci_low"],
                ci_high=measures[f"{key}_ci_high"],
                p_value=p,
                model=model + "; log-scale Wald interval",
                **common,
                extra=extra,
            )
        )
    covariates = [c for c in frame.adjustment if c in data]
    complete = data.dropna(subset=covariates)
    if complete["responder"].nunique() == 2:
        cluster = complete[CLUSTER] if frame.spec.cluster and CLUSTER in complete else None
        X = design(complete, [TREATED, *covariates])
        fit = fit_glm(complete["responder"], X, sm.families.Binomial(), cluster)
        log_or = fit.estimate(TREATED, alpha)
        errors = (
            f"CR1 cluster-robust by {frame.spec.cluster}"
            if cluster is not None
            else "robust sandwich"
        )
        srd, srd_se = standardised_risk_difference(X, fit.params.to_numpy(), fit.cov.to_numpy())
        risks = srd_risks(X, fit.params.to_numpy())
        z = stats.norm.ppf(1 - alpha / 2)
        rows.append(
            estimate_row(
                method=method,
                effect_measure="standardised_risk_difference",
                term=label,
                estimate=srd,
                se=srd_se,
                ci_low=srd - z * srd_se,
                ci_high=srd + z * srd_se,
                p_value=float(2 * stats.norm.sf(abs(srd / srd_se))) if srd_se > 0 else np.nan,
                n_treated=int((complete[TREATED] == 1).sum()),
                n_control=int((complete[TREATED] == 0).sum()),
                n_clusters=fit.n_clusters,
                estimand="ATE",
                model=f"risk difference standardised over the analysed people (g-computation) from "
                f"the logistic regression of responders ({label}) on arm + baseline"
                + (f" + {', '.join(frame.spec.adjust_for)}" if frame.spec.adjust_for else "")
                + f"; delta-method {errors} errors",
                converged=fit.converged,
                warning=fit.warning,
                extra={**extra, **dict(zip(("risk_treated", "risk_control"), risks, strict=True))},
            )
        )
        rows.append(
            estimate_row(
                method=method,
                effect_measure="adjusted_odds_ratio",
                term=label,
                estimate=float(np.exp(log_or["estimate"])),
                se=log_or["se"],
                ci_low=float(np.exp(log_or["ci_low"])),
                ci_high=float(np.exp(log_or["ci_high"])),
                p_value=log_or["p_value"],
                n_treated=int((complete[TREATED] == 1).sum()),
                n_control=int((complete[TREATED] == 0).sum()),
                n_clusters=fit.n_clusters,
                estimand="conditional",
                model=f"logistic regression of responders ({label}) on arm + baseline"
                + (f" + {', '.join(frame.spec.adjust_for)}" if frame.spec.adjust_for else "")
                + f"; {errors} errors",
                converged=fit.converged,
                warning=fit.warning,
                extra=extra,
            )
        )
    return rows


def srd_risks(X: pd.DataFrame, params: np.ndarray) -> tuple[float, float]:
    """Average predicted risk with everyone treated and with everyone in the control arm."""
    X1, X0 = X.assign(**{TREATED: 1.0}).to_numpy(float), X.assign(**{TREATED: 0.0}).to_numpy(float)
    return float(_expit(X1 @ params).mean()), float(_expit(X0 @ params).mean())


def standardised_risk_difference(
    X: pd.DataFrame, params: np.ndarray, cov: np.ndarray
) -> tuple[float, float]:
    """Covariate-standardised risk difference (g-computation) and its delta-method SE.

    The marginal risk difference of a logistic model, averaged over the analysed people:
    ``mean(expit(X1 b)) - mean(expit(X0 b))`` with ``X1``/``X0`` setting everyone's arm to
    treatment/control; SE from the gradient ``mean(p1 (1-p1) X1) - mean(p0 (1-p0) X0)`` and
    the coefficient covariance (conditional on the covariate distribution, as Stata
    ``margins, dydx()`` and R ``marginaleffects::avg_comparisons``).

    Notes
    -----
    With arm as the only covariate the model is saturated: the estimate is the crude risk
    difference and the SE the Wald ``sqrt(p1 q1 / n1 + p0 q0 / n0)`` (tested). Reference:
    Austin PC. Absolute risk reductions... J Clin Epidemiol 2010;63:2-6.
    """
    X1, X0 = X.assign(**{TREATED: 1.0}).to_numpy(float), X.assign(**{TREATED: 0.0}).to_numpy(float)
    p1, p0 = _expit(X1 @ params), _expit(X0 @ params)
    gradient = (p1 * (1 - p1)) @ X1 / len(X1) - (p0 * (1 - p0)) @ X0 / len(X0)
    return float(p1.mean() - p0.mean()), float(np.sqrt(gradient @ cov @ gradient))


def _expit(eta: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-eta))
