"""Decision records: kept spans say which policy kept them.

The instrumentation scope of every forwarded span gets the attributes the
Collector writes with its `recordpolicy` feature gate, so dashboards built on
them keep working:

- `tailsampling.policy`: the first policy (in config order) that sampled the trace;
- `tailsampling.composite_policy`: for a composite, the sub-policy that sampled it;
- `tailsampling.cached_decision: true`: on late spans forwarded from the decision cache;

and, beyond the Collector:

- `tailsampling.sample_rate`: for a trace kept with a known probability (probabilistic,
  dynamic, throughput), the number of traces it stands for, samplers upstream included
  (its adjusted count), so a backend can extrapolate counts;
- `tailsampling.early_decision`: the trace was decided early because a bound was reached:
  "overflow" (num_traces), "memory" (memory_limit_mib), "span_limit" (max_spans_per_trace)
  or "storage" (the window's log full, with tail_sampling.storage.when_full: decide_early);
- `tailsampling.root_seen: false`: the trace was decided without its root span.

The attributes are appended to the scope's bytes (see framing.add_scope_attributes). The spans
leave untouched, except that a trace kept by an OpenTelemetry consistent probability decision
gets that decision's rejection threshold as `ot=th:` in every span's tracestate (late spans
too), whether or not records are on: the specification asks every stage that changes the
probability to say so. Thresholds are never lowered, and one its randomness contradicts is
replaced.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.policies.base import Policy, Weight
from sampler.spans.framing import (
    TAG_INSTRUMENTATION_SCOPE_ATTRIBUTE,
    TAG_SCOPE_SPAN,
    add_scope_attributes,
    decode_varint,
    frame,
    varint,
)
from sampler.spans.trace import TraceSpans
from sampler.spans.tracestate import ot_fields, trace_id_randomness, with_threshold

_CACHED = frame(
    TAG_INSTRUMENTATION_SCOPE_ATTRIBUTE,
    KeyValue(key="tailsampling.cached_decision", value=AnyValue(bool_value=True)).SerializeToString(),
)
# Triggers of decisions made before a trace was due, because a bound of the window was reached.
EARLY_DECISION_REASONS = ("overflow", "memory", "span_limit", "storage")
# Distinct records are few (policies x triggers); their encodings are kept, within a bound.
_RECORD_CACHE_LIMIT = 1024


def rewrite_threshold(trace: TraceSpans, threshold: int) -> None:
    """Set every span's `ot=th:` to `threshold`, or keep its own where that is as high and its
    randomness agrees (a threshold is never lowered). A span whose tracestate stays as it is
    keeps the bytes it arrived in; only the others are encoded again."""
    groups = {}
    nbytes = 0
    default_randomness = trace_id_randomness(trace.trace_id)
    for key, framed in trace.groups.items():
        rewritten = bytearray()
        position, end = 0, len(framed)
        while position < end:
            length, body = decode_varint(framed, position + 1)
            data = bytes(framed[body : body + length])
            position = body + length
            span = Span.FromString(data)
            own, randomness = ot_fields(span.trace_state)
            if randomness is None:
                randomness = default_randomness
            if own is None or not threshold <= own <= randomness:
                span.trace_state = with_threshold(span.trace_state, threshold)
                data = span.SerializeToString()
            rewritten += TAG_SCOPE_SPAN + varint(len(data)) + data
            nbytes += len(data)
        groups[key] = rewritten
    trace.groups = groups
    trace.nbytes = nbytes


def _attribute(key: str, value: Any) -> bytes:
    if isinstance(value, bool):
        any_value = AnyValue(bool_value=value)
    elif isinstance(value, int):
        any_value = AnyValue(int_value=value)
    elif isinstance(value, float):
        any_value = AnyValue(double_value=value)
    else:
        any_value = AnyValue(string_value=str(value))
    return frame(TAG_INSTRUMENTATION_SCOPE_ATTRIBUTE, KeyValue(key=key, value=any_value).SerializeToString())


class DecisionRecorder:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._encoded: dict[tuple[Any, ...], bytes] = {}
        self._scopes: dict[tuple[bytes, bytes], bytes] = {}

    def mark(self, trace: TraceSpans, policy: Policy | None, trigger: str, weight: Weight | None = None) -> bytes:
        """Record the decision on a kept trace, the first policy that sampled it and what it
        stands for (see TailSampler.evaluate); returns the record, for its late spans."""
        if weight is not None and weight.threshold is not None:
            rewrite_threshold(trace, weight.threshold)
        if not self.enabled:
            return b""
        record = self.record(policy, trigger, trace.root_seen, weight.rate if weight is not None else None)
        self.apply(trace, record)
        return record

    def apply_late(self, fragment: TraceSpans, record: bytes, threshold: int | None) -> None:
        """Late spans of a kept trace: its threshold and its record, marked as from the cache."""
        if threshold is not None:
            rewrite_threshold(fragment, threshold)
        self.apply(fragment, record, cached=True)

    def record(self, policy: Policy | None, trigger: str, root_seen: bool, rate: float | None = None) -> bytes:
        """The encoded scope attributes for a trace kept by `policy` at 1 in `rate`."""
        if not self.enabled:
            return b""
        composite = policy.credited_sub_policy() if policy is not None else None
        if rate is not None:
            rate = round(rate, 6)
            if float(rate).is_integer():
                rate = int(rate)
        early = trigger if trigger in EARLY_DECISION_REASONS else None
        key = (policy.name if policy else None, composite, rate, early, root_seen)
        encoded = self._encoded.get(key)
        if encoded is None:
            parts = []
            if policy is not None:
                parts.append(_attribute("tailsampling.policy", policy.name))
            if composite:
                parts.append(_attribute("tailsampling.composite_policy", composite))
            if rate is not None:
                parts.append(_attribute("tailsampling.sample_rate", rate))
            if early:
                parts.append(_attribute("tailsampling.early_decision", early))
            if not root_seen:
                parts.append(_attribute("tailsampling.root_seen", False))
            encoded = b"".join(parts)
            if len(self._encoded) >= _RECORD_CACHE_LIMIT:
                self._encoded.clear()
            self._encoded[key] = encoded
        return encoded

    def apply(self, trace: TraceSpans, record: bytes, cached: bool = False) -> None:
        """Add the record (and, for late spans, cached_decision) to every scope of the trace,
        its log records' scopes included."""
        if not self.enabled:
            return
        attributes = record + _CACHED if cached else record
        if attributes:
            trace.groups = {
                (resource, self._scope_with(scope, attributes)): spans
                for (resource, scope), spans in trace.groups.items()
            }
            if trace.logs:
                # A ScopeLogs prefix is framed as a ScopeSpans one: its records say the same.
                trace.logs = {
                    (resource, self._scope_with(scope, attributes)): records
                    for (resource, scope), records in trace.logs.items()
                }

    def _scope_with(self, scope: bytes, attributes: bytes) -> bytes:
        # Kept traces of one service share scopes; rewrite each (scope, record) pair once.
        rewritten = self._scopes.get((scope, attributes))
        if rewritten is None:
            if len(self._scopes) >= _RECORD_CACHE_LIMIT:
                self._scopes.clear()
            rewritten = self._scopes[(scope, attributes)] = add_scope_attributes(scope, attributes)
        return rewritten
