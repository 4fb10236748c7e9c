"""How sure we can be of an estimate: GRADE certainty from every domain, each a recorded judgement.

The target of the rating is the category of the point estimate (trivial / small / moderate /
large, thresholds in ``registry/grade.yaml``): GRADE's partially contextualised approach
(Schünemann HJ et al. J Clin Epidemiol 2022;142:1-9; Zeng L et al. GRADE guidance 34, J Clin
Epidemiol 2022;137:163-75). Start high for randomised trials and low for observational
studies (GRADE guidelines 3, Balshem H et al. J Clin Epidemiol 2011;64:401-6), then judge:

* **risk of bias** (GRADE 4; RoB 2 / ROBINS-I overall judgement declared per study and
  outcome): low 0, some concerns -1, high -2; never silently low: undeclared is -1 and says
  so; a self-reported outcome in a trial whose participants knew their treatment is at least
  "some concerns"; missing outcome data (share of the randomised people, or of the people in
  the compared arms, who contribute) below 80% is serious, below 60% very serious, and a
  completers-only export that declares no randomised numbers cannot show attrition, so it is
  at least serious. The domain takes the worst of these (they overlap: no double counting).
* **imprecision** (GRADE 6 and 34): the number of category thresholds the interval crosses
  (-1 per threshold, at most -2); an interval that includes no difference and reaches an
  important effect is too wide to give a direction and the claim is very low; an interval
  within +/- the small threshold that comes close to it (>= 80%) or rests on fewer people
  than the optimal information size is -1.
* **inconsistency** (GRADE 7): across studies I2 above 50% (-1) or 75% (-2), or a prediction
  interval that reaches the other side of the threshold; within one study, sensitivity
  analyses that disagree about the direction (-1).
* **indirectness** (GRADE 8): each mismatch between the study and the question the claim
  answers (condition, population, intervention, comparator, surrogate outcome) -1, at most -2.
* **publication bias** (GRADE 5): Egger's test from 10 studies on; otherwise "not assessed".
* **rating up** (GRADE 9), observational evidence with no serious concern only: a large
  ratio (>= 2 or <= 0.5: +1; >= 5 or <= 0.2: +2), a declared dose-response gradient, or
  declared confounding that would reduce the effect (+1 each).

Every domain is kept as a :class:`Judgement` with its reason, so a reader sees why a claim is
hedged and a methodologist can audit each step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import yaml
from scipy import stats

LEVELS = ("very_low", "low", "moderate", "high")
DOMAINS = (
    "risk_of_bias",
    "imprecision",
    "inconsistency",
    "indirectness",
    "publication_bias",
    "rating_up",
)
ROB_LEVELS = ("low", "some_concerns", "high")
SIZES = ("trivial", "small", "moderate", "large")


@cache
def load_grade_rules() -> dict[str, Any]:
    """The GRADE registry (``pipeline/registry/grade.yaml``)."""
    text = resources.files("pipeline.registry").joinpath("grade.yaml").read_text("utf-8")
    return yaml.safe_load(text)


@dataclass(frozen=True)
class Judgement:
    """One GRADE domain: the judgement, the levels it moves certainty by, and why."""

    domain: str
    judgement: str  # no serious | serious | very serious | not assessed | rated up
    levels: int  # negative: rated down; positive: rated up
    reason: str  # plain words, for patients
    detail: str = ""  # the technical basis (declared justification, tool), for methods notes

    def as_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "judgement": self.judgement,
            "levels_down": -self.levels,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Certainty:
    """A certainty level with the judgement of every domain."""

    level: str
    start: str
    judgements: tuple[Judgement, ...] = field(default_factory=tuple)

    @property
    def rank(self) -> int:
        return LEVELS.index(self.level)

    @property
    def reasons(self) -> tuple[str, ...]:
        """Plain reasons of the domains that moved the rating (or could not be assessed)."""
        return tuple(
            j.reason for j in self.judgements if j.levels != 0 or j.judgement == "not assessed"
        )


@dataclass(frozen=True)
class RiskOfBias:
    """A declared risk-of-bias judgement (RoB 2 for trials, ROBINS-I for cohorts)."""

    overall: str | None  # low | some_concerns | high | None (not assessed)
    justification: str = ""
    tool: str = ""
    participants_blinded: bool | None = None


@dataclass(frozen=True)
class Thresholds:
    """Category thresholds of one kind of estimate (absolute distances from no difference)."""

    small: float
    moderate: float
    large: float
    source: str = ""
    kind: str = "difference"  # difference | ratio (percent change) | risk (percentage points)

    def distance(self, value: float, null: float) -> float:
        """Signed distance from no difference on the thresholds' scale."""
        if self.kind == "ratio":
            return (value - 1.0) * 100 if value >= 1 else (1 - 1 / value) * 100
        if self.kind == "risk":
            return (value - null) * 100
        return value - null

    def category(self, distance: float) -> str:
        size = abs(distance)
        if size >= self.large:
            return "large"
        if size >= self.moderate:
            return "moderate"
        if size >= self.small:
            return "small"
        return "trivial"

    def crossed(self, low: float, high: float) -> int:
        """Thresholds (on either side) lying strictly inside the interval [low, high]."""
        cuts = (self.small, self.moderate, self.large)
        return sum(1 for c in cuts for t in (c, -c) if low < t < high)


