"""The analysis frame: one row per participant of the two compared arms, numeric columns by role.

Built from the canonical tables of :mod:`pipeline.ingest`, so every study is analysed the same
way. Column names from ``params.yaml`` are checked against the data and only ever used to
select columns; categorical covariates become 0/1 indicator columns (first level = reference),
so every model downstream works on plain numbers and no formula string is evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.analysis.spec import ComparisonSpec
from pipeline.errors import ConfigError
from pipeline.instruments import CANONICAL_DOMAINS, get_instrument

OUTCOME, BASELINE, TREATED, CLUSTER, CLINIC, MODIFIER = (
    "y",
    "baseline",
    "treated",
    "cluster",
    "clinic",
    "modifier",
)


@dataclass(frozen=True)
class AnalysisFrame:
    """The data of one comparison and what its columns mean.

    ``data`` columns: ``participant_id``, ``treated`` (1 treatment, 0 control), ``y`` (outcome
    at the timepoint, canonical scale; NaN when missing), ``baseline`` (same outcome at
    baseline; absent for sessions), one numeric column per covariate term, and ``cluster`` /
    ``clinic`` / ``modifier`` when declared.
    """

    spec: ComparisonSpec
    data: pd.DataFrame
    covariates: list[str]
    domain: str
    instrument: str | None
    baseline_timepoint: str | None
    higher_is_better: bool
    mcid: float | None
    modifier_levels: list[str] = field(default_factory=list)

    @property
    def adjustment(self) -> list[str]:
        """Baseline (when there is one) plus the covariate terms."""
        return ([BASELINE] if BASELINE in self.data.columns else []) + self.covariates

    @property
    def term(self) -> str:
        """What an effect row estimates: ``"<treatment> vs <control>"``."""
        return f"{self.spec.treatment} vs {self.spec.control}"

    def complete_cases(self, columns: list[str] | None = None) -> pd.DataFrame:
        """Rows with the outcome and every adjustment column present."""
        needed = [OUTCOME, *(columns if columns is not None else self.adjustment)]
        return self.data.dropna(subset=needed)

    def model_data(self, columns: list[str] | None = None) -> tuple[pd.DataFrame, pd.Series | None]:
        """Complete cases (see :meth:`complete_cases`) and, when clustered, the cluster of each
        row (rows without a cluster are left out, as the cluster-robust errors need one)."""
        data = self.complete_cases(columns)
        if self.spec.cluster and CLUSTER in data:
            data = data[data[CLUSTER].notna()]
            return data, data[CLUSTER]
        return data, None


def arm_counts(data: pd.DataFrame) -> dict[str, int]:
    """``n_treated`` and ``n_control`` of the rows an estimate uses."""
    return {
        "n_treated": int((data[TREATED] == 1).sum()),
        "n_control": int((data[TREATED] == 0).sum()),
    }


def build_analysis_frame(
    participants: pd.DataFrame, outcomes: pd.DataFrame, spec: ComparisonSpec
) -> AnalysisFrame:
    """Assemble the analysis frame of one comparison, refusing names that are not in the data.

    Parameters
    ----------
    participants, outcomes
        The canonical tables of one study.
    spec
        The comparison.

    Returns
    -------
    AnalysisFrame
        See the class docstring. Participants of other arms are left out.
    """
    arms = set(participants["arm"].dropna().astype(str))
    for role in ("treatment", "control"):
        arm = getattr(spec, role)
        if arm not in arms:
            raise ConfigError(
                f"comparison {spec.id}: {role} arm '{arm}' is not in the data (arms: {sorted(arms)})"
            )
    _require_columns(participants, spec)
    chosen = participants[participants["arm"].astype(str).isin([spec.treatment, spec.control])]
    data = pd.DataFrame(
        {
            "participant_id": chosen["participant_id"].to_numpy(),
            TREATED: (chosen["arm"].astype(str) == spec.treatment).astype(int).to_numpy(),
        }
    )
    baseline_timepoint = None
    if spec.outcome == "sessions":
        data[OUTCOME] = chosen["sessions"].to_numpy(dtype=float)
        domain, instrument, higher_is_better, mcid = "sessions", None, False, None
    else:
        rows = outcomes[outcomes["outcome"].astype(str) == spec.outcome]
        if rows.empty:
            known = sorted(outcomes["outcome"].astype(str).unique())
            raise ConfigError(
                f"comparison {spec.id}: outcome '{spec.outcome}' is not in the data (outcomes: {known})"
            )
        timepoints = _timepoint_order(rows)
        study_baseline = _study_baseline(rows)
        if timepoints[0] != study_baseline:
            raise ConfigError(
                f"comparison {spec.id}: outcome '{spec.outcome}' has no values at the baseline timepoint "
                f"'{study_baseline}', so it cannot be adjusted for its baseline"
            )
        if spec.timepoint not in timepoints:
            raise ConfigError(
                f"comparison {spec.id}: timepoint '{spec.timepoint}' not in the data (timepoints: {timepoints})"
            )
        baseline_timepoint = timepoints[0]
        if spec.timepoint == baseline_timepoint:
            raise ConfigError(
                f"comparison {spec.id}: timepoint '{spec.timepoint}' is the baseline; compare at a later one"
            )
        values = rows.pivot_table(
            index="participant_id",
            columns="timepoint",
            values="value",
            observed=True,
            aggfunc="first",
        )
        data[OUTCOME] = (
            values[spec.timepoint].reindex(data["participant_id"]).to_numpy()
            if spec.timepoint in values
            else np.nan
        )
        data[BASELINE] = (
            values[baseline_timepoint].reindex(data["participant_id"]).to_numpy()
            if baseline_timepoint in values
            else np.nan
        )
        instrument = str(rows["instrument"].iloc[0])
        domain = str(rows["domain"].iloc[0])
        higher_is_better = CANONICAL_DOMAINS.get(domain, {}).get("higher_is") == "better"
        mcid = get_instrument(instrument).mcid_canonical
    covariates: list[str] = []
    for name in spec.adjust_for:
        encoded = _encode(chosen[name], name)
        for column in encoded.columns:
            data[column] = encoded[column].to_numpy()
        covariates += list(encoded.columns)
    for other in spec.adjust_for_baselines:
        if other == spec.outcome:
            continue  # the outcome's own baseline is always in the model
        rows_other = outcomes[outcomes["outcome"].astype(str) == other]
        if rows_other.empty:
            raise ConfigError(
                f"comparison {spec.id}: adjust_for_baselines '{other}' is not an outcome of the study"
            )
        first = _study_baseline(rows_other)
        at_baseline = rows_other[rows_other["timepoint"].astype(str) == first].set_index(
            "participant_id"
        )["value"]
        name = f"baseline_{other}"
        data[name] = at_baseline.reindex(data["participant_id"]).to_numpy(dtype=float)
        covariates.append(name)
    for role, column_name in ((CLUSTER, spec.cluster), (CLINIC, spec.clinic)):
        if column_name:
            data[role] = (
                chosen[column_name].astype(str).where(chosen[column_name].notna()).to_numpy()
            )
    modifier_levels: list[str] = []
    if spec.effect_modifier:
        modifier = chosen[spec.effect_modifier]
        levels = (
            list(modifier.cat.categories)
            if isinstance(modifier.dtype, pd.CategoricalDtype)
            else sorted(modifier.dropna().astype(str).unique())
        )
        modifier_levels = [
            str(level) for level in levels if (modifier.astype(str) == str(level)).any()
        ]
        if len(modifier_levels) < 2:
            raise ConfigError(
                f"comparison {spec.id}: effect modifier '{spec.effect_modifier}' has fewer than 2 levels"
            )
        data[MODIFIER] = modifier.astype(str).where(modifier.notna()).to_numpy()
    return AnalysisFrame(
        spec=spec,
        data=data,
        covariates=covariates,
        domain=domain,
        instrument=instrument,
        baseline_timepoint=baseline_timepoint,
        higher_is_better=higher_is_better,
        mcid=mcid,
        modifier_levels=modifier_levels,
    )


def repeated_frame(
    participants: pd.DataFrame, outcomes: pd.DataFrame, frame: AnalysisFrame
) -> pd.DataFrame:
    """Long data for repeated measures: one row per participant x post-baseline timepoint.

    Columns: ``participant_id``, ``treated``, ``timepoint`` (categorical in study order),
    ``y``, ``baseline``, the covariate terms, and ``cluster`` when declared.
    """
    rows = outcomes[outcomes["outcome"].astype(str) == frame.spec.outcome]
    order = _timepoint_order(rows)
    long = rows[rows["timepoint"].astype(str) != frame.baseline_timepoint][
        ["participant_id", "timepoint", "value"]
    ]
    long = long.assign(
        timepoint=pd.Categorical(long["timepoint"].astype(str), categories=order[1:])
    )
    per_person = frame.data.drop(columns=[OUTCOME])
    merged = long.merge(per_person, on="participant_id", how="inner").rename(
        columns={"value": OUTCOME}
    )
    return merged.sort_values(["participant_id", "timepoint"], kind="stable").reset_index(drop=True)


def _study_baseline(rows: pd.DataFrame) -> str:
    """The study's baseline: the first timepoint of study.yaml (the first category), even when
    this outcome has no values there (then the outcome cannot be baseline-adjusted)."""
    column = rows["timepoint"]
    if isinstance(column.dtype, pd.CategoricalDtype):
        return str(column.cat.categories[0])
    return _timepoint_order(rows)[0]


def _timepoint_order(rows: pd.DataFrame) -> list[str]:
    """Timepoints in study order (the categorical order written by ingest; else by nominal days)."""
    column = rows["timepoint"]
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.astype(str))
        return [str(t) for t in column.cat.categories if str(t) in present]
    return list(rows.groupby("timepoint")["days"].median().sort_values().index.astype(str))


def _require_columns(participants: pd.DataFrame, spec: ComparisonSpec) -> None:
    for role in ("adjust_for", "cluster", "clinic", "effect_modifier", "imputation_auxiliaries"):
        value = getattr(spec, role)
        names = value if isinstance(value, list) else ([value] if value else [])
        for name in names:
            if name not in participants.columns or name in ("participant_id", "arm"):
                available = sorted(
                    c for c in participants.columns if c not in ("participant_id", "study_id")
                )
                raise ConfigError(
                    f"comparison {spec.id}: {role} '{name}' is not a participant column (available: {available})"
                )


def _encode(column: pd.Series, name: str) -> pd.DataFrame:
    """A covariate as numeric columns: numbers as they are, categories as 0/1 indicators."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return pd.DataFrame({name: column.astype(float).to_numpy()})
    categories = (
        list(column.cat.categories)
        if isinstance(column.dtype, pd.CategoricalDtype)
        else sorted(column.dropna().astype(str).unique())
    )
    present = [c for c in categories if (column.astype(str) == str(c)).any()]
    if set(present) == {"yes", "no"}:
        present = ["no", "yes"]  # binary: 1 = yes
    missing = column.isna().to_numpy()
    out = {}
    for level in present[1:]:
        indicator = (column.astype(str) == str(level)).to_numpy().astype(float)
        indicator[missing] = np.nan
        out[f"{name}={level}"] = indicator
    return pd.DataFrame(out)
