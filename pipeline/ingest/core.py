"""The pure core of ingestion: raw text tables + ``study.yaml`` in, canonical tables out.

:func:`ingest` never touches disk. It accounts for every raw row and every mapped cell:

* a **row** is kept, collapsed (exact duplicate of an earlier row), filtered (excluded by the
  study's filter, e.g. healthy controls) or quarantined with a row-level reason (missing id,
  conflicting duplicate, missing/unknown/inconsistent arm, missing/unknown timepoint);
* a **cell** of a mapped column in a kept row is kept, missing (blank or a declared
  missing-value code) or quarantined with a value-level reason (not numeric, out of range,
  not an integer, unparseable or impossible date, unknown level, too many missing items).
  One bad value never throws away the rest of its row.

Everything is vectorised with pyarrow compute and numpy; no loop runs over participants.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import ConfigError, InputFileError
from pipeline.ingest.config import CountSpec, CovariateSpec, FileSpec, OutcomeSpec, StudyConfig
from pipeline.ingest.privacy import identifier_like_by_content, identifier_like_by_name
from pipeline.ingest.readers import NUMBER_LABEL, RawTable, normalise_label
from pipeline.instruments import CANONICAL_DOMAINS, get_instrument, score_items

# Row outcomes (0 = kept) and cell outcomes share one code space; quarantine reasons have messages.
KEPT, MISSING, COLLAPSED, FILTERED = 0, 1, 2, 3
ROW_REASONS = {
    "missing_id": "row has no participant id",
    "conflicting_duplicate": "the same participant (and timepoint) appears in several rows with different values",
    "missing_arm": "row has no arm",
    "unknown_arm": "arm label is not in arms.labels of study.yaml",
    "inconsistent_arm": "the participant's rows name different arms",
    "missing_timepoint": "row has no timepoint",
    "unknown_timepoint": "timepoint code is not in timepoints of study.yaml",
}
VALUE_REASONS = {
    "not_numeric": "not a number",
    "out_of_range": "outside the valid range",
    "not_integer": "not a whole number",
    "unparseable_date": "not a date in the declared format",
    "impossible_date": "date is impossible (before baseline, or age outside 0-120 years)",
    "unknown_level": "value is not one of the declared levels",
    "too_many_missing_items": "too many questionnaire items are blank to score the total",
}
REASON_CODES: dict[str, int] = {
    name: 10 + i for i, name in enumerate([*ROW_REASONS, *VALUE_REASONS])
}
CODE_NAMES = {code: name for name, code in REASON_CODES.items()} | {
    KEPT: "kept",
    MISSING: "missing",
    COLLAPSED: "collapsed",
    FILTERED: "filtered",
}
_NUMBER = r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$"
_REDACTED = "<withheld: identifier>"
_DATE_WITHHELD = "<withheld: date>"

Pseudonymiser = Callable[[pa.ChunkedArray], np.ndarray | pa.Array | pa.ChunkedArray]


@dataclass(frozen=True)
class IngestResult:
    """The canonical tables of one study and the accounting of every raw row and cell."""

    participants: pd.DataFrame
    outcomes: pd.DataFrame
    quarantine: pd.DataFrame
    report: dict[str, Any]


@dataclass
class _Ledger:
    """Row and cell outcomes of one input file, filled in as ingestion proceeds."""

    raw: RawTable
    columns: list[str]  # mapped columns that live in this file (as named in study.yaml)
    missing_codes: set[str]
    physical: dict[str, str] = field(default_factory=dict)  # study.yaml name -> column in the file
    row_status: np.ndarray = field(init=False)
    cells: dict[str, np.ndarray] = field(init=False)
    missing_coded: dict[str, int] = field(default_factory=dict)
    quarantine: list[tuple[np.ndarray, str, int, np.ndarray | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = self.raw.num_rows
        self.row_status = np.zeros(n, dtype=np.int16)
        self.cells = {c: np.zeros(n, dtype=np.int16) for c in self.columns}
        self._text: dict[str, pa.ChunkedArray] = {}

    @property
    def name(self) -> str:
        return self.raw.name

    @property
    def kept(self) -> np.ndarray:
        return self.row_status == KEPT

    def text(self, column: str) -> pa.ChunkedArray:
        """A column as trimmed text, blanks and declared missing-value codes as null."""
        if column not in self._text:
            values = pc.utf8_trim_whitespace(
                self.raw.table.column(self.physical.get(column, column))
            )
            values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
            if self.missing_codes:
                coded = pc.fill_null(pc.is_in(values, pa.array(sorted(self.missing_codes))), False)
                if column in self.cells:
                    self.missing_coded[column] = int(pc.sum(coded).as_py() or 0)
                values = pc.if_else(coded, pa.scalar(None, pa.string()), values)
            self._text[column] = values
        return self._text[column]

    def set_rows(self, mask: np.ndarray, status: int) -> None:
        """Give still-kept rows in ``mask`` a row outcome."""
        self.row_status[mask & (self.row_status == KEPT)] = status

    def quarantine_cells(
        self, column: str, mask: np.ndarray, reason: str, detail: str | np.ndarray | None = None
    ) -> None:
        """Quarantine the cells of ``column`` in ``mask`` (kept rows only), with an optional detail text."""
        mask = mask & self.kept & (self.cells[column] == KEPT)
        if mask.any():
            self.cells[column][mask] = REASON_CODES[reason]
            rows = np.flatnonzero(mask)
            if isinstance(detail, str):
                detail_rows: np.ndarray | None = np.full(len(rows), detail, dtype=object)
            else:
                detail_rows = None if detail is None else detail[rows]
            self.quarantine.append((rows, column, REASON_CODES[reason], detail_rows))

    def mark_missing(self, column: str, mask: np.ndarray) -> None:
        self.cells[column][mask & (self.cells[column] == KEPT)] = MISSING


def ingest(
    tables: Mapping[str, RawTable],
    config: StudyConfig,
    pseudonymise: Pseudonymiser,
    progress: Callable[[str], None] | None = None,
) -> IngestResult:
    """Harmonise one study's raw tables into canonical participants, outcomes and quarantine.

    Parameters
    ----------
    tables
        The study's files as read by :mod:`pipeline.ingest.readers`, keyed by ``files[].name``.
    config
        The validated ``study.yaml``.
    pseudonymise
        Maps an array of raw participant ids to pseudonyms (see :func:`pipeline.ingest.privacy.pseudonymise`).
    progress
        Called with the name of each step (for a progress bar on large inputs).

    Returns
    -------
    IngestResult
        ``participants``: one row per kept participant -- ``study_id``, ``participant_id``
        (pseudonym), ``arm``, ``site``, ``therapist``, one column per covariate, ``sessions``,
        ``n_values_quarantined``, ``source_file``, ``source_row``.
        ``outcomes``: one row per participant x outcome x timepoint with a value --
        ``study_id``, ``participant_id``, ``outcome``, ``domain``, ``instrument``,
        ``timepoint``, ``days`` (from baseline; nominal days where no visit date),
        ``raw_value`` (instrument scale), ``value`` (canonical scale), ``items_answered``,
        ``source_file``, ``source_row``.
        ``quarantine``: one row per quarantined row or value -- ``source_file``,
        ``source_row`` (1 = first data row), ``participant_id``, ``column`` (empty for a whole
        row), ``raw_value``, ``reason``, ``message``, ``raw_record`` (JSON of the row's mapped
        values; identifiers and dates withheld).
        ``report``: counts of rows and cells by outcome and reason for every file.

    Raises
    ------
    InputFileError
        A mapped column is absent from every file, or no row survives validation.
    ConfigError
        The mapping is ambiguous (one label for two arms) or maps a column that holds
        identifiers (e-mails, phone numbers, ...) as data.
    """
    step = progress or (lambda _name: None)
    main_spec = config.main_file
    owners = _column_owners(tables, config)
    ledgers = {
        spec.name: _Ledger(
            raw=tables[spec.name],
            columns=[c for c, (owner, _) in owners.items() if owner == spec.name],
            physical={c: physical for c, (owner, physical) in owners.items() if owner == spec.name},
            missing_codes={str(code) for code in spec.missing_codes}
            | _numeric_variants(spec.missing_codes),
        )
        for spec in config.files
    }
    main = ledgers[main_spec.name]
    _refuse_identifier_data(ledgers, config)

    step("row checks")
    if main_spec.filter is not None:
        keep = _matches(main.text(main_spec.filter.column), main_spec.filter.values)
        main.set_rows(~keep, FILTERED)
    timepoint = _assign_timepoints(main, config) if config.layout == "long" else None
    ids = main.text(config.participant_id)
    main.set_rows(~_valid(ids), REASON_CODES["missing_id"])
    key = (
        ids
        if timepoint is None
        else pc.binary_join_element_wise(ids, pa.array(timepoint[1]), "\x1f")
    )
    _resolve_duplicates(main, key)
    arm = _assign_arms(main, config, ids if timepoint is not None else None)
    if timepoint is not None:
        main.set_rows(timepoint[0] == -1, REASON_CODES["missing_timepoint"])
        main.set_rows(timepoint[0] == -2, REASON_CODES["unknown_timepoint"])
        _check_arm_consistency(main, ids, arm)

    step("lookups")
    join_index = {spec.name: _join(main, ledgers[spec.name], spec) for spec in config.lookup_files}

    def column(name: str) -> tuple[_Ledger, np.ndarray | None]:
        """The ledger that owns a column and the main-row -> owner-row index (None = same rows)."""
        owner = owners[name][0]
        return ledgers[owner], join_index.get(owner)

    step("values")
    parsed = _Parsed(column, ledgers, main_spec.date_format)
    days = _days_from_baseline(config, parsed, main.raw.num_rows) if config.layout == "wide" else {}
    outcome_frames = [
        _outcome_values(name, spec, config, parsed, timepoint, days)
        for name, spec in config.outcomes.items()
    ]
    covariates: dict[str, np.ndarray] = {}
    for name, spec in sorted(config.covariates.items(), key=lambda item: item[1].type == "any_of"):
        covariates[name] = _covariate(name, spec, parsed, covariates)
    covariates = {name: covariates[name] for name in config.covariates}
    sessions = (
        _sessions(config.sessions, parsed) if isinstance(config.sessions, CountSpec) else None
    )
    site = parsed.text_values(config.site) if config.site else None
    therapist = parsed.text_values(config.therapist) if config.therapist else None

    step("outputs")
    kept = main.kept
    if not kept.any():
        raise InputFileError(
            f"{main.raw.path}: no valid rows (all {main.raw.num_rows} rows were filtered or quarantined)"
        )
    pseudonyms = _scatter_pseudonyms(pseudonymise(pc.drop_null(ids)), _valid(ids))
    participants = _participants(
        config, main, pseudonyms, arm, site, therapist, covariates, sessions, ledgers
    )
    outcomes = _outcomes_table(config, main, pseudonyms, outcome_frames)
    quarantine = _quarantine_table(config, ledgers, pseudonyms, owners)
    report = _report(config, ledgers, participants, outcomes, quarantine, owners, join_index, main)
    return IngestResult(participants, outcomes, quarantine, report)


def _scatter_pseudonyms(
    values: np.ndarray | pa.Array | pa.ChunkedArray, valid: np.ndarray
) -> pa.Array:
    """Pseudonyms of the rows with an id, placed back among all rows (null where no id)."""
    if isinstance(values, np.ndarray):  # a pseudonymiser returning Python strings
        out = np.full(len(valid), None, dtype=object)
        out[valid] = values
        return pa.array(out, type=pa.string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    position = np.cumsum(valid) - 1
    return values.take(pa.array(np.maximum(position, 0), mask=~valid))


# ---------------------------------------------------------------------------------------------
# Columns, identifiers and row-level checks


def _column_owners(
    tables: Mapping[str, RawTable], config: StudyConfig
) -> dict[str, tuple[str, str]]:
    """Which file each mapped column is read from: name -> (file, column in that file).

    A plain name is looked up in the main file first, then in the lookups in order; a name
    ``<file>:<column>`` reads that file's column (when two files share a column name).
    """
    order = [config.main_file, *config.lookup_files]
    for spec in order:
        if spec.name not in tables:
            raise InputFileError(f"files.{spec.name}: no table was read for this file")
    names = {spec.name for spec in order}
    owners: dict[str, tuple[str, str]] = {}
    for column in config.mapped_columns():
        prefix, _, rest = column.partition(":")
        if rest and prefix in names:
            candidates = [(prefix, rest)]
        else:
            candidates = [(s.name, column) for s in order]
        owner = next(((f, c) for f, c in candidates if c in tables[f].table.column_names), None)
        if owner is None:
            where = ", ".join(str(tables[f].path.name) for f, _ in candidates)
            raise InputFileError(
                f"column '{candidates[0][1]}' (mapped in study.yaml) is not in {where}: "
                "fix the column name in study.yaml or add the column to the export"
            )
        owners[column] = owner
    main_columns = tables[config.main_file.name].table.column_names
    for spec in config.lookup_files:
        for file_name, columns in (
            (spec.name, tables[spec.name].table.column_names),
            (config.main_file.name, main_columns),
        ):
            if spec.join_on not in columns:
                raise InputFileError(
                    f"{tables[file_name].path}: join column '{spec.join_on}' is missing"
                )
    for spec in order:
        if spec.filter and spec.filter.column not in tables[spec.name].table.column_names:
            raise InputFileError(
                f"{tables[spec.name].path}: filter column '{spec.filter.column}' is missing"
            )
    return owners


def _refuse_identifier_data(ledgers: Mapping[str, _Ledger], config: StudyConfig) -> None:
    """A column mapped as data must not hold identifiers (the id itself and birth dates excepted)."""
    allowed = {config.participant_id} | {
        c.birth_date for c in config.covariates.values() if c.birth_date
    }
    for ledger in ledgers.values():
        for column in ledger.columns:
            if column in allowed or column in config.identifiers:
                continue
            kind = identifier_like_by_content(ledger.raw.table.column(ledger.physical[column]))
            if kind is not None and kind != "national id numbers":
                raise ConfigError(
                    f"{ledger.raw.path}: column '{column}' is mapped as data but looks like it holds "
                    f"{kind}; list it under identifiers in study.yaml, or map another column"
                )


def identifier_columns(table: RawTable, config: StudyConfig) -> dict[str, str]:
    """Columns of a file that are, or look like, identifiers: column -> why (never output)."""
    found = {}
    for column in table.table.column_names:
        if column in config.identifiers:
            found[column] = "declared in study.yaml"
        elif column == config.participant_id:
            found[column] = "participant id (replaced by a keyed pseudonym)"
        elif identifier_like_by_name(column):
            found[column] = "name looks like an identifier"
        else:
            kind = identifier_like_by_content(table.table.column(column))
            if kind is not None:
                found[column] = f"values look like {kind}"
    return found


def _valid(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.is_valid(values), dtype=bool)


def _numeric_variants(codes: list[Any]) -> set[str]:
    """A missing code -99 also matches '-99.0' and '-99.00' in the text."""
    out = set()
    for code in codes:
        try:
            number = float(code)
        except (TypeError, ValueError):
            continue
        if number.is_integer():
            out |= {str(int(number)), f"{number:.1f}", f"{number:.2f}"}
    return out


def normalise_array(values: pa.ChunkedArray) -> pa.Array:
    """Vectorised :func:`pipeline.ingest.readers.normalise_label` (same rules, same results)."""
    distinct, index = _per_distinct_value(values)
    if len(distinct) == 0:
        return pa.nulls(len(index), pa.string())
    taken = _normalise_distinct(distinct).take(pa.array(np.where(index >= 0, index, 0)))
    return pc.if_else(pa.array(index >= 0), taken, pa.scalar(None, pa.string()))


def _normalise_distinct(values: pa.Array) -> pa.Array:
    text = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    is_number = pc.match_substring_regex(text, NUMBER_LABEL)
    number = pc.replace_substring_regex(text, r"^\+", "")
    number = pc.replace_substring_regex(number, r"(\.\d*?)0+$", r"\1")
    number = pc.replace_substring_regex(number, r"\.$", "")
    number = pc.replace_substring_regex(number, r"^-0$", "0")
    word = pc.replace_substring_regex(text, r"[^0-9a-z]+", "")
    return pc.if_else(is_number, number, word)


def _matches(values: pa.ChunkedArray, labels: list[Any]) -> np.ndarray:
    wanted = pa.array(sorted({normalise_label(v) for v in labels}))
    return np.asarray(pc.fill_null(pc.is_in(normalise_array(values), wanted), False), dtype=bool)


def _label_index(
    values: pa.ChunkedArray,
    mapping: dict[str, list[Any]],
    match: str,
    value_labels: dict[str, str],
    where: str,
) -> np.ndarray:
    """Index of the canonical level of each raw value: -1 missing, -2 unknown.

    Raw values match a declared label, or their value label (SPSS/Stata/REDCap) does.
    """
    levels = list(mapping)
    lookup: dict[str, int] = {}
    for i, level in enumerate(levels):
        for label in mapping[level]:
            key = normalise_label(label) if match == "normalised" else str(label).strip()
            if lookup.get(key, i) != i:
                raise ConfigError(f"{where}: label {label!r} is given for two levels")
            lookup[key] = i
    keys = normalise_array(values) if match == "normalised" else values
    index = pc.index_in(keys, pa.array(list(lookup), type=pa.string()))
    codes = np.asarray(
        pa.array(list(lookup.values()), type=pa.int64()).take(pc.fill_null(index, 0)),
        dtype=np.int64,
    )
    found = np.asarray(pc.is_valid(index), dtype=bool)
    if value_labels:
        code_keys = normalise_array(values)
        label_keys = [normalise_label(c) for c in value_labels]
        label_text = [
            normalise_label(v) if match == "normalised" else v for v in value_labels.values()
        ]
        via = pc.index_in(code_keys, pa.array(label_keys, type=pa.string()))
        relabelled = pa.array(label_text, type=pa.string()).take(via)
        index2 = pc.index_in(relabelled, pa.array(list(lookup), type=pa.string()))
        codes2 = np.asarray(
            pa.array(list(lookup.values()), type=pa.int64()).take(pc.fill_null(index2, 0))
        )
        found2 = np.asarray(pc.is_valid(index2), dtype=bool) & ~found
        codes = np.where(found2, codes2, codes)
        found = found | found2
    present = _valid(values)
    return np.where(found, codes, np.where(present, -2, -1))


def _assign_timepoints(main: _Ledger, config: StudyConfig) -> tuple[np.ndarray, list[str | None]]:
    """Long layout: each row's timepoint index (-1 missing, -2 unknown) and a key text for duplicates."""
    column = config.timepoint_column or "redcap_timepoint"
    values = main.text(column)
    mapping = {label: tp.raw for label, tp in config.timepoints.items()}
    index = _label_index(values, mapping, "normalised", {}, "timepoints")
    labels = np.array([*config.timepoints, None, None], dtype=object)
    return index, labels[index].tolist()


