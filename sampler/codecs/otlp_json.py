"""The OTLP/JSON mapping of trace and log export requests.

OTLP/JSON is protobuf's JSON mapping with two differences that matter here:
trace and span IDs are hex strings (not base64), and enums are integers.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _child_list(obj: dict[str, Any], camel: str, snake: str) -> list[Any]:
    value = obj.get(camel, obj.get(snake))
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{camel} must be an array")
    return value


def _convert_ids(request: Any, convert: Callable[[str, str], str | bytes]) -> None:
    if not isinstance(request, dict):
        raise ValueError("the request must be a JSON object")
    for resource_spans in _child_list(request, "resourceSpans", "resource_spans"):
        if not isinstance(resource_spans, dict):
            raise ValueError("resourceSpans entries must be objects")
        for scope_spans in _child_list(resource_spans, "scopeSpans", "scope_spans"):
            if not isinstance(scope_spans, dict):
                raise ValueError("scopeSpans entries must be objects")
            for span in _child_list(scope_spans, "spans", "spans"):
                if not isinstance(span, dict):
                    raise ValueError("spans entries must be objects")
                _convert_fields(span, convert)
                for link in _child_list(span, "links", "links"):
                    if isinstance(link, dict):
                        _convert_fields(link, convert)


def _convert_fields(obj: dict[str, Any], convert: Callable[[str, str], str | bytes]) -> None:
    for name in _ID_FIELDS:
        value = obj.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a hex string")
            obj[name] = convert(name, value)


def _hex_to_base64(name: str, value: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")
    except ValueError:
        raise ValueError(f"{name} {value[:64]!r} is not a hex string") from None


def _base64_to_hex(name: str, value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).hex()
    except binascii.Error:  # pragma: no cover - protobuf always emits valid base64
        raise ValueError(f"{name} is not base64") from None


def request_from_json_exact(data: bytes | str) -> ExportTraceServiceRequest:
    """Parse an OTLP/JSON trace request with protobuf's json_format: the reference
    reading, and the one every error comes from. Raises ValueError with a readable reason."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    _convert_ids(document, _hex_to_base64)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as exc:
        raise ValueError(str(exc)) from None
    except Exception as exc:  # json_format lets some odd input through as other errors (#13)
        raise ValueError(_unreadable(exc)) from None
    return request


def _unreadable(exc: BaseException) -> str:
    """Why json_format could not read a document, for errors it does not word itself."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, UnicodeError):
            # JSON allows a \ud800 escape that is half of a surrogate pair; protobuf strings are UTF-8.
            return "a string is not valid Unicode (a lone surrogate escape such as \\ud800?)"
        seen = seen.__cause__ or seen.__context__
    return f"the document does not map to an OTLP request ({type(exc).__name__}: {exc})"


# --- the fast path -------------------------------------------------------------


def request_from_json(data: bytes | str) -> ExportTraceServiceRequest:
    """Parse an OTLP/JSON trace request: what request_from_json_exact returns, and the
    same ValueError for a malformed one, about five times faster for the usual input.

    The fast path applies the ID rule (`_convert_ids`), then renames the
    document's keys to field names and hands it to the message constructors, which
    build the nested messages in C, instead of json_format's field-by-field walk. What
    it cannot be sure to read exactly as json_format does (nulls, NaN or Infinity, enum
    names it does not know, maps, a field under both its names, nesting past _MAX_DEPTH,
    any error at all) goes to request_from_json_exact, which has the final word.
    """
    try:
        document = json.loads(data)
        _convert_ids(document, _hex_to_bytes)
        return ExportTraceServiceRequest(**_REQUEST(document, 0))
    except Exception:
        return request_from_json_exact(data)


class _Unusual(Exception):
    """Input the fast path leaves to json_format."""


# json_format refuses messages nested 100 deep; past this depth the slow path decides.
_MAX_DEPTH = 64
_Convert = Callable[[Any, int], Any]


def _hex_to_bytes(name: str, value: str) -> bytes:
    # otlp_json's rule (IDs are hex) applied straight to bytes; JSON itself never holds bytes,
    # so a bytes value below is always an ID converted here. A bad hex string raises
    # ValueError, and request_from_json_exact then reports it in its own words.
    return bytes.fromhex(value)


def _unusual(value: Any, depth: int) -> Any:
    raise _Unusual


def _integer(value: Any, depth: int) -> int:
    kind = type(value)
    if kind is int:
        return value  # the constructor checks the range
    if kind is str and value.isascii() and (value.isdigit() or (value[:1] == "-" and value[1:].isdigit())):
        return int(value)  # int64 fields are strings in proto3 JSON
    raise _Unusual


def _double(value: Any, depth: int) -> float:
    kind = type(value)
    if kind is float and value - value == 0.0:  # finite; NaN and infinities come as strings
        return value
    if kind is int:
        return float(value)
    raise _Unusual


def _boolean(value: Any, depth: int) -> bool:
    if type(value) is bool:
        return value
    raise _Unusual


def _string(value: Any, depth: int) -> str:
    if type(value) is str:
        return value  # a lone surrogate makes the constructor raise, and the slow path answer
    raise _Unusual


def _bytes(value: Any, depth: int) -> bytes:
    kind = type(value)
    if kind is bytes:
        return value
    if kind is str:
        encoded = value.encode("utf-8")  # json_format's decoding: padded, either base64 alphabet
        return base64.urlsafe_b64decode(encoded + b"=" * (4 - len(encoded) % 4))
    raise _Unusual


def _enum(enum_type: Any) -> _Convert:
    numbers = frozenset(value.number for value in enum_type.values)
    by_name = {value.name: value.number for value in enum_type.values}
    closed = getattr(enum_type, "is_closed", False)

    def convert(value: Any, depth: int) -> int:
        kind = type(value)
        if kind is int and (not closed or value in numbers):
            return value
        if kind is str and value in by_name:
            return by_name[value]
        raise _Unusual

    return convert


_SCALARS: dict[int, _Convert] = {
    FieldDescriptor.CPPTYPE_INT32: _integer,
    FieldDescriptor.CPPTYPE_INT64: _integer,
    FieldDescriptor.CPPTYPE_UINT32: _integer,
    FieldDescriptor.CPPTYPE_UINT64: _integer,
    FieldDescriptor.CPPTYPE_DOUBLE: _double,
    FieldDescriptor.CPPTYPE_FLOAT: _unusual,  # json_format range-checks floats
    FieldDescriptor.CPPTYPE_BOOL: _boolean,
}


class _Never:
    """A type no JSON value has: the field's value always goes through its converter."""


