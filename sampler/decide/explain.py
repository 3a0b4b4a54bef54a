"""Why a trace was kept or dropped: the answer behind `GET /api/v1/decisions/{trace_id}`, the
console's recent decisions, and the text `tail-sampler explain` prints.

Everything here runs when someone asks: it reads the window and the notes the decision
caches keep (outcome.py), and adds nothing to the path spans take.
"""

from __future__ import annotations

import string
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sampler.clock import Clock
from sampler.decide.engine import TailSampler
from sampler.decide.outcome import PolicySet, unpack
from sampler.spans.trace import TraceSpans

TRACE_ID_DIGITS = 32
RECENT_DECISIONS = 25

_WHEN = {
    "wait": "when decision_wait ran out",
    "root": "decision_wait_after_root_received after its root span arrived",
    "overflow": "early: the window was full (num_traces)",
    "memory": "early: the window reached memory_limit_mib",
    "span_limit": "early: it reached max_spans_per_trace",
    "shutdown": "at shutdown",
    "too_large": "as soon as its spans exceeded maximum_trace_size_bytes",
    "ingest": "as its spans arrived (sampling_strategy: span-ingest)",
    "offline": "offline, from the whole trace as recorded",
    "storage": "early: the window's log was full (tail_sampling.storage, when_full: decide_early)",
}


class TraceIdError(ValueError):
    """Not a trace ID; the message says what one looks like."""


def parse_trace_id(text: str) -> bytes:
    """A trace ID written as 32 hexadecimal digits (either case)."""
    text = text.strip()
    shown = text if len(text) <= 64 else text[:64] + "..."
    if len(text) != TRACE_ID_DIGITS or not all(c in string.hexdigits for c in text):
        raise TraceIdError(f"{shown!r} is not a trace ID: a trace ID is {TRACE_ID_DIGITS} hexadecimal digits")
    trace_id = bytes.fromhex(text)
    if not any(trace_id):
        raise TraceIdError("the all-zero trace ID is not valid (no span carries it)")
    return trace_id


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _unique_names(names: tuple[str, ...]) -> list[str]:
    """Policy names as keys: a name used twice gets #2, #3... (the config does not forbid it)."""
    seen: dict[str, int] = {}
    keys = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


def describe(
    trace_id: bytes,
    kept: bool,
    note: int,
    policy_set: PolicySet | None,
    decided_ago: float | None = None,
    wall_now: float | None = None,
) -> dict[str, Any]:
    """The answer for a decided trace, from the note its decision cache keeps. `policy_set`: the
    policies of the note's generation (None when no longer known); `decided_ago`: seconds since
    the decision (None offline, where times mean nothing)."""
    count = len(policy_set.names) if policy_set is not None else 0
    fields = unpack(note, count)
    answer: dict[str, Any] = {
        "trace_id": trace_id.hex(),
        "decision": "kept" if kept else "dropped",
        "trigger": fields.trigger,
    }
    if decided_ago is not None and wall_now is not None and fields.trigger != "restored":
        answer["decided_at"] = _timestamp(wall_now - decided_ago)
        answer["decided_seconds_ago"] = round(decided_ago, 3)
    policies: dict[str, str] = {}
    credited = sub_policy = None
    if policy_set is not None:
        keys = _unique_names(policy_set.names)
        policies = dict(zip(keys, fields.answers, strict=True))
        if fields.credited is not None and fields.credited < count:
            credited = keys[fields.credited]
            subs = policy_set.sub_policies[fields.credited]
            if fields.sub_policy is not None and fields.sub_policy < len(subs):
                sub_policy = subs[fields.sub_policy]
    answer["policies"] = policies
    answer["credited_policy"] = credited if kept else None
    answer["credited_sub_policy"] = sub_policy if kept else None
    if not kept and credited is not None and sub_policy is not None:
        answer["matched_sub_policy"] = {"policy": credited, "sub_policy": sub_policy}
    answer["spans"] = fields.spans
    answer["bytes"] = fields.nbytes
    answer["late_spans"] = fields.late_spans
    answer["reason"] = _reason(answer, policy_set, fields.trigger)
    return answer


