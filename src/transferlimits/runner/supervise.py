"""Run Snakemake as a child process and supervise it: forward its output, keep Ctrl-C to one line, guard outputs.

:func:`run_snakemake` backs up the grid's outputs (:func:`transferlimits.runner.outputs.backup`), starts
Snakemake with its stdout and stderr forwarded line by line, and, whatever happens, restores the outputs of
failed or interrupted jobs and records those jobs for the next run. On Ctrl-C Snakemake (same process group)
gets the signal too and stops its jobs; its shutdown tracebacks are not forwarded (the forwarding threads block
SIGINT, so the signal always wakes the waiting main thread, which mutes them), the caller prints one line.
:func:`failure_lines` turns the failed jobs into the report (job, log, the error line of the log, what was kept).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Callable, Sequence

from transferlimits import paths
from transferlimits.runner import outputs as out_mod
from transferlimits.runner.outputs import JobFiles

__all__ = ["RunOutcome", "run_snakemake", "failure_lines", "last_error_line"]


class RunOutcome:
    """What a supervised Snakemake run left: exit code, failed jobs (they ran and wrote their log in this run),
    jobs left without outputs that did not run (upstream failed), restored files, interrupted or not."""

    def __init__(self, rc: int, failed: list[JobFiles], restored: list[Path], interrupted: bool,
                 not_run: list[JobFiles] | None = None):
        self.rc, self.failed, self.restored, self.interrupted = rc, failed, restored, interrupted
        self.not_run = list(not_run or [])


def _ran_since(job: JobFiles, t0: float) -> bool:
    """Whether the job ran in this run: Snakemake removes a job's log before it starts, the job writes it anew."""
    try:
        return job.log.stat().st_mtime >= t0 - 1.0
    except OSError:
        return False


def _forward(stream: IO[str], sink: IO[str], muted: threading.Event) -> None:
    # Ctrl-C must land on the main thread, which waits on Snakemake and mutes this forwarding at once. Linux hands
    # a process-wide SIGINT to any thread not blocking it; landed here, it would leave the main thread's wait
    # uninterrupted until Snakemake exits, and its shutdown tracebacks would be forwarded meanwhile.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    for line in iter(stream.readline, ""):
        if not muted.is_set():
            sink.write(line)
            sink.flush()
    stream.close()


def run_snakemake(cmd: Sequence[str], profile: str, jobs: list[JobFiles], cwd: Path | None = None,
                  popen: Callable[..., subprocess.Popen] = subprocess.Popen) -> RunOutcome:
    """Run ``cmd`` with the outputs of ``jobs`` guarded (see the module docstring).

    Args:
        cmd: the Snakemake command line. profile: profile name (where the backup and the record live).
        jobs: every job of the grid (:func:`transferlimits.runner.outputs.grid_jobs`).
        cwd: working directory (default the repository root).
        popen: process factory (tests pass a stand-in).

    Returns:
        A :class:`RunOutcome`; ``interrupted`` is True after Ctrl-C (the caller exits 130).
    """
    t0 = time.time()
    out_mod.backup(profile, jobs)
    previous = out_mod.read_failed(profile)
    muted = threading.Event()
    interrupted = False
    rc = 1
    proc = popen(list(cmd), cwd=cwd or paths.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                 errors="replace", bufsize=1)
    threads = [threading.Thread(target=_forward, args=(s, k, muted), daemon=True)
               for s, k in ((proc.stdout, sys.stdout), (proc.stderr, sys.stderr))]
    for t in threads:
        t.start()
    try:
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            # Snakemake got the same SIGINT: let it stop its jobs and release its locks (killing it would
            # leave stale locks behind); its shutdown tracebacks are not shown.
            muted.set()
            interrupted = True
            try:
                rc = proc.wait(timeout=120)
            except (KeyboardInterrupt, subprocess.TimeoutExpired):
                proc.kill()
                rc = proc.wait()
        for t in threads:
            t.join(timeout=5)
    finally:
        missing, restored, untouched = out_mod.restore(profile, jobs)
        failed = [j for j in missing if _ran_since(j, t0)]
        not_run = [j for j in missing if j not in failed]
        record = {str(f): j.name for j in failed for f in j.outputs}
        # a job that failed before and was not re-made in this run (outside --only, skipped, or its upstream
        # failed) stays recorded
        ours = {f for j in jobs for f in j.outputs}
        record.update({p: n for p, n in previous.items() if Path(p) in untouched or Path(p) not in ours})
        out_mod.write_failed(profile, record)
    return RunOutcome(rc, failed, restored, interrupted, not_run)


def last_error_line(log: Path) -> str:
    """The last ``error: ...`` line of a job log (the notebook runner's one-line reason), else its last line."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if ln.startswith("error:")]
    line = errors[-1] if errors else (lines[-1] if lines else "")
    return line[:400]


def failure_lines(outcome: RunOutcome) -> list[str]:
    """One block per failed job: which run, its log, the error line, and which earlier outputs were kept."""
    root = str(paths.ROOT) + "/"
    lines = []
    restored = set(outcome.restored)
    for job in outcome.failed:
        lines.append(f"[run] FAILED {job.rule} {job.name}: log {str(job.log).replace(root, '')}")
        reason = last_error_line(job.log)
        if reason:
            lines.append(f"      {reason}")
        kept = [f for f in job.outputs if f in restored or f.is_file()]
        if kept:
            lines.append("      earlier result kept: " + ", ".join(str(f).replace(root, "") for f in kept))
        else:
            lines.append("      no earlier result to keep (first run of this job)")
    if outcome.not_run:
        lines.append(f"[run] {len(outcome.not_run)} job(s) not run because a job they need failed: "
                     + ", ".join(j.name for j in outcome.not_run))
    return lines