def thresholds_for(kind: str, override: dict[str, Any] | None = None) -> Thresholds:
    """The registry's thresholds for a domain or measure, with a declared override of ``small``."""
    bands = dict(load_grade_rules()["magnitude"][kind])
    if override:
        small = float(override["small"])
        scale = small / float(bands["small"])
        bands = {
            "small": small,
            "moderate": float(override.get("moderate", bands["moderate"] * scale)),
            "large": float(override.get("large", bands["large"] * scale)),
            "source": str(override.get("source", "declared in params.yaml")),
        }
    measure = {"rate_ratio": "ratio", "risk_difference": "risk"}.get(kind, "difference")
    return Thresholds(
        float(bands["small"]),
        float(bands["moderate"]),
        float(bands["large"]),
        str(bands.get("source", "")),
        measure,
    )


@dataclass(frozen=True)
class Evidence:
    """What the rating looks at, for one estimate (or one pooled estimate)."""

    design: str  # "randomised" | "cohort"
    estimate: float
    ci_low: float
    ci_high: float
    thresholds: Thresholds
    null: float = 0.0  # 0 for differences, 1 for ratios
    se: float | None = None  # for the optimal information size of continuous outcomes
    n_analysed: int = 0
    n_denominator: int = 0  # randomised (declared) or in the compared arms
    denominator_is_randomised: bool = False
    completers_only: bool = False
    risk_of_bias: RiskOfBias = RiskOfBias(None)
    self_reported: bool = True
    control_risk: float | None = None  # dichotomous outcomes: the control arm's risk
    indirectness: tuple[str, ...] = ()  # mismatches with the question, in words
    sensitivity_agrees: bool | None = None  # None when no sensitivity analysis ran
    k: int = 1  # studies
    i2: float | None = None
    pi_low: float | None = None
    pi_high: float | None = None
    egger_p: float | None = None
    dose_response: str = ""  # declared gradient (observational rating up)
    opposing_confounding: str = ""  # declared confounding that would reduce the effect


def rate_certainty(evidence: Evidence) -> Certainty:
    """The GRADE certainty of one estimate (see the module docstring for the rules)."""
    start = "high" if evidence.design == "randomised" else "low"
    judgements = [
        _risk_of_bias(evidence),
        _imprecision(evidence),
        _inconsistency(evidence),
        _indirectness(evidence),
        _publication_bias(evidence),
    ]
    down = sum(j.levels for j in judgements)
    if evidence.design != "randomised":
        up = _rating_up(evidence, serious=any(j.levels < 0 for j in judgements))
        judgements.append(up)
        down += up.levels
    rank = LEVELS.index(start) + down
    if _direction_unknown(evidence):
        rank = 0
    level = LEVELS[int(np.clip(rank, 0, len(LEVELS) - 1))]
    return Certainty(level=level, start=start, judgements=tuple(judgements))


def size_category(evidence: Evidence) -> str:
    """The category of the point estimate; ``trivial`` only if the whole interval is within it."""
    t = evidence.thresholds
    low, high = _interval_distances(evidence)
    if -t.small < low and high < t.small:
        return "trivial"
    category = t.category(t.distance(evidence.estimate, evidence.null))
    return "small" if category == "trivial" else category


def direction_word(evidence: Evidence) -> str:
    """``little_or_no_difference``, ``uncertain`` (no direction), or the sign: ``up`` / ``down``."""
    if size_category(evidence) == "trivial":
        return "little_or_no_difference"
    if _direction_unknown(evidence):
        return "uncertain"
    return "up" if evidence.estimate > evidence.null else "down"


def _interval_distances(evidence: Evidence) -> tuple[float, float]:
    t = evidence.thresholds
    a = t.distance(evidence.ci_low, evidence.null)
    b = t.distance(evidence.ci_high, evidence.null)
    return min(a, b), max(a, b)


