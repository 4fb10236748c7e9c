"""Figures for people: forest plots, change by arm, covariate balance, participant flow, meta-analysis.

Every ``plot_*`` function takes the tidy tables the earlier stages wrote (frames in, nothing read
from disk) and returns a :class:`Figure`: a plotnine ``ggplot`` plus the file stem, the size in
inches and an alt text for screen readers that carries the key numbers. :func:`save_figure` is
the only function here that writes a file.

Privacy: figures show aggregates only. :func:`plot_change_by_arm` draws means of cells with at
least ``min_cell`` participants and leaves smaller cells out; :func:`plot_flow` prints counts
from 1 to ``min_cell - 1`` as "<5" (and hides one more count of the same total where a single
hidden count could be recovered by subtraction).
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mizani.breaks import breaks_extended, breaks_log
from plotnine import (
    aes,
    arrow,
    element_blank,
    facet_wrap,
    geom_errorbar,
    geom_line,
    geom_point,
    geom_polygon,
    geom_rect,
    geom_segment,
    geom_text,
    geom_vline,
    ggplot,
    labs,
    position_dodge,
    scale_colour_identity,
    scale_colour_manual,
    scale_fill_identity,
    scale_shape_manual,
    scale_x_continuous,
    scale_x_log10,
    scale_y_continuous,
    theme,
)
from scipy import stats

from pipeline.instruments import CANONICAL_DOMAINS
from pipeline.io import write_bytes
from pipeline.summarise.theme import (
    BASE_SIZE,
    DARK_GREY,
    LIGHT_GREY,
    NEUTRAL_GREY,
    OKABE_ITO,
    arm_palette,
    scale_colour_arms,
    theme_evidence,
)

# Effect measures drawn by plot_forest: differences on the canonical scale, and ratios (log axis).
DIFFERENCE_MEASURES: tuple[str, ...] = ("mean_difference",)
RATIO_MEASURES: tuple[str, ...] = ("rate_ratio", "risk_ratio", "odds_ratio")
FOREST_RATIO_MEASURES: tuple[str, ...] = ("rate_ratio",)

METHOD_LABELS: dict[str, str] = {
    "naive": "Unadjusted",
    "ancova": "ANCOVA",
    "mixed": "Mixed model",
    "ipw": "IPW",
    "aipw": "AIPW",
    "complete_case_ols": "Complete-case OLS",
    "mice": "Multiple imputation",
    "repeated_measures": "Repeated measures",
    "poisson": "Poisson",
    "negative_binomial": "Negative binomial",
    "meta_reml": "Pooled (REML)",
    "meta_dl": "Pooled (DerSimonian-Laird)",
    "meta_pm": "Pooled (Paule-Mandel)",
}
_MEASURE_LABELS: dict[str, str] = {
    "mean_difference": "difference in means",
    "hedges_g": "standardised mean difference (Hedges' g)",
    "rate_ratio": "rate ratio",
    "risk_ratio": "risk ratio",
    "odds_ratio": "odds ratio",
    "risk_difference": "risk difference",
}
_OUTCOME_LABELS: dict[str, str] = {"fear_avoidance": "Fear-avoidance"}

# Ratio panels of the forest plot share one ggplot with difference panels, and plotnine has one
# x transformation per plot. So ratio rows are drawn at OFFSET + log10(ratio): the offset keeps
# them apart from any difference on a canonical scale (|x| <= 100), and the break and label
# functions below turn those positions back into ratios.
_LOG_OFFSET = 1e6
_PRIMARY = "Primary analysis"
_OTHER = "Other methods"
_FOREST_COLUMNS = (
    "comparison_id",
    "method",
    "estimand",
    "effect_measure",
    "term",
    "estimate",
    "ci_low",
    "ci_high",
    "is_primary",
    "outcome",
    "domain",
    "timepoint",
    "treatment",
    "control",
    "mcid",
    "higher_is_better",
)


@dataclass(frozen=True)
class Figure:
    """A figure ready to save: the plot, its file stem, its size and an alt text.

    Attributes
    ----------
    name : str
        File stem (``save_figure`` adds nothing; pass ``<dir>/<name>.png``).
    plot : plotnine.ggplot
        The plot. Its ``data`` holds aggregates only, never participant rows.
    alt_text : str
        One or two plain sentences saying what the figure shows, with the key numbers.
    width, height : float
        Size in inches.
    """

    name: str
    plot: ggplot
    alt_text: str
    width: float
    height: float


# ---------------------------------------------------------------------------------------------
# Forest plot of the main estimates
# ---------------------------------------------------------------------------------------------


def plot_forest(estimates: pd.DataFrame, *, show_mcid: bool = True, name: str = "forest") -> Figure:
    """Forest plot of the main estimates: one row per comparison x method (x estimand).

    Parameters
    ----------
    estimates : pandas.DataFrame
        The ``estimates`` table of ``analyse`` (one or more studies). Used rows: effect
        measure ``mean_difference`` (one panel per outcome, on its canonical scale) and
        ``rate_ratio`` (own panel, log axis), whose ``term`` is the whole contrast
        ``"<treatment> vs <control>"`` (repeated-measures rows: ``"... at <timepoint>"``).
        Subgroup rows (effect modification) and adjusted means are left out. Needs the columns
        ``comparison_id, method, estimand, effect_measure, term, estimate, ci_low, ci_high,
        is_primary, outcome, domain, timepoint, treatment, control, mcid, higher_is_better``.
    show_mcid : bool, default True
        Draw dashed lines at +/- the MCID in difference panels where the MCID is known.
    name : str, default "forest"
        File stem of the figure.

    Returns
    -------
    Figure
        ``plot.data`` has one row per drawn estimate with the input columns plus ``label``
        (row label), ``panel`` (facet label), ``analysis`` (primary or other) and the drawn
        positions ``x, xmin, xmax`` (for ratio rows these are offset log10 positions, see
        Notes).

    Raises
    ------
    ValueError
        If columns are missing or no row is a whole-comparison difference or rate ratio.

    Notes
    -----
    A vertical line marks no effect (0 for differences, 1 for ratios). Primary rows
    (``is_primary``) are blue squares, other methods grey circles. Rows without an estimate or
    CI are not drawn and are counted in the caption. plotnine has one x transformation per
    plot, so rate ratios are drawn at ``1e6 + log10(ratio)`` with breaks and labels that show
    the ratio itself; the log axis is therefore exact, but ``plot.data["x"]`` of ratio rows is
    a drawing position, not an estimate.

    Examples
    --------
    >>> est = pd.read_parquet("data/processed/etmi-reference/estimates.parquet")  # doctest: +SKIP
    >>> save_figure(plot_forest(est), "reports/etmi-reference/forest.png")  # doctest: +SKIP
    """
    _require_columns(estimates, _FOREST_COLUMNS, "estimates")
    rows = _forest_rows(estimates)
    if rows.empty:
        raise ValueError(
            "estimates has no mean_difference or rate_ratio row for a whole comparison "
            '(term "<treatment> vs <control>"): pass the estimates table written by analyse'
        )
    complete = rows[["estimate", "ci_low", "ci_high"]].notna().all(axis=1)
    n_dropped = int((~complete).sum())
    rows = rows.loc[complete].reset_index(drop=True)
    if rows.empty:
        raise ValueError("no forest-plot row of estimates has an estimate and a 95% CI")

    ratio = rows["effect_measure"].isin(FOREST_RATIO_MEASURES).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        position = {
            c: np.where(ratio, _LOG_OFFSET + np.log10(rows[c].to_numpy(float)), rows[c])
            for c in ("estimate", "ci_low", "ci_high")
        }
    if (
        ratio.any()
        and not np.isfinite(np.concatenate([position[c][ratio] for c in position])).all()
    ):
        raise ValueError("a rate ratio or its CI is not positive: it cannot go on a log axis")
    rows = rows.assign(x=position["estimate"], xmin=position["ci_low"], xmax=position["ci_high"])

    panels = rows.drop_duplicates("panel")
    references = pd.DataFrame(
        {
            "panel": panels["panel"],
            "xintercept": np.where(panels["is_ratio"], _LOG_OFFSET, 0.0),
        }
    )
    mcid_lines = pd.DataFrame(columns=["panel", "xintercept"])
    if show_mcid:
        with_mcid = rows.loc[~rows["is_ratio"] & rows["mcid"].notna(), ["panel", "mcid"]]
        with_mcid = with_mcid.drop_duplicates()
        mcid_lines = pd.concat(
            [
                with_mcid.assign(xintercept=with_mcid["mcid"].abs()),
                with_mcid.assign(xintercept=-with_mcid["mcid"].abs()),
            ],
            ignore_index=True,
        )[["panel", "xintercept"]]

    contrasts = _contrast_words(rows)
    n_pairs = rows[["treatment", "control"]].drop_duplicates().shape[0]
    subtitle = (
        f"Comparison{'s' if n_pairs > 1 else ''}: {contrasts}. Point: estimate; line: 95% CI; grey line: no effect"
        + ("; dashed lines: ± MCID" if len(mcid_lines) else "")
    )
    caption_parts = []
    if n_dropped:
        caption_parts.append(f"{n_dropped} estimate(s) without a 95% CI are not shown.")
    if "synthetic" in rows and rows["synthetic"].fillna(False).astype(bool).any():
        caption_parts.append("Synthetic data: not evidence about real patients.")

    plot = (
        ggplot(rows, aes(y="label"))
        + geom_vline(aes(xintercept="xintercept"), data=references, colour=NEUTRAL_GREY, size=0.6)
        + geom_segment(aes(x="xmin", xend="xmax", yend="label", colour="analysis"), size=0.8)
        + geom_point(aes(x="x", colour="analysis", shape="analysis"), size=2.6, fill="white")
        + facet_wrap("panel", ncol=1, scales="free")
        + scale_x_continuous(breaks=_forest_breaks, labels=_forest_labels)
        + scale_colour_manual(
            values={_PRIMARY: OKABE_ITO["blue"], _OTHER: DARK_GREY}, name="", drop=False
        )
        + scale_shape_manual(values={_PRIMARY: "s", _OTHER: "o"}, name="", drop=False)
        + labs(
            x="Estimate (95% CI)",
            y="",
            title="Estimated effects by analysis method",
            subtitle=_wrap(subtitle, 100),
            caption=_wrap(" ".join(caption_parts), 120) if caption_parts else None,
        )
        + theme_evidence()
        + theme(panel_grid_major_y=element_blank(), legend_title=element_blank())
    )
    if len(mcid_lines):
        plot += geom_vline(
            aes(xintercept="xintercept"),
            data=mcid_lines,
            colour=NEUTRAL_GREY,
            linetype="dashed",
            size=0.5,
        )

    n_panels = rows["panel"].nunique()
    height = _clamp(2.2 + 0.27 * len(rows) + 0.75 * n_panels, 3.5, 24.0)
    return Figure(
        name=name,
        plot=plot,
        alt_text=_forest_alt_text(rows, contrasts),
        width=9.5,
        height=height,
    )


def _forest_rows(estimates: pd.DataFrame) -> pd.DataFrame:
    """Whole-comparison difference and rate-ratio rows, with labels and panels, in display order."""
    measures = DIFFERENCE_MEASURES + FOREST_RATIO_MEASURES
    data = estimates.loc[estimates["effect_measure"].isin(measures)].copy()
    if data.empty:
        return data
    for column in ("treatment", "control", "timepoint", "outcome", "method", "estimand"):
        data[column] = data[column].astype("string").fillna("")
    contrast = data["treatment"] + " vs " + data["control"]
    whole = (data["term"] == contrast) | (data["term"] == contrast + " at " + data["timepoint"])
    data = data.loc[whole.fillna(False).to_numpy()].reset_index(drop=True)
    if data.empty:
        return data

    data["is_ratio"] = data["effect_measure"].isin(FOREST_RATIO_MEASURES)
    many_studies = "study_id" in data and data["study_id"].nunique() > 1
    # A comparison is named by outcome and timepoint; the contrast is added where that is ambiguous.
    pair = data["treatment"] + " vs " + data["control"]
    ambiguous = (
        data.assign(_pair=pair).groupby(["outcome", "timepoint"])["_pair"].transform("nunique") > 1
    )
    n_estimands = data.groupby(["comparison_id", "method"])["estimand"].transform("nunique")

    labels = []
    for i, row in data.iterrows():
        words = _outcome_words(row["outcome"])
        if row["timepoint"]:
            words += f" at {_words(row['timepoint'])}"
        if ambiguous.iloc[i]:
            words += f" ({_words(row['treatment'])} vs {_words(row['control'])})"
        if many_studies:
            words = f"{row['study_id']}: {words}"
        method = METHOD_LABELS.get(row["method"], _capitalise(_words(row["method"])))
        if n_estimands.iloc[i] > 1:
            method += f" ({row['estimand']})"
        labels.append(_wrap(f"{words} — {method}", 56))
    data["label"] = labels

    panel_of = {}
    for key, group in data.groupby(["outcome", "is_ratio"], sort=False):
        panel_of[key] = _wrap(_forest_panel_label(group), 64)
    data["panel"] = [
        panel_of[(o, r)] for o, r in zip(data["outcome"], data["is_ratio"], strict=True)
    ]
    # Panels: outcomes in order of appearance, ratio panels last; rows top-down in input order.
    order = data.sort_values("is_ratio", kind="stable")
    panel_levels = list(dict.fromkeys(order["panel"]))
    label_levels = list(dict.fromkeys(order["label"]))[::-1]
    data["panel"] = pd.Categorical(data["panel"], categories=panel_levels)
    data["label"] = pd.Categorical(data["label"], categories=label_levels)
    data["analysis"] = pd.Categorical(
        np.where(data["is_primary"].fillna(False).astype(bool), _PRIMARY, _OTHER),
        categories=[_PRIMARY, _OTHER],
    )
    return data


def _forest_panel_label(group: pd.DataFrame) -> str:
    """Strip text of one forest panel: outcome, measure, scale and which side favours treatment."""
    first = group.iloc[0]
    outcome = _outcome_words(first["outcome"])
    treatments = group["treatment"].unique()
    who = _words(treatments[0]) if len(treatments) == 1 else "treatment"
    directions = group["higher_is_better"].dropna().unique()
    if bool(first["is_ratio"]):
        measure = _MEASURE_LABELS.get(first["effect_measure"], _words(first["effect_measure"]))
        text = f"{outcome}: {measure}, log scale"
        if len(directions) == 1:
            text += f" (> 1 favours {who})" if directions[0] else f" (< 1 favours {who})"
        return text
    scale = _scale_words(first["domain"])
    text = f"{outcome}: difference in means" + (f", {scale}" if scale else "")
    if len(directions) == 1:
        text += f" (> 0 favours {who})" if directions[0] else f" (< 0 favours {who})"
    return text


def _forest_breaks(limits: Sequence[float]) -> np.ndarray:
    """Axis breaks: extended breaks for differences, log breaks for offset ratio panels."""
    low, high = float(limits[0]), float(limits[1])
    if low < _LOG_OFFSET / 2:
        return np.asarray(breaks_extended(n=5)((low, high)), dtype=float)
    ratio_limits = (10 ** (low - _LOG_OFFSET), 10 ** (high - _LOG_OFFSET))
    ratios = np.asarray(breaks_log(n=5)(ratio_limits), dtype=float)
    inside = ratios[(ratios >= ratio_limits[0]) & (ratios <= ratio_limits[1])]
    if len(inside) < 3:  # a narrow range: evenly spaced ratios read better than decades
        ratios = np.asarray(breaks_extended(n=5)(ratio_limits), dtype=float)
        ratios = ratios[ratios > 0]
    return _LOG_OFFSET + np.log10(ratios)


def _forest_labels(breaks: Sequence[float]) -> list[str]:
    """Tick labels: the difference, or the ratio for offset positions."""
    return [f"{10 ** (b - _LOG_OFFSET):.3g}" if b > _LOG_OFFSET / 2 else f"{b:.4g}" for b in breaks]


def _forest_alt_text(rows: pd.DataFrame, contrasts: str) -> str:
    """Alt text of the forest plot: what is drawn and the primary estimates."""
    n_outcomes = rows["outcome"].nunique()
    first = (
        f"Forest plot of {len(rows)} effect estimates with 95% confidence intervals for "
        f"{n_outcomes} outcome{'s' if n_outcomes != 1 else ''} ({contrasts}), one row per "
        "comparison and analysis method."
    )
    primary = rows.loc[rows["analysis"] == _PRIMARY]
    if primary.empty:
        return f"{first} No estimate is marked as the primary analysis."
    parts = []
    for _, row in primary.iterrows():
        what = str(row["label"]).replace("\n", " ").split(" — ")[0]
        numbers = f"{_fmt(row['estimate'])} (95% CI {_fmt(row['ci_low'])} to {_fmt(row['ci_high'])}"
        if row["is_ratio"]:
            text = f"{what} rate ratio {numbers})"
        else:
            mcid = row["mcid"]
            text = f"{what} {numbers}" + (f"; MCID {mcid:.3g})" if pd.notna(mcid) else ")")
        parts.append(text)
    return f"{first} Primary estimates: " + "; ".join(parts) + "."


# ---------------------------------------------------------------------------------------------
# Mean scores over time by arm
# ---------------------------------------------------------------------------------------------


def plot_change_by_arm(
    outcomes: pd.DataFrame,
    participants: pd.DataFrame,
    treatment: str,
    control: str,
    min_cell: int = 5,
    *,
    name: str = "change_by_arm",
) -> Figure:
    """Mean (95% CI) of each outcome at each timepoint, by arm: aggregates only.

    Parameters
    ----------
    outcomes : pandas.DataFrame
        The long ``outcomes`` table of ``ingest`` (``participant_id, outcome, domain,
        timepoint, value``; ``value`` on the canonical scale). A categorical ``timepoint``
        gives the order of the x axis (baseline first); otherwise the order of appearance.
    participants : pandas.DataFrame
        The ``participants`` table (``participant_id, arm``).
    treatment, control : str
        The two arms to draw; treatment gets the first colour.
    min_cell : int, default 5
        Cells (outcome x timepoint x arm) with fewer participants are not drawn at all.
    name : str, default "change_by_arm"
        File stem of the figure.

    Returns
    -------
    Figure
        ``plot.data`` has one row per shown cell with columns ``outcome, timepoint, arm, n,
        mean, sd, ci_low, ci_high`` (canonical-scale points) and the labels ``panel,
        timepoint_label, arm_label``. It holds no participant rows and no suppressed cell.

    Raises
    ------
    ValueError
        If columns are missing, an arm is unknown, ``min_cell`` is below 1, or every cell is
        smaller than ``min_cell``.

    Notes
    -----
    A participant with several values in one outcome x timepoint counts once (their mean).
    The CI is mean +/- t(0.975, n - 1) x SD / sqrt(n), unadjusted and unweighted: a
    description of the observed data, not an effect estimate. Missing values are left out, so
    n can differ between timepoints. Suppressed cells are named in the caption and counted in
    the alt text; a line joins the remaining timepoints of an arm.
    """
    _require_columns(
        outcomes, ("participant_id", "outcome", "domain", "timepoint", "value"), "outcomes"
    )
    _require_columns(participants, ("participant_id", "arm"), "participants")
    if isinstance(min_cell, bool) or not isinstance(min_cell, int | np.integer) or min_cell < 1:
        raise ValueError(f"min_cell must be a whole number of at least 1, got {min_cell!r}")
    if treatment == control:
        raise ValueError(f'treatment and control are both "{treatment}": name two different arms')
    known_arms = set(participants["arm"].dropna().astype(str))
    for role, arm in (("treatment", treatment), ("control", control)):
        if arm not in known_arms:
            raise ValueError(
                f'{role} arm "{arm}" is not in participants (arms: {", ".join(sorted(known_arms))})'
            )

    cells = _cell_summaries(outcomes, participants, (treatment, control))
    small = cells["n"] < min_cell
    shown = cells.loc[~small].reset_index(drop=True)
    hidden = cells.loc[small].reset_index(drop=True)
    if shown.empty:
        raise ValueError(
            f"every outcome x timepoint x arm cell has fewer than {min_cell} participants: "
            "there is nothing that can be shown"
        )

    arm_words = {treatment: _words(treatment), control: _words(control)}
    shown = shown.assign(
        arm_label=pd.Categorical(
            shown["arm"].map(arm_words), categories=[arm_words[treatment], arm_words[control]]
        )
    )
    dodge = position_dodge(width=0.35)
    caption = None
    if len(hidden):
        listed = "; ".join(
            f"{_outcome_words(r.outcome).lower()} at {_words(r.timepoint)} ({arm_words[r.arm]})"
            for r in hidden.itertuples()
        )
        caption = f"Not shown (fewer than {min_cell} participants): {listed}."
    n_panels = shown["panel"].nunique()
    ncol = 1 if n_panels == 1 else 2
    plot = (
        ggplot(
            shown,
            aes(x="timepoint_label", y="mean", colour="arm_label", group="arm_label"),
        )
        + geom_line(position=dodge, size=0.7, alpha=0.8)
        + geom_errorbar(aes(ymin="ci_low", ymax="ci_high"), width=0.2, position=dodge, size=0.6)
        + geom_point(position=dodge, size=2.4)
        + facet_wrap("panel", scales="free_y", ncol=ncol)
        + scale_colour_arms([arm_words[treatment], arm_words[control]])
        + labs(
            x="",
            y="Mean (95% CI)",
            title="Mean scores over time by arm",
            subtitle=_wrap(
                "Observed means of each group, not adjusted for differences between arms; "
                f"groups of fewer than {min_cell} participants are not shown",
                95,
            ),
            caption=_wrap(caption, 110) if caption else None,
        )
        + theme_evidence()
    )
    n_rows = math.ceil(n_panels / ncol)
    n_timepoints = shown["timepoint_label"].nunique()
    width = _clamp(4.0 + 1.0 * n_timepoints * ncol, 6.0, 11.0)
    return Figure(
        name=name,
        plot=plot,
        alt_text=_change_alt_text(shown, hidden, participants, treatment, control, min_cell),
        width=width,
        height=_clamp(1.9 + 2.6 * n_rows, 3.5, 14.0),
    )


def _cell_summaries(
    outcomes: pd.DataFrame, participants: pd.DataFrame, arms: tuple[str, str]
) -> pd.DataFrame:
    """n, mean, SD and 95% CI per outcome x timepoint x arm (one value per participant)."""
    values = outcomes.loc[outcomes["value"].notna(), ["participant_id", "outcome", "timepoint"]]
    values = values.assign(
        value=outcomes.loc[values.index, "value"].astype(float),
        participant_id=values["participant_id"].astype(str),
    )
    timepoint_order = _levels(outcomes["timepoint"])
    outcome_order = _levels(outcomes["outcome"])
    domain_of = (
        outcomes[["outcome", "domain"]]
        .astype(str)
        .drop_duplicates("outcome")
        .set_index("outcome")["domain"]
        .to_dict()
    )
    values = values.astype({"outcome": str, "timepoint": str})
    per_person = (
        values.groupby(["participant_id", "outcome", "timepoint"], sort=False)["value"]
        .mean()
        .reset_index()
    )
    arm_of = participants[["participant_id", "arm"]].astype({"participant_id": str, "arm": str})
    per_person = per_person.merge(arm_of, on="participant_id", how="inner", validate="m:1")
    per_person = per_person.loc[per_person["arm"].isin(arms)]
    cells = (
        per_person.groupby(["outcome", "timepoint", "arm"], sort=False)["value"]
        .agg(n="size", mean="mean", sd="std")
        .reset_index()
    )
    half = stats.t.ppf(0.975, np.maximum(cells["n"] - 1, 1)) * cells["sd"] / np.sqrt(cells["n"])
    cells = cells.assign(ci_low=cells["mean"] - half, ci_high=cells["mean"] + half)
    cells["outcome"] = pd.Categorical(cells["outcome"], categories=outcome_order)
    cells["timepoint"] = pd.Categorical(cells["timepoint"], categories=timepoint_order)
    cells["arm"] = pd.Categorical(cells["arm"], categories=list(arms))
    cells = cells.sort_values(["outcome", "timepoint", "arm"]).reset_index(drop=True)
    panel_levels = [
        _outcome_panel(o, domain_of.get(o, "")) for o in outcome_order if o in set(cells["outcome"])
    ]
    return cells.assign(
        panel=pd.Categorical(
            [_outcome_panel(o, domain_of.get(o, "")) for o in cells["outcome"].astype(str)],
            categories=panel_levels,
        ),
        timepoint_label=pd.Categorical(
            [_capitalise(_words(t)) for t in cells["timepoint"].astype(str)],
            categories=list(dict.fromkeys(_capitalise(_words(t)) for t in timepoint_order)),
        ),
    )


def _change_alt_text(
    shown: pd.DataFrame,
    hidden: pd.DataFrame,
    participants: pd.DataFrame,
    treatment: str,
    control: str,
    min_cell: int,
) -> str:
    """Alt text of the change-by-arm figure: arms with n, the last comparable means, suppression."""
    arm_n = participants["arm"].astype(str).value_counts()
    names = {treatment: _words(treatment), control: _words(control)}
    outcomes = [str(o) for o in shown["outcome"].cat.categories if o in set(shown["outcome"])]
    timepoints = [str(t) for t in shown["timepoint"].cat.categories if t in set(shown["timepoint"])]
    first = (
        f"Line chart of observed mean {_join_words([_outcome_words(o).lower() for o in outcomes])} "
        f"with 95% confidence intervals at {_join_words([_words(t) for t in timepoints])}, for "
        f"{names[treatment]} (n = {_count_text(int(arm_n.get(treatment, 0)), min_cell)}) and "
        f"{names[control]} (n = {_count_text(int(arm_n.get(control, 0)), min_cell)})."
    )
    last_means = []
    for outcome in outcomes:
        cells = shown.loc[shown["outcome"] == outcome]
        both = cells.groupby("timepoint", observed=True)["arm"].nunique()
        both = both[both == 2]
        if both.empty:
            continue
        timepoint = both.index[-1]
        at = cells.loc[cells["timepoint"] == timepoint]
        at = at.set_index(at["arm"].astype(str))
        last_means.append(
            f"{_outcome_words(outcome).lower()} at {_words(str(timepoint))} "
            f"{_fmt(at.loc[treatment, 'mean'])} vs {_fmt(at.loc[control, 'mean'])}"
        )
    second = (
        f"Means for {names[treatment]} vs {names[control]}: " + "; ".join(last_means) + "."
        if last_means
        else ""
    )
    third = (
        f"{len(hidden)} group{'s' if len(hidden) != 1 else ''} with fewer than {min_cell} "
        f"participants {'are' if len(hidden) != 1 else 'is'} not shown."
        if len(hidden)
        else f"Every group shown has at least {min_cell} participants."
    )
    return " ".join(part for part in (first, second, third) if part)


# ---------------------------------------------------------------------------------------------
# Covariate balance (love plot)
# ---------------------------------------------------------------------------------------------


def plot_balance(
    balance: pd.DataFrame,
    estimand: str = "ATE",
    threshold: float = 0.1,
    *,
    name: str = "balance",
) -> Figure:
    """Love plot: |SMD| per covariate before and after weighting, one panel per comparison.

    Parameters
    ----------
    balance : pandas.DataFrame
        The ``balance`` table of ``analyse`` (``covariate, smd_before, smd_after,
        comparison_id, estimand``).
    estimand : str, default "ATE"
        Which weights to show (the table has one set of rows per estimand).
    threshold : float, default 0.1
        |SMD| drawn as a dashed line; a common rule of thumb for adequate balance.
    name : str, default "balance"
        File stem of the figure.

    Returns
    -------
    Figure
        ``plot.data`` has one row per comparison x covariate x stage with ``abs_smd`` and
        ``stage`` ("Before weighting", "After weighting").

    Raises
    ------
    ValueError
        If the table is empty (no weighted comparison), columns are missing, or the estimand
        has no rows.

    Notes
    -----
    Covariates are sorted by their largest |SMD| before weighting (largest on top).
    Reference: Austin PC. Balance diagnostics for comparing the distribution of baseline
    covariates between treatment groups in propensity-score matched samples. Stat Med
    2009;28(25):3083-107.
    """
    if balance.empty:
        raise ValueError(
            "balance is empty: this study has no weighted comparison, so there is no love plot "
            "to draw (skip the figure for this study)"
        )
    _require_columns(
        balance, ("covariate", "smd_before", "smd_after", "comparison_id", "estimand"), "balance"
    )
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold!r}")
    rows = balance.loc[balance["estimand"].astype(str) == estimand]
    if rows.empty:
        available = ", ".join(sorted(balance["estimand"].dropna().astype(str).unique()))
        raise ValueError(f'balance has no rows for estimand "{estimand}" (available: {available})')

    long = pd.concat(
        [
            rows.assign(stage="Before weighting", abs_smd=rows["smd_before"].abs()),
            rows.assign(stage="After weighting", abs_smd=rows["smd_after"].abs()),
        ],
        ignore_index=True,
    )[["comparison_id", "covariate", "stage", "abs_smd"]]
    long = long.loc[long["abs_smd"].notna()]
    long["covariate"] = long["covariate"].astype(str)
    order = (
        long.loc[long["stage"] == "Before weighting"]
        .groupby("covariate")["abs_smd"]
        .max()
        .sort_values(kind="stable")
    )
    long["covariate_label"] = pd.Categorical(
        long["covariate"].map(lambda c: _wrap(c.replace("_", " "), 28)),
        categories=list(dict.fromkeys(_wrap(c.replace("_", " "), 28) for c in order.index)),
    )
    long["stage"] = pd.Categorical(
        long["stage"], categories=["Before weighting", "After weighting"]
    )
    long["comparison_id"] = long["comparison_id"].astype(str)
    ranges = long.pivot_table(
        index=["comparison_id", "covariate_label"],
        columns="stage",
        values="abs_smd",
        observed=True,
    ).reset_index()
    ranges.columns = [str(c) for c in ranges.columns]
    ranges = ranges.dropna(subset=["Before weighting", "After weighting"])

    n_comparisons = long["comparison_id"].nunique()
    ncol = min(3, n_comparisons)
    plot = (
        ggplot(long, aes(x="abs_smd", y="covariate_label"))
        + geom_vline(xintercept=threshold, linetype="dashed", colour=NEUTRAL_GREY, size=0.6)
        + geom_segment(
            aes(x="Before weighting", xend="After weighting", yend="covariate_label"),
            data=ranges,
            colour=LIGHT_GREY,
            size=0.8,
        )
        + geom_point(aes(colour="stage", shape="stage"), size=2.4, fill="white")
        + facet_wrap("comparison_id", ncol=ncol, scales="free_y")
        + scale_colour_manual(
            values={
                "Before weighting": OKABE_ITO["vermillion"],
                "After weighting": OKABE_ITO["blue"],
            },
            name="",
        )
        + scale_shape_manual(values={"Before weighting": "o", "After weighting": "s"}, name="")
        + scale_x_continuous(limits=(0, None))
        + labs(
            x="Absolute standardised mean difference",
            y="",
            title="Covariate balance before and after weighting",
            subtitle=f"{estimand} weights; dashed line: |SMD| = {threshold:g}",
        )
        + theme_evidence()
        + theme(panel_grid_major_y=element_blank(), legend_title=element_blank())
    )
    n_covariates = long["covariate_label"].nunique()
    n_rows = math.ceil(n_comparisons / ncol)
    return Figure(
        name=name,
        plot=plot,
        alt_text=_balance_alt_text(long, estimand, threshold),
        width=_clamp(3.2 * ncol + 1.8, 6.0, 12.0),
        height=_clamp(1.8 + n_rows * (0.6 + 0.24 * n_covariates), 3.5, 16.0),
    )


def _balance_alt_text(long: pd.DataFrame, estimand: str, threshold: float) -> str:
    """Alt text of the love plot: largest |SMD| before and after, and how many exceed the line."""
    before = long.loc[long["stage"] == "Before weighting"]
    after = long.loc[long["stage"] == "After weighting"]
    n_cov = long["covariate"].nunique()
    n_comp = long["comparison_id"].nunique()
    first = (
        f"Love plot of absolute standardised mean differences for {n_cov} covariates in {n_comp} "
        f"comparison{'s' if n_comp != 1 else ''}, before and after {estimand} weighting."
    )
    parts = []
    for label, stage in (("before", before), ("after", after)):
        if stage.empty:
            continue
        top = stage.loc[stage["abs_smd"].idxmax()]
        over = int((stage["abs_smd"] > threshold).sum())
        parts.append(
            f"{label} weighting the largest was {_fmt(top['abs_smd'])} "
            f"({top['covariate'].replace('_', ' ')}, {top['comparison_id']}) and "
            f"{over} of {len(stage)} exceeded {threshold:g}"
        )
    second = _capitalise("; ".join(parts) + ".") if parts else ""
    return f"{first} {second}".strip()


# ---------------------------------------------------------------------------------------------
# Participant flow
# ---------------------------------------------------------------------------------------------

_BOX_LINE = 0.42  # height of one text line in drawing units
_BOX_WIDTH = 4.4
_SLOT = 10.6  # width of the column of one main file: flow box, gap, exclusion box
_EXCLUSION_WORDS = {
    "collapsed": "duplicate rows collapsed",
    "filtered": "rows filtered out",
    "quarantined": "rows quarantined",
}


def plot_flow(
    report: Mapping[str, Any],
    min_cell: int = 5,
    *,
    arms: Sequence[str] | None = None,
    name: str = "flow",
) -> Figure:
    """Participant flow from the ingest report: rows received, excluded, kept, participants, arms.

    Parameters
    ----------
    report : mapping
        The ``ingest_report.json`` of a study, as a dict: ``files.<name>.rows.{in, kept,
        collapsed, filtered, quarantined, quarantined_by_reason}``, ``participants`` and
        ``participants_by_arm``. Files with a ``join`` entry are lookup files (e.g.
        therapists) and are named in the caption, not drawn as a column.
    min_cell : int, default 5
        Counts from 1 to ``min_cell - 1`` are shown as "<5" (zero stays 0).
    arms : sequence of str, optional
        Arm order, treatment first; when given, arm boxes take the arm colours. By default the
        report's order with neutral boxes.
    name : str, default "flow"
        File stem of the figure.

    Returns
    -------
    Figure
        ``plot.data`` holds the boxes (``xmin, xmax, ymin, ymax, label, fill, colour``).

    Raises
    ------
    ValueError
        If the report lacks the row counts or the participant counts.

    Notes
    -----
    Small counts are hidden twice over: a count below ``min_cell`` is printed "<5", and where
    it is the only hidden part of a total that is shown (arms of all participants, reasons of
    the quarantined rows, exclusions between rows received and kept) the next smallest part is
    printed as ">=5" so that the hidden count cannot be recovered by subtraction. The same
    labels go into the alt text.
    """
    if isinstance(min_cell, bool) or not isinstance(min_cell, int | np.integer) or min_cell < 1:
        raise ValueError(f"min_cell must be a whole number of at least 1, got {min_cell!r}")
    files = report.get("files")
    if not isinstance(files, Mapping) or not files:
        raise ValueError('report has no "files" section: pass the ingest_report.json of a study')
    for key in ("participants", "participants_by_arm"):
        if key not in report:
            raise ValueError(f'report has no "{key}": pass the ingest_report.json of a study')
    for file_name, entry in files.items():
        rows = entry.get("rows", {}) if isinstance(entry, Mapping) else {}
        missing = [
            k for k in ("in", "kept", "collapsed", "filtered", "quarantined") if k not in rows
        ]
        if missing:
            raise ValueError(
                f'report file "{file_name}" lacks rows.{", rows.".join(missing)}: '
                "rerun ingest to write a complete report"
            )

    main_files = [f for f, e in files.items() if "join" not in e] or list(files)
    lookup_files = [f for f in files if f not in main_files]
    by_arm = {str(k): int(v) for k, v in report["participants_by_arm"].items()}
    arm_order = list(arms) if arms is not None else list(by_arm)
    unknown = [a for a in arm_order if a not in by_arm]
    if unknown:
        raise ValueError(f"arms {unknown} are not in the report (arms: {', '.join(by_arm)})")
    arm_order += [a for a in by_arm if a not in arm_order]
    arm_text = _suppress_counts({a: by_arm[a] for a in arm_order}, min_cell)
    participants_text = _count_text(int(report["participants"]), min_cell)

    boxes: list[dict[str, Any]] = []
    links: list[dict[str, float]] = []
    total_width = _SLOT * len(main_files)
    file_summaries = []
    column_layouts = []
    for file_name in main_files:
        rows = files[file_name]["rows"]
        source = Path(str(files[file_name].get("path", file_name))).name
        exclusions = _suppress_counts(
            {k: int(rows[k]) for k in ("collapsed", "filtered", "quarantined")}, min_cell
        )
        reasons = _suppress_counts(
            {str(k): int(v) for k, v in rows.get("quarantined_by_reason", {}).items()}, min_cell
        )
        exclusion_lines = ["Rows excluded:"] + [
            f"{_EXCLUSION_WORDS[k]}: {v}" for k, v in exclusions.items()
        ]
        exclusion_lines += [f"  {_words(k)}: {v}" for k, v in reasons.items()]
        received = _count_text(int(rows["in"]), min_cell)
        kept = _count_text(int(rows["kept"]), min_cell)
        column_layouts.append((source, received, kept, exclusion_lines))
        file_summaries.append(
            f"{received} rows received in {source}, "
            + ", ".join(f"{v} {_EXCLUSION_WORDS[k]}" for k, v in exclusions.items())
            + f", leaving {kept} rows"
        )

    # Layout in drawing units: one slot per main file, the flow down its left part and the
    # exclusions to its right; participants under the files, arms spread along the bottom.
    exclusion_height = max(len(c[3]) for c in column_layouts) * _BOX_LINE + 0.4
    columns = []
    for i, (source, received, kept, exclusion_lines) in enumerate(column_layouts):
        centre = i * _SLOT + _BOX_WIDTH / 2 + 0.3
        exclusion_centre = i * _SLOT + _SLOT - _BOX_WIDTH / 2 - 0.3
        received_box = _box(centre, 0.0, _BOX_WIDTH, [source, f"{received} rows received"], "white")
        y_exclusion = received_box["ymin"] - 0.5 - exclusion_height / 2
        exclusion_box = _box(
            exclusion_centre,
            y_exclusion,
            _BOX_WIDTH,
            exclusion_lines,
            "#F2F2F2",
            align="left",
            height=exclusion_height,
        )
        kept_box = _box(
            centre,
            y_exclusion - exclusion_height / 2 - 0.8,
            _BOX_WIDTH,
            [f"{kept} rows kept"],
            "white",
        )
        boxes += [received_box, exclusion_box, kept_box]
        links.append(_link(centre, received_box["ymin"], centre, kept_box["ymax"]))
        links.append(_link(centre, y_exclusion, exclusion_box["xmin"], y_exclusion))
        columns.append((centre, kept_box["ymin"]))

    centre_all = columns[0][0] if len(columns) == 1 else total_width / 2
    participants_box = _box(
        centre_all,
        min(bottom for _, bottom in columns) - 0.9,
        _BOX_WIDTH,
        [f"{participants_text} participants"],
        "white",
    )
    boxes.append(participants_box)
    for centre, bottom in columns:
        links.append(_link(centre, bottom, centre_all, participants_box["ymax"]))

    palette = arm_palette(arm_order) if arms is not None else {}
    arm_width = min(_BOX_WIDTH, total_width / len(arm_order) - 0.4)
    y_arms = participants_box["ymin"] - 1.2
    for j, arm in enumerate(arm_order):
        centre = total_width * (j + 0.5) / len(arm_order)
        colour = palette.get(arm, DARK_GREY)
        boxes.append(
            _box(centre, y_arms, arm_width, [_words(arm), f"n = {arm_text[arm]}"], "white", colour)
        )
        links.append(_link(centre_all, participants_box["ymin"], centre, boxes[-1]["ymax"]))

    box_frame = pd.DataFrame(boxes)
    link_frame = pd.DataFrame(links)
    centred = box_frame.loc[box_frame["align"] == "center"]
    left_aligned = box_frame.loc[box_frame["align"] == "left"]
    caption_parts = []
    for file_name in lookup_files:
        rows = files[file_name]["rows"]
        source = Path(str(files[file_name].get("path", file_name))).name
        caption_parts.append(
            f"Linked file {source}: {_count_text(int(rows['in']), min_cell)} rows received, "
            f"{_count_text(int(rows['kept']), min_cell)} kept."
        )
    caption_parts.append(f"Counts from 1 to {min_cell - 1} are shown as <{min_cell}.")
    study = report.get("study_id")
    plot = (
        ggplot(box_frame)
        + geom_segment(
            aes(x="x", y="y", xend="xend", yend="yend"),
            data=link_frame,
            colour=DARK_GREY,
            size=0.6,
            arrow=arrow(length=0.09, type="closed"),
        )
        + geom_rect(
            aes(xmin="xmin", xmax="xmax", ymin="ymin", ymax="ymax", fill="fill", colour="colour"),
            size=0.6,
        )
        + geom_text(aes(x="x", y="y", label="label"), data=centred, size=BASE_SIZE * 0.9)
        + geom_text(
            aes(x="x", y="y", label="label"),
            data=left_aligned,
            size=BASE_SIZE * 0.9,
            ha="left",
        )
        + scale_fill_identity()
        + scale_colour_identity()
        + scale_x_continuous(limits=(-0.2, total_width + 0.2), expand=(0, 0))
        + scale_y_continuous(
            limits=(box_frame["ymin"].min() - 0.2, box_frame["ymax"].max() + 0.2), expand=(0, 0)
        )
        + labs(
            title="Participant flow" + (f": {study}" if study else ""),
            caption=_wrap(" ".join(caption_parts), 110),
        )
        + theme_evidence()
        + theme(
            axis_line=element_blank(),
            axis_text=element_blank(),
            axis_ticks=element_blank(),
            axis_title=element_blank(),
            panel_grid=element_blank(),
        )
    )
    y_extent = box_frame["ymax"].max() - box_frame["ymin"].min() + 0.4
    arms_sentence = ", ".join(f"{_words(a)} {arm_text[a]}" for a in arm_order)
    alt_text = (
        f"Participant flow diagram{' for ' + str(study) if study else ''}: "
        + "; ".join(file_summaries)
        + f". {participants_text} participants were included: {arms_sentence}."
    )
    width = _clamp(0.7 * (total_width + 0.4), 6.0, 16.0)
    return Figure(
        name=name,
        plot=plot,
        alt_text=alt_text,
        width=width,
        height=_clamp(0.4 * y_extent + 1.2, 3.5, 16.0),
    )


def _box(
    x: float,
    y: float,
    width: float,
    lines: list[str],
    fill: str,
    colour: str = DARK_GREY,
    *,
    align: str = "center",
    height: float | None = None,
) -> dict[str, Any]:
    """One flow box centred at (x, y); the text is centred or starts at the left edge."""
    height = height if height is not None else len(lines) * _BOX_LINE + 0.4
    return {
        "xmin": x - width / 2,
        "xmax": x + width / 2,
        "ymin": y - height / 2,
        "ymax": y + height / 2,
        "x": x if align == "center" else x - width / 2 + 0.25,
        "y": y,
        "label": "\n".join(lines),
        "fill": fill,
        "colour": colour,
        "align": align,
    }


def _link(x: float, y: float, xend: float, yend: float) -> dict[str, float]:
    """One arrow."""
    return {"x": x, "y": y, "xend": xend, "yend": yend}


def _suppress_counts(counts: Mapping[str, int], min_cell: int) -> dict[str, str]:
    """Labels for the parts of a shown total, small counts hidden (see plot_flow Notes)."""
    small = [k for k, n in counts.items() if 0 < n < min_cell]
    labels = {k: _count_text(n, min_cell) for k, n in counts.items()}
    if len(small) == 1:
        others = sorted((n, k) for k, n in counts.items() if k not in small and n > 0)
        if others:
            labels[others[0][1]] = f"≥{min_cell}"
    return labels


# ---------------------------------------------------------------------------------------------
# Meta-analysis forest plot
# ---------------------------------------------------------------------------------------------


def plot_meta_forest(meta_rows: pd.DataFrame, *, name: str = "meta_forest") -> Figure:
    """Forest plot of one meta-analysis: study rows, pooled diamonds and prediction intervals.

    Parameters
    ----------
    meta_rows : pandas.DataFrame
        Rows of ``data/processed/meta/estimates.parquet`` for one ``meta_id``: ``method``
        "study" rows (``study_label`` or ``study_id``/``comparison_id``, ``estimate, ci_low,
        ci_high``) and pooled rows (``method`` starting "meta_", with ``i2`` in percent,
        ``tau2``, ``pi_low``, ``pi_high``, ``k``).
    name : str, default "meta_forest"
        File stem of the figure.

    Returns
    -------
    Figure
        ``plot.data`` has one row per study or pooled estimate with ``y`` (row position),
        ``label`` and ``kind`` ("study" or "pooled").

    Raises
    ------
    ValueError
        If columns are missing, the rows hold more than one meta-analysis, or there are no
        study or no pooled rows.

    Notes
    -----
    Each pooled estimate is a diamond spanning its 95% CI; a dashed line through it spans the
    95% prediction interval where one exists (it needs k >= 3). Ratio measures are drawn on a
    log axis with the no-effect line at 1, other measures on a linear axis with the line at 0.
    I2 and tau2 of each pooled method are in the subtitle. Reference: Higgins JPT, Thompson SG,
    Spiegelhalter DJ. A re-evaluation of random-effects meta-analysis. J R Stat Soc A
    2009;172(1):137-59 (prediction intervals).
    """
    _require_columns(
        meta_rows, ("method", "effect_measure", "estimate", "ci_low", "ci_high"), "meta_rows"
    )
    if "meta_id" in meta_rows and meta_rows["meta_id"].nunique() > 1:
        ids = ", ".join(sorted(meta_rows["meta_id"].dropna().astype(str).unique()))
        raise ValueError(
            f"meta_rows hold several meta-analyses ({ids}): pass the rows of one meta_id"
        )
    method = meta_rows["method"].astype(str)
    studies = meta_rows.loc[method == "study"].reset_index(drop=True)
    pooled = meta_rows.loc[method.str.startswith("meta_")].reset_index(drop=True)
    if studies.empty or pooled.empty:
        raise ValueError(
            'meta_rows need "study" rows and pooled "meta_*" rows of one meta-analysis; got '
            f"{len(studies)} study and {len(pooled)} pooled rows"
        )
    _require_columns(pooled, ("i2", "tau2", "pi_low", "pi_high"), "pooled meta_rows")
    measures = meta_rows["effect_measure"].dropna().unique()
    if len(measures) != 1:
        raise ValueError(f"meta_rows mix effect measures {list(measures)}: pass one meta-analysis")
    measure = str(measures[0])
    is_ratio = measure in RATIO_MEASURES

    study_labels = _study_labels(studies)
    pooled_labels = [METHOD_LABELS.get(m, _words(m)) for m in pooled["method"].astype(str)]
    n_pooled = len(pooled)
    study_y = [n_pooled + 1.0 + (len(studies) - 1 - i) for i in range(len(studies))]
    pooled_y = [float(n_pooled - 1 - j) for j in range(n_pooled)]
    rows = pd.concat(
        [
            studies.assign(kind="study", y=study_y, name=study_labels),
            pooled.assign(kind="pooled", y=pooled_y, name=pooled_labels),
        ],
        ignore_index=True,
    )
    rows["label"] = [
        f"{_wrap(n, 40)}\n{_fmt(e)} ({_fmt(lo)} to {_fmt(hi)})"
        for n, e, lo, hi in zip(
            rows["name"], rows["estimate"], rows["ci_low"], rows["ci_high"], strict=True
        )
    ]
    study_rows = rows.loc[rows["kind"] == "study"]
    pooled_rows = rows.loc[rows["kind"] == "pooled"]
    diamonds = pd.DataFrame(
        [
            {"x": x, "y": r.y + dy, "group": i}
            for i, r in enumerate(pooled_rows.itertuples())
            for x, dy in ((r.ci_low, 0.0), (r.estimate, 0.3), (r.ci_high, 0.0), (r.estimate, -0.3))
        ]
    )
    intervals = pooled_rows.loc[pooled_rows["pi_low"].notna() & pooled_rows["pi_high"].notna()]

    subtitle = _heterogeneity_words(pooled)
    description = (
        str(meta_rows.get("meta_description", pd.Series([""])).dropna().iloc[0])
        if ("meta_description" in meta_rows and meta_rows["meta_description"].notna().any())
        else ""
    )
    title, _, rest = description.partition(". ")
    caption_parts = [rest.strip()] if rest.strip() else []
    if len(intervals):
        caption_parts.append("Dashed line through a diamond: 95% prediction interval.")
    else:
        warnings = pooled.get("warning", pd.Series(dtype=object)).dropna().astype(str)
        warnings = warnings[warnings.str.contains("prediction interval")]
        # e.g. "k < 3: no prediction interval" -> "No prediction interval (k < 3)."
        why = warnings.iloc[0].split(":")[0].strip() if len(warnings) else ""
        caption_parts.append(
            f"No prediction interval ({why})." if why else "No prediction interval."
        )
    if "synthetic" in meta_rows and meta_rows["synthetic"].fillna(False).astype(bool).any():
        caption_parts.append("Includes synthetic data: not evidence about real patients.")

    direction = _meta_direction(meta_rows, is_ratio)
    x_label = _capitalise(_MEASURE_LABELS.get(measure, _words(measure)))
    x_label += (", log scale" if is_ratio else "") + (f"\n{direction}" if direction else "")
    plot = (
        ggplot(rows, aes(y="y"))
        + geom_vline(xintercept=1.0 if is_ratio else 0.0, colour=NEUTRAL_GREY, size=0.6)
        + geom_segment(
            aes(x="pi_low", xend="pi_high", yend="y"),
            data=intervals,
            colour=DARK_GREY,
            linetype="dashed",
            size=0.6,
        )
        + geom_segment(aes(x="ci_low", xend="ci_high", yend="y"), data=study_rows, size=0.7)
        + geom_point(aes(x="estimate"), data=study_rows, shape="s", size=3.2, colour="black")
        + geom_polygon(
            aes(x="x", y="y", group="group"),
            data=diamonds,
            fill=OKABE_ITO["blue"],
            colour=OKABE_ITO["blue"],
        )
        + scale_y_continuous(
            breaks=rows["y"].tolist(), labels=rows["label"].tolist(), minor_breaks=[]
        )
        + labs(
            x=x_label,
            y="",
            title=_wrap(title.rstrip(".") or "Meta-analysis", 80),
            subtitle=_wrap(subtitle, 95),
            caption=_wrap(" ".join(caption_parts), 110),
        )
        + theme_evidence()
        + theme(panel_grid_major_y=element_blank())
    )
    if is_ratio:
        plot += scale_x_log10()
    return Figure(
        name=name,
        plot=plot,
        alt_text=_meta_alt_text(study_rows, pooled_rows, measure, subtitle),
        width=8.0,
        height=_clamp(2.6 + 0.55 * len(rows), 3.5, 16.0),
    )


def _study_labels(studies: pd.DataFrame) -> list[str]:
    """Row labels of the study rows: study_label, else study_id: comparison_id."""
    if "study_label" in studies and studies["study_label"].notna().all():
        return studies["study_label"].astype(str).tolist()
    parts = [c for c in ("study_id", "comparison_id") if c in studies]
    if not parts:
        return [f"Study {i + 1}" for i in range(len(studies))]
    return studies[parts].astype(str).agg(": ".join, axis=1).tolist()


def _heterogeneity_words(pooled: pd.DataFrame) -> str:
    """I2 and tau2 per pooled method, methods with the same values named together."""
    groups: dict[str, list[str]] = {}
    for row in pooled.itertuples():
        text = f"I² = {_fmt_i2(row.i2)}, τ² = {_fmt(row.tau2, 3)}"
        short = METHOD_LABELS.get(str(row.method), str(row.method))
        short = short.removeprefix("Pooled (").removesuffix(")")
        groups.setdefault(text, []).append(short)
    return "; ".join(f"{text} ({', '.join(methods)})" for text, methods in groups.items())


def _meta_direction(meta_rows: pd.DataFrame, is_ratio: bool) -> str:
    """Which side favours the treatment, from the domain's direction (empty when unknown)."""
    if "domain" not in meta_rows:
        return ""
    domains = meta_rows["domain"].dropna().astype(str).unique()
    if len(domains) != 1 or domains[0] not in CANONICAL_DOMAINS:
        return ""
    better = CANONICAL_DOMAINS[domains[0]]["higher_is"] == "better"
    null = "1" if is_ratio else "0"
    return f"{'>' if better else '<'} {null} favours the treatment"


