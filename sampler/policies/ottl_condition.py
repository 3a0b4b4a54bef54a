"""ottl_condition: boolean OTTL conditions on spans and span events, as the Collector's policy takes them.

The subset users write in sampling policies: paths (`name`, `kind`, `status.code`,
`attributes["k"]`, `resource.attributes["k"]`, `instrumentation_scope.name`,
`start_time_unix_nano`, `end_time_unix_nano`, ... with optional `span.`/`spanevent.`
context prefixes), literals (strings, numbers, true/false, nil, enums such as
SPAN_KIND_SERVER and STATUS_CODE_ERROR), arithmetic (+ - * /, e.g. durations),
comparisons, `and`/`or`/`not`, parentheses and the IsMatch converter.

Conditions are parsed once, at config load, by a grammar (lark), and compiled to
Python closures; a syntax error points at its column.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import lark
from pydantic import Field, field_validator, model_validator

from sampler.policies.base import Decision, Policy, PolicySettings, SpanRecord, TraceView

_GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr -> negation
         | comparison
?comparison: sum (COMPARATOR sum)?
?sum: product (ADDITIVE product)*
?product: unary (MULTIPLICATIVE unary)*
?unary: "-" unary -> negative
      | atom
?atom: literal
     | path
     | call
     | UPPER_NAME -> enum
     | "(" or_expr ")"
call: UPPER_NAME "(" [or_expr ("," or_expr)*] ")"
path: LOWER_NAME ("." LOWER_NAME)* key*
key: "[" (STRING | INT) "]"
literal: STRING -> string
       | FLOAT -> float
       | INT -> int
       | _TRUE -> true
       | _FALSE -> false
       | _NIL -> nil

_OR.2: /or(?![A-Za-z0-9_])/
_AND.2: /and(?![A-Za-z0-9_])/
_NOT.2: /not(?![A-Za-z0-9_])/
_TRUE.2: /true(?![A-Za-z0-9_])/
_FALSE.2: /false(?![A-Za-z0-9_])/
_NIL.2: /nil(?![A-Za-z0-9_])/
COMPARATOR: "==" | "!=" | "<=" | ">=" | "<" | ">"
ADDITIVE: "+" | "-"
MULTIPLICATIVE: "*" | "/"
UPPER_NAME: /[A-Z][A-Za-z0-9_]*/
LOWER_NAME: /[a-z_][a-z0-9_]*/
STRING: /"(\\.|[^"\\])*"/
FLOAT: /[0-9]+\.[0-9]*([eE][+-]?[0-9]+)?/ | /[0-9]+[eE][+-]?[0-9]+/
INT: /[0-9]+/
%ignore /[ \t\r\n]+/
"""

_PARSER = lark.Lark(_GRAMMAR, parser="lalr", maybe_placeholders=False)

ENUMS: dict[str, int] = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
    "STATUS_CODE_UNSET": 0,
    "STATUS_CODE_OK": 1,
    "STATUS_CODE_ERROR": 2,
}

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


class OttlError(Exception):
    """A condition could not be evaluated on a span (e.g. IsMatch on a number)."""


@dataclass
class Context:
    """What a condition sees: a span (and, for span-event conditions, one of its events)."""

    record: SpanRecord
    event: Any = None


Evaluator = Callable[[Context], Any]


def any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: any_value(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind)


def _attribute(attributes: Any, key: Any) -> Any:
    for attribute in attributes:
        if attribute.key == key:
            return any_value(attribute.value)
    return None


# --- paths ------------------------------------------------------------------------------

_SPAN_FIELDS: dict[str, Callable[[Any], Any]] = {
    "name": lambda span: span.name,
    "kind": lambda span: span.kind,
    "start_time_unix_nano": lambda span: span.start_time_unix_nano,
    "end_time_unix_nano": lambda span: span.end_time_unix_nano,
    "trace_state": lambda span: span.trace_state,
    "dropped_attributes_count": lambda span: span.dropped_attributes_count,
    "dropped_events_count": lambda span: span.dropped_events_count,
    "dropped_links_count": lambda span: span.dropped_links_count,
    "status.code": lambda span: span.status.code,
    "status.message": lambda span: span.status.message,
    "trace_id.string": lambda span: span.trace_id.hex(),
    "span_id.string": lambda span: span.span_id.hex(),
    "parent_span_id.string": lambda span: span.parent_span_id.hex(),
}
_EVENT_FIELDS: dict[str, Callable[[Any], Any]] = {
    "name": lambda event: event.name,
    "time_unix_nano": lambda event: event.time_unix_nano,
    "dropped_attributes_count": lambda event: event.dropped_attributes_count,
}


