"""Atomic, deterministic writing."""

from __future__ import annotations

import io
import json
import zipfile

import pandas as pd
import pytest

from pipeline.io import normalise_zip, to_json_text, write_atomic, write_json


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
