"""benchmarks/head_budget.py's recipe options: ``--recipe FIELD=VALUE`` parsed as JSON, a malformed or unknown field
and a label budget beyond the train split refused with a usage error naming it (before any training)."""

from __future__ import annotations

import argparse

import pytest

from _scripts import load_script


@pytest.fixture(scope="module")
def hb():
    return load_script("benchmarks/head_budget.py", "bench_head_budget")


def test_recipe_items_parse_as_json_and_malformed_ones_are_usage_errors(hb, capsys):
    parser = argparse.ArgumentParser(prog="head_budget.py")
    got = hb._recipe_changes(parser, ["lr=2e-3", "warmup_epochs=1", "augment=false", "note=text"])
    assert got == {"lr": 0.002, "warmup_epochs": 1, "augment": False, "note": "text"}
    with pytest.raises(SystemExit):
        hb._recipe_changes(parser, ["lr"])
    assert "--recipe 'lr': expected FIELD=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--recipe", "lrr=1"], "unknown FinetuneRecipe field(s) ['lrr']"),
    (["--train-cases", "-1"], "train_cases=-1 is invalid"),
])
def test_bad_recipe_changes_stop_before_any_training(hb, capsys, argv, message):
    with pytest.raises(SystemExit) as err:
        hb.main(["--task", "segmentation", "--inits", "scratch", "--epochs", "1", *argv])
    assert err.value.code == 2 and message in capsys.readouterr().err