def _compile_path(parts: list[str], keys: list[Any], context: str) -> Evaluator:
    """Resolve a path in the span or spanevent context; raises ValueError for an unknown one."""
    text = ".".join(parts)
    if parts[0] == context and len(parts) > 1:  # span.name in the span context, spanevent.name in spanevent
        parts = parts[1:]
        text = ".".join(parts)
    if parts[0] == "span" and context == "spanevent" and len(parts) > 1:
        inner = _compile_path(parts[1:], keys, "span")
        return lambda ctx: inner(Context(ctx.record))
    if text == "resource.attributes" and len(keys) == 1:
        key = keys[0]
        return lambda ctx: _attribute(ctx.record.resource.attributes, key)
    if text in ("instrumentation_scope.name", "scope.name") and not keys:
        return lambda ctx: ctx.record.scope.name
    if text in ("instrumentation_scope.version", "scope.version") and not keys:
        return lambda ctx: ctx.record.scope.version
    if text in ("instrumentation_scope.attributes", "scope.attributes") and len(keys) == 1:
        key = keys[0]
        return lambda ctx: _attribute(ctx.record.scope.attributes, key)
    if text == "attributes" and len(keys) == 1:
        key = keys[0]
        if context == "spanevent":
            return lambda ctx: _attribute(ctx.event.attributes, key)
        return lambda ctx: _attribute(ctx.record.span.attributes, key)
    fields = _EVENT_FIELDS if context == "spanevent" else _SPAN_FIELDS
    getter = fields.get(text)
    if getter is not None and not keys:
        if context == "spanevent":
            return lambda ctx: getter(ctx.event)
        return lambda ctx: getter(ctx.record.span)
    valid = ", ".join([*fields, "attributes[...]", "resource.attributes[...]", "instrumentation_scope.name"])
    raise ValueError(f"unknown path {text!r} in the {context} context; valid paths: {valid}")


# --- compilation ----------------------------------------------------------------------------


def _is_match(target: Any, pattern: Any) -> bool:
    if target is None:
        return False
    if not isinstance(target, str):
        raise OttlError(f"IsMatch needs a string, got {type(target).__name__}")
    return pattern.search(target) is not None


def _compare(op: Callable[[Any, Any], bool], left: Any, right: Any) -> bool:
    # OTTL: values of different types are never equal and never ordered.
    if isinstance(left, bool) or isinstance(right, bool):
        if type(left) is not type(right):
            return op is operator.ne
        return op(left, right)
    numbers = (int, float)
    if isinstance(left, numbers) and isinstance(right, numbers):
        return op(left, right)
    if type(left) is type(right):
        if left is None or op in (operator.eq, operator.ne):
            return op(left, right)
        if isinstance(left, str):
            return op(left, right)
        return False
    return op is operator.ne


def _arithmetic(op: Callable[[Any, Any], Any], symbol: str, left: Any, right: Any) -> Any:
    numbers = (int, float)
    if (
        isinstance(left, bool)
        or isinstance(right, bool)
        or not (isinstance(left, numbers) and isinstance(right, numbers))
    ):
        raise OttlError(f"cannot apply {symbol} to {type(left).__name__} and {type(right).__name__}")
    if symbol == "/" and right == 0:
        raise OttlError("division by zero")
    if symbol == "/" and isinstance(left, int) and isinstance(right, int):
        return left // right
    return op(left, right)


class _Compiler:
    def __init__(self, context: str) -> None:
        self.context = context

    def compile(self, tree: Any) -> Evaluator:
        if isinstance(tree, lark.Token):
            raise ValueError(f"unexpected {tree!r}")
        method = getattr(self, f"_{tree.data}", None)
        if method is None:
            raise ValueError(f"unsupported expression {tree.data}")
        return method(tree.children)

    def _or_expr(self, children: list[Any]) -> Evaluator:
        parts = [self.compile(child) for child in children]
        return lambda ctx: any(_truth(part(ctx)) for part in parts)

    def _and_expr(self, children: list[Any]) -> Evaluator:
        parts = [self.compile(child) for child in children]
        return lambda ctx: all(_truth(part(ctx)) for part in parts)

    def _negation(self, children: list[Any]) -> Evaluator:
        inner = self.compile(children[0])
        return lambda ctx: not _truth(inner(ctx))

    def _comparison(self, children: list[Any]) -> Evaluator:
        left, symbol, right = self.compile(children[0]), str(children[1]), self.compile(children[2])
        op = _COMPARE[symbol]
        return lambda ctx: _compare(op, left(ctx), right(ctx))

    def _binary(self, children: list[Any], table: dict[str, Callable[[Any, Any], Any]]) -> Evaluator:
        result = self.compile(children[0])
        for index in range(1, len(children), 2):
            symbol = str(children[index])
            result = _arithmetic_node(result, self.compile(children[index + 1]), table[symbol], symbol)
        return result

    def _sum(self, children: list[Any]) -> Evaluator:
        return self._binary(children, _ARITHMETIC)

    def _product(self, children: list[Any]) -> Evaluator:
        return self._binary(children, _ARITHMETIC)

    def _negative(self, children: list[Any]) -> Evaluator:
        inner = self.compile(children[0])
        return lambda ctx: _arithmetic(operator.sub, "-", 0, inner(ctx))

    def _enum(self, children: list[Any]) -> Evaluator:
        name = str(children[0])
        if name not in ENUMS:
            raise ValueError(f"unknown enum {name}; valid: {', '.join(ENUMS)}")
        value = ENUMS[name]
        return lambda ctx: value

    def _string(self, children: list[Any]) -> Evaluator:
        value = _unquote(str(children[0]))
        return lambda ctx: value

    def _int(self, children: list[Any]) -> Evaluator:
        value = int(children[0])
        return lambda ctx: value

    def _float(self, children: list[Any]) -> Evaluator:
        value = float(children[0])
        return lambda ctx: value

    def _true(self, children: list[Any]) -> Evaluator:
        return lambda ctx: True

    def _false(self, children: list[Any]) -> Evaluator:
        return lambda ctx: False

    def _nil(self, children: list[Any]) -> Evaluator:
        return lambda ctx: None

    def _path(self, children: list[Any]) -> Evaluator:
        parts = [str(child) for child in children if isinstance(child, lark.Token)]
        keys = [_key(child) for child in children if isinstance(child, lark.Tree)]
        return _compile_path(parts, keys, self.context)

    def _call(self, children: list[Any]) -> Evaluator:
        name = str(children[0])
        arguments = children[1:]
        if name != "IsMatch":
            raise ValueError(f"unsupported function {name}; supported: IsMatch")
        if len(arguments) != 2:
            raise ValueError("IsMatch takes two arguments: a value and a regular expression string")
        pattern_tree = arguments[1]
        if not (isinstance(pattern_tree, lark.Tree) and pattern_tree.data == "string"):
            raise ValueError("the pattern of IsMatch must be a string literal")
        source = _unquote(str(pattern_tree.children[0]))
        try:
            pattern = re.compile(source)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {source!r}: {exc}") from None
        target = self.compile(arguments[0])
        return lambda ctx: _is_match(target(ctx), pattern)


