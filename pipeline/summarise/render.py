"""Text of the reports: the fact sheet, the plain summary (Markdown and self-contained HTML),
the technical notes and the list of claims that changed since the last run.

Every ``render_*`` function returns a string and reads nothing; nothing here has timestamps or
depends on dictionary or file order, so the same claims give the same bytes.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

import markdown
import pandas as pd

CERTAINTY_WORDS = {
    "high": "High certainty",
    "moderate": "Moderate certainty",
    "low": "Low certainty",
    "very_low": "Very low certainty",
}
CERTAINTY_MEANING = {
    "high": "We are confident in the result. New studies are unlikely to change it.",
    "moderate": 'The word "probably" means we are fairly sure. New studies could change the result a bit.',
    "low": 'The word "may" means we are not sure. New studies could change the result a lot.',
    "very_low": '"We are uncertain" means we do not know. The result could be quite different.',
}


def render_fact_sheet(
    title: str, claims: pd.DataFrame, synthetic: bool, condition: str = ""
) -> str:
    """The "What the evidence shows" bullets of a patient fact sheet, each with its claim id."""
    lines = [f"# What the evidence shows: {title}", ""]
    if synthetic:
        lines += ["_Demonstration data. These are not real patients._", ""]
    if condition:
        lines += [f"For people with {condition}.", ""]
    for _, claim in claims.iterrows():
        lines.append(f"- {claim['sentence']} [{claim['claim_id']}]")
    lines.append("")
    return "\n".join(lines)


def render_summary(
    title: str,
    intro: Sequence[str],
    claims: pd.DataFrame,
    figures: Sequence[tuple[str, str, str]],
    synthetic: bool,
) -> str:
    """The plain-language summary (Markdown): claims, how sure we are, pictures, where to read more.

    ``figures`` holds (file name, title, alt text). Written to read at about a 12-year-old's
    level and checked by the plain-language linter.
    """
    lines = [f"# {title}", ""]
    if synthetic:
        lines += ["**Demonstration data. These are not real patients.**", ""]
    lines += [*intro, "", "## What the evidence shows", ""]
    for number, (_, claim) in enumerate(claims.iterrows(), start=1):
        lines.append(f"{number}. {claim['sentence']} [{claim['claim_id']}]")
    lines += ["", "## How sure are we?", ""]
    used = [
        level
        for level in ("high", "moderate", "low", "very_low")
        if (claims["certainty"] == level).any()
    ]
    for level in used:
        lines.append(f"- **{CERTAINTY_WORDS[level]}.** {CERTAINTY_MEANING[level]}")
    lines += ["", "Each finding and what we checked:", ""]
    for number, (_, claim) in enumerate(claims.iterrows(), start=1):
        lines.append(f"{number}. {CERTAINTY_WORDS[claim['certainty']]}.")
        for row in claim.get("grade", []) or []:
            lines.append(
                f"    - {DOMAIN_WORDS.get(row['domain'], row['domain'])}: "
                f"{_judgement_words(row)}. {_sentence_case(row['reason'])}."
            )
    if figures:
        lines += ["", "## Pictures", ""]
        for file_name, figure_title, alt in figures:
            lines += [f"### {figure_title}", "", f"![{alt}](figures/{file_name})", "", alt, ""]
    lines += [
        "## Read more",
        "",
        "- Who took part: table1.html.",
        "- All the numbers: the claims file (claims.csv) and the full results (estimates.json).",
        "- How the numbers were made: methods.md.",
        "",
    ]
    return "\n".join(lines)


def render_html(markdown_text: str, images: dict[str, bytes], title: str) -> str:
    """A self-contained HTML page (figures embedded as data URIs), readable on a phone."""
    body = markdown.markdown(markdown_text, extensions=["tables"], output_format="html")
    for name, data in sorted(images.items()):
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        body = body.replace(f'src="figures/{name}"', f'src="{uri}"')
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"{body}\n</main>\n</body>\n</html>\n"
    )


def render_methods(
    study: dict[str, Any], estimates: pd.DataFrame, table1: pd.DataFrame, provenance: dict[str, Any]
) -> str:
    """Technical notes for analysts: models, sensitivity analyses, E-values, provenance."""
    source = study.get("source", {})
    lines = [f"# Technical notes: {study.get('title', study['study_id'])}", ""]
    if study.get("synthetic"):
        lines += [
            "**SYNTHETIC demonstration data (simulated; see data/raw/etmi-reference/truth.json).**",
            "",
        ]
    lines += [
        f"Source: {source.get('citation', '')}"
        + (f" doi:{source['doi']}" if source.get("doi") else ""),
        "",
        f"Design: {study.get('design')}. Certainty is rated GRADE-style by fixed rules "
        "(pipeline/summarise/certainty.py).",
        "",
        "## Estimates (main rows)",
        "",
        "| comparison | method | estimand | measure | estimate | 95% CI | p | p (Holm) | n | model |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    main = estimates[
        estimates["effect_measure"].isin(["mean_difference", "rate_ratio", "hedges_g"])
        & estimates["term"].astype(str).str.contains(" vs ")
    ]
    for _, row in main.iterrows():
        holm = row.get("p_holm")
        lines.append(
            f"| {row['comparison_id']} | {row['method']} | {row['estimand']} | {row['effect_measure']} | "
            f"{row['estimate']:.3f} | {row['ci_low']:.3f} to {row['ci_high']:.3f} | {_p(row['p_value'])} | "
            f"{_p(holm) if pd.notna(holm) else ''} | {_count(row['n_treated'])} + {_count(row['n_control'])} | "
            f"{row['model']} |"
        )
    evalues = (
        estimates[estimates.get("evalue_estimate", pd.Series(dtype=float)).notna()]
        if "evalue_estimate" in estimates
        else pd.DataFrame()
    )
    if not evalues.empty:
        lines += [
            "",
            "## E-values (observational estimates)",
            "",
            "How strongly an unmeasured confounder would have to be associated with both treatment and outcome "
            "(risk-ratio scale) to explain the estimate (and its CI limit) away (VanderWeele & Ding 2017).",
            "",
            "| comparison | method | estimand | E-value (estimate) | E-value (CI) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for _, row in evalues[
            evalues["is_primary"] | evalues["method"].isin(["aipw", "ipw"])
        ].iterrows():
            lines.append(
                f"| {row['comparison_id']} | {row['method']} | {row['estimand']} | "
                f"{row['evalue_estimate']:.2f} | {row['evalue_ci']:.2f} |"
            )
    lines += [
        "",
        "## Baseline characteristics (Table 1)",
        "",
        table1.to_markdown(index=False),
        "",
        "## Provenance",
        "",
    ]
    for key, value in sorted(provenance.items()):
        lines.append(f"- {key}: {value}")
    lines.append("")
    return "\n".join(lines)


def render_claims_changes(
    previous: list[dict[str, Any]] | None, current: list[dict[str, Any]], study: str
) -> str:
    """Which claims changed (numbers, wording or certainty) since the last recorded run."""
    lines = [f"# Changed claims: {study}", ""]
    if previous is None:
        lines += [
            "No earlier version of the claims was found (first run, or no dvc.lock entry): "
            "every claim is new.",
            "",
        ]
        previous = []
    before = {c["claim_id"]: c for c in previous}
    after = {c["claim_id"]: c for c in current}
    changed = []
    for claim_id in sorted(after):
        if claim_id not in before:
            changed.append(f"- **new** {claim_id}: {after[claim_id]['sentence']}")
            continue
        old, new = before[claim_id], after[claim_id]
        parts = []
        if old["sentence"] != new["sentence"]:
            parts.append(f'wording was "{old["sentence"]}"')
        if old["certainty"] != new["certainty"]:
            parts.append(f"certainty {old['certainty']} -> {new['certainty']}")
        if _numbers(old) != _numbers(new):
            parts.append(f"numbers {_numbers(old)} -> {_numbers(new)}")
        if parts:
            changed.append(
                f"- **changed** {claim_id}: " + "; ".join(parts) + f". Now: {new['sentence']}"
            )
    for claim_id in sorted(set(before) - set(after)):
        changed.append(f"- **removed** {claim_id}: {before[claim_id]['sentence']}")
    if changed:
        lines += ["Fact-sheet lines that cite these claims need a look:", "", *changed, ""]
    else:
        lines += ["No claim changed its numbers, wording or certainty.", ""]
    return "\n".join(lines)


def _numbers(claim: dict[str, Any]) -> str:
    numbers = claim.get("numbers", {})
    return ", ".join(
        f"{k} {numbers[k]:.3g}"
        for k in ("estimate", "ci_low", "ci_high")
        if isinstance(numbers.get(k), int | float)
    )


def _count(value: float, min_cell: int = 5) -> str:
    """A count for a published table: below ``min_cell`` (but above 0) it is shown as "<min_cell"."""
    count = int(value)
    return f"<{min_cell}" if 0 < count < min_cell else str(count)


DOMAIN_WORDS = {
    "risk_of_bias": "Flaws in how the study was done",
    "imprecision": "How exact the result is",
    "inconsistency": "Whether results agree",
    "indirectness": "How well the study fits the question",
    "publication_bias": "Studies that may be missing",
    "rating_up": "Reasons to be more sure",
    "consistency_with_scale": "Fit with the scores",
}


def _judgement_words(row: dict[str, Any]) -> str:
    """A GRADE judgement in plain words, with the levels it moved the rating."""
    down = int(row["levels_down"])
    if row["judgement"] == "not assessed":
        return "not checked" + (f" (down {down})" if down > 0 else "")
    if down > 0:
        return f"a concern (down {down})"
    if down < 0:
        return f"more sure (up {-down})"
    return "no concern"


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _p(p: float) -> str:
    if not pd.notna(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


_CSS = """\
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; line-height: 1.55;
       color: #1a1a1a; background: #fff; }
main { max-width: 46rem; margin: 0 auto; padding: 1rem 1.1rem 3rem; font-size: 1.05rem; }
h1 { font-size: 1.6rem; line-height: 1.25; } h2 { font-size: 1.3rem; margin-top: 2rem; }
h3 { font-size: 1.1rem; }
img { max-width: 100%; height: auto; display: block; margin: 0.5rem 0; }
table { border-collapse: collapse; display: block; overflow-x: auto; font-size: 0.92rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
li { margin-bottom: 0.45rem; } strong { color: #000; }
"""
