"""Per-question comparisons (one effect per trial) from ``trial_results``.

Measure: mean difference on the canonical scale when every contributing arm's instrument maps
through the registry onto the question's domain, else Hedges' g (exact J, metafor vtype "LS").
Sign convention: intervention minus comparator on the domain's own direction (pain: negative =
less pain; function: positive = better function). Multi-arm trials: ``split_control`` divides
the shared arm's n among the comparisons; ``combine`` merges arms by Handbook Table 6.5.a; a
trial never contributes its participants twice. Where a trial reports both change scores and
final values, ``prefer`` in review.yaml picks one; the choice is kept in ``change_score``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.instruments import CANONICAL_DOMAINS
from pipeline.review.config import Question, ReviewConfig
from pipeline.review.effect_sizes import combine_groups, hedges_g, mean_difference

DOMAIN_DIRECTION = {
    "pain": "worse",
    "leg_pain": "worse",
    "pain_interference": "worse",
    "fear_avoidance": "worse",
    "catastrophizing": "worse",
    "function": "better",
    "mental_health": "better",
}
OUTCOME_CANONICAL = {"pain": "pain", "leg_pain": "pain", "function": "function"}


def _side(arms: pd.DataFrame, value: str, sd: str) -> tuple[float, float, float, str]:
    if len(arms) == 1:
        r = arms.iloc[0]
        return float(r["n"]), float(r[value]), float(r[sd]), str(r["arm_class"])
    n, m, s = combine_groups(arms["n"], arms[value], arms[sd])
    return n, m, s, "+".join(sorted(set(arms["arm_class"])))


def question_comparisons(
    trial_results: pd.DataFrame, config: ReviewConfig, question: Question
) -> pd.DataFrame:
    """One row per trial comparison for ``question`` (empty frame when no trial qualifies)."""
    if config.sheet.layout == "comparison":
        return _reported_comparisons(trial_results, question)
    tr = trial_results
    lo, hi = question.weeks
    sel = tr[
        ~tr["is_baseline"]
        & (tr["outcome"] == question.outcome)
        & tr["timepoint_weeks"].between(lo, hi)
        & tr["arm_class"].isin(question.intervention + question.comparator)
    ].copy()
    sel["side"] = np.where(sel["arm_class"].isin(question.intervention), "t", "c")
    # change scores vs final values: keep the preferred kind where a trial reports both
    preferred = sel["change_score"].astype(bool) == (config.prefer == "change")
    has_preferred = preferred.groupby(sel["trial_id"]).transform("any")
    sel = sel[preferred | ~has_preferred]
    # latest follow-up in the window at which the trial has both sides
    both = sel.groupby(["trial_id", "timepoint_weeks"])["side"].transform("nunique") == 2
    sel = sel[both]
    latest = sel.groupby("trial_id")["timepoint_weeks"].transform("max")
    sel = sel[sel["timepoint_weeks"] == latest]
    canon = OUTCOME_CANONICAL.get(question.outcome)
    registry_domain = sel["instrument"].map(
        lambda k: None if pd.isna(k) or k is None else _registry_domain(k)
    )
    use_md = canon is not None and len(sel) > 0 and bool((registry_domain == canon).all())
    measure = "MD" if use_md else "SMD"
    want = DOMAIN_DIRECTION.get(question.outcome, "worse")
    rows = []
    for trial, arms in sel.groupby("trial_id", sort=True):
        t_arms, c_arms = arms[arms["side"] == "t"], arms[arms["side"] == "c"]
        value, sd = ("mean_canonical", "sd_canonical") if use_md else ("mean", "sd")
        pairs: list[tuple[pd.DataFrame, pd.DataFrame, float, float, str]] = []
        if config.multi_arm == "split_control" and (len(t_arms) == 1 or len(c_arms) == 1):
            if len(t_arms) >= len(c_arms):
                for _, t in t_arms.iterrows():
                    pairs.append((t.to_frame().T, c_arms, 1.0, 1 / len(t_arms), "split_control"))
            else:
                for _, c in c_arms.iterrows():
                    pairs.append((t_arms, c.to_frame().T, 1 / len(c_arms), 1.0, "split_control"))
        else:
            pairs.append((t_arms, c_arms, 1.0, 1.0, "combined" if len(arms) > 2 else "two-arm"))
        for t_df, c_df, t_share, c_share, rule in pairs:
            t_df = t_df.astype({"n": float, value: float, sd: float})
            c_df = c_df.astype({"n": float, value: float, sd: float})
            n1, m1, s1, cls1 = _side(t_df, value, sd)
            n2, m2, s2, cls2 = _side(c_df, value, sd)
            n1, n2 = n1 * t_share, n2 * c_share
            if use_md:
                yi, vi = mean_difference(m1, s1, n1, m2, s2, n2)
            else:
                yi, vi = hedges_g(m1, s1, n1, m2, s2, n2)
                instrument_dir = arms["higher_is"].iloc[0]
                if instrument_dir != want:
                    yi = -yi
            first = arms.iloc[0]
            rows.append(
                {
                    "trial_id": trial,
                    "citation": str(first["citation"]),
                    "year": first["year"],
                    "intervention_class": cls1,
                    "comparator_class": cls2,
                    "n_intervention": n1,
                    "n_comparator": n2,
                    "n_total": n1 + n2,
                    "timepoint_weeks": float(first["timepoint_weeks"]),
                    "instrument": ";".join(sorted(set(arms["instrument_label"].astype(str)))),
                    "measure": measure,
                    "yi": float(yi),
                    "vi": float(vi),
                    "multi_arm": rule,
                    "rob_overall": first["rob_overall"],
                    "population": first["population"],
                    "design": first["design"],
                    "change_score": bool(arms["change_score"].any()),
                    "flags": ";".join(
                        sorted({f for x in arms["flags"] for f in str(x).split(";") if f})
                    ),
                }
            )
    return pd.DataFrame(rows)


def _reported_comparisons(tr: pd.DataFrame, question: Question) -> pd.DataFrame:
    """Comparisons reported as an effect with its SE: mean differences on the canonical scale.

    The effect is rescaled by the registry's factor (its sign turns 'higher is worse' into the
    canonical direction); a comparison reported the other way round is negated. Only registry
    instruments of the question's domain qualify (an SMD cannot be formed from an MD alone). A trial
    with several reported comparisons in the question keeps the one with most participants: summary
    effects sharing an arm cannot be split, so the others would double count.
    """
    lo, hi = question.weeks
    forward = tr["arm_class"].isin(question.intervention) & tr["comparator_class"].isin(
        question.comparator
    )
    reverse = tr["arm_class"].isin(question.comparator) & tr["comparator_class"].isin(
        question.intervention
    )
    canon = OUTCOME_CANONICAL.get(question.outcome)
    domain_ok = tr["instrument"].map(lambda k: isinstance(k, str) and _registry_domain(k) == canon)
    sel = tr[
        (tr["outcome"] == question.outcome)
        & tr["timepoint_weeks"].between(lo, hi)
        & (forward | reverse)
        & domain_ok.astype(bool)
    ].copy()
    if sel.empty:
        return pd.DataFrame()
    sign = np.where(forward[sel.index], 1.0, -1.0)
    sel["yi"] = sign * sel["effect"] * sel["canonical_scale"]
    sel["vi"] = (sel["se"] * sel["canonical_scale"].abs()) ** 2
    sel["n_total"] = sel["n"] + sel["n_comparator"]
    sel["n_intervention"] = np.where(sign > 0, sel["n"], sel["n_comparator"])
    sel["n_comparator_arm"] = np.where(sign > 0, sel["n_comparator"], sel["n"])
    sel["intervention_class"] = np.where(sign > 0, sel["arm_class"], sel["comparator_class"])
    sel["comparator_class_out"] = np.where(sign > 0, sel["comparator_class"], sel["arm_class"])
    latest = sel.groupby("trial_id")["timepoint_weeks"].transform("max")
    sel = sel[sel["timepoint_weeks"] == latest]
    count = sel.groupby("trial_id")["trial_id"].transform("size")
    sel = sel.sort_values(["trial_id", "n_total"], ascending=[True, False]).drop_duplicates(
        "trial_id"
    )
    return pd.DataFrame(
        {
            "trial_id": sel["trial_id"],
            "citation": sel["citation"].astype(str),
            "year": sel["year"],
            "intervention_class": sel["intervention_class"],
            "comparator_class": sel["comparator_class_out"],
            "n_intervention": sel["n_intervention"].astype(float),
            "n_comparator": sel["n_comparator_arm"].astype(float),
            "n_total": sel["n_total"].astype(float),
            "timepoint_weeks": sel["timepoint_weeks"].astype(float),
            "instrument": sel["instrument_label"].astype(str),
            "measure": "MD",
            "yi": sel["yi"].astype(float),
            "vi": sel["vi"].astype(float),
            "multi_arm": np.where(
                count[sel.index] > 1, "largest of several reported comparisons", "reported"
            ),
            "rob_overall": sel["rob_overall"],
            "population": sel["population"],
            "design": sel["design"],
            "change_score": sel["change_score"].astype(bool),
            "flags": sel["flags"].astype(str),
        }
    ).reset_index(drop=True)


def _registry_domain(key: str) -> str:
    from pipeline.instruments import get_instrument

    domain = get_instrument(key).domain
    assert domain in CANONICAL_DOMAINS
    return domain
