"""Turn a clean simulated cohort into what a clinic would export, defects included and counted.

Real exports hold identifiers, visit dates, inconsistent labels, missing-value codes, typos,
duplicated and conflicting records, and come in several formats. The reference cohort is
written the same way so that ingestion is exercised for real; every defect planted here is
counted in ``truth.json`` so the ingestion tests can check that exactly these are found.

Defects are planted in disjoint sets of rows (one defect per row), so the expected outcome of
ingestion is unambiguous: row-level defects (unknown arm, missing id, conflicting duplicate)
quarantine the row, value-level defects (out of range, not numeric, unparseable date, too many
missing items) quarantine one value and keep the rest of the row, missing-value codes become
missing values, exact duplicates collapse into one row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.simulate.cohort import FABQ_PA_ITEMS, Cohort

SYNTHETIC_NOTE = "SYNTHETIC demonstration data (simulated, not real patients)"
FABQ_PA_ITEM_NUMBERS = (2, 3, 4, 5)  # the FABQ items that form the physical-activity subscale
ARM_LABELS = {
    "etmi": ("ETMI", "etmi", "E.T.M.I.", "ETMI ", "Etmi-guided"),
    "usual_care": ("Usual care", "usual care", "UC", "Usual Care ", "usual"),
}
UNKNOWN_ARM_LABELS = ("pending", "to be decided", "xx")
SEX_LABELS = {"female": ("F", "female", "Female"), "male": ("M", "male", "Male")}
NOT_NUMERIC_VALUES = ("7/10", "sixty", "2 yrs", "n.a.", "5,5")
BAD_DATES = ("2022-02-30", "31/13/2022", "2023-13-01")
IDENTIFIER_COLUMNS = ("full_name", "national_id", "date_of_birth", "phone", "email")
FIRST_NAMES = (
    "Noa",
    "Tamar",
    "Yael",
    "Maya",
    "Shira",
    "Michal",
    "Rivka",
    "Sarah",
    "Leah",
    "Hila",
    "Dana",
    "Ruth",
    "Miriam",
    "Adi",
    "Lior",
    "Avi",
    "David",
    "Moshe",
    "Yosef",
    "Daniel",
    "Eitan",
    "Omer",
    "Itai",
    "Amit",
    "Yonatan",
    "Ariel",
    "Uri",
    "Nadav",
    "Ahmad",
    "Mohammed",
    "Rana",
    "Lina",
    "Samir",
    "Olga",
    "Igor",
    "Anna",
    "Natalia",
    "Ben",
    "Gil",
    "Roni",
)
LAST_NAMES = (
    "Cohen",
    "Levi",
    "Mizrahi",
    "Peretz",
    "Biton",
    "Dahan",
    "Avraham",
    "Friedman",
    "Azulay",
    "Malka",
    "Katz",
    "Yosef",
    "Ohana",
    "Amar",
    "Gabay",
    "Hadad",
    "Shapiro",
    "Ben-David",
    "Khalil",
    "Nasser",
    "Haddad",
    "Ivanov",
    "Petrov",
    "Goldberg",
    "Rosen",
    "Weiss",
    "Segal",
    "Levin",
    "Navon",
    "Tal",
)


@dataclass(frozen=True)
class ExportSpec:
    """Rates of planted defects (per exported patient row) and the export's conventions."""

    missing_code: int = -99
    missing_code_rate: float = 0.01
    out_of_range_rate: float = 0.001
    not_numeric_rate: float = 0.0005
    unparseable_date_rate: float = 0.001
    exact_duplicate_rate: float = 0.003
    conflicting_duplicate_rate: float = 0.0015
    unknown_arm_rate: float = 0.001
    missing_id_rate: float = 0.0007
    fabq_item_blank_rate: float = 0.01
    fabq_items_mostly_blank_rate: float = 0.0005
    label_variant_rate: float = 0.15
    first_visit: str = "2022-01-01"
    last_visit: str = "2023-07-31"

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if name.endswith("_rate") and name != "label_variant_rate" and not 0 <= value < 0.05:
                raise ValueError(f"{name} must lie in [0, 0.05), got {value}")
        if not 0 <= self.label_variant_rate <= 1:
            raise ValueError(
                f"label_variant_rate must lie in [0, 1], got {self.label_variant_rate}"
            )


