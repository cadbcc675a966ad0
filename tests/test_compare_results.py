"""scripts/compare_results.py: equal trees pass, a changed number fails, timing/provenance fields are ignored."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_results.py"


def _tree(root: Path, score: float, wall: float) -> Path:
    run = root / "results" / "smoke" / "runs" / "p"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({
        "runs": {"scratch": {"test": {"psnr": score}, "curve": [{"epoch": 0, "wall_s": wall}]}},
        "provenance": {"created": str(wall)}, "settings": {"pretrained": str(root)}}))
    return root / "results" / "smoke"


@pytest.mark.parametrize("score_b, expected", [(30.0, 0), (30.5, 1)])
def test_compare_results_exit_code(tmp_path, score_b, expected):
    a = _tree(tmp_path / "a", 30.0, wall=1.0)
    b = _tree(tmp_path / "b", score_b, wall=99.0)  # different timings never count
    done = subprocess.run([sys.executable, str(SCRIPT), str(a), str(b)], capture_output=True, text=True)
    assert done.returncode == expected, done.stdout
    assert ("psnr" in done.stdout) == bool(expected)


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("tolerance, expected", [
    ((), 1),                                   # exact: 0.6302 vs 0.6278 differ
    (("--rtol", "0.001"), 1),                  # 0.4 % relative difference is beyond 0.1 %
    (("--rtol", "0.01"), 0),                   # ... and within 1 %
    (("--atol", "0.003"), 0),                  # |diff| = 0.0024 <= 0.003
    (("--atol", "0.001"), 1),
])
def test_tolerance(tmp_path, tolerance, expected):
    """The measured cross-machine difference (classification/ProFound/seed 0 scratch AUROC 0.6302 vs 0.6278)."""
    a = _tree(tmp_path / "a", 0.6302, wall=1.0)
    b = _tree(tmp_path / "b", 0.6278, wall=2.0)
    done = _run(a, b, *tolerance)
    assert done.returncode == expected, done.stdout
    if expected:  # the differing key is named, with its values
        assert ".runs.scratch.test.psnr: 0.6302 != 0.6278" in done.stdout, done.stdout


def test_tolerance_lists_only_the_keys_beyond_it(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, (x, y, n) in ((a, (1.0, 2.0, 3)), (b, (1.0001, 2.5, 4))):
        root.mkdir()
        (root / "m.json").write_text(json.dumps({"x": x, "y": y, "epochs": n, "timings": {"total_s": x * 7},
                                                 "provenance": {"created": str(y)}}))
    done = _run(a, b, "--rtol", "0.01")
    assert done.returncode == 1
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("m.json")]
    assert len(lines) == 2 and any(".y:" in ln for ln in lines) and any(".epochs:" in ln for ln in lines)
    assert "differ beyond rtol 0.01" in done.stdout
    assert _run(a, b, "--rtol", "0.3").returncode == 0  # integers compare as numbers: 3 vs 4 within 30 %
