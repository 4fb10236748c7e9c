"""Linear mixed models (statsmodels MixedLM): therapist/clinic random intercepts, and repeated
measures with an arm x time interaction giving the contrast at each timepoint.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm

from pipeline.analysis.frame import CLINIC, CLUSTER, OUTCOME, TREATED, AnalysisFrame
from pipeline.analysis.models import Fit, capture, design
from pipeline.analysis.reml import fit_random_intercepts
from pipeline.analysis.tidy import estimate_row, estimates_frame


def fit_mixed(frame: AnalysisFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Baseline-adjusted mixed model with a therapist random intercept (nested in clinic if declared).

    Fixed effects as in :func:`pipeline.analysis.linear.fit_ancova`; random intercept for the
    comparison's ``cluster`` (e.g. therapist); with ``clinic`` declared, a clinic random
    intercept and therapist-within-clinic variance component. REML profiled on group
    sufficient statistics (:func:`pipeline.analysis.reml.fit_random_intercepts`), model-based
    (z) errors in lme4's convention sigma2 (X'V^-1X)^-1.
    Extra columns: ``variance_<level>`` and ``variance_residual``.

    Notes
    -----
    Checked against the closed-form ANOVA estimators of balanced one-way and nested designs
    and a hand-profiled REML with hand GLS in ``tests/test_mixed.py``; the fitting routine
    against lme4 and statsmodels MixedLM in ``tests/test_reml.py``.
    """
    spec = frame.spec
    if not spec.cluster:
        raise ValueError(
            f"comparison {spec.id}: method mixed needs a cluster (e.g. cluster: therapist)"
        )
    data = frame.complete_cases([*frame.adjustment, CLUSTER] + ([CLINIC] if spec.clinic else []))
    X = design(data, [TREATED, *frame.adjustment])
    y = data[OUTCOME].to_numpy(dtype=float)
    if spec.clinic:
        clinic = pd.factorize(data[CLINIC])[0]
        within = pd.factorize(data[CLUSTER])[0]
        # therapist-within-clinic: one level per (clinic, therapist) pair (integer pair code)
        therapist = pd.factorize(clinic.astype(np.int64) * (within.max() + 1) + within)[0]
        factors = {spec.clinic: clinic, spec.cluster: therapist}
        levels = f"clinic ({spec.clinic}) and therapist-within-clinic ({spec.cluster})"
        therapists = int(therapist.max() + 1)
    else:
        factors = {spec.cluster: pd.factorize(data[CLUSTER])[0]}
        levels = f"{spec.cluster}"
        therapists = int(factors[spec.cluster].max() + 1)
    result = fit_random_intercepts(y, X, factors, reml=True)
    converged, warning = result.converged, result.warning
    fit = Fit(result.params, result.cov, np.inf, len(y), therapists, converged, warning, result)
    variances = {"variance_residual": result.variances["residual"]}
    for name in factors:
        variances[f"variance_{name}"] = result.variances[name]
    words = (
        f"linear mixed model of {spec.outcome} at {spec.timepoint} on arm + baseline"
        + (f" + {', '.join(spec.adjust_for)}" if spec.adjust_for else "")
        + f"; random intercepts for {levels}; REML (profiled), GLS standard errors"
    )
    return estimates_frame(
        [
            estimate_row(
                method="mixed",
                estimand="conditional",
                effect_measure="mean_difference",
                term=f"{spec.treatment} vs {spec.control}",
                **fit.estimate(TREATED, alpha),
                n_treated=int((data[TREATED] == 1).sum()),
                n_control=int((data[TREATED] == 0).sum()),
                n_clusters=fit.n_clusters,
                model=words,
                converged=converged,
                warning=warning,
                extra=variances,
            )
        ]
    )


