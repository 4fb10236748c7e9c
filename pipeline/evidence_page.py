"""One evidence page for writers: ``reports/index.html``, every citable claim of every study.

Built by the ``evidence_page`` DVC stage (``python -m pipeline.evidence_page``) from every
``reports/*/claims.json`` and ``claims_changes.md``. Self-contained (inline CSS and script, no
network), readable on a phone, keyboard accessible: filters by condition, intervention, outcome
and certainty; each claim with its certainty, sentence, range, GRADE reasons, the data it rests
on and a button that copies the sentence with its id; claims new or changed since the last
version are highlighted.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.check.claims import Claim, read_claims_file
from pipeline.check.rules import load_check_rules

CERTAINTY_LABEL = {
    "high": "High certainty",
    "moderate": "Moderate certainty",
    "low": "Low certainty",
    "very_low": "Very low certainty",
}
_CHANGE = re.compile(r"^- \*\*(new|changed|removed)\*\* (C-[A-Za-z0-9-]+)", re.MULTILINE)


def read_changes(text: str) -> dict[str, str]:
    """Claim id -> ``new`` / ``changed`` / ``removed`` from a ``claims_changes.md``."""
    return {claim_id: kind for kind, claim_id in _CHANGE.findall(text)}


def _range(claim: Claim) -> str:
    n = claim.numbers
    if not all(
        isinstance(n.get(k), int | float) and n[k] == n[k]
        for k in ("estimate", "ci_low", "ci_high")
    ):
        return ""
    units = f" {n['units']}" if n.get("units") else ""
    return f"{n['estimate']:.3g} (95% range {n['ci_low']:.3g} to {n['ci_high']:.3g}){units}"


def _reasons(claim: Claim) -> list[str]:
    grade = claim.record.get("grade")
    if isinstance(grade, list) and grade:
        return [
            f"{g.get('domain', '')}: {g.get('judgement', '')}"
            + (f" (down {g['levels_down']})" if g.get("levels_down") else "")
            + (f" - {g['reason']}" if g.get("reason") else "")
            for g in grade
            if isinstance(g, dict)
        ]
    return [str(r) for r in claim.record.get("certainty_reasons") or []]


def _data(claim: Claim) -> str:
    n, r = claim.numbers, claim.record
    parts = [f"study {claim.study_id}"]
    if r.get("design"):
        parts.append(str(r["design"]))
    if isinstance(n.get("n_treated"), int) and isinstance(n.get("n_control"), int):
        parts.append(f"{n['n_treated']} vs {n['n_control']} people")
    if n.get("instrument"):
        parts.append(f"instrument {n['instrument']}")
    ref = r.get("estimate_ref") or {}
    if ref.get("method"):
        parts.append(f"method {ref['method']}")
    if r.get("input_data_sha256"):
        parts.append(f"data {str(r['input_data_sha256'])[:12]}")
    if claim.synthetic:
        parts.append("DEMONSTRATION DATA")
    return "; ".join(parts)


def render_evidence_page(
    claims: Sequence[Claim], changes: Mapping[str, str], version: str = ""
) -> str:
    """The evidence page as one self-contained HTML string.

    Parameters
    ----------
    claims : sequence of Claim
        Every claim, from :func:`pipeline.check.claims.claim_from_record`.
    changes : mapping of str to str
        Claim id -> ``new`` or ``changed`` (highlighted), from :func:`read_changes`.
    version : str
        Shown in the footer (e.g. the git commit of the claims).
    """
    groups: dict[tuple[str, str], list[Claim]] = {}
    for claim in claims:
        names = claim.names
        question = (
            f"{names.get('intervention') or '?'} compared with {names.get('comparator') or '?'}"
        )
        groups.setdefault((question, names.get("outcome") or "?"), []).append(claim)
    filters = {
        "condition": sorted({c.names.get("condition") or "everyone" for c in claims}),
        "intervention": sorted({c.names.get("intervention") or "?" for c in claims}, key=str.lower),
        "outcome": sorted({c.names.get("outcome") or "?" for c in claims}),
        "certainty": [g for g in CERTAINTY_LABEL if any(c.certainty == g for c in claims)],
    }
    esc = html.escape
    selects = "".join(
        f'<label>{key.capitalize()} <select id="f-{key}" data-filter="{key}">'
        f'<option value="">all</option>'
        + "".join(
            f'<option value="{esc(v)}">{esc(CERTAINTY_LABEL.get(v, v))}</option>' for v in values
        )
        + "</select></label>"
        for key, values in filters.items()
    )
    sections = []
    for (question, outcome), members in sorted(groups.items(), key=lambda kv: kv[0]):
        cards = []
        for claim in members:
            change = changes.get(claim.claim_id, "")
            copy = f"{claim.sentence} [{claim.claim_id}]"
            reasons = "".join(f"<li>{esc(r)}</li>" for r in _reasons(claim)) or "<li>none</li>"
            badge = (
                f'<span class="change">{esc(change)}</span>' if change in {"new", "changed"} else ""
            )
            cards.append(
                f'<article class="claim{" changed" if badge else ""}" '
                f'data-condition="{esc(claim.names.get("condition") or "everyone")}" '
                f'data-intervention="{esc(claim.names.get("intervention") or "?")}" '
                f'data-outcome="{esc(claim.names.get("outcome") or "?")}" '
                f'data-certainty="{esc(claim.certainty)}" id="{esc(claim.claim_id)}">'
                f'<p class="meta"><span class="cert {esc(claim.certainty)}">'
                f"{esc(CERTAINTY_LABEL[claim.certainty])}</span> {badge}"
                f"<code>{esc(claim.claim_id)}</code></p>"
                f'<p class="sentence">{esc(claim.sentence)}</p>'
                f"<dl><dt>Range</dt><dd>{esc(_range(claim)) or 'not given'}</dd>"
                f"<dt>Why this certainty</dt><dd><ul>{reasons}</ul></dd>"
                f"<dt>Data</dt><dd>{esc(_data(claim))}</dd></dl>"
                f'<button type="button" class="copy" data-copy="{esc(copy)}" '
                f'aria-label="Copy sentence with id {esc(claim.claim_id)}">Copy sentence and id'
                f"</button></article>"
            )
        sections.append(
            f'<section class="group"><h2>{esc(question)}</h2><h3>{esc(outcome)}</h3>'
            + "".join(cards)
            + "</section>"
        )
    n_changed = sum(1 for c in claims if changes.get(c.claim_id) in {"new", "changed"})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Evidence for fact sheets: every citable claim</title>
<style>
*{{box-sizing:border-box}}
body{{font:17px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1b1b1b;background:#fafafa}}
header,main,footer{{max-width:56rem;margin:0 auto;padding:0 1rem}}
h1{{font-size:1.5rem;margin:1rem 0 .3rem}} h2{{font-size:1.2rem;margin:1.5rem 0 0}}
h3{{font-size:1rem;margin:.2rem 0 .5rem;color:#444;font-weight:600}}
.filters{{display:flex;flex-wrap:wrap;gap:.6rem;margin:.8rem 0}}
.filters label{{display:flex;flex-direction:column;font-size:.9rem;flex:1 1 10rem}}
select,button{{font:inherit;min-height:2.75rem}}
.claim{{background:#fff;border:1px solid #ccc;border-radius:.4rem;padding:.7rem .9rem;margin:.6rem 0}}
.claim.changed{{border-left:.4rem solid #b35900;background:#fff8f0}}
.change{{background:#b35900;color:#fff;border-radius:.3rem;padding:0 .4rem;font-size:.85rem}}
.sentence{{font-size:1.1rem;margin:.4rem 0}}
.meta{{margin:0;font-size:.9rem;display:flex;flex-wrap:wrap;gap:.4rem;align-items:center}}
code{{font-size:.8rem;word-break:break-all;overflow-wrap:anywhere;color:#555}}
.cert{{border-radius:.3rem;padding:0 .4rem;color:#fff}}
.high{{background:#1a6b2f}} .moderate{{background:#2f5f8a}} .low{{background:#7a5b00}} .very_low{{background:#8b1a1a}}
dl{{margin:.3rem 0;font-size:.92rem}} dt{{font-weight:600}} dd{{margin:0 0 .3rem}} dd ul{{margin:0;padding-left:1.1rem}}
button.copy{{background:#1f4e79;color:#fff;border:0;border-radius:.3rem;padding:.3rem .8rem;cursor:pointer}}
button:focus-visible,select:focus-visible{{outline:3px solid #ffbf47;outline-offset:2px}}
[hidden]{{display:none!important}}
</style></head><body>
<header><h1>Evidence for fact sheets</h1>
<p>Every citable claim of every study and review. Copy a sentence with its id into a draft,
then run <code>backpain check DRAFT</code>. {n_changed} claim(s) new or changed since the last
version are marked.</p>
<form class="filters" aria-label="Filter the claims" onsubmit="return false">{selects}</form>
<p id="count" role="status" aria-live="polite"></p></header>
<main>{"".join(sections)}</main>
<footer><p>{esc(version)}</p></footer>
<script>
(function () {{
  "use strict";
  var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-filter]"));
  var claims = Array.prototype.slice.call(document.querySelectorAll("article.claim"));
  function apply() {{
    var shown = 0;
    claims.forEach(function (card) {{
      var ok = selects.every(function (s) {{
        return !s.value || card.getAttribute("data-" + s.getAttribute("data-filter")) === s.value;
      }});
      card.hidden = !ok;
      if (ok) shown += 1;
    }});
    document.querySelectorAll("section.group").forEach(function (g) {{
      g.hidden = !g.querySelector("article.claim:not([hidden])");
    }});
    document.getElementById("count").textContent = shown + " of " + claims.length + " claims shown";
  }}
  selects.forEach(function (s) {{ s.addEventListener("change", apply); }});
  function fallbackCopy(text) {{
    var area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed";
    area.style.opacity = "0"; document.body.appendChild(area); area.select();
    try {{ document.execCommand("copy"); }} catch (e) {{ /* nothing more to try */ }}
    document.body.removeChild(area);
  }}
  document.querySelectorAll("button.copy").forEach(function (button) {{
    button.addEventListener("click", function () {{
      var text = button.getAttribute("data-copy");
      window.lastCopied = text;
      var done = function () {{ button.textContent = "Copied"; }};
      if (navigator.clipboard && window.isSecureContext) {{
        navigator.clipboard.writeText(text).then(done, function () {{ fallbackCopy(text); done(); }});
      }} else {{ fallbackCopy(text); done(); }}
    }});
  }});
  apply();
}})();
</script>
</body></html>
"""


