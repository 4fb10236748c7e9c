"""The ETMI reference cohort: a seeded simulation with the published study's structure and known effects.

The ETMI cohort study (Feldman et al., JAMA Netw Open 2026, doi:10.1001/jamanetworkopen.2025.52143)
has no public patient-level data, so the project ships this simulation as its default study.
It reproduces the study's structure -- 13 clinics, 128 physiotherapists of whom 109 were trained
and 70 delivered ETMI, 4193 adults with chronic low back pain, about 17% ETMI, about 1624
complete cases -- and adds what a methods check needs:

* **confounding by indication**: who gets ETMI depends on the therapist and on patient
  characteristics (age, depression/anxiety, symptom duration, baseline function and fear) that
  also drive the outcomes, so a naive comparison is biased and an adjusted one is not;
* **missing discharge data** that depend on observed baseline characteristics and the arm only
  (missing at random given the adjustment set);
* **both potential outcomes** for every patient (same noise, different arm), so the true
  average effects on the exported, rounded and clipped scales are known exactly.

All draws are vectorised numpy from one ``numpy.random.Generator``; the same seed gives the
same cohort. The structural coefficients below are assumptions, written to ``truth.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cache

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

FABQ_PA_ITEMS = 4  # FABQ physical-activity subscale: items 2, 3, 4, 5, each scored 0-6
FABQ_PA_ITEM_MAX = 6
FABQ_PA_MAX = FABQ_PA_ITEMS * FABQ_PA_ITEM_MAX  # 24
FEAR_CANONICAL_PER_RAW = 100 / FABQ_PA_MAX  # canonical fear-avoidance 0-100 = raw * 100 / 24


@dataclass(frozen=True)
class CohortSpec:
    """Targets and true effects of the reference cohort (``params.yaml`` section ``simulate``)."""

    seed: int = 20260140
    n_patients: int = 4193
    n_clinics: int = 13
    n_therapists: int = 128
    n_therapists_trained: int = 109
    n_therapists_delivering: int = 70
    etmi_share: float = 711 / 4193
    complete_share: float = 1624 / 4193
    age_mean: float = 56.3
    age_sd: float = 16.7
    age_min: float = 18.0
    age_max: float = 95.0
    female_share: float = 0.585
    depression_share: float = 0.20
    sessions_mean_usual_care: float = 5.1
    # True effects of ETMI vs usual care (canonical scales; sessions as a rate ratio).
    effect_function: float = 4.0
    effect_function_depression_anxiety: float = 4.0
    effect_pain: float = 0.0
    effect_fear_avoidance: float = -6.0
    sessions_rate_ratio: float = 3.5 / 5.1
    sessions_dispersion: float = 0.25  # negative binomial alpha (variance = mu + alpha mu^2)

    def __post_init__(self) -> None:
        if self.n_patients < 50:
            raise ValueError(f"n_patients must be at least 50, got {self.n_patients}")
        if not 0 < self.n_therapists_delivering <= self.n_therapists_trained <= self.n_therapists:
            raise ValueError(
                "need 0 < n_therapists_delivering <= n_therapists_trained <= n_therapists, got "
                f"{self.n_therapists_delivering}, {self.n_therapists_trained}, {self.n_therapists}"
            )
        if not 0 < self.n_clinics <= self.n_therapists:
            raise ValueError(f"need 0 < n_clinics <= n_therapists, got {self.n_clinics}")
        for name in ("etmi_share", "complete_share", "female_share", "depression_share"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
        if self.sessions_rate_ratio <= 0 or self.sessions_mean_usual_care <= 0:
            raise ValueError("sessions_rate_ratio and sessions_mean_usual_care must be positive")


@dataclass(frozen=True)
class StructuralModel:
    """Coefficients of the data-generating model (assumptions, recorded in ``truth.json``)."""

    therapist_propensity_sd: float = 1.0  # logit scale, among delivering therapists
    therapist_function_sd: float = 3.0
    clinic_function_sd: float = (
        1.5  # clinics differ too; a therapist's effect includes the clinic's
    )
    therapist_pain_sd: float = 0.4
    therapist_fear_sd: float = 3.0  # canonical 0-100 scale
    therapist_sessions_sd: float = 0.15  # log scale
    anxiety_given_depression: float = 0.45
    anxiety_given_no_depression: float = 0.10
    symptom_months_median_above_3: float = 9.0
    symptom_months_log_sd: float = 0.8
    propensity: dict[str, float] = field(
        default_factory=lambda: {
            "age_per_year": -0.04,
            "depression_anxiety": -1.0,
            "log_symptom_duration_per_log_year": -0.8,
            "fabq_pa_baseline_per_point": 0.04,
            "function_baseline_per_point": -0.01,
        }
    )
    function_change: dict[str, float] = field(
        default_factory=lambda: {
            "intercept": 14.0,
            "function_baseline_minus_50": -0.40,
            "age_minus_56_3": -0.20,
            "depression_anxiety": -6.0,
            "log_symptom_duration_per_log_year": -3.5,
            "residual_sd": 10.0,
        }
    )
    complete_case: dict[str, float] = field(
        default_factory=lambda: {
            "age_per_year": 0.015,
            "depression_anxiety": -0.35,
            "function_baseline_per_point": 0.01,
            "etmi": -0.15,
        }
    )


@dataclass(frozen=True)
class Cohort:
    """One simulated cohort: clean per-patient values, potential outcomes and the therapist roster.

    ``patients`` holds one row per patient with covariates, the arm, the observed outcomes
    (NaN where the discharge visit is missing) and both potential outcomes (``*_if_etmi``,
    ``*_if_usual``). ``therapists`` holds one row per physiotherapist.
    """

    patients: pd.DataFrame
    therapists: pd.DataFrame
    spec: CohortSpec
    model: StructuralModel


def simulate_cohort(
    spec: CohortSpec, model: StructuralModel | None = None, rng: np.random.Generator | None = None
) -> Cohort:
    """Draw the reference cohort (clean values, before any export formatting).

    Parameters
    ----------
    spec
        Sizes, targets and true effects.
    model
        Structural coefficients; the defaults are the documented assumptions.
    rng
        Random generator; by default ``numpy.random.default_rng(spec.seed)``.

    Returns
    -------
    Cohort
        ``patients`` columns: ``patient_index``, ``therapist_index``, ``clinic_index``, ``etmi``
        (bool), ``age`` (years, decimal), ``female``, ``depression``, ``anxiety``,
        ``depression_anxiety``, ``symptom_months``, ``bmi``, ``function_baseline`` (FOTO-like
        0-100), ``pain_baseline`` (NPRS 0-10), ``fabq_pa_item{1..4}_baseline`` (0-6),
        ``fabq_pa_baseline`` (0-24), ``complete`` (discharge observed), the same outcomes at
        ``_discharge`` (observed arm, NaN if not complete), potential outcomes
        ``{function,pain,fear_avoidance,sessions}_if_{etmi,usual}`` (canonical scales) and
        ``sessions``.

    Notes
    -----
    Intercepts of the treatment and completeness models are solved numerically so that the
    *expected* ETMI share and complete-case share equal their targets for the drawn covariates.
    """
    model = model or StructuralModel()
    rng = rng if rng is not None else np.random.default_rng(spec.seed)
    n = spec.n_patients
    therapists = _draw_therapists(spec, model, rng)
    caseload = therapists["caseload_weight"].to_numpy()
    therapist = rng.choice(len(therapists), size=n, p=caseload / caseload.sum())

    age = _draw_age(spec, n, rng)
    female = rng.random(n) < spec.female_share
    depression_logit = (
        special.logit(spec.depression_share)
        + 0.35 * (female - spec.female_share)
        - 0.01 * (age - spec.age_mean)
    )
    depression = rng.random(n) < special.expit(depression_logit)
    anxiety_p = np.where(
        depression, model.anxiety_given_depression, model.anxiety_given_no_depression
    )
    anxiety = rng.random(n) < anxiety_p
    dep_anx = (depression | anxiety).astype(float)
    symptom_months = np.minimum(
        np.floor(
            3
            + rng.lognormal(
                np.log(model.symptom_months_median_above_3), model.symptom_months_log_sd, n
            )
        ),
        480,
    )
    log_duration = np.log(symptom_months / 12)
    bmi = np.round(np.clip(rng.normal(28.0, 5.0, n), 16, 55), 1)

    # Baseline outcomes.
    function_baseline = np.clip(
        np.round(
            52
            - 0.10 * (age - spec.age_mean)
            - 5.0 * dep_anx
            - 2.0 * log_duration
            - 1.5 * female
            + rng.normal(0, 12, n)
        ),
        0,
        100,
    )
    pain_baseline = np.clip(
        np.round(6.0 + 1.0 * dep_anx - 0.05 * (function_baseline - 50) + rng.normal(0, 1.7, n)),
        0,
        10,
    )
    fear_person = 3.4 + 0.5 * dep_anx - 0.03 * (function_baseline - 50) + rng.normal(0, 1.2, n)
    fabq_items_baseline = _draw_fabq_items(fear_person, rng)
    fabq_baseline = fabq_items_baseline.sum(axis=1)

    # Treatment: only patients of delivering therapists can receive ETMI (confounding by indication).
    t = therapists.iloc[therapist]
    delivering = t["delivering"].to_numpy()
    coef = model.propensity
    propensity_lp = (
        t["propensity_effect"].to_numpy()
        + coef["age_per_year"] * (age - spec.age_mean)
        + coef["depression_anxiety"] * dep_anx
        + coef["log_symptom_duration_per_log_year"] * log_duration
        + coef["fabq_pa_baseline_per_point"] * (fabq_baseline - 13.5)
        + coef["function_baseline_per_point"] * (function_baseline - 50)
    )
    intercept = _solve_intercept(propensity_lp, delivering, spec.etmi_share)
    propensity = special.expit(intercept + propensity_lp) * delivering
    etmi = rng.random(n) < propensity

    # Potential outcomes: the same noise under both arms, the arm adds the true effect.
    fc = model.function_change
    function_change_usual = (
        fc["intercept"]
        + fc["function_baseline_minus_50"] * (function_baseline - 50)
        + fc["age_minus_56_3"] * (age - spec.age_mean)
        + fc["depression_anxiety"] * dep_anx
        + fc["log_symptom_duration_per_log_year"] * log_duration
        + t["function_effect"].to_numpy()
        + rng.normal(0, fc["residual_sd"], n)
    )
    function_effect = np.where(
        dep_anx == 1, spec.effect_function_depression_anxiety, spec.effect_function
    )
    function_if_usual = np.clip(np.round(function_baseline + function_change_usual), 0, 100)
    function_if_etmi = np.clip(
        np.round(function_baseline + function_change_usual + function_effect), 0, 100
    )

    pain_lp_usual = (
        pain_baseline
        - 1.8
        - 0.45 * (pain_baseline - 6)
        + 0.6 * dep_anx
        + 0.01 * (age - spec.age_mean)
        + t["pain_effect"].to_numpy()
        + rng.normal(0, 1.6, n)
    )
    pain_if_usual = np.clip(np.round(pain_lp_usual), 0, 10)
    pain_if_etmi = np.clip(np.round(pain_lp_usual + spec.effect_pain), 0, 10)

    item_per_canonical = 1 / (FEAR_CANONICAL_PER_RAW * FABQ_PA_ITEMS)
    fear_discharge_person = (
        fear_person
        - 0.6
        - 0.3 * (fear_person - 3.4)
        + 0.01 * (age - spec.age_mean)
        + t["fear_effect"].to_numpy() * item_per_canonical
        + rng.normal(0, 0.8, n)
    )
    item_noise = rng.normal(0, 0.9, (n, FABQ_PA_ITEMS))
    fabq_items_if_usual = _round_items(fear_discharge_person[:, None] + item_noise)
    fabq_items_if_etmi = _round_items(
        fear_discharge_person[:, None]
        + spec.effect_fear_avoidance * item_per_canonical
        + item_noise
    )

    sessions_lp = (
        0.006 * (age - spec.age_mean)
        + 0.12 * dep_anx
        + 0.08 * log_duration
        - 0.004 * (function_baseline - 50)
        + t["sessions_effect"].to_numpy()
    )
    sessions_intercept = np.log(spec.sessions_mean_usual_care) - np.log(
        np.mean(np.exp(sessions_lp))
    )
    mu_usual = np.exp(sessions_intercept + sessions_lp)
    frailty = rng.gamma(1 / spec.sessions_dispersion, spec.sessions_dispersion, n)
    sessions_if_usual, sessions_if_etmi = _coupled_counts(
        mu_usual * frailty, spec.sessions_rate_ratio, rng
    )

    # Discharge visit observed (missing at random given baseline covariates and arm).
    cc = model.complete_case
    complete_lp = (
        cc["age_per_year"] * (age - spec.age_mean)
        + cc["depression_anxiety"] * dep_anx
        + cc["function_baseline_per_point"] * (function_baseline - 50)
        + cc["etmi"] * etmi
    )
    complete_intercept = _solve_intercept(complete_lp, np.ones(n, bool), spec.complete_share)
    complete = rng.random(n) < special.expit(complete_intercept + complete_lp)

    observed = {
        "function_discharge": np.where(etmi, function_if_etmi, function_if_usual),
        "pain_discharge": np.where(etmi, pain_if_etmi, pain_if_usual),
    }
    fabq_items_discharge = np.where(etmi[:, None], fabq_items_if_etmi, fabq_items_if_usual)
    patients = pd.DataFrame(
        {
            "patient_index": np.arange(n),
            "therapist_index": therapist,
            "clinic_index": t["clinic_index"].to_numpy(),
            "etmi": etmi,
            "propensity": propensity,
            "age": age,
            "female": female,
            "depression": depression,
            "anxiety": anxiety,
            "depression_anxiety": dep_anx.astype(bool),
            "symptom_months": symptom_months,
            "bmi": bmi,
            "function_baseline": function_baseline,
            "pain_baseline": pain_baseline,
            **{
                f"fabq_pa_item{j + 1}_baseline": fabq_items_baseline[:, j]
                for j in range(FABQ_PA_ITEMS)
            },
            "fabq_pa_baseline": fabq_baseline,
            "complete": complete,
            "function_discharge": np.where(complete, observed["function_discharge"], np.nan),
            "pain_discharge": np.where(complete, observed["pain_discharge"], np.nan),
            **{
                f"fabq_pa_item{j + 1}_discharge": np.where(
                    complete, fabq_items_discharge[:, j], np.nan
                )
                for j in range(FABQ_PA_ITEMS)
            },
            "sessions": np.where(etmi, sessions_if_etmi, sessions_if_usual),
            "function_if_etmi": function_if_etmi,
            "function_if_usual": function_if_usual,
            "pain_if_etmi": pain_if_etmi,
            "pain_if_usual": pain_if_usual,
            "fear_avoidance_if_etmi": fabq_items_if_etmi.sum(axis=1) * FEAR_CANONICAL_PER_RAW,
            "fear_avoidance_if_usual": fabq_items_if_usual.sum(axis=1) * FEAR_CANONICAL_PER_RAW,
            "sessions_if_etmi": sessions_if_etmi,
            "sessions_if_usual": sessions_if_usual,
        }
    )
    patients["fabq_pa_discharge"] = patients[
        [f"fabq_pa_item{j + 1}_discharge" for j in range(FABQ_PA_ITEMS)]
    ].sum(axis=1, min_count=FABQ_PA_ITEMS)
    return Cohort(patients=patients, therapists=therapists, spec=spec, model=model)


def true_effects(cohort: Cohort) -> dict[str, dict[str, float]]:
    """The true effects realised in this cohort, on the exported (rounded, clipped) scales.

    For each outcome: the average effect in all patients (``ate``), in the treated (``att``),
    in the complete cases (``ate_complete_cases``), and for function in the
    depression/anxiety strata. Sessions: the ratio of mean counts (``ratio_of_means_*``) and the
    conditional rate ratio of the negative binomial model (``rate_ratio``).
    """
    p = cohort.patients
    treated = p["etmi"].to_numpy()
    complete = p["complete"].to_numpy()
    dep_anx = p["depression_anxiety"].to_numpy()
    effects: dict[str, dict[str, float]] = {}
    for outcome in ("function", "pain", "fear_avoidance"):
        diff = (p[f"{outcome}_if_etmi"] - p[f"{outcome}_if_usual"]).to_numpy()
        effects[outcome] = {
            "ate": float(diff.mean()),
            "att": float(diff[treated].mean()),
            "ate_complete_cases": float(diff[complete].mean()),
            "att_complete_cases": float(diff[complete & treated].mean()),
            "ate_depression_anxiety": float(diff[dep_anx].mean()),
            "ate_no_depression_anxiety": float(diff[~dep_anx].mean()),
        }
    s1, s0 = p["sessions_if_etmi"].to_numpy(), p["sessions_if_usual"].to_numpy()
    effects["sessions"] = {
        "rate_ratio": cohort.spec.sessions_rate_ratio,
        "ratio_of_means_ate": float(s1.mean() / s0.mean()),
        "ratio_of_means_att": float(s1[treated].mean() / s0[treated].mean()),
        "difference_ate": float((s1 - s0).mean()),
    }
    structural = {
        "function": cohort.spec.effect_function,
        "function_depression_anxiety": cohort.spec.effect_function_depression_anxiety,
        "pain": cohort.spec.effect_pain,
        "fear_avoidance": cohort.spec.effect_fear_avoidance,
        "sessions_rate_ratio": cohort.spec.sessions_rate_ratio,
    }
    return {"structural": structural, "realised": effects}


def describe_model(cohort: Cohort) -> dict[str, object]:
    """The assumptions of the data-generating model, for ``truth.json``."""
    return {"spec": asdict(cohort.spec), "structural_model": asdict(cohort.model)}


def _draw_therapists(
    spec: CohortSpec, model: StructuralModel, rng: np.random.Generator
) -> pd.DataFrame:
    """One row per physiotherapist: clinic, training, delivery of ETMI, caseload and random effects."""
    k = spec.n_therapists
    clinic = rng.permutation(np.arange(k) % spec.n_clinics)
    order = rng.permutation(k)
    trained = np.zeros(k, bool)
    trained[order[: spec.n_therapists_trained]] = True
    delivering = np.zeros(k, bool)
    delivering[order[: spec.n_therapists_delivering]] = True
    clinic_function = rng.normal(0, model.clinic_function_sd, spec.n_clinics)
    return pd.DataFrame(
        {
            "therapist_index": np.arange(k),
            "clinic_index": clinic,
            "trained": trained,
            "delivering": delivering,
            "caseload_weight": rng.gamma(3.0, 1.0, k),
            "years_experience": rng.integers(1, 36, k),
            "propensity_effect": rng.normal(0, model.therapist_propensity_sd, k),
            "function_effect": clinic_function[clinic]
            + rng.normal(0, model.therapist_function_sd, k),
            "pain_effect": rng.normal(0, model.therapist_pain_sd, k),
            "fear_effect": rng.normal(0, model.therapist_fear_sd, k),
            "sessions_effect": rng.normal(0, model.therapist_sessions_sd, k),
        }
    )


@cache
def _truncated_normal_parameters(
    mean: float, sd: float, low: float, high: float
) -> tuple[float, float]:
    """Location and scale of a normal that, truncated to [low, high], has the given mean and SD."""

    def moments_gap(params: np.ndarray) -> list[float]:
        loc, scale = params[0], abs(params[1])
        a, b = (low - loc) / scale, (high - loc) / scale
        m, v = stats.truncnorm.stats(a, b, loc=loc, scale=scale, moments="mv")
        return [float(m) - mean, float(np.sqrt(v)) - sd]

    loc, scale = optimize.fsolve(moments_gap, x0=[mean, sd])
    return float(loc), float(abs(scale))


def _draw_age(spec: CohortSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    loc, scale = _truncated_normal_parameters(
        spec.age_mean, spec.age_sd, spec.age_min, spec.age_max
    )
    a, b = (spec.age_min - loc) / scale, (spec.age_max - loc) / scale
    return stats.truncnorm.rvs(a, b, loc=loc, scale=scale, size=n, random_state=rng)


def _round_items(latent: np.ndarray) -> np.ndarray:
    return np.clip(np.round(latent), 0, FABQ_PA_ITEM_MAX)


def _draw_fabq_items(person_level: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0, 0.9, (len(person_level), FABQ_PA_ITEMS))
    return _round_items(person_level[:, None] + noise)


def _coupled_counts(
    mean_control: np.ndarray, rate_ratio: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts under control and treatment that share their randomness.

    Thinning: if ``N ~ Poisson(m)`` then ``Binomial(N, r) ~ Poisson(m r)``, so the smaller
    potential outcome is a thinned copy of the larger one (exact marginals, one draw each).
    """
    if rate_ratio <= 1:
        control = rng.poisson(mean_control)
        return control.astype(float), rng.binomial(control, rate_ratio).astype(float)
    treated = rng.poisson(mean_control * rate_ratio)
    return rng.binomial(treated, 1 / rate_ratio).astype(float), treated.astype(float)


def _solve_intercept(linear_predictor: np.ndarray, eligible: np.ndarray, target: float) -> float:
    """Intercept ``a`` with mean(expit(a + lp) * eligible) == target (over all rows)."""

    def gap(a: float) -> float:
        return float(np.mean(special.expit(a + linear_predictor) * eligible)) - target

    if gap(-30) > 0 or gap(30) < 0:
        raise ValueError(f"cannot reach a share of {target:.3f}: too few eligible patients")
    return float(optimize.brentq(gap, -30, 30, xtol=1e-10))
