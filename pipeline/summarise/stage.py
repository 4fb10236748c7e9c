"""Stage ``summarise``: estimates in, citable claims and readable reports out.

For one study, :func:`summarise_study` (pure: frames in, texts and figures out) builds the
claims, lints every patient-facing text, and renders the fact sheet, the summary, the
technical notes, Table 1 and the figures. :func:`run_summarise` reads
``data/processed/<study>/`` and writes ``reports/<study>/``; it stops with an error when a
generated text breaks the plain-language rules, so ``dvc repro`` fails instead of publishing it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pipeline.errors import InputFileError, UserError
from pipeline.io import raw_data_sha256, sha256_files, to_json_text, write_csv_frame, write_text
from pipeline.notebooks import covariate_columns
from pipeline.provenance import git_commit, software_versions
from pipeline.summarise.claims import (
    NamingRules,
    StudyFacts,
    build_claims,
    build_meta_claims,
    meta_question_mismatch,
)
from pipeline.summarise.figures import (
    Figure,
    plot_balance,
    plot_change_by_arm,
    plot_flow,
    plot_forest,
    plot_meta_forest,
    save_figure,
)
from pipeline.summarise.lint import (
    LintIssue,
    count_words,
    lint_text,
    reading_grade,
    split_sentences,
)
from pipeline.summarise.render import (
    render_claims_changes,
    render_fact_sheet,
    render_html,
    render_methods,
    render_summary,
)
from pipeline.summarise.tables import suppress, table_one
from pipeline.summarise.wording import format_number


@dataclass(frozen=True)
class StudySummary:
    """Everything ``summarise`` writes for one study, in memory."""

    claims: pd.DataFrame
    fact_sheet: str
    summary: str
    methods: str
    table1: pd.DataFrame
    figures: list[Figure]
    issues: list[LintIssue]


def summarise_study(
    estimates: pd.DataFrame,
    participants: pd.DataFrame,
    outcomes: pd.DataFrame,
    balance: pd.DataFrame,
    report: dict[str, Any],
    settings: dict[str, Any],
    provenance: dict[str, Any],
) -> StudySummary:
    """Build the claims, texts, table and figures of one study (no files written).

    Parameters
    ----------
    estimates, participants, outcomes, balance
        The study's processed tables.
    report
        Its ``ingest_report.json`` (design, synthetic flag, arms, row counts, source).
    settings
        The ``summarise`` section of ``params.yaml``.
    provenance
        Git commit, data and parameter hashes, software versions (copied into the notes).

    Returns
    -------
    StudySummary
        ``issues`` lists every plain-language rule the generated texts break (should be empty).
    """
    study = report["study_id"]
    min_cell = int(settings.get("min_cell", 5))
    described = settings.get("studies", {}).get(study, {})
    naming = NamingRules(**settings.get("names", {})).merged(described.get("names"))
    check_names(naming, study)
    facts = StudyFacts.from_report(
        report,
        described.get("question", settings.get("question", {})),
        described.get("thresholds", {}),
    )
    claims = build_claims(estimates, participants, naming, min_cell, facts)
    claims = _suppress_small_counts(claims, min_cell).assign(
        git_commit=provenance.get("git_commit", "")
    )
    title = described.get("title", report.get("title", study))
    synthetic = bool(report.get("synthetic", False))
    treatment, control = report["arms"]["treatment"], report["arms"]["control"]
    figures = _figures(
        estimates, participants, outcomes, balance, report, treatment, control, min_cell, naming
    )
    covariates = covariate_columns(participants)
    table1 = table_one(participants, outcomes, treatment, control, covariates, min_cell)
    intro = [
        *described.get("intro", []),
        f"The people in it had {facts.condition}.",
        _arms_sentence(report, naming),
        _design_sentence(report["design"]),
        balance_sentence(table1),
        _size_sentence(participants, min_cell),
    ]
    summary = render_summary(
        title,
        intro,
        claims,
        [(f"{f.name}.png", _figure_title(f.name), _plain_alt(f.name)) for f in figures],
        synthetic,
    )
    fact_sheet = render_fact_sheet(title, claims, synthetic, facts.condition)
    certainties = dict(zip(claims["claim_id"], claims["certainty"], strict=True))
    issues = (
        lint_text(summary, certainties)
        + [i for i in lint_text(fact_sheet, certainties) if i.rule != "reading_grade"]
        + check_bullets(claims)
    )
    methods = render_methods({**report, "title": title}, estimates, table1, provenance)
    methods += "\n## Figures (detailed descriptions)\n\n" + "".join(
        f"- figures/{f.name}.png: {f.alt_text}\n" for f in figures
    )
    return StudySummary(claims, fact_sheet, summary, methods, table1, figures, issues)


def run_summarise(
    study: str,
    params: dict[str, Any],
    processed_root: str | Path = "data/processed",
    reports_root: str | Path = "reports",
    lock_file: str | Path = "dvc.lock",
) -> StudySummary:
    """Entry point of the ``summarise`` stage for one study (``backpain summarise <study>``)."""
    folder = Path(processed_root) / study
    paths = {
        name: folder / name
        for name in (
            "estimates.parquet",
            "participants.parquet",
            "outcomes.parquet",
            "balance.parquet",
            "ingest_report.json",
        )
    }
    for path in paths.values():
        if not path.exists():
            raise InputFileError(
                f"{path}: not found; run `dvc repro` (ingest and analyse {study}) first"
            )
    estimates = pd.read_parquet(paths["estimates.parquet"])
    report = json.loads(paths["ingest_report.json"].read_text())
    provenance = {
        "git_commit": git_commit(),
        "input_data_sha256": raw_data_sha256(report),
        "estimates_sha256": sha256_files([paths["estimates.parquet"]]),
        "analysis_params_sha256": str(estimates["params_sha256"].iloc[0])
        if "params_sha256" in estimates
        else "",
        "software": json.dumps(software_versions(), sort_keys=True),
    }
    result = summarise_study(
        estimates,
        pd.read_parquet(paths["participants.parquet"]),
        pd.read_parquet(paths["outcomes.parquet"]),
        pd.read_parquet(paths["balance.parquet"]),
        report,
        params,
        provenance,
    )
    if result.issues:
        lines = [
            f"{i.rule}: {i.message}" + (f' -- "{i.sentence}"' if i.sentence else "")
            for i in result.issues
        ]
        raise UserError(
            f"generated text for {study} breaks the plain-language rules:\n  " + "\n  ".join(lines)
        )
    out = Path(reports_root) / study
    _write(out, result, study, lock_file)
    return result


def run_summarise_meta(
    params: dict[str, Any],
    processed_root: str | Path = "data/processed",
    reports_root: str | Path = "reports",
    lock_file: str | Path = "dvc.lock",
) -> pd.DataFrame:
    """Claims and a forest plot for the meta-analyses (``backpain summarise meta``)."""
    path = Path(processed_root) / "meta" / "estimates.parquet"
    if not path.exists():
        raise InputFileError(f"{path}: not found; run `backpain meta` first")
    pooled = pd.read_parquet(path)
    naming = NamingRules(**params.get("names", {}))
    arm_classes = params.get("arm_classes", {})
    claims = build_meta_claims(pooled, naming, params.get("meta", {}), arm_classes).assign(
        git_commit=git_commit()
    )
    certainties = dict(zip(claims["claim_id"], claims["certainty"], strict=True))
    descriptions = pooled.groupby("meta_id")["meta_description"].first()
    intro = ["This page puts studies side by side to see what they show as a whole."]
    figures = []
    for meta_id, rows in pooled.groupby("meta_id", sort=True):
        members = rows[rows["method"] == "study"]
        problems = meta_question_mismatch(members, arm_classes)
        if not problems:
            figures.append(plot_meta_forest(rows, name=f"meta_forest_{meta_id}"))
            continue
        # no pooled number and no pooled diamond: the studies side by side only
        intro.append("We did not put these studies together.")
        intro += [f"{problem[0].upper()}{problem[1:]}." for problem in problems]
        for _, member in members.iterrows():
            side = "lower" if member["estimate"] < 0 else "higher"
            intro.append(
                f"In {member['study_id']}, scores were about "
                f"{format_number(member['estimate'], 1)} standard units {side}."
            )
    summary = render_summary(
        "Putting the studies together",
        intro,
        claims,
        [
            (
                f"{f.name}.png",
                "Studies side by side",
                "Chart with one line per study and a diamond for the studies put together.",
            )
            for f in figures
        ],
        bool(claims["synthetic"].any()),
    )
    issues = lint_text(summary, certainties)
    if issues:
        raise UserError(
            "generated meta-analysis text breaks the plain-language rules:\n  "
            + "\n  ".join(f"{i.rule}: {i.message} -- {i.sentence}" for i in issues)
        )
    out = Path(reports_root) / "meta"
    (out / "figures").mkdir(parents=True, exist_ok=True)
    images = {}
    for figure in figures:
        images[f"{figure.name}.png"] = save_figure(
            figure, out / "figures" / f"{figure.name}.png"
        ).read_bytes()
    write_text(
        out / "summary.md",
        summary + "\n" + "\n".join(f"- {k}: {v}" for k, v in descriptions.items()) + "\n",
    )
    write_text(out / "summary.html", render_html(summary, images, "Putting the studies together"))
    _write_claims(out, claims, "meta", lock_file)
    return claims


def _write(out: Path, result: StudySummary, study: str, lock_file: str | Path) -> None:
    images = {}
    for figure in result.figures:
        path = save_figure(figure, out / "figures" / f"{figure.name}.png")
        images[path.name] = path.read_bytes()
    write_text(out / "summary.md", result.summary)
    write_text(out / "summary.html", render_html(result.summary, images, study))
    write_text(out / "fact_sheet.md", result.fact_sheet)
    write_text(out / "methods.md", result.methods)
    write_csv_frame(out / "table1.csv", result.table1)
    write_text(out / "table1.html", _table_html(result.table1, study))
    alt = {f"{f.name}.png": f.alt_text for f in result.figures}
    write_text(out / "figures" / "alt_text.json", to_json_text(alt))
    _write_claims(out, result.claims, study, lock_file)


def _write_claims(out: Path, claims: pd.DataFrame, study: str, lock_file: str | Path) -> None:
    records = json.loads(claims.to_json(orient="records"))
    previous = previous_claims(out / "claims.json", lock_file)
    write_text(out / "claims.json", to_json_text({"study_id": study, "claims": records}))
    flat = claims.assign(
        certainty_reasons=claims["certainty_reasons"].map(" | ".join),
        estimate=claims["numbers"].map(lambda n: n.get("estimate")),
        ci_low=claims["numbers"].map(lambda n: n.get("ci_low")),
        ci_high=claims["numbers"].map(lambda n: n.get("ci_high")),
        units=claims["numbers"].map(lambda n: n.get("units")),
        n_treated=claims["numbers"].map(lambda n: n.get("n_treated")),
        n_control=claims["numbers"].map(lambda n: n.get("n_control")),
        estimate_ref=claims["estimate_ref"].map(lambda r: json.dumps(r, sort_keys=True)),
        grade=claims["grade"].map(lambda r: json.dumps(r, sort_keys=True)),
        names=claims["names"].map(lambda r: json.dumps(r, sort_keys=True)),
        shown_numbers=claims["shown_numbers"].map(json.dumps),
    ).drop(columns=["numbers"])
    write_csv_frame(out / "claims.csv", flat)
    write_text(out / "claims_changes.md", render_claims_changes(previous, records, study))


def previous_claims(path: Path, lock_file: str | Path = "dvc.lock") -> list[dict[str, Any]] | None:
    """The claims of the last recorded run: the version in ``dvc.lock`` (from the DVC cache),
    else the file still on disk, else None."""
    candidates: list[Path] = []
    lock = Path(lock_file)
    if lock.exists():
        locked = yaml.safe_load(lock.read_text()) or {}
        for stage in (locked.get("stages") or {}).values():
            for out in stage.get("outs", []) or []:
                if Path(out.get("path", "")) == path and out.get("md5"):
                    md5 = out["md5"]
                    candidates.append(
                        lock.parent / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
                    )
    candidates.append(path)
    for candidate in candidates:
        if candidate.exists():
            try:
                return json.loads(candidate.read_text())["claims"]
            except (ValueError, KeyError):
                continue
    return None


def _figures(
    estimates, participants, outcomes, balance, report, treatment, control, min_cell, naming
) -> list[Figure]:
    """The study's figures, with arms labelled by their plain names where arms are shown."""
    renamed = {arm: naming.arm(arm) for arm in participants["arm"].astype(str).unique()}
    plain_participants = participants.assign(
        arm=participants["arm"].astype(str).map(renamed).astype("category")
    )
    plain_report = {
        **report,
        "participants_by_arm": {
            renamed.get(k, k): v for k, v in report.get("participants_by_arm", {}).items()
        },
    }
    figures = [
        plot_forest(estimates)
    ]  # its labels are outcomes and methods; rows match on arm keys
    figures.append(
        plot_change_by_arm(
            outcomes, plain_participants, renamed[treatment], renamed[control], min_cell=min_cell
        )
    )
    if not balance.empty:
        figures.append(plot_balance(balance))
    figures.append(plot_flow(plain_report, min_cell=min_cell))
    return figures


