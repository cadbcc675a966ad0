"""The book of a partial run (issue 25): the pages it has are built, what it lacks is named.

Unit tests read a small synthetic book (a TOC, a chapter page, one executed notebook); the slow test builds the
real book in a sandbox from a subset of the committed ``cpu`` notebooks, as a ``run --only
task=classification,model=profound`` grid leaves them, with one glued value removed from a notebook that ran.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_sandbox, sandbox_env
from transferlimits.runner.book_gaps import GAPS_FILE, fill_gaps, glue_references, glued_keys, toc_files

REPO = Path(__file__).resolve().parents[1]
CPU = REPO / "book" / "generated" / "cpu"

PAGE = """# A chapter
Steps {glue:text}`../generated/current/01_pretrain__a__x.ipynb::pretrain_steps:d`, profile
{glue}`../generated/current/task__a.ipynb::prov_profile` and {glue}`../generated/current/task__b.ipynb::prov_profile`.

```{glued-figure} fig_curves
:doc: ../generated/current/task__b.ipynb
:name: fig-b-curves

Curves of b.
```
"""
TOC = """format: jb-book
root: book/intro
parts:
  - caption: Tasks
    chapters:
      - file: book/tasks/task
        sections:
          - file: book/generated/current/task__a
          - file: book/generated/current/task__b
          - file: book/generated/current/01_pretrain__a__x
"""


def _notebook(keys: list[str]) -> dict:
    outputs = [{"output_type": "display_data", "data": {"application/papermill.record/text/plain": "1"},
                "metadata": {"scrapbook": {"name": k, "mime_prefix": "application/papermill.record/"}}} for k in keys]
    return {"cells": [{"cell_type": "code", "id": "c", "metadata": {}, "source": "", "execution_count": 1,
                       "outputs": outputs}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _book(root: Path) -> Path:
    (root / "book" / "tasks").mkdir(parents=True)
    (root / "_toc.yml").write_text(TOC)
    (root / "book" / "intro.md").write_text("# Intro\n")
    (root / "book" / "tasks" / "task.md").write_text(PAGE)
    current = root / "book" / "generated" / "current"
    current.mkdir(parents=True)
    (current / "task__a.ipynb").write_text(json.dumps(_notebook(["fig_curves"])))  # lacks prov_profile
    return current


def test_glue_references_find_roles_with_formats_and_directives(tmp_path):
    current = _book(tmp_path)
    refs = glue_references([tmp_path / "book" / "tasks" / "task.md"], current)
    assert refs == {"01_pretrain__a__x": {"pretrain_steps"}, "task__a": {"prov_profile"},
                    "task__b": {"prov_profile", "fig_curves"}}
    assert toc_files(tmp_path / "_toc.yml")[:3] == ["book/intro", "book/tasks/task", "book/generated/current/task__a"]
    assert glued_keys(current / "task__a.ipynb") == {"fig_curves"}


def test_fill_gaps_writes_stub_pages_and_lists_missing_values(tmp_path):
    current = _book(tmp_path)
    gaps = fill_gaps(current, "smoke", tmp_path)
    assert gaps.pages == ["task__b", "01_pretrain__a__x"] and gaps.values == {"task__a": ["prov_profile"]}
    stub = json.loads((current / "task__b.ipynb").read_text())
    text = " ".join(c["source"] for c in stub["cells"])
    assert "# Task: b (not in this run)" in text and "task__b.ipynb" in text and "--profile smoke" in text
    assert "Pre-training: a + x (not in this run)" in (current / "01_pretrain__a__x.ipynb").read_text()
    written = json.loads((current / GAPS_FILE).read_text())
    assert written["docs"] == {"book/generated/current/task__b": None, "book/generated/current/01_pretrain__a__x": None,
                               "book/generated/current/task__a": ["prov_profile"]}
    line = gaps.summary()
    assert "2 page(s) not made by the 'smoke' run" in line and "task__a: prov_profile" in line
    # the run's notebook itself is not rewritten, and a complete run has no gaps
    assert glued_keys(current / "task__a.ipynb") == {"fig_curves"}
    (current / "task__a.ipynb").write_text(json.dumps(_notebook(["fig_curves", "prov_profile"])))
    for name in ("task__b", "01_pretrain__a__x"):
        (current / f"{name}.ipynb").write_text(json.dumps(_notebook(["fig_curves", "prov_profile", "pretrain_steps"])))
    again = fill_gaps(current, "smoke", tmp_path)
    assert again.summary() == "" and json.loads((current / GAPS_FILE).read_text())["docs"] == {}


def _drop_glue(path: Path, key: str) -> None:
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        cell["outputs"] = [o for o in cell.get("outputs", []) if (o.get("metadata") or {}).get("scrapbook", {})
                           .get("name") != key]
    path.write_text(json.dumps(nb))


@pytest.mark.slow
def test_book_of_a_partial_grid_builds_and_names_what_is_missing(tmp_path):
    root = make_sandbox(tmp_path / "sandbox")
    gen = root / "book" / "generated" / "smoke"
    gen.mkdir(parents=True)
    made = ["00_data", "01_pretrain__profound__fcmae", "01_pretrain__profound__contrastive", "classification__profound",
            "20_control", "30_alignment"]
    for name in made:
        shutil.copy2(CPU / f"{name}.ipynb", gen)
    _drop_glue(gen / "30_alignment.ipynb", "seeds_classification")
    results = gen / "results"
    for rel in ("grid.json", "profile.json"):
        (results / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(CPU / "results" / rel, results / rel)
    for run in (CPU / "results" / "runs").glob("classification__profound__*"):
        shutil.copytree(run, results / "runs" / run.name)
    proc = subprocess.run([sys.executable, "-m", "transferlimits", "book", "--profile", "smoke"], cwd=root,
                          env=sandbox_env(root), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("index.html")
    assert "11 page(s) not made by the 'smoke' run" in proc.stderr and "segmentation__provicnet" in proc.stderr
    assert "30_alignment: seeds_classification" in proc.stderr
    html = root / "_build" / "html"
    stub = (html / "book" / "generated" / "current" / "segmentation__provicnet.html").read_text()
    assert "not in this run" in stub and "segmentation__provicnet.ipynb" in stub
    chapter = (html / "book" / "tasks" / "classification.html").read_text()
    shown = re.search(r"commit `([0-9a-f]{7,}(?:-dirty)?)`", (CPU / "classification__profound.ipynb").read_text()).group(1)
    assert "not in this run" in chapter and shown in chapter, "values of the run shown stay, missing ones say so"
    assert (html / "book" / "generated" / "current" / "classification__profound.html").is_file()
    assert not (gen / GAPS_FILE).exists() and not (gen / "segmentation__provicnet.ipynb").exists()
