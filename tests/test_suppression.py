"""Suppression that cannot be undone: a small fixture study's published outputs (claims,
fact sheet, Table 1) are searched for every way to recompute a suppressed count."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pandas as pd
from test_wording import _estimates, _participants, _responders

from pipeline.summarise.claims import NamingRules, StudyFacts, build_claims
from pipeline.summarise.render import render_fact_sheet
from pipeline.summarise.tables import table_one

MIN_CELL = 5
N = 200
SUPPRESSED = {3, N - 3}  # 3 responders in the control arm (and 197 non-responders)


def _published() -> tuple[list[float], str]:
    rows = pd.concat([_estimates(8, 6, 10), _responders(0.40, 3 / N, 0.30, 0.44)])
    rows.loc[rows["method"] == "responders", "events_control"] = 3
    claims = build_claims(
        rows,
        _participants(),
        NamingRules(),
        MIN_CELL,
        StudyFacts(risk_of_bias={"overall": "low", "justification": "x"}),
    )
    text = json.dumps(json.loads(claims.to_json(orient="records")))
    text += render_fact_sheet("t", claims, False)
    participants = _participants().assign(
        arm=lambda d: pd.Categorical(d["arm"]),
        sex=["male"] * 3 + ["female"] * 197 + ["male"] * 100 + ["female"] * 100,
    )
    outcomes = pd.DataFrame(
        {
            "participant_id": participants["participant_id"].iloc[:396],
            "outcome": "pain",
            "timepoint": pd.Categorical(["baseline"] * 396),
            "days": 0.0,
            "value": 5.0,
        }
    )
    table = table_one(participants, outcomes, "exercise", "usual_care", ["sex"], MIN_CELL)
    text += table.to_csv(index=False)
    numbers = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)]
    return numbers, text


def test_no_suppressed_count_can_be_recomputed_from_published_outputs():
    numbers, text = _published()
    assert "<5" in text  # the small counts are flagged as withheld
    shares = [x for x in numbers if 0 < abs(x) < 1] + [x / 100 for x in numbers if 0 < x <= 100]
    candidates = set()
    for share in shares:
        candidates |= {round(share * N), N - round(share * N)}
    for a, b in itertools.combinations([x for x in numbers if x == int(x)], 2):
        candidates.add(int(abs(a - b)))  # complement of a shown count
    # the published total n of each arm and a shown count give back the other
    found = SUPPRESSED & candidates
    # 3 and 197 may appear as unrelated numbers; what must not appear is a share of 200 or a
    # difference of published counts that equals them
    leaks = {
        c
        for c in found
        if any(np.isclose(s * N, c) for s in shares)
        or any(np.isclose(N - s * N, c) for s in shares)
    }
    assert leaks == set(), leaks


def test_responder_claim_with_a_small_count_withholds_risks_and_differences():
    rows = pd.concat([_estimates(8, 6, 10), _responders(0.40, 3 / N, 0.30, 0.44)])
    rows.loc[rows["method"] == "responders", "events_control"] = 3
    claim = (
        build_claims(rows, _participants(), NamingRules(), MIN_CELL)
        .set_index("kind")
        .loc["responders"]
    )
    numbers = claim["numbers"]
    for key in ("risk_treated", "risk_control", "estimate", "ci_low", "ci_high", "events_control"):
        assert key not in numbers
    assert "in 100" not in claim["sentence"] and claim["shown_numbers"] == []
