"""Citable claims: one plain-language sentence per finding, with its numbers, certainty and source.

A claim is built from one estimate row by the rules of :mod:`pipeline.summarise.certainty` and
:mod:`pipeline.summarise.wording`. Its id is stable (``C-<study>-<comparison>-<kind>``), so a
content writer can cite it and find it again after every rerun. Synthetic studies say so in
the sentence ("Demonstration data: ...") and in the claim's ``synthetic`` flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipeline.instruments import CANONICAL_DOMAINS
from pipeline.summarise.certainty import LEVELS, Certainty, Evidence, rate_certainty
from pipeline.summarise.wording import (
    Names,
    Numbers,
    interval_case,
    render_effect,
    render_responders,
)

DEMO_PREFIX = "Demonstration data: "
_SLUG = re.compile(r"[^a-z0-9]+")
# Effect sizes have no instrument MCID: half a standard deviation is the usual threshold of a
# difference people notice (Norman GR, Sloan JA, Wyrwich KW. Med Care 2003;41(5):582-92).
HEDGES_G_MCID = 0.5


@dataclass(frozen=True)
class NamingRules:
    """Plain names from ``params.yaml`` (section ``summarise.names``)."""

    arms: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    timepoints: dict[str, str] = field(default_factory=dict)
    strata: dict[str, dict[str, str]] = field(default_factory=dict)

    def arm(self, key: str) -> str:
        return self.arms.get(key, key.replace("_", " "))

    def outcome(self, key: str, timepoint: str | None) -> str:
        name = self.outcomes.get(key, key.replace("_", " "))
        when = self.timepoints.get(timepoint or "", "")
        return f"{name} {when}".strip()


def claim_id(*parts: str) -> str:
    """A stable, citable id: ``C-`` and the slugged parts joined by hyphens."""
    return "C-" + "-".join(_SLUG.sub("-", p.lower()).strip("-") for p in parts if p)


def build_claims(
    estimates: pd.DataFrame,
    participants: pd.DataFrame,
    naming: NamingRules,
    min_cell: int = 5,
) -> pd.DataFrame:
    """All claims of one study.

    Parameters
    ----------
    estimates
        The study's estimates (see :func:`pipeline.analysis.analyse.analyse_study`).
    participants
        The study's participants (denominators of the share analysed, overall and per subgroup).
    naming
        Plain names of arms, outcomes, timepoints and subgroup strata.
    min_cell
        Counts below this are not shown.

    Returns
    -------
    pandas.DataFrame
        One row per claim: ``claim_id``, ``study_id``, ``comparison_id``, ``kind`` (effect,
        responders, subgroup-<level>), ``sentence``, ``certainty``, ``certainty_start``,
        ``certainty_reasons`` (list), ``numbers`` (dict: estimate, ci_low, ci_high, units,
        n_treated, n_control, mcid), ``estimate_ref`` (dict locating the estimate row),
        ``synthetic``, ``design``, ``input_data_sha256``.
    """
    claims: list[dict[str, Any]] = []
    arms = participants["arm"].astype(str)
    for _comparison, rows in estimates.groupby("comparison_id", sort=False):
        primary = rows[rows["is_primary"].astype(bool)]
        if primary.empty or not np.isfinite(primary["estimate"].iloc[0]):
            continue
        main = primary.iloc[0]
        in_arms = arms.isin([str(main["treatment"]), str(main["control"])])
        n_in_arms = int(in_arms.sum())
        claims.append(_effect_claim(main, rows, n_in_arms, naming, "effect"))
        responders = rows[
            (rows["method"] == "responders")
            & (rows["effect_measure"] == "risk_difference")
            & (rows.get("definition", pd.Series(index=rows.index, dtype=object)) == "MCID")
        ]
        if not responders.empty:
            claims.append(_responder_claim(responders.iloc[0], n_in_arms, naming, min_cell))
        strata = rows[
            (rows["method"] == "effect_modification")
            & (rows["effect_measure"] == "mean_difference")
        ]
        for _, stratum in strata.iterrows():
            modifier, _, level = str(stratum["term"]).partition("=")
            phrase = naming.strata.get(modifier, {}).get(level)
            if phrase is None or min(stratum["n_treated"], stratum["n_control"]) < min_cell:
                continue
            in_stratum = int((in_arms & (participants[modifier].astype(str) == level)).sum())
            claims.append(
                _effect_claim(stratum, rows, in_stratum, naming, f"subgroup-{level}", suffix=phrase)
            )
    return pd.DataFrame(claims, columns=_CLAIM_COLUMNS)


def build_meta_claims(
    pooled: pd.DataFrame, naming: NamingRules, names: dict[str, dict[str, str]]
) -> pd.DataFrame:
    """Claims of the meta-analyses (REML pooled rows), graded with their heterogeneity."""
    claims = []
    for meta_id, rows in pooled.groupby("meta_id", sort=False):
        pooled_row = rows[rows["method"] == "meta_reml"]
        members = rows[rows["method"] == "study"]
        if pooled_row.empty:
            continue
        row = pooled_row.iloc[0]
        declared = names.get(str(meta_id), {})
        higher_is_better = (
            bool(members["higher_is_better"].iloc[0]) if "higher_is_better" in members else False
        )
        numbers = Numbers(
            float(row["estimate"]),
            float(row["ci_low"]),
            float(row["ci_high"]),
            HEDGES_G_MCID,
            higher_is_better,
        )
        design = "randomised" if (members["design"] == "randomised").all() else "cohort"
        evidence = Evidence(
            design=design,
            estimate=numbers.estimate,
            ci_low=numbers.ci_low,
            ci_high=numbers.ci_high,
            null=0.0,
            mcid=HEDGES_G_MCID,
            n_analysed=int(members["n_treated"].sum() + members["n_control"].sum()),
            n_in_arms=int(members["n_treated"].sum() + members["n_control"].sum()),
            i2=float(row["i2"]),
        )
        certainty = _claim_certainty(evidence, numbers)
        plain = Names(
            declared.get("treatment", "active treatment"),
            declared.get("control", "usual care"),
            declared.get("outcome", str(members["outcome"].iloc[0])),
            1,
        )
        detail = f"{_g_words(numbers.estimate)} difference, across {len(members)} studies"
        synthetic = bool(members["synthetic"].astype(bool).any())
        sentence = render_effect(
            numbers, plain, certainty, detail=detail, prefix=DEMO_PREFIX if synthetic else ""
        )
        claims.append(
            _claim(
                claim_id("meta", str(meta_id)),
                "meta",
                str(meta_id),
                "meta-analysis",
                sentence,
                certainty,
                {
                    "estimate": numbers.estimate,
                    "ci_low": numbers.ci_low,
                    "ci_high": numbers.ci_high,
                    "units": "standardised mean difference (Hedges' g)",
                    "k": int(row["k"]),
                    "i2": float(row["i2"]),
                    "tau2": float(row["tau2"]),
                    "n_treated": int(members["n_treated"].sum()),
                    "n_control": int(members["n_control"].sum()),
                    "mcid": HEDGES_G_MCID,
                },
                {"meta_id": str(meta_id), "method": "meta_reml"},
                synthetic,
                design,
                "; ".join(sorted(members["input_data_sha256"].dropna().astype(str).unique()))
                if "input_data_sha256" in members
                else "",
            )
        )
    return pd.DataFrame(claims, columns=_CLAIM_COLUMNS)


_CLAIM_COLUMNS = [
    "claim_id",
    "study_id",
    "comparison_id",
    "kind",
    "sentence",
    "certainty",
    "certainty_start",
    "certainty_reasons",
    "numbers",
    "estimate_ref",
    "synthetic",
    "design",
    "input_data_sha256",
]


def _effect_claim(
    row: pd.Series,
    rows: pd.DataFrame,
    n_in_arms: int,
    naming: NamingRules,
    kind: str,
    suffix: str = "",
) -> dict[str, Any]:
    ratio = row["effect_measure"] == "rate_ratio"
    mcid = None if ratio or pd.isna(row.get("mcid")) else float(row["mcid"])
    numbers = Numbers(
        float(row["estimate"]),
        float(row["ci_low"]),
        float(row["ci_high"]),
        mcid,
        bool(row["higher_is_better"]),
        ratio=ratio,
    )
    evidence = Evidence(
        design=str(row["design"]),
        estimate=numbers.estimate,
        ci_low=numbers.ci_low,
        ci_high=numbers.ci_high,
        null=1.0 if ratio else 0.0,
        mcid=mcid,
        n_analysed=int(row["n_treated"] + row["n_control"]),
        n_in_arms=n_in_arms,
        sensitivity_agrees=_sensitivity_agrees(row, rows),
    )
    certainty = _claim_certainty(evidence, numbers)
    outcome = naming.outcome(str(row["outcome"]), str(row["timepoint"]))
    if suffix:
        outcome = f"{outcome} {suffix}"
    scale_max = float(CANONICAL_DOMAINS.get(str(row["domain"]), {}).get("max", 1))
    names = Names(
        naming.arm(str(row["treatment"])), naming.arm(str(row["control"])), outcome, scale_max
    )
    detail = None
    if ratio:
        detail = f"about {row['mean_treated']:.1f} vs {row['mean_control']:.1f} sessions on average"
    prefix = DEMO_PREFIX if bool(row["synthetic"]) else ""
    sentence = render_effect(numbers, names, certainty, detail=detail, prefix=prefix)
    units = (
        "rate ratio (treatment / control)"
        if ratio
        else f"points on a 0-{scale_max:g} scale, {'higher' if numbers.higher_is_better else 'lower'} = better"
    )
    return _claim(
        claim_id(str(row["study_id"]), str(row["comparison_id"]), kind),
        str(row["study_id"]),
        str(row["comparison_id"]),
        kind,
        sentence,
        certainty,
        {
            "estimate": numbers.estimate,
            "ci_low": numbers.ci_low,
            "ci_high": numbers.ci_high,
            "units": units,
            "n_treated": int(row["n_treated"]),
            "n_control": int(row["n_control"]),
            "mcid": mcid,
            "instrument": str(row.get("instrument", "")),
            "effect_measure": str(row["effect_measure"]),
        },
        {
            "comparison_id": str(row["comparison_id"]),
            "method": str(row["method"]),
            "estimand": str(row["estimand"]),
            "effect_measure": str(row["effect_measure"]),
            "term": str(row["term"]),
        },
        bool(row["synthetic"]),
        str(row["design"]),
        str(row.get("input_data_sha256", "")),
    )


def _responder_claim(
    row: pd.Series, n_in_arms: int, naming: NamingRules, min_cell: int
) -> dict[str, Any]:
    numbers = Numbers(
        float(row["estimate"]), float(row["ci_low"]), float(row["ci_high"]), None, True
    )
    evidence = Evidence(
        design=str(row["design"]),
        estimate=numbers.estimate,
        ci_low=numbers.ci_low,
        ci_high=numbers.ci_high,
        null=0.0,
        mcid=None,
        n_analysed=int(row["n_treated"] + row["n_control"]),
        n_in_arms=n_in_arms,
    )
    certainty = _claim_certainty(evidence, numbers)
    names = Names(
        naming.arm(str(row["treatment"])),
        naming.arm(str(row["control"])),
        naming.outcome(str(row["outcome"]), str(row["timepoint"])),
        1,
    )
    events = (int(row["events_treated"]), int(row["events_control"]))
    sentence = render_responders(
        float(row["risk_treated"]),
        float(row["risk_control"]),
        events,
        names,
        certainty,
        interval_case(numbers),
        min_cell,
        DEMO_PREFIX if bool(row["synthetic"]) else "",
    )
    shown = {
        k: (v if v >= min_cell else f"<{min_cell}")
        for k, v in (("events_treated", events[0]), ("events_control", events[1]))
    }
    return _claim(
        claim_id(str(row["study_id"]), str(row["comparison_id"]), "responders"),
        str(row["study_id"]),
        str(row["comparison_id"]),
        "responders",
        sentence,
        certainty,
        {
            "estimate": numbers.estimate,
            "ci_low": numbers.ci_low,
            "ci_high": numbers.ci_high,
            "units": "risk difference (proportion of people improving by at least the MCID)",
            "risk_treated": float(row["risk_treated"]),
            "risk_control": float(row["risk_control"]),
            **shown,
            "n_treated": int(row["n_treated"]),
            "n_control": int(row["n_control"]),
            "mcid": float(row["threshold"]),
            "nnt": str(row.get("nnt_text", "")),
        },
        {
            "comparison_id": str(row["comparison_id"]),
            "method": "responders",
            "estimand": str(row["estimand"]),
            "effect_measure": "risk_difference",
            "term": str(row["term"]),
        },
        bool(row["synthetic"]),
        str(row["design"]),
        str(row.get("input_data_sha256", "")),
    )


def _claim_certainty(evidence: Evidence, numbers: Numbers) -> Certainty:
    """The rated certainty, lowered to very low when the interval is too wide to state a direction."""
    certainty = rate_certainty(evidence)
    if interval_case(numbers) == "imprecise" and certainty.level != "very_low":
        reasons = (
            *certainty.reasons,
            "the result is too imprecise to say whether there is a difference",
        )
        return Certainty(level="very_low", start=certainty.start, reasons=reasons)
    return certainty


def _sensitivity_agrees(primary: pd.Series, rows: pd.DataFrame) -> bool | None:
    """Do the sensitivity analyses (MICE, doubly robust weighting) agree with the main estimate?"""
    checks = rows[
        (rows["method"].isin(["mice", "aipw"]))
        & (rows["effect_measure"] == primary["effect_measure"])
        & (rows["term"] == primary["term"])
    ]
    if checks.empty:
        return None
    null = 1.0 if primary["effect_measure"] == "rate_ratio" else 0.0

    def side(low: float, high: float) -> int:
        return 1 if low > null else (-1 if high < null else 0)

    reference = side(primary["ci_low"], primary["ci_high"])
    return bool(all(side(r["ci_low"], r["ci_high"]) == reference for _, r in checks.iterrows()))


def _g_words(g: float) -> str:
    size = abs(g)
    if size >= 0.8:
        return "a large"
    if size >= 0.5:
        return "a medium"
    if size >= 0.2:
        return "a small"
    return "a very small"


def _claim(
    identifier: str,
    study: str,
    comparison: str,
    kind: str,
    sentence: str,
    certainty: Certainty,
    numbers: dict[str, Any],
    reference: dict[str, str],
    synthetic: bool,
    design: str,
    data_hash: str,
) -> dict[str, Any]:
    return {
        "claim_id": identifier,
        "study_id": study,
        "comparison_id": comparison,
        "kind": kind,
        "sentence": sentence,
        "certainty": certainty.level,
        "certainty_start": certainty.start,
        "certainty_reasons": list(certainty.reasons),
        "numbers": numbers,
        "estimate_ref": reference,
        "synthetic": synthetic,
        "design": design,
        "input_data_sha256": data_hash,
    }


__all__ = ["LEVELS", "NamingRules", "build_claims", "build_meta_claims", "claim_id"]
