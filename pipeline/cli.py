"""The ``backpain`` command: one sub-command per pipeline stage, thin over the package.

Errors in the user's input print one line (``backpain: error: ...``) and exit with code 2;
``--help`` on each sub-command documents every option.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline import __version__
from pipeline.errors import ConfigError, UserError

Handler = Callable[[argparse.Namespace], int]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


def _run_simulate(args: argparse.Namespace) -> int:
    from pipeline.params import load_section
    from pipeline.simulate import main as simulate_main

    started = time.perf_counter()
    section = load_section("simulate", args.params)
    try:
        study = simulate_main(
            section,
            out_root=args.out_root,
            n_patients=args.n_patients,
            seed=args.seed,
            out_dir=args.out,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{args.params}: section simulate: {exc}") from None
    cohort = study.truth["cohort"]
    out = args.out or Path(args.out_root) / study.study_id
    print(
        f"simulated {cohort['patients']:,} patients ({cohort['etmi']:,} ETMI, "
        f"{cohort['complete_cases']:,} complete cases) -> {out} "
        f"in {time.perf_counter() - started:.1f} s (SYNTHETIC)"
    )
    return 0


def _run_ingest(args: argparse.Namespace) -> int:
    from pipeline.ingest import render_summary, run_ingest

    started = time.perf_counter()
    run = run_ingest(args.study_yaml, args.out, args.key_file, show_progress=not args.quiet)
    if not args.quiet:
        print(render_summary(run))
        print(f"  in {time.perf_counter() - started:.1f} s")
    return 0


def _run_analyse(args: argparse.Namespace) -> int:
    from pipeline.analysis.analyse import run_analyse
    from pipeline.params import load_section

    started = time.perf_counter()
    analysis = run_analyse(args.study, load_section("analyse", args.params), args.processed_root)
    estimates = analysis.estimates
    primary = estimates[estimates["is_primary"]]
    print(
        f"analysed {args.study}: {estimates['comparison_id'].nunique()} comparisons, {len(estimates)} estimates "
        f"in {time.perf_counter() - started:.1f} s"
    )
    for _, row in primary.iterrows():
        print(
            f"  {row['comparison_id']}: {row['method']} {row['effect_measure']} {row['estimate']:.2f} "
            f"({row['ci_low']:.2f} to {row['ci_high']:.2f})"
        )
    not_converged = int((~estimates["converged"].astype(bool)).sum())
    if not_converged:
        print(
            f"  {not_converged} estimate(s) flagged as not converged or not fitted; see the warning column"
        )
    return 0


def _run_meta(args: argparse.Namespace) -> int:
    from pipeline.analysis.analyse import run_meta
    from pipeline.params import load_section

    pooled = run_meta(load_section("analyse", args.params), args.processed_root)
    for _, row in pooled[pooled["method"] == "meta_reml"].iterrows():
        print(
            f"meta-analysis {row['meta_id']}: {row['effect_measure']} {row['estimate']:.2f} "
            f"({row['ci_low']:.2f} to {row['ci_high']:.2f}), I2 {row['i2']:.0f}%, k = {int(row['k'])}"
        )
    return 0


def _run_review(args: argparse.Namespace) -> int:
    from pipeline.params import load_section
    from pipeline.review.stage import run_review

    reviews = load_section("review", args.params).get("reviews", {})
    if args.review not in reviews:
        raise ConfigError(
            f"{args.params}: review.reviews has no '{args.review}' (known: {', '.join(sorted(reviews))})"
        )
    summary = run_review(
        Path("data/raw") / args.review / "review.yaml",
        Path(reviews[args.review]["exports"]),
        args.processed_root / args.review,
        args.reports_root / args.review,
    )
    report = summary["report"]
    print(
        f"review {args.review}: {report['rows_in']} rows in = {report['rows_kept']} kept + "
        f"{report['rows_quarantined']} quarantined"
    )
    for q in summary["questions"]:
        if "claim" in q:
            n = q["claim"]["numbers"]
            print(
                f"  {q['question']}: {n['measure']} {n['estimate']:.2f} ({n['ci_low']:.2f} to "
                f"{n['ci_high']:.2f}), k = {n['k']}, {q['claim']['certainty']}"
            )
        else:
            print(f"  {q['question']}: {q['note']}")
    return 0


def _run_summarise(args: argparse.Namespace) -> int:
    from pipeline.params import load_section
    from pipeline.summarise.stage import run_summarise, run_summarise_meta

    section = load_section("summarise", args.params)
    if args.study == "meta":
        claims = run_summarise_meta(section, args.processed_root, args.reports_root)
    else:
        claims = run_summarise(args.study, section, args.processed_root, args.reports_root).claims
    levels = claims["certainty"].value_counts().to_dict()
    print(
        f"summarised {args.study}: {len(claims)} claims ({levels}) -> {args.reports_root / args.study}"
    )
    return 0


def _run_notebooks(args: argparse.Namespace) -> int:
    from pipeline.notebooks import run_notebooks

    started = time.perf_counter()
    written = run_notebooks(args.study, args.notebooks, args.reports_root, args.processed_root)
    print(
        f"executed {len(written)} notebooks for {args.study} in {time.perf_counter() - started:.1f} s "
        f"-> {written[0].parent}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``backpain`` and its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="backpain",
        description="Back-pain evidence pipeline: simulate, ingest, analyse, summarise.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    simulate = commands.add_parser(
        "simulate",
        help="write the synthetic ETMI reference cohort as a clinic export",
        description=(
            "Simulate the ETMI reference cohort (SYNTHETIC data with known true effects) and "
            "write it as a clinic would export it: patients.csv, therapists.xlsx, study.yaml, "
            "truth.json and a README, into OUT_ROOT/<study_id>."
        ),
    )
    simulate.add_argument(
        "--params",
        default="params.yaml",
        type=Path,
        help="parameter file; its 'simulate' section is used (default: %(default)s)",
    )
    simulate.add_argument(
        "--n-patients",
        type=_positive_int,
        default=None,
        help="override the number of patients (e.g. 1000000 for benchmarks)",
    )
    simulate.add_argument(
        "--seed", type=_non_negative_int, default=None, help="override the random seed"
    )
    simulate.add_argument(
        "--out-root",
        default="data/raw",
        type=Path,
        help="folder that receives <study_id>/ (default: %(default)s)",
    )
    simulate.add_argument(
        "--out",
        default=None,
        type=Path,
        help="write into exactly this folder instead of OUT_ROOT/<study_id>",
    )
    simulate.set_defaults(handler=_run_simulate)

    ingest = commands.add_parser(
        "ingest",
        help="turn a study's exports into canonical validated tables",
        description=(
            "Read the files named in STUDY_YAML, harmonise them onto canonical scales, "
            "quarantine bad values with a reason, and write participants, outcomes, quarantine "
            "and ingest_report into OUT (default: data/processed/<study_id>)."
        ),
    )
    ingest.add_argument("study_yaml", type=Path, help="the study's mapping file (study.yaml)")
    ingest.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: data/processed/<study_id>)",
    )
    ingest.add_argument(
        "--key-file",
        type=Path,
        default=Path(".backpain-key"),
        help="pseudonymisation key file, created on first use and never committed; the "
        "environment variable BACKPAIN_PSEUDONYM_KEY takes precedence (default: %(default)s)",
    )
    ingest.add_argument("--quiet", action="store_true", help="print no summary and no progress bar")
    ingest.set_defaults(handler=_run_ingest)

    for name, help_text, description in (
        (
            "analyse",
            "fit the comparisons declared in params.yaml for one study",
            "Fit every comparison of STUDY declared in the 'analyse' section of PARAMS and "
            "write tidy estimates to data/processed/<study>/estimates.parquet and .json.",
        ),
        (
            "summarise",
            "write plain-language claims, tables, figures and reports for one study",
            "Turn the estimates of STUDY into citable plain-language claims, a fact sheet, "
            "tables and figures under reports/<study>/.",
        ),
    ):
        sub = commands.add_parser(name, help=help_text, description=description)
        sub.add_argument("study", help="study id: a folder under data/processed/")
        _add_params(sub)
        _add_processed_root(sub)
        if name == "summarise":
            sub.add_argument(
                "--reports-root",
                default=Path("reports"),
                type=Path,
                help="folder that receives reports/<study>/ (default: %(default)s); "
                "study 'meta' writes the meta-analysis summary",
            )
        sub.set_defaults(handler=_run_analyse if name == "analyse" else _run_summarise)
    meta = commands.add_parser(
        "meta",
        help="random-effects meta-analyses of the same comparison across studies",
        description="Pool the comparisons declared under analyse.meta in PARAMS across studies "
        "(DerSimonian-Laird, REML, Paule-Mandel) into data/processed/meta/.",
    )
    _add_params(meta)
    _add_processed_root(meta)
    meta.set_defaults(handler=_run_meta)

    review = commands.add_parser(
        "review",
        help="evidence review from published trial results: SoF table, forest plots, claims",
        description="Map data/raw/REVIEW/review.yaml's extraction sheet (folder from review.reviews "
        "in PARAMS) onto trial_results, quarantine bad rows, pool each declared question and write "
        "data/processed/REVIEW/ and reports/REVIEW/ (sof.csv, sof.html, forest plots, claims.json).",
    )
    review.add_argument("review", help="review id: a folder under data/raw/ with a review.yaml")
    _add_params(review)
    _add_processed_root(review)
    review.add_argument(
        "--reports-root",
        default=Path("reports"),
        type=Path,
        help="folder that receives reports/<review>/ (default: %(default)s)",
    )
    review.set_defaults(handler=_run_review)

    notebooks = commands.add_parser(
        "notebooks",
        help="execute the notebooks for one study and render them to HTML",
        description="Run every notebook in NOTEBOOKS headless (papermill) with STUDY as its parameter "
        "and write the executed copies as HTML to reports/<study>/notebooks/.",
    )
    notebooks.add_argument("study", help="study id: a folder under data/processed/")
    notebooks.add_argument(
        "--notebooks",
        default=Path("notebooks"),
        type=Path,
        help="folder of the notebooks (default: %(default)s)",
    )
    notebooks.add_argument(
        "--reports-root",
        default=Path("reports"),
        type=Path,
        help="folder that receives reports/<study>/notebooks/ (default: %(default)s)",
    )
    _add_processed_root(notebooks)
    notebooks.set_defaults(handler=_run_notebooks)

    from pipeline.scale.cli import add_scale_parser

    add_scale_parser(commands)
    _add_check(commands)
    return parser


def _run_check(args: argparse.Namespace) -> int:
    from pipeline.check.cli import run_check

    return run_check(args)


def _add_check(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check",
        help="check a fact-sheet draft against the claims of every study and review",
        description="Compare each sentence of DRAFT (.md, .txt or .docx) with the claim it cites "
        "in reports/**/claims.json, and flag evidence-like sentences that cite none. Exit 1 on "
        "any error-level finding.",
    )
    check.add_argument("draft", type=Path, help="the draft: Markdown, plain text or .docx")
    check.add_argument(
        "--reports-root", default=Path("reports"), type=Path, help="default: %(default)s"
    )
    check.add_argument("--json", action="store_true", help="print the JSON report instead")
    check.add_argument("--html", type=Path, help="also write an annotated HTML view here")
    check.set_defaults(handler=_run_check)


def _add_params(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--params", default="params.yaml", type=Path, help="parameter file (default: %(default)s)"
    )


def _add_processed_root(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--processed-root",
        default=Path("data/processed"),
        type=Path,
        help="folder holding data/processed/<study>/ (default: %(default)s)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``backpain``; return the exit code (0 ok, 2 user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except UserError as exc:
        print(f"backpain {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"backpain {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
