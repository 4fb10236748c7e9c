"""Readers for every supported export format, all returning the same shape.

Each ``read_*`` function returns a :class:`RawTable`: an Arrow table in which **every column is
text** exactly as exported (blank cells are null, nothing else is interpreted), plus the value
labels that SPSS, Stata and REDCap files carry. Interpreting text -- missing-value codes,
numbers, dates, labels -- is the job of ingestion, in one place, so every format is validated
the same way. Problems a user can fix (missing file, wrong encoding, broken CSV, missing sheet)
raise :class:`~pipeline.errors.InputFileError` naming the file and the problem.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pipeline.errors import InputFileError
from pipeline.ingest.config import FileSpec

_REDCAP_FIELD = "Variable / Field Name"
_REDCAP_CHOICES = "Choices, Calculations, OR Slider Labels"


@dataclass(frozen=True)
class RawTable:
    """One input file as text columns, with its value labels (column -> {code: label})."""

    name: str
    path: Path
    table: pa.Table
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


def read_source(spec: FileSpec, path: Path) -> RawTable:
    """Read one input file according to its ``study.yaml`` entry."""
    if not path.exists():
        raise InputFileError(f"{path}: file not found (files.{spec.name}.path in study.yaml)")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder, expected a {spec.format} file")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: file is empty")
    reader: Callable[[FileSpec, Path], RawTable] = _READERS[spec.format]
    table = reader(spec, path)
    if table.num_rows == 0:
        raise InputFileError(f"{path}: no data rows (only a header, or an empty sheet)")
    return table


def read_csv(spec: FileSpec, path: Path) -> RawTable:
    """CSV or TSV with a header row; every column read as text."""
    delimiter = spec.delimiter or ("\t" if spec.format == "tsv" else ",")
    return RawTable(spec.name, path, _read_delimited(path, delimiter, spec.encoding))


def read_xlsx(spec: FileSpec, path: Path) -> RawTable:
    """An Excel sheet (openpyxl); numbers become their shortest text form."""
    sheet = 0 if spec.sheet is None else spec.sheet
    try:
        frame = pd.read_excel(path, sheet_name=sheet, dtype=object, engine="openpyxl")
    except ValueError as exc:
        if "not found" in str(exc) or "Worksheet" in str(exc):
            sheets = pd.ExcelFile(path, engine="openpyxl").sheet_names
            raise InputFileError(
                f"{path}: no sheet {sheet!r} (sheets: {', '.join(sheets)})"
            ) from None
        raise InputFileError(f"{path}: cannot read as xlsx ({exc})") from None
    except (zipfile.BadZipFile, OSError, KeyError) as exc:
        raise InputFileError(
            f"{path}: not a readable xlsx file ({type(exc).__name__}: {exc})"
        ) from None
    return RawTable(spec.name, path, _frame_as_text(frame, path))


def read_sav(spec: FileSpec, path: Path) -> RawTable:
    """SPSS ``.sav`` (pyreadstat): codes as text, value labels kept beside them."""
    return _read_readstat(spec, path, "read_sav")


def read_dta(spec: FileSpec, path: Path) -> RawTable:
    """Stata ``.dta`` (pyreadstat): codes as text, value labels kept beside them."""
    return _read_readstat(spec, path, "read_dta")


def read_parquet(spec: FileSpec, path: Path) -> RawTable:
    """Parquet (pyarrow); every column cast to text."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFileError(f"{path}: not a readable Parquet file ({exc})") from None
    return RawTable(spec.name, path, _frame_as_text(table.to_pandas(), path))


def read_redcap(spec: FileSpec, path: Path) -> RawTable:
    """A REDCap records export (CSV, raw codes) plus its data dictionary for value labels.

    Events (``redcap_event_name``) and repeating instruments (``redcap_repeat_instrument``,
    ``redcap_repeat_instance``) stay as columns; the timepoint of a row is its event, or
    ``event#instance`` for repeated instances (see :func:`redcap_timepoints`).
    """
    table = _read_delimited(path, spec.delimiter or ",", spec.encoding)
    labels: dict[str, dict[str, str]] = {}
    if spec.data_dictionary is not None:
        dictionary_path = path.parent / spec.data_dictionary
        if not dictionary_path.exists():
            raise InputFileError(f"{dictionary_path}: REDCap data dictionary not found")
        dictionary = _read_delimited(dictionary_path, ",", spec.encoding).to_pandas()
        for column in (_REDCAP_FIELD, _REDCAP_CHOICES):
            if column not in dictionary.columns:
                raise InputFileError(
                    f"{dictionary_path}: not a REDCap data dictionary (no column '{column}')"
                )
        for name, choices in zip(
            dictionary[_REDCAP_FIELD], dictionary[_REDCAP_CHOICES], strict=True
        ):
            if isinstance(choices, str) and "," in choices:
                labels[str(name)] = parse_redcap_choices(choices)
    if "redcap_event_name" in table.column_names:
        table = table.append_column("redcap_timepoint", redcap_timepoints(table))
    return RawTable(spec.name, path, table, labels)


def parse_redcap_choices(choices: str) -> dict[str, str]:
    """``"1, PRT | 2, Placebo"`` -> ``{"1": "PRT", "2": "Placebo"}``."""
    out = {}
    for part in choices.split("|"):
        code, _, label = part.partition(",")
        if label:
            out[code.strip()] = label.strip()
    return out


