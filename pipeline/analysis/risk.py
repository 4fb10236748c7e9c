"""Effect measures for a binary outcome in two groups, and the number needed to treat.

:func:`risk_measures` gives the risk difference (Newcombe hybrid score interval, with the
Wald interval alongside), risk ratio and odds ratio from a 2x2 table;
:func:`number_needed_to_treat` turns a risk difference and its interval into an NNT with
Altman's (1998) benefit/harm labelling.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def _check_counts(events: int, n: int, arm: str) -> None:
    """Raise ValueError unless 0 <= events <= n and n >= 1 are whole numbers."""
    for name, value in ((f"events_{arm}", events), (f"n_{arm}", n)):
        if not (isinstance(value, int | np.integer | float) and np.isfinite(value)) or value != int(
            value
        ):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
    if n < 1:
        raise ValueError(f"n_{arm} must be at least 1, got {n}")
    if not 0 <= events <= n:
        raise ValueError(f"events_{arm} must lie between 0 and n_{arm} ({n}), got {events}")


def _wilson_interval(events: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval for a proportion, without continuity correction (Newcombe method 3)."""
    p = events / n
    centre = 2 * n * p + z**2
    half = z * math.sqrt(z**2 + 4 * n * p * (1 - p))
    denominator = 2 * (n + z**2)
    return (centre - half) / denominator, (centre + half) / denominator


def risk_measures(
    events_t: int, n_t: int, events_c: int, n_c: int, alpha: float = 0.05
) -> dict[str, float | bool]:
    """Risk difference, risk ratio and odds ratio (treatment vs control) with intervals.

    Parameters
    ----------
    events_t, n_t : int
        Participants with the event, and participants, in the treatment group.
    events_c, n_c : int
        The same in the control group.
    alpha : float, default 0.05
        Intervals have level ``1 - alpha``.

    Returns
    -------
    dict
        ``risk_t``, ``risk_c``
            observed risks (proportions).
        ``rd``
            risk difference ``risk_t - risk_c`` (proportion; x100 for percentage points).
        ``rd_ci_low``, ``rd_ci_high``
            **main interval**: Newcombe's hybrid score interval (method 10), built from
            Wilson score intervals of each risk; stays within [-1, 1] and behaves at 0 events.
        ``rd_se``
            Wald standard error ``sqrt(r_t (1-r_t)/n_t + r_c (1-r_c)/n_c)``.
        ``rd_wald_ci_low``, ``rd_wald_ci_high``
            Wald interval ``rd -/+ z rd_se`` (for comparison; poor with few events).
        ``rr``, ``log_rr_se``, ``rr_ci_low``, ``rr_ci_high``
            risk ratio, SE of its log ``sqrt(1/a - 1/n_t + 1/c - 1/n_c)`` and the
            log-scale Wald interval, back-transformed.
        ``or``, ``log_or_se``, ``or_ci_low``, ``or_ci_high``
            odds ratio, SE of its log ``sqrt(1/a + 1/b + 1/c + 1/d)`` (Woolf) and the
            log-scale Wald interval, back-transformed.
        ``zero_cell_correction``
            True when 0.5 was added to every cell for the RR and OR because a cell was 0.

    Raises
    ------
    ValueError
        If counts are not whole numbers with ``0 <= events <= n`` and ``n >= 1``, or
        ``alpha`` is outside (0, 1).

    Notes
    -----
    Zero cells: when any of the four cells is 0, 0.5 is added to all four cells for the RR
    and OR (point estimates and SEs), as metafor's ``escalc`` default (``add = 1/2,
    to = "only0"``); the Haldane-Anscombe correction. When both groups have no events, or
    both have only events, the RR and OR carry no information and are NaN. The risk
    difference never uses a correction.

    Newcombe method 10: with Wilson limits ``(l_t, u_t)`` and ``(l_c, u_c)``,
    ``rd - sqrt((r_t - l_t)^2 + (u_c - r_c)^2)`` to ``rd + sqrt((u_t - r_t)^2 + (r_c - l_c)^2)``.
    Checked against Newcombe (1998) Table II example (a), 56/70 vs 48/80: RD 0.2000, 95% CI
    0.0524 to 0.3339, and against Wilson limits solved numerically from the score equation
    (``tests/test_risk.py``).

    References
    ----------
    Newcombe RG. Interval estimation for the difference between independent proportions:
    comparison of eleven methods. *Stat Med* 1998;17:873-890.
    doi:10.1002/(SICI)1097-0258(19980430)17:8<873::AID-SIM779>3.0.CO;2-I.

    Wilson EB. Probable inference, the law of succession, and statistical inference.
    *J Am Stat Assoc* 1927;22:209-212.

    Woolf B. On estimating the relation between blood group and disease. *Ann Hum Genet*
    1955;19:251-253.

    Altman DG. *Practical Statistics for Medical Research*. London: Chapman & Hall; 1991.

    Examples
    --------
    >>> result = risk_measures(56, 70, 48, 80)
    >>> round(result["rd"], 4), round(result["rd_ci_low"], 4), round(result["rd_ci_high"], 4)
    (0.2, 0.0524, 0.3339)
    """
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a number between 0 and 1 (e.g. 0.05), got {alpha!r}")
    _check_counts(events_t, n_t, "t")
    _check_counts(events_c, n_c, "c")
    z = float(stats.norm.isf(alpha / 2.0))

    risk_t, risk_c = events_t / n_t, events_c / n_c
    rd = risk_t - risk_c
    rd_se = math.sqrt(risk_t * (1 - risk_t) / n_t + risk_c * (1 - risk_c) / n_c)
    low_t, high_t = _wilson_interval(events_t, n_t, z)
    low_c, high_c = _wilson_interval(events_c, n_c, z)
    result: dict[str, float | bool] = {
        "risk_t": risk_t,
        "risk_c": risk_c,
        "rd": rd,
        "rd_ci_low": rd - math.sqrt((risk_t - low_t) ** 2 + (high_c - risk_c) ** 2),
        "rd_ci_high": rd + math.sqrt((high_t - risk_t) ** 2 + (risk_c - low_c) ** 2),
        "rd_se": rd_se,
        "rd_wald_ci_low": rd - z * rd_se,
        "rd_wald_ci_high": rd + z * rd_se,
    }

    a, b = float(events_t), float(n_t - events_t)
    c, d = float(events_c), float(n_c - events_c)
    uninformative = (a == 0 and c == 0) or (b == 0 and d == 0)
    correction = not uninformative and min(a, b, c, d) == 0
    if correction:
        a, b, c, d = a + 0.5, b + 0.5, c + 0.5, d + 0.5
    if uninformative:
        for key in ("rr", "log_rr_se", "rr_ci_low", "rr_ci_high"):
            result[key] = np.nan
        for key in ("or", "log_or_se", "or_ci_low", "or_ci_high"):
            result[key] = np.nan
    else:
        log_rr = math.log((a / (a + b)) / (c / (c + d)))
        log_rr_se = math.sqrt(1 / a - 1 / (a + b) + 1 / c - 1 / (c + d))
        log_or = math.log((a * d) / (b * c))
        log_or_se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
        result.update(
            {
                "rr": math.exp(log_rr),
                "log_rr_se": log_rr_se,
                "rr_ci_low": math.exp(log_rr - z * log_rr_se),
                "rr_ci_high": math.exp(log_rr + z * log_rr_se),
                "or": math.exp(log_or),
                "log_or_se": log_or_se,
                "or_ci_low": math.exp(log_or - z * log_or_se),
                "or_ci_high": math.exp(log_or + z * log_or_se),
            }
        )
    result["zero_cell_correction"] = correction
    return result


