"""Reliability leftovers of issue 25 at the runner's edges: a results variable naming a file, Ctrl-C during
start-up, a full disk while the outputs are backed up, and a book swap killed between its two renames.

Each bad situation is made by the test itself (a file, a signal, a file-size limit in a child process, the
folders a killed swap leaves); each asserts the one line a user sees and that nothing was lost.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import default_ctrl_c, make_sandbox, sandbox_env
from transferlimits import paths
from transferlimits.cli import describe_os_error
from transferlimits.runner.html_swap import recover_html, swap_html

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "transferlimits", *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=300, cwd=cwd)


def only_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


# ---------------------------------------------------------------- TRANSFERLIMITS_RESULTS names a file
@pytest.mark.parametrize("below, args", [(False, ("status", "--profile", "smoke")),
                                         (True, ("run", "--profile", "smoke", "--dry-run"))])
def test_results_variable_naming_a_file_is_one_line(tmp_path, below, args):
    """Before: Snakemake's traceback (NotADirectoryError) from `status` and `run --dry-run`."""
    target = tmp_path / "results.txt"
    target.write_text("my notes\n")
    value = str(target / "sub") if below else str(target)
    proc = cli(*args, env={"TRANSFERLIMITS_RESULTS": value})
    line = only_line(proc)
    assert proc.returncode == 2 and line.startswith(f"error: TRANSFERLIMITS_RESULTS={value} "), line
    assert ("lies below the file " + str(target) if below else "is a file, not a folder") in line
    assert target.read_text() == "my notes\n", "the file the variable names is left as it was"


def test_results_base_follows_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path / "new" / "results"))
    assert paths.results_dir("smoke") == tmp_path / "new" / "results" / "smoke"  # a folder still to be made is fine
    monkeypatch.delenv("TRANSFERLIMITS_RESULTS")
    assert paths.results_base() == paths.ROOT / "results"


# ---------------------------------------------------------------- Ctrl-C while the command starts
def test_ctrl_c_during_start_up_is_one_line_and_exit_130(tmp_path):
    env = dict(os.environ, TRANSFERLIMITS_RESULTS=str(tmp_path / "results"))
    proc = subprocess.Popen([sys.executable, "-m", "transferlimits", "status", "--profile", "smoke"], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_ctrl_c)
    time.sleep(0.5)  # past the interpreter's own start-up, inside the package's imports (status takes seconds)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert out == "", "the signal came after start-up: the test did not test start-up"
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert [ln for ln in err.splitlines() if ln.strip()] == [
        "interrupted; finished runs are kept, re-run the same command to resume."]


# ---------------------------------------------------------------- a full disk names the file being written
_CHILD = """
import resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
from transferlimits.cli import describe_os_error
from transferlimits.runner.outputs import JobFiles, backup
from transferlimits.runtime import atomic_write_bytes
out = Path(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    backup("smoke", [JobFiles("pair", "t__m", (out,), out.with_suffix(".log"))])
except OSError as exc:
    print("backup:", describe_os_error(exc))
try:
    atomic_write_bytes(out, b"y" * 10000)
except OSError as exc:
    print("write:", describe_os_error(exc))
"""


def test_a_write_that_fails_names_the_file_being_written(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another file system than the temporary folder (so the backup must copy)")
    results = shm / f"tl-edges-{os.getpid()}"
    out = tmp_path / "book" / "x.ipynb"
    out.parent.mkdir(parents=True)
    out.write_bytes(b"x" * 20000)  # larger than the child's file-size limit
    try:
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_CHILD), str(out)], capture_output=True,
                              text=True, timeout=300, env=dict(os.environ, TRANSFERLIMITS_RESULTS=str(results)))
        lines = dict(ln.split(": ", 1) for ln in proc.stdout.splitlines() if ": " in ln)
        backup_file = results / "smoke" / ".runtime" / "backup" / Path(*out.resolve().parts[1:])
        assert lines.get("backup", "").startswith(f"{backup_file} (a copy of {out}): "), proc.stdout + proc.stderr
        assert lines.get("write", "").startswith(f"{out}: "), proc.stdout + proc.stderr
        assert out.read_bytes() == b"x" * 20000, "the output itself is untouched"
        assert not [p for p in out.parent.iterdir() if p.name != out.name], "no temporary file left beside it"
    finally:
        shutil.rmtree(results, ignore_errors=True)


def test_os_error_of_a_copy_names_its_destination():
    line = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/r/a.ipynb", None, "/b/a.ipynb"))
    assert line.startswith("no space left on the device while writing /b/a.ipynb (a copy of /r/a.ipynb);")


# ---------------------------------------------------------------- the book swap killed between its renames
def _tree(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "index.html").write_text(text)
    return folder


def test_swap_killed_between_renames_is_finished_by_the_next_command(tmp_path):
    root = make_sandbox(tmp_path / "sandbox")
    build = root / "_build"
    _tree(build / ".html.old", "old book")  # what a SIGKILL after `html -> .html.old` leaves
    _tree(build / ".html.new", "new book")
    proc = cli("status", "--profile", "smoke", env=sandbox_env(root), cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (build / "html" / "index.html").read_text() == "new book"
    assert not (build / ".html.new").exists() and not (build / ".html.old").exists()
    assert "[book] " in proc.stderr and "interrupted swap" in proc.stderr


def test_recover_puts_the_old_book_back_and_never_installs_a_partial_copy(tmp_path):
    build = tmp_path / "_build"
    _tree(build / ".html.old", "old book")  # killed after the first rename, new tree gone (cleaned by hand)
    assert "put back" in recover_html(build)
    assert (build / "html" / "index.html").read_text() == "old book"
    _tree(build / ".html.copying", "half")  # killed while copying: only the copy in progress
    assert recover_html(build) is None and (build / "html" / "index.html").read_text() == "old book"
    built = _tree(tmp_path / "staging" / "html", "new book")
    assert swap_html(built, build) == build / "html"
    assert (build / "html" / "index.html").read_text() == "new book"
    assert sorted(p.name for p in build.iterdir()) == ["html"]
    empty = tmp_path / "first"
    _tree(empty / ".html.copying", "half")  # a first build killed while copying: still no book, not half of one
    assert recover_html(empty) is None and not (empty / "html").exists()
