"""Citable claims: one plain-language statement per finding, with its range, numbers, GRADE
profile and source.

A claim is built from one estimate row by the rules of :mod:`pipeline.summarise.certainty` and
:mod:`pipeline.summarise.wording`. Its id is stable (``C-<study>-<comparison>-<kind>``), so a
content writer can cite it and find it again after every rerun. Synthetic studies say so in
the sentence ("Demonstration data: ...") and in the claim's ``synthetic`` flag.

Each record also carries what a checker of an edited draft needs: ``direction``, ``size``,
``names`` (intervention, comparator, outcome, condition, timepoint as written),
``shown_numbers`` (the numbers the sentence displays), ``grade`` (one row per GRADE domain:
judgement, levels down, reason) and ``sentence_sha256`` (the version of the sentence).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipeline.instruments import CANONICAL_DOMAINS
from pipeline.summarise.certainty import (
    LEVELS,
    Certainty,
    Evidence,
    Judgement,
    RiskOfBias,
    direction_word,
    load_grade_rules,
    rate_certainty,
    size_category,
    thresholds_for,
)
from pipeline.summarise.lint import count_words, reading_grade, split_sentences
from pipeline.summarise.wording import (
    Names,
    Statement,
    format_number,
    render_range,
    render_ratio_range,
    render_responder_range,
    render_statement,
)

DEMO_PREFIX = "Demonstration data: not real people. "
_SLUG = re.compile(r"[^a-z0-9]+")


# Plain default names of the canonical domains (params.yaml names override them).
PLAIN_OUTCOMES = {
    "function": "daily function",
    "fear_avoidance": "fear of movement",
    "pain_interference": "how much pain gets in the way",
    "leg_pain": "leg pain",
    "sessions": "the number of sessions",
}


@dataclass(frozen=True)
class NamingRules:
    """Plain names from ``params.yaml`` (``summarise.names``, overridden per study)."""

    arms: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    timepoints: dict[str, str] = field(default_factory=dict)
    strata: dict[str, dict[str, str]] = field(default_factory=dict)
    conditions: dict[str, str] = field(default_factory=dict)  # condition -> its pain ("back pain")

    def arm(self, key: str) -> str:
        return self.arms.get(key, key.replace("_", " "))

    def outcome(self, key: str, condition: str = "") -> str:
        """The outcome's plain name; pain is named after the condition ("neck pain")."""
        if key in self.outcomes:
            return self.outcomes[key]
        if key == "pain" and condition:
            return self.conditions.get(condition, condition)
        return PLAIN_OUTCOMES.get(key, key.replace("_", " "))

    def timepoint(self, key: str | None) -> str:
        return self.timepoints.get(key or "", (key or "").replace("_", " "))

    def merged(self, override: dict[str, Any] | None) -> NamingRules:
        """These names with a study's own names on top."""
        if not override:
            return self
        return NamingRules(
            **{
                name: {**getattr(self, name), **override.get(name, {})}
                for name in ("arms", "outcomes", "timepoints", "strata", "conditions")
            }
        )


@dataclass(frozen=True)
class StudyFacts:
    """What a study declares about itself (study.yaml via ingest_report.json ``evidence``) and
    the question its claims answer (``summarise.question``, per study or global)."""

    condition: str = "low back pain"
    population: dict[str, str] = field(default_factory=dict)
    participants_blinded: bool | None = None
    randomised: dict[str, int] = field(default_factory=dict)
    completers_only: bool = False
    risk_of_bias: dict[str, Any] | None = None
    question: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_report(
        cls, report: dict[str, Any], question: dict[str, Any], thresholds: dict[str, Any]
    ) -> StudyFacts:
        evidence = report.get("evidence") or {}
        return cls(
            condition=str(evidence.get("condition", "low back pain")),
            population={k: str(v) for k, v in (evidence.get("population") or {}).items()},
            participants_blinded=(evidence.get("blinding") or {}).get("participants"),
            randomised={k: int(v) for k, v in (evidence.get("randomised") or {}).items()},
            completers_only=evidence.get("analysed_population") == "completers",
            risk_of_bias=evidence.get("risk_of_bias"),
            question=dict(question or {}),
            thresholds=dict(thresholds or {}),
        )

    def risk_of_bias_for(self, outcome: str) -> RiskOfBias:
        rob = self.risk_of_bias
        if not rob:
            return RiskOfBias(None, participants_blinded=self.participants_blinded)
        judgement = (rob.get("outcomes") or {}).get(outcome) or rob
        return RiskOfBias(
            str(judgement["overall"]),
            str(judgement.get("justification", "")),
            str(rob.get("tool", "")),
            self.participants_blinded,
        )

    def indirectness(self, treatment: str, control: str, outcome: str) -> tuple[str, ...]:
        """Mismatches between the study and the question, in words (GRADE 8)."""
        question = self.question
        found = []
        asked = question.get("condition")
        if asked and asked != self.condition:
            found.append(f"the study was in people with {self.condition}, not {asked}")
        for key, wanted in (question.get("population") or {}).items():
            have = self.population.get(key)
            if have is not None and have != str(wanted):
                found.append(f"the study's {key} was {have}, the question asks about {wanted}")
        for role, arm in (("intervention", treatment), ("comparator", control)):
            allowed = question.get(role)
            if allowed and arm not in allowed:
                found.append(f"the {role} ({arm.replace('_', ' ')}) is not the one asked about")
        if outcome in (question.get("surrogate_outcomes") or []):
            found.append(f"{outcome.replace('_', ' ')} stands in for what matters to patients")
        return tuple(found)


