"""Linear-model comparisons: the naive difference, baseline-adjusted ANCOVA with adjusted means,
and effect modification (treatment x modifier interaction with stratum estimates).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.analysis.frame import BASELINE, MODIFIER, OUTCOME, TREATED, AnalysisFrame, arm_counts
from pipeline.analysis.models import design, fit_ols
from pipeline.analysis.tidy import estimate_row, estimates_frame


def _errors(frame: AnalysisFrame) -> str:
    return (
        f"CR1 cluster-robust errors by {frame.spec.cluster}"
        if frame.spec.cluster
        else "HC3 robust errors"
    )


def fit_naive(frame: AnalysisFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Unadjusted difference in mean outcome (treatment minus control) among those with the outcome.

    Returns one tidy row (``method="naive"``). For observational data this is the comparison
    confounding can bias; it is reported so the adjusted estimates can be read against it.
    """
    data, cluster = frame.model_data([])
    fit = fit_ols(data[OUTCOME], design(data, [TREATED]), cluster)
    return estimates_frame(
        [
            estimate_row(
                method="naive",
                estimand="ATE",
                effect_measure="mean_difference",
                term=frame.term,
                **fit.estimate(TREATED, alpha),
                **arm_counts(data),
                n_clusters=fit.n_clusters,
                model=f"difference in mean {frame.spec.outcome} at {frame.spec.timepoint}, unadjusted; {_errors(frame)}",
                converged=fit.converged,
                warning=fit.warning,
            )
        ]
    )


