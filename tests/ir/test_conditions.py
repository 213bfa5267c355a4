"""The CEL subset of trigger conditions, as kfp 2.13 compiles dsl.If / Elif / Else."""

import pytest

from kfp_lineage import errors
from kfp_lineage.ir import conditions

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


# Regressions found by tests/reliability/test_fuzz_conditions.py: each was a ValueError, TypeError,
# OverflowError or RecursionError escaping the evaluator.
@pytest.mark.parametrize(
    "condition, values, message",
    [
        (f"int({P}) > 2", {"pipelinechannel--a-Output": "abc"},
         f"trigger condition \"int({P}) > 2\" cannot evaluate int('abc'): could not convert string to float: 'abc'"),
        (f"int({P}) > 2", {"pipelinechannel--a-Output": None},
         f"trigger condition \"int({P}) > 2\" cannot evaluate int(None): int() argument must be a string, a "
         "bytes-like object or a real number, not 'NoneType'"),
        ("int(1e999) > 2", {}, "trigger condition 'int(1e999) > 2' cannot evaluate int(inf): cannot convert float "
         "infinity to integer"),
    ],
    ids=["not-a-number", "null", "infinity"],
)
def test_values_a_function_cannot_convert_are_an_invalid_input(condition, values, message):
    with pytest.raises(errors.InvalidInputError) as raised:
        conditions.evaluate_condition(condition, values)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    "condition, problem",
    [
        ("!" * 60 + "true", "it nests more than 50 levels deep"),
        ("(" * 3000 + "1" + ")" * 3000, "it nests more than 50 levels deep"),
        ("1" * 5000 + " == 1", "the number 11111111111111111111... has too many digits"),
    ],
    ids=["negations", "parentheses", "long-number"],
)
def test_oversized_conditions_are_unsupported(condition, problem):
    with pytest.raises(errors.UnsupportedFeatureError) as raised:
        conditions.check_condition_syntax(condition)
    assert str(raised.value) == f"trigger condition {condition!r} is not supported by the local runner: {problem}"
