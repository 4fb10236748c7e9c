"""``backpain review <review>``: validate, compare, pool, grade, and write SoF, plots and claims."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.review.compare import DOMAIN_DIRECTION, question_comparisons
from pipeline.review.config import Question, ReviewConfig, load_review_config
from pipeline.review.grade import grade_evidence
from pipeline.review.pool import egger, leave_one_out, pool, subgroups
from pipeline.review.validate import validate_review

PLAIN_CLASS = {
    "cbt": "cognitive behavioural therapy",
    "cbt_exercise": "cognitive behavioural therapy with exercise",
    "exercise": "exercise",
    "spinal_manipulation": "spinal manipulation",
    "pharmacological": "pain medicines",
    "surgery": "surgery",
    "mckenzie": "McKenzie exercises",
}
COMPARATOR_WORDS = {
    "placebo_sham": "placebo",
    "usual_care": "usual care",
    "waiting_list": "a waiting list",
}
OUTCOME_WORDS = {
    "pain": ("back pain", "0 to 10 scale"),
    "leg_pain": ("leg pain", "0 to 10 scale"),
    "function": ("back-related function", "0 to 100 function scale"),
}
VERB = {
    "high": ("reduces", "improves", "results in little to no difference in"),
    "moderate": (
        "probably reduces",
        "probably improves",
        "probably results in little to no difference in",
    ),
    "low": ("may reduce", "may improve", "may result in little to no difference in"),
}


def intervention_words(q: Question) -> str:
    if q.intervention_label:
        return q.intervention_label[0].upper() + q.intervention_label[1:]
    names = [PLAIN_CLASS.get(c, c.replace("_", " ")) for c in q.intervention]
    text = (
        names[0]
        if len(names) == 1
        else "digital self-management"
        if set(q.intervention) >= {"cbt", "exercise"}
        else " or ".join(names)
    )
    return text[0].upper() + text[1:]


def comparator_words(q: Question) -> str:
    return q.comparator_label or (
        "control"
        if len(q.comparator) > 1
        else COMPARATOR_WORDS.get(q.comparator[0], q.comparator[0].replace("_", " "))
    )


def sentence(q: Question, measure: str, est: float, lo: float, hi: float, certainty: str) -> str:
    """A plain claim: one sentence of direction and size, one short sentence of the range."""
    outcome, units = OUTCOME_WORDS.get(q.outcome, (q.outcome.replace("_", " "), "units"))
    if measure == "SMD":
        units = "standard deviations"
    who = intervention_words(q)
    comparator = comparator_words(q)
    better_low = DOMAIN_DIRECTION.get(q.outcome, "worse") == "worse"
    benefit = (est < 0) if better_low else (est > 0)
    mid = q.mid_smd if measure == "SMD" else (q.mid or 1.0)
    size = abs(est)
    if certainty == "very_low":
        lower = who if who[:2].isupper() else who[0].lower() + who[1:]
        first = f"The evidence is very uncertain about the effect of {lower} on {outcome}."
    else:
        reduce, improve, none = VERB[certainty]
        if size < mid / 2:
            verb = none
        elif benefit:
            verb = reduce if better_low else improve
            verb += " slightly" if size < mid else ""
        else:
            verb = {"high": "increases", "moderate": "probably increases", "low": "may increase"}[
                certainty
            ]
        if verb.endswith("slightly"):
            first = f"{who} {verb.removesuffix(' slightly')} {outcome} slightly compared with {comparator}."
        else:
            first = f"{who} {verb} {outcome} compared with {comparator}."
    side = "lower" if est < 0 else "higher"
    digits = 2 if measure == "SMD" else 1
    scale = f" on a {units}" if measure == "MD" else ""
    unit_word = "points" if measure == "MD" else "standard deviations"
    if np.sign(lo) == np.sign(hi):
        a, b = sorted([abs(lo), abs(hi)])
        second = f"It was about {size:.{digits}f} {unit_word} {side}{scale}, could be {a:.{digits}f} to {b:.{digits}f}."
    else:
        low_word, high_word = ("lower", "higher")
        second = (
            f"It was about {size:.{digits}f} {unit_word} {side}{scale}, "
            f"could be {abs(lo):.{digits}f} {low_word} to {hi:.{digits}f} {high_word}."
        )
    return f"{first} {second}"


def run_review(review_yaml: Path, exports: Path, processed: Path, reports: Path) -> dict:
    """Build every output of one review; return the summary written to ``pooled.json``."""
    config = load_review_config(review_yaml, exports)
    validated = validate_review(config)
    processed.mkdir(parents=True, exist_ok=True)
    reports.mkdir(parents=True, exist_ok=True)
    validated.trial_results.to_parquet(processed / "trial_results.parquet", index=False)
    validated.quarantine.astype(str).to_parquet(processed / "quarantine.parquet", index=False)
    (processed / "review_report.json").write_text(json.dumps(validated.report, indent=2) + "\n")
    results, claims, sof_rows, all_cmp = [], [], [], []
    for q in config.questions:
        cmp = question_comparisons(validated.trial_results, config, q)
        if cmp.empty:
            results.append(
                {"question": q.id, "k": 0, "note": "no trial has both sides in the window"}
            )
            continue
        all_cmp.append(cmp.assign(question=q.id))
        result = analyse_question(config, q, cmp)
        results.append(result)
        claims.append(result["claim"])
        sof_rows.append(result["sof"])
        forest_plot(cmp, result, reports / f"forest_{q.id}.png")
        if len(cmp) >= 10:
            funnel_plot(cmp, result, reports / f"funnel_{q.id}.png")
    if all_cmp:
        pd.concat(all_cmp).to_parquet(processed / "comparisons.parquet", index=False)
    summary = {"review_id": config.review_id, "report": validated.report, "questions": results}
    (processed / "pooled.json").write_text(json.dumps(summary, indent=2, default=_json) + "\n")
    (reports / "claims.json").write_text(json.dumps(claims, indent=2, default=_json) + "\n")
    sof = pd.DataFrame(sof_rows)
    sof.to_csv(reports / "sof.csv", index=False)
    (reports / "sof.html").write_text(sof_html(config, sof, results))
    return summary


def analyse_question(config: ReviewConfig, q: Question, cmp: pd.DataFrame) -> dict:
    y, v = cmp["yi"].to_numpy(), cmp["vi"].to_numpy()
    labels = cmp["citation"].tolist()
    main = pool(y, v, "REML")
    dl = pool(y, v, "DL")
    k = main.k
    eg = egger(y, v) if k >= 10 else None
    measure = str(cmp["measure"].iloc[0])
    mid = q.mid_smd if measure == "SMD" else (q.mid or 1.0)
    w = 1 / (v + main.tau2)
    indirect = cmp["design"].astype(str).str.contains("cross", case=False).to_numpy()
    if q.population_values is not None:
        indirect |= ~cmp["population"].isin(q.population_values).to_numpy()
    sd_ois = 1.0 if measure == "SMD" else float(np.sqrt(np.median(v * (cmp["n_total"] / 4) * 2)))
    domains, certainty = grade_evidence(
        weights=w,
        rob=cmp["rob_overall"].tolist(),
        indirect=indirect,
        estimate=main.estimate,
        ci_low=main.ci_low,
        ci_high=main.ci_high,
        i2=main.i2,
        pi_low=main.pi_low,
        pi_high=main.pi_high,
        k=k,
        n_total=float(cmp["n_total"].sum()),
        mid=mid,
        sd_for_ois=sd_ois,
        egger_p=None if eg is None else eg["p"],
    )
    units = {
        "pain": "points (0-10, higher = worse)",
        "leg_pain": "points (0-10, higher = worse)",
        "function": "points (0-100, higher = better)",
    }.get(q.outcome, "units")
    if measure == "SMD":
        units = "SMD (Hedges' g)"
    text = sentence(q, measure, main.estimate, main.ci_low, main.ci_high, certainty)
    numbers = {
        "estimate": main.estimate,
        "ci_low": main.ci_low,
        "ci_high": main.ci_high,
        "units": units,
        "measure": measure,
        "k": k,
        "n_total": float(cmp["n_total"].sum()),
        "tau2": main.tau2,
        "i2": main.i2,
        "pi_low": main.pi_low,
        "pi_high": main.pi_high,
        "ci_method": main.ci_method,
    }
    claim = {
        "claim_id": f"C-{config.review_id}-{q.id}",
        "question": q.id,
        "sentence": text,
        "certainty": certainty,
        "grade": domains,
        "numbers": numbers,
        "trials": [
            f"{t} ({c})" if t != c else t
            for t, c in zip(cmp["trial_id"], cmp["citation"], strict=True)
        ],
        "source": config.citation,
        "synthetic": False,
        # plain words as the sentence uses them, for the checker and the evidence page
        "names": {
            "intervention": intervention_words(q),
            "comparator": comparator_words(q),
            "outcome": OUTCOME_WORDS.get(q.outcome, (q.outcome.replace("_", " "), ""))[0],
            "condition": "",
            "timepoint": "",
        },
    }
    footnotes = [f"{d['domain']}: {d['judgement']} ({d['reason']})" for d in domains]
    absolute = (
        f"{abs(main.estimate):.1f} points {'lower' if main.estimate < 0 else 'higher'} "
        f"({main.ci_low:.1f} to {main.ci_high:.1f})"
        if measure == "MD"
        else f"SMD {main.estimate:.2f} ({main.ci_low:.2f} to {main.ci_high:.2f}); about "
        f"{abs(main.estimate) * 2.0:.1f} points on a 0-10 pain scale if SD = 2 (rule of thumb)"
    )
    sof = {
        "question": q.id,
        "outcome": q.outcome_label or q.outcome,
        "follow_up_weeks": f"{q.weeks[0]:g}-{q.weeks[1]:g}",
        "trials": k,
        "participants": round(float(cmp["n_total"].sum())),
        "effect": f"{measure} {main.estimate:.2f} (95% CI {main.ci_low:.2f} to {main.ci_high:.2f})",
        "absolute_effect": absolute,
        "certainty": certainty,
        **{d["domain"]: d["judgement"] for d in domains},
        "footnotes": " | ".join(footnotes),
        "sentence": text,
    }
    sub_class = subgroups(y, v, cmp["intervention_class"].to_numpy())
    sub_rob = subgroups(y, v, cmp["rob_overall"].fillna("unknown").to_numpy())
    return {
        "question": q.id,
        "title": q.title,
        "reml_hksj": main.as_dict(),
        "dl": dl.as_dict(),
        "egger": eg,
        "leave_one_out": leave_one_out(y, v, labels) if k >= 3 else [],
        "subgroup_intervention_class": sub_class,
        "subgroup_risk_of_bias": sub_rob,
        "claim": claim,
        "sof": sof,
    }


def forest_plot(cmp: pd.DataFrame, result: dict, path: Path) -> None:
    from plotnine import aes, geom_point, geom_segment, geom_vline, ggplot, labs, theme_bw

    fit = result["reml_hksj"]
    se = np.sqrt(cmp["vi"])
    d = pd.DataFrame(
        {
            "label": cmp["citation"],
            "est": cmp["yi"],
            "lo": cmp["yi"] - 1.96 * se,
            "hi": cmp["yi"] + 1.96 * se,
            "kind": "trial",
        }
    )
    d.loc[len(d)] = [
        "Pooled (REML, HKSJ)",
        fit["estimate"],
        fit["ci_low"],
        fit["ci_high"],
        "pooled",
    ]
    d["label"] = pd.Categorical(d["label"], categories=list(d["label"][::-1]))
    plot = (
        ggplot(d, aes(y="label", x="est"))
        + geom_vline(xintercept=0, linetype="dashed")
        + geom_segment(aes(x="lo", xend="hi", yend="label"))
        + geom_point(aes(shape="kind"), size=3)
        + labs(
            x=f"{cmp['measure'].iloc[0]} (intervention minus comparator)",
            y="",
            title=result["title"],
        )
        + theme_bw()
    )
    plot.save(path, width=8, height=1.5 + 0.35 * len(d), dpi=100, verbose=False)


def funnel_plot(cmp: pd.DataFrame, result: dict, path: Path) -> None:
    from plotnine import aes, geom_line, geom_point, ggplot, labs, scale_y_reverse, theme_bw

    fit = result["reml_hksj"]
    se = np.sqrt(cmp["vi"].to_numpy())
    grid = np.linspace(0, se.max() * 1.05, 20)
    lines = pd.concat(
        [
            pd.DataFrame({"se": grid, "x": fit["estimate"] + s * 1.96 * grid, "side": str(s)})
            for s in (-1, 1)
        ]
    )
    plot = (
        ggplot(pd.DataFrame({"yi": cmp["yi"], "se": se}), aes("yi", "se"))
        + geom_point()
        + geom_line(aes(x="x", y="se", group="side"), data=lines, linetype="dashed")
        + scale_y_reverse()
        + labs(x="effect", y="standard error", title=result["title"])
        + theme_bw()
    )
    plot.save(path, width=6, height=5, dpi=100, verbose=False)


def sof_html(config: ReviewConfig, sof: pd.DataFrame, results: list[dict]) -> str:
    head = [
        "Outcome (follow-up, weeks)",
        "Trials (participants)",
        "Relative/standardised effect (95% CI)",
        "Absolute effect",
        "Certainty (GRADE)",
        "Plain-language statement",
    ]
    rows = []
    for i, r in sof.iterrows():
        domains = "; ".join(
            f"{d}: {r[d]}"
            for d in (
                "risk of bias",
                "inconsistency",
                "indirectness",
                "imprecision",
                "publication bias",
            )
        )
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(c))}</td>"
                for c in (
                    f"{r['outcome']} ({r['follow_up_weeks']})",
                    f"{r['trials']} ({r['participants']})",
                    r["effect"],
                    r["absolute_effect"],
                    f"{r['certainty']} [{i + 1}] ({domains})",
                    r["sentence"],
                )
            )
            + "</tr>"
        )
    notes = "".join(f"<li>[{i + 1}] {html.escape(r['footnotes'])}</li>" for i, r in sof.iterrows())
    empty = "".join(
        f"<li>{html.escape(x['question'])}: {html.escape(x['note'])}</li>"
        for x in results
        if "note" in x
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(config.title)}</title></head><body>"
        f"<h1>Summary of findings: {html.escape(config.title)}</h1><p>{html.escape(config.citation)}</p>"
        "<table border='1'><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
        + "".join(rows)
        + f"</table><ol style='list-style:none'>{notes}</ol><ul>{empty}</ul>"
        "<p>Random effects (REML) with Hartung-Knapp-Sidik-Jonkman CI (the wider of HKSJ and Wald).</p></body></html>\n"
    )


def _json(x: object) -> object:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return str(x)
