"""The internal batch every receiver decodes into: spans grouped per trace.

A `TraceSpans` holds the spans of one trace as serialized, already framed
`Span` fields, grouped by the (resource, scope) they arrived under, plus the
small summary the policies and the window need. The same type carries the
spans of one trace from one request and the whole buffered trace. The log
records that name the trace ride along the same way (framed `LogRecord` fields
per resource and scope, which OTLP frames exactly like spans), so they are
held, decided, remembered and forwarded with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

# A (ResourceSpans prefix, ScopeSpans prefix) pair: see sampler.spans.framing.
ScopeKey = tuple[bytes, bytes]
# Where one fragment of a trace sits in the window's log, packed in one int: see
# sampler/window/log.py. A trace holds one position, as an int, when it arrived in one request
# (most do), or a tuple of them: neither is an object the garbage collector has to track.
LogPosition = int
LogPositions = int | tuple[int, ...]


def add_positions(positions: list[LogPosition], held: LogPositions) -> None:
    """Append the positions a trace holds to a list."""
    if isinstance(held, int):
        positions.append(held)
    else:
        positions += held


class TraceSpans:
    __slots__ = (
        "trace_id",
        "groups",
        "span_count",
        "nbytes",
        "start_min",
        "end_max",
        "root_seen",
        "error_seen",
        "first_seen",
        "due",
        "logs",
        "log_count",
        "log_nbytes",
        "log_positions",
    )

    # trace_id has a default only for pickling (simulate's worker pool): compiled with mypyc
    # (setup.py), the class is unpickled by calling it without arguments.
    def __init__(self, trace_id: bytes = b"") -> None:
        self.trace_id = trace_id
        self.groups: dict[ScopeKey, bytearray] = {}
        self.span_count = 0
        self.nbytes = 0
        self.start_min = 0
        self.end_max = 0
        self.root_seen = False
        self.error_seen = False
        self.first_seen = 0.0  # monotonic seconds, set when the window adopts the trace
        self.due = 0.0  # monotonic seconds at which the trace is to be decided
        # Its log records, framed per (ResourceLogs prefix, ScopeLogs prefix); None until one arrives.
        self.logs: dict[ScopeKey, bytearray] | None = None
        self.log_count = 0
        self.log_nbytes = 0
        # With tail_sampling.storage: where its fragments sit in the window's log (window/log.py),
        # released once the trace is decided and handed on. None without storage.
        self.log_positions: LogPositions | None = None

    def absorb(self, other: TraceSpans) -> None:
        """Append the spans, log records and summary of a later fragment of the same trace."""
        _merge_groups(self.groups, other.groups)
        if other.logs:
            if self.logs is None:
                self.logs = {}
            _merge_groups(self.logs, other.logs)
            self.log_count += other.log_count
            self.log_nbytes += other.log_nbytes
        self.span_count += other.span_count
        self.nbytes += other.nbytes
        if other.start_min and (not self.start_min or other.start_min < self.start_min):
            self.start_min = other.start_min
        if other.end_max > self.end_max:
            self.end_max = other.end_max
        self.root_seen = self.root_seen or other.root_seen
        self.error_seen = self.error_seen or other.error_seen
        more = other.log_positions
        if more is not None:
            held = self.log_positions
            if held is None:
                self.log_positions = more
            else:
                self.log_positions = (held if isinstance(held, tuple) else (held,)) + (
                    more if isinstance(more, tuple) else (more,)
                )

    @property
    def held_bytes(self) -> int:
        """The serialized bytes it holds: spans and log records."""
        return self.nbytes + self.log_nbytes

    @property
    def duration_ns(self) -> int:
        if not self.start_min or self.end_max < self.start_min:
            return 0
        return self.end_max - self.start_min


def _merge_groups(groups: dict[ScopeKey, bytearray], more: dict[ScopeKey, bytearray]) -> None:
    for key, framed in more.items():
        mine = groups.get(key)
        if mine is None:
            groups[key] = framed
        else:
            mine += framed


@dataclass
class DecodedBatch:
    """One export request, split per trace."""

    traces: dict[bytes, TraceSpans] = field(default_factory=dict)
    span_count: int = 0
    rejected_spans: int = 0
    rejection_message: str = ""
    # Of rejected_spans, those past the request's cap, and the cap's reason (max_spans_per_request,
    # or memory_limit: more than the window's memory_limit_mib could hold).
    over_limit_spans: int = 0
    over_limit_reason: str = ""
    # Span limits applied: attributes dropped, string or bytes values truncated.
    dropped_attributes: int = 0
    truncated_values: int = 0
    # Of a logs request: the log records naming a trace (in `traces`), and those naming none,
    # which are not held (framed per resource and scope, like the others).
    log_records: int = 0
    untraced_logs: dict[ScopeKey, bytearray] = field(default_factory=dict)
    untraced_log_count: int = 0


class SpanRecord(NamedTuple):
    """A span parsed from its buffered bytes, with the resource and scope it arrived under."""

    resource: Resource
    scope: InstrumentationScope
    span: Span