# The JSON type a field's value may be handed to the constructor as, unchanged.
_PLAIN: dict[int, type] = {
    FieldDescriptor.CPPTYPE_INT32: int,
    FieldDescriptor.CPPTYPE_INT64: int,
    FieldDescriptor.CPPTYPE_UINT32: int,
    FieldDescriptor.CPPTYPE_UINT64: int,
    FieldDescriptor.CPPTYPE_BOOL: bool,
}


def _is_repeated(descriptor: FieldDescriptor) -> bool:
    repeated = getattr(descriptor, "is_repeated", None)
    if repeated is None:  # protobuf < 5
        return bool(getattr(descriptor, "label") == FieldDescriptor.LABEL_REPEATED)  # noqa: B009 - gone from newer stubs
    return bool(repeated)


def _field_converter(descriptor: FieldDescriptor, registry: dict[str, _Convert]) -> tuple[type, _Convert]:
    """The field's plain type (see _PLAIN) and the converter for any other value."""
    cpp_type = descriptor.cpp_type
    plain: type = _PLAIN.get(cpp_type, _Never)
    if cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        assert descriptor.message_type is not None  # set on every message field
        single = _message_converter(descriptor.message_type, registry)
    elif cpp_type == FieldDescriptor.CPPTYPE_ENUM:
        single = _enum(descriptor.enum_type)
        plain = _Never if getattr(descriptor.enum_type, "is_closed", False) else int
    elif cpp_type == FieldDescriptor.CPPTYPE_STRING:
        # bytes arrive as bytes only from the ID rule; base64 text is converted
        single, plain = (_bytes, bytes) if descriptor.type == FieldDescriptor.TYPE_BYTES else (_string, str)
    else:
        single = _SCALARS[cpp_type]
    if not _is_repeated(descriptor):
        return plain, single

    def repeated(value: Any, depth: int) -> list[Any]:
        if type(value) is not list:
            raise _Unusual
        return [single(item, depth) for item in value]

    return _Never, repeated