_PLAIN_ALT = {
    "forest": "Chart with one line per result. The dot is the best guess. The line is the range the true "
    "effect is likely to lie in.",
    "change_by_arm": "Chart of the average score in each group at each time point.",
    "balance": "Chart of how alike the groups were, before and after we took their differences into account.",
    "flow": "Diagram of how many records we got, how many we checked out, and how many people we counted.",
}


def _plain_alt(name: str) -> str:
    """Alt text for the plain summary (the detailed alt text with numbers is in methods.md)."""
    return _PLAIN_ALT.get(name, "Chart of the results.")


def _figure_title(name: str) -> str:
    return {
        "forest": "All the comparisons in one picture",
        "change_by_arm": "How people changed in each group",
        "balance": "How alike the groups were",
        "flow": "Who was counted",
    }.get(name, name.replace("_", " ").capitalize())


def _arms_sentence(report: dict[str, Any], naming: NamingRules) -> str:
    arms = [naming.arm(a) for a in report["arms"]["all"]]
    listed = arms[0] if len(arms) == 1 else ", ".join(arms[:-1]) + f" and {arms[-1]}"
    return f"It compared {listed}."


def _design_sentence(design: str) -> str:
    if design == "randomised":
        return "Chance decided which group each person joined."
    return "People were not put into groups by chance, so the groups may differ in other ways."


