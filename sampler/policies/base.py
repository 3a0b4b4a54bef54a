"""The one interface every policy type implements."""

from __future__ import annotations

import builtins
import enum
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, NamedTuple, Protocol, cast

from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationInfo

from sampler.clock import Clock
from sampler.policies.attribute_lookup import AttributeIndex
from sampler.spans.trace import SpanRecord, TraceSpans
from sampler.spans.tracestate import TraceSampling, adjusted_count, ot_fields, trace_id_randomness


class Decision(enum.Enum):
    NOT_SAMPLED = "not_sampled"
    SAMPLED = "sampled"
    DROPPED = "dropped"  # vetoes every other policy's decision

    # Members are singletons compared by identity: hashing by identity is as right as Enum's
    # hash of the name, and costs no Python call (the engine counts decisions per policy per trace).
    __hash__ = object.__hash__


class Weight(NamedTuple):
    """What a trace kept with a known probability stands for (see decide/records.py)."""

    # The OpenTelemetry rejection threshold (ot=th) its spans get: a consistent probability
    # decision (R >= threshold). None: the decision was not one (a hash), spans keep theirs.
    threshold: int | None
    # Its adjusted count: how many traces it stands for, samplers upstream included.
    rate: float

    @classmethod
    def of_threshold(cls, threshold: int) -> Weight:
        return cls(threshold, adjusted_count(threshold))


class PolicySettings(BaseModel):
    """Base of each policy type's settings block (the key named after its type)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TraceView:
    """What a policy sees of a finished trace: the summary kept on ingest, and
    the spans themselves, parsed from their buffered bytes only when asked for."""

    __slots__ = ("trace", "_records", "_attributes", "_sampling")

    def __init__(self, trace: TraceSpans) -> None:
        self.trace = trace
        self._records: list[SpanRecord] | None = None
        self._attributes: AttributeIndex | None = None
        self._sampling: TraceSampling | None = None

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

    def sampling(self) -> TraceSampling:
        """The trace's randomness R (the `rv` of its spans' tracestate, else its trace ID's last
        56 bits) and the highest threshold a sampler upstream recorded on its spans (`th`,
        None if none did); a `th` that R contradicts is ignored, as the specification says."""
        if self._sampling is None:
            randomness = None
            thresholds = []
            # Spans rarely carry an `ot` member: parse them only when some bytes say they might.
            if any(b"ot=" in spans for spans in self.trace.groups.values()):
                for record in self.spans():
                    fields = ot_fields(record.span.trace_state)
                    if fields.randomness is not None and randomness is None:
                        randomness = fields.randomness
                    if fields.threshold is not None:
                        thresholds.append(fields.threshold)
            if randomness is None:
                randomness = trace_id_randomness(self.trace.trace_id)
            consistent = [t for t in thresholds if t <= randomness]
            self._sampling = TraceSampling(max(consistent) if consistent else None, randomness)
        return self._sampling

    def attribute_values(self, key: str) -> Iterator[Any]:
        """Values of `key` on each span's resource, then on the span itself, as the Collector looks them up."""
        if self._attributes is None:
            self._attributes = AttributeIndex(self.trace)
        return self._attributes.values(key)


class SubPolicyValidator(Protocol):
    """What validates the entries of sub-policies: the policy registry, which passes itself as the
    validation context of every entry it validates (it knows the types; this module may not)."""

    def validate_sub_policy(self, body: Any, composite_member: bool) -> PolicyConfig: ...


def _registry_of(info: ValidationInfo) -> SubPolicyValidator:
    if info.context is None:
        raise TypeError("policy settings with sub-policies are validated through sampler.policies.registry")
    return cast(SubPolicyValidator, info.context)


def _validate_leaf_policy(body: Any, info: ValidationInfo) -> PolicyConfig:
    return _registry_of(info).validate_sub_policy(body, composite_member=False)


def _validate_composite_member(body: Any, info: ValidationInfo) -> PolicyConfig:
    return _registry_of(info).validate_sub_policy(body, composite_member=True)