def _resolve_duplicates(main: _Ledger, key: pa.ChunkedArray) -> None:
    """Collapse exact copies of earlier rows; quarantine rows that share a key but differ."""
    encoded = pc.dictionary_encode(key)
    codes = np.asarray(
        encoded.combine_chunks().indices.fill_null(-1)
        if isinstance(encoded, pa.ChunkedArray)
        else encoded.indices.fill_null(-1),
        dtype=np.int64,
    )
    eligible = main.kept & (codes >= 0)
    counts = np.bincount(codes[eligible], minlength=max(int(codes.max()) + 1, 1))
    candidates = np.flatnonzero(eligible & (counts[np.maximum(codes, 0)] > 1))
    if len(candidates) == 0:
        return
    rows = main.raw.table.take(pa.array(candidates)).to_pandas()
    exact = rows.duplicated(keep="first").to_numpy()
    main.set_rows(_mask(len(codes), candidates[exact]), COLLAPSED)
    eligible = main.kept & (codes >= 0)
    counts = np.bincount(codes[eligible], minlength=len(counts))
    main.set_rows(
        eligible & (counts[np.maximum(codes, 0)] > 1), REASON_CODES["conflicting_duplicate"]
    )


def _assign_arms(
    main: _Ledger, config: StudyConfig, long_ids: pa.ChunkedArray | None
) -> np.ndarray:
    """Each row's arm index into ``config.arms.labels`` (row-quarantined when missing or unknown).

    Long layout: a row without an arm takes the arm of the participant's other rows (REDCap
    exports record the arm on the first event only).
    """
    spec = config.arms
    labels = main.raw.value_labels.get(spec.column, {})
    index = _label_index(main.text(spec.column), spec.labels, spec.match, labels, "arms.labels")
    if long_ids is not None:
        known = pd.Series(np.where(index >= 0, index, np.nan))
        person = pd.Series(np.asarray(long_ids.to_numpy(zero_copy_only=False), dtype=object))
        carried = known.groupby(person, sort=False).transform("first").to_numpy()
        index = np.where(
            (index == -1) & ~np.isnan(carried), np.nan_to_num(carried, nan=-1), index
        ).astype(np.int64)
    main.set_rows(index == -1, REASON_CODES["missing_arm"])
    main.set_rows(index == -2, REASON_CODES["unknown_arm"])
    return index