SMD_NOTABLE = 0.1  # Austin PC, Stat Med 2009;28:3083-107: |SMD| > 0.1 is a meaningful imbalance
SMD_LARGE = 0.5


def balance_sentence(table1: pd.DataFrame) -> str:
    """How alike the compared groups were at the start, in words, from Table 1's SMDs.

    Never fixed text: "alike" only when every standardised difference is at most 0.1; above
    0.1 the characteristics are named, above 0.5 the difference is called large.
    """
    smd = pd.to_numeric(table1["smd"], errors="coerce")
    names = table1["characteristic"].replace("", np.nan).ffill().fillna("")
    frame = pd.DataFrame({"name": names, "smd": smd.abs()}).dropna()
    frame = frame[frame["name"] != "Sessions"]  # counted during care, not at the start
    if frame.empty:
        return "We could not check how alike the groups were at the start."
    worst = frame.groupby("name", sort=False)["smd"].max()
    large = [n.lower() for n, v in worst.items() if v > SMD_LARGE]
    notable = [n.lower() for n, v in worst.items() if SMD_NOTABLE < v <= SMD_LARGE]
    if large:
        return f"At the start, the groups differed a lot in {_listing(large)}."
    if notable:
        return f"At the start, the groups differed a little in {_listing(notable)}."
    return "At the start, the groups were alike in the things we measured."


