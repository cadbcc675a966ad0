"""The built book, as a reader sees it in headless Chromium (Debian's chromium + chromium-driver).

The session fixture ``smoke_study`` runs the smoke study and builds the book once; these tests open the
HTML with Selenium driving /usr/bin/chromium through /usr/bin/chromedriver (never a driver download). Every
wait is explicit (WebDriverWait on a condition), never a sleep, so a loaded machine only makes them slower.
Screenshots of the intro, the data chapter, one task page and the final chapter go to _build/screenshots/.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from _book_checks import FIGURES_JS, template_captions

CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", "/usr/bin/chromedriver"
TASKS = ("classification", "segmentation", "super_resolution", "distortion_correction", "modality_translation")
HYPOTHESES = ("H1", "H2", "H3", "H4", "H5", "H6")
VERDICT_WORDS = ("supported", "contradicted", "inconclusive")
REPO = Path(__file__).resolve().parents[1]
WAIT_S = 120  # generous: the machine may be loaded; a wait returns as soon as its condition holds

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
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    yield driver
    driver.quit()
    shutil.rmtree(profile_dir, ignore_errors=True)


def _open(driver, html: Path):
    """Load ``html`` and wait until the document, its main column and every image in it have loaded."""
    from selenium.webdriver.support.ui import WebDriverWait

    assert html.exists(), f"{html} was not built"
    driver.set_window_size(1280, 1000)
    driver.get(html.as_uri())
    WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && !!document.querySelector('main')"
        " && Array.from(document.images).every(i => i.complete)"))
    return driver


def _toc_files(root: Path) -> tuple[list[str], list[str]]:
    """(chapter files, every file incl. the root and the notebook sections) named by the TOC."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    chapters = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    sections = [s["file"] for part in toc["parts"] for c in part["chapters"] for s in c.get("sections", [])]
    return chapters, [toc["root"], *chapters, *sections]


def _pages(study) -> list[Path]:
    return [study.html / f"{f}.html" for f in _toc_files(study.root)[1]]


def _chapter_titles(root: Path) -> list[str]:
    titles = []
    for f in _toc_files(root)[0]:
        first = next(ln for ln in (root / f"{f}.md").read_text().splitlines() if ln.startswith("# "))
        titles.append(first[2:].strip())
    return titles


def _not_blank(png: bytes) -> bool:
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("L")
    lo, hi = img.getextrema()
    return hi - lo > 30


