"""Declared schemas of the canonical tables, checked before anything is written.

These are the contracts later stages rely on: every canonical value lies on its domain's
scale, every row names a pseudonymised participant, every quarantine row has a known reason.
A failure here is a bug in the pipeline, not a user mistake, and stops the stage.

:func:`check_tables` checks them with numpy and pyarrow compute (about 0.1 s for a million
participants); :func:`check_tables_pandera` is the same contract written as pandera schemas,
kept as the reference (the ``pandas`` ingest engine uses it, and a test shows that both accept
the reference cohort's tables and reject the same broken ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.ingest.core import REASON_CODES
from pipeline.instruments import CANONICAL_DOMAINS, load_registry

_PSEUDONYM = r"^p[0-9a-f]{20}$"


class TableCheckError(RuntimeError):
    """A canonical table breaks its declared schema (a pipeline bug, not a user mistake)."""


@dataclass(frozen=True)
class ColumnRule:
    """One column's contract: dtype, nullability, lower bound, allowed values, pattern, uniqueness."""

    dtype: str
    nullable: bool = True
    ge: float | None = None
    isin: tuple[str, ...] | None = None
    pattern: str | None = None
    unique: bool = False


PARTICIPANT_RULES = {
    "study_id": ColumnRule("category", nullable=False),
    "participant_id": ColumnRule(
        "string[pyarrow]", nullable=False, pattern=_PSEUDONYM, unique=True
    ),
    "arm": ColumnRule("category", nullable=False),
    "sessions": ColumnRule("float64", ge=0),
    "n_values_quarantined": ColumnRule("int64", ge=0),
    "source_row": ColumnRule("int64", ge=1),
}
OUTCOME_RULES = {
    "study_id": ColumnRule("category", nullable=False),
    "participant_id": ColumnRule("string[pyarrow]", nullable=False, pattern=_PSEUDONYM),
    "outcome": ColumnRule("category", nullable=False),
    "domain": ColumnRule("category", nullable=False),
    "instrument": ColumnRule("category", nullable=False, isin=tuple(sorted(load_registry()))),
    "timepoint": ColumnRule("category", nullable=False),
    "days": ColumnRule("float64"),
    "raw_value": ColumnRule("float64", nullable=False),
    "value": ColumnRule("float64", nullable=False),
    "source_row": ColumnRule("int64", ge=1),
}
QUARANTINE_RULES = {
    "source_file": ColumnRule("string", nullable=False),
    "source_row": ColumnRule("int64", ge=1),
    "reason": ColumnRule("string", nullable=False, isin=tuple(sorted(REASON_CODES))),
    "message": ColumnRule("string", nullable=False),
}


def _within_domain(frame: pd.DataFrame) -> pd.Series:
    """Each canonical value lies within its domain's scale (vectorised over the domain codes)."""
    domain = frame["domain"].astype("category")
    categories = domain.cat.categories
    lows = np.array([CANONICAL_DOMAINS.get(d, {}).get("min", -np.inf) for d in categories], float)
    highs = np.array([CANONICAL_DOMAINS.get(d, {}).get("max", np.inf) for d in categories], float)
    codes = domain.cat.codes.to_numpy()
    value = frame["value"].to_numpy()
    inside = (value >= lows[codes] - 1e-9) & (value <= highs[codes] + 1e-9)
    return pd.Series(inside, index=frame.index)


def check_tables(
    participants: pd.DataFrame, outcomes: pd.DataFrame, quarantine: pd.DataFrame
) -> None:
    """Validate the three canonical tables (numpy / pyarrow); raises :class:`TableCheckError`."""
    _check_frame("participants", participants, PARTICIPANT_RULES)
    _check_frame("outcomes", outcomes, OUTCOME_RULES)
    inside = _within_domain(outcomes).to_numpy()
    _fail_where("outcomes", "value", ~inside, "canonical value outside its domain's scale")
    _check_unique_outcomes(outcomes)
    _check_frame("quarantine", quarantine, QUARANTINE_RULES)


def _check_frame(table: str, frame: pd.DataFrame, rules: dict[str, ColumnRule]) -> None:
    for name, rule in rules.items():
        if name not in frame.columns:
            raise TableCheckError(f"{table}: column '{name}' is missing")
        series = frame[name]
        if not _dtype_is(series.dtype, rule.dtype) or (
            rule.dtype == "string" and series.dtype.storage != "python"
        ):
            raise TableCheckError(
                f"{table}: column '{name}' has dtype {series.dtype}, expected {rule.dtype}"
            )
        missing = series.isna().to_numpy()
        if not rule.nullable:
            _fail_where(table, name, missing, "null values")
        if rule.ge is not None:
            values = series.to_numpy(dtype=float, na_value=np.nan)
            _fail_where(table, name, ~missing & ~(values >= rule.ge), f"values below {rule.ge:g}")
        if rule.isin is not None or rule.pattern is not None or rule.unique:
            array = _as_arrow(series)
            if rule.isin is not None:
                known = pc.is_in(array, pa.array(rule.isin, type=pa.string()))
                _fail_where(table, name, ~missing & ~_bools(known), "values not allowed")
            if rule.pattern is not None:
                matches = pc.match_substring_regex(array, rule.pattern)
                _fail_where(
                    table, name, ~missing & ~_bools(matches), f"values not matching {rule.pattern}"
                )
            if rule.unique and pc.count_distinct(array, mode="all").as_py() != len(array):
                raise TableCheckError(f"{table}: column '{name}' has repeated values")


