"""Stage ``analyse``: fit every declared comparison of a study; tidy estimates with provenance.

:func:`analyse_study` is the pure core (canonical tables + comparisons in, estimates out);
:func:`run_analyse` reads ``data/processed/<study>/`` and writes ``estimates.parquet``,
``estimates.json`` and ``balance.parquet`` (covariate balance of the weighted comparisons).
A method that does not converge is kept, flagged (``converged = False``) and warned about;
a method that cannot be fitted on the data (e.g. too few events) becomes a row with a NaN
estimate and the reason in ``warning``, never a crash of the whole stage.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.tools.sm_exceptions import PerfectSeparationError

from pipeline.analysis.counts import fit_negative_binomial, fit_poisson
from pipeline.analysis.effect_sizes import fit_hedges_g
from pipeline.analysis.evalue import add_evalues
from pipeline.analysis.frame import (
    BASELINE,
    CLUSTER,
    OUTCOME,
    TREATED,
    AnalysisFrame,
    build_analysis_frame,
    repeated_frame,
)
from pipeline.analysis.imputation import fit_complete_case, fit_mice
from pipeline.analysis.linear import fit_ancova, fit_effect_modification, fit_naive
from pipeline.analysis.mixed import fit_mixed, fit_repeated_measures
from pipeline.analysis.multiplicity import add_adjusted_p_values
from pipeline.analysis.responders import fit_responders
from pipeline.analysis.spec import AnalysisSettings, ComparisonSpec, load_settings
from pipeline.analysis.tidy import ESTIMATE_COLUMNS, estimate_row, estimates_frame
from pipeline.analysis.weighting import fit_aipw, fit_ipw
from pipeline.io import raw_data_sha256, sha256_text, to_json_text, write_json, write_parquet
from pipeline.provenance import software_versions

_RECOVERABLE = (ValueError, np.linalg.LinAlgError, PerfectSeparationError)


@dataclass(frozen=True)
class StudyAnalysis:
    """Estimates of one study and the covariate balance of its weighted comparisons."""

    estimates: pd.DataFrame
    balance: pd.DataFrame


def analyse_study(
    participants: pd.DataFrame,
    outcomes: pd.DataFrame,
    comparisons: list[ComparisonSpec],
    settings: AnalysisSettings,
    study: dict[str, Any],
) -> StudyAnalysis:
    """Fit every comparison of one study.

    Parameters
    ----------
    participants, outcomes
        The study's canonical tables.
    comparisons
        Declared comparisons of this study.
    settings
        Alpha, seed, MICE imputations, MCID sweep.
    study
        ``study_id``, ``design`` (randomised | cohort) and ``synthetic`` from the ingest report.

    Returns
    -------
    StudyAnalysis
        ``estimates``: one row per comparison x method x estimand x effect measure x term with
        the columns of :data:`pipeline.analysis.tidy.ESTIMATE_COLUMNS` plus ``comparison_id``,
        ``study_id``, ``design``, ``synthetic``, ``outcome``, ``domain``, ``instrument``,
        ``timepoint``, ``baseline_timepoint``, ``treatment``, ``control``, ``covariates``,
        ``cluster``, ``family``, ``is_primary`` (the row the summary leads with), ``mcid``,
        ``outcome_sd``, E-values (observational designs), ``p_holm`` / ``p_fdr_bh`` within
        families. ``balance``: standardised mean differences before/after weighting.
    """
    pieces, balances = [], []
    for spec in comparisons:
        frame = build_analysis_frame(participants, outcomes, spec)
        rows, balance = _fit_comparison(frame, participants, outcomes, settings)
        rows = _describe(rows, frame, study)
        pieces.append(rows)
        if not balance.empty:
            balances.append(balance.assign(comparison_id=spec.id))
    estimates = pd.concat(pieces, ignore_index=True) if pieces else estimates_frame([])
    if study.get("design") == "cohort" and not estimates.empty:
        estimates = _with_evalues(estimates)
    estimates = add_adjusted_p_values(estimates, family_column="family", p_column="p_value")
    balance = pd.concat(balances, ignore_index=True) if balances else pd.DataFrame()
    return StudyAnalysis(estimates=estimates, balance=balance)


def _fit_comparison(
    frame: AnalysisFrame,
    participants: pd.DataFrame,
    outcomes: pd.DataFrame,
    settings: AnalysisSettings,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    spec, alpha = frame.spec, settings.alpha
    rows: list[pd.DataFrame] = []
    balances: list[pd.DataFrame] = []
    fits: dict[str, Callable[[], pd.DataFrame]] = {
        "naive": lambda: fit_naive(frame, alpha),
        "ancova": lambda: fit_ancova(frame, alpha),
        "mixed": lambda: fit_mixed(frame, alpha),
        "repeated_measures": lambda: fit_repeated_measures(
            repeated_frame(participants, outcomes, frame), frame, alpha
        ),
        "poisson": lambda: fit_poisson(frame, alpha),
        "negative_binomial": lambda: fit_negative_binomial(frame, alpha),
        "responders": lambda: fit_responders(frame, settings.mcid_sweep, alpha),
        "effect_modification": lambda: fit_effect_modification(frame, alpha),
        "effect_size": lambda: _effect_size(frame, alpha),
        "mice": lambda: _mice(frame, settings),
    }
    for method in spec.methods:
        if method in ("ipw", "aipw"):
            for estimand in spec.estimands:
                result = _attempt(
                    method, spec, lambda m=method, e=estimand: _weighted(frame, m, e, alpha)
                )
                if isinstance(result, tuple):
                    rows.append(result[0])
                    if result[1] is not None:
                        balances.append(result[1].assign(estimand=estimand))
                else:
                    rows.append(result)
        else:
            rows.append(_attempt(method, spec, fits[method]))
    for fitted in rows:
        bad = fitted[~fitted["converged"].astype(bool)]
        for _, row in bad.iterrows():
            print(
                f"backpain analyse: warning: {spec.id} {row['method']}: did not converge ({row['warning']})",
                file=sys.stderr,
            )
    return pd.concat(rows, ignore_index=True), (
        pd.concat(balances, ignore_index=True) if balances else pd.DataFrame()
    )


def _attempt(method: str, spec: ComparisonSpec, fit: Callable[[], Any]) -> Any:
    """Run one method; a recoverable failure becomes a flagged row instead of a crash."""
    try:
        return fit()
    except _RECOVERABLE as exc:
        print(f"backpain analyse: warning: {spec.id} {method}: not fitted ({exc})", file=sys.stderr)
        return estimates_frame(
            [
                estimate_row(
                    method=method,
                    estimand="ATE",
                    effect_measure="not_fitted",
                    term=f"{spec.treatment} vs {spec.control}",
                    model=f"{method} could not be fitted",
                    converged=False,
                    warning=f"{type(exc).__name__}: {exc}",
                )
            ]
        )


def _weighted(
    frame: AnalysisFrame, method: str, estimand: str, alpha: float
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    spec = frame.spec
    data = frame.complete_cases()
    cluster = CLUSTER if spec.cluster and CLUSTER in data else None
    if cluster:
        data = data[data[CLUSTER].notna()]
    covariates = frame.adjustment
    words = (
        f"propensity score (logistic: baseline {spec.outcome}"
        + (
            f", {', '.join(spec.adjust_for + spec.adjust_for_baselines)}"
            if spec.adjust_for or spec.adjust_for_baselines
            else ""
        )
        + ")"
    )
    if method == "ipw":
        result = fit_ipw(
            data,
            OUTCOME,
            TREATED,
            covariates,
            estimand=estimand,
            cluster=cluster,
            trim=spec.trim,
            alpha=alpha,
        )
        rows = result.estimates.assign(
            term=f"{spec.treatment} vs {spec.control}",
            model=lambda d: words + "; " + d["model"].astype(str),
            ess_treated=result.ess["treated"],
            ess_control=result.ess["control"],
            overlap_adequate=bool(result.overlap["adequate"]),
            overlap_message=str(result.overlap["message"]),
            max_abs_smd_before=float(result.balance["smd_before"].abs().max()),
            max_abs_smd_after=float(result.balance["smd_after"].abs().max()),
            n_trimmed=result.n_trimmed,
        )
        return rows, result.balance
    rows = fit_aipw(
        data, OUTCOME, TREATED, covariates, estimand=estimand, cluster=cluster, alpha=alpha
    )
    rows = rows.assign(
        term=f"{spec.treatment} vs {spec.control}",
        model=lambda d: words + "; " + d["model"].astype(str),
    )
    return rows, None


def _effect_size(frame: AnalysisFrame, alpha: float) -> pd.DataFrame:
    """Hedges' g of the change from baseline (unadjusted, complete cases)."""
    data = frame.complete_cases([BASELINE]).assign(change=lambda d: d[OUTCOME] - d[BASELINE])
    data = data.assign(arm=np.where(data[TREATED] == 1, "treatment", "control"))
    rows = fit_hedges_g(data, "change", "arm", "treatment", "control", alpha=alpha)
    return rows.assign(
        method="effect_size",
        term=f"{frame.spec.treatment} vs {frame.spec.control}",
        model=f"Hedges' g of the change in {frame.spec.outcome} from baseline to {frame.spec.timepoint}",
    )


