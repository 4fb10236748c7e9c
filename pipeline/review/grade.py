"""GRADE certainty of a body of evidence for one question, as recorded domain judgements.

A pure function (:func:`grade_evidence`) so it can later be swapped for the project-wide GRADE
module in ``pipeline/summarise``. Rules (randomised trials start at high):

- risk of bias: share of the pooled weight from trials at high risk >= 50% -> very serious;
  >= 25%, or >= 50% not at low risk (some concerns or unknown) -> serious.
- inconsistency: I2 >= 75% -> very serious; I2 >= 50%, or a prediction interval that spans both
  -MID and +MID -> serious (Guyatt et al. J Clin Epidemiol 2011;64:1294-302).
- indirectness: >= 50% of the weight from trials whose population is outside the question's
  (``population_values``) or from cross-over trials -> serious.
- imprecision: the CI contains both -MID and +MID -> very serious; it contains 0, or the
  participants are fewer than the optimal information size (alpha 0.05, power 0.8, difference =
  MID) -> serious (Guyatt et al. J Clin Epidemiol 2011;64:1283-93).
- publication bias: Egger p < 0.10 with k >= 10 -> serious; k < 10 -> not assessed.
"""

from __future__ import annotations

import math

import numpy as np

LEVELS = {4: "high", 3: "moderate", 2: "low", 1: "very_low"}
Z_ALPHA, Z_BETA = 1.959963984540054, 0.8416212335729143


def optimal_information_size(mid: float, sd: float) -> int:
    """Total participants for a two-arm trial detecting ``mid`` (alpha 0.05, power 0.8)."""
    return math.ceil(2 * 2 * (Z_ALPHA + Z_BETA) ** 2 * sd**2 / mid**2)


def _judge(domain: str, down: int, reason: str, assessed: bool = True) -> dict:
    words = {0: "no serious", 1: "serious", 2: "very serious"}
    return {
        "domain": domain,
        "judgement": words[down] if assessed else "not assessed",
        "levels_down": down,
        "reason": reason,
    }


def grade_evidence(
    *,
    weights: np.ndarray,
    rob: list[str | None],
    indirect: np.ndarray,
    estimate: float,
    ci_low: float,
    ci_high: float,
    i2: float,
    pi_low: float,
    pi_high: float,
    k: int,
    n_total: float,
    mid: float,
    sd_for_ois: float,
    egger_p: float | None,
) -> tuple[list[dict], str]:
    """Domain judgements (domain, judgement, levels_down, reason) and the final certainty level."""
    w = np.asarray(weights, float) / np.sum(weights)
    rob_arr = np.array([r if r in ("low", "some_concerns", "high") else "unknown" for r in rob])
    high = float(w[rob_arr == "high"].sum())
    not_low = float(w[rob_arr != "low"].sum())
    down = 2 if high >= 0.5 else 1 if (high >= 0.25 or not_low >= 0.5) else 0
    domains = [
        _judge(
            "risk of bias",
            down,
            f"{high:.0%} of the weight from trials at high risk, {not_low:.0%} not at low risk",
        )
    ]
    if k < 2:
        domains.append(_judge("inconsistency", 0, "one trial: not assessable", assessed=False))
    else:
        spans = np.isfinite(pi_low) and pi_low < -mid and pi_high > mid
        down = 2 if i2 >= 75 else 1 if (i2 >= 50 or spans) else 0
        pi_text = (
            f"prediction interval {pi_low:.2f} to {pi_high:.2f}"
            if np.isfinite(pi_low)
            else "no prediction interval (k < 3)"
        )
        domains.append(_judge("inconsistency", down, f"I2 {i2:.0f}%, {pi_text}, threshold {mid:g}"))
    share_indirect = float(w[np.asarray(indirect, bool)].sum())
    domains.append(
        _judge(
            "indirectness",
            1 if share_indirect >= 0.5 else 0,
            f"{share_indirect:.0%} of the weight from trials outside the question's population "
            "or from cross-over designs",
        )
    )
    ois = optimal_information_size(mid, sd_for_ois)
    both = ci_low < -mid and ci_high > mid
    null = ci_low <= 0 <= ci_high
    down = 2 if both else 1 if (null or n_total < ois) else 0
    domains.append(
        _judge(
            "imprecision",
            down,
            f"95% CI {ci_low:.2f} to {ci_high:.2f} against threshold {mid:g}; "
            f"{int(n_total)} participants vs optimal information size {ois}",
        )
    )
    if k >= 10 and egger_p is not None:
        down = 1 if egger_p < 0.10 else 0
        domains.append(_judge("publication bias", down, f"Egger's test p = {egger_p:.3f}, k = {k}"))
    else:
        domains.append(
            _judge("publication bias", 0, f"k = {k} < 10: Egger's test not done", assessed=False)
        )
    total = sum(d["levels_down"] for d in domains)
    return domains, LEVELS[max(1, 4 - total)]
