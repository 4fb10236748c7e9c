"""Lint patient-facing text against the plain-language rules.

The rules are data (``pipeline/registry/plain_language.yaml``): the mandatory wording of each
GRADE certainty level, jargon with its plain alternatives, recommendation and absolute-claim
patterns, and the limits on sentence length and reading grade. This module loads them into a
frozen :class:`PlainLanguageRules` record and applies them sentence by sentence; every problem
comes back as a :class:`LintIssue` that says what is wrong and how to fix it.

Writers can lint their own drafts::

    python -m pipeline.summarise.lint reports/etmi-reference/summary.md
    python -m pipeline.summarise.lint --certainties claims.yaml summary.md

which prints one line per issue (``FILE: rule: message``) and exits with 1 when there is any
issue, 0 when there is none and 2 when a file cannot be read.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pyphen
import textstat
import yaml

RULES_FILE = "plain_language.yaml"
GRADES: tuple[str, ...] = ("high", "moderate", "low", "very_low")
# "[C-id]" or "[C-id@1a2b3c4d]": the suffix records the version (sha256 prefix) a draft copied
CLAIM_ID = re.compile(r"\[(C-[A-Za-z0-9-]+(?:@[0-9a-fA-F]{8})?)\]")

# A claim id written after the full stop belongs to the sentence before it.
_ID_AFTER_STOP = re.compile(r"([.!?]+[\"'”’)]*)((?:\s*\[C-[A-Za-z0-9-]+(?:@[0-9a-fA-F]{8})?\])+)")
_CLAIM_ID_WITH_SPACE = re.compile(r"\s*\[C-[A-Za-z0-9-]+(?:@[0-9a-fA-F]{8})?\]")
_STOP = re.compile(r"[.!?]+[\"'”’)]*(?=\s)")
_TERMINAL = re.compile(r"[.!?]+[\"'”’)]*$")
_INITIALISM = re.compile(r"^(?:[a-z]\.){2,}$")
_HEADING = re.compile(r"^#{1,6}(?:\s+|$)(.*?)(?:\s+#+)?$")
_BULLET = re.compile(r"^(?:[-*+]|\d{1,3}[.)])\s+(?:\[[ xX]\]\s+)?")
_QUOTE = re.compile(r"^(?:>\s?)+")
_RULE_LINE = re.compile(r"^(?:(?:\*\s*){3,}|(?:-\s*){3,}|(?:_\s*){3,})$")
_TABLE_DIVIDER = re.compile(r"^\|?[\s:|-]+\|?$")
_INLINE = (
    (re.compile(r"<!--.*?-->", re.DOTALL), " "),
    (re.compile(r"<br\s*/?>", re.IGNORECASE), " "),
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\*\*|__|`"), ""),
    (re.compile(r"(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<!\w)_(?=\S)([^_]+?)(?<=\S)_(?!\w)"), r"\1"),
)
_GLOSS_OPENING = r"\s*(?:\(|[—–]|--|-(?=\s))\s*(?:(?:a|an|the)\s+)?"


@dataclass(frozen=True)
class LintIssue:
    """One problem in patient-facing text.

    Attributes
    ----------
    rule : str
        Short code of the broken rule: ``certainty_wording``, ``jargon``, ``recommendation``,
        ``absolute_claim``, ``sentence_length`` or ``reading_grade``.
    sentence : str
        The offending sentence as checked (Markdown and claim ids stripped), or ``""`` for a
        rule about the whole text (``reading_grade``).
    message : str
        What is wrong and how to fix it, e.g. ``sentence has 31 words (limit 25): split it``.
    """

    rule: str
    sentence: str
    message: str


@dataclass(frozen=True)
class CertaintyWording:
    """The mandatory wording of one certainty grade: all ``required`` match, no ``forbidden``."""

    grade: str
    wording: str
    required: tuple[re.Pattern[str], ...]
    forbidden: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class JargonTerm:
    """A jargon term, its plain alternatives and the patterns that find it and its gloss."""

    term: str
    alternatives: tuple[str, ...]
    pattern: re.Pattern[str]
    gloss: re.Pattern[str]


@dataclass(frozen=True)
class PlainLanguageRules:
    """The plain-language registry, checked and compiled."""

    certainty_wording: Mapping[str, CertaintyWording]
    jargon: tuple[JargonTerm, ...]
    recommendations: tuple[re.Pattern[str], ...]
    absolute_claims: tuple[re.Pattern[str], ...]
    abbreviations: frozenset[str]
    max_sentence_words: int
    max_grade: float


# ---------------------------------------------------------------------------------------------
# The registry


@cache
def load_rules() -> PlainLanguageRules:
    """The plain-language rules shipped in ``pipeline/registry/plain_language.yaml``.

    Returns
    -------
    PlainLanguageRules
        The registry, checked and with every regex compiled (read once, then cached).

    Raises
    ------
    ValueError
        When the registry is malformed; the message names the key to fix.
    """
    text = resources.files("pipeline.registry").joinpath(RULES_FILE).read_text("utf-8")
    return parse_rules(yaml.safe_load(text))


def parse_rules(raw: Any) -> PlainLanguageRules:
    """Check and compile the plain-language registry as read from YAML.

    Parameters
    ----------
    raw : Any
        The parsed YAML document: a mapping with ``certainty_wording``, ``jargon``,
        ``recommendations``, ``absolute_claims``, ``abbreviations`` and ``limits``.

    Returns
    -------
    PlainLanguageRules
        The rules with every regex compiled case-insensitively.

    Raises
    ------
    ValueError
        Naming the key that is missing or wrong and what to write there.
    """
    keys = (
        "certainty_wording",
        "jargon",
        "recommendations",
        "absolute_claims",
        "abbreviations",
        "limits",
    )
    if not isinstance(raw, dict):
        raise ValueError(f"{RULES_FILE}: expected a mapping with keys {', '.join(keys)}")
    missing = [key for key in keys if key not in raw]
    if missing:
        raise ValueError(f"{RULES_FILE}: missing key(s) {', '.join(missing)}: add them")
    wording_raw = raw["certainty_wording"]
    if not isinstance(wording_raw, dict) or set(wording_raw) != set(GRADES):
        found = ", ".join(map(str, wording_raw)) if isinstance(wording_raw, dict) else "none"
        raise ValueError(
            f"{RULES_FILE}: certainty_wording must have exactly the grades "
            f"{', '.join(GRADES)} (found: {found})"
        )
    certainty = {grade: _certainty_wording(grade, wording_raw[grade]) for grade in GRADES}
    jargon_raw = raw["jargon"]
    if not isinstance(jargon_raw, dict) or not jargon_raw:
        raise ValueError(f"{RULES_FILE}: jargon must map each term to its plain alternative")
    if not isinstance(raw["abbreviations"], list):
        raise ValueError(f"{RULES_FILE}: abbreviations must be a list such as [vs., approx.]")
    limits = raw["limits"]
    if not isinstance(limits, dict):
        raise ValueError(f"{RULES_FILE}: limits must map max_sentence_words and max_grade")
    max_words = limits.get("max_sentence_words")
    max_grade = limits.get("max_grade")
    if not isinstance(max_words, int) or isinstance(max_words, bool) or max_words < 1:
        raise ValueError(f"{RULES_FILE}: limits.max_sentence_words must be a positive integer")
    if not isinstance(max_grade, int | float) or isinstance(max_grade, bool) or max_grade <= 0:
        raise ValueError(f"{RULES_FILE}: limits.max_grade must be a positive number")
    return PlainLanguageRules(
        certainty_wording=MappingProxyType(certainty),
        jargon=tuple(_jargon_term(str(term), alt) for term, alt in jargon_raw.items()),
        recommendations=_patterns("recommendations", raw["recommendations"]),
        absolute_claims=_patterns("absolute_claims", raw["absolute_claims"]),
        abbreviations=frozenset(str(token).lower() for token in raw["abbreviations"]),
        max_sentence_words=max_words,
        max_grade=float(max_grade),
    )


def _certainty_wording(grade: str, spec: Any) -> CertaintyWording:
    """One grade's wording from its registry entry."""
    if not isinstance(spec, dict) or not isinstance(spec.get("wording"), str):
        raise ValueError(
            f"{RULES_FILE}: certainty_wording.{grade} needs wording, required and forbidden"
        )
    return CertaintyWording(
        grade=grade,
        wording=spec["wording"],
        required=_patterns(f"certainty_wording.{grade}.required", spec.get("required")),
        forbidden=_patterns(f"certainty_wording.{grade}.forbidden", spec.get("forbidden")),
    )