def _mice(frame: AnalysisFrame, settings: AnalysisSettings) -> pd.DataFrame:
    """MICE (pooled with Rubin's rules) beside the complete-case fit of the same model."""
    spec = frame.spec
    data = frame.data
    cluster = CLUSTER if spec.cluster and CLUSTER in data else None
    if cluster:
        data = data[data[CLUSTER].notna()]
    columns = [OUTCOME, TREATED, *frame.adjustment, *([CLUSTER] if cluster else [])]
    data = data[columns]
    common = {
        "outcome": OUTCOME,
        "treatment": TREATED,
        "covariates": frame.adjustment,
        "cluster": cluster,
        "alpha": settings.alpha,
    }
    complete = fit_complete_case(data, **common)
    imputed = fit_mice(data, seed=settings.seed, m=settings.mice_imputations, **common)
    term = f"{spec.treatment} vs {spec.control}"
    return pd.concat([complete, imputed], ignore_index=True).assign(term=term)


def _describe(rows: pd.DataFrame, frame: AnalysisFrame, study: dict[str, Any]) -> pd.DataFrame:
    """Add the comparison's identity and context to each estimate row."""
    spec = frame.spec
    main = rows["effect_measure"].isin(["mean_difference", "rate_ratio"]) & ~rows["method"].isin(
        ["effect_modification"]
    )
    primary = main & (rows["method"] == spec.primary_method)
    if spec.primary_method == "repeated_measures":
        primary &= rows["term"].astype(str).str.endswith(f" at {spec.timepoint}")
    if "estimand" in rows and spec.primary_method in ("ipw", "aipw"):
        primary &= rows["estimand"] == spec.estimands[0]
    complete = frame.complete_cases([BASELINE] if BASELINE in frame.data else [])
    outcome_sd = float(complete[OUTCOME].std()) if len(complete) > 1 else np.nan
    return rows.assign(
        comparison_id=spec.id,
        study_id=study["study_id"],
        design=study["design"],
        synthetic=bool(study.get("synthetic", False)),
        outcome=spec.outcome,
        domain=frame.domain,
        instrument=frame.instrument or "",
        timepoint=spec.timepoint or "",
        baseline_timepoint=frame.baseline_timepoint or "",
        treatment=spec.treatment,
        control=spec.control,
        covariates=", ".join(
            ["baseline"] * (BASELINE in frame.data)
            + spec.adjust_for
            + [f"baseline {o}" for o in spec.adjust_for_baselines if o != spec.outcome]
        ),
        cluster=spec.cluster or "",
        family=np.where(primary, spec.family or "", None) if spec.family else None,
        is_primary=primary.to_numpy(),
        mcid=np.nan if frame.mcid is None else frame.mcid,
        higher_is_better=frame.higher_is_better,
        outcome_sd=outcome_sd,
        description=spec.description or "",
    )