def claim_id(*parts: str) -> str:
    """A stable, citable id: ``C-`` and the slugged parts joined by hyphens."""
    return "C-" + "-".join(_SLUG.sub("-", p.lower()).strip("-") for p in parts if p)


def build_claims(
    estimates: pd.DataFrame,
    participants: pd.DataFrame,
    naming: NamingRules,
    min_cell: int = 5,
    facts: StudyFacts | None = None,
) -> pd.DataFrame:
    """All claims of one study.

    Parameters
    ----------
    estimates
        The study's estimates (see :func:`pipeline.analysis.analyse.analyse_study`).
    participants
        The study's participants (denominators of the share analysed, overall and per subgroup).
    naming
        Plain names of arms, outcomes, timepoints and subgroup strata (the study's own on top).
    min_cell
        Counts below this are withheld, with every number they could be recomputed from.
    facts
        What the study declares (condition, blinding, randomised numbers, risk of bias) and the
        question its claims answer; ``None``: nothing declared (risk of bias not assessed).

    Returns
    -------
    pandas.DataFrame
        One row per claim: ``claim_id``, ``study_id``, ``comparison_id``, ``kind`` (effect,
        responders, subgroup-<level>), ``sentence``, ``certainty``, ``certainty_start``,
        ``certainty_reasons`` (list), ``grade`` (list of domain dicts), ``direction``
        (benefit | harm | little_or_no_difference | uncertain), ``size``, ``names``,
        ``shown_numbers``, ``numbers`` (estimate, ci_low, ci_high, units, n_treated,
        n_control, threshold, ...), ``estimate_ref``, ``synthetic``, ``design``,
        ``input_data_sha256``, ``sentence_sha256``.
    """
    facts = facts or StudyFacts()
    claims: list[dict[str, Any]] = []
    arms = participants["arm"].astype(str)
    for _comparison, rows in estimates.groupby("comparison_id", sort=False):
        primary = rows[rows["is_primary"].astype(bool)]
        if primary.empty or not np.isfinite(primary["estimate"].iloc[0]):
            continue
        main = primary.iloc[0]
        in_arms = arms.isin([str(main["treatment"]), str(main["control"])])
        denominator = _denominator(main, int(in_arms.sum()), facts)
        effect = _effect_claim(main, rows, denominator, naming, facts, "effect")
        claims.append(effect)
        responders = _responder_rows(rows)
        if responders is not None:
            claims.append(
                _responder_claim(*responders, denominator, naming, facts, min_cell, effect)
            )
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
                _effect_claim(
                    stratum,
                    rows,
                    (in_stratum, False),
                    naming,
                    facts,
                    f"subgroup-{level}",
                    suffix=phrase,
                )
            )
    return pd.DataFrame(claims, columns=CLAIM_COLUMNS)


CLAIM_COLUMNS = [
    "claim_id",
    "study_id",
    "comparison_id",
    "kind",
    "sentence",
    "certainty",
    "certainty_start",
    "certainty_reasons",
    "grade",
    "direction",
    "size",
    "names",
    "shown_numbers",
    "numbers",
    "estimate_ref",
    "synthetic",
    "design",
    "input_data_sha256",
    "sentence_sha256",
]


