"""Analysis frames built straight from a simulated cohort (no export/ingest), for benchmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.analysis.frame import AnalysisFrame
from pipeline.analysis.spec import ComparisonSpec
from pipeline.simulate.cohort import FEAR_CANONICAL_PER_RAW, Cohort

COVARIATES = [
    "age",
    "female",
    "depression_anxiety",
    "log_symptom_years",
    "bmi",
    "baseline_fear",
    "baseline_pain",
]


def cohort_frame(
    cohort: Cohort, outcome: str = "function", complete_only: bool = True
) -> AnalysisFrame:
    """The analysis frame of ETMI vs usual care for one outcome of a clean simulated cohort."""
    p = cohort.patients
    y = {
        "function": p["function_discharge"],
        "pain": p["pain_discharge"],
        "fear_avoidance": p["fabq_pa_discharge"] * FEAR_CANONICAL_PER_RAW,
        "sessions": p["sessions"],
    }[outcome]
    baseline = {
        "function": p["function_baseline"],
        "pain": p["pain_baseline"],
        "fear_avoidance": p["fabq_pa_baseline"] * FEAR_CANONICAL_PER_RAW,
    }.get(outcome)
    data = pd.DataFrame(
        {
            "participant_id": np.arange(len(p)).astype(str),
            "treated": p["etmi"].astype(int).to_numpy(),
            "y": y.to_numpy(dtype=float),
            "age": p["age"].to_numpy(),
            "female": p["female"].astype(float).to_numpy(),
            "depression_anxiety": p["depression_anxiety"].astype(float).to_numpy(),
            "log_symptom_years": np.log(p["symptom_months"].to_numpy() / 12),
            "bmi": p["bmi"].to_numpy(),
            "baseline_fear": p["fabq_pa_baseline"].to_numpy() * FEAR_CANONICAL_PER_RAW,
            "baseline_pain": p["pain_baseline"].to_numpy(dtype=float),
            "cluster": p["therapist_index"].astype(str).to_numpy(),
            "clinic": p["clinic_index"].astype(str).to_numpy(),
        }
    )
    covariates = list(COVARIATES)
    if baseline is not None:
        data["baseline"] = baseline.to_numpy(dtype=float)
        covariates = [c for c in covariates if c != f"baseline_{outcome.split('_')[0]}"]
    if complete_only:
        data = data.dropna(subset=["y"]).reset_index(drop=True)
    methods = ["poisson"] if outcome == "sessions" else ["ancova"]
    spec = ComparisonSpec(
        id=f"bench-{outcome}",
        outcome=outcome,
        timepoint=None if outcome == "sessions" else "discharge",
        treatment="etmi",
        control="usual_care",
        methods=methods,
        cluster="therapist",
        clinic="site",
        adjust_for=[],
        estimands=["ATE", "ATT"],
    )
    mcid = {"function": 5.0, "pain": 2.0, "fear_avoidance": 16.67}.get(outcome)
    return AnalysisFrame(
        spec=spec,
        data=data,
        covariates=covariates,
        domain=outcome,
        instrument=None,
        baseline_timepoint="baseline",
        higher_is_better=outcome == "function",
        mcid=mcid,
    )
