"""The instrument registry: raw ranges, directions, rescaling, item scoring and MCIDs.

The registry is data (``pipeline/registry/instruments.yaml``); this module loads it into frozen
:class:`Instrument` records and applies them with vectorised numpy. Adding an instrument is a
row in the YAML file and a test, never a code branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

import numpy as np
import yaml

CANONICAL_DOMAINS: dict[str, dict[str, object]] = {
    "function": {"min": 0, "max": 100, "higher_is": "better", "unit": "points on a 0-100 scale"},
    "pain": {"min": 0, "max": 10, "higher_is": "worse", "unit": "points on a 0-10 scale"},
    "fear_avoidance": {
        "min": 0,
        "max": 100,
        "higher_is": "worse",
        "unit": "points on a 0-100 scale",
    },
    "pain_interference": {
        "min": 0,
        "max": 10,
        "higher_is": "worse",
        "unit": "points on a 0-10 scale",
    },
}

ScoringMethod = Literal["sum", "mean", "percent_of_maximum"]


@dataclass(frozen=True)
class ItemScoring:
    """How a total is scored from item responses."""

    count: int
    item_min: float
    item_max: float
    method: ScoringMethod
    max_missing: int
    rule_source: str
    reverse: tuple[int, ...] = ()


@dataclass(frozen=True)
class Instrument:
    """One instrument: its raw range, direction, rule to the canonical scale and its MCID."""

    key: str
    name: str
    domain: str
    raw_min: float
    raw_max: float
    higher_raw_is: Literal["better", "worse"]
    offset: float
    scale: float
    mcid_raw: float | None
    mcid_source: str
    items: ItemScoring | None = None

    @property
    def mcid_canonical(self) -> float | None:
        """The MCID on the canonical scale of the domain (``None`` when no MCID is published)."""
        return None if self.mcid_raw is None else abs(self.scale) * self.mcid_raw

    def rescale(self, raw: np.ndarray) -> np.ndarray:
        """Canonical values from raw totals (NaN stays NaN)."""
        return self.offset + self.scale * np.asarray(raw, dtype=float)

    def in_range(self, raw: np.ndarray) -> np.ndarray:
        """True where a raw total lies in the valid range (NaN counts as in range: it is missing, not wrong)."""
        raw = np.asarray(raw, dtype=float)
        return np.isnan(raw) | ((raw >= self.raw_min - 1e-9) & (raw <= self.raw_max + 1e-9))


@cache
def load_registry() -> dict[str, Instrument]:
    """All instruments of the registry, by key, checked for consistency."""
    text = resources.files("pipeline.registry").joinpath("instruments.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    registry = {key: _instrument(key, spec) for key, spec in raw.items()}
    return registry


def get_instrument(key: str) -> Instrument:
    """One instrument by key; the error lists the known keys."""
    registry = load_registry()
    if key not in registry:
        raise KeyError(f"unknown instrument '{key}' (known: {', '.join(sorted(registry))})")
    return registry[key]


def score_items(items: np.ndarray, scoring: ItemScoring) -> tuple[np.ndarray, np.ndarray]:
    """Raw totals from an (n, count) array of item responses (NaN = blank).

    Parameters
    ----------
    items
        Item responses already on the instrument's item scale (after any ``item_offset``),
        already checked against ``item_min``/``item_max``; NaN marks a blank item.
    scoring
        The instrument's item rule.

    Returns
    -------
    total, answered
        ``total``: the raw total (NaN where more than ``max_missing`` items are blank);
        ``answered``: the number of answered items per row.

    Notes
    -----
    ``sum`` totals are prorated when items are blank (``sum * count / answered``), so a
    total with one blank item stays on the scale of the full questionnaire; ``mean`` and
    ``percent_of_maximum`` (the ODI rule) use the answered items only.
    """
    items = np.asarray(items, dtype=float)
    if items.ndim != 2 or items.shape[1] != scoring.count:
        raise ValueError(f"expected {scoring.count} item columns, got array of shape {items.shape}")
    if scoring.reverse:
        cols = [i - 1 for i in scoring.reverse]
        items = items.copy()
        items[:, cols] = scoring.item_min + scoring.item_max - items[:, cols]
    answered = np.sum(~np.isnan(items), axis=1)
    total_answered = np.nansum(items, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if scoring.method == "sum":
            total = total_answered * scoring.count / answered
        elif scoring.method == "mean":
            total = total_answered / answered
        else:  # percent_of_maximum
            total = total_answered / (scoring.item_max * answered) * 100
    enough = answered >= scoring.count - scoring.max_missing
    return np.where(enough & (answered > 0), total, np.nan), answered


def _instrument(key: str, spec: dict) -> Instrument:
    items = spec.get("items")
    scoring = None
    if items is not None:
        scoring = ItemScoring(
            count=int(items["count"]),
            item_min=float(items["item_min"]),
            item_max=float(items["item_max"]),
            method=items["method"],
            max_missing=int(items["max_missing"]),
            rule_source=str(items["rule_source"]),
            reverse=tuple(int(i) for i in items.get("reverse", ())),
        )
        if scoring.method not in ("sum", "mean", "percent_of_maximum"):
            raise ValueError(f"instrument {key}: unknown item method {scoring.method}")
    instrument = Instrument(
        key=key,
        name=str(spec["name"]),
        domain=str(spec["domain"]),
        raw_min=float(spec["raw_min"]),
        raw_max=float(spec["raw_max"]),
        higher_raw_is=spec["higher_raw_is"],
        offset=float(spec["offset"]),
        scale=float(spec["scale"]),
        mcid_raw=None if spec.get("mcid_raw") is None else float(spec["mcid_raw"]),
        mcid_source=str(spec["mcid_source"]),
        items=scoring,
    )
    _check_consistent(instrument)
    return instrument


def _check_consistent(instrument: Instrument) -> None:
    """The rescaling must map the raw range onto the domain's canonical range in the right direction."""
    domain = CANONICAL_DOMAINS.get(instrument.domain)
    if domain is None:
        raise ValueError(f"instrument {instrument.key}: unknown domain {instrument.domain}")
    ends = sorted(instrument.rescale(np.array([instrument.raw_min, instrument.raw_max])))
    if not np.allclose(ends, [domain["min"], domain["max"]], atol=1e-6):
        raise ValueError(
            f"instrument {instrument.key}: raw range maps to {ends}, not the canonical "
            f"{domain['min']}-{domain['max']} of {instrument.domain}"
        )
    canonical_up_is_better = domain["higher_is"] == "better"
    raw_up_is_better = instrument.higher_raw_is == "better"
    same_direction = canonical_up_is_better == raw_up_is_better
    if (instrument.scale > 0) != same_direction:
        raise ValueError(f"instrument {instrument.key}: rescaling reverses the wrong way")
