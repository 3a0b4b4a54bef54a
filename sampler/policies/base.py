"""The one interface every policy type implements."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar

from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from pydantic import BaseModel, ConfigDict, PlainValidator

from sampler.clock import Clock
from sampler.policies.attribute_lookup import AttributeIndex
from sampler.spans.trace import SpanRecord, TraceSpans


class Decision(enum.Enum):
    NOT_SAMPLED = "not_sampled"
    SAMPLED = "sampled"
    DROPPED = "dropped"  # vetoes every other policy's decision


class PolicySettings(BaseModel):
    """Base of each policy type's settings block (the key named after its type)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TraceView:
    """What a policy sees of a finished trace: the summary kept on ingest, and
    the spans themselves, parsed from their buffered bytes only when asked for."""

    __slots__ = ("trace", "_records", "_attributes")

    def __init__(self, trace: TraceSpans) -> None:
        self.trace = trace
        self._records: list[SpanRecord] | None = None
        self._attributes: AttributeIndex | None = None

    @property
    def trace_id(self) -> bytes:
        return self.trace.trace_id

    @property
    def span_count(self) -> int:
        return self.trace.span_count

    @property
    def duration_ns(self) -> int:
        return self.trace.duration_ns

    @property
    def error_seen(self) -> bool:
        return self.trace.error_seen

    def spans(self) -> list[SpanRecord]:
        if self._records is None:
            records: list[SpanRecord] = []
            for (resource_prefix, scope_prefix), spans in self.trace.groups.items():
                resource = ResourceSpans.FromString(resource_prefix).resource
                scope_spans = ScopeSpans.FromString(scope_prefix + bytes(spans))
                scope = scope_spans.scope
                records.extend([SpanRecord(resource, scope, span) for span in scope_spans.spans])
            self._records = records
        return self._records

    def attribute_values(self, key: str) -> Iterator[Any]:
        """Values of `key` on each span's resource, then on the span itself, as the Collector looks them up."""
        if self._attributes is None:
            self._attributes = AttributeIndex(self.trace)
        return self._attributes.values(key)


def _validate_leaf_policy(body: Any) -> Any:
    from sampler.policies import LEAF_TYPES, validate_policy_config

    return validate_policy_config(body, allowed=LEAF_TYPES)


def _validate_composite_member(body: Any) -> Any:
    from sampler.policies import LEAF_TYPES, validate_policy_config

    return validate_policy_config(body, allowed=(*LEAF_TYPES, "and"))


# A sub-policy of `and`, `drop` and `not`: any policy type that has no sub-policies itself.
LeafSubPolicy = Annotated[Any, PlainValidator(_validate_leaf_policy)]
# A sub-policy of `composite`: a leaf policy or an `and` of leaf policies, as in the Collector.
CompositeSubPolicy = Annotated[Any, PlainValidator(_validate_composite_member)]


class Policy(ABC):
    """Evaluates a finished trace and returns a decision. One instance per configured policy."""

    type_name: ClassVar[str]
    # The settings model of the policy's own block; None for a type without settings.
    settings_model: ClassVar[type[PolicySettings] | None] = None
    # True for types made of sub-policies (and, drop, not, composite); they cannot nest freely.
    compound: ClassVar[bool] = False

    def __init__(self, name: str, settings: Any, clock: Clock) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock
        self.prepare()

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Precompute what evaluate needs from the settings; called once, at construction."""

    @abstractmethod
    def evaluate(self, trace: TraceView) -> Decision: ...

    def sample_rate(self) -> float | None:
        """The sample rate (1 in N) behind this policy's last sampled decision, if it has one."""
        return None

    def describe(self) -> str:
        if self.settings is None:
            return self.type_name
        fields = ", ".join(f"{key}={value!r}" for key, value in self.settings.model_dump(exclude_defaults=True).items())
        return f"{self.type_name}({fields})"


def decide(sampled: bool) -> Decision:
    return Decision.SAMPLED if sampled else Decision.NOT_SAMPLED
