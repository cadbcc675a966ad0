"""Screenshots of a built book at 1280 px: the verdict table, one task chapter and the conclusions chapter.

Uses the headless Chromium of the browser tests (Debian's chromium + chromium-driver, installed by
``scripts/ensure_chromium.sh``; never a driver download) through Selenium. Every PNG is 1280 px wide:

* ``verdict_table.png`` — the alignment chapter cropped to the verdict table (``table.verdict-table``);
* ``task_<task>.png`` — the whole task chapter (``book/tasks/<task>.html``);
* ``conclusions.png`` — the whole conclusions chapter (``book/conclusions.html``).

    .venv/bin/python scripts/screenshots.py --book _build/html --out _build/screenshots [--task segmentation]

Prints one line per PNG; exits 1 when a page or the verdict table is missing (naming it), 2 without Chromium.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WIDTH = 1280
MAX_HEIGHT = 16000  # px: a longer page is cut there (Chromium's own limit is near 16 384)
WAIT_S = 120
_READY = ("return document.readyState === 'complete' && !!document.querySelector('main')"
          " && Array.from(document.images).every(i => i.complete)")


def open_browser(width: int = WIDTH):
    """A headless Chromium driven by Debian's chromedriver, window ``width`` px wide.

    Raises:
        FileNotFoundError: chromium or chromedriver is missing (run scripts/ensure_chromium.sh).
    """
    from selenium import webdriver  # the test extra; imported here so --help works without it
    from selenium.webdriver.chrome.service import Service

    for exe in (CHROMIUM, CHROMEDRIVER):
        if not Path(exe).exists():
            raise FileNotFoundError(f"{exe} is missing: run scripts/ensure_chromium.sh")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile_dir = tempfile.mkdtemp(prefix="chromium-shots-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--hide-scrollbars", "--force-device-scale-factor=1", f"--user-data-dir={profile_dir}",
                 f"--window-size={width},1000"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(WAIT_S)
    driver._shots_profile = profile_dir  # removed by close_browser
    return driver


def close_browser(driver) -> None:
    """Quit the browser and remove its profile folder."""
    profile = getattr(driver, "_shots_profile", None)
    driver.quit()
    if profile:
        shutil.rmtree(profile, ignore_errors=True)


def full_page(driver, html: Path, width: int = WIDTH) -> Image.Image:
    """The whole page ``html`` at ``width`` px (height up to :data:`MAX_HEIGHT`), as a PIL image.

    Raises:
        FileNotFoundError: ``html`` does not exist.
    """
    from selenium.webdriver.support.ui import WebDriverWait

    if not html.is_file():
        raise FileNotFoundError(f"{html}: no such page in the built book")
    driver.set_window_size(width, 1000)
    driver.get(html.as_uri())
    WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(_READY))
    height = min(int(driver.execute_script("return document.documentElement.scrollHeight")), MAX_HEIGHT)
    driver.set_window_size(width, height)
    inner_w, inner_h = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    # the viewport, not the window, is width x height: add what the browser's frame takes
    driver.set_window_size(width + (width - int(inner_w)), height + (height - int(inner_h)))
    img = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    return img.crop((0, 0, min(width, img.width), img.height))


def element_band(driver, html: Path, selector: str, width: int = WIDTH, margin: int = 16) -> Image.Image:
    """The full-width band of page ``html`` that holds the first element matching ``selector``.

    Raises:
        FileNotFoundError: the page is missing. LookupError: no element matches ``selector`` (names it).
    """
    page = full_page(driver, html, width)
    box = driver.execute_script(
        "const e = document.querySelector(arguments[0]); if (!e) return null;"
        "const r = e.getBoundingClientRect(); return [r.top + window.scrollY, r.bottom + window.scrollY];", selector)
    if box is None:
        raise LookupError(f"{html}: no element {selector!r}")
    top, bottom = max(0, int(box[0]) - margin), min(page.height, int(box[1]) + margin)
    return page.crop((0, top, page.width, bottom))


def take(book: Path, out: Path, task: str = "classification", width: int = WIDTH) -> list[Path]:
    """Save the three screenshots of the book built in ``book`` (its html folder) into ``out``.

    Args:
        book: the built HTML (``_build/html``). out: the folder for the PNGs (created). task: the task chapter.
        width: the viewport width in px (default 1280).

    Returns:
        The written PNG paths.

    Raises:
        ValueError: ``width`` < 320 or ``task`` empty.
    """
    if width < 320:
        raise ValueError(f"width must be >= 320 px, got {width}")
    if not task:
        raise ValueError("task: a task name is required (e.g. classification)")
    out.mkdir(parents=True, exist_ok=True)
    driver = open_browser(width)
    try:
        shots = {"verdict_table": element_band(driver, book / "book" / "alignment.html", "table.verdict-table", width),
                 f"task_{task}": full_page(driver, book / "book" / "tasks" / f"{task}.html", width),
                 "conclusions": full_page(driver, book / "book" / "conclusions.html", width)}
    finally:
        close_browser(driver)
    written = []
    for name, img in shots.items():
        path = out / f"{name}.png"
        img.save(path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--book", type=Path, default=Path("_build/html"), help="the built book's HTML folder")
    p.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    p.add_argument("--task", default="classification", help="the task chapter to capture")
    p.add_argument("--width", type=int, default=WIDTH, help="viewport width in px (default 1280)")
    args = p.parse_args(argv)
    try:
        paths = take(args.book.resolve(), args.out.resolve(), args.task, args.width)  # file URIs need absolute paths
    except FileNotFoundError as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 2 if "ensure_chromium" in str(exc) else 1
    except LookupError as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        with Image.open(path) as img:
            print(f"{path} {img.width}x{img.height}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
