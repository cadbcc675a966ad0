"""scripts/screenshots.py: three 1280-px PNGs of a built book (verdict table band, one task chapter, conclusions).

A tiny hand-made book (three HTML pages with the built book's layout) runs in seconds wherever Debian's chromium
and chromedriver are installed; the smoke study's built book is checked too (slow, the shared fixture).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "screenshots.py"
HAVE_CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()
needs_chromium = pytest.mark.skipif(not HAVE_CHROMIUM, reason="Debian chromium/chromium-driver missing: scripts/ensure_chromium.sh")
TABLE_PX = 300  # the tiny verdict table's height


def _page(body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><style>body{{margin:0;font:16px sans-serif}}"
            f"</style></head><body><main><article class='bd-article'>{body}</article></main></body></html>")


def _tiny_book(root: Path, with_table: bool = True) -> Path:
    html = root / "html"
    (html / "book" / "tasks").mkdir(parents=True)
    table = (f"<table class='verdict-table' style='height:{TABLE_PX}px;width:900px;background:#135'>"
             "<tr><td style='color:white'>H1 supported</td></tr></table>") if with_table else ""
    (html / "book" / "alignment.html").write_text(_page(f"<div style='height:900px'>intro</div>{table}"
                                                        "<div style='height:600px'>after</div>"))
    (html / "book" / "tasks" / "classification.html").write_text(
        _page("<h1>Classification</h1><div style='height:2500px;background:linear-gradient(#fff,#000)'></div>"))
    (html / "book" / "conclusions.html").write_text(_page("<h1>Conclusions</h1><p>" + "text " * 400 + "</p>"))
    return html


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@needs_chromium
def test_three_pngs_at_1280px_from_a_tiny_book(tmp_path):
    pytest.importorskip("selenium")
    book, out = _tiny_book(tmp_path), tmp_path / "shots"
    proc = _run("--book", str(book), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["conclusions.png", "task_classification.png", "verdict_table.png"], names
    sizes = {n: Image.open(out / n).size for n in names}
    assert all(w == 1280 for w, _ in sizes.values()), sizes
    assert sizes["task_classification.png"][1] >= 2500, sizes  # the whole page, not the first screen
    # the verdict band is the table (300 px) and a 16-px margin above and below, nothing of the 900-px intro
    assert abs(sizes["verdict_table.png"][1] - (TABLE_PX + 32)) <= 4, sizes
    band = Image.open(out / "verdict_table.png").convert("RGB")
    assert band.getpixel((100, 16 + TABLE_PX // 2)) == (0x11, 0x33, 0x55), "the band does not show the table"


@needs_chromium
def test_relative_book_and_out_paths_work(tmp_path):
    """The README's command passes ``--book _build/html`` (relative): a file URI needs the absolute path."""
    pytest.importorskip("selenium")
    _tiny_book(tmp_path)
    proc = _run("--book", "html", "--out", "shots", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "shots").glob("*.png"))) == 3


@needs_chromium
def test_a_book_without_verdict_table_fails_naming_it(tmp_path):
    pytest.importorskip("selenium")
    proc = _run("--book", str(_tiny_book(tmp_path, with_table=False)), "--out", str(tmp_path / "shots"))
    assert proc.returncode == 1 and "table.verdict-table" in proc.stderr, (proc.returncode, proc.stderr)


def test_missing_book_page_fails(tmp_path):
    proc = _run("--book", str(tmp_path / "nothing"), "--out", str(tmp_path / "shots"), "--width", "200")
    assert proc.returncode != 0 and "width must be >= 320" in proc.stderr, proc.stderr


@pytest.mark.slow
@needs_chromium
def test_screenshots_of_the_smoke_book(smoke_study, tmp_path):
    pytest.importorskip("selenium")
    proc = _run("--book", str(smoke_study.html), "--out", str(tmp_path), "--task", "segmentation")
    assert proc.returncode == 0, proc.stderr
    for name in ("verdict_table.png", "task_segmentation.png", "conclusions.png"):
        img = Image.open(tmp_path / name)
        lo, hi = img.convert("L").getextrema()
        assert img.width == 1280 and img.height > 100 and hi - lo > 30, (name, img.size)
