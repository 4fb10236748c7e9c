"""How sure we can be of an estimate: a GRADE-style certainty rating from explicit rules.

Start from the design (randomised trial: high; observational cohort: low), then lower one
level for each serious concern:

* **missing data**: fewer than 80% of the people in the compared arms contribute to the estimate;
* **imprecision**: the interval includes no difference or straddles the minimal important
  difference (MCID); two levels when it fits both an important benefit and an important harm,
  or no difference and an important effect; one level when the trial is small (< 100 people);
* **inconsistency**: across studies, I^2 above 50% (two levels above 75%); within a study,
  sensitivity analyses (multiple imputation, weighting) that disagree with the main estimate
  about whether there is an effect;
* **indirectness**: none is judged automatically (recorded as a note for the reader).

Each lowering is kept as a plain-language reason, so a reader sees why a claim is hedged.
References: Guyatt GH et al. GRADE guidelines 1-9, J Clin Epidemiol 2011 (doi:10.1016/j.jclinepi.2010.04.026);
Santesso N et al. GRADE guidelines 26: informative statements, J Clin Epidemiol 2020;119:126-35.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LEVELS = ("very_low", "low", "moderate", "high")
MIN_SHARE_ANALYSED = 0.8
SMALL_TRIAL = 100


@dataclass(frozen=True)
class Certainty:
    """A certainty level with the reasons it was lowered."""

    level: str
    start: str
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def rank(self) -> int:
        return LEVELS.index(self.level)


@dataclass(frozen=True)
class Evidence:
    """What the rating looks at, for one estimate."""

    design: str  # "randomised" | "cohort"
    estimate: float
    ci_low: float
    ci_high: float
    null: float  # 0 for differences, 1 for ratios
    mcid: float | None  # on the estimate's scale (None when unknown)
    n_analysed: int
    n_in_arms: int
    sensitivity_agrees: bool | None = None  # None when no sensitivity analysis ran
    i2: float | None = None  # heterogeneity across studies (percent)


def interval_case(evidence: Evidence) -> str:
    """Where the interval lies: ``benefit_or_harm`` (excludes no difference), ``within_mcid``
    (excludes important effects both ways), ``important_both_ways``, or ``unclear``."""
    low, high, null = evidence.ci_low, evidence.ci_high, evidence.null
    if low > null or high < null:
        return "excludes_null"
    if evidence.mcid is None:
        return "unclear"
    if low > null - evidence.mcid and high < null + evidence.mcid:
        return "within_mcid"
    if low <= null - evidence.mcid and high >= null + evidence.mcid:
        return "important_both_ways"
    return "unclear"


def rate_certainty(evidence: Evidence) -> Certainty:
    """The GRADE-style certainty of one estimate (see the module docstring for the rules)."""
    start = "high" if evidence.design == "randomised" else "low"
    rank = LEVELS.index(start)
    reasons: list[str] = []
    if evidence.design != "randomised":
        reasons.append(
            "the groups were not formed by chance, so other differences between them may explain part of the result"
        )
    share = evidence.n_analysed / evidence.n_in_arms if evidence.n_in_arms else np.nan
    if np.isfinite(share) and share < MIN_SHARE_ANALYSED:
        rank -= 1
        reasons.append(f"results were missing for many people (only {share:.0%} could be analysed)")
    case = interval_case(evidence)
    if case == "important_both_ways":
        rank -= 2
        reasons.append(
            "the result is very imprecise: it fits both an important benefit and an important harm"
        )
    elif case == "unclear":
        rank -= 2 if evidence.mcid is not None else 1
        reasons.append(
            "the result is imprecise: it fits both little or no difference and an important effect"
        )
    elif case == "excludes_null" and evidence.mcid is not None and _straddles_mcid(evidence):
        rank -= 1
        reasons.append(
            "the result is imprecise: the effect may be smaller than people would notice, or larger"
        )
    if evidence.n_in_arms < SMALL_TRIAL:
        rank -= 1
        reasons.append(f"the study was small ({evidence.n_in_arms} people)")
    if evidence.i2 is not None and evidence.i2 > 50:
        rank -= 2 if evidence.i2 > 75 else 1
        reasons.append(f"the studies disagreed with each other (I2 = {evidence.i2:.0f}%)")
    if evidence.sensitivity_agrees is False:
        rank -= 1
        reasons.append("other ways of analysing the data gave a different answer")
    return Certainty(level=LEVELS[max(rank, 0)], start=start, reasons=tuple(reasons))


def _straddles_mcid(evidence: Evidence) -> bool:
    """The interval excludes no difference but includes both sides of the MCID."""
    null, mcid = evidence.null, evidence.mcid
    if evidence.ci_low > null:
        return evidence.ci_low < null + mcid < evidence.ci_high
    return evidence.ci_low < null - mcid < evidence.ci_high
