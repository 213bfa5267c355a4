"""Evaluating `trigger_policy.condition` (dsl.If / Elif / Else) as the KFP backend does, with CEL.

Where `cel-expr-python` installs (Python 3.11 and later; the CEL C++ runtime, whose semantics are cel-go's: the
backend's `int("3.7")` is an error, comparing a string with a number is an error), conditions are evaluated by it,
with the backend's variables and `parseJson` (backend/src/v2/expression/expression.go). On Python 3.10, which it
has no wheels for, a hand-written evaluator of the subset the KFP compiler emits takes its place, with the same
results on that subset (tests/ir/test_conditions.py runs both).
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from kfp_lineage import errors

# The compiler writes conditions such as
#   !(int(inputs.parameter_values['pipelinechannel--a-Output']) > 2) && inputs.parameter_values['x'] == 'local'
# (kfp/compiler/pipeline_spec_builder.py, _single_binary_operation_to_cel_condition). We parse exactly that
# grammar instead of depending on a CEL engine:
#   expr    := or
#   or      := and ('||' and)*
#   and     := unary ('&&' unary)*
#   unary   := '!' unary | compare
#   compare := operand (('=='|'!='|'<'|'<='|'>'|'>=') operand)?
#   operand := '(' expr ')' | NAME '(' expr ')' | 'inputs.parameter_values[' STRING ']' | literal

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'[^']*'|"[^"]*")
      | (?P<number>-?\d+\.\d*(?:[eE][-+]?\d+)?|-?\d+(?:[eE][-+]?\d+)?)
      | (?P<op>&&|\|\||==|!=|<=|>=|<|>|!|\(|\)|\[|\]|\.)
      | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
    )""",
    re.VERBOSE,
)

_COMPARE: Dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}

_FUNCTIONS: Dict[str, Callable[[Any], Any]] = {
    "int": lambda v: int(float(v)) if isinstance(v, str) else int(v),
    "double": float,
    "string": lambda v: str(v).lower() if isinstance(v, bool) else str(v),
    "bool": lambda v: v if isinstance(v, bool) else str(v).lower() == "true",
}

_LITERALS = {"true": True, "false": False, "null": None}

# Compiled conditions nest a few levels; this keeps a hand-written one far from Python's recursion limit.
_MAX_NESTING = 50


def evaluate_condition(condition: str, parameter_values: Mapping[str, Any]) -> bool:
    """Evaluates a compiled trigger condition against a task's resolved input parameters.

    Args:
        condition: the `trigger_policy.condition` string.
        parameter_values: the task's input parameters (name -> Python value).

    Returns:
        Whether the task should run.

    Raises:
        UnsupportedFeatureError: the condition is not valid CEL (or, without a CEL runtime, is outside the subset).
        InvalidInputError: the condition cannot be evaluated with these values (a parameter the task has no value
            for, `int("abc")`, a comparison of a string with a number, a result that is not a bool), which fails
            the task on the backend too.
    """
    environment = _cel_environment()
    if environment is None:
        return evaluate_subset(condition, parameter_values)
    program = _compile(environment, condition)
    data = {"inputs": {"parameter_values": {k: _as_protobuf_value(v) for k, v in parameter_values.items()}}}
    try:
        result = program.eval(data=data)
        value = result.plain_value()
        kind = result.type().name()
    except (RuntimeError, ValueError, TypeError, OverflowError) as e:
        raise errors.InvalidInputError(f"trigger condition {condition!r} cannot be evaluated: {_first_line(e)}") from None
    if kind == "ERROR":
        missing = _MISSING_KEY.search(str(value))
        if missing:
            raise errors.InvalidInputError(f"trigger condition {condition!r} reads parameter {missing.group(1)!r}, "
                                           "which the task has no value for")
        raise errors.InvalidInputError(f"trigger condition {condition!r} cannot be evaluated: {_first_line(value)}")
    if not isinstance(value, bool):
        raise errors.InvalidInputError(
            f"trigger condition {condition!r} gives {_short(value)}, not a bool, as the backend requires")
    return value


def check_condition_syntax(condition: str) -> None:
    """Raises UnsupportedFeatureError when `condition` cannot be parsed; used before a run starts."""
    environment = _cel_environment()
    if environment is not None:
        _compile(environment, condition)
    else:
        check_subset_syntax(condition)


def cel_runtime_available() -> bool:
    """Whether conditions are evaluated by cel-expr-python (else by the hand-written subset)."""
    return _cel_environment() is not None


# cel-expr-python's error for a map key that is not there, e.g. `NOT_FOUND: Key not found in map : "x"`.
_MISSING_KEY = re.compile(r'Key not found in map : "(.*)"')


@functools.lru_cache(maxsize=None)
def _cel_environment() -> Any:
    """The CEL environment of the backend's condition evaluator (`inputs`, `parseJson`), or None without
    cel-expr-python. Loaded on first use: the runtime is a large extension module."""
    try:
        from cel_expr_python import cel
    except ImportError:
        return None
    parse_json = cel.FunctionDecl("parseJson", [cel.Overload(
        id="parse_json", return_type=cel.Type.DYN, parameters=[cel.Type.STRING], impl=json.loads)])
    return cel.NewEnv(variables={"inputs": cel.Type.DYN}, functions=[parse_json])


@functools.lru_cache(maxsize=256)
def _compile(environment: Any, condition: str) -> Any:
    try:
        return environment.compile(condition)
    except (RuntimeError, ValueError) as e:
        raise errors.UnsupportedFeatureError(
            f"trigger condition {_short(condition)} is not valid CEL: {_first_line(e)}") from None


