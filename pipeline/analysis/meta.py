"""Random-effects meta-analysis of one comparison across studies (DL, REML, Paule-Mandel).

:func:`fit_random_effects` takes one row per study (an estimate and its standard error) and
returns one tidy estimate row with heterogeneity statistics, a prediction interval and the
fixed-effect (inverse-variance) estimate alongside.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats
from statsmodels.stats.meta_analysis import combine_effects

from pipeline.analysis.tidy import estimate_row, estimates_frame

MetaMethod = Literal["DL", "REML", "PM"]
META_METHODS: tuple[str, ...] = ("DL", "REML", "PM")
# Ratio measures arrive on the natural scale with the SE of the log, and are pooled on the log scale.
RATIO_MEASURES: tuple[str, ...] = ("rate_ratio", "risk_ratio", "odds_ratio")
_METHOD_WORDS = {
    "DL": "DerSimonian-Laird",
    "REML": "restricted maximum likelihood",
    "PM": "Paule-Mandel",
}


def _generalised_q(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    """Generalised Cochran Q, sum of w (y - mu_w)^2 with w = 1/(v + tau2)."""
    w = 1.0 / (v + tau2)
    mu = np.sum(w * y) / np.sum(w)
    return float(np.sum(w * (y - mu) ** 2))


def _reml_objective(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    """Minus the restricted log-likelihood of tau2 (constants dropped)."""
    w = 1.0 / (v + tau2)
    mu = np.sum(w * y) / np.sum(w)
    return 0.5 * float(np.sum(np.log(v + tau2)) + np.log(np.sum(w)) + np.sum(w * (y - mu) ** 2))


def _tau2_upper_bound(y: np.ndarray, v: np.ndarray) -> float:
    """A generous upper bound for tau2 (far above any plausible estimate)."""
    return 10.0 * float(np.var(y, ddof=1) + np.max(v)) + 1e-8


def _tau2_reml(y: np.ndarray, v: np.ndarray) -> tuple[float, bool, str]:
    """REML tau2 by bounded scalar minimisation; returns (tau2, converged, warning)."""
    upper = _tau2_upper_bound(y, v)
    for _ in range(5):
        result = optimize.minimize_scalar(
            _reml_objective,
            bounds=(0.0, upper),
            args=(y, v),
            method="bounded",
            options={"xatol": 1e-12 * max(1.0, upper), "maxiter": 1000},
        )
        if result.x < 0.999 * upper:
            break
        upper *= 10.0  # the optimum sits at the bound: widen it and try again
    tau2 = float(result.x)
    # Brent's bounded search never evaluates the bound itself: take tau2 = 0 when it is as good.
    if _reml_objective(0.0, y, v) <= _reml_objective(tau2, y, v) + 1e-12:
        tau2 = 0.0
    warning = "" if result.success else f"REML optimiser did not converge: {result.message}"
    return tau2, bool(result.success), warning


def _tau2_pm(y: np.ndarray, v: np.ndarray) -> tuple[float, bool, str]:
    """Paule-Mandel tau2 via statsmodels, checked against its estimating equation."""
    k = len(y)
    with np.errstate(divide="ignore", invalid="ignore"):  # statsmodels' I² divides by Q
        fitted = combine_effects(y, v, method_re="iterated", atol=1e-10, maxiter=1000)
    tau2 = max(0.0, float(fitted.tau2))
    q_at = _generalised_q(tau2, y, v)
    solved = (tau2 == 0.0 and q_at <= k - 1) or abs(q_at - (k - 1)) <= 1e-6 * (k - 1)
    if solved:
        return tau2, True, ""
    # statsmodels stops at tau2 = 0 if an update overshoots; solve Q(tau2) = k - 1 directly.
    if _generalised_q(0.0, y, v) <= k - 1:
        return 0.0, True, ""
    upper = _tau2_upper_bound(y, v)
    while _generalised_q(upper, y, v) > k - 1:
        upper *= 10.0
    tau2 = optimize.brentq(lambda t: _generalised_q(t, y, v) - (k - 1), 0.0, upper, xtol=1e-14)
    return (
        float(tau2),
        True,
        "Paule-Mandel tau2 found by root finding (statsmodels iteration failed)",
    )


def _unique_value(studies: pd.DataFrame, column: str) -> tuple[bool, Any]:
    """(present, value): the single non-missing value of ``column``, or (False, None) if absent/empty."""
    if column not in studies.columns:
        return False, None
    values = studies[column].dropna().unique()
    if len(values) == 0:
        return False, None
    if len(values) > 1:
        return True, list(values)
    return True, values[0]


def fit_random_effects(
    studies: pd.DataFrame,
    estimate: str = "estimate",
    se: str = "se",
    method: MetaMethod = "REML",
    alpha: float = 0.05,
    label_column: str = "study_id",
) -> pd.DataFrame:
    """Random-effects (and fixed-effect) meta-analysis of one comparison across studies.

    Parameters
    ----------
    studies : pandas.DataFrame
        One row per study, e.g. tidy estimate rows of the same comparison from several
        studies. Not modified.
    estimate : str, default "estimate"
        Column of study estimates, on the natural scale (ratios not logged).
    se : str, default "se"
        Column of standard errors (of the log, for ratio measures), all > 0.
    method : {"DL", "REML", "PM"}, default "REML"
        Estimator of the between-study variance tau²: DerSimonian-Laird, restricted maximum
        likelihood, or Paule-Mandel.
    alpha : float, default 0.05
        Confidence and prediction intervals have level ``1 - alpha``.
    label_column : str, default "study_id"
        Optional column of study labels, used to refuse duplicated studies and to name
        studies in error messages. Ignored when absent.

    Returns
    -------
    pandas.DataFrame
        One row with the :data:`pipeline.analysis.tidy.ESTIMATE_COLUMNS`:
        ``method`` = "meta_dl" / "meta_reml" / "meta_pm"; ``estimand`` and ``term`` copied
        from the studies when a column of that name holds a single value (else NaN and
        "pooled"); ``effect_measure`` from the studies' ``effect_measure`` column when present
        (else "mean_difference"); ``estimate`` the random-effects pooled effect (natural
        scale); ``se`` its standard error (log scale for ratios); ``ci_low``/``ci_high`` Wald
        (normal) interval; ``p_value`` Wald z test of no effect; ``n_treated``/``n_control``
        summed over studies when the studies have complete such columns (else NaN);
        ``n_clusters`` NaN; ``model``; ``converged``; ``warning``. Extra columns:

        ``k``
            number of studies.
        ``tau2``, ``tau``
            between-study variance and SD (log scale for ratios).
        ``i2``
            I², percent of total variability due to heterogeneity,
            ``100 tau2 / (tau2 + s2)`` with the "typical" within-study variance
            ``s2 = (k-1) sum(w) / (sum(w)^2 - sum(w^2))``, ``w = 1/se^2`` (as metafor).
        ``q``, ``q_df``, ``q_p_value``
            Cochran's Q (fixed-effect weights), its degrees of freedom k - 1, and the chi²
            p value.
        ``pi_low``, ``pi_high``
            1 - alpha prediction interval for the effect in a new study,
            ``mu -/+ t_{k-2} sqrt(tau2 + se^2)`` (natural scale); NaN when k < 3.
        ``fe_estimate``, ``fe_se``, ``fe_ci_low``, ``fe_ci_high``
            fixed-effect (inverse-variance) estimate, its SE and Wald interval.

    Raises
    ------
    ValueError
        If a column is missing, fewer than 2 studies are given, an estimate or SE is missing
        or not finite, an SE is not positive, a ratio estimate is not positive, study labels
        repeat, the ``effect_measure`` column mixes measures, or ``method``/``alpha`` are
        invalid.

    Notes
    -----
    Model: ``y_i ~ N(mu, v_i + tau2)`` with ``v_i = se_i^2`` treated as known; the pooled
    effect is the weighted mean with ``w_i = 1 / (v_i + tau2)`` and SE ``1/sqrt(sum w_i)``.
    Ratio measures (``rate_ratio``, ``risk_ratio``, ``odds_ratio``) are pooled as logs and
    exponentiated back.

    tau² estimators:

    * DL: the one-step moment estimator, from
      :func:`statsmodels.stats.meta_analysis.combine_effects` (``method_re="chi2"``),
      truncated at 0 (statsmodels does not truncate).
    * PM: Paule-Mandel, the root of ``Q(tau2) = k - 1`` for the generalised Q, from
      ``combine_effects(method_re="iterated")``; the result is checked against the estimating
      equation and solved by root finding (:func:`scipy.optimize.brentq`) if the statsmodels
      iteration stopped early.
    * REML: statsmodels has no REML estimator for meta-analysis, so the restricted
      log-likelihood ``-1/2 [sum log(v_i + tau2) + log sum w_i + sum w_i (y_i - mu)^2]`` is
      maximised over ``tau2 >= 0`` with :func:`scipy.optimize.minimize_scalar` (bounded
      Brent), and tau2 = 0 is taken when the boundary is at least as good.

    Intervals are Wald (normal) intervals, as metafor's default ``test="z"``; no
    Hartung-Knapp adjustment. The prediction interval uses the t distribution with k - 2
    degrees of freedom (Higgins et al. 2009; Riley et al. 2011); metafor's ``predict()``
    uses the normal distribution by default, so its interval is narrower.

    Checked against R metafor 4.x, ``rma(yi, vi, data = escalc("RR", ..., data = dat.bcg))``
    (13 BCG vaccine trials): REML estimate -0.7145 (SE 0.1798), CI -1.0669 to -0.3622,
    tau² 0.3132, I² 92.22%, Q(12) 152.2330; DL estimate -0.7141, CI -1.0644 to -0.3638,
    tau² 0.3088, I² 92.1173; fixed effect -0.4303 (-0.5097 to -0.3509). The PM tau² (0.3181)
    was checked by solving its estimating equation independently; see ``tests/test_meta.py``.

    References
    ----------
    DerSimonian R, Laird N. Meta-analysis in clinical trials. *Control Clin Trials*
    1986;7:177-188. doi:10.1016/0197-2456(86)90046-2.

    Paule RC, Mandel J. Consensus values and weighting factors. *J Res Natl Bur Stand*
    1982;87:377-385.

    Viechtbauer W. Bias and efficiency of meta-analytic variance estimators in the
    random-effects model. *J Educ Behav Stat* 2005;30:261-293. doi:10.3102/10769986030003261.

    Viechtbauer W. Conducting meta-analyses in R with the metafor package. *J Stat Softw*
    2010;36(3):1-48. doi:10.18637/jss.v036.i03.

    Higgins JPT, Thompson SG. Quantifying heterogeneity in a meta-analysis. *Stat Med*
    2002;21:1539-1558. doi:10.1002/sim.1186.

    Higgins JPT, Thompson SG, Spiegelhalter DJ. A re-evaluation of random-effects
    meta-analysis. *J R Stat Soc A* 2009;172:137-159. doi:10.1111/j.1467-985X.2008.00552.x.

    Riley RD, Higgins JPT, Deeks JJ. Interpretation of random effects meta-analyses.
    *BMJ* 2011;342:d549. doi:10.1136/bmj.d549.

    Examples
    --------
    >>> studies = pd.DataFrame({"study_id": ["a", "b", "c"], "estimate": [1.0, 2.0, 3.0],
    ...                         "se": [0.5, 0.5, 0.5]})
    >>> fit_random_effects(studies, method="DL")[["estimate", "k", "tau2"]].round(3)
       estimate  k  tau2
    0       2.0  3  0.75
    """
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a number between 0 and 1 (e.g. 0.05), got {alpha!r}")
    if not isinstance(method, str) or method.upper() not in META_METHODS:
        raise ValueError(f"method must be one of {META_METHODS}, got {method!r}")
    method_key = method.upper()
    missing = [c for c in (estimate, se) if c not in studies.columns]
    if missing:
        raise ValueError(
            f"column(s) {missing} not in the studies frame (columns: {list(studies.columns)}): "
            "pass the names of the estimate and standard-error columns"
        )
    labels = (
        studies[label_column].astype(str).tolist()
        if label_column in studies.columns
        else [f"row {i}" for i in studies.index]
    )
    if label_column in studies.columns:
        repeated = sorted(set(studies.loc[studies[label_column].duplicated(), label_column]))
        if repeated:
            raise ValueError(
                f"study labels repeat in column {label_column!r}: {repeated}; a study may enter "
                "a meta-analysis once: keep one estimate per study"
            )
    has_measure, measure = _unique_value(studies, "effect_measure")
    if isinstance(measure, list):
        raise ValueError(
            f"the studies mix effect measures {measure}: pool one effect measure at a time"
        )
    effect_measure = measure if has_measure else "mean_difference"
    is_ratio = effect_measure in RATIO_MEASURES

    k = len(studies)
    if k < 2:
        raise ValueError(f"a meta-analysis needs at least 2 studies, got {k}")
    try:
        raw = studies[estimate].to_numpy(dtype=float)
        s = studies[se].to_numpy(dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"columns {estimate!r} and {se!r} must be numeric: {error}") from error
    bad = [lab for lab, e, sd in zip(labels, raw, s, strict=True) if not np.isfinite([e, sd]).all()]
    if bad:
        raise ValueError(
            f"missing or non-finite estimate/SE for {bad}: fix or remove these studies "
            "(they are not dropped silently)"
        )
    bad = [lab for lab, sd in zip(labels, s, strict=True) if sd <= 0]
    if bad:
        raise ValueError(f"standard errors must be > 0; not so for {bad}")
    if is_ratio:
        bad = [lab for lab, e in zip(labels, raw, strict=True) if e <= 0]
        if bad:
            raise ValueError(
                f"{effect_measure} estimates must be > 0 (natural scale, not logged); "
                f"not so for {bad}"
            )
    y = np.log(raw) if is_ratio else raw
    v = s**2

    # Fixed effect and Cochran's Q from statsmodels (identical for every tau2 method).
    with np.errstate(divide="ignore", invalid="ignore"):  # statsmodels' I² divides by Q
        fixed = combine_effects(y, v, method_re="chi2")
    q = float(fixed.q)
    warnings: list[str] = []
    converged = True
    if method_key == "DL":
        tau2 = max(0.0, float(fixed.tau2))
    elif method_key == "PM":
        tau2, converged, note = _tau2_pm(y, v)
        warnings.append(note)
    else:
        tau2, converged, note = _tau2_reml(y, v)
        warnings.append(note)

    w = 1.0 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    se_mu = math.sqrt(1.0 / np.sum(w))
    z = stats.norm.isf(alpha / 2.0)
    w0 = 1.0 / v
    s2 = (k - 1) * np.sum(w0) / (np.sum(w0) ** 2 - np.sum(w0**2))
    i2 = 100.0 * tau2 / (tau2 + s2)
    if k >= 3:
        half = stats.t.isf(alpha / 2.0, k - 2) * math.sqrt(tau2 + se_mu**2)
        pi_low, pi_high = mu - half, mu + half
    else:
        pi_low = pi_high = np.nan
        warnings.append("k < 3: no prediction interval")
    fe, fe_se = float(fixed.mean_effect_fe), float(fixed.sd_eff_w_fe)

    back = np.exp if is_ratio else (lambda x: x)
    present, estimand = _unique_value(studies, "estimand")
    estimand = estimand if present and not isinstance(estimand, list) else np.nan
    present, term = _unique_value(studies, "term")
    term = term if present and not isinstance(term, list) else "pooled"
    sizes = {}
    for column in ("n_treated", "n_control"):
        complete = column in studies.columns and studies[column].notna().all()
        sizes[column] = float(studies[column].sum()) if complete else np.nan

    level = f"{100 * (1 - alpha):g}%"
    model = (
        f"random-effects meta-analysis of {k} studies, tau² by {_METHOD_WORDS[method_key]}, "
        f"weights 1/(se² + tau²), Wald {level} CI, t(k-2) prediction interval"
        + ("; pooled on the log scale" if is_ratio else "")
    )
    row = estimate_row(
        method=f"meta_{method_key.lower()}",
        estimand=estimand,
        effect_measure=effect_measure,
        term=term,
        estimate=float(back(mu)),
        se=se_mu,
        ci_low=float(back(mu - z * se_mu)),
        ci_high=float(back(mu + z * se_mu)),
        p_value=float(2.0 * stats.norm.sf(abs(mu) / se_mu)),
        n_treated=sizes["n_treated"],
        n_control=sizes["n_control"],
        model=model,
        converged=converged,
        warning="; ".join(note for note in warnings if note),
        extra={
            "k": k,
            "tau2": tau2,
            "tau": math.sqrt(tau2),
            "i2": i2,
            "q": q,
            "q_df": k - 1,
            "q_p_value": float(stats.chi2.sf(q, k - 1)),
            "pi_low": float(back(pi_low)),
            "pi_high": float(back(pi_high)),
            "fe_estimate": float(back(fe)),
            "fe_se": fe_se,
            "fe_ci_low": float(back(fe - z * fe_se)),
            "fe_ci_high": float(back(fe + z * fe_se)),
        },
    )
    return estimates_frame([row])
