"""Nothing lost, nothing silently wrong, at the runner (issue 14): outputs kept through failed and interrupted
runs, one notion of "usable output", one-line errors for bad options, read-only folders, full disks and
corrupt checkpoints, and a book build that swaps only when it succeeded."""

from __future__ import annotations

import argparse
import errno
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
import torch

from conftest import default_ctrl_c, make_sandbox, sandbox_env
from transferlimits.cli import describe_os_error
from transferlimits.runner import outputs as out_mod
from transferlimits.runner import workflow as wf
from transferlimits.runner.cli_book import swap_html
from transferlimits.runner.overrides import overrides_json, parse_overrides
from transferlimits.runner.supervise import _forward, failure_lines, last_error_line, run_snakemake

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "transferlimits", *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=timeout, cwd=REPO)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The stderr of a refused command: exactly one ``error:`` line and no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


# ---------------------------------------------------------------- outputs of a grid and their checks
def test_grid_jobs_name_every_output_and_log(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path))
    grid = wf.build_grid("smoke")
    jobs = out_mod.grid_jobs(grid)
    rules = [j.rule for j in jobs]
    assert rules.count("pair") == len(grid.pairs) == 10 and rules.count("resolve_profile") == 1
    assert rules.count("pretrain") == len(grid.pretrain) and rules.count("data") == 1
    run = next(j for j in jobs if j.rule == "pair" and j.name == "classification__provicnet")
    assert [f.name for f in run.outputs] == ["classification__provicnet.ipynb", "classification__provicnet.json"]
    assert run.outputs[1].parent == tmp_path / "smoke" / "pairs"
    assert run.points == ("classification__provicnet__seed0", "classification__provicnet__seed0__swapped")
    assert run.log.parent == tmp_path / "smoke" / "logs"
    assert len({f for j in jobs for f in j.outputs}) == sum(len(j.outputs) for j in jobs)  # no output twice
    # render-only: a pre-training's page is its only output (weights computed elsewhere may not be here)
    pre = [j.outputs for j in out_mod.grid_jobs(grid, render_only=True) if j.rule == "pretrain"]
    assert pre and all([f.suffix for f in outs] == [".ipynb"] for outs in pre)
    # ... and so is the data page's: it reads the computing run's manifest and linear references, never re-makes them
    data = [j.outputs for j in out_mod.grid_jobs(grid, render_only=True) if j.rule == "data"]
    assert [[f.name for f in outs] for outs in data] == [["00_data.ipynb"]]
    assert [f.name for j in jobs if j.rule == "data" for f in j.outputs] == \
        ["00_data.ipynb", "manifest.json", "linear_references.json"]
    assert all(any(f.name == "encoder.pt" for f in j.outputs) for j in jobs if j.rule == "pretrain")


def _notebook(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), str(path))
    return path


@pytest.mark.parametrize("name, content, problem", [
    ("metrics.json", None, "missing"),
    ("metrics.json", b"", "unparseable: empty file"),
    ("metrics.json", b'{"task": "classification", "mod', "unparseable"),
    ("metrics.json", b'{"task": "classification"}', "unparseable"),  # parses, but is not a metrics.json
    ("x.ipynb", b'{"cells": [', "unparseable"),
    ("encoder.pt", b"PK\x03\x04 cut here", "unparseable: not a complete zip archive"),
    ("manifest.json", b"[1, 2", "unparseable"),
])
def test_check_output_finds_missing_and_unparseable(tmp_path, name, content, problem):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert out_mod.check_output(path).startswith(problem)


def test_check_output_accepts_complete_files(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "encoder.pt")
    (tmp_path / "manifest.json").write_text(json.dumps({"cases": {}}))
    for f in (tmp_path / "encoder.pt", tmp_path / "manifest.json", _notebook(tmp_path / "a.ipynb")):
        assert out_mod.check_output(f) is None, f
    full = (tmp_path / "encoder.pt").read_bytes()
    (tmp_path / "encoder.pt").write_bytes(full[: len(full) - 30])  # the zip directory is at the end
    assert out_mod.check_output(tmp_path / "encoder.pt") is not None


