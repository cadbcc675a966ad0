"""Sphinx extension: chapter (and so figure) numbers continue across the book's parts.

Sphinx restarts numbering in every numbered toctree, and Jupyter Book makes one toctree per part, so the
"Tasks" part would start again at 1 and two figures would both be "Fig. 1.1". After Sphinx has numbered the
sections, this shifts the chapter number of every document under the n-th numbered toctree of the root by
the number of chapters before it (the number is set from the chapter's position, so running twice is harmless),
then lets Sphinx number the figures again from the shifted sections.
"""

from __future__ import annotations

from sphinx import addnodes
from sphinx.environment.collectors.toctree import TocTreeCollector


def _subtree(env, doc: str) -> list[str]:
    out, todo = [], [doc]
    while todo:
        d = todo.pop()
        out.append(d)
        todo += env.toctree_includes.get(d, [])
    return out


def shift_numbers(app, env) -> list[str]:
    """``env-get-updated`` handler (after Sphinx's own): offset chapter numbers part by part."""
    changed: list[str] = []
    for root in [app.config.root_doc] if app.config.root_doc in env.numbered_toctrees else []:
        offset = 0
        for toctree in env.get_doctree(root).findall(addnodes.toctree):
            if not toctree.get("numbered"):
                continue
            chapters = [ref for _, ref in toctree["entries"] if ref in env.tocs]
            for number, chapter in enumerate(chapters, start=offset + 1):  # set, not add: idempotent
                for doc in _subtree(env, chapter):
                    nums = env.toc_secnumbers.get(doc, {})
                    env.toc_secnumbers[doc] = {k: (number, *v[1:]) if v else v for k, v in nums.items()}
                    changed.append(doc)
            offset += len(chapters)
    if changed:
        changed += TocTreeCollector.assign_figure_numbers(None, env)  # figures follow the shifted sections
    return changed


def setup(app):
    app.connect("env-get-updated", shift_numbers, priority=800)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
