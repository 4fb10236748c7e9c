"""The tidy estimate row every ``fit_*`` function returns.

One row per (comparison, estimand, method, effect measure). ``fit_*`` functions fill the
statistical columns; the ``analyse`` stage adds the comparison id, study and provenance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

# Columns filled by every fit_* function, in this order.
ESTIMATE_COLUMNS: tuple[str, ...] = (
    "method",  # short machine name, e.g. "ancova", "ipw", "aipw", "negative_binomial"
    "estimand",  # "ATE" (average effect in all), "ATT" (in the treated), or "conditional"
    "effect_measure",  # "mean_difference", "rate_ratio", "risk_difference", "risk_ratio", "odds_ratio", "hedges_g", ...
    "term",  # what the row estimates, e.g. "etmi vs usual_care", "stratum: depression_anxiety=yes"
    "estimate",  # point estimate on the effect_measure's natural scale (ratios not logged)
    "se",  # standard error (of the log for ratio measures)
    "ci_low",  # lower bound of the (1 - alpha) confidence interval
    "ci_high",  # upper bound
    "p_value",  # two-sided p value for "no difference" (0, or 1 for ratios)
    "n_treated",  # participants in the treatment arm that the estimate uses
    "n_control",  # participants in the control arm that the estimate uses
    "n_clusters",  # clusters for cluster-robust errors (NaN when not clustered)
    "model",  # the model in words, e.g. "OLS of discharge function on arm + baseline ..., CR1 errors by therapist"
    "converged",  # bool: False when the optimiser warned; the row is kept and flagged
    "warning",  # warnings raised while fitting ("" when none)
)


def estimate_row(**values: Any) -> dict[str, Any]:
    """A dict with every :data:`ESTIMATE_COLUMNS` key (missing ones NaN / defaults), checked for typos."""
    unknown = set(values) - set(ESTIMATE_COLUMNS) - {"extra"}
    if unknown:
        raise KeyError(f"unknown estimate columns: {sorted(unknown)}")
    row: dict[str, Any] = {column: np.nan for column in ESTIMATE_COLUMNS}
    row.update({"converged": True, "warning": ""})
    extra = values.pop("extra", None) or {}
    row.update(values)
    row.update(extra)
    return row


def estimates_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows from :func:`estimate_row` as a data frame with the standard columns first."""
    frame = pd.DataFrame(rows)
    ordered = [c for c in ESTIMATE_COLUMNS if c in frame.columns]
    return frame[ordered + [c for c in frame.columns if c not in ordered]]
