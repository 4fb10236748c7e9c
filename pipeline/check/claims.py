"""Citable claims as the checker sees them: one adapter for old and new claim records."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CERTAINTY_ORDER: tuple[str, ...] = ("very_low", "low", "moderate", "high")
SIZE_ORDER: tuple[str, ...] = ("trivial", "small", "moderate", "large")
DIRECTIONS = ("benefit", "harm", "little_or_no_difference", "uncertain")

_VERB = (
    r"(?:improves?|reduces?|increases?|decreases?|lowers?|raises?|worsens?|eases?|relieves?|"
    r"changes?|shortens?|lengthens?|makes? little or no difference to)"
)
_CORE = re.compile(
    rf"^(?P<intervention>.+?) (?:probably |may )?(?P<verb>{_VERB}) (?P<rest>.+?),? "
    r"compared (?:with|to) (?P<comparator>[^(.]+?)\s*(?:\(|\.|$)",
    re.IGNORECASE,
)
_REVIEW = re.compile(
    r"\babout the effect of (?P<intervention>.+?) on (?P<outcome>[^.]+?)(?: compared with [^.]+)?\.",
    re.IGNORECASE,
)
_CONDITION = re.compile(
    r"\bin people with(?:out)? [a-z ]+?(?= (?:slightly|a little|a lot|noticeably|greatly|compared|$)|$)",
    re.I,
)
_TIMEPOINT = re.compile(
    r"\b(?:after treatment|soon after treatment|five years later|one year later|"
    r"at \d+ weeks|at one year|at \d+ months)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Claim:
    """One citable claim, with every field the checker compares (derived where missing).

    Attributes
    ----------
    claim_id, study_id, sentence, certainty, synthetic
        As in ``claims.json``.
    direction : str
        ``benefit``, ``harm``, ``little_or_no_difference`` or ``uncertain``.
    size : str
        ``trivial``, ``small``, ``moderate``, ``large`` or ``""`` (not stated).
    names : mapping
        ``intervention``, ``comparator``, ``outcome``, ``condition``, ``timepoint``: plain words.
    shown_numbers : tuple of str
        The numbers the sentence displays.
    numbers : mapping
        The claim's numbers (estimate, ci_low, ci_high, units, n_treated, ...).
    sentence_sha256 : str
        Hex sha256 of ``sentence`` (the version a draft records as ``[C-id@<first 8>]``).
    record : mapping
        The record as read (for the evidence page).
    """

    claim_id: str
    study_id: str
    sentence: str
    certainty: str
    synthetic: bool
    direction: str
    size: str
    names: Mapping[str, str]
    shown_numbers: tuple[str, ...]
    numbers: Mapping[str, Any]
    sentence_sha256: str
    record: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)


def sentence_sha256(sentence: str) -> str:
    """Hex sha256 of a claim sentence's UTF-8 bytes."""
    return hashlib.sha256(sentence.encode("utf-8")).hexdigest()


def shown_numbers_of(text: str) -> tuple[str, ...]:
    """The number strings a sentence displays, in order (``"0.1"``, ``"100"``)."""
    return tuple(re.findall(r"(?<![\w.])\d+(?:\.\d+)?", text))


def _core(sentence: str) -> str:
    text = re.sub(r"^demonstration data:\s*", "", sentence.strip(), flags=re.I)
    text = re.sub(r"^(?:in this demonstration data,\s*)", "", text, flags=re.I)
    return re.sub(r"^we are uncertain whether\s+", "", text, flags=re.I)


def derive_names(sentence: str) -> dict[str, str]:
    """Intervention, comparator, outcome, condition and timepoint from a generated sentence."""
    match = _CORE.search(_core(sentence))
    review = _REVIEW.search(sentence)
    if match is None and review is not None:
        return {
            "intervention": review.group("intervention").strip(),
            "comparator": "",
            "outcome": review.group("outcome").strip(),
            "condition": "",
            "timepoint": "",
        }
    if match is None:
        return {
            "intervention": "",
            "comparator": "",
            "outcome": "",
            "condition": "",
            "timepoint": "",
        }
    rest = match.group("rest")
    condition = _CONDITION.search(rest)
    timepoint = _TIMEPOINT.search(rest)
    outcome = rest
    for part in (condition, timepoint):
        if part:
            outcome = outcome.replace(part.group(0), " ")
    outcome = re.sub(r"\bhow many people improve\b", " ", outcome, flags=re.I)
    outcome = re.sub(
        r"\b(?:slightly|a little|a lot|noticeably|greatly|moderately)\b", " ", outcome, flags=re.I
    )
    return {
        "intervention": match.group("intervention").strip(),
        "comparator": match.group("comparator").strip(),
        "outcome": " ".join(outcome.split()),
        "condition": condition.group(0).strip() if condition else "",
        "timepoint": timepoint.group(0).strip() if timepoint else "",
    }