def redcap_timepoints(table: pa.Table) -> pa.ChunkedArray:
    """The event of each row, with ``#<instance>`` appended for repeated instances."""
    event = table.column("redcap_event_name")
    if "redcap_repeat_instance" not in table.column_names:
        return event
    instance = table.column("redcap_repeat_instance")
    with_instance = pc.binary_join_element_wise(event, instance, "#")
    return pc.if_else(pc.is_valid(instance), with_instance, event)


def _read_delimited(path: Path, delimiter: str, encoding: str) -> pa.Table:
    header = _read_header(path, delimiter, encoding)
    try:
        return pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(encoding=_arrow_encoding(encoding), block_size=1 << 24),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        message = str(exc).splitlines()[0]
        if "decode" in message.lower() or isinstance(exc, UnicodeDecodeError):
            message = f"text is not valid {encoding} (set files.<name>.encoding in study.yaml)"
        raise InputFileError(f"{path}: cannot parse as delimited text: {message}") from None


def _arrow_encoding(encoding: str) -> str:
    """Arrow reads UTF-8 natively only when told 'utf8'; other spellings go through a slow transcoder."""
    return "utf8" if encoding.lower().replace("-", "").replace("_", "") == "utf8" else encoding


def _read_header(path: Path, delimiter: str, encoding: str) -> list[str]:
    """The header row, checked: present, text, without blank or repeated names."""
    try:
        with open(path, encoding=encoding, newline="") as handle:
            first = handle.readline()
    except UnicodeDecodeError:
        raise InputFileError(
            f"{path}: header is not valid {encoding} text (binary file, or set files.<name>.encoding)"
        ) from None
    except LookupError:
        raise InputFileError(f"{path}: unknown encoding {encoding!r}") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot open the file ({exc.strerror or exc})") from None
    first = first.lstrip("\ufeff")
    if "\x00" in first:
        raise InputFileError(f"{path}: looks like a binary file, not delimited text")
    if not first.strip():
        raise InputFileError(f"{path}: first line is empty, expected a header row")
    names = next(csv.reader(io.StringIO(first), delimiter=delimiter))
    blank = [i + 1 for i, n in enumerate(names) if not n.strip()]
    if blank:
        raise InputFileError(f"{path}: header has blank column names (positions {blank})")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputFileError(f"{path}: header repeats column names {repeated}")
    return names


def _read_readstat(spec: FileSpec, path: Path, function: str) -> RawTable:
    import pyreadstat

    try:
        frame, meta = getattr(pyreadstat, function)(str(path), apply_value_formats=False)
    except Exception as exc:  # pyreadstat raises its own ReadstatError / PyreadstatError
        raise InputFileError(f"{path}: not a readable {spec.format} file ({exc})") from None
    labels = {
        column: {_code_text(code): str(label) for code, label in mapping.items()}
        for column, mapping in (meta.variable_value_labels or {}).items()
    }
    return RawTable(spec.name, path, _frame_as_text(frame, path), labels)


def _frame_as_text(frame: pd.DataFrame, path: Path) -> pa.Table:
    """Every column of a typed frame as text: whole numbers without '.0', missing as null."""
    names = [str(c) for c in frame.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputFileError(f"{path}: repeated column names {repeated}")
    return pa.table(
        {
            name: _column_as_text(frame[column])
            for name, column in zip(names, frame.columns, strict=True)
        }
    )


def _column_as_text(series: pd.Series) -> pa.Array:
    """One column as text, vectorised where the column has one type (Arrow casts 3.0 to '3')."""
    try:
        array = pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python objects: fall back to one by one
        return pa.array(_text_values(series), type=pa.string())
    if pa.types.is_boolean(array.type):
        array = pc.cast(array, pa.int8())
    if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
        return pa.array(_text_values(series), type=pa.string())
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), pa.string())
    text = pc.cast(array, pa.string())
    blank = pc.equal(pc.utf8_trim_whitespace(text), "")
    return pc.if_else(pc.fill_null(blank, False), pa.scalar(None, pa.string()), text)


def _text_values(series: pd.Series) -> list[str | None]:
    values = series.to_numpy(dtype=object)
    return [None if _is_missing(v) else _code_text(v) for v in values]


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NaT:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _code_text(value: object) -> str:
    """Text of a cell value: 3.0 -> '3', 2.5 -> '2.5', dates ISO, strings unchanged."""
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.isoformat()
    return str(value)


_READERS: dict[str, Callable[[FileSpec, Path], RawTable]] = {
    "csv": read_csv,
    "tsv": read_csv,
    "xlsx": read_xlsx,
    "sav": read_sav,
    "dta": read_dta,
    "parquet": read_parquet,
    "redcap": read_redcap,
}

# Normalised label matching: case, spaces and punctuation do not matter ("E.T.M.I." == "etmi");
# numbers compare as numbers ("1.0" == "1", "-1" != "1").
NUMBER_LABEL = r"^[-+]?\d+(\.\d*)?$"
_NUMBER_LABEL = re.compile(NUMBER_LABEL)
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise_label(value: object) -> str:
    """The key used to match raw labels: lower case, letters and digits only; numbers canonical."""
    text = (value if isinstance(value, str) else _code_text(value)).strip().lower()
    if _NUMBER_LABEL.match(text):
        number = text.lstrip("+")
        if "." in number:
            number = number.rstrip("0").rstrip(".")
        return "0" if number == "-0" else number
    return _NOT_ALNUM.sub("", text)