def _with_evalues(estimates: pd.DataFrame) -> pd.DataFrame:
    """E-values for observational estimates (mean differences use the outcome SD)."""
    applicable = estimates["effect_measure"].isin(
        [
            "mean_difference",
            "rate_ratio",
            "risk_ratio",
            "odds_ratio",
            "adjusted_odds_ratio",
            "hedges_g",
        ]
    )
    keyed = estimates.assign(_sd_key=estimates["comparison_id"])
    sds = dict(zip(keyed["comparison_id"], keyed["outcome_sd"], strict=False))
    subset = keyed[applicable].copy()
    subset["effect_measure_for_evalue"] = subset["effect_measure"].replace(
        {"adjusted_odds_ratio": "odds_ratio"}
    )
    original = subset["effect_measure"]
    subset["effect_measure"] = subset["effect_measure_for_evalue"]
    with_e = add_evalues(
        subset.drop(columns=["effect_measure_for_evalue"]), outcome_sd=sds, sd_key="_sd_key"
    )
    with_e["effect_measure"] = original.to_numpy()
    out = estimates.copy()
    out["evalue_estimate"] = np.nan
    out["evalue_ci"] = np.nan
    out.loc[with_e.index, "evalue_estimate"] = with_e["evalue_estimate"]
    out.loc[with_e.index, "evalue_ci"] = with_e["evalue_ci"]
    return out


