"""The report page as a person sees it: headless Chromium (Debian's chromium + chromium-driver, installed
by scripts/install_browser.sh when missing) renders every section and every image, with no console error."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.report import SECTION_IDS
from tests.conftest import apt_lock

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with apt_lock():
        if not (shutil.which("chromium") and shutil.which("chromedriver")):
            subprocess.run(["bash", str(REPO / "scripts" / "install_browser.sh")], check=True, timeout=900)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    # as root in a sandbox with a closed network: no sandbox, and no background connections at all
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1300,2000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


def test_report_renders_every_section_and_image(tiny_demo, browser, tmp_path):
    from selenium.webdriver.common.by import By

    out, _ = tiny_demo
    page = json.loads((out / "report" / "report.json").read_text())
    browser.get((out / "report" / "report.html").resolve().as_uri())
    assert browser.title.startswith("mriharmony report")
    for section_id in SECTION_IDS:
        section = browser.find_element(By.ID, section_id)
        assert section.is_displayed()
        assert section.find_element(By.TAG_NAME, "h2").text == page["sections"][section_id]["title"]
        tables = section.find_elements(By.TAG_NAME, "table")
        assert len(tables) == len(page["sections"][section_id]["tables"])
        assert all(t.size["height"] > 20 for t in tables)  # laid out, with rows
        images = section.find_elements(By.TAG_NAME, "img")
        assert len(images) == len(page["sections"][section_id]["figures"])
        for image in images:  # decoded by the browser: a broken data URI has naturalWidth 0
            assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 100
            assert image.size["width"] > 100
    nav = [a.get_attribute("href").split("#")[1] for a in browser.find_elements(By.CSS_SELECTOR, "nav a")]
    assert nav == list(SECTION_IDS)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors  # e.g. a blocked external resource would be reported here
    browser.save_screenshot(str(tmp_path / "report.png"))
    assert (tmp_path / "report.png").stat().st_size > 10_000
