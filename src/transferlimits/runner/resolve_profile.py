"""``python -m transferlimits.runner.resolve_profile PROFILE OVERRIDES_JSON OUT``: the workflow's ``resolve_profile``
rule, which writes the run's resolved profile once (:func:`transferlimits.resolved.write_resolved`; the file is
rewritten only when its content changes)."""

from __future__ import annotations

import json
import sys

from transferlimits.resolved import write_resolved

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m transferlimits.runner.resolve_profile PROFILE OVERRIDES_JSON OUT", file=sys.stderr)
        return 2
    try:
        write_resolved(args[0], json.loads(args[1] or "{}"), args[2])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
