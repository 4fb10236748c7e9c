"""Shared fixtures: a small simulated study and the paths of the real trial data."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.simulate import CohortSpec, ExportSpec, simulate_study, write_study

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def reference_study():
    """The reference cohort at its shipped defaults (in memory)."""
    return simulate_study(CohortSpec(), ExportSpec())


@pytest.fixture(scope="session")
def reference_dir(tmp_path_factory, reference_study) -> Path:
    """The reference cohort written to a temporary folder, as ``simulate`` writes it."""
    out = tmp_path_factory.mktemp("etmi-reference")
    write_study(reference_study, out)
    return out


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The real public trial data beside the repository (never copied into it)."""
    if not REALDATA.is_dir():
        pytest.fail(f"real trial data not found at {REALDATA}: ../shared must sit beside the repo")
    return REALDATA


@pytest.fixture(scope="session")
def repro(tmp_path_factory):
    """A copy of the project after one `dvc repro` (slow; built once per session, shared by the
    end-to-end tests on every xdist worker). Returns (project folder, environment, None)."""
    from e2e_helpers import SHARED, build_once, repro_copy, repro_env

    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} not found: the real trial data must sit beside the repository")
    return build_once(tmp_path_factory, "e2e", repro_copy), repro_env(), None
