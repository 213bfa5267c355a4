"""The CEL subset of trigger conditions, as kfp 2.13 compiles dsl.If / Elif / Else."""

import pytest

from kfp_lineage import conditions, errors

P = "inputs.parameter_values['pipelinechannel--a-Output']"


@pytest.mark.parametrize(
    "condition, values, expected",
    [
        (f"int({P}) > 2", {"pipelinechannel--a-Output": 3}, True),
        (f"int({P}) > 2", {"pipelinechannel--a-Output": 2}, False),
        (f"!(int({P}) > 2) && int({P}) == 1", {"pipelinechannel--a-Output": 1}, True),
        (f"!(int({P}) > 2) && !(int({P}) == 1)", {"pipelinechannel--a-Output": 1}, False),
        (f"{P} == true", {"pipelinechannel--a-Output": True}, True),
        (f"{P} == 'local'", {"pipelinechannel--a-Output": "vertex"}, False),
        (f"{P} != 'local'", {"pipelinechannel--a-Output": "vertex"}, True),
        (f"double({P}) >= 0.5", {"pipelinechannel--a-Output": 0.5}, True),
        (f"int({P}) < 0 || {P} == 7", {"pipelinechannel--a-Output": 7}, True),
    ],
)
def test_evaluate_condition(condition, values, expected):
    assert conditions.evaluate_condition(condition, values) is expected


def test_unknown_parameter_names_the_parameter():
    with pytest.raises(errors.InvalidInputError, match="reads parameter 'missing'"):
        conditions.evaluate_condition("inputs.parameter_values['missing'] == 1", {})


@pytest.mark.parametrize("condition", ["size(inputs.parameter_values['x']) > 1", "inputs.parameters['x'] == 1", "1 +"])
def test_unsupported_syntax_is_rejected_before_the_run(condition):
    with pytest.raises(errors.UnsupportedFeatureError, match="trigger condition"):
        conditions.check_condition_syntax(condition)
