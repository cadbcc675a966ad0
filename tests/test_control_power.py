"""The controls' detection power in closed form (metrics.control_power) against a simulation of the very test
``study.control_check`` runs, and against known t quantiles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from transferlimits.metrics.control_power import critical_t, detectable_gain, detection_power


def test_critical_t_is_the_one_sided_quantile_at_holms_first_step():
    assert critical_t(3, 10) == pytest.approx(9.9248, abs=1e-3)  # t_{0.995, 2}
    assert critical_t(5, 10) == pytest.approx(4.6041, abs=1e-3)  # t_{0.995, 4}
    assert critical_t(3, 1) == pytest.approx(2.9200, abs=1e-3)  # t_{0.95, 2}


@pytest.mark.parametrize("effect, seeds, points", [(5.0, 3, 10), (2.0, 5, 10), (1.0, 4, 1)])
def test_power_matches_a_simulation_of_the_test(effect, seeds, points):
    rng = np.random.default_rng(0)
    d = rng.normal(effect, 1.0, size=(40_000, seeds))
    p = stats.t.sf(d.mean(1) / (d.std(1, ddof=1) / np.sqrt(seeds)), seeds - 1)  # control_check's one-sided p
    simulated = float((p <= 0.05 / points).mean())
    assert detection_power(effect, seeds, points) == pytest.approx(simulated, abs=0.01)


def test_size_is_alpha_over_points_and_the_detectable_gain_has_the_stated_power():
    assert detection_power(0.0, 3, 10) == pytest.approx(0.005, abs=1e-9)
    g = detectable_gain(3, 10)
    assert detection_power(g, 3, 10) == pytest.approx(0.8, abs=1e-3)
    assert 7.0 < g < 8.0 and detectable_gain(5, 10) < 3.5  # more seeds: a far smaller detectable gain


@pytest.mark.parametrize("args", [(1, 10), (3, 0)])
def test_bad_arguments_are_named(args):
    with pytest.raises(ValueError, match="seeds|points"):
        critical_t(*args)
