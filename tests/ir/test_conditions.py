"""Trigger conditions as kfp compiles dsl.If / Elif / Else: evaluated with CEL (cel-expr-python, cel-go's
semantics) and, where it does not install (Python 3.10), with the hand-written subset; the compiler's grammar gives
the same results with both."""

import pytest

from kfp_lineage import errors
from kfp_lineage.ir import conditions

P = "inputs.parameter_values['pipelinechannel--a-Output']"
needs_cel = pytest.mark.skipif(not conditions.cel_runtime_available(), reason="cel-expr-python is not installed")


@pytest.fixture(params=["cel", "subset"])
def evaluate(request):
    if request.param == "cel":
        if not conditions.cel_runtime_available():
            pytest.skip("cel-expr-python is not installed (Python 3.10)")
        return conditions.evaluate_condition
    return conditions.evaluate_subset


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
def test_evaluate_condition(evaluate, condition, values, expected):
    assert evaluate(condition, values) is expected


def test_unknown_parameter_names_the_parameter(evaluate):
    with pytest.raises(errors.InvalidInputError) as raised:
        evaluate("inputs.parameter_values['missing'] == 1", {})
    assert str(raised.value) == ("trigger condition \"inputs.parameter_values['missing'] == 1\" reads parameter "
                                 "'missing', which the task has no value for")


@pytest.mark.parametrize("condition", ["size(inputs.parameter_values['x']) > 1", "inputs.parameters['x'] == 1", "1 +"])
def test_syntax_outside_the_subset_is_rejected_before_the_run(condition):
    with pytest.raises(errors.UnsupportedFeatureError, match="trigger condition"):
        conditions.check_subset_syntax(condition)


@needs_cel
def test_invalid_cel_is_rejected_before_the_run():
    with pytest.raises(errors.UnsupportedFeatureError) as raised:
        conditions.check_condition_syntax("1 +")
    assert str(raised.value).startswith("trigger condition '1 +' is not valid CEL: Syntax error: mismatched input")
    conditions.check_condition_syntax("size(inputs.parameter_values['x']) > 1")  # CEL beyond the compiler's subset


# Where the subset is not cel-go: the backend's evaluator fails the task on these; CEL does the same here.
@needs_cel
@pytest.mark.parametrize(
    "condition, values, problem",
    [
        (f"int({P}) == 3", {"pipelinechannel--a-Output": "3.7"}, "cannot be evaluated: cannot convert string to int"),
        (f"{P} > 2", {"pipelinechannel--a-Output": "3"},
         "cannot be evaluated: No matching overloads found : _>_(string, int64)"),
        (f"int({P}) > 2", {"pipelinechannel--a-Output": None},
         "cannot be evaluated: No matching overloads found : int(null_type)"),
        (f"{P}", {"pipelinechannel--a-Output": 1}, "gives 1.0, not a bool, as the backend requires"),
    ],
    ids=["int-of-a-decimal-string", "string-vs-number", "int-of-null", "not-a-bool"],
)
def test_cel_go_semantics(condition, values, problem):
    with pytest.raises(errors.InvalidInputError) as raised:
        conditions.evaluate_condition(condition, values)
    assert str(raised.value) == f"trigger condition {condition!r} {problem}"


def test_the_subset_differs_from_cel_go_on_a_decimal_string():
    # The documented difference of the Python 3.10 fallback: int("3.7") is 3 here, an error in cel-go.
    assert conditions.evaluate_subset(f"int({P}) == 3", {"pipelinechannel--a-Output": "3.7"}) is True


@needs_cel
def test_numbers_are_doubles_as_in_a_protobuf_value_and_parse_json_works():
    assert conditions.evaluate_condition(f"{P} == 3", {"pipelinechannel--a-Output": 3}) is True
    assert conditions.evaluate_condition(f"parseJson({P}).k == 'v'", {"pipelinechannel--a-Output": '{"k": "v"}'})
    assert conditions.evaluate_condition(f"{P} > 1.0", {"pipelinechannel--a-Output": 10**400}) is True


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
def test_values_a_function_cannot_convert_are_an_invalid_input_to_the_subset(condition, values, message):
    with pytest.raises(errors.InvalidInputError) as raised:
        conditions.evaluate_subset(condition, values)
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
def test_oversized_conditions_are_unsupported_by_the_subset(condition, problem):
    with pytest.raises(errors.UnsupportedFeatureError) as raised:
        conditions.check_subset_syntax(condition)
    assert str(raised.value) == f"trigger condition {condition!r} is not supported by the local runner: {problem}"
