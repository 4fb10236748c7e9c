"""End to end: `dvc repro` on a copy of the project rebuilds everything, then has nothing to do.

This is the project's promise to researchers, checked for real: a fresh copy (no outputs, no
DVC cache), the shipped params, real DVC and real notebook execution. Slow (about 1-2 minutes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
_SKIP = {
    ".venv",
    ".git",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "reports",
    "__pycache__",
    ".backpain-key",
}

pytestmark = pytest.mark.slow


def _copy_project(target: Path) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in _SKIP or n.endswith(".egg-info")}
        relative = Path(folder).relative_to(REPO).as_posix()
        if relative == "data":
            skipped.add("processed")
        if relative == "data/raw":
            skipped.add("etmi-reference")
        if relative == ".dvc":
            skipped |= {"cache", "tmp"}
        if relative == "benchmarks":
            skipped.add("results")
        return skipped

    shutil.copytree(REPO, target, ignore=ignore)


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (
        f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def repro(tmp_path_factory):
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} not found: the real trial data must sit beside the repository")
    parent = tmp_path_factory.mktemp("e2e")
    project = parent / "project"
    _copy_project(project)
    (parent / "shared").symlink_to(SHARED)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "BACKPAIN_PSEUDONYM_KEY": "end-to-end-test-key-" + "0" * 24,
        "DVC_NO_ANALYTICS": "1",
    }
    _run(["git", "init", "-q"], project, env)
    first = _run(["dvc", "repro"], project, env)
    return project, env, first


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
        for claim in json.loads(claims.read_text(encoding="utf-8"))["claims"]:
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
