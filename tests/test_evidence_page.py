"""The evidence page (reports/index.html): its content, and its behaviour in headless chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.evidence_page import build_evidence_page, read_changes

CLAIMS = {
    "stops": [
        {
            "claim_id": "C-stops-pain-w10",
            "certainty": "high",
            "synthetic": False,
            "design": "randomised",
            "certainty_reasons": [],
            "numbers": {
                "estimate": -1.41,
                "ci_low": -1.89,
                "ci_high": -0.94,
                "n_treated": 152,
                "n_control": 137,
                "units": "points on a 0-10 scale, lower = better",
            },
            "sentence": "Tailored physiotherapy reduces back pain at 10 weeks a little compared "
            "with advice alone (about 1.4 points out of 10).",
        },
        {
            "claim_id": "C-stops-function-w10",
            "certainty": "moderate",
            "synthetic": False,
            "certainty_reasons": ["the result is imprecise"],
            "numbers": {"estimate": 4.9, "ci_low": 2.1, "ci_high": 7.7, "units": "points"},
            "sentence": "Tailored physiotherapy probably improves daily function at 10 weeks "
            "slightly compared with advice alone (about 5 points out of 100).",
        },
    ],
    "demo": [
        {
            "claim_id": "C-demo-function-dep",
            "certainty": "very_low",
            "synthetic": True,
            "certainty_reasons": ["the groups were not formed by chance"],
            "numbers": {"estimate": 2.5, "ci_low": -0.4, "ci_high": 5.5, "units": "points"},
            "sentence": "Demonstration data: we are uncertain whether ETMI improves daily "
            "function in people with depression or anxiety compared with usual care "
            "(about 3 points).",
        }
    ],
}
REVIEW_CLAIM = {
    "claim_id": "C-review-exercise-pain",
    "question": "exercise-pain",
    "certainty": "very_low",
    "sentence": "The evidence is very uncertain about the effect of exercise on back pain. "
    "It was about 1.0 points higher on a 0 to 10 scale, could be -25.0 to 27.1.",
    "grade": [
        {
            "domain": "risk of bias",
            "judgement": "very serious",
            "levels_down": 2,
            "reason": "100% of the weight from trials at high risk",
        },
    ],
    "numbers": {"estimate": 1.05, "ci_low": -25.0, "ci_high": 27.09, "pi_low": "NAN"},
}
CHANGES = "# Changed claims\n\n- **changed** C-stops-pain-w10: ...\n"


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    for study, records in CLAIMS.items():
        (tmp_path / study).mkdir()
        (tmp_path / study / "claims.json").write_text(
            json.dumps({"study_id": study, "claims": records}), encoding="utf-8"
        )
    (tmp_path / "stops" / "claims_changes.md").write_text(CHANGES, encoding="utf-8")
    # a review writes a bare list of claims, with GRADE domains and NaN where nothing was computed
    (tmp_path / "review").mkdir()
    (tmp_path / "review" / "claims.json").write_text(
        "[" + json.dumps(REVIEW_CLAIM).replace('"NAN"', "NaN") + "]", encoding="utf-8"
    )
    return tmp_path


def test_page_holds_every_claim_with_its_copy_text_and_filters(reports):
    page = build_evidence_page(reports)
    for records in CLAIMS.values():
        for record in records:
            assert f'id="{record["claim_id"]}"' in page
            assert f"{record['sentence']} [{record['claim_id']}]" in page.replace("&#x27;", "'")
    assert '<option value="in people with depression or anxiety">' in page
    assert '<option value="very_low">Very low certainty</option>' in page
    assert page.count('class="claim changed"') == 1
    assert 'id="C-review-exercise-pain"' in page
    assert "risk of bias: very serious (down 2) - 100% of the weight" in page
    assert '<option value="exercise">exercise</option>' in page
    assert "1.41 (95% range -1.89 to -0.94)" in page
    assert "152 vs 137 people" in page and "DEMONSTRATION DATA" in page
    assert "<script src" not in page and "http" not in page.split("<script>")[1]


def test_read_changes():
    assert read_changes(CHANGES + "- **new** C-x-1: a\n") == {
        "C-stops-pain-w10": "changed",
        "C-x-1": "new",
    }


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Debian chromium and chromium-driver are not installed (.ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--window-size=390,844",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _visible(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('article.claim'))"
        ".filter(a => !a.hidden && a.offsetParent !== null).map(a => a.id)"
    )


def test_page_in_headless_chromium(reports, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    page = reports / "index.html"
    page.write_text(build_evidence_page(reports), encoding="utf-8")
    browser.get(page.as_uri())
    assert browser.title.startswith("Evidence for fact sheets")
    assert len(_visible(browser)) == 4
    assert browser.find_element(By.ID, "count").text == "4 of 4 claims shown"

    Select(browser.find_element(By.ID, "f-certainty")).select_by_value("moderate")
    assert _visible(browser) == ["C-stops-function-w10"]
    Select(browser.find_element(By.ID, "f-certainty")).select_by_value("")
    Select(browser.find_element(By.ID, "f-condition")).select_by_value(
        "in people with depression or anxiety"
    )
    assert _visible(browser) == ["C-demo-function-dep"]
    Select(browser.find_element(By.ID, "f-condition")).select_by_value("")
    Select(browser.find_element(By.ID, "f-intervention")).select_by_value("Tailored physiotherapy")
    assert sorted(_visible(browser)) == ["C-stops-function-w10", "C-stops-pain-w10"]
    Select(browser.find_element(By.ID, "f-outcome")).select_by_value("back pain")
    assert _visible(browser) == ["C-stops-pain-w10"]
    assert browser.find_element(By.ID, "count").text == "1 of 4 claims shown"

    # the copy button, reached and pressed with the keyboard
    button = browser.find_element(By.CSS_SELECTOR, "#C-stops-pain-w10 button.copy")
    browser.execute_script("arguments[0].focus()", button)
    assert browser.switch_to.active_element == button
    button.send_keys(Keys.ENTER)
    copied = browser.execute_script("return window.lastCopied")
    assert copied == CLAIMS["stops"][0]["sentence"] + " [C-stops-pain-w10]"
    assert button.text == "Copied"

    # phone width: nothing wider than the screen
    Select(browser.find_element(By.ID, "f-outcome")).select_by_value("")
    Select(browser.find_element(By.ID, "f-intervention")).select_by_value("")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= browser.execute_script("return window.innerWidth")
    browser.save_screenshot(str(tmp_path / "phone.png"))
    assert (tmp_path / "phone.png").stat().st_size > 5000

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
