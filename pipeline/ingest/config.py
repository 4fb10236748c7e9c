"""``study.yaml``: the per-study mapping from raw exports to canonical tables.

A researcher points the pipeline at a new study by writing one ``study.yaml``; no code changes.
The file is parsed with the safe YAML loader and validated here: unknown keys, wrong types,
missing fields, unknown instruments and inconsistent mappings are reported with their location
(``outcomes.pain.instrument: ...``). The README documents the format with a full example.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError
from pipeline.instruments import get_instrument, load_registry
from pipeline.io import sha256_text
from pipeline.params import load_yaml

RawLabel = str | int | float
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FilterSpec(_Strict):
    """Keep only rows whose ``column`` equals one of ``values`` (e.g. patients, not controls)."""

    column: str
    values: list[RawLabel] = Field(min_length=1)


class FileSpec(_Strict):
    """One input file. The first file without ``join_on`` is the main file."""

    name: str
    path: str
    format: Literal["csv", "tsv", "xlsx", "sav", "dta", "parquet", "redcap"]
    sheet: str | int | None = None
    delimiter: str | None = None
    encoding: str = "utf-8"
    missing_codes: list[RawLabel] = []
    filter: FilterSpec | None = None
    join_on: str | None = None
    data_dictionary: str | None = None
    date_format: str = "%Y-%m-%d"

    @model_validator(mode="after")
    def _format_options(self) -> FileSpec:
        if self.sheet is not None and self.format != "xlsx":
            raise ValueError(f"sheet is only for xlsx files, not {self.format}")
        if self.delimiter is not None and self.format not in ("csv", "tsv", "redcap"):
            raise ValueError(f"delimiter is only for csv/tsv files, not {self.format}")
        if self.data_dictionary is not None and self.format != "redcap":
            raise ValueError("data_dictionary is only for redcap exports")
        return self


class ArmSpec(_Strict):
    """The arm column and how raw labels or codes map to canonical arm names."""

    column: str
    treatment: str
    control: str
    labels: dict[str, list[RawLabel]] = Field(min_length=2)
    match: Literal["normalised", "exact"] = "normalised"

    @model_validator(mode="after")
    def _arms_declared(self) -> ArmSpec:
        for arm in (self.treatment, self.control):
            if arm not in self.labels:
                raise ValueError(f"arm '{arm}' has no labels (declared: {sorted(self.labels)})")
        for arm in self.labels:
            if not _NAME.match(arm):
                raise ValueError(f"arm name '{arm}' must be snake_case (letters, digits, _)")
        return self


class TimepointSpec(_Strict):
    """A timepoint: nominal days from baseline, the visit-date column, raw codes (long layout)."""

    days: float | None = None
    date_column: str | None = None
    raw: list[RawLabel] = []


class OutcomeSpec(_Strict):
    """One outcome: its instrument and where its values are.

    Wide layout: ``columns`` (timepoint -> column) or ``items`` (timepoint -> item columns).
    Long layout: ``column`` or ``items`` (a list of item columns).
    """

    instrument: str
    domain: str | None = None
    columns: dict[str, str] | None = None
    column: str | None = None
    items: dict[str, list[str]] | list[str] | None = None
    item_offset: float = 0.0

    @field_validator("instrument")
    @classmethod
    def _known_instrument(cls, value: str) -> str:
        if value not in load_registry():
            raise ValueError(
                f"unknown instrument '{value}' (known: {', '.join(sorted(load_registry()))})"
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> OutcomeSpec:
        sources = [s for s in ("columns", "column", "items") if getattr(self, s) is not None]
        wide_mix = sorted(sources) == ["columns", "items"] and isinstance(self.items, dict)
        if len(sources) != 1 and not wide_mix:
            raise ValueError(
                f"give exactly one of columns, column or items (got {sources or 'none'})"
            )
        if wide_mix and set(self.columns or {}) & set(self.items or {}):
            raise ValueError("a timepoint is mapped both as a total (columns) and as items")
        instrument = get_instrument(self.instrument)
        if self.items is not None:
            if instrument.items is None:
                raise ValueError(
                    f"instrument '{self.instrument}' has no item scoring; map its total"
                )
            lists = self.items.values() if isinstance(self.items, dict) else [self.items]
            for columns in lists:
                if len(columns) != instrument.items.count:
                    raise ValueError(
                        f"instrument '{self.instrument}' has {instrument.items.count} items, "
                        f"{len(columns)} columns given"
                    )
        if self.domain is not None and self.domain != instrument.domain:
            raise ValueError(
                f"instrument '{self.instrument}' measures {instrument.domain}, not {self.domain}"
            )
        return self

    @property
    def resolved_domain(self) -> str:
        return self.domain or get_instrument(self.instrument).domain


class CovariateSpec(_Strict):
    """A participant-level covariate.

    ``numeric`` (with ``range`` and ``unit``), ``category``/``binary`` (``levels``: canonical
    level -> raw labels), ``age_from_birth_date`` (``birth_date`` and ``at`` date columns),
    ``any_of`` (true when any of the binary covariates ``of`` is true).
    """

    type: Literal["numeric", "category", "binary", "age_from_birth_date", "any_of"]
    column: str | None = None
    unit: str | None = None
    range: tuple[float, float] | None = None
    levels: dict[str, list[RawLabel]] | None = None
    birth_date: str | None = None
    at: str | None = None
    of: list[str] | None = None

    @model_validator(mode="after")
    def _fields_for_type(self) -> CovariateSpec:
        needs = {
            "numeric": ["column"],
            "category": ["column", "levels"],
            "binary": ["column", "levels"],
            "age_from_birth_date": ["birth_date", "at"],
            "any_of": ["of"],
        }[self.type]
        missing = [f for f in needs if getattr(self, f) is None]
        if missing:
            raise ValueError(f"type {self.type} needs {', '.join(missing)}")
        if self.type == "binary" and self.levels is not None and set(self.levels) != {"yes", "no"}:
            raise ValueError("binary levels must be exactly 'yes' and 'no'")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"range {list(self.range)} is reversed")
        return self


class CountSpec(_Strict):
    """A count at participant level (sessions), with its valid range."""

    column: str
    range: tuple[float, float] = (0, 200)


class SourceSpec(_Strict):
    citation: str
    doi: str | None = None
    url: str | None = None
    licence: str | None = None
    notes: str | None = None


RobJudgement = Literal["low", "some_concerns", "high"]


class RiskOfBiasJudgement(_Strict):
    """One risk-of-bias judgement with its reason (RoB 2 domains or overall; ROBINS-I mapped)."""

    overall: RobJudgement
    justification: str = Field(min_length=1)
    domains: dict[str, RobJudgement] = {}


class RiskOfBiasSpec(RiskOfBiasJudgement):
    """Risk of bias of the study: the tool, the overall judgement and per-outcome overrides."""

    tool: Literal["RoB 2", "ROBINS-I"] = "RoB 2"
    outcomes: dict[str, RiskOfBiasJudgement] = {}


class BlindingSpec(_Strict):
    participants: bool | None = None
    outcome_assessors: bool | None = None


class StudyConfig(_Strict):
    """The validated ``study.yaml``. ``base_dir`` (set by the loader) resolves relative paths."""

    study_id: Annotated[str, Field(pattern=_SLUG.pattern)]
    title: str
    design: Literal["randomised", "cohort"]
    synthetic: bool = False
    source: SourceSpec
    files: list[FileSpec] = Field(min_length=1)
    layout: Literal["wide", "long"]
    participant_id: str
    timepoint_column: str | None = None
    arms: ArmSpec
    timepoints: dict[str, TimepointSpec] = Field(min_length=1)
    outcomes: dict[str, OutcomeSpec] = Field(min_length=1)
    site: str | None = None
    therapist: str | None = None
    sessions: CountSpec | str | None = None
    covariates: dict[str, CovariateSpec] = {}
    identifiers: list[str] = []
    ignore_columns: list[str] = []
    # What certainty rating needs to know (GRADE): the condition and population, blinding,
    # how many joined each arm, whether the export holds completers only, risk of bias.
    condition: str = "low back pain"
    population: dict[str, str] = {}
    blinding: BlindingSpec = BlindingSpec()
    randomised: dict[str, Annotated[int, Field(ge=1)]] = {}
    analysed_population: Literal["all", "completers"] = "all"
    risk_of_bias: RiskOfBiasSpec | None = None
    base_dir: Path = Path(".")

    @field_validator("sessions", mode="after")
    @classmethod
    def _sessions_spec(cls, value: CountSpec | str | None) -> CountSpec | None:
        return CountSpec(column=value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> StudyConfig:
        for arm in self.randomised:
            if arm not in self.arms.labels:
                raise ValueError(
                    f"randomised: arm '{arm}' is not one of the arms ({', '.join(self.arms.labels)})"
                )
        for outcome in self.risk_of_bias.outcomes if self.risk_of_bias else {}:
            if outcome not in self.outcomes:
                raise ValueError(
                    f"risk_of_bias.outcomes: '{outcome}' is not one of the outcomes "
                    f"({', '.join(self.outcomes)})"
                )
        for name in [*self.timepoints, *self.outcomes, *self.covariates]:
            if not _NAME.match(name):
                raise ValueError(f"name '{name}' must be snake_case (letters, digits, _)")
        mains = [f for f in self.files if f.join_on is None]
        if len(mains) != 1:
            raise ValueError(
                f"exactly one file must be the main file (without join_on), found {len(mains)}"
            )
        if self.layout == "long":
            if self.timepoint_column is None and mains[0].format != "redcap":
                raise ValueError("layout long needs timepoint_column")
            for label, tp in self.timepoints.items():
                if not tp.raw:
                    raise ValueError(
                        f"timepoints.{label}: layout long needs the raw codes under raw"
                    )
        for name, outcome in self.outcomes.items():
            if self.layout == "wide":
                if outcome.column is not None or isinstance(outcome.items, list):
                    raise ValueError(
                        f"outcomes.{name}: wide layout maps one column (or item list) per timepoint"
                    )
                mapping = {**(outcome.columns or {}), **(outcome.items or {})}
                unknown = set(mapping) - set(self.timepoints)
                if unknown:
                    raise ValueError(f"outcomes.{name}: unknown timepoints {sorted(unknown)}")
            elif outcome.columns is not None or isinstance(outcome.items, dict):
                raise ValueError(
                    f"outcomes.{name}: long layout maps one column (or item list) for all timepoints"
                )
        for name, cov in self.covariates.items():
            if cov.type == "any_of":
                for other in cov.of or []:
                    if other not in self.covariates or self.covariates[other].type != "binary":
                        raise ValueError(f"covariates.{name}: '{other}' is not a binary covariate")
        return self

    @property
    def main_file(self) -> FileSpec:
        return next(f for f in self.files if f.join_on is None)

    @property
    def lookup_files(self) -> list[FileSpec]:
        return [f for f in self.files if f.join_on is not None]

    def resolve(self, path: str) -> Path:
        """A file path from the config, relative to the folder of ``study.yaml``."""
        candidate = Path(path)
        return candidate if candidate.is_absolute() else (self.base_dir / candidate)

    def mapped_columns(self) -> list[str]:
        """Every raw column the mapping reads (the main file and lookups together)."""
        cols: list[str] = [self.participant_id, self.arms.column]
        if self.timepoint_column:
            cols.append(self.timepoint_column)
        cols += [tp.date_column for tp in self.timepoints.values() if tp.date_column]
        for outcome in self.outcomes.values():
            if outcome.columns:
                cols += outcome.columns.values()
            if outcome.column:
                cols.append(outcome.column)
            if isinstance(outcome.items, dict):
                cols += [c for group in outcome.items.values() for c in group]
            elif outcome.items:
                cols += outcome.items
        for field in (self.site, self.therapist):
            if field:
                cols.append(field)
        if isinstance(self.sessions, CountSpec):
            cols.append(self.sessions.column)
        for cov in self.covariates.values():
            cols += [c for c in (cov.column, cov.birth_date, cov.at) if c]
        return list(dict.fromkeys(cols))


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and validate a ``study.yaml``; any problem raises :class:`ConfigError` naming the key."""
    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    if "base_dir" in data:
        raise ConfigError(f"{path}: base_dir is set by the pipeline, remove it")
    try:
        return StudyConfig(**data, base_dir=path.parent)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None


def config_hash(path: str | Path) -> str:
    """SHA-256 of the study.yaml text (for provenance)."""
    return sha256_text(Path(path).read_text(encoding="utf-8"))


def _describe(exc: ValidationError) -> str:
    """Pydantic's errors as short, located messages."""
    messages = []
    for error in exc.errors()[:5]:
        location = ".".join(
            str(part) for part in error["loc"] if not str(part).startswith("function-")
        )
        message = error["msg"].removeprefix("Value error, ")
        kind = error["type"]
        if kind == "extra_forbidden":
            message = "unknown key (check the spelling; see the README for the study.yaml format)"
        elif kind == "missing":
            message = "required field is missing"
        value: Any = error.get("input")
        if kind in ("literal_error", "string_type", "int_type", "float_type", "bool_type"):
            message += f" (got {value!r})"
        messages.append(f"{location}: {message}" if location else message)
    more = len(exc.errors()) - len(messages)
    return "; ".join(messages) + (f"; and {more} more" if more > 0 else "")
