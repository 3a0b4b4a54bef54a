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
- `tailsampling.early_decision: "overflow"`: the trace was decided early because the window was full;
- `tailsampling.root_seen: false`: the trace was decided without its root span.

The attributes are appended to the scope's bytes (see wire.add_scope_attributes); the
spans themselves leave untouched.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from sampler.model import TraceSpans
from sampler.policies import Policy
from sampler.policies.compound import CompositePolicy
from sampler.wire import add_scope_attributes, frame

_TAG_SCOPE_ATTRIBUTE = b"\x1a"  # InstrumentationScope.attributes = 3
_CACHED = frame(
    _TAG_SCOPE_ATTRIBUTE,
    KeyValue(key="tailsampling.cached_decision", value=AnyValue(bool_value=True)).SerializeToString(),
)
# Distinct records are few (policies x triggers); their encodings are kept, within a bound.
_RECORD_CACHE_LIMIT = 1024


def _attribute(key: str, value: Any) -> bytes:
    if isinstance(value, bool):
        any_value = AnyValue(bool_value=value)
    elif isinstance(value, int):
        any_value = AnyValue(int_value=value)
    elif isinstance(value, float):
        any_value = AnyValue(double_value=value)
    else:
        any_value = AnyValue(string_value=str(value))
    return frame(_TAG_SCOPE_ATTRIBUTE, KeyValue(key=key, value=any_value).SerializeToString())


class DecisionRecorder:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._encoded: dict[tuple[Any, ...], bytes] = {}
        self._scopes: dict[tuple[bytes, bytes], bytes] = {}

    def record(self, policy: Policy | None, trigger: str, root_seen: bool) -> bytes:
        """The encoded scope attributes for a trace kept by `policy`."""
        if not self.enabled:
            return b""
        composite = policy.last_sampled_by if isinstance(policy, CompositePolicy) else None
        rate = policy.sample_rate() if policy is not None else None
        if rate is not None and float(rate).is_integer():
            rate = int(rate)
        key = (policy.name if policy else None, composite, rate, trigger == "overflow", root_seen)
        encoded = self._encoded.get(key)
        if encoded is None:
            parts = []
            if policy is not None:
                parts.append(_attribute("tailsampling.policy", policy.name))
            if composite:
                parts.append(_attribute("tailsampling.composite_policy", composite))
            if rate is not None:
                parts.append(_attribute("tailsampling.sample_rate", rate))
            if trigger == "overflow":
                parts.append(_attribute("tailsampling.early_decision", "overflow"))
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
