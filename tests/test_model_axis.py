"""The model axis lives in the adapters: no module outside ``models/adapters/{profound,provicnet}.py`` compares
a model name to a string literal (issue 10), and the registry derives what config used to hard-code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from transferlimits import config
from transferlimits.models.registry import MODEL_REGISTRY, get_model, model_names

SRC = Path(__file__).resolve().parents[1] / "src" / "transferlimits"
ADAPTERS = {SRC / "models" / "adapters" / "profound.py", SRC / "models" / "adapters" / "provicnet.py"}
NAME = r"['\"](profound|provicnet)['\"]"
#: ``== "profound"``, ``"provicnet" ==``, ``!= "profound"`` and ``in ("profound", ...)``-style branches
PATTERNS = {
    "comparison": re.compile(rf"[=!]= ?{NAME}|{NAME} ?[=!]="),
    "tuple branch": re.compile(rf"\bin [(\[{{][^)\]}}]*{NAME}"),
}


def model_branches(root: Path, skip: set[Path]) -> list[str]:
    """``path:line: kind: text`` for every model-name branch under ``root`` outside ``skip``."""
    hits = []
    for path in sorted(root.rglob("*.py")):
        if path in skip:
            continue
        for no, line in enumerate(path.read_text().splitlines(), 1):
            for kind, pattern in PATTERNS.items():
                if pattern.search(line):
                    hits.append(f"{path.relative_to(root)}:{no}: {kind}: {line.strip()}")
    return hits


def test_no_model_name_branch_outside_the_adapters():
    assert model_branches(SRC, ADAPTERS) == []


@pytest.mark.parametrize("line,found", [
    ('if model == "profound":', True), ("if 'provicnet'==name:", True), ('if m != "provicnet":', True),
    ('if model_name not in ("profound", "provicnet"):', True), ('ok = m in ["x", "profound"]', True),
    ('sizes = {"profound": "tiny"}', False), ('build_encoder("profound", "tiny")', False),
])
def test_the_scan_finds_branches(tmp_path, line, found):
    (tmp_path / "mod.py").write_text(f"{line}\n")
    assert bool(model_branches(tmp_path, set())) is found


def test_config_axis_is_derived_from_the_registry():
    assert config.MODELS == model_names() and set(config.STUDY_MODELS) <= set(MODEL_REGISTRY)
    for name in model_names():
        adapter = get_model(name)
        assert config.NATIVE_OBJECTIVE[name] == adapter.objectives[0]
        assert config.SWAPPED_OBJECTIVE[name] in adapter.objectives
        assert set(adapter.objectives) <= set(config.OBJECTIVES)
    assert (config.NATIVE_OBJECTIVE["profound"], config.SWAPPED_OBJECTIVE["profound"]) == ("fcmae", "contrastive")
    assert (config.NATIVE_OBJECTIVE["provicnet"], config.SWAPPED_OBJECTIVE["provicnet"]) == ("contrastive", "mae")


def test_unknown_names_raise_value_error():
    with pytest.raises(ValueError, match=r"unknown model 'resnet'; valid: \['profound', 'provicnet'"):
        get_model("resnet")
    with pytest.raises(ValueError, match=r"profile 'smoke': unknown model\(s\) \['resnet'\]"):
        config.get_profile("smoke", models=("resnet",))
    with pytest.raises(AttributeError, match="NOPE"):
        config.NOPE  # noqa: B018
