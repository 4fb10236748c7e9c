"""Compare each draft sentence with the claim it cites, or flag uncited evidence language."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from pipeline.check.claims import CERTAINTY_ORDER, SIZE_ORDER, Claim, size_of
from pipeline.check.draft import DraftSentence
from pipeline.summarise import lint

# Defaults, used only when the registry has no effect_sizes / certainty verbs (one place).
DEFAULT_SIZE_WORDS: Mapping[str, tuple[str, ...]] = {
    "trivial": ("makes little or no difference", "little or no difference"),
    "small": ("slightly",),
    "moderate": (),
    "large": ("a lot", "greatly"),
}
DEFAULT_CERTAINTY_VERBS: Mapping[str, str] = {
    "high": "improves/reduces",
    "moderate": "probably improves",
    "low": "may improve",
    "very_low": "We are uncertain whether ...",
}
SEVERITIES = ("error", "warning")


@dataclass(frozen=True)
class Finding:
    """One problem in a draft.

    Attributes
    ----------
    line : int
        1-based line of the draft the sentence starts on (0 for the whole draft).
    sentence : str
        The sentence as checked.
    rule : str
        Rule code: ``certainty``, ``direction``, ``size``, ``number``, ``intervention``,
        ``comparator``, ``outcome``, ``condition``, ``demonstration_data``, ``unknown_claim``,
        ``stale_claim``, an ``evidence_language`` rule (uncited sentences), ``jargon``.
    severity : str
        ``error`` (exit 1) or ``warning``.
    message : str
        What is wrong.
    claim_id : str
        The cited claim (``""`` for an uncited sentence).
    evidence : str
        What the evidence says instead (the claim's certainty, direction, size, numbers).
    suggestion : str
        The sentence to use instead (the claim's current sentence with its id), or ``""``.
    closest_claims : tuple of str
        For uncited sentences: the ids of the closest claims (intervention, outcome, condition).
    """

    line: int
    sentence: str
    rule: str
    severity: str
    message: str
    claim_id: str = ""
    evidence: str = ""
    suggestion: str = ""
    closest_claims: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The finding as the JSON report writes it (stable keys)."""
        return {
            "line": self.line,
            "sentence": self.sentence,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "claim_id": self.claim_id,
            "evidence": self.evidence,
            "suggestion": self.suggestion,
            "closest_claims": list(self.closest_claims),
        }


@dataclass(frozen=True)
class EvidencePattern:
    """An ``evidence_language`` row of the registry."""

    rule: str
    severity: str
    pattern: re.Pattern[str]
    message: str
    flag_examples: tuple[str, ...]
    pass_examples: tuple[str, ...]


@dataclass(frozen=True)
class CheckRules:
    """What the checker reads from the plain-language registry."""

    evidence_language: tuple[EvidencePattern, ...]
    size_words: Mapping[str, tuple[str, ...]]
    certainty_verbs: Mapping[str, str]


@cache
def load_check_rules() -> CheckRules:
    """The checker's rules from ``pipeline/registry/plain_language.yaml`` (read once)."""
    text = resources.files("pipeline.registry").joinpath(lint.RULES_FILE).read_text("utf-8")
    return parse_check_rules(yaml.safe_load(text))


def parse_check_rules(raw: Mapping[str, Any]) -> CheckRules:
    """Check and compile the registry's ``evidence_language``, size words and certainty verbs.

    Size words: ``effect_sizes`` (written by the summarise stage: size -> word or list, or a
    mapping with ``words``) when present, merged with ``check_size_words``; else the defaults.

    Raises
    ------
    ValueError
        Naming the registry key that is wrong.
    """
    rows = raw.get("evidence_language")
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{lint.RULES_FILE}: evidence_language must be a non-empty list")
    patterns = []
    for position, row in enumerate(rows):
        where = f"{lint.RULES_FILE}: evidence_language[{position}]"
        if not isinstance(row, dict) or not {"rule", "pattern", "message"} <= set(row):
            raise ValueError(f"{where} needs rule, pattern, message")
        severity = row.get("severity", "error")
        if severity not in SEVERITIES:
            raise ValueError(f"{where}: severity must be error or warning")
        try:
            compiled = re.compile(str(row["pattern"]), re.IGNORECASE)
        except re.error as error:
            raise ValueError(f"{where}: invalid regex ({error})") from None
        examples = row.get("examples") or {}
        patterns.append(
            EvidencePattern(
                str(row["rule"]),
                severity,
                compiled,
                str(row["message"]),
                tuple(examples.get("flag") or ()),
                tuple(examples.get("pass") or ()),
            )
        )
    sizes: dict[str, list[str]] = {size: list(DEFAULT_SIZE_WORDS[size]) for size in SIZE_ORDER}
    for key in ("effect_sizes", "check_size_words"):
        section = raw.get(key)
        if not isinstance(section, dict):
            continue
        for size, words in section.items():
            if size not in sizes:
                continue
            if isinstance(words, dict):
                words = words.get("words", words.get("wording", []))
            words = [words] if isinstance(words, str) else list(words or [])
            sizes[size].extend(str(word).lower() for word in words if str(word).strip())
    verbs = dict(DEFAULT_CERTAINTY_VERBS)
    for grade, spec in (raw.get("certainty_wording") or {}).items():
        if isinstance(spec, dict) and isinstance(spec.get("wording"), str):
            verbs[grade] = spec["wording"]
    return CheckRules(
        tuple(patterns),
        {size: tuple(dict.fromkeys(words)) for size, words in sizes.items()},
        verbs,
    )


# ---------------------------------------------------------------------------------------------
# What a sentence says


def certainty_of(text: str) -> str:
    """The certainty a sentence's wording claims: very_low, low, moderate or high."""
    if re.search(r"\b(?:we are uncertain|uncertain whether|unclear whether)\b", text, re.I):
        return "very_low"
    if re.search(r"\b(?:may|might|could)\b", text, re.I):
        return "low"
    if re.search(r"\bprobably\b", text, re.I):
        return "moderate"
    return "high"


_BENEFIT = r"\b(?:improves?|improved|eases?|relieves?|helps?|better)\b"
_HARM = r"\b(?:worsens?|worsened|harms?|worse)\b"
_NO_DIFF = (
    r"\b(?:little or no difference|no (?:significant |clear )?(?:effect|difference|change)|"
    r"(?:does|do) not (?:work|help))\b"
)


def direction_in(text: str, claim: Claim) -> str:
    """The direction a sentence states about a claim's outcome ("" when none is stated)."""
    if re.search(_NO_DIFF, text, re.I):
        return "little_or_no_difference"
    units = str(claim.numbers.get("units", ""))
    responders = "how many people" in claim.sentence.lower()
    lower_better = ("lower = better" in units or "ratio" in units) and not responders
    if re.search(_HARM, text, re.I):
        return "harm"
    if re.search(r"\bhow many people (?:improve|get better)\b", text, re.I):
        if re.search(r"\b(?:increases?|raises?|more)\b", text, re.I):
            return "benefit"
        if re.search(r"\b(?:reduces?|decreases?|lowers?|fewer)\b", text, re.I):
            return "harm"
    if re.search(r"\b(?:reduces?|decreases?|lowers?|shortens?|fewer|less)\b", text, re.I):
        return "benefit" if lower_better else "harm"
    if re.search(r"\b(?:increases?|raises?|lengthens?|more)\b", text, re.I):
        return "harm" if lower_better else "benefit"
    if re.search(_BENEFIT, text, re.I):
        return "benefit"
    return ""


def _allowed_numbers(claim: Claim) -> list[float]:
    """Every number a sentence citing the claim may show (before rounding)."""
    values: list[float] = [float(n) for n in claim.shown_numbers]
    numbers = claim.numbers
    for key in ("estimate", "ci_low", "ci_high"):
        value = numbers.get(key)
        if isinstance(value, int | float):
            values.append(abs(float(value)))
    for key in ("risk_treated", "risk_control"):
        value = numbers.get(key)
        if isinstance(value, int | float):
            values.extend([float(value) * 10, float(value) * 100])
    for key in ("n_treated", "n_control", "mcid"):
        value = numbers.get(key)
        if isinstance(value, int | float):
            values.append(float(value))
    values.extend(float(n) for n in re.findall(r"\d+", str(numbers.get("units", ""))))
    values.extend(float(n) for n in shown_numbers_in(" ".join(claim.names.values())))
    return values


def shown_numbers_in(text: str) -> list[str]:
    """Number strings a sentence shows (claim ids removed first)."""
    return re.findall(r"(?<![\w.@-])\d+(?:\.\d+)?(?![\w])", text)


def number_matches(written: str, allowed: Sequence[float]) -> bool:
    """Whether a written number is one of the allowed values after rounding to its decimals."""
    decimals = len(written.split(".")[1]) if "." in written else 0
    value = float(written)
    return any(abs(round(a, decimals) - value) < 1e-9 for a in allowed)


def _words(name: str) -> list[str]:
    stop = {"a", "an", "the", "with", "or", "and", "of", "in", "to", "people", "without"}
    return [w for w in re.findall(r"[a-z0-9]+", name.lower()) if w not in stop and len(w) > 1]


def _mentions(text: str, name: str) -> bool:
    """Whether every content word of a name appears in the text (plural or not)."""
    lowered = text.lower()
    return all(re.search(rf"\b{re.escape(w)}", lowered) for w in _words(name))


# ---------------------------------------------------------------------------------------------
# The checks


def _evidence(claim: Claim) -> str:
    n = claim.numbers
    rng = ""
    if isinstance(n.get("estimate"), int | float):
        rng = f"; estimate {n['estimate']:.3g}"
        if isinstance(n.get("ci_low"), int | float) and isinstance(n.get("ci_high"), int | float):
            rng += f" ({n['ci_low']:.3g} to {n['ci_high']:.3g})"
        if n.get("units"):
            rng += f" {n['units']}"
    flag = "; demonstration data" if claim.synthetic else ""
    size = claim.size or "not stated"
    return (
        f"{claim.certainty.replace('_', ' ')} certainty, direction {claim.direction}, "
        f"size {size}{rng}{flag}"
    )


def check_cited(
    sentence: DraftSentence, cited: str, claim: Claim, rules: CheckRules
) -> list[Finding]:
    """Compare one sentence with the claim it cites (see :func:`check_draft`)."""
    text = sentence.text
    suggestion = f"{claim.sentence} [{claim.claim_id}@{claim.sentence_sha256[:8]}]"
    found: list[Finding] = []

    def add(rule: str, message: str, severity: str = "error") -> None:
        found.append(
            Finding(
                sentence.line,
                text,
                rule,
                severity,
                message,
                claim.claim_id,
                _evidence(claim),
                suggestion,
            )
        )

    if "@" in cited:
        version = cited.split("@", 1)[1].lower()
        if not claim.sentence_sha256.startswith(version):
            add(
                "stale_claim",
                f"claim {claim.claim_id} changed since version {version}: "
                f"its sentence is now: {claim.sentence}",
            )
    said = certainty_of(text)
    if CERTAINTY_ORDER.index(said) > CERTAINTY_ORDER.index(claim.certainty):
        add(
            "certainty",
            f"wording claims {said.replace('_', ' ')} certainty, the claim has "
            f"{claim.certainty.replace('_', ' ')}: use "
            f"{rules.certainty_verbs.get(claim.certainty, claim.certainty)}",
        )
    direction = direction_in(text, claim)
    # the claim's own sentence read the same way: a draft that words it as the claim does passes
    own = direction_in(claim.sentence, claim)
    if direction and direction not in {claim.direction, own} and claim.direction != "uncertain":
        add(
            "direction",
            f"says {direction.replace('_', ' ')}, the claim says {claim.direction.replace('_', ' ')}",
        )
    elif direction == "little_or_no_difference" and claim.direction == "uncertain":
        add("direction", "an uncertain result read as no difference: the claim is uncertain")
    size = size_of(text, rules.size_words)
    if size and size == size_of(claim.sentence, rules.size_words):
        size = ""  # the claim's own words ("how many people have much less pain")
    if size and claim.size and SIZE_ORDER.index(size) > SIZE_ORDER.index(claim.size):
        add("size", f"size word says {size}, the claim's size is {claim.size}")
    elif size and not claim.size and size == "large":
        add("size", "size word says large, the claim states no size")
    allowed = _allowed_numbers(claim)
    bad = [n for n in shown_numbers_in(text) if not number_matches(n, allowed)]
    if bad:
        add(
            "number",
            f"number(s) {', '.join(bad)} not in the claim (shows {', '.join(claim.shown_numbers) or 'none'})",
        )
    names = claim.names
    for key in ("intervention", "outcome"):
        if names.get(key) and not _mentions(text, names[key]):
            add(key, f'the {key} of the claim is "{names[key]}"; the sentence does not name it')
    comparator = names.get("comparator", "")
    stated = re.search(r"\b(?:compared (?:with|to)|than|versus|vs\.?)\s+([^(.,;]+)", text, re.I)
    if comparator and stated and not _mentions(stated.group(1), comparator):
        add(
            "comparator",
            f'compared with "{stated.group(1).strip()}", the claim compares with "{comparator}"',
        )
    elif comparator and not _mentions(text, comparator):
        add("comparator", f'the claim compares with "{comparator}"; the sentence does not say so')
    condition = names.get("condition", "")
    if condition and _mentions(claim.sentence, condition) and not _mentions(text, condition):
        add("condition", f'the claim is only about people "{condition}"')
    elif not re.search(r"\bpeople with(?:out)?\b", claim.sentence, re.I) and re.search(
        r"\bin people with(?:out)?\b", text, re.I
    ):
        add("condition", "the claim is about everyone in the study, not a subgroup")
    if claim.synthetic and "demonstration data" not in text.lower():
        add(
            "demonstration_data",
            'the claim comes from demonstration data: keep "Demonstration data:"',
        )
    return found


def closest_claims(text: str, claims: Mapping[str, Claim], limit: int = 3) -> tuple[str, ...]:
    """Ids of the claims whose intervention, outcome and condition words the text shares most."""
    words = set(re.findall(r"[a-z0-9]+", text.lower()))
    scored = []
    for claim in claims.values():
        score = sum(
            len(set(_words(claim.names.get(key, ""))) & words) * weight
            for key, weight in (("intervention", 3), ("outcome", 2), ("condition", 1))
        )
        if score:
            scored.append((-score, claim.claim_id))
    return tuple(claim_id for _, claim_id in sorted(scored)[:limit])


def _quote(found: str) -> str:
    """The matched words, shortened to the last few when a pattern matched a long stretch."""
    words = found.split()
    return " ".join(words) if len(words) <= 6 else "… " + " ".join(words[-3:])


def check_uncited(
    sentence: DraftSentence, claims: Mapping[str, Claim], rules: CheckRules
) -> list[Finding]:
    """Evidence-like language in a sentence that cites no claim: one finding per rule."""
    hits = [p for p in rules.evidence_language if p.pattern.search(sentence.text)]
    if not hits:
        return []
    closest = closest_claims(sentence.text, claims)
    offer = f"closest claims: {', '.join(closest)}" if closest else "no claim matches this sentence"
    return [
        Finding(
            sentence.line,
            sentence.text,
            p.rule,
            p.severity,
            f"uncited evidence claim ({_quote(p.pattern.search(sentence.text).group(0))!r}): "
            f"{p.message}",
            "",
            offer,
            claims[closest[0]].sentence + f" [{closest[0]}]" if closest else "",
            closest,
        )
        for p in hits
    ]


def _merge_two_sentence_claims(
    sentences: Sequence[DraftSentence], claims: Mapping[str, Claim]
) -> list[DraftSentence]:
    """Join an uncited sentence to the next one when that cites a two-sentence claim.

    A claim may be two sentences (the second carries the range); its id follows the second.
    """
    merged: list[DraftSentence] = []
    for sentence in sentences:
        cited = [claims.get(c.split("@")[0]) for c in sentence.claim_ids]
        parts = max(
            (len(lint.split_sentences(c.sentence)) for c in cited if c is not None), default=1
        )
        # a claim of n sentences (statement, lead and range sentences) closes with its id:
        # join up to n - 1 uncited sentences before it
        for _ in range(parts - 1):
            if not merged or merged[-1].claim_ids:
                break
            previous = merged.pop()
            sentence = DraftSentence(
                previous.line, f"{previous.text} {sentence.text}", sentence.claim_ids
            )
        merged.append(sentence)
    return merged


def check_draft(
    sentences: Sequence[DraftSentence],
    claims: Mapping[str, Claim],
    rules: CheckRules | None = None,
) -> list[Finding]:
    """Check every sentence of a draft against the claims.

    Parameters
    ----------
    sentences : sequence of DraftSentence
        From :func:`pipeline.check.draft.split_draft`.
    claims : mapping of str to Claim
        From :func:`pipeline.check.claims.load_claims`.
    rules : CheckRules, optional
        Default: the registry.

    Returns
    -------
    list of Finding
        In draft order. A cited sentence is compared with each claim it cites: certainty
        (never stronger), direction, size word (never stronger), numbers (each must equal a
        shown number, the estimate, the interval, a risk, a count or the scale after rounding
        to the decimals written), intervention, comparator, outcome, condition, the
        demonstration-data flag, the version (stale claims); an unknown id is an error. An
        uncited sentence is matched against the registry's ``evidence_language`` patterns.
        Every sentence is checked for jargon (warning).
    """
    rules = rules or load_check_rules()
    findings: list[Finding] = []
    for sentence in _merge_two_sentence_claims(sentences, claims):
        if sentence.claim_ids:
            for cited in sentence.claim_ids:
                claim_id = cited.split("@")[0]
                claim = claims.get(claim_id)
                if claim is None:
                    near = closest_claims(sentence.text, claims)
                    findings.append(
                        Finding(
                            sentence.line,
                            sentence.text,
                            "unknown_claim",
                            "error",
                            f"no claim {claim_id} in any reports/**/claims.json",
                            claim_id,
                            f"closest claims: {', '.join(near)}" if near else "",
                            claims[near[0]].sentence + f" [{near[0]}]" if near else "",
                            near,
                        )
                    )
                    continue
                findings.extend(check_cited(sentence, cited, claim, rules))
            rec = [p for p in rules.evidence_language if p.rule == "recommendation"]
            for p in rec:
                if p.pattern.search(sentence.text):
                    findings.append(
                        Finding(sentence.line, sentence.text, p.rule, p.severity, p.message)
                    )
        else:
            findings.extend(check_uncited(sentence, claims, rules))
        for issue in lint.check_jargon(sentence.text):
            findings.append(
                Finding(sentence.line, sentence.text, "jargon", "warning", issue.message)
            )
    return findings
