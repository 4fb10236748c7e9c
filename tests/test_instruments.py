"""The instrument registry: rescaling to canonical scales and item scoring.

Expected values are worked by hand from each instrument's published scoring rule (see the
registry's sources); property-based tests (hypothesis) check the conversions for any value.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.instruments import CANONICAL_DOMAINS, get_instrument, load_registry, score_items

REQUIRED = {
    "foto_lumbar_fs",
    "odi",
    "roland_morris",
    "nprs",
    "vas_mm",
    "vas_cm",
    "vas_unit",
    "bpi_average",
    "bpi_severity",
    "fabq_pa",
    "fabq_w",
    "tsk_11",
    "tsk_17",
}


def test_registry_holds_the_required_instruments():
    assert set(load_registry()) >= REQUIRED
    for instrument in load_registry().values():
        assert instrument.mcid_source, instrument.key
        if instrument.items is not None:
            assert instrument.items.rule_source, instrument.key


@pytest.mark.parametrize(
    ("key", "raw", "canonical"),
    [
        ("foto_lumbar_fs", 62, 62),
        ("odi", 20, 80),  # 100 - 20
        ("odi", 100, 0),
        ("roland_morris", 12, 50),  # 100 - 12 * 100 / 24
        ("roland_morris", 6, 75),
        ("nprs", 7, 7),
        ("vas_mm", 45, 4.5),
        ("vas_cm", 4.5, 4.5),
        ("vas_unit", 0.45, 4.5),
        ("fabq_pa", 12, 50),  # 12 * 100 / 24
        ("fabq_w", 21, 50),  # 21 * 100 / 42
        ("tsk_17", 17, 0),
        ("tsk_17", 68, 100),
        ("tsk_17", 34, 100 / 3),  # (34 - 17) * 100 / 51
        ("tsk_11", 11, 0),
        ("tsk_11", 44, 100),
        ("tsk_11", 22, 100 / 3),  # (22 - 11) * 100 / 33
    ],
)
def test_rescale_hand_worked(key, raw, canonical):
    assert get_instrument(key).rescale(np.array([raw]))[0] == pytest.approx(canonical)


@pytest.mark.parametrize(
    ("key", "mcid"),
    [
        ("odi", 10),
        ("roland_morris", 5 * 100 / 24),
        ("nprs", 2),
        ("vas_mm", 1.5),
        ("fabq_pa", 4 * 100 / 24),
        ("tsk_11", 4 * 100 / 33),
        ("foto_lumbar_fs", 5),
    ],
)
def test_mcid_on_canonical_scale(key, mcid):
    assert get_instrument(key).mcid_canonical == pytest.approx(mcid)


def test_unknown_instrument_lists_known_ones():
    with pytest.raises(KeyError, match=r"unknown instrument 'odx'.*odi"):
        get_instrument("odx")


def test_odi_items_with_one_section_missing():
    # Fairbank & Pynsent 2000: total / (5 x answered) x 100. Items 3,2,1,0,4,5,2,1,3 + one blank:
    items = np.array([[3, 2, 1, 0, 4, 5, 2, 1, 3, np.nan]])
    total, answered = score_items(items, get_instrument("odi").items)
    assert answered[0] == 9
    assert total[0] == pytest.approx(21 / 45 * 100)


def test_odi_items_with_two_sections_missing_is_not_scored():
    items = np.array([[3, 2, 1, 0, 4, 5, 2, 1, np.nan, np.nan]])
    total, _ = score_items(items, get_instrument("odi").items)
    assert np.isnan(total[0])


def test_tsk17_reverse_scored_items():
    # all items answered 4 except the four reverse items answered 1 -> reversed to 4: total 68
    items = np.full((1, 17), 4.0)
    items[0, [3, 7, 11, 15]] = 1
    total, _ = score_items(items, get_instrument("tsk_17").items)
    assert total[0] == 68


def test_bpi_severity_is_the_mean_of_four_items():
    total, _ = score_items(np.array([[8, 2, 5, 5]]), get_instrument("bpi_severity").items)
    assert total[0] == 5.0


def test_bpi_interference_needs_four_of_seven():
    items = np.array(
        [[1, 2, 3, 4, np.nan, np.nan, np.nan], [1, 2, 3, np.nan, np.nan, np.nan, np.nan]]
    )
    total, _ = score_items(items, get_instrument("bpi_interference").items)
    assert total[0] == pytest.approx(2.5) and np.isnan(total[1])


def test_fabq_pa_one_blank_item_prorated():
    total, _ = score_items(np.array([[4, np.nan, 5, 3]]), get_instrument("fabq_pa").items)
    assert total[0] == pytest.approx(12 * 4 / 3)


def test_wrong_number_of_item_columns():
    with pytest.raises(ValueError, match="expected 4 item columns"):
        score_items(np.zeros((2, 3)), get_instrument("fabq_pa").items)


# --- properties, for every instrument ---------------------------------------------------------

instruments = st.sampled_from(sorted(load_registry()))


@given(key=instruments, fraction=st.floats(min_value=0, max_value=1))
def test_valid_raw_scores_land_on_the_canonical_scale(key, fraction):
    instrument = get_instrument(key)
    raw = instrument.raw_min + fraction * (instrument.raw_max - instrument.raw_min)
    domain = CANONICAL_DOMAINS[instrument.domain]
    value = instrument.rescale(np.array([raw]))[0]
    assert domain["min"] - 1e-9 <= value <= domain["max"] + 1e-9
    assert instrument.in_range(np.array([raw]))[0]


@given(key=instruments, a=st.floats(0, 1), b=st.floats(0, 1))
def test_rescaling_keeps_order_in_the_declared_direction(key, a, b):
    instrument = get_instrument(key)
    span = instrument.raw_max - instrument.raw_min
    low, high = sorted([a, b])
    values = instrument.rescale(
        np.array([instrument.raw_min + low * span, instrument.raw_min + high * span])
    )
    domain_better_up = CANONICAL_DOMAINS[instrument.domain]["higher_is"] == "better"
    raw_better_up = instrument.higher_raw_is == "better"
    if domain_better_up == raw_better_up:
        assert values[0] <= values[1] + 1e-9
    else:
        assert values[0] >= values[1] - 1e-9


@given(key=instruments, excess=st.floats(min_value=1e-6, max_value=1e6))
def test_values_outside_the_raw_range_are_flagged(key, excess):
    instrument = get_instrument(key)
    flags = instrument.in_range(
        np.array([instrument.raw_min - excess, instrument.raw_max + excess, np.nan])
    )
    assert flags.tolist() == [False, False, True]


@given(
    key=st.sampled_from([k for k, v in sorted(load_registry().items()) if v.items is not None]),
    data=st.data(),
)
@settings(max_examples=60)
def test_complete_items_score_within_the_raw_range(key, data):
    scoring = get_instrument(key).items
    items = np.array(
        [
            [
                data.draw(st.integers(int(scoring.item_min), int(scoring.item_max)))
                for _ in range(scoring.count)
            ]
        ],
        dtype=float,
    )
    total, answered = score_items(items, scoring)
    instrument = get_instrument(key)
    assert answered[0] == scoring.count
    assert instrument.in_range(total)[0] and not np.isnan(total[0])


@given(
    key=st.sampled_from(
        [k for k, v in sorted(load_registry().items()) if v.items and v.items.max_missing]
    ),
    data=st.data(),
)
@settings(max_examples=60)
def test_prorating_a_constant_response_gives_the_full_score(key, data):
    scoring = get_instrument(key).items
    value = data.draw(st.integers(int(scoring.item_min), int(scoring.item_max)))
    blank = data.draw(st.integers(0, scoring.count - 1))
    full = np.full((1, scoring.count), float(value))
    partial = full.copy()
    partial[0, blank] = np.nan
    assert score_items(partial, scoring)[0][0] == pytest.approx(score_items(full, scoring)[0][0])
