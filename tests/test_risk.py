"""Tests for pipeline.analysis.risk (RD/RR/OR for a 2x2 table, and the NNT).

Reference values:

* Newcombe (1998), Stat Med 17:873-890, Table II, method 10 (hybrid score, no continuity
  correction). Example (a) 56/70 vs 48/80: RD 0.2000, 95% CI 0.0524 to 0.3339. Rows (b)-(h)
  as transcribed from the same table by other public implementations; (a), (b), (g) also
  appear as SAS reference values (with the Wald limits) in Lexjansen WUSS 2016 paper 127,
  p. 9, together with an HIV-trial example 84/101 vs 89/105. Every row is also recomputed
  here from Wilson score limits found by numerical root finding of the score equation.
* Altman (1998), BMJ 317:1309-1312: ARR 10% (95% CI -5% to 25%) gives NNTB 10 with the
  interval NNTH 20 to infinity to NNTB 4.
* Barrowman (2002), CMAJ 166:1676-1677: ARR 16.6% (0.9% to 32.2%) gives NNT 6 (3.1 to 111.1).
* RR/OR log-scale Wald intervals: hand calculations below.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from pipeline.analysis.risk import number_needed_to_treat, risk_measures

Z_975 = 1.959963984540054


def _wilson_by_root_finding(events: int, n: int, z: float = Z_975) -> tuple[float, float]:
    """Wilson limits: the p solving (p_hat - p)^2 = z^2 p (1 - p) / n on each side of p_hat."""
    p_hat = events / n

    def score(p: float) -> float:
        return (p_hat - p) ** 2 - z**2 * p * (1 - p) / n

    # At p_hat = 0 or 1 the score equation also has a root at p_hat itself: bracket away from it.
    inner_low = p_hat if events > 0 else 1e-12
    inner_high = p_hat if events < n else 1 - 1e-12
    low = 0.0 if events == 0 else optimize.brentq(score, 0.0, inner_high, xtol=1e-15)
    high = 1.0 if events == n else optimize.brentq(score, inner_low, 1.0, xtol=1e-15)
    return low, high


def _newcombe_independently(a: int, m: int, c: int, n: int) -> tuple[float, float]:
    p1, p2 = a / m, c / n
    l1, u1 = _wilson_by_root_finding(a, m)
    l2, u2 = _wilson_by_root_finding(c, n)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


NEWCOMBE_TABLE_II = [
    # (events_t, n_t, events_c, n_c), (lower, upper): Newcombe (1998) Table II, method 10
    ((56, 70, 48, 80), (0.0524, 0.3339)),  # (a)
    ((9, 10, 3, 10), (0.1705, 0.8090)),  # (b)
    ((6, 7, 2, 7), (0.0582, 0.8062)),  # (c)
    ((5, 56, 0, 29), (-0.0381, 0.1926)),  # (d)
    ((0, 10, 0, 20), (-0.1611, 0.2775)),  # (e)
    ((0, 10, 0, 10), (-0.2775, 0.2775)),  # (f)
    ((10, 10, 0, 20), (0.6791, 1.0000)),  # (g)
    ((10, 10, 0, 10), (0.6075, 1.0000)),  # (h)
]


@pytest.mark.parametrize(("counts", "published"), NEWCOMBE_TABLE_II)
def test_newcombe_interval_matches_table_ii(
    counts: tuple[int, int, int, int], published: tuple[float, float]
) -> None:
    result = risk_measures(*counts)
    assert result["rd_ci_low"] == pytest.approx(published[0], abs=5e-5)
    assert result["rd_ci_high"] == pytest.approx(published[1], abs=5e-5)
    low, high = _newcombe_independently(*counts)
    assert result["rd_ci_low"] == pytest.approx(low, abs=1e-10)
    assert result["rd_ci_high"] == pytest.approx(high, abs=1e-10)


def test_newcombe_example_a_point_estimate() -> None:
    # 56/70 - 48/80 = 0.8 - 0.6 = 0.2
    result = risk_measures(56, 70, 48, 80)
    assert result["rd"] == pytest.approx(0.2, abs=1e-12)
    assert (result["risk_t"], result["risk_c"]) == pytest.approx((0.8, 0.6))


@pytest.mark.parametrize(
    ("counts", "newcombe", "wald"),
    [
        # SAS reference values, WUSS 2016 paper 127 p. 9
        ((56, 70, 48, 80), (0.0524, 0.3339), (0.0575, 0.3425)),
        ((9, 10, 3, 10), (0.1705, 0.8090), (0.2605, 0.9395)),
        ((84, 101, 89, 105), (-0.1177, 0.0851), (-0.1162, 0.0843)),
    ],
)
def test_matches_sas_reference_values(
    counts: tuple[int, int, int, int],
    newcombe: tuple[float, float],
    wald: tuple[float, float],
) -> None:
    result = risk_measures(*counts)
    assert (result["rd_ci_low"], result["rd_ci_high"]) == pytest.approx(newcombe, abs=5e-5)
    assert (result["rd_wald_ci_low"], result["rd_wald_ci_high"]) == pytest.approx(wald, abs=5e-5)


def test_wald_rd_rr_or_by_hand() -> None:
    result = risk_measures(15, 100, 30, 100)
    # RD = 0.15 - 0.30 = -0.15; SE = sqrt(0.15 x 0.85 / 100 + 0.3 x 0.7 / 100) = sqrt(0.003375)
    rd_se = math.sqrt(0.003375)
    assert result["rd"] == pytest.approx(-0.15, abs=1e-12)
    assert result["rd_se"] == pytest.approx(rd_se, rel=1e-12)
    assert result["rd_wald_ci_low"] == pytest.approx(-0.15 - Z_975 * rd_se, rel=1e-9)
    # RR = 0.15 / 0.30 = 0.5; SE(log RR) = sqrt(1/15 - 1/100 + 1/30 - 1/100) = sqrt(0.08)
    assert result["rr"] == pytest.approx(0.5, rel=1e-12)
    assert result["log_rr_se"] == pytest.approx(math.sqrt(0.08), rel=1e-12)
    assert result["rr_ci_low"] == pytest.approx(0.5 * math.exp(-Z_975 * math.sqrt(0.08)), rel=1e-9)
    assert result["rr_ci_low"] == pytest.approx(0.2872, abs=5e-5)
    assert result["rr_ci_high"] == pytest.approx(0.8704, abs=5e-5)
    # OR = (15 x 70) / (85 x 30) = 1050 / 2550; SE(log OR) = sqrt(1/15 + 1/85 + 1/30 + 1/70)
    log_or_se = math.sqrt(1 / 15 + 1 / 85 + 1 / 30 + 1 / 70)
    assert result["or"] == pytest.approx(1050 / 2550, rel=1e-12)
    assert result["log_or_se"] == pytest.approx(log_or_se, rel=1e-12)
    assert result["or_ci_high"] == pytest.approx(
        1050 / 2550 * math.exp(Z_975 * log_or_se), rel=1e-9
    )
    assert result["zero_cell_correction"] is False


def test_zero_cell_adds_one_half_to_every_cell_for_ratios_only() -> None:
    result = risk_measures(0, 20, 5, 20)
    # Corrected table: a 0.5, b 20.5, c 5.5, d 15.5 (as metafor escalc, add = 1/2, to = "only0").
    assert result["zero_cell_correction"] is True
    assert result["rr"] == pytest.approx((0.5 / 21) / (5.5 / 21), rel=1e-12)
    assert result["log_rr_se"] == pytest.approx(
        math.sqrt(1 / 0.5 - 1 / 21 + 1 / 5.5 - 1 / 21), rel=1e-12
    )
    assert result["or"] == pytest.approx((0.5 * 15.5) / (20.5 * 5.5), rel=1e-12)
    assert result["log_or_se"] == pytest.approx(
        math.sqrt(1 / 0.5 + 1 / 20.5 + 1 / 5.5 + 1 / 15.5), rel=1e-12
    )
    # The risk difference is uncorrected: 0 - 0.25.
    assert result["rd"] == pytest.approx(-0.25, abs=1e-12)


@pytest.mark.parametrize("counts", [(0, 10, 0, 20), (10, 10, 20, 20)])
def test_ratios_are_nan_when_both_groups_agree_completely(counts: tuple) -> None:
    result = risk_measures(*counts)
    for key in ("rr", "rr_ci_low", "rr_ci_high", "or", "or_ci_low", "or_ci_high"):
        assert np.isnan(result[key])
    assert result["rd"] == pytest.approx(0.0, abs=1e-12)
    assert result["zero_cell_correction"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((11, 10, 5, 10), r"events_t must lie between 0 and n_t \(10\), got 11"),
        ((-1, 10, 5, 10), "events_t must lie between 0 and n_t"),
        ((2.5, 10, 5, 10), "events_t must be a whole number"),
        ((1, 0, 5, 10), "n_t must be at least 1"),
        ((1, 10, 5, 4), r"events_c must lie between 0 and n_c \(4\)"),
        ((1, 10, float("nan"), 10), "events_c must be a whole number"),
    ],
)
def test_bad_counts_are_refused(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        risk_measures(*args)


def test_bad_alpha_is_refused() -> None:
    with pytest.raises(ValueError, match="alpha must be a number between 0 and 1"):
        risk_measures(1, 10, 2, 10, alpha=5)


def test_altman_example_interval_through_infinity() -> None:
    result = number_needed_to_treat(0.10, -0.05, 0.25, event_is_beneficial=True)
    # 1 / 0.10 = 10 (benefit); 1 / 0.05 = 20 (harm side); 1 / 0.25 = 4 (benefit side)
    assert result["nnt"] == pytest.approx(10.0)
    assert result["direction"] == "NNTB"
    assert result["ci_crosses_zero"] is True
    assert (result["ci_low"], result["ci_low_direction"]) == (pytest.approx(20.0), "NNTH")
    assert (result["ci_high"], result["ci_high_direction"]) == (pytest.approx(4.0), "NNTB")
    assert result["text"] == "NNTB 10 (NNTH 20 to ∞ to NNTB 4)"


def test_harmful_event_flips_the_sign() -> None:
    # Risk of a bad event 10 points lower on treatment: the same benefit as Altman's example.
    result = number_needed_to_treat(-0.10, -0.25, 0.05, event_is_beneficial=False)
    assert result["text"] == "NNTB 10 (NNTH 20 to ∞ to NNTB 4)"
    assert (result["arr"], result["arr_ci_low"], result["arr_ci_high"]) == pytest.approx(
        (0.10, -0.05, 0.25)
    )


def test_barrowman_example_benefit_only() -> None:
    result = number_needed_to_treat(0.166, 0.009, 0.322, event_is_beneficial=True)
    # 1 / 0.166 = 6.02; 1 / 0.322 = 3.11; 1 / 0.009 = 111.1
    assert result["nnt"] == pytest.approx(6.0, abs=0.05)
    assert result["ci_low"] == pytest.approx(3.1, abs=0.05)
    assert result["ci_high"] == pytest.approx(111.1, abs=0.05)
    assert result["ci_crosses_zero"] is False
    assert result["ci_low_direction"] == result["ci_high_direction"] == "NNTB"
    assert result["text"] == "NNTB 6 (NNTB 3.1 to NNTB 111.1)"


def test_harm_only_interval() -> None:
    # Bad event 20 points more common on treatment (5 to 35): ARR -0.2 (-0.35 to -0.05).
    result = number_needed_to_treat(0.20, 0.05, 0.35, event_is_beneficial=False)
    assert result["direction"] == "NNTH"
    assert result["nnt"] == pytest.approx(5.0)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((1 / 0.35, 20.0))
    assert result["text"] == "NNTH 5 (NNTH 2.9 to NNTH 20)"


def test_limit_at_zero_is_infinite_not_crossing() -> None:
    result = number_needed_to_treat(0.10, 0.0, 0.20, event_is_beneficial=True)
    assert result["ci_crosses_zero"] is False
    assert result["ci_low"] == pytest.approx(5.0)
    assert math.isinf(result["ci_high"])
    assert result["text"] == "NNTB 10 (NNTB 5 to NNTB ∞)"


def test_zero_difference_has_infinite_nnt() -> None:
    result = number_needed_to_treat(0.0, -0.1, 0.1, event_is_beneficial=True)
    assert math.isinf(result["nnt"])
    assert result["direction"] == "none"
    assert result["text"] == "NNT ∞ (NNTH 10 to ∞ to NNTB 10)"


def test_newcombe_limits_feed_the_nnt() -> None:
    measures = risk_measures(56, 70, 48, 80)
    result = number_needed_to_treat(
        measures["rd"], measures["rd_ci_low"], measures["rd_ci_high"], event_is_beneficial=True
    )
    # 1 / 0.2 = 5; 1 / 0.3339 = 2.995; 1 / 0.0524 = 19.08
    assert result["nnt"] == pytest.approx(5.0)
    assert result["ci_low"] == pytest.approx(1 / 0.3339, abs=1e-3)
    assert result["ci_high"] == pytest.approx(1 / 0.0524, abs=2e-2)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0.1, 0.2, 0.3), {"event_is_beneficial": True}, "expected rd_low <= rd <= rd_high"),
        ((0.1, -0.2, 1.3), {"event_is_beneficial": True}, r"rd_high must be a risk difference"),
        ((0.1, float("nan"), 0.3), {"event_is_beneficial": True}, "rd_low must be a risk"),
        ((0.1, 0.0, 0.3), {"event_is_beneficial": "yes"}, "event_is_beneficial must be True"),
    ],
)
def test_nnt_refuses_bad_inputs(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        number_needed_to_treat(*args, **kwargs)


def test_nnt_direction_must_be_stated() -> None:
    with pytest.raises(TypeError):
        number_needed_to_treat(0.1, 0.0, 0.2)  # type: ignore[call-arg]
