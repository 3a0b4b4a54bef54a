from __future__ import annotations

from fractions import Fraction
from typing import Literal

from pydantic import Field, model_validator

from sampler.policies.base import Decision, Policy, PolicySettings, TraceView, Weight
from sampler.spans.tracestate import adjusted_count, probability_to_threshold, threshold_probability

_DEFAULT_SALT = "default-hash-seed"
_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_MAX_UINT64 = (1 << 64) - 1


class ProbabilisticSettings(PolicySettings):
    sampling_percentage: float = Field(ge=0, le=100)
    # How a trace is chosen, named as the Collector's probabilistic_sampler processor names its
    # modes. equalizing and proportional: OpenTelemetry consistent probability sampling (the
    # trace's randomness against a threshold, written to its spans' tracestate as ot=th);
    # hash_seed: the Collector tail sampler's FNV hash of hash_salt and the trace ID.
    mode: Literal["equalizing", "proportional", "hash_seed"] = "equalizing"
    # Hex digits of the threshold (equalizing, proportional); 14 is all of them.
    sampling_precision: int = Field(14, ge=1, le=14)
    hash_salt: str = ""

    @model_validator(mode="after")
    def _salt_only_for_hash(self) -> ProbabilisticSettings:
        if self.hash_salt and self.mode != "hash_seed":
            raise ValueError(
                "hash_salt applies to mode: hash_seed (the Collector's hash of the trace ID); "
                f"mode {self.mode} decides by the trace's own randomness. Set mode: hash_seed to "
                "decide as the Collector's tail sampler does, or remove hash_salt"
            )
        return self


def fnv1a_64(data: bytes, state: int = _FNV64_OFFSET) -> int:
    for byte in data:
        state = ((state ^ byte) * _FNV64_PRIME) & _MAX_UINT64
    return state


def collector_threshold(percentage: float) -> int:
    """MaxUint64 x (percentage / 100) computed as the Collector does: the ratio is a
    float64, the product is rounded to a 64-bit mantissa (nearest even), then
    truncated to an integer, so thresholds match bit for bit."""
    product = _MAX_UINT64 * Fraction(percentage / 100)
    if product <= 0:
        return 0
    exponent = product.numerator.bit_length() - product.denominator.bit_length()
    if Fraction(2) ** exponent > product:
        exponent -= 1
    shift = exponent - 63  # the mantissa holds bits exponent .. exponent-63
    scaled = product / Fraction(2) ** shift
    mantissa, remainder = divmod(scaled.numerator, scaled.denominator)
    twice = 2 * remainder
    if twice > scaled.denominator or (twice == scaled.denominator and mantissa % 2):
        mantissa += 1
    return min(int(mantissa * Fraction(2) ** shift), _MAX_UINT64)


class ProbabilisticPolicy(Policy):
    """Samples a fixed share of traces.

    equalizing (the default) keeps a trace when its randomness R is at least the threshold T
    of the percentage (OpenTelemetry consistent probability sampling), so every replica, and
    every consistent sampler up- or downstream, agrees on it; a trace an upstream sampler
    already thinned more stays at that sampler's threshold (thresholds are never lowered).
    proportional multiplies the upstream probability by the percentage instead. hash_seed
    decides by a hash of the salt and the trace ID (64-bit FNV-1a), as the Collector's tail
    sampler does, for fleets that mix both; no threshold is written then."""

    type_name = "probabilistic"
    settings_model = ProbabilisticSettings

    def prepare(self) -> None:
        settings = self.settings
        self._mode = settings.mode
        self._probability = settings.sampling_percentage / 100
        self._threshold = probability_to_threshold(self._probability, settings.sampling_precision)
        salt = settings.hash_salt or _DEFAULT_SALT
        self._salted_state = fnv1a_64(salt.encode())
        self._hash_threshold = collector_threshold(settings.sampling_percentage)
        self._weight: Weight | None = None

    def evaluate(self, trace: TraceView) -> Decision:
        if self._mode == "hash_seed":
            if fnv1a_64(trace.trace_id, self._salted_state) > self._hash_threshold:
                return Decision.NOT_SAMPLED
            upstream = trace.sampling().threshold
            stands_for = adjusted_count(upstream) if upstream is not None else 1.0
            self._weight = Weight(None, stands_for / self._probability) if self._probability else None
            return Decision.SAMPLED
        upstream, randomness = trace.sampling()
        if self._mode == "equalizing":
            threshold = self._threshold
            if upstream is not None and upstream > threshold:
                threshold = upstream  # never lowered: that would claim a higher probability than upstream kept
        elif upstream is None:
            threshold = self._threshold
        else:
            kept = threshold_probability(upstream) * self._probability
            threshold = probability_to_threshold(kept, self.settings.sampling_precision)
        if randomness < threshold:
            return Decision.NOT_SAMPLED
        self._weight = Weight.of_threshold(threshold)
        return Decision.SAMPLED

    def weight(self) -> Weight | None:
        return self._weight