def fit_repeated_measures(
    long: pd.DataFrame, frame: AnalysisFrame, alpha: float = 0.05
) -> pd.DataFrame:
    """Repeated measures: arm x timepoint, baseline-adjusted, participant random intercept.

    Fixed effects: timepoint indicators, arm, arm x timepoint, baseline x timepoint and the
    covariates; a random intercept per participant (REML). Returns the arm contrast at each
    post-baseline timepoint (``term = "<treatment> vs <control> at <timepoint>"``), using
    everyone with at least one follow-up value (missing at random given the model).

    References
    ----------
    Fitzmaurice, Laird & Ware, Applied Longitudinal Analysis, 2nd ed. (2011), ch. 5 and 8.
    """
    spec = frame.spec
    data = long.dropna(subset=[OUTCOME, *frame.adjustment]).reset_index(drop=True)
    timepoints = [
        str(t) for t in data["timepoint"].cat.categories if (data["timepoint"] == t).any()
    ]
    columns: dict[str, np.ndarray] = {}
    for tp in timepoints[1:]:
        columns[f"time={tp}"] = (data["timepoint"] == tp).to_numpy(dtype=float)
    for tp in timepoints[1:]:
        columns[f"{TREATED}:time={tp}"] = columns[f"time={tp}"] * data[TREATED].to_numpy()
    if "baseline" in data:
        for tp in timepoints[1:]:
            columns[f"baseline:time={tp}"] = columns[f"time={tp}"] * data["baseline"].to_numpy()
    data = data.assign(**columns)
    X = design(data, [TREATED, *frame.adjustment, *columns])
    model = sm.MixedLM(
        data[OUTCOME].to_numpy(dtype=float), X, groups=data["participant_id"].astype(str).to_numpy()
    )
    result, converged, warning = _fit_reml(model)
    fit = _mixed_fit(
        result, X.columns, len(data), data["participant_id"].nunique(), converged, warning
    )
    words = (
        f"linear mixed model of {spec.outcome} at {', '.join(timepoints)}: arm x time + baseline x time"
        + (f" + {', '.join(spec.adjust_for)}" if spec.adjust_for else "")
        + "; random intercept per participant; REML"
    )
    rows = []
    for tp in timepoints:
        weights = pd.Series({TREATED: 1.0})
        if tp != timepoints[0]:
            weights[f"{TREATED}:time={tp}"] = 1.0
        at = data[data["timepoint"] == tp]
        rows.append(
            estimate_row(
                method="repeated_measures",
                estimand="conditional",
                effect_measure="mean_difference",
                term=f"{spec.treatment} vs {spec.control} at {tp}",
                **fit.contrast(weights, alpha),
                n_treated=int((at[TREATED] == 1).sum()),
                n_control=int((at[TREATED] == 0).sum()),
                n_clusters=np.nan,
                model=words,
                converged=converged,
                warning=warning,
                extra={"timepoint": tp},
            )
        )
    return estimates_frame(rows)


def _fit_reml(model: sm.MixedLM) -> tuple[object, bool, str]:
    """REML by L-BFGS, then BFGS, then Powell: the first trustworthy fit wins.

    A fit is trusted when the optimiser converged, the log-likelihood is finite and statsmodels
    raised no boundary or non-positive-definite Hessian warning: L-BFGS can stop at a spurious
    boundary (variance 0, infinite log-likelihood) where BFGS finds the REML optimum
    (``tests/test_mixed.py``). L-BFGS is tried first because it is much faster on large data.
    If no fit is trusted, the best finite one is returned, flagged as not converged.
    """
    notes: list[str] = []
    candidates = []
    for method in ("lbfgs", "bfgs", "powell"):
        try:
            result, converged, warning = capture(lambda m=method: model.fit(reml=True, method=m))
        except np.linalg.LinAlgError as exc:
            notes.append(f"{method} failed ({exc})")
            continue
        suspicious = any(
            flag in warning for flag in ("boundary", "not positive definite", "singular")
        )
        finite = bool(np.isfinite(result.llf))
        if converged and finite and not suspicious:
            return result, True, "; ".join(notes)
        notes.append(f"{method}: " + (warning or "log-likelihood not finite"))
        if finite:
            candidates.append(result)
    if not candidates:
        raise np.linalg.LinAlgError("no optimiser gave a finite REML fit: " + "; ".join(notes))
    best = max(candidates, key=lambda r: r.llf)
    return best, False, "; ".join(notes)


def _mixed_fit(result, names, n: int, n_clusters: int, converged: bool, warning: str) -> Fit:
    k = len(names)
    params = pd.Series(np.asarray(result.fe_params), index=names)
    cov = pd.DataFrame(np.asarray(result.cov_params())[:k, :k], index=names, columns=names)
    return Fit(params, cov, np.inf, n, n_clusters, converged, warning, result)
