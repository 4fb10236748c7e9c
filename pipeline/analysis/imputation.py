"""Multiple imputation by chained equations for a missing outcome, pooled by Rubin's rules.

:func:`pool_rubin` combines ``m`` complete-data estimates and variances (Rubin's rules with the
Barnard-Rubin small-sample degrees of freedom) and returns a dict. :func:`fit_mice` imputes a
missing outcome (and any missing covariates) with statsmodels' ``MICEData`` (predictive mean
matching), fits ``OLS(outcome ~ treatment + covariates)`` in each completed data set and pools
the treatment coefficient; :func:`fit_complete_case` fits the same model to the complete cases
for side-by-side reporting. Both ``fit_*`` functions return one tidy estimate row
(:data:`pipeline.analysis.tidy.ESTIMATE_COLUMNS` plus a few extra columns).
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.imputation.mice import MICEData

from pipeline.analysis.tidy import estimate_row, estimates_frame

# statsmodels >= 0.15 lets MICEData draw from its own generator; 0.14 draws from numpy's
# global RandomState. Both paths are covered by _seeded_global_numpy_state below.
_MICEDATA_TAKES_RNG = "rng" in inspect.signature(MICEData.__init__).parameters
_MAX_SEED = 2**32 - 1  # numpy.random.seed accepts 0 .. 2**32 - 1


def pool_rubin(
    estimates: Sequence[float] | np.ndarray,
    variances: Sequence[float] | np.ndarray,
    n_obs: int | None = None,
    k_params: int = 1,
    alpha: float = 0.05,
) -> dict[str, float]:
    """Pool ``m`` complete-data estimates of one scalar by Rubin's rules.

    Parameters
    ----------
    estimates : array-like of shape (m,)
        The estimate from each completed data set (m >= 2).
    variances : array-like of shape (m,)
        Its squared standard error in each completed data set (all > 0).
    n_obs : int, optional
        Sample size of the complete-data analysis. When given, the degrees of freedom are
        Barnard & Rubin's (1999) small-sample version with complete-data df
        ``n_obs - k_params``; when None, Rubin's (1987) large-sample df.
    k_params : int, default 1
        Number of parameters of the complete-data model (only used with ``n_obs``). For a
        cluster-robust analysis pass ``n_obs`` = number of clusters and ``k_params`` = 1, so the
        complete-data df is ``G - 1``.
    alpha : float, default 0.05
        The confidence interval has level ``1 - alpha``.

    Returns
    -------
    dict
        ``m``
            number of imputations.
        ``estimate``
            pooled estimate ``Qbar = mean(Q_l)``.
        ``within``
            within-imputation variance ``W = mean(U_l)``.
        ``between``
            between-imputation variance ``B = sum((Q_l - Qbar)^2) / (m - 1)``.
        ``total``
            total variance ``T = W + (1 + 1/m) B``.
        ``se``
            ``sqrt(T)``.
        ``relative_increase_variance``
            ``r = (1 + 1/m) B / W``.
        ``lambda``
            proportion of the total variance due to missing data, ``(1 + 1/m) B / T``.
        ``fmi``
            fraction of missing information ``(r + 2 / (df + 3)) / (1 + r)``.
        ``df``
            degrees of freedom of the t reference distribution (see Notes).
        ``df_old``
            Rubin's df ``(m - 1) / lambda^2`` (``inf`` when B = 0).
        ``df_observed``
            Barnard-Rubin observed-data df ``(v_com + 1) / (v_com + 3) v_com (1 - lambda)``
            (NaN without ``n_obs``).
        ``df_complete``
            complete-data df ``v_com = n_obs - k_params`` (``inf`` without ``n_obs``).
        ``t_statistic``
            ``Qbar / sqrt(T)``.
        ``ci_low``, ``ci_high``
            ``Qbar -/+ t_{df, 1 - alpha/2} sqrt(T)``.
        ``p_value``
            two-sided p value for ``Q = 0`` from the t distribution with ``df``.

    Raises
    ------
    ValueError
        If the arrays are not 1-D of equal length >= 2, contain non-finite values, a variance
        is not positive, ``n_obs - k_params < 1``, or ``alpha`` is outside (0, 1).

    Notes
    -----
    Rubin (1987) eqs. 3.1.2-3.1.10, as written in van Buuren (2018) sections 2.3.2-2.3.6:
    ``T = W + (1 + 1/m) B``, ``r = (1 + 1/m) B / W``, ``lambda = (1 + 1/m) B / T``,
    ``v_old = (m - 1) / lambda^2``; with a finite complete-data df ``v_com`` the
    Barnard & Rubin (1999) df is ``v = v_old v_obs / (v_old + v_obs)`` with
    ``v_obs = (v_com + 1) / (v_com + 3) v_com (1 - lambda)``, and the fraction of missing
    information is ``gamma = (r + 2 / (v + 3)) / (1 + r)`` (van Buuren 2018 eq. 2.24, the
    formula R ``mice::pool()`` and ``pool.scalar()`` use). When ``B = 0`` (nothing imputed),
    ``lambda = r = 0``, ``v_old = inf`` and ``v = v_obs = v_com (v_com + 1) / (v_com + 3)``, the
    limit the mice package tests (``test-barnard.rubin.R``); the fmi is then ``2 / (v + 3)``,
    which is 0 only with Rubin's infinite df (``n_obs=None``).

    ``B`` and ``Qbar`` are computed from the estimates shifted by the first one, so identical
    estimates give ``B = 0`` exactly rather than a rounding residue.

    Checked against the worked example of R ``mice::pool.scalar()`` (mice 3.10.3 reference
    page; nhanes, m = 5, n = 25, k = 1: Qbar 26.6592, W 0.6649272, B 0.1106032,
    T 0.797651, df 16.41929, r 0.1996066, fmi 0.2522468) and a hand-worked m = 3 example in
    ``tests/test_imputation.py``. statsmodels' ``MICE.combine`` pools the same way for the
    point estimate and ``T`` but gives no degrees of freedom and computes its "fmi" as
    ``lambda``, so it is not used here.

    References
    ----------
    Rubin DB. *Multiple Imputation for Nonresponse in Surveys*. New York: Wiley; 1987.
    doi:10.1002/9780470316696.

    Barnard J, Rubin DB. Small-sample degrees of freedom with multiple imputation.
    *Biometrika* 1999;86:948-955. doi:10.1093/biomet/86.4.948.

    van Buuren S. *Flexible Imputation of Missing Data*, 2nd ed. Boca Raton: CRC Press; 2018.
    Sections 2.3.2-2.3.6. https://stefvanbuuren.name/fimd/

    Examples
    --------
    >>> pooled = pool_rubin([10.0, 12.0, 14.0], [3.0, 4.0, 5.0])
    >>> pooled["estimate"], pooled["between"], round(pooled["total"], 4)
    (12.0, 4.0, 9.3333)
    """
    _check_alpha(alpha)
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    if q.ndim != 1 or u.ndim != 1 or q.shape != u.shape:
        raise ValueError(
            f"estimates and variances must be 1-D arrays of the same length, got shapes "
            f"{q.shape} and {u.shape}"
        )
    m = q.size
    if m < 2:
        raise ValueError(f"Rubin's rules need at least 2 imputations, got {m}")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(u))):
        raise ValueError("estimates and variances must all be finite numbers (no NaN or inf)")
    if np.any(u <= 0):
        raise ValueError(
            f"every complete-data variance must be positive, got {u.tolist()}: a zero variance "
            "means the estimate was not estimated in that data set"
        )
    if n_obs is None:
        df_complete = math.inf
    else:
        if n_obs != int(n_obs) or k_params != int(k_params) or n_obs - k_params < 1:
            raise ValueError(
                f"n_obs - k_params must be a whole number >= 1 (the complete-data degrees of "
                f"freedom), got n_obs={n_obs!r}, k_params={k_params!r}"
            )
        df_complete = float(n_obs - k_params)

    shift = q[0]
    deviations = q - shift
    estimate = float(shift + deviations.mean())
    within = float(u.mean())
    between = float(np.sum((deviations - deviations.mean()) ** 2) / (m - 1))
    inflation = 1.0 + 1.0 / m
    total = within + inflation * between
    r = inflation * between / within
    lam = inflation * between / total
    df_old = math.inf if lam == 0 else (m - 1) / lam**2
    if math.isinf(df_complete):
        df_observed = math.nan
        df = df_old
    else:
        df_observed = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - lam)
        df = df_observed if math.isinf(df_old) else df_old * df_observed / (df_old + df_observed)
    fmi = (r + 2.0 / (df + 3.0)) / (1.0 + r)
    se = math.sqrt(total)
    quantile = float(stats.t.isf(alpha / 2.0, df))
    t_statistic = estimate / se
    return {
        "m": m,
        "estimate": estimate,
        "within": within,
        "between": between,
        "total": total,
        "se": se,
        "relative_increase_variance": r,
        "lambda": lam,
        "fmi": fmi,
        "df": df,
        "df_old": df_old,
        "df_observed": df_observed,
        "df_complete": df_complete,
        "t_statistic": t_statistic,
        "ci_low": estimate - quantile * se,
        "ci_high": estimate + quantile * se,
        "p_value": float(2.0 * stats.t.sf(abs(t_statistic), df)),
    }


def fit_complete_case(
    data: pd.DataFrame,
    outcome: str,
    treatment: str,
    covariates: Sequence[str],
    cluster: str | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Covariate-adjusted OLS on the complete cases, as one tidy estimate row.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per participant. Not modified.
    outcome : str
        Numeric outcome column (missing values allowed: those rows are dropped).
    treatment : str
        Treatment indicator: bool, or numeric coded 0 (control) / 1 (treated); no missing values.
    covariates : sequence of str
        Numeric or bool adjustment columns, entered linearly (transform them first, e.g. a log
        symptom duration). Rows with a missing covariate are dropped.
    cluster : str, optional
        Cluster id column (e.g. the therapist); CR1 cluster-robust errors when given, HC3
        otherwise. No missing values.
    alpha : float, default 0.05
        The confidence interval has level ``1 - alpha``.

    Returns
    -------
    pandas.DataFrame
        One row with the columns of :data:`pipeline.analysis.tidy.ESTIMATE_COLUMNS`:
        ``method`` = "complete_case_ols", ``estimand`` = "conditional", ``effect_measure`` =
        "mean_difference", ``term`` = "<treatment>: 1 vs 0", ``estimate`` (outcome units),
        ``se``, ``ci_low``, ``ci_high``, ``p_value`` (t distribution with ``df``), ``n_treated`` /
        ``n_control`` (complete cases per arm), ``n_clusters`` (NaN without ``cluster``),
        ``model`` (in words), ``converged`` = True, ``warning`` (rows dropped); then extra columns
        ``df`` (residual df ``n - k`` for HC3, ``G - 1`` for CR1), ``n_missing_outcome`` (rows
        with a missing outcome) and ``n_dropped`` (rows dropped for any missing value).

    Raises
    ------
    ValueError
        If a column is missing or not numeric/bool, a role repeats a column, the treatment or
        cluster column has missing values, the treatment is not 0/1, an arm has no complete
        case, or the design matrix is rank deficient.

    Notes
    -----
    Model: ``outcome = b0 + b1 treatment + sum_j c_j covariate_j + error``; ``b1`` is the
    covariate-conditional mean difference (``estimand`` "conditional"; it equals the average
    effect only if the effect is the same for everyone). Complete-case analysis is unbiased
    when missingness depends only on variables in the model (here: covariates and arm), but
    not when it depends on the outcome or on variables outside the model; compare with
    :func:`fit_mice`. HC3 is MacKinnon & White (1985); CR1 is the Stata-style small-sample
    factor ``G/(G-1) (N-1)/(N-K)`` with a t(G-1) reference (Cameron & Miller 2015), as
    statsmodels' ``cov_type="cluster"`` computes. Both were checked against sandwich formulas
    written out in numpy in ``tests/test_imputation.py``.

    References
    ----------
    MacKinnon JG, White H. Some heteroskedasticity-consistent covariance matrix estimators with
    improved finite sample properties. *J Econom* 1985;29:305-325.
    doi:10.1016/0304-4076(85)90158-7.

    Cameron AC, Miller DL. A practitioner's guide to cluster-robust inference. *J Hum Resour*
    2015;50:317-372. doi:10.3368/jhr.50.2.317.

    Examples
    --------
    >>> from pipeline.simulate.cohort import CohortSpec, simulate_cohort
    >>> p = simulate_cohort(CohortSpec()).patients
    >>> row = fit_complete_case(p, "function_discharge", "etmi",
    ...                         ["age", "depression_anxiety", "function_baseline"],
    ...                         cluster="therapist_index")
    >>> int(row["n_treated"].iloc[0] + row["n_control"].iloc[0]) == int(p["complete"].sum())
    True
    """
    _check_alpha(alpha)
    covariates = list(covariates)
    _check_columns(data, outcome, treatment, covariates, [], cluster)
    frame = _numeric_frame(data, [outcome, treatment, *covariates])
    keep = frame.notna().all(axis=1).to_numpy()
    n_missing_outcome = int(frame[outcome].isna().sum())
    kept = frame.loc[keep]
    treated = kept[treatment].to_numpy() == 1
    if treated.all() or not treated.any():
        raise ValueError(
            f'complete cases of "{outcome}" are all in one arm of "{treatment}": '
            "the treatment effect cannot be estimated"
        )
    groups = data[cluster].to_numpy()[keep] if cluster is not None else None
    fit = _fit_ols(
        kept[outcome].to_numpy(),
        kept[treatment].to_numpy(),
        kept[covariates].to_numpy(),
        groups,
        outcome,
        treatment,
        covariates,
    )
    quantile = float(stats.t.isf(alpha / 2.0, fit["df"]))
    se = math.sqrt(fit["variance"])
    n_dropped = int((~keep).sum())
    warning = (
        f"{n_dropped} row(s) with a missing outcome or covariate dropped "
        f"({n_missing_outcome} missing {outcome})"
        if n_dropped
        else ""
    )
    row = estimate_row(
        method="complete_case_ols",
        estimand="conditional",
        effect_measure="mean_difference",
        term=f"{treatment}: 1 vs 0",
        estimate=fit["estimate"],
        se=se,
        ci_low=fit["estimate"] - quantile * se,
        ci_high=fit["estimate"] + quantile * se,
        p_value=float(2.0 * stats.t.sf(abs(fit["estimate"]) / se, fit["df"])),
        n_treated=int(treated.sum()),
        n_control=int((~treated).sum()),
        n_clusters=fit["n_clusters"],
        model=(
            f"OLS of {outcome} on {' + '.join([treatment, *covariates])}, "
            f"{_errors_words(cluster)}; complete cases"
        ),
        warning=warning,
        extra={"df": fit["df"], "n_missing_outcome": n_missing_outcome, "n_dropped": n_dropped},
    )
    return estimates_frame([row])