def _patterns(key: str, values: Any) -> tuple[re.Pattern[str], ...]:
    """Compile a list of registry regexes case-insensitively, naming the bad one."""
    if not isinstance(values, list) or not values:
        raise ValueError(f"{RULES_FILE}: {key} must be a non-empty list of regexes")
    compiled = []
    for position, value in enumerate(values):
        try:
            compiled.append(re.compile(str(value), re.IGNORECASE))
        except re.error as error:
            raise ValueError(
                f"{RULES_FILE}: {key}[{position}] is not a valid regex ({error}): {value!r}"
            ) from None
    return tuple(compiled)


def _jargon_term(term: str, alternatives: Any) -> JargonTerm:
    """A jargon entry with the patterns that find the term and its gloss."""
    if isinstance(alternatives, str):
        alternatives = [alternatives]
    if (
        not isinstance(alternatives, list)
        or not alternatives
        or not all(isinstance(alt, str) and alt.strip() for alt in alternatives)
    ):
        raise ValueError(
            f"{RULES_FILE}: jargon term {term!r} needs a plain alternative (text or list of text)"
        )
    words = [word for word in re.split(r"[\s-]+", term.strip()) if word]
    parts = [_word_pattern(word) for word in words]
    if words[-1].lower().endswith("is"):
        # analysis -> analyses
        parts[-1] = re.escape(words[-1][:-2]) + "(?:is|es)"
        ending = ""
    else:
        ending = "(?:s|es)?"
    flags = 0 if term.isupper() else re.IGNORECASE
    pattern = re.compile(r"\b" + r"['’]?[\s-]+".join(parts) + ending + r"\b", flags)
    alts = "|".join(r"\s+".join(map(re.escape, alt.split())) for alt in alternatives)
    # "interventions (treatments)": a plural "s"/"es" may end the alternative too
    gloss = re.compile(_GLOSS_OPENING + f"(?:{alts})" + r"(?:e?s)?(?!\w)", re.IGNORECASE)
    return JargonTerm(term, tuple(alt.strip() for alt in alternatives), pattern, gloss)


