"""The Dask path over partitioned Parquet equals the in-memory path on the reference cohort.

Reference cohort ingested as `backpain ingest` does, re-bucketed into 7 partitions; each
estimate is compared with pipeline.analysis (fit_ancova, weighting, fit_negative_binomial) or
statsmodels on the same rows, to 1e-8 relative (the mixed model to MixedLM at ~1e-6, as
MixedLM's optimiser stops at a looser tolerance).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import yaml

from pipeline.analysis.counts import fit_negative_binomial
from pipeline.analysis.frame import build_analysis_frame
from pipeline.analysis.linear import fit_ancova
from pipeline.analysis.spec import load_settings
from pipeline.analysis.weighting import balance_table, compute_weights, fit_propensity
from pipeline.scale import fit as scale
from pipeline.scale.partitioned import ScaleSpec, partition_study
from tests.ingest_helpers import run_folder

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
RTOL = 1e-8


@pytest.fixture(scope="module")
def ingested(reference_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("scale-processed")
    monkeypatch = pytest.MonkeyPatch()
    try:
        run = run_folder(reference_dir / "study.yaml", out, monkeypatch)
    finally:
        monkeypatch.undo()
    comparison = next(
        c
        for c in load_settings(PARAMS["analyse"]).comparisons("etmi-reference")
        if c.id == "etmi-function"
    )
    return (
        out,
        run.result.participants,
        run.result.outcomes,
        comparison.model_copy(update={"clinic": None}),
    )


@pytest.fixture(scope="module")
def scaled(ingested, tmp_path_factory):
    out, _, _, comparison = ingested
    root = tmp_path_factory.mktemp("scale-parts")
    partition_study(out, root, buckets=7)
    study = scale.open_study(root, ScaleSpec.from_comparison(comparison))
    return study, scale.analyse(scale.dask_mapper(study, scheduler="synchronous"), study)


@pytest.fixture(scope="module")
def frame(ingested):
    _, participants, outcomes, comparison = ingested
    return build_analysis_frame(participants, outcomes, comparison)


def _linear_rows(frame) -> pd.DataFrame:
    data, _ = frame.model_data()
    return data


def test_buckets_hold_every_participant_once(scaled, ingested):
    study, _ = scaled
    rows = [scale.rows_of(study, b) for b in study.buckets]
    assert len(study.buckets) == 7
    _, participants, _, comparison = ingested
    chosen = participants["arm"].astype(str).isin([comparison.treatment, comparison.control])
    assert sum(len(r) for r in rows) == int(chosen.sum())


def test_ancova_cr1_equals_fit_ancova(scaled, frame):
    _, res = scaled
    ref = fit_ancova(frame).iloc[0]
    for key in ("estimate", "se", "ci_low", "ci_high"):
        np.testing.assert_allclose(res["ancova"][key], ref[key], rtol=RTOL)
    assert res["ancova"]["n"] == ref["n_treated"] + ref["n_control"]
    assert res["ancova"]["n_clusters"] == ref["n_clusters"]


def test_propensity_and_balance_equal_weighting(scaled, frame):
    study, res = scaled
    data = _linear_rows(frame)
    covariates = ["baseline", *frame.covariates]
    assert covariates == ["baseline", *study.terms]
    X = sm.add_constant(data[covariates].to_numpy(dtype=float))
    ref = sm.Logit(data["treated"].to_numpy(dtype=float), X).fit(method="newton", disp=0)
    ours = np.array(list(res["ipw_balance"]["coefficients"].values()))
    np.testing.assert_allclose(ours, ref.params, rtol=RTOL)
    e = fit_propensity(data, "treated", covariates)
    w = compute_weights(e, data["treated"], estimand="ATE", stabilise=True)
    table = balance_table(data, "treated", covariates, w)
    mine = pd.DataFrame(res["ipw_balance"]["balance"])
    for column in (
        "mean_treated_after",
        "mean_control_after",
        "smd_before",
        "smd_after",
        "variance_ratio_after",
    ):
        np.testing.assert_allclose(mine[column], table[column], rtol=RTOL, err_msg=column)


def test_negative_binomial_equals_fit_negative_binomial(scaled, ingested):
    _, participants, outcomes, comparison = ingested
    sessions = comparison.model_copy(
        update={
            "outcome": "sessions",
            "cluster": None,
            "adjust_for_baselines": [
                b for b in comparison.adjust_for_baselines if b != comparison.outcome
            ],
        }
    )
    ref = fit_negative_binomial(build_analysis_frame(participants, outcomes, sessions)).iloc[0]
    _, res = scaled
    nb = res["negative_binomial"]
    np.testing.assert_allclose(nb["rate_ratio"], ref["estimate"], rtol=RTOL)
    np.testing.assert_allclose(nb["se"], ref["se"], rtol=RTOL)
    np.testing.assert_allclose(nb["dispersion_alpha"], ref["dispersion_alpha"], rtol=RTOL)


def test_random_intercept_equals_in_memory_and_mixedlm(scaled, frame):
    study, res = scaled
    everything = pd.concat([scale.rows_of(study, b) for b in study.buckets], ignore_index=True)
    memory = scale.analyse(scale.memory_mapper(everything, study), study, models=("mixed",))[
        "mixed"
    ]
    for key in ("estimate", "se", "variance_cluster", "variance_residual"):
        np.testing.assert_allclose(res["mixed"][key], memory[key], rtol=RTOL, err_msg=key)
    data = _linear_rows(frame)
    Z = data[["treated", *frame.adjustment]].to_numpy(dtype=float)
    # Standardised covariates (the treated coefficient is unchanged): MixedLM's gradient
    # optimiser does not converge on the raw scales (ages, BMI, 0-100 scores).
    Z[:, 1:] = (Z[:, 1:] - Z[:, 1:].mean(axis=0)) / Z[:, 1:].std(axis=0)
    X = sm.add_constant(Z)
    ref = sm.MixedLM(data["y"].to_numpy(dtype=float), X, groups=data["cluster"].to_numpy()).fit(
        reml=True, method=["powell"]
    )
    assert ref.converged
    # MixedLM (Powell) stops at its own function tolerance on a flat REML surface: on this
    # cohort its variance ratio differs from ours by ~1e-4 relative and its coefficient by
    # ~2e-6 (lbfgs/bfgs stop far earlier, at 1e-2), so the tolerances are those of MixedLM.
    np.testing.assert_allclose(res["mixed"]["estimate"], ref.fe_params[1], rtol=1e-5)
    np.testing.assert_allclose(res["mixed"]["variance_residual"], ref.scale, rtol=1e-5)
    np.testing.assert_allclose(
        res["mixed"]["variance_cluster"], np.asarray(ref.cov_re)[0, 0], rtol=1e-3
    )


def test_distributed_client_gives_the_same_estimates(scaled):
    distributed = pytest.importorskip("distributed")
    study, res = scaled
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
    ) as client:
        again = scale.analyse(
            scale.dask_mapper(study, client=client), study, models=("ancova", "mixed")
        )
    for model in ("ancova", "mixed"):
        np.testing.assert_allclose(again[model]["estimate"], res[model]["estimate"], rtol=1e-12)
        np.testing.assert_allclose(again[model]["se"], res[model]["se"], rtol=1e-12)


def test_cli_partition_and_clear_error(ingested, tmp_path, capsys):
    from pipeline.cli import main

    out, *_ = ingested
    stale = tmp_path / "parts" / ".scale_cache" / "old" / "bucket=0.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_text("rows of the previous data")
    assert main(["scale", "partition", str(out), str(tmp_path / "parts"), "--buckets", "3"]) == 0
    assert len(list((tmp_path / "parts" / "participants").glob("bucket=*"))) == 3
    assert not stale.exists()  # re-partitioning drops the cached analysis rows
    code = main(
        [
            "scale",
            "analyse",
            str(tmp_path / "none"),
            "--study",
            "etmi-reference",
            "--comparison",
            "etmi-function",
        ]
    )
    assert code == 2
    assert "not a partitioned study" in capsys.readouterr().err
