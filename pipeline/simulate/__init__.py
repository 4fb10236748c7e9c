"""Stage ``simulate``: write the synthetic ETMI reference cohort as a clinic export.

The core, :func:`simulate_study`, returns the export, the truth and the study mapping in
memory; :func:`write_study` is the only place that touches disk. ``backpain simulate`` and
the DVC stage call :func:`main`, which reads the ``simulate`` section of ``params.yaml``.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from pipeline import __version__
from pipeline.io import normalise_zip, sha256_file, write_bytes, write_json, write_text
from pipeline.simulate.cohort import (
    Cohort,
    CohortSpec,
    describe_model,
    simulate_cohort,
    true_effects,
)
from pipeline.simulate.export import SYNTHETIC_NOTE, Export, ExportSpec, export_cohort

__all__ = [
    "CohortSpec",
    "ExportSpec",
    "SimulatedStudy",
    "simulate_study",
    "specs_from_params",
    "write_study",
]

PATIENTS_FILE = "patients.csv"
ROSTER_FILE = "therapists.xlsx"
ROSTER_SHEET = "roster"


@dataclass(frozen=True)
class SimulatedStudy:
    """Everything ``simulate`` writes, in memory."""

    study_id: str
    cohort: Cohort
    export: Export
    truth: dict[str, Any]


def specs_from_params(section: dict[str, Any]) -> tuple[str, CohortSpec, ExportSpec]:
    """Split the ``simulate`` section of ``params.yaml`` into its specs, rejecting unknown keys."""
    section = dict(section)
    study_id = str(section.pop("study_id", "etmi-reference"))
    effects = section.pop("true_effects", {}) or {}
    defects = section.pop("export", {}) or {}
    cohort_keys = {f.name for f in fields(CohortSpec)}
    export_keys = {f.name for f in fields(ExportSpec)}
    effect_keys = {
        "function": "effect_function",
        "function_depression_anxiety": "effect_function_depression_anxiety",
        "pain": "effect_pain",
        "fear_avoidance": "effect_fear_avoidance",
        "sessions_rate_ratio": "sessions_rate_ratio",
    }
    unknown = sorted(set(section) - cohort_keys)
    unknown += [f"true_effects.{k}" for k in sorted(set(effects) - set(effect_keys))]
    unknown += [f"export.{k}" for k in sorted(set(defects) - export_keys)]
    if unknown:
        raise ValueError(f"unknown keys in params.yaml section simulate: {', '.join(unknown)}")
    cohort_args = {**section, **{effect_keys[k]: v for k, v in effects.items()}}
    return study_id, CohortSpec(**cohort_args), ExportSpec(**defects)


def simulate_study(
    cohort_spec: CohortSpec, export_spec: ExportSpec, study_id: str = "etmi-reference"
) -> SimulatedStudy:
    """Simulate the reference cohort and format it as a clinic export, with its truth.

    Parameters
    ----------
    cohort_spec
        Sizes, calibration targets, true effects and the seed.
    export_spec
        Rates of the planted export defects.
    study_id
        Folder name under ``data/raw/``.

    Returns
    -------
    SimulatedStudy
        The clean cohort, the export (patient CSV rows as strings, roster), and ``truth``
        (assumptions, realised true effects, calibration summaries, planted defects).
    """
    rng = np.random.default_rng(cohort_spec.seed)
    cohort = simulate_cohort(cohort_spec, rng=rng)
    export = export_cohort(cohort, export_spec, rng)
    truth = {
        "synthetic": True,
        "note": SYNTHETIC_NOTE,
        "study_id": study_id,
        "seed": cohort_spec.seed,
        "generator": f"backpain-pipeline {__version__}, pipeline.simulate",
        "assumptions": {**describe_model(cohort), "export_spec": asdict(export_spec)},
        "true_effects": true_effects(cohort),
        "cohort": summarise_cohort(cohort),
        "defects": export.defects,
        "estimand_notes": (
            "Effects are ETMI minus usual care on canonical scales: function 0-100 (higher "
            "better), pain 0-10 and fear-avoidance 0-100 (higher worse). 'structural' holds "
            "the effects put into the model; 'realised' the average of individual differences "
            "between the two potential outcomes after rounding and clipping, in all patients "
            "(ate), the treated (att) and the complete cases."
        ),
    }
    return SimulatedStudy(study_id=study_id, cohort=cohort, export=export, truth=truth)


def summarise_cohort(cohort: Cohort) -> dict[str, Any]:
    """Calibration summaries of the clean cohort (what the export should show before defects)."""
    p = cohort.patients
    t = cohort.therapists
    etmi = p["etmi"]
    complete = p["complete"]
    patients_per_therapist = p.groupby("therapist_index").size()
    delivered = p.loc[etmi, "therapist_index"].nunique()
    return {
        "patients": len(p),
        "etmi": int(etmi.sum()),
        "usual_care": int((~etmi).sum()),
        "etmi_share": float(etmi.mean()),
        "complete_cases": int(complete.sum()),
        "complete_cases_etmi": int((complete & etmi).sum()),
        "complete_cases_usual_care": int((complete & ~etmi).sum()),
        "clinics": int(t["clinic_index"].nunique()),
        "therapists": len(t),
        "therapists_trained": int(t["trained"].sum()),
        "therapists_delivering": int(t["delivering"].sum()),
        "therapists_who_treated_with_etmi": int(delivered),
        "patients_per_therapist_median": float(patients_per_therapist.median()),
        "age_mean": float(p["age"].mean()),
        "age_sd": float(p["age"].std()),
        "female_share": float(p["female"].mean()),
        "depression_share": float(p["depression"].mean()),
        "anxiety_share": float(p["anxiety"].mean()),
        "depression_anxiety_share": float(p["depression_anxiety"].mean()),
        "sessions_mean_etmi": float(p.loc[etmi, "sessions"].mean()),
        "sessions_mean_usual_care": float(p.loc[~etmi, "sessions"].mean()),
        "baseline_means": {
            "function": float(p["function_baseline"].mean()),
            "pain": float(p["pain_baseline"].mean()),
            "fabq_pa": float(p["fabq_pa_baseline"].mean()),
        },
    }


def patients_csv_bytes(patients: pa.Table) -> bytes:
    """The patient export as CSV bytes (null = blank cell, strings quoted)."""
    sink = io.BytesIO()
    pa_csv.write_csv(patients, sink, write_options=pa_csv.WriteOptions(quoting_style="needed"))
    return sink.getvalue()


def roster_xlsx_bytes(roster: pd.DataFrame) -> bytes:
    """The therapist roster as a deterministic .xlsx file."""
    sink = io.BytesIO()
    with pd.ExcelWriter(sink, engine="openpyxl") as writer:
        roster.to_excel(writer, sheet_name=ROSTER_SHEET, index=False)
    return normalise_zip(sink.getvalue())


def write_study(study: SimulatedStudy, out_dir: str | Path) -> list[Path]:
    """Write the export, ``study.yaml``, ``truth.json`` and the folder README; return the paths."""
    out_dir = Path(out_dir)
    written = [
        write_bytes(out_dir / PATIENTS_FILE, patients_csv_bytes(study.export.patients)),
        write_bytes(out_dir / ROSTER_FILE, roster_xlsx_bytes(study.export.therapists)),
        write_text(out_dir / "study.yaml", render_study_yaml(study)),
        write_text(out_dir / "README.md", render_readme(study)),
    ]
    truth = {**study.truth, "files": {p.name: sha256_file(p) for p in written[:2]}}
    written.append(write_json(out_dir / "truth.json", truth))
    return written


def render_study_yaml(study: SimulatedStudy) -> str:
    """The ingestion mapping of the simulated export (see the README for the format)."""
    missing_code = study.export.defects["missing_code"]
    return f"""\
