"""backpain check: each rule on hand-written sentences, each adversarial edit of a bullet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.check import check_draft, claim_from_record, split_draft
from pipeline.check.claims import sentence_sha256
from pipeline.check.rules import load_check_rules

RULES = load_check_rules()

# Records shaped as the summarise stage writes them (old schema: no direction/size/names).
SYNTHETIC = {
    "claim_id": "C-demo-fear-effect",
    "study_id": "demo",
    "certainty": "very_low",
    "synthetic": True,
    "kind": "effect",
    "numbers": {
        "estimate": -6.028,
        "ci_low": -8.263,
        "ci_high": -3.794,
        "units": "points on a 0-100 scale, lower = better",
    },
    "sentence": "Demonstration data: we are uncertain whether ETMI reduces fear of movement "
    "slightly compared with usual care (about 6 points out of 100).",
}
SESSIONS = {
    "claim_id": "C-demo-sessions-effect",
    "study_id": "demo",
    "certainty": "low",
    "synthetic": True,
    "numbers": {"estimate": 0.6587, "ci_low": 0.613, "ci_high": 0.708, "units": "rate ratio"},
    "sentence": "Demonstration data: ETMI may reduce the number of treatment sessions compared "
    "with usual care (about 3.2 vs 5.2 sessions on average).",
}
REAL = {
    "claim_id": "C-trial-pain-w10",
    "study_id": "trial",
    "certainty": "high",
    "synthetic": False,
    "numbers": {
        "estimate": -1.414,
        "ci_low": -1.888,
        "ci_high": -0.940,
        "units": "points on a 0-10 scale, lower = better",
    },
    "sentence": "Tailored physiotherapy reduces back pain at 10 weeks a little compared with "
    "advice alone (about 1.4 points out of 10).",
}
SUBGROUP = {
    "claim_id": "C-demo-function-dep",
    "study_id": "demo",
    "certainty": "very_low",
    "synthetic": True,
    "numbers": {
        "estimate": 2.51,
        "ci_low": -0.43,
        "ci_high": 5.45,
        "units": "points on a 0-100 scale, higher = better",
    },
    "sentence": "Demonstration data: we are uncertain whether ETMI improves daily function in "
    "people with depression or anxiety compared with usual care (about 3 points).",
}
NEW_SCHEMA = {
    "claim_id": "C-new-function",
    "study_id": "new",
    "certainty": "moderate",
    "synthetic": False,
    "numbers": {"estimate": 4.06, "ci_low": 2.66, "ci_high": 5.47, "units": "points"},
    "sentence": "ETMI probably improves daily function slightly compared with usual care. "
    "It was about 4 points better on a 0 to 100 scale, could be 3 to 5.",
    "direction": "benefit",
    "size": "small",
    "names": {"intervention": "ETMI", "comparator": "usual care", "outcome": "daily function"},
    "shown_numbers": ["4", "0", "100", "3", "5"],
}
CLAIMS = {
    record["claim_id"]: claim_from_record(record, RULES.size_words)
    for record in (SYNTHETIC, SESSIONS, REAL, SUBGROUP, NEW_SCHEMA)
}


def findings(text: str):
    return check_draft(split_draft(text), CLAIMS, RULES)


def rules_of(text: str) -> set[str]:
    return {f.rule for f in findings(text) if f.severity == "error"}


def cite(record: dict, sentence: str | None = None, version: str = "") -> str:
    suffix = f"@{version}" if version else ""
    return f"- {sentence or record['sentence']} [{record['claim_id']}{suffix}]\n"


@pytest.mark.parametrize("record", [SYNTHETIC, SESSIONS, REAL, SUBGROUP, NEW_SCHEMA])
def test_generated_bullet_verbatim_passes(record):
    assert findings(cite(record)) == []
    version = sentence_sha256(record["sentence"])[:8]
    assert findings(cite(record, version=version)) == []


def test_adapter_derives_names_direction_size_from_an_old_record():
    claim = CLAIMS["C-demo-fear-effect"]
    assert claim.names["intervention"] == "ETMI"
    assert claim.names["comparator"] == "usual care"
    assert claim.names["outcome"] == "fear of movement"
    assert claim.direction == "benefit"  # lower fear is better
    assert claim.size == "small"
    assert claim.shown_numbers == ("6", "100")
    assert CLAIMS["C-demo-function-dep"].names["condition"] == (
        "in people with depression or anxiety"
    )
    assert CLAIMS["C-new-function"].size == "small"


ADVERSARIAL = [
    ("changed number", SYNTHETIC, ("6 points", "7 points"), "number"),
    ("swapped comparator", SYNTHETIC, ("usual care", "advice alone"), "comparator"),
    ("upgraded size", SYNTHETIC, ("slightly", "noticeably"), "size"),
    ("upgraded size to large", REAL, ("a little", "a lot"), "size"),
    ("dropped demonstration flag", SESSIONS, ("Demonstration data: ", ""), "demonstration_data"),
    ("stronger certainty", SESSIONS, ("may reduce", "reduces"), "certainty"),
    (
        "very low made moderate",
        SYNTHETIC,
        ("we are uncertain whether ETMI reduces", "ETMI probably reduces"),
        "certainty",
    ),
    ("reversed direction", REAL, ("reduces", "increases"), "direction"),
    (
        "no difference from uncertain",
        SUBGROUP,
        ("improves daily function", "makes no difference to daily function"),
        "direction",
    ),
    ("swapped outcome", REAL, ("back pain", "leg pain"), "outcome"),
    ("swapped intervention", REAL, ("Tailored physiotherapy", "Yoga"), "intervention"),
    ("dropped subgroup", SUBGROUP, (" in people with depression or anxiety", ""), "condition"),
    ("number in the new two-sentence claim", NEW_SCHEMA, ("3 to 5", "3 to 9"), "number"),
]


@pytest.mark.parametrize(
    ("label", "record", "edit", "rule"), ADVERSARIAL, ids=[a[0] for a in ADVERSARIAL]
)
def test_each_adversarial_edit_is_caught(label, record, edit, rule):
    old, new = edit
    assert old in record["sentence"]
    edited = record["sentence"].replace(old, new, 1)
    assert rule in rules_of(cite(record, edited))


def test_a_rounded_number_passes_and_a_wrong_rounding_fails():
    edited = REAL["sentence"].replace("about 1.4 points", "about 1.41 points")
    assert findings(cite(REAL, edited)) == []
    edited = REAL["sentence"].replace("about 1.4 points", "about 1.5 points")
    assert "number" in rules_of(cite(REAL, edited))


def test_weaker_wording_than_the_claim_passes():
    edited = REAL["sentence"].replace("reduces", "may reduce")
    assert findings(cite(REAL, edited)) == []


def test_dropped_id_makes_it_an_uncited_evidence_claim_with_closest_claims():
    found = findings("- " + REAL["sentence"] + "\n")
    assert {f.rule for f in found} >= {"number_without_source", "causal_verb"}
    assert found[0].closest_claims[0] == "C-trial-pain-w10"
    assert "C-trial-pain-w10" in found[0].suggestion


def test_unknown_and_stale_ids():
    found = findings(cite(REAL).replace("C-trial-pain-w10", "C-trial-nope"))
    assert [f.rule for f in found] == ["unknown_claim"]
    stale = findings(cite(REAL, version="deadbeef"))
    assert [f.rule for f in stale] == ["stale_claim"]
    assert REAL["sentence"] in stale[0].message


def test_line_numbers_follow_the_draft():
    text = (
        "# Title\n\nIntro line.\n\n"
        + cite(REAL)
        + cite(REAL, REAL["sentence"].replace("1.4", "3.4"))
    )
    assert [f.line for f in findings(text)] == [6]


def _registry_examples():
    for pattern in RULES.evidence_language:
        for sentence in pattern.flag_examples:
            yield pytest.param(
                pattern.rule, sentence, True, id=f"{pattern.rule}-flag-{sentence[:20]}"
            )
        for sentence in pattern.pass_examples:
            yield pytest.param(
                pattern.rule, sentence, False, id=f"{pattern.rule}-pass-{sentence[:20]}"
            )


@pytest.mark.parametrize(("rule", "sentence", "flagged"), list(_registry_examples()))
def test_registry_examples(rule, sentence, flagged):
    assert (rule in rules_of(sentence)) is flagged


def test_every_evidence_rule_has_positive_and_negative_examples():
    for pattern in RULES.evidence_language:
        assert pattern.flag_examples and pattern.pass_examples, pattern.rule


def test_self_efficacy_is_not_glossed_as_treatment_efficacy():
    text = "- Self-efficacy — belief in your ability to manage your own condition — matters.\n"
    assert [f for f in findings(text) if f.rule == "jargon"] == []
    assert [f.rule for f in findings("Efficacy matters.\n")] == ["jargon"]


def test_json_report_schema_is_stable():
    from pipeline.check.render import render_json

    document = json.loads(
        render_json("draft.md", len(CLAIMS), findings(cite(REAL, version="deadbeef")))
    )
    assert list(document) == ["schema", "draft", "claims_read", "summary", "findings"]
    assert document["schema"] == "backpain-check/1"
    assert document["summary"] == {"errors": 1, "warnings": 0}
    assert list(document["findings"][0]) == [
        "line",
        "sentence",
        "rule",
        "severity",
        "message",
        "claim_id",
        "evidence",
        "suggestion",
        "closest_claims",
    ]


def _docx(path: Path, paragraphs: list[tuple[str, str]]) -> None:
    """A minimal WordprocessingML file (ECMA-376), as Word writes one: (style, text) paragraphs."""
    import zipfile

    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = "".join(
        "<w:p>"
        + (f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else "")
        + f"<w:r><w:t>{text}</w:t></w:r></w:p>"
        for style, text in paragraphs
    )
    xml = f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{ns}"><w:body>{body}</w:body></w:document>'
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", xml)


def test_docx_draft_is_read(tmp_path: Path):
    from pipeline.check.draft import read_draft

    _docx(
        tmp_path / "draft.docx",
        [
            ("Heading1", "What the evidence shows"),
            ("ListBullet", REAL["sentence"] + " [C-trial-nope]"),
        ],
    )
    text = read_draft(tmp_path / "draft.docx")
    assert text.splitlines()[2].startswith("- Tailored physiotherapy")
    assert [f.rule for f in check_draft(split_draft(text), CLAIMS, RULES)] == ["unknown_claim"]
    (tmp_path / "bad.docx").write_text("not a zip")
    with pytest.raises(ValueError, match=r"not a Word \.docx file"):
        read_draft(tmp_path / "bad.docx")
