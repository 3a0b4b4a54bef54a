"""What the decision caches remember of each decision, for `GET /api/v1/decisions/{trace_id}`
and `tail-sampler explain`: one Python int per remembered trace, never strings.

An int is the smallest object Python offers for a handful of numbers (a tuple of small ints
costs a pointer per field on top of the ints). The fields, from the lowest bit:

    bits   0-31   late spans seen since (lowest: counting one is an addition)
    bits  32-35   trigger (TRIGGERS: 0 is "restored", a decision loaded from the decision file)
    bits  36-47   the policy set's generation, modulo 4096 (it names the policies; see PolicySet)
    bits  48-55   position of the credited policy + 1 (0: none); for a trace no policy kept,
                  of the policy whose sub-policy matched it without sampling it (composite)
    bits  56-63   position of that policy's sub-policy + 1 (0: none)
    bits  64-105  when decided: milliseconds of the engine's clock since the engine started
    bits 106-137  spans of the trace when decided
    bits 138-177  bytes of the trace when decided
    bits 178-     each policy's answer, 2 bits per policy in evaluation order (ANSWERS)

Counts saturate at their field's maximum rather than spill into the next field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sampler.policies.base import Decision, Policy

# Why a trace was decided when it was. "restored" (0) is the trigger of decisions loaded from the
# decision file, which keeps no detail; "offline" is the trigger `tail-sampler explain --input` uses.
TRIGGERS = (
    "restored",
    "wait",
    "root",
    "overflow",
    "memory",
    "span_limit",
    "shutdown",
    "too_large",
    "ingest",
    "offline",
    "storage",
)
TRIGGER_CODES = {name: code for code, name in enumerate(TRIGGERS)}
# A policy's answer, 2 bits: 0 means it was not asked (sample_on_first_match, a drop before it,
# or no policy ran at all: too_large, drop_pending_traces_on_shutdown).
ANSWERS = ("not evaluated", "sampled", "not_sampled", "dropped")
ANSWER_CODES = {Decision.SAMPLED: 1, Decision.NOT_SAMPLED: 2, Decision.DROPPED: 3}

_LATE_BITS = 32
_TRIGGER_SHIFT, _TRIGGER_BITS = 32, 4
_GENERATION_SHIFT, _GENERATION_BITS = 36, 12
_CREDITED_SHIFT, _SUB_SHIFT, _POSITION_BITS = 48, 56, 8
_DECIDED_SHIFT, _DECIDED_BITS = 64, 42
_SPANS_SHIFT, _SPANS_BITS = 106, 32
_BYTES_SHIFT, _BYTES_BITS = 138, 40
ANSWERS_SHIFT = 178

GENERATIONS = 1 << _GENERATION_BITS
_MAX_POSITION = (1 << _POSITION_BITS) - 2  # positions past this one are not recorded
_SPANS_MAX = (1 << _SPANS_BITS) - 1
_BYTES_MAX = (1 << _BYTES_BITS) - 1
_LATE_MAX = (1 << _LATE_BITS) - 1
_DECIDED_MAX = (1 << _DECIDED_BITS) - 1
# Distinct fixed parts (trigger, credit, answers) of one policy set's notes are few; kept within a bound.
_FIXED_PARTS_KEPT = 4096


def _field(note: int, shift: int, bits: int) -> int:
    return (note >> shift) & ((1 << bits) - 1)


def _counts(decided_ms: int, spans: int, nbytes: int) -> int:
    """The fields that change with every decision, saturated at their maximum."""
    if not (0 <= decided_ms <= _DECIDED_MAX and spans <= _SPANS_MAX and nbytes <= _BYTES_MAX):
        decided_ms = min(max(decided_ms, 0), _DECIDED_MAX)
        spans = min(spans, _SPANS_MAX)
        nbytes = min(nbytes, _BYTES_MAX)
    return decided_ms << _DECIDED_SHIFT | spans << _SPANS_SHIFT | nbytes << _BYTES_SHIFT


def pack(
    trigger: str,
    generation: int,
    credited: int | None,
    sub_policy: int | None,
    decided_ms: int,
    spans: int,
    nbytes: int,
    answers: int,
) -> int:
    """One decision's note; `answers` as built by answer_bits (already shifted to ANSWERS_SHIFT)."""
    note = TRIGGER_CODES[trigger] << _TRIGGER_SHIFT | (generation % GENERATIONS) << _GENERATION_SHIFT
    if credited is not None and credited <= _MAX_POSITION:
        note |= (credited + 1) << _CREDITED_SHIFT
    if sub_policy is not None and sub_policy <= _MAX_POSITION:
        note |= (sub_policy + 1) << _SUB_SHIFT
    return note | _counts(decided_ms, spans, nbytes) | answers