def _reason(answer: dict[str, Any], policy_set: PolicySet | None, trigger: str) -> str:
    policies: dict[str, str] = answer["policies"]
    if trigger == "restored":
        return (
            f"{answer['decision']} before the daemon restarted: loaded from the decision file, "
            "which keeps the decision but not its detail"
        )
    when = _WHEN.get(trigger, trigger)
    if policy_set is None:
        return f"{answer['decision']} {when}; the policies of that time are no longer known (many reloads since)"
    types = dict(zip(policies, policy_set.types, strict=True))
    if answer["decision"] == "kept":
        name = answer["credited_policy"]
        if name is None:
            return f"kept {when}"
        via = f", through its sub-policy {answer['credited_sub_policy']!r}" if answer["credited_sub_policy"] else ""
        return f"kept: policy {name!r} ({types[name]}) was the first to sample it{via}; decided {when}"
    vetoed = [name for name, said in policies.items() if said == "dropped"]
    if vetoed:
        return f"dropped: policy {vetoed[0]!r} ({types[vetoed[0]]}) vetoed it; decided {when}"
    if trigger == "too_large":
        return "dropped before any policy ran: its spans exceeded maximum_trace_size_bytes"
    if all(said == "not evaluated" for said in policies.values()):
        if trigger == "shutdown":
            return "dropped at shutdown without running the policies (drop_pending_traces_on_shutdown)"
        return f"dropped {when} without running the policies"
    matched = answer.get("matched_sub_policy")
    if matched is not None:
        return (
            f"dropped: no policy sampled it; in {matched['policy']!r}, sub-policy {matched['sub_policy']!r} "
            f"matched it but its share of max_total_spans_per_second was spent; decided {when}"
        )
    return f"dropped: no policy sampled it; decided {when}"


def describe_pending(trace: TraceSpans, policy_set: PolicySet, now: float, wall_now: float) -> dict[str, Any]:
    """The answer for a trace still in the window: no policy has seen it yet."""
    due_in = trace.due - now
    if due_in >= 0:
        reason = f"waiting in the window for its decision, due in {due_in:.1f}s"
    else:
        reason = (
            f"waiting in the window: due {-due_in:.1f}s ago, held until the exporters have room (block_on_overflow)"
        )
    return {
        "trace_id": trace.trace_id.hex(),
        "decision": "pending",
        "trigger": None,
        "received_at": _timestamp(wall_now - (now - trace.first_seen)),
        "received_seconds_ago": round(now - trace.first_seen, 3),
        "due_at": _timestamp(wall_now + due_in),
        "due_in_seconds": round(due_in, 3),
        "root_seen": trace.root_seen,
        "policies": dict.fromkeys(_unique_names(policy_set.names), "not evaluated"),
        "credited_policy": None,
        "credited_sub_policy": None,
        "spans": trace.span_count,
        "bytes": trace.nbytes,
        "late_spans": 0,
        "reason": reason,
    }


