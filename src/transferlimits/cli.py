"""The one command-line interface: ``python -m transferlimits <command> --help``.

Each sub-command is a module ``transferlimits.runner.cli_<command>`` that defines ``add_arguments(parser)``
and ``main(args) -> int`` and calls the library; no library module holds CLI code. This file only wires
them together.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

__all__ = ["main", "COMMANDS", "describe_os_error"]

#: command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("transferlimits.runner.cli_run", "run the study grid (Snakemake + papermill) for a profile"),
    "status": ("transferlimits.runner.cli_status", "show which runs are fresh, stale or missing"),
    "book": ("transferlimits.runner.cli_book", "build the Jupyter Book from the executed notebooks"),
    "pretrain": ("transferlimits.runner.cli_pretrain", "pre-train one encoder with one objective"),
    "data": ("transferlimits.runner.cli_data", "build a profile's cohort (phantoms, splits, manifest)"),
    "compute": ("transferlimits.runner.cli_compute", "compute a profile's points without notebooks (for an "
                "accelerator; render later with `run --render-only`)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with ``command`` (a known name) only that command's module is imported (the
    others are listed by their help line), so ``compute`` never imports the notebook stack of ``run`` or ``book``."""
    parser = argparse.ArgumentParser(
        prog="python -m transferlimits",
        description=(
            "transferlimits: a reproducible study of why vision foundation models transfer unevenly "
            "(ProFound vs ProViCNet on prostate MRI). Run `python -m transferlimits run --profile smoke` "
            "for the CPU smoke study, then `python -m transferlimits book` to build the book."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if command in COMMANDS and name != command:
            sub.add_parser(name, help=help_text)
            continue
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:  # a command whose module is missing still shows in --help
            p = sub.add_parser(name, help=f"{help_text} (unavailable: {exc})")
            p.set_defaults(_unavailable=str(exc))
            continue
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip())
        p.formatter_class = argparse.RawDescriptionHelpFormatter
        mod.add_arguments(p)
        p.set_defaults(_main=mod.main)
    return parser


def describe_os_error(exc: OSError) -> str:
    """One line for a file-system error: what happened, to which file, and what to do."""
    where = exc.filename or "a file"
    if exc.errno == errno.ENOSPC:
        return (f"no space left on the device while writing {where}; finished results are kept: free space (or "
                "move the results with TRANSFERLIMITS_RESULTS=<folder>) and re-run the same command")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"cannot write {where} ({exc.strerror}); make the folder writable, or move the results with "
                "TRANSFERLIMITS_RESULTS=<folder>")
    return f"{where}: {exc.strerror or exc}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    if getattr(args, "_unavailable", None):
        print(f"error: command {args.command!r} is unavailable: {args._unavailable}", file=sys.stderr)
        return 2
    try:
        return int(args._main(args) or 0)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # a failed sub-process (book build, snakemake --summary): its message and log
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; finished runs are kept, re-run the same command to resume.", file=sys.stderr)
        return 130