# Which exported columns receive which value-level defect.
_MISSING_CODE_COLUMNS = (
    "bmi",
    "symptom_duration_months",
    "foto_fs_baseline",
    "nprs_baseline",
    "nprs_discharge",
)
_OUT_OF_RANGE = {  # column: (low, high) of the impossible values planted
    "nprs_baseline": (11, 15),
    "nprs_discharge": (11, 20),
    "foto_fs_baseline": (101, 140),
    "foto_fs_discharge": (101, 140),
    "fabq3_baseline": (7, 9),
    "n_sessions": (150, 300),
}
_NOT_NUMERIC_COLUMNS = ("nprs_baseline", "foto_fs_discharge", "symptom_duration_months")


@dataclass(frozen=True)
class Export:
    """The exported study: the patient file (all strings, null = blank cell), the roster, the defect counts."""

    patients: pa.Table
    therapists: pd.DataFrame
    defects: dict[str, object]


def export_cohort(cohort: Cohort, spec: ExportSpec, rng: np.random.Generator) -> Export:
    """Format the cohort as a clinic export and plant the counted defects.

    Parameters
    ----------
    cohort
        The clean cohort from :func:`pipeline.simulate.cohort.simulate_cohort`.
    spec
        Defect rates and visit window.
    rng
        The generator that drew the cohort (continued, so one seed fixes everything).

    Returns
    -------
    Export
        ``patients``: an Arrow table with one row per exported record, every column a string
        (null = blank cell); ``therapists``: the roster; ``defects``: what was planted, with
        the ingestion result they imply (``expected_ingest``).

    Notes
    -----
    Columns are Arrow arrays and defects are planted with masked replacement, so a million
    patients take seconds, not minutes.
    """
    p = cohort.patients
    n = len(p)
    columns = _format_patients(cohort, spec, rng)
    clean_arm = np.where(p["etmi"].to_numpy(), "etmi", "usual_care")
    complete = p["complete"].to_numpy()

    def plantable(column: str) -> np.ndarray:
        """Cells that hold a value (discharge cells only where there was a discharge visit)."""
        has_value = pc.is_valid(columns[column]).to_numpy(zero_copy_only=False)
        if column.endswith("discharge") or column == "discharge_date":
            has_value &= complete
        return has_value

    def plant(column: str, rows: np.ndarray, values: np.ndarray | str | None) -> None:
        columns[column] = _replace_at(columns[column], rows, values)

    # Disjoint row sets, one defect per row.
    budget = _RowBudget(rng.permutation(n))
    unknown_rows = budget.take(_count(spec.unknown_arm_rate, n))
    missing_id_rows = budget.take(_count(spec.missing_id_rate, n))
    conflict_rows = budget.take(
        _count(spec.conflicting_duplicate_rate, n), eligible=plantable("foto_fs_baseline")
    )
    duplicate_rows = budget.take(_count(spec.exact_duplicate_rate, n))
    plant("treatment_group", unknown_rows, _cycle(UNKNOWN_ARM_LABELS, len(unknown_rows)))
    plant("patient_id", missing_id_rows, None)

    value_defects: dict[str, dict[str, int]] = {
        "missing_code": {},
        "out_of_range": {},
        "not_numeric": {},
        "unparseable_date": {},
    }
    for column in _MISSING_CODE_COLUMNS:
        rows = budget.take(_count(spec.missing_code_rate, n), eligible=plantable(column))
        plant(column, rows, str(spec.missing_code))
        value_defects["missing_code"][column] = len(rows)
    for column, (low, high) in _OUT_OF_RANGE.items():
        rows = budget.take(_count(spec.out_of_range_rate, n), eligible=plantable(column))
        plant(column, rows, rng.integers(low, high + 1, len(rows)).astype(str))
        value_defects["out_of_range"][column] = len(rows)
    for column in _NOT_NUMERIC_COLUMNS:
        rows = budget.take(_count(spec.not_numeric_rate, n), eligible=plantable(column))
        plant(column, rows, _cycle(NOT_NUMERIC_VALUES, len(rows)))
        value_defects["not_numeric"][column] = len(rows)
    rows = budget.take(_count(spec.unparseable_date_rate, n), eligible=plantable("discharge_date"))
    plant("discharge_date", rows, _cycle(BAD_DATES, len(rows)))
    value_defects["unparseable_date"]["discharge_date"] = len(rows)

    # FABQ items left blank: one item (score prorated) or three of four (score not computable).
    baseline_items = [f"fabq{k}_baseline" for k in FABQ_PA_ITEM_NUMBERS]
    one_blank = budget.take(_count(spec.fabq_item_blank_rate, n))
    blank_item = rng.integers(0, FABQ_PA_ITEMS, len(one_blank))
    for j, column in enumerate(baseline_items):
        plant(column, one_blank[blank_item == j], None)
    mostly_blank = budget.take(_count(spec.fabq_items_mostly_blank_rate, n))
    for column in baseline_items[1:]:
        plant(column, mostly_blank, None)

    # Duplicates: exact copies, and copies of the same patient with a different baseline score.
    table = pa.table(columns)
    old = np.asarray(
        pc.cast(table.column("foto_fs_baseline").take(conflict_rows), pa.int64()), dtype=np.int64
    )
    shift = rng.integers(3, 11, len(conflict_rows)) * rng.choice([-1, 1], len(conflict_rows))
    new = np.where((old + shift < 0) | (old + shift > 100), old - shift, old + shift)
    conflict_copies = table.take(conflict_rows)
    position = conflict_copies.schema.get_field_index("foto_fs_baseline")
    conflict_copies = conflict_copies.set_column(
        position, "foto_fs_baseline", pa.array(new.astype(str))
    )
    # Copies land at random places in the file; keeping the rest in order keeps the take cache-friendly.
    extra = np.concatenate([duplicate_rows, n + np.arange(len(conflict_rows))])
    order = np.insert(
        np.arange(n), np.sort(rng.integers(0, n + 1, len(extra))), rng.permutation(extra)
    )
    exported = pa.concat_tables([table, conflict_copies]).take(order)

    kept_mask = np.ones(n, bool)
    kept_mask[np.concatenate([unknown_rows, missing_id_rows, conflict_rows])] = False
    arm_labels = table.column("treatment_group").to_numpy(zero_copy_only=False)
    defects: dict[str, object] = {
        "rows_exported": exported.num_rows,
        "patients_simulated": n,
        "exact_duplicate_rows": len(duplicate_rows),
        "conflicting_duplicate_ids": len(conflict_rows),
        "conflicting_duplicate_rows": 2 * len(conflict_rows),
        "unknown_arm_rows": len(unknown_rows),
        "missing_id_rows": len(missing_id_rows),
        "missing_code": spec.missing_code,
        "missing_code_values": value_defects["missing_code"],
        "out_of_range_values": value_defects["out_of_range"],
        "not_numeric_values": value_defects["not_numeric"],
        "unparseable_date_values": value_defects["unparseable_date"],
        "fabq_pa_baseline_one_item_blank": len(one_blank),
        "fabq_pa_baseline_three_items_blank": len(mostly_blank),
        "arm_labels": _label_counts(arm_labels[kept_mask], clean_arm[kept_mask]),
        "unknown_arm_labels": sorted(UNKNOWN_ARM_LABELS),
        "identifier_columns": list(IDENTIFIER_COLUMNS),
        "expected_ingest": {
            "participants": int(kept_mask.sum()),
            "participants_etmi": int((kept_mask & (clean_arm == "etmi")).sum()),
            "participants_usual_care": int((kept_mask & (clean_arm == "usual_care")).sum()),
            "rows_collapsed": len(duplicate_rows),
            "rows_quarantined": len(unknown_rows) + len(missing_id_rows) + 2 * len(conflict_rows),
            "complete_cases_before_value_defects": int((kept_mask & complete).sum()),
        },
    }
    return Export(patients=exported, therapists=_format_roster(cohort, rng), defects=defects)