def _check_arm_consistency(main: _Ledger, ids: pa.ChunkedArray, arm: np.ndarray) -> None:
    """Long layout: a participant whose kept rows name different arms is quarantined."""
    frame = pd.DataFrame(
        {"id": np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object), "arm": arm}
    )
    frame = frame[main.kept]
    arms_per_id = frame.groupby("id")["arm"].nunique()
    bad = arms_per_id.index[arms_per_id > 1]
    if len(bad):
        mask = np.asarray(
            pc.fill_null(pc.is_in(ids, pa.array(list(bad), type=pa.string())), False), dtype=bool
        )
        main.set_rows(mask, REASON_CODES["inconsistent_arm"])


def _join(main: _Ledger, lookup: _Ledger, spec: FileSpec) -> np.ndarray:
    """Check a lookup table's keys and return, for each main row, its lookup row (-1 = none)."""
    key_column = spec.join_on
    if spec.filter is not None:
        lookup.set_rows(~_matches(lookup.text(spec.filter.column), spec.filter.values), FILTERED)
    keys = lookup.text(key_column)
    lookup.set_rows(~_valid(keys), REASON_CODES["missing_id"])
    _resolve_duplicates(lookup, keys)
    usable = lookup.kept
    positions = np.flatnonzero(usable)
    usable_keys = keys.take(pa.array(positions)) if len(positions) else pa.array([], pa.string())
    index = pc.index_in(main.text(key_column), usable_keys)
    found = np.asarray(pc.is_valid(index), dtype=bool)
    return np.where(
        found,
        positions[np.asarray(index.fill_null(0), dtype=np.int64)] if len(positions) else -1,
        -1,
    )