# ---------------------------------------------------------------------------------------------
# Stage entry point


def run_analyse(
    study: str, params: dict[str, Any], processed_root: str | Path = "data/processed"
) -> StudyAnalysis:
    """Entry point of the ``analyse`` stage for one study (``backpain analyse <study>``)."""
    settings = load_settings(params)
    comparisons = settings.comparisons(study)
    folder = Path(processed_root) / study
    inputs = [
        folder / "participants.parquet",
        folder / "outcomes.parquet",
        folder / "ingest_report.json",
    ]
    for path in inputs:
        if not path.exists():
            from pipeline.errors import InputFileError

            raise InputFileError(
                f"{path}: not found; run `backpain ingest` (or dvc repro) for {study} first"
            )
    participants = pd.read_parquet(inputs[0])
    outcomes = pd.read_parquet(inputs[1])
    report = json.loads(inputs[2].read_text())
    study_info = {
        "study_id": report["study_id"],
        "design": report["design"],
        "synthetic": report["synthetic"],
    }
    analysis = analyse_study(participants, outcomes, comparisons, settings, study_info)
    params_text = to_json_text(
        {
            "settings": settings.model_dump(exclude={"studies", "meta"}),
            "comparisons": [c.model_dump() for c in comparisons],
        }
    )
    estimates = analysis.estimates.assign(
        input_data_sha256=raw_data_sha256(report),
        params_sha256=sha256_text(params_text),
        software=json.dumps(software_versions(), sort_keys=True),
    )
    write_parquet(folder / "estimates.parquet", _for_parquet(estimates))
    write_json(
        folder / "estimates.json",
        {
            "study_id": study,
            "synthetic": study_info["synthetic"],
            "design": study_info["design"],
            "columns": list(ESTIMATE_COLUMNS),
            "estimates": estimates.to_dict(orient="records"),
        },
    )
    write_parquet(folder / "balance.parquet", _for_parquet(analysis.balance))
    return StudyAnalysis(estimates, analysis.balance)


