"""Table 1: who was in each arm, with standardised differences and missing data, small cells suppressed."""

from __future__ import annotations

import numpy as np
import pandas as pd


def suppress(count: int, min_cell: int) -> str:
    """A count as published: below ``min_cell`` (but above 0) it becomes "<min_cell"."""
    return f"<{min_cell}" if 0 < count < min_cell else f"{count}"


def table_one(
    participants: pd.DataFrame,
    outcomes: pd.DataFrame,
    treatment: str,
    control: str,
    covariates: list[str],
    min_cell: int = 5,
) -> pd.DataFrame:
    """Baseline characteristics by arm.

    Parameters
    ----------
    participants, outcomes
        The canonical tables of one study.
    treatment, control
        The arms the standardised difference compares (all arms are shown).
    covariates
        Participant columns to describe.
    min_cell
        Counts below this (and their percentages) are shown as "<min_cell".

    Returns
    -------
    pandas.DataFrame
        Columns ``characteristic``, ``level`` (category or "mean (SD)"), one column per arm
        with the formatted value, ``smd`` (treatment vs control: difference in means or
        proportions over the pooled SD, sqrt((var_t + var_c) / 2); Austin, Stat Med 2009;28:3083)
        and ``missing`` (people without a value, all arms).

    Notes
    -----
    Only aggregates are returned; no row describes a person.
    """
    arms = [
        str(a)
        for a in (
            participants["arm"].cat.categories
            if isinstance(participants["arm"].dtype, pd.CategoricalDtype)
            else sorted(participants["arm"].astype(str).unique())
        )
    ]
    arm = participants["arm"].astype(str)
    rows: list[dict[str, str]] = [
        {
            "characteristic": "Participants",
            "level": "n",
            **{a: suppress(int((arm == a).sum()), min_cell) for a in arms},
            "smd": "",
            "missing": "",
        }
    ]
    baseline = _baseline_values(outcomes)
    frame = participants.merge(baseline, how="left", left_on="participant_id", right_index=True)
    described = [c for c in covariates if c in frame.columns] + list(baseline.columns)
    if "sessions" in frame.columns and frame["sessions"].notna().any():
        described.append("sessions")
    for column in described:
        values = frame[column]
        missing = suppress(int(values.isna().sum()), min_cell)
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            cells = {a: _mean_sd(values[arm == a]) for a in arms}
            rows.append(
                {
                    "characteristic": _label(column),
                    "level": "mean (SD)",
                    **cells,
                    "smd": _smd_numeric(values[arm == treatment], values[arm == control]),
                    "missing": missing,
                }
            )
            continue
        levels = (
            list(values.cat.categories)
            if isinstance(values.dtype, pd.CategoricalDtype)
            else sorted(values.dropna().astype(str).unique())
        )
        cells_by_level = {
            level: {
                a: _count_percent(
                    values.astype(str)[arm == a] == str(level), values[arm == a].notna(), min_cell
                )
                for a in arms
            }
            for level in levels
        }
        # secondary suppression: one withheld level of an arm could be recomputed from the
        # others and the arm's total, and a level's SMD gives its share back: withhold them all
        hidden = {a for a in arms if any(c[a].startswith("<") for c in cells_by_level.values())}
        for i, level in enumerate(levels):
            is_level = values.astype(str) == str(level)
            cells = {
                a: ("withheld" if a in hidden and not cell.startswith("<") else cell)
                for a, cell in cells_by_level[level].items()
            }
            rows.append(
                {
                    "characteristic": _label(column) if i == 0 else "",
                    "level": str(level),
                    **cells,
                    "smd": ""
                    if hidden
                    else _smd_binary(
                        is_level[(arm == treatment) & values.notna()],
                        is_level[(arm == control) & values.notna()],
                    ),
                    "missing": missing if i == 0 else "",
                }
            )
    sizes = arm.value_counts()
    for (outcome, timepoint), share in _missing_share(outcomes, participants).items():
        cells = {
            a: _missing_percent(share.get(a, np.nan), int(sizes.get(a, 0)), min_cell) for a in arms
        }
        rows.append(
            {
                "characteristic": f"No {_label(outcome).lower()} value",
                "level": str(timepoint),
                **cells,
                "smd": "",
                "missing": "",
            }
        )
    return pd.DataFrame(rows, columns=["characteristic", "level", *arms, "smd", "missing"])


def _baseline_values(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Each outcome's value at its first timepoint, one column per outcome ("<outcome> at start")."""
    columns = {}
    for outcome, rows in outcomes.groupby("outcome", observed=True, sort=False):
        timepoints = rows["timepoint"]
        first = (
            timepoints.cat.categories[0]
            if isinstance(timepoints.dtype, pd.CategoricalDtype)
            else rows.sort_values("days")["timepoint"].iloc[0]
        )
        at_start = rows[timepoints.astype(str) == str(first)]
        columns[f"{outcome} at start"] = at_start.set_index("participant_id")["value"]
    return pd.DataFrame(columns)


def _missing_share(
    outcomes: pd.DataFrame, participants: pd.DataFrame
) -> dict[tuple[str, str], dict[str, float]]:
    """Share of each arm without a value, per outcome and timepoint."""
    arm = participants.set_index("participant_id")["arm"].astype(str)
    sizes = arm.value_counts()
    out = {}
    for (outcome, timepoint), rows in outcomes.groupby(
        ["outcome", "timepoint"], observed=True, sort=True
    ):
        present = arm.reindex(rows["participant_id"].unique()).value_counts()
        out[(str(outcome), str(timepoint))] = {
            a: 1 - present.get(a, 0) / n for a, n in sizes.items() if n
        }
    return out


def _missing_percent(share: float, n: int, min_cell: int) -> str:
    """Share of an arm without a value; withheld when it stands for fewer than ``min_cell``
    people (or leaves fewer than ``min_cell`` with a value), since the arm's n is published."""
    if not np.isfinite(share):
        return ""
    count = round(share * n)
    if 0 < count < min_cell or 0 < n - count < min_cell:
        return f"<{min_cell} people"
    return f"{share:.0%}"


def _mean_sd(values: pd.Series) -> str:
    values = values.dropna().astype(float)
    if len(values) == 0:
        return ""
    return f"{values.mean():.1f} ({values.std():.1f})"


def _count_percent(is_level: pd.Series, known: pd.Series, min_cell: int) -> str:
    count, total = int(is_level[known].sum()), int(known.sum())
    if total == 0:
        return ""
    if 0 < count < min_cell:
        return f"<{min_cell}"
    return f"{count} ({count / total:.0%})"


def _smd_numeric(a: pd.Series, b: pd.Series) -> str:
    a, b = a.dropna().astype(float), b.dropna().astype(float)
    if len(a) < 2 or len(b) < 2:
        return ""
    pooled = np.sqrt((a.var() + b.var()) / 2)
    return f"{(a.mean() - b.mean()) / pooled:.2f}" if pooled > 0 else ""


def _smd_binary(a: pd.Series, b: pd.Series) -> str:
    if len(a) == 0 or len(b) == 0:
        return ""
    p, q = float(a.mean()), float(b.mean())
    pooled = np.sqrt((p * (1 - p) + q * (1 - q)) / 2)
    return f"{(p - q) / pooled:.2f}" if pooled > 0 else ""


def _label(column: str) -> str:
    return column.replace("_", " ").capitalize()