def _denominator(row: pd.Series, n_in_arms: int, facts: StudyFacts) -> tuple[int, bool]:
    """People who should have contributed: randomised to the two arms when declared."""
    declared = [
        facts.randomised.get(str(row["treatment"])),
        facts.randomised.get(str(row["control"])),
    ]
    if all(declared):
        return int(sum(declared)), True
    return n_in_arms, False


def _scale(row: pd.Series) -> tuple[str, float]:
    """The thresholds' kind and the top of the scale of an estimate row."""
    if row["effect_measure"] == "rate_ratio":
        return "rate_ratio", 1.0
    if row["effect_measure"] == "hedges_g":
        return "hedges_g", 1.0
    domain = str(row["domain"])
    return domain, float(CANONICAL_DOMAINS.get(domain, {}).get("max", 1))


def _effect_claim(
    row: pd.Series,
    rows: pd.DataFrame,
    denominator: tuple[int, bool],
    naming: NamingRules,
    facts: StudyFacts,
    kind: str,
    suffix: str = "",
) -> dict[str, Any]:
    ratio = row["effect_measure"] == "rate_ratio"
    measure, scale_max = _scale(row)
    outcome_key = str(row["outcome"])
    thresholds = thresholds_for(measure, facts.thresholds.get(outcome_key))
    evidence = _evidence(row, thresholds, denominator, facts, 1.0 if ratio else 0.0)
    evidence = _with(evidence, sensitivity_agrees=_sensitivity_agrees(row, rows))
    certainty = rate_certainty(evidence)
    names = _names(row, naming, facts)
    # a subgroup is said in its own short sentence: the statement stays short and readable
    lead = f"This is for {suffix.removeprefix('in ')}. " if suffix else ""
    statement = Statement(
        direction_word(evidence), size_category(evidence), bool(row["higher_is_better"])
    )
    if ratio:
        numbers_text, shown = render_ratio_range(
            float(row["estimate"]),
            float(row["ci_low"]),
            float(row["ci_high"]),
            float(row["mean_treated"]),
            float(row["mean_control"]),
        )
        units = "rate ratio (treatment / control)"
    else:
        numbers_text, shown = render_range(
            float(row["estimate"]), float(row["ci_low"]), float(row["ci_high"]), scale_max
        )
        better = "higher" if statement.higher_is_better else "lower"
        units = f"points on a 0-{scale_max:g} scale, {better} = better"
    sentence = readable(
        lambda inline, apart: (
            _prefix(row)
            + lead
            + render_statement(
                statement, names, certainty, timepoint_inline=inline, comparator_apart=apart
            )
            + " "
            + numbers_text
        ),
        *STATEMENT_FORMS,
    )
    return _claim(
        row,
        kind,
        sentence,
        certainty,
        statement,
        names,
        shown,
        {
            "estimate": float(row["estimate"]),
            "ci_low": float(row["ci_low"]),
            "ci_high": float(row["ci_high"]),
            "units": units,
            "n_treated": int(row["n_treated"]),
            "n_control": int(row["n_control"]),
            "threshold": thresholds.small,
            "threshold_source": thresholds.source,
            "mcid": None if ratio or pd.isna(row.get("mcid")) else float(row["mcid"]),
            "instrument": str(row.get("instrument", "")),
            "effect_measure": str(row["effect_measure"]),
        },
    )


def _responder_rows(rows: pd.DataFrame) -> tuple[pd.Series, pd.Series] | None:
    """The MCID responder rows: the crude risk difference (counts) and the standardised one."""
    definition = rows.get("definition", pd.Series(index=rows.index, dtype=object))
    mcid = rows[(rows["method"] == "responders") & (definition == "MCID")]
    crude = mcid[mcid["effect_measure"] == "risk_difference"]
    adjusted = mcid[mcid["effect_measure"] == "standardised_risk_difference"]
    if crude.empty:
        return None
    return crude.iloc[0], (adjusted.iloc[0] if not adjusted.empty else crude.iloc[0])


