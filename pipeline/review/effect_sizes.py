"""Effect sizes from published summary results (vectorised; metafor ``escalc`` conventions).

References
----------
Cochrane Handbook for Systematic Reviews of Interventions v6.4, sections 6.3.1 (SE from a CI),
6.3.2 (SE from a p value), 6.5.2.2 (SD from SE or CI), 6.5.2.5 (SD from IQR), Table 6.5.a
(combining groups). Wan X et al. BMC Med Res Methodol 2014;14:135 (mean/SD from median/IQR,
scenario C3). Hedges LV. J Educ Stat 1981;6:107-28 (exact small-sample correction). Viechtbauer
W, metafor ``escalc(measure="SMD", vtype="LS")``: v = 1/n1 + 1/n2 + g^2 / (2 (n1 + n2)).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

Z_975 = float(stats.norm.ppf(0.975))


def sd_from_se(se: np.ndarray, n: np.ndarray) -> np.ndarray:
    """SD = SE x sqrt(n) (Handbook 6.5.2.2)."""
    return np.asarray(se, float) * np.sqrt(np.asarray(n, float))


def sd_from_ci(
    low: np.ndarray, high: np.ndarray, n: np.ndarray, dist: str = "t", level: float = 0.95
) -> np.ndarray:
    """SD of one group from the CI of its mean (Handbook 6.5.2.2).

    ``dist="t"`` divides the width by 2 t(n-1) when n < 60 and by 2 z otherwise, as the Handbook
    advises for small samples; ``dist="z"`` always uses 2 z (3.92 for a 95% CI).
    """
    n = np.asarray(n, float)
    q = 1 - (1 - level) / 2
    crit = np.full(n.shape, float(stats.norm.ppf(q)))
    if dist == "t":
        small = n < 60
        crit = np.where(small, stats.t.ppf(q, np.maximum(n - 1, 1)), crit)
    return np.sqrt(n) * (np.asarray(high, float) - np.asarray(low, float)) / (2 * crit)


def mean_sd_from_median_iqr(
    q1: np.ndarray, median: np.ndarray, q3: np.ndarray, n: np.ndarray, rule: str = "wan"
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD from median and quartiles.

    ``wan`` (Wan et al. 2014, scenario C3): mean = (q1 + m + q3) / 3,
    SD = (q3 - q1) / (2 Phi^-1((0.75 n - 0.125) / (n + 0.25))).
    ``iqr_1.35`` (Handbook 6.5.2.5): mean = median, SD = (q3 - q1) / 1.35.
    """
    q1, median, q3, n = (np.asarray(a, float) for a in (q1, median, q3, n))
    if rule == "wan":
        mean = (q1 + median + q3) / 3
        sd = (q3 - q1) / (2 * stats.norm.ppf((0.75 * n - 0.125) / (n + 0.25)))
    elif rule == "iqr_1.35":
        mean, sd = median, (q3 - q1) / 1.35
    else:
        raise ValueError(f"unknown median rule '{rule}' (use wan or iqr_1.35)")
    return mean, sd


def se_from_ci(low: np.ndarray, high: np.ndarray, level: float = 0.95) -> np.ndarray:
    """SE of an effect from its CI, (high - low) / (2 z) (Handbook 6.3.1; 3.92 for 95%)."""
    z = float(stats.norm.ppf(1 - (1 - level) / 2))
    return (np.asarray(high, float) - np.asarray(low, float)) / (2 * z)


def se_from_p(estimate: np.ndarray, p: np.ndarray, df: float | None = None) -> np.ndarray:
    """SE of an effect from its two-sided p value (Handbook 6.5.2.3 / 6.3.2).

    SE = |estimate| / q with q = Phi^-1(1 - p/2), or the t quantile with ``df`` degrees of
    freedom (n1 + n2 - 2) for a small trial, as in the Handbook's worked example (MD 3.8,
    p = 0.008, n = 25 and 22: t = 2.78, SE = 1.37).
    """
    upper = 1 - np.asarray(p, float) / 2
    q = stats.norm.ppf(upper) if df is None else stats.t.ppf(upper, df)
    return np.abs(np.asarray(estimate, float)) / q


def small_sample_j(m: np.ndarray) -> np.ndarray:
    """Exact J = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2)), m = n1 + n2 - 2 (Hedges 1981)."""
    m = np.asarray(m, float)
    return np.exp(special.gammaln(m / 2) - 0.5 * np.log(m / 2) - special.gammaln((m - 1) / 2))


def hedges_g(
    m1: np.ndarray,
    s1: np.ndarray,
    n1: np.ndarray,
    m2: np.ndarray,
    s2: np.ndarray,
    n2: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Hedges' g (group 1 minus group 2) and its variance as metafor ``escalc("SMD")`` (vtype LS)."""
    m1, s1, n1, m2, s2, n2 = (np.asarray(a, float) for a in (m1, s1, n1, m2, s2, n2))
    sp = np.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / (n1 + n2 - 2))
    g = small_sample_j(n1 + n2 - 2) * (m1 - m2) / sp
    v = 1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2))
    return g, v


def mean_difference(
    m1: np.ndarray,
    s1: np.ndarray,
    n1: np.ndarray,
    m2: np.ndarray,
    s2: np.ndarray,
    n2: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean difference (group 1 minus group 2) and its variance s1^2/n1 + s2^2/n2 (escalc "MD")."""
    m1, s1, n1, m2, s2, n2 = (np.asarray(a, float) for a in (m1, s1, n1, m2, s2, n2))
    return m1 - m2, s1**2 / n1 + s2**2 / n2


def combine_groups(n: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> tuple[float, float, float]:
    """Combine several arms into one group (Cochrane Handbook Table 6.5.a, applied pairwise).

    Returns (N, mean, SD) of the combined group.
    """
    n, mean, sd = (np.asarray(a, float) for a in (n, mean, sd))
    n_tot, m_tot, s_tot = n[0], mean[0], sd[0]
    for n2, m2, s2 in zip(n[1:], mean[1:], sd[1:], strict=True):
        big_n = n_tot + n2
        m_new = (n_tot * m_tot + n2 * m2) / big_n
        var = (
            (n_tot - 1) * s_tot**2 + (n2 - 1) * s2**2 + n_tot * n2 / big_n * (m_tot - m2) ** 2
        ) / (big_n - 1)
        n_tot, m_tot, s_tot = big_n, m_new, float(np.sqrt(var))
    return float(n_tot), float(m_tot), float(s_tot)