def _for_parquet(frame: pd.DataFrame) -> pd.DataFrame:
    """Mixed-type object columns as text so Parquet gets one type per column."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            values = out[column]
            if values.map(lambda v: isinstance(v, (bool, np.bool_)) or v is None).all():
                continue
            out[column] = values.map(
                lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
            )
    return out


# ---------------------------------------------------------------------------------------------
# Meta-analysis across studies


def meta_analyse(
    declared: list[dict[str, Any]], estimates: dict[str, pd.DataFrame], alpha: float = 0.05
) -> pd.DataFrame:
    """Random-effects meta-analyses of the same comparison across studies (DL, REML, Paule-Mandel).

    Parameters
    ----------
    declared
        ``analyse.meta`` entries: ``id``, ``description``, ``measure`` (effect measure to pool,
        e.g. ``hedges_g``), ``method`` (the method whose rows are pooled) and ``studies``
        (list of ``{study, comparison}``).
    estimates
        Estimates of each study, by study id.

    Returns
    -------
    pandas.DataFrame
        For each meta-analysis: the study rows (``method="study"``) and one pooled row per
        heterogeneity estimator (``meta_dl``, ``meta_reml``, ``meta_pm``) with ``k``, ``tau2``,
        ``i2``, ``q``, ``q_p_value``, ``pi_low``/``pi_high`` (prediction interval).
    """
    from pipeline.analysis.meta import fit_random_effects

    frames = []
    for entry in declared:
        rows = []
        for member in entry["studies"]:
            study_rows = estimates[member["study"]]
            pick = study_rows[
                (study_rows["comparison_id"] == member["comparison"])
                & (study_rows["method"] == entry.get("method", "effect_size"))
                & (study_rows["effect_measure"] == entry["measure"])
            ]
            if len(pick) != 1:
                from pipeline.errors import ConfigError

                raise ConfigError(
                    f"params.yaml: analyse.meta {entry['id']}: expected one {entry['measure']} row for "
                    f"{member['study']}/{member['comparison']}, found {len(pick)}"
                )
            rows.append(pick.iloc[0])
        studies = pd.DataFrame(rows).reset_index(drop=True)
        studies = studies.assign(study_label=studies["study_id"] + ": " + studies["comparison_id"])
        pooled = [
            fit_random_effects(
                studies,
                estimate="estimate",
                se="se",
                method=method,
                alpha=alpha,
                label_column="study_label",
            )
            for method in ("REML", "DL", "PM")
        ]
        keep = [
            "study_id",
            "comparison_id",
            "study_label",
            "synthetic",
            "design",
            "outcome",
            "domain",
            "treatment",
            "control",
            "timepoint",
            *ESTIMATE_COLUMNS,
        ]
        member_rows = studies[[c for c in keep if c in studies.columns]].assign(method="study")
        combined = pd.concat([member_rows, *pooled], ignore_index=True)
        frames.append(
            combined.assign(
                meta_id=entry["id"],
                meta_description=entry.get("description", ""),
                synthetic=bool(studies["synthetic"].any()),
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run_meta(params: dict[str, Any], processed_root: str | Path = "data/processed") -> pd.DataFrame:
    """Entry point of the ``meta`` stage: pool declared comparisons across studies."""
    settings = load_settings(params)
    needed = sorted({m["study"] for entry in settings.meta for m in entry["studies"]})
    estimates = {}
    for study in needed:
        path = Path(processed_root) / study / "estimates.parquet"
        if not path.exists():
            from pipeline.errors import InputFileError

            raise InputFileError(f"{path}: not found; run `backpain analyse {study}` first")
        estimates[study] = pd.read_parquet(path)
    pooled = meta_analyse(settings.meta, estimates, settings.alpha)
    out = Path(processed_root) / "meta"
    write_parquet(out / "estimates.parquet", _for_parquet(pooled))
    write_json(out / "estimates.json", {"meta_analyses": pooled.to_dict(orient="records")})
    return pooled
