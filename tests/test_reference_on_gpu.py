"""The GPU command of issue 15 rehearsed on the CPU (``REHEARSE=1 scripts/reference_on_gpu.sh``): the same
script, the reference profile shrunk by ``--set`` overrides, one (task, model) point, in this ``.venv`` and in a
venv holding only the device image's packages plus the carried wheels (``scripts/rehearsal_venv.py``, issue 26);
and the wheel list of ``scripts/gpu_wheels.py`` (what must travel to the device machine) and its size."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import make_sandbox, sandbox_env

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "reference_on_gpu.sh"


def rehearse(root: Path, out: Path, stop_after: int) -> subprocess.CompletedProcess:
    env = dict(sandbox_env(root), REHEARSE="1", OUT=str(out), CAL_SECONDS="3", STOP_AFTER=str(stop_after),
               PYTHON=sys.executable)
    return subprocess.run(["bash", str(SCRIPT), "--only", "task=classification,model=profound"], env=env,
                          capture_output=True, text=True, timeout=stop_after + 120)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_rehearsal_calibrates_then_stops_itself_before_its_limit_and_packs_what_finished(tmp_path):
    """One call, stopped by its own limit (``compute --stop-after``) before the grid is done; that the same command
    then resumes is tests/test_cli_compute.py's."""
    root, out = make_sandbox(tmp_path / "sandbox"), tmp_path / "out"
    proc = rehearse(root, out, stop_after=40)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (out / "run.log").read_text()
    assert "resume with the same command" in log or "[compute] done in" in log, log[-3000:]
    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["chosen"] == "as-given" and calibration["sets"] == []  # REHEARSE=1: the ladder "none"
    loops = {row["loop"]: row for row in calibration["levels"][0]["loops"]}
    assert set(loops) == {"pretrain profound", "finetune profound", "pretrain provicnet", "finetune provicnet"}
    assert all(row["tflops"] > 0 and row["mfu_measured_peak"] > 0 and row["steps"] >= 2 for row in loops.values())
    with tarfile.open(out / "reference_results.tar.gz") as tar:
        names = set(tar.getnames())
    assert "reference/profile.json" in names and "reference/grid.json" in names
    assert not any(n.endswith("checkpoint_last.pt") for n in names)
    assert not (REPO / "results" / "reference").exists(), "the rehearsal wrote into the checkout"