def _mask(n: int, positions: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, bool)
    mask[positions] = True
    return mask


# ---------------------------------------------------------------------------------------------
# Values


def _per_distinct_value(text: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """The distinct values of a column and each row's index into them (-1 = null).

    Exports repeat a few values (scores, labels, visit dates) over many rows; parsing the
    distinct values once and indexing back is much faster than parsing every row.
    """
    encoded = pc.dictionary_encode(text)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = (
            pa.chunked_array(encoded.chunks, type=encoded.type)
            .unify_dictionaries()
            .combine_chunks()
        )
    indices = np.asarray(encoded.indices.fill_null(-1), dtype=np.int64)
    return encoded.dictionary, indices


def parse_numbers(text: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Numbers from text: (values with NaN for blank or not numeric, mask of numeric cells)."""
    distinct, index = _per_distinct_value(text)
    numeric = np.asarray(
        pc.fill_null(pc.match_substring_regex(distinct, _NUMBER), False), dtype=bool
    )
    values = pc.cast(
        pc.if_else(pa.array(numeric), distinct, pa.scalar(None, pa.string())), pa.float64()
    )
    values = np.append(np.asarray(values.to_numpy(zero_copy_only=False), dtype=float), np.nan)
    numeric = np.append(numeric, False)
    return values[index], numeric[index]


def parse_dates(text: pa.ChunkedArray, date_format: str) -> np.ndarray:
    """Dates from text as datetime64[D] (parsed once per distinct value, see :func:`_parse_date_values`)."""
    distinct, index = _per_distinct_value(text)
    dates = np.append(
        _parse_date_values(pa.chunked_array([distinct]), date_format), np.datetime64("NaT")
    )
    return dates[index]


def _parse_date_values(text: pa.ChunkedArray, date_format: str) -> np.ndarray:
    """Dates from text as datetime64[D]; NaT where missing or not a real date in ``date_format``.

    Arrow parses fast but rolls impossible days over (2022-02-30 -> 2022-03-02), so each value
    must print back to itself; the few that do not (not zero-padded, or impossible) are
    re-checked by pandas, which rejects impossible dates.
    """
    parsed = pc.strptime(text, format=date_format, unit="s", error_is_null=True)
    round_trip = pc.equal(pc.strftime(parsed, format=date_format), text)
    dates = np.asarray(
        pc.cast(parsed, pa.date32()).to_numpy(zero_copy_only=False), dtype="datetime64[D]"
    )
    recheck = np.flatnonzero(
        _valid(text) & ~np.asarray(pc.fill_null(round_trip, False), dtype=bool)
    )
    if len(recheck):
        subset = pd.Series(
            text.take(pa.array(recheck)).to_numpy(zero_copy_only=False), dtype=object
        )
        dates[recheck] = pd.to_datetime(subset, format=date_format, errors="coerce").to_numpy(
            dtype="datetime64[D]"
        )
    return dates


class _Parsed:
    """Parses mapped columns once, marks their cells, and aligns values with the main rows."""

    def __init__(
        self,
        column: Callable[[str], tuple[_Ledger, np.ndarray | None]],
        ledgers: Mapping[str, _Ledger],
        date_format: str,
    ) -> None:
        self._column = column
        self._ledgers = ledgers
        self._date_format = date_format
        self._numbers: dict[str, np.ndarray] = {}
        self._dates: dict[str, np.ndarray] = {}

    def _align(self, values: np.ndarray, index: np.ndarray | None, fill: Any) -> np.ndarray:
        if index is None:
            return values
        out = np.full(len(index), fill, dtype=values.dtype)
        out[index >= 0] = values[index[index >= 0]]
        return out

    def numbers(self, name: str) -> np.ndarray:
        """Numeric values of a column (NaN = missing or quarantined as not numeric), main-aligned."""
        ledger, index = self._column(name)
        if name not in self._numbers:
            text = ledger.text(name)
            present = _valid(text)
            values, numeric = parse_numbers(text)
            ledger.mark_missing(name, ~present)
            ledger.quarantine_cells(name, present & ~numeric, "not_numeric")
            self._numbers[name] = values
        return self._align(self._numbers[name], index, np.nan)

    def restrict(
        self, name: str, bad: np.ndarray, reason: str, detail: str | np.ndarray | None = None
    ) -> None:
        """Quarantine cells of ``name`` where ``bad`` (main-aligned) and forget their values."""
        ledger, index = self._column(name)
        owner_bad = bad if index is None else _mask(ledger.raw.num_rows, index[bad & (index >= 0)])
        owner_detail = detail
        if isinstance(detail, np.ndarray) and index is not None:
            owner_detail = np.full(ledger.raw.num_rows, "", dtype=object)
            owner_detail[index[bad & (index >= 0)]] = detail[bad & (index >= 0)]
        ledger.quarantine_cells(name, owner_bad, reason, owner_detail)
        if name in self._numbers:
            self._numbers[name] = np.where(owner_bad, np.nan, self._numbers[name])
        if name in self._dates:
            self._dates[name] = np.where(owner_bad, np.datetime64("NaT"), self._dates[name])

    def dates(self, name: str) -> np.ndarray:
        """Dates of a column as datetime64[D] (NaT = missing or unparseable), main-aligned."""
        ledger, index = self._column(name)
        if name not in self._dates:
            text = ledger.text(name)
            present = _valid(text)
            parsed = parse_dates(text, self._date_format)
            bad = present & np.isnat(parsed)
            ledger.mark_missing(name, ~present)
            ledger.quarantine_cells(name, bad, "unparseable_date")
            self._dates[name] = parsed
        return self._align(self._dates[name], index, np.datetime64("NaT"))

    def levels(self, name: str, mapping: dict[str, list[Any]]) -> np.ndarray:
        """Index of each value's declared level (-1 missing or quarantined), main-aligned."""
        ledger, index = self._column(name)
        text = ledger.text(name)
        codes = _label_index(
            text, mapping, "normalised", ledger.raw.value_labels.get(name, {}), name
        )
        ledger.mark_missing(name, codes == -1)
        ledger.quarantine_cells(name, codes == -2, "unknown_level")
        return self._align(np.where(codes < 0, -1, codes), index, -1)

    def text_values(self, name: str) -> np.ndarray:
        """A column as text (None = missing), main-aligned; every present cell is kept."""
        ledger, index = self._column(name)
        text = ledger.text(name)
        ledger.mark_missing(name, ~_valid(text))
        return self._align(
            np.asarray(text.to_numpy(zero_copy_only=False), dtype=object), index, None
        )


def _outcome_values(
    name: str,
    spec: OutcomeSpec,
    config: StudyConfig,
    parsed: _Parsed,
    timepoint: tuple[np.ndarray, list[str | None]] | None,
    days: dict[str, np.ndarray],
) -> list[dict[str, Any]]:
    """Raw and canonical values of one outcome, per timepoint, where present (main-file rows)."""
    instrument = get_instrument(spec.instrument)
    if config.layout == "wide":
        sources = {**(spec.columns or {}), **(spec.items or {})}
        per_timepoint = [(label, sources[label]) for label in config.timepoints if label in sources]
    else:
        per_timepoint = [(None, spec.column if spec.column else spec.items)]
    nominal_days = np.array(
        [np.nan if tp.days is None else tp.days for tp in config.timepoints.values()]
        + [np.nan, np.nan]
    )
    frames = []
    for label, source in per_timepoint:
        if isinstance(source, list):
            raw, answered = _score(name, source, spec, instrument, parsed)
        else:
            raw = parsed.numbers(source)
            answered = np.full(len(raw), np.nan)
            bad = ~instrument.in_range(raw)
            parsed.restrict(source, bad, "out_of_range", _range_detail(instrument))
            raw = np.where(bad, np.nan, raw)
        if label is None:  # long layout: the row's own timepoint
            labels = np.array([*config.timepoints, None, None], dtype=object)[timepoint[0]]
            day_values = nominal_days[timepoint[0]]
        else:
            labels = label
            position = list(config.timepoints).index(label)
            day_values = days.get(label, np.full(len(raw), nominal_days[position]))
        keep = ~np.isnan(raw)
        frames.append(
            {
                "row": np.flatnonzero(keep),
                "outcome": name,
                "domain": spec.resolved_domain,
                "instrument": instrument.key,
                "timepoint": labels if isinstance(labels, str) else labels[keep],
                "days": np.asarray(day_values, dtype=float)[keep],
                "raw_value": raw[keep],
                "value": instrument.rescale(raw[keep]),
                "items_answered": answered[keep],
            }
        )
    return frames


def _score(
    name: str, columns: list[str], spec: OutcomeSpec, instrument: Any, parsed: _Parsed
) -> tuple[np.ndarray, np.ndarray]:
    """Score a total from item columns: bad items are quarantined, the missing-item rule applied."""
    scoring = instrument.items
    items = np.column_stack([parsed.numbers(c) + spec.item_offset for c in columns])
    for j, column in enumerate(columns):
        value = items[:, j]
        bad = ~np.isnan(value) & ((value < scoring.item_min) | (value > scoring.item_max))
        detail = f"items of {instrument.key} range {scoring.item_min:g}-{scoring.item_max:g}"
        parsed.restrict(column, bad, "out_of_range", detail)
        items[bad, j] = np.nan
    total, answered = score_items(items, scoring)
    unscorable = np.isnan(total) & (answered > 0)
    for column in columns:
        present = ~np.isnan(parsed.numbers(column))
        parsed.restrict(
            column,
            unscorable & present,
            "too_many_missing_items",
            f"{name}: {scoring.count - scoring.max_missing} of {scoring.count} items needed",
        )
    return total, answered.astype(float)


def _range_detail(instrument: Any) -> str:
    return f"valid range of {instrument.key} is {instrument.raw_min:g}-{instrument.raw_max:g}"


def _days_from_baseline(config: StudyConfig, parsed: _Parsed, n: int) -> dict[str, np.ndarray]:
    """Wide layout: days from the baseline visit for timepoints with a visit-date column."""
    baseline = [label for label, tp in config.timepoints.items() if tp.days == 0 and tp.date_column]
    if not baseline:
        return {}
    base_dates = parsed.dates(config.timepoints[baseline[0]].date_column)
    out = {}
    for label, tp in config.timepoints.items():
        nominal = np.full(n, np.nan if tp.days is None else tp.days)
        if tp.date_column is None:
            continue
        dates = parsed.dates(tp.date_column)
        days = (dates - base_dates).astype("timedelta64[D]").astype(float)
        days[np.isnat(dates) | np.isnat(base_dates)] = np.nan
        before = days < 0
        parsed.restrict(
            tp.date_column,
            before,
            "impossible_date",
            f"visit date before the {baseline[0]} date",
        )
        days[before] = np.nan
        out[label] = np.where(np.isnan(days), nominal, days)
    return out


def _covariate(
    name: str, spec: CovariateSpec, parsed: _Parsed, done: Mapping[str, np.ndarray]
) -> np.ndarray:
    """One covariate's canonical values (float for numeric/age, object for levels, bool-ish for binary)."""
    if spec.type == "numeric":
        values = parsed.numbers(spec.column)
        if spec.range is not None:
            low, high = spec.range
            bad = (values < low) | (values > high)
            parsed.restrict(
                spec.column,
                bad,
                "out_of_range",
                f"valid range of {name} is {low:g}-{high:g}",
            )
            values = np.where(bad, np.nan, values)
        return values
    if spec.type in ("category", "binary"):
        index = parsed.levels(spec.column, spec.levels or {})
        levels = np.array([*(spec.levels or {}), None], dtype=object)
        return levels[index]
    if spec.type == "age_from_birth_date":
        birth = parsed.dates(spec.birth_date)
        at = parsed.dates(spec.at)
        age = (at - birth).astype("timedelta64[D]").astype(float) / 365.25
        age[np.isnat(birth) | np.isnat(at)] = np.nan
        low, high = spec.range or (0, 120)
        bad = (age < low) | (age > high)
        parsed.restrict(
            spec.birth_date,
            bad,
            "impossible_date",
            f"age at {spec.at} outside {low:g}-{high:g} years",
        )
        return np.where(bad, np.nan, np.round(age, 2))
    # any_of: yes when any is yes; no when all are known no; otherwise missing
    stacked = np.column_stack([done[other] for other in spec.of or []])
    any_yes = (stacked == "yes").any(axis=1)
    all_no = (stacked == "no").all(axis=1)
    return np.where(any_yes, "yes", np.where(all_no, "no", None)).astype(object)


def _sessions(spec: CountSpec, parsed: _Parsed) -> np.ndarray:
    values = parsed.numbers(spec.column)
    low, high = spec.range
    out = (values < low) | (values > high)
    parsed.restrict(
        spec.column,
        out,
        "out_of_range",
        f"valid range of sessions is {low:g}-{high:g}",
    )
    fractional = ~np.isnan(values) & ~out & (np.mod(values, 1) != 0)
    parsed.restrict(spec.column, fractional, "not_integer")
    return np.where(out | fractional, np.nan, values)


# ---------------------------------------------------------------------------------------------
# Output tables and report


def _participants(
    config, main, pseudonyms, arm, site, therapist, covariates, sessions, ledgers
) -> pd.DataFrame:
    """One row per kept participant; labels as categoricals in declared order, ids as Arrow strings."""
    n = main.raw.num_rows
    arms = list(config.arms.labels)
    columns: dict[str, Any] = {
        "study_id": _constant_category(config.study_id, n),
        "participant_id": _arrow_strings(pseudonyms),
        "arm": pd.Categorical.from_codes(np.where(arm >= 0, arm, -1), categories=arms),
        "site": pd.Categorical(site if site is not None else np.full(n, None, dtype=object)),
        "therapist": pd.Categorical(
            therapist if therapist is not None else np.full(n, None, dtype=object)
        ),
    }
    for name, spec in config.covariates.items():
        if spec.type == "any_of":
            columns[name] = pd.Categorical(covariates[name], categories=["yes", "no"])
        elif spec.type in ("category", "binary"):
            columns[name] = pd.Categorical(covariates[name], categories=list(spec.levels or {}))
        else:
            columns[name] = np.asarray(covariates[name], dtype=float)
    quarantined_per_row = np.zeros(n, dtype=np.int64)
    for rows, _column, _code, _detail in main.quarantine:
        np.add.at(quarantined_per_row, rows, 1)
    columns |= {
        "sessions": sessions if sessions is not None else np.full(n, np.nan),
        "n_values_quarantined": quarantined_per_row,
        "source_file": _constant_category(main.raw.path.name, n),
        "source_row": np.arange(1, n + 1),
    }
    frame = pd.DataFrame(columns)[main.kept]
    if config.layout == "long":  # one row per participant: first non-missing value in file order
        grouped = frame.groupby("participant_id", sort=False, observed=True)
        counts = grouped["n_values_quarantined"].sum()
        frame = grouped.first().assign(n_values_quarantined=counts).reset_index()
        frame["participant_id"] = frame["participant_id"].astype("string[pyarrow]")
    return frame.reset_index(drop=True)


def _outcomes_table(config, main, pseudonyms, frames) -> pd.DataFrame:
    """The long outcomes table, ordered by outcome, timepoint and source row as declared."""
    entries = [entry for per_outcome in frames for entry in per_outcome]
    outcome_names = list(config.outcomes)
    timepoints = list(config.timepoints)
    sizes = [len(e["row"]) for e in entries]
    row = np.concatenate([e["row"] for e in entries])
    outcome_code = np.repeat([outcome_names.index(e["outcome"]) for e in entries], sizes)
    timepoint_code = np.concatenate(
        [
            np.full(size, timepoints.index(e["timepoint"]))
            if isinstance(e["timepoint"], str)
            else pd.Categorical(e["timepoint"], categories=timepoints).codes
            for e, size in zip(entries, sizes, strict=True)
        ]
    )
    columns = {
        k: np.concatenate([e[k] for e in entries])
        for k in ("days", "raw_value", "value", "items_answered")
    }
    pick = np.flatnonzero(main.kept[row])
    if config.layout == "long":  # rows of one outcome hold several timepoints: sort them
        pick = pick[np.lexsort((row[pick], timepoint_code[pick], outcome_code[pick]))]
    row, outcome_code, timepoint_code = row[pick], outcome_code[pick], timepoint_code[pick]
    instruments = sorted({config.outcomes[o].instrument for o in outcome_names})
    domains = sorted({config.outcomes[o].resolved_domain for o in outcome_names})
    instrument_code = np.array(
        [instruments.index(config.outcomes[o].instrument) for o in outcome_names]
    )
    domain_code = np.array(
        [domains.index(config.outcomes[o].resolved_domain) for o in outcome_names]
    )
    n = len(row)
    return pd.DataFrame(
        {
            "study_id": _constant_category(config.study_id, n),
            "participant_id": _arrow_strings(pseudonyms.take(pa.array(row))),
            "outcome": pd.Categorical.from_codes(outcome_code, categories=outcome_names),
            "domain": pd.Categorical.from_codes(domain_code[outcome_code], categories=domains),
            "instrument": pd.Categorical.from_codes(
                instrument_code[outcome_code], categories=instruments
            ),
            "timepoint": pd.Categorical.from_codes(timepoint_code, categories=timepoints),
            "days": columns["days"][pick],
            "raw_value": columns["raw_value"][pick],
            "value": columns["value"][pick],
            "items_answered": _nullable_int(columns["items_answered"][pick]),
            "source_file": _constant_category(main.raw.path.name, n),
            "source_row": row + 1,
        }
    )


def _nullable_int(values: np.ndarray) -> pd.arrays.IntegerArray:
    missing = np.isnan(values)
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), mask=missing)


