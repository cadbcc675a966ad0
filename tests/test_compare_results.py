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
