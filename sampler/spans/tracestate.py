"""OpenTelemetry consistent probability sampling: the `ot` member of a span's W3C tracestate.

A span's randomness R is the `rv` field of its `ot` tracestate member when present, else the
least-significant 56 bits of its trace ID. A sampler with rejection threshold T keeps it iff
R >= T, and records T as the `th` field, so that everything downstream knows the probability
it was kept with, (2^56 - T) / 2^56, and can count it as 2^56 / (2^56 - T) spans (its adjusted
count). Thresholds are encoded as 1 to 14 lowercase hex digits, trailing zeros removed.

The conversions follow the specification (trace/tracestate-probability-sampling.md) and the
Collector's `pkg/sampling`, so a threshold written here is the one those libraries write.
"""

from __future__ import annotations

import math
from typing import NamedTuple

THRESHOLD_BITS = 56
# 2^56: the number of distinct randomness values; also the threshold that rejects everything.
MAX_THRESHOLD = 1 << THRESHOLD_BITS
_RANDOMNESS_MASK = MAX_THRESHOLD - 1
_HEX_DIGITS = 14
_HEX = frozenset("0123456789abcdef")


class OtFields(NamedTuple):
    """The sampling fields of one tracestate's `ot` member (None: absent or malformed)."""

    threshold: int | None
    randomness: int | None


NO_OT_FIELDS = OtFields(None, None)


class TraceSampling(NamedTuple):
    """A whole trace's: the highest threshold a sampler upstream recorded on its spans (None if
    none did) and its randomness R."""

    threshold: int | None
    randomness: int


def probability_to_threshold(probability: float, precision: int = _HEX_DIGITS) -> int:
    """The rejection threshold of a sampling probability, as `ProbabilityToThresholdWithPrecision`
    in the Collector's pkg/sampling computes it: 2^56 minus round(p * 2^56), then rounded to
    `precision` significant hex digits (more where the threshold has leading 0s or fs).
    A probability of 0 gives MAX_THRESHOLD, which no randomness value passes."""
    if probability >= 1:
        return 0
    if probability * MAX_THRESHOLD < 1:
        return MAX_THRESHOLD
    precision = max(1, min(_HEX_DIGITS, precision))
    # Leading 0s or fs carry no information: each 4 bits of exponent adds a digit of precision.
    exp_kept = math.frexp(probability)[1]
    exp_rejected = math.frexp(1 - probability)[1]
    precision = min(_HEX_DIGITS, max(precision + exp_kept // -4, precision + exp_rejected // -4))
    # Scaling by a power of two is exact, and so is the fraction below; Go's math.Round, which
    # pkg/sampling uses, rounds halves away from zero.
    scaled = probability * MAX_THRESHOLD
    kept = math.floor(scaled)
    if scaled - kept >= 0.5:
        kept += 1
    threshold = MAX_THRESHOLD - kept
    shift = 4 * (_HEX_DIGITS - precision)
    if shift:
        threshold = ((threshold + (1 << (shift - 1))) >> shift) << shift
    return min(threshold, MAX_THRESHOLD)


def threshold_probability(threshold: int) -> float:
    return (MAX_THRESHOLD - threshold) / MAX_THRESHOLD


def adjusted_count(threshold: int) -> float:
    """How many spans one span kept at `threshold` stands for: 2^56 / (2^56 - T)."""
    return MAX_THRESHOLD / (MAX_THRESHOLD - threshold)


def encode_threshold(threshold: int) -> str:
    """The `th` value: 14 hex digits, trailing zeros removed ("0" for 100 %)."""
    return f"{threshold:014x}".rstrip("0") or "0"


def trace_id_randomness(trace_id: bytes) -> int:
    """The randomness W3C Trace Context level 2 puts in a trace ID: its last 7 bytes."""
    return int.from_bytes(trace_id[-7:], "big") & _RANDOMNESS_MASK


def _hex(text: str) -> int | None:
    if not text or not _HEX.issuperset(text):
        return None
    return int(text, 16)


def ot_fields(trace_state: str) -> OtFields:
    """`th` (1 to 14 lowercase hex digits, zero-extended) and `rv` (exactly 14) of the `ot`
    member; a malformed value counts as absent."""
    if "ot=" not in trace_state:
        return NO_OT_FIELDS
    for member in trace_state.split(","):
        key, _, value = member.strip().partition("=")
        if key != "ot":
            continue
        threshold = randomness = None
        for field in value.split(";"):
            name, _, text = field.partition(":")
            if name == "th" and len(text) <= _HEX_DIGITS:
                parsed = _hex(text)
                threshold = None if parsed is None else parsed << (4 * (_HEX_DIGITS - len(text)))
            elif name == "rv" and len(text) == _HEX_DIGITS:
                randomness = _hex(text)
        return OtFields(threshold, randomness)
    return NO_OT_FIELDS


def with_threshold(trace_state: str, threshold: int | None) -> str:
    """The tracestate with `ot=th:` set to `threshold`, or removed for None; other members and
    other `ot` fields are kept. The `ot` member moves to the front, as a changed member does
    (W3C Trace Context)."""
    members = [m.strip() for m in trace_state.split(",") if m.strip()]
    fields: list[str] = []
    for index, member in enumerate(members):
        key, _, value = member.partition("=")
        if key == "ot":
            fields = [f for f in value.split(";") if f and not f.startswith("th:")]
            del members[index]
            break
    if threshold is not None:
        fields.insert(0, f"th:{encode_threshold(threshold)}")
    if fields:
        members.insert(0, "ot=" + ";".join(fields))
    return ",".join(members)
