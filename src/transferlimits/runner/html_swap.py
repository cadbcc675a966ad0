"""Put a finished book in place of the previous one, and recover from a swap that was killed half-way.

A finished HTML tree is copied to ``_build/.html.copying``; only a complete copy is renamed ``_build/.html.new``
(so ``.html.new`` is always whole); then ``html`` is renamed ``.html.old``, ``.html.new`` renamed ``html`` and
``.html.old`` removed. A kill (SIGKILL, power loss) between the two renames leaves no ``html`` but both trees;
:func:`recover_html`, run by every ``transferlimits`` command and at the start of each swap, finishes the swap
(``.html.new`` into place) or, without a new tree, puts ``.html.old`` back. A kill during the copy leaves only
``.html.copying``, which is never installed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

__all__ = ["swap_html", "recover_html"]

NEW, OLD, COPYING, HTML = ".html.new", ".html.old", ".html.copying", "html"


def _install(build_dir: Path) -> None:
    """``.html.new`` (whole) becomes ``html``; the previous ``html`` is removed after."""
    new, old, html = build_dir / NEW, build_dir / OLD, build_dir / HTML
    shutil.rmtree(old, ignore_errors=True)
    if html.exists():
        os.replace(html, old)
    os.replace(new, html)
    shutil.rmtree(old, ignore_errors=True)


def recover_html(build_dir: Path) -> str | None:
    """Finish or undo a swap that was killed between its renames (see the module docstring).

    Args:
        build_dir: the ``_build`` folder.

    Returns:
        What was done, in a few words, or None when there was nothing to recover.
    """
    build_dir = Path(build_dir)
    new, old, html = build_dir / NEW, build_dir / OLD, build_dir / HTML
    if new.is_dir():  # a whole new tree: the build had succeeded, finish its swap
        _install(build_dir)
        return f"{html}: the new book of an interrupted swap put in place"
    if not html.exists() and old.is_dir():
        os.replace(old, html)
        return f"{html}: the previous book put back after an interrupted swap"
    if old.exists() and html.exists():
        shutil.rmtree(old, ignore_errors=True)
    return None


def swap_html(built: Path, build_dir: Path, copy: Callable[[Path, Path], Any] = shutil.copytree) -> Path:
    """Replace ``build_dir/html`` by a copy of ``built`` (a finished html folder); return the new html folder.

    The copy is made beside the old tree and renamed into place only when whole, so an error while copying
    (disk full) leaves the old html untouched, and a kill at any point leaves a state :func:`recover_html` mends.

    Args:
        built: the finished html folder. build_dir: the ``_build`` folder. copy: the tree copier (tests pass
            one that fails).
    """
    build_dir = Path(build_dir)
    recover_html(build_dir)
    copying = build_dir / COPYING
    shutil.rmtree(copying, ignore_errors=True)
    try:
        copy(built, copying)
    except BaseException:
        shutil.rmtree(copying, ignore_errors=True)
        raise
    os.replace(copying, build_dir / NEW)
    _install(build_dir)
    return build_dir / HTML
