"""Profiled REML / ML for linear mixed models with one or two random intercepts.

The model is y = X beta + Z_1 u_1 [+ Z_2 u_2] + e with u_k ~ N(0, sigma2 theta_k^2 I) and
e ~ N(0, sigma2 I): one grouping factor, or two (nested, e.g. therapist within clinic, coded
with one level per clinic-therapist pair; or crossed). Everything is computed from group
sufficient statistics (level counts, the clinic x therapist cross-tabulation, per-level sums
of [X y] and the cross-products [X y]'[X y]), so one evaluation of the criterion costs
O(levels x p^2), independent of the number of rows.

For given theta, with B = Lambda Z'[X y] and A = Lambda Z'Z Lambda + I (Woodbury),
[X y]' V^-1 [X y] = [X y]'[X y] - B' A^-1 B with V = Z Lambda Lambda Z' + I, and log|V| =
log|A|. For one factor A is diagonal (closed form); for two, the larger factor's block is
diagonal and is eliminated, leaving a dense Schur complement of the smaller factor's size
(diagonal again when the factors are nested). sigma2 is profiled out and the deviance

    ML:   log|A| + n (1 + log(2 pi r2 / n))
    REML: log|A| + log|X'V^-1X| + (n - p) (1 + log(2 pi r2 / (n - p)))

(r2 the penalised residual sum of squares) is minimised over theta >= 0: by a grid bracket and
bounded Brent for one factor; for two, by L-BFGS-B from theta = (1, 1) polished by projected
Newton with central-difference derivatives to a relative step of 1e-10, and a 1-D check of
each boundary theta_k = 0. This is the formulation of lme4 (Bates, Maechler,
Bolker & Walker, J Stat Softw 2015;67(1), sections 3.2-3.4); standard errors follow lme4's
convention sigma2 (X'V^-1X)^-1 (GLS, not the inverse of the joint Hessian).

Checked in ``tests/test_reml.py`` against lme4 1.1-31 (sleepstudy, Penicillin, Pastes),
statsmodels MixedLM (REML and ML) and a hand-coded REML profile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import linalg, optimize, sparse

_GRID = np.r_[0.0, np.geomspace(1e-3, 1e2, 36)]
_XTOL = 1e-10


@dataclass(frozen=True)
class RandomInterceptFit:
    """A profiled REML/ML fit: fixed effects, their GLS covariance and the variance components.

    ``variances`` maps each factor name to its variance and ``"residual"`` to sigma2.
    """

    params: pd.Series
    cov: pd.DataFrame
    variances: dict[str, float]
    theta: tuple[float, ...]
    reml: bool
    loglik: float
    n: int
    n_levels: dict[str, int]
    converged: bool
    warning: str

    def table(self) -> pd.DataFrame:
        """The fixed-effect table: estimate, SE and z (model-based, lme4 convention)."""
        se = np.sqrt(np.diag(self.cov.to_numpy()))
        return pd.DataFrame(
            {"estimate": self.params, "se": se, "z": self.params / se}, index=self.params.index
        )

    def variance_table(self) -> pd.DataFrame:
        """The variance components (variance and SD), residual last."""
        v = pd.Series(self.variances, name="variance")
        return pd.DataFrame({"variance": v, "sd": np.sqrt(v)})


@dataclass(frozen=True)
class _Stats:
    n: int
    p: int
    WtW: np.ndarray  # [X y]'[X y]
    counts: tuple[np.ndarray, ...]  # level counts per factor
    sums: tuple[np.ndarray, ...]  # Z_k'[X y] per factor (levels x (p + 1))
    cross: sparse.csr_matrix | None  # Z_1'Z_2 (factor 1 = fewer levels)


def fit_random_intercepts(
    y: np.ndarray,
    X: pd.DataFrame,
    factors: dict[str, np.ndarray],
    reml: bool = True,
) -> RandomInterceptFit:
    """Fit random intercepts for one or two grouping factors by profiled REML (or ML).

    Parameters
    ----------
    y : outcome, length n, finite.
    X : fixed-effect design (named columns, full column rank).
    factors : one or two grouping factors (name -> labels of length n). For nesting, label the
        inner factor by the (outer, inner) pair so that each inner level is in one outer level.
    reml : REML (default, as lme4) or ML.

    Notes
    -----
    Checked against lme4 1.1-31 ``lmer`` on sleepstudy (``Reaction ~ Days + (1|Subject)``),
    Penicillin (crossed plate and sample) and Pastes (cask nested in batch), and against
    statsmodels MixedLM; see ``tests/test_reml.py``.
    """
    if not 1 <= len(factors) <= 2:
        raise ValueError(f"fit_random_intercepts handles 1 or 2 factors, got {len(factors)}")
    y = np.asarray(y, dtype=float)
    Xa = np.asarray(X, dtype=float)
    if not np.all(np.isfinite(y)) or not np.all(np.isfinite(Xa)):
        raise ValueError("fit_random_intercepts: y and X must be finite (drop missing rows first)")
    n, p = Xa.shape
    names = list(factors)
    codes = [pd.factorize(np.asarray(factors[k]))[0] for k in names]
    levels = {k: int(c.max() + 1) for k, c in zip(names, codes, strict=True)}
    if len(names) == 2 and levels[names[0]] > levels[names[1]]:
        names, codes = names[::-1], codes[::-1]  # factor 1 has fewer levels (the Schur block)
    M = _centring(Xa)
    ols = np.linalg.solve(Xa.T @ Xa, Xa.T @ y)  # full column rank (see Parameters)
    stats = _sufficient_statistics(y - Xa @ ols, Xa @ M, codes)
    deviance = _deviance_function(stats, reml)
    theta, warning = _minimise(deviance, len(names))
    params_c, cov_c, variances = _solution(stats, theta, reml)
    # back to the original columns; the outcome was replaced by its OLS residual, which
    # changes beta by the OLS coefficients and nothing else (V^-1-projection is linear)
    params = M @ params_c + ols
    cov = M @ cov_c @ M.T
    fixed_names = list(X.columns) if isinstance(X, pd.DataFrame) else [f"x{j}" for j in range(p)]
    return RandomInterceptFit(
        params=pd.Series(params, index=fixed_names),
        cov=pd.DataFrame(cov, index=fixed_names, columns=fixed_names),
        variances={**dict(zip(names, variances[:-1], strict=True)), "residual": variances[-1]},
        theta=tuple(float(t) for t in theta),
        reml=reml,
        loglik=-0.5 * float(deviance(theta)),
        n=n,
        n_levels=levels,
        converged=True,
        warning=warning,
    )


def _centring(X: np.ndarray) -> np.ndarray:
    """M with X M = X with every column centred on its mean, when X has an intercept column.

    A unit-triangular reparametrisation: the deviance is unchanged (det M = 1) but the
    cross-products lose their large means, which keeps [X y]'V^-1[X y] accurate.
    """
    p = X.shape[1]
    M = np.eye(p)
    constant = np.flatnonzero((np.ptp(X, axis=0) == 0) & (X[0] != 0))
    if len(constant):
        j = constant[0]
        means = X.mean(axis=0)
        for k in range(p):
            if k != j:
                M[j, k] = -means[k] / X[0, j]
    return M


def _sufficient_statistics(y: np.ndarray, X: np.ndarray, codes: list[np.ndarray]) -> _Stats:
    n, p = X.shape
    W = np.column_stack([X, y])
    indicators = [
        sparse.csr_matrix((np.ones(n), (c, np.arange(n))), shape=(int(c.max() + 1), n))
        for c in codes
    ]
    counts = tuple(np.bincount(c).astype(float) for c in codes)
    sums = tuple(np.asarray(Z @ W) for Z in indicators)
    cross = (indicators[0] @ indicators[1].T).tocsr() if len(codes) == 2 else None
    return _Stats(n, p, W.T @ W, counts, sums, cross)


def _reduced(stats: _Stats, theta: np.ndarray) -> tuple[np.ndarray, float]:
    """[X y]'V^-1[X y] (in units of sigma2) and log|V| for variance ratios theta."""
    if len(theta) == 1:
        d = theta[0] ** 2 * stats.counts[0] + 1.0
        B = theta[0] * stats.sums[0]
        return stats.WtW - (B / d[:, None]).T @ B, float(np.sum(np.log(d)))
    t1, t2 = theta
    d1 = t1**2 * stats.counts[0] + 1.0
    d2 = t2**2 * stats.counts[1] + 1.0
    B1, B2 = t1 * stats.sums[0], t2 * stats.sums[1]
    C = stats.cross * (t1 * t2)
    B2d = B2 / d2[:, None]
    E = B1 - C @ B2d
    S = (C.multiply(1.0 / d2[None, :]) @ C.T).toarray()
    S = np.diag(d1) - S
    chol = linalg.cho_factor(S, lower=True)
    K = B2.T @ B2d + E.T @ linalg.cho_solve(chol, E)
    logdet = float(np.sum(np.log(d2)) + 2.0 * np.sum(np.log(np.diag(chol[0]))))
    return stats.WtW - K, logdet


