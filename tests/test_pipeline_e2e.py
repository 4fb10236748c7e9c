"""End to end: `dvc repro` on a copy of the project rebuilds everything, then has nothing to do.

This is the project's promise to researchers, checked for real: a fresh copy (no outputs, no
DVC cache), the shipped params, real DVC and real notebook execution. Slow (about 1-2 minutes).
"""

from __future__ import annotations

import json
import subprocess

import pytest
from e2e_helpers import run as _run

# The session fixture `repro` (conftest.py) runs `dvc repro` once per suite, on whichever
# xdist worker asks first; `_run` holds the copy's lock, so workers never run DVC in it at once.
pytestmark = pytest.mark.slow


def test_repro_builds_every_output(repro):
    project, _, _ = repro
    for study in ("etmi-reference", "boulder-prt-2022", "boulder-prt-5yr", "stops"):
        for name in (
            "participants.parquet",
            "outcomes.parquet",
            "quarantine.parquet",
            "estimates.parquet",
        ):
            assert (project / "data" / "processed" / study / name).exists(), (study, name)
        for name in ("claims.json", "summary.md", "summary.html", "fact_sheet.md", "table1.html"):
            assert (project / "reports" / study / name).exists(), (study, name)
        assert len(list((project / "reports" / study / "notebooks").glob("*.html"))) == 3
    assert (project / "reports" / "meta" / "summary.md").exists()


def test_generated_fact_sheets_pass_backpain_check_and_evidence_page_is_built(repro):
    project, env, _ = repro
    sheets = sorted((project / "reports").glob("*/fact_sheet.md"))
    assert len(sheets) == 4
    for sheet in sheets:
        result = subprocess.run(
            ["backpain", "check", str(sheet), "--reports-root", "reports"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().endswith("0 error(s), 0 warning(s)"), result.stdout
    page = (project / "reports" / "index.html").read_text(encoding="utf-8")
    for claims in (project / "reports").glob("*/claims.json"):
        data = json.loads(claims.read_text(encoding="utf-8"))
        for claim in data["claims"] if isinstance(data, dict) else data:
            assert f'id="{claim["claim_id"]}"' in page


def test_second_repro_has_nothing_to_do(repro):
    project, env, _ = repro
    again = _run(["dvc", "repro"], project, env)
    assert "Running stage" not in again.stdout
    status = _run(["dvc", "status"], project, env)
    assert "up to date" in status.stdout


def test_forced_rerun_gives_byte_identical_claims_and_summaries(repro):
    project, env, _ = repro
    folder = project / "reports" / "boulder-prt-2022"
    before = {
        name: (folder / name).read_bytes()
        for name in ("claims.json", "summary.md", "fact_sheet.md")
    }
    _run(["dvc", "repro", "--force", "--single-item", "summarise@boulder-prt-2022"], project, env)
    for name, data in before.items():
        assert (folder / name).read_bytes() == data, name
    changes = (folder / "claims_changes.md").read_text()
    assert "No claim changed" in changes  # compared with the version recorded in dvc.lock


STUDIES = ("etmi-reference", "boulder-prt-2022", "boulder-prt-5yr", "stops")


def test_every_shipped_bullet_reads_at_grade_6_and_carries_its_range(repro):
    """Issue 8: every fact-sheet bullet at most Flesch-Kincaid grade 6 and 20 words per
    sentence (claim id removed), and every bullet gives its range or says why it cannot."""
    from pipeline.summarise.lint import CLAIM_ID, count_words, reading_grade, split_sentences

    project, _, _ = repro
    for study in STUDIES:
        bullets = [
            CLAIM_ID.sub("", line[2:]).strip()
            for line in (project / "reports" / study / "fact_sheet.md").read_text().splitlines()
            if line.startswith("- ")
        ]
        assert bullets, study
        for bullet in bullets:
            assert reading_grade(bullet) <= 6.0, (study, bullet)
            assert all(count_words(s) <= 20 for s in split_sentences(bullet)), (study, bullet)
            assert "likely range" in bullet or "do not show the numbers" in bullet, bullet


def test_no_bullet_or_summary_says_what_table_one_contradicts(repro):
    """ "Alike at the start" only when every standardised difference in Table 1 is <= 0.1."""
    import pandas as pd

    project, _, _ = repro
    for study in STUDIES:
        folder = project / "reports" / study
        table = pd.read_csv(folder / "table1.csv", keep_default_na=False)
        names = table["characteristic"].replace("", None).ffill()
        smd = pd.to_numeric(table["smd"], errors="coerce").abs()[names != "Sessions"]
        summary = (folder / "summary.md").read_text()
        if (smd > 0.1).any():
            assert "groups were alike" not in summary, study
            assert "differed" in summary, study
        assert "so the groups were alike" not in summary
