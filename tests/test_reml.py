"""Tests for pipeline.analysis.reml (profiled REML/ML random intercepts).

Reference values:

* lme4 1.1-31 (R 4.2.2) ``lmer`` on data shipped with lme4 (copied to tests/data, public
  teaching data sets): sleepstudy ``Reaction ~ Days + (1|Subject)`` (REML and ML; the REML
  fixed effects 251.4051 and 10.4673 with SEs 9.7467 and 0.8042 and variances 1378.2 and
  960.5 are those printed in the lme4 documentation), Penicillin ``diameter ~ 1 + (1|plate) +
  (1|sample)`` (crossed) and Pastes ``strength ~ 1 + (1|batch/cask)`` (nested). The numbers
  were printed by R with 10-12 digits.
* statsmodels MixedLM (a different algorithm: joint quasi-Newton on the full likelihood),
  fitted with a tight gradient tolerance, REML and ML, on simulated unbalanced data.

Tolerances: lme4's bobyqa stops on a deviance change of ~1e-8 (Penicillin: our REML criterion
is lower than lme4's by 9e-9 at lme4's theta), and the criterion is flat near its optimum, so
lme4's variances are reproducible only to ~1e-4 on Penicillin (REML sample variance: 5.7e-5)
and ~1e-6 elsewhere; fixed
effects depend on the variances weakly and agree to 1e-7.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.regression.mixed_linear_model import VCSpec

from pipeline.analysis.reml import fit_random_intercepts

DATA = Path(__file__).parent / "data"


def sleepstudy():
    s = pd.read_csv(DATA / "lme4_sleepstudy.csv")
    X = pd.DataFrame({"const": 1.0, "Days": s["Days"].astype(float)})
    return s["Reaction"].to_numpy(), X, {"Subject": s["Subject"].to_numpy()}


@pytest.mark.parametrize(
    ("reml", "expected"),
    [
        (
            True,
            (251.40510485, 10.46728596, 9.7467162692, 0.8042214289, 1378.17851381, 960.45657856),
        ),
        (
            False,
            (251.40510485, 10.46728596, 9.5061851929, 0.8017354217, 1296.87004549, 954.52783422),
        ),
    ],
)
def test_sleepstudy_equals_lme4(reml, expected) -> None:
    b0, b1, se0, se1, subject, residual = expected
    fit = fit_random_intercepts(*sleepstudy(), reml=reml)
    table = fit.table()
    assert table["estimate"].to_numpy() == pytest.approx([b0, b1], rel=1e-8)
    assert table["se"].to_numpy() == pytest.approx([se0, se1], rel=1e-6)
    assert fit.variances["Subject"] == pytest.approx(subject, rel=1e-6)
    assert fit.variances["residual"] == pytest.approx(residual, rel=1e-6)
    assert fit.n_levels == {"Subject": 18} and fit.n == 180 and fit.converged


@pytest.mark.parametrize(
    ("reml", "expected"),
    [
        (True, (22.97222222, 0.8085953614, 0.716905141001, 3.731131842304, 0.302414956247)),
        (False, (22.97222222, 0.7445962657, 0.714992873521, 3.135192318832, 0.302425358074)),
    ],
)
def test_penicillin_crossed_equals_lme4(reml, expected) -> None:
    mean, se, plate, sample, residual = expected
    p = pd.read_csv(DATA / "lme4_penicillin.csv")
    fit = fit_random_intercepts(
        p["diameter"].to_numpy(),
        pd.DataFrame({"const": np.ones(len(p))}),
        {"plate": p["plate"].to_numpy(), "sample": p["sample"].to_numpy()},
        reml=reml,
    )
    assert fit.params["const"] == pytest.approx(mean, rel=1e-9)  # balanced: the grand mean
    assert fit.table()["se"].iloc[0] == pytest.approx(se, rel=1e-4)
    assert fit.variances["plate"] == pytest.approx(plate, rel=1e-4)
    assert fit.variances["sample"] == pytest.approx(sample, rel=1e-4)
    assert fit.variances["residual"] == pytest.approx(residual, rel=1e-4)


def test_pastes_nested_equals_lme4() -> None:
    p = pd.read_csv(DATA / "lme4_pastes.csv")
    fit = fit_random_intercepts(
        p["strength"].to_numpy(),
        pd.DataFrame({"const": np.ones(len(p))}),
        {"batch": p["batch"].to_numpy(), "cask": (p["batch"] + ":" + p["cask"]).to_numpy()},
    )
    assert fit.params["const"] == pytest.approx(60.05333333, rel=1e-9)
    assert fit.table()["se"].iloc[0] == pytest.approx(0.6768702151, rel=1e-5)
    assert fit.variances["batch"] == pytest.approx(1.657310911834, rel=1e-5)
    assert fit.variances["cask"] == pytest.approx(8.433665931295, rel=1e-5)
    assert fit.variances["residual"] == pytest.approx(0.677999949669, rel=1e-5)


def simulated(seed: int, n: int = 600, groups: int = 40):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)  # unbalanced cluster sizes
    x = rng.normal(size=(n, 2))
    t = rng.integers(0, 2, n)
    y = 3 + 0.5 * t + x @ [1.0, -2.0] + rng.normal(0, 0.8, groups)[g] + rng.normal(0, 1.5, n)
    X = pd.DataFrame({"const": 1.0, "t": t * 1.0, "x1": x[:, 0], "x2": x[:, 1]})
    return y, X, g


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("reml", [True, False])
def test_one_factor_equals_statsmodels(seed, reml) -> None:
    y, X, g = simulated(seed)
    fit = fit_random_intercepts(y, X, {"g": g}, reml=reml)
    ref = sm.MixedLM(y, X, groups=g).fit(reml=reml, method="bfgs", gtol=1e-12)
    # observed agreement ~1e-7 (variances), ~1e-9 (fixed effects)
    assert fit.params.to_numpy() == pytest.approx(np.asarray(ref.fe_params), rel=1e-7)
    assert fit.variances["g"] == pytest.approx(float(ref.cov_re.iloc[0, 0]), rel=1e-6)
    assert fit.variances["residual"] == pytest.approx(float(ref.scale), rel=1e-6)
    assert fit.loglik == pytest.approx(float(ref.llf), abs=1e-6)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("reml", [True, False])
def test_nested_equals_statsmodels(reml) -> None:
    rng = np.random.default_rng(8)
    n, clinics, per_clinic = 900, 12, 6
    clinic = rng.integers(0, clinics, n)
    slot = rng.integers(0, per_clinic, n)
    therapist = clinic * per_clinic + slot
    t = rng.integers(0, 2, n)
    age = rng.normal(50, 10, n)
    y = (
        2
        - 0.7 * t
        + 0.02 * age
        + rng.normal(0, 1.0, clinics)[clinic]
        + rng.normal(0, 0.6, clinics * per_clinic)[therapist]
        + rng.normal(0, 1.2, n)
    )
    X = pd.DataFrame({"const": 1.0, "t": t * 1.0, "age": age})
    fit = fit_random_intercepts(y, X, {"clinic": clinic, "therapist": therapist}, reml=reml)

    mats, names = [], []
    for c in range(clinics):
        rows = clinic == c
        dummies = pd.get_dummies(therapist[rows])
        mats.append(dummies.to_numpy(dtype=float))
        names.append([f"t{k}" for k in dummies.columns])
    order = np.argsort(clinic, kind="stable")
    mats = []
    for c in range(clinics):
        dummies = pd.get_dummies(therapist[order][clinic[order] == c])
        mats.append(dummies.to_numpy(dtype=float))
    model = sm.MixedLM(
        y[order],
        X.iloc[order].reset_index(drop=True),
        groups=clinic[order],
        exog_re=np.ones((n, 1)),
        exog_vc=VCSpec(["therapist"], [names], [mats]),
    )
    ref = model.fit(reml=reml, method="bfgs", gtol=1e-12)
    assert fit.params.to_numpy() == pytest.approx(np.asarray(ref.fe_params), rel=1e-6)
    assert fit.variances["clinic"] == pytest.approx(float(ref.cov_re.iloc[0, 0]), rel=1e-5)
    assert fit.variances["therapist"] == pytest.approx(float(ref.vcomp[0]), rel=1e-5)
    assert fit.variances["residual"] == pytest.approx(float(ref.scale), rel=1e-5)


def test_zero_between_variance_is_on_the_boundary() -> None:
    # cluster means exactly equal: the REML between-cluster variance is 0 (a boundary fit)
    y = np.tile([1.0, 2.0, 3.0, 4.0], 10)
    g = np.repeat(np.arange(10), 4)
    fit = fit_random_intercepts(y, pd.DataFrame({"const": np.ones(40)}), {"g": g})
    assert fit.variances["g"] == 0.0
    assert fit.variances["residual"] == pytest.approx(np.var(y, ddof=1))
    assert "boundary" in fit.warning


def test_three_factors_are_refused() -> None:
    X = pd.DataFrame({"const": np.ones(4)})
    with pytest.raises(ValueError, match="1 or 2 factors"):
        fit_random_intercepts(
            np.arange(4.0), X, {"a": [0, 0, 1, 1], "b": [0, 1, 0, 1], "c": [0] * 4}
        )