# Ingestion mapping for the ETMI reference cohort. SYNTHETIC demonstration data.
# Written by `backpain simulate`; edit params.yaml (section simulate), not this file.
study_id: {study.study_id}
title: ETMI reference cohort (synthetic demonstration data)
design: cohort
synthetic: true
source:
  citation: >-
    Simulated with the structure of Feldman, Pincus, Reges, Gorelik, Buchbinder, Ben Ami.
    ETMI-guided care vs usual physiotherapy care for chronic low back pain, JAMA Network Open 2026.
  doi: 10.1001/jamanetworkopen.2025.52143
files:
  - name: patients
    path: {PATIENTS_FILE}
    format: csv
    encoding: utf-8
    missing_codes: ["{missing_code}"]
  - name: therapists
    path: {ROSTER_FILE}
    format: xlsx
    sheet: {ROSTER_SHEET}
    join_on: therapist_id
layout: wide
participant_id: patient_id
arms:
  column: treatment_group
  treatment: etmi
  control: usual_care
  match: normalised
  labels:
    etmi: [ETMI, E.T.M.I., ETMI-guided]
    usual_care: [Usual care, UC, usual]
timepoints:
  baseline: {{days: 0, date_column: baseline_date}}
  discharge: {{date_column: discharge_date}}
outcomes:
  function:
    instrument: foto_lumbar_fs
    columns: {{baseline: foto_fs_baseline, discharge: foto_fs_discharge}}
  pain:
    instrument: nprs
    columns: {{baseline: nprs_baseline, discharge: nprs_discharge}}
  fear_avoidance:
    instrument: fabq_pa
    items:
      baseline: [fabq2_baseline, fabq3_baseline, fabq4_baseline, fabq5_baseline]
      discharge: [fabq2_discharge, fabq3_discharge, fabq4_discharge, fabq5_discharge]