def _screenshot(driver, study, name: str) -> Path:
    """Full-page screenshot into the sandbox's and the checkout's _build/screenshots/."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height) + 100, 12000))
    shot = study.root / "_build" / "screenshots" / f"{name}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(shot))
    keep = REPO / "_build" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy2(shot, keep / shot.name)
    driver.set_window_size(1280, 1000)
    return shot


def test_toc_lists_every_chapter(smoke_study, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, smoke_study.html / "index.html")
    css = "nav.bd-docs-nav, #bd-docs-nav, .bd-sidebar-primary"
    titles = _chapter_titles(smoke_study.root)
    # the sidebar is filled by the theme's scripts: wait for the text, not for a fixed time
    WebDriverWait(browser, WAIT_S).until(lambda d: all(
        t in (d.execute_script(f"const n = document.querySelector({css!r}); return n ? n.textContent : ''") or "")
        for t in titles))


def test_no_page_shows_a_figure_repr_or_an_unexplained_nan(smoke_study, browser):
    bad_repr, bad_nan = [], []
    for page in _pages(smoke_study):
        _open(browser, page)
        text = browser.execute_script("return document.querySelector('main').innerText")
        if "<Figure size" in text:
            bad_repr.append(page.name)
        # every standalone NaN must have an explanation in its own table row / paragraph / list item
        lonely = browser.execute_script("""
            const out = [];
            const walk = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
            while (walk.nextNode()) {
              const t = walk.currentNode;
              if (!/\\b(nan|NaN)\\b/.test(t.textContent)) continue;
              if (t.parentElement.closest('.cell_input, .highlight, code')) continue;  // source code, not a value
              const block = t.parentElement.closest('tr, p, li, dd, figcaption, pre') || t.parentElement;
              if (!/undefined|excluded|because|no voxels|—/.test(block.innerText)) out.push(block.innerText.slice(0, 120));
            }
            return out;""")
        bad_nan += [f"{page.name}: {b!r}" for b in lonely]
    assert not bad_repr, f"pages show a matplotlib repr instead of the image: {bad_repr}"
    assert not bad_nan, f"NaN shown without an explanation: {bad_nan[:10]}"


def test_every_figure_image_has_a_caption_and_loads(smoke_study, browser):
    missing, broken, n_figures = [], [], 0
    for page in _pages(smoke_study):
        _open(browser, page)
        for fig in browser.find_elements("css selector", "main figure"):
            if not fig.find_elements("css selector", "img"):
                continue
            n_figures += 1
            caps = fig.find_elements("css selector", "figcaption")
            if not caps or not caps[0].text.strip():
                missing.append(page.name)
            for img in fig.find_elements("css selector", "img"):
                if not browser.execute_script("return arguments[0].naturalWidth", img):
                    broken.append(f"{page.name}: {img.get_attribute('src')[:80]}")
    assert n_figures >= 5 * 6 + 2, f"expected captioned figures on every task page and the data chapter, got {n_figures}"
    assert not missing, f"figures without a caption on: {sorted(set(missing))}"
    assert not broken, f"images that did not load: {broken[:5]}"


def test_main_column_does_not_overflow_at_1280px(smoke_study, browser):
    over = []
    for page in _pages(smoke_study):
        _open(browser, page)
        widths = browser.execute_script("""
            const a = document.querySelector('article.bd-article') || document.querySelector('main');
            return [a.scrollWidth, a.clientWidth, document.documentElement.scrollWidth, window.innerWidth];""")
        if widths[0] > widths[1] + 2 or widths[2] > widths[3] + 2:
            over.append(f"{page.name}: {widths}")
    assert not over, f"horizontal overflow (scrollWidth, clientWidth, page scrollWidth, window): {over}"


def test_page_titles_are_unique_and_name_task_and_model(smoke_study, browser):
    titles = {}
    for page in _pages(smoke_study):
        _open(browser, page)
        titles[page.name] = browser.title
    dupes = {t for t in titles.values() if list(titles.values()).count(t) > 1}
    assert not dupes, f"duplicate page titles: {dupes}"
    for task in TASKS:
        for model, shown in (("profound", "ProFound"), ("provicnet", "ProViCNet")):
            t = titles[f"{task}__{model}.html"]  # one page per (task, model): every seed on it
            assert shown in t and task.split("_")[0] in t.lower() and "seed" not in t, t


def test_smoke_book_fits_is_numbered_and_has_no_template_caption(smoke_study, browser):
    """The checks of the committed run's book (below) on the smoke build: every page at 1280 px."""
    problems, figures = [], []
    for f in _toc_files(smoke_study.root)[1]:
        _open(browser, smoke_study.html / f"{f}.html")
        found = browser.execute_script(_AUDIT_JS)
        figures += [dict(fig, page=f) for fig in browser.execute_script(FIGURES_JS)]
        problems += [f"{f}: wider than the main column: {w}" for w in found["wide"]
                     if not w.startswith("notebook output")]
        problems += [f"{f}: not numbered and captioned: {u}" for u in found["uncaptioned"]]
        problems += [f"{f}: dangling section reference {d!r}" for d in found["dangling"]]
    problems += template_captions(figures)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", ["index", "book/alignment"])
def test_verdict_table_has_a_word_per_hypothesis(smoke_study, browser, page):
    _open(browser, smoke_study.html / f"{page}.html")
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('main table tr')).map(r => r.innerText)")
    for h in HYPOTHESES:
        row = next((r for r in rows if re.match(rf"\s*{h}\b", r)), None)
        assert row is not None, f"{page}: no verdict row for {h}"
        assert sum(w in row for w in VERDICT_WORDS) == 1, f"{page}: {h} row has no single verdict word: {row!r}"
    text = browser.find_element("css selector", "main").text
    assert "supported when its Holm-adjusted p" in text, "the verdict rule is not stated on the page"
    if page == "index":
        head = browser.find_element("css selector", "main .admonition").text
        assert "smoke profile" in head, f"the headline does not name the profile: {head[:200]!r}"


