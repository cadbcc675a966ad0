"""Sphinx extension: the verdict table, its forest plot, the per-hypothesis paragraphs, the paper comparison
and the design limits, computed when the book is built from the shown run's **published result files**.

The shown run's files are staged in ``book/generated/current/results`` (``transferlimits book``); these
directives read them with the same functions ``notebooks/30_alignment.py`` calls
(:func:`transferlimits.study.verdicts.study_verdicts`, with the notebook's own ``n_bootstrap`` /
``n_permutations`` when its executed copy records them). Nothing here trains or is typed: a number on a page
that uses them is a function of the committed ``metrics.json`` files. Pages using a directive are re-read at
every build (their numbers follow the staged files). Without published results a directive says so in one
paragraph instead of failing the build.

    :::{study-verdict-table}
    :name: tab-verdicts

    Caption text (may hold roles, hence the colon fence).
    :::
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

RESULTS = Path("book") / "generated" / "current" / "results"
NOTEBOOK = Path("book") / "generated" / "current" / "30_alignment.ipynb"
OUT = Path("book") / "generated" / "current" / "_study"
DEFAULTS = {"n_bootstrap": 1000, "n_permutations": 1000}  # notebooks/30_alignment.py's parameter defaults
NO_RESULTS = ("*This build's run has no published results (`book/generated/<profile>/results/`), so this part, "
              "computed from them, is empty.*")


def _params(srcdir: Path) -> dict:
    params = dict(DEFAULTS)
    try:
        meta = json.loads((srcdir / NOTEBOOK).read_text())["metadata"].get("papermill", {}).get("parameters", {})
        params.update({k: int(meta[k]) for k in DEFAULTS if k in meta})
    except (OSError, ValueError, KeyError):
        pass
    return params


def study(app) -> dict | None:
    """The shown run's points and verdicts, computed once per build (None without published results)."""
    if hasattr(app, "_study_results"):
        return app._study_results
    srcdir = Path(app.srcdir)
    root = srcdir / RESULTS
    if not any(root.glob("runs/*/metrics.json")):
        app._study_results = None
        return None
    from transferlimits.study import analysis as an
    from transferlimits.study.verdicts import study_verdicts

    p = _params(srcdir)
    native, control, verdicts = study_verdicts(root, n_perm=p["n_permutations"])
    rows = an.point_rows(an.load_profile_points(root))
    app._study_results = {"native": native, "control": control, "verdicts": verdicts, "rows": rows, "params": p}
    return app._study_results


class _StudyDirective(SphinxDirective):
    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec = {"name": directives.unchanged, "compact": directives.flag}

    def markdown(self, data: dict) -> str:  # pragma: no cover - each directive overrides it
        raise NotImplementedError

    def empty_markdown(self) -> str:
        """What the directive shows without published results (a numbered table keeps its label: the pages
        that refer to it still build)."""
        return NO_RESULTS

    def empty_table(self, caption: str) -> str:
        lines = [f":::{{list-table}} {self.caption or caption}"]
        if self.options.get("name"):
            lines.append(f":name: {self.options['name']}")
        return "\n".join(lines + ["", f"* - {NO_RESULTS}", ":::"])

    def run(self) -> list[nodes.Node]:
        env = self.env
        docs = getattr(env, "study_results_docs", set())
        docs.add(env.docname)
        env.study_results_docs = docs
        data = study(env.app)
        text = self.empty_markdown() if data is None else self.markdown(data)
        container = nodes.container()
        self.state.nested_parse(StringList(text.splitlines(), source=env.docname), self.content_offset, container)
        return list(container.children)

    @property
    def caption(self) -> str:
        return " ".join([*(self.arguments or []), *self.content]).strip()


class VerdictTable(_StudyDirective):
    """The H1–H6 verdict table (numbered, captioned): :func:`~transferlimits.study.verdicts.verdict_table_markdown`."""

    def markdown(self, data: dict) -> str:
        from transferlimits.study.verdicts import verdict_table_markdown

        return verdict_table_markdown(data["verdicts"], self.caption or "Verdicts on H1–H6.",
                                      self.options.get("name", ""), compact="compact" in self.options)

    def empty_markdown(self) -> str:
        return self.empty_table("Verdicts on H1–H6.")


