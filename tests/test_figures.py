"""Figures: each plot builds from tiny frames and from the reference cohort, saves as a
deterministic PNG, carries alt text with its key numbers, and shows aggregates only."""

from __future__ import annotations

import copy
import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from plotnine import ggplot
from plotnine.exceptions import PlotnineWarning

from pipeline.summarise.figures import (
    Figure,
    plot_balance,
    plot_change_by_arm,
    plot_flow,
    plot_forest,
    plot_meta_forest,
    save_figure,
)
from pipeline.summarise.theme import ARM_COLOURS, OKABE_ITO, arm_palette, scale_colour_arms

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "data" / "processed" / "etmi-reference"
META = REPO / "data" / "processed" / "meta" / "estimates.parquet"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 60  # small images keep the tests fast; the size check scales with it


# --- tiny hand-made inputs -------------------------------------------------------------------


def _estimate(comparison, outcome, domain, method, measure, estimate, low, high, **extra):
    row = {
        "comparison_id": comparison,
        "method": method,
        "estimand": "conditional",
        "effect_measure": measure,
        "term": "new vs old",
        "estimate": estimate,
        "ci_low": low,
        "ci_high": high,
        "is_primary": False,
        "outcome": outcome,
        "domain": domain,
        "timepoint": "week_12",
        "treatment": "new",
        "control": "old",
        "mcid": {"function": 10.0, "pain": 2.0}.get(outcome, np.nan),
        "higher_is_better": outcome == "function",
        "synthetic": True,
    }
    row.update(extra)
    return row


def small_estimates() -> pd.DataFrame:
    rows = [
        _estimate("f", "function", "function", "naive", "mean_difference", 6.1, 1.0, 11.2),
        _estimate(
            "f",
            "function",
            "function",
            "ancova",
            "mean_difference",
            4.37,
            0.5,
            8.2,
            is_primary=True,
        ),
        _estimate(
            "f", "function", "function", "ipw", "mean_difference", 5.0, 0.1, 9.9, estimand="ATE"
        ),
        _estimate(
            "f", "function", "function", "ipw", "mean_difference", 4.8, 0.2, 9.4, estimand="ATT"
        ),
        # Not drawn: an adjusted mean and a subgroup estimate are not whole-comparison contrasts.
        _estimate(
            "f", "function", "function", "ancova", "adjusted_mean", 61.0, 58.0, 64.0, term="new"
        ),
        _estimate(
            "f",
            "function",
            "function",
            "effect_modification",
            "mean_difference",
            9.0,
            2.0,
            16.0,
            term="depression=yes",
        ),
        _estimate(
            "p", "pain", "pain", "ancova", "mean_difference", -0.83, -1.5, -0.16, is_primary=True
        ),
        _estimate("p", "pain", "pain", "naive", "mean_difference", -0.9, -1.7, -0.1),
        _estimate(
            "s", "sessions", "sessions", "poisson", "rate_ratio", 0.66, 0.61, 0.71, timepoint=""
        ),
        _estimate(
            "s",
            "sessions",
            "sessions",
            "negative_binomial",
            "rate_ratio",
            0.67,
            0.6,
            0.75,
            timepoint="",
            is_primary=True,
        ),
    ]
    return pd.DataFrame(rows)


SMALL_CELL_MEAN = 77.77  # the mean of the one cell with 3 participants: must never be drawn


def small_cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    """40 participants; at week 12 only 3 'old' participants have a function score."""
    rng = np.random.default_rng(7)
    ids = [f"p{i:03d}" for i in range(40)]
    arms = ["new"] * 20 + ["old"] * 20
    participants = pd.DataFrame(
        {
            "participant_id": pd.array(ids, dtype="string"),
            "arm": pd.Categorical(arms, categories=["new", "old"]),
            "age": rng.normal(50, 10, 40),
        }
    )
    rows = []
    for pid, arm in zip(ids, arms, strict=True):
        rows.append((pid, "function", "function", "baseline", 50 + rng.normal(0, 5)))
        rows.append((pid, "pain", "pain", "baseline", 6 + rng.normal(0, 1)))
        rows.append((pid, "pain", "pain", "week_12", 4 + rng.normal(0, 1)))
        if arm == "new":
            rows.append((pid, "function", "function", "week_12", 60 + rng.normal(0, 5)))
    for pid in ids[20:23]:  # the small cell: old arm x function x week 12
        rows.append((pid, "function", "function", "week_12", SMALL_CELL_MEAN))
    outcomes = pd.DataFrame(
        rows, columns=["participant_id", "outcome", "domain", "timepoint", "value"]
    )
    outcomes = outcomes.assign(
        participant_id=outcomes["participant_id"].astype("string"),
        outcome=pd.Categorical(outcomes["outcome"], categories=["function", "pain"]),
        timepoint=pd.Categorical(outcomes["timepoint"], categories=["baseline", "week_12"]),
    )
    return outcomes, participants


