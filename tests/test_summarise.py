"""The summarise stage on a study run end to end in a temporary folder: reports, privacy, readability."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import textstat
import yaml
from ingest_helpers import TEST_KEY

from pipeline.analysis.analyse import run_analyse
from pipeline.ingest import run_ingest
from pipeline.summarise.lint import lint_text, split_sentences
from pipeline.summarise.render import render_claims_changes
from pipeline.summarise.stage import previous_claims, run_summarise
from pipeline.summarise.tables import table_one

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
PSEUDONYM = re.compile(r"\bp[0-9a-f]{20}\b")


def _fast_analysis_params() -> dict:
    """The shipped comparisons of the reference cohort without the slow MICE and mixed models."""
    params = json.loads(json.dumps(PARAMS["analyse"]))
    entry = params["studies"]["etmi-reference"]
    entry["defaults"]["missing_data"] = "complete_case"
    for comparison in entry["comparisons"]:
        comparison["methods"] = [m for m in comparison["methods"] if m not in ("mice", "mixed")]
        comparison.pop("missing_data", None)
    return params


@pytest.fixture(scope="module")
def pipeline_run(reference_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("BACKPAIN_PSEUDONYM_KEY", TEST_KEY.decode())
    try:
        run_ingest(
            reference_dir / "study.yaml", root / "processed" / "etmi-reference", show_progress=False
        )
        run_analyse("etmi-reference", _fast_analysis_params(), root / "processed")
        summary = run_summarise(
            "etmi-reference",
            PARAMS["summarise"],
            root / "processed",
            root / "reports",
            lock_file=root / "no-dvc.lock",
        )
    finally:
        monkeypatch.undo()
    return root, summary


def test_writes_every_report(pipeline_run):
    root, _ = pipeline_run
    out = root / "reports" / "etmi-reference"
    expected = {
        "claims.json",
        "claims.csv",
        "claims_changes.md",
        "fact_sheet.md",
        "summary.md",
        "summary.html",
        "methods.md",
        "table1.csv",
        "table1.html",
        "figures",
    }
    assert expected <= {p.name for p in out.iterdir()}
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert pngs == ["balance.png", "change_by_arm.png", "flow.png", "forest.png"]
    html = (out / "summary.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and 'name="viewport"' in html
    assert all('alt="' in tag for tag in re.findall(r"<img[^>]*>", html))


def test_claims_carry_numbers_certainty_and_provenance(pipeline_run):
    root, _ = pipeline_run
    claims = json.loads((root / "reports" / "etmi-reference" / "claims.json").read_text())["claims"]
    assert len(claims) >= 4
    for claim in claims:
        assert claim["claim_id"].startswith("C-etmi-reference-")
        assert claim["synthetic"] is True and claim["sentence"].startswith("Demonstration data:")
        assert {"estimate", "ci_low", "ci_high", "units", "n_treated", "n_control"} <= set(
            claim["numbers"]
        )
        assert claim["certainty"] in ("high", "moderate", "low", "very_low")
        assert claim["estimate_ref"]["comparison_id"] and len(claim["input_data_sha256"]) == 64
        assert claim["git_commit"]


def test_summary_reads_at_grade_8_and_sentences_are_short(pipeline_run):
    root, summary = pipeline_run
    text = (root / "reports" / "etmi-reference" / "summary.md").read_text()
    plain = " ".join(split_sentences(text))
    assert textstat.flesch_kincaid_grade(plain) <= 8
    assert max(len(s.split()) for s in split_sentences(text)) <= 25
    certainties = dict(zip(summary.claims["claim_id"], summary.claims["certainty"], strict=True))
    assert lint_text(text, certainties) == []


def test_no_participant_ids_or_identifiers_under_reports(pipeline_run, reference_dir):
    root, _ = pipeline_run
    raw = pd.read_csv(reference_dir / "patients.csv", dtype=str, keep_default_na=False)
    identifiers = {
        v
        for c in ("patient_id", "full_name", "email", "phone", "national_id", "date_of_birth")
        for v in raw[c]
        if len(v) >= 5
    }
    pseudonyms = set(
        pd.read_parquet(root / "processed" / "etmi-reference" / "participants.parquet")[
            "participant_id"
        ]
    )
    for path in (root / "reports").rglob("*"):
        if path.is_dir() or path.suffix == ".png":
            continue
        text = path.read_text()
        assert not PSEUDONYM.search(text), path
        tokens = set(re.split(r"[\s,;|\"'<>()\[\]{}]+", text))
        assert not (tokens & identifiers), (path, sorted(tokens & identifiers)[:3])
        assert not (tokens & pseudonyms), path


def test_rerun_gives_byte_identical_claims_and_summaries(pipeline_run, tmp_path, monkeypatch):
    root, _ = pipeline_run
    run_summarise(
        "etmi-reference",
        PARAMS["summarise"],
        root / "processed",
        tmp_path,
        lock_file=tmp_path / "none",
    )
    for name in (
        "claims.json",
        "claims.csv",
        "summary.md",
        "summary.html",
        "fact_sheet.md",
        "table1.csv",
        "methods.md",
    ):
        assert (tmp_path / "etmi-reference" / name).read_bytes() == (
            root / "reports" / "etmi-reference" / name
        ).read_bytes(), name


def test_small_cells_are_suppressed_in_table_one():
    participants = pd.DataFrame(
        {
            "participant_id": [f"p{i}" for i in range(30)],
            "arm": pd.Categorical(["a"] * 26 + ["b"] * 4, categories=["a", "b"]),
            "sex": pd.Categorical(
                ["female"] * 24 + ["male"] * 2 + ["female"] * 3 + ["male"],
                categories=["female", "male"],
            ),
            "age": list(range(30, 60)),
        }
    )
    outcomes = pd.DataFrame(
        {
            "participant_id": participants["participant_id"],
            "outcome": "pain",
            "timepoint": pd.Categorical(["baseline"] * 30),
            "days": 0.0,
            "value": 5.0,
        }
    )
    table = table_one(participants, outcomes, "a", "b", ["sex", "age"], min_cell=5)
    assert table.loc[0, "b"] == "<5"  # four people in arm b
    male = table[table["level"] == "male"].iloc[0]
    assert male["a"] == "<5" and male["b"] == "<5"
    # secondary suppression: "24 (92%)" of 26 would give the 2 men back; and the SMD of a
    # level holds its share, so it is withheld too
    female = table[table["level"] == "female"].iloc[0]
    assert female["a"] == "withheld" and female["b"] == "<5"
    assert (table.loc[table["characteristic"].isin(["Sex", ""]), "smd"].iloc[:2] == "").all()


def test_claims_changes_lists_new_changed_and_removed():
    before = [
        {
            "claim_id": "C-1",
            "sentence": "A may improve B.",
            "certainty": "low",
            "numbers": {"estimate": 1.0},
        },
        {"claim_id": "C-2", "sentence": "X.", "certainty": "low", "numbers": {"estimate": 2.0}},
    ]
    after = [
        {
            "claim_id": "C-1",
            "sentence": "A probably improves B.",
            "certainty": "moderate",
            "numbers": {"estimate": 1.5},
        },
        {"claim_id": "C-3", "sentence": "New.", "certainty": "high", "numbers": {"estimate": 3.0}},
    ]
    text = render_claims_changes(before, after, "demo")
    assert (
        "**changed** C-1" in text
        and "certainty low -> moderate" in text
        and "estimate 1 -> estimate 1.5" in text
    )
    assert "**new** C-3" in text and "**removed** C-2" in text
    assert "No claim changed" in render_claims_changes(after, after, "demo")


def test_previous_claims_come_from_the_dvc_lock_cache(tmp_path):
    cached = tmp_path / ".dvc" / "cache" / "files" / "md5" / "ab" / "cdef"
    cached.parent.mkdir(parents=True)
    cached.write_text(json.dumps({"claims": [{"claim_id": "C-old"}]}))
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "summarise@x": {"outs": [{"path": "reports/x/claims.json", "md5": "abcdef"}]}
                }
            }
        )
    )
    assert previous_claims(Path("reports/x/claims.json"), lock) == [{"claim_id": "C-old"}]
    assert previous_claims(Path("reports/y/claims.json"), lock) is None


def test_notebooks_are_committed_without_outputs():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
        assert code, path
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), path
        assert "parameters" in code[0].get("metadata", {}).get("tags", []), path
        source = code[1]["source"]
        assert "from pipeline" in ("".join(source) if isinstance(source, list) else source), path


def test_counts_below_five_are_hidden_in_notebook_and_methods_tables():
    from pipeline.notebooks import StudyData
    from pipeline.summarise.render import render_methods

    quarantine = pd.DataFrame(
        {
            "source_file": ["a.csv"] * 7,
            "column": ["x"] * 3 + [""] * 4,
            "reason": ["out_of_range"] * 3 + ["missing_id"] * 4,
        }
    )
    empty = pd.DataFrame()
    data = StudyData("s", empty, empty, empty, empty, quarantine, {}, empty, "")
    assert set(data.quarantine_summary["count"]) == {"<5"}
    estimates = pd.DataFrame(
        [
            {
                "comparison_id": "c",
                "method": "ancova",
                "estimand": "ATE",
                "effect_measure": "mean_difference",
                "term": "a vs b",
                "estimate": 1.0,
                "ci_low": 0.0,
                "ci_high": 2.0,
                "p_value": 0.04,
                "p_holm": 0.08,
                "n_treated": 3,
                "n_control": 40,
                "model": "OLS",
                "is_primary": True,
            }
        ]
    )
    text = render_methods(
        {"study_id": "s", "design": "randomised"}, estimates, pd.DataFrame({"x": [1]}), {}
    )
    assert "| <5 + 40 |" in text
