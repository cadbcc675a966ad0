"""runner.params.bake_parameters: a run's values become the parameters cell's defaults, comments kept."""

import pytest

from transferlimits.runner.params import _parameters_cell, bake_parameters, read_template, template_parameters
from transferlimits.runner.workflow import TASK_TEMPLATE


def test_baked_values_become_defaults_and_keep_comments():
    nb = read_template(TASK_TEMPLATE)
    before = _parameters_cell(nb).source
    bake_parameters(nb, {"task": "super_resolution", "model": "provicnet", "seeds": "0,2", "pretrained": "a # b"})
    values = template_parameters(nb)
    assert (values["task"], values["model"], values["seeds"], values["pretrained"]) == (
        "super_resolution", "provicnet", "0,2", "a # b")
    after = _parameters_cell(nb).source
    assert after.count("#") == before.count("#") + 1  # the string's '#' is data; every comment survives
    assert values["objectives"] == "" and values["released"] is False  # untouched defaults stay


def test_unknown_parameter_is_refused():
    nb = read_template(TASK_TEMPLATE)
    with pytest.raises(ValueError, match="no assignment line"):
        bake_parameters(nb, {"not_a_parameter": 1})