site: clinic
therapist: therapist_id
sessions: n_sessions
covariates:
  age: {{type: age_from_birth_date, birth_date: date_of_birth, at: baseline_date}}
  sex: {{type: category, column: sex, levels: {{female: [F, female], male: [M, male]}}}}
  depression: {{type: binary, column: depression, levels: {{"yes": [Y], "no": [N]}}}}
  anxiety: {{type: binary, column: anxiety, levels: {{"yes": [Y], "no": [N]}}}}
  depression_anxiety: {{type: any_of, of: [depression, anxiety]}}
  symptom_duration_months: {{type: numeric, column: symptom_duration_months, unit: months, range: [0, 600]}}
  bmi: {{type: numeric, column: bmi, unit: kg/m2, range: [10, 80]}}
  therapist_etmi_trained: {{type: binary, column: etmi_trained, levels: {{"yes": ["Yes"], "no": ["No"]}}}}
  therapist_experience_years: {{type: numeric, column: years_experience, unit: years, range: [0, 60]}}
identifiers: [full_name, national_id, date_of_birth, phone, email, therapist_name]
ignore_columns: [data_note]
condition: low back pain
population: {{chronicity: chronic, ages: adults}}
blinding: {{participants: false, outcome_assessors: false}}
risk_of_bias:
  tool: ROBINS-I
  overall: some_concerns
  justification: >-
    a clinic cohort: care was chosen, not assigned by chance (adjusted for measured
    confounders); participants knew their care and rated their own outcomes
"""


def render_readme(study: SimulatedStudy) -> str:
    """The folder README: what the files are and that they are synthetic."""
    c = study.truth["cohort"]
    d = study.export.defects
    return f"""\
# ETMI reference cohort: SYNTHETIC demonstration data

**Every file in this folder is simulated. No row describes a real person.** Names, phone
numbers, e-mail addresses (example.org), national ids and dates of birth are generated to look
like a real export so that the pipeline's privacy checks are exercised.

Written by `backpain simulate` (seed {study.truth["seed"]}) from the `simulate` section of
`params.yaml`. The structure follows the ETMI cohort study (Feldman et al., JAMA Network Open
2026, doi:10.1001/jamanetworkopen.2025.52143); the effects are chosen, not estimated, and are
recorded in `truth.json`.

| file | what |
| --- | --- |
| `{PATIENTS_FILE}` | one row per exported record ({d["rows_exported"]} rows), wide: identifiers, therapist, arm label, visit dates, sessions, covariates, FOTO-like function, NPRS pain, FABQ-PA items at baseline and discharge |
| `{ROSTER_FILE}` | therapist roster (sheet `{ROSTER_SHEET}`): id, name, clinic, ETMI training, experience |
| `study.yaml` | the ingestion mapping of these files |
| `truth.json` | the true effects, the model's assumptions, calibration summaries and every planted defect |

Cohort: {c["patients"]} patients ({c["etmi"]} ETMI, {c["usual_care"]} usual care), {c["clinics"]}
clinics, {c["therapists"]} physiotherapists ({c["therapists_trained"]} trained, {c["therapists_delivering"]}
delivering ETMI), {c["complete_cases"]} with a discharge visit.

Planted defects (counted in `truth.json` under `defects`): {d["exact_duplicate_rows"]} exact duplicate
rows, {d["conflicting_duplicate_ids"]} patients with conflicting records, {d["unknown_arm_rows"]} unknown
arm labels, {d["missing_id_rows"]} rows without a patient id, missing-value code {d["missing_code"]},
out-of-range, non-numeric and unparseable values, FABQ items left blank, and arm and sex labels
with inconsistent spelling.
"""


def main(
    params: dict[str, Any],
    out_root: str | Path = "data/raw",
    n_patients: int | None = None,
    seed: int | None = None,
    out_dir: str | Path | None = None,
) -> SimulatedStudy:
    """Entry point: read the ``simulate`` params (with optional overrides), simulate, write."""
    study_id, cohort_spec, export_spec = specs_from_params(params)
    overrides = {k: v for k, v in {"n_patients": n_patients, "seed": seed}.items() if v is not None}
    if overrides:
        cohort_spec = CohortSpec(**{**asdict(cohort_spec), **overrides})
    study = simulate_study(cohort_spec, export_spec, study_id)
    write_study(study, Path(out_dir) if out_dir else Path(out_root) / study_id)
    return study