def _responder_claim(
    crude: pd.Series,
    row: pd.Series,
    denominator: tuple[int, bool],
    naming: NamingRules,
    facts: StudyFacts,
    min_cell: int,
    effect: dict[str, Any],
) -> dict[str, Any]:
    """A responder claim on the baseline-adjusted (standardised) risk difference, graded with
    its own imprecision and never more certain than the continuous claim of the comparison."""
    thresholds = thresholds_for("risk_difference", facts.thresholds.get("responders"))
    evidence = _evidence(row, thresholds, denominator, facts, 0.0)
    evidence = _with(evidence, control_risk=float(row["risk_control"]))
    certainty = rate_certainty(evidence)
    statement = Statement(direction_word(evidence), size_category(evidence), True)
    certainty = _no_more_certain_than(certainty, statement, effect)
    names = _names(row, naming, facts)
    change = "much better" if bool(row["higher_is_better"]) else "much less"
    # the size lives in the numbers ("80 vs 20 in 100"): no adverb after a "how many" clause
    plain_statement = Statement(statement.direction, "", True)
    events = (int(crude["events_treated"]), int(crude["events_control"]))
    n = (int(crude["n_treated"]), int(crude["n_control"]))
    # secondary suppression: a count below min_cell (or its complement) is withheld with every
    # number it can be recomputed from (risks, differences, intervals, NNT)
    small = any(v < min_cell for v in (*events, n[0] - events[0], n[1] - events[1]))
    if small:
        numbers_text, shown = "One group was too small. So we do not show the numbers.", []
        numbers: dict[str, Any] = {
            "units": "risk difference (withheld: small counts)",
            "suppressed": True,
        }
    else:
        numbers_text, shown = render_responder_range(
            float(row["risk_treated"]),
            float(row["risk_control"]),
            float(row["ci_low"]),
            float(row["ci_high"]),
        )
        numbers = {
            "estimate": float(row["estimate"]),
            "ci_low": float(row["ci_low"]),
            "ci_high": float(row["ci_high"]),
            "units": "risk difference standardised over the analysed people (proportion "
            "improving by at least the MCID)"
            if row["effect_measure"] == "standardised_risk_difference"
            else "risk difference (proportion improving by at least the MCID)",
            "risk_treated": float(row["risk_treated"]),
            "risk_control": float(row["risk_control"]),
            "events_treated": events[0],
            "events_control": events[1],
            "nnt": str(crude.get("nnt_text", "")),
            "suppressed": False,
        }
    numbers |= {
        "n_treated": n[0],
        "n_control": n[1],
        "mcid": float(crude["threshold"]),
        "threshold": thresholds.small / 100,
        "threshold_source": thresholds.source,
        "effect_measure": str(row["effect_measure"]),
    }
    sentence = readable(
        lambda inline, who, apart: (
            _prefix(row)
            + render_statement(
                plain_statement,
                names,
                certainty,
                f"how many {who}have {change} {names.outcome}",
                timepoint_inline=inline,
                comparator_apart=apart,
            )
            + " "
            + numbers_text
        ),
        *[(inline, "people ", apart) for inline, apart in STATEMENT_FORMS],
        (False, "", True),
    )
    return _claim(row, "responders", sentence, certainty, statement, names, shown, numbers)


MAX_WORDS = 20
MAX_GRADE = 6.0
# (timepoint in the statement, comparator in its own sentence), tried in order
STATEMENT_FORMS = ((True, False), (False, False), (True, True), (False, True))


def is_readable(text: str) -> bool:
    """At most 20 words per sentence and Flesch-Kincaid grade 6 over the whole claim."""
    return reading_grade(text) <= MAX_GRADE and all(
        count_words(part) <= MAX_WORDS for part in split_sentences(text)
    )


def readable(build: Callable[..., str], *variants: tuple[Any, ...]) -> str:
    """The first readable form of a claim among ``variants`` (arguments of ``build``), by
    default: timepoint in the statement, else in its own sentence. The last is the fallback
    (a test over all studies and generated names checks it is readable too)."""
    variants = variants or STATEMENT_FORMS
    for arguments in variants:
        text = build(*arguments)
        if is_readable(text):
            return text
    return text


def _no_more_certain_than(
    certainty: Certainty, statement: Statement, effect: dict[str, Any]
) -> Certainty:
    """Cap a responder claim at the continuous claim's certainty; say why when they differ."""
    judgements = list(certainty.judgements)
    rank = certainty.rank
    effect_rank = LEVELS.index(effect["certainty"])
    if rank > effect_rank:
        judgements.append(
            Judgement(
                "consistency_with_scale",
                "capped",
                effect_rank - rank,
                "it cannot be more certain than the result on the scale itself",
            )
        )
        rank = effect_rank
    continuous = effect["direction"]
    stated = "benefit" if statement.direction == "up" else "harm"
    if statement.direction in ("up", "down") and continuous != stated:
        judgements.append(
            Judgement(
                "consistency_with_scale",
                "serious",
                -1 if rank > 0 else 0,
                "the average scores did not show the same, so more people may have improved "
                "by chance",
            )
        )
        rank = max(rank - 1, 0)
    return Certainty(LEVELS[rank], certainty.start, tuple(judgements))


