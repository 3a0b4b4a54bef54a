"""The decision lookup (sampler.decide.explain) on the engine itself, with a fake clock: what each
decision leaves in its cache's note (outcome.py), and the answer made from it, for every way a
trace is decided; plus the notes' packing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sampler.decide.cache import load, save
from sampler.decide.explain import DecisionLookup, TraceIdError, format_text, parse_trace_id
from sampler.decide.journal import DecisionJournal
from sampler.decide.outcome import ANSWERS, TRIGGERS, answer_bits, pack, unpack, with_late_spans
from sampler.policies.base import Decision
from sampler.policies.registry import POLICIES
from tests.support import make_span, make_trace
from tests.unit.test_engine import KEEP_ALL, KEEP_ERRORS, WAIT, Forward, Harness

SOMETIMES = {"name": "sometimes", "type": "probabilistic", "probabilistic": {"sampling_percentage": 100}}
NEVER = {"name": "never", "type": "probabilistic", "probabilistic": {"sampling_percentage": 0}}
DROP_ERRORS = {
    "name": "no-errors",
    "type": "drop",
    "drop": {"drop_sub_policy": [{"name": "error", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}]},
}
WALL = 1_700_000_000.0


def lookup_of(h: Harness) -> DecisionLookup:
    return DecisionLookup(h.sampler, h.clock, lambda: WALL + h.clock.now)


def decide_one(h: Harness, spans: list[Any]) -> dict[str, Any]:
    h.ingest(spans)
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    answer = lookup_of(h).decision(spans[0].trace_id)
    assert answer is not None
    return answer


# --- the note ----------------------------------------------------------------------------


@given(
    trigger=st.sampled_from(TRIGGERS[1:]),
    generation=st.integers(0, 10_000),
    credited=st.none() | st.integers(0, 254),
    sub=st.none() | st.integers(0, 254),
    decided_ms=st.integers(0, 2**42 - 1),
    spans=st.integers(0, 2**32 - 1),
    nbytes=st.integers(0, 2**40 - 1),
    decisions=st.lists(st.sampled_from(list(Decision)), max_size=40),
    late=st.lists(st.integers(0, 2**31), max_size=4),
)
def test_property_a_note_unpacks_to_what_was_packed(
    trigger, generation, credited, sub, decided_ms, spans, nbytes, decisions, late
):
    note = pack(trigger, generation, credited, sub, decided_ms, spans, nbytes, answer_bits(decisions))
    for count in late:
        note = with_late_spans(note, count)
    fields = unpack(note, len(decisions) + 2)
    assert fields.trigger == trigger
    assert fields.generation == generation % 4096
    assert (fields.credited, fields.sub_policy) == (credited, sub)
    assert (fields.decided_ms, fields.spans, fields.nbytes) == (decided_ms, spans, nbytes)
    assert fields.late_spans == min(sum(late), 2**32 - 1)  # saturates, never spills into the answers
    assert fields.answers == (*(decision.value for decision in decisions), "not evaluated", "not evaluated")


def test_counts_past_their_field_saturate():
    fields = unpack(pack("wait", 0, None, None, 2**50, 2**40, 2**50, 0), 0)
    assert (fields.decided_ms, fields.spans, fields.nbytes) == (2**42 - 1, 2**32 - 1, 2**40 - 1)
    assert set(ANSWERS) == {"not evaluated", *(d.value for d in Decision)}


# --- every way a trace is decided ----------------------------------------------------------


def test_kept_and_dropped_name_every_policys_answer_and_the_credited_one():
    h = Harness([KEEP_ERRORS, SOMETIMES])
    kept = decide_one(h, make_trace(spans=3, error=True)[1])
    assert kept["decision"] == "kept" and kept["trigger"] == "wait"
    assert kept["policies"] == {"errors": "sampled", "sometimes": "sampled"}
    assert kept["credited_policy"] == "errors" and kept["credited_sub_policy"] is None
    assert kept["spans"] == 3 and kept["bytes"] > 0 and kept["late_spans"] == 0
    assert kept["decided_seconds_ago"] == 0 and kept["decided_at"] == "2023-11-14T22:13:30.000Z"
    h.clock.advance(2.5)
    assert lookup_of(h).decision(bytes.fromhex(kept["trace_id"]))["decided_seconds_ago"] == 2.5

    h = Harness([KEEP_ERRORS, NEVER])
    dropped = decide_one(h, make_trace(spans=2)[1])
    assert dropped["decision"] == "dropped"
    assert dropped["policies"] == {"errors": "not_sampled", "never": "not_sampled"}
    assert dropped["credited_policy"] is None
    assert dropped["reason"] == "dropped: no policy sampled it; decided when decision_wait ran out"


def test_sample_on_first_match_leaves_the_later_policies_unasked():
    h = Harness([KEEP_ERRORS, SOMETIMES, KEEP_ALL], sample_on_first_match=True)
    answer = decide_one(h, make_trace(spans=1, error=True)[1])
    assert answer["policies"] == {"errors": "sampled", "sometimes": "not evaluated", "all": "not evaluated"}
    assert answer["credited_policy"] == "errors"


def test_a_drop_runs_first_and_leaves_the_rest_unasked():
    h = Harness([KEEP_ALL, DROP_ERRORS])  # written last, evaluated first
    answer = decide_one(h, make_trace(spans=1, error=True)[1])
    assert list(answer["policies"].items()) == [("no-errors", "dropped"), ("all", "not evaluated")]
    assert answer["decision"] == "dropped" and answer["credited_policy"] is None
    assert answer["reason"].startswith("dropped: policy 'no-errors' (drop) vetoed it")


def test_a_composite_names_its_sub_policy_kept_or_over_its_share():
    composite = {
        "name": "budget",
        "type": "composite",
        "composite": {
            "max_total_spans_per_second": 3,
            "composite_sub_policy": [
                NEVER,
                {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
            ],
            "rate_allocation": [{"policy": "never", "percent": 0}, {"policy": "errors", "percent": 100}],
        },
    }
    h = Harness([composite])
    first_id, first = make_trace(spans=3, error=True)
    second_id, second = make_trace(spans=3, error=True)
    h.ingest(first + second)  # the same second: the share holds one of them
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    lookup = lookup_of(h)
    kept, over = lookup.decision(first_id), lookup.decision(second_id)
    assert kept["credited_policy"] == "budget" and kept["credited_sub_policy"] == "errors"
    assert "through its sub-policy 'errors'" in kept["reason"]
    assert over["decision"] == "dropped" and over["policies"] == {"budget": "not_sampled"}
    assert over["matched_sub_policy"] == {"policy": "budget", "sub_policy": "errors"}
    assert "sub-policy 'errors' matched it but its share of max_total_spans_per_second was spent" in over["reason"]


def test_early_triggers_and_decisions_without_policies():
    h = Harness([KEEP_ALL], num_traces=1, maximum_trace_size_bytes=2000, max_spans_per_trace=5)
    lookup = lookup_of(h)
    first_id, first = make_trace(spans=1)
    h.ingest(first)
    h.ingest(make_trace(spans=1)[1])  # the window holds one: the first is decided now
    assert lookup.decision(first_id)["trigger"] == "overflow"
    assert "early: the window was full (num_traces)" in lookup.decision(first_id)["reason"]

    long_id, long = make_trace(spans=5)
    h.ingest(long)
    assert lookup.decision(long_id)["trigger"] == "span_limit"
    assert lookup.decision(long_id)["policies"] == {"all": "sampled"}

    big_id, big = make_trace(spans=1, attributes={"blob": "x" * 3000})
    h.ingest(big)
    too_large = lookup.decision(big_id)
    assert too_large["trigger"] == "too_large" and too_large["decision"] == "dropped"
    assert too_large["policies"] == {"all": "not evaluated"}
    assert too_large["reason"] == "dropped before any policy ran: its spans exceeded maximum_trace_size_bytes"


def test_memory_and_shutdown_triggers():
    h = Harness([KEEP_ALL], memory_limit_mib=0.001)
    trace_id, spans = make_trace(spans=1)
    h.ingest(spans)
    h.ingest(make_trace(spans=1)[1])
    assert lookup_of(h).decision(trace_id)["trigger"] == "memory"

    h = Harness([KEEP_ALL], drop_pending_traces_on_shutdown=True)
    trace_id, spans = make_trace(spans=1)
    h.ingest(spans)
    h.sampler.decide_all()
    answer = lookup_of(h).decision(trace_id)
    assert answer["trigger"] == "shutdown" and answer["policies"] == {"all": "not evaluated"}
    assert answer["reason"].startswith("dropped at shutdown without running the policies")


def test_span_ingest_decisions():
    h = Harness([KEEP_ERRORS], sampling_strategy="span-ingest")
    kept_id, kept = make_trace(spans=2, error=True)
    quiet_id, quiet = make_trace(spans=2)
    h.ingest(kept + quiet)
    lookup = lookup_of(h)
    assert lookup.decision(kept_id)["trigger"] == "ingest"
    assert lookup.decision(quiet_id)["decision"] == "pending"
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    # Asked on every arrival, never sampled: that is what the answer says, not "not evaluated".
    assert lookup.decision(quiet_id)["policies"] == {"errors": "not_sampled"}


def test_pending_traces_say_when_they_are_due():
    h = Harness([KEEP_ALL])
    trace_id, spans = make_trace(spans=2, root=False)
    h.ingest(spans)
    h.clock.advance(4)
    answer = lookup_of(h).decision(trace_id)
    assert answer["decision"] == "pending" and answer["trigger"] is None
    assert answer["due_in_seconds"] == WAIT - 4 and answer["received_seconds_ago"] == 4
    assert answer["root_seen"] is False and answer["policies"] == {"all": "not evaluated"}
    assert answer["reason"] == "waiting in the window for its decision, due in 6.0s"
    assert "PENDING" in format_text(answer)


def test_a_pending_trace_held_for_the_exporters_says_so():
    forward = Forward(capacity=0)
    h = Harness([KEEP_ALL], forward=forward, block_on_overflow=True)
    trace_id, spans = make_trace(spans=1)
    h.ingest(spans)
    h.clock.advance(WAIT + 2)
    h.sampler.decide_due()
    answer = lookup_of(h).decision(trace_id)
    assert answer["due_in_seconds"] == -2
    assert "held until the exporters have room (block_on_overflow)" in answer["reason"]


def test_late_spans_are_counted_kept_dropped_and_too_large():
    h = Harness([KEEP_ERRORS], maximum_trace_size_bytes=600)
    kept_id, kept = make_trace(spans=1, error=True)
    dropped_id, dropped = make_trace(spans=1)
    h.ingest(kept + dropped)
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    h.ingest([make_span(kept_id), make_span(dropped_id), make_span(dropped_id)])
    h.ingest([make_span(kept_id, attributes={"blob": "x" * 700})])  # past the size cap: not forwarded
    lookup = lookup_of(h)
    assert lookup.decision(kept_id)["late_spans"] == 2
    assert lookup.decision(dropped_id)["late_spans"] == 2
    assert lookup.decision(kept_id)["spans"] == 1
    assert h.value("tail_sampler_late_spans_total", decision="too_large") == 1


def test_decisions_made_before_a_reload_keep_their_policies_names():
    h = Harness([KEEP_ERRORS])
    old_id, old = make_trace(spans=1, error=True)
    decide_one(h, old)
    h.sampler.set_policies([POLICIES.validate(KEEP_ALL), POLICIES.validate(SOMETIMES)])  # a reload
    new_id, new = make_trace(spans=1)
    lookup = lookup_of(h)
    assert lookup.decision(old_id)["policies"] == {"errors": "sampled"}
    assert decide_one(h, new)["policies"] == {"all": "sampled", "sometimes": "sampled"}
    for _ in range(70):  # more reloads than the engine keeps the names of
        h.sampler.set_policies([])
    forgotten = lookup.decision(old_id)
    assert forgotten["policies"] == {} and "no longer known" in forgotten["reason"]


def test_decisions_loaded_from_the_decision_file_say_so(tmp_path: Path):
    path = tmp_path / "decisions.bin"
    save(path, [(b"\x01" * 16, b"", 1234, None)], [b"\x02" * 16])
    h = Harness([KEEP_ALL])
    journal = DecisionJournal(
        path, tmp_path / "decisions.bin.journal", h.sampler.sampled_cache, h.sampler.not_sampled_cache, h.metrics
    )

    async def load_then(work: Any) -> None:
        await journal.open()
        work()
        await journal.close()  # compacts: the snapshot is written again

    asyncio.run(load_then(lambda: None))
    lookup = lookup_of(h)
    kept, dropped = lookup.decision(b"\x01" * 16), lookup.decision(b"\x02" * 16)
    assert kept["decision"] == "kept" and kept["trigger"] == "restored" and kept["bytes"] == 1234
    assert "decided_at" not in kept and "before the daemon restarted" in kept["reason"]
    assert dropped["decision"] == "dropped" and dropped["trigger"] == "restored"
    assert lookup.decision(b"\x03" * 16) is None
    # And they are saved again as they were.
    assert load(path) == ([(b"\x01" * 16, b"", 1234, None)], [b"\x02" * 16])


def test_recent_decisions_are_newest_first():
    h = Harness([KEEP_ERRORS])
    ids = []
    for index in range(6):
        trace_id, spans = make_trace(spans=1, error=index % 2 == 0)
        ids.append(trace_id)
        h.ingest(spans)
        h.clock.advance(1)
    h.clock.advance(WAIT - 7)  # the first is due in a second
    for _ in ids:  # one decision a second, in the order they arrived
        h.clock.advance(1)
        assert h.sampler.decide_due() == 1
    recent = lookup_of(h).recent(4)
    assert [entry["trace_id"] for entry in recent] == [trace_id.hex() for trace_id in reversed(ids)][:4]
    assert [entry["decision"] for entry in recent] == ["dropped", "kept", "dropped", "kept"]
    assert recent[1]["credited_policy"] == "errors"


@pytest.mark.parametrize("text", ["", "xyz", "0" * 31, "0" * 33, "g" * 32, "0" * 32, " " * 32])
def test_what_is_not_a_trace_id_is_refused_with_its_shape(text):
    with pytest.raises(TraceIdError, match="trace ID"):
        parse_trace_id(text)


def test_a_trace_id_may_be_written_in_either_case():
    assert parse_trace_id("0AF7651916CD43DD8448EB211C80319C") == bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def test_the_text_of_an_answer():
    h = Harness([KEEP_ERRORS, SOMETIMES])
    answer = decide_one(h, make_trace(spans=3, error=True)[1])
    assert format_text(answer).splitlines() == [
        f"trace {answer['trace_id']}: KEPT",
        "  why:       kept: policy 'errors' (status_code) was the first to sample it; "
        "decided when decision_wait ran out",
        "  decided:   2023-11-14T22:13:30.000Z (0s ago), trigger wait",
        "  policies, in evaluation order:",
        "    errors     sampled  <- credited",
        "    sometimes  sampled",
        f"  spans:     3 ({answer['bytes']} bytes) when decided; 0 late span(s) since",
    ]