def _meta_alt_text(
    study_rows: pd.DataFrame, pooled_rows: pd.DataFrame, measure: str, heterogeneity: str
) -> str:
    """Alt text of the meta-analysis forest plot."""
    measure_words = _MEASURE_LABELS.get(measure, _words(measure))
    first = (
        f"Meta-analysis forest plot of {len(study_rows)} studies ({measure_words}); study "
        f"estimates range from {_fmt(study_rows['estimate'].min())} to "
        f"{_fmt(study_rows['estimate'].max())}."
    )
    main = pooled_rows.iloc[0]
    second = (
        f"{METHOD_LABELS.get(str(main['method']), str(main['method']))} estimate "
        f"{_fmt(main['estimate'])} (95% CI {_fmt(main['ci_low'])} to {_fmt(main['ci_high'])}); "
        f"{heterogeneity.replace('²', '2').replace('τ', 'tau')}; "
    )
    if pd.notna(main["pi_low"]) and pd.notna(main["pi_high"]):
        second += f"95% prediction interval {_fmt(main['pi_low'])} to {_fmt(main['pi_high'])}."
    else:
        why = str(main.get("warning") or "").strip()
        why = why.split(":")[0].strip() if "prediction interval" in why else ""
        second += f"no prediction interval ({why})." if why else "no prediction interval."
    return f"{first} {second}"


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------