def _listing(items: list[str], limit: int = 3) -> str:
    shown = items[:limit]
    if len(items) > limit:
        return ", ".join(shown) + " and other things"
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + f" and {shown[-1]}"


MAX_NAME_WORDS = {"arms": 4, "outcomes": 4, "timepoints": 3}


def check_names(naming: NamingRules, study: str) -> None:
    """Refuse plain names that would make claim sentences too long, at configuration time."""
    for section, limit in MAX_NAME_WORDS.items():
        for key, name in getattr(naming, section).items():
            words = len(str(name).split())
            if words > limit:
                raise UserError(
                    f"params.yaml summarise.names.{section}.{key} (study {study}): "
                    f'"{name}" has {words} words; use at most {limit} so every claim '
                    "sentence stays within 20 words"
                )


MAX_BULLET_GRADE = 6.0


def check_bullets(claims: pd.DataFrame) -> list[LintIssue]:
    """Every fact-sheet bullet at most grade 6 (Flesch-Kincaid) and 20 words per sentence."""
    issues = []
    for sentence in claims["sentence"]:
        grade = reading_grade(sentence)
        if grade > MAX_BULLET_GRADE:
            issues.append(
                LintIssue(
                    "reading_grade",
                    sentence,
                    f"bullet reads at grade {grade:.1f} (limit {MAX_BULLET_GRADE:g})",
                )
            )
        for part in split_sentences(sentence):
            if count_words(part) > 20:
                issues.append(
                    LintIssue("sentence_length", part, f"{count_words(part)} words (limit 20)")
                )
    return issues


def _size_sentence(participants: pd.DataFrame, min_cell: int) -> str:
    return f"{suppress(len(participants), min_cell)} people took part."


def _suppress_small_counts(claims: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    def fix(numbers: dict[str, Any]) -> dict[str, Any]:
        out = dict(numbers)
        for key in ("n_treated", "n_control", "events_treated", "events_control"):
            if isinstance(out.get(key), int) and 0 < out[key] < min_cell:
                out[key] = f"<{min_cell}"
        return out

    return claims.assign(numbers=claims["numbers"].map(fix))


def _table_html(table: pd.DataFrame, study: str) -> str:
    body = table.to_html(index=False, escape=True, na_rep="", border=0)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Table 1: {study}</title>\n<style>body{{font-family:system-ui,sans-serif;margin:1rem}}"
        "table{border-collapse:collapse;display:block;overflow-x:auto}td,th{border:1px solid #ccc;"
        "padding:.25rem .5rem;text-align:left}</style>\n</head>\n<body>\n"
        f"<h1>Who took part: {study}</h1>\n<p>Mean (SD) or number (%). Counts below 5 are shown as &lt;5. "
        "smd: standardised difference between the compared arms.</p>\n"
        f"{body}\n</body>\n</html>\n"
    )
