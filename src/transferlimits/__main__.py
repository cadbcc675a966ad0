"""``python -m transferlimits``: the command line (:mod:`transferlimits.cli`)."""

import sys

try:
    from transferlimits.cli import main
except KeyboardInterrupt:  # Ctrl-C while the package itself is imported: nothing has started yet
    print("interrupted; nothing was started.", file=sys.stderr)
    raise SystemExit(130)

raise SystemExit(main())
