"""How long MICE (m = 20) takes on the 4193-patient reference cohort with 6 covariates.

Times :func:`fit_mice` with its defaults (m = 20, burn-in 10, skip 5: 130 chained-equation
cycles) and CR1 errors by therapist, once with only the discharge function outcome incomplete
(61% missing) and once with three auxiliary columns, two of them incomplete (the other
discharge outcomes), plus :func:`fit_complete_case` for reference. The budget is 60 s for the
first on the 2-core reference machine.
"""

from __future__ import annotations

import numpy as np

from benchmarks._harness import peak_rss_mib, record, time_call
from pipeline.analysis.imputation import fit_complete_case, fit_mice
from pipeline.simulate.cohort import CohortSpec, simulate_cohort

N_PATIENTS = 4193
SEED = 20260123
BUDGET_S = 60.0
OUTCOME = "function_discharge"
COVARIATES = [
    "age",
    "female",
    "depression_anxiety",
    "log_symptom_years",
    "function_baseline",
    "fabq_pa_baseline",
]
AUXILIARY = ["pain_discharge", "fabq_pa_discharge", "sessions"]


def build_frame(n_patients: int = N_PATIENTS, seed: int = SEED):
    """The reference cohort with a log symptom duration (years) column."""
    p = simulate_cohort(CohortSpec(n_patients=n_patients, seed=seed)).patients
    return p.assign(log_symptom_years=np.log(p["symptom_months"] / 12))


def run() -> dict:
    data = build_frame()
    common = {"seed": SEED, "m": 20, "cluster": "therapist_index"}
    t_mice, mice = time_call(fit_mice, data, OUTCOME, "etmi", COVARIATES, repeat=3, **common)
    t_aux, aux = time_call(
        fit_mice, data, OUTCOME, "etmi", COVARIATES, imputation_columns=AUXILIARY, **common
    )
    t_cc, cc = time_call(
        fit_complete_case, data, OUTCOME, "etmi", COVARIATES, cluster="therapist_index"
    )
    truth = float((data["function_if_etmi"] - data["function_if_usual"]).mean())
    row, row_aux, row_cc = mice.iloc[0], aux.iloc[0], cc.iloc[0]
    results = {
        "n_patients": len(data),
        "n_covariates": len(COVARIATES),
        "share_outcome_missing": round(float(data[OUTCOME].isna().mean()), 3),
        "m": int(row["m"]),
        "n_burnin": int(row["n_burnin"]),
        "n_skip": int(row["n_skip"]),
        "fit_mice_s": round(t_mice, 3),
        "fit_mice_with_auxiliary_s": round(t_aux, 3),
        "fit_complete_case_s": round(t_cc, 4),
        "budget_s": BUDGET_S,
        "within_budget": t_mice <= BUDGET_S,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "true_effect": round(truth, 3),
        "mice_estimate": round(float(row["estimate"]), 3),
        "mice_ci": [round(float(row["ci_low"]), 3), round(float(row["ci_high"]), 3)],
        "mice_fmi": round(float(row["fmi"]), 3),
        "mice_with_auxiliary_estimate": round(float(row_aux["estimate"]), 3),
        "mice_with_auxiliary_fmi": round(float(row_aux["fmi"]), 3),
        "complete_case_estimate": round(float(row_cc["estimate"]), 3),
        "complete_case_ci": [round(float(row_cc["ci_low"]), 3), round(float(row_cc["ci_high"]), 3)],
    }
    record("imputation_m20", results)
    return results


if __name__ == "__main__":
    run()
