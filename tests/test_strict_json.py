"""Strict JSON (STUDY §5): every file the study writes parses with a parser that rejects NaN / Infinity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

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


def test_every_smoke_file_is_strict_json(smoke_study):
    """Every JSON file the smoke study wrote (metrics, pretrain, curves, splits, manifest) parses strictly."""
    files = sorted(smoke_study.results.rglob("*.json"))
    assert any(p.name == "metrics.json" for p in files), "the smoke study wrote no metrics.json"
    for path in files:
        loads_strict(path.read_text())
        if path.name == "metrics.json":
            d = load_metrics(path)
            nulls = set(_null_paths({k: v for k, v in d.items() if k != "rpg_undefined_reason"}))
            assert nulls <= set(d["undefined"]), f"{path}: null without a reason: {sorted(nulls - set(d['undefined']))}"
