"""Browser-side checks of the built book shared by the browser tests (tests/test_book.py, test_book_checks.py).

:data:`FIGURES_JS` collects every figure of a page's main column (id, classes, caption without its number);
:func:`template_captions` finds a caption used, word for word once model and task names are removed, under
figures of different kinds. A figure's kind is its ``figkind-…`` class where the chapter declares one (the
example figures: each task kind draws its own), else the last part of its id ``fig-<task>-<model>-<slot>`` (seeds,
curves, shift, …), else its whole id; a figure without id or kind is not compared.
"""

from __future__ import annotations

import re
from collections import defaultdict

__all__ = ["FIGURES_JS", "NAMES", "figure_kind", "normalise_caption", "template_captions"]

FIGURES_JS = """
const art = document.querySelector('article.bd-article') || document.querySelector('main');
return Array.from(art.querySelectorAll('figure')).map(f => {
  const cap = f.querySelector('figcaption');
  const num = cap ? cap.querySelector('.caption-number') : null;
  let text = cap ? cap.innerText : '';
  if (num) text = text.replace(num.innerText, '');
  return {id: f.id || '', classes: Array.from(f.classList), caption: text.trim()};
});"""

#: words removed before captions are compared: model display names and task names (spaces, hyphens, underscores)
NAMES = ("ProFound", "ProViCNet", "classification", "segmentation", "super-resolution", "super resolution",
         "distortion correction", "modality translation")
_MODELS = ("profound", "provicnet")


def normalise_caption(text: str) -> str:
    """The caption with model and task names removed, whitespace collapsed, lower case."""
    out = text
    for name in NAMES:
        out = re.sub(re.escape(name).replace(r"\ ", r"[\s_-]"), " ", out, flags=re.IGNORECASE)
    return re.sub(r"\s+", " ", out).strip().lower()


def figure_kind(fig: dict) -> str | None:
    """The figure's kind (see the module docstring), or None where it has neither a kind class nor an id."""
    declared = [c for c in fig.get("classes", []) if c.startswith("figkind-")]
    if declared:
        return declared[0][len("figkind-"):]
    fid = fig.get("id") or ""
    parts = fid.split("-")
    for model in _MODELS:
        if model in parts[:-1]:
            return parts[-1]
    return fid or None


def template_captions(figures: list[dict]) -> list[str]:
    """Problems: a normalised caption under figures of more than one kind, or an example figure (id ending in
    ``-examples``) without a declared ``figkind-`` class.

    Args:
        figures: dicts ``{"page", "id", "classes", "caption"}`` (:data:`FIGURES_JS` plus the page's name).
    """
    kinds, where, problems = defaultdict(set), defaultdict(list), []
    for fig in figures:
        if (fig.get("id") or "").endswith("-examples") and not any(c.startswith("figkind-") for c in fig["classes"]):
            problems.append(f"{fig['page']}#{fig['id']}: an example figure without a figkind- class")
        kind = figure_kind(fig)
        if kind is None or not fig["caption"]:
            continue
        key = normalise_caption(fig["caption"])
        kinds[key].add(kind)
        where[key].append(f"{fig['page']}#{fig['id']}")
    for key, ks in kinds.items():
        if len(ks) > 1:
            problems.append(f"one caption under figures of kinds {sorted(ks)} ({', '.join(where[key][:4])}): {key[:90]!r}")
    return problems
