"""Timing the main estimators at scale on this machine (issue targets in brackets).

ANCOVA with cluster-robust errors on 1,000,000 patients (< 5 s); propensity weighting +
balance on 1,000,000 (< 15 s); negative binomial on 200,000; mixed model on 200,000 patients
with 500 therapists (< 60 s); MICE with m = 20 on the 4193-patient reference cohort (< 60 s).
"""

from __future__ import annotations

from benchmarks._cohort_frames import cohort_frame
from benchmarks._harness import record, time_call
from pipeline.analysis.counts import fit_negative_binomial
from pipeline.analysis.imputation import fit_mice
from pipeline.analysis.linear import fit_ancova
from pipeline.analysis.mixed import fit_mixed
from pipeline.analysis.weighting import fit_ipw
from pipeline.simulate.cohort import CohortSpec, simulate_cohort


def run() -> dict:
    results: dict[str, dict] = {}
    big = simulate_cohort(CohortSpec(n_patients=1_000_000, seed=1))
    frame = cohort_frame(big, "function", complete_only=False)
    frame = frame.__class__(
        **{
            **frame.__dict__,
            "data": frame.data.assign(
                y=big.patients["function_if_usual"].to_numpy()
                + big.patients["etmi"].to_numpy() * 4.0
            ),
        }
    )
    seconds, rows = time_call(fit_ancova, frame, repeat=2)
    results["ancova_cr1_1m"] = {
        "n": len(frame.data),
        "seconds": round(seconds, 2),
        "target_s": 5,
        "estimate": round(float(rows["estimate"].iloc[0]), 3),
    }
    data = frame.data
    seconds, ipw = time_call(
        fit_ipw,
        data,
        "y",
        "treated",
        ["baseline", *frame.covariates],
        estimand="ATE",
        cluster="cluster",
        repeat=1,
    )
    results["weighting_balance_1m"] = {
        "n": len(data),
        "seconds": round(seconds, 2),
        "target_s": 15,
        "max_abs_smd_after": round(float(ipw.balance["smd_after"].abs().max()), 4),
    }

    mid = simulate_cohort(
        CohortSpec(
            n_patients=200_000,
            n_therapists=500,
            n_therapists_trained=400,
            n_therapists_delivering=250,
            seed=2,
        )
    )
    sessions = cohort_frame(mid, "sessions", complete_only=False)
    seconds, nb = time_call(fit_negative_binomial, sessions, repeat=1)
    results["negative_binomial_200k"] = {
        "n": len(sessions.data),
        "seconds": round(seconds, 2),
        "rate_ratio": round(float(nb["estimate"].iloc[0]), 4),
    }
    function = cohort_frame(mid, "function", complete_only=False)
    function = function.__class__(
        **{
            **function.__dict__,
            "data": function.data.assign(
                y=mid.patients["function_if_usual"].to_numpy()
                + mid.patients["etmi"].to_numpy() * 4.0
            ),
        }
    )
    seconds, mixed = time_call(fit_mixed, function, repeat=1)
    results["mixed_200k_500_therapists"] = {
        "n": len(function.data),
        "therapists": 500,
        "seconds": round(seconds, 2),
        "target_s": 60,
        "converged": bool(mixed["converged"].iloc[0]),
        "estimate": round(float(mixed["estimate"].iloc[0]), 3),
    }

    reference = simulate_cohort(CohortSpec())
    frame = cohort_frame(reference, "function", complete_only=False)
    seconds, mice = time_call(
        fit_mice,
        frame.data,
        "y",
        "treated",
        ["baseline", *frame.covariates],
        seed=1,
        m=20,
        cluster="cluster",
        repeat=1,
    )
    results["mice_m20_4193"] = {
        "n": len(frame.data),
        "seconds": round(seconds, 2),
        "target_s": 60,
        "fmi": round(float(mice["fmi"].iloc[0]), 3),
    }
    record("estimators", results)
    return results


if __name__ == "__main__":
    run()