def _word_pattern(word: str) -> str:
    """One word of a jargon term, with British -ise- also matching American -ize-."""
    match = re.match(r"^(.{3,}?)is(e|ed|es|ing|ations?)$", word, re.IGNORECASE)
    if match:
        return re.escape(match.group(1)) + "i[sz]" + re.escape(match.group(2))
    return re.escape(word)


# ---------------------------------------------------------------------------------------------
# Sentences


def split_sentences(text: str) -> list[str]:
    """Split patient-facing Markdown text into plain sentences.

    Parameters
    ----------
    text : str
        Markdown or plain text.

    Returns
    -------
    list of str
        The sentences in order, Markdown markup, claim ids and extra whitespace removed,
        terminal punctuation kept.

    Notes
    -----
    Headings, bullet items, table cells and paragraphs (blank-line separated) are separate
    blocks; a sentence never spans two blocks. Markup stripped: heading ``#``, bullet ``-``,
    ``*``, ``+`` and ``1.``, block quotes, ``**``/``__``/``*``/``_`` emphasis, backticks, links
    and images (their text stays), HTML comments, horizontal rules, fenced code and front
    matter. Claim ids such as ``[C-etmi-function-1a2b]`` are removed wherever they stand.

    Inside a block a sentence ends at ``.``, ``!`` or ``?`` (with any closing quotes or
    brackets) followed by whitespace, except after an abbreviation from the registry
    (``vs.``, ``approx.``, ``et al.``), a token of single letters and stops (``e.g.``,
    ``i.e.``) or when the next word starts in lower case. Decimals such as ``4.5`` never end a
    sentence: no whitespace follows their stop.

    Examples
    --------
    >>> split_sentences("- **ETMI may help** (e.g. 4.5 points). [C-etmi-1a] Pain vs. usual care.")
    ['ETMI may help (e.g. 4.5 points).', 'Pain vs. usual care.']
    """
    return [sentence for sentence, _ in _sentences_with_ids(text)]


