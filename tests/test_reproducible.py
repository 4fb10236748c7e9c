"""Two clones in different folders, same pseudonym key: byte-identical outputs, no machine paths.

The first clone is the end-to-end fixture ``repro`` (conftest.py; its `dvc repro` is shared with
test_pipeline_e2e.py, so this test costs one more full `dvc repro`, about 1.5 minutes on 2 cores).
The second clone sits at a different depth under a different folder name, so any absolute path
that leaks into an output (papermill parameters, tracebacks, provenance) makes the bytes differ
and is also caught directly by searching every output for both project paths. Every stage runs
in both clones, covering ingest, analyse, meta, summarise and notebooks of all studies.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pandas as pd
import pytest
from e2e_helpers import build_once, repro_copy
from filelock import FileLock

from pipeline.notebooks import relative_posix, show, strip_machine_paths
from pipeline.summarise.figures import Figure, figure_png, plot_balance

OUTPUT_TREES = ("data/processed", "reports")


def _files(project: Path) -> dict[str, bytes]:
    """Every file under the output trees, by path relative to the project."""
    return {
        path.relative_to(project).as_posix(): path.read_bytes()
        for tree in OUTPUT_TREES
        for path in sorted((project / tree).rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def second_clone(tmp_path_factory, repro):
    """(first, second): the two clones (each with a snapshot of its outputs right after its
    repro, as test_pipeline_e2e.py reruns stages in the first clone later)."""
    first, env, _ = repro
    key = env["BACKPAIN_PSEUDONYM_KEY"]

    def build(folder: Path) -> Path:
        return repro_copy(folder / "home" / "researcher", name="backpain-clone", key=key)

    second = build_once(tmp_path_factory, "another-machine", build)
    assert first.resolve() != second.resolve()
    return first, second


def _outputs(project: Path) -> Path:
    return project.parent / "outputs-after-first-repro"


@pytest.mark.slow
def test_two_clones_give_byte_identical_processed_data_and_reports(second_clone):
    first, second = second_clone
    a, b = _files(_outputs(first)), _files(_outputs(second))
    assert a, "no outputs found"
    only_first, only_second = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
    differing = sorted(name for name in a.keys() & b.keys() if a[name] != b[name])
    assert not (only_first or only_second or differing), (
        f"outputs differ between clones {first} and {second}:\n"
        f"  differing bytes: {differing}\n  only in the first: {only_first}\n"
        f"  only in the second: {only_second}"
    )
    for study in ("etmi-reference", "boulder-prt-2022", "boulder-prt-5yr", "stops"):
        assert len([n for n in a if n.startswith(f"reports/{study}/notebooks/")]) == 3, study


@pytest.mark.slow
def test_no_output_carries_a_path_of_the_build_machine(second_clone):
    for project in second_clone:
        needles = {str(project).encode(), str(project.resolve()).encode(), b"/tmp/"}
        leaks = {
            name: sorted(n.decode() for n in needles if n in data)
            for name, data in _files(_outputs(project)).items()
        }
        leaks = {name: found for name, found in leaks.items() if found}
        assert not leaks, f"absolute paths in outputs of {project}: {leaks}"


@pytest.mark.slow
def test_no_temporary_file_is_left_in_the_outputs(second_clone):
    for project in second_clone:
        with FileLock(str(project.parent / ".commands.lock")):  # no stage running meanwhile
            stray = [
                p.relative_to(project).as_posix()
                for tree in OUTPUT_TREES
                for p in (project / tree).rglob("*")
                if p.name.endswith(".tmp") or (p.name.startswith(".") and p.name != ".gitignore")
            ]
            staging = project / ".backpain-tmp"
            left = list(staging.iterdir()) if staging.exists() else []
        assert not stray, f"temporary files in {project}: {stray}"
        assert not left, f"staging folders left in {project}: {left}"


# ---------------------------------------------------------------------------------------------
# Fast checks of the pieces (no dvc): paths, PNG bytes and the size notebooks show figures at.
# ---------------------------------------------------------------------------------------------


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk of a PNG file, read by the PNG specification (RFC 2083)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, payload = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + payload)
        chunks.append((kind, payload))
        at += 12 + length
    return chunks


def _small_figure() -> Figure:
    balance = pd.DataFrame(
        {
            "comparison_id": ["c1", "c1"],
            "estimand": ["ATE", "ATE"],
            "covariate": ["age", "sex=male"],
            "smd_before": [0.3, -0.15],
            "smd_after": [0.02, 0.05],
        }
    )
    return plot_balance(balance)


def test_figure_png_is_deterministic_sized_per_figure_and_has_no_software_chunk():
    figure = _small_figure()
    first, second = figure_png(figure, dpi=50), figure_png(figure, dpi=50)
    assert first == second
    chunks = _png_chunks(first)
    width, height = struct.unpack(">II", chunks[0][1][:8])  # IHDR
    assert (width, height) == (round(figure.width * 50), round(figure.height * 50))
    texts = [payload for kind, payload in chunks if kind in (b"tEXt", b"iTXt", b"zTXt")]
    assert not any(t.startswith((b"Software", b"Creation Time")) for t in texts), texts
    assert not any(kind == b"tIME" for kind, _ in chunks)


def test_notebooks_show_a_figure_at_its_own_width():
    figure = _small_figure()
    image = show(figure, dpi=50)
    assert image.width == round(figure.width * 96)
    assert image.data == figure_png(figure, dpi=50)


def test_notebook_paths_are_relative_and_machine_paths_are_stripped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert relative_posix(tmp_path / "data" / "processed") == "data/processed"
    assert relative_posix("data/processed") == "data/processed"
    text = f'File "{tmp_path}/pipeline/notebooks.py", line 3; cwd {tmp_path}'
    assert strip_machine_paths(text) == 'File "pipeline/notebooks.py", line 3; cwd .'