class NoteMaker:
    """Makes the notes of one policy set's decisions, as pack() does: the part that repeats from
    decision to decision (trigger, credit, answers) is built once and kept."""

    def __init__(self, generation: int) -> None:
        self._generation = generation
        self._fixed: dict[tuple[object, ...], int] = {}

    def make(
        self,
        trigger: str,
        credited: int | None,
        sub_policy: int | None,
        answers: int,
        decided_ms: int,
        spans: int,
        nbytes: int,
    ) -> int:
        """A note; `answers` as answer_bits makes them."""
        key = (trigger, credited, sub_policy, answers)
        fixed = self._fixed.get(key)
        if fixed is None:
            if len(self._fixed) >= _FIXED_PARTS_KEPT:
                self._fixed.clear()
            fixed = pack(trigger, self._generation, credited, sub_policy, 0, 0, 0, answers)
            self._fixed[key] = fixed
        if 0 <= decided_ms <= _DECIDED_MAX and spans <= _SPANS_MAX and nbytes <= _BYTES_MAX:  # as _counts, inline
            return fixed | decided_ms << _DECIDED_SHIFT | spans << _SPANS_SHIFT | nbytes << _BYTES_SHIFT
        return fixed | _counts(decided_ms, spans, nbytes)


def answer_bits(decisions: Sequence[Decision], first: int = 0) -> int:
    """The answers field of a note: each decision, in evaluation order from position `first`;
    those not made are 0. The fields of several calls combine with `|`."""
    bits = 0
    shift = ANSWERS_SHIFT + 2 * first
    for decision in decisions:
        bits |= ANSWER_CODES[decision] << shift
        shift += 2
    return bits


def answered(answers: int, position: int) -> bool:
    """Whether the policy at `position` answered, in an answers field."""
    return bool((answers >> (ANSWERS_SHIFT + 2 * position)) & 3)


def with_late_spans(note: int, spans: int) -> int:
    """The note with `spans` more late spans counted."""
    if (note & _LATE_MAX) + spans <= _LATE_MAX:
        return note + spans
    return note | _LATE_MAX


def restored(nbytes: int = 0) -> int:
    """The note of a decision loaded from the decision file: the bytes forwarded are all it kept."""
    return min(nbytes, _BYTES_MAX) << _BYTES_SHIFT


class Note(NamedTuple):
    """A note unpacked."""

    trigger: str
    generation: int
    credited: int | None
    sub_policy: int | None
    decided_ms: int
    spans: int
    nbytes: int
    late_spans: int
    answers: tuple[str, ...]  # per policy of the generation's set, in evaluation order


def unpack(note: int, policies: int) -> Note:
    """The fields of a note whose policy set has `policies` policies."""
    credited = _field(note, _CREDITED_SHIFT, _POSITION_BITS)
    sub = _field(note, _SUB_SHIFT, _POSITION_BITS)
    answers = note >> ANSWERS_SHIFT
    trigger = _field(note, _TRIGGER_SHIFT, _TRIGGER_BITS)
    return Note(
        trigger=TRIGGERS[trigger] if trigger < len(TRIGGERS) else "restored",
        generation=_field(note, _GENERATION_SHIFT, _GENERATION_BITS),
        credited=credited - 1 if credited else None,
        sub_policy=sub - 1 if sub else None,
        decided_ms=_field(note, _DECIDED_SHIFT, _DECIDED_BITS),
        spans=_field(note, _SPANS_SHIFT, _SPANS_BITS),
        nbytes=_field(note, _BYTES_SHIFT, _BYTES_BITS),
        late_spans=note & _LATE_MAX,
        answers=tuple(ANSWERS[(answers >> (2 * index)) & 3] for index in range(policies)),
    )


@dataclass(frozen=True)
class PolicySet:
    """The policies one generation of the config had, in evaluation order (drop policies first):
    what the positions in a note refer to. A reload makes a new generation; the engine keeps
    the names of the last few, so decisions made before a reload still name their policies."""

    generation: int
    names: tuple[str, ...]
    types: tuple[str, ...]
    sub_policies: tuple[tuple[str, ...], ...]  # per policy, the names of its sub-policies (or none)

    @classmethod
    def of(cls, generation: int, policies: Sequence[Policy]) -> PolicySet:
        return cls(
            generation % GENERATIONS,
            tuple(policy.name for policy in policies),
            tuple(policy.type_name for policy in policies),
            tuple(tuple(sub.name for sub in getattr(policy, "sub_policies", ())) for policy in policies),
        )

    def sub_policy_position(self, policy: int, name: str | None) -> int | None:
        if name is None:
            return None
        names = self.sub_policies[policy]
        return names.index(name) if name in names else None