def _format_patients(
    cohort: Cohort, spec: ExportSpec, rng: np.random.Generator
) -> dict[str, pa.Array]:
    """Every export column as an Arrow string array, with identifiers and dates added."""
    p = cohort.patients
    n = len(p)
    if n > 8_000_000:
        raise ValueError(f"at most 8,000,000 patients fit the 7-digit id format, got {n}")
    complete = p["complete"].to_numpy()
    first = pa.array(FIRST_NAMES).take(rng.integers(0, len(FIRST_NAMES), n))
    last = pa.array(LAST_NAMES).take(rng.integers(0, len(LAST_NAMES), n))
    number = 1_000_000 + rng.choice(9_000_000, n, replace=False)

    start = np.datetime64(spec.first_visit)
    window = int((np.datetime64(spec.last_visit) - start).astype(int))
    baseline = start + rng.integers(0, window + 1, n).astype("timedelta64[D]")
    stay = 7 * np.maximum(p["sessions"].to_numpy(), 1).astype(np.int64) + rng.integers(0, 22, n)
    discharge = baseline + stay.astype("timedelta64[D]")
    birth = baseline - np.round(p["age"].to_numpy() * 365.25).astype("timedelta64[D]")

    def join(*parts: pa.Array | str) -> pa.Array:
        return pc.binary_join_element_wise(*parts, "")

    sex = _labels_with_variants(
        np.where(p["female"].to_numpy(), "female", "male"), SEX_LABELS, spec.label_variant_rate, rng
    )
    arm = _labels_with_variants(
        np.where(p["etmi"].to_numpy(), "etmi", "usual_care"),
        ARM_LABELS,
        spec.label_variant_rate,
        rng,
    )
    phone_prefix = pc.cast(pa.array(rng.integers(0, 10, n)), pa.string())
    phone_number = _zero_padded(rng.integers(0, 10**7, n), 7)
    columns: dict[str, pa.Array] = {
        "data_note": pa.array(np.full(n, SYNTHETIC_NOTE)),
        "patient_id": join("PT", _zero_padded(number, 7)),
        "full_name": join(first, " ", last),
        "national_id": _fake_national_ids(rng, n),
        "date_of_birth": _date_text(birth),
        "phone": join("05", phone_prefix, "-", phone_number),
        "email": join(
            pc.utf8_lower(join(first, ".", last)),
            pc.cast(pa.array(number % 997), pa.string()),
            "@example.org",
        ),
        "sex": sex,
        "therapist_id": join("T", _zero_padded(p["therapist_index"].to_numpy() + 1, 3)),
        "treatment_group": arm,
        "baseline_date": _date_text(baseline),
        "discharge_date": _date_text(discharge, complete),
        "n_sessions": _format_numbers(p["sessions"].to_numpy()),
        "depression": pa.array(np.where(p["depression"].to_numpy(), "Y", "N")),
        "anxiety": pa.array(np.where(p["anxiety"].to_numpy(), "Y", "N")),
        "symptom_duration_months": _format_numbers(p["symptom_months"].to_numpy()),
        "bmi": _format_numbers(p["bmi"].to_numpy()),
        "foto_fs_baseline": _format_numbers(p["function_baseline"].to_numpy()),
        "nprs_baseline": _format_numbers(p["pain_baseline"].to_numpy()),
    }
    for j, item in enumerate(FABQ_PA_ITEM_NUMBERS):
        columns[f"fabq{item}_baseline"] = _format_numbers(
            p[f"fabq_pa_item{j + 1}_baseline"].to_numpy()
        )
    columns["foto_fs_discharge"] = _format_numbers(p["function_discharge"].to_numpy(), complete)
    columns["nprs_discharge"] = _format_numbers(p["pain_discharge"].to_numpy(), complete)
    for j, item in enumerate(FABQ_PA_ITEM_NUMBERS):
        columns[f"fabq{item}_discharge"] = _format_numbers(
            p[f"fabq_pa_item{j + 1}_discharge"].to_numpy(), complete
        )
    return columns


