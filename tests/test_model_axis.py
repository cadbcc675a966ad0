"""The model axis lives in the adapters: no module outside ``models/adapters/{profound,provicnet}.py`` compares
a model name to a string literal (issue 10), and the registry checks the model names a profile holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from transferlimits import config
from transferlimits.models.adapters.base import ObjectiveInfo
from transferlimits.models.registry import (
    MODEL_REGISTRY,
    check_profile_models,
    get_model,
    model_names,
    objective_info,
    register_model,
)

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


def test_the_study_models_are_registered_with_their_objective_pairs():
    assert set(config.STUDY_MODELS) <= set(MODEL_REGISTRY) and config.STUDY_MODELS == model_names()[:2]
    for name in model_names():
        adapter = get_model(name)
        assert adapter.native_objective == adapter.objectives[0]
        assert adapter.swapped_objective in adapter.objectives
    assert (get_model("profound").native_objective, get_model("profound").swapped_objective) == ("fcmae", "contrastive")
    assert (get_model("provicnet").native_objective, get_model("provicnet").swapped_objective) == ("contrastive", "mae")


def test_unknown_names_raise_value_error():
    with pytest.raises(ValueError, match=r"unknown model 'resnet'; valid: \['profound', 'provicnet'"):
        get_model("resnet")
    prof = config.get_profile("smoke", models=("resnet",))  # config is a leaf: names are checked at the edge
    with pytest.raises(ValueError, match=r"profile 'smoke': unknown model\(s\) \['resnet'\]; valid: \['profound'"):
        check_profile_models(prof)
    check_profile_models(config.get_profile("smoke"))
    with pytest.raises(AttributeError, match="NOPE"):
        config.NOPE  # noqa: B018


def test_objectives_declare_their_family_and_labels():
    families = {(m, o.name): (o.family, o.uses_labels) for m in ("profound", "provicnet")
                for o in get_model(m).objective_infos}
    assert families == {("profound", "fcmae"): ("reconstruction", False),
                        ("profound", "contrastive"): ("contrastive", True),
                        ("provicnet", "contrastive"): ("contrastive", True),  # 0.95 DiceCE + 0.05 pair loss
                        ("provicnet", "mae"): ("reconstruction", False)}
    assert get_model("provicnet").objectives == ("contrastive", "mae")
    assert all(get_model(m).has_control for m in ("profound", "provicnet"))
    assert objective_info("profound", "contrastive").uses_labels
    with pytest.raises(ValueError, match=r"unknown objective 'mae' for 'profound'; valid: \['fcmae', 'contrastive'\]"):
        objective_info("profound", "mae")
    with pytest.raises(ValueError, match=r"unknown family 'generative'; valid: \['reconstruction'"):
        ObjectiveInfo("gan", "generative", uses_labels=False)


def test_an_adapter_must_declare_objective_infos():
    class Bare(type(get_model("profound"))):
        name = "bare"
        objectives = ("fcmae",)  # names only: the old declaration
        objective_infos = ()

    with pytest.raises(ValueError, match="'bare' declares no pre-training objective: set objective_infos"):
        register_model(Bare())

    class Twice(type(get_model("profound"))):
        name = "twice"
        objective_infos = (ObjectiveInfo("a", "reconstruction", False), ObjectiveInfo("a", "contrastive", True))

    with pytest.raises(ValueError, match="objective names must be unique"):
        register_model(Twice())
    assert "bare" not in MODEL_REGISTRY and "twice" not in MODEL_REGISTRY
