"""Sphinx extension: a glued value of a notebook the shown run did not make reads "not in this run".

``transferlimits book`` stages the run's notebooks in ``book/generated/current/`` and writes
``book/generated/current/_gaps.json`` (``transferlimits.runner.book_gaps.fill_gaps``): ``{"docs": {docname:
null (a stub page: every key) | [keys the notebook does not glue]}}``. Before MyST-NB resolves the cross-document
glue references (its post-transform has priority 5), this one replaces each reference to a listed (document, key)
by an emphasised "not in this run" (a block paragraph for a figure or table). A missing key that is not listed
(a typo in a chapter) still reaches MyST-NB, which warns, and the build (``-W``) fails as before.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from docutils import nodes
from myst_nb.ext.glue.utils import PendingGlueReference
from sphinx.transforms.post_transforms import SphinxPostTransform

GAPS = Path("book") / "generated" / "current" / "_gaps.json"
TEXT = "not in this run"


def read_gaps(srcdir: str | Path) -> dict:
    """``{docname: None | [keys]}`` of the staged book (empty without a gaps file)."""
    try:
        return dict(json.loads((Path(srcdir) / GAPS).read_text()).get("docs") or {})
    except (OSError, ValueError, AttributeError):
        return {}


class FillGlueGaps(SphinxPostTransform):
    """Replace the pending glue references that ``_gaps.json`` lists (see the module docstring)."""

    default_priority = 4  # before myst_nb's ReplacePendingGlueReferences (5)

    def apply(self, **kwargs) -> None:
        gaps = read_gaps(self.env.srcdir)
        if not gaps:
            return
        for node in list(self.document.findall(PendingGlueReference)):
            if node.refdoc not in gaps or (gaps[node.refdoc] is not None and node.key not in gaps[node.refdoc]):
                continue
            text = nodes.emphasis(TEXT, TEXT, classes=["glue-gap"])
            node.replace_self(text if node.inline else nodes.paragraph("", "", text))


def _gaps_hash(srcdir: str | Path) -> str:
    try:
        return hashlib.sha256((Path(srcdir) / GAPS).read_bytes()).hexdigest()
    except OSError:
        return ""


def _outdated(app, env, added, changed, removed):
    """Every page when the gaps changed since the last build: stub titles are in every page's navigation, and
    Sphinx rewrites only changed pages otherwise."""
    now = _gaps_hash(env.srcdir)
    if getattr(env, "glue_gaps_hash", None) == now:
        return []
    env.glue_gaps_hash = now
    return sorted(set(env.found_docs) - set(removed) - set(added) - set(changed))


def setup(app):
    app.add_post_transform(FillGlueGaps)
    app.connect("env-get-outdated", _outdated)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