def _direction_unknown(evidence: Evidence) -> bool:
    """The interval includes no difference and reaches an important effect."""
    t = evidence.thresholds
    low, high = _interval_distances(evidence)
    return low < 0 < high and not (-t.small < low and high < t.small)


def _risk_of_bias(evidence: Evidence) -> Judgement:
    rules = load_grade_rules()["risk_of_bias"]
    steps = rules["levels_down"]
    rob = evidence.risk_of_bias
    candidates: list[tuple[int, str]] = []
    if rob.overall is None:
        candidates.append(
            (
                int(rules["not_assessed_levels_down"]),
                "risk of bias was not assessed for this study, so we cannot rule it out",
            )
        )
    else:
        plain = {
            "low": "the study was judged well done",
            "some_concerns": "the study had some flaws in how it was done",
            "high": "the study had serious flaws in how it was done",
        }[rob.overall]
        candidates.append((int(steps[rob.overall]), plain))
    if (
        evidence.design == "randomised"
        and evidence.self_reported
        and rob.participants_blinded is False
    ):
        floor = rules["unblinded_self_report"]
        candidates.append(
            (
                int(steps[floor]),
                "people knew which treatment they got and rated the outcome themselves",
            )
        )
    share = evidence.n_analysed / evidence.n_denominator if evidence.n_denominator else float("nan")
    who = "of the people who joined" if evidence.denominator_is_randomised else "of the people"
    if np.isfinite(share) and share < float(rules["missing_outcome_share_very_serious"]):
        candidates.append((2, f"results were missing for many people (only {share:.0%} {who})"))
    elif np.isfinite(share) and share < float(rules["missing_outcome_share_serious"]):
        candidates.append((1, f"results were missing for many people (only {share:.0%} {who})"))
    if evidence.completers_only and not evidence.denominator_is_randomised:
        candidates.append(
            (
                1,
                "the data hold only people with complete results, so we cannot tell how many dropped out",
            )
        )
    levels, reason = max(candidates, key=lambda c: c[0])
    detail = (
        f"{rob.tool or 'declared'} overall: {rob.overall}; {rob.justification}"
        if rob.overall
        else "no risk-of-bias judgement declared in study.yaml"
    )
    if levels == 0:
        return Judgement("risk_of_bias", "no serious", 0, reason, detail)
    if rob.overall is None and levels == int(rules["not_assessed_levels_down"]):
        return Judgement("risk_of_bias", "not assessed", -levels, reason, detail)
    return Judgement("risk_of_bias", _seriousness(levels), -levels, reason, detail)


def _imprecision(evidence: Evidence) -> Judgement:
    rules = load_grade_rules()["imprecision"]
    t = evidence.thresholds
    low, high = _interval_distances(evidence)
    if _direction_unknown(evidence):
        return Judgement(
            "imprecision",
            "very serious",
            -3,
            "the likely range fits both little or no difference and an important effect",
        )
    crossed = t.crossed(low, high)
    if crossed:
        return Judgement(
            "imprecision",
            _seriousness(min(crossed, 2)),
            -min(crossed, 2),
            "the range spans more than one size of effect",
        )
    if size_category(evidence) == "trivial":
        reach = max(abs(low), abs(high)) / t.small
        if reach >= float(rules["close_to_threshold"]):
            return Judgement(
                "imprecision",
                "serious",
                -1,
                f"the range comes close to an important effect ({reach:.0%} of it)",
            )
    ois = optimal_information_size(evidence, float(rules["ois_alpha"]), float(rules["ois_power"]))
    if ois is not None and evidence.n_analysed < ois:
        return Judgement(
            "imprecision",
            "serious",
            -1,
            f"fewer people ({evidence.n_analysed}) than a study would need to detect an "
            f"important effect (about {ois:.0f})",
        )
    return Judgement("imprecision", "no serious", 0, "the range lies within one size of effect")


def optimal_information_size(evidence: Evidence, alpha: float, power: float) -> float | None:
    """People a two-arm trial powered on the small threshold would need (None if unknown).

    Continuous: the SE of the estimate scales as 1/sqrt(n), so the trial that detects the
    threshold ``d`` with the given power has SE ``d / (z_{1-alpha/2} + z_power)``:
    ``OIS = n * (SE * (z_a + z_b) / d)^2``. Dichotomous: the usual two-proportion sample size
    with the control risk and the control risk plus the threshold (Guyatt GH et al. GRADE 6,
    J Clin Epidemiol 2011;64:1283-93).
    """
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    t = evidence.thresholds
    if t.kind == "risk" and evidence.control_risk is not None:
        p0 = float(evidence.control_risk)
        p1 = float(np.clip(p0 + t.small / 100, 1e-6, 1 - 1e-6))
        per_arm = z**2 * (p0 * (1 - p0) + p1 * (1 - p1)) / (p1 - p0) ** 2
        return 2 * per_arm
    if t.kind == "difference" and evidence.se and evidence.n_analysed:
        return evidence.n_analysed * (evidence.se * z / t.small) ** 2
    return None