@pytest.mark.parametrize("task", TASKS)
def test_task_chapter_shows_summary_and_figures(smoke_study, browser, task):
    _open(browser, smoke_study.html / "book" / "tasks" / f"{task}.html")
    images = browser.find_elements("css selector", "main figure img")
    assert len(images) >= 6, f"{task}: expected 3 figures x 2 models, found {len(images)}"
    for img in images:
        browser.execute_script("arguments[0].scrollIntoView();", img)
        assert _not_blank(img.screenshot_as_png), f"{task}: image {img.get_attribute('src')[:80]} is blank"
    body = browser.find_element("css selector", "main").text
    for needed in ("pretrained, fine-tuned", "scratch, fine-tuned", "linear probe", "ProFound", "ProViCNet",
                   "RPG vs scratch", "Where these numbers come from", "smoke"):
        assert needed in body, f"{task}: {needed!r} missing from the page"
    assert "trivial baseline" in body, f"{task}: no trivial-baseline row beside the scores"
    if task in ("super_resolution", "distortion_correction", "modality_translation"):
        assert "real:" in body, f"{task}: the real-exam external test is not shown"
    if task == "segmentation":
        _screenshot(browser, smoke_study, "task_segmentation")


@pytest.mark.parametrize("page, name", [("index", "intro"), ("book/data", "data"), ("book/alignment", "alignment")])
def test_screenshots(smoke_study, browser, page, name):
    _open(browser, smoke_study.html / f"{page}.html")
    for img in browser.find_elements("css selector", "main img"):
        assert browser.execute_script("return arguments[0].naturalWidth", img), f"{page}: an image did not load"
    shot = _screenshot(browser, smoke_study, name)
    assert shot.stat().st_size > 10_000


# --- the book of the committed cpu run: built from book/generated/cpu, no computation ---------------------

#: The task chapters (one executed page per (task, model) under each), checked strictly like every page.
TASK_PAGES = tuple(f"book/tasks/{t}" for t in TASKS)

_AUDIT_JS = """
const art = document.querySelector('article.bd-article') || document.querySelector('main');
const right = art.getBoundingClientRect().right + 1;
const out = {wide: [], uncaptioned: [], dangling: []};
for (const t of art.querySelectorAll('table')) {
  const nb = !!t.closest('.cell_output');
  const label = (nb ? 'notebook output: ' : '') + t.innerText.slice(0, 50).replace(/\\s+/g, ' ');
  if (t.getBoundingClientRect().right > right || t.scrollWidth > t.clientWidth + 1) out.wide.push(label);
  if (nb) continue;  // a notebook's own displayed DataFrame is part of the executed notebook, not a book table
  const glued = t.closest('.glued-table');
  const cap = glued ? glued.querySelector('.caption-number') : t.querySelector('caption .caption-number');
  if (!cap || !/^Table \\d+(\\.\\d+)?/.test(cap.innerText.trim())) out.uncaptioned.push('table: ' + label);
}
for (const f of art.querySelectorAll('figure')) {
  if (f.getBoundingClientRect().right > right) out.wide.push('figure');
  const c = f.querySelector('figcaption .caption-number');
  if (!c || !/^Fig/.test(c.innerText.trim())) out.uncaptioned.push('figure: ' + (f.innerText || '').slice(0, 50));
}
for (const img of art.querySelectorAll('img')) if (img.getBoundingClientRect().right > right) out.wide.push('img');
out.dangling = art.innerText.match(/STUDY ?§ ?[\\d.]*|§ ?\\d+(\\.\\d+)?/g) || [];
return out;"""


@pytest.fixture(scope="module")
def cpu_book(tmp_path_factory):
    """The book of the committed cpu run, built in a sandbox (book/generated/cpu copied; nothing executed)."""
    from conftest import SmokeStudy, make_sandbox, sandbox_env

    if not (REPO / "book" / "generated" / "cpu" / "30_alignment.ipynb").is_file():
        pytest.skip("no committed cpu run in book/generated/cpu")
    root = make_sandbox(tmp_path_factory.mktemp("cpu_book"))
    shutil.copytree(REPO / "book" / "generated" / "cpu", root / "book" / "generated" / "cpu", dirs_exist_ok=True)
    study = SmokeStudy(root, sandbox_env(root))
    proc = study.cli("book", "--profile", "cpu", timeout=900)
    assert proc.stdout.strip().endswith("index.html"), proc.stdout
    return study