def _evidence(
    row: pd.Series,
    thresholds: Any,
    denominator: tuple[int, bool],
    facts: StudyFacts,
    null: float,
) -> Evidence:
    rules = load_grade_rules()["risk_of_bias"]
    outcome = str(row["outcome"])
    se = row.get("se")
    return Evidence(
        design=str(row["design"]),
        estimate=float(row["estimate"]),
        ci_low=float(row["ci_low"]),
        ci_high=float(row["ci_high"]),
        thresholds=thresholds,
        null=null,
        se=float(se) if se is not None and np.isfinite(se) else None,
        n_analysed=int(row["n_treated"] + row["n_control"]),
        n_denominator=denominator[0],
        denominator_is_randomised=denominator[1],
        completers_only=facts.completers_only,
        risk_of_bias=facts.risk_of_bias_for(outcome),
        self_reported=str(row["domain"]) in rules["self_reported_domains"],
        indirectness=facts.indirectness(str(row["treatment"]), str(row["control"]), outcome),
    )


def _with(evidence: Evidence, **changes: Any) -> Evidence:
    from dataclasses import replace

    return replace(evidence, **changes)


def _names(row: pd.Series, naming: NamingRules, facts: StudyFacts) -> Names:
    outcome = naming.outcome(str(row["outcome"]), facts.condition)
    return Names(
        naming.arm(str(row["treatment"])),
        naming.arm(str(row["control"])),
        outcome,
        naming.timepoint(None if pd.isna(row.get("timepoint")) else str(row["timepoint"])),
        facts.condition,
    )


def _prefix(row: pd.Series) -> str:
    return DEMO_PREFIX if bool(row["synthetic"]) else ""


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


def _claim(
    row: pd.Series,
    kind: str,
    sentence: str,
    certainty: Certainty,
    statement: Statement,
    names: Names,
    shown: list[str],
    numbers: dict[str, Any],
) -> dict[str, Any]:
    direction = {
        "little_or_no_difference": "little_or_no_difference",
        "uncertain": "uncertain",
    }.get(statement.direction)
    if direction is None:
        up = statement.direction == "up"
        direction = "benefit" if up == statement.higher_is_better else "harm"
    return {
        "claim_id": claim_id(str(row["study_id"]), str(row["comparison_id"]), kind),
        "study_id": str(row["study_id"]),
        "comparison_id": str(row["comparison_id"]),
        "kind": kind,
        "sentence": sentence,
        "certainty": certainty.level,
        "certainty_start": certainty.start,
        "certainty_reasons": list(certainty.reasons),
        "grade": [j.as_dict() for j in certainty.judgements],
        "direction": direction,
        "size": statement.size if direction not in ("uncertain",) else "",
        "names": {
            "intervention": names.treatment,
            "comparator": names.control,
            "outcome": names.outcome,
            "condition": names.condition,
            "timepoint": names.timepoint,
        },
        "shown_numbers": list(shown),
        "numbers": numbers,
        "estimate_ref": {
            "comparison_id": str(row["comparison_id"]),
            "method": str(row["method"]),
            "estimand": str(row["estimand"]),
            "effect_measure": str(row["effect_measure"]),
            "term": str(row["term"]),
        },
        "synthetic": bool(row["synthetic"]),
        "design": str(row["design"]),
        "input_data_sha256": str(row.get("input_data_sha256", "")),
        "sentence_sha256": hashlib.sha256(sentence.encode("utf-8")).hexdigest(),
    }


def meta_question_mismatch(members: pd.DataFrame, arm_classes: dict[str, str]) -> list[str]:
    """Why the studies of a meta-analysis do not answer one question (empty: they do).

    Pooling needs the same intervention class, comparator class and outcome in every study.
    """
    problems = []
    for role, column in (("treatment", "treatment"), ("comparison", "control")):
        classes = {arm_classes.get(str(a), f"undeclared ({a})") for a in members[column]}
        if len(classes) > 1:
            problems.append(f"they tested different {role}s ({' and '.join(sorted(classes))})")
    if members["domain"].nunique() > 1:
        problems.append("they measured different things")
    return problems


