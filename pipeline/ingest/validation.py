"""Declared schemas of the canonical tables (pandera), checked before anything is written.

These are the contracts later stages rely on: every canonical value lies on its domain's
scale, every row names a pseudonymised participant, every quarantine row has a known reason.
A failure here is a bug in the pipeline, not a user mistake, and stops the stage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pipeline.ingest.core import REASON_CODES
from pipeline.instruments import CANONICAL_DOMAINS, load_registry

_PSEUDONYM = r"^p[0-9a-f]{20}$"


def _within_domain(frame: pd.DataFrame) -> pd.Series:
    """Each canonical value lies within its domain's scale (vectorised over the domain codes)."""
    domain = frame["domain"].astype("category")
    categories = domain.cat.categories
    lows = np.array([CANONICAL_DOMAINS.get(d, {}).get("min", -np.inf) for d in categories], float)
    highs = np.array([CANONICAL_DOMAINS.get(d, {}).get("max", np.inf) for d in categories], float)
    codes = domain.cat.codes.to_numpy()
    value = frame["value"].to_numpy()
    inside = (value >= lows[codes] - 1e-9) & (value <= highs[codes] + 1e-9)
    return pd.Series(inside, index=frame.index)


PARTICIPANTS = pa.DataFrameSchema(
    {
        "study_id": pa.Column("category", nullable=False),
        "participant_id": pa.Column(
            "string[pyarrow]", pa.Check.str_matches(_PSEUDONYM), nullable=False, unique=True
        ),
        "arm": pa.Column("category", nullable=False),
        "sessions": pa.Column(float, pa.Check.ge(0), nullable=True),
        "n_values_quarantined": pa.Column(int, pa.Check.ge(0)),
        "source_row": pa.Column(int, pa.Check.ge(1)),
    },
    strict=False,
    coerce=False,
)

OUTCOMES = pa.DataFrameSchema(
    {
        "study_id": pa.Column("category", nullable=False),
        "participant_id": pa.Column(
            "string[pyarrow]", pa.Check.str_matches(_PSEUDONYM), nullable=False
        ),
        "outcome": pa.Column("category", nullable=False),
        "domain": pa.Column("category", nullable=False),
        "instrument": pa.Column("category", pa.Check.isin(sorted(load_registry())), nullable=False),
        "timepoint": pa.Column("category", nullable=False),
        "days": pa.Column(float, nullable=True),
        "raw_value": pa.Column(float, nullable=False),
        "value": pa.Column(float, nullable=False),
        "source_row": pa.Column(int, pa.Check.ge(1)),
    },
    checks=[pa.Check(_within_domain, error="canonical value outside its domain's scale")],
    unique=["participant_id", "outcome", "timepoint"],
    strict=False,
)

QUARANTINE = pa.DataFrameSchema(
    {
        "source_file": pa.Column("string", nullable=False),
        "source_row": pa.Column(int, pa.Check.ge(1)),
        "reason": pa.Column("string", pa.Check.isin(sorted(REASON_CODES)), nullable=False),
        "message": pa.Column("string", nullable=False),
    },
    strict=False,
)


def check_tables(
    participants: pd.DataFrame, outcomes: pd.DataFrame, quarantine: pd.DataFrame
) -> None:
    """Validate the three canonical tables; raises ``pandera.errors.SchemaError`` on a violation."""
    PARTICIPANTS.validate(participants)
    OUTCOMES.validate(outcomes)
    QUARANTINE.validate(quarantine)