def small_balance() -> pd.DataFrame:
    rows = []
    for comparison in ("cmp-function", "cmp-pain"):
        for estimand, shrink in (("ATE", 0.05), ("ATT", 0.02)):
            for covariate, before in (("age", 0.34), ("sex=male", -0.15), ("baseline", 0.08)):
                rows.append(
                    {
                        "covariate": covariate,
                        "smd_before": before,
                        "smd_after": before * shrink,
                        "comparison_id": comparison,
                        "estimand": estimand,
                    }
                )
    return pd.DataFrame(rows)


def small_report() -> dict:
    return {
        "study_id": "tiny-study",
        "files": {
            "patients": {
                "path": "patients.csv",
                "rows": {
                    "in": 130,
                    "kept": 110,
                    "collapsed": 12,
                    "filtered": 5,
                    "quarantined": 3,
                    "quarantined_by_reason": {"missing_id": 3},
                },
            },
            "therapists": {
                "path": "therapists.xlsx",
                "rows": {"in": 9, "kept": 9, "collapsed": 0, "filtered": 0, "quarantined": 0},
                "join": {"main_rows_without_match": 0},
            },
        },
        "participants": 110,
        "participants_by_arm": {"new": 107, "old": 3},
    }


def small_meta() -> pd.DataFrame:
    common = {"meta_id": "m1", "effect_measure": "mean_difference", "domain": "pain"}
    studies = [
        {
            "method": "study",
            "study_label": "Trial A",
            "estimate": -1.2,
            "ci_low": -2.0,
            "ci_high": -0.4,
        },
        {
            "method": "study",
            "study_label": "Trial B",
            "estimate": -0.4,
            "ci_low": -1.1,
            "ci_high": 0.3,
        },
        {
            "method": "study",
            "study_label": "Trial C",
            "estimate": -0.9,
            "ci_low": -1.5,
            "ci_high": -0.3,
        },
    ]
    pooled = [
        {
            "method": method,
            "estimate": -0.83,
            "ci_low": -1.31,
            "ci_high": -0.35,
            "i2": i2,
            "tau2": tau2,
            "pi_low": -2.4,
            "pi_high": 0.7,
            "k": 3,
        }
        for method, i2, tau2 in (("meta_reml", 41.5, 0.123), ("meta_dl", 38.0, 0.101))
    ]
    return pd.DataFrame([{**common, **row} for row in studies + pooled])


BUILDERS = {
    "forest": lambda: plot_forest(small_estimates()),
    "change_by_arm": lambda: plot_change_by_arm(*small_cohort(), treatment="new", control="old"),
    "balance": lambda: plot_balance(small_balance()),
    "flow": lambda: plot_flow(small_report()),
    "meta_forest": lambda: plot_meta_forest(small_meta()),
}


# --- helpers ---------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk (the first chunk of every PNG)."""
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE
    assert header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


