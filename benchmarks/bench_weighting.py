"""How long propensity-score weighting takes on 1,000,000 patients with 6 covariates.

Times :func:`fit_propensity`, :func:`compute_weights`, :func:`balance_table` and
:func:`fit_ipw` (cluster-robust by therapist) one after another, plus :func:`fit_aipw` for
reference. The budget is 15 s for the first four together on the 2-core reference machine.
"""

from __future__ import annotations

import numpy as np

from benchmarks._harness import peak_rss_mib, record, time_call
from pipeline.analysis.weighting import (
    balance_table,
    compute_weights,
    fit_aipw,
    fit_ipw,
    fit_propensity,
)
from pipeline.simulate.cohort import CohortSpec, simulate_cohort

N_PATIENTS = 1_000_000
BUDGET_S = 15.0
COVARIATES = [
    "age",
    "female",
    "depression_anxiety",
    "log_symptom_years",
    "fabq_pa_baseline",
    "function_baseline",
]


def build_frame(n_patients: int = N_PATIENTS, seed: int = 1):
    """All simulated patients, with the outcome each would have had under the arm received."""
    p = simulate_cohort(CohortSpec(n_patients=n_patients, seed=seed)).patients
    return p.assign(
        log_symptom_years=np.log(p["symptom_months"] / 12),
        function_observed=np.where(p["etmi"], p["function_if_etmi"], p["function_if_usual"]),
    )


def run() -> dict:
    data = build_frame()
    t_propensity, propensity = time_call(fit_propensity, data, "etmi", COVARIATES)
    t_weights, weights = time_call(compute_weights, propensity, data["etmi"], "ATE")
    t_balance, _ = time_call(balance_table, data, "etmi", COVARIATES, weights)
    t_ipw, ipw = time_call(
        fit_ipw, data, "function_observed", "etmi", COVARIATES, cluster="therapist_index"
    )
    t_aipw, aipw = time_call(
        fit_aipw, data, "function_observed", "etmi", COVARIATES, cluster="therapist_index"
    )
    total = t_propensity + t_weights + t_balance + t_ipw
    results = {
        "n_patients": len(data),
        "n_covariates": len(COVARIATES),
        "fit_propensity_s": round(t_propensity, 3),
        "compute_weights_s": round(t_weights, 3),
        "balance_table_s": round(t_balance, 3),
        "fit_ipw_s": round(t_ipw, 3),
        "total_s": round(total, 3),
        "budget_s": BUDGET_S,
        "within_budget": total < BUDGET_S,
        "fit_aipw_s": round(t_aipw, 3),
        "ipw_estimate": round(float(ipw.estimates["estimate"].iloc[0]), 4),
        "aipw_estimate": round(float(aipw["estimate"].iloc[0]), 4),
        "peak_mib": round(peak_rss_mib(), 1),
    }
    record("weighting_1m", results)
    return results


if __name__ == "__main__":
    run()
