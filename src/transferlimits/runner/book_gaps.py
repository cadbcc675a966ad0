"""The book of a partial run: a page for every notebook the run did not make, and the glued values it lacks.

A grid run with ``--only`` (or a small real-data run) executes some of the notebooks the book's table of contents
(``_toc.yml``) includes from ``book/generated/current/``, and its executed notebooks may lack values the
chapters glue from them (``{glue}`path::key```, ``{glued-figure} key`` with ``:doc: path``). Jupyter Book would
refuse such a build (a missing TOC file, one warning per missing glue key). :func:`fill_gaps`, run on the staged
copy, writes instead

* a **stub notebook** for every TOC notebook that is missing: its title and one paragraph naming the notebook,
  the run and the command that makes it;
* ``book/generated/current/_gaps.json`` (:data:`GAPS_FILE`): the stub pages and, per notebook, the glue keys
  the chapters reference but the run did not glue. The book's extension ``book/_ext/glue_gaps.py`` reads it and
  shows "not in this run" where such a value would be; any other missing glue key stays a build error.

The staged copy is written, never the run's own ``book/generated/<profile>/``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import yaml

__all__ = ["GAPS_FILE", "Gaps", "toc_files", "glue_references", "glued_keys", "stub_notebook", "fill_gaps"]

GAPS_FILE = "_gaps.json"
#: ``{glue}`path::key```, ``{glue:text}`path::key:fmt```, ...: the document path and the key
_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`]+?)::([^`:]+)(?::[^`]*)?`")
#: a glue directive's opening line (its key) and the ``:doc:`` option among the lines after it
_DIRECTIVE = re.compile(r"^[`:]{3,}\{(?:glued-figure|glued-table|glue|glue:figure|glue:any|glue:math)\}\s+(\S+)\s*\n"
                        r"((?:[ \t]*:[\w-]+:.*\n)*)", re.MULTILINE)
_DOC_OPTION = re.compile(r"^[ \t]*:doc:[ \t]*(\S+)", re.MULTILINE)


@dataclass
class Gaps:
    """What a staged book lacks: ``pages`` (TOC notebooks the run did not make, by name) and ``values``
    (``{notebook name: [glue keys the chapters use that it does not glue]}``)."""

    profile: str
    pages: list[str] = field(default_factory=list)
    values: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        """One line naming what is missing ("" when nothing is)."""
        if not self.pages and not self.values:
            return ""
        parts = []
        if self.pages:
            parts.append(f"{len(self.pages)} page(s) not made by the {self.profile!r} run, shown as 'not in this "
                         f"run': {', '.join(self.pages)}")
        if self.values:
            n = sum(len(v) for v in self.values.values())
            shown = "; ".join(f"{nb}: {', '.join(keys)}" for nb, keys in sorted(self.values.items()))
            parts.append(f"{n} glued value(s) missing from notebooks that ran ({shown})")
        return "; ".join(parts)


def toc_files(toc: Path) -> list[str]:
    """Every ``file`` entry of a Jupyter Book TOC (root, chapters, sections), in order."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    found.append(node[key])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(Path(toc).read_text()) or {})
    return list(dict.fromkeys(found))


def glue_references(pages: Iterable[Path], current: Path) -> dict[str, set[str]]:
    """``{notebook name: glue keys}`` that the Markdown ``pages`` reference from notebooks in ``current``.

    Args:
        pages: Markdown files (paths in them are relative to each file's folder).
        current: the staged notebooks' folder.
    """
    current = Path(current).resolve()
    refs: dict[str, set[str]] = {}

    def add(page: Path, doc: str, key: str) -> None:
        target = (page.parent / doc).resolve()
        if target.parent == current:
            refs.setdefault(target.stem, set()).add(key)

    for page in pages:
        text = Path(page).read_text(encoding="utf-8")
        for doc, key in _ROLE.findall(text):
            add(Path(page), doc, key)
        for key, options in _DIRECTIVE.findall(text):
            doc = _DOC_OPTION.search(options)
            if doc:
                add(Path(page), doc.group(1), key)
    return refs


def glued_keys(notebook: Path) -> set[str]:
    """The glue keys an executed notebook holds (outputs with ``scrapbook`` metadata, as MyST-NB reads them)."""
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    return {o["metadata"]["scrapbook"]["name"] for c in nb.get("cells", []) if c.get("cell_type") == "code"
            for o in c.get("outputs", []) if "scrapbook" in (o.get("metadata") or {})}


def _title(name: str) -> str:
    if name.startswith("01_pretrain__"):
        return "Pre-training: " + " + ".join(name.split("__")[1:])
    task, sep, model = name.partition("__")
    return f"{task.replace('_', ' ').capitalize()}: {model}" if sep else name


def stub_notebook(name: str, profile: str) -> dict:
    """The page shown for a notebook the run did not make (nbformat 4 JSON): title and what to run."""
    text = (f"*Not in this run:* the `{profile}` run shown in this book did not make `{name}.ipynb` (its job was "
            f"outside the grid, e.g. `--only`, or did not finish), so this page and every value the chapters take "
            f"from it read \"not in this run\". `python -m transferlimits status --profile {profile}` lists the "
            f"missing jobs; `python -m transferlimits run --profile {profile}` (without `--only`) makes them.")
    cells = [{"cell_type": "markdown", "id": "stub-title", "metadata": {}, "source": f"# {_title(name)} (not in this run)"},
             {"cell_type": "markdown", "id": "stub-text", "metadata": {}, "source": text}]
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                         "language": "python"},
                                         "language_info": {"name": "python"}, "transferlimits_stub": True},
            "nbformat": 4, "nbformat_minor": 5}


def fill_gaps(current: Path, profile: str, root: Path) -> Gaps:
    """Write a stub for every TOC notebook missing from ``current`` and ``current/_gaps.json``.

    Args:
        current: the staged notebooks (``book/generated/current``). profile: the run shown.
        root: the book's root (``_toc.yml`` and the chapter pages).

    Returns:
        The :class:`Gaps` written (empty when the run made everything the book uses).
    """
    current, root = Path(current), Path(root)
    prefix = current.resolve().relative_to(root.resolve()).as_posix() + "/"
    files = toc_files(root / "_toc.yml")
    pages = [root / f"{f}.md" for f in files if not f.startswith(prefix) and (root / f"{f}.md").is_file()]
    refs = glue_references(pages, current)
    gaps = Gaps(profile)
    for name in [f[len(prefix):] for f in files if f.startswith(prefix)]:
        if not any((current / f"{name}{ext}").is_file() for ext in (".ipynb", ".md")):
            (current / f"{name}.ipynb").write_text(json.dumps(stub_notebook(name, profile), indent=1))
            gaps.pages.append(name)
    for name, keys in sorted(refs.items()):
        notebook = current / f"{name}.ipynb"
        if name in gaps.pages or not notebook.is_file():
            continue
        lacking = sorted(keys - glued_keys(notebook))
        if lacking:
            gaps.values[name] = lacking
    docs = {f"{prefix}{n}": None for n in gaps.pages}
    docs.update({f"{prefix}{n}": keys for n, keys in gaps.values.items()})
    (current / GAPS_FILE).write_text(json.dumps({"profile": profile, "docs": docs}, indent=1, sort_keys=True))
    return gaps