def _as_protobuf_value(value: Any) -> Any:
    """A parameter as the backend's evaluator sees it, a google.protobuf.Value: every number a double."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:  # an int beyond a double: as json.loads would read it into a Value
            return math.inf if value > 0 else -math.inf
    if isinstance(value, Mapping):
        return {str(k): _as_protobuf_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_protobuf_value(v) for v in value]
    return str(value)


def _first_line(error: Any) -> str:
    """The first line of a CEL error, without cel-expr-python's `<input>:1:4:` position prefix."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = re.sub(r"^[A-Z_]+: (ERROR: )?(<input>:\d+:\d+: )?", "", text)
    return text if len(text) <= 160 else text[:157] + "..."


def evaluate_subset(condition: str, parameter_values: Mapping[str, Any]) -> bool:
    """evaluate_condition with the hand-written evaluator of the CEL subset the KFP compiler emits (used where
    cel-expr-python is not installed)."""
    parser = _Parser(_tokenize(condition), condition, parameter_values)
    value = parser.parse_expression()
    if parser.position != len(parser.tokens):
        raise parser.unsupported(f"unexpected {parser.tokens[parser.position][1]!r}")
    return bool(value)


def check_subset_syntax(condition: str) -> None:
    """check_condition_syntax for the hand-written subset."""
    parser = _Parser(_tokenize(condition), condition, parameter_values=None)
    parser.parse_expression()
    if parser.position != len(parser.tokens):
        raise parser.unsupported(f"unexpected {parser.tokens[parser.position][1]!r}")


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int of more than 4300 digits
        return "a huge int"
    return text if len(text) <= 60 else text[:57] + "..."


def _tokenize(condition: str) -> List[Tuple[str, str]]:
    tokens: List[Tuple[str, str]] = []
    position = 0
    text = condition.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise errors.UnsupportedFeatureError(
                f"trigger condition {condition!r} has syntax the local runner does not understand "
                f"at column {position + 1}"
            )
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    """Recursive-descent evaluator; with parameter_values=None it only checks syntax."""

    def __init__(self, tokens: List[Tuple[str, str]], condition: str, parameter_values: Mapping[str, Any] | None):
        self.tokens = tokens
        self.position = 0
        self.condition = condition
        self.parameter_values = parameter_values
        self.depth = 0

    def unsupported(self, problem: str) -> errors.UnsupportedFeatureError:
        return errors.UnsupportedFeatureError(
            f"trigger condition {self.condition!r} is not supported by the local runner: {problem}"
        )

    def peek(self) -> Tuple[str, str]:
        return self.tokens[self.position] if self.position < len(self.tokens) else ("end", "")

    def take(self, value: str | None = None) -> Tuple[str, str]:
        token = self.peek()
        if token[0] == "end" or (value is not None and token[1] != value):
            raise self.unsupported(f"expected {value or 'more'}, found {token[1] or 'the end'}")
        self.position += 1
        return token

    def nest(self, step: int) -> None:
        self.depth += step
        if self.depth > _MAX_NESTING:
            raise self.unsupported(f"it nests more than {_MAX_NESTING} levels deep")

    def parse_expression(self) -> Any:
        self.nest(1)
        value = self.parse_and()
        while self.peek()[1] == "||":
            self.take()
            right = self.parse_and()
            value = bool(value) or bool(right)
        self.nest(-1)
        return value

    def parse_and(self) -> Any:
        value = self.parse_unary()
        while self.peek()[1] == "&&":
            self.take()
            right = self.parse_unary()
            value = bool(value) and bool(right)
        return value

    def parse_unary(self) -> Any:
        if self.peek()[1] == "!":
            self.take()
            self.nest(1)
            value = not self.parse_unary()
            self.nest(-1)
            return value
        return self.parse_compare()

    def parse_compare(self) -> Any:
        left = self.parse_operand()
        operator = self.peek()[1]
        if self.peek()[0] == "op" and operator in _COMPARE:
            self.take()
            right = self.parse_operand()
            if self.parameter_values is None:
                return True
            try:
                return _COMPARE[operator](left, right)
            except TypeError:
                raise self.unsupported(f"cannot compare {left!r} {operator} {right!r}") from None
        return left

    def parse_operand(self) -> Any:
        kind, text = self.take()
        if text == "(":
            value = self.parse_expression()
            self.take(")")
            return value
        if kind == "string":
            return text[1:-1]
        if kind == "number":
            try:
                return float(text) if any(c in text for c in ".eE") else int(text)
            except ValueError:  # int() refuses more than 4300 digits
                raise self.unsupported(f"the number {text[:20]}... has too many digits") from None
        if kind == "name":
            if text in _LITERALS:
                return _LITERALS[text]
            if text in _FUNCTIONS:
                self.take("(")
                argument = self.parse_expression()
                self.take(")")
                if self.parameter_values is None:
                    return argument
                try:
                    return _FUNCTIONS[text](argument)
                except (ValueError, TypeError, OverflowError) as e:  # int('abc'), int(None), int(inf)
                    raise errors.InvalidInputError(
                        f"trigger condition {self.condition!r} cannot evaluate {text}({_short(argument)}): {e}"
                    ) from None
            if text == "inputs":
                return self.parse_input_reference()
        raise self.unsupported(f"unexpected {text!r}")

    def parse_input_reference(self) -> Any:
        self.take(".")
        field = self.take()[1]
        if field != "parameter_values":
            raise self.unsupported(f"only inputs.parameter_values[...] can be read, not inputs.{field}")
        self.take("[")
        kind, key = self.take()
        if kind != "string":
            raise self.unsupported("inputs.parameter_values[...] needs a quoted name")
        self.take("]")
        if self.parameter_values is None:
            return None
        name = key[1:-1]
        if name not in self.parameter_values:
            raise errors.InvalidInputError(
                f"trigger condition {self.condition!r} reads parameter {name!r}, which the task has no value for"
            )
        return self.parameter_values[name]
