"""The plain-language linter: certainty wording, jargon, recommendations, absolute claims,
sentence length, reading grade, sentence splitting and the command line.

Every expected issue is written out in full from the rules in
``pipeline/registry/plain_language.yaml``; reading grades are worked by hand from the
Flesch-Kincaid formula (0.39 * words / sentences + 11.8 * syllables / words - 15.59).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.summarise.lint import (
    GRADES,
    LintIssue,
    check_absolute_claim,
    check_certainty,
    check_jargon,
    check_reading_grade,
    check_recommendation,
    check_sentence_length,
    lint_claim,
    lint_text,
    load_rules,
    main,
    parse_rules,
    reading_grade,
    split_sentences,
)

HIGH = 'a plain effect verb with no hedge, e.g. "improves" or "makes little or no difference to"'
MODERATE = (
    '"probably" right before the effect verb, e.g. "probably improves" or '
    '"probably makes little or no difference to"'
)
LOW = (
    '"may" right before the effect verb, e.g. "may improve" or '
    '"may make little or no difference to"'
)
VERY_LOW = 'the opening "We are uncertain whether ..." and no other hedge'
RECOMMENDS = "say what the evidence shows and leave the choice to the reader"
ABSOLUTE = (
    'give the size of the effect and how certain it is, e.g. "may make little or no difference to"'
)


def certainty_issue(sentence: str, message: str) -> LintIssue:
    return LintIssue("certainty_wording", sentence, message)


def jargon_issue(sentence: str, found: str, alternative: str) -> LintIssue:
    return LintIssue(
        "jargon",
        sentence,
        f'"{found}" is jargon: add its plain meaning right after it, '
        f'e.g. "{found} ({alternative})", or use plain words',
    )


# --------------------------------------------------------------------------------------------
# The registry


REQUIRED_JARGON = {
    "statistically significant",
    "confidence interval",
    "p value",
    "randomised controlled trial",
    "cohort",
    "confounding",
    "placebo",
    "efficacy",
    "outcome measure",
    "baseline",
    "MCID",
    "minimal clinically important difference",
    "adjusted",
    "odds ratio",
    "risk ratio",
    "standard deviation",
    "hedges g",
    "effect size",
    "meta-analysis",
    "heterogeneity",
    "imputation",
    "propensity",
    "intervention",
    "cohort study",
    "kinesiophobia",
    "disability index",
}


def test_registry_holds_the_required_rules():
    rules = load_rules()
    assert set(rules.certainty_wording) == set(GRADES)
    terms = {term.term for term in rules.jargon}
    assert terms >= REQUIRED_JARGON
    assert len(terms) >= 25
    assert rules.max_sentence_words == 25
    assert rules.max_grade == 8.0


@pytest.mark.parametrize("term", load_rules().jargon, ids=lambda term: term.term)
def test_every_jargon_term_is_found_alone_and_passes_with_its_alternative(term):
    bare = f"We looked at the {term.term} here."
    assert check_jargon(bare) == [jargon_issue(bare, term.term, term.alternatives[0])]
    for alternative in term.alternatives:
        assert check_jargon(f"We looked at the {term.term} ({alternative}) here.") == []
        assert check_jargon(f"We looked at the {term.term} — {alternative}.") == []


@pytest.mark.parametrize(
    "alternative",
    sorted({alt for term in load_rules().jargon for alt in term.alternatives}),
)
def test_plain_alternatives_carry_no_hedge_recommendation_or_absolute_claim(alternative):
    for wording in load_rules().certainty_wording.values():
        assert not [p.pattern for p in wording.forbidden if p.search(alternative)]
    assert check_recommendation(alternative) == []
    assert check_absolute_claim(alternative) == []


def test_parse_rules_names_a_missing_grade():
    raw = {
        "certainty_wording": {"high": {}, "moderate": {}, "low": {}},
        "jargon": {"placebo": "dummy treatment"},
        "recommendations": ["x"],
        "absolute_claims": ["y"],
        "abbreviations": [],
        "limits": {"max_sentence_words": 25, "max_grade": 8.0},
    }
    with pytest.raises(ValueError) as error:
        parse_rules(raw)
    assert str(error.value) == (
        "plain_language.yaml: certainty_wording must have exactly the grades "
        "high, moderate, low, very_low (found: high, moderate, low)"
    )


def test_parse_rules_names_a_bad_regex():
    wording = {"wording": "w", "required": ["a"], "forbidden": ["b"]}
    raw = {
        "certainty_wording": dict.fromkeys(GRADES, wording),
        "jargon": {"placebo": "dummy treatment"},
        "recommendations": ["you should", "(unclosed"],
        "absolute_claims": ["y"],
        "abbreviations": [],
        "limits": {"max_sentence_words": 25, "max_grade": 8.0},
    }
    with pytest.raises(ValueError) as error:
        parse_rules(raw)
    assert str(error.value) == (
        "plain_language.yaml: recommendations[1] is not a valid regex "
        "(missing ), unterminated subpattern at position 0): '(unclosed'"
    )


# --------------------------------------------------------------------------------------------
# Sentence splitting


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("", []),
        (
            "The average change was 4.5 points. That is a small change.",
            ["The average change was 4.5 points.", "That is a small change."],
        ),
        (
            "ETMI-guided care vs. usual care was compared. Pain scores fell.",
            ["ETMI-guided care vs. usual care was compared.", "Pain scores fell."],
        ),
        (
            "Some care (e.g. exercise) helps. Other care (i.e. rest) was studied. Done!",
            ["Some care (e.g. exercise) helps.", "Other care (i.e. rest) was studied.", "Done!"],
        ),
        (
            "Feldman et al. studied 4193 adults. Is that many? Yes.",
            ["Feldman et al. studied 4193 adults.", "Is that many?", "Yes."],
        ),
        (
            "- **ETMI-guided care probably improves function.** [C-etmi-function-1a2b]\n"
            "- Pain may ease a little (about 0.5 points). [C-etmi-pain-3c4d]\n",
            [
                "ETMI-guided care probably improves function.",
                "Pain may ease a little (about 0.5 points).",
            ],
        ),
        (
            "1. It may help [C-etmi-function-1a2b]. It is cheap.\n2. *Nothing* else.",
            ["It may help.", "It is cheap.", "Nothing else."],
        ),
        (
            "# What we found\n\nThis paragraph is wrapped\nover two lines.\n\n## Pain\n",
            ["What we found", "This paragraph is wrapped over two lines.", "Pain"],
        ),
        (
            "> Read the [full report](https://example.org/report) for details.",
            ["Read the full report for details."],
        ),
    ],
    ids=[
        "empty",
        "decimal",
        "vs",
        "eg-ie",
        "et-al-and-question",
        "bullets-with-claim-ids",
        "numbered-and-id-before-stop",
        "headings-and-wrapped-paragraph",
        "quote-and-link",
    ],
)
def test_split_sentences(text, sentences):
    assert split_sentences(text) == sentences


@given(
    st.lists(
        st.lists(
            st.sampled_from(["pain", "care", "eased", "4.5", "vs.", "e.g.", "points", "0-100"]),
            min_size=1,
            max_size=8,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_split_sentences_finds_every_sentence_despite_decimals_and_abbreviations(word_lists):
    sentences = [" ".join(["Back", *words]) + "." for words in word_lists]
    assert split_sentences(" ".join(sentences)) == sentences


# --------------------------------------------------------------------------------------------
# Certainty wording


@pytest.mark.parametrize(
    ("sentence", "certainty"),
    [
        ("ETMI-guided care improves daily function a little.", "high"),
        ("ETMI-guided care makes little or no difference to pain.", "high"),
        ("ETMI-guided care probably improves daily function a little.", "moderate"),
        ("ETMI-guided care probably makes little or no difference to pain.", "moderate"),
        ("ETMI-guided care may improve daily function a little.", "low"),
        ("ETMI-guided care may make little or no difference to pain.", "low"),
        ("We are uncertain whether ETMI-guided care improves daily function.", "very_low"),
        ("We are uncertain whether ETMI-guided care changes pain.", "very_low"),
        ("**ETMI-guided care *may* reduce fear of movement.** [C-etmi-fear-5e6f]", "low"),
        ("ETMI-guided care reduces pain. [C-probably-may-1]", "high"),
    ],
)
def test_right_wording_passes(sentence, certainty):
    assert check_certainty(sentence, certainty) == []


@pytest.mark.parametrize(
    ("sentence", "certainty", "messages"),
    [
        (
            "ETMI-guided care probably improves daily function.",
            "high",
            [f'high-certainty claim contains "probably": use {HIGH}'],
        ),
        (
            "ETMI-guided care may possibly improve daily function.",
            "high",
            [f'high-certainty claim contains "may", "possibly": use {HIGH}'],
        ),
        (
            "We are uncertain whether ETMI-guided care improves daily function.",
            "high",
            [f'high-certainty claim contains "uncertain": use {HIGH}'],
        ),
        (
            "ETMI-guided care is linked with better daily function.",
            "high",
            [f"high-certainty claim lacks its wording: use {HIGH}"],
        ),
        (
            "ETMI-guided care improves daily function.",
            "moderate",
            [f"moderate-certainty claim lacks its wording: use {MODERATE}"],
        ),
        (
            "Probably, ETMI-guided care improves daily function.",
            "moderate",
            [f"moderate-certainty claim lacks its wording: use {MODERATE}"],
        ),
        (
            "ETMI-guided care may improve daily function.",
            "moderate",
            [
                f'moderate-certainty claim contains "may": use {MODERATE}',
                f"moderate-certainty claim lacks its wording: use {MODERATE}",
            ],
        ),
        (
            "ETMI-guided care probably improves daily function.",
            "low",
            [
                f'low-certainty claim contains "probably": use {LOW}',
                f"low-certainty claim lacks its wording: use {LOW}",
            ],
        ),
        (
            "ETMI-guided care improves daily function.",
            "low",
            [f"low-certainty claim lacks its wording: use {LOW}"],
        ),
        (
            "ETMI-guided care might improve daily function.",
            "low",
            [
                f'low-certainty claim contains "might": use {LOW}',
                f"low-certainty claim lacks its wording: use {LOW}",
            ],
        ),
        (
            "ETMI-guided care may improve daily function.",
            "very_low",
            [
                f'very low-certainty claim contains "may": use {VERY_LOW}',
                f"very low-certainty claim lacks its wording: use {VERY_LOW}",
            ],
        ),
        (
            "We are uncertain whether ETMI-guided care probably improves daily function.",
            "very_low",
            [f'very low-certainty claim contains "probably": use {VERY_LOW}'],
        ),
        (
            "ETMI-guided care improves daily function.",
            "very_low",
            [f"very low-certainty claim lacks its wording: use {VERY_LOW}"],
        ),
    ],
)
def test_wrong_wording_is_named_with_its_fix(sentence, certainty, messages):
    assert check_certainty(sentence, certainty) == [
        certainty_issue(sentence, message) for message in messages
    ]


def test_unknown_certainty_is_refused():
    with pytest.raises(ValueError) as error:
        check_certainty("ETMI-guided care improves pain.", "medium")
    assert (
        str(error.value) == 'unknown certainty "medium": use one of high, moderate, low, very_low'
    )


SUBJECTS = ["ETMI-guided care", "exercise therapy", "the back class", "yoga"]
VERBS = [  # (third person, base form)
    ("improves", "improve"),
    ("reduces", "reduce"),
    ("increases", "increase"),
    ("eases", "ease"),
    ("makes little or no difference to", "make little or no difference to"),
]
OBJECTS = ["daily function", "pain", "fear of movement", "the number of sessions"]


def worded(grade: str, subject: str, verb: tuple[str, str], obj: str) -> str:
    third, base = verb
    return {
        "high": f"{subject.capitalize()} {third} {obj} a little.",
        "moderate": f"{subject.capitalize()} probably {third} {obj} a little.",
        "low": f"{subject.capitalize()} may {base} {obj} a little.",
        "very_low": f"We are uncertain whether {subject} {third} {obj}.",
    }[grade]


@given(
    st.sampled_from(GRADES),
    st.sampled_from(SUBJECTS),
    st.sampled_from(VERBS),
    st.sampled_from(OBJECTS),
)
def test_each_grade_wording_passes_its_own_grade_only(grade, subject, verb, obj):
    sentence = worded(grade, subject, verb, obj)
    assert check_certainty(sentence, grade) == []
    for other in GRADES:
        if other != grade:
            issues = check_certainty(sentence, other)
            assert issues, (sentence, other)
            assert {issue.rule for issue in issues} == {"certainty_wording"}


@given(st.sampled_from(SUBJECTS), st.sampled_from(VERBS), st.sampled_from(OBJECTS))
def test_adding_probably_to_a_high_certainty_claim_is_always_caught(subject, verb, obj):
    sentence = worded("high", subject, verb, obj).replace(f" {verb[0]} ", f" probably {verb[0]} ")
    assert check_certainty(sentence, "high") == [
        certainty_issue(sentence, f'high-certainty claim contains "probably": use {HIGH}')
    ]


# --------------------------------------------------------------------------------------------
# Jargon


@pytest.mark.parametrize(
    "sentence",
    [
        "The study was a randomised trial (a fair test where chance decides the treatment).",
        "The confidence interval (the range the true effect is likely to lie in) was wide.",
        "The confidence interval — the range the true effect is likely to lie in — was wide.",
        "The confidence interval - range the true effect is likely to lie in - was wide.",
        "Some had a placebo (a dummy treatment with no active part that looks real).",
        "This cohort study (study that follows a group of people over time) was large.",
        "People filled in a questionnaire about their back.",
        "Two interventions (treatments) were compared.",
    ],
)
def test_jargon_with_its_plain_alternative_right_after_it_passes(sentence):
    assert check_jargon(sentence) == []


@pytest.mark.parametrize(
    ("sentence", "hits"),
    [
        (
            "The confidence interval was wide.",
            [("confidence interval", "range the true effect is likely to lie in")],
        ),
        (
            "The study was a randomised trial (a fair test).",
            [("randomised trial", "fair test where chance decides the treatment")],
        ),
        (
            "The study was a fair test (randomised trial).",
            [("randomised trial", "fair test where chance decides the treatment")],
        ),
        (
            "Some had a placebo pill (a dummy treatment with no active part).",
            [("placebo", "dummy treatment with no active part")],
        ),
        (
            "A randomized trial reported p-values and Hedges' g.",
            [
                ("randomized trial", "fair test where chance decides the treatment"),
                ("p-values", "chance of a result at least this big if the treatment did nothing"),
                ("Hedges' g", "standard measure of the size of a difference"),
            ],
        ),
        (
            "The cohort study and two meta-analyses agree.",
            [
                ("cohort study", "study that follows a group of people over time"),
                ("meta-analyses", "method that combines the results of several studies"),
            ],
        ),
        (
            "The MCID (smallest change that patients notice as important) beats the MCID.",
            [("MCID", "smallest change that patients notice as important")],
        ),
    ],
)
def test_jargon_without_its_plain_alternative_is_named(sentence, hits):
    assert check_jargon(sentence) == [jargon_issue(sentence, *hit) for hit in hits]


# --------------------------------------------------------------------------------------------
# Recommendations and absolute claims


@pytest.mark.parametrize(
    ("sentence", "found"),
    [
        ("You should try ETMI-guided care.", "You should"),
        ("People with back pain should try exercise.", "should try"),
        ("We recommend staying active.", "We recommend"),
        ("Patients must keep moving.", "Patients must"),
        ("Try to stay active every day.", "Try"),
        ("Exercise is recommended for back pain.", "is recommended"),
    ],
)
def test_recommendations_are_named(sentence, found):
    assert check_recommendation(sentence) == [
        LintIssue("recommendation", sentence, f'sentence recommends ("{found}"): {RECOMMENDS}')
    ]


def test_reporting_a_choice_is_not_a_recommendation():
    assert check_recommendation("Some people chose exercise and some chose rest.") == []


@pytest.mark.parametrize(
    ("sentence", "found"),
    [
        ("ETMI-guided care has no effect on pain.", "no effect"),
        ("There was no difference in pain.", "no difference"),
        ("Bed rest does not work.", "does not work"),
        ("Bed rest doesn't work.", "doesn't work"),
        ("This study proves that exercise helps.", "proves"),
        ("Massage is ineffective for back pain.", "is ineffective"),
    ],
)
def test_absolute_claims_are_named(sentence, found):
    assert check_absolute_claim(sentence) == [
        LintIssue(
            "absolute_claim", sentence, f'sentence makes an absolute claim ("{found}"): {ABSOLUTE}'
        )
    ]


@pytest.mark.parametrize(
    "sentence",
    [
        "ETMI-guided care may make little or no difference to pain.",
        "ETMI-guided care improves daily function.",
        "The results were less certain for pain.",
    ],
)
def test_hedged_or_graded_claims_are_not_absolute(sentence):
    assert check_absolute_claim(sentence) == []


# --------------------------------------------------------------------------------------------
# Sentence length and reading grade

WORDS_25 = (
    "In this demonstration data people who had care from a trained physiotherapist moved "
    "more easily and felt a bit less fear after six short weeks"
)


def test_a_25_word_sentence_passes_and_a_26_word_sentence_is_named():
    assert len(WORDS_25.split()) == 25
    assert check_sentence_length(WORDS_25 + ".") == []
    long_sentence = WORDS_25 + " overall."
    assert check_sentence_length(long_sentence) == [
        LintIssue("sentence_length", long_sentence, "sentence has 26 words (limit 25): split it")
    ]


def test_dashes_and_claim_ids_are_not_words():
    sentence = WORDS_25 + " — [C-etmi-function-1a2b]."
    assert check_sentence_length(sentence) == []


SHORT_WORDS = ["pain", "back", "care", "walk", "day", "work", "sleep", "move", "home", "the"]


@given(st.lists(st.sampled_from(SHORT_WORDS), min_size=1, max_size=60))
def test_sentence_length_fires_exactly_above_25_words(words):
    sentence = " ".join(words).capitalize() + "."
    issues = [issue for issue in lint_text(sentence) if issue.rule == "sentence_length"]
    if len(words) <= 25:
        assert issues == []
    else:
        assert issues == [
            LintIssue(
                "sentence_length",
                sentence,
                f"sentence has {len(words)} words (limit 25): split it",
            )
        ]


@pytest.mark.parametrize(
    ("text", "grade"),
    [
        # 3 words, 1 sentence, 3 syllables: 0.39 * 3 + 11.8 * 1 - 15.59
        ("The cat sat.", -2.62),
        # 6 words, 2 sentences, 7 syllables (hap-py): 0.39 * 3 + 11.8 * 7 / 6 - 15.59
        ("The cat sat. It was happy.", -0.65),
        # "e.g." and 4.5 end no sentence; words The cat eg Tom sat 45 days, one syllable each:
        # 0.39 * 7 + 11.8 * 7 / 7 - 15.59
        ("The cat (e.g. Tom) sat 4.5 days.", -1.06),
        ("", 0.0),
    ],
)
def test_reading_grade_is_flesch_kincaid(text, grade):
    assert reading_grade(text) == grade


HARD_TEXT = (
    "Participants experienced considerable improvements regarding functional independence "
    "following comprehensive multidisciplinary rehabilitation. Additional evaluation "
    "demonstrated comparable conclusions."
)
EASY_TEXT = "ETMI-guided care may help people move a bit more. It may ease fear of pain a little."


def test_a_text_above_grade_8_is_named():
    assert lint_text(HARD_TEXT) == [
        LintIssue(
            "reading_grade",
            "",
            "text reads at US grade 32.5 (limit 8.0): use shorter sentences and shorter words",
        )
    ]


def test_a_text_below_grade_8_passes():
    assert reading_grade(EASY_TEXT) == 3.0
    assert check_reading_grade(EASY_TEXT) == []
    assert lint_text(EASY_TEXT) == []


# --------------------------------------------------------------------------------------------
# Whole texts and claims

FACT_SHEET = """# ETMI-guided care for low back pain

