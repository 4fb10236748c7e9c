"""Copy the project and run `dvc repro` in the copy: the machinery of the end-to-end tests.

Used by the session fixture ``repro`` (conftest.py) and by test_reproducible.py. Each copy is
built once per test session even under pytest-xdist (:func:`build_once`: a file lock in the
folder the workers share), and every command in a copy holds that copy's lock (:func:`run`),
so tests on different workers never run DVC in the same copy at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TEST_KEY = "end-to-end-test-key-" + "0" * 24
_SKIP = {
    ".venv",
    ".git",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    ".backpain-tmp",
    "reports",
    "__pycache__",
    ".backpain-key",
}


def copy_project(target: Path) -> None:
    """A fresh copy of the project: sources and raw study.yaml files, no outputs, no DVC cache."""

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


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a command in a copy (holding the copy's lock), failing the test with the tail of its
    output if it fails."""
    with FileLock(str(Path(cwd).parent / ".commands.lock")):
        result = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900
        )
    assert result.returncode == 0, (
        f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def shared_tmp(tmp_path_factory) -> Path:
    """A folder shared by every xdist worker of this session (the base temp of one process)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(tmp_path_factory, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder)`` once per session across xdist workers; later callers get its result.

    ``folder`` is ``<shared tmp>/<name>/``; ``build`` returns the project folder it made.
    """
    root = shared_tmp(tmp_path_factory)
    done = root / f"{name}.done.json"
    with FileLock(str(root / f"{name}.build.lock")):
        if done.exists():  # built (or failed) on another worker: do not build again
            record = json.loads(done.read_text())
            if "error" in record:
                raise RuntimeError(f"building {name} failed on another worker: {record['error']}")
            return Path(record["project"])
        try:
            project = build(root / name)
        except BaseException as error:
            done.write_text(json.dumps({"error": f"{type(error).__name__}: {error}"[:2000]}))
            raise
        done.write_text(json.dumps({"project": str(project)}))
        return project


def snapshot_outputs(project: Path, trees: tuple[str, ...] = ("data/processed", "reports")) -> Path:
    """Copy the output trees of a fresh repro beside the project, before tests rerun stages."""
    target = project.parent / "outputs-after-first-repro"
    for tree in trees:
        shutil.copytree(project / tree, target / tree)
    return target


def repro_env(key: str = TEST_KEY) -> dict[str, str]:
    """The environment of a stage run: this venv's tools first, the pseudonym key, no analytics."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "BACKPAIN_PSEUDONYM_KEY": key,
        "DVC_NO_ANALYTICS": "1",
    }


def repro_copy(parent: Path, name: str = "project", key: str = TEST_KEY) -> Path:
    """Copy the project to ``parent/name`` (with ``parent/shared`` -> the real data), `git init`
    it, run `dvc repro` and snapshot its outputs (:func:`snapshot_outputs`). Returns the project."""
    if not SHARED.is_dir():
        raise FileNotFoundError(
            f"{SHARED} not found: the real trial data must sit beside the repository"
        )
    parent.mkdir(parents=True, exist_ok=True)
    project = parent / name
    copy_project(project)
    (parent / "shared").symlink_to(SHARED)
    env = repro_env(key)
    run(["git", "init", "-q"], project, env)
    run(["dvc", "repro"], project, env)
    snapshot_outputs(project)
    return project
