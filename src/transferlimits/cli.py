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

from transferlimits import paths
from transferlimits.runner.html_swap import recover_html

__all__ = ["main", "COMMANDS", "describe_os_error", "INTERRUPTED"]

#: the one line of a command stopped by Ctrl-C (at start-up or while it runs)
INTERRUPTED = "interrupted; finished runs are kept, re-run the same command to resume."

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
    """One line for a file-system error: what happened, to which file, and what to do.

    An error with two files (a copy, link or rename: ``filename`` the source, ``filename2`` the destination)
    names the destination, the file being written, and the source beside it.
    """
    where = exc.filename2 or exc.filename or "a file"
    if exc.filename2 and exc.filename:
        where = f"{exc.filename2} (a copy of {exc.filename})"
    if exc.errno == errno.ENOSPC:
        return (f"no space left on the device while writing {where}; finished results are kept: free space (or "
                "move the results with TRANSFERLIMITS_RESULTS=<folder>) and re-run the same command")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"cannot write {where} ({exc.strerror}); make the folder writable, or move the results with "
                "TRANSFERLIMITS_RESULTS=<folder>")
    return f"{where}: {exc.strerror or exc}"


def _recover_book() -> None:
    """Finish a book swap a kill interrupted (:func:`~transferlimits.runner.html_swap.recover_html`); a failure
    to do so is reported, not fatal (e.g. a read-only checkout for ``status``)."""
    try:
        recovered = recover_html(paths.ROOT / "_build")
    except OSError as exc:
        recovered = f"could not finish an interrupted swap of the book: {describe_os_error(exc)}"
    if recovered:
        print(f"[book] {recovered}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run its command; every expected failure is one ``error:`` line, Ctrl-C one line and 130."""
    try:
        return _dispatch(sys.argv[1:] if argv is None else list(argv))
    except KeyboardInterrupt:  # also while the command's modules are imported (start-up)
        print(INTERRUPTED, file=sys.stderr)
        return 130


def _dispatch(argv: list[str]) -> int:
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    if getattr(args, "_unavailable", None):
        print(f"error: command {args.command!r} is unavailable: {args._unavailable}", file=sys.stderr)
        return 2
    try:
        paths.results_base()  # a TRANSFERLIMITS_RESULTS that names a file: one line, before anything runs
        _recover_book()
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
