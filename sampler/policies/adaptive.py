"""What the adaptive samplers (dynamic.py, throughput.py) share, after Refinery's EMA dynamic
and EMA throughput samplers.

Both count traces per key (built from a few fields of the trace), smooth the
counts with an exponential moving average recomputed every adjustment_interval,
and give each key a sample rate so that rare keys are kept more and frequent
keys less. `dynamic` aims at an overall goal sample rate; `throughput` at a
number of kept traces per second, deriving the goal rate from the measured
incoming rate. A trace is kept with probability 1/rate by OpenTelemetry consistent
probability sampling: its randomness (trace ID or tracestate `rv`) against the threshold of
1/rate times the probability a sampler upstream kept it with (the proportional mode of the
specification), so replicas with the same rates agree, and the threshold written to the kept
spans (ot=th) gives every span its adjusted count. Until the first adjustment every trace is
kept at rate 1 (there is nothing to adapt to yet).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from sampler.config.types import Duration
from sampler.policies.base import Decision, Policy, PolicySettings, TraceView, Weight
from sampler.spans.tracestate import probability_to_threshold, threshold_probability

_OTHER_KEY = "\x00other"


class AdaptiveSettings(PolicySettings):
    key_fields: list[str] = Field(default_factory=list)
    use_trace_length: bool = False
    adjustment_interval: Duration = Field(15.0, gt=0)
    weight: float = Field(0.5, gt=0, le=1)
    age_out_value: float = Field(0.5, ge=0)
    max_keys: int = Field(500, gt=0)


def _trace_key(trace: TraceView, fields: list[str], use_trace_length: bool) -> str:
    """Values of the key fields on the root span (else the first span), then its resource."""
    records = trace.spans()
    if not records:
        return ""
    root = next((r for r in records if not r.span.parent_span_id), records[0])
    values = []
    for name in fields:
        value: object = None
        if name in ("root.name", "name"):
            value = root.span.name
        elif name == "status.code":
            value = root.span.status.code
        elif name == "kind":
            value = root.span.kind
        else:
            for attributes in (root.span.attributes, root.resource.attributes):
                for attribute in attributes:
                    if attribute.key == name:
                        kind = attribute.value.WhichOneof("value")
                        value = getattr(attribute.value, kind) if kind else None
                        break
                if value is not None:
                    break
        values.append("" if value is None else str(value))
    if use_trace_length:
        values.append(str(trace.span_count))
    return "\x1f".join(values)


def sample_rates(ema: dict[str, float], goal_rate: float) -> dict[str, float]:
    """Per-key rates whose kept total approaches sum(ema) / goal_rate, giving each key a
    share of the budget by the logarithm of its count (Refinery's average-rate allocation)."""
    total = sum(ema.values())
    if total <= 0 or goal_rate <= 1:
        return {key: 1.0 for key in ema}
    goal_count = total / goal_rate
    log_sum = sum(math.log10(count) for count in ema.values() if count > 1)
    goal_ratio = goal_count / log_sum if log_sum > 0 else goal_count / max(len(ema), 1)
    rates: dict[str, float] = {}
    extra = 0.0
    remaining = len(ema)
    # Keys go from rarest to most frequent, and no key gets a lower rate than a rarer one:
    # with fractional (smoothed) counts near 1, rounding alone could give the rarer key the higher rate.
    floor = 1.0
    for key in sorted(ema, key=lambda k: ema[k]):
        count = ema[key]
        goal_for_key = max(1.0, math.log10(count) * goal_ratio if count > 1 else 1.0)
        share = extra / remaining
        goal_for_key += share
        extra -= share
        remaining -= 1
        rate = max(floor, 1.0 if count <= goal_for_key else float(math.ceil(count / goal_for_key)))
        rates[key] = floor = rate
        extra += goal_for_key - count / rate
    return rates


class AdaptivePolicy(Policy):
    """Counts traces per key and samples each key at its current rate; subclasses set the goal rate."""

    @classmethod
    def stateful_reason(cls, settings: Any) -> str | None:
        return f"{cls.type_name} keeps state across traces"

    def prepare(self) -> None:
        settings = self.settings
        self._counts: dict[str, int] = {}
        self._ema: dict[str, float] = {}
        self._rates: dict[str, float] = {}
        self._next_adjustment = self.clock() + settings.adjustment_interval
        self._weight: Weight | None = None

    def goal_rate(self, traces_per_second: float) -> float:
        raise NotImplementedError

    def _adjust(self, now: float) -> None:
        settings = self.settings
        weight = settings.weight
        ema = self._ema
        for key in set(ema) | set(self._counts):
            value = weight * self._counts.get(key, 0) + (1 - weight) * ema.get(key, 0.0)
            if value < settings.age_out_value and key not in self._counts:
                ema.pop(key, None)
            else:
                ema[key] = value
        total_per_second = sum(ema.values()) / settings.adjustment_interval
        self._rates = sample_rates(ema, self.goal_rate(total_per_second))
        self._counts = {}
        self._next_adjustment = now + settings.adjustment_interval

    def evaluate(self, trace: TraceView) -> Decision:
        now = self.clock()
        if now >= self._next_adjustment:
            self._adjust(now)
        settings = self.settings
        key = (
            _trace_key(trace, settings.key_fields, settings.use_trace_length)
            if settings.key_fields or settings.use_trace_length
            else ""
        )
        if key not in self._counts and key not in self._ema and len(self._counts) >= settings.max_keys:
            key = _OTHER_KEY
        self._counts[key] = self._counts.get(key, 0) + 1
        rate = self._rates.get(key, 1.0)
        if rate <= 1:
            self._weight = None  # kept for what it is: counts once (or as its upstream threshold says)
            return Decision.SAMPLED
        upstream, randomness = trace.sampling()
        kept = threshold_probability(upstream) if upstream is not None else 1.0
        threshold = probability_to_threshold(kept / rate)
        if randomness < threshold:
            return Decision.NOT_SAMPLED
        self._weight = Weight.of_threshold(threshold)
        return Decision.SAMPLED

    def weight(self) -> Weight | None:
        return self._weight
