"""Decision records: kept spans say which policy kept them.

The instrumentation scope of every forwarded span gets the attributes the
Collector writes with its `recordpolicy` feature gate, so dashboards built on
them keep working:

- `tailsampling.policy`: the first policy (in config order) that sampled the trace;
- `tailsampling.composite_policy`: for a composite, the sub-policy that sampled it;
- `tailsampling.cached_decision: true`: on late spans forwarded from the decision cache;

and, beyond the Collector:

- `tailsampling.sample_rate`: for a trace kept by a policy that samples 1 in N
  (probabilistic: 100 / percentage; dynamic, throughput: the key's current rate),
  so a backend can extrapolate counts;
- `tailsampling.early_decision`: the trace was decided early because a bound was reached:
  "overflow" (num_traces), "memory" (memory_limit_mib), "span_limit" (max_spans_per_trace)
  or "storage" (the window's log full, with tail_sampling.storage.when_full: decide_early);
- `tailsampling.root_seen: false`: the trace was decided without its root span.

The attributes are appended to the scope's bytes (see wire.add_scope_attributes).
The spans leave untouched, except that a trace kept at a sample rate also gets the
OpenTelemetry tracestate threshold `ot=th:` of its combined probability on every
span; a rate a sampler upstream recorded there is multiplied in, not lost.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans

from sampler.policies.base import Policy, TraceView
from sampler.spans.framing import (
    TAG_INSTRUMENTATION_SCOPE_ATTRIBUTE,
    TAG_SCOPE_SPAN,
    add_scope_attributes,
    frame,
    varint,
)
from sampler.spans.trace import TraceSpans

_CACHED = frame(
    TAG_INSTRUMENTATION_SCOPE_ATTRIBUTE,
    KeyValue(key="tailsampling.cached_decision", value=AnyValue(bool_value=True)).SerializeToString(),
)
# Triggers of decisions made before a trace was due, because a bound of the window was reached.
EARLY_DECISION_REASONS = ("overflow", "memory", "span_limit", "storage")
# Distinct records are few (policies x triggers); their encodings are kept, within a bound.
_RECORD_CACHE_LIMIT = 1024


_THRESHOLD_BITS = 56
_MAX_THRESHOLD = 1 << _THRESHOLD_BITS


def ot_threshold(trace_state: str) -> int | None:
    """The rejection threshold T of an OpenTelemetry tracestate (`ot=th:...`), or None."""
    for member in trace_state.split(","):
        key, _, value = member.strip().partition("=")
        if key != "ot":
            continue
        for field in value.split(";"):
            name, _, text = field.partition(":")
            if name == "th" and 0 < len(text) <= 14:
                try:
                    return int(text.ljust(14, "0"), 16)
                except ValueError:
                    return None
    return None


def with_threshold(trace_state: str, threshold: int) -> str:
    """The tracestate with `ot=th:` set to `threshold` (other members and ot fields kept)."""
    encoded = f"{threshold:014x}".rstrip("0") or "0"
    members = [m.strip() for m in trace_state.split(",") if m.strip()]
    for index, member in enumerate(members):
        key, _, value = member.partition("=")
        if key == "ot":
            fields = [f for f in value.split(";") if f and not f.startswith("th:")]
            members[index] = "ot=" + ";".join([f"th:{encoded}", *fields])
            return ",".join(members)
    return ",".join([f"ot=th:{encoded}", *members])


def upstream_probability(trace: TraceSpans) -> float:
    """The probability a sampler upstream kept this trace with, from its spans' tracestate (1 if none)."""
    if not any(b"ot=" in spans for spans in trace.groups.values()):
        return 1.0
    for record in TraceView(trace).spans():
        threshold = ot_threshold(record.span.trace_state)
        if threshold is not None:
            return 1 - threshold / _MAX_THRESHOLD
    return 1.0


def rewrite_threshold(trace: TraceSpans, probability: float) -> None:
    """Set every span's `ot=th:` to the threshold of `probability` (OpenTelemetry's
    probability sampling), so a backend can count each kept span as 1/probability."""
    threshold = min(_MAX_THRESHOLD - 1, max(0, round((1 - probability) * _MAX_THRESHOLD)))
    groups = {}
    nbytes = 0
    for key, spans in trace.groups.items():
        scope_spans = ScopeSpans.FromString(key[1] + bytes(spans))
        rewritten = bytearray()
        for span in scope_spans.spans:
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

    def mark(self, trace: TraceSpans, policy: Policy | None, trigger: str) -> bytes:
        """Record the decision on a kept trace; returns the record, for its late spans."""
        if not self.enabled:
            return b""
        rate = policy.sample_rate() if policy is not None else None
        if rate is not None:
            # A trace sampled upstream (tracestate ot=th) already stood for 1/p traces: rates multiply.
            probability = upstream_probability(trace) / rate
            rewrite_threshold(trace, probability)
            rate = 1 / probability
        record = self.record(policy, trigger, trace.root_seen, rate)
        self.apply(trace, record)
        return record

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
        """Add the record (and, for late spans, cached_decision) to every scope of the trace."""
        if not self.enabled:
            return
        attributes = record + _CACHED if cached else record
        if attributes:
            trace.groups = {
                (resource, self._scope_with(scope, attributes)): spans
                for (resource, scope), spans in trace.groups.items()
            }

    def _scope_with(self, scope: bytes, attributes: bytes) -> bytes:
        # Kept traces of one service share scopes; rewrite each (scope, record) pair once.
        rewritten = self._scopes.get((scope, attributes))
        if rewritten is None:
            if len(self._scopes) >= _RECORD_CACHE_LIMIT:
                self._scopes.clear()
            rewritten = self._scopes[(scope, attributes)] = add_scope_attributes(scope, attributes)
        return rewritten
