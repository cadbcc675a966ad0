"""The wheels the compute path needs on the GPU machine, fetched here into ``.whl/``, and whether they fit the carry limit.

The device runs ``python -m transferlimits compute`` (no Snakemake, papermill, Jupyter or SimpleITK: issue 26), so
by default the roots are only MONAI and nibabel (imported by ``data.io``); ``--grid`` lists the whole Snakemake +
papermill grid's roots instead (what ``run`` would need there: 107.6 MiB of wheels, measured 2026-12-02).

The device machine reaches no package index, so every distribution the grid imports that its image lacks
(``scripts/gpu_image_packages.txt``) must travel with the working tree, which may hold **64 MiB** in all
(tracked files + carried paths, ``../.library/device/README.md``). This script

1. walks the dependency closure of the grid's roots in this ``.venv`` (installed versions, markers evaluated
   for the device's CPython 3.12 on x86_64 Linux; a requirement of 3.12 only, not installed here, is fetched
   at its newest version), minus the image's packages and ``--exclude``;
2. downloads each as a cp312 manylinux wheel, or builds a wheel of a pure-Python sdist (``pip wheel``);
3. prints each wheel's size, the tracked tree's size (``git ls-files``) and their total against the project's
   carry budget, 60 MiB (``BUDGET``: 4 MiB of the 64 left for untracked files and ``.gl``-like carried folders).

Run (here, with network): ``.venv/bin/python scripts/gpu_wheels.py [--exclude simpleitk pulp] [--dry-run]``.
Exit status 0 when tree + wheels fit the budget, 1 when they do not (the numbers say by how much).
``scripts/rehearsal_venv.py`` rehearses the device command in a venv of the image's packages plus these wheels.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

from packaging.markers import Marker

REPO = Path(__file__).resolve().parents[1]
#: what ``python -m transferlimits compute`` imports beyond the image (tests/test_cli_compute.py checks the rest)
ROOTS = ("monai", "nibabel")
#: what the Snakemake + papermill grid (``run``) imports beyond the image
GRID_ROOTS = ("monai", "snakemake", "papermill", "jupytext", "ipykernel", "nbclient", "nbformat", "myst_nb",
              "nibabel", "SimpleITK")
LIMIT = 64 * 2**20
#: what tree + wheels may take (tests/test_reference_on_gpu.py checks it): the limit less room for untracked files
BUDGET = 60 * 2**20
IMAGE_LIST = REPO / "scripts" / "gpu_image_packages.txt"
DEVICE_ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
              "os_name": "posix", "platform_python_implementation": "CPython", "extra": ""}
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (17, 24, 26, 27, 28, 31, 34, 35)] + ["manylinux2014_x86_64",
                                                                                     "manylinux1_x86_64"]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages(path: Path = IMAGE_LIST) -> set[str]:
    """The device image's distributions (normalised names) listed in ``path``."""
    lines = path.read_text().splitlines()
    return {norm(line.strip()) for line in lines if line.strip() and not line.startswith("#")}


def installed_bytes(names) -> int:
    """Bytes of the installed files of ``names`` here, ``__pycache__`` left out: an upper bound of their wheels'
    sizes (a wheel is these files deflated, plus a few hundred bytes of zip headers per file)."""
    total = 0
    for name in names:
        files = md.distribution(name).files or []
        total += sum(f.size or 0 for f in files if "__pycache__" not in f.parts)
    return total


def closure(roots, have: set[str], exclude: set[str]) -> dict[str, str]:
    """``{distribution: installed version}`` the roots need beyond ``have`` (names normalised)."""
    out: dict[str, str] = {}

    def walk(name: str) -> None:
        n = norm(name)
        if n in out or n in have or n in exclude:
            return
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:  # needed on the device's Python only (a marker): fetched unpinned,
            out[n] = ""                  # its own requirements unknown here
            return
        out[n] = dist.version
        for req in dist.requires or []:
            spec, _, marker = req.partition(";")
            if marker and not Marker(marker.strip()).evaluate(DEVICE_ENV):
                continue
            walk(re.split(r"[ <>=!~\[(]", spec.strip())[0])

    for root in roots:
        walk(root)
    return out


def fetch(name: str, version: str, dest: Path) -> None:
    pin = f"{name}=={version}" if version else name
    binary = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
              "3.12", "--implementation", "cp", *(a for p in PLATFORMS for a in ("--platform", p)), "-d", str(dest), pin]
    if subprocess.run(binary, capture_output=True).returncode == 0:
        return
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), pin]
    proc = subprocess.run(build, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"gpu_wheels: no wheel for {pin}: {proc.stderr.strip().splitlines()[-1:]}")


def tracked_bytes() -> int:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    return sum((REPO / f.decode()).stat().st_size for f in files if f and (REPO / f.decode()).is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exclude", nargs="*", default=[], help="distributions left out (e.g. simpleitk pulp)")
    ap.add_argument("--dest", default=str(REPO / ".whl"), help="wheel folder (default .whl, git-ignored)")
    ap.add_argument("--dry-run", action="store_true", help="list the distributions, download nothing")
    ap.add_argument("--grid", action="store_true", help="the whole `run` grid's roots instead of the compute path's")
    args = ap.parse_args(argv)
    need = closure(GRID_ROOTS if args.grid else ROOTS, image_packages(), {norm(e) for e in args.exclude})
    print(f"{len(need)} distribution(s) beyond the image: "
          + " ".join(f"{n}=={v}" if v else f"{n} (not installed here: newest)" for n, v in sorted(need.items())))
    if args.dry_run:
        return 0
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, version in sorted(need.items()):
        fetch(name, version, dest)
    wheels = sorted(dest.glob("*.whl"), key=lambda p: -p.stat().st_size)
    total, tree = sum(w.stat().st_size for w in wheels), tracked_bytes()
    for w in wheels[:10]:
        print(f"{w.stat().st_size / 2**20:8.1f} MiB  {w.name}")
    left = BUDGET - tree - total
    print(f"wheels {total / 2**20:.1f} MiB ({len(wheels)} files) + tracked tree {tree / 2**20:.1f} MiB = "
          f"{(total + tree) / 2**20:.1f} MiB of the {BUDGET / 2**20:.0f} MiB budget ({LIMIT / 2**20:.0f} MiB "
          "limit): " + ("fits" if left >= 0 else f"over by {-left / 2**20:.1f} MiB"))
    return 0 if left >= 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
