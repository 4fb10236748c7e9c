"""Registry-scale fits on Dask: one task per bucket computes sufficient statistics, the client
sums them and solves exactly.

Passes over the data: ANCOVA/CR1 two (moments, then per-cluster scores at the fitted beta),
the propensity model one per Newton step plus one for balance, NB2 one per Newton step (a
Poisson start first), the random-intercept model one. Each task first builds the bucket's
analysis rows (:func:`pipeline.scale.partitioned.analysis_rows`) and caches them as Parquet
next to the data, so later passes read a few numeric columns only. Nothing but a bucket is
ever in a worker's memory, and the client holds only K x K matrices and per-cluster sums.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
from scipy import special, stats

from pipeline.scale import suffstats as ss
from pipeline.scale.partitioned import (
    ScaleMeta,
    ScaleSpec,
    analysis_rows,
    covariate_terms,
    read_bucket,
    read_meta,
)

MODELS = ("linear", "propensity", "count")


@dataclass(frozen=True)
class Study:
    """A partitioned study and the comparison to fit (everything a task needs; picklable)."""

    root: Path
    spec: ScaleSpec
    meta: ScaleMeta
    buckets: tuple[int, ...]

    @property
    def terms(self) -> list[str]:
        return covariate_terms(self.spec, self.meta)

    @property
    def cache(self) -> Path:
        key = hashlib.sha256((repr(self.spec) + self.meta.to_json()).encode()).hexdigest()[:12]
        return self.root / ".scale_cache" / key


def open_study(root: Path, spec: ScaleSpec) -> Study:
    """A partitioned study (see :func:`pipeline.scale.partitioned.partition_study`)."""
    root = Path(root)
    meta = read_meta(root)
    buckets = tuple(
        sorted(int(p.name.split("=")[1]) for p in (root / "participants").glob("bucket=*"))
    )
    return Study(root, spec, meta, buckets)


def rows_of(study: Study, bucket: int) -> pd.DataFrame:
    """The analysis rows of one bucket, built once and then read from the cache."""
    path = study.cache / f"bucket={bucket}.parquet"
    if path.is_file():
        return pd.read_parquet(path)
    participants, outcomes = read_bucket(study.root, bucket, study.meta)
    rows = analysis_rows(participants, outcomes, study.spec, study.meta)
    study.cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    rows.to_parquet(partial, index=False)
    partial.replace(path)
    return rows


def model_arrays(
    rows: pd.DataFrame, model: str, terms: list[str], clustered: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Design ``X`` (intercept first), response and cluster ids of one model's complete cases.

    ``linear``: ``y ~ treated + baseline + terms`` (ANCOVA, mixed model); ``propensity``:
    ``treated ~ baseline + terms`` on the same rows; ``count``: ``count ~ treated + terms``.
    """
    if model == "count":
        columns, response = ["treated", *terms], "count"
        needed = [response, *columns]
    else:
        columns = ["baseline", *terms] if model == "propensity" else ["treated", "baseline", *terms]
        response = "treated" if model == "propensity" else "y"
        needed = ["y", "treated", "baseline", *terms]
    mask = rows[needed].notna().all(axis=1).to_numpy()
    if clustered:
        mask &= rows["cluster"].notna().to_numpy()
    sub = rows[mask]
    X = np.column_stack([np.ones(len(sub)), sub[columns].to_numpy(dtype=float)])
    cluster = sub["cluster"].to_numpy() if clustered else None
    return X, sub[response].to_numpy(dtype=float), cluster


def names(model: str, terms: list[str]) -> list[str]:
    """Coefficient names of a model (as :func:`pipeline.analysis.models.design`)."""
    if model == "count":
        return ["const", "treated", *terms]
    if model == "propensity":
        return ["const", "baseline", *terms]
    return ["const", "treated", "baseline", *terms]


def task(study: Study, bucket: int, op: str, params: Any = None) -> Any:
    """Statistics ``op`` of one bucket (run on a worker)."""
    rows = rows_of(study, bucket)
    return statistics(rows, study, op, params)


def statistics(rows: pd.DataFrame, study: Study, op: str, params: Any = None) -> Any:
    """Statistics ``op`` of a frame of analysis rows (one bucket, or all rows in memory)."""
    clustered = bool(study.spec.cluster)
    terms = study.terms
    if op in ("ols", "scores", "mixed"):
        X, y, cluster = model_arrays(rows, "linear", terms, clustered)
        if op == "ols":
            return ss.ols_stats(X, y)
        if op == "scores":
            return ss.cluster_scores(X, y - X @ params, cluster)
        return ss.mixed_cluster_stats(X, y, cluster)
    if op in ("logistic", "balance"):
        X, t, _ = model_arrays(rows, "propensity", terms, clustered)
        if op == "logistic":
            return ss.logistic_stats(X, t, params)
        beta, share = params
        w = ss.ate_weights(special.expit(X @ beta), t, share)
        return ss.balance_stats(X[:, 1:], t, w)
    X, y, _ = model_arrays(rows, "count", terms, False)
    if op == "poisson":
        return ss.poisson_stats(X, y, params)
    return ss.nb2_stats(X, y, params)


Mapper = Callable[[str, Any], list[Any]]


