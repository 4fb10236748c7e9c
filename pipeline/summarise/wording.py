"""Plain-language sentences from estimates, by rule: GRADE informative statements.

Santesso N, Glenton C, Dahm P, et al. GRADE guidelines 26: informative statements to
communicate the findings of systematic reviews of interventions. J Clin Epidemiol
2020;119:126-35. A claim is one statement sentence and one or two short number sentences:

* the **verb** comes from the certainty: high "reduces", moderate "probably reduces", low
  "may reduce", very low "We are uncertain whether ... reduces";
* the **size word** from the category of the effect against the thresholds of
  ``registry/grade.yaml`` (:func:`pipeline.summarise.certainty.size_category`): small
  "slightly", moderate no adverb, large "a lot"; "makes little or no difference to" only when
  the whole interval lies within +/- the small threshold; an interval that includes no
  difference and an important effect states no direction ("We are uncertain whether");
* the **range** follows in plain words in the next sentence: "Scores were about 4 points
  higher on a 0 to 100 scale. The likely range is 3 to 5 points higher." Responders are
  "x in 100 people" in both arms with the absolute difference;
* numbers are rounded half away from zero (2.5 -> 3), whole numbers on 0-100 scales and in
  100 people, one decimal on 0-10 scales.

A wide interval never becomes "no effect". Every sentence stays at most 20 words and each
bullet at about a US grade-6 reading level; tests check this over all shipped studies and
over generated names (hypothesis).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from pipeline.summarise.certainty import Certainty

# Effect verbs: (third person, base form) for up and down, by kind of outcome.
_VERBS = {
    ("higher_better", "up"): ("improves", "improve"),
    ("higher_better", "down"): ("worsens", "worsen"),
    ("higher_worse", "up"): ("increases", "increase"),
    ("higher_worse", "down"): ("reduces", "reduce"),
}
_NO_DIFFERENCE = ("makes little or no difference to", "make little or no difference to")
_HEDGE = {"high": "", "moderate": "probably ", "low": "may "}
SIZE_WORDS = {"trivial": "", "small": "slightly", "moderate": "", "large": "a lot"}
MAX_SENTENCE_WORDS = 20


@dataclass(frozen=True)
class Names:
    """Plain names of the arms, outcome and timepoint of a claim."""

    treatment: str
    control: str
    outcome: str
    timepoint: str = ""  # "at 10 weeks", "after treatment" ("" when said once in the report)
    condition: str = ""


@dataclass(frozen=True)
class Statement:
    """What a claim states: direction (``up``/``down``/``little_or_no_difference``/``uncertain``),
    size category, and the outcome's good direction."""

    direction: str
    size: str
    higher_is_better: bool


def round_half_away(value: float, digits: int = 0) -> float:
    """Round half away from zero (2.5 -> 3, -2.5 -> -3), unlike Python's round-half-even."""
    quantum = Decimal(1).scaleb(-digits)
    rounded = Decimal(repr(abs(value))).quantize(quantum, rounding=ROUND_HALF_UP)
    return float(rounded) if value >= 0 else -float(rounded)


def format_number(value: float, digits: int) -> str:
    """A magnitude as written in a sentence, rounded half away from zero."""
    rounded = round_half_away(abs(value), digits)
    return f"{rounded:.{digits}f}"


def digits_for(scale_max: float) -> int:
    """One decimal on 0-10 scales, whole numbers on 0-100 scales."""
    return 1 if scale_max <= 10 else 0


def word_count(sentence: str) -> int:
    """Words as the linter counts them: tokens with a letter or digit."""
    return sum(1 for token in sentence.split() if any(ch.isalnum() for ch in token))