def _script(name: str):
    """A module of scripts/, registered in sys.modules (rehearsal_venv imports gpu_wheels by name)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _gpu_wheels():
    return _script("gpu_wheels")


def test_wheel_closure_follows_installed_requirements_and_stops_at_the_image_and_exclusions():
    gw = _gpu_wheels()
    assert set(gw.ROOTS) == {"monai", "nibabel"}  # the compute path (issue 26); the grid's roots: --grid
    need = gw.closure(["papermill"], have=set(), exclude=set())
    assert need["papermill"] == importlib.metadata.version("papermill")
    assert {"nbclient", "nbformat", "jupyter-client"} <= set(need)  # papermill -> nbclient -> jupyter-client
    # papermill asks for aiohttp on Python >= 3.12 only (the device's), not installed beside 3.11: listed unpinned
    assert need.get("aiohttp") == ("" if sys.version_info < (3, 12) else importlib.metadata.version("aiohttp"))
    pruned = gw.closure(["papermill"], have={"nbformat"}, exclude={"nbclient"})
    assert "papermill" in pruned and "nbclient" not in pruned and "nbformat" not in pruned
    lines = (REPO / "scripts" / "gpu_image_packages.txt").read_text().splitlines()
    image = {gw.norm(line.strip()) for line in lines if line.strip() and not line.startswith("#")}
    assert "torch" in image and "snakemake" not in image


def test_tracked_tree_plus_carried_wheels_fit_the_60_mib_budget():
    """Deliver item 3: what travels to the device (tracked files + the compute path's wheels) stays within 60 MiB of
    the 64 MiB limit; the wheels are bounded by their installed files (a wheel is them deflated)."""
    gw = _gpu_wheels()
    assert gw.BUDGET == 60 * 2**20 < gw.LIMIT == 64 * 2**20
    need = gw.closure(gw.ROOTS, gw.image_packages(), set())
    assert {"monai", "nibabel"} <= set(need) and "torch" not in need and "numpy" not in need
    tree, wheels = gw.tracked_bytes(), gw.installed_bytes(need)
    assert tree + wheels <= gw.BUDGET, (f"tree {tree / 2**20:.1f} MiB + wheels (bound) {wheels / 2**20:.1f} MiB "
                                        f"> {gw.BUDGET / 2**20:.0f} MiB")
    for whl in (REPO / ".whl").glob("*.whl"):  # wheels fetched by scripts/gpu_wheels.py, when present here
        name, version = whl.name.split("-")[:2]
        if need.get(gw.norm(name)) == version:
            assert whl.stat().st_size <= gw.installed_bytes([name]), whl.name


def test_rehearsal_venv_links_only_the_named_distributions_and_splits_a_shared_folder(tmp_path):
    rv = _script("rehearsal_venv")
    site, dest = tmp_path / "site", tmp_path / "dest"
    files = {"alpha": ["alpha/__init__.py", "ns/one.py"], "beta": ["beta.py", "ns/two.py"]}
    for name, paths in files.items():
        info = site / f"{name}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        record = [*paths, f"{name}-1.0.dist-info/METADATA", f"{name}-1.0.dist-info/RECORD", f"../../bin/{name}"]
        (info / "RECORD").write_text("".join(f"{p},,\n" for p in record))
        for p in paths:
            (site / p).parent.mkdir(parents=True, exist_ok=True)
            (site / p).write_text(f"# {p}\n")
    dest.mkdir()
    assert rv.link_distributions({"alpha", "gamma"}, site, dest) == ["alpha==1.0"]
    assert (dest / "alpha").is_symlink() and (dest / "alpha-1.0.dist-info").is_symlink()
    assert (dest / "ns").is_dir() and not (dest / "ns").is_symlink()  # beta owns a file in it too
    assert (dest / "ns" / "one.py").resolve() == (site / "ns" / "one.py").resolve()
    assert sorted(p.name for p in dest.iterdir()) == ["alpha", "alpha-1.0.dist-info", "ns"]  # no beta, no bin
    assert [p.name for p in (dest / "ns").iterdir()] == ["one.py"]


def test_rehearsal_only_distributions_are_those_this_older_python_alone_needs():
    rv, gw = _script("rehearsal_venv"), _gpu_wheels()
    image = gw.image_packages()
    extra = rv.here_only({"nibabel"}, image | {"nibabel"})
    # nibabel asks for importlib-resources on Python < 3.12 only: the device's 3.12 does not need it
    wants = any("importlib-resources" in r and "3.12" in r for r in importlib.metadata.requires("nibabel") or [])
    assert ("importlib-resources" in extra) == (wants and sys.version_info < (3, 12))
    assert not set(extra) & image


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_rehearsal_in_a_venv_of_the_image_packages_plus_the_carried_wheels(tmp_path):
    """Deliver item 4: the exact device command, in a venv that holds only the image's distributions (and what this
    older Python alone needs); the carried wheels are installed by the command itself, as on the device. Tests do
    not use the network: without the wheels in ``.whl`` (``scripts/gpu_wheels.py`` fetches them) it is skipped."""
    gw = _gpu_wheels()
    need = gw.closure(gw.ROOTS, gw.image_packages(), set())
    have = {gw.norm(w.name.split("-")[0]) for w in (REPO / ".whl").glob("*.whl")}
    if not set(need) <= have:
        pytest.skip(f"carried wheels not in .whl ({sorted(set(need) - have)}); fetch them with scripts/gpu_wheels.py")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "rehearsal_venv.py"), "--dest", str(tmp_path),
                           "--stop-after", "300", "--cal-seconds", "3"], capture_output=True, text=True, timeout=840)
    if proc.returncode == 2:
        pytest.skip("the venv could not be built here: " + proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "rehearsal.json").read_text())
    assert report["outside_image_and_carry"] == [] and report["compute_logged"]
    assert set(report["out"]) == {"calibration.json", "reference_results.tar.gz", "run.log", "sets.txt"}
    # the staged path (compute --parallel): the parent, one pre-training slice and one pair slice
    compute = [r for r in report["processes"] if "compute" in r["argv"]]
    assert len(compute) == 3 and all("torch" in r["distributions"] for r in compute)
    assert any({"monai", "nibabel"} <= set(r["distributions"]) for r in compute)  # the carried wheels were used
    assert not [d for r in compute for d in r["distributions"]
                if d in ("papermill", "nbclient", "snakemake", "simpleitk")]
    # the venv alone lacks what is carried and what the notebook stack needs: the command installed MONAI itself
    probe = "import importlib.util as u; print([n for n in ('monai', 'papermill', 'SimpleITK') if u.find_spec(n)])"
    alone = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert alone.stdout.strip() == "[]", alone.stdout + alone.stderr
    assert (tmp_path / "site" / "monai").is_dir()
    assert "[compute] done in" in (tmp_path / "out" / "run.log").read_text()
