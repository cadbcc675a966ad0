"""Shared fixtures: ONE smoke study per test session, run in a sandbox root, then the book built.

The sandbox is a temporary TRANSFERLIMITS_ROOT whose ``src``, ``notebooks``, ``workflow`` and ``data``
are symlinks to the checkout and whose ``book/``, ``_config.yml`` and ``_toc.yml`` are copies: the
run writes ``results/`` and ``book/generated/`` and the book build writes ``_build/`` inside the sandbox,
never into the checkout. Set ``TRANSFERLIMITS_TEST_SANDBOX=/some/dir`` to keep and reuse a sandbox between
sessions (Snakemake then re-runs only what changed).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from transferlimits import paths

REPO = Path(__file__).resolve().parents[1]
LINKED = ("src", "notebooks", "workflow", "data")
COPIED = ("book", "_config.yml", "_toc.yml")


@dataclass
class SmokeStudy:
    """A finished smoke study in a sandbox root."""

    root: Path
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def cli(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run ``python -m transferlimits ARGS`` in the sandbox."""
        proc = subprocess.run([sys.executable, "-m", "transferlimits", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode:
            raise AssertionError(f"transferlimits {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
        return proc

    @property
    def results(self) -> Path:
        return self.root / "results" / "smoke"

    @property
    def generated(self) -> Path:
        return self.root / "book" / "generated" / "smoke"

    @property
    def html(self) -> Path:
        return self.root / "_build" / "html"


def default_ctrl_c() -> None:
    """``preexec_fn`` of a child that a test interrupts: SIGINT as a terminal gives it. A suite started as a
    background job (``make test &``) hands every child an ignored SIGINT; Python then installs no handler and the
    test's Ctrl-C would be lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def make_sandbox(root: Path) -> Path:
    """Create (or refresh) a sandbox root: links to the code and data, copies of the book sources."""
    root.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        link = root / name
        if not link.exists() and (REPO / name).exists():
            link.symlink_to(REPO / name)
    for name in COPIED:
        src, dst = REPO / name, root / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("generated", "_build", ".ipynb_checkpoints"))
        else:
            shutil.copy2(src, dst)
    return root


def sandbox_env(root: Path) -> dict[str, str]:
    env = dict(os.environ, TRANSFERLIMITS_ROOT=str(root), PYTHONUNBUFFERED="1")
    if (REPO / ".git").exists():  # provenance names the checkout's commit, not the sandbox's
        env.update(GIT_DIR=str(REPO / ".git"), GIT_WORK_TREE=str(REPO))
    env.pop("TRANSFERLIMITS_RESULTS", None)
    return env


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> SmokeStudy:
    """Run the smoke study (Snakemake + papermill, 2 cores) and build the book, once per session."""
    keep = os.environ.get("TRANSFERLIMITS_TEST_SANDBOX")
    # a checkout path with a space and non-ASCII letters: every shell command of the workflow must quote its paths
    root = make_sandbox(Path(keep) if keep else tmp_path_factory.mktemp("sandbox") / "my checkout ünï")
    if not (root / "data" / "geometry" / "picai_geometry.npz").exists():
        pytest.skip("the geometry pack data/geometry/picai_geometry.npz is missing (scripts/build_geometry_pack.py)")
    study = SmokeStudy(root, sandbox_env(root))
    t0 = time.time()
    study.cli("run", "--profile", "smoke", "--cores", "2", timeout=1700)
    study.timings["run_s"] = round(time.time() - t0, 1)
    t1 = time.time()
    proc = study.cli("book", "--profile", "smoke", timeout=600)
    study.timings["book_s"] = round(time.time() - t1, 1)
    assert proc.stdout.strip().endswith("index.html"), proc.stdout
    (root / "_build").mkdir(exist_ok=True)
    (root / "_build" / "timings.json").write_text(json.dumps(study.timings, indent=2))
    print(f"\n[smoke study] sandbox {root}: {study.timings}", file=sys.stderr)
    return study


def pytest_collection_modifyitems(session, config, items):
    """Run test_new_task last: it adds a point to the shared smoke study (and re-runs its alignment)."""
    items.sort(key=lambda item: item.module.__name__.endswith("test_new_task"))


@pytest.fixture()
def tree(tmp_path):
    """(images, labels) copies of the shipped exams and labels, metadata kept (copytree uses copy2)."""
    images, labels = tmp_path / "images", tmp_path / "labels"
    shutil.copytree(paths.REAL_CASES, images)
    shutil.copytree(paths.PICAI_LABELS, labels)
    return images, labels
