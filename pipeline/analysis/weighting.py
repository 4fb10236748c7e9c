"""Propensity-score weighting: propensity model, weights, balance, overlap, IPW and AIPW estimates.

The functions form one family around the propensity score ``e(x) = P(treatment = 1 | x)``:

* :func:`fit_propensity` -- logistic regression of the treatment on the covariates;
* :func:`compute_weights` -- inverse-probability weights for the ATE or the ATT, optionally
  stabilised and with Crump-style trimming;
* :func:`balance_table`, :func:`effective_sample_size`, :func:`check_overlap`,
  :func:`weight_summary` -- the diagnostics a reader needs before trusting a weighted estimate;
* :func:`fit_ipw` -- the weighted (Hajek) difference in means with robust errors, returned
  with all diagnostics as an :class:`IPWResult`;
* :func:`fit_aipw` -- the augmented IPW (doubly robust) estimator with influence-function errors.

All functions are pure (inputs are never modified), fully vectorised (no Python loops over
rows) and validate their inputs with :class:`ValueError` messages that name the column.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from scipy import stats

from pipeline.analysis.tidy import estimate_row, estimates_frame

Estimand = Literal["ATE", "ATT"]
ESTIMANDS: tuple[str, ...] = ("ATE", "ATT")
SMD_THRESHOLD = 0.1  # |SMD| above this flags a covariate as imbalanced (Austin 2009; Stuart 2010)
OVERLAP_TOLERANCE = 0.05  # share of an arm allowed outside the other arm's propensity range

BALANCE_COLUMNS: tuple[str, ...] = (
    "covariate",
    "kind",
    "mean_treated_before",
    "mean_control_before",
    "mean_treated_after",
    "mean_control_after",
    "smd_before",
    "smd_after",
    "variance_ratio_before",
    "variance_ratio_after",
    "flag_imbalanced",
)


@dataclass(frozen=True)
class IPWResult:
    """Inverse-probability-weighted estimate with its diagnostics (see :func:`fit_ipw`).

    Attributes
    ----------
    estimates
        Tidy estimate frame (:data:`pipeline.analysis.tidy.ESTIMATE_COLUMNS`), one row,
        ``method == "ipw"``.
    balance
        :func:`balance_table` for the fitted weights.
    ess
        :func:`effective_sample_size` per arm.
    overlap
        :func:`check_overlap` of the fitted propensity scores.
    weights_summary
        :func:`weight_summary` per arm.
    propensity
        Fitted propensity scores, indexed like the input data.
    weights
        The weights used (0 for trimmed units), indexed like the input data.
    n_trimmed
        Units excluded by trimming, per arm (``{"treated": int, "control": int}``).
    """

    estimates: pd.DataFrame
    balance: pd.DataFrame
    ess: dict[str, float]
    overlap: dict[str, Any]
    weights_summary: pd.DataFrame
    propensity: pd.Series
    weights: pd.Series
    n_trimmed: dict[str, int]


@dataclass(frozen=True)
class _PropensityFit:
    """Fitted propensities plus what the optimiser said."""

    propensity: np.ndarray
    converged: bool
    warnings: tuple[str, ...]


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def fit_propensity(data: pd.DataFrame, treatment: str, covariates: list[str]) -> pd.Series:
    """Propensity scores ``P(treatment = 1 | covariates)`` from a logistic regression.

    Parameters
    ----------
    data
        One row per participant. Not modified.
    treatment
        Bool (or 0/1) column: True / 1 for the treatment arm (e.g. ``"etmi"``).
    covariates
        Columns to adjust for. Numeric columns enter linearly (add transformed columns such
        as ``log(symptom_months / 12)`` to ``data`` beforehand); bool columns as 0/1;
        categorical, string or object columns as dummies with the first (sorted / category
        order) level as reference. An empty list fits an intercept-only model (constant
        propensity equal to the treated share).

    Returns
    -------
    pandas.Series
        ``propensity`` (probability, 0-1), indexed like ``data``.

    Raises
    ------
    ValueError
        A column is missing, has missing or non-finite values, is constant, the treatment is
        not binary or one arm is empty, or the covariates are collinear.

    Warns
    -----
    UserWarning
        When the optimiser did not converge or detected (quasi-)perfect separation; the
        propensities are returned but should not be used for weighting without a look.

    Notes
    -----
    Maximum likelihood by Newton-Raphson (``statsmodels.discrete.discrete_model.Logit``,
    array interface; the design matrix is built with pandas, never from a formula string).
    Checked against ``statsmodels`` ``GLM(..., family=Binomial())`` in the tests.

    Examples
    --------
    >>> from pipeline.simulate.cohort import CohortSpec, simulate_cohort
    >>> p = simulate_cohort(CohortSpec()).patients
    >>> e = fit_propensity(p, "etmi", ["age", "depression_anxiety", "function_baseline"])
    """
    _check_frame(data, treatment=treatment, covariates=covariates)
    fit = _fit_logistic(_design(data, covariates), _treatment_array(data[treatment], treatment))
    for message in fit.warnings:
        warnings.warn(f"propensity model: {message}", UserWarning, stacklevel=2)
    return pd.Series(fit.propensity, index=data.index, name="propensity")


def compute_weights(
    propensity: pd.Series | np.ndarray,
    treated: pd.Series | np.ndarray,
    estimand: Estimand = "ATE",
    stabilise: bool = True,
    trim: tuple[float, float] | None = None,
) -> pd.Series:
    """Inverse-probability weights for the ATE or the ATT.

    Parameters
    ----------
    propensity
        Propensity scores in [0, 1] (e.g. from :func:`fit_propensity`).
    treated
        Bool or 0/1 treatment indicator, same length (and index, if both are Series).
    estimand
        ``"ATE"`` (average effect in the whole population) or ``"ATT"`` (in the treated).
    stabilise
        Stabilise the weights (see Notes). Hajek point estimates do not change; the weights
        keep the scale of the sample (sum close to ``n`` per arm), which makes weighted
        balance tables and summaries easier to read.
    trim
        ``(low, high)``: exclude units whose propensity lies outside ``[low, high]`` (weight 0),
        as in Crump et al. (2009), who recommend ``(0.1, 0.9)``. Both arms are trimmed by the
        same rule, so the estimand becomes the ATE / ATT *in the trimmed population*. The
        number of trimmed units is reported by :func:`fit_ipw` (``n_trimmed``) and shows as
        ``n_zero_weight`` in :func:`weight_summary`.

    Returns
    -------
    pandas.Series
        ``weight`` (dimensionless, >= 0), indexed like ``propensity`` (a RangeIndex for arrays).

    Raises
    ------
    ValueError
        Lengths or indices differ, values are missing or out of range, an arm is empty after
        trimming, or a retained unit would get an infinite weight (propensity 0 for a treated
        unit or 1 for a control unit under the ATE; 1 for a control unit under the ATT).

    Notes
    -----
    With ``e`` the propensity, ``T`` the treatment and ``p = mean(T)`` over retained units:

    * ATE, unstabilised: ``w = T / e + (1 - T) / (1 - e)``.
    * ATE, stabilised (Robins, Hernan & Brumback 2000; Austin & Stuart 2015):
      ``w = p T / e + (1 - p)(1 - T) / (1 - e)``, i.e. multiplied by the marginal probability
      of the arm received.
    * ATT, unstabilised: ``w = 1`` for treated, ``e / (1 - e)`` for controls.
    * ATT, stabilised: treated weights stay 1; control odds weights are rescaled to sum to
      the number of retained controls, ``w = n_c * odds / sum_controls(odds)``. This is the
      exact normalisation (a constant per arm), chosen over the expected-value version
      ``odds * (1 - p) / p`` so that the weighted control arm always has the size of the
      observed control arm.

    References
    ----------
    Austin PC, Stuart EA. Moving towards best practice when using inverse probability of
    treatment weighting (IPTW). Stat Med 2015;34:3661-3679. doi:10.1002/sim.6607

    Crump RK, Hotz VJ, Imbens GW, Mitnik OA. Dealing with limited overlap in estimation of
    average treatment effects. Biometrika 2009;96:187-199. doi:10.1093/biomet/asn055

    Examples
    --------
    >>> w = compute_weights(e, p["etmi"], estimand="ATT", trim=(0.01, 0.99))
    """
    e, t, index = _check_propensity_treated(propensity, treated)
    estimand = _check_estimand(estimand)
    keep = _trim_mask(e, trim)
    return pd.Series(_weights(e, t, keep, estimand, stabilise), index=index, name="weight")


def balance_table(
    data: pd.DataFrame,
    treatment: str,
    covariates: list[str],
    weights: pd.Series | np.ndarray,
) -> pd.DataFrame:
    """Covariate balance before and after weighting: means, SMDs and variance ratios.

    Parameters
    ----------
    data
        One row per participant. Not modified.
    treatment
        Bool or 0/1 treatment column.
    covariates
        Columns to describe; categorical / string columns expand to one dummy per level
        (all levels shown), bool columns to one 0/1 row.
    weights
        Non-negative weights, indexed like ``data`` (or an array of the same length).

    Returns
    -------
    pandas.DataFrame
        One row per covariate term with columns

        * ``covariate`` -- the column name, or ``"name=level"`` for a dummy;
        * ``kind`` -- ``"binary"`` (values only 0/1) or ``"continuous"``;
        * ``mean_treated_before``, ``mean_control_before`` -- unweighted means (units of the
          covariate; proportions for binary terms);
        * ``mean_treated_after``, ``mean_control_after`` -- weighted means;
        * ``smd_before``, ``smd_after`` -- standardised mean differences (treated - control);
        * ``variance_ratio_before``, ``variance_ratio_after`` -- variance treated / control
          (unweighted / weighted); NaN for binary terms, whose variance is fixed by the mean;
        * ``flag_imbalanced`` -- ``abs(smd_after) > 0.1``.

    Notes
    -----
    ``SMD = (mean_t - mean_c) / sqrt((s2_t + s2_c) / 2)``. The denominator uses the
    *unweighted* variances of the whole sample (before weighting and trimming) for both the
    before and the after SMD, so that weighting changes only the numerator (Austin 2009; the
    ``cobalt`` default for the ATE). Note that ``cobalt`` uses the treated-arm SD for the ATT
    by default; this table always pools. Variances: sample variances (``ddof = 1``) for
    continuous terms, ``p(1 - p)`` for binary terms (Austin 2009, eq. for dichotomous
    variables). Weighted variances use the reliability-weight unbiased form
    ``sum(w) / (sum(w)^2 - sum(w^2)) * sum(w (x - m)^2)`` as in ``cobalt::col_w_sd``.
    A term constant within both arms gets an SMD of 0 (equal means) or +/-inf.

    Checked against hand arithmetic on a tiny data set (tests/test_weighting.py).

    References
    ----------
    Austin PC. Balance diagnostics for comparing the distribution of baseline covariates
    between treatment groups in propensity-score matched samples. Stat Med 2009;28:3083-3107.
    doi:10.1002/sim.3697

    Greifer N. cobalt: Covariate Balance Tables and Plots. R package, ``bal.tab``.

    Examples
    --------
    >>> balance_table(p, "etmi", ["age", "depression_anxiety"], compute_weights(e, p["etmi"]))
    """
    _check_frame(data, treatment=treatment, covariates=covariates)
    t = _treatment_array(data[treatment], treatment)
    w = _check_weights(weights, len(data), t, index=data.index)
    terms = _covariate_frame(data, covariates, drop_first=False)
    X = terms.to_numpy(dtype=float)
    binary = ((X == 0) | (X == 1)).all(axis=0)
    X1, X0 = X[t], X[~t]
    w1, w0 = w[t], w[~t]

    mean1, mean0 = X1.mean(axis=0), X0.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        var1 = np.where(binary, mean1 * (1 - mean1), _sample_variance(X1))
        var0 = np.where(binary, mean0 * (1 - mean0), _sample_variance(X0))
        wmean1, wmean0 = w1 @ X1 / w1.sum(), w0 @ X0 / w0.sum()
        wvar1, wvar0 = _weighted_variance(X1, w1, wmean1), _weighted_variance(X0, w0, wmean0)
        denominator = np.sqrt((var1 + var0) / 2)
        smd_before = _standardise(mean1 - mean0, denominator)
        smd_after = _standardise(wmean1 - wmean0, denominator)
        ratio_before = np.where(binary, np.nan, var1 / var0)
        ratio_after = np.where(binary, np.nan, wvar1 / wvar0)
    return pd.DataFrame(
        {
            "covariate": terms.columns.astype(str),
            "kind": np.where(binary, "binary", "continuous"),
            "mean_treated_before": mean1,
            "mean_control_before": mean0,
            "mean_treated_after": wmean1,
            "mean_control_after": wmean0,
            "smd_before": smd_before,
            "smd_after": smd_after,
            "variance_ratio_before": ratio_before,
            "variance_ratio_after": ratio_after,
            "flag_imbalanced": np.abs(smd_after) > SMD_THRESHOLD,
        },
        columns=list(BALANCE_COLUMNS),
    )


def effective_sample_size(
    weights: pd.Series | np.ndarray, treated: pd.Series | np.ndarray
) -> dict[str, float]:
    """Kish effective sample size per arm.

    Parameters
    ----------
    weights
        Non-negative weights.
    treated
        Bool or 0/1 treatment indicator of the same length.

    Returns
    -------
    dict
        ``{"treated": float, "control": float}``: ``(sum w)^2 / sum w^2`` within each arm
        (participants; units with weight 0 count for nothing).

    References
    ----------
    Kish L. Survey Sampling. New York: Wiley; 1965.

    Examples
    --------
    >>> effective_sample_size(compute_weights(e, p["etmi"]), p["etmi"])
    """
    t = _binary_array(treated, "treated")
    w = _check_weights(weights, len(t), t)
    return {"treated": _kish(w[t]), "control": _kish(w[~t])}


def check_overlap(
    propensity: pd.Series | np.ndarray,
    treated: pd.Series | np.ndarray,
    tolerance: float = OVERLAP_TOLERANCE,
) -> dict[str, Any]:
    """Do the propensity-score distributions of the two arms overlap?

    Parameters
    ----------
    propensity
        Propensity scores in [0, 1].
    treated
        Bool or 0/1 treatment indicator of the same length.
    tolerance
        Largest share of either arm allowed outside the other arm's propensity range for the
        overlap to count as adequate (default 0.05).

    Returns
    -------
    dict
        ``treated_min``, ``treated_max``, ``control_min``, ``control_max`` (propensity range
        per arm); ``share_treated_outside_control_range`` and
        ``share_control_outside_treated_range`` (proportions, 0-1); ``adequate`` (bool: both
        shares <= ``tolerance``); ``message`` (one sentence for a human reader).

    Notes
    -----
    A units-outside-the-other-arm's-range rule is crude but transparent; it flags the
    situations where weighting extrapolates (Crump et al. 2009; Stuart 2010). Look at the
    propensity histograms as well: overlap can be adequate by this rule and still thin.

    Examples
    --------
    >>> check_overlap(e, p["etmi"])["message"]
    """
    e, t, _ = _check_propensity_treated(propensity, treated)
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must lie in [0, 1), got {tolerance}")
    e1, e0 = e[t], e[~t]
    lo1, hi1, lo0, hi0 = e1.min(), e1.max(), e0.min(), e0.max()
    out1 = float(np.mean((e1 < lo0) | (e1 > hi0)))
    out0 = float(np.mean((e0 < lo1) | (e0 > hi1)))
    adequate = out1 <= tolerance and out0 <= tolerance
    detail = (
        f"{out1:.1%} of treated units lie outside the control range [{lo0:.3f}, {hi0:.3f}] "
        f"and {out0:.1%} of control units outside the treated range [{lo1:.3f}, {hi1:.3f}]"
    )
    if adequate:
        message = f"Propensity overlap adequate: {detail}."
    else:
        message = (
            f"Poor propensity overlap: {detail} (tolerance {tolerance:.0%}). Weighting would "
            "extrapolate: trim (e.g. trim=(0.1, 0.9)), estimate the ATT, or restrict the "
            "population to comparable patients."
        )
    return {
        "treated_min": float(lo1),
        "treated_max": float(hi1),
        "control_min": float(lo0),
        "control_max": float(hi0),
        "share_treated_outside_control_range": out1,
        "share_control_outside_treated_range": out0,
        "adequate": bool(adequate),
        "message": message,
    }


def weight_summary(
    weights: pd.Series | np.ndarray, treated: pd.Series | np.ndarray
) -> pd.DataFrame:
    """Distribution of the weights in each arm.

    Parameters
    ----------
    weights
        Non-negative weights.
    treated
        Bool or 0/1 treatment indicator of the same length.

    Returns
    -------
    pandas.DataFrame
        One row per arm (``arm`` = ``"treated"``, ``"control"``) with ``n`` (units),
        ``n_zero_weight`` (units with weight 0, e.g. trimmed), ``sum``, ``min``, ``p1``,
        ``median``, ``p99``, ``max`` (of the positive weights; percentiles by linear
        interpolation, numpy's default) and ``top1pct_share``: the share of the arm's total
        weight held by its largest ``ceil(1%)`` of positive weights (0-1; 0.01 when all
        weights are equal).

    Examples
    --------
    >>> weight_summary(compute_weights(e, p["etmi"], trim=(0.05, 0.95)), p["etmi"])
    """
    t = _binary_array(treated, "treated")
    w = _check_weights(weights, len(t), t)
    rows = []
    for arm, mask in (("treated", t), ("control", ~t)):
        arm_w = w[mask]
        positive = arm_w[arm_w > 0]
        k = max(1, math.ceil(0.01 * len(positive)))
        top = np.partition(positive, len(positive) - k)[len(positive) - k :]
        p1, median, p99 = np.percentile(positive, [1, 50, 99])
        rows.append(
            {
                "arm": arm,
                "n": int(mask.sum()),
                "n_zero_weight": int((arm_w == 0).sum()),
                "sum": float(positive.sum()),
                "min": float(positive.min()),
                "p1": float(p1),
                "median": float(median),
                "p99": float(p99),
                "max": float(positive.max()),
                "top1pct_share": float(top.sum() / positive.sum()),
            }
        )
    return pd.DataFrame(rows)


def fit_ipw(
    data: pd.DataFrame,
    outcome: str,
    treatment: str,
    covariates: list[str],
    estimand: Estimand = "ATE",
    cluster: str | None = None,
    stabilise: bool = True,
    trim: tuple[float, float] | None = None,
    alpha: float = 0.05,
    variance: str = "m_estimation",
) -> IPWResult:
    """Inverse-probability-weighted difference in mean outcome, with balance diagnostics.

    Parameters
    ----------
    data
        One row per participant, complete cases (no missing outcome, treatment, covariates
        or cluster). Not modified.
    outcome
        Numeric outcome column (e.g. ``"function_discharge"``, FOTO-like 0-100).
    treatment
        Bool or 0/1 treatment column.
    covariates
        Propensity-model covariates (see :func:`fit_propensity`).
    estimand
        ``"ATE"`` or ``"ATT"``.
    cluster
        Column identifying clusters (e.g. ``"therapist_index"``) for cluster-robust errors;
        ``None`` for HC1 errors.
    stabilise, trim
        Passed to :func:`compute_weights`.
    alpha
        1 - confidence level.

    Returns
    -------
    IPWResult
        ``estimates`` has one tidy row: ``method="ipw"``, ``effect_measure="mean_difference"``
        (outcome units, treated minus control), ``n_treated`` / ``n_control`` = units with a
        positive weight, ``n_clusters`` among them (NaN unless ``cluster``), ``converged``
        False if the propensity model did not converge, ``warning`` listing optimiser
        messages and poor overlap. Plus balance, ESS, overlap, weight summary, propensity,
        weights and trimming counts.

    Raises
    ------
    ValueError
        Invalid inputs (see :func:`fit_propensity` and :func:`compute_weights`), missing
        values in any used column, or ``alpha`` outside (0, 1).

    Notes
    -----
    The estimate is the coefficient of the treatment in a weighted least-squares regression
    of the outcome on an intercept and the treatment, which equals the Hajek (normalised)
    weighted difference in means ``sum(w T Y) / sum(w T) - sum(w (1-T) Y) / sum(w (1-T))``.
    Covariates are *not* added to the weighted regression: the doubly robust estimator of
    this module is :func:`fit_aipw`. Units with weight 0 (trimmed) are dropped before the
    regression, so the small-sample factors count only retained units.

    Standard errors are the heteroscedasticity-robust HC1 sandwich (``n / (n - 2)``) or,
    with ``cluster``, the cluster-robust CR1 sandwich (``G/(G-1) (n-1)/(n-2)``,
    ``statsmodels`` ``cov_type="cluster"``); intervals and p values use the normal
    distribution. The sandwich treats the weights as known. Ignoring the estimation of the
    propensity score makes the ATE interval conservative (Hirano, Imbens & Ridder 2003;
    Lunceford & Davidian 2004, section 3); for the ATT this is *not* guaranteed, and the
    interval can be too narrow (Reifeis & Hudgens 2022).

    Checked against a direct numpy Hajek ratio, ``statsmodels`` GLM Gaussian with
    ``var_weights`` and a hand-coded numpy HC1 / CR1 sandwich (tests/test_weighting.py).

    References
    ----------
    Lunceford JK, Davidian M. Stratification and weighting via the propensity score in
    estimation of causal treatment effects: a comparative study. Stat Med 2004;23:2937-2960.
    doi:10.1002/sim.1903

    Hirano K, Imbens GW, Ridder G. Efficient estimation of average treatment effects using the
    estimated propensity score. Econometrica 2003;71:1161-1189. doi:10.1111/1468-0262.00442

    Reifeis SA, Hudgens MG. On variance of the treatment effect in the treated when estimated
    by inverse probability weighting. Am J Epidemiol 2022;191:1092-1097. doi:10.1093/aje/kwac014

    Examples
    --------
    >>> cc = p[p["complete"]].assign(log_symptom_years=np.log(p["symptom_months"] / 12))
    >>> result = fit_ipw(cc, "function_discharge", "etmi",
    ...                  ["age", "depression_anxiety", "log_symptom_years",
    ...                   "fabq_pa_baseline", "function_baseline"], cluster="therapist_index")
    >>> result.estimates[["estimate", "ci_low", "ci_high"]]
    """
    _check_frame(data, treatment=treatment, covariates=covariates, outcome=outcome, cluster=cluster)
    estimand = _check_estimand(estimand)
    _check_alpha(alpha)
    if variance not in ("m_estimation", "robust_wls"):
        raise ValueError(f'variance must be "m_estimation" or "robust_wls", got {variance!r}')
    t = _treatment_array(data[treatment], treatment)
    X_ps = _design(data, covariates)
    fit = _fit_logistic(X_ps, t)
    e = fit.propensity
    keep = _trim_mask(e, trim)
    w = _weights(e, t, keep, estimand, stabilise)

    used = w > 0
    y = data[outcome].to_numpy(dtype=float)[used]
    exog = np.column_stack([np.ones(int(used.sum())), t[used].astype(float)])
    model = sm.WLS(y, exog, weights=w[used])
    if cluster is None:
        res = model.fit(cov_type="HC1")
        n_clusters = np.nan
        errors = "HC1 robust errors"
    else:
        groups = pd.factorize(data[cluster].to_numpy()[used])[0]
        res = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
        n_clusters = int(groups.max()) + 1
        errors = f"CR1 cluster-robust errors by {cluster}"
    estimate, se_wls = float(res.params[1]), float(res.bse[1])
    groups_all = None if cluster is None else pd.factorize(data[cluster].to_numpy())[0]
    influence = ipw_influence(data[outcome].to_numpy(dtype=float), t, e, X_ps, keep, estimand)
    se_m = _influence_se(influence, groups_all)
    se = se_m if variance == "m_estimation" else se_wls
    if variance == "m_estimation":
        errors = (
            "M-estimation errors (stacked estimating equations, accounting for the estimated "
            "propensity score" + (f", clustered by {cluster})" if cluster else ")")
        )
    overlap = check_overlap(e, t)
    messages = [*fit.warnings]
    if not overlap["adequate"]:
        messages.append(overlap["message"])
    trimmed = {"treated": int((~keep & t).sum()), "control": int((~keep & ~t).sum())}
    stab = "stabilised " if stabilise else ""
    trim_text = (
        ""
        if trim is None
        else f"; {trimmed['treated'] + trimmed['control']} units with propensity outside "
        f"[{trim[0]:g}, {trim[1]:g}] excluded (Crump trimming)"
    )
    description = (
        f"WLS of {outcome} on {treatment} with {stab}{estimand} inverse-probability weights "
        f"(logistic propensity on {_covariate_text(covariates)}){trim_text}; {errors}"
        + (", propensity treated as known" if variance == "robust_wls" else "")
    )
    row = estimate_row(
        method="ipw",
        estimand=estimand,
        effect_measure="mean_difference",
        term=f"{treatment}: treated vs control",
        n_treated=int((used & t).sum()),
        n_control=int((used & ~t).sum()),
        n_clusters=n_clusters,
        model=description,
        converged=fit.converged,
        warning="; ".join(messages),
        **_normal_inference(estimate, se, alpha),
        extra={"se_robust_wls": se_wls, "se_m_estimation": se_m},
    )
    weights = pd.Series(w, index=data.index, name="weight")
    return IPWResult(
        estimates=estimates_frame([row]),
        balance=balance_table(data, treatment, covariates, weights),
        ess=effective_sample_size(w, t),
        overlap=overlap,
        weights_summary=weight_summary(w, t),
        propensity=pd.Series(e, index=data.index, name="propensity"),
        weights=weights,
        n_trimmed=trimmed,
    )


def fit_aipw(
    data: pd.DataFrame,
    outcome: str,
    treatment: str,
    covariates: list[str],
    estimand: Estimand = "ATE",
    cluster: str | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Augmented inverse-probability-weighted (doubly robust) estimate of the ATE or ATT.

    Parameters
    ----------
    data
        One row per participant, complete cases. Not modified.
    outcome
        Numeric outcome column.
    treatment
        Bool or 0/1 treatment column.
    covariates
        Covariates of both the propensity model (logistic) and the outcome models (OLS fitted
        separately in each arm), entered as in :func:`fit_propensity`.
    estimand
        ``"ATE"`` or ``"ATT"``.
    cluster
        Column identifying clusters for cluster-robust errors, or ``None``.
    alpha
        1 - confidence level.

    Returns
    -------
    pandas.DataFrame
        Tidy estimate frame with one row: ``method="aipw"``,
        ``effect_measure="mean_difference"`` (outcome units, treated minus control), ``se``
        from the influence function, normal-theory ``ci_low`` / ``ci_high`` / ``p_value``,
        ``n_treated``, ``n_control``, ``n_clusters`` (NaN unless ``cluster``).

    Raises
    ------
    ValueError
        Invalid inputs; a fitted propensity of exactly 0 or 1 where the estimator divides by
        it; an arm too small or too homogeneous for its outcome regression.

    Notes
    -----
    With ``m1(x)``, ``m0(x)`` the OLS predictions of the treated- and control-arm outcome
    regressions, ``e(x)`` the logistic propensity, ``p = n_t / n``:

    ATE (Robins, Rotnitzky & Zhao 1994; Lunceford & Davidian 2004, eq. 9)::

        psi_i = m1_i - m0_i + T_i (Y_i - m1_i) / e_i - (1 - T_i) (Y_i - m0_i) / (1 - e_i)
        tau   = mean(psi),   IF_i = psi_i - tau

    ATT (Hahn 1998; Moodie, Saarela & Stephens 2018)::

        tau   = [sum T_i (Y_i - m0_i) - sum (1 - T_i) e_i / (1 - e_i) (Y_i - m0_i)] / n_t
        IF_i  = [T_i (Y_i - m0_i - tau) - (1 - T_i) e_i / (1 - e_i) (Y_i - m0_i)] / p

    ``SE = sqrt(sum IF_i^2) / n`` (Lunceford & Davidian 2004, eq. 21). With ``cluster``,
    the influence function is summed within clusters first:
    ``SE^2 = G / (G - 1) * sum_g (sum_{i in g} IF_i)^2 / n^2``. Both influence functions are
    Neyman-orthogonal, so the first-order effect of estimating ``e``, ``m0`` and ``m1`` is
    zero when both models are correct; the estimate is consistent if either is.

    Checked against an independent numpy implementation, g-computation when the propensity
    is constant, and a nonparametric bootstrap of the SE (tests/test_weighting.py).

    References
    ----------
    Lunceford JK, Davidian M. Stat Med 2004;23:2937-2960. doi:10.1002/sim.1903

    Glynn AN, Quinn KM. An introduction to the augmented inverse propensity weighted
    estimator. Political Analysis 2010;18:36-56. doi:10.1093/pan/mpp036

    Hahn J. On the role of the propensity score in efficient semiparametric estimation of
    average treatment effects. Econometrica 1998;66:315-331. doi:10.2307/2998560

    Moodie EEM, Saarela O, Stephens DA. A doubly robust weighting estimator of the average
    treatment effect on the treated. Stat 2018;7:e205. doi:10.1002/sta4.205

    Examples
    --------
    >>> fit_aipw(cc, "function_discharge", "etmi", ["age", "depression_anxiety"],
    ...          estimand="ATT", cluster="therapist_index")
    """
    _check_frame(data, treatment=treatment, covariates=covariates, outcome=outcome, cluster=cluster)
    estimand = _check_estimand(estimand)
    _check_alpha(alpha)
    t = _treatment_array(data[treatment], treatment)
    y = data[outcome].to_numpy(dtype=float)
    X = _design(data, covariates)
    fit = _fit_logistic(X, t)
    e = fit.propensity
    n, n1 = len(t), int(t.sum())
    T = t.astype(float)

    if estimand == "ATE":
        bad = (t & (e <= 0)) | (~t & (e >= 1))
        if bad.any():
            raise ValueError(
                f"{int(bad.sum())} units have a fitted propensity of exactly 0 or 1 "
                "(no overlap): the AIPW estimate of the ATE is undefined; restrict the "
                "population or revise the covariates"
            )
        m1 = X @ _ols(X[t], y[t], "treated")
        m0 = X @ _ols(X[~t], y[~t], "control")
        psi = m1 - m0 + T * (y - m1) / e - (1 - T) * (y - m0) / (1 - e)
        estimate = float(psi.mean())
        influence = psi - estimate
    else:
        if (~t & (e >= 1)).any():
            raise ValueError(
                f"{int((~t & (e >= 1)).sum())} control units have a fitted propensity of "
                "exactly 1 (no overlap): the AIPW estimate of the ATT is undefined"
            )
        m0 = X @ _ols(X[~t], y[~t], "control")
        residual = y - m0
        with np.errstate(divide="ignore"):
            odds = np.where(t, 0.0, e / (1 - e))  # treated units with e = 1 are allowed
        estimate = float((T * residual - (1 - T) * odds * residual).sum() / n1)
        influence = (T * (residual - estimate) - (1 - T) * odds * residual) / (n1 / n)

    if cluster is None:
        se = float(np.sqrt(np.sum(influence**2)) / n)
        n_clusters = np.nan
        errors = "SE from the empirical influence function"
    else:
        codes = pd.factorize(data[cluster].to_numpy())[0]
        n_clusters = int(codes.max()) + 1
        sums = np.bincount(codes, weights=influence, minlength=n_clusters)
        se = float(np.sqrt(n_clusters / (n_clusters - 1) * np.sum(sums**2)) / n)
        errors = f"SE from the influence function summed within {cluster} (G/(G-1) corrected)"

    messages = [*fit.warnings]
    overlap = check_overlap(e, t)
    if not overlap["adequate"]:
        messages.append(overlap["message"])
    arms = "each arm" if estimand == "ATE" else "the control arm"
    description = (
        f"AIPW (doubly robust) {estimand} of {treatment} on {outcome}: OLS outcome model in "
        f"{arms} and logistic propensity on {_covariate_text(covariates)}; {errors}"
    )
    row = estimate_row(
        method="aipw",
        estimand=estimand,
        effect_measure="mean_difference",
        term=f"{treatment}: treated vs control",
        n_treated=n1,
        n_control=n - n1,
        n_clusters=n_clusters,
        model=description,
        converged=fit.converged,
        warning="; ".join(messages),
        **_normal_inference(estimate, se, alpha),
    )
    return estimates_frame([row])


# ---------------------------------------------------------------------------------------------
# Private helpers
# ---------------------------------------------------------------------------------------------


def _check_frame(
    data: pd.DataFrame,
    *,
    treatment: str,
    covariates: list[str],
    outcome: str | None = None,
    cluster: str | None = None,
) -> None:
    """Raise a ValueError naming the column when the analysis frame cannot be used."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if isinstance(covariates, str):
        raise ValueError(
            f'covariates must be a list of column names, got the string "{covariates}"'
        )
    covariates = list(covariates)
    if len(data) == 0:
        raise ValueError("data has no rows")
    roles = {"treatment": [treatment], "covariates": covariates}
    if outcome is not None:
        roles["outcome"] = [outcome]
    if cluster is not None:
        roles["cluster"] = [cluster]
    for role, columns in roles.items():
        for column in columns:
            if column not in data.columns:
                raise ValueError(f'{role} column "{column}" not in data')
    duplicated = sorted({c for c in covariates if covariates.count(c) > 1})
    if duplicated:
        raise ValueError(f"covariates listed more than once: {duplicated}")
    for role, column in (("treatment", treatment), ("outcome", outcome)):
        if column is not None and column in covariates:
            raise ValueError(f'{role} column "{column}" is also listed as a covariate')

    used = [treatment, *covariates] + [c for c in (outcome, cluster) if c is not None]
    missing = data[used].isna().sum()
    missing = missing[missing > 0]
    if len(missing):
        detail = ", ".join(f'"{c}" ({n} of {len(data)})' for c, n in missing.items())
        raise ValueError(
            f"missing values in {detail}: pass complete cases (e.g. drop rows with a missing "
            "outcome) or impute before weighting"
        )
    _treatment_array(data[treatment], treatment)
    if outcome is not None:
        column = data[outcome]
        if is_bool_dtype(column) or not is_numeric_dtype(column):
            raise ValueError(f'outcome column "{outcome}" must be numeric, got {column.dtype}')
        if not np.isfinite(column.to_numpy(dtype=float)).all():
            raise ValueError(f'outcome column "{outcome}" has infinite values')
    if cluster is not None and data[cluster].nunique() < 2:
        raise ValueError(f'cluster column "{cluster}" needs at least 2 clusters')
    for column in covariates:
        values = data[column]
        if is_numeric_dtype(values) and not is_bool_dtype(values):
            array = values.to_numpy(dtype=float)
            if not np.isfinite(array).all():
                raise ValueError(f'covariate "{column}" has infinite values')
            constant = array.min() == array.max()
        else:
            constant = values.nunique() < 2
        if constant:
            raise ValueError(
                f'covariate "{column}" takes a single value in data: it cannot adjust for '
                "anything; drop it from covariates"
            )


def _binary_array(values: Any, name: str) -> np.ndarray:
    """A 0/1 or bool vector as a bool array, or a ValueError naming it."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if series.isna().any():
        raise ValueError(f'"{name}" has {int(series.isna().sum())} missing values')
    if is_bool_dtype(series):
        return series.to_numpy(dtype=bool)
    if is_numeric_dtype(series):
        array = series.to_numpy(dtype=float)
        if np.isin(array, (0.0, 1.0)).all():
            return array == 1.0
    raise ValueError(
        f'"{name}" must be bool or 0/1 (True / 1 = treated), got dtype {series.dtype}; '
        f"recode it, e.g. data.assign({name}=data['arm'] == 'etmi')"
    )


def _treatment_array(values: pd.Series, name: str) -> np.ndarray:
    """The treatment column as bools, with both arms present."""
    t = _binary_array(values, f"treatment column {name}")
    if t.all() or not t.any():
        arm = "control" if t.all() else "treated"
        raise ValueError(f'treatment column "{name}" has no {arm} units: both arms are needed')
    return t


def _check_estimand(estimand: str) -> str:
    """The estimand, upper-cased, or a ValueError."""
    if not isinstance(estimand, str) or estimand.upper() not in ESTIMANDS:
        raise ValueError(f'estimand must be "ATE" or "ATT", got {estimand!r}')
    return estimand.upper()


def _check_alpha(alpha: float) -> None:
    """Raise unless 0 < alpha < 1."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")


def _check_propensity_treated(
    propensity: Any, treated: Any
) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Propensity as floats in [0, 1] and treatment as bools, of equal length, plus the index."""
    both_series = isinstance(propensity, pd.Series) and isinstance(treated, pd.Series)
    if both_series and not propensity.index.equals(treated.index):
        raise ValueError("propensity and treated have different indices: align them first")
    e = np.asarray(propensity, dtype=float)
    if e.ndim != 1:
        raise ValueError(f"propensity must be one-dimensional, got shape {e.shape}")
    t = _binary_array(treated, "treated")
    if len(e) != len(t):
        raise ValueError(f"propensity has {len(e)} values but treated has {len(t)}")
    if np.isnan(e).any():
        raise ValueError(f"propensity has {int(np.isnan(e).sum())} missing values")
    if ((e < 0) | (e > 1)).any():
        raise ValueError("propensity must lie in [0, 1]: pass probabilities, not logits")
    if t.all() or not t.any():
        raise ValueError("treated must contain both treated and control units")
    index = propensity.index if isinstance(propensity, pd.Series) else pd.RangeIndex(len(e))
    return e, t, index


def _trim_mask(e: np.ndarray, trim: tuple[float, float] | None) -> np.ndarray:
    """True for units kept by Crump-style trimming to [low, high]."""
    if trim is None:
        return np.ones(len(e), dtype=bool)
    if not isinstance(trim, tuple | list) or len(trim) != 2:
        raise ValueError(f"trim must be a (low, high) pair of propensities, got {trim!r}")
    low, high = float(trim[0]), float(trim[1])
    if not 0 <= low < high <= 1:
        raise ValueError(f"trim must satisfy 0 <= low < high <= 1, got ({low}, {high})")
    return (e >= low) & (e <= high)


def _weights(
    e: np.ndarray, t: np.ndarray, keep: np.ndarray, estimand: str, stabilise: bool
) -> np.ndarray:
    """Weights of :func:`compute_weights` from validated arrays (0 where not kept)."""
    n1, n0 = int((keep & t).sum()), int((keep & ~t).sum())
    if n1 == 0 or n0 == 0:
        arm = "treated" if n1 == 0 else "control"
        raise ValueError(f"no {arm} units left after trimming: widen trim")
    # Under the ATT, treated units get weight 1 whatever their propensity.
    infinite = keep & ~t & (e >= 1)
    if estimand == "ATE":
        infinite |= keep & t & (e <= 0)
    if infinite.any():
        raise ValueError(
            f"{int(infinite.sum())} units have propensity exactly 0 (treated) or 1 (control): "
            f"their {estimand} weights are infinite; trim (e.g. trim=(0.01, 0.99)) or revise "
            "the propensity model"
        )
    # Units whose weight would be infinite were refused above or are trimmed (weight 0 below).
    with np.errstate(divide="ignore", invalid="ignore"):
        if estimand == "ATE":
            w = np.where(t, 1 / e, 1 / (1 - e))
            if stabilise:
                p = n1 / (n1 + n0)
                w = w * np.where(t, p, 1 - p)
        else:
            w = np.where(t, 1.0, e / (1 - e))
    w = np.where(keep, w, 0.0)
    if estimand == "ATT" and stabilise:
        control_sum = w[~t].sum()
        if control_sum <= 0:
            raise ValueError(
                "every retained control unit has propensity 0: no control resembles the "
                "treated, so the ATT cannot be estimated"
            )
        w = np.where(t, w, w * (n0 / control_sum))
    return w


def _check_weights(
    weights: Any, n: int, t: np.ndarray, index: pd.Index | None = None
) -> np.ndarray:
    """Weights as a float array: right length, aligned, finite, >= 0, positive in each arm."""
    if isinstance(weights, pd.Series) and index is not None and not weights.index.equals(index):
        raise ValueError(
            "weights are not indexed like data: align them (weights.reindex(data.index))"
        )
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or len(w) != n:
        raise ValueError(f"weights must be a vector of length {n}, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"weights have {int((~np.isfinite(w)).sum())} missing or infinite values")
    if (w < 0).any():
        raise ValueError(f"weights must be non-negative; {int((w < 0).sum())} are negative")
    for arm, mask in (("treated", t), ("control", ~t)):
        if w[mask].sum() <= 0:
            raise ValueError(f"the {arm} arm has no positive weight")
    return w


def _covariate_frame(
    data: pd.DataFrame, covariates: list[str], *, drop_first: bool
) -> pd.DataFrame:
    """Covariates as float columns: numeric as is, bool as 0/1, categories as ``name=level`` dummies."""
    parts: list[pd.Series | pd.DataFrame] = []
    for name in covariates:
        column = data[name]
        if is_bool_dtype(column) or is_numeric_dtype(column):
            parts.append(pd.Series(column.to_numpy(dtype=float), index=data.index, name=name))
        else:
            levels = column.astype("category").cat.remove_unused_categories()
            parts.append(
                pd.get_dummies(
                    levels, prefix=name, prefix_sep="=", drop_first=drop_first, dtype=float
                )
            )
    if not parts:
        return pd.DataFrame(index=data.index)
    return pd.concat(parts, axis=1)


def _design(data: pd.DataFrame, covariates: list[str]) -> np.ndarray:
    """Model matrix: intercept plus :func:`_covariate_frame` (first level dropped), full rank."""
    terms = _covariate_frame(data, covariates, drop_first=True)
    X = np.column_stack([np.ones(len(data)), terms.to_numpy(dtype=float)])
    # Scaled Gram matrix: cheap at any n, and scale-free so years and 0/1 columns compare.
    gram = X.T @ X
    scale = np.sqrt(np.diag(gram))
    eigen = np.linalg.eigvalsh(gram / np.outer(scale, scale))
    if eigen.min() < 1e-10 * eigen.max():
        raise ValueError(
            f"covariates {list(terms.columns)} are collinear (with each other or the "
            "intercept): drop redundant columns or dummy levels"
        )
    return X


def _fit_logistic(X: np.ndarray, t: np.ndarray) -> _PropensityFit:
    """Logistic regression by Newton-Raphson; fitted probabilities and optimiser messages."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = sm.Logit(t.astype(float), X).fit(method="newton", maxiter=100, disp=0)
    messages = tuple(dict.fromkeys(str(w.message) for w in caught))
    converged = bool(result.mle_retvals.get("converged", True))
    return _PropensityFit(propensity=result.predict(X), converged=converged, warnings=messages)


def _ols(X: np.ndarray, y: np.ndarray, arm: str) -> np.ndarray:
    """OLS coefficients of one arm's outcome regression, refusing rank-deficient fits."""
    if len(y) <= X.shape[1]:
        raise ValueError(
            f"the {arm} arm has {len(y)} units, too few for an outcome regression with "
            f"{X.shape[1]} terms"
        )
    beta, _, rank, _ = np.linalg.lstsq(X, y, rcond=None)
    if rank < X.shape[1]:
        raise ValueError(
            f"the outcome regression in the {arm} arm is rank deficient: a covariate or dummy "
            "level is constant within that arm; drop or merge it"
        )
    return beta


def _sample_variance(X: np.ndarray) -> np.ndarray:
    """Column variances with ddof = 1 (NaN for a single row)."""
    if len(X) < 2:
        return np.full(X.shape[1], np.nan)
    return X.var(axis=0, ddof=1)


def _weighted_variance(X: np.ndarray, w: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Reliability-weighted unbiased column variances (cobalt's col_w_sd squared)."""
    total = w.sum()
    return total / (total**2 - np.sum(w**2)) * (w @ (X - mean) ** 2)


def _standardise(difference: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """difference / denominator, with 0 for 0/0 (a term constant and equal in both arms)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((denominator == 0) & (difference == 0), 0.0, difference / denominator)


def _kish(w: np.ndarray) -> float:
    """Kish effective sample size (sum w)^2 / sum w^2."""
    return float(w.sum() ** 2 / np.sum(w**2))


def ipw_influence(
    y: np.ndarray, t: np.ndarray, e: np.ndarray, X: np.ndarray, keep: np.ndarray, estimand: str
) -> np.ndarray:
    """Influence function of the Hajek IPW estimate with a logistic propensity score estimated
    by maximum likelihood (stacked estimating equations).

    ATE: ``IF_i = a_i - b_i + (H1 - H0)' I^-1 S_i`` with ``a_i = k T (Y - mu1) / e / mean(k T / e)``,
    ``b_i = k (1 - T) (Y - mu0) / (1 - e) / mean(k (1 - T) / (1 - e))``, the propensity score
    ``S_i = X_i (T_i - e_i)``, its information ``I = mean(e (1 - e) X X')`` and ``H1``, ``H0``
    the mean derivatives of ``a`` and ``b`` with respect to the logistic coefficients. ATT: the
    same with ``a_i = k T (Y - mu1) / mean(k T)`` (no propensity derivative) and control weights
    ``e / (1 - e)``. ``k`` marks the units kept after trimming.

    References: Lunceford & Davidian, Stat Med 2004;23:2937-60 (section 3.2); Reifeis &
    Hudgens, Am J Epidemiol 2022;191:1092-7 (ATT). Checked against a nonparametric bootstrap
    that refits the propensity score in every resample (tests/test_weighting.py).
    """
    k = keep.astype(float)
    T = t.astype(float)
    n = len(y)
    e = np.clip(e, 1e-12, 1 - 1e-12)  # separated data: the estimate is already flagged
    score = X * (T - e)[:, None]
    information = (X * (e * (1 - e))[:, None]).T @ X / n
    if estimand == "ATE":
        w1, w0 = k * T / e, k * (1 - T) / (1 - e)
        mu1, mu0 = np.sum(w1 * y) / np.sum(w1), np.sum(w0 * y) / np.sum(w0)
        p1, p0 = w1.mean(), w0.mean()
        a = w1 * (y - mu1) / p1
        b = w0 * (y - mu0) / p0
        h1 = -((w1 * (y - mu1) * (1 - e))[:, None] * X).mean(axis=0) / p1
        h0 = ((w0 * (y - mu0) * e)[:, None] * X).mean(axis=0) / p0
    else:
        w1, w0 = k * T, k * (1 - T) * e / (1 - e)
        mu1, mu0 = np.sum(w1 * y) / np.sum(w1), np.sum(w0 * y) / np.sum(w0)
        a = w1 * (y - mu1) / w1.mean()
        b = w0 * (y - mu0) / w0.mean()
        h1 = np.zeros(X.shape[1])
        h0 = ((w0 * (y - mu0))[:, None] * X).mean(axis=0) / w0.mean()
    # theta_hat - theta ~ (psi_bar + A_beta' I^-1 S_bar) / p: the propensity term enters with a plus
    correction = score @ np.linalg.solve(information, h1 - h0)
    return a - b + correction


def _influence_se(influence: np.ndarray, groups: np.ndarray | None) -> float:
    """SE of a mean-zero influence function: sqrt(sum IF^2) / n, or summed within clusters (G/(G-1))."""
    n = len(influence)
    if groups is None:
        return float(np.sqrt(np.sum(influence**2)) / n)
    sums = np.bincount(groups, weights=influence)
    g = len(sums)
    return float(np.sqrt(g / (g - 1) * np.sum(sums**2)) / n)


def _normal_inference(estimate: float, se: float, alpha: float) -> dict[str, float]:
    """Estimate, SE, normal-theory CI and two-sided p value."""
    z = stats.norm.ppf(1 - alpha / 2)
    return {
        "estimate": estimate,
        "se": se,
        "ci_low": estimate - z * se,
        "ci_high": estimate + z * se,
        "p_value": float(2 * stats.norm.sf(abs(estimate / se))) if se > 0 else np.nan,
    }


def _covariate_text(covariates: list[str]) -> str:
    """Covariates in words for the ``model`` column."""
    return ", ".join(covariates) if covariates else "an intercept only"
