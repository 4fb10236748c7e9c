"""Provenance that travels with results: software versions, git commit, hashes of inputs and parameters."""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pipeline import __version__

# The libraries whose versions can change a number in our outputs.
_TRACKED_PACKAGES = ("numpy", "pandas", "pyarrow", "scipy", "statsmodels", "plotnine")


@cache
def software_versions() -> dict[str, str]:
    """Versions of Python, this package and the numerical libraries it relies on."""
    versions = {"python": platform.python_version(), "backpain-pipeline": __version__}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(repo: str | Path = ".") -> str:
    """The current git commit (with ``-dirty`` when tracked files changed), or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit
