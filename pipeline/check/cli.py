"""``backpain check DRAFT``: the thin shell around :func:`pipeline.check.rules.check_draft`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.check.claims import load_claims
from pipeline.check.draft import read_draft, split_draft
from pipeline.check.render import render_html, render_json, render_terminal
from pipeline.check.rules import check_draft, load_check_rules
from pipeline.errors import UserError


def run_check(args: argparse.Namespace) -> int:
    """Read the draft and the claims, check, print; 1 on any error finding, else 0."""
    path: Path = args.draft
    rules = load_check_rules()
    try:
        text = read_draft(path)
        source = path.read_text(encoding="utf-8") if path.suffix.lower() == ".txt" else text
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{path}: cannot read the draft ({error})") from None
    except Exception as error:  # python-docx raises its own types for a broken .docx
        raise UserError(
            f"{path}: cannot read the draft ({type(error).__name__}: {error})"
        ) from None
    try:
        claims = load_claims(args.reports_root, rules.size_words)
    except ValueError as error:
        raise UserError(str(error)) from None
    if not claims:
        raise UserError(f"no claims under {args.reports_root}/**/claims.json: run dvc repro first")
    findings = check_draft(split_draft(text, source), claims, rules)
    if args.json:
        sys.stdout.write(render_json(str(path), len(claims), findings))
    else:
        sys.stdout.write(render_terminal(str(path), findings))
    if args.html:
        args.html.write_text(render_html(str(path), source, findings), encoding="utf-8")
    return 1 if any(f.severity == "error" for f in findings) else 0