def _sentences_with_ids(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """Each sentence of the text with the claim ids written in it."""
    return [(sentence, ids) for sentence, ids, _ in _sentences_with_claims(text)]


def _sentences_with_claims(text: str) -> list[tuple[str, tuple[str, ...], str]]:
    """Each sentence, its claim ids, and the whole claim it closes: a claim id cites the
    sentences of its bullet or paragraph since the previous id (a statement and its range)."""
    abbreviations = load_rules().abbreviations
    result = []
    for block in _blocks(text):
        block = _ID_AFTER_STOP.sub(r"\2\1", block)
        pending: list[str] = []
        for raw_sentence in _split_block(block, abbreviations):
            ids = tuple(CLAIM_ID.findall(raw_sentence))
            sentence = " ".join(_CLAIM_ID_WITH_SPACE.sub("", raw_sentence).split())
            sentence = re.sub(r"\s+(?=[.!?,;:]+$)", "", sentence)
            if re.search(r"\w", sentence):
                pending.append(sentence)
                result.append((sentence, ids, " ".join(pending)))
                if ids:
                    pending = []
    return result


def _blocks(text: str) -> list[str]:
    """Headings, bullet items, table cells and paragraphs, with Markdown markup removed."""
    for pattern, replacement in _INLINE[:1]:
        text = pattern.sub(replacement, text)
    lines = text.splitlines()
    if lines and lines[0].strip() == "---":
        close = next((i for i in range(1, len(lines)) if lines[i].strip() in {"---", "..."}), 0)
        lines = lines[close + 1 :] if close else lines
    blocks: list[str] = []
    current: list[str] = []
    in_fence = False

    def flush() -> None:
        if current:
            blocks.append(" ".join(current))
            current.clear()

    for line in lines:
        stripped = _QUOTE.sub("", line.strip()).strip()
        if stripped.startswith(("```", "~~~")):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if not stripped or _RULE_LINE.match(stripped):
            flush()
            continue
        if stripped.startswith("|"):
            flush()
            if not _TABLE_DIVIDER.match(stripped):
                blocks.extend(cell.strip() for cell in stripped.strip("|").split("|"))
            continue
        heading = _HEADING.match(stripped)
        if heading:
            flush()
            blocks.append(heading.group(1))
            continue
        bullet = _BULLET.match(stripped)
        if bullet:
            flush()
            stripped = stripped[bullet.end() :]
        current.append(stripped)
    flush()
    return [_strip_inline(block) for block in blocks if block.strip()]


def _strip_inline(text: str) -> str:
    """Text without inline Markdown markup, whitespace collapsed."""
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def _split_block(block: str, abbreviations: frozenset[str]) -> list[str]:
    """Sentences of one block of plain text."""
    sentences = []
    start = 0
    for stop in _STOP.finditer(block):
        if stop.group(0).startswith(".") and not stop.group(0).startswith(".."):
            token = block[start : stop.end()].split()[-1].lstrip("([\"'“‘").lower()
            next_char = block[stop.end() :].lstrip()[:1]
            if token in abbreviations or _INITIALISM.match(token) or next_char.islower():
                continue
        sentences.append(block[start : stop.end()].strip())
        start = stop.end()
    sentences.append(block[start:].strip())
    return [sentence for sentence in sentences if sentence]


def _clean(sentence: str) -> str:
    """One sentence as the rules see it: markup and claim ids removed, whitespace collapsed."""
    text = _strip_inline(" ".join(_blocks(sentence)))
    text = " ".join(_CLAIM_ID_WITH_SPACE.sub("", text).split())
    return re.sub(r"\s+(?=[.!?,;:]+$)", "", text)


def count_words(sentence: str) -> int:
    """Words in a sentence: whitespace-separated tokens with at least one letter or digit."""
    return sum(1 for token in sentence.split() if re.search(r"\w", token))


# ---------------------------------------------------------------------------------------------
# Sentence rules


def check_certainty(sentence: str, certainty: str) -> list[LintIssue]:
    """Check that a claim sentence uses exactly the wording of its certainty grade.

    Parameters
    ----------
    sentence : str
        One claim sentence (Markdown and claim ids are stripped before checking).
    certainty : str
        Its GRADE certainty: ``high``, ``moderate``, ``low`` or ``very_low``.

    Returns
    -------
    list of LintIssue
        At most two ``certainty_wording`` issues: one naming the hedges that belong to other
        grades (in order of appearance), one when the grade's own wording is missing.

    Raises
    ------
    ValueError
        When ``certainty`` is not one of the four grades.

    Notes
    -----
    The wording of each grade is in the registry (``certainty_wording``): high takes a plain
    effect verb and no hedge, moderate "probably" right before the verb, low "may" right
    before the verb, very low the opening "We are uncertain whether". The regexes find the
    wording, not its meaning: a claim that hedges with a word outside the lists passes.

    Examples
    --------
    >>> check_certainty("ETMI may improve daily function.", "low")
    []
    """
    wording = _wording(certainty)
    text = _clean(sentence)
    label = certainty.replace("_", " ")
    issues = []
    hedges = sorted(
        (match.start(), match.group(0))
        for pattern in wording.forbidden
        if (match := pattern.search(text))
    )
    if hedges:
        found = ", ".join(f'"{word}"' for word in dict.fromkeys(word for _, word in hedges))
        issues.append(
            LintIssue(
                "certainty_wording",
                text,
                f"{label}-certainty claim contains {found}: use {wording.wording}",
            )
        )
    if not all(pattern.search(text) for pattern in wording.required):
        issues.append(
            LintIssue(
                "certainty_wording",
                text,
                f"{label}-certainty claim lacks its wording: use {wording.wording}",
            )
        )
    return issues


def _wording(certainty: str) -> CertaintyWording:
    """The wording of a grade; the error lists the grades."""
    rules = load_rules()
    if certainty not in rules.certainty_wording:
        raise ValueError(f'unknown certainty "{certainty}": use one of {", ".join(GRADES)}')
    return rules.certainty_wording[certainty]


def check_jargon(sentence: str) -> list[LintIssue]:
    """Check that every jargon term is followed right away by its plain alternative.

    Parameters
    ----------
    sentence : str
        One sentence (Markdown and claim ids are stripped before checking).

    Returns
    -------
    list of LintIssue
        One ``jargon`` issue per term used without its alternative, in order of appearance.

    Notes
    -----
    A term passes only when each occurrence is followed, with only spaces between, by ``(``
    or a dash (``—``, ``–``, ``--`` or a spaced ``-``), then optionally "a", "an" or "the",
    then one of its registry alternatives word for word (case-insensitive, a plural "s" may
    end it, more words may follow). Where terms overlap ("cohort" inside "cohort study") only
    the longest counts.

    Examples
    --------
    >>> check_jargon("It was a placebo (a dummy treatment with no active part) pill.")
    []
    """
    text = _clean(sentence)
    matches = sorted(
        (
            (match.start(), match.end(), term)
            for term in load_rules().jargon
            for match in term.pattern.finditer(text)
        ),
        key=lambda hit: (hit[0], -hit[1]),
    )
    issues: dict[str, LintIssue] = {}
    covered_to = -1
    for start, end, term in matches:
        if end <= covered_to:
            continue  # inside a longer term
        covered_to = max(covered_to, end)
        if term.gloss.match(text, end) or term.term in issues:
            continue
        found = text[start:end]
        issues[term.term] = LintIssue(
            "jargon",
            text,
            f'"{found}" is jargon: add its plain meaning right after it, '
            f'e.g. "{found} ({term.alternatives[0]})", or use plain words',
        )
    return list(issues.values())


def check_recommendation(sentence: str) -> list[LintIssue]:
    """Check that a sentence reports evidence without telling the reader what to do.

    Parameters
    ----------
    sentence : str
        One sentence (Markdown and claim ids are stripped before checking).

    Returns
    -------
    list of LintIssue
        One ``recommendation`` issue quoting the first recommending phrase, or none.
    """
    text = _clean(sentence)
    found = _first_match(text, load_rules().recommendations)
    if found is None:
        return []
    return [
        LintIssue(
            "recommendation",
            text,
            f'sentence recommends ("{found}"): say what the evidence shows '
            "and leave the choice to the reader",
        )
    ]


def check_absolute_claim(sentence: str) -> list[LintIssue]:
    """Check that a sentence makes no absolute claim ("no effect", "does not work", "proves").

    Parameters
    ----------
    sentence : str
        One sentence (Markdown and claim ids are stripped before checking).

    Returns
    -------
    list of LintIssue
        One ``absolute_claim`` issue quoting the first absolute phrase, or none.

    Notes
    -----
    A wide interval is never "no effect": write the size of the effect and its certainty,
    e.g. "may make little or no difference to" (which the patterns allow).
    """
    text = _clean(sentence)
    found = _first_match(text, load_rules().absolute_claims)
    if found is None:
        return []
    return [
        LintIssue(
            "absolute_claim",
            text,
            f'sentence makes an absolute claim ("{found}"): give the size of the effect and '
            'how certain it is, e.g. "may make little or no difference to"',
        )
    ]


def _first_match(text: str, patterns: Sequence[re.Pattern[str]]) -> str | None:
    """The earliest text any of the patterns finds, or None."""
    hits = sorted((match.start(), match.group(0)) for p in patterns if (match := p.search(text)))
    return hits[0][1] if hits else None


def check_sentence_length(sentence: str) -> list[LintIssue]:
    """Check that a sentence has at most ``limits.max_sentence_words`` words (25).

    Parameters
    ----------
    sentence : str
        One sentence (Markdown and claim ids are stripped before counting).

    Returns
    -------
    list of LintIssue
        One ``sentence_length`` issue such as ``sentence has 31 words (limit 25): split it``.

    Notes
    -----
    A word is a whitespace-separated token with at least one letter or digit: "0-100",
    "4.5" and "ETMI-guided" are one word each, a lone dash is none.
    """
    text = _clean(sentence)
    limit = load_rules().max_sentence_words
    words = count_words(text)
    if words <= limit:
        return []
    return [
        LintIssue("sentence_length", text, f"sentence has {words} words (limit {limit}): split it")
    ]


# ---------------------------------------------------------------------------------------------
# Whole-text rules


@cache
def _hyphenator() -> pyphen.Pyphen:
    """The US English hyphenation dictionary textstat counts syllables with."""
    return pyphen.Pyphen(lang="en_US")


def reading_grade(text: str) -> float:
    """The Flesch-Kincaid US school grade of a text.

    Parameters
    ----------
    text : str
        Markdown or plain text.

    Returns
    -------
    float
        ``0.39 * words / sentences + 11.8 * syllables / words - 15.59``, rounded to 2
        decimals; 0.0 for a text without words.

    Notes
    -----
    The formula is the one ``textstat.flesch_kincaid_grade`` applies (Kincaid JP, Fishburne
    RP, Rogers RL, Chissom BS. Derivation of new readability formulas for Navy enlisted
    personnel. Research Branch Report 8-75, 1975). Sentences are those of
    :func:`split_sentences` (so "4.5" and "e.g." do not end one, and Markdown is gone); words
    are textstat's (punctuation removed, whitespace split: "0-100" is one word); syllables are
    counted with Pyphen's ``en_US`` hyphenation as textstat does (its only rule up to 0.7.3,
    its fallback since). textstat 0.7.4+ first looks words up in the NLTK CMU dictionary,
    which it downloads at run time; an offline pipeline cannot, so the grade is computed here
    and can differ a little from ``textstat.flesch_kincaid_grade`` on a machine that has it.

    Examples
    --------
    >>> reading_grade("The cat sat.")
    -2.62
    """
    sentences = split_sentences(text)
    words = [
        word for sentence in sentences for word in textstat.remove_punctuation(sentence).split()
    ]
    if not words:
        return 0.0
    syllables = sum(len(_hyphenator().positions(word.lower())) + 1 for word in words)
    grade = 0.39 * len(words) / len(sentences) + 11.8 * syllables / len(words) - 15.59
    return round(grade, 2)


def check_reading_grade(text: str) -> list[LintIssue]:
    """Check that a whole text reads at or below ``limits.max_grade`` (US grade 8).

    Parameters
    ----------
    text : str
        Markdown or plain text.

    Returns
    -------
    list of LintIssue
        One ``reading_grade`` issue with an empty ``sentence`` when the grade, rounded to one
        decimal, is above the limit.
    """
    limit = load_rules().max_grade
    grade = round(reading_grade(text), 1)
    if grade <= limit:
        return []
    return [
        LintIssue(
            "reading_grade",
            "",
            f"text reads at US grade {grade:.1f} (limit {limit:.1f}): "
            "use shorter sentences and shorter words",
        )
    ]


# ---------------------------------------------------------------------------------------------
# Entry points for callers


def _sentence_issues(sentence: str) -> list[LintIssue]:
    """The rules every sentence must meet, in a fixed order."""
    return [
        *check_jargon(sentence),
        *check_recommendation(sentence),
        *check_absolute_claim(sentence),
        *check_sentence_length(sentence),
    ]


def lint_claim(sentence: str, certainty: str) -> list[LintIssue]:
    """Lint one claim sentence: its certainty wording and every sentence-level rule.

    Parameters
    ----------
    sentence : str
        One claim sentence; Markdown and claim ids are stripped before checking.
    certainty : str
        Its grade: ``high``, ``moderate``, ``low`` or ``very_low``.

    Returns
    -------
    list of LintIssue
        Issues in rule order: certainty_wording, jargon, recommendation, absolute_claim,
        sentence_length. The reading grade is a whole-text rule: see :func:`lint_text`.

    Raises
    ------
    ValueError
        When ``certainty`` is not one of the four grades.

    Examples
    --------
    >>> lint_claim("In this demonstration data, ETMI-guided care probably improves daily "
    ...            "function a little compared with usual physiotherapy care.", "moderate")
    []
    """
    return [*check_certainty(sentence, certainty), *_sentence_issues(sentence)]


def lint_text(text: str, certainties: Mapping[str, str] | None = None) -> list[LintIssue]:
    """Lint a whole patient-facing text.

    Parameters
    ----------
    text : str
        Markdown or plain text, with claim ids such as ``[C-etmi-function-1a2b]`` after the
        claim sentences.
    certainties : mapping of str to str, optional
        Claim id (without brackets) -> grade (``high``, ``moderate``, ``low``, ``very_low``).
        When given, each sentence carrying a claim id is checked against its grade, and a
        claim id missing from the mapping is an issue. When ``None``, certainty wording is
        not checked.

    Returns
    -------
    list of LintIssue
        Sentence by sentence, in rule order (certainty_wording, jargon, recommendation,
        absolute_claim, sentence_length), then ``reading_grade`` for the whole text.

    Raises
    ------
    ValueError
        When a grade in ``certainties`` is not one of the four grades.

    Examples
    --------
    >>> lint_text("ETMI may ease pain a little. [C-etmi-pain-9f]", {"C-etmi-pain-9f": "low"})
    []
    """
    if certainties is not None:
        for claim_id, grade in certainties.items():
            if grade not in GRADES:
                raise ValueError(
                    f'unknown certainty "{grade}" for claim {claim_id}: '
                    f"use one of {', '.join(GRADES)}"
                )
    issues: list[LintIssue] = []
    for sentence, claim_ids, claim_text in _sentences_with_claims(text):
        if certainties is not None:
            for claim_id in (cited.split("@")[0] for cited in claim_ids):
                if claim_id in certainties:
                    issues.extend(check_certainty(claim_text, certainties[claim_id]))
                else:
                    issues.append(
                        LintIssue(
                            "certainty_wording",
                            sentence,
                            f"claim {claim_id} has no certainty grade: add it to the "
                            "certainties or remove the claim id",
                        )
                    )
        issues.extend(_sentence_issues(sentence))
    issues.extend(check_reading_grade(text))
    return issues


# ---------------------------------------------------------------------------------------------
# Command line


def _read_certainties(path: Path) -> dict[str, str]:
    """Claim id -> grade from a YAML or JSON mapping file, or from a claims.json."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(raw, dict) and isinstance(raw.get("claims"), list):
        # reports/<study>/claims.json: {"study_id": ..., "claims": [{claim_id, certainty, ...}]}
        return {
            str(claim.get("claim_id")): str(claim.get("certainty"))
            for claim in raw["claims"]
            if isinstance(claim, dict)
        }
    if not isinstance(raw, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in raw.items()
    ):
        raise ValueError("expected a mapping of claim id to grade, e.g. 'C-etmi-pain-9f: low'")
    return raw


def main(argv: Sequence[str] | None = None) -> int:
    """Lint files from the command line: ``python -m pipeline.summarise.lint FILE [FILE...]``.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``). ``--certainties PATH``
        names a YAML or JSON file mapping claim ids to grades.

    Returns
    -------
    int
        1 when any file has an issue, 0 when none has, 2 when a file cannot be read or the
        certainties are malformed. Issues are printed to standard output as
        ``FILE: rule: message``, errors to standard error as ``FILE: error: message``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.summarise.lint",
        description="Lint patient-facing text against the plain-language rules.",
    )
    parser.add_argument("files", nargs="+", type=Path, help="Markdown or text files to lint")
    parser.add_argument(
        "--certainties",
        type=Path,
        help="YAML or JSON file mapping claim ids to grades (high, moderate, low, very_low)",
    )
    args = parser.parse_args(argv)
    certainties = None
    if args.certainties is not None:
        try:
            certainties = _read_certainties(args.certainties)
            for claim_id, grade in certainties.items():
                if grade not in GRADES:
                    raise ValueError(
                        f'unknown certainty "{grade}" for claim {claim_id}: '
                        f"use one of {', '.join(GRADES)}"
                    )
        except (OSError, ValueError, yaml.YAMLError) as error:
            print(f"{args.certainties}: error: {_reason(error)}", file=sys.stderr)
            return 2
    status = 0
    for path in args.files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            print(f"{path}: error: {_reason(error)}", file=sys.stderr)
            status = 2
            continue
        for issue in lint_text(text, certainties):
            print(f"{path}: {issue.rule}: {issue.message}")
            status = max(status, 1)
    return status


def _reason(error: Exception) -> str:
    """A one-line reason for an error, without the file name twice."""
    if isinstance(error, OSError) and error.strerror:
        return f"cannot read the file ({error.strerror})"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