class DecisionLookup:
    """Looks trace IDs up in one engine's window and decision caches (this process's share of
    the traces), and lists its most recent decisions."""

    def __init__(self, engine: TailSampler, clock: Clock, wall: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock
        self._wall = wall

    def lookup(self, text: str) -> dict[str, Any] | None:
        """The answer for a trace ID as written (TraceIdError, a ValueError, if it is not one)."""
        return self.decision(parse_trace_id(text))

    def decision(self, trace_id: bytes) -> dict[str, Any] | None:
        """The answer for a trace ID, None when this engine has no trace of it (never seen, or
        decided so long ago that its decision cache has forgotten it)."""
        engine = self._engine
        now = self._clock()
        trace = engine.window.get(trace_id)
        if trace is not None:
            return describe_pending(trace, engine.policy_set, now, self._wall())
        kept = engine.sampled_cache.get(trace_id)
        if kept is not None:
            return self._decided(trace_id, True, kept[-1], now)  # (record, forwarded, threshold, note)
        note = engine.not_sampled_cache.get(trace_id)
        if note is not None:
            return self._decided(trace_id, False, note, now)
        return None

    def _decided(self, trace_id: bytes, kept: bool, note: int, now: float) -> dict[str, Any]:
        engine = self._engine
        fields = unpack(note, 0)
        policy_set = engine.policy_sets.get(fields.generation)
        ago = now - (engine.started + fields.decided_ms / 1000)
        return describe(trace_id, kept, note, policy_set, ago, self._wall())

    def recent(self, limit: int = RECENT_DECISIONS) -> list[dict[str, Any]]:
        """The last `limit` decisions, newest first, in brief."""
        engine = self._engine
        entries = [(value[-1], trace_id, True) for trace_id, value in engine.sampled_cache.newest(limit)]
        entries += [(note, trace_id, False) for trace_id, note in engine.not_sampled_cache.newest(limit)]
        entries.sort(key=lambda entry: unpack(entry[0], 0).decided_ms, reverse=True)
        now = self._clock()
        brief = []
        for note, trace_id, kept in entries[:limit]:
            answer = self._decided(trace_id, kept, note, now)
            brief.append(
                {
                    key: answer.get(key)
                    for key in ("trace_id", "decision", "trigger", "credited_policy", "decided_seconds_ago", "spans")
                }
            )
        return brief

    def status(self) -> dict[str, Any]:
        """The engine's part of the console's status: its policies, caches and recent decisions."""
        engine = self._engine
        caches = {}
        for name, cache in (("kept", engine.sampled_cache), ("dropped", engine.not_sampled_cache)):
            caches[name] = {
                "traces": len(cache),
                "capacity": cache.capacity,
                "entry_bytes": cache.entry_bytes,
                "memory_bytes": cache.memory_bytes,
            }
        return {
            "policies": [
                {"name": policy.name, "type": policy.type_name, "description": policy.describe()}
                for policy in engine.policies
            ],
            "decision_caches": caches,
            "recent_decisions": self.recent(),
        }


def format_text(answer: dict[str, Any]) -> str:
    """An answer as `tail-sampler explain` prints it, the same live and offline."""
    lines = [f"trace {answer['trace_id']}: {answer['decision'].upper()}", f"  why:       {answer['reason']}"]
    if answer["decision"] == "pending":
        lines.append(
            f"  received:  {answer['received_at']} ({answer['received_seconds_ago']:g}s ago); "
            f"due {answer['due_at']}; root span {'seen' if answer['root_seen'] else 'not seen yet'}"
        )
    elif "decided_at" in answer:
        lines.append(
            f"  decided:   {answer['decided_at']} ({answer['decided_seconds_ago']:g}s ago), trigger {answer['trigger']}"
        )
    else:
        lines.append(f"  trigger:   {answer['trigger']}")
    policies: dict[str, str] = answer["policies"]
    if policies:
        lines.append("  policies, in evaluation order:")
        width = max(len(name) for name in policies)
        for name, said in policies.items():
            mark = ""
            if name == answer.get("credited_policy"):
                sub = answer.get("credited_sub_policy")
                mark = f"  <- credited{f' (sub-policy {sub!r})' if sub else ''}"
            lines.append(f"    {name.ljust(width)}  {said}{mark}")
    spans = f"  spans:     {answer['spans']} ({answer['bytes']} bytes)"
    if answer["decision"] != "pending":
        spans += f" when decided; {answer['late_spans']} late span(s) since"
    lines.append(spans)
    lines += [f"  note:      {note}" for note in answer.get("notes", ())]
    return "\n".join(lines)