def dask_mapper(study: Study, client: Any = None, scheduler: str | None = None) -> Mapper:
    """Run one op on every bucket as Dask tasks (on ``client`` when given)."""

    def run(op: str, params: Any = None) -> list[Any]:
        tasks = [dask.delayed(task)(study, b, op, params) for b in study.buckets]
        if client is not None:
            return client.gather(client.compute(tasks))
        return list(dask.compute(*tasks, scheduler=scheduler or "threads"))

    return run


def memory_mapper(rows: pd.DataFrame, study: Study) -> Mapper:
    """The same ops on one in-memory frame (the single-partition reference path)."""
    return lambda op, params=None: [statistics(rows, study, op, params)]


def _z_row(name: str, b: float, se: float, alpha: float, df: float | None = None) -> dict:
    q = stats.t.ppf(1 - alpha / 2, df) if df else stats.norm.ppf(1 - alpha / 2)
    p = 2 * (stats.t.sf(abs(b / se), df) if df else stats.norm.sf(abs(b / se)))
    return {
        "term": name,
        "estimate": b,
        "se": se,
        "ci_low": b - q * se,
        "ci_high": b + q * se,
        "p_value": p,
    }


def fit_ancova(run: Mapper, study: Study) -> dict[str, Any]:
    """ANCOVA with CR1 errors by cluster (two passes)."""
    moments = ss.add(run("ols"))
    beta = ss.solve_ols(moments)
    fit = ss.solve_cr1(moments, beta, ss.add_by_cluster(run("scores", beta)))
    return {"names": names("linear", study.terms), "fit": fit}


def fit_propensity_balance(run: Mapper, study: Study) -> dict[str, Any]:
    """Logistic propensity model by Newton, stabilised ATE weights, weighted balance."""
    k = len(names("propensity", study.terms))
    fit = ss.newton(lambda b: ss.add(run("logistic", b)), np.zeros(k))
    moments = ss.add(run("ols"))
    share = float(moments["xtx"][0, 1] / moments["n"])  # mean of `treated` on the same rows
    balance = ss.solve_balance(
        ss.add(run("balance", (fit.params, share))), ["baseline", *study.terms]
    )
    return {
        "names": names("propensity", study.terms),
        "fit": fit,
        "balance": balance,
        "treated_share": share,
    }


def fit_nb2(run: Mapper, study: Study) -> dict[str, Any]:
    """NB2 by Newton on ``(beta, log alpha)`` from a Poisson start."""
    k = len(names("count", study.terms))
    moments = ss.add(run("poisson", np.zeros(k)))  # at beta = 0: grad[0] = sum(y) - n
    n = -moments["hess"][0, 0]
    start = np.zeros(k)
    start[0] = np.log((moments["grad"][0] + n) / n)
    poisson = ss.newton(lambda b: ss.add(run("poisson", b)), start, tol=1e-6)
    fit = ss.newton(lambda p: ss.add(run("nb2", p)), np.append(poisson.params, np.log(0.5)))
    return {
        "names": [*names("count", study.terms), "log_alpha"],
        "fit": fit,
        "alpha": float(np.exp(fit.params[-1])),
    }


def fit_mixed(run: Mapper, study: Study) -> dict[str, Any]:
    """Random intercept for ``cluster``: one pass of per-cluster sums, then profiled REML."""
    if not study.spec.cluster:
        raise ValueError("the random-intercept model needs a cluster column")
    moments = ss.add(run("ols"))
    clusters = ss.add_by_cluster(run("mixed"))
    return {
        "names": names("linear", study.terms),
        "fit": ss.solve_random_intercept(moments, clusters),
    }


FITS = {
    "ancova": fit_ancova,
    "ipw_balance": fit_propensity_balance,
    "negative_binomial": fit_nb2,
    "mixed": fit_mixed,
}


def analyse(
    run: Mapper, study: Study, alpha: float = 0.05, models: tuple[str, ...] = tuple(FITS)
) -> dict[str, Any]:
    """Fit ``models`` and return JSON-ready results (treatment rows, timings)."""
    out: dict[str, Any] = {}
    for name in models:
        started = time.perf_counter()
        res = FITS[name](run, study)
        fit = res["fit"]
        row: dict[str, Any] = {"seconds": time.perf_counter() - started}
        if name == "ancova":
            i = res["names"].index("treated")
            row |= _z_row("treated", fit.params[i], fit.se[i], alpha, fit.n_clusters - 1)
            row |= {"n": fit.n, "n_clusters": fit.n_clusters, "errors": "CR1 by cluster, t(G-1)"}
        elif name == "ipw_balance":
            row |= {
                "coefficients": dict(zip(res["names"], fit.params.tolist(), strict=True)),
                "iterations": fit.iterations,
            }
            row["balance"] = res["balance"].to_dict(orient="records")
        elif name == "negative_binomial":
            i = res["names"].index("treated")
            log_scale = _z_row("treated", fit.params[i], fit.se[i], alpha)
            row |= log_scale | {
                "rate_ratio": float(np.exp(log_scale["estimate"])),
                "dispersion_alpha": res["alpha"],
                "iterations": fit.iterations,
            }
        else:
            i = res["names"].index("treated")
            row |= _z_row("treated", fit.params[i], fit.se[i], alpha)
            row |= {
                "variance_cluster": fit.tau2,
                "variance_residual": fit.sigma2,
                "n": fit.n,
                "n_clusters": fit.n_clusters,
            }
        out[name] = row
    return out