# A sub-policy of `and`, `drop` and `not`: any policy type that has no sub-policies itself.
# (Typed Any for pydantic: a field typed PolicyConfig would serialize only name and type.)
LeafSubPolicy = Annotated[Any, PlainValidator(_validate_leaf_policy)]
# A sub-policy of `composite`: a leaf policy or an `and` of leaf policies, as in the Collector.
CompositeSubPolicy = Annotated[Any, PlainValidator(_validate_composite_member)]


class Policy(ABC):
    """Evaluates a finished trace and returns a decision. One instance per configured policy.

    Besides `evaluate`, a type states the facts the rest of the daemon asks of it: whether it may
    decide traces span by span (stateful_reason), whether it runs before the others (runs_first)
    and which of its sub-policies a kept trace is credited to (credited_sub_policy)."""

    type_name: ClassVar[str]
    # The settings model of the policy's own block; None for a type without settings.
    settings_model: ClassVar[type[PolicySettings] | None] = None
    # True for types made of sub-policies (and, drop, not, composite); they cannot nest freely.
    compound: ClassVar[bool] = False
    # Evaluated before every other policy: a drop vetoes the trace, which makes the others moot.
    runs_first: ClassVar[bool] = False

    def __init__(self, name: str, settings: Any, clock: Clock) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock
        self.prepare()

    @classmethod
    def stateful_reason(cls, settings: Any) -> str | None:
        """Why a policy of this type with these settings cannot decide a trace from the spans that
        have arrived so far (sampling_strategy: span-ingest), or None if it can: its answer depends
        on those spans alone and does not change as more arrive. Asked when the config is loaded."""
        return None

    @classmethod
    def settings_for_workers(cls, settings: Any, workers: int) -> Any:
        """These settings for one of `workers` processes that each decide 1/workers of the traces
        (the `workers` key): a rate or budget meant for the whole daemon becomes one worker's share.
        Unchanged by default: most types judge each trace on its own."""
        return settings

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Precompute what evaluate needs from the settings; called once, at construction."""

    @abstractmethod
    def evaluate(self, trace: TraceView) -> Decision: ...

    def weight(self) -> Weight | None:
        """What the trace of this policy's last sampled decision stands for, if it was sampled with
        a known probability; None if it was sampled for what it is (then it counts once)."""
        return None

    def credited_sub_policy(self) -> str | None:
        """The sub-policy that made this policy's last sampled decision, as decision records
        name it (tailsampling.composite_policy); None for a policy that credits none."""
        return None

    def matched_sub_policy(self) -> str | None:
        """The sub-policy that matched the last trace even if this policy did not sample it
        (composite: a sub-policy over its share), for the decision lookup; by default the credited one."""
        return self.credited_sub_policy()

    def describe(self) -> str:
        if self.settings is None:
            return self.type_name
        fields = ", ".join(f"{key}={value!r}" for key, value in self.settings.model_dump(exclude_defaults=True).items())
        return f"{self.type_name}({fields})"


class PolicyConfig(BaseModel):
    """One configured policy (an entry of `tail_sampling.policies`, or a sub-policy): its name, its
    type, and the settings block named after the type. The registry derives one model per type."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    type: str
    # The policy type the entry configures, set on each type's model by the registry.
    policy_type: ClassVar[builtins.type[Policy]]  # `type` alone would be the field above

    @property
    def settings(self) -> Any:
        return getattr(self, self.type, None)

    def build(self, clock: Clock) -> Policy:
        return self.policy_type(self.name, self.settings, clock)

    def stateful_reason(self) -> str | None:
        return self.policy_type.stateful_reason(self.settings)

    def for_workers(self, workers: int) -> PolicyConfig:
        """This entry as each of `workers` worker processes runs it (see Policy.settings_for_workers)."""
        settings = self.settings
        if settings is None or workers == 1:
            return self
        shared = self.policy_type.settings_for_workers(settings, workers)
        return self if shared is settings else self.model_copy(update={self.type: shared})


def decide(sampled: bool) -> Decision:
    return Decision.SAMPLED if sampled else Decision.NOT_SAMPLED
