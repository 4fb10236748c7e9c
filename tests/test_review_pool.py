"""Pooling of review questions against metafor's documented dat.bcg results and closed forms.

metafor ``rma(yi, vi, data = escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg,
data = dat.bcg))``: REML estimate -0.7145, se 0.1798, tau2 0.3132, I2 92.22%; with
``test = "knha"``: CI -1.1084 to -0.3206 (t, 12 df), as printed in the metafor documentation;
recomputed below independently from the HKSJ formula.
"""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from test_meta import BCG as DAT_BCG

from pipeline.review.pool import egger, leave_one_out, pool, subgroups, tau2_dl

BCG = np.array(DAT_BCG, dtype=float)  # the same dat.bcg table as the IPD meta tests


def _bcg() -> tuple[np.ndarray, np.ndarray]:
    a, b, c, d = BCG.T
    return np.log((a / (a + b)) / (c / (c + d))), 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)


def test_reml_matches_metafor_bcg() -> None:
    fit = pool(*_bcg())
    assert fit.estimate == pytest.approx(-0.7145, abs=5e-5)
    assert fit.se == pytest.approx(0.1798, abs=5e-5)
    assert fit.tau2 == pytest.approx(0.3132, abs=5e-5)
    assert fit.i2 == pytest.approx(92.22, abs=5e-3)
    assert fit.q == pytest.approx(152.2330, abs=5e-4)


def test_hksj_matches_metafor_knha_and_formula() -> None:
    y, v = _bcg()
    fit = pool(y, v)
    assert (fit.hksj_low, fit.hksj_high) == pytest.approx((-1.1084, -0.3206), abs=5e-5)
    # independent: q = sum w (y - mu)^2 / (k - 1), se = sqrt(q / sum w), t(12)
    w = 1 / (v + 0.3132433)
    mu = np.sum(w * y) / np.sum(w)
    q = np.sum(w * (y - mu) ** 2) / 12
    half = stats.t.ppf(0.975, 12) * np.sqrt(q / np.sum(w))
    assert fit.hksj_low == pytest.approx(mu - half, abs=1e-5)
    # the HKSJ interval is wider than Wald here, so it is the one reported
    assert fit.ci_method == "HKSJ"
    assert (fit.ci_low, fit.ci_high) == (fit.hksj_low, fit.hksj_high)


def test_safeguard_takes_wald_when_hksj_is_narrower() -> None:
    # homogeneous trials: q < 1, HKSJ narrower than Wald -> Wald is reported (Jackson et al. 2017)
    y = np.array([0.10, 0.11, 0.09, 0.10, 0.105])
    v = np.full(5, 0.04)
    fit = pool(y, v)
    assert fit.tau2 == 0.0
    assert fit.hksj_high - fit.hksj_low < fit.wald_high - fit.wald_low
    assert fit.ci_method.startswith("Wald")
    assert fit.ci_low == pytest.approx(0.101 - 1.959964 * np.sqrt(0.04 / 5), abs=1e-6)
    # metafor's ad hoc variant max(1, q) with t(4) is wider still
    assert fit.hksj_adhoc_high - fit.hksj_adhoc_low > fit.wald_high - fit.wald_low


def test_dl_closed_form_and_metafor_bcg() -> None:
    y, v = _bcg()
    assert tau2_dl(y, v) == pytest.approx(0.3088, abs=5e-5)  # metafor method = "DL"
    fit = pool(y, v, "DL")
    assert fit.estimate == pytest.approx(-0.7141, abs=5e-5)


def test_prediction_interval_uses_t_with_k_minus_2_df() -> None:
    y, v = _bcg()
    fit = pool(y, v)
    half = stats.t.ppf(0.975, 11) * np.sqrt(fit.tau2 + fit.se**2)
    assert fit.pi_low == pytest.approx(fit.estimate - half, rel=1e-12)
    assert fit.pi_high == pytest.approx(fit.estimate + half, rel=1e-12)


def test_egger_matches_statsmodels_ols() -> None:
    y, v = _bcg()
    se = np.sqrt(v)
    ols = sm.OLS(y / se, sm.add_constant(1 / se)).fit()
    result = egger(y, v)
    assert result["intercept"] == pytest.approx(ols.params[0], rel=1e-10)
    assert result["p"] == pytest.approx(ols.pvalues[0], rel=1e-8)


def test_leave_one_out_and_subgroups() -> None:
    y, v = _bcg()
    loo = leave_one_out(y, v, [f"t{i}" for i in range(13)])
    assert len(loo) == 13
    assert loo[0]["estimate"] == pytest.approx(pool(y[1:], v[1:]).estimate)
    groups = np.array(["a"] * 6 + ["b"] * 7)
    sub = subgroups(y, v, groups)
    assert [r["k"] for r in sub["subgroups"]] == [6, 7]
    est = np.array([pool(y[:6], v[:6]).estimate, pool(y[6:], v[6:]).estimate])
    w = 1 / np.array([pool(y[:6], v[:6]).se, pool(y[6:], v[6:]).se]) ** 2
    qb = np.sum(w * (est - np.sum(w * est) / np.sum(w)) ** 2)
    assert sub["q_between"] == pytest.approx(qb)
    assert sub["df"] == 1