def _inconsistency(evidence: Evidence) -> Judgement:
    rules = load_grade_rules()["inconsistency"]
    if evidence.k > 1 and evidence.i2 is not None:
        levels = 0
        reasons = []
        if evidence.i2 > float(rules["i2_very_serious"]):
            levels = 2
        elif evidence.i2 > float(rules["i2_serious"]):
            levels = 1
        if levels:
            reasons.append(f"the studies disagreed with each other (I2 = {evidence.i2:.0f}%)")
        if evidence.pi_low is not None and evidence.pi_high is not None:
            t = evidence.thresholds
            a = t.distance(evidence.pi_low, evidence.null)
            b = t.distance(evidence.pi_high, evidence.null)
            if min(a, b) <= -t.small and max(a, b) >= t.small:
                levels = max(levels, 1)
                reasons.append("a new study could find an important effect either way")
        if levels:
            return Judgement("inconsistency", _seriousness(levels), -levels, "; ".join(reasons))
        return Judgement(
            "inconsistency", "no serious", 0, f"the studies agreed (I2 = {evidence.i2:.0f}%)"
        )
    if evidence.sensitivity_agrees is False:
        return Judgement(
            "inconsistency",
            "serious",
            -1,
            "other ways of analysing the data gave a different answer",
        )
    if evidence.sensitivity_agrees is None:
        return Judgement(
            "inconsistency",
            "no serious",
            0,
            "one study, and no other way of analysing it to compare",
        )
    return Judgement("inconsistency", "no serious", 0, "other ways of analysing the data agreed")


def _indirectness(evidence: Evidence) -> Judgement:
    if not evidence.indirectness:
        return Judgement(
            "indirectness", "no serious", 0, "the study matches the question it answers"
        )
    levels = min(len(evidence.indirectness), 2)
    return Judgement(
        "indirectness", _seriousness(levels), -levels, "; ".join(evidence.indirectness)
    )


def _publication_bias(evidence: Evidence) -> Judgement:
    rules = load_grade_rules()["publication_bias"]
    if evidence.k < int(rules["min_studies"]) or evidence.egger_p is None:
        why = (
            "one study: publication bias cannot be assessed"
            if evidence.k <= 1
            else f"{evidence.k} studies: too few to test for small-study effects (needs 10)"
        )
        return Judgement("publication_bias", "not assessed", 0, why)
    if evidence.egger_p < float(rules["egger_alpha"]):
        return Judgement(
            "publication_bias",
            "serious",
            -1,
            f"smaller studies found larger effects (Egger's test p = {evidence.egger_p:.2f})",
        )
    return Judgement(
        "publication_bias",
        "no serious",
        0,
        f"no sign that smaller studies found larger effects (Egger's test p = {evidence.egger_p:.2f})",
    )


def _rating_up(evidence: Evidence, serious: bool) -> Judgement:
    if serious:
        return Judgement("rating_up", "not rated up", 0, "not rated up: there are serious concerns")
    rules = load_grade_rules()["rate_up"]
    levels, reasons = 0, []
    if evidence.thresholds.kind == "ratio" and evidence.estimate > 0:
        ratio = max(evidence.estimate, 1 / evidence.estimate)
        nearest = min(
            max(evidence.ci_low, 1 / evidence.ci_low), max(evidence.ci_high, 1 / evidence.ci_high)
        )
        if evidence.ci_low > 1 or evidence.ci_high < 1:
            if ratio >= float(rules["very_large_ratio"]) and nearest >= float(rules["large_ratio"]):
                levels, reasons = 2, ["a very large effect"]
            elif nearest >= float(rules["large_ratio"]):
                levels, reasons = 1, ["a large effect"]
    if evidence.dose_response:
        levels += 1
        reasons.append(f"a dose-response gradient ({evidence.dose_response})")
    if evidence.opposing_confounding:
        levels += 1
        reasons.append(
            f"likely confounding would have made the effect smaller ({evidence.opposing_confounding})"
        )
    if not levels:
        return Judgement("rating_up", "not rated up", 0, "no reason to rate up")
    return Judgement("rating_up", "rated up", min(levels, 2), "; ".join(reasons))


def _seriousness(levels: int) -> str:
    return {0: "no serious", 1: "serious"}.get(levels, "very serious")