def fit_mice(
    data: pd.DataFrame,
    outcome: str,
    treatment: str,
    covariates: Sequence[str],
    *,
    seed: int,
    imputation_columns: Sequence[str] | None = None,
    m: int = 20,
    n_burnin: int = 10,
    n_skip: int = 5,
    cluster: str | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Multiple imputation by chained equations, then pooled covariate-adjusted OLS.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per participant. Not modified.
    outcome : str
        Numeric outcome column with missing values to impute.
    treatment : str
        Treatment indicator: bool, or numeric coded 0 (control) / 1 (treated); no missing values.
    covariates : sequence of str
        Numeric or bool adjustment columns of the analysis model, entered linearly (transform
        them first). Missing values are imputed too.
    seed : int
        Seed (0 to 2**32 - 1) of the imputation draws; the same seed gives the same result.
    imputation_columns : sequence of str, optional
        Auxiliary numeric/bool columns used only to impute (e.g. other discharge outcomes,
        sessions): predictors of the outcome or of its missingness that are not in the analysis
        model. Their missing values are imputed as well.
    m : int, default 20
        Number of completed data sets (imputations), at least 2.
    n_burnin : int, default 10
        Chained-equation cycles run before the first completed data set is kept
        (statsmodels ``MICE.fit(n_burnin=...)``).
    n_skip : int, default 5
        Cycles discarded between consecutive kept data sets (statsmodels ``MICE(n_skip=...)``),
        so each kept data set comes ``n_skip + 1`` cycles after the previous one.
    cluster : str, optional
        Cluster id column (e.g. the therapist) for CR1 cluster-robust errors in the analysis
        model; HC3 errors when None. Not used as an imputation predictor. No missing values.
    alpha : float, default 0.05
        The confidence interval has level ``1 - alpha``.

    Returns
    -------
    pandas.DataFrame
        One row with the columns of :data:`pipeline.analysis.tidy.ESTIMATE_COLUMNS`:
        ``method`` = "mice", ``estimand`` = "conditional", ``effect_measure`` =
        "mean_difference", ``term`` = "<treatment>: 1 vs 0", ``estimate`` (pooled treatment
        coefficient, outcome units), ``se`` (``sqrt(T)``), ``ci_low``, ``ci_high``, ``p_value``
        (t distribution with the Barnard-Rubin ``df``), ``n_treated`` / ``n_control`` (all
        participants per arm: none are dropped), ``n_clusters`` (NaN without ``cluster``),
        ``model`` (in words), ``converged`` = True, ``warning`` (warnings raised while
        imputing or fitting, "" when none); then extra columns ``m``, ``n_burnin``, ``n_skip``,
        ``seed``, ``fmi`` (fraction of missing information, df-adjusted), ``lambda_missing``
        (``(1 + 1/m) B / T``), ``relative_increase_variance`` (``r``), ``df`` (Barnard-Rubin),
        ``df_complete`` (``n - k`` for HC3, ``G - 1`` for CR1), ``within_variance`` (W),
        ``between_variance`` (B), ``n_missing_outcome`` and ``n_missing_other`` (missing cells
        imputed in covariates and auxiliary columns).

    Raises
    ------
    ValueError
        If a column is missing, not numeric/bool or contains infinite values, a role repeats a
        column, the treatment or cluster column has missing values, the treatment is not 0/1,
        an arm has fewer than 2 observed outcomes, the design is rank deficient, or ``m``,
        ``n_burnin``, ``n_skip``, ``seed`` or ``alpha`` is out of range.

    Notes
    -----
    **Imputation.** statsmodels ``MICEData`` (van Buuren & Groothuis-Oudshoorn 2011's
    fully conditional specification): each incomplete column in turn is regressed by OLS on
    all other columns passed in (outcome, treatment, covariates, auxiliaries; main effects
    only), the coefficients are drawn from their normal approximation, and each missing value
    is replaced by the observed value of one of the ``k_pmm = 20`` donors with the closest
    predicted means (predictive mean matching, statsmodels' default). A small subclass builds
    those main-effects designs with numpy instead of statsmodels' per-cycle patsy formula step
    (same arrays, identical draws, about 6 times faster); columns are renamed to
    ``v0, v1, ...`` so no user column name ever reaches a formula. One chain is run:
    ``n_burnin`` cycles, then ``n_skip + 1`` cycles before each of the ``m`` kept data sets,
    ``n_burnin + m (n_skip + 1)`` cycles in all (130 by default). When only the outcome is
    missing, its imputation model uses fully observed predictors and every cycle is an
    independent draw, so burn-in and skip matter only when several columns are incomplete;
    the defaults are generous for that case and cheap: a few ms per cycle and incomplete
    column on the 4193-patient reference cohort (``benchmarks/bench_imputation.py``).

    Differences from R ``mice``: statsmodels matches donors and recipients on predictions from
    the same drawn coefficients (``mice.impute.pmm`` ``matchtype = 2``; mice's default is
    type 1), uses 20 donors (mice: 5), and runs one chain rather than ``m`` parallel ones. The
    imputation model has no treatment-by-covariate interactions and no cluster effects, so it
    is congenial with the constant-effect analysis model but would shrink effect modification
    or between-therapist variation; add interaction or cluster-mean columns to
    ``imputation_columns`` if those matter.

    **Analysis and pooling.** In each completed data set ``OLS(outcome ~ 1 + treatment +
    covariates)`` (statsmodels, HC3 or CR1 errors; see :func:`fit_complete_case`); the
    treatment coefficient and its robust variance are pooled with :func:`pool_rubin`, with
    complete-data df ``n - k`` (HC3) or ``G - 1`` (CR1) for the Barnard-Rubin df. With no
    missing values every completed data set is the observed one, so the result equals
    :func:`fit_complete_case` (``B = 0``; the CI differs slightly because the Barnard-Rubin
    df is ``v_com (v_com + 1) / (v_com + 3)``, not ``v_com``).

    **Estimand.** The treatment coefficient is a covariate-conditional mean difference,
    labelled "conditional". In a linear model with a constant additive effect it also equals
    the ATE (the mean difference is collapsible), but with effect heterogeneity OLS weights
    participants by the conditional variance of treatment, so the label does not claim ATE.

    **Randomness.** With statsmodels >= 0.15 ``MICEData`` draws from
    ``numpy.random.default_rng(seed)``; statsmodels 0.14 draws from numpy's global
    ``RandomState``. Either way the whole fit runs inside a context that saves the global
    state, seeds it with ``seed`` and restores it afterwards, so results are reproducible and
    the caller's global random stream is untouched. That context is not thread-safe: do not
    run ``fit_mice`` concurrently in threads of one process (processes are fine). The same
    seed gives different (equally valid) imputations under 0.14 and 0.15.

    Checked in ``tests/test_imputation.py``: equality with complete-data OLS when nothing is
    missing; coverage of the realised true effect on the reference cohort; removal of the
    complete-case bias when missingness depends on an auxiliary variable.

    References
    ----------
    van Buuren S, Groothuis-Oudshoorn K. mice: Multivariate Imputation by Chained Equations
    in R. *J Stat Softw* 2011;45(3):1-67. doi:10.18637/jss.v045.i03.

    van Buuren S. *Flexible Imputation of Missing Data*, 2nd ed. CRC Press; 2018. Sections
    3.4 (predictive mean matching) and 5.1-5.2 (workflow and pooling).

    White IR, Royston P, Wood AM. Multiple imputation using chained equations: issues and
    guidance for practice. *Stat Med* 2011;30:377-399. doi:10.1002/sim.4067.

    statsmodels ``statsmodels.imputation.mice.MICEData``,
    https://www.statsmodels.org/stable/imputation.html

    Examples
    --------
    >>> import numpy as np
    >>> from pipeline.simulate.cohort import CohortSpec, simulate_cohort
    >>> p = simulate_cohort(CohortSpec()).patients
    >>> p = p.assign(log_symptom_years=np.log(p["symptom_months"] / 12))
    >>> row = fit_mice(p, "function_discharge", "etmi",
    ...                ["age", "female", "depression_anxiety", "log_symptom_years",
    ...                 "function_baseline", "fabq_pa_baseline"],
    ...                seed=1, cluster="therapist_index")
    >>> row[["estimate", "ci_low", "ci_high", "fmi"]].round(1)
       estimate  ci_low  ci_high  fmi
    0       3.8     2.3      5.3  0.6
    """
    _check_alpha(alpha)
    covariates = list(covariates)
    auxiliary = list(imputation_columns or [])
    for name, value, low in (("m", m, 2), ("n_burnin", n_burnin, 0), ("n_skip", n_skip, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    if (
        isinstance(seed, bool)
        or not isinstance(seed, int | np.integer)
        or not 0 <= seed <= _MAX_SEED
    ):
        raise ValueError(f"seed must be a whole number from 0 to 2**32 - 1, got {seed!r}")
    _check_columns(data, outcome, treatment, covariates, auxiliary, cluster)

    columns = [outcome, treatment, *covariates, *auxiliary]
    frame = _numeric_frame(data, columns)
    observed = frame[outcome].notna().to_numpy()
    treated = frame[treatment].to_numpy() == 1
    for arm_name, in_arm in (("treated (1)", treated), ("control (0)", ~treated)):
        if int((observed & in_arm).sum()) < 2:
            raise ValueError(
                f'the {arm_name} arm of "{treatment}" has {int((observed & in_arm).sum())} '
                f'observed value(s) of "{outcome}"; imputation needs at least 2 per arm'
            )
    n_missing_outcome = int((~observed).sum())
    n_missing_other = int(frame[[*covariates, *auxiliary]].isna().to_numpy().sum())
    groups = data[cluster].to_numpy() if cluster is not None else None

    # Internal names keep user column names out of statsmodels' formula parser.
    internal = {column: f"v{i}" for i, column in enumerate(columns)}
    mice_input = frame.rename(columns=internal)
    y_name, t_name = internal[outcome], internal[treatment]
    x_names = [internal[c] for c in covariates]

    estimates = np.empty(m)
    variances = np.empty(m)
    fit: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _seeded_global_numpy_state(int(seed)):
            kwargs = {"rng": np.random.default_rng(int(seed))} if _MICEDATA_TAKES_RNG else {}
            imputer = _MainEffectsMICEData(mice_input, **kwargs)
            if len(imputer.data) != len(frame):  # pragma: no cover - guarded by validation
                raise RuntimeError("MICEData dropped rows; every row has an observed treatment")
            imputer.update_all(n_burnin)
            for i in range(m):
                imputer.update_all(n_skip + 1)
                completed = imputer.data
                fit = _fit_ols(
                    completed[y_name].to_numpy(dtype=float),
                    completed[t_name].to_numpy(dtype=float),
                    completed[x_names].to_numpy(dtype=float),
                    groups,
                    outcome,
                    treatment,
                    covariates,
                )
                estimates[i] = fit["estimate"]
                variances[i] = fit["variance"]
    messages = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))

    if cluster is None:
        pooled = pool_rubin(estimates, variances, n_obs=len(frame), k_params=fit["k"], alpha=alpha)
    else:
        pooled = pool_rubin(estimates, variances, n_obs=fit["n_clusters"], k_params=1, alpha=alpha)
    predictors = [treatment, *covariates, *auxiliary]
    row = estimate_row(
        method="mice",
        estimand="conditional",
        effect_measure="mean_difference",
        term=f"{treatment}: 1 vs 0",
        estimate=pooled["estimate"],
        se=pooled["se"],
        ci_low=pooled["ci_low"],
        ci_high=pooled["ci_high"],
        p_value=pooled["p_value"],
        n_treated=int(treated.sum()),
        n_control=int((~treated).sum()),
        n_clusters=fit["n_clusters"],
        model=(
            f"OLS of {outcome} on {' + '.join([treatment, *covariates])}, "
            f"{_errors_words(cluster)}, in each of {m} data sets completed by MICE "
            f"(statsmodels MICEData, predictive mean matching with 20 donors; imputation "
            f"predictors {', '.join(predictors)}; burn-in {n_burnin}, skip {n_skip}, seed {seed}), "
            "pooled by Rubin's rules with Barnard-Rubin df"
        ),
        warning="; ".join(messages),
        extra={
            "m": m,
            "n_burnin": n_burnin,
            "n_skip": n_skip,
            "seed": int(seed),
            "fmi": pooled["fmi"],
            "lambda_missing": pooled["lambda"],
            "relative_increase_variance": pooled["relative_increase_variance"],
            "df": pooled["df"],
            "df_complete": pooled["df_complete"],
            "within_variance": pooled["within"],
            "between_variance": pooled["between"],
            "n_missing_outcome": n_missing_outcome,
            "n_missing_other": n_missing_other,
        },
    )
    return estimates_frame([row])


class _MainEffectsMICEData(MICEData):
    """statsmodels MICEData with its default main-effects designs built by numpy, not patsy.

    ``MICEData`` rebuilds each conditional model's design from the formula
    ``v ~ all other columns`` through patsy twice per column and cycle, which is about 85% of
    its run time. With no custom formulas or keyword arguments that design is just an
    intercept plus the other columns in frame order, so these two (public, documented)
    methods return the same arrays directly; the sampler itself (coefficient draws,
    predictive mean matching) is statsmodels'. ``tests/test_imputation.py`` checks the
    imputations are identical to stock ``MICEData`` for the same random stream.
    """

    def _main_effects(self, vname: str) -> tuple[np.ndarray, np.ndarray]:
        """The column ``vname`` and the design [1, other columns] on all rows."""
        others = [c for c in self.data.columns if c != vname]
        values = self.data[others].to_numpy(dtype=float)
        return (
            self.data[vname].to_numpy(dtype=float),
            np.column_stack([np.ones(len(values)), values]),
        )

    def get_split_data(self, vname: str) -> tuple[Any, ...]:
        """Observed endog, exog where observed, exog where missing (no predict keywords)."""
        endog, exog = self._main_effects(vname)
        observed, missing = self.ix_obs[vname], self.ix_miss[vname]
        return endog[observed], exog[observed], exog[missing], {}, {}

    def get_fitting_data(self, vname: str) -> tuple[Any, ...]:
        """Observed endog and its exog (no init or fit keywords)."""
        endog, exog = self._main_effects(vname)
        observed = self.ix_obs[vname]
        return endog[observed], exog[observed], {}, {}


@contextmanager
def _seeded_global_numpy_state(seed: int) -> Iterator[None]:
    """Seed numpy's global RandomState for the block, then restore the caller's state."""
    # The legacy global API is the point here: statsmodels 0.14's MICEData draws from it.
    saved = np.random.get_state()  # noqa: NPY002
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(saved)  # noqa: NPY002


def _check_alpha(alpha: float) -> None:
    """Raise ValueError unless 0 < alpha < 1."""
    if isinstance(alpha, bool) or not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a number between 0 and 1 (e.g. 0.05), got {alpha!r}")


def _check_columns(
    data: pd.DataFrame,
    outcome: str,
    treatment: str,
    covariates: list[str],
    auxiliary: list[str],
    cluster: str | None,
) -> None:
    """Validate column roles, dtypes and the treatment / cluster columns."""
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    roles = [outcome, treatment, *covariates, *auxiliary] + ([cluster] if cluster else [])
    absent = [c for c in roles if c not in data.columns]
    if absent:
        raise ValueError(
            f"column(s) {absent} not in the analysis frame (columns: {list(data.columns)}): "
            "pass the names of existing columns"
        )
    repeated = sorted({c for c in roles if roles.count(c) > 1})
    if repeated:
        raise ValueError(
            f"column(s) {repeated} given in more than one role (outcome, treatment, covariates, "
            "imputation_columns, cluster): give each column one role"
        )
    for column in [outcome, treatment, *covariates, *auxiliary]:
        series = data[column]
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            raise ValueError(
                f'column "{column}" has dtype {series.dtype}, not numeric or bool: convert it to '
                "numbers (missing values as NaN) or dummy-code it before fitting"
            )
        values = series.to_numpy(dtype=float, na_value=np.nan)
        if np.isinf(values).any():
            raise ValueError(f'column "{column}" contains infinite values: replace them first')
    arm = data[treatment]
    if arm.isna().any():
        raise ValueError(
            f'treatment column "{treatment}" has {int(arm.isna().sum())} missing value(s): '
            "every participant needs an arm; drop those rows first"
        )
    levels = set(np.unique(arm.to_numpy(dtype=float)))
    if not levels <= {0.0, 1.0}:
        raise ValueError(
            f'treatment column "{treatment}" must be bool or coded 0/1, got values '
            f"{sorted(levels)[:10]}"
        )
    if levels != {0.0, 1.0}:
        raise ValueError(f'treatment column "{treatment}" has only one arm: nothing to compare')
    if cluster is not None and data[cluster].isna().any():
        raise ValueError(
            f'cluster column "{cluster}" has {int(data[cluster].isna().sum())} missing '
            "value(s): give every participant a cluster id (e.g. a single-patient cluster)"
        )


def _numeric_frame(data: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The given columns as float64 (bool -> 0/1, pandas NA -> NaN), on a fresh RangeIndex."""
    return pd.DataFrame(
        {c: data[c].to_numpy(dtype=float, na_value=np.nan) for c in columns},
        index=pd.RangeIndex(len(data)),
    )


def _fit_ols(
    y: np.ndarray,
    treatment_values: np.ndarray,
    covariate_values: np.ndarray,
    groups: np.ndarray | None,
    outcome: str,
    treatment: str,
    covariates: list[str],
) -> dict[str, Any]:
    """Treatment coefficient, its HC3/CR1 variance, inference df, k and clusters of one OLS fit."""
    design = np.column_stack([np.ones(len(y)), treatment_values, covariate_values])
    k = design.shape[1]
    if len(y) <= k or np.linalg.matrix_rank(design) < k:
        raise ValueError(
            f'the design matrix of "{outcome}" on {[treatment, *covariates]} has '
            f"{len(y)} row(s) and is rank deficient or too small for {k} parameters: drop "
            "constant or collinear covariates"
        )
    model = sm.OLS(y, design)
    if groups is None:
        result = model.fit(cov_type="HC3", use_t=True)
        df = float(result.df_resid)
        n_clusters = math.nan
    else:
        _, codes = np.unique(groups, return_inverse=True)
        n_clusters = int(codes.max()) + 1
        if n_clusters < 2:
            raise ValueError("cluster-robust errors need at least 2 clusters")
        result = model.fit(cov_type="cluster", cov_kwds={"groups": codes}, use_t=True)
        df = float(n_clusters - 1)
    return {
        "estimate": float(result.params[1]),
        "variance": float(result.cov_params()[1, 1]),
        "df": df,
        "k": k,
        "n_clusters": n_clusters,
    }


def _errors_words(cluster: str | None) -> str:
    """How the standard errors were computed, in words."""
    return "HC3 errors" if cluster is None else f"CR1 cluster-robust errors by {cluster}"
