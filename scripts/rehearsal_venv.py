"""The GPU command rehearsed in a virtual environment that holds only the device image's packages (issue 26, item 4).

``REHEARSE=1 scripts/reference_on_gpu.sh`` on this machine's full ``.venv`` would pass even if the compute path
imported something the device lacks. This script builds ``DEST/venv`` (``venv --without-pip``) and links into its
site-packages, from this interpreter's, exactly

* the distributions of ``scripts/gpu_image_packages.txt`` that are installed here, and
* those that only this older Python needs (a requirement of an image or carried distribution whose marker holds
  here but not on the device's CPython 3.12, e.g. nibabel's ``importlib-resources``), listed as such;

then runs the exact device command with ``PYTHON=DEST/venv/bin/python`` in a sandbox root (``DEST/root``: links
to the checkout's code and data, so ``results/`` is written there, not into the checkout). The command installs
the carried wheels (``--wheels``, default ``.whl``; fetched by ``scripts/gpu_wheels.py`` when one is missing)
with the venv's pip into ``DEST/site``, as it does on the device. A ``sitecustomize`` in the venv logs the
top-level modules each Python process imported; they are mapped to distributions and every one must be in the
image, carried, or rehearsal-only.

Run: ``.venv/bin/python scripts/rehearsal_venv.py [--dest DIR] [-- EXTRA COMPUTE ARGS]``. Prints the wall time,
the command's exit status and what each process imported (also in ``DEST/rehearsal.json``). Exit status: the
command's (0 when it passed), 4 when a process imported a distribution outside that set or no ``compute`` process
ran, 2 when the environment could not be built (the reason said).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
from pathlib import Path

from packaging.requirements import Requirement

import gpu_wheels as gw

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "reference_on_gpu.sh"
LINKED = ("src", "notebooks", "workflow", "data")
COPIED = ("book", "_config.yml", "_toc.yml")
PROJECT = "transferlimits"  # this project's own distribution (its code runs from the checkout's src/)
DEFAULT_ARGS = ("--only", "task=classification,model=profound")
#: written into the venv: appends {argv, top-level modules} of each Python process to $REHEARSAL_IMPORT_LOG
SITECUSTOMIZE = '''import atexit, json, os, sys
def _rehearsal_log():
    path = os.environ.get("REHEARSAL_IMPORT_LOG")
    if path:
        mods = sorted({m.split(".")[0] for m, v in list(sys.modules.items()) if v is not None})
        with open(path, "a") as fh:
            fh.write(json.dumps({"argv": sys.argv[:2], "modules": mods}) + "\\n")
atexit.register(_rehearsal_log)
'''


def here_only(roots: set[str], have: set[str]) -> dict[str, str]:
    """``{distribution: why}`` required by ``roots`` (and so on) on this Python but not on the device's.

    Args:
        roots: normalised names of the image's and the carried distributions installed here.
        have: normalised names already provided (image + carried).
    """
    out: dict[str, str] = {}
    todo = [(r, False) for r in sorted(roots)]
    while todo:
        name, pulled = todo.pop()
        try:
            requires = md.distribution(name).requires or []
        except md.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            here = req.marker is None or req.marker.evaluate({"extra": ""})
            device = req.marker is None or req.marker.evaluate(gw.DEVICE_ENV)
            dep = gw.norm(req.name)
            if here and (pulled or not device) and dep not in have and dep not in out:
                out[dep] = f"required by {name} on Python {sys.version_info.major}.{sys.version_info.minor} only"
                todo.append((dep, True))
    return out


def link_distributions(names: set[str], site: Path, dest: Path) -> list[str]:
    """Symlink into ``dest`` the installed files of ``names`` found in ``site``; returns the names linked.

    A top-level entry (package folder, module, ``.dist-info``) owned only by ``names`` is linked whole; one shared
    with another distribution (a namespace folder) is made a folder and only the files of ``names`` are linked.

    Args:
        names: normalised distribution names; those not installed in ``site`` are left out.
        site: the site-packages folder they are installed in (this interpreter's).
        dest: the venv's site-packages folder.
    """
    owners: dict[str, set[str]] = {}
    dists = {}
    for dist in md.distributions(path=[str(site)]):
        name = gw.norm(dist.metadata["Name"])
        dists.setdefault(name, dist)
        for f in dist.files or []:
            owners.setdefault(f.parts[0], set()).add(name)
    linked = []
    for name in sorted(names & set(dists)):
        for f in dists[name].files or []:
            if f.parts[0] == ".." or not (site / f).exists():
                continue  # scripts outside site-packages; byte-code not written
            whole = owners[f.parts[0]] <= names
            rel = Path(f.parts[0]) if whole else Path(*f.parts)
            target = dest / rel
            if not target.exists() and not target.is_symlink():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(site / rel)
        linked.append(f"{name}=={dists[name].version}")
    return linked


def make_sandbox(root: Path) -> None:
    """Make a TRANSFERLIMITS_ROOT with links to the checkout's code and data and copies of the book sources.

    Args:
        root: the sandbox folder (created; an existing one is refreshed).
    """
    root.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        if (REPO / name).exists() and not (root / name).exists():
            (root / name).symlink_to(REPO / name)
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("generated", "_build"))
        elif src.exists():
            shutil.copy2(src, root / name)


def imported_distributions(log: Path) -> list[dict]:
    """Per logged process: its argv and the distributions of the top-level modules it imported.

    Args:
        log: the JSON-lines file the venv's ``sitecustomize`` appended to, one line per process.
    """
    owners = md.packages_distributions()
    rows = []
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        dists = {gw.norm(d) for m in entry["modules"] if m not in sys.stdlib_module_names for d in owners.get(m, [])}
        local = [m for m in entry["modules"] if m not in sys.stdlib_module_names and m not in owners
                 and not m.startswith("_") and m not in ("sitecustomize", "cython_runtime")]
        rows.append({"argv": entry["argv"], "distributions": sorted(dists), "not_installed_here": local})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", default=None, help="work folder (default: a new temporary one, kept)")
    ap.add_argument("--wheels", default=str(REPO / ".whl"), help="carried wheels (default .whl)")
    ap.add_argument("--stop-after", type=int, default=300, help="STOP_AFTER of the command (default 300 s)")
    ap.add_argument("--cal-seconds", type=int, default=5, help="CAL_SECONDS of the command (default 5 s)")
    ap.add_argument("extra", nargs="*", help=f"compute arguments (default: {' '.join(DEFAULT_ARGS)})")
    args = ap.parse_args(argv)
    for flag, value in (("--stop-after", args.stop_after), ("--cal-seconds", args.cal_seconds)):
        if value < 1:
            raise ValueError(f"{flag} must be a positive number of seconds, got {value}")
    dest = Path(args.dest or tempfile.mkdtemp(prefix="rehearsal_venv_")).resolve()
    wheels = Path(args.wheels).resolve()
    image = gw.image_packages()
    carried_need = gw.closure(gw.ROOTS, image, set())
    have_wheels = {gw.norm(w.name.split("-")[0]) for w in wheels.glob("*.whl")}
    if not set(carried_need) <= have_wheels:
        print(f"[rehearsal] fetching the carried wheels into {wheels} (scripts/gpu_wheels.py)", flush=True)
        try:
            gw.main(["--dest", str(wheels)])
        except (SystemExit, OSError) as exc:  # no index reachable: gpu_wheels says which wheel it could not get
            print(f"[rehearsal] cannot build: fetching the wheels failed ({exc})")
            return 2
        have_wheels = {gw.norm(w.name.split("-")[0]) for w in wheels.glob("*.whl")}
        if not set(carried_need) <= have_wheels:
            print(f"[rehearsal] cannot build: no wheel for {sorted(set(carried_need) - have_wheels)}")
            return 2
    site = Path(sysconfig.get_paths()["purelib"])
    installed = {gw.norm(d.metadata["Name"]) for d in md.distributions()}
    extra_here = here_only((image & installed) | have_wheels, image | have_wheels)
    try:
        venv.EnvBuilder(clear=True, with_pip=False, symlinks=True).create(dest / "venv")
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"[rehearsal] cannot build: venv failed ({exc})")
        return 2
    python = dest / "venv" / "bin" / "python"
    venv_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                    capture_output=True, text=True, check=True).stdout.strip())
    linked = link_distributions(image | set(extra_here), site, venv_site)
    (venv_site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    make_sandbox(dest / "root")
    log, out = dest / "imports.jsonl", dest / "out"
    log.unlink(missing_ok=True)
    shutil.rmtree(dest / "site", ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TRANSFERLIMITS_", "VIRTUAL_ENV"))}
    env.update(REHEARSE="1", PYTHON=str(python), OUT=str(out), SITE=str(dest / "site"), WHEELS=str(wheels),
               STOP_AFTER=str(args.stop_after), CAL_SECONDS=str(args.cal_seconds), PYTHONNOUSERSITE="1",
               TRANSFERLIMITS_ROOT=str(dest / "root"), REHEARSAL_IMPORT_LOG=str(log))
    if (REPO / ".git").exists():  # provenance names the checkout's commit, not the sandbox's
        env.update(GIT_DIR=str(REPO / ".git"), GIT_WORK_TREE=str(REPO))
    print(f"[rehearsal] venv {python}: {len(linked)} image distributions linked; rehearsal-only: "
          f"{extra_here or 'none'}; carried wheels: {sorted(w.name for w in wheels.glob('*.whl'))}", flush=True)
    t0 = time.time()
    rc = subprocess.run(["bash", str(SCRIPT), *(args.extra or DEFAULT_ARGS)], env=env).returncode
    wall = time.time() - t0
    allowed = image | have_wheels | set(extra_here) | {PROJECT}
    rows = imported_distributions(log) if log.exists() else []
    outside = sorted({d for r in rows for d in r["distributions"]} - allowed)
    computed = any("compute" in r["argv"] for r in rows)
    for row in rows:
        print(f"[rehearsal] {' '.join(row['argv'])}: {' '.join(row['distributions'])}"
              + (f" (+ {' '.join(row['not_installed_here'])})" if row["not_installed_here"] else ""))
    summary = {"rc": rc, "wall_s": round(wall, 1), "compute_logged": computed, "outside_image_and_carry": outside,
               "rehearsal_only": extra_here, "carried_wheels": sorted(w.name for w in wheels.glob("*.whl")),
               "out": sorted(p.name for p in out.glob("*")) if out.exists() else []}
    print(f"[rehearsal] {json.dumps(summary)}")
    (dest / "rehearsal.json").write_text(json.dumps(dict(summary, processes=rows), indent=2))
    if rc == 0 and (outside or not computed):
        why = (f"imported {outside}, neither in the image nor carried (add them to scripts/gpu_wheels.py ROOTS)"
               if outside else "no compute process logged")
        print(f"[rehearsal] FAILED: {why}")
        return 4
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
