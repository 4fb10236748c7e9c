"""backpain check on real text: the published fact sheet in ../shared/factsheets, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main

REPO = Path(__file__).resolve().parents[1]
FACT_SHEET = REPO.parent / "shared" / "factsheets" / "self-management-fact-sheet.txt"
CLAIMS = {
    "study_id": "trial",
    "claims": [
        {
            "claim_id": "C-trial-pain-w10",
            "certainty": "high",
            "synthetic": False,
            "numbers": {"estimate": -1.414, "ci_low": -1.888, "ci_high": -0.94, "units": "points"},
            "sentence": "Tailored physiotherapy reduces back pain at 10 weeks a little compared "
            "with advice alone (about 1.4 points out of 10).",
        }
    ],
}

# Each "What the evidence shows" bullet (its line) and the rules it must be flagged with.
BULLETS = {
    10: {"evidence_level", "superlative"},  # Level 1 evidence ... the highest level available
    11: {"causal_verb", "comparative"},  # CBT with exercise produces better outcomes than
    12: {"causal_verb"},  # education reduces fear-avoidance and improves outcomes
    13: {"association"},  # patients who understand ... report less disability than those who do not
    14: {"superlative", "association"},  # one of the strongest predictors of recovery
}


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    (tmp_path / "trial").mkdir()
    (tmp_path / "trial" / "claims.json").write_text(json.dumps(CLAIMS), encoding="utf-8")
    return tmp_path


def _check(args, capsys):
    status = main(["check", *map(str, args)])
    return status, capsys.readouterr()


@pytest.mark.skipif(not FACT_SHEET.exists(), reason=f"{FACT_SHEET} not found")
def test_each_evidence_bullet_of_the_published_fact_sheet_is_flagged(reports, capsys, tmp_path):
    status, out = _check([FACT_SHEET, "--reports-root", reports, "--json"], capsys)
    assert status == 1
    document = json.loads(out.out)
    by_line: dict[int, set[str]] = {}
    for finding in document["findings"]:
        by_line.setdefault(finding["line"], set()).add(finding["rule"])
    for line, expected in BULLETS.items():
        assert expected <= by_line.get(line, set()), (line, by_line.get(line))
    # the intro's "one of the most consistent findings" and "The evidence consistently shows"
    assert {"consistently", "superlative", "evidence_says"} <= by_line[4]
    assert {"consistently", "evidence_says", "superlative"} <= by_line[8]
    # self-efficacy is glossed correctly in the text: no jargon finding on its line
    assert "jargon" not in by_line[14]


def test_terminal_report_one_line_per_finding_and_html(reports, capsys, tmp_path):
    draft = tmp_path / "draft.md"
    sentence = CLAIMS["claims"][0]["sentence"].replace("1.4", "2.4")
    draft.write_text(f"# Draft\n\n- {sentence} [C-trial-pain-w10]\n", encoding="utf-8")
    html = tmp_path / "draft.html"
    status, out = _check([draft, "--reports-root", reports, "--html", html], capsys)
    assert status == 1
    lines = out.out.splitlines()
    assert lines[0].startswith(f"{draft}:3: error number:")
    assert "suggested: Tailored physiotherapy reduces back pain" in lines[0]
    assert lines[-1].endswith("1 error(s), 0 warning(s)")
    page = html.read_text(encoding="utf-8")
    assert '<div class="line error" id="L3">' in page and "<mark>" in page


def test_verbatim_bullet_exits_0(reports, capsys, tmp_path):
    draft = tmp_path / "ok.md"
    draft.write_text(f"- {CLAIMS['claims'][0]['sentence']} [C-trial-pain-w10]\n", encoding="utf-8")
    assert _check([draft, "--reports-root", reports], capsys)[0] == 0


def test_missing_draft_and_no_claims_are_user_errors(reports, capsys, tmp_path):
    status, out = _check([tmp_path / "nope.md", "--reports-root", reports], capsys)
    assert status == 2 and "cannot read the draft" in out.err
    draft = tmp_path / "ok.md"
    draft.write_text("Hello.\n", encoding="utf-8")
    empty = tmp_path / "empty"
    empty.mkdir()
    status, out = _check([draft, "--reports-root", empty], capsys)
    assert status == 2 and "no claims under" in out.err


@pytest.mark.skipif(
    not (REPO / "reports" / "stops" / "claims.json").exists(), reason="no dvc repro outputs here"
)
def test_generated_fact_sheets_of_this_checkout_pass(capsys):
    for sheet in sorted((REPO / "reports").glob("*/fact_sheet.md")):
        status, out = _check([sheet, "--reports-root", REPO / "reports"], capsys)
        assert status == 0 and out.out.strip().endswith("0 error(s), 0 warning(s)"), out.out


def test_lint_accepts_claims_json_as_certainties(reports, capsys, tmp_path):
    from pipeline.summarise.lint import main as lint_main

    sentence = CLAIMS["claims"][0]["sentence"]
    draft = tmp_path / "draft.md"
    draft.write_text(f"{sentence} [C-trial-pain-w10@0123abcd]\n", encoding="utf-8")
    claims = reports / "trial" / "claims.json"
    lint_main(["--certainties", str(claims), str(draft)])
    assert "certainty_wording" not in capsys.readouterr().out  # versioned id found in claims.json
    draft.write_text(f"{sentence.replace('reduces', 'may reduce')} [C-trial-pain-w10]\n")
    assert lint_main(["--certainties", str(claims), str(draft)]) == 1
    assert "certainty_wording" in capsys.readouterr().out