def save_checked(figure: Figure, path: Path) -> Path:
    """Save, failing on warnings that point at a bug (dropped rows, bad aesthetics...)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_figure(figure, path, dpi=DPI)
    bad = [w for w in caught if issubclass(w.category, PlotnineWarning | UserWarning)]
    assert not bad, [str(w.message) for w in bad]
    return path


def check_saved(figure: Figure, tmp_path: Path) -> None:
    """PNG signature, pixel size from width/height, and identical bytes when saved twice."""
    first = save_checked(figure, tmp_path / f"{figure.name}.png")
    second = save_checked(figure, tmp_path / f"{figure.name}-again.png")
    assert first.read_bytes()[:8] == PNG_SIGNATURE
    width, height = png_size(first)
    assert abs(width - figure.width * DPI) <= 2
    assert abs(height - figure.height * DPI) <= 2
    assert 200 <= width <= 2000 and 150 <= height <= 2000
    assert first.read_bytes() == second.read_bytes()
    assert b"Matplotlib" not in first.read_bytes()  # no version text in the file


# --- every figure ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_figure_builds_and_saves_a_deterministic_png(kind, tmp_path):
    figure = BUILDERS[kind]()
    assert isinstance(figure, Figure)
    assert isinstance(figure.plot, ggplot)
    assert figure.name == kind
    assert figure.alt_text.strip()
    check_saved(figure, tmp_path)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_rebuilding_a_figure_gives_the_same_bytes(kind, tmp_path):
    save_figure(BUILDERS[kind](), tmp_path / "a.png", dpi=DPI)
    save_figure(BUILDERS[kind](), tmp_path / "b.png", dpi=DPI)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_figure_is_frozen():
    figure = BUILDERS["flow"]()
    with pytest.raises(AttributeError):
        figure.name = "other"


def test_save_figure_leaves_no_temporary_file_and_refuses_other_formats(tmp_path):
    figure = BUILDERS["flow"]()
    written = save_figure(figure, tmp_path / "sub" / "flow.png", dpi=DPI)
    assert written == tmp_path / "sub" / "flow.png"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["flow.png"]
    with pytest.raises(ValueError, match="PNG"):
        save_figure(figure, tmp_path / "flow.pdf")


@pytest.mark.parametrize(
    "kind, inputs",
    [
        ("forest", lambda: (small_estimates(),)),
        ("change_by_arm", small_cohort),
        ("balance", lambda: (small_balance(),)),
        ("meta_forest", lambda: (small_meta(),)),
    ],
)
def test_input_frames_are_not_modified(kind, inputs):
    frames = inputs()
    before = [frame.copy(deep=True) for frame in frames]
    call = {
        "forest": plot_forest,
        "balance": plot_balance,
        "meta_forest": plot_meta_forest,
        "change_by_arm": lambda o, p: plot_change_by_arm(o, p, "new", "old"),
    }[kind]
    call(*frames)
    for frame, original in zip(frames, before, strict=True):
        pd.testing.assert_frame_equal(frame, original)


def test_flow_report_is_not_modified():
    report = small_report()
    original = copy.deepcopy(report)
    plot_flow(report, arms=["new", "old"])
    assert report == original


# --- forest plot -----------------------------------------------------------------------------


def test_forest_draws_whole_comparisons_with_ratios_in_their_own_panel():
    figure = plot_forest(small_estimates())
    data = figure.plot.data
    assert len(data) == 8  # the adjusted mean and the subgroup row are left out
    assert not data["method"].eq("effect_modification").any()
    labels = [str(label).replace("\n", " ") for label in data["label"]]
    assert "Function at week 12 — ANCOVA" in labels
    assert "Function at week 12 — IPW (ATE)" in labels
    ratio_panels = data.loc[data["effect_measure"] == "rate_ratio", "panel"].astype(str).unique()
    assert len(ratio_panels) == 1 and "log scale" in ratio_panels[0]
    assert "< 1 favours new" in ratio_panels[0].replace("\n", " ")
    assert data.loc[data["is_primary"], "analysis"].eq("Primary analysis").all()


def test_forest_ratio_axis_is_labelled_in_ratios():
    figure = plot_forest(small_estimates())
    drawn = figure.plot.draw()
    tick_labels = {t.get_text() for ax in drawn.axes for t in ax.get_xticklabels()}
    assert "1" in tick_labels  # the no-effect line of the ratio panel
    assert not any(len(t) > 8 for t in tick_labels)  # no raw offset positions leak as labels


def test_forest_alt_text_gives_primary_estimates():
    alt = plot_forest(small_estimates()).alt_text
    assert "4.37 (95% CI 0.50 to 8.20; MCID 10)" in alt
    assert "-0.83" in alt
    assert "rate ratio 0.67" in alt


def test_forest_refuses_estimates_without_main_rows():
    estimates = small_estimates().assign(effect_measure="odds_ratio")
    with pytest.raises(ValueError, match="no mean_difference or rate_ratio row"):
        plot_forest(estimates)
    with pytest.raises(ValueError, match="lacks column"):
        plot_forest(small_estimates().drop(columns="mcid"))


# --- change by arm ---------------------------------------------------------------------------


def test_change_by_arm_suppresses_cells_below_min_cell():
    outcomes, participants = small_cohort()
    figure = plot_change_by_arm(outcomes, participants, "new", "old", min_cell=5)
    data = figure.plot.data
    cell = (
        (data["outcome"] == "function") & (data["timepoint"] == "week_12") & (data["arm"] == "old")
    )
    assert not cell.any()
    assert not np.isclose(data["mean"], SMALL_CELL_MEAN).any()
    assert (data["n"] >= 5).all()
    assert len(data) == 7  # 2 outcomes x 2 timepoints x 2 arms, minus the small cell
    assert "1 group with fewer than 5 participants" in figure.alt_text
    # The same data with min_cell=3 shows the cell: suppression, not data loss.
    shown = plot_change_by_arm(outcomes, participants, "new", "old", min_cell=3).plot.data
    assert np.isclose(shown["mean"], SMALL_CELL_MEAN).any()


def test_change_by_arm_plots_aggregates_only():
    outcomes, participants = small_cohort()
    data = plot_change_by_arm(outcomes, participants, "new", "old").plot.data
    assert "participant_id" not in data.columns
    assert "value" not in data.columns
    assert not data.duplicated(["outcome", "timepoint", "arm"]).any()
    baseline = outcomes.merge(participants, on="participant_id").query(
        "outcome == 'pain' and timepoint == 'baseline' and arm == 'new'"
    )
    drawn = data.query("outcome == 'pain' and timepoint == 'baseline' and arm == 'new'")
    assert drawn["mean"].item() == pytest.approx(baseline["value"].mean())
    assert drawn["n"].item() == 20


def test_change_by_arm_alt_text_gives_arm_sizes_and_means():
    outcomes, participants = small_cohort()
    figure = plot_change_by_arm(outcomes, participants, "new", "old")
    data = figure.plot.data.query("outcome == 'pain' and timepoint == 'week_12'")
    new_mean = data.loc[data["arm"] == "new", "mean"].item()
    assert "new (n = 20) and old (n = 20)" in figure.alt_text
    assert f"{new_mean:.2f}" in figure.alt_text


def test_change_by_arm_names_unknown_arms():
    outcomes, participants = small_cohort()
    with pytest.raises(ValueError, match='control arm "placebo" is not in participants'):
        plot_change_by_arm(outcomes, participants, "new", "placebo")
    with pytest.raises(ValueError, match="fewer than 100 participants"):
        plot_change_by_arm(outcomes, participants, "new", "old", min_cell=100)


# --- balance, flow, meta ---------------------------------------------------------------------


def test_balance_shows_one_estimand_and_its_largest_imbalance():
    figure = plot_balance(small_balance(), estimand="ATT")
    data = figure.plot.data
    assert len(data) == 2 * 3 * 2  # comparisons x covariates x before/after
    assert data["abs_smd"].min() >= 0
    assert "0.34 (age" in figure.alt_text
    assert "ATT" in figure.alt_text
    with pytest.raises(ValueError, match='no rows for estimand "ATO"'):
        plot_balance(small_balance(), estimand="ATO")
    with pytest.raises(ValueError, match="balance is empty"):
        plot_balance(pd.DataFrame())


def test_flow_shows_small_counts_as_less_than_five():
    figure = plot_flow(small_report())
    labels = " | ".join(figure.plot.data["label"])
    assert "n = <5" in labels  # the arm with 3 participants
    assert "missing id: <5" in labels
    assert "n = 3" not in labels and ": 3" not in labels
    # One hidden part of a shown total would be recoverable by subtraction, so its
    # complement is hidden too (107 = 110 - 3).
    assert "107" not in labels and "n = ≥5" in labels
    assert "<5" in figure.alt_text and " 3 " not in figure.alt_text
    assert "4 are shown as <5" in str(figure.plot.labels.get("caption", ""))
    assert "therapists.xlsx" in str(figure.plot.labels.get("caption", ""))


def test_flow_refuses_incomplete_reports():
    report = small_report()
    del report["files"]["patients"]["rows"]["kept"]
    with pytest.raises(ValueError, match=r"rows\.kept"):
        plot_flow(report)
    with pytest.raises(ValueError, match='no "files"'):
        plot_flow({"participants": 1, "participants_by_arm": {}})


def test_meta_forest_draws_diamonds_and_heterogeneity():
    figure = plot_meta_forest(small_meta())
    assert figure.plot.data["kind"].value_counts().to_dict() == {"study": 3, "pooled": 2}
    subtitle = figure.plot.labels.get("subtitle", "")
    assert "I² = 42%" in subtitle and "τ² = 0.123" in subtitle
    assert "-0.83 (95% CI -1.31 to -0.35)" in figure.alt_text
    assert "prediction interval -2.40 to 0.70" in figure.alt_text
    two = pd.concat([small_meta(), small_meta().assign(meta_id="m2")])
    with pytest.raises(ValueError, match="several meta-analyses"):
        plot_meta_forest(two)


# --- theme -----------------------------------------------------------------------------------


def test_arm_colours_are_okabe_ito_treatment_first():
    assert ARM_COLOURS[:2] == (OKABE_ITO["blue"], OKABE_ITO["orange"])
    assert arm_palette(["new", "old"]) == {"new": OKABE_ITO["blue"], "old": OKABE_ITO["orange"]}
    assert scale_colour_arms(["new", "old"]).breaks == ["new", "old"]
    with pytest.raises(ValueError, match="distinct"):
        arm_palette(["a", "a"])


# --- the reference cohort --------------------------------------------------------------------


def _reference_files() -> dict[str, Path]:
    names = ("estimates.parquet", "outcomes.parquet", "participants.parquet", "balance.parquet")
    files = {name: REFERENCE / name for name in names}
    files["ingest_report.json"] = REFERENCE / "ingest_report.json"
    missing = [str(path) for path in files.values() if not path.exists()]
    if missing:
        pytest.skip(f"processed reference cohort not built ({', '.join(missing)}): run dvc repro")
    return files


def test_reference_cohort_figures(tmp_path):
    files = _reference_files()
    estimates = pd.read_parquet(files["estimates.parquet"])
    outcomes = pd.read_parquet(files["outcomes.parquet"])
    participants = pd.read_parquet(files["participants.parquet"])
    balance = pd.read_parquet(files["balance.parquet"])
    report = json.loads(files["ingest_report.json"].read_text(encoding="utf-8"))
    treatment, control = estimates["treatment"].iloc[0], estimates["control"].iloc[0]
    originals = [frame.copy(deep=True) for frame in (estimates, outcomes, participants, balance)]

    forest = plot_forest(estimates)
    primary = estimates.loc[
        estimates["is_primary"] & (estimates["effect_measure"] == "mean_difference")
    ]
    for value in primary["estimate"]:
        assert f"{value:.2f}" in forest.alt_text or f"{value:.1f}" in forest.alt_text

    change = plot_change_by_arm(outcomes, participants, treatment, control)
    assert "participant_id" not in change.plot.data.columns
    assert (change.plot.data["n"] >= 5).all()
    assert f"n = {(participants['arm'] == treatment).sum():,}" in change.alt_text

    balance_figure = plot_balance(balance)
    largest = balance.loc[balance["estimand"] == "ATE", "smd_before"].abs().max()
    assert f"{largest:.2f}" in balance_figure.alt_text

    flow = plot_flow(report, arms=[treatment, control])
    assert f"{report['participants']:,}" in flow.alt_text

    for figure in (forest, change, balance_figure, flow):
        assert figure.alt_text.strip()
        check_saved(figure, tmp_path)
    for frame, original in zip(
        (estimates, outcomes, participants, balance), originals, strict=True
    ):
        pd.testing.assert_frame_equal(frame, original)


def test_meta_analysis_figure(tmp_path):
    if not META.exists():
        pytest.skip(f"{META} not built: run dvc repro")
    meta = pd.read_parquet(META)
    meta_id = meta["meta_id"].dropna().iloc[0]
    rows = meta.loc[meta["meta_id"] == meta_id]
    figure = plot_meta_forest(rows)
    pooled = rows.loc[rows["method"] == "meta_reml", "estimate"].item()
    assert f"{pooled:.2f}" in figure.alt_text
    check_saved(figure, tmp_path)
