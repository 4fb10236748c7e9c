"""Atomic, deterministic writing."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from pipeline.io import clean_stale_staging, normalise_zip, to_json_text, write_atomic, write_json


def test_failed_write_leaves_no_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.parquet"

    def broken(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError):
        write_atomic(target, broken)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_version(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        write_atomic(target, lambda tmp: (_ for _ in ()).throw(RuntimeError("boom")))
    assert json.loads(target.read_text()) == {"a": 1}


def test_json_is_sorted_and_nan_becomes_null():
    text = to_json_text({"b": float("nan"), "a": pd.NA, "c": [1.5]})
    assert text.index('"a"') < text.index('"b"') < text.index('"c"')
    assert json.loads(text) == {"a": None, "b": None, "c": [1.5]}


def test_xlsx_bytes_do_not_depend_on_the_time_of_saving():
    frame = pd.DataFrame({"x": [1, 2]})
    payloads = []
    for created in ("2001-01-01T00:00:00Z", "2024-05-05T10:11:12Z"):
        sink = io.BytesIO()
        frame.to_excel(sink, index=False, engine="openpyxl")
        raw = zipfile.ZipFile(io.BytesIO(sink.getvalue()))
        rebuilt = io.BytesIO()
        with zipfile.ZipFile(rebuilt, "w") as z:  # simulate a different save time
            for info in raw.infolist():
                data = raw.read(info.filename)
                if info.filename == "docProps/core.xml":
                    data = data.replace(b"</dcterms:created>", b"</dcterms:created>").replace(
                        data[data.index(b"<dcterms:created") : data.index(b"</dcterms:created>")],
                        b'<dcterms:created xsi:type="dcterms:W3CDTF">' + created.encode(),
                    )
                z.writestr(zipfile.ZipInfo(info.filename, date_time=(1999, 1, 1, 0, 0, 0)), data)
        payloads.append(normalise_zip(rebuilt.getvalue()))
    assert payloads[0] == payloads[1]
    assert pd.read_excel(io.BytesIO(payloads[0]))["x"].tolist() == [1, 2]


def test_raw_data_hash_covers_every_input_and_the_mapping():
    from pipeline.io import raw_data_sha256

    report = {
        "provenance": {
            "input_files": {
                "a": {"path": "x/a.csv", "sha256": "1" * 64},
                "b": {"path": "x/b.xlsx", "sha256": "2" * 64},
            },
            "study_yaml_sha256": "3" * 64,
        }
    }
    first = raw_data_sha256(report)
    moved = json.loads(json.dumps(report))
    moved["provenance"]["input_files"]["a"]["path"] = "elsewhere/a.csv"  # same bytes, other place
    assert raw_data_sha256(moved) == first
    for key in ("a", "b"):
        changed = json.loads(json.dumps(report))
        changed["provenance"]["input_files"][key]["sha256"] = "9" * 64
        assert raw_data_sha256(changed) != first
    edited = json.loads(json.dumps(report))
    edited["provenance"]["study_yaml_sha256"] = "4" * 64
    assert raw_data_sha256(edited) != first


# ---------------------------------------------------------------------------------------------
# Temporary files live outside the destination folder; a killed writer leaves nothing there.
# ---------------------------------------------------------------------------------------------

_SLOW_WRITER = """
import sys, time
from pathlib import Path
from pipeline.io import write_atomic

def slow(tmp):
    with open(tmp, "wb") as handle:
        handle.write(b"half a figure")
        handle.flush()
        Path(sys.argv[2]).write_text(str(tmp))  # tell the parent where the temporary file is
        time.sleep(60)

write_atomic(Path(sys.argv[1]), slow)
"""


def test_temporary_file_is_written_outside_the_destination_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the project folder: staging goes to .backpain-tmp/ in it
    out = tmp_path / "reports" / "study" / "figures"
    seen = []

    def write(tmp):
        seen.append(tmp)
        assert list(out.iterdir()) == []  # nothing in the output folder while writing
        tmp.write_bytes(b"png")

    write_atomic(out / "forest.png", write)
    assert seen[0].parent.parent == tmp_path / ".backpain-tmp"
    assert [p.name for p in out.iterdir()] == ["forest.png"]
    assert (out / "forest.png").read_bytes() == b"png"
    assert not seen[0].exists()


def test_failed_write_leaves_no_temporary_in_the_staging_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError):
        write_atomic(
            tmp_path / "reports" / "x.json", lambda tmp: (_ for _ in ()).throw(RuntimeError)
        )
    assert list((tmp_path / "reports").iterdir()) == []
    assert [p for p in (tmp_path / ".backpain-tmp").rglob("*") if p.is_file()] == []


def test_killed_writer_leaves_nothing_in_the_output_and_the_next_run_cleans_up(tmp_path):
    out = tmp_path / "reports" / "study" / "figures"
    marker = tmp_path / "tmp-path.txt"
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(out / "forest.png"), str(marker)], cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the writer never started"
        os.kill(process.pid, signal.SIGKILL)  # kill -9 in the middle of the write
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    left = Path(marker.read_text())
    assert left.exists() and left.parent.parent == tmp_path / ".backpain-tmp"
    assert list(out.iterdir()) == []  # no *.tmp and no half-written figure in the output folder
    rerun = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pipeline.io import write_text; write_text('reports/a.md', 'a')",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert not left.parent.exists()  # the dead process's staging folder is gone
    assert [p for p in (tmp_path / ".backpain-tmp").rglob("*")] == []


def test_leftover_temporary_of_an_older_version_is_removed_by_the_next_write(tmp_path):
    stale = tmp_path / ".forest.png.abc123.tmp"  # what write_atomic used to leave beside outputs
    stale.write_bytes(b"half")
    write_atomic(tmp_path / "forest.png", lambda tmp: tmp.write_bytes(b"png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forest.png"]


def test_stale_staging_folders_of_live_processes_are_kept(tmp_path):
    root = tmp_path / ".backpain-tmp"
    alive = root / f"{os.getppid()}-abc"  # the parent process is running
    dead = root / "999999999-abc"  # no such process
    for folder in (alive, dead):
        folder.mkdir(parents=True)
        (folder / "x.tmp").write_bytes(b"")
    assert clean_stale_staging(root) == [dead]
    assert alive.exists() and not dead.exists()
