"""The checker's reports: terminal lines, JSON for tools, an annotated HTML view of the draft."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from pipeline.check.rules import Finding

JSON_SCHEMA = "backpain-check/1"


def _excerpt(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def render_terminal(draft: str, findings: Sequence[Finding]) -> str:
    """One line per finding: ``DRAFT:LINE: severity rule: "excerpt" message | evidence | use``."""
    lines = []
    for f in findings:
        line = f'{draft}:{f.line}: {f.severity} {f.rule}: "{_excerpt(f.sentence)}" {f.message}'
        if f.evidence:
            line += f" | evidence: {f.evidence}"
        if f.suggestion:
            line += f" | suggested: {f.suggestion}"
        lines.append(line)
    errors = sum(f.severity == "error" for f in findings)
    lines.append(f"{draft}: {errors} error(s), {len(findings) - errors} warning(s)")
    return "\n".join(lines) + "\n"


def render_json(draft: str, n_claims: int, findings: Sequence[Finding]) -> str:
    """The JSON report (schema ``backpain-check/1``; keys are stable, tested)."""
    errors = sum(f.severity == "error" for f in findings)
    document = {
        "schema": JSON_SCHEMA,
        "draft": draft,
        "claims_read": n_claims,
        "summary": {"errors": errors, "warnings": len(findings) - errors},
        "findings": [f.as_dict() for f in findings],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_html(draft: str, text: str, findings: Sequence[Finding]) -> str:
    """The draft line by line, lines with findings highlighted and the findings listed under them."""
    by_line: dict[int, list[Finding]] = {}
    for f in findings:
        by_line.setdefault(f.line, []).append(f)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        found = by_line.get(number, [])
        cls = ""
        if found:
            cls = "error" if any(f.severity == "error" for f in found) else "warning"
        notes = "".join(
            f'<li class="{f.severity}"><b>{html.escape(f.rule)}</b>: {html.escape(f.message)}'
            + (f"<br><i>Evidence:</i> {html.escape(f.evidence)}" if f.evidence else "")
            + (f"<br><i>Suggested:</i> {html.escape(f.suggestion)}" if f.suggestion else "")
            + "</li>"
            for f in found
        )
        body = f"<mark>{html.escape(line)}</mark>" if found else html.escape(line)
        rows.append(
            f'<div class="line {cls}" id="L{number}"><span class="n">{number}</span>'
            f'<span class="t">{body}</span>{f"<ul>{notes}</ul>" if notes else ""}</div>'
        )
    errors = sum(f.severity == "error" for f in findings)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Check: {html.escape(draft)}</title>
<style>
body{{font:16px/1.5 system-ui,sans-serif;margin:1rem;max-width:60rem;color:#222}}
.line{{display:grid;grid-template-columns:3rem 1fr;gap:.5rem;padding:.1rem 0}}
.n{{color:#777;text-align:right}} .line ul{{grid-column:2;margin:.2rem 0 .6rem;padding-left:1.2rem}}
.error mark{{background:#ffd6d6}} .warning mark{{background:#fff3bf}}
li.error{{color:#8b0000}} li.warning{{color:#6b5300}}
</style></head><body>
<h1>Check of {html.escape(draft)}</h1>
<p>{errors} error(s), {len(findings) - errors} warning(s).</p>
{"".join(rows)}
</body></html>
"""
