"""OTTL conditions compiled to Python closures over a span (and, in the spanevent context, one
of its events), as the Collector's ottl_condition policy evaluates them.

Conditions are parsed once, at config load (grammar.py), and compiled here: paths resolve
to field getters, literals to constants, and operators follow OTTL's typing (values of
different types are never equal and never ordered; `/` on integers is integer division).
The only function is the IsMatch converter.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import lark

from sampler.ottl.grammar import parse
from sampler.spans.trace import SpanRecord

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


def _key(tree: lark.Tree[lark.Token]) -> Any:
    token = tree.children[0]
    assert isinstance(token, lark.Token)  # the grammar's key is one STRING or INT token
    return _unquote(str(token)) if token.type == "STRING" else int(token)


def compile_condition(text: str, context: Literal["span", "spanevent"]) -> Evaluator:
    """Parse and compile one condition; ValueError with the column of a syntax error."""
    return _Compiler(context).compile(parse(text))


def holds(condition: Evaluator, context: Context) -> bool:
    """Whether the condition is true; OttlError if it does not give a boolean."""
    return _truth(condition(context))