def _format_numbers(values: np.ndarray, keep: np.ndarray | None = None) -> pa.Array:
    """Numbers as export text: whole numbers without decimals, null where NaN or ``keep`` is False."""
    values = np.asarray(values, dtype=float)
    mask = ~np.isfinite(values) if keep is None else ~np.isfinite(values) | ~keep
    finite = values[~mask]
    if np.all(np.mod(finite, 1) == 0):
        array = pa.array(np.where(mask, 0, values).astype(np.int64), mask=mask)
    else:
        array = pa.array(np.round(values, 6), mask=mask)
    return pc.cast(array, pa.string())


def _date_text(days: np.ndarray, keep: np.ndarray | None = None) -> pa.Array:
    """ISO dates as text (null where ``keep`` is False)."""
    dates = pa.array(days.astype("datetime64[D]"), mask=None if keep is None else ~keep)
    return pc.cast(dates, pa.string())


def _zero_padded(numbers: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers)), pa.string()), width, padding="0")


def _replace_at(array: pa.Array, rows: np.ndarray, values: np.ndarray | str | None) -> pa.Array:
    """A copy of ``array`` with ``values`` at positions ``rows`` (None = blank)."""
    if len(rows) == 0:
        return array
    mask = np.zeros(len(array), bool)
    mask[rows] = True
    if values is None:
        return pc.if_else(pa.array(mask), pa.nulls(len(array), pa.string()), array)
    replacement = np.full(len(rows), values, dtype=object) if isinstance(values, str) else values
    return pc.replace_with_mask(array, pa.array(mask), pa.array(replacement, type=pa.string()))


