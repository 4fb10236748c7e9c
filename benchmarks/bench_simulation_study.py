"""Simulation study: bias and 95% CI coverage of the main estimators over many seeded reference cohorts.

Each replicate draws a fresh reference cohort (new therapists, patients, treatment and
missingness; seed = replicate number), fits the estimators on the complete cases of the
function outcome, and compares each estimate with that cohort's realised true effect (ATE or
ATT among the complete cases, from both potential outcomes). Coverage should land within
93-97%; the Monte Carlo SE of a coverage near 95% over R replicates is sqrt(.95 x .05 / R).

Usage: ``python -m benchmarks simulation_study`` (``BENCH_REPLICATES`` sets R, default 300;
MICE runs on the first ``BENCH_MICE_REPLICATES``, default 100, because it is the slowest).
"""

from __future__ import annotations

import os
import warnings
from multiprocessing import get_context

import numpy as np
import pandas as pd

from benchmarks._cohort_frames import cohort_frame
from benchmarks._harness import record
from pipeline.analysis.imputation import fit_mice
from pipeline.analysis.linear import fit_ancova, fit_naive
from pipeline.analysis.mixed import fit_mixed
from pipeline.analysis.weighting import fit_aipw, fit_ipw
from pipeline.simulate.cohort import CohortSpec, simulate_cohort, true_effects


def replicate(seed: int, with_mice: bool) -> list[dict]:
    warnings.simplefilter("ignore")
    cohort = simulate_cohort(CohortSpec(seed=seed))
    truth = true_effects(cohort)["realised"]["function"]
    frame = cohort_frame(cohort, "function")
    data = frame.data
    covariates = ["baseline", *frame.covariates]
    fits = {
        "naive": (fit_naive(frame), "ate_complete_cases"),
        "ancova_cr1": (fit_ancova(frame).iloc[[0]], "ate_complete_cases"),
        "mixed_therapist_clinic": (fit_mixed(frame), "ate_complete_cases"),
        "ipw_ate": (
            fit_ipw(data, "y", "treated", covariates, estimand="ATE", cluster="cluster").estimates,
            "ate_complete_cases",
        ),
        "ipw_att": (
            fit_ipw(data, "y", "treated", covariates, estimand="ATT", cluster="cluster").estimates,
            "att_complete_cases",
        ),
        "aipw_ate": (
            fit_aipw(data, "y", "treated", covariates, estimand="ATE", cluster="cluster"),
            "ate_complete_cases",
        ),
        "aipw_att": (
            fit_aipw(data, "y", "treated", covariates, estimand="ATT", cluster="cluster"),
            "att_complete_cases",
        ),
    }
    if with_mice:
        full = cohort_frame(cohort, "function", complete_only=False).data
        fits["mice_m20"] = (
            fit_mice(full, "y", "treated", covariates, seed=seed, m=20, cluster="cluster"),
            "ate",
        )
    out = []
    for name, (rows, truth_key) in fits.items():
        row = rows.iloc[0]
        target = truth[truth_key]
        out.append(
            {
                "seed": seed,
                "estimator": name,
                "estimate": row["estimate"],
                "ci_low": row["ci_low"],
                "ci_high": row["ci_high"],
                "truth": target,
                "covered": bool(row["ci_low"] <= target <= row["ci_high"]),
            }
        )
    return out


def _job(args: tuple[int, bool]) -> list[dict]:
    return replicate(*args)


def run() -> dict:
    replicates = int(os.environ.get("BENCH_REPLICATES", "300"))
    mice_replicates = int(os.environ.get("BENCH_MICE_REPLICATES", "100"))
    jobs = [(seed, seed <= mice_replicates) for seed in range(1, replicates + 1)]
    with get_context("spawn").Pool(processes=os.cpu_count() or 2) as pool:
        rows = [r for chunk in pool.imap(_job, jobs, chunksize=4) for r in chunk]
    table = pd.DataFrame(rows)
    table["error"] = table["estimate"] - table["truth"]
    summary = {}
    for name, group in table.groupby("estimator", sort=False):
        r = len(group)
        coverage = float(group["covered"].mean())
        summary[name] = {
            "replicates": r,
            "bias": round(float(group["error"].mean()), 3),
            "bias_mc_se": round(float(group["error"].std() / np.sqrt(r)), 3),
            "empirical_se": round(float(group["estimate"].std()), 3),
            "mean_ci_width": round(float((group["ci_high"] - group["ci_low"]).mean()), 3),
            "coverage": round(coverage, 3),
            "coverage_mc_se": round(float(np.sqrt(coverage * (1 - coverage) / r)), 3),
        }
    record(
        "simulation_study",
        {"true_effect": "function, ETMI minus usual care (about +4 points)", "estimators": summary},
    )
    return summary


if __name__ == "__main__":
    run()
