"""Read an extraction sheet, map it onto ``trial_results`` and quarantine what cannot be used.

Every input row ends in exactly one of ``trial_results`` (kept, possibly with flags) or
``quarantine`` (one reason code); the report counts both so rows in = kept + quarantined.

Quarantine reasons: ``missing_trial_id``, ``unknown_arm_class``, ``unknown_outcome``,
``instrument_placeholder`` (a tool cell coded 0), ``unknown_instrument``, ``n_below_1``,
``sd_not_positive``, ``mean_outside_range``, ``sd_impossible_for_range`` (variance above the
Bhatia-Davis bound (max - mean)(mean - min) of a bounded scale), ``scale_label_mismatch``
(every value of the trial's outcome lies below 10% of a 0-100 registry instrument: a 0-10 scale labelled
0-100, or values wrong), ``no_dispersion`` and ``no_mean`` (follow-up rows only).

Flags (rows kept): ``sd_identical_across_arms``, ``sd_repeated_across_studies`` (the same SD on
the same outcome in >= 5 trials: imputed; every row with an SD counts), ``sd_derived`` (from SE, CI or IQR; rule recorded),
``citation_label_repeats`` (one author-year label names two trial ids), ``crossover_design``.

Sheets with one row per comparison (``layout: comparison``) carry an effect (mean difference on
the instrument's scale) with its SE, 95% CI or p value; their reasons are ``unknown_comparator_class``,
``no_effect``, ``no_se``, ``se_not_positive`` and ``effect_exceeds_range`` besides the shared ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import InputFileError
from pipeline.instruments import get_instrument
from pipeline.review.config import ReviewConfig
from pipeline.review.effect_sizes import (
    mean_sd_from_median_iqr,
    sd_from_ci,
    sd_from_se,
    se_from_ci,
    se_from_p,
)

PLACEHOLDER_TOOLS = frozenset({"0", "0.0"})
REPEATED_SD_MIN_TRIALS = 5
TRIAL_RESULTS_COLUMNS = (
    "row",
    "trial_id",
    "citation",
    "doi",
    "year",
    "arm",
    "arm_label",
    "arm_class",
    "outcome",
    "instrument_label",
    "instrument",
    "scale_min",
    "scale_max",
    "higher_is",
    "timepoint_weeks",
    "is_baseline",
    "n",
    "mean",
    "sd",
    "sd_rule",
    "change_score",
    "mean_canonical",
    "sd_canonical",
    "rob_overall",
    "population",
    "design",
    "flags",
    "comparator_class",
    "n_comparator",
    "effect",
    "se",
    "se_rule",
    "canonical_scale",
)


@dataclass(frozen=True)
class Validated:
    """The canonical table, the quarantine and the counts for ``review_report.json``."""

    trial_results: pd.DataFrame
    quarantine: pd.DataFrame
    report: dict


def read_sheet(path: Path, sheet_name: str | None = None) -> pd.DataFrame:
    """A CSV or XLSX extraction sheet as strings-and-numbers, with a clear error when unreadable."""
    if not path.is_file():
        raise InputFileError(f"{path}: extraction sheet not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".xlsx", ".xls"):
            return pd.read_excel(path, sheet_name=sheet_name or 0)
    except Exception as exc:  # pragma: no cover - depends on the file
        raise InputFileError(f"{path}: cannot read ({exc})") from None
    raise InputFileError(f"{path}: unsupported sheet type '{suffix}' (use .csv or .xlsx)")


def _col(frame: pd.DataFrame, config: ReviewConfig, field: str, path: Path) -> pd.Series:
    column = config.columns.get(field)
    if column is None:
        return pd.Series(np.nan, index=frame.index)
    if column.startswith("="):  # a constant for every row, e.g. outcome: "=back_pain"
        return pd.Series(column[1:], index=frame.index)
    if column not in frame.columns:
        raise InputFileError(
            f"{path}: column '{column}' (columns.{field} in review.yaml) not found"
        )
    return frame[column]


def _num(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce")


def validate_review(config: ReviewConfig) -> Validated:
    """Map the sheet onto ``trial_results``; quarantine and flag as the module docstring lists."""
    path = config.base_dir / config.sheet.file
    raw = read_sheet(path, config.sheet.sheet_name)
    rows_in = len(raw)
    get = lambda field: _col(raw, config, field, path)  # noqa: E731
    df = pd.DataFrame(
        {
            "row": np.arange(2, rows_in + 2),  # spreadsheet row (header is row 1)
            "trial_id": get("trial_id").astype("string").str.strip(),
            "citation": get("citation").astype("string"),
            "doi": get("doi").astype("string"),
            "year": _num(get("year")),
            "arm": get("arm").astype("string"),
            "arm_label": get("arm_class").astype("string").str.strip(),
            "outcome_label": get("outcome").astype("string").str.strip(),
            "instrument_label": get("instrument").astype("string").str.strip(),
            "timepoint_weeks": _num(get("timepoint_weeks")),
            "n": _num(get("n")),
            "mean": _num(get("mean")),
            "sd": _num(get("sd")),
            "se": _num(get("se")),
            "ci_low": _num(get("ci_low")),
            "ci_high": _num(get("ci_high")),
            "median": _num(get("median")),
            "q1": _num(get("q1")),
            "q3": _num(get("q3")),
            "change_score": get("change_score").fillna(False).astype(bool)
            if "change_score" in config.columns
            else False,
            "comparator_label": get("comparator_class").astype("string").str.strip(),
            "n_comparator": _num(get("n_comparator")),
            "effect": _num(get("effect")),
            "p_value": _num(get("p_value")),
            "rob_label": get("rob_overall").astype("string"),
            "population": get("population").astype("string"),
            "design": get("design").astype("string"),
        }
    )
    df["citation"] = df["citation"].fillna(df["trial_id"])
    if config.sheet.baseline_column:
        base = raw[config.sheet.baseline_column].astype("string") == config.sheet.baseline_value
        df["is_baseline"] = base.fillna(False).to_numpy()
    else:
        df["is_baseline"] = False
    if config.study_attributes is not None:
        df = _join_attributes(df, config)
    df["rob_overall"] = df["rob_label"].map(lambda v: config.rob.get(v, v) if pd.notna(v) else v)

    # Derive SDs where only SE, CI or median/IQR are given; record the rule.
    df["sd_rule"] = np.where(df["sd"].notna(), "reported", "")
    from_se = df["sd"].isna() & df["se"].notna() & df["n"].notna()
    df.loc[from_se, "sd"] = sd_from_se(df.loc[from_se, "se"], df.loc[from_se, "n"])
    df.loc[from_se, "sd_rule"] = "from SE (Handbook 6.5.2.2)"
    from_ci = df["sd"].isna() & df["ci_low"].notna() & df["ci_high"].notna() & df["n"].notna()
    df.loc[from_ci, "sd"] = sd_from_ci(
        df.loc[from_ci, "ci_low"],
        df.loc[from_ci, "ci_high"],
        df.loc[from_ci, "n"],
        config.sd_from_ci,
    )
    df.loc[from_ci, "sd_rule"] = f"from 95% CI ({config.sd_from_ci}; Handbook 6.5.2.2)"
    from_iqr = df["sd"].isna() & df[["median", "q1", "q3", "n"]].notna().all(axis=1)
    mean_iqr, sd_iqr = mean_sd_from_median_iqr(
        df.loc[from_iqr, "q1"],
        df.loc[from_iqr, "median"],
        df.loc[from_iqr, "q3"],
        df.loc[from_iqr, "n"],
        config.median_rule,
    )
    df.loc[from_iqr, "sd"] = sd_iqr
    df.loc[from_iqr & df["mean"].isna(), "mean"] = mean_iqr[
        df.loc[from_iqr, "mean"].isna().to_numpy()
    ]
    rule_word = (
        "Wan et al. 2014 C3" if config.median_rule == "wan" else "IQR/1.35, Handbook 6.5.2.5"
    )
    df.loc[from_iqr, "sd_rule"] = f"from median/IQR ({rule_word})"

    comparison = config.sheet.layout == "comparison"
    df["se_rule"] = ""
    if comparison:
        # SE of a reported effect: given, else from its 95% CI (6.3.1), else from p (t, n1 + n2 - 2 df)
        df["sd"] = np.nan
        df["sd_rule"] = ""
        df.loc[df["se"].notna(), "se_rule"] = "reported"
        ci = df["se"].isna() & df["ci_low"].notna() & df["ci_high"].notna()
        df.loc[ci, "se"] = se_from_ci(df.loc[ci, "ci_low"], df.loc[ci, "ci_high"])
        df.loc[ci, "se_rule"] = "from 95% CI (Handbook 6.3.1)"
        pv = df["se"].isna() & df["p_value"].notna() & df["effect"].notna()
        df.loc[pv, "se"] = se_from_p(
            df.loc[pv, "effect"],
            df.loc[pv, "p_value"],
            df.loc[pv, "n"] + df.loc[pv, "n_comparator"] - 2,
        )
        df.loc[pv, "se_rule"] = "from p value (t, Handbook 6.5.2.3)"

    # Instruments: range, direction and canonical rescaling.
    df["arm_class"] = df["arm_label"].map(config.arm_classes)
    df["comparator_class"] = df["comparator_label"].map(config.arm_classes)
    df["outcome"] = df["outcome_label"].map(config.outcomes)
    spec = df["instrument_label"].map(lambda v: config.instruments.get(v) if pd.notna(v) else None)
    df["instrument"] = spec.map(lambda s: s.registry if s is not None else None)
    lo, hi, up, off, sc = [], [], [], [], []
    for s in spec:
        if s is None:
            (
                lo.append(np.nan),
                hi.append(np.nan),
                up.append(None),
                off.append(np.nan),
                sc.append(np.nan),
            )
        elif s.registry is not None:
            ins = get_instrument(s.registry)
            lo.append(ins.raw_min), hi.append(ins.raw_max), up.append(ins.higher_raw_is)
            off.append(ins.offset), sc.append(ins.scale)
        else:
            (
                lo.append(s.min),
                hi.append(s.max),
                up.append(s.higher_is),
                off.append(np.nan),
                sc.append(np.nan),
            )
    df["scale_min"], df["scale_max"], df["higher_is"] = lo, hi, up
    offset, scale = np.asarray(off), np.asarray(sc)
    df["mean_canonical"] = offset + scale * df["mean"].to_numpy()
    df["sd_canonical"] = np.abs(scale) * df["sd"].to_numpy()
    df["canonical_scale"] = scale

    reason = _comparison_reasons(df) if comparison else _reasons(df)
    flags = _flags(df, reason)
    df["flags"] = flags
    keep = reason == ""
    quarantine = df.loc[~keep].assign(reason=reason[~keep])
    trial_results = df.loc[keep, list(TRIAL_RESULTS_COLUMNS)].reset_index(drop=True)
    report = {
        "review_id": config.review_id,
        "sheet": str(path),
        "rows_in": rows_in,
        "rows_kept": int(keep.sum()),
        "rows_quarantined": int((~keep).sum()),
        "quarantine_reasons": {
            k: int(v) for k, v in pd.Series(reason[~keep]).value_counts().items()
        },
        "flags": _flag_counts(df["flags"]),
        "sd_rules": {k: int(v) for k, v in df.loc[keep, "sd_rule"].value_counts().items() if k},
        "se_rules": {k: int(v) for k, v in df.loc[keep, "se_rule"].value_counts().items() if k},
        "trials_kept": int(trial_results["trial_id"].nunique()),
    }
    assert report["rows_kept"] + report["rows_quarantined"] == rows_in
    quarantine = quarantine.astype({c: "string" for c in ("flags",)}).reset_index(drop=True)
    return Validated(trial_results, quarantine, report)


def _join_attributes(df: pd.DataFrame, config: ReviewConfig) -> pd.DataFrame:
    attr_cfg = config.study_attributes
    assert attr_cfg is not None
    path = config.base_dir / attr_cfg.file
    attrs = read_sheet(path)
    missing = [
        c
        for c in [attr_cfg.trial_id, *attr_cfg.columns.values(), *attr_cfg.rob_domains]
        if c not in attrs
    ]
    if missing:
        raise InputFileError(f"{path}: column(s) {missing} named in study_attributes not found")
    out = pd.DataFrame({"trial_id": attrs[attr_cfg.trial_id].astype("string").str.strip()})
    for field, column in attr_cfg.columns.items():
        out[field] = attrs[column].astype("string")
    if attr_cfg.rob_domains:
        levels = attrs[attr_cfg.rob_domains].apply(lambda c: c.map(config.rob))
        order = {"low": 0, "some_concerns": 1, "high": 2}
        worst = levels.apply(lambda c: c.map(order)).max(axis=1)
        out["rob_label"] = worst.map({0: "low", 1: "some_concerns", 2: "high"}).astype("string")
    merged = df.drop(columns=[c for c in out.columns if c != "trial_id" and c in df]).merge(
        out.drop_duplicates("trial_id"), on="trial_id", how="left"
    )
    merged.index = df.index
    return merged


def _reasons(df: pd.DataFrame) -> np.ndarray:
    """One reason code per row ('' = keep); the first failing rule wins."""
    follow = ~df["is_baseline"].to_numpy()
    lo, hi, mean, sd = (df[c].to_numpy(float) for c in ("scale_min", "scale_max", "mean", "sd"))
    change = df["change_score"].to_numpy(bool)
    with np.errstate(invalid="ignore"):
        outside = ~change & ((mean < lo - 1e-9) | (mean > hi + 1e-9))
        bound = (hi - mean) * (mean - lo)
        impossible_sd = ~change & ~outside & (sd**2 > bound * 1.0001 + 1e-12)
    mismatch = _scale_mismatch(df)
    rules = [
        ("missing_trial_id", df["trial_id"].isna().to_numpy()),
        ("unknown_arm_class", df["arm_class"].isna().to_numpy()),
        ("unknown_outcome", df["outcome"].isna().to_numpy()),
        (
            "instrument_placeholder",
            df["instrument_label"].isin(PLACEHOLDER_TOOLS).fillna(False).to_numpy(),
        ),
        ("unknown_instrument", np.isnan(lo)),
        ("n_below_1", follow & (df["n"].to_numpy(float) < 1)),
        ("sd_not_positive", sd <= 0),
        ("mean_outside_range", outside),
        ("sd_impossible_for_range", impossible_sd),
        ("scale_label_mismatch", mismatch),
        ("no_mean", follow & np.isnan(mean)),
        ("no_dispersion", follow & np.isnan(sd)),
        ("no_n", follow & np.isnan(df["n"].to_numpy(float))),
    ]
    reason = np.full(len(df), "", dtype=object)
    for code, hit in reversed(rules):
        reason = np.where(hit, code, reason)
    return reason


def _comparison_reasons(df: pd.DataFrame) -> np.ndarray:
    """Reason codes for one-row-per-comparison sheets ('' = keep)."""
    lo, hi, effect, se = (df[c].to_numpy(float) for c in ("scale_min", "scale_max", "effect", "se"))
    with np.errstate(invalid="ignore"):
        too_big = np.abs(effect) > (hi - lo) + 1e-9
    rules = [
        ("missing_trial_id", df["trial_id"].isna().to_numpy()),
        ("unknown_arm_class", df["arm_class"].isna().to_numpy()),
        ("unknown_comparator_class", df["comparator_class"].isna().to_numpy()),
        ("unknown_outcome", df["outcome"].isna().to_numpy()),
        (
            "instrument_placeholder",
            df["instrument_label"].isin(PLACEHOLDER_TOOLS).fillna(False).to_numpy(),
        ),
        ("unknown_instrument", np.isnan(lo)),
        ("n_below_1", (df["n"].to_numpy(float) < 1) | (df["n_comparator"].to_numpy(float) < 1)),
        ("no_effect", np.isnan(effect)),
        ("no_se", np.isnan(se)),
        ("se_not_positive", se <= 0),
        ("effect_exceeds_range", too_big),
    ]
    reason = np.full(len(df), "", dtype=object)
    for code, hit in reversed(rules):
        reason = np.where(hit, code, reason)
    return reason


def _scale_mismatch(df: pd.DataFrame) -> np.ndarray:
    """All means of a trial x outcome on a 0-100 instrument below 10: a mislabelled 0-10 scale."""
    wide = ((df["scale_max"] - df["scale_min"]) >= 50) & df["instrument"].notna()
    small = df["mean"] < 0.1 * df["scale_max"]
    key = df["trial_id"].astype(str) + "|" + df["outcome_label"].astype(str)
    all_small = small.groupby(key).transform("all") & df["mean"].notna().groupby(key).transform(
        "sum"
    ).gt(1)
    return (wide & all_small & df["mean"].notna()).to_numpy()


def _flags(df: pd.DataFrame, reason: np.ndarray) -> list[str]:
    """Semicolon-joined flags per row (vectorised: one boolean column per flag)."""
    ok = pd.Series(reason == "", index=df.index) & df["sd"].notna()
    cell = (
        df["trial_id"].astype(str)
        + "|"
        + df["outcome_label"].astype(str)
        + "|"
        + df["timepoint_weeks"].astype(str)
        + "|"
        + df["is_baseline"].astype(str)
    )
    sd_ok = df["sd"].where(ok)
    arms = sd_ok.groupby(cell).transform("count")
    distinct = sd_ok.groupby(cell).transform("nunique")
    identical = ok & (arms >= 2) & (distinct == 1)
    # imputation is a property of the sheet: every row with an SD counts, quarantined or not
    value_key = df["outcome_label"].astype(str) + "|" + df["sd"].round(6).astype(str)
    trials = df["trial_id"].where(df["sd"].notna()).groupby(value_key).transform("nunique")
    repeated = df["sd"].notna() & (trials >= REPEATED_SD_MIN_TRIALS)
    derived = df["sd_rule"].astype(str).str.startswith("from")
    labels = df.groupby(df["citation"].astype(str))["trial_id"].transform("nunique") > 1
    cross = (
        df["design"].astype("string").str.contains("cross", case=False).fillna(False).astype(bool)
    )
    table = pd.DataFrame(
        {
            "sd_identical_across_arms": identical,
            "sd_repeated_across_studies": repeated,
            "sd_derived": derived,
            "citation_label_repeats": labels,
            "crossover_design": cross,
        }
    ).fillna(False)
    names = np.array(table.columns)
    return [";".join(names[row]) for row in table.to_numpy(bool)]


def _flag_counts(flags: pd.Series) -> dict[str, int]:
    exploded = flags.str.split(";").explode()
    exploded = exploded[exploded != ""]
    return {k: int(v) for k, v in exploded.value_counts().items()}