# ---------------------------------------------------------------- backup and restore around a run
class FakeSnakemake:
    """Stands in for the Snakemake process: ``action()`` runs in ``wait`` (delete, rewrite, raise)."""

    def __init__(self, action, rc: int = 1):
        self.action, self.rc = action, rc
        self.stdout = open(os.devnull)
        self.stderr = open(os.devnull)
        self.calls = 0

    def __call__(self, *args, **kw):
        return self

    def wait(self, timeout=None):
        self.calls += 1
        if self.calls == 1:
            self.action()
        return self.rc

    def kill(self):
        pass


def _finished_grid(tmp_path, monkeypatch) -> list[out_mod.JobFiles]:
    """Three jobs with complete outputs (distinct contents) under a temporary results folder."""
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path / "results"))
    jobs = [out_mod.JobFiles("task_run", f"t/m/seed{i}", (tmp_path / "gen" / f"p{i}.ipynb",
                                                           tmp_path / "results" / "smoke" / f"p{i}" / "metrics.json"),
                             tmp_path / "results" / "smoke" / "logs" / f"p{i}.log") for i in range(3)]
    for j in jobs:
        for f in j.outputs:
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(f"old {f.name} of {j.name}")
    return jobs


def test_failed_job_gets_its_earlier_result_back_and_is_recorded(tmp_path, monkeypatch):
    jobs = _finished_grid(tmp_path, monkeypatch)
    old = {f: f.read_text() for j in jobs for f in j.outputs}

    def snakemake():  # job 0 fails (Snakemake removes its outputs), job 1 succeeds (atomic rewrite)
        for f in jobs[0].outputs:
            f.unlink()
        jobs[0].log.parent.mkdir(parents=True, exist_ok=True)
        jobs[0].log.write_text("papermill noise\nerror: /w/bad.pt: truncated or corrupt checkpoint (100 bytes)\n")
        for f in jobs[1].outputs:
            tmp = f.with_suffix(".tmp")
            tmp.write_text("new")
            os.replace(tmp, f)

    outcome = run_snakemake(["snakemake"], "smoke", jobs, popen=FakeSnakemake(snakemake))
    assert outcome.rc == 1 and not outcome.interrupted and outcome.failed == [jobs[0]]
    assert {f: f.read_text() for f in jobs[0].outputs + jobs[2].outputs} == {
        f: old[f] for f in jobs[0].outputs + jobs[2].outputs}
    assert all(f.read_text() == "new" for f in jobs[1].outputs)
    assert set(out_mod.read_failed("smoke")) == {str(f) for f in jobs[0].outputs}
    report = "\n".join(failure_lines(outcome))
    assert "FAILED task_run t/m/seed0" in report and str(jobs[0].log) in report
    assert "error: /w/bad.pt: truncated or corrupt checkpoint" in report and "earlier result kept" in report
    assert not (tmp_path / "results" / "smoke" / out_mod.BACKUP_DIR).exists()

    # the next run re-makes job 0: the record is cleared; a job failing for the first time has nothing to keep
    def second():
        for f in jobs[0].outputs:
            f.with_suffix(".tmp").write_text("fixed")
            os.replace(f.with_suffix(".tmp"), f)
        for f in jobs[2].outputs:
            f.unlink()
        jobs[2].log.write_text("error: boom\n")

    outcome = run_snakemake(["snakemake"], "smoke", jobs, popen=FakeSnakemake(second))
    assert outcome.failed == [jobs[2]] and set(out_mod.read_failed("smoke")) == {str(f) for f in jobs[2].outputs}
    assert all(f.read_text() == "fixed" for f in jobs[0].outputs)


def test_forwarding_threads_leave_ctrl_c_to_the_main_thread():
    """A SIGINT landing on a forwarding thread would not wake the main thread's wait: they must block it."""
    seen = []

    class Sink(io.StringIO):
        def write(self, text):
            seen.append(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))
            return super().write(text)

    sink = Sink()
    t = threading.Thread(target=_forward, args=(io.StringIO("a\nb\n"), sink, threading.Event()))
    t.start()
    t.join(timeout=10)
    assert sink.getvalue() == "a\nb\n" and seen == [True, True]
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the caller's thread is untouched