def _arithmetic_node(left: Evaluator, right: Evaluator, op: Callable[[Any, Any], Any], symbol: str) -> Evaluator:
    return lambda ctx: _arithmetic(op, symbol, left(ctx), right(ctx))


def _truth(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise OttlError(f"expected a boolean, got {type(value).__name__} {value!r}")


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _key(tree: lark.Tree) -> Any:
    token = tree.children[0]
    return _unquote(str(token)) if token.type == "STRING" else int(token)


def compile_condition(text: str, context: Literal["span", "spanevent"]) -> Evaluator:
    """Parse and compile one condition; ValueError with the column of a syntax error."""
    try:
        tree = _PARSER.parse(text)
    except lark.UnexpectedInput as exc:
        caret = " " * (exc.column - 1) + "^" if exc.column and exc.column > 0 else ""
        expected = ""
        if isinstance(exc, lark.UnexpectedToken) and exc.expected:
            expected = "; expected one of: " + ", ".join(sorted(exc.expected))
        raise ValueError(f"syntax error at column {exc.column}{expected}\n      {text}\n      {caret}") from None
    return _Compiler(context).compile(tree)


# --- the policy -----------------------------------------------------------------------------


class OttlConditionSettings(PolicySettings):
    error_mode: Literal["propagate", "ignore", "silent"] = "propagate"
    span: list[str] = Field(default_factory=list)
    spanevent: list[str] = Field(default_factory=list)

    @field_validator("span", "spanevent")
    @classmethod
    def _conditions_compile(cls, conditions: list[str], info: Any) -> list[str]:
        for index, condition in enumerate(conditions):
            try:
                compile_condition(condition, info.field_name)
            except ValueError as exc:
                raise ValueError(f"condition [{index}]: {exc}") from None
        return conditions

    @model_validator(mode="after")
    def _some_condition(self) -> OttlConditionSettings:
        if not self.span and not self.spanevent:
            raise ValueError("expected at least one condition in span or spanevent")
        return self


class OttlConditionPolicy(Policy):
    """Samples a trace when any span satisfies any `span` condition, or any span
    event satisfies any `spanevent` condition. error_mode says what an evaluation
    error does: propagate (the policy fails for that trace), ignore or silent
    (the condition counts as false)."""

    type_name = "ottl_condition"
    settings_model = OttlConditionSettings

    def prepare(self) -> None:
        self._span = [compile_condition(text, "span") for text in self.settings.span]
        self._event = [compile_condition(text, "spanevent") for text in self.settings.spanevent]
        self._propagate = self.settings.error_mode == "propagate"

    def _holds(self, condition: Evaluator, context: Context) -> bool:
        try:
            return _truth(condition(context))
        except OttlError:
            if self._propagate:
                raise
            return False

    def evaluate(self, trace: TraceView) -> Decision:
        for record in trace.spans():
            context = Context(record)
            for condition in self._span:
                if self._holds(condition, context):
                    return Decision.SAMPLED
            if self._event:
                for event in record.span.events:
                    event_context = Context(record, event)
                    for condition in self._event:
                        if self._holds(condition, event_context):
                            return Decision.SAMPLED
        return Decision.NOT_SAMPLED
