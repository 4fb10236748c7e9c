"""A review written only from the README's example, and the full stage on a shipped review."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.review.stage import run_review


def _readme_blocks() -> tuple[str, str]:
    text = Path("README.md").read_text(encoding="utf-8")
    section = text.split("## Evidence reviews from published results", 1)[1].split("\n## ", 1)[0]
    yaml_block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    csv_block = re.search(r"```csv\n(.*?)```", section, re.S).group(1)
    return yaml_block, csv_block


def test_review_from_the_readme_example(tmp_path: Path) -> None:
    yaml_block, csv_block = _readme_blocks()
    folder = tmp_path / "example-exercise"
    folder.mkdir()
    (folder / "review.yaml").write_text(yaml_block)
    (folder / "sheet.csv").write_text(csv_block)
    summary = run_review(
        folder / "review.yaml", folder, tmp_path / "processed", tmp_path / "reports"
    )
    report = summary["report"]
    assert report["rows_in"] == 7
    assert report["rows_quarantined"] == 1  # the arm with n = 0
    assert report["quarantine_reasons"] == {"n_below_1": 1}
    assert report["sd_rules"]["from SE (Handbook 6.5.2.2)"] == 2
    q = summary["questions"][0]
    fit = q["reml_hksj"]
    assert fit["k"] == 3
    # independent: MD on the 0-10 canonical scale (VAS mm x 0.1), inverse-variance with REML tau2
    sd3 = np.array([0.4, 0.42]) * 5
    y = np.array([4.1 - 5.0, 3.8 - 4.9, 3.9 - 4.6])
    v = np.array(
        [2.0**2 / 40 + 2.2**2 / 40, 2.1**2 / 60 + 2.3**2 / 58, sd3[0] ** 2 / 25 + sd3[1] ** 2 / 25]
    )
    w = 1 / (v + fit["tau2"])
    assert fit["estimate"] == pytest.approx(np.sum(w * y) / np.sum(w), rel=1e-9)
    claims = json.loads((tmp_path / "reports" / "claims.json").read_text())
    assert claims[0]["claim_id"] == "C-example-exercise-exercise-pain"
    assert (tmp_path / "reports" / "forest_exercise-pain.png").stat().st_size > 1000


@pytest.fixture(scope="module")
def plessen(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plessen")
    code = main(
        [
            "review",
            "plessen-digital-self-management",
            "--processed-root",
            str(root / "p"),
            "--reports-root",
            str(root / "r"),
        ]
    )
    assert code == 0
    return root


def test_stage_outputs_and_claims(plessen: Path) -> None:
    reports = plessen / "r" / "plessen-digital-self-management"
    processed = plessen / "p" / "plessen-digital-self-management"
    for name in (
        "sof.csv",
        "sof.html",
        "claims.json",
        "forest_pain.png",
        "funnel_pain.png",
        "forest_function.png",
    ):
        assert (reports / name).is_file(), name
    for name in (
        "trial_results.parquet",
        "quarantine.parquet",
        "review_report.json",
        "pooled.json",
    ):
        assert (processed / name).is_file(), name
    tr = pd.read_parquet(processed / "trial_results.parquet")
    for column in (
        "trial_id",
        "citation",
        "year",
        "arm",
        "arm_class",
        "n",
        "mean",
        "sd",
        "instrument_label",
        "timepoint_weeks",
        "rob_overall",
        "change_score",
        "sd_rule",
    ):
        assert column in tr.columns
    claims = json.loads((reports / "claims.json").read_text())
    assert {c["claim_id"] for c in claims} == {
        "C-plessen-digital-self-management-pain",
        "C-plessen-digital-self-management-function",
        "C-plessen-digital-self-management-cbt-exercise-pain",
    }
    for claim in claims:
        assert claim["synthetic"] is False
        assert claim["certainty"] in ("high", "moderate", "low", "very_low")
        assert len(claim["grade"]) == 5
        for sentence in re.split(r"(?<=\.)\s+", claim["sentence"].strip()):
            assert len(sentence.split()) <= 20, sentence
        n = claim["numbers"]
        for key in (
            "estimate",
            "ci_low",
            "ci_high",
            "units",
            "k",
            "n_total",
            "tau2",
            "i2",
            "pi_low",
            "pi_high",
        ):
            assert key in n
        assert len(claim["trials"]) == n["k"]
    pain = next(c for c in claims if c["claim_id"].endswith("-pain") and "cbt" not in c["claim_id"])
    assert pain["numbers"]["k"] == 11
    assert pain["numbers"]["estimate"] < 0  # less pain with self-management
    sof = pd.read_csv(reports / "sof.csv")
    assert list(sof["question"]) == ["pain", "function", "cbt-exercise-pain"]
    for domain in (
        "risk of bias",
        "inconsistency",
        "indirectness",
        "imprecision",
        "publication bias",
    ):
        assert domain in sof.columns


def test_unknown_review_is_a_user_error(capsys) -> None:
    assert main(["review", "no-such-review"]) == 2
    assert "review.reviews has no 'no-such-review'" in capsys.readouterr().err