def test_interrupted_run_restores_outputs(tmp_path, monkeypatch):
    jobs = _finished_grid(tmp_path, monkeypatch)
    old = {f: f.read_text() for j in jobs for f in j.outputs}

    def interrupted():
        for f in jobs[2].outputs:
            f.unlink()
        jobs[2].log.parent.mkdir(parents=True, exist_ok=True)
        jobs[2].log.write_text("killed\n")
        raise KeyboardInterrupt

    outcome = run_snakemake(["snakemake"], "smoke", jobs, popen=FakeSnakemake(interrupted, rc=130))
    assert outcome.interrupted and outcome.failed == [jobs[2]]
    assert {f: f.read_text() for j in jobs for f in j.outputs} == old


def test_first_run_failure_has_nothing_to_keep_and_skipped_jobs_are_not_failures(tmp_path, monkeypatch):
    jobs = _finished_grid(tmp_path, monkeypatch)
    for f in jobs[1].outputs + jobs[2].outputs:  # never made; job 1 runs and fails, job 2 is not run
        f.unlink()

    def snakemake():
        jobs[1].log.parent.mkdir(parents=True, exist_ok=True)
        jobs[1].log.write_text("error: the first attempt failed\n")

    outcome = run_snakemake(["snakemake"], "smoke", jobs, popen=FakeSnakemake(snakemake))
    assert outcome.failed == [jobs[1]] and outcome.not_run == [jobs[2]] and outcome.restored == []
    report = "\n".join(failure_lines(outcome))
    assert "no earlier result to keep" in report and "FAILED task_run t/m/seed2" not in report
    assert "1 job(s) not run because a job they need failed: t/m/seed2" in report
    assert set(out_mod.read_failed("smoke")) == {str(f) for f in jobs[1].outputs}
    assert last_error_line(tmp_path / "nope.log") == ""


# ---------------------------------------------------------------- the book: build, then swap
def test_swap_html_keeps_the_old_book_when_the_copy_fails(tmp_path):
    build = tmp_path / "_build"
    (build / "html").mkdir(parents=True)
    (build / "html" / "index.html").write_text("old book")
    built = tmp_path / "staging" / "html"
    built.mkdir(parents=True)
    (built / "index.html").write_text("new book")

    def disk_full(src, dst):
        Path(dst).mkdir()
        (Path(dst) / "index.html").write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    with pytest.raises(OSError):
        swap_html(built, build, copy=disk_full)
    assert (build / "html" / "index.html").read_text() == "old book"
    assert not (build / ".html.new").exists()
    assert swap_html(built, build) == build / "html"
    assert (build / "html" / "index.html").read_text() == "new book" and not (build / ".html.old").exists()


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "no space left on the device while writing /r/metrics.json"),
    (errno.EROFS, "cannot write /r/metrics.json (Read-only file system)"),
    (errno.EACCES, "cannot write /r/metrics.json (Permission denied)"),
    (errno.EIO, "/r/metrics.json: Input/output error"),
])
def test_os_errors_become_one_line(code, words):
    line = describe_os_error(OSError(code, os.strerror(code), "/r/metrics.json"))
    assert words in line and "\n" not in line


# ---------------------------------------------------------------- overrides and options refused at the edge
def test_set_overrides_nest_merge_and_validate():
    got = parse_overrides(["grid.shape=[16,32,32]", "encoder_sizes.profound=test", "seeds=[0]"], "picai")
    assert got["grid"] == {"shape": [16, 32, 32]} and got["seeds"] == [0]
    assert got["encoder_sizes"] == {"profound": "test", "provicnet": "vits14"}  # merged, not replaced
    assert overrides_json(got) == json.dumps(got, sort_keys=True, separators=(",", ":")) and overrides_json({}) == ""
    for items, words in ((["seeds=[-1]"], "expected a tuple of ints >= 0"), (["nope=1"], "unknown profile field"),
                         (["seeds"], "not KEY=VALUE"), (["finetune.epochs=0"], "FinetuneRecipe.epochs")):
        with pytest.raises(ValueError, match=words):
            parse_overrides(items, "smoke")


