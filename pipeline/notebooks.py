"""Notebooks: what they load (:func:`load_study`) and how they run headless (:func:`run_notebooks`).

The notebooks in ``notebooks/`` are thin: their first code cell is a papermill ``parameters``
cell (the study), the second calls :func:`load_study`, and every table or figure after that
comes from ``pipeline``. The ``notebooks`` DVC stage executes them with papermill for each study
and renders the executed copies to HTML under ``reports/<study>/notebooks/``; the copies in git
carry no outputs.
"""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.errors import InputFileError
from pipeline.io import write_text
from pipeline.summarise.figures import Figure, figure_png

NOTEBOOKS = ("1.0-cohort-overview", "2.0-treatment-comparisons", "3.0-evidence-summary")
_NOT_COVARIATES = {
    "study_id",
    "participant_id",
    "arm",
    "site",
    "therapist",
    "sessions",
    "n_values_quarantined",
    "source_file",
    "source_row",
}


def covariate_columns(participants: pd.DataFrame) -> list[str]:
    """The covariates of a participants table (every column that is not an id, arm or bookkeeping)."""
    return [c for c in participants.columns if c not in _NOT_COVARIATES]


@dataclass(frozen=True)
class StudyData:
    """The processed tables and reports of one study, as the notebooks show them."""

    study: str
    participants: pd.DataFrame
    outcomes: pd.DataFrame
    estimates: pd.DataFrame
    balance: pd.DataFrame
    quarantine: pd.DataFrame
    report: dict
    claims: pd.DataFrame
    fact_sheet: str

    @property
    def treatment(self) -> str:
        return self.report["arms"]["treatment"]

    @property
    def control(self) -> str:
        return self.report["arms"]["control"]

    @property
    def covariates(self) -> list[str]:
        return covariate_columns(self.participants)

    @property
    def headline(self) -> str:
        kind = "SYNTHETIC demonstration data" if self.report.get("synthetic") else "real trial data"
        return (
            f"{self.study}: {self.report.get('title', '')} ({kind}); {len(self.participants)} participants, "
            f"{self.estimates['comparison_id'].nunique()} comparisons, {len(self.claims)} claims"
        )

    @property
    def primary_estimates(self) -> pd.DataFrame:
        columns = [
            "comparison_id",
            "method",
            "estimand",
            "effect_measure",
            "estimate",
            "ci_low",
            "ci_high",
            "p_value",
            "p_holm",
            "n_treated",
            "n_control",
            "model",
        ]
        primary = self.estimates[self.estimates["is_primary"]]
        return primary[[c for c in columns if c in primary.columns]].reset_index(drop=True)

    @property
    def missing_data_sensitivity(self) -> pd.DataFrame:
        rows = self.estimates[self.estimates["method"].isin(["complete_case_ols", "mice"])]
        columns = [
            "comparison_id",
            "method",
            "estimate",
            "ci_low",
            "ci_high",
            "n_treated",
            "n_control",
            "fmi",
            "m",
        ]
        return rows[[c for c in columns if c in rows.columns]].reset_index(drop=True)

    @property
    def quarantine_summary(self) -> pd.DataFrame:
        """Counts of quarantined rows and values by file, column and reason (no record contents;
        counts below 5 shown as "<5", as in every published table)."""
        if self.quarantine.empty:
            return pd.DataFrame(columns=["source_file", "column", "reason", "count"])
        counts = (
            self.quarantine.assign(column=self.quarantine["column"].replace("", "(whole row)"))
            .groupby(["source_file", "column", "reason"], observed=True)
            .size()
            .rename("count")
            .reset_index()
        )
        return counts.assign(count=counts["count"].map(lambda n: "<5" if 0 < n < 5 else str(n)))


# CSS pixels per inch: a figure of ``width`` inches is shown ``width * 96`` pixels wide, so its
# text has the point size the theme sets (BASE_SIZE) at the page's normal zoom.
_CSS_PX_PER_INCH = 96


