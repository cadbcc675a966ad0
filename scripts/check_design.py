"""Can this run see the encoder? Print the experiment-design criteria (STUDY §5.1) of a results tree, by rule.

One line per criterion and model: PASS, FAIL or MISSING (the run lacks what the criterion needs, e.g. a run made
before the encoder controls), what was measured, and the rule (:mod:`transferlimits.reporting.design_report`).
Exit 0 when every criterion passes, 1 when one fails or is missing; ``--json FILE`` also writes the rows.

Run: ``.venv/bin/python scripts/check_design.py [--results book/generated/cpu/results] [--json rows.json]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transferlimits.reporting.design_report import design_criteria, format_criteria, load_tree
from transferlimits.runtime import atomic_write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("book/generated/cpu/results"),
                        help="a results tree (runs/, pretrain/, linear_references.json, grid.json)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        parser.error(f"--results {args.results}: not a folder")
    rows = design_criteria(*load_tree(args.results))
    print(format_criteria(rows))
    if args.json is not None:
        atomic_write_json(args.json, [r.__dict__ for r in rows])
    return 0 if all(r.status == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