def _constant_category(value: str, n: int) -> pd.Categorical:
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[value])


def _arrow_strings(values: pa.Array | pa.ChunkedArray) -> pd.arrays.ArrowStringArray:
    """Arrow-backed pandas strings (no Python objects: fast and small for a million ids)."""
    chunked = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    return pd.arrays.ArrowStringArray(chunked)


def _quarantine_table(config, ledgers, pseudonyms, owners) -> pd.DataFrame:
    withheld = set(config.identifiers) | {
        c.birth_date for c in config.covariates.values() if c.birth_date
    }
    dates = {tp.date_column for tp in config.timepoints.values() if tp.date_column}
    dates |= {c.at for c in config.covariates.values() if c.at}
    frames = []
    for ledger in ledgers.values():
        record_columns = [ledger.physical[c] for c in ledger.columns if c != config.participant_id]
        is_main = ledger.name == config.main_file.name
        row_q = np.flatnonzero(ledger.row_status >= 10)
        pieces = []
        if len(row_q):
            pieces.append(
                pd.DataFrame(
                    {"row": row_q, "column": "", "code": ledger.row_status[row_q], "detail": ""}
                )
            )
        for rows, column, code, detail in ledger.quarantine:
            pieces.append(
                pd.DataFrame(
                    {
                        "row": rows,
                        "column": column,
                        "code": code,
                        "detail": "" if detail is None else detail,
                    }
                )
            )
        if not pieces:
            continue
        q = pd.concat(pieces, ignore_index=True)
        q["column"] = q["column"].map(ledger.physical).fillna(q["column"])
        subset = (
            ledger.raw.table.take(pa.array(q["row"].to_numpy()))
            .select([c for c in record_columns if c in ledger.raw.table.column_names])
            .to_pandas()
        )
        for column in subset.columns:
            if column in withheld:
                subset[column] = subset[column].where(subset[column].isna(), _REDACTED)
            elif column in dates:
                subset[column] = subset[column].where(subset[column].isna(), _DATE_WITHHELD)
        records = [
            json.dumps(
                {k: v for k, v in r.items() if v is not None}, ensure_ascii=False, sort_keys=True
            )
            for r in subset.to_dict(orient="records")
        ]
        raw_value = [
            ""
            if col == ""
            else (_REDACTED if col in withheld else (rec_value if rec_value is not None else ""))
            for col, rec_value in zip(q["column"], _cell_values(ledger, q), strict=True)
        ]
        reason = q["code"].map(CODE_NAMES)
        message = [
            _message(r, col, val, det)
            for r, col, val, det in zip(reason, q["column"], raw_value, q["detail"], strict=True)
        ]
        frames.append(
            pd.DataFrame(
                {
                    "source_file": ledger.raw.path.name,
                    "source_row": q["row"].to_numpy() + 1,
                    "participant_id": (
                        pseudonyms.take(pa.array(q["row"].to_numpy())).to_numpy(
                            zero_copy_only=False
                        )
                        if is_main
                        else None
                    ),
                    "column": q["column"],
                    "raw_value": raw_value,
                    "reason": reason,
                    "message": message,
                    "raw_record": records,
                }
            )
        )
    columns = [
        "source_file",
        "source_row",
        "participant_id",
        "column",
        "raw_value",
        "reason",
        "message",
        "raw_record",
    ]
    if not frames:
        return pd.DataFrame(
            {c: pd.Series(dtype="string" if c != "source_row" else "int64") for c in columns}
        )
    out = pd.concat(frames, ignore_index=True).sort_values(
        ["source_file", "source_row", "column"], kind="stable"
    )
    return (
        out[columns]
        .reset_index(drop=True)
        .astype({c: "string" for c in columns if c != "source_row"} | {"source_row": "int64"})
    )