def build_meta_claims(
    pooled: pd.DataFrame,
    naming: NamingRules,
    names: dict[str, dict[str, str]],
    arm_classes: dict[str, str],
) -> pd.DataFrame:
    """Claims of the meta-analyses (REML pooled rows) whose studies answer one question.

    A meta-analysis whose studies differ in intervention class, comparator class or outcome
    gets no pooled claim (its studies are shown side by side). The pooled claim is graded with
    inconsistency (I2, prediction interval), publication bias (from 10 studies) and the
    members' risk of bias (the worst declared).
    """
    claims = []
    for meta_id, rows in pooled.groupby("meta_id", sort=False):
        pooled_row = rows[rows["method"] == "meta_reml"]
        members = rows[rows["method"] == "study"]
        if pooled_row.empty or meta_question_mismatch(members, arm_classes):
            continue
        row = pooled_row.iloc[0]
        declared = names.get(str(meta_id), {})
        thresholds = thresholds_for("hedges_g")
        rob = [r for r in members.get("risk_of_bias", pd.Series(dtype=object)) if r]
        overall = max(rob, key=ROB_ORDER.index) if len(rob) == len(members) else None
        evidence = Evidence(
            design="randomised" if (members["design"] == "randomised").all() else "cohort",
            estimate=float(row["estimate"]),
            ci_low=float(row["ci_low"]),
            ci_high=float(row["ci_high"]),
            thresholds=thresholds,
            n_analysed=int(members["n_treated"].sum() + members["n_control"].sum()),
            risk_of_bias=RiskOfBias(overall, "worst judgement among the studies"),
            k=int(row["k"]),
            i2=float(row["i2"]),
            pi_low=float(row["pi_low"]) if pd.notna(row.get("pi_low")) else None,
            pi_high=float(row["pi_high"]) if pd.notna(row.get("pi_high")) else None,
        )
        certainty = rate_certainty(evidence)
        higher_is_better = (
            bool(members["higher_is_better"].iloc[0]) if "higher_is_better" in members else False
        )
        statement = Statement(direction_word(evidence), size_category(evidence), higher_is_better)
        plain = Names(
            declared.get("treatment", "the treatment"),
            declared.get("control", "the comparison"),
            declared.get("outcome", str(members["outcome"].iloc[0])),
        )
        opening = render_statement(statement, plain, certainty)
        g = format_number(float(row["estimate"]), 1)
        low, high = format_number(float(row["ci_low"]), 1), format_number(float(row["ci_high"]), 1)
        text = (
            f"{len(members)} studies together showed a standard difference of about {g} "
            f"(could be {low} to {high})."
        )
        synthetic = bool(members["synthetic"].astype(bool).any())
        fake = pd.Series(
            {
                "study_id": "meta",
                "comparison_id": str(meta_id),
                "method": "meta_reml",
                "estimand": "pooled",
                "effect_measure": "hedges_g",
                "term": "pooled",
                "synthetic": synthetic,
                "design": evidence.design,
                "input_data_sha256": "; ".join(
                    sorted(members["input_data_sha256"].dropna().astype(str).unique())
                )
                if "input_data_sha256" in members
                else "",
            }
        )
        sentence = (DEMO_PREFIX if synthetic else "") + opening + " " + text
        claims.append(
            _claim(
                fake,
                "meta-analysis",
                sentence,
                certainty,
                statement,
                plain,
                [str(len(members)), g, low, high],
                {
                    "estimate": float(row["estimate"]),
                    "ci_low": float(row["ci_low"]),
                    "ci_high": float(row["ci_high"]),
                    "units": "standardised mean difference (Hedges' g)",
                    "k": int(row["k"]),
                    "i2": float(row["i2"]),
                    "tau2": float(row["tau2"]),
                    "n_treated": int(members["n_treated"].sum()),
                    "n_control": int(members["n_control"].sum()),
                    "threshold": thresholds.small,
                    "threshold_source": thresholds.source,
                },
            )
        )
    return pd.DataFrame(claims, columns=CLAIM_COLUMNS)


ROB_ORDER = ["low", "some_concerns", "high"]


__all__ = [
    "CLAIM_COLUMNS",
    "LEVELS",
    "NamingRules",
    "StudyFacts",
    "build_claims",
    "build_meta_claims",
    "claim_id",
]