def _format_roster(cohort: Cohort, rng: np.random.Generator) -> pd.DataFrame:
    """The therapist roster as the clinic keeps it (one row per physiotherapist)."""
    t = cohort.therapists
    k = len(t)
    first = np.asarray(FIRST_NAMES)[rng.integers(0, len(FIRST_NAMES), k)]
    last = np.asarray(LAST_NAMES)[rng.integers(0, len(LAST_NAMES), k)]
    return pd.DataFrame(
        {
            "therapist_id": [f"T{i + 1:03d}" for i in t["therapist_index"]],
            "therapist_name": np.char.add(np.char.add(first, " "), last),
            "clinic": [f"Clinic {i + 1:02d}" for i in t["clinic_index"]],
            "etmi_trained": np.where(t["trained"].to_numpy(), "Yes", "No"),
            "years_experience": t["years_experience"].to_numpy(),
            "data_note": SYNTHETIC_NOTE,
        }
    )


class _RowBudget:
    """Hands out disjoint sets of row positions from a shuffled order."""

    def __init__(self, order: np.ndarray) -> None:
        self._free = np.ones(len(order), bool)
        self._order = order

    def take(self, count: int, eligible: np.ndarray | None = None) -> np.ndarray:
        ok = self._free[self._order]
        if eligible is not None:
            ok &= np.asarray(eligible)[self._order]
        chosen = self._order[ok][:count]
        if len(chosen) < count:
            raise ValueError(f"cohort too small to plant {count} defects of one kind")
        self._free[chosen] = False
        return np.sort(chosen)


def _count(rate: float, n: int) -> int:
    return max(1, round(rate * n)) if rate > 0 else 0


def _cycle(values: tuple[str, ...], count: int) -> np.ndarray:
    return np.asarray(values, dtype=object)[np.arange(count) % len(values)]


def _labels_with_variants(
    canonical: np.ndarray, labels: dict[str, tuple[str, ...]], rate: float, rng: np.random.Generator
) -> pa.Array:
    """The first label of each category, replaced by a random spelling variant at ``rate``."""
    codes = np.empty(len(canonical), dtype=np.int64)
    vocabulary: list[str] = []
    for category, spellings in labels.items():
        rows = np.flatnonzero(canonical == category)
        variant = rng.random(len(rows)) < rate
        choice = np.where(variant, rng.integers(1, len(spellings), len(rows)), 0)
        codes[rows] = len(vocabulary) + choice
        vocabulary.extend(spellings)
    return pa.array(vocabulary).take(codes)


def _label_counts(labels: np.ndarray, categories: np.ndarray) -> dict[str, dict[str, int]]:
    table = pd.crosstab(categories, labels)
    return {
        str(category): {str(label): int(c) for label, c in row.items() if c > 0}
        for category, row in table.iterrows()
    }


def _fake_national_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """Nine-digit numbers with a valid Israeli-ID-style check digit (fake, but they look real)."""
    digits = rng.integers(0, 10, (n, 8))
    products = digits * np.array([1, 2, 1, 2, 1, 2, 1, 2])
    total = (products // 10 + products % 10).sum(axis=1)
    check = (10 - total % 10) % 10
    number = digits @ (10 ** np.arange(8, 0, -1)) + check
    return _zero_padded(number, 9)
