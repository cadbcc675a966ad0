"""benchmarks/control_seeds.py: extra seeds of the controls merged into a run's control check -- the merged table
has the extra seeds as replicates, its paired differences are those of the rows given, and a row at one of the
run's own seeds is compared with the run's score (the reproduction check), on a tiny two-pair tree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _scripts import load_script


def _cli():
    return load_script("benchmarks/control_seeds.py", "bench_control_seeds")


def _point(root: Path, task: str, model: str, seed: int, kind: str, pre: float, scratch: float, higher: bool):
    d = root / "runs" / f"{task}__{model}__seed{seed}__{kind}"
    d.mkdir(parents=True)
    m = {"task": task, "model": model, "seed": seed, "objective": kind, "objective_name": kind,
         "task_spec": {"primary_metric": "score", "higher_is_better": higher},
         "runs": {"pretrained": {"test": {"score": pre}}, "scratch": {"test": {"score": scratch}}},
         "baseline_primary": None, "rpg_primary": None}
    (d / "metrics.json").write_text(json.dumps(m))


def _row(task, model, seed, kind, test, higher):
    return {"task": task, "model": model, "seed": seed, "kind": kind, "metric": "score", "higher_is_better": higher,
            "test": test, "seconds": 1.0}


def _read(path: Path) -> dict:
    return json.loads(Path(path).read_text())


@pytest.fixture()
def tree(tmp_path):
    cli = _cli()
    root = tmp_path / "cpu"
    gains = {0: 0.10, 1: 0.30, 2: 0.20}
    for s, g in gains.items():
        for kind, extra in (("positive", g), ("random", 0.01 * (s - 1))):
            _point(root, "t", "a", s, kind, 1.0 + extra, 1.0, True)
            _point(root, "t", "b", s, kind, 2.0 - extra, 2.0, False)  # lower is better: a gain is a fall
    rows = [_row("t", "a", s, k, v, True) for s in (3, 4) for k, v in (("scratch", 1.0), ("positive", 1.2),
                                                                      ("random", 1.0))]
    rows += [_row("t", "a", 0, "positive", 1.1 + 1e-3, True)]  # a run seed: the reproduction check
    out = tmp_path / "extra.jsonl"
    out.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return cli, root, out


def test_extra_points_pair_each_kind_with_its_seeds_scratch(tree):
    cli, _, out = tree
    points = cli._extra_points(cli._done(out))
    by = {(p["seed"], p["objective"]): p for p in points}
    assert set(by) == {(3, "positive"), (3, "random"), (4, "positive"), (4, "random")}  # seed 0 has no scratch row
    p = by[(3, "positive")]
    assert p["runs"]["pretrained"]["test"]["score"] == 1.2 and p["runs"]["scratch"]["test"]["score"] == 1.0


def test_report_adds_the_extra_seeds_as_replicates(tree, capsys):
    cli, root, out = tree
    assert cli.report(root, out, load=_read) == 0
    text = capsys.readouterr().out
    run_part, merged_part = text.split("== run + extra")
    assert "seeds [0, 1, 2]" in run_part and "seeds [0, 1, 2, 3, 4]" in merged_part
    table = cli.control_table(cli._extra_points(cli._done(out)) +
                              [json.loads(p.read_text()) for p in sorted((root / "runs").glob("*/metrics.json"))])
    row = table[(table["model"] == "a") & (table["kind"] == "positive")].iloc[0]
    assert row["n"] == 5
    assert row["mean"] == pytest.approx(np.mean([0.1, 0.3, 0.2, 0.2, 0.2]))
    # model b (lower is better) has no extra seeds: still 3, and its falls count as gains
    row_b = table[(table["model"] == "b") & (table["kind"] == "positive")].iloc[0]
    assert row_b["n"] == 3 and row_b["mean"] == pytest.approx(0.2)
    assert "reproduction: 1 extra runs at the run's own seeds, max |difference| 0.001" in text


def test_report_without_control_points_fails(tmp_path, capsys):
    cli = _cli()
    (tmp_path / "runs").mkdir()
    assert cli.report(tmp_path, tmp_path / "none.jsonl", load=_read) == 1
    assert "no positive or random control points" in capsys.readouterr().err


def test_a_malformed_pair_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _cli().main(["--results", str(tmp_path), "--out", str(tmp_path / "x.jsonl"), "--pairs", "segmentation"])
    assert "--pairs takes task:model, got 'segmentation'" in capsys.readouterr().err
