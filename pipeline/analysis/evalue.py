"""E-values: how strong unmeasured confounding would have to be to explain an effect away.

The E-value (VanderWeele & Ding 2017) is the minimum strength of association, on the risk
ratio scale, that an unmeasured confounder would need with both treatment and outcome,
conditional on the measured covariates, to fully explain away an observed association.
``evalue_*`` functions take one estimate and return a dict; :func:`add_evalues` adds E-values
to a tidy estimates frame by effect measure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

# VanderWeele & Ding (2017) Table 2: log RR ~= 0.91 d for a standardised mean difference d.
SMD_TO_LOG_RR = 0.91


def _evalue_point(rr: float) -> float:
    """E-value of a risk ratio: RR + sqrt(RR (RR - 1)), after inverting RR < 1."""
    rr = 1.0 / rr if rr < 1.0 else rr
    return rr + math.sqrt(rr * (rr - 1.0))


def _is_given(value: float | None) -> bool:
    """True unless value is None or NaN."""
    return value is not None and not (isinstance(value, float | np.floating) and np.isnan(value))


def _check_ratio(name: str, value: float) -> None:
    """Raise ValueError unless value is a finite number > 0."""
    if not (isinstance(value, int | float | np.number) and np.isfinite(value) and value > 0):
        raise ValueError(
            f"{name} must be a finite ratio > 0 (natural scale, not logged), got {value!r}"
        )


def evalue_ratio(
    estimate: float, ci_low: float | None = None, ci_high: float | None = None
) -> dict[str, float]:
    """E-value for a risk ratio and for the confidence limit closest to 1.

    Parameters
    ----------
    estimate : float
        Observed risk ratio (> 0, natural scale).
    ci_low, ci_high : float, optional
        Confidence limits of the risk ratio. Only the limit closer to 1 is used (``ci_low``
        when the estimate is above 1, ``ci_high`` when below); if that limit is not given,
        ``evalue_ci`` is NaN.

    Returns
    -------
    dict
        ``evalue_estimate``
            E-value of the point estimate, ``RR* + sqrt(RR* (RR* - 1))`` with
            ``RR* = RR`` if RR >= 1 and ``1/RR`` otherwise (unitless, >= 1).
        ``evalue_ci``
            the same formula applied to the confidence limit closest to 1; exactly 1 when the
            interval includes 1; NaN when that limit was not given.
        ``rr``, ``rr_ci_low``, ``rr_ci_high``
            the risk ratio and limits the E-values were computed from (here, the inputs).

    Raises
    ------
    ValueError
        If a value is not a finite number > 0, or the limits do not bracket the estimate.

    Notes
    -----
    Formula from VanderWeele & Ding (2017), equation in the section "The E-value", derived
    from the bounding factor of Ding & VanderWeele (2016). Checked against the hand
    calculation for RR = 3.9 (95% CI 1.8 to 8.7): E = 3.9 + sqrt(3.9 x 2.9) = 7.26 and
    E_CI = 1.8 + sqrt(1.8 x 0.8) = 3.00 (``tests/test_evalue.py``).

    References
    ----------
    VanderWeele TJ, Ding P. Sensitivity analysis in observational research: introducing the
    E-value. *Ann Intern Med* 2017;167:268-274. doi:10.7326/M16-2607.

    Ding P, VanderWeele TJ. Sensitivity analysis without assumptions. *Epidemiology*
    2016;27:368-377. doi:10.1097/EDE.0000000000000457.

    Examples
    --------
    >>> {k: round(v, 2) for k, v in evalue_ratio(3.9, 1.8, 8.7).items() if k.startswith("e")}
    {'evalue_estimate': 7.26, 'evalue_ci': 3.0}
    """
    _check_ratio("estimate", estimate)
    given_low, given_high = _is_given(ci_low), _is_given(ci_high)
    if given_low:
        _check_ratio("ci_low", ci_low)
        if ci_low > estimate:
            raise ValueError(f"ci_low ({ci_low}) is above the estimate ({estimate})")
    if given_high:
        _check_ratio("ci_high", ci_high)
        if ci_high < estimate:
            raise ValueError(f"ci_high ({ci_high}) is below the estimate ({estimate})")

    if (given_low and ci_low <= 1.0 <= estimate) or (given_high and estimate <= 1.0 <= ci_high):
        evalue_ci = 1.0  # the interval includes the null
    elif estimate > 1.0 and given_low:
        evalue_ci = _evalue_point(ci_low)
    elif estimate < 1.0 and given_high:
        evalue_ci = _evalue_point(ci_high)
    else:
        evalue_ci = np.nan
    return {
        "evalue_estimate": _evalue_point(estimate),
        "evalue_ci": evalue_ci,
        "rr": float(estimate),
        "rr_ci_low": float(ci_low) if given_low else np.nan,
        "rr_ci_high": float(ci_high) if given_high else np.nan,
    }


def _evalue_converted(
    convert: Any, estimate: float, ci_low: float | None, ci_high: float | None
) -> dict[str, float]:
    """E-values after mapping the estimate and limits to the risk ratio scale with ``convert``."""
    _check_ratio("estimate", estimate)
    for name, limit in (("ci_low", ci_low), ("ci_high", ci_high)):
        if _is_given(limit):
            _check_ratio(name, limit)
    return evalue_ratio(
        convert(estimate),
        convert(ci_low) if _is_given(ci_low) else None,
        convert(ci_high) if _is_given(ci_high) else None,
    )


def evalue_odds_ratio(
    estimate: float,
    ci_low: float | None = None,
    ci_high: float | None = None,
    rare_outcome: bool = False,
) -> dict[str, float]:
    """E-value for an odds ratio, approximating the risk ratio first.

    Parameters
    ----------
    estimate : float
        Observed odds ratio (> 0, natural scale).
    ci_low, ci_high : float, optional
        Confidence limits of the odds ratio.
    rare_outcome : bool, default False
        True when the outcome is rare (under about 15% at the end of follow-up in every
        group): the OR then approximates the RR and is used as is. False (the default, and
        the conservative choice) uses the square-root approximation ``RR ~= sqrt(OR)``.

    Returns
    -------
    dict
        ``evalue_estimate``, ``evalue_ci`` as in :func:`evalue_ratio`, plus ``rr``,
        ``rr_ci_low``, ``rr_ci_high``: the approximate risk ratio and limits used.

    Raises
    ------
    ValueError
        As :func:`evalue_ratio`.

    Notes
    -----
    Conversions from VanderWeele & Ding (2017), Table 2 (rare outcome: RR ~= OR; common
    outcome: RR ~= sqrt(OR)); the square-root approximation is from VanderWeele (2017).
    Checked by hand in ``tests/test_evalue.py``.

    References
    ----------
    VanderWeele TJ, Ding P. Sensitivity analysis in observational research: introducing the
    E-value. *Ann Intern Med* 2017;167:268-274. doi:10.7326/M16-2607.

    VanderWeele TJ. On a square-root transformation of the odds ratio for a common outcome.
    *Epidemiology* 2017;28:e58-e60. doi:10.1097/EDE.0000000000000733.
    """
    convert = (lambda x: float(x)) if rare_outcome else math.sqrt
    return _evalue_converted(convert, estimate, ci_low, ci_high)


def _hazard_to_risk_ratio(ratio: float) -> float:
    """VanderWeele & Ding (2017) Table 2 common-outcome conversion of a hazard ratio to a RR."""
    return (1.0 - 0.5 ** math.sqrt(ratio)) / (1.0 - 0.5 ** math.sqrt(1.0 / ratio))


def evalue_rate_ratio(
    estimate: float,
    ci_low: float | None = None,
    ci_high: float | None = None,
    rare_outcome: bool = False,
) -> dict[str, float]:
    """E-value for a rate (or hazard) ratio, approximating the risk ratio first.

    Parameters
    ----------
    estimate : float
        Observed rate ratio (> 0, natural scale).
    ci_low, ci_high : float, optional
        Confidence limits of the rate ratio.
    rare_outcome : bool, default False
        True when the event is rare (cumulative risk under about 15%): the rate ratio then
        approximates the risk ratio and is used as is. False (the default, conservative)
        applies the common-outcome conversion ``RR ~= (1 - 0.5^sqrt(HR)) /
        (1 - 0.5^sqrt(1/HR))``.

    Returns
    -------
    dict
        ``evalue_estimate``, ``evalue_ci`` as in :func:`evalue_ratio`, plus ``rr``,
        ``rr_ci_low``, ``rr_ci_high``: the approximate risk ratio and limits used.

    Raises
    ------
    ValueError
        As :func:`evalue_ratio`.

    Notes
    -----
    VanderWeele & Ding (2017) Table 2 gives the common-outcome conversion for hazard ratios;
    here a rate ratio is treated as a hazard ratio (constant rates within groups, as in a
    Poisson or negative binomial model of event counts). This is an assumption: for counts of
    recurrent events (e.g. visits), the conversion is only a rough guide, and the rare-outcome
    setting should be used only when the proportion with any event is small. Checked by hand
    in ``tests/test_evalue.py``.

    References
    ----------
    VanderWeele TJ, Ding P. Sensitivity analysis in observational research: introducing the
    E-value. *Ann Intern Med* 2017;167:268-274. doi:10.7326/M16-2607.

    VanderWeele TJ. Optimal approximate conversions of odds ratios and hazard ratios to risk
    ratios. *Biometrics* 2020;76:746-752. doi:10.1111/biom.13197.
    """
    convert = (lambda x: float(x)) if rare_outcome else _hazard_to_risk_ratio
    return _evalue_converted(convert, estimate, ci_low, ci_high)


def evalue_mean_difference(
    estimate: float,
    se: float | None,
    sd: float,
    ci_low: float | None = None,
    ci_high: float | None = None,
    alpha: float = 0.05,
) -> dict[str, float]:
    """E-value for a difference in means, via the standardised difference.

    Parameters
    ----------
    estimate : float
        Mean difference (treatment - control), in outcome units.
    se : float or None
        Its standard error; used for the interval only when ``ci_low``/``ci_high`` are not
        given. ``None`` if unknown.
    sd : float
        Standard deviation of the outcome (> 0) used to standardise: ideally the SD within
        groups given covariates; the marginal SD is conservative.
    ci_low, ci_high : float, optional
        Confidence limits of the mean difference (outcome units). When given, they are used
        instead of ``estimate -/+ z se``.
    alpha : float, default 0.05
        Interval level when it is built from ``se``.

    Returns
    -------
    dict
        ``evalue_estimate``, ``evalue_ci`` as in :func:`evalue_ratio`, plus ``rr``,
        ``rr_ci_low``, ``rr_ci_high``: the approximate risk ratios ``exp(0.91 d)`` at the
        estimate and at the limits, and ``d``, the standardised difference ``estimate / sd``.

    Raises
    ------
    ValueError
        If ``sd`` is not > 0, a value is not finite, or the limits do not bracket the estimate.

    Notes
    -----
    VanderWeele & Ding (2017), Table 2, continuous outcome: with ``d = estimate / sd``,
    ``RR ~= exp(0.91 d)`` and interval ``exp(0.91 d -/+ 1.78 s_d)`` (1.78 = 0.91 x 1.96).
    Here the interval limits themselves are standardised and mapped, i.e.
    ``exp(0.91 ci_low / sd)``, which equals the published form with the exact normal
    quantile. The SD is treated as known. Checked by hand in ``tests/test_evalue.py``.

    References
    ----------
    VanderWeele TJ, Ding P. Sensitivity analysis in observational research: introducing the
    E-value. *Ann Intern Med* 2017;167:268-274. doi:10.7326/M16-2607.

    Hasselblad V, Hedges LV. Meta-analysis of screening and diagnostic tests. *Psychol Bull*
    1995;117:167-178. doi:10.1037/0033-2909.117.1.167.
    """
    if not (np.isfinite(sd) and sd > 0):
        raise ValueError(f"sd must be a finite standard deviation > 0, got {sd!r}")
    if not np.isfinite(estimate):
        raise ValueError(f"estimate must be a finite number, got {estimate!r}")
    if not (_is_given(ci_low) or _is_given(ci_high)) and _is_given(se):
        if not (np.isfinite(se) and se >= 0):
            raise ValueError(f"se must be a finite number >= 0, got {se!r}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
        z = stats.norm.isf(alpha / 2.0)
        ci_low, ci_high = estimate - z * se, estimate + z * se
    for name, limit in (("ci_low", ci_low), ("ci_high", ci_high)):
        if _is_given(limit) and not np.isfinite(limit):
            raise ValueError(f"{name} must be finite, got {limit!r}")
    if _is_given(ci_low) and ci_low > estimate:
        raise ValueError(f"ci_low ({ci_low}) is above the estimate ({estimate})")
    if _is_given(ci_high) and ci_high < estimate:
        raise ValueError(f"ci_high ({ci_high}) is below the estimate ({estimate})")

    def to_rr(x: float) -> float:
        return math.exp(SMD_TO_LOG_RR * x / sd)

    result = evalue_ratio(
        to_rr(estimate),
        to_rr(ci_low) if _is_given(ci_low) else None,
        to_rr(ci_high) if _is_given(ci_high) else None,
    )
    return {**result, "d": estimate / sd}


EVALUE_MEASURES: tuple[str, ...] = (
    "risk_ratio",
    "odds_ratio",
    "rate_ratio",
    "mean_difference",
    "hedges_g",
)


def add_evalues(
    estimates: pd.DataFrame,
    outcome_sd: Mapping[str, float] | None = None,
    sd_key: str = "outcome",
    rare_outcome: bool = False,
) -> pd.DataFrame:
    """Add E-values to each tidy estimate row, chosen by its effect measure.

    Parameters
    ----------
    estimates : pandas.DataFrame
        Tidy estimates with ``effect_measure``, ``estimate``, ``ci_low``, ``ci_high``.
        Not modified.
    outcome_sd : mapping of str to float, optional
        Outcome standard deviations for ``mean_difference`` rows, keyed by the value of the
        ``sd_key`` column. Mean-difference rows without an SD get NaN.
    sd_key : str, default "outcome"
        Column whose value looks up ``outcome_sd``; required when ``outcome_sd`` is given.
    rare_outcome : bool, default False
        Passed to :func:`evalue_odds_ratio` and :func:`evalue_rate_ratio`; the default uses
        the (conservative) common-outcome conversions.

    Returns
    -------
    pandas.DataFrame
        A copy of ``estimates`` with ``evalue_estimate`` and ``evalue_ci`` (unitless, >= 1):
        ``risk_ratio`` rows via :func:`evalue_ratio`, ``odds_ratio`` via
        :func:`evalue_odds_ratio`, ``rate_ratio`` via :func:`evalue_rate_ratio`,
        ``mean_difference`` via :func:`evalue_mean_difference` with the SD from
        ``outcome_sd``, ``hedges_g`` via :func:`evalue_mean_difference` with SD 1 (already
        standardised). NaN for every other measure (e.g. ``risk_difference``), for rows with
        a missing estimate, and ``evalue_ci`` NaN when the limits are missing.

    Raises
    ------
    ValueError
        If a required column is missing, the E-value columns already exist, an SD is not
        positive, or a row's values are invalid for its measure (e.g. a ratio <= 0).

    Notes
    -----
    E-values address unmeasured confounding in non-randomised comparisons. Whether a row
    needs one (e.g. not for a randomised comparison) is the caller's decision; this function
    computes them wherever the measure allows. Conversions and their references are in the
    ``evalue_*`` functions.

    References
    ----------
    VanderWeele TJ, Ding P. Sensitivity analysis in observational research: introducing the
    E-value. *Ann Intern Med* 2017;167:268-274. doi:10.7326/M16-2607.
    """
    required = ["effect_measure", "estimate", "ci_low", "ci_high"]
    missing = [c for c in required if c not in estimates.columns]
    if missing:
        raise ValueError(
            f"column(s) {missing} not in the estimates (columns: {list(estimates.columns)}): "
            "pass tidy estimate rows (see pipeline.analysis.tidy)"
        )
    existing = [c for c in ("evalue_estimate", "evalue_ci") if c in estimates.columns]
    if existing:
        raise ValueError(f"column(s) {existing} already present: drop them first")
    if outcome_sd is not None:
        if sd_key not in estimates.columns:
            raise ValueError(
                f'outcome_sd was given but column "{sd_key}" is not in the estimates: '
                "pass sd_key naming the column whose values are the keys of outcome_sd"
            )
        bad = {key: sd for key, sd in outcome_sd.items() if not (np.isfinite(sd) and sd > 0)}
        if bad:
            raise ValueError(f"outcome standard deviations must be finite and > 0: {bad}")

    point = np.full(len(estimates), np.nan)
    limit = np.full(len(estimates), np.nan)
    for position, (index, row) in enumerate(estimates.iterrows()):
        measure, value = row["effect_measure"], row["estimate"]
        if measure not in EVALUE_MEASURES or pd.isna(value):
            continue
        low = None if pd.isna(row["ci_low"]) else float(row["ci_low"])
        high = None if pd.isna(row["ci_high"]) else float(row["ci_high"])
        try:
            if measure == "risk_ratio":
                result = evalue_ratio(value, low, high)
            elif measure == "odds_ratio":
                result = evalue_odds_ratio(value, low, high, rare_outcome=rare_outcome)
            elif measure == "rate_ratio":
                result = evalue_rate_ratio(value, low, high, rare_outcome=rare_outcome)
            elif measure == "hedges_g":
                result = evalue_mean_difference(value, None, 1.0, low, high)
            else:  # mean_difference
                sd = None if outcome_sd is None else outcome_sd.get(row[sd_key])
                if sd is None:
                    continue
                result = evalue_mean_difference(value, None, sd, low, high)
        except ValueError as error:
            raise ValueError(f"row {index!r} ({measure}): {error}") from error
        point[position] = result["evalue_estimate"]
        limit[position] = result["evalue_ci"]
    return estimates.assign(evalue_estimate=point, evalue_ci=limit)