def _check_unique_outcomes(outcomes: pd.DataFrame) -> None:
    """One value per participant x outcome x timepoint (counted on integer codes)."""
    participant = pc.dictionary_encode(_as_arrow(outcomes["participant_id"]))
    if isinstance(participant, pa.ChunkedArray):
        participant = participant.combine_chunks()
    person = np.asarray(participant.indices.fill_null(0), dtype=np.int64)
    outcome = outcomes["outcome"].cat.codes.to_numpy().astype(np.int64)
    timepoint = outcomes["timepoint"].cat.codes.to_numpy().astype(np.int64)
    n_outcomes = len(outcomes["outcome"].cat.categories) + 1
    n_timepoints = len(outcomes["timepoint"].cat.categories) + 1
    combined = (person * n_outcomes + outcome + 1) * n_timepoints + timepoint + 1
    if len(combined) and np.bincount(combined).max() > 1:
        raise TableCheckError(
            "outcomes: repeated (participant_id, outcome, timepoint) combinations"
        )


def _dtype_is(dtype: Any, expected: str) -> bool:
    """``category`` matches any categorical; other names match their pandas dtype exactly."""
    if expected == "category":
        return isinstance(dtype, pd.CategoricalDtype)
    return bool(dtype == pd.api.types.pandas_dtype(expected))


def _as_arrow(series: pd.Series) -> pa.Array | pa.ChunkedArray:
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    return pa.array(series, type=pa.string(), from_pandas=True)


def _bools(values: Any) -> np.ndarray:
    return np.asarray(pc.fill_null(values, False), dtype=bool)


def _fail_where(table: str, column: str, bad: np.ndarray, what: str) -> None:
    if bad.any():
        rows = np.flatnonzero(bad)
        raise TableCheckError(
            f"{table}: column '{column}' has {what} in {len(rows)} rows (first: row {rows[0]})"
        )


def check_tables_pandera(
    participants: pd.DataFrame, outcomes: pd.DataFrame, quarantine: pd.DataFrame
) -> None:
    """The same contract as pandera schemas (the reference); raises ``pandera.errors.SchemaError``."""
    schemas = _pandera_schemas()
    schemas["participants"].validate(participants)
    schemas["outcomes"].validate(outcomes)
    schemas["quarantine"].validate(quarantine)


def _pandera_schemas() -> dict[str, Any]:
    import pandera.pandas as pa_schema  # imported only when the reference engine runs

    return {
        "participants": pa_schema.DataFrameSchema(
            {
                "study_id": pa_schema.Column("category", nullable=False),
                "participant_id": pa_schema.Column(
                    "string[pyarrow]",
                    pa_schema.Check.str_matches(_PSEUDONYM),
                    nullable=False,
                    unique=True,
                ),
                "arm": pa_schema.Column("category", nullable=False),
                "sessions": pa_schema.Column(float, pa_schema.Check.ge(0), nullable=True),
                "n_values_quarantined": pa_schema.Column(int, pa_schema.Check.ge(0)),
                "source_row": pa_schema.Column(int, pa_schema.Check.ge(1)),
            },
            strict=False,
            coerce=False,
        ),
        "outcomes": pa_schema.DataFrameSchema(
            {
                "study_id": pa_schema.Column("category", nullable=False),
                "participant_id": pa_schema.Column(
                    "string[pyarrow]", pa_schema.Check.str_matches(_PSEUDONYM), nullable=False
                ),
                "outcome": pa_schema.Column("category", nullable=False),
                "domain": pa_schema.Column("category", nullable=False),
                "instrument": pa_schema.Column(
                    "category", pa_schema.Check.isin(sorted(load_registry())), nullable=False
                ),
                "timepoint": pa_schema.Column("category", nullable=False),
                "days": pa_schema.Column(float, nullable=True),
                "raw_value": pa_schema.Column(float, nullable=False),
                "value": pa_schema.Column(float, nullable=False),
                "source_row": pa_schema.Column(int, pa_schema.Check.ge(1)),
            },
            checks=[
                pa_schema.Check(_within_domain, error="canonical value outside its domain's scale")
            ],
            unique=["participant_id", "outcome", "timepoint"],
            strict=False,
        ),
        "quarantine": pa_schema.DataFrameSchema(
            {
                "source_file": pa_schema.Column("string", nullable=False),
                "source_row": pa_schema.Column(int, pa_schema.Check.ge(1)),
                "reason": pa_schema.Column(
                    "string", pa_schema.Check.isin(sorted(REASON_CODES)), nullable=False
                ),
                "message": pa_schema.Column("string", nullable=False),
            },
            strict=False,
        ),
    }
