"""The machine's fp32 matmul peak recorded beside a grid's wall time (runner/machine_peak.py)."""

from __future__ import annotations

import json

import pytest
import torch

from transferlimits import paths
from transferlimits.runner.invocations import record_grid_wall
from transferlimits.runner.machine_peak import sgemm_peak_gflops


def test_the_peak_is_a_positive_rate_and_the_thread_count_is_restored():
    before = torch.get_num_threads()
    peak = sgemm_peak_gflops(threads=1, n=256, repeats=3)
    assert 0.1 < peak < 1e5  # GFLOP/s of one CPU thread: any real machine lies inside
    assert torch.get_num_threads() == before


def test_the_same_arithmetic_measured_at_two_sizes_agrees_within_an_order_of_magnitude():
    small, large = sgemm_peak_gflops(threads=1, n=128, repeats=5), sgemm_peak_gflops(threads=1, n=512, repeats=3)
    assert 0.05 < large / small < 20  # a wrong FLOP count (n² or n⁴) would be off by a factor of n


@pytest.mark.parametrize("kwargs,named", [({"threads": 0}, "threads"), ({"n": 0}, "n=0"),
                                          ({"repeats": 0}, "repeats=0")])
def test_bad_arguments_are_named(kwargs, named):
    with pytest.raises(ValueError, match=named):
        sgemm_peak_gflops(**kwargs)


def test_grid_json_keeps_the_peak_of_each_invocation(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path))
    path = record_grid_wall("p", 0.0, 0, 2, False, {"sgemm_peak_gflops_1thread": 34.0})
    assert path == paths.results_dir("p") / "grid.json"
    assert json.loads(path.read_text())["invocations"][-1]["sgemm_peak_gflops_1thread"] == 34.0