def _deviance_function(stats: _Stats, reml: bool) -> Callable[[np.ndarray], float]:
    n, p = stats.n, stats.p
    dof = n - p if reml else n

    def deviance(theta: np.ndarray) -> float:
        T, logdet = _reduced(stats, np.abs(np.atleast_1d(theta)))
        L = np.linalg.cholesky(T)
        r2 = L[p, p] ** 2
        value = logdet + dof * (1.0 + np.log(2.0 * np.pi * r2 / dof))
        if reml:
            value += 2.0 * np.sum(np.log(np.diag(L)[:p]))
        return float(value)

    return deviance


def _brent(f: Callable[[float], float], grid: np.ndarray) -> float:
    """argmin of f on [0, inf): the grid brackets the minimum, bounded Brent refines it."""
    values = np.array([f(g) for g in grid])
    best = int(np.argmin(values))
    if best == len(grid) - 1:
        raise ValueError("random-intercept variance ratio beyond 100 (outcome nearly constant)")
    low = grid[max(best - 1, 0)]
    result = optimize.minimize_scalar(
        f, bounds=(low, grid[best + 1]), method="bounded", options={"xatol": _XTOL}
    )
    x = float(result.x)
    if best == 0 and f(0.0) <= result.fun:
        return 0.0
    return x


