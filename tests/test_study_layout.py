"""The shape of the study: metrics.json schema from one definition, Snakefile inputs by concern, the book's
task part against the task registry, and CLI code only in ``runner/``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from transferlimits import cli, config
from transferlimits.runner import workflow as wf
from transferlimits.study import schema

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "transferlimits"


def test_schema_doc_names_every_field_and_build_checks_them():
    doc = schema.__doc__
    for f in schema.TOP_FIELDS + schema.RUN_FIELDS + schema.ENTRY_FIELDS:
        assert re.search(rf"^\s+{f.name}\s", doc, flags=re.M), f.name
    with pytest.raises(ValueError, match=r"missing fields \['task'"):
        schema.build_metrics(model="m")
    with pytest.raises(ValueError, match="unknown fields \\['colour'\\]"):
        schema.build_metrics(colour=1, **{f.name: None for f in schema.TOP_FIELDS[1:]})


@pytest.mark.parametrize("rule, has, lacks", [
    ("pretrain", ["models/heads.py", "training/engine.py", "data/phantom.py", "config/profile.py"],
     ["figures/training.py"]),
    ("data", ["figures/data.py", "data/phantom.py"], ["models/heads.py", "training/engine.py"]),
    ("pair", ["figures/training.py", "figures/pair.py", "study/point.py", "study/pair.py", "tasks/registry.py"],
     ["figures/alignment.py"]),
    ("resolve_profile", ["resolved.py", "config/profile.py"], ["study/point.py"]),
    ("alignment", ["figures/alignment.py", "study/schema.py"], ["training/engine.py"]),
])
def test_rule_sources_by_concern(rule, has, lacks):
    files = {str(Path(f).relative_to(SRC)) for f in wf.rule_sources(rule)}
    assert set(has) <= files and not set(lacks) & files


def test_every_snakefile_rule_with_sources_uses_its_concern():
    text = (REPO / "workflow" / "Snakefile").read_text()
    rules = re.findall(r"^rule (\w+):", text, flags=re.M)
    used = re.findall(r'src=wf\.rule_sources\("(\w+)"\)', text)
    assert used and set(used) == set(rules) - {"all"} and set(used) <= set(wf.RULE_SOURCES)
    assert "rglob" not in text


def test_book_task_part_follows_the_task_registry():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    part = next(p for p in toc["parts"] if p["caption"] == "Tasks")
    chapters = [c["file"] for c in part["chapters"]]
    assert chapters == [f"book/tasks/{t}" for t in config.TASKS]
    smoke = config.get_profile("smoke")
    for chapter, task in zip(part["chapters"], config.TASKS):
        assert (REPO / f"{chapter['file']}.md").is_file()
        want = [f"book/generated/current/{task}__{m}" for m in smoke.models]  # one page per (task, model)
        assert [s["file"] for s in chapter["sections"]] == want


def test_one_task_template_serves_every_task():
    assert sorted(p.name for p in (REPO / "notebooks").glob("1[0-9]_*.py")) == ["10_task.py"]
    assert {wf.task_template(t) for t in config.TASKS} == {wf.TASK_TEMPLATE}


def test_cli_code_lives_in_runner_only():
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if p.parent.name != "runner" and re.search(r"^def (add_arguments|main)\(", p.read_text(), re.M)
                 and p.name not in ("cli.py", "__main__.py")]
    assert offenders == []
    for name in ("pretrain", "data"):
        assert cli.COMMANDS[name][0] == f"transferlimits.runner.cli_{name}"
    parser = cli.build_parser()
    assert parser.parse_args(["pretrain", "--model", "profound"]).model == "profound"
    assert parser.parse_args(["data", "--profile", "smoke"]).profile == "smoke"
