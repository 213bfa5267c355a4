"""Fuzzed trigger conditions: a bool, or a LineageError naming the condition; never IndexError, TypeError, ..."""

from hypothesis import event, given
from hypothesis import strategies as st

from kfp_lineage import errors
from kfp_lineage.ir import conditions

NAMES = ["a", "pipelinechannel--make-number-Output", "x y", ""]

# Parameter values a task may hold: every JSON type, numbers out of every range, number-like text.
parameter_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from(["1", "2.5", "1e999", "nan", "-inf", "true", "True", "1" * 5000, ""]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
# Mostly every name has a value, so that evaluation goes past the lookup.
parameters = st.one_of(
    st.fixed_dictionaries({name: parameter_values for name in NAMES}),
    st.fixed_dictionaries({name: parameter_values for name in NAMES}),
    st.dictionaries(st.sampled_from(NAMES), parameter_values, max_size=4),
)

# The grammar the KFP compiler emits, plus the near misses a hand-edited or newer spec could hold.
literals = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["true", "false", "null", "1e999", "-0", "1" * 5000, "1.", "''", '""']),
    st.text(alphabet=st.characters(exclude_characters="'"), max_size=8).map(lambda s: f"'{s}'"),
)
references = st.one_of(
    st.sampled_from(NAMES).map(lambda n: f"inputs.parameter_values['{n}']"),
    st.sampled_from(["inputs.parameter_values[1]", "inputs.parameters['a']", "inputs.parameter_values", "inputs."]),
)
atoms = st.one_of(literals, references)


def _combine(children):
    return st.one_of(
        st.tuples(st.sampled_from(["int", "double", "string", "bool", "size", "int int"]), children).map(
            lambda p: f"{p[0]}({p[1]})"
        ),
        st.tuples(children, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "&&", "||", "+", "="]), children).map(
            lambda p: f"{p[0]} {p[1]} {p[2]}"
        ),
        children.map(lambda c: f"!{c}"),
        children.map(lambda c: f"({c})"),
    )


expressions = st.recursive(atoms, _combine, max_leaves=8)
# Nesting deeper than any compiler output, to reach the parser's recursion.
deep = st.tuples(st.integers(1, 3000), st.sampled_from(["(", "!", "!(", "int("]), atoms).map(
    lambda p: p[1] * p[0] + p[2] + ")" * (p[0] * p[1].count("("))
)


def _check(condition, values) -> None:
    try:
        conditions.check_condition_syntax(condition)
    except errors.LineageError as e:
        assert "\n" not in str(e) and "trigger condition" in str(e), repr(str(e))
        event("syntax refused")
        return
    try:
        result = conditions.evaluate_condition(condition, values)
    except errors.LineageError as e:
        assert "\n" not in str(e) and "trigger condition" in str(e), repr(str(e))
        event("evaluation refused")
    else:
        assert isinstance(result, bool)
        event(f"evaluated {result}")


@given(st.text(max_size=60), parameters)
def test_arbitrary_text_is_a_bool_or_a_lineage_error(condition, values):
    _check(condition, values)


@given(expressions, parameters)
def test_expressions_are_a_bool_or_a_lineage_error(condition, values):
    _check(condition, values)


@given(deep, parameters)
def test_deeply_nested_conditions_are_refused_cleanly(condition, values):
    _check(condition, values)
