"""Random-effects pooling of one review question (REML + HKSJ, DL sensitivity, PI, Egger, LOO).

References
----------
REML tau2 from :mod:`pipeline.analysis.meta` (checked against metafor on dat.bcg). Hartung J,
Knapp G. Stat Med 2001;20:3875-89 and Sidik K, Jonkman JN. Stat Med 2002;21:3153-9 (HKSJ);
Jackson D, Law M, Rucker G, Schwarzer G. Stat Med 2017;36:3923-34 (use the wider of the HKSJ and
the standard Wald interval). Higgins JPT, Thompson SG, Spiegelhalter DJ. JRSS A 2009;172:137-59
(prediction interval, t with k - 2 df). Higgins JPT, Thompson SG. Stat Med 2002;21:1539-58 (I2 with
the "typical" within-study variance, as metafor). Egger M et al. BMJ 1997;315:629-34.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from pipeline.analysis.meta import _tau2_reml

Z_975 = float(stats.norm.ppf(0.975))


@dataclass(frozen=True)
class Pooled:
    """One random-effects fit."""

    method: str
    k: int
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    ci_method: str
    wald_low: float
    wald_high: float
    hksj_low: float
    hksj_high: float
    hksj_adhoc_low: float
    hksj_adhoc_high: float
    tau2: float
    i2: float
    q: float
    q_p: float
    pi_low: float
    pi_high: float

    def as_dict(self) -> dict:
        return asdict(self)


def tau2_dl(y: np.ndarray, v: np.ndarray) -> float:
    """DerSimonian-Laird tau2 (closed form)."""
    w = 1 / v
    mu = np.sum(w * y) / np.sum(w)
    q = float(np.sum(w * (y - mu) ** 2))
    c = np.sum(w) - np.sum(w**2) / np.sum(w)
    return max(0.0, (q - (len(y) - 1)) / c)


def pool(y: np.ndarray, v: np.ndarray, method: str = "REML", alpha: float = 0.05) -> Pooled:
    """Pool estimates ``y`` with within-trial variances ``v`` by random effects.

    The reported CI is the wider of the HKSJ interval (t with k - 1 df) and the Wald interval
    (Jackson et al. 2017); both, and metafor's ``test="knha"`` variant with the ad hoc
    truncation max(1, q), are returned. Checked against metafor ``rma`` on dat.bcg.
    """
    y, v = np.asarray(y, float), np.asarray(v, float)
    k = len(y)
    if k == 0:
        raise ValueError("no trials to pool")
    if k == 1:
        tau2 = 0.0
    elif method == "REML":
        tau2 = _tau2_reml(y, v)[0]
    elif method == "DL":
        tau2 = tau2_dl(y, v)
    else:
        raise ValueError(f"unknown method {method} (REML or DL)")
    w = 1 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    se = float(np.sqrt(1 / np.sum(w)))
    z = float(stats.norm.ppf(1 - alpha / 2))
    wald = (mu - z * se, mu + z * se)
    w0 = 1 / v
    mu0 = np.sum(w0 * y) / np.sum(w0)
    q = float(np.sum(w0 * (y - mu0) ** 2))
    if k >= 2:
        t = float(stats.t.ppf(1 - alpha / 2, k - 1))
        qhk = float(np.sum(w * (y - mu) ** 2) / (k - 1))
        se_hk = float(np.sqrt(qhk / np.sum(w)))
        se_adhoc = float(np.sqrt(max(1.0, qhk) / np.sum(w)))
        hksj = (mu - t * se_hk, mu + t * se_hk)
        adhoc = (mu - t * se_adhoc, mu + t * se_adhoc)
        s2 = (k - 1) * np.sum(w0) / (np.sum(w0) ** 2 - np.sum(w0**2))
        i2 = float(100 * tau2 / (tau2 + s2))
        q_p = float(stats.chi2.sf(q, k - 1))
    else:
        hksj = adhoc = (np.nan, np.nan)
        i2, q_p = 0.0, np.nan
    if np.isfinite(hksj[0]) and (hksj[1] - hksj[0]) >= (wald[1] - wald[0]):
        ci, ci_method = hksj, "HKSJ"
    else:
        ci, ci_method = wald, "Wald (wider than HKSJ)" if k >= 2 else "Wald"
    if k >= 3:
        tp = float(stats.t.ppf(1 - alpha / 2, k - 2))
        half = tp * np.sqrt(tau2 + se**2)
        pi = (mu - half, mu + half)
    else:
        pi = (np.nan, np.nan)
    return Pooled(
        method,
        k,
        mu,
        se,
        float(ci[0]),
        float(ci[1]),
        ci_method,
        float(wald[0]),
        float(wald[1]),
        float(hksj[0]),
        float(hksj[1]),
        float(adhoc[0]),
        float(adhoc[1]),
        float(tau2),
        i2,
        q,
        q_p,
        float(pi[0]),
        float(pi[1]),
    )


def egger(y: np.ndarray, v: np.ndarray) -> dict[str, float]:
    """Egger's regression test: OLS of y/se on 1/se; the intercept's t test with k - 2 df."""
    y, se = np.asarray(y, float), np.sqrt(np.asarray(v, float))
    k = len(y)
    x = np.column_stack([np.ones(k), 1 / se])
    target = y / se
    beta, *_ = np.linalg.lstsq(x, target, rcond=None)
    resid = target - x @ beta
    sigma2 = float(resid @ resid / (k - 2))
    cov = sigma2 * np.linalg.inv(x.T @ x)
    t = float(beta[0] / np.sqrt(cov[0, 0]))
    return {"intercept": float(beta[0]), "t": t, "p": float(2 * stats.t.sf(abs(t), k - 2)), "k": k}


def leave_one_out(y: np.ndarray, v: np.ndarray, labels: list[str]) -> list[dict]:
    """REML estimate and CI with each trial left out in turn."""
    y, v = np.asarray(y, float), np.asarray(v, float)
    out = []
    for i, label in enumerate(labels):
        keep = np.arange(len(y)) != i
        fit = pool(y[keep], v[keep])
        out.append(
            {
                "left_out": label,
                "estimate": fit.estimate,
                "ci_low": fit.ci_low,
                "ci_high": fit.ci_high,
                "tau2": fit.tau2,
                "i2": fit.i2,
            }
        )
    return out


def subgroups(y: np.ndarray, v: np.ndarray, groups: np.ndarray) -> dict:
    """Pool within each subgroup and test the difference (Q between, fixed effect across groups)."""
    y, v, groups = np.asarray(y, float), np.asarray(v, float), np.asarray(groups, dtype=object)
    rows = []
    for g in sorted({str(x) for x in groups}):
        sel = groups.astype(str) == g
        fit = pool(y[sel], v[sel])
        rows.append(
            {
                "subgroup": g,
                "k": fit.k,
                "estimate": fit.estimate,
                "se": fit.se,
                "ci_low": fit.ci_low,
                "ci_high": fit.ci_high,
                "tau2": fit.tau2,
            }
        )
    if len(rows) < 2:
        return {"subgroups": rows, "q_between": None, "df": 0, "p": None}
    est = np.array([r["estimate"] for r in rows])
    w = 1 / np.array([r["se"] for r in rows]) ** 2
    mu = np.sum(w * est) / np.sum(w)
    qb = float(np.sum(w * (est - mu) ** 2))
    df = len(rows) - 1
    return {"subgroups": rows, "q_between": qb, "df": df, "p": float(stats.chi2.sf(qb, df))}
