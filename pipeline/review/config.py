"""The ``review.yaml`` schema: how a reviewer's extraction sheet maps onto ``trial_results``.

Every problem is reported as a :class:`~pipeline.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ConfigError
from pipeline.instruments import CANONICAL_DOMAINS, load_registry

# Intervention families a sheet's arm labels are mapped onto (the arm-class registry).
ARM_CLASSES: tuple[str, ...] = (
    "exercise",
    "cbt",
    "cbt_exercise",
    "spinal_manipulation",
    "physiotherapy",
    "education",
    "psychological",
    "acupuncture",
    "massage",
    "electrotherapy",
    "traction",
    "mckenzie",
    "multidisciplinary",
    "pharmacological",
    "surgery",
    "epidural",
    "percutaneous",
    "usual_care",
    "placebo_sham",
    "waiting_list",
    "no_treatment",
    "inactive_control",
    "active_control",
    "mixed_control",
)
CANONICAL_FIELDS: tuple[str, ...] = (
    "trial_id",
    "citation",
    "doi",
    "year",
    "arm",
    "arm_class",
    "outcome",
    "instrument",
    "timepoint_weeks",
    "n",
    "mean",
    "sd",
    "se",
    "ci_low",
    "ci_high",
    "median",
    "q1",
    "q3",
    "change_score",
    "rob_overall",
    "population",
    "design",
    "comparator_class",  # layout "comparison" only: the comparator arm's label
    "n_comparator",
    "effect",  # mean difference, intervention minus comparator, on the instrument's raw scale
    "p_value",
)
ROB_LEVELS = ("low", "some_concerns", "high")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SheetSpec(_Strict):
    """Where the extraction sheet is (relative to the exports folder) and its shape."""

    file: str
    sheet_name: str | None = None
    layout: Literal["arm", "comparison"] = "arm"
    baseline_column: str | None = (
        None  # a column whose value ``baseline_value`` marks baseline rows
    )
    baseline_value: str | None = None


class InstrumentSpec(_Strict):
    """A sheet's instrument label: a registry key, or its own range for SMD-only instruments."""

    registry: str | None = None
    domain: str | None = None
    min: float | None = None
    max: float | None = None
    higher_is: Literal["better", "worse"] | None = None

    @model_validator(mode="after")
    def _either(self) -> InstrumentSpec:
        if self.registry is not None:
            if self.registry not in load_registry():
                known = ", ".join(sorted(load_registry()))
                raise ValueError(f"unknown registry instrument '{self.registry}' (known: {known})")
        elif self.min is None or self.max is None or self.higher_is is None:
            raise ValueError("give either registry: <key> or min, max and higher_is")
        elif self.min >= self.max:
            raise ValueError(f"min {self.min} must be below max {self.max}")
        return self


class StudyAttributes(_Strict):
    """An optional second sheet with one row per trial (population, design, risk of bias)."""

    file: str
    trial_id: str
    columns: dict[str, str] = Field(default_factory=dict)  # canonical -> column
    rob_domains: list[str] = Field(default_factory=list)  # overall = worst domain


class Question(_Strict):
    """One review question: PICO plus follow-up window, pooled as one meta-analysis."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    population: str
    intervention: list[str]
    comparator: list[str]
    outcome: str
    weeks: tuple[float, float]
    outcome_label: str | None = None
    intervention_label: str | None = None  # plain words for claims, e.g. "Exercise"
    comparator_label: str | None = None  # e.g. "usual care"
    population_values: list[str] | None = None  # trials' population attribute values that match
    mid: float | None = None  # threshold for imprecision/inconsistency, canonical units (MD)
    mid_smd: float = 0.2  # the same threshold when the question is pooled as an SMD

    @model_validator(mode="after")
    def _classes(self) -> Question:
        for field in ("intervention", "comparator"):
            for value in getattr(self, field):
                if value not in ARM_CLASSES:
                    raise ValueError(
                        f"{field}: unknown arm class '{value}' (known: {', '.join(ARM_CLASSES)})"
                    )
        if self.weeks[0] > self.weeks[1]:
            raise ValueError(f"weeks: window {self.weeks} is reversed")
        return self


class ReviewConfig(_Strict):
    """A whole ``review.yaml``."""

    review_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    citation: str
    licence: str = "none stated"
    sheet: SheetSpec
    columns: dict[str, str]  # canonical field -> sheet column, or "=value" for a constant
    arm_classes: dict[str, str]
    outcomes: dict[str, str]
    instruments: dict[str, InstrumentSpec]
    rob: dict[str, str] = Field(default_factory=dict)
    study_attributes: StudyAttributes | None = None
    multi_arm: Literal["split_control", "combine"] = "split_control"
    prefer: Literal["final", "change"] = "final"
    sd_from_ci: Literal["t", "z"] = "t"
    median_rule: Literal["wan", "iqr_1.35"] = "wan"
    questions: list[Question]
    base_dir: Path

    @model_validator(mode="after")
    def _consistent(self) -> ReviewConfig:
        unknown = sorted(set(self.columns) - set(CANONICAL_FIELDS))
        if unknown:
            raise ValueError(
                f"columns: unknown canonical field(s) {unknown} (known: {', '.join(CANONICAL_FIELDS)})"
            )
        needed = ("trial_id", "arm", "arm_class", "outcome", "n")
        if self.sheet.layout == "comparison":
            needed = ("trial_id", "arm_class", "comparator_class", "outcome", "instrument", "n")
            needed += ("n_comparator", "effect")
        for required in needed:
            if required not in self.columns:
                raise ValueError(f"columns.{required}: required field is missing")
        for label, cls in self.arm_classes.items():
            if cls not in ARM_CLASSES:
                raise ValueError(f"arm_classes.{label}: unknown arm class '{cls}'")
        for label, level in self.rob.items():
            if level not in ROB_LEVELS:
                raise ValueError(f"rob.{label}: '{level}' is not one of {ROB_LEVELS}")
        domains = set(CANONICAL_DOMAINS) | {"mental_health", "catastrophizing", "leg_pain"}
        for label, domain in self.outcomes.items():
            if domain not in domains:
                raise ValueError(f"outcomes.{label}: unknown outcome domain '{domain}'")
        ids = [q.id for q in self.questions]
        if len(set(ids)) != len(ids):
            raise ValueError(f"questions: ids repeat {ids}")
        return self


def load_review_config(path: str | Path, exports: str | Path | None = None) -> ReviewConfig:
    """Read and validate a ``review.yaml``; ``exports`` is the folder the sheets live in."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    base = Path(exports) if exports is not None else path.parent
    try:
        return ReviewConfig(**data, base_dir=base)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    messages = []
    for error in exc.errors()[:5]:
        location = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (see the README for the review.yaml format)"
        elif error["type"] == "missing":
            message = "required field is missing"
        messages.append(f"{location}: {message}" if location else message)
    return "; ".join(messages)