def figure_png(figure: Figure, dpi: int = 150) -> bytes:
    """A figure as PNG bytes at its own size, with fixed metadata (deterministic bytes).

    Parameters
    ----------
    figure : Figure
        What a ``plot_*`` function returned; its width and height (inches) are used.
    dpi : int, default 150
        Resolution; the image is ``width * dpi`` x ``height * dpi`` pixels.

    Notes
    -----
    matplotlib's Agg PNG writer adds no timestamp; its one varying text chunk, "Software" (the
    matplotlib version), is left out, so the same figure gives the same bytes on every machine
    with the same fonts and library versions. The notebooks show figures through this function
    (:func:`pipeline.notebooks.show`), so they are drawn at the size set per figure.
    """
    sink = io.BytesIO()
    figure.plot.save(
        sink,
        format="png",
        width=figure.width,
        height=figure.height,
        units="in",
        dpi=dpi,
        verbose=False,
        metadata={"Software": None},
    )
    return sink.getvalue()


def save_figure(figure: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Write a figure as PNG (:func:`figure_png`), atomically and with deterministic bytes.

    Parameters
    ----------
    figure : Figure
        What a ``plot_*`` function returned; its width and height (inches) are used.
    path : str or pathlib.Path
        Destination file (``.png``); parent folders are created.
    dpi : int, default 150
        Resolution; the image is ``width * dpi`` x ``height * dpi`` pixels.

    Returns
    -------
    pathlib.Path
        The path written.

    Notes
    -----
    The image is drawn in memory and written by :func:`pipeline.io.write_bytes`: the temporary
    file lives outside the destination folder and is renamed into place, so a killed stage
    leaves no ``*.tmp`` file in ``reports/<study>/figures/``.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: save_figure writes PNG files, name the file *.png")
    return write_bytes(path, figure_png(figure, dpi))


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise a ValueError naming the missing columns."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} lacks column(s) {', '.join(repr(c) for c in missing)}: pass the {what} "
            "table written by the pipeline"
        )