def size_of(text: str, size_words: Mapping[str, tuple[str, ...]]) -> str:
    """The strongest size word in a text, as its size (``""`` when none)."""
    found = ""
    lowered = text.lower()
    for size in SIZE_ORDER:
        if any(re.search(rf"\b{re.escape(word)}\b", lowered) for word in size_words.get(size, ())):
            found = size
    return found


def direction_of(record: Mapping[str, Any]) -> str:
    """The claim's direction from its sentence and numbers (when the record has none)."""
    sentence = str(record.get("sentence", ""))
    if re.search(r"little or no difference", sentence, re.I):
        return "little_or_no_difference"
    if re.search(r"\bchanges?\b", sentence, re.I):
        return "uncertain"
    numbers = record.get("numbers") or {}
    units = str(numbers.get("units", ""))
    estimate = numbers.get("estimate")
    if re.search(r"\b(?:improves?|increases how many people improve)\b", sentence, re.I):
        return "benefit"
    if estimate is None:
        return "uncertain"
    ratio = "ratio" in units
    lower_better = "lower = better" in units or ratio
    below = estimate < (1.0 if ratio else 0.0)
    return "benefit" if below == lower_better else "harm"


def claim_from_record(
    record: Mapping[str, Any], size_words: Mapping[str, tuple[str, ...]], study_id: str = ""
) -> Claim:
    """The one adapter from a claims.json record (old or new schema) to a :class:`Claim`.

    Parameters
    ----------
    record : mapping
        One entry of ``claims``; ``claim_id``, ``sentence`` and ``certainty`` are required,
        ``direction``, ``size``, ``names``, ``shown_numbers``, ``sentence_sha256`` are used when
        present and derived from the sentence and numbers when not.
    size_words : mapping
        Size -> its words (from the registry).
    study_id : str
        The file's study id, when the record has none.

    Raises
    ------
    ValueError
        When a required field is missing or the certainty is unknown.
    """
    for key in ("claim_id", "sentence", "certainty"):
        if not isinstance(record.get(key), str) or not record.get(key):
            raise ValueError(f"claim record without {key}: {dict(record).get('claim_id', '?')}")
    certainty = record["certainty"]
    if certainty not in CERTAINTY_ORDER:
        raise ValueError(
            f"claim {record['claim_id']}: unknown certainty {certainty!r} "
            f"(use {', '.join(CERTAINTY_ORDER)})"
        )
    sentence = record["sentence"]
    derived = derive_names(sentence)
    names = {**derived, **{k: str(v) for k, v in (record.get("names") or {}).items() if v}}
    shown = record.get("shown_numbers")
    return Claim(
        claim_id=record["claim_id"],
        study_id=str(record.get("study_id") or study_id),
        sentence=sentence,
        certainty=certainty,
        synthetic=bool(record.get("synthetic", sentence.lower().startswith("demonstration data"))),
        direction=str(record.get("direction") or direction_of(record)),
        size=str(record["size"]) if "size" in record else size_of(sentence, size_words),
        names=names,
        shown_numbers=tuple(map(str, shown)) if shown else shown_numbers_of(sentence),
        numbers=dict(record.get("numbers") or {}),
        sentence_sha256=str(record.get("sentence_sha256") or sentence_sha256(sentence)),
        record=dict(record),
    )


def read_claims_file(path: Path, size_words: Mapping[str, tuple[str, ...]]) -> list[Claim]:
    """The claims of one ``claims.json``: ``{"study_id", "claims": [...]}`` or a bare list
    (reviews); the study id defaults to the folder name.

    Raises
    ------
    ValueError, KeyError, TypeError
        When the file is not JSON or a record is malformed.
    """
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(raw, list):
        records, study_id = raw, Path(path).parent.name
    else:
        records, study_id = raw["claims"], str(raw.get("study_id") or Path(path).parent.name)
    return [claim_from_record(record, size_words, study_id) for record in records]


def load_claims(reports_root: Path, size_words: Mapping[str, tuple[str, ...]]) -> dict[str, Claim]:
    """Every claim of every ``reports_root/**/claims.json``, by claim id.

    Raises
    ------
    ValueError
        Naming the file when one cannot be read or holds a malformed record.
    """
    claims: dict[str, Claim] = {}
    for path in sorted(Path(reports_root).glob("**/claims.json")):
        try:
            for claim in read_claims_file(path, size_words):
                claims[claim.claim_id] = claim
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: cannot read the claims ({error})") from None
    return claims