def _format_nnt(value: float) -> str:
    """An NNT for text: one decimal, trailing .0 dropped, infinity as the symbol."""
    if math.isinf(value):
        return "∞"
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def number_needed_to_treat(
    rd: float, rd_low: float, rd_high: float, *, event_is_beneficial: bool
) -> dict[str, float | str | bool]:
    """Number needed to treat, labelled benefit (NNTB) or harm (NNTH), with Altman's interval.

    Parameters
    ----------
    rd : float
        Risk difference, treatment risk minus control risk (a proportion in [-1, 1]).
    rd_low, rd_high : float
        Its confidence limits (e.g. Newcombe's from :func:`risk_measures`).
    event_is_beneficial : bool, keyword-only
        True if the event is good (e.g. "recovered"), so a positive ``rd`` is a benefit;
        False if it is bad (e.g. "chronic pain at 12 months"), so a negative ``rd`` is a
        benefit. Required: the direction cannot be guessed from the numbers.

    Returns
    -------
    dict
        ``arr``, ``arr_ci_low``, ``arr_ci_high``
            absolute risk reduction: the risk difference signed so that positive means
            benefit, with its limits in increasing order.
        ``nnt``
            ``1 / |arr|`` (participants); infinite when ``arr`` is 0.
        ``direction``
            "NNTB" (benefit), "NNTH" (harm) or "none" (``arr`` = 0).
        ``ci_low``, ``ci_high``
            the two NNT limits in the order Altman writes them, each labelled by
            ``ci_low_direction`` / ``ci_high_direction``. When the ARR interval excludes 0
            both limits have the same label and ``ci_low <= ci_high``: NNTB ``1/arr_ci_high``
            to ``1/arr_ci_low``, or NNTH ``1/|arr_ci_low|`` to ``1/|arr_ci_high|``. When it
            includes 0, ``ci_low`` is the NNTH limit ``1/|arr_ci_low|`` and ``ci_high`` the
            NNTB limit ``1/arr_ci_high``, and the interval runs from ``ci_low`` through
            infinity to ``ci_high``: **never** the values between them. A limit at ARR = 0
            is infinite.
        ``ci_low_direction``, ``ci_high_direction``
            "NNTB" or "NNTH".
        ``ci_crosses_zero``
            True when the ARR interval includes values on both sides of 0.
        ``text``
            e.g. "NNTB 10 (NNTB 6 to NNTB 33)" or "NNTB 10 (NNTH 20 to ∞ to NNTB 4)";
            numbers to one decimal (trailing .0 dropped). Conventional reporting rounds NNTs
            up to whole numbers; that is left to the report.

    Raises
    ------
    ValueError
        If a value is not finite, lies outside [-1, 1], or ``rd_low <= rd <= rd_high`` fails.

    Notes
    -----
    Altman (1998): the NNT interval is the reciprocal of the ARR limits, exchanged; when the
    ARR interval includes 0 it becomes two pieces joined through infinity ("NNTH x to ∞ to
    NNTB y"), and must not be reported as one continuous range between x and y. Checked
    against Altman's example (ARR 10%, 95% CI -5% to 25%: NNTB 10, NNTH 20 to ∞ to NNTB 4)
    and Barrowman (2002) (ARR 16.6%, CI 0.9% to 32.2%: NNT 6.0, CI 3.1 to 111.1); see
    ``tests/test_risk.py``.

    References
    ----------
    Altman DG. Confidence intervals for the number needed to treat. *BMJ*
    1998;317:1309-1312. doi:10.1136/bmj.317.7168.1309.

    Barrowman NJ. Missing the point (estimate)? Confidence intervals for the number needed
    to treat. *CMAJ* 2002;166:1676-1677.

    Examples
    --------
    >>> number_needed_to_treat(0.10, -0.05, 0.25, event_is_beneficial=True)["text"]
    'NNTB 10 (NNTH 20 to ∞ to NNTB 4)'
    """
    if not isinstance(event_is_beneficial, bool | np.bool_):
        raise ValueError(
            "event_is_beneficial must be True (the event is good, e.g. recovery) or False "
            f"(the event is bad, e.g. relapse), got {event_is_beneficial!r}"
        )
    for name, value in (("rd", rd), ("rd_low", rd_low), ("rd_high", rd_high)):
        if not (np.isfinite(value) and -1.0 <= value <= 1.0):
            raise ValueError(f"{name} must be a risk difference in [-1, 1], got {value!r}")
    if not rd_low <= rd <= rd_high:
        raise ValueError(
            f"expected rd_low <= rd <= rd_high, got {rd_low}, {rd}, {rd_high}: "
            "pass the estimate and its confidence limits in that order"
        )

    if event_is_beneficial:
        arr, arr_low, arr_high = float(rd), float(rd_low), float(rd_high)
    else:
        arr, arr_low, arr_high = -float(rd), -float(rd_high), -float(rd_low)

    def reciprocal(x: float) -> float:
        return math.inf if x == 0 else 1.0 / abs(x)

    direction = "NNTB" if arr > 0 else "NNTH" if arr < 0 else "none"
    nnt = reciprocal(arr)
    crosses = arr_low < 0 < arr_high
    if crosses:
        ci_low, low_dir = reciprocal(arr_low), "NNTH"
        ci_high, high_dir = reciprocal(arr_high), "NNTB"
        interval = f"NNTH {_format_nnt(ci_low)} to ∞ to NNTB {_format_nnt(ci_high)}"
    else:
        if arr_high > 0:  # the whole interval is benefit (its lower end may be 0)
            ci_low, ci_high, low_dir = reciprocal(arr_high), reciprocal(arr_low), "NNTB"
        elif arr_low < 0:  # the whole interval is harm (its upper end may be 0)
            ci_low, ci_high, low_dir = reciprocal(arr_low), reciprocal(arr_high), "NNTH"
        else:  # a degenerate interval at exactly 0
            ci_low, ci_high, low_dir = math.inf, math.inf, "NNTB"
        high_dir = low_dir
        interval = f"{low_dir} {_format_nnt(ci_low)} to {high_dir} {_format_nnt(ci_high)}"
    head = f"NNT {_format_nnt(nnt)}" if direction == "none" else f"{direction} {_format_nnt(nnt)}"
    return {
        "arr": arr,
        "arr_ci_low": arr_low,
        "arr_ci_high": arr_high,
        "nnt": nnt,
        "direction": direction,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "ci_low_direction": low_dir,
        "ci_high_direction": high_dir,
        "ci_crosses_zero": crosses,
        "text": f"{head} ({interval})",
    }
