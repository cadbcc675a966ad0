"""Execute ONE notebook template with papermill: the unit of work of every Snakemake rule.

Usage (what the Snakefile runs)::

    python -m transferlimits.runner.notebook TEMPLATE OUTPUT [-p NAME VALUE ...] [--threads N] [--log FILE]

* the kernel is named explicitly (``python3``, the venv's ipykernel), never taken from metadata;
* parameters are validated against the template's ``parameters`` cell (unknown name -> error that
  lists the valid ones; values coerced to the default's type);
* the environment is hermetic: Jupyter, IPython, matplotlib and XDG caches live under the results
  folder, torch/BLAS threads are set to the job's cores;
* the executed notebook is written atomically; on failure the process exits 1, names the notebook and
  the failing cell, and keeps the partially executed notebook as ``<name>.failed.ipynb``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import nbformat
import papermill
from papermill.exceptions import PapermillExecutionError

from transferlimits import paths
from transferlimits.runner.params import bake_parameters, read_template, validate_parameters

__all__ = ["NotebookFailed", "hermetic_env", "repo_relative", "execute", "main"]

KERNEL = "python3"
#: parameters that name an output of the grid job (a pair's index): injected for the job's own run, never baked
#: into the executed notebook, so a re-execution by hand with other seeds cannot overwrite the grid's files
GRID_OUTPUT_PARAMETERS = ("index",)


class NotebookFailed(RuntimeError):
    """A notebook cell raised; ``failed_path`` is the kept partial notebook."""

    def __init__(self, message: str, failed_path: Path, cell_index: int | None):
        super().__init__(message)
        self.failed_path = failed_path
        self.cell_index = cell_index


def runtime_root() -> Path:
    """Folder for the hermetic Jupyter/IPython/matplotlib state (under the results tree)."""
    return paths.results_base() / ".runtime"


def hermetic_env(threads: int = 0, root: Path | None = None) -> dict[str, str]:
    """Environment variables that keep a kernel away from the home folder.

    Args:
        threads: torch/BLAS threads for the kernel (0 = leave unset). Default 0.
        root: folder for the state; default :func:`runtime_root`.
    """
    root = Path(root or runtime_root())
    env = {
        "JUPYTER_DATA_DIR": str(root / "jupyter_data"),
        "JUPYTER_CONFIG_DIR": str(root / "jupyter_config"),
        "IPYTHONDIR": str(root / "ipython"),
        "MPLCONFIGDIR": str(root / "matplotlib"),
        "XDG_CACHE_HOME": str(root / "cache"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    for key in ("JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR", "MPLCONFIGDIR", "XDG_CACHE_HOME"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    if threads and threads > 0:
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TRANSFERLIMITS_THREADS"):
            env[key] = str(int(threads))
    return env


def repo_relative(value: Any) -> Any:
    """A string parameter that is an absolute path inside the repository, made repository-relative.

    The executed notebook then names no path of the machine that made it, and re-executes from any clone
    (the notebooks resolve such paths against ``paths.ROOT``). Anything else is returned unchanged.
    """
    if not isinstance(value, str) or not value or not os.path.isabs(value):
        return value
    try:
        return Path(os.path.normpath(value)).relative_to(paths.ROOT).as_posix()
    except ValueError:  # outside the repository (e.g. released weights elsewhere): kept as given
        return value


def execute(
    template: str | Path,
    output: str | Path,
    parameters: Mapping[str, Any] | None = None,
    threads: int = 0,
    cwd: str | Path | None = None,
    log_output: bool = True,
    title: str | None = None,
) -> Path:
    """Execute ``template`` with ``parameters`` and write the executed notebook to ``output``.

    Args:
        template: jupytext percent ``.py`` (or ``.ipynb``) with a cell tagged ``parameters``.
        output: path of the executed ``.ipynb`` (written atomically).
        parameters: ``{name: value}``, validated against the template. Default none.
        threads: cores of this job (torch/BLAS threads). Default 0 (library default).
        cwd: working directory of the kernel. Default the repository root.
        log_output: stream cell outputs (tqdm progress) to stderr. Default True.
        title: a ``# title`` markdown cell inserted first (the page title in the book). Default none.

    Raises:
        ValueError: bad template or parameters.
        NotebookFailed: a cell raised; the partial notebook is kept as ``<name>.failed.ipynb``.
    """
    template, output = Path(template), Path(output)
    if output.suffix != ".ipynb":
        raise ValueError(f"output must be an .ipynb path, got {str(output)!r}")
    nb, params = _prepared(template, parameters, title)
    os.environ.update(hermetic_env(threads))
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.stem}.partial.ipynb")
    failed = output.with_name(f"{output.stem}.failed.ipynb")
    failed.unlink(missing_ok=True)
    t0 = time.time()
    try:
        papermill.execute_notebook(nb, str(partial), parameters=params, kernel_name=KERNEL,
                                   cwd=str(cwd or paths.ROOT), log_output=log_output, progress_bar=False,
                                   request_save_on_cell_execute=True)
    except PapermillExecutionError as exc:
        if partial.exists():
            os.replace(partial, failed)
        raise _failure(template, exc, failed) from None
    except BaseException:
        if partial.exists():
            os.replace(partial, failed)
        raise
    os.replace(partial, output)
    print(f"[notebook] {template.name} -> {output} in {time.time() - t0:.1f} s", file=sys.stderr)
    return output


def _prepared(template: Path, parameters: Mapping[str, Any] | None, title: str | None) -> tuple[Any, dict]:
    """The template with the run's parameters baked in (and its title), and the validated parameters."""
    nb = read_template(template)
    params = {k: repo_relative(v) for k, v in validate_parameters(template, dict(parameters or {})).items()}
    # a plain `papermill OUT NEW -p seeds 1` keeps this run's other values, but not the grid's own outputs
    bake_parameters(nb, {k: v for k, v in params.items() if k not in GRID_OUTPUT_PARAMETERS})
    if title:
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"# {title}"))
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    return nb, params


def _failure(template: Path, exc: PapermillExecutionError, failed: Path) -> NotebookFailed:
    """The error naming the notebook, the failing cell and the kept partial notebook."""
    index = getattr(exc, "cell_index", None)
    first = next((ln for ln in (exc.source or "").splitlines() if ln.strip()), "")
    where = f"cell {index} (execution count {exc.exec_count}, {first[:80]!r})"
    return NotebookFailed(f"notebook {str(template)!r} failed in {where}: {exc.ename}: {exc.evalue}\n"
                          f"  partial notebook kept: {failed}", failed, index)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m transferlimits.runner.notebook", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("template", help="notebook template (jupytext percent .py)")
    p.add_argument("output", help="executed notebook (.ipynb)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a parameter of the template's parameters cell (repeatable)")
    p.add_argument("--threads", type=int, default=0, help="torch/BLAS threads of this job (default: unset)")
    p.add_argument("--title", default=None, help="page title inserted as the first cell (default: none)")
    p.add_argument("--cwd", default=None, help="kernel working directory (default: repository root)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        execute(args.template, args.output, dict(args.parameter), threads=args.threads, cwd=args.cwd,
                title=args.title)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NotebookFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C, also while the kernel starts: one line in the job's log, no traceback
        print(f"error: interrupted; {args.output} was not written (a partial notebook is kept beside it if a cell "
              "had run)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