def _levels(values: pd.Series) -> list[str]:
    """Category order of a column (its categories, else the order of first appearance)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [str(c) for c in values.cat.categories]
    return [str(v) for v in dict.fromkeys(values.dropna())]


def _words(key: str) -> str:
    """A snake_case key as words: ``week_10`` -> ``week 10``."""
    return str(key).replace("_", " ").strip()


def _outcome_words(outcome: str) -> str:
    """An outcome key as a capitalised name: ``leg_pain`` -> ``Leg pain``."""
    return _OUTCOME_LABELS.get(str(outcome), _capitalise(_words(outcome)))


def _scale_words(domain: str) -> str:
    """The canonical scale of a domain, e.g. ``0-100 scale, higher = better`` (empty if unknown)."""
    spec = CANONICAL_DOMAINS.get(str(domain))
    if spec is None:
        return ""
    return f"{spec['min']}-{spec['max']} scale, higher = {spec['higher_is']}"


def _outcome_panel(outcome: str, domain: str) -> str:
    """Strip text of an outcome panel: name and scale."""
    scale = _scale_words(domain)
    return f"{_outcome_words(outcome)} ({scale})" if scale else _outcome_words(outcome)


def _contrast_words(rows: pd.DataFrame) -> str:
    """``etmi vs usual care``, or a count when several contrasts are drawn."""
    pairs = list(dict.fromkeys(zip(rows["treatment"], rows["control"], strict=True)))
    if len(pairs) == 1:
        return f"{_words(pairs[0][0])} vs {_words(pairs[0][1])}"
    return "; ".join(f"{_words(t)} vs {_words(c)}" for t, c in pairs)


def _join_words(items: Sequence[str]) -> str:
    """``a, b and c``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _count_text(n: int, min_cell: int) -> str:
    """A count for display: 1 to min_cell - 1 as ``<min_cell``, else with thousands separators."""
    return f"<{min_cell}" if 0 < n < min_cell else f"{n:,}"


def _fmt(value: float, digits: int = 2) -> str:
    """A number for text: one decimal from 10 upwards, else ``digits`` decimals."""
    value = float(value)
    if not math.isfinite(value):
        return "NA"
    text = f"{value:.{1 if abs(value) >= 10 else digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _fmt_i2(i2: float) -> str:
    """I2 (already in percent) for text."""
    return "NA" if not math.isfinite(float(i2)) else f"{float(i2):.0f}%"


def _capitalise(text: str) -> str:
    """First letter upper case, the rest untouched (``Hedges' g`` stays as written)."""
    return text[:1].upper() + text[1:]


def _wrap(text: str, width: int) -> str:
    """Wrap long text onto lines of at most ``width`` characters."""
    return "\n".join(textwrap.wrap(str(text), width=width, break_long_words=False)) or str(text)


def _clamp(value: float, low: float, high: float) -> float:
    """``value`` limited to [low, high], rounded to 0.1 inch."""
    return round(min(max(value, low), high), 1)
