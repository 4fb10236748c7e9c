"""Comparisons declared in ``params.yaml`` (section ``analyse``), validated before anything is fitted.

A comparison names its study, outcome, timepoint, arms, estimands, methods, adjustment set,
clustering, effect modifier, missing-data strategy and multiplicity family. Nothing in it is
ever evaluated as code: column names are checked against the data and used only to select
columns (see :mod:`pipeline.analysis.frame`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ConfigError

Method = Literal[
    "naive",
    "ancova",
    "mixed",
    "repeated_measures",
    "ipw",
    "aipw",
    "poisson",
    "negative_binomial",
    "responders",
    "effect_modification",
    "effect_size",
    "mice",
]
CONTINUOUS_METHODS = {
    "naive",
    "ancova",
    "mixed",
    "repeated_measures",
    "ipw",
    "aipw",
    "responders",
    "effect_modification",
    "effect_size",
    "mice",
}
COUNT_METHODS = {"poisson", "negative_binomial"}
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class ComparisonSpec(BaseModel):
    """One declared comparison (frozen). ``outcome: sessions`` compares the session counts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    outcome: str
    timepoint: str | None = None
    treatment: str
    control: str
    estimands: list[Literal["ATE", "ATT"]] = ["ATE"]
    methods: list[Method] = Field(min_length=1)
    adjust_for: list[str] = []
    adjust_for_baselines: list[str] = []
    cluster: str | None = None
    clinic: str | None = None
    effect_modifier: str | None = None
    missing_data: Literal["complete_case", "complete_case_and_mice"] = "complete_case"
    imputation_auxiliaries: list[str] = []
    family: str | None = None
    trim: tuple[float, float] | None = None
    primary: Method | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ComparisonSpec:
        if not _ID.match(self.id):
            raise ValueError(f"id '{self.id}' must be lower case letters, digits, - or _")
        if self.treatment == self.control:
            raise ValueError("treatment and control are the same arm")
        if self.outcome == "sessions":
            wrong = set(self.methods) - COUNT_METHODS
            if wrong:
                raise ValueError(
                    f"sessions are counts: use poisson/negative_binomial, not {sorted(wrong)}"
                )
        else:
            wrong = set(self.methods) - CONTINUOUS_METHODS
            if wrong:
                raise ValueError(f"{sorted(wrong)} are for counts (outcome: sessions)")
            if self.timepoint is None:
                raise ValueError("give the timepoint to compare at")
        if "effect_modification" in self.methods and self.effect_modifier is None:
            raise ValueError("method effect_modification needs effect_modifier")
        if self.missing_data == "complete_case_and_mice" and "mice" not in self.methods:
            raise ValueError("missing_data complete_case_and_mice needs method mice")
        if self.primary is not None and self.primary not in self.methods:
            raise ValueError(f"primary method {self.primary} is not among methods")
        return self

    @property
    def primary_method(self) -> str:
        """The method whose estimate the plain-language summary leads with."""
        if self.primary:
            return self.primary
        for method in (
            "ancova",
            "repeated_measures",
            "negative_binomial",
            "aipw",
            "ipw",
            "mixed",
            "naive",
        ):
            if method in self.methods:
                return method
        return self.methods[0]


class AnalysisSettings(BaseModel):
    """The ``analyse`` section of ``params.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(0.05, gt=0, lt=1)
    seed: int = 20260123
    mice_imputations: int = Field(20, ge=2, le=500)
    mcid_sweep: list[float] = [0.5, 0.75, 1.0, 1.5, 2.0]
    studies: dict[str, dict[str, Any]]
    meta: list[dict[str, Any]] = []

    def comparisons(self, study: str) -> list[ComparisonSpec]:
        """The validated comparisons of one study (study defaults merged into each)."""
        if study not in self.studies:
            raise ConfigError(
                f"params.yaml: analyse.studies has no study '{study}' (has: {sorted(self.studies)})"
            )
        entry = dict(self.studies[study])
        unknown = set(entry) - {"defaults", "comparisons"}
        if unknown:
            raise ConfigError(
                f"params.yaml: analyse.studies.{study}: unknown keys {sorted(unknown)}"
            )
        defaults = entry.get("defaults") or {}
        specs = []
        for i, raw in enumerate(entry.get("comparisons") or []):
            merged = {**defaults, **raw}
            try:
                specs.append(ComparisonSpec(**merged))
            except ValidationError as exc:
                where = f"analyse.studies.{study}.comparisons[{i}] ({raw.get('id', '?')})"
                raise ConfigError(f"params.yaml: {where}: {_describe(exc)}") from None
        ids = [s.id for s in specs]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ConfigError(
                f"params.yaml: analyse.studies.{study}: comparison ids repeated: {repeated}"
            )
        return specs


def load_settings(section: dict[str, Any]) -> AnalysisSettings:
    """Validate the ``analyse`` section; problems raise :class:`ConfigError` with their location."""
    try:
        return AnalysisSettings(**section)
    except ValidationError as exc:
        raise ConfigError(f"params.yaml: analyse: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:4]:
        location = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)
