"""Tests for pipeline.analysis.multiplicity (Holm and Benjamini-Hochberg adjustment).

Expected values are worked by hand below from the definitions in Holm (1979) and
Benjamini & Hochberg (1995), which are also those of R's ``p.adjust`` ("holm", "BH").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.multiplicity import add_adjusted_p_values, adjust_p_values


def test_holm_by_hand() -> None:
    # m = 4; sorted p: 0.001, 0.03, 0.04, 0.5
    #   step 1: 4 x 0.001 = 0.004
    #   step 2: 3 x 0.03  = 0.09
    #   step 3: 2 x 0.04  = 0.08 -> max(0.09, 0.08) = 0.09 (monotone step-down)
    #   step 4: 1 x 0.5   = 0.5
    p = [0.04, 0.001, 0.03, 0.5]
    assert adjust_p_values(p, "holm") == pytest.approx([0.09, 0.004, 0.09, 0.5], abs=1e-12)


def test_benjamini_hochberg_by_hand() -> None:
    # m = 4; sorted p with rank i: 0.001 (1), 0.03 (2), 0.04 (3), 0.5 (4); m p / i:
    #   0.004, 0.06, 0.05333..., 0.5
    # step-up, minimum from the top: 0.5; 0.05333; min(0.06, 0.05333) = 0.05333; 0.004
    p = [0.04, 0.001, 0.03, 0.5]
    expected = [4 * 0.04 / 3, 0.004, 4 * 0.04 / 3, 0.5]
    assert adjust_p_values(p, "fdr_bh") == pytest.approx(expected, abs=1e-12)


def test_benjamini_hochberg_equal_spacing() -> None:
    # p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), "BH") is 0.05 for all: 5 x (i/100) / i = 0.05.
    assert adjust_p_values([0.01, 0.02, 0.03, 0.04, 0.05], "fdr_bh") == pytest.approx([0.05] * 5)


def test_adjusted_values_are_capped_at_one() -> None:
    # Holm: 2 x 0.6 = 1.2 -> 1; then max(1, 1 x 0.7) = 1.
    assert adjust_p_values([0.6, 0.7], "holm") == pytest.approx([1.0, 1.0])


def test_nan_passes_through_and_is_not_counted() -> None:
    # Family of two observed p values: Holm 2 x 0.01 = 0.02, then max(0.02, 1 x 0.04) = 0.04.
    adjusted = adjust_p_values([0.01, np.nan, 0.04], "holm")
    assert adjusted[0] == pytest.approx(0.02)
    assert np.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.04)
    assert np.isnan(adjust_p_values([np.nan, np.nan], "fdr_bh")).all()
    assert adjust_p_values([], "holm").shape == (0,)


@pytest.mark.parametrize(
    ("p", "method", "message"),
    [
        ([0.1, 1.2], "holm", r"p values must lie in \[0, 1\]; got \[1.2\]"),
        ([-0.1], "fdr_bh", r"p values must lie in \[0, 1\]"),
        ([0.1], "bonferroni", "method must be one of"),
        ([[0.1, 0.2]], "holm", "one-dimensional"),
        (["a"], "holm", "p values must be numbers"),
    ],
)
def test_bad_p_values_are_refused(p: list, method: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        adjust_p_values(p, method)  # type: ignore[arg-type]


def _estimates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "term": ["t1", "t2", "t3", "t4", "t5", "t6", "t7"],
            "family": ["primary", "secondary", "primary", "secondary", None, "", "secondary"],
            "p_value": [0.01, 0.04, 0.04, 0.001, 0.02, 0.03, 0.03],
        },
        index=[7, 3, 5, 1, 0, 2, 9],
    )


def test_families_are_adjusted_separately() -> None:
    result = add_adjusted_p_values(_estimates())
    # primary (m = 2): 0.01, 0.04 -> Holm 0.02, max(0.02, 0.04) = 0.04; BH 2 x 0.01 / 1 = 0.02
    #   step-up from 0.04 x 2 / 2 = 0.04 -> 0.02, 0.04.
    assert result.loc[[7, 5], "p_holm"].tolist() == pytest.approx([0.02, 0.04])
    assert result.loc[[7, 5], "p_fdr_bh"].tolist() == pytest.approx([0.02, 0.04])
    # secondary (m = 3): sorted 0.001, 0.03, 0.04 -> Holm 0.003, 0.06, max(0.06, 0.04) = 0.06;
    #   BH 3 x 0.001 = 0.003, 3 x 0.03 / 2 = 0.045, 3 x 0.04 / 3 = 0.04 -> min from top:
    #   0.04, min(0.045, 0.04) = 0.04, 0.003.
    assert result.loc[[3, 1, 9], "p_holm"].tolist() == pytest.approx([0.06, 0.003, 0.06])
    assert result.loc[[3, 1, 9], "p_fdr_bh"].tolist() == pytest.approx([0.04, 0.003, 0.04])


def test_rows_without_a_family_get_nan() -> None:
    result = add_adjusted_p_values(_estimates())
    assert result.loc[[0, 2], ["p_holm", "p_fdr_bh"]].isna().all().all()


def test_order_index_and_other_columns_are_kept() -> None:
    estimates = _estimates()
    result = add_adjusted_p_values(estimates)
    assert result.index.tolist() == estimates.index.tolist()
    pd.testing.assert_frame_equal(result[estimates.columns], estimates)
    assert list(result.columns) == [*estimates.columns, "p_holm", "p_fdr_bh"]


def test_nan_p_value_inside_a_family_is_not_counted() -> None:
    estimates = pd.DataFrame({"family": ["f", "f", "f"], "p_value": [0.01, np.nan, 0.02]})
    result = add_adjusted_p_values(estimates)
    # m = 2: Holm 0.02, max(0.02, 0.02) = 0.02
    assert result["p_holm"].tolist()[0] == pytest.approx(0.02)
    assert np.isnan(result["p_holm"].tolist()[1])
    assert result["p_holm"].tolist()[2] == pytest.approx(0.02)


def test_custom_column_names() -> None:
    estimates = pd.DataFrame({"fam": ["x", "x"], "p": [0.01, 0.03]})
    result = add_adjusted_p_values(estimates, family_column="fam", p_column="p")
    assert result["p_holm"].tolist() == pytest.approx([0.02, 0.03])


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"p_value": [0.1]}), r"column\(s\) \['family'\] not in the estimates"),
        (pd.DataFrame({"family": ["f"]}), r"column\(s\) \['p_value'\] not in the estimates"),
        (
            pd.DataFrame({"family": ["f"], "p_value": [0.1], "p_holm": [0.1]}),
            r"\['p_holm'\] already present",
        ),
        (pd.DataFrame({"family": [None], "p_value": [2.0]}), r"values outside \[0, 1\]"),
        (pd.DataFrame({"family": ["f"], "p_value": ["small"]}), "must hold numeric p values"),
    ],
)
def test_bad_estimates_are_refused(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        add_adjusted_p_values(frame)


def test_input_frame_is_not_modified() -> None:
    estimates = _estimates()
    before = estimates.copy(deep=True)
    add_adjusted_p_values(estimates)
    pd.testing.assert_frame_equal(estimates, before)


def test_input_array_is_not_modified() -> None:
    p = np.array([0.04, np.nan, 0.01])
    before = p.copy()
    adjust_p_values(p, "fdr_bh")
    np.testing.assert_array_equal(p, before)