def build_evidence_page(reports_root: Path) -> str:
    """Read every ``reports_root/*/claims.json`` (and its ``claims_changes.md``); render the page."""
    size_words = load_check_rules().size_words
    claims: list[Claim] = []
    changes: dict[str, str] = {}
    commits: set[str] = set()
    for path in sorted(Path(reports_root).glob("*/claims.json")):
        try:
            for claim in read_claims_file(path, size_words):
                claims.append(claim)
                commits.add(str(claim.record.get("git_commit", "")))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: cannot read the claims ({error})") from None
        changes_file = path.with_name("claims_changes.md")
        if changes_file.exists():
            changes.update(read_changes(changes_file.read_text(encoding="utf-8")))
    version = "claims from commit " + ", ".join(sorted(c for c in commits if c)) if commits else ""
    return render_evidence_page(claims, changes, version)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pipeline.evidence_page [--reports-root reports] [--out reports/index.html]``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.evidence_page")
    parser.add_argument("--reports-root", type=Path, default=Path("reports"))
    parser.add_argument("--out", type=Path, default=None, help="default: REPORTS_ROOT/index.html")
    args = parser.parse_args(argv)
    try:
        page = build_evidence_page(args.reports_root)
    except ValueError as error:
        print(f"evidence_page: error: {error}", file=sys.stderr)
        return 2
    out = args.out or args.reports_root / "index.html"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
