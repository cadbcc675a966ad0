"""Facts about strict JSON writing and reading (transferlimits.jsonsafe)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from transferlimits.jsonsafe import dumps_strict, loads_strict, to_strict_json
from transferlimits.metrics.mmd_paired import mmd2_paired_test


def test_non_finite_values_become_null_with_reasons():
    obj = {"a": float("nan"), "b": [1.0, np.inf, {"c": -np.inf}], "d": (np.float32(2.5), np.float64("nan"))}
    reasons: dict[str, str] = {}
    out = to_strict_json(obj, reasons)
    assert out == {"a": None, "b": [1.0, None, {"c": None}], "d": [2.5, None]}
    assert reasons == {"a": "nan", "b/1": "inf", "b/2/c": "-inf", "d/1": "nan"}
    assert to_strict_json(obj) == out  # the reason map is optional


def test_numpy_torch_dataclass_path_and_key_types():
    @dataclass
    class R:
        value: float
        ids: tuple

    obj = {
        np.int64(3): np.arange(3),
        0.25: np.bool_(True),
        "arr": np.array([[1.5, np.nan]]),
        "t": torch.tensor([1.0, float("inf")]),
        "r": R(np.float32(0.5), (1, 2)),
        "p": Path("/tmp/x.json"),
        "s": {2, 1},
        "scalar0d": np.array(4.0),
    }
    out = to_strict_json(obj)
    assert out == {"3": [0, 1, 2], "0.25": True, "arr": [[1.5, None]], "t": [1.0, None],
                   "r": {"value": 0.5, "ids": [1, 2]}, "p": "/tmp/x.json", "s": [1, 2], "scalar0d": 4.0}
    assert type(out["3"][0]) is int and type(out["r"]["value"]) is float
    assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_dumps_and_loads_round_trip_and_rejects_constants():
    reasons: dict[str, str] = {}
    text = dumps_strict({"x": [np.nan, 1]}, reasons, indent=1)
    assert "NaN" not in text and loads_strict(text) == {"x": [None, 1]} and reasons == {"x/0": "nan"}
    for bad in ('{"x": NaN}', '[Infinity]', '{"y": -Infinity}'):
        with pytest.raises(ValueError, match="constant"):
            loads_strict(bad)
    assert json.loads('{"x": NaN}')["x"] != json.loads('{"x": NaN}')["x"]  # the default parser accepts it


@pytest.mark.parametrize("bad,match", [({"z": 1j}, "complex"), ({"o": object()}, "object"),
                                        ({(1, 2): 1}, "key"), ({1: "a", "1": "b"}, "collide")])
def test_values_without_json_form_raise_with_path(bad, match):
    with pytest.raises(ValueError, match=match):
        to_strict_json(bad)


def test_paired_mmd_result_is_strict_json():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 2))
    res = mmd2_paired_test(x, x + 0.1, n_permutations=20)  # no bootstrap: ci fields are None
    out = loads_strict(dumps_strict(res))
    assert out["mmd2"] == pytest.approx(res.mmd2) and out["ci_low"] is None and out["bandwidth"] == list(res.bandwidth)
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in out.values())