def test_cpu_book_tables_and_figures_fit_are_numbered_and_captioned(cpu_book, browser):
    """At 1280 px no table, figure or image is wider than the main column; every figure and every table of the
    book's own text is numbered and captioned; no page refers to a section that is not in the book (STUDY §); no
    caption is a template repeated under different kinds of figure (tests/_book_checks.py)."""
    problems, notebook_wide, figures = [], [], []
    for f in _toc_files(cpu_book.root)[1]:
        _open(browser, cpu_book.html / f"{f}.html")
        found = browser.execute_script(_AUDIT_JS)
        figures += [dict(fig, page=f) for fig in browser.execute_script(FIGURES_JS)]
        notebook_wide += [f"{f}: {w}" for w in found["wide"] if w.startswith("notebook output")]
        problems += [f"{f}: wider than the main column: {w}" for w in found["wide"]
                     if not w.startswith("notebook output")]
        problems += [f"{f}: not numbered and captioned: {u}" for u in found["uncaptioned"]]
        problems += [f"{f}: dangling section reference {d!r}" for d in found["dangling"]]
    problems += template_captions(figures)  # no template caption under different kinds of figure
    assert not problems, "\n".join(problems)
    if notebook_wide:  # an executed notebook's own DataFrames re-render only when the run is re-made
        print("notebook outputs wider than the column (templates fixed, shown after a re-run):",
              *notebook_wide, sep="\n  ")


@pytest.mark.parametrize("page", TASK_PAGES)
def test_cpu_task_pages_open_with_findings_and_have_no_dangling_reference(cpu_book, browser, page):
    _open(browser, cpu_book.html / f"{page}.html")
    found = browser.execute_script(_AUDIT_JS)
    assert not found["dangling"] and not found["uncaptioned"], found
    text = browser.execute_script("return document.querySelector('main').innerText")
    for label in ("ProFound", "ProViCNet"):  # the generated findings paragraph of each model
        assert re.search(rf"{label}, \S+ over \d+ seed\(s\): pretrained \d", text), f"{page}: no findings for {label}"


def test_cpu_verdict_table_reads_like_a_paper(cpu_book, browser):
    """The alignment chapter's verdict table: numbered, every required column, p and n in separate cells, whole
    words (no cut "negat"), the table inside the main column; the forest plot and a paragraph per hypothesis."""
    _open(browser, cpu_book.html / "book" / "alignment.html")
    info = browser.execute_script("""
        const t = document.querySelector('main table.verdict-table');
        const art = document.querySelector('article.bd-article');
        if (!t) return null;
        const heads = Array.from(t.querySelectorAll('thead th')).map(h => h.innerText.trim());
        const rows = Array.from(t.querySelectorAll('tbody tr')).map(r => Array.from(r.cells).map(c => c.innerText.trim()));
        const cut = Array.from(t.querySelectorAll('td, th')).filter(c => c.scrollWidth > c.clientWidth + 1).length;
        return {caption: t.querySelector('caption').innerText, heads, rows, cut,
                fits: t.getBoundingClientRect().right <= art.getBoundingClientRect().right + 1,
                text: document.querySelector('main').innerText};""")
    assert info is not None, "no verdict table on the alignment page"
    assert re.match(r"Table \d+\.\d+", info["caption"]), info["caption"]
    assert info["heads"] == ["claim", "predicted sign", "statistic (unit)", "estimate [95 % CI]", "test: p", "n",
                             "MDE", "verdict"], info["heads"]
    assert info["fits"] and info["cut"] == 0, {k: v for k, v in info.items() if k != "text"}
    for row in info["rows"]:
        _claim, predicted, _stat, _est, test_p, n, _mde, word = row
        assert predicted in ("positive", "negative") and word in VERDICT_WORDS, row
        assert re.search(r"p = (\d\.\d{3}|—)$", test_p) and re.match(r"^\d+ (points?|tasks?|encoders?)", n), row
    assert [r[0][:2] for r in info["rows"]] == list(HYPOTHESES)
    for h in HYPOTHESES:
        assert re.search(rf"\b{h} \(.*\)\. Predicted: a (positive|negative)", info["text"]), f"no paragraph for {h}"
    captions = browser.execute_script(
        "return Array.from(document.querySelectorAll('main figure figcaption')).map(c => c.innerText)")
    assert any("95 % CIs" in c for c in captions), captions


def test_cpu_methods_equations_are_numbered_and_referenced(cpu_book, browser):
    _open(browser, cpu_book.html / "book" / "methods.html")
    numbered = browser.execute_script("return document.querySelectorAll('main span.eqno').length")
    assert numbered >= 15, f"expected a numbered equation per quantity, found {numbered}"
    _open(browser, cpu_book.html / "book" / "alignment.html")
    refs = browser.execute_script(
        "return document.querySelectorAll('main a[href*=\"methods.html#equation-\"]').length")
    assert refs >= 6, "the alignment chapter does not point to the methods' definitions"
