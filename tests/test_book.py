"""The built book, as a reader sees it in headless Chromium (Debian's chromium + chromium-driver).

The session fixture ``smoke_study`` runs the smoke study and builds the book once; these tests open the
HTML with Selenium driving /usr/bin/chromium through /usr/bin/chromedriver (never a driver download).
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", "/usr/bin/chromedriver"
TASKS = ("classification", "segmentation", "super_resolution", "distortion_correction", "modality_translation")
REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (the test extra)")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian chromium/chromium-driver missing: run scripts/ensure_chromium.sh")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile_dir = tempfile.mkdtemp(prefix="chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile_dir}", "--window-size=1280,1000"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile_dir, ignore_errors=True)


def _open(driver, html: Path):
    assert html.exists(), f"{html} was not built"
    driver.get(html.as_uri())
    return driver


def _chapter_titles(root: Path) -> list[str]:
    """First heading of every chapter file the TOC names (the markdown chapters, not the notebooks)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    titles = []
    for f in files:
        first = next(ln for ln in (root / f"{f}.md").read_text().splitlines() if ln.startswith("# "))
        titles.append(first[2:].strip())
    return titles


def _not_blank(png: bytes) -> bool:
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("L")
    lo, hi = img.getextrema()
    return hi - lo > 30


def test_toc_lists_every_chapter(smoke_study, browser):
    _open(browser, smoke_study.html / "index.html")
    nav = browser.find_element("css selector", "nav.bd-docs-nav, #bd-docs-nav, .bd-sidebar-primary")
    text = nav.get_attribute("textContent")
    missing = [t for t in _chapter_titles(smoke_study.root) if t not in text]
    assert not missing, f"chapters missing from the table of contents: {missing}"


@pytest.mark.parametrize("task", TASKS)
def test_task_chapter_shows_its_figures(smoke_study, browser, task):
    _open(browser, smoke_study.html / "book" / "tasks" / f"{task}.html")
    images = browser.find_elements("css selector", "main img, article img")
    assert len(images) >= 6, f"{task}: expected 3 figures x 2 models, found {len(images)} images"
    for img in images:
        browser.execute_script("arguments[0].scrollIntoView();", img)
        loaded = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
        assert loaded and loaded > 0, f"{task}: image {img.get_attribute('src')[:80]} did not load"
        assert _not_blank(img.screenshot_as_png), f"{task}: image {img.get_attribute('src')[:80]} is blank"
    body = browser.find_element("css selector", "main").text
    assert "RPG vs scratch" in body and "Where these numbers come from" in body
    assert "smoke" in body, "the provenance admonition does not name the profile"


def test_final_chapter_shows_correlation(smoke_study, browser):
    _open(browser, smoke_study.html / "book" / "alignment.html")
    images = browser.find_elements("css selector", "main img")
    assert images, "the alignment chapter has no figure"
    loaded = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", images[0])
    assert loaded and loaded > 0
    assert _not_blank(images[0].screenshot_as_png)
    text = browser.find_element("css selector", "main").text
    assert re.search(r"n = \d+ points", text), text[:1500]
    assert re.search(r"Pearson r = (-?\d+\.\d+|nan)", text) and re.search(r"Spearman ρ = (-?\d+\.\d+|nan)", text)
    assert "20.72 %" in text and "secondary AI-written summary" in text
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1280, min(int(height) + 100, 6000))
    shot = smoke_study.root / "_build" / "screenshot_alignment.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    keep = REPO / "_build" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy2(shot, keep / "alignment.png")
    browser.set_window_size(1280, 1000)