class ForestPlot(_StudyDirective):
    """The forest plot of H1–H6 (:func:`transferlimits.figures.verdicts.plot_forest`), numbered and captioned."""

    def markdown(self, data: dict) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from transferlimits.figures.verdicts import plot_forest

        out = Path(self.env.srcdir) / OUT
        out.mkdir(parents=True, exist_ok=True)
        fig = plot_forest(data["verdicts"])
        fig.savefig(out / "forest.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        lines = [f":::{{figure}} /{(OUT / 'forest.png').as_posix()}", ":width: 100%"]
        if self.options.get("name"):
            lines.append(f":name: {self.options['name']}")
        return "\n".join(lines + ["", self.caption or "Estimates of H1–H6 with 95 % CIs.", ":::"])


class VerdictParagraphs(_StudyDirective):
    """One generated paragraph per hypothesis (:func:`~transferlimits.study.verdicts.verdict_paragraph`)."""

    def markdown(self, data: dict) -> str:
        from transferlimits.study.verdicts import verdict_paragraph

        return "\n\n".join(verdict_paragraph(v) for v in data["verdicts"])


class PaperBeside(_StudyDirective):
    """The paper's four RPG numbers beside this run's, with CIs (:func:`~transferlimits.figures.alignment.paper_beside`)."""

    def markdown(self, data: dict) -> str:
        from transferlimits.figures.alignment import paper_beside

        table = paper_beside(data["rows"])
        lines = [f":::{{list-table}} {self.caption or 'RPG beside the paper.'}", ":header-rows: 1"]
        if self.options.get("name"):
            lines.append(f":name: {self.options['name']}")
        lines += ["", "* - " + "\n  - ".join(table.columns)]
        for _, row in table.iterrows():
            lines.append("* - " + "\n  - ".join(str(v).replace("|", "\\|") for v in row))
        return "\n".join(lines + [":::"])

    def empty_markdown(self) -> str:
        return self.empty_table("RPG beside the paper.")


class DesignLimits(_StudyDirective):
    """What the design can detect at all: the run's units and the minimum detectable effects, and the same for a
    run with the same units but less noise (the reference profile keeps 5 tasks × 2 models)."""

    def markdown(self, data: dict) -> str:
        from transferlimits.study.verdicts import ALPHA, POWER, minimum_detectable_effect

        vs = {v.hypothesis: v for v in data["verdicts"]}
        h2, h6 = vs.get("H2"), vs.get("H6")
        native = data["native"]
        n_points, n_tasks = len(native), native["task"].nunique() if len(native) else 0
        p6 = 2.0 / 2 ** n_tasks if n_tasks else float("nan")
        parts = [f"This run has {n_points} (task, model) points over {n_tasks} tasks and "
                 f"{data['rows']['seed'].nunique()} seeds; seeds are averaged, so the points (H1, H4, H5) and the "
                 f"encoders within each task × model (H2, H3), not the runs, are the units."]
        if h2 is not None:
            units = h2.units_name or "points"
            value, mde = minimum_detectable_effect(h2)
            detects = (f"detects with {POWER * 100:.0f} % power at α = {ALPHA:g} only {mde}" if value == value else
                       f"has no minimum detectable effect at {POWER * 100:.0f} % power and α = {ALPHA:g} ({mde})")
            parts.append(f"With n = {h2.n} {units} in {h2.n_groups} fixed-effect groups, the correlation test of H2 "
                         f"{detects} (Fisher's z, eq. {{eq}}`eq-mde-r`); the verdicts read Holm-adjusted p over "
                         f"H1–H6, a stricter level.")
        if h6 is not None:
            parts.append(f"H6's sign-flip test uses the {h6.units} control tasks whose 2×2 block is complete; its "
                         f"smallest attainable p is {2.0 / 2 ** h6.units if h6.units else float('nan'):.3f}, and with "
                         f"all {n_tasks} tasks it would be {p6:.3f}.")
        return " ".join(parts)


def _outdated(app, env, added, changed, removed):
    return sorted(getattr(env, "study_results_docs", set()) - set(removed))


def _purge(app, env, docname):
    getattr(env, "study_results_docs", set()).discard(docname)


def _merge(app, env, docnames, other):
    env.study_results_docs = getattr(env, "study_results_docs", set()) | getattr(other, "study_results_docs", set())


def setup(app):
    for name, cls in (("study-verdict-table", VerdictTable), ("study-forest-plot", ForestPlot),
                      ("study-verdict-paragraphs", VerdictParagraphs), ("study-paper-beside", PaperBeside),
                      ("study-design-limits", DesignLimits)):
        app.add_directive(name, cls)
    app.connect("env-get-outdated", _outdated)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