def fit_ancova(frame: AnalysisFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Baseline-adjusted ANCOVA with the adjusted (marginal) mean of each arm.

    OLS of the outcome on treatment, its baseline value and the covariates; CR1 cluster-robust
    errors when the comparison is clustered, HC3 otherwise. Complete cases on the outcome and
    every adjustment term.

    Returns
    -------
    pandas.DataFrame
        Three tidy rows: the adjusted mean difference (``effect_measure="mean_difference"``)
        and the adjusted mean of each arm (``effect_measure="adjusted_mean"``, ``term`` the
        arm): the average prediction over the analysed participants with everyone set to that
        arm, as emmeans' counterfactual ("weights = proportional") means.

    Notes
    -----
    Checked against a hand-coded CR1 sandwich and an independent least-squares solution in
    ``tests/test_linear.py``. Reference: Vickers & Altman, BMJ 2001;323:1123 (ANCOVA for
    baseline-adjusted trial outcomes).
    """
    data, cluster = frame.model_data()
    X = design(data, [TREATED, *frame.adjustment])
    fit = fit_ols(data[OUTCOME], X, cluster)
    words = (
        f"OLS of {frame.spec.outcome} at {frame.spec.timepoint} on arm + baseline {frame.spec.outcome}"
        + (f" + {', '.join(frame.spec.adjust_for)}" if frame.spec.adjust_for else "")
        + f"; {_errors(frame)}"
    )
    counts = arm_counts(data)
    rows = [
        estimate_row(
            method="ancova",
            estimand="conditional",
            effect_measure="mean_difference",
            term=frame.term,
            **fit.estimate(TREATED, alpha),
            **counts,
            n_clusters=fit.n_clusters,
            model=words,
            converged=fit.converged,
            warning=fit.warning,
        )
    ]
    means = X.mean()
    for arm, value in ((frame.spec.treatment, 1.0), (frame.spec.control, 0.0)):
        gradient = means.copy()
        gradient[TREATED] = value  # everyone set to this arm
        rows.append(
            estimate_row(
                method="ancova",
                estimand="conditional",
                effect_measure="adjusted_mean",
                term=arm,
                **fit.contrast(gradient, alpha),
                **counts,
                n_clusters=fit.n_clusters,
                model=f"adjusted mean of {arm}: {words}",
                converged=fit.converged,
                warning=fit.warning,
            )
        )
    frame_rows = estimates_frame(rows)
    frame_rows.loc[frame_rows["effect_measure"] == "adjusted_mean", "p_value"] = np.nan
    return frame_rows


def fit_effect_modification(frame: AnalysisFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Treatment effect within each level of the effect modifier, and the interaction test.

    ANCOVA with treatment x modifier interaction terms (the modifier's main effect included).
    Returns one row per stratum (``term="<modifier>=<level>"``) and one row with the Wald test
    that all interaction terms are zero (``effect_measure="interaction_test"``, estimate = the
    difference between the last and first stratum effects when there are two levels).
    """
    spec = frame.spec
    data, cluster = frame.model_data([*frame.adjustment, MODIFIER])
    # A stratum needs both arms to have an effect; strata without one are left out (and named).
    levels = [
        lv
        for lv in frame.modifier_levels
        if ((data[MODIFIER] == lv) & (data[TREATED] == 1)).any()
        and ((data[MODIFIER] == lv) & (data[TREATED] == 0)).any()
    ]
    if len(levels) < 2:
        raise ValueError(
            f"effect modifier {spec.effect_modifier}: fewer than two levels have both arms"
        )
    data = data[data[MODIFIER].isin(levels)]
    extra = {}
    for level in levels[1:]:
        indicator = (data[MODIFIER] == level).astype(float)
        extra[f"{MODIFIER}={level}"] = indicator
        extra[f"{TREATED}:{MODIFIER}={level}"] = indicator * data[TREATED]
    data = data.assign(**extra)
    adjustment = [c for c in frame.adjustment if not c.startswith(f"{spec.effect_modifier}=")]
    X = design(data, [TREATED, *extra, *adjustment])
    fit = fit_ols(data[OUTCOME], X, cluster)
    words = (
        f"ANCOVA of {spec.outcome} at {spec.timepoint} with arm x {spec.effect_modifier}; "
        f"{_errors(frame)}"
    )
    rows = []
    for level in levels:
        weights = pd.Series({TREATED: 1.0})
        if level != levels[0]:
            weights[f"{TREATED}:{MODIFIER}={level}"] = 1.0
        stratum = data[data[MODIFIER] == level]
        rows.append(
            estimate_row(
                method="effect_modification",
                estimand="conditional",
                effect_measure="mean_difference",
                term=f"{spec.effect_modifier}={level}",
                **fit.contrast(weights, alpha),
                **arm_counts(stratum),
                n_clusters=fit.n_clusters,
                model=words,
                converged=fit.converged,
                warning=fit.warning,
            )
        )
    for level in frame.modifier_levels:
        if level not in levels:
            rows.append(
                estimate_row(
                    method="effect_modification",
                    estimand="conditional",
                    effect_measure="mean_difference",
                    term=f"{spec.effect_modifier}={level}",
                    model=words,
                    warning=f"no estimate: the stratum {spec.effect_modifier}={level} lacks one of the arms",
                )
            )
    interaction = [f"{TREATED}:{MODIFIER}={level}" for level in levels[1:]]
    wald = _wald_test(fit, interaction)
    difference = fit.estimate(interaction[0], alpha) if len(interaction) == 1 else {}
    difference["p_value"] = wald
    rows.append(
        estimate_row(
            method="effect_modification",
            estimand="conditional",
            effect_measure="interaction_test",
            term=f"arm x {spec.effect_modifier}",
            **difference,
            **arm_counts(data),
            n_clusters=fit.n_clusters,
            model=words,
            converged=fit.converged,
            warning=fit.warning,
        )
    )
    return estimates_frame(rows)


def _wald_test(fit, terms: list[str]) -> float:
    from scipy import stats

    b = fit.params[terms].to_numpy()
    V = fit.cov.loc[terms, terms].to_numpy()
    statistic = float(b @ np.linalg.solve(V, b))
    q = len(terms)
    if np.isfinite(fit.df):
        return float(stats.f.sf(statistic / q, q, fit.df))
    return float(stats.chi2.sf(statistic, q))


__all__ = ["BASELINE", "fit_ancova", "fit_effect_modification", "fit_naive"]