def _cell_values(ledger: _Ledger, q: pd.DataFrame) -> list[str | None]:
    out: list[str | None] = []
    for column, row in zip(q["column"], q["row"], strict=True):
        out.append(None if column == "" else ledger.raw.table.column(column)[int(row)].as_py())
    return out


def _message(reason: str, column: str, value: str, detail: str) -> str:
    if not column:
        return ROW_REASONS[reason]
    base = f"{column} = {value!r}: {VALUE_REASONS[reason]}"
    return f"{base} ({detail})" if detail else base


def _report(
    config, ledgers, participants, outcomes, quarantine, owners, join_index, main
) -> dict[str, Any]:
    files = {}
    for name, ledger in ledgers.items():
        status = ledger.row_status
        rows = {
            "in": len(status),
            "kept": int((status == KEPT).sum()),
            "collapsed": int((status == COLLAPSED).sum()),
            "filtered": int((status == FILTERED).sum()),
            "quarantined": int((status >= 10).sum()),
            "quarantined_by_reason": _count_codes(status[status >= 10]),
        }
        rows["balanced"] = (
            rows["in"] == rows["kept"] + rows["collapsed"] + rows["filtered"] + rows["quarantined"]
        )
        cells = {
            "in": 0,
            "kept": 0,
            "missing": 0,
            "collapsed": 0,
            "filtered": 0,
            "quarantined": 0,
            "quarantined_by_reason": {},
            "missing_value_codes": dict(sorted(ledger.missing_coded.items())),
            "by_column": {},
        }
        for column, cell in ledger.cells.items():
            final = np.where(status == KEPT, cell, status)
            by_code = {
                CODE_NAMES[int(c)]: int(n)
                for c, n in zip(*np.unique(final, return_counts=True), strict=True)
            }
            cells["by_column"][column] = by_code
            cells["in"] += len(final)
            for key in ("kept", "missing", "collapsed", "filtered"):
                cells[key] += by_code.get(key, 0)
            q_codes = final[final >= 10]
            cells["quarantined"] += len(q_codes)
            for reason, n in _count_codes(q_codes).items():
                cells["quarantined_by_reason"][reason] = (
                    cells["quarantined_by_reason"].get(reason, 0) + n
                )
        cells["balanced"] = cells["in"] == sum(
            cells[k] for k in ("kept", "missing", "collapsed", "filtered", "quarantined")
        )
        files[name] = {"path": ledger.raw.path.name, "rows": rows, "cells": cells}
        if name in join_index:
            index = join_index[name]
            keys_present = main.kept & _valid(
                main.text(next(s.join_on for s in config.lookup_files if s.name == name))
            )
            files[name]["join"] = {
                "main_rows_without_match": int((keys_present & (index < 0)).sum())
            }
    counts = outcomes.groupby(["outcome", "timepoint"], sort=True, observed=True).size()
    return {
        "study_id": config.study_id,
        "synthetic": config.synthetic,
        "design": config.design,
        "files": files,
        "participants": len(participants),
        "participants_by_arm": {
            str(k): int(v) for k, v in participants["arm"].value_counts().sort_index().items()
        },
        "outcome_values": {f"{o}@{t}": int(n) for (o, t), n in counts.items()},
        "quarantine_rows": len(quarantine),
        "domains": sorted(
            {spec.resolved_domain for spec in config.outcomes.values()} & set(CANONICAL_DOMAINS)
        ),
    }


def _count_codes(codes: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(codes, return_counts=True)
    return {CODE_NAMES[int(v)]: int(c) for v, c in zip(values, counts, strict=True)}