def test_picai_without_data_and_bad_options_fail_at_once(tmp_path):
    env = {"TRANSFERLIMITS_RESULTS": str(tmp_path / "results")}
    line = one_error_line(cli("run", "--profile", "picai", "--dry-run", env=env))
    assert "--data DIR" in line and "--labels DIR" in line
    line = one_error_line(cli("run", "--profile", "picai", "--data", str(tmp_path), "--labels", str(tmp_path),
                              "--dry-run", env=env))
    assert f"--labels {tmp_path}: not a picai_labels checkout" in line
    line = one_error_line(cli("run", "--profile", "smoke", "--labels", str(tmp_path), "--dry-run", env=env))
    assert "apply to profile 'picai' only" in line
    line = one_error_line(cli("run", "--profile", "smoke", "--set", "seeds=[-2]", "--dry-run", env=env))
    assert "Profile.seeds" in line
    bad = tmp_path / "bad.pt"
    torch.save({"w": torch.zeros(4)}, bad)
    bad.write_bytes(bad.read_bytes()[:100])
    line = one_error_line(cli("run", "--profile", "smoke", "--weights", f"profound={bad}", "--dry-run", env=env))
    assert f"--weights profound={bad}" in line and "truncated or corrupt" in line
    assert not (tmp_path / "results").exists(), "a refused command wrote into the results folder"


def test_read_only_results_folder_is_one_line(tmp_path):
    target = Path("/sys/transferlimits-results")  # /sys refuses new folders, even to root
    try:
        target.mkdir()
    except OSError:
        pass
    else:
        target.rmdir()
        pytest.skip("no read-only folder to test with")
    proc = cli("run", "--profile", "smoke", env={"TRANSFERLIMITS_RESULTS": str(target)})
    assert proc.returncode == 2
    assert f"{target}/smoke: cannot write there" in one_error_line(proc)


@pytest.mark.parametrize("option", ["--task-module", "--model-module"])
@pytest.mark.parametrize("body, says", [("raise RuntimeError('bad registration')", "raised while it was imported: "
                                         "RuntimeError: bad registration"),
                                        ("import no_such_package_xyz", "cannot be imported")])
def test_a_module_that_fails_at_import_is_named_in_one_line(tmp_path, option, body, says):
    (tmp_path / "broken_ext.py").write_text(body + "\n")
    proc = cli("run", "--profile", "smoke", "--dry-run", option, "broken_ext",
               env={"PYTHONPATH": str(tmp_path), "TRANSFERLIMITS_RESULTS": str(tmp_path / "results")})
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert f"{option} 'broken_ext'" in line and says in line, line


def test_help_lists_the_new_options():
    from transferlimits.runner.params import PARAMETER_HELP

    out = cli("run", "--help").stdout
    for opt in ("--labels", "--set", "--model-module"):
        assert opt in out
    assert " ".join(PARAMETER_HELP.split()[:4]) in " ".join(out.split())
    assert "--skip-incomplete" in cli("data", "--help").stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    root = make_sandbox(tmp_path / "sandbox")
    proc = subprocess.Popen([sys.executable, "-m", "transferlimits", "run", "--profile", "smoke", "--cores", "1",
                             "--only", "task=classification,model=profound"], cwd=root, env=sandbox_env(root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=default_ctrl_c)  # a background suite's children ignore SIGINT otherwise
    log = root / "results" / "smoke" / "logs" / "00_data.log"
    deadline = time.time() + 600
    while not log.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(1)
    assert log.exists(), "the data job never started"
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("interrupted; finished runs are kept")
    locks = root / ".snakemake" / "locks"
    assert not locks.exists() or not any(locks.iterdir()), "Snakemake left its locks behind"
