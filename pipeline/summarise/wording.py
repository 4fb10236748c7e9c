"""Plain-language sentences from estimates, by rule (no free-text generation).

The sentence of an estimate is fixed by four things:

Sentences stay under 25 words: the numbers in brackets give the point estimate only; the
interval is in the claim's numbers and the report's tables.

* **direction**: benefit or harm in the outcome's good direction (function up; pain,
  fear-avoidance and sessions down);
* **size against the MCID**: "noticeably" (at least the MCID: a change most people notice),
  "a little" (half to one MCID), "slightly" (less than half);
* **where the interval lies**: within +/- MCID of no difference ("makes little or no
  difference"); excluding no difference (a direction can be stated); otherwise the result is
  too imprecise to state a direction and the sentence says we are uncertain;
* **certainty** (:mod:`pipeline.summarise.certainty`) picks the verb form: high "reduces",
  moderate "probably reduces", low "may reduce", very low "We are uncertain whether ...".

A wide interval never becomes "no effect". Numbers are given in the outcome's own points on
its scale ("about 4 points on a 0 to 100 scale") and proportions as "about 3 in 10 people".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.summarise.certainty import Certainty

# Effect verbs: (third person, base form) for benefit and harm, by kind of outcome.
_VERBS = {
    "higher_better": {"benefit": ("improves", "improve"), "harm": ("worsens", "worsen")},
    "higher_worse": {"benefit": ("reduces", "reduce"), "harm": ("increases", "increase")},
}
_NO_DIFFERENCE = ("makes little or no difference to", "make little or no difference to")
_HEDGE = {"high": "", "moderate": "probably ", "low": "may "}


@dataclass(frozen=True)
class Names:
    """Plain names of the arms and outcomes of a study."""

    treatment: str
    control: str
    outcome: str
    scale_max: float  # top of the outcome's scale: "out of 100"
    unit: str = "points"


@dataclass(frozen=True)
class Numbers:
    """The numbers a sentence rests on (on the outcome's canonical scale)."""

    estimate: float
    ci_low: float
    ci_high: float
    mcid: float | None
    higher_is_better: bool
    ratio: bool = False  # rate ratios: 1 = no difference


def direction(numbers: Numbers) -> str:
    """``benefit`` or ``harm`` of the point estimate."""
    null = 1.0 if numbers.ratio else 0.0
    up = numbers.estimate > null
    return "benefit" if up == numbers.higher_is_better else "harm"


def interval_case(numbers: Numbers) -> str:
    """``excludes_null``, ``within_mcid`` or ``imprecise`` (fits no difference and an important effect)."""
    null = 1.0 if numbers.ratio else 0.0
    if numbers.ci_low > null or numbers.ci_high < null:
        return "excludes_null"
    if (
        numbers.mcid is not None
        and numbers.ci_low > null - numbers.mcid
        and numbers.ci_high < null + numbers.mcid
    ):
        return "within_mcid"
    return "imprecise"


def size_words(numbers: Numbers) -> str:
    """How big the point estimate is against the MCID, in words ("" when no MCID is known)."""
    if numbers.mcid is None or numbers.ratio:
        return ""
    ratio = abs(numbers.estimate) / numbers.mcid
    if ratio >= 1:
        return "noticeably"
    if ratio >= 0.5:
        return "a little"
    return "slightly"


def points(value: float) -> str:
    """A number of points as people say it: whole numbers from 2 up, one decimal below."""
    value = abs(value)
    if value >= 2:
        return f"{value:.0f}"
    if value < 0.05:
        return "less than 0.1"
    return f"{value:.1f}"


def render_effect(
    numbers: Numbers,
    names: Names,
    certainty: Certainty,
    detail: str | None = None,
    prefix: str = "",
    max_words: int = 25,
) -> str:
    """The claim sentence of a difference between two arms (at most ``max_words`` words).

    The verb form always matches ``certainty.level``; when the interval is too wide to state
    a direction, the caller must pass a very-low certainty (see
    :func:`pipeline.summarise.claims.build_claims`). When the full sentence is too long, the
    size word, then the scale in the brackets, are dropped (the claim's numbers keep them).
    """
    case = interval_case(numbers)
    kind = "higher_better" if numbers.higher_is_better else "higher_worse"
    verb = _NO_DIFFERENCE if case == "within_mcid" else _VERBS[kind][direction(numbers)]
    size = size_words(numbers) if case == "excludes_null" else ""
    details = [detail] if detail else [_detail(numbers, names), _detail(numbers, names, short=True)]
    variants = [(size, d) for d in details] + [("", d) for d in details]
    for size_word, detail_text in variants:
        sentence = _effect_sentence(case, verb, size_word, detail_text, names, certainty, prefix)
        if word_count(sentence) <= max_words:
            return sentence
    return sentence


def _effect_sentence(
    case: str,
    verb: tuple[str, str],
    size: str,
    detail: str,
    names: Names,
    certainty: Certainty,
    prefix: str,
) -> str:
    object_ = f"{names.outcome} {size}".strip()
    if certainty.level == "very_low":
        phrase = f"changes {names.outcome}" if case == "within_mcid" else f"{verb[0]} {object_}"
        body = f"we are uncertain whether {names.treatment} {phrase} compared with {names.control} ({detail})."
    else:
        hedge = _HEDGE[certainty.level]
        verb_form = verb[0] if certainty.level in ("high", "moderate") else verb[1]
        body = f"{names.treatment} {hedge}{verb_form} {object_} compared with {names.control} ({detail})."
    return capitalise(prefix + body)


def word_count(sentence: str) -> int:
    """Words as the linter counts them: tokens with a letter or digit."""
    return sum(1 for token in sentence.split() if any(ch.isalnum() for ch in token))


def capitalise(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def render_responders(
    risk_treated: float,
    risk_control: float,
    events: tuple[int, int],
    names: Names,
    certainty: Certainty,
    case: str,
    min_cell: int = 5,
    prefix: str = "",
) -> str:
    """The claim sentence of a responder comparison ("... compared with usual care (6 vs 4 in 10)")."""
    if min(events) < min_cell:
        counts = "too few people improved to give numbers"
    else:
        counts = f"{_tenths(risk_treated)} vs {_tenths(risk_control)} in 10"
    more = "increases" if risk_treated >= risk_control else "decreases"
    uncertain = certainty.level == "very_low" or case != "excludes_null"
    if uncertain:
        opening = f"{prefix}we are uncertain whether {names.treatment} changes"
    else:
        verb = {"high": more, "moderate": f"probably {more}", "low": f"may {more[:-1]}"}[
            certainty.level
        ]
        opening = f"{prefix}{names.treatment} {verb}"
    subject = f"how many people improve {names.outcome} noticeably"
    # One form only: a shorter one would leave it unclear which count belongs to which arm.
    # A sentence over the limit fails the plain-language lint, which stops `dvc repro`.
    return capitalise(f"{opening} {subject}, compared with {names.control} ({counts}).")


def _tenths(risk: float) -> str:
    tenths = int(np.floor(risk * 10 + 0.5))
    return "less than 1" if tenths == 0 else str(tenths)


def _detail(numbers: Numbers, names: Names, short: bool = False) -> str:
    """The number in brackets: the estimate in points out of the scale's top.

    The likely range (the confidence interval) stays out of the sentence to keep it short; the
    certainty wording carries the uncertainty and the claim's numbers hold the interval.
    """
    amount = points(numbers.estimate)
    amount = amount if amount.startswith("less") else f"about {amount}"
    if short:
        return f"{amount} {names.unit}"
    return f"{amount} {names.unit} out of {names.scale_max:g}"
