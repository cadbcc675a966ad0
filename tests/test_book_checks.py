"""The browser checks of tests/_book_checks.py on tiny pages: they pass on distinct captions and fail on a
template caption repeated under different kinds of figure (fast; needs Debian's chromium + chromedriver)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from _book_checks import FIGURES_JS, figure_kind, normalise_caption, template_captions

HAVE_CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()
TEMPLATE = "first seed (native objective): test cases with the task's input, the target and the runs' predictions."


def _figure(fid: str, number: str, caption: str, kind: str = "") -> str:
    cls = f" figkind-{kind}" if kind else ""
    return (f"<figure class='align-default{cls}' id='{fid}'><img src='data:,' alt=''><figcaption><p>"
            f"<span class='caption-number'>Fig. {number} </span><span class='caption-text'>{caption}</span>"
            "</p></figcaption></figure>")


def _figures(tmp_path: Path, body: str) -> list[dict]:
    webdriver = pytest.importorskip("selenium.webdriver")
    if not HAVE_CHROMIUM:
        pytest.skip("Debian chromium/chromium-driver missing: scripts/ensure_chromium.sh")
    from selenium.webdriver.chrome.service import Service

    page = tmp_path / "page.html"
    page.write_text(f"<!doctype html><html><body><main><article class='bd-article'>{body}</article></main></body></html>")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.get(page.as_uri())
        return [dict(f, page="page") for f in driver.execute_script(FIGURES_JS)]
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_normalise_and_kind():
    assert normalise_caption("ProFound on super-resolution, first seed") == normalise_caption("ProViCNet on segmentation, first seed")
    assert figure_kind({"id": "fig-super-resolution-profound-curves", "classes": []}) == "curves"
    assert figure_kind({"id": "fig-x-provicnet-examples", "classes": ["figkind-examples-segmentation"]}) == "examples-segmentation"
    assert figure_kind({"id": "", "classes": []}) is None


def test_template_caption_under_two_kinds_of_figure_fails(tmp_path):
    body = (_figure("fig-classification-profound-examples", "4.5", f"ProFound on classification, {TEMPLATE}",
                    "examples-classification")
            + _figure("fig-segmentation-profound-examples", "5.5", f"ProFound on segmentation, {TEMPLATE}",
                      "examples-segmentation"))
    figs = _figures(tmp_path, body)
    assert [f["caption"][:8] for f in figs] == ["ProFound", "ProFound"]  # the number is not part of the caption
    problems = template_captions(figs)
    assert len(problems) == 1 and "examples-classification" in problems[0], problems


def test_same_caption_under_one_kind_and_own_captions_pass(tmp_path):
    body = (_figure("fig-classification-profound-seeds", "4.1", "ProFound on classification: every seed.")
            + _figure("fig-segmentation-provicnet-seeds", "5.2", "ProViCNet on segmentation: every seed.")
            + _figure("fig-classification-profound-examples", "4.5", "class probabilities per case.",
                      "examples-classification")
            + _figure("fig-segmentation-profound-examples", "5.5", "lesion probability on one slice.",
                      "examples-segmentation"))
    assert template_captions(_figures(tmp_path, body)) == []


def test_example_figure_without_declared_kind_fails(tmp_path):
    problems = template_captions(_figures(tmp_path, _figure("fig-segmentation-profound-examples", "5.5", "slices.")))
    assert problems and "without a figkind- class" in problems[0], problems
