"""Publishing a run's small result files, and the book's run page over them (synthetic results trees)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transferlimits.reporting.floor import check_tree, floor_rows
from transferlimits.reporting.run_page import run_page_markdown, wall_breakdown, load_run
from transferlimits.runner.publish import PUBLISHED, publish_results


def _metrics(task: str, model: str, seed: int, value: float, base: float = 0.5) -> dict:
    runs = {init: {"test": {"auroc_ge4": value}} for init in ("pretrained", "scratch", "linear_probe")}
    return {"task": task, "model": model, "seed": seed, "objective": "native", "objective_name": "fcmae",
            "task_spec": {"primary_metric": "auroc_ge4", "higher_is_better": True},
            "baselines": {"class_prior": {"auroc_ge4": base}}, "runs": runs,
            "provenance": {"hardware": {"cpu_model": "Test CPU", "cpu_count": 2, "torch_threads": 1, "device": "cpu"},
                           "software": {"torch": "2.13.0"}, "git_commit": "abc1234", "created": "2026-12-01T05:00:00",
                           "timings": {"finetune_s": {"pretrained": 10.0, "scratch": 20.0}, "measure_s": 5.0}}}


def _tree(root: Path, values=(0.7, 0.65), wall_s: float = 600.0) -> Path:
    for seed, v in enumerate(values):
        d = root / "runs" / f"classification__profound__seed{seed}"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(_metrics("classification", "profound", seed, v)))
        (d / "examples.npz").write_bytes(b"not published")
    for model in ("profound", "provicnet"):
        d = root / "pretrain" / f"{model}__contrastive"
        d.mkdir(parents=True)
        (d / "pretrain.json").write_text(json.dumps({"contrastive_active_fraction": 0.8, "wall_seconds": 60.0}))
        (d / "encoder.pt").write_bytes(b"weights, not published")
    (root / "grid.json").write_text(json.dumps({"wall_s": wall_s, "invocations": [
        {"wall_s": wall_s, "cores": 2, "peak_rss_mib": 900.0}]}))
    return root


def test_publish_copies_only_the_small_files_and_replaces_the_old_copy(tmp_path):
    src, dst = _tree(tmp_path / "results"), tmp_path / "gen" / "results"
    dst.mkdir(parents=True)
    (dst / "stale.json").write_text("{}")
    files = publish_results("cpu", src, dst)
    names = sorted(str(p.relative_to(dst)) for p in files)
    assert "grid.json" in names and "runs/classification__profound__seed1/metrics.json" in names
    assert not list(dst.rglob("*.pt")) and not list(dst.rglob("*.npz")) and not (dst / "stale.json").exists()
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file()) == names
    assert all(any(Path(n).match(pat) for pat in PUBLISHED) for n in names)


def test_a_restricted_grid_merges_and_keeps_the_other_pairs_published_files(tmp_path):
    """``--only``: this run's files replace theirs, every other published file stays (it once deleted them)."""
    src, dst = _tree(tmp_path / "results", values=(0.9,)), tmp_path / "gen" / "results"
    other = dst / "runs" / "segmentation__provicnet__seed0" / "metrics.json"
    other.parent.mkdir(parents=True)
    other.write_text('{"kept": true}')
    old = dst / "runs" / "classification__profound__seed0" / "metrics.json"
    old.parent.mkdir(parents=True)
    old.write_text('{"old": true}')
    files = publish_results("cpu", src, dst, merge=True)
    assert other.read_text() == '{"kept": true}'
    assert json.loads(old.read_text())["seed"] == 0 and old in files
    assert not (dst.parent / ".results.tmp").exists()


def test_publish_refuses_an_unfinished_tree_and_keeps_the_old_copy(tmp_path):
    dst = tmp_path / "gen" / "results"
    dst.mkdir(parents=True)
    (dst / "grid.json").write_text("{}")
    with pytest.raises(ValueError, match="no runs/\\*/metrics.json"):
        publish_results("cpu", tmp_path / "empty", dst)
    assert (dst / "grid.json").is_file()


def test_floor_rows_and_check_agree(tmp_path):
    root = _tree(tmp_path, values=(0.7, 0.55))
    rows = [r for p in sorted(root.rglob("metrics.json")) for r in floor_rows(json.loads(p.read_text()), p.name)]
    assert [r.passes for r in rows] == [True, True, False, False]
    failures, n = check_tree(root)
    assert n == 2 and len(failures) == 2 and all("seed1" in f and "needs >= 0.6" in f for f in failures)