def _minimise(deviance: Callable[[np.ndarray], float], k: int) -> tuple[np.ndarray, str]:
    if k == 1:
        theta = np.array([_brent(lambda t: deviance(np.array([t])), _GRID)])
        notes = []
    else:
        rough = optimize.minimize(
            deviance, np.ones(2), method="L-BFGS-B", bounds=[(0.0, None)] * 2
        ).x
        theta, notes = _newton(deviance, rough)
        # a component on (or near) the boundary: the best fit with it fixed at 0
        for j in np.flatnonzero(theta < 1e-3):
            other = 1 - j

            def along(t: float, j: int = j, other: int = other) -> float:
                point = np.zeros(2)
                point[other] = t
                return deviance(point)

            candidate = np.zeros(2)
            candidate[other] = _brent(along, _GRID)
            if deviance(candidate) <= deviance(theta):
                theta = candidate
    notes += [
        f"variance component {j + 1} estimated as 0 (boundary)" for j in np.flatnonzero(theta == 0)
    ]
    return theta, "; ".join(notes)


def _newton(
    deviance: Callable[[np.ndarray], float], theta: np.ndarray, max_steps: int = 100
) -> tuple[np.ndarray, list[str]]:
    """Projected Newton on theta >= 0 with central-difference gradient and Hessian.

    Stops when the step is below 1e-10 (relative): near the optimum the convergence is
    quadratic, so the answer does not depend on where L-BFGS-B stopped.
    """
    theta = np.maximum(theta, 1e-4)
    f0 = deviance(theta)
    for _ in range(max_steps):
        h = 1e-4 * np.maximum(theta, 1e-2)
        g = np.zeros(2)
        H = np.zeros((2, 2))
        for i in range(2):
            e = np.zeros(2)
            e[i] = h[i]
            fp, fm = deviance(theta + e), deviance(np.abs(theta - e))
            g[i] = (fp - fm) / (2 * h[i])
            H[i, i] = (fp - 2 * f0 + fm) / h[i] ** 2
        e1, e2 = np.array([h[0], 0.0]), np.array([0.0, h[1]])
        H[0, 1] = H[1, 0] = (
            deviance(theta + e1 + e2)
            - deviance(np.abs(theta + e1 - e2))
            - deviance(np.abs(theta - e1 + e2))
            + deviance(np.abs(theta - e1 - e2))
        ) / (4 * h[0] * h[1])
        try:
            np.linalg.cholesky(H)
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            step = g / np.max(np.abs(np.diag(H)).clip(min=1.0))
        for _halving in range(40):
            candidate = np.maximum(theta - step, 0.0)
            f1 = deviance(candidate)
            if f1 <= f0:
                break
            step = step / 2
        else:
            return theta, []  # no descent possible: at the optimum to rounding
        moved = np.max(np.abs(candidate - theta) / np.maximum(theta, 1e-2))
        theta, f0 = candidate, f1
        if moved < 1e-10:
            return theta, []
    return theta, [f"Newton polish stopped after {max_steps} steps"]


def _solution(
    stats: _Stats, theta: np.ndarray, reml: bool
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    T, _ = _reduced(stats, theta)
    p = stats.p
    XtViX, XtViy = T[:p, :p], T[:p, p]
    beta = np.linalg.solve(XtViX, XtViy)
    r2 = float(T[p, p] - XtViy @ beta)
    sigma2 = r2 / (stats.n - p if reml else stats.n)
    cov = sigma2 * np.linalg.inv(XtViX)
    return beta, cov, [float(sigma2 * t**2) for t in theta] + [sigma2]