- In this demonstration data, ETMI-guided care probably improves daily function a little compared with usual physiotherapy care (about 4 points on a 0-100 scale). [C-etmi-function-1a2b]
- ETMI-guided care may reduce fear of movement. [C-etmi-fear-5e6f]
- ETMI-guided care has no effect on pain. [C-etmi-pain-3c4d]
- You should ask about the confidence interval.
- Most people felt a bit better over time.
"""  # reads at grade 7.25
CERTAINTIES = {
    "C-etmi-function-1a2b": "moderate",
    "C-etmi-fear-5e6f": "high",
    "C-etmi-pain-3c4d": "low",
}


def test_lint_text_checks_each_claim_against_its_grade_and_every_sentence():
    fear = "ETMI-guided care may reduce fear of movement."
    pain = "ETMI-guided care has no effect on pain."
    advice = "You should ask about the confidence interval."
    assert lint_text(FACT_SHEET, CERTAINTIES) == [
        certainty_issue(fear, f'high-certainty claim contains "may": use {HIGH}'),
        certainty_issue(pain, f"low-certainty claim lacks its wording: use {LOW}"),
        LintIssue(
            "absolute_claim", pain, f'sentence makes an absolute claim ("no effect"): {ABSOLUTE}'
        ),
        jargon_issue(advice, "confidence interval", "range the true effect is likely to lie in"),
        LintIssue("recommendation", advice, f'sentence recommends ("You should"): {RECOMMENDS}'),
    ]


def test_lint_text_without_certainties_skips_certainty_wording():
    assert {issue.rule for issue in lint_text(FACT_SHEET)} == {
        "absolute_claim",
        "jargon",
        "recommendation",
    }


def test_a_claim_without_a_grade_is_named():
    text = "ETMI-guided care may ease pain a little. [C-etmi-pain-3c4d]"
    assert lint_text(text, {}) == [
        certainty_issue(
            "ETMI-guided care may ease pain a little.",
            "claim C-etmi-pain-3c4d has no certainty grade: add it to the certainties "
            "or remove the claim id",
        )
    ]


def test_an_unknown_grade_in_certainties_is_refused_and_the_mapping_is_unchanged():
    certainties = {"C-etmi-pain-3c4d": "medium"}
    with pytest.raises(ValueError) as error:
        lint_text("Pain eased.", certainties)
    assert str(error.value) == (
        'unknown certainty "medium" for claim C-etmi-pain-3c4d: '
        "use one of high, moderate, low, very_low"
    )
    assert certainties == {"C-etmi-pain-3c4d": "medium"}


def test_lint_claim_checks_certainty_then_sentence_rules():
    sentence = "You should try ETMI-guided care because it probably improves function."
    assert lint_claim(sentence, "high") == [
        certainty_issue(sentence, f'high-certainty claim contains "probably": use {HIGH}'),
        LintIssue("recommendation", sentence, f'sentence recommends ("You should"): {RECOMMENDS}'),
    ]


def test_lint_claim_passes_the_demonstration_sentence():
    sentence = (
        "In this demonstration data, ETMI-guided care probably improves daily function a little "
        "compared with usual physiotherapy care (about 4 points on a 0-100 scale)."
    )
    assert lint_claim(sentence, "moderate") == []


# --------------------------------------------------------------------------------------------
# Command line


def test_cli_exits_0_on_a_clean_file(tmp_path, capsys):
    draft = tmp_path / "clean.md"
    draft.write_text(EASY_TEXT, encoding="utf-8")
    assert main([str(draft)]) == 0
    assert capsys.readouterr().out == ""


def test_cli_exits_1_and_prints_one_line_per_issue(tmp_path, capsys):
    clean = tmp_path / "clean.md"
    clean.write_text(EASY_TEXT, encoding="utf-8")
    draft = tmp_path / "draft.md"
    draft.write_text("Bed rest does not work.\n\nYou should walk.\n", encoding="utf-8")
    assert main([str(clean), str(draft)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f'{draft}: absolute_claim: sentence makes an absolute claim ("does not work"): {ABSOLUTE}',
        f'{draft}: recommendation: sentence recommends ("You should"): {RECOMMENDS}',
    ]


def test_cli_checks_claims_against_a_certainties_file(tmp_path, capsys):
    draft = tmp_path / "draft.md"
    draft.write_text("ETMI-guided care may ease pain. [C-etmi-pain-3c4d]\n", encoding="utf-8")
    grades = tmp_path / "certainties.yaml"
    grades.write_text("C-etmi-pain-3c4d: moderate\n", encoding="utf-8")
    assert main(["--certainties", str(grades), str(draft)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f'{draft}: certainty_wording: moderate-certainty claim contains "may": use {MODERATE}',
        f"{draft}: certainty_wording: moderate-certainty claim lacks its wording: use {MODERATE}",
    ]


def test_cli_exits_2_on_a_missing_file(tmp_path, capsys):
    missing = tmp_path / "missing.md"
    assert main([str(missing)]) == 2
    assert (
        capsys.readouterr().err
        == f"{missing}: error: cannot read the file (No such file or directory)\n"
    )


def test_cli_runs_as_a_module(tmp_path):
    draft = tmp_path / "draft.md"
    draft.write_text("There was no difference in pain.\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.summarise.lint", str(draft)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == (
        f'{draft}: absolute_claim: sentence makes an absolute claim ("no difference"): {ABSOLUTE}\n'
    )


@settings(max_examples=25)
@given(st.sampled_from(SUBJECTS), st.sampled_from(VERBS), st.sampled_from(OBJECTS))
def test_graded_template_sentences_are_clean_apart_from_their_grade(subject, verb, obj):
    for grade in GRADES:
        assert lint_claim(worded(grade, subject, verb, obj), grade) == []