def test_run_page_numbers_come_from_the_files(tmp_path):
    root = _tree(tmp_path, values=(0.7, 0.55), wall_s=600.0)
    b = wall_breakdown(load_run(root))
    # 2 cores x 600 s; 2 pre-trainings x 60 s; 2 points x 30 s fine-tuning, 2 x 5 s measurement
    assert (b["total"], b["pre-training"], b["fine-tuning"], b["measurement"]) == (1200.0, 120.0, 60.0, 10.0)
    assert b["overhead"] + b["data in points"] == pytest.approx(1200.0 - 190.0)
    assert b["data in points"] >= 0 and b["overhead"] >= 0
    page = run_page_markdown(root, "cpu", explanations=tmp_path / "none.yml")
    assert "Test CPU" in page and "`abc1234`" in page and "**10.0 min**" in page and "900 MiB" in page
    # one row per (task, model): mean (seeds above baseline, seeds passing) per (objective, init)
    assert "| classification | profound | auroc_ge4 (>= 0.6) | 0.500 (class_prior) |" in page
    assert "0.625 (2/2, 1/2)" in page and "| **not explained** |" in page
    assert "2 are below it without one" in page
    notes = tmp_path / "notes.yml"
    notes.write_text("- task: classification\n  reason: too few steps\n")
    page = run_page_markdown(root, "cpu", explanations=notes)
    assert "| note 1 |" in page and "1. too few steps" in page and page.count("too few steps") == 1
    assert "2 are below it with a stated reason, 0 are below it without one" in page


def test_commit_is_dirty_for_code_changes_not_for_the_runs_own_outputs(tmp_path):
    """A re-run rewrites its tracked notebooks under book/generated/; that alone must not mark the run -dirty."""
    import subprocess

    from transferlimits.runtime import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "book" / "generated" / "cpu").mkdir(parents=True)
    (tmp_path / "book" / "generated" / "cpu" / "a.ipynb").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "init")
    clean = git_commit(tmp_path)
    assert clean and not clean.endswith("-dirty") and clean != "unknown"
    (tmp_path / "book" / "generated" / "cpu" / "a.ipynb").write_text('{"re-run": 1}')
    assert git_commit(tmp_path) == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == clean + "-dirty"


def test_run_page_of_a_tiny_run_with_an_undefined_baseline_names_it(tmp_path):
    """A tiny real-data run: one seed's test split holds one class, so AUROC is undefined (null) for its runs and
    its class prior; the page is written, the point shown as undefined and named in the check (no crash)."""
    root = _tree(tmp_path, values=(0.7, 0.65))
    path = root / "runs" / "classification__profound__seed1" / "metrics.json"
    m = json.loads(path.read_text())
    m["baselines"]["class_prior"]["auroc_ge4"] = None
    for run in m["runs"].values():
        run["test"]["auroc_ge4"] = None
    path.write_text(json.dumps(m))
    page = run_page_markdown(root, "picai", explanations=tmp_path / "none.yml")
    assert "| classification | profound | auroc_ge4 (>= 0.6) | 0.500 (class_prior) |" in page
    assert "0.700 (1/1, 1/1)" in page, "the defined seed is shown with its own counts"
    assert "1 point(s) without a defined baseline" in page
    assert "classification__profound__seed1/metrics.json: baseline 'class_prior' has no 'auroc_ge4' value" in page
    # every point undefined: the (task, model) still has a row, saying why
    m0 = root / "runs" / "classification__profound__seed0" / "metrics.json"
    m0.write_text(path.read_text())
    page = run_page_markdown(root, "picai", explanations=tmp_path / "none.yml")
    assert "| classification | profound | auroc_ge4 (>= 0.6) | undefined |" in page
    assert "2 point(s) without a defined baseline" in page


def test_published_json_is_compact_with_the_same_values_and_nan_is_refused(tmp_path):
    """The published copy travels with every checkout: JSON is written without indentation, values unchanged; a
    source file with NaN is refused, naming it, and the old published copy stays."""
    src, dst = tmp_path / "results", tmp_path / "published"
    m = _metrics("classification", "profound", 0, 0.7)
    (src / "runs" / "classification__profound__seed0").mkdir(parents=True)
    path = src / "runs" / "classification__profound__seed0" / "metrics.json"
    path.write_text(json.dumps(m, indent=2))
    publish_results("cpu", src=src, dst=dst)
    out = dst / "runs" / "classification__profound__seed0" / "metrics.json"
    assert json.loads(out.read_text()) == m and "\n " not in out.read_text()
    assert out.stat().st_size < path.stat().st_size
    path.write_text(json.dumps({**m, "x": float("nan")}))
    with pytest.raises(ValueError, match="metrics.json: not strict JSON"):
        publish_results("cpu", src=src, dst=dst)
    assert json.loads(out.read_text()) == m
