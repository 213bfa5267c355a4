"""Evaluating `trigger_policy.condition`: the CEL subset the KFP compiler emits for dsl.If / Elif / Else."""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Mapping, Tuple

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
        UnsupportedFeatureError: the condition uses syntax outside what the KFP compiler emits.
        InvalidInputError: the condition names a parameter the task does not have.
    """
    parser = _Parser(_tokenize(condition), condition, parameter_values)
    value = parser.parse_expression()
    if parser.position != len(parser.tokens):
        raise parser.unsupported(f"unexpected {parser.tokens[parser.position][1]!r}")
    return bool(value)


def check_condition_syntax(condition: str) -> None:
    """Raises UnsupportedFeatureError when `condition` cannot be parsed; used before a run starts."""
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
