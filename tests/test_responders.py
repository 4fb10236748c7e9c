"""Tests for pipeline.analysis.responders (responder definitions and their 2x2 comparisons).

Independent reference values:

* responder indicators: read off hand-made (baseline, outcome) pairs, using the MCIDs of
  ``pipeline/registry/instruments.yaml`` (nprs 2 points; foto_lumbar_fs 5 points; fabq_pa
  4 raw points x 100/24 = 16.67 canonical points) and the 30% rule of Ostelo et al. (Spine
  2008;33:90-94) as the module states it (30% of the room to improve at baseline);
* risk difference, risk ratio, odds ratio and their SEs: 2x2 arithmetic by hand; the
  Newcombe (1998, method 10) interval from Wilson limits coded here; the NNT text built here
  from those limits following Altman (BMJ 1998;317:1309);
* adjusted odds ratio: logistic log-likelihood maximised with scipy, HC0 sandwich in numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from pipeline.analysis.frame import build_analysis_frame
from pipeline.analysis.responders import fit_responders, responder_indicator
from pipeline.analysis.spec import ComparisonSpec

Z_975 = 1.959963984540054  # standard normal 97.5% quantile (tables: 1.95996)
DOMAINS = {
    "nprs": "pain",
    "foto_lumbar_fs": "function",
    "fabq_pa": "fear_avoidance",
    "orebro_fear_avoidance": "fear_avoidance",
}


def make_frame(rows: list[tuple[str, float, float]], instrument: str = "nprs", **overrides):
    """A frame from (arm, baseline, outcome) triples on the canonical scale."""
    n = len(rows)
    arm, baseline, follow = (list(c) for c in zip(*rows, strict=True))
    ids = [f"p{i:03d}" for i in range(n)]
    rng = np.random.default_rng(0)
    participants = pd.DataFrame(
        {
            "participant_id": pd.array(ids, dtype="string[pyarrow]"),
            "arm": pd.Categorical(arm, categories=["etmi", "usual_care"]),
            "age": rng.normal(50, 10, n),
            "therapist": pd.Categorical([f"t{i % 7}" for i in range(n)]),
            "sessions": np.full(n, 6.0),
        }
    )
    outcomes = pd.DataFrame(
        {
            "participant_id": pd.array(ids + ids, dtype="string[pyarrow]"),
            "outcome": "score",
            "domain": DOMAINS[instrument],
            "instrument": instrument,
            "timepoint": pd.Categorical(
                ["baseline"] * n + ["discharge"] * n, categories=["baseline", "discharge"]
            ),
            "days": [0] * n + [60] * n,
            "raw_value": baseline + follow,
            "value": baseline + follow,
        }
    ).dropna(subset=["value"])
    values = {
        "id": "demo",
        "outcome": "score",
        "timepoint": "discharge",
        "treatment": "etmi",
        "control": "usual_care",
        "methods": ["responders"],
    }
    return build_analysis_frame(participants, outcomes, ComparisonSpec(**(values | overrides)))


# ---------------------------------------------------------------------------------------------
# responder_indicator

# (baseline, outcome, MCID responder, 30% responder): pain, nprs, MCID 2, lower is better
PAIN_CASES = [
    (8, 5, 1, 1),  # improved 3 >= 2; 30% of 8 = 2.4
    (8, 6, 1, 0),  # improved exactly the MCID (inclusive); 2 < 2.4
    (7, 4.9, 1, 1),  # improved 2.1 = 30% of 7 exactly (7 - 4.9 is 2.0999... in floating point)
    (6, 4.01, 0, 1),  # improved 1.99 < 2; 30% of 6 = 1.8
    (10, 7, 1, 1),  # improved 3 = 30% of 10
    (5, 5, 0, 0),  # unchanged
    (3, 5, 0, 0),  # worse
    (0, 0, 0, None),  # at the best value: no room to improve, not evaluable for 30%
    (0, 2, 0, None),
]
# function, foto_lumbar_fs, MCID 5, higher is better, room = 100 - baseline
FUNCTION_CASES = [
    (40, 45, 1, 0),  # +5 exactly; 30% of 60 = 18
    (40, 58, 1, 1),  # +18 exactly
    (40, 57.9, 1, 0),
    (90, 93, 0, 1),  # +3 < 5; 30% of 10 = 3
    (50, 44, 0, 0),
    (100, 100, 0, None),  # at the best value
    (100, 90, 0, None),
]
# fear avoidance, fabq_pa, MCID 4 x 100/24 = 16.67 canonical points, lower is better
FEAR_CASES = [
    (50, 50 - 100 / 6, 1, 1),  # exactly the MCID; 30% of 50 = 15
    (50, 34, 0, 1),  # improved 16 < 16.67
    (20, 14.5, 0, 0),  # 5.5 < 6 (30% of 20)
    (0, 0, 0, None),
]


@pytest.mark.parametrize(
    ("instrument", "cases"),
    [("nprs", PAIN_CASES), ("foto_lumbar_fs", FUNCTION_CASES), ("fabq_pa", FEAR_CASES)],
)
def test_responder_indicator_by_mcid_and_by_30_percent_of_room(instrument, cases) -> None:
    frame = make_frame(
        [("etmi" if i % 2 else "usual_care", b, y) for i, (b, y, _, _) in enumerate(cases)],
        instrument=instrument,
    )
    data = pd.DataFrame({"baseline": [c[0] for c in cases], "y": [c[1] for c in cases]})
    mcid = {"nprs": 2.0, "foto_lumbar_fs": 5.0, "fabq_pa": 4 * 100 / 24}[instrument]
    assert frame.mcid == pytest.approx(mcid)

    by_mcid = responder_indicator(frame, data, frame.mcid)
    by_30 = responder_indicator(frame, data, None, relative=0.30)

    np.testing.assert_array_equal(by_mcid, [c[2] for c in cases])
    np.testing.assert_array_equal(by_30, [np.nan if c[3] is None else c[3] for c in cases])


# ---------------------------------------------------------------------------------------------
# fit_responders: a hand-made 2x2 (nprs, MCID 2)

# (count, baseline, outcome) per arm; comments: MCID responder / 30% responder / >= 4 points
TREATED = [
    (6, 8, 4),  # yes / yes (4 >= 2.4) / yes
    (4, 5, 2),  # yes / yes (3 >= 1.5) / no
    (2, 9, 7),  # yes (exactly 2) / no (2 < 2.7) / no
    (3, 4, 3.5),  # no / no / no (0.5 < 1 = 0.5 x MCID too)
    (3, 9, 9),  # no / no / no
    (2, 0, 1),  # no / not evaluable / no
]
CONTROL = [(2, 8, 4), (2, 5, 2), (2, 9, 7), (6, 4, 3.5), (6, 9, 9), (2, 0, 0)]


def _rows(arm, spec):
    return [(arm, b, y) for count, b, y in spec for _ in range(count)]


def _wilson(events: int, n: int) -> tuple[float, float]:
    """Wilson score limits, Wilson (1927), solved in closed form."""
    p = events / n
    centre = (p + Z_975**2 / (2 * n)) / (1 + Z_975**2 / n)
    half = Z_975 / (1 + Z_975**2 / n) * math.sqrt(p * (1 - p) / n + Z_975**2 / (4 * n * n))
    return centre - half, centre + half


def _newcombe(a: int, n1: int, c: int, n2: int) -> tuple[float, float]:
    p1, p2 = a / n1, c / n2
    l1, u1 = _wilson(a, n1)
    l2, u2 = _wilson(c, n2)
    return p1 - p2 - math.hypot(p1 - l1, u2 - p2), p1 - p2 + math.hypot(u1 - p1, p2 - l2)


def _nnt_text(rd: float, low: float, high: float) -> str:
    """Altman (1998): NNT = 1/ARR; limits exchanged; through infinity if the ARR CI spans 0."""

    def fmt(x):
        text = f"{x:.1f}"
        return text[:-2] if text.endswith(".0") else text

    head = f"NNTB {fmt(1 / rd)}"
    if low < 0 < high:
        return f"{head} (NNTH {fmt(1 / abs(low))} to ∞ to NNTB {fmt(1 / high)})"
    return f"{head} (NNTB {fmt(1 / high)} to NNTB {fmt(1 / low)})"


@pytest.fixture(scope="module")
def two_by_two() -> pd.DataFrame:
    frame = make_frame(_rows("etmi", TREATED) + _rows("usual_care", CONTROL))
    return fit_responders(frame, sweep=[0.5, 1.0, 2.0])


@pytest.mark.parametrize(
    ("definition", "a", "n1", "c", "n2", "threshold"),
    [
        ("MCID", 12, 20, 6, 20, 2.0),  # 6 + 4 + 2 of 20 vs 2 + 2 + 2 of 20
        ("30% improvement", 10, 18, 4, 18, np.nan),  # two per arm at baseline 0 left out
    ],
)
def test_responders_risk_measures_equal_2x2_arithmetic(
    two_by_two, definition, a, n1, c, n2, threshold
) -> None:
    rows = two_by_two[(two_by_two["definition"] == definition)]
    rows = rows[rows["method"] == "responders"].set_index("effect_measure")
    assert set(rows.index) == {
        "risk_difference",
        "risk_ratio",
        "odds_ratio",
        "adjusted_odds_ratio",
        "standardised_risk_difference",
    }
    b, d = n1 - a, n2 - c
    p1, p2 = a / n1, c / n2

    rd = rows.loc["risk_difference"]
    assert rd["estimate"] == pytest.approx(p1 - p2, abs=1e-12)
    assert rd["se"] == pytest.approx(math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2), rel=1e-12)
    low, high = _newcombe(a, n1, c, n2)
    assert (rd["ci_low"], rd["ci_high"]) == (
        pytest.approx(low, rel=1e-9),
        pytest.approx(high, rel=1e-9),
    )
    assert rd["p_value"] == pytest.approx(2 * stats.norm.sf((p1 - p2) / rd["se"]), rel=1e-9)
    assert rd["nnt"] == pytest.approx(1 / (p1 - p2), rel=1e-12)
    assert rd["nnt_text"] == _nnt_text(p1 - p2, low, high)
    assert (rd["n_treated"], rd["n_control"]) == (n1, n2)
    assert (rd["events_treated"], rd["events_control"]) == (a, c)
    assert (rd["risk_treated"], rd["risk_control"]) == (pytest.approx(p1), pytest.approx(p2))
    assert rd["threshold"] == pytest.approx(threshold, nan_ok=True)

    rr = rows.loc["risk_ratio"]
    se_rr = math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n2)
    assert rr["estimate"] == pytest.approx(p1 / p2, rel=1e-12)
    assert rr["se"] == pytest.approx(se_rr, rel=1e-12)
    assert rr["ci_low"] == pytest.approx(p1 / p2 * math.exp(-Z_975 * se_rr), rel=1e-9)
    assert rr["p_value"] == pytest.approx(2 * stats.norm.sf(math.log(p1 / p2) / se_rr), rel=1e-9)

    odds = rows.loc["odds_ratio"]
    se_or = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)  # Woolf
    assert odds["estimate"] == pytest.approx(a * d / (b * c), rel=1e-12)
    assert odds["se"] == pytest.approx(se_or, rel=1e-12)
    assert odds["ci_high"] == pytest.approx(a * d / (b * c) * math.exp(Z_975 * se_or), rel=1e-9)


def test_nnt_text_goes_through_infinity_when_the_interval_crosses_zero(two_by_two) -> None:
    # Newcombe interval of 12/20 vs 6/20 is -0.006 to 0.55 (hand Wilson limits above);
    # of 10/18 vs 4/18 it is 0.016 to 0.58: the first crosses zero, the second does not.
    rd = two_by_two[two_by_two["effect_measure"] == "risk_difference"].set_index("term")
    mcid = rd.loc["improved >= 2 points (MCID)"]
    assert mcid["ci_low"] < 0 < mcid["ci_high"]
    assert mcid["nnt_text"].startswith("NNTB 3.3 (NNTH ") and "to ∞ to NNTB" in mcid["nnt_text"]
    relative = rd.loc["improved >= 30% of the room to improve"]
    assert relative["ci_low"] > 0 and "∞" not in relative["nnt_text"]


def test_sweep_rows_use_multiples_of_the_mcid(two_by_two) -> None:
    sweep = two_by_two[two_by_two["method"] == "responders_sweep"].set_index("definition")
    assert list(sweep.index) == ["0.5 x MCID", "1 x MCID", "2 x MCID"]
    assert (sweep["effect_measure"] == "risk_difference").all()
    # thresholds 1, 2, 4 points; events read off TREATED / CONTROL above
    expected = {"0.5 x MCID": (1.0, 12, 6), "1 x MCID": (2.0, 12, 6), "2 x MCID": (4.0, 6, 2)}
    for definition, (threshold, a, c) in expected.items():
        row = sweep.loc[definition]
        assert row["threshold"] == pytest.approx(threshold)
        assert (row["events_treated"], row["events_control"]) == (a, c)
        assert (row["n_treated"], row["n_control"]) == (20, 20)
        assert row["estimate"] == pytest.approx(a / 20 - c / 20, abs=1e-12)
        assert row["term"] == f"improved >= {threshold:g} points"


def test_without_an_mcid_only_the_30_percent_rule_is_reported() -> None:
    # orebro_fear_avoidance has no published MCID (registry: mcid_raw null)
    rows = [
        ("etmi", 60, 30),
        ("etmi", 60, 50),
        ("etmi", 0, 0),
        ("usual_care", 60, 40),
        ("usual_care", 40, 40),
        ("etmi", 30, 20),
        ("usual_care", 30, 10),
    ]
    result = fit_responders(make_frame(rows, instrument="orebro_fear_avoidance"), sweep=[1.0])
    assert set(result["definition"]) == {"30% improvement"}
    assert set(result["method"]) == {"responders"}
    rd = result[result["effect_measure"] == "risk_difference"].iloc[0]
    # treated: 30 >= 18 yes, 10 < 18 no, baseline 0 left out, 10 >= 9 yes -> 2 of 3
    # control: 20 >= 18 yes, 0 no, 20 >= 9 yes -> 2 of 3
    assert (rd["events_treated"], rd["n_treated"], rd["events_control"], rd["n_control"]) == (
        2,
        3,
        2,
        3,
    )


def test_function_responders_improve_upwards() -> None:
    # foto_lumbar_fs: MCID 5, higher is better
    rows = [
        ("etmi", 40, 46),
        ("etmi", 40, 44),
        ("etmi", 60, 65),
        ("usual_care", 40, 35),
        ("usual_care", 50, 55),
        ("usual_care", 50, 52),
    ]
    result = fit_responders(make_frame(rows, instrument="foto_lumbar_fs"), sweep=[])
    rd = result[(result["definition"] == "MCID") & (result["effect_measure"] == "risk_difference")]
    assert (int(rd["events_treated"].iloc[0]), int(rd["events_control"].iloc[0])) == (2, 1)


def _logistic_mle(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    def negloglik(b):
        eta = X @ b
        return float(np.sum(np.logaddexp(0, eta) - y * eta))

    def gradient(b):
        return X.T @ (1 / (1 + np.exp(-X @ b)) - y)

    result = optimize.minimize(
        negloglik, np.zeros(X.shape[1]), jac=gradient, method="BFGS", options={"gtol": 1e-10}
    )
    return result.x


def test_adjusted_odds_ratio_equals_hand_logistic_with_hc0_sandwich() -> None:
    rng = np.random.default_rng(12)
    n = 160
    treated = np.arange(n) % 2 == 0
    baseline = rng.uniform(2, 10, n)
    y = baseline - rng.normal(1.0 + 1.0 * treated + 0.1 * baseline, 1.5, n)
    rows = [
        ("etmi" if t else "usual_care", b, v) for t, b, v in zip(treated, baseline, y, strict=True)
    ]
    frame = make_frame(rows, adjust_for=["age"])
    data = frame.data  # for age only: the covariate values were drawn in make_frame
    responder = ((baseline - y) >= 2 - 1e-9).astype(float)  # MCID 2 points
    X = np.column_stack([np.ones(n), treated, baseline, data["age"]]).astype(float)
    beta = _logistic_mle(responder, X)
    p = 1 / (1 + np.exp(-X @ beta))
    bread = np.linalg.inv((X * (p * (1 - p))[:, None]).T @ X)
    cov = bread @ ((X * ((responder - p) ** 2)[:, None]).T @ X) @ bread  # HC0

    result = fit_responders(frame, sweep=[])
    row = result[
        (result["definition"] == "MCID") & (result["effect_measure"] == "adjusted_odds_ratio")
    ].iloc[0]

    assert row["estimate"] == pytest.approx(np.exp(beta[1]), rel=1e-5)
    assert row["se"] == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-5)
    assert row["ci_low"] == pytest.approx(np.exp(beta[1] - Z_975 * np.sqrt(cov[1, 1])), rel=1e-5)
    assert row["estimand"] == "conditional"
    assert (row["n_treated"], row["n_control"]) == (80, 80)


def test_fit_responders_does_not_modify_the_frame() -> None:
    frame = make_frame(_rows("etmi", TREATED) + _rows("usual_care", CONTROL), cluster="therapist")
    before = frame.data.copy(deep=True)
    fit_responders(frame, sweep=[1.0])
    pd.testing.assert_frame_equal(frame.data, before)


# ---------------------------------------------------------------------------------------------
# standardised (covariate-adjusted) risk difference


def test_standardised_risk_difference_of_a_saturated_model_is_the_crude_wald_difference() -> None:
    """With arm alone the logistic model is saturated: g-computation gives the crude risk
    difference and the delta-method SE equals the Wald sqrt(p1 q1 / n1 + p0 q0 / n0) (closed form)."""
    import statsmodels.api as sm

    from pipeline.analysis.frame import TREATED
    from pipeline.analysis.responders import standardised_risk_difference

    treated = np.r_[np.ones(40), np.zeros(60)]
    y = np.r_[np.ones(26), np.zeros(14), np.ones(21), np.zeros(39)]
    X = pd.DataFrame({"const": 1.0, TREATED: treated})
    fit = sm.GLM(y, X, family=sm.families.Binomial()).fit(cov_type="HC0")
    srd, se = standardised_risk_difference(X, fit.params.to_numpy(), fit.cov_params().to_numpy())
    p1, p0 = 26 / 40, 21 / 60
    assert srd == pytest.approx(p1 - p0, rel=1e-9)
    assert se == pytest.approx(np.sqrt(p1 * (1 - p1) / 40 + p0 * (1 - p0) / 60), rel=1e-6)


def test_standardised_risk_difference_matches_a_numerical_gradient() -> None:
    """Delta-method SE against a central-difference gradient of the g-computation estimate."""
    import statsmodels.api as sm

    from pipeline.analysis.frame import TREATED
    from pipeline.analysis.responders import standardised_risk_difference

    rng = np.random.default_rng(3)
    n = 400
    X = pd.DataFrame(
        {"const": 1.0, TREATED: rng.integers(0, 2, n).astype(float), "age": rng.normal(0, 1, n)}
    )
    eta = -0.3 + 0.8 * X[TREATED] + 0.6 * X["age"]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    fit = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    b, cov = fit.params.to_numpy(), fit.cov_params().to_numpy()
    srd, se = standardised_risk_difference(X, b, cov)

    def g(beta: np.ndarray) -> float:
        return standardised_risk_difference(X, beta, cov)[0]

    step = 1e-6
    gradient = np.array([(g(b + step * e) - g(b - step * e)) / (2 * step) for e in np.eye(len(b))])
    assert srd == pytest.approx(g(b))
    assert se == pytest.approx(np.sqrt(gradient @ cov @ gradient), rel=1e-5)