def _message_converter(descriptor: Descriptor, registry: dict[str, _Convert]) -> _Convert:
    """A function from a proto3 JSON object to the constructor arguments of the message."""
    existing = registry.get(descriptor.full_name)
    if existing is not None:
        return existing
    if descriptor.GetOptions().map_entry or descriptor.full_name.startswith("google.protobuf."):
        registry[descriptor.full_name] = _unusual  # maps and well-known types have JSON forms of their own
        return _unusual
    table: dict[str, tuple[str, type, _Convert]] = {}  # JSON key -> field name, plain type, converter
    oneofs = [frozenset(f.name for f in oneof.fields) for oneof in descriptor.oneofs if len(oneof.fields) > 1]

    def convert(value: Any, depth: int) -> dict[str, Any]:
        if type(value) is not dict or depth > _MAX_DEPTH:
            raise _Unusual
        depth += 1
        # While the keys are the field names themselves (KeyValue's key and value, Status),
        # only values need converting, in place; the first other key means a new dict.
        for key, item in value.items():
            entry = table.get(key)
            if entry is None or entry[0] != key:
                if entry is not None and len(value) == 1:  # an AnyValue, most often: rename its one key
                    del value[key]
                    value[entry[0]] = item if type(item) is entry[1] else entry[2](item, depth)
                    return value
                return rename(value, depth)
            if type(item) is not entry[1]:
                value[key] = entry[2](item, depth)  # converters accept converted values again
        if oneofs and len(value) > 1:
            check_oneofs(value)
        return value

    def rename(value: dict[str, Any], depth: int) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        for key, item in value.items():
            entry = table.get(key)
            if entry is not None:
                name, plain, field_convert = entry
                arguments[name] = item if type(item) is plain else field_convert(item, depth)
        if len(arguments) != len(value):
            known = [key for key in value if key in table]
            if len(known) != len(arguments):
                raise _Unusual  # one field under both its names (json_format merges or rejects)
            if any(key.startswith("[") for key in value if key not in table):
                raise _Unusual  # an extension name, which json_format refuses
            # other unknown keys are ignored, as request_from_json_exact ignores them
        if oneofs and len(arguments) > 1:
            check_oneofs(arguments)
        return arguments

    def check_oneofs(arguments: dict[str, Any]) -> None:
        for members in oneofs:
            if len(members.intersection(arguments)) > 1:
                raise _Unusual  # json_format refuses two members of a oneof

    registry[descriptor.full_name] = convert  # registered first: messages nest recursively
    entries = [(f, (f.name, *_field_converter(f, registry))) for f in descriptor.fields]
    table.update((f.name, entry) for f, entry in entries)
    table.update((f.json_name, entry) for f, entry in entries)  # the JSON name wins, as in json_format
    return convert


# Built once; the registry (one converter per message type) lives only in the closures.
_REQUEST = _message_converter(ExportTraceServiceRequest.DESCRIPTOR, {})


def request_to_dict(request: ExportTraceServiceRequest) -> dict[str, Any]:
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    _convert_ids(document, _base64_to_hex)
    return document


def request_to_json(request: ExportTraceServiceRequest) -> str:
    """One line of OTLP/JSON, as the Collector's file exporter writes it."""
    return json.dumps(request_to_dict(request), separators=(",", ":"))


# --- logs ------------------------------------------------------------------------


def _convert_log_ids(request: Any, convert: Callable[[str, str], str | bytes]) -> None:
    if not isinstance(request, dict):
        raise ValueError("the request must be a JSON object")
    for resource_logs in _child_list(request, "resourceLogs", "resource_logs"):
        if not isinstance(resource_logs, dict):
            raise ValueError("resourceLogs entries must be objects")
        for scope_logs in _child_list(resource_logs, "scopeLogs", "scope_logs"):
            if not isinstance(scope_logs, dict):
                raise ValueError("scopeLogs entries must be objects")
            for record in _child_list(scope_logs, "logRecords", "log_records"):
                if not isinstance(record, dict):
                    raise ValueError("logRecords entries must be objects")
                _convert_fields(record, convert)


def logs_request_from_json_exact(data: bytes | str) -> ExportLogsServiceRequest:
    """Parse an OTLP/JSON logs request with json_format (see request_from_json_exact)."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    _convert_log_ids(document, _hex_to_base64)
    request = ExportLogsServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as exc:
        raise ValueError(str(exc)) from None
    return request


_LOGS_REQUEST = _message_converter(ExportLogsServiceRequest.DESCRIPTOR, {})


def logs_request_from_json(data: bytes | str) -> ExportLogsServiceRequest:
    """Parse an OTLP/JSON logs request by the fast path of request_from_json, falling back
    to logs_request_from_json_exact for anything unusual (and for every error)."""
    try:
        document = json.loads(data)
        _convert_log_ids(document, _hex_to_bytes)
        return ExportLogsServiceRequest(**_LOGS_REQUEST(document, 0))
    except Exception:
        return logs_request_from_json_exact(data)


def logs_request_to_json(request: ExportLogsServiceRequest) -> str:
    """One line of OTLP/JSON logs, as the Collector's file exporter writes it."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    _convert_log_ids(document, _base64_to_hex)
    return json.dumps(document, separators=(",", ":"))