def show(figure: Figure, dpi: int = 150):
    """Display a figure in a notebook at the size set for it (not plotnine's default 6.4 x 4.8 in).

    The PNG is drawn at the figure's own width and height (:func:`figure_png`: fixed metadata,
    the same bytes on every machine) and shown ``width * 96`` CSS pixels wide, so labels have
    the room the figure was laid out for and the theme's point sizes at normal zoom.
    """
    from IPython.display import Image

    return Image(
        data=figure_png(figure, dpi),
        format="png",
        width=round(figure.width * _CSS_PX_PER_INCH),
        alt=figure.alt_text,
    )


def require_outputs(
    study: str, processed_root: str | Path, reports_root: str | Path
) -> tuple[Path, Path]:
    """The study's processed and report folders, after checking every file the notebooks read."""
    folder, reports = Path(processed_root) / study, Path(reports_root) / study
    names = (
        "participants.parquet",
        "outcomes.parquet",
        "estimates.parquet",
        "balance.parquet",
        "quarantine.parquet",
        "ingest_report.json",
    )
    for path in [*(folder / n for n in names), reports / "claims.json", reports / "fact_sheet.md"]:
        if not path.exists():
            raise InputFileError(f"{path}: not found; run `dvc repro` first")
    return folder, reports


def load_study(
    study: str, processed_root: str | Path = "data/processed", reports_root: str | Path = "reports"
) -> StudyData:
    """Everything the notebooks show for one study, read from the pipeline's outputs."""
    folder, reports = require_outputs(study, processed_root, reports_root)
    claims = pd.DataFrame(json.loads((reports / "claims.json").read_text())["claims"])
    return StudyData(
        study=study,
        participants=pd.read_parquet(folder / "participants.parquet"),
        outcomes=pd.read_parquet(folder / "outcomes.parquet"),
        estimates=pd.read_parquet(folder / "estimates.parquet"),
        balance=pd.read_parquet(folder / "balance.parquet"),
        quarantine=pd.read_parquet(folder / "quarantine.parquet"),
        report=json.loads((folder / "ingest_report.json").read_text()),
        claims=claims,
        fact_sheet=(reports / "fact_sheet.md").read_text(),
    )


def run_notebooks(
    study: str,
    notebooks_dir: str | Path = "notebooks",
    reports_root: str | Path = "reports",
    processed_root: str | Path = "data/processed",
    workers: int = 3,
) -> list[Path]:
    """Execute every notebook for one study (papermill) and write its HTML copy.

    The notebooks run in parallel kernels (they only read files). Returns the HTML paths.
    """
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    require_outputs(
        study, processed_root, reports_root
    )  # fail here, in one line, not inside a kernel
    notebooks_dir, out = Path(notebooks_dir), Path(reports_root) / study / "notebooks"
    # Relative to the kernel's working directory, so no absolute path of this machine ends up
    # in the injected-parameters cell of the rendered notebooks.
    parameters = {"study": study, "processed_root": relative_posix(processed_root)}

    def run_one(name: str) -> Path:
        with tempfile.TemporaryDirectory() as tmp:
            executed = Path(tmp) / f"{name}.ipynb"
            papermill.execute_notebook(
                str(notebooks_dir / f"{name}.ipynb"),
                str(executed),
                parameters=parameters,
                kernel_name="python3",
                progress_bar=False,
                cwd=str(Path.cwd()),
            )
            executed_nb = nbformat.read(str(executed), as_version=4)
            # papermill gives its injected-parameters cell a random id: number the cells so
            # the same inputs render the same bytes on every machine
            for index, cell in enumerate(executed_nb.cells):
                cell["id"] = f"cell-{index}"
            body, _ = HTMLExporter(embed_images=True).from_notebook_node(executed_nb)
        return write_text(out / f"{name}.html", strip_machine_paths(body))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run_one, NOTEBOOKS))


def relative_posix(path: str | Path, start: str | Path | None = None) -> str:
    """``path`` relative to ``start`` (default: the working directory), with forward slashes."""
    return Path(
        os.path.relpath(Path(path).resolve(), Path(start or Path.cwd()).resolve())
    ).as_posix()


def strip_machine_paths(text: str, root: str | Path | None = None) -> str:
    """Replace the absolute path of the project (default: working directory) by ``.``.

    A safety net for tracebacks and warnings printed inside the notebooks: a rendered notebook
    must carry no path of the machine that built it (the copies differ only by folder).
    """
    root = Path(root or Path.cwd()).resolve().as_posix()
    return text.replace(root + "/", "").replace(root, ".")
