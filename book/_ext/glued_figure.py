"""Sphinx extension: ``glued-figure``, a numbered figure with a caption around an output glued in ANOTHER page.

MyST-NB 1.x's ``glue:figure`` only pastes outputs of the page it is on; the chapters show figures glued in the
executed notebooks (``:doc:``). This directive wraps MyST-NB's pending cross-document glue reference in a
docutils ``figure`` node with a ``caption`` (so Sphinx numbers it and HTML gets ``<figure>``/``<figcaption>``);
MyST-NB's post-transform later replaces the reference by the image::

    ```{glued-figure} fig_curves
    :doc: ../generated/current/classification__profound__seed0.ipynb
    :name: fig-classification-profound-curves

    Learning curves of ProFound on classification.
    ```
"""

from __future__ import annotations

from docutils import nodes
from docutils.parsers.rst import directives
from myst_nb.ext.glue.utils import PendingGlueReferenceError, create_pending_glue_ref
from sphinx.util.docutils import SphinxDirective


class GluedFigure(SphinxDirective):
    """``glued-figure KEY`` with ``:doc:`` (required), ``:name:`` and a one-paragraph caption (required)."""

    required_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec = {"doc": directives.unchanged_required, "name": directives.unchanged,
                   "figclass": directives.class_option}

    def run(self) -> list[nodes.Node]:
        if "doc" not in self.options:
            raise self.error("glued-figure: the :doc: option (the notebook holding the glued key) is required")
        if not self.content:
            raise self.error(f"glued-figure {self.arguments[0]!r}: a caption paragraph is required")
        try:
            ref = create_pending_glue_ref(self.state.document, self.get_source_info()[0], self.lineno,
                                          self.options["doc"], self.arguments[0])
        except PendingGlueReferenceError as exc:
            raise self.error(str(exc)) from None
        figure = nodes.figure("", ref, classes=list(self.options.get("figclass", [])))
        self.set_source_info(figure)
        self.add_name(figure)
        parsed = nodes.Element()
        self.state.nested_parse(self.content, self.content_offset, parsed)
        first = parsed[0]
        if not isinstance(first, nodes.paragraph):
            raise self.error("glued-figure: the caption must be a paragraph")
        caption = nodes.caption(first.rawsource, "", *first.children)
        caption.source, caption.line = first.source, first.line
        figure += caption
        if len(parsed) > 1:
            figure += nodes.legend("", *parsed[1:])
        return [figure]




class glued_table(nodes.General, nodes.Element):
    """A numbered table (Sphinx's "table" numbering) around a table output glued in another page."""


def _visit_glued_table(self, node):
    self.body.append(self.starttag(node, "div", CLASS="glued-table"))


def _depart_glued_table(self, node):
    self.body.append("</div>\n")


def _table_title(node) -> str:
    return next((c.astext() for c in node.children if isinstance(c, nodes.caption)), "")


class GluedTable(SphinxDirective):
    """``glued-table KEY`` with ``:doc:`` (required), ``:name:`` and a one-paragraph caption (required): the
    caption above the glued table (a DataFrame), numbered with the book's tables (``{numref}`` works)."""

    required_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec = {"doc": directives.unchanged_required, "name": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        if "doc" not in self.options:
            raise self.error("glued-table: the :doc: option (the notebook holding the glued key) is required")
        if not self.content:
            raise self.error(f"glued-table {self.arguments[0]!r}: a caption paragraph is required")
        try:
            ref = create_pending_glue_ref(self.state.document, self.get_source_info()[0], self.lineno,
                                          self.options["doc"], self.arguments[0])
        except PendingGlueReferenceError as exc:
            raise self.error(str(exc)) from None
        parsed = nodes.Element()
        self.state.nested_parse(self.content, self.content_offset, parsed)
        first = parsed[0]
        if not isinstance(first, nodes.paragraph):
            raise self.error("glued-table: the caption must be a paragraph")
        caption = nodes.caption(first.rawsource, "", *first.children)
        caption.source, caption.line = first.source, first.line
        table = glued_table("", caption, ref)
        self.set_source_info(table)
        self.add_name(table)
        if not table["ids"]:  # a numbered node needs an id
            table["ids"].append(f"glued-table-{self.env.docname.replace('/', '-')}-{self.lineno}")
        return [table]


def setup(app):
    app.add_directive("glued-figure", GluedFigure)
    app.add_enumerable_node(glued_table, "table", _table_title, html=(_visit_glued_table, _depart_glued_table))
    app.add_directive("glued-table", GluedTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
