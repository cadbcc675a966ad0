"""Strict JSON (STUDY §5): every file the study writes parses with a parser that rejects NaN / Infinity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from transferlimits import paths
from transferlimits.jsonsafe import loads_strict
from transferlimits.runtime import atomic_write_json
from transferlimits.study.schema import _null_paths, jsonable, load_metrics


def test_atomic_write_json_writes_null_for_non_finite_values(tmp_path):
    reasons: dict[str, str] = {}
    path = atomic_write_json(tmp_path / "a.json", {"a": float("nan"), "b": [np.float32(1.5), np.inf], "c": (1, 2)},
                             reasons)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert loads_strict(text) == {"a": None, "b": [1.5, None], "c": [1, 2]}
    assert reasons == {"a": "nan", "b/1": "inf"}
    with pytest.raises(ValueError, match="NaN"):
        loads_strict(json.dumps({"a": math.nan}))


def test_jsonable_records_a_dotted_reason_for_every_replaced_value():
    reasons: dict[str, str] = {}
    out = jsonable({"runs": {"scratch": {"test": {"hd95": np.float64("nan")}}}}, reasons)
    assert out == {"runs": {"scratch": {"test": {"hd95": None}}}}
    assert reasons == {"runs.scratch.test.hd95": "nan: not computable"}
    assert _null_paths(out) == ["runs.scratch.test.hd95"]


SMOKE_FILES = sorted(paths.results_dir("smoke").rglob("*.json")) if paths.results_dir("smoke").is_dir() else []


@pytest.mark.skipif(not SMOKE_FILES, reason="no smoke results (python -m transferlimits run --profile smoke)")
@pytest.mark.parametrize("path", SMOKE_FILES, ids=lambda p: str(p.relative_to(paths.results_dir("smoke"))))
def test_every_smoke_file_is_strict_json(path):
    loads_strict(path.read_text())  # metrics.json, pretrain.json, curve.json, splits, manifest ...
    if path.name == "metrics.json":
        d = load_metrics(path)
        assert set(_null_paths({k: v for k, v in d.items() if k != "rpg_undefined_reason"})) <= set(d["undefined"])
