"""Multiplicity adjustment of p values: Holm (family-wise error) and Benjamini-Hochberg (FDR).

:func:`adjust_p_values` adjusts one family given as an array; :func:`add_adjusted_p_values`
adjusts every family of a tidy estimates frame separately.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

AdjustMethod = Literal["holm", "fdr_bh"]
ADJUST_METHODS: tuple[str, ...] = ("holm", "fdr_bh")


def adjust_p_values(
    p_values: Sequence[float] | np.ndarray | pd.Series, method: AdjustMethod
) -> np.ndarray:
    """Adjust one family of p values for multiple testing.

    Parameters
    ----------
    p_values : array_like of float
        Raw p values of one family, each in [0, 1]; NaN for a test that was not done.
    method : {"holm", "fdr_bh"}
        ``"holm"``: Holm's step-down method, controls the family-wise error rate.
        ``"fdr_bh"``: Benjamini-Hochberg step-up method, controls the false discovery rate
        (valid under independence or positive regression dependence).

    Returns
    -------
    numpy.ndarray of float
        Adjusted p values in the input order, capped at 1. NaN inputs stay NaN and are not
        counted in the family size.

    Raises
    ------
    ValueError
        If ``method`` is not one of the above, the input is not one-dimensional, or a non-NaN
        p value lies outside [0, 1].

    Notes
    -----
    Computed with :func:`statsmodels.stats.multitest.multipletests` on the non-NaN values.
    Holm: with m p values sorted ascending ``p_(1) <= ... <= p_(m)``, the adjusted value is
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``. BH: ``min_{j >= i} min(1, m p_(j) / j)``.
    Checked against hand-worked examples in ``tests/test_multiplicity.py`` and against
    R's ``p.adjust(method = "holm" / "BH")`` definitions (R documentation, ``?p.adjust``).

    References
    ----------
    Holm S. A simple sequentially rejective multiple test procedure. *Scand J Stat*
    1979;6:65-70.

    Benjamini Y, Hochberg Y. Controlling the false discovery rate: a practical and powerful
    approach to multiple testing. *J R Stat Soc B* 1995;57:289-300.
    doi:10.1111/j.2517-6161.1995.tb02031.x.

    Examples
    --------
    >>> adjust_p_values([0.01, 0.04, 0.03], "holm").round(2).tolist()
    [0.03, 0.06, 0.06]
    """
    if method not in ADJUST_METHODS:
        raise ValueError(f"method must be one of {ADJUST_METHODS}, got {method!r}")
    try:
        p = np.asarray(p_values, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"p values must be numbers (NaN for missing): {error}") from error
    if p.ndim != 1:
        raise ValueError(f"p values must be a one-dimensional sequence, got shape {p.shape}")
    observed = ~np.isnan(p)
    bad = p[observed & ((p < 0) | (p > 1))]
    if bad.size:
        raise ValueError(f"p values must lie in [0, 1]; got {bad.tolist()}")
    adjusted = np.full(p.shape, np.nan)
    if observed.any():
        adjusted[observed] = multipletests(p[observed], method=method)[1]
    return adjusted


def _no_family(value: object) -> bool:
    """True for a missing or blank family label."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    return bool(pd.isna(value))


def add_adjusted_p_values(
    estimates: pd.DataFrame, family_column: str = "family", p_column: str = "p_value"
) -> pd.DataFrame:
    """Add Holm and Benjamini-Hochberg adjusted p values, computed within each family.

    Parameters
    ----------
    estimates : pandas.DataFrame
        Tidy estimates (one row per estimate). Not modified.
    family_column : str, default "family"
        Column naming the family each test belongs to (e.g. "primary", "secondary:pain").
        Families are adjusted separately.
    p_column : str, default "p_value"
        Column of raw p values.

    Returns
    -------
    pandas.DataFrame
        A copy of ``estimates`` (same index and row order) with two new columns:
        ``p_holm`` (Holm-adjusted p value within the family) and ``p_fdr_bh``
        (Benjamini-Hochberg-adjusted p value within the family).

    Raises
    ------
    ValueError
        If a column is missing, ``p_holm``/``p_fdr_bh`` already exist, or a p value lies
        outside [0, 1].

    Notes
    -----
    Rows whose family is missing, None or blank get NaN adjusted p values: a test with no
    declared family has no defined multiplicity, and treating it as a family of one would
    label an unadjusted p value as adjusted. Rows with a NaN p value get NaN and do not count
    towards their family's size. Each family is adjusted with :func:`adjust_p_values`.

    References
    ----------
    Holm S. A simple sequentially rejective multiple test procedure. *Scand J Stat*
    1979;6:65-70.

    Benjamini Y, Hochberg Y. Controlling the false discovery rate. *J R Stat Soc B*
    1995;57:289-300.
    """
    missing = [c for c in (family_column, p_column) if c not in estimates.columns]
    if missing:
        raise ValueError(
            f"column(s) {missing} not in the estimates (columns: {list(estimates.columns)}): "
            "add a family label per row, or pass family_column/p_column"
        )
    existing = [c for c in ("p_holm", "p_fdr_bh") if c in estimates.columns]
    if existing:
        raise ValueError(
            f"column(s) {existing} already present: drop them first, so that adjusted p values "
            "are never silently replaced"
        )
    try:
        p = estimates[p_column].to_numpy(dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f'column "{p_column}" must hold numeric p values (NaN for missing): {error}'
        ) from error
    bad = p[~np.isnan(p) & ((p < 0) | (p > 1))]
    if bad.size:
        raise ValueError(f'column "{p_column}" has values outside [0, 1]: {bad.tolist()}')
    holm = np.full(len(estimates), np.nan)
    bh = np.full(len(estimates), np.nan)
    families = estimates[family_column].to_numpy(dtype=object)
    has_family = np.array([not _no_family(f) for f in families], dtype=bool)
    for family in pd.unique(families[has_family]):
        members = has_family & (families == family)
        holm[members] = adjust_p_values(p[members], "holm")
        bh[members] = adjust_p_values(p[members], "fdr_bh")
    return estimates.assign(p_holm=holm, p_fdr_bh=bh)