def capitalise(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def render_statement(
    statement: Statement,
    names: Names,
    certainty: Certainty,
    subject: str | None = None,
    timepoint_inline: bool = True,
    comparator_apart: bool = False,
) -> str:
    """The statement sentence: verb from certainty, size word from the category.

    ``timepoint_inline=False`` says the timepoint in its own short sentence first ("This is
    five years later."), and ``comparator_apart=True`` the comparator after it ("This is
    compared with usual care."), for names that would make the statement too long or hard to read.
    ``subject`` replaces the outcome phrase (responders: "how many people have much less back
    pain"); the effect verb is then "increases"/"reduces".
    """
    kind = "higher_better" if statement.higher_is_better else "higher_worse"
    if subject is not None:
        kind = "higher_worse"
    object_ = subject if subject is not None else names.outcome
    if statement.direction in ("little_or_no_difference", "uncertain"):
        verb = _NO_DIFFERENCE
        size = ""
    else:
        verb = _VERBS[(kind, statement.direction)]
        size = SIZE_WORDS.get(statement.size, "")
    when = f"{names.timepoint}, " if names.timepoint and timepoint_inline else ""
    lead = "" if timepoint_inline or not names.timepoint else f"This is {names.timepoint}. "
    if certainty.level == "very_low" or statement.direction == "uncertain":
        # no size word: at very low certainty the size is as unsure as the direction
        phrase = (
            f"changes {object_}" if statement.direction == "uncertain" else f"{verb[0]} {object_}"
        )
        body = f"{when}we are uncertain whether {names.treatment} {phrase}"
    else:
        hedge = _HEDGE[certainty.level]
        verb_form = verb[0] if certainty.level in ("high", "moderate") else verb[1]
        body = f"{when}{names.treatment} {hedge}{verb_form} {object_} {size}".rstrip()
    if comparator_apart:
        body += f". This is compared with {names.control}."
    else:
        body += f" compared with {names.control}."
    return lead.capitalize() + capitalise(" ".join(body.split()))


def render_range(
    estimate: float, ci_low: float, ci_high: float, scale_max: float, unit: str = "points"
) -> tuple[str, list[str]]:
    """The number sentences of a difference on a scale, and the numbers they show.

    "Scores were about 4 points higher on a 0 to 100 scale. The likely range is 3 to 5 points
    higher." When the interval includes no difference, its ends are named by side: "The likely
    range is 1 point lower to 3 points higher".
    """
    digits = digits_for(scale_max)

    def units(number: str) -> str:
        return f"{number} {unit[:-1] if number == '1' and unit.endswith('s') else unit}"

    top = format_number(scale_max, 0)
    shown_estimate = format_number(estimate, digits)
    if float(shown_estimate) == 0:
        first = f"Scores were about the same on a 0 to {top} scale."
    else:
        side = "higher" if estimate > 0 else "lower"
        first = f"Scores were about {units(shown_estimate)} {side} on a 0 to {top} scale."
    low, high = format_number(ci_low, digits), format_number(ci_high, digits)

    # a bound that rounds to 0 is said as 0 on the other bound's side ("0 to 5 points higher")
    if float(low) == 0 and ci_high > 0:
        ci_low = 0.0
    elif float(high) == 0 and ci_low < 0:
        ci_high = 0.0
    if ci_low >= 0 < ci_high or ci_high <= 0 > ci_low:
        side = "higher" if ci_high > 0 else "lower"
        near, far = (low, high) if ci_high > 0 else (high, low)
        second = f"The likely range is {near} to {units(far)} {side}."
    else:
        second = f"The likely range is {units(low)} lower to {units(high)} higher."
    return f"{first} {second}", [shown_estimate, top, low, high]


def render_ratio_range(
    ratio: float, ci_low: float, ci_high: float, mean_treated: float, mean_control: float
) -> tuple[str, list[str]]:
    """Number sentences of a rate ratio: the two averages and the percent change with its range."""
    treated, control = format_number(mean_treated, 1), format_number(mean_control, 1)
    first = f"People had about {treated} vs {control} sessions on average."

    def percent(value: float) -> str:
        return format_number((value - 1) * 100, 0)

    if ci_high < 1 or ci_low > 1:
        side = "fewer" if ratio < 1 else "more"
        near, far = (ci_high, ci_low) if ratio < 1 else (ci_low, ci_high)
        second = (
            f"That is about {percent(ratio)}% {side}. The likely range is {percent(near)}% to "
            f"{percent(far)}% {side}."
        )
        shown = [treated, control, percent(ratio), percent(near), percent(far)]
    else:
        second = f"The likely range is {percent(ci_low)}% fewer to {percent(ci_high)}% more."
        shown = [treated, control, percent(ci_low), percent(ci_high)]
    return f"{first} {second}", shown


def render_responder_range(
    risk_treated: float, risk_control: float, ci_low: float, ci_high: float
) -> tuple[str, list[str]]:
    """Number sentences of a responder comparison: x in 100 people in each arm, and the
    absolute difference with its range (all per 100 people, rounded half away from zero)."""
    treated = format_number(risk_treated * 100, 0)
    control = format_number(risk_control * 100, 0)
    first = f"About {treated} in 100 people did, vs {control} in 100."
    low, high = format_number(ci_low * 100, 0), format_number(ci_high * 100, 0)
    if ci_low > 0 or ci_high < 0:
        side = "more" if ci_low > 0 else "fewer"
        near, far = (low, high) if ci_low > 0 else (high, low)
        second = f"The likely range is {near} to {far} {side} in 100."
    else:
        second = f"The likely range is {low} fewer to {high} more in 100."
    return f"{first} {second}", [treated, control, low, high, "100"]
