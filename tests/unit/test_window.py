"""TraceWindow: traces wait decision_wait (or the root wait) and leave in due order."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sampler.spans.trace import TraceSpans
from sampler.window.window import SPAN_OVERHEAD_BYTES, TRACE_OVERHEAD_BYTES, TraceWindow, memory_of
from tests.support import make_span
from tests.unit.helpers import FakeClock, trace_of

WAIT = 10.0
ROOT_WAIT = 2.0


def _trace(trace_id: bytes | None = None, spans: int = 1, root: bool = False) -> TraceSpans:
    """A decoded trace fragment with `spans` spans; the first is a root span if `root`."""
    tid = trace_id or os.urandom(16)
    return trace_of([make_span(tid, parent=b"" if root and index == 0 else b"\x07" * 8) for index in range(spans)])


def _window(clock: FakeClock, num_traces: int = 1000, num_shards: int = 1, root_wait: float = 0.0) -> TraceWindow:
    return TraceWindow(num_traces, num_shards, WAIT, root_wait, clock)


def _ids(popped: list[tuple[TraceSpans, str]]) -> list[bytes]:
    return [trace.trace_id for trace, _ in popped]


def test_traces_are_due_after_decision_wait_in_arrival_order() -> None:
    clock = FakeClock(100.0)
    window = _window(clock)
    first, second, third = _trace(), _trace(), _trace()
    assert window.add(first) is None
    clock.advance(1)
    window.add(second)
    clock.advance(1)
    window.add(third)

    assert (first.first_seen, first.due) == (100.0, 110.0)
    assert (third.first_seen, third.due) == (102.0, 112.0)
    assert list(window.pop_due(109.999)) == []
    assert window.trace_count == 3
    assert list(window.pop_due(110.0)) == [(first, "wait")]  # due exactly at first_seen + decision_wait
    assert list(window.pop_due(110.5)) == []
    assert list(window.pop_due(500.0)) == [(second, "wait"), (third, "wait")]
    assert window.trace_count == 0
    assert window.get(first.trace_id) is None


def test_pop_due_covers_every_shard() -> None:
    clock = FakeClock()
    window = _window(clock, num_shards=8)
    traces = [_trace() for _ in range(50)]
    for trace in traces:
        window.add(trace)
    assert list(window.pop_due(clock.now + WAIT - 0.001)) == []
    popped = list(window.pop_due(clock.now + WAIT))
    assert sorted(_ids(popped)) == sorted(t.trace_id for t in traces)
    assert {trigger for _, trigger in popped} == {"wait"}


def test_get_finds_buffered_traces() -> None:
    window = _window(FakeClock(), num_shards=4)
    trace = _trace()
    assert window.get(trace.trace_id) is None
    window.add(trace)
    assert window.get(trace.trace_id) is trace


def test_root_span_makes_a_trace_due_sooner() -> None:
    clock = FakeClock(0.0)
    window = _window(clock, root_wait=ROOT_WAIT)
    rootless = _trace()
    rooted = _trace(root=True)
    window.add(rootless)
    window.add(rooted)
    assert rooted.due == ROOT_WAIT
    assert rootless.due == WAIT

    assert list(window.pop_due(ROOT_WAIT - 0.001)) == []
    assert list(window.pop_due(ROOT_WAIT)) == [(rooted, "root")]
    assert list(window.pop_due(WAIT - 0.001)) == []
    assert list(window.pop_due(WAIT)) == [(rootless, "wait")]  # the rooted trace is not yielded twice
    assert window.trace_count == 0


def test_root_in_a_later_fragment_makes_the_trace_due_sooner() -> None:
    clock = FakeClock(0.0)
    window = _window(clock, root_wait=ROOT_WAIT)
    tid = os.urandom(16)
    trace = _trace(tid)
    window.add(trace)
    clock.advance(3.0)
    window.extend(trace, _trace(tid, root=True))
    assert trace.root_seen
    assert trace.due == 3.0 + ROOT_WAIT

    assert list(window.pop_due(4.999)) == []
    assert list(window.pop_due(5.0)) == [(trace, "root")]
    assert list(window.pop_due(100.0)) == []


def test_a_root_arriving_late_does_not_delay_the_trace() -> None:
    clock = FakeClock(0.0)
    window = _window(clock, root_wait=ROOT_WAIT)
    tid = os.urandom(16)
    trace = _trace(tid)
    window.add(trace)
    clock.advance(9.0)  # 9 + 2 would be later than the 10 s wait
    window.extend(trace, _trace(tid, root=True))
    assert trace.due == WAIT
    assert list(window.pop_due(WAIT)) == [(trace, "wait")]
    assert list(window.pop_due(11.0)) == []


def test_a_second_root_does_not_move_the_due_time() -> None:
    clock = FakeClock(0.0)
    window = _window(clock, root_wait=ROOT_WAIT)
    tid = os.urandom(16)
    trace = _trace(tid, root=True)
    window.add(trace)
    clock.advance(1.0)
    window.extend(trace, _trace(tid, root=True))
    assert trace.due == ROOT_WAIT
    assert list(window.pop_due(ROOT_WAIT)) == [(trace, "root")]


@pytest.mark.parametrize("root_wait", [0.0, WAIT, WAIT + 5.0])
def test_root_wait_not_shorter_than_decision_wait_is_ignored(root_wait: float) -> None:
    clock = FakeClock(0.0)
    window = _window(clock, root_wait=root_wait)
    trace = _trace(root=True)
    window.add(trace)
    assert trace.due == WAIT
    assert list(window.pop_due(WAIT - 0.001)) == []
    assert list(window.pop_due(WAIT)) == [(trace, "wait")]


def test_stale_root_entries_are_skipped() -> None:
    clock = FakeClock(0.0)
    window = _window(clock, num_traces=1, root_wait=ROOT_WAIT)
    tid = os.urandom(16)
    evicted_root = _trace(tid, root=True)
    window.add(evicted_root)
    clock.advance(1.0)
    other = _trace()
    assert window.add(other) is evicted_root  # its root-wait entry is now stale
    clock.advance(0.5)
    again = _trace(tid)  # the same trace ID comes back, without a root this time
    assert window.add(again) is other
    assert list(window.pop_due(ROOT_WAIT)) == []
    assert list(window.pop_due(1.5 + WAIT)) == [(again, "wait")]


def test_add_evicts_the_oldest_trace_of_a_full_shard() -> None:
    clock = FakeClock()
    window = _window(clock, num_traces=3)
    traces = [_trace(spans=n + 1) for n in range(5)]
    for trace in traces[:3]:
        assert window.add(trace) is None
        clock.advance(1)
    assert window.capacity == 3
    assert window.add(traces[3]) is traces[0]
    assert window.add(traces[4]) is traces[1]
    assert window.trace_count == 3
    assert window.span_count == 3 + 4 + 5
    assert window.get(traces[0].trace_id) is None
    assert _ids(list(window.pop_due(1e9))) == [t.trace_id for t in traces[2:]]


def test_each_shard_holds_its_share() -> None:
    window = _window(FakeClock(), num_traces=8, num_shards=4)
    assert window.capacity == 8
    evicted = [window.add(_trace()) for _ in range(200)]
    assert window.trace_count == 8
    assert sum(e is not None for e in evicted) == 192


def test_counters_stay_exact_through_add_extend_and_pop() -> None:
    clock = FakeClock(0.0)
    window = _window(clock, num_traces=3, num_shards=1, root_wait=ROOT_WAIT)
    assert (window.trace_count, window.span_count, window.nbytes) == (0, 0, 0)
    a_id = os.urandom(16)
    a = _trace(a_id, spans=2)
    b = _trace(spans=3)
    window.add(a)
    window.add(b)
    assert (window.trace_count, window.span_count, window.nbytes) == (2, 5, a.nbytes + b.nbytes)

    fragment = _trace(a_id, spans=4, root=True)
    a_bytes = a.nbytes
    window.extend(a, fragment)
    assert a.span_count == 6 and a.nbytes == a_bytes + fragment.nbytes
    assert (window.trace_count, window.span_count, window.nbytes) == (2, 9, a.nbytes + b.nbytes)

    assert list(window.pop_due(ROOT_WAIT)) == [(a, "root")]
    assert (window.trace_count, window.span_count, window.nbytes) == (1, 3, b.nbytes)

    c, d, e = _trace(spans=1), _trace(spans=2), _trace(spans=7)
    window.add(c)
    window.add(d)
    assert window.add(e) is b
    assert (window.trace_count, window.span_count, window.nbytes) == (3, 10, c.nbytes + d.nbytes + e.nbytes)

    assert list(window.pop_all()) == [c, d, e]
    assert (window.trace_count, window.span_count, window.nbytes) == (0, 0, 0)


Op = tuple[str, int, int, bool]
_ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "extend", "advance", "pop"]), st.integers(0, 60), st.integers(1, 4), st.booleans()
    ),
    max_size=40,
)


@settings(max_examples=100, deadline=None)
@given(ops=_ops, num_shards=st.integers(1, 3))
def test_counters_match_the_buffered_traces(ops: list[Op], num_shards: int) -> None:
    """Random add/extend/advance/pop sequences against a model of what the window holds."""
    clock = FakeClock(0.0)
    window = TraceWindow(6, num_shards, WAIT, ROOT_WAIT, clock)
    inside: dict[bytes, TraceSpans] = {}
    for kind, number, spans, root in ops:
        if kind == "add":
            trace = TraceSpans(os.urandom(16))
            trace.span_count, trace.nbytes, trace.root_seen = spans, 100 * spans, root
            evicted = window.add(trace)
            if evicted is not None:
                assert inside.pop(evicted.trace_id) is evicted
            inside[trace.trace_id] = trace
        elif kind == "extend" and inside:
            trace = list(inside.values())[number % len(inside)]
            fragment = TraceSpans(trace.trace_id)
            fragment.span_count, fragment.nbytes, fragment.root_seen = spans, 10 * spans, root
            window.extend(trace, fragment)
        elif kind == "advance":
            clock.advance(number / 10)
        elif kind == "pop":
            for trace, trigger in window.pop_due(clock.now):
                assert inside.pop(trace.trace_id) is trace
                assert trace.due <= clock.now
                assert trigger == ("root" if trace.due < trace.first_seen + WAIT else "wait")
            assert all(clock.now < trace.due for trace in inside.values()), "a due trace was left behind"
        assert window.trace_count == len(inside)
        assert window.span_count == sum(t.span_count for t in inside.values())
        assert window.nbytes == sum(t.nbytes for t in inside.values())
        assert all(window.get(tid) is t for tid, t in inside.items())
    assert {t.trace_id for t in window.pop_all()} == set(inside)
    assert (window.trace_count, window.span_count, window.nbytes) == (0, 0, 0)


def test_pop_all_empties_the_window() -> None:
    clock = FakeClock(0.0)
    window = _window(clock, num_shards=4, root_wait=ROOT_WAIT)
    traces = [_trace(root=index % 2 == 0) for index in range(20)]
    for trace in traces:
        window.add(trace)
    assert {t.trace_id for t in window.pop_all()} == {t.trace_id for t in traces}
    assert (window.trace_count, window.span_count, window.nbytes) == (0, 0, 0)
    assert list(window.pop_all()) == []
    assert list(window.pop_due(1e9)) == []  # root-wait entries went too


def test_pop_due_looks_only_at_the_front() -> None:
    """Expiry costs O(expired traces): with 50k buffered traces and none due,
    pop_due stops at the first trace of each shard. To prove it never looks
    further, a trace deep in the queue is made to look long overdue: a scan
    would find it, a front-only check does not."""
    clock = FakeClock(0.0)
    window = TraceWindow(60_000, 1, WAIT, 0.0, clock)
    traces = []
    for index in range(50_000):
        trace = TraceSpans(index.to_bytes(16, "big"))
        trace.span_count = 1
        traces.append(trace)
        window.add(trace)
    traces[25_000].first_seen = -1e9  # overdue if anyone looked
    for _ in range(1000):
        assert next(window.pop_due(WAIT - 0.5), None) is None
    assert window.trace_count == 50_000
    # Once the front is due, traces leave strictly from the front.
    popped = list(window.pop_due(WAIT))
    assert _ids(popped) == [t.trace_id for t in traces]


def test_window_never_holds_more_than_num_traces() -> None:
    window = _window(FakeClock(), num_traces=5, num_shards=4)
    for _ in range(200):
        window.add(_trace())
        assert window.trace_count <= 5
    assert window.capacity == 5


# --- memory accounting and the oldest trace ------------------------------------------


def test_memory_bytes_charges_span_bytes_plus_bookkeeping_and_follows_every_change() -> None:
    clock = FakeClock()
    window = _window(clock, num_shards=4)
    assert window.memory_bytes == 0
    a, b = _trace(spans=3), _trace(spans=1)
    window.add(a)
    window.add(b)
    expected = a.nbytes + b.nbytes + 2 * TRACE_OVERHEAD_BYTES + 4 * SPAN_OVERHEAD_BYTES
    assert window.memory_bytes == memory_of(a) + memory_of(b) == expected
    fragment = _trace(a.trace_id, spans=2)
    window.extend(a, fragment)
    assert window.memory_bytes == memory_of(a) + memory_of(b)
    window.discard(b)
    assert window.memory_bytes == memory_of(a)
    list(window.pop_all())
    assert window.memory_bytes == 0


def test_pop_oldest_takes_the_first_seen_trace_across_shards() -> None:
    clock = FakeClock()
    window = _window(clock, num_shards=8)
    added = []
    for _ in range(20):
        trace = _trace()
        window.add(trace)
        added.append(trace.trace_id)
        clock.advance(0.5)
    popped = []
    while (trace := window.pop_oldest()) is not None:
        popped.append(trace.trace_id)
    assert popped == added
    assert (window.trace_count, window.span_count, window.nbytes) == (0, 0, 0)
